"""The strategies on a local Ray: the same weights as one process where the maths says so,
convergence of the asynchronous parameter server, History and callbacks, a killed worker,
and resuming from a checkpoint. One Ray session serves the whole module (it takes seconds
to start); tiny models and few steps keep the module short."""
import importlib.util
import inspect
import os
import pathlib
import signal

import numpy as np
import pytest

ray = pytest.importorskip("ray")

import fundl as fl  # noqa: E402
from fundl.distributed import (DataParallelStrategy, ParameterServerStrategy,  # noqa: E402
                               PipelineStrategy)


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    started = fl.distributed.connect(num_cpus=2)
    yield
    fl.distributed.disconnect(started)


def _data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = ((x[:, 0] + 0.5 * x[:, 1]) > 0).astype(np.int64)
    return x, y


def _mlp(seed=0, optimizer=None, layers=3):
    fl.manual_seed(seed)
    stack = [fl.layers.Dense(8, activation="tanh", input_shape=(6,))]
    stack += [fl.layers.Dense(8, activation="tanh") for _ in range(layers - 2)]
    stack += [fl.layers.Dense(2, activation="softmax")]
    model = fl.Sequential(stack)
    model.compile(optimizer=optimizer or fl.optimizers.SGD(0.1),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _max_diff(a, b):
    return max(float(np.abs(u - v).max()) for u, v in zip(a.get_weights(), b.get_weights()))


def _one_process(x, y, **fit_kwargs):
    model = _mlp()
    fl.manual_seed(1)
    history = model.fit(x, y, verbose=0, **fit_kwargs)
    return model, history


def test_data_parallel_equals_one_process_with_the_global_batch():
    x, y = _data(90)  # 90 = 2 batches of 40 and one of 10: uneven worker shares too
    ref, ref_history = _one_process(x, y, batch_size=40, epochs=2)
    model = _mlp()
    fl.manual_seed(1)
    strategy = DataParallelStrategy(num_workers=3)
    history = strategy.fit(model, x, y, batch_size=40, epochs=2, verbose=0)
    assert _max_diff(ref, model) < 1e-5
    np.testing.assert_allclose(history.history["loss"], ref_history.history["loss"], rtol=1e-5)
    assert len(strategy.workers) == 3 and strategy.restarts == 0
    assert strategy.stats["steps"] == 6 and strategy.stats["samples"] == 180


def test_pipeline_equals_one_process():
    x, y = _data(64)
    ref, ref_history = _one_process(x, y, batch_size=32, epochs=2)
    model = _mlp()
    fl.manual_seed(1)
    strategy = PipelineStrategy(stages=[[0], [1, 2]], micro_batches=3)
    history = strategy.fit(model, x, y, batch_size=32, epochs=2, verbose=0)
    assert _max_diff(ref, model) < 1e-5
    np.testing.assert_allclose(history.history["loss"], ref_history.history["loss"], rtol=1e-5)
    np.testing.assert_allclose(history.history["accuracy"], ref_history.history["accuracy"])


@pytest.mark.parametrize("mode", ["async", pytest.param("sync", marks=pytest.mark.slow)])
def test_parameter_server_converges(mode):
    x, y = _data(256)
    model = _mlp(optimizer=fl.optimizers.Adam(0.02))
    strategy = ParameterServerStrategy(num_workers=2, mode=mode,
                                       max_staleness=4 if mode == "async" else None)
    history = strategy.fit(model, x, y, batch_size=32, epochs=4, verbose=0,
                           validation_data=_data(128, seed=1))
    losses = history.history["loss"]
    assert losses[-1] < 0.6 * losses[0]
    assert history.history["val_accuracy"][-1] > 0.9
    # the model after fit holds the server's weights and optimizer state
    assert model.evaluate(*_data(128, seed=1), verbose=0)[1] > 0.9
    assert model.optimizer.iterations == strategy.stats["steps"] > 0
    assert strategy.stats["comm_s"] > 0 and strategy.stats["compute_s"] > 0


def test_killed_worker_is_restarted_and_training_goes_on():
    x, y = _data(256)
    model = _mlp(optimizer=fl.optimizers.Adam(0.02))
    strategy = ParameterServerStrategy(num_workers=2, mode="async")
    killed = []

    class KillWorker(fl.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 3 and not killed:
                _, pid, _ = ray.get(strategy.workers[0].ping.remote())
                os.kill(pid, signal.SIGKILL)  # the process dies mid-epoch
                killed.append(pid)

    history = strategy.fit(model, x, y, batch_size=32, epochs=3, verbose=0,
                           callbacks=[KillWorker()])
    assert killed
    assert strategy.restarts >= 1
    assert len(history.history["loss"]) == 3
    assert history.history["loss"][-1] < history.history["loss"][0]
    # every batch of every epoch was applied exactly once: Ray retried the call that died
    # with the process, and the server ignored a repeated push
    assert strategy.stats["steps"] == 3 * 8


@pytest.mark.slow
def test_ray_kill_of_a_data_parallel_worker():
    x, y = _data(96)
    ref, _ = _one_process(x, y, batch_size=16, epochs=1)
    model = _mlp()
    fl.manual_seed(1)
    strategy = DataParallelStrategy(num_workers=2)

    class KillWorker(fl.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                ray.kill(strategy.workers[1], no_restart=False)

    strategy.fit(model, x, y, batch_size=16, epochs=1, verbose=0, callbacks=[KillWorker()])
    assert strategy.restarts == 1
    # the driver holds the weights, so a restart changes nothing in the result
    assert _max_diff(ref, model) < 1e-5


def test_history_callbacks_and_checkpoint_resume(tmp_path):
    x, y = _data(64)
    path = str(tmp_path / "server.fundl")
    model = _mlp(optimizer=fl.optimizers.SGD(0.1, momentum=0.9))
    fl.manual_seed(1)
    epochs_seen = []
    callback = fl.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: epochs_seen.append((epoch, sorted(logs))))
    strategy = DataParallelStrategy(num_workers=2, checkpoint=path)
    history = strategy.fit(model, x, y, batch_size=16, epochs=2, verbose=0,
                           callbacks=[callback], validation_split=0.25)
    assert [e for e, _ in epochs_seen] == [0, 1]
    assert epochs_seen[0][1] == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert model.history is history and len(history.history["val_loss"]) == 2
    # the checkpoint holds the weights and momentum of the last epoch: a new driver resumes
    resumed = fl.models.load_model(path)
    assert _max_diff(resumed, model) == 0
    assert resumed.optimizer.iterations == model.optimizer.iterations == 6
    more = DataParallelStrategy(num_workers=2).fit(resumed, x, y, batch_size=16, epochs=3,
                                                   initial_epoch=2, verbose=0,
                                                   validation_split=0.25)
    assert len(more.history["loss"]) == 1
    assert resumed.optimizer.iterations == 9


def test_through_model_fit():
    if "strategy" not in inspect.signature(fl.Sequential.fit).parameters:
        pytest.skip("model.fit has no strategy= argument yet (fundl/models/training.py)")
    x, y = _data(64)
    ref, _ = _one_process(x, y, batch_size=32, epochs=1)
    model = _mlp()
    fl.manual_seed(1)
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0,
                        strategy=DataParallelStrategy(num_workers=2))
    assert "loss" in history.history
    assert _max_diff(ref, model) < 1e-5


def test_distributed_mnist_example(capsys):
    root = os.environ.get("FUNDL_DATA_DIR")
    if not root or not pathlib.Path(root, "mnist").is_dir():
        pytest.skip("FUNDL_DATA_DIR with mnist/ is not set (CI sets it)")
    path = pathlib.Path(__file__).resolve().parents[2] / "examples" / "distributed_mnist.py"
    spec = importlib.util.spec_from_file_location("distributed_mnist", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    accuracy = example.main(["--epochs", "1", "--train-size", "6000", "--hidden", "64",
                             "--batch-size", "64"])
    out = capsys.readouterr().out
    assert "Test accuracy" in out and "2 async workers" in out
    assert accuracy > 0.6  # 6000 images, one epoch: far above chance (0.1)


@pytest.mark.slow
def test_pipeline_carries_the_optimizer_state_in_and_out():
    # Adam's moments from a first, local epoch go into the stages and come back out: a
    # pipeline epoch after a local one equals two local epochs
    x, y = _data(64)
    ref = _mlp(optimizer=fl.optimizers.Adam(0.01))
    fl.manual_seed(1)
    ref.fit(x, y, batch_size=16, epochs=2, verbose=0)
    model = _mlp(optimizer=fl.optimizers.Adam(0.01))
    fl.manual_seed(1)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    PipelineStrategy(stages=[2], micro_batches=2).fit(model, x, y, batch_size=16, epochs=2,
                                                      initial_epoch=1, verbose=0)
    assert _max_diff(ref, model) < 1e-5
    assert model.optimizer.iterations == ref.optimizer.iterations == 8
    m_ref = ref.optimizer.get_state()
    m_new = model.optimizer.get_state()
    for key in m_ref:
        np.testing.assert_allclose(m_new[key], m_ref[key], rtol=1e-4, atol=1e-7)
