"""fundl.viz plots: rendered with Agg and checked as images (size, not blank, panels, data)."""
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import fundl as fl  # noqa: E402
from fundl import viz  # noqa: E402
from fundl.callbacks import History  # noqa: E402
from fundl.layers import Conv2D, Dense, Flatten, Input, MaxPooling2D  # noqa: E402
from fundl.models import Model, Sequential  # noqa: E402


def pixels(fig):
    """The figure rendered by its Agg canvas, as an (H, W, 4) uint8 array."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())


def assert_picture(fig, path=None):
    """Not blank; and when written, a PNG of the figure's size in pixels."""
    image = pixels(fig)
    assert image[..., :3].astype(float).std() > 5.0, "the figure is blank"
    if path is not None:
        from matplotlib.image import imread

        saved = imread(str(path))
        assert saved.shape[:2] == image.shape[:2]
        assert saved[..., :3].std() > 0.02


def image_axes(fig):
    return [ax for ax in fig.axes if ax.images]


@pytest.fixture(scope="module")
def conv_model():
    fl.manual_seed(0)
    model = Sequential([Input(shape=(8, 8, 1)), Conv2D(4, 3, activation="relu", name="c1"),
                        MaxPooling2D(2), Flatten(), Dense(3, activation="softmax", name="out")])
    return model


# --------------------------------------------------------------------------- history

