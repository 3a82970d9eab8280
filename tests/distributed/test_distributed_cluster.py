"""A 2-node Ray cluster on this machine (two `ray start` processes, started and stopped by
the test), the token-authentication pitfall, and joining a cluster that is not there."""
import numpy as np
import pytest

ray = pytest.importorskip("ray")

import fundl as fl  # noqa: E402
from fundl.distributed import LocalCluster, ParameterServerStrategy  # noqa: E402


def _data(n=256):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    return x, ((x[:, 0] + 0.5 * x[:, 1]) > 0).astype(np.int64)


@pytest.mark.slow
def test_parameter_server_on_two_nodes():
    cluster = LocalCluster(num_nodes=2, cpus_per_node=1).start()
    try:
        # Ray 2.60's pitfall: the nodes use token authentication, a driver without the
        # token is refused; the error says what to set.
        with pytest.raises(PermissionError, match="RAY_AUTH_MODE=token"):
            fl.distributed.connect(cluster.address)
        assert not ray.is_initialized()
        cluster.connect()
        assert len(cluster.node_ids()) == 2
        fl.manual_seed(0)
        model = fl.Sequential([fl.layers.Dense(8, activation="tanh", input_shape=(6,)),
                               fl.layers.Dense(2, activation="softmax")])
        model.compile(optimizer=fl.optimizers.Adam(0.02),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        # one CPU each on nodes of one CPU: one worker per node
        strategy = ParameterServerStrategy(num_workers=2, resources_per_worker={"CPU": 1})
        nodes = set()

        class WhereAreTheWorkers(fl.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                nodes.update(ray.get([w.ping.remote() for w in strategy.workers])[i][2]
                             for i in range(2))

        history = strategy.fit(model, *_data(), batch_size=32, epochs=3, verbose=0,
                               callbacks=[WhereAreTheWorkers()])
        assert nodes == set(cluster.node_ids())
        assert history.history["accuracy"][-1] > 0.85
    finally:
        cluster.stop()
    assert not ray.is_initialized()


def test_auto_without_a_cluster_says_what_to_start(monkeypatch, tmp_path):
    if ray.is_initialized():
        pytest.skip("Ray is already initialised in this process")
    # "auto" looks for the address file of `ray start` in Ray's temp directory: an empty one
    # here, so that a cluster somebody else runs on this machine is not found
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    with pytest.raises(ConnectionError, match="ray start --head") as info:
        fl.distributed.connect("auto")
    assert "address=None" in str(info.value)
    assert not ray.is_initialized()
