"""TensorBoard callback: the event files, read back with TensorBoard's own event reader."""
import sys

import numpy as np
import pytest

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator")

import fundl as fl  # noqa: E402
from fundl.callbacks import LearningRateScheduler, TensorBoard  # noqa: E402
from fundl.callbacks.tensorboard import kernel_image  # noqa: E402
from fundl.layers import Conv2D, Dense, Flatten, Input  # noqa: E402
from fundl.models import Sequential  # noqa: E402


def read(folder):
    """Everything TensorBoard would show from ``folder`` (no sampling: size guidance 0)."""
    acc = event_accumulator.EventAccumulator(
        str(folder), size_guidance={event_accumulator.SCALARS: 0,
                                    event_accumulator.HISTOGRAMS: 0,
                                    event_accumulator.IMAGES: 0,
                                    event_accumulator.TENSORS: 0})
    acc.Reload()
    return acc


def scalars(acc, tag):
    return [(e.step, e.value) for e in acc.Scalars(tag)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small conv net trained 3 epochs with every TensorBoard output switched on."""
    log_dir = tmp_path_factory.mktemp("tb") / "run"
    fl.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 6, 6, 1)).astype(np.float32)
    y = (x[:, :3].mean(axis=(1, 2, 3)) > 0).astype(np.int64)
    model = Sequential([Input(shape=(6, 6, 1)), Conv2D(4, 3, activation="relu", name="conv"),
                        Flatten(), Dense(2, activation="softmax", name="out")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd",
                  metrics=["accuracy"])
    tb = TensorBoard(log_dir, histogram_freq=2, write_images=True, update_freq=5,
                     write_steps_per_second=True)
    history = model.fit(x, y, epochs=3, batch_size=8, validation_split=0.25, verbose=0,
                        callbacks=[tb])
    kernels = model.get_layer("conv").kernel.numpy().copy()
    return log_dir, history.history, model, kernels


def test_epoch_scalars_equal_the_history(trained):
    log_dir, history, model, _ = trained
    train, validation = read(log_dir / "train"), read(log_dir / "validation")
    for name in ("loss", "accuracy"):
        got = scalars(train, "epoch_" + name)
        assert [s for s, _ in got] == [0, 1, 2]
        np.testing.assert_allclose([v for _, v in got], history[name], rtol=1e-6)
        got = scalars(validation, "epoch_" + name)
        np.testing.assert_allclose([v for _, v in got], history["val_" + name], rtol=1e-6)
    assert "epoch_val_loss" not in train.Tags()["scalars"]
    speed = scalars(train, "epoch_steps_per_second")
    assert [s for s, _ in speed] == [0, 1, 2] and all(v > 0 for _, v in speed)
    lr = scalars(train, "epoch_learning_rate")
    assert [v for _, v in lr] == pytest.approx([model.optimizer.learning_rate] * 3)


def test_batch_scalars_every_update_freq_batches(trained):
    log_dir, history, _, _ = trained
    train = read(log_dir / "train")
    # 36 training samples in batches of 8: 5 batches an epoch, 15 in all; one every 5.
    steps = [s for s, _ in scalars(train, "batch_loss")]
    assert steps == [5, 10, 15]
    # The last batch's running loss is the epoch's loss.
    assert scalars(train, "batch_loss")[-1][1] == pytest.approx(history["loss"][-1], rel=1e-6)


def test_histograms_every_histogram_freq_epochs(trained):
    log_dir, _, model, kernels = trained
    train = read(log_dir / "train")
    tags = set(train.Tags()["histograms"])
    assert tags == {"conv/kernel/histogram", "conv/bias/histogram", "out/kernel/histogram",
                    "out/bias/histogram"}
    events = train.Histograms("conv/kernel/histogram")
    assert [e.step for e in events] == [0, 2]
    last = events[-1].histogram_value
    assert last.num == kernels.size
    assert last.min == pytest.approx(kernels.min()) and last.max == pytest.approx(kernels.max())
    assert last.sum == pytest.approx(kernels.sum(), rel=1e-4, abs=1e-5)


def test_kernel_images(trained):
    log_dir, _, _, kernels = trained
    train = read(log_dir / "train")
    assert set(train.Tags()["images"]) == {"conv/kernel/image", "out/kernel/image"}
    events = train.Images("conv/kernel/image")
    assert [e.step for e in events] == [0, 2]
    # 4 filters of 3x3 in a 2x2 mosaic with 1-pixel gaps: 7x7.
    assert (events[-1].width, events[-1].height) == (7, 7)
    from PIL import Image
    import io

    png = np.asarray(Image.open(io.BytesIO(events[-1].encoded_image_string)))
    expected = np.round(kernel_image(kernels) * 255)
    got = png if png.ndim == 2 else png[..., 0]
    np.testing.assert_allclose(got, expected, atol=1)


def test_model_summary_text(trained):
    log_dir, _, _, _ = trained
    train = read(log_dir / "train")
    assert "model_summary/text_summary" in train.Tags()["tensors"]
    text = train.Tensors("model_summary/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "conv (Conv2D)" in text and "Total params" in text


def test_learning_rate_from_a_scheduler_is_logged_once(tmp_path):
    fl.manual_seed(1)
    x = np.random.default_rng(1).normal(size=(16, 2)).astype(np.float32)
    model = Sequential([Input(shape=(2,)), Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    schedule = LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))
    model.fit(x, x[:, :1], epochs=3, verbose=0,
              callbacks=[schedule, TensorBoard(tmp_path, write_graph=False)])
    train = read(tmp_path / "train")
    got = [v for _, v in scalars(train, "epoch_learning_rate")]
    np.testing.assert_allclose(got, [0.1, 0.05, 0.1 / 3], rtol=1e-6)
    assert not train.Tags()["histograms"] and not train.Tags()["images"]
    assert not train.Tags()["tensors"]  # write_graph=False: no summary
    assert "epoch_steps_per_second" not in train.Tags()["scalars"]
    assert not (tmp_path / "validation").exists()  # no validation data, no folder


def test_kernel_image_layouts():
    dense = kernel_image(np.arange(6.0).reshape(3, 2))
    np.testing.assert_allclose(dense, np.arange(6.0).reshape(3, 2) / 5)
    rgb = kernel_image(np.random.default_rng(0).normal(size=(5, 5, 3, 3)))
    assert rgb.shape == (11, 11, 3)  # 3 filters: a 2x2 mosaic
    assert kernel_image(np.zeros(4)) is None


@pytest.mark.parametrize("kwargs, words", [({"histogram_freq": -1}, ["histogram_freq", "-1"]),
                                           ({"update_freq": "often"}, ["update_freq", "often"]),
                                           ({"update_freq": 0}, ["update_freq", "0"])])
def test_bad_arguments(tmp_path, kwargs, words):
    with pytest.raises(ValueError) as info:
        TensorBoard(tmp_path, **kwargs)
    for word in words:
        assert word in str(info.value)


def test_missing_tensorboardx_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match=r"pip install 'fundl\[tensorboard\]'"):
        TensorBoard(tmp_path)