def test_plot_history_one_panel_per_metric_with_validation(tmp_path):
    fl.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = Sequential([Input(shape=(3,)), Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam",
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=4, validation_split=0.25, verbose=0)
    path = tmp_path / "history.png"
    fig = viz.plot_history(history, to_file=path)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    loss_ax = fig.axes[0]
    lines = {line.get_label(): line for line in loss_ax.get_lines()}
    assert set(lines) == {"training", "validation"}
    np.testing.assert_allclose(lines["training"].get_ydata(), history.history["loss"])
    np.testing.assert_allclose(lines["validation"].get_ydata(), history.history["val_loss"])
    np.testing.assert_array_equal(lines["training"].get_xdata(), [1, 2, 3, 4])
    assert_picture(fig, path)


def test_plot_history_takes_a_dict_and_picks_metrics():
    logs = {"loss": [1.0, 0.5, 0.25], "mae": [0.9, 0.6, 0.4], "val_mae": [1.0, 0.7, 0.5]}
    fig = viz.plot_history(logs, metrics=["mae"])
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "mae"
    assert len(fig.axes[0].get_lines()) == 2
    assert len(viz.plot_history(logs).axes) == 2
    history = History()
    history.history = logs
    assert len(viz.plot_history(history).axes) == 2


@pytest.mark.parametrize("arg, kwargs, error, words", [
    ({}, {}, ValueError, ["empty", "fit"]),
    ({"loss": [1.0]}, {"metrics": ["accuracy"]}, ValueError, ["'accuracy'", "['loss']"]),
    ([1.0, 2.0], {}, TypeError, ["History", "list"]),
])
def test_plot_history_errors(arg, kwargs, error, words):
    with pytest.raises(error) as info:
        viz.plot_history(arg, **kwargs)
    for word in words:
        assert word in str(info.value)


# --------------------------------------------------------------------------- filters

def test_plot_filters_conv_one_panel_per_filter(conv_model, tmp_path):
    layer = conv_model.get_layer("c1")
    path = tmp_path / "filters.png"
    fig = viz.plot_filters(layer, to_file=path)
    panels = image_axes(fig)
    assert len(panels) == 4
    kernel = layer.kernel.numpy()
    for f, ax in enumerate(panels):
        shown = np.asarray(ax.images[0].get_array())
        k = kernel[:, :, 0, f]
        np.testing.assert_allclose(shown, (k - k.min()) / (k.max() - k.min()), atol=1e-6)
    assert_picture(fig, path)


def test_plot_filters_rgb_kernel_in_colour_and_max_filters():
    kernel = np.random.default_rng(1).normal(size=(5, 5, 3, 10))
    fig = viz.plot_filters(kernel, max_filters=6)
    panels = image_axes(fig)
    assert len(panels) == 6
    assert np.asarray(panels[0].images[0].get_array()).shape == (5, 5, 3)


def test_plot_filters_dense_weights_as_images():
    kernel = np.zeros((12, 3))
    kernel[5, 1] = 1.0  # unit 1 looks at pixel (1, 1) of a 3x4 image
    fig = viz.plot_filters(kernel, shape=(3, 4))
    panels = image_axes(fig)
    assert len(panels) == 3
    shown = np.asarray(panels[1].images[0].get_array())
    assert shown.shape == (3, 4) and shown[1, 1] == 1.0 and shown.sum() == 1.0
    dense = Dense(5)
    dense.build((None, 16))
    assert len(image_axes(viz.plot_filters(dense))) == 5  # 16 inputs: 4x4 guessed


@pytest.mark.parametrize("arg, kwargs, words", [
    (np.zeros((10, 3)), {}, ["10 inputs", "shape=(h, w)"]),
    (np.zeros((12, 3)), {"shape": (5, 5)}, ["25 values", "12 inputs"]),
    (np.zeros((3, 3, 2, 4)), {"channel": 2}, ["channel=2", "2 input channels"]),
    (np.zeros(5), {}, ["Conv2D kernel", "(5,)"]),
])
def test_plot_filters_errors(arg, kwargs, words):
    with pytest.raises(ValueError) as info:
        viz.plot_filters(arg, **kwargs)
    for word in words:
        assert word in str(info.value)


def test_plot_filters_layer_errors():
    with pytest.raises(ValueError, match="'d' is not built yet"):
        viz.plot_filters(Dense(3, name="d"))
    flat = Flatten(name="flat")
    flat(fl.zeros(1, 2, 2))  # built by its first call
    with pytest.raises(TypeError, match="Flatten 'flat' has no kernel"):
        viz.plot_filters(flat)
    # A Tensor is a kernel, not a layer.
    assert len(image_axes(viz.plot_filters(fl.tensor(np.ones((4, 2)))))) == 2


# --------------------------------------------------------------------------- image grid

def test_image_grid_layout_titles_and_file(tmp_path):
    images = np.random.default_rng(0).random((10, 6, 5))
    path = tmp_path / "sub" / "grid.png"
    fig = viz.image_grid(images, nrow=4, titles=list("abcdefghij"), to_file=path)
    panels = image_axes(fig)
    assert len(panels) == 10
    geometry = panels[0].get_subplotspec().get_geometry()
    assert geometry[:2] == (3, 4)  # 10 images, 4 per row
    assert [ax.get_title() for ax in panels][:3] == ["a", "b", "c"]
    np.testing.assert_allclose(panels[3].images[0].get_array(), images[3])  # in [0, 1]: as is
    assert_picture(fig, path)


def test_image_grid_rgb_uint8_and_scaling():
    rgb = np.zeros((3, 4, 4, 3), dtype=np.uint8)
    rgb[1, ..., 0] = 255
    fig = viz.image_grid(rgb, nrow=3)
    shown = np.asarray(image_axes(fig)[1].images[0].get_array())
    assert shown.shape == (4, 4, 3) and shown[..., 0].min() == 1.0 and shown[..., 1].max() == 0
    signed = np.linspace(-2, 2, 2 * 9).reshape(2, 3, 3, 1)
    fig = viz.image_grid(fl.tensor(signed), nrow=2)  # a Tensor, outside [0, 1]: scaled together
    shown = [np.asarray(ax.images[0].get_array()) for ax in image_axes(fig)]
    assert shown[0].min() == 0.0 and shown[1].max() == 1.0


@pytest.mark.parametrize("images, kwargs, words", [
    (np.zeros((2, 3, 8, 8)), {}, ["8 channels", "transpose"]),
    (np.zeros((8, 8)), {}, ["(N, H, W)", "image[None]"]),
    (np.zeros((2, 4, 4)), {"titles": ["a"]}, ["1 titles", "2 images"]),
    (np.zeros((2, 4, 4)), {"nrow": 0}, ["nrow", "0"]),
])
def test_image_grid_errors(images, kwargs, words):
    with pytest.raises(ValueError) as info:
        viz.image_grid(images, **kwargs)
    for word in words:
        assert word in str(info.value)


# --------------------------------------------------------------------------- feature maps

def _expected_maps(model, x, upto):
    h = fl.tensor(x[None])
    for layer in model.layers:
        h = layer(h)
        if layer.name == upto:
            return h.numpy()[0]


def test_plot_feature_maps_sequential(conv_model, tmp_path):
    x = np.random.default_rng(2).normal(size=(8, 8, 1)).astype(np.float32)
    path = tmp_path / "maps.png"
    fig = viz.plot_feature_maps(conv_model, x, "c1", to_file=path)
    panels = image_axes(fig)
    assert len(panels) == 4
    expected = _expected_maps(conv_model, x, "c1")
    for c, ax in enumerate(panels):
        e = expected[:, :, c]
        shown = np.asarray(ax.images[0].get_array())
        if e.max() > e.min():
            np.testing.assert_allclose(shown, (e - e.min()) / (e.max() - e.min()), atol=1e-5)
    assert_picture(fig, path)
    # A batch of one is the same picture; a Dense output is one row.
    assert len(image_axes(viz.plot_feature_maps(conv_model, x[None], "c1"))) == 4
    fig = viz.plot_feature_maps(conv_model, x, "out")
    assert len(image_axes(fig)) == 1
    np.testing.assert_allclose(image_axes(fig)[0].images[0].get_array()[0],
                               _expected_maps(conv_model, x, "out"), atol=1e-6)


def test_plot_feature_maps_functional_and_subclassed():
    fl.manual_seed(3)
    inputs = Input(shape=(6, 6, 2))
    h = Conv2D(3, 3, name="ca")(inputs)
    outputs = Dense(2, name="head")(Flatten()(h))
    functional = Model(inputs=inputs, outputs=outputs)
    x = np.random.default_rng(3).normal(size=(6, 6, 2)).astype(np.float32)
    expected = functional.get_layer("ca")(fl.tensor(x[None])).numpy()[0]

    class Sub(Model):
        def __init__(self):
            super().__init__()
            self.conv = functional.get_layer("ca")
            self.flat = Flatten()

        def call(self, z, training=False):
            return self.flat(self.conv(z))

    for model in (functional, Sub()):
        fig = viz.plot_feature_maps(model, x, "ca")
        panels = image_axes(fig)
        assert len(panels) == 3
        e = expected[:, :, 2]
        np.testing.assert_allclose(panels[2].images[0].get_array(),
                                   (e - e.min()) / (e.max() - e.min()), atol=1e-5)
    assert "call" not in Sub().conv.__dict__  # the capture hook is removed


def test_plot_feature_maps_errors(conv_model):
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        viz.plot_feature_maps(conv_model, np.zeros((8, 8, 1)), "nope")
    with pytest.raises(ValueError, match="batch of 2"):
        viz.plot_feature_maps(conv_model, np.zeros((2, 8, 8, 1)), "c1")


# --------------------------------------------------------------------------- confusion matrix

@pytest.mark.parametrize("normalize", [None, "true", "pred", "all"])
def test_confusion_matrix_matches_sklearn(normalize):
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(4)
    y_true, y_pred = rng.integers(0, 4, 60), rng.integers(0, 4, 60)
    y_pred[y_pred == 3] = 2  # a class never predicted: an empty column
    expected = metrics.confusion_matrix(y_true, y_pred, normalize=normalize)
    np.testing.assert_allclose(viz.confusion_matrix(y_true, y_pred, normalize=normalize),
                               expected)
    labels = [3, 1, 0]
    np.testing.assert_allclose(
        viz.confusion_matrix(y_true, y_pred, labels=labels, normalize=normalize),
        metrics.confusion_matrix(y_true, y_pred, labels=labels, normalize=normalize))


def test_plot_confusion_matrix_from_probabilities(tmp_path):
    y_true = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[[0, 1, 1, 1, 2, 0]] * 0.8 + 0.05
    path = tmp_path / "cm.png"
    fig = viz.plot_confusion_matrix(np.eye(3)[y_true], probs, display_labels=["a", "b", "c"],
                                    to_file=path)
    np.testing.assert_array_equal(fig.confusion_matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    ax = image_axes(fig)[0]
    assert len(fig.axes) == 2  # the matrix and its colour bar
    assert sorted(t.get_text() for t in ax.texts) == sorted("110020101")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert_picture(fig, path)
    with pytest.raises(ValueError, match="2 display_labels for 3 classes"):
        viz.plot_confusion_matrix(y_true, y_true, display_labels=["a", "b"])
    with pytest.raises(ValueError, match="normalize"):
        viz.confusion_matrix(y_true, y_true, normalize="rows")
    with pytest.raises(ValueError, match="6 samples but y_pred has 5"):
        viz.confusion_matrix(y_true, y_true[:5])


# --------------------------------------------------------------------------- decision regions

def test_plot_decision_boundary_callable_regions(tmp_path):
    x = np.array([[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [1.0, -1.0]])
    y = np.array([0, 1, 0, 1])
    path = tmp_path / "regions.png"
    fig = viz.plot_decision_boundary(lambda p: (p[:, 0] > 0).astype(np.int64), x, y,
                                     resolution=20, to_file=path)
    regions = fig.regions
    assert regions.shape == (20, 20)
    assert (regions[:, :10] == 0).all() and (regions[:, 10:] == 1).all()
    assert len(fig.axes) == 1
    assert_picture(fig, path)


def test_plot_decision_boundary_model_and_sigmoid_column():
    x, y = fl.datasets.synthetic.moons(80, noise=0.05, seed=0)
    fl.manual_seed(0)
    model = Sequential([Input(shape=(2,)), Dense(8, activation="tanh"),
                        Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    fig = viz.plot_decision_boundary(model, x, y, resolution=30)
    assert set(np.unique(fig.regions)) <= {0, 1}
    # One sigmoid column: thresholded at 0.5 (here: above the line y = 0.25).
    fig = viz.plot_decision_boundary(lambda p: 1 / (1 + np.exp(-(p[:, 1:] - 0.25) * 50)), x, y,
                                     resolution=30)
    ys = np.linspace(x[:, 1].min(), x[:, 1].max(), 30)  # roughly: rows go up in y
    assert fig.regions[0].max() == 0 and fig.regions[-1].min() == 1 and ys[0] < ys[-1]


def test_plot_decision_boundary_errors():
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        viz.plot_decision_boundary(lambda p: p, np.zeros((4, 3)), np.zeros(4))
    with pytest.raises(ValueError, match="4 points but y has 3"):
        viz.plot_decision_boundary(lambda p: p, np.zeros((4, 2)), np.zeros(3))
    with pytest.raises(TypeError, match="predict method or be callable"):
        viz.plot_decision_boundary(42, np.zeros((4, 2)), np.zeros(4))


# --------------------------------------------------------------------------- the package

@pytest.mark.parametrize("draw", [
    lambda: viz.image_grid(np.zeros((1, 2, 2))),
    lambda: viz.plot_history({"loss": [1.0]}),
    lambda: viz.plot_filters(np.zeros((3, 3, 1, 2))),
    lambda: viz.plot_confusion_matrix([0, 1], [1, 1]),
    lambda: viz.plot_decision_boundary(lambda p: p[:, 0] > 0, np.eye(2), [0, 1], resolution=4),
])
def test_missing_matplotlib_names_the_extra(monkeypatch, draw):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"pip install 'fundl\[viz\]'"):
        draw()


def test_plots_touch_no_global_matplotlib_state():
    code = ("import sys, numpy as np, fundl as fl\n"
            "assert 'matplotlib' not in sys.modules\n"
            "fl.viz.image_grid(np.random.rand(2, 3, 3), to_file=sys.argv[1])\n"
            "fl.viz.plot_history({'loss': [1.0, 0.5]})\n"
            "import matplotlib\n"
            "assert 'matplotlib.pyplot' not in sys.modules\n"
            "assert matplotlib.rcParams._get_backend_or_none() is None\n")
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run([sys.executable, "-c", code, folder + "/x.png"],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
