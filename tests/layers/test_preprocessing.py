"""Preprocessing layers: Rescaling, Normalization and its adapt (Keras semantics)."""
import json
import os

import numpy as np
import pytest

import fundl as fl
from fundl.layers import Dense, Input, Normalization, Rescaling
from fundl.models import Model, Sequential, load_model
from fundl.testing import assert_error
from fundl.testing.layer_case import check_layer


def _data(shape=(50, 3), seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(5.0, 3.0, shape) * np.arange(1, shape[-1] + 1)


# -- Rescaling ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"scale": 0.5}, {"scale": 1 / 127.5, "offset": -1.0},
    {"scale": [1.0, 2.0, 3.0, 4.0], "offset": [0.0, 1.0, 0.0, 1.0]}])
def test_rescaling_harness(kwargs):
    check_layer(Rescaling, kwargs, input_shape=(2, 3, 4), expected_output_shape=(2, 3, 4),
                expected_weights={})


def test_rescaling_casts_uint8_images():
    x = np.array([[0, 127, 255]], dtype="uint8")
    y = Rescaling(1 / 127.5, offset=-1.0)(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), x / 127.5 - 1.0, atol=1e-6)


def test_rescaling_errors():
    assert_error(TypeError, lambda: Rescaling("1/255"), contains=("Rescaling", "scale"))
    assert_error(TypeError, lambda: Rescaling(1.0, offset=True), contains=("Rescaling", "offset"))


# -- Normalization -------------------------------------------------------------------------------

def test_normalization_adapt_matches_numpy_and_standardises():
    x = _data()
    norm = Normalization(dtype="float64")
    norm.adapt(x)
    np.testing.assert_allclose(norm.mean.numpy(), x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(norm.variance.numpy(), x.var(0), rtol=1e-12)
    y = norm(x).numpy()
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(y.std(0), 1, rtol=1e-12)
    assert [w.name for w in norm.non_trainable_weights] == ["mean", "variance"]
    assert not norm.trainable_weights


def test_normalization_matches_sklearn_standard_scaler():
    sk = pytest.importorskip("sklearn.preprocessing")
    x = _data(seed=1)
    norm = Normalization(dtype="float64")
    norm.adapt(x)
    np.testing.assert_allclose(norm(x).numpy(), sk.StandardScaler().fit_transform(x),
                               rtol=1e-10, atol=1e-12)


def test_adapt_over_batches_equals_adapt_at_once():
    x = _data((61, 4, 3), seed=2)
    whole = Normalization(axis=(1, 2), dtype="float64")
    whole.adapt(x)
    batched = Normalization(axis=(1, 2), dtype="float64")
    batched.adapt(iter([(x[i:i + 16], None) for i in range(0, 61, 16)]))
    np.testing.assert_allclose(batched.get_weights()[0], whole.get_weights()[0], rtol=1e-12)
    np.testing.assert_allclose(batched.get_weights()[1], whole.get_weights()[1], rtol=1e-12)
    np.testing.assert_allclose(whole.mean.numpy(), x.mean(0), rtol=1e-12)


def test_axis_none_gives_one_mean_and_variance():
    x = _data((10, 3), seed=3)
    norm = Normalization(axis=None, dtype="float64")
    norm.adapt(x)
    assert norm.mean.shape == ()
    np.testing.assert_allclose(norm(x).numpy(), (x - x.mean()) / x.std(), rtol=1e-12)


def test_images_per_channel():
    x = _data((8, 5, 5, 3), seed=4)
    norm = Normalization(dtype="float64")
    norm.adapt(x)
    assert norm.mean.shape == (3,)
    np.testing.assert_allclose(norm.mean.numpy(), x.mean(axis=(0, 1, 2)), rtol=1e-12)


def test_fixed_mean_and_variance_and_invert():
    x = _data((6, 2), seed=5)
    norm = Normalization(mean=[1.0, 2.0], variance=[4.0, 9.0], dtype="float64")
    y = norm(x).numpy()
    np.testing.assert_allclose(y, (x - [1.0, 2.0]) / [2.0, 3.0], rtol=1e-12)
    assert norm.weights == []
    inv = Normalization(mean=[1.0, 2.0], variance=[4.0, 9.0], invert=True, dtype="float64")
    np.testing.assert_allclose(inv(y).numpy(), x, rtol=1e-12)
    assert_error(ValueError, lambda: norm.adapt(x), contains=("Normalization", "adapt"))


@pytest.mark.parametrize("kwargs", [{}, {"mean": 0.5, "variance": 2.0},
                                    {"axis": (1, 2)}, {"invert": True}])
def test_normalization_harness(kwargs):
    weights = {} if "mean" in kwargs else (
        {"mean": (3, 4), "variance": (3, 4)} if kwargs.get("axis") == (1, 2)
        else {"mean": (4,), "variance": (4,)})
    check_layer(Normalization, kwargs, input_shape=(2, 3, 4), expected_output_shape=(2, 3, 4),
                expected_weights=weights, expected_non_trainable=tuple(weights))


def test_adapted_statistics_are_saved_with_the_model(tmp_path):
    x = _data(seed=6).astype("float32")
    norm = Normalization()
    norm.adapt(x)
    inputs = Input(shape=(3,))
    model = Model(inputs, Dense(2)(norm(inputs)))
    path = os.path.join(tmp_path, "m.fundl")
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    config = json.loads(json.dumps(norm.get_config()))
    assert config["axis"] == -1 and config["mean"] is None


def test_normalization_in_sequential_fit():
    x = _data((64, 3), seed=7).astype("float32")
    y = (x[:, :1] - 5.0) / 3.0
    norm = Normalization()
    norm.adapt(x)
    model = Sequential([Input(shape=(3,)), norm, Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    np.testing.assert_allclose(norm.mean.numpy(), x.mean(0), rtol=1e-5)  # not trained


def test_normalization_errors():
    assert_error(ValueError, lambda: Normalization(mean=1.0), contains=("Normalization", "both"))
    assert_error(TypeError, lambda: Normalization(axis="last"), contains=("Normalization", "axis"))
    assert_error(ValueError, lambda: Normalization(axis=0)(np.ones((2, 3), "float32")),
                 contains=("Normalization", "batch axis"))
    norm = Normalization()
    norm.adapt(np.ones((4, 3)))
    assert_error(ValueError, lambda: norm.adapt(np.ones((4, 5))), contains=("Normalization",
                                                                            "(4, 5)"))
    assert_error(ValueError, lambda: norm(np.ones((4, 5), "float32")),
                 contains=("Normalization", "(4, 5)"))
    assert_error(ValueError, lambda: Normalization().adapt(iter([])), contains=("no data",))
