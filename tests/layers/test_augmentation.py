"""Augmentation layers: RandomFlip, RandomRotation, RandomTranslation, RandomZoom,
RandomContrast (training only; geometry against NumPy and SciPy; gradients to the input)."""
import numpy as np
import pytest

import fundl as fl
from fundl.layers import (
    Dense, Flatten, Input, RandomContrast, RandomFlip, RandomRotation, RandomTranslation,
    RandomZoom, Rescaling,
)
from fundl.layers.augmentation import _resample, _rotation
from fundl.models import Model, Sequential
from fundl.testing import assert_error
from fundl.testing.layer_case import check_layer


def _img(shape=(2, 6, 7, 3), seed=0):
    return np.random.default_rng(seed).uniform(0, 255, shape)


@pytest.mark.parametrize("cls, kwargs", [
    (RandomFlip, {}), (RandomRotation, {"factor": 0.2}),
    (RandomTranslation, {"height_factor": 0.2, "width_factor": (-0.1, 0.3),
                         "fill_mode": "constant", "fill_value": 0.5}),
    (RandomZoom, {"height_factor": 0.3, "width_factor": 0.1, "interpolation": "nearest"}),
    (RandomContrast, {"factor": 0.3, "value_range": (-1, 1)}),
], ids=["flip", "rotation", "translation", "zoom", "contrast"])
def test_harness_in_training_mode(cls, kwargs):
    check_layer(cls, kwargs, input_shape=(2, 4, 5, 2), expected_output_shape=(2, 4, 5, 2),
                expected_weights={}, gradcheck_training=True)


def test_inference_is_the_identity_and_training_changes_images():
    x = _img().astype("float32")
    for layer in (RandomFlip(seed=1), RandomRotation(0.3, seed=1),
                  RandomTranslation(0.3, 0.3, seed=1), RandomZoom(0.3, seed=1),
                  RandomContrast(0.5, seed=1)):
        np.testing.assert_array_equal(layer(x).numpy(), x)
        assert not np.allclose(layer(x, training=True).numpy(), x), type(layer).__name__


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_quarter_turns_are_rot90(interpolation):
    x = _img((2, 5, 5, 3))
    y = _resample(fl.tensor(x), _rotation(np.array([np.pi / 2, -np.pi / 2])), "reflect",
                  interpolation, 0.0).numpy()
    np.testing.assert_allclose(y[0], np.rot90(x[0]), atol=1e-9)   # counter-clockwise
    np.testing.assert_allclose(y[1], np.rot90(x[1], -1), atol=1e-9)


def _scipy_affine(x, matrix, mode, order, cval=0.0):
    ndimage = pytest.importorskip("scipy.ndimage")
    h, w = x.shape[:2]
    c = np.array([(h - 1) / 2, (w - 1) / 2])
    out = np.empty_like(x)
    for ch in range(x.shape[-1]):
        out[..., ch] = ndimage.affine_transform(x[..., ch], matrix[:, :2],
                                                offset=c - matrix[:, :2] @ c + matrix[:, 2],
                                                order=order, mode=mode, cval=cval)
    return out


@pytest.mark.parametrize("mode, scipy_mode", [("reflect", "reflect"), ("nearest", "nearest"),
                                              ("constant", "grid-constant")])
@pytest.mark.parametrize("interpolation, order", [("bilinear", 1), ("nearest", 0)])
def test_rotations_and_zooms_match_scipy(mode, scipy_mode, interpolation, order):
    x = _img((1, 9, 8, 2))[0]
    shift = (-2.5, 1.5) if order else (-2.2, 1.7)  # no rounding ties for "nearest"
    matrices = np.concatenate([_rotation(np.array([0.4, -1.1])),
                               np.array([[[0.7, 0, 0], [0, 1.3, 0]],
                                         [[1.0, 0, shift[0]], [0, 1.0, shift[1]]]])])
    y = _resample(fl.tensor(np.stack([x] * 4)), matrices, mode, interpolation, 7.0).numpy()
    for i, m in enumerate(matrices):
        want = _scipy_affine(x, m, scipy_mode, order, cval=7.0)
        if interpolation == "nearest":  # ties of rounding may pick the other neighbour
            assert np.mean(np.isclose(y[i], want)) > 0.97
        else:
            np.testing.assert_allclose(y[i], want, atol=1e-7, err_msg=f"matrix {i}")


def test_integer_translation_with_each_fill_mode():
    x = _img((1, 5, 6, 1))[0, ..., 0]
    m = np.array([[[1.0, 0, -2], [0, 1.0, 3]]])  # output (y, x) reads input (y - 2, x + 3)
    expect = {
        "constant": np.pad(x, ((2, 0), (0, 3)), constant_values=-1.0)[:5, 3:],
        "nearest": np.pad(x, ((2, 0), (0, 3)), mode="edge")[:5, 3:],
        "reflect": np.pad(x, ((2, 0), (0, 3)), mode="symmetric")[:5, 3:],
        "wrap": np.pad(x, ((2, 0), (0, 3)), mode="wrap")[:5, 3:],
    }
    for mode, want in expect.items():
        y = _resample(fl.tensor(x[None, ..., None]), m, mode, "bilinear", -1.0).numpy()
        np.testing.assert_allclose(y[0, ..., 0], want, atol=1e-9, err_msg=mode)


def test_flip_modes_and_contrast_formula():
    x = _img((64, 3, 4, 2)).astype("float32")
    y = RandomFlip("horizontal", seed=0)(x, training=True).numpy()
    flipped = [np.array_equal(a, b[:, ::-1]) for a, b in zip(y, x)]
    kept = [np.array_equal(a, b) for a, b in zip(y, x)]
    assert all(f or k for f, k in zip(flipped, kept)) and 16 < sum(flipped) < 48
    x64 = x.astype("float64")
    z = RandomContrast((0.5, 0.5), value_range=(-1e9, 1e9), seed=3, dtype="float64")(
        x64, training=True).numpy()
    mean = x64.mean(axis=(1, 2), keepdims=True)
    c = (z - mean) / (x64 - mean)  # one contrast factor per image, in [0.5, 1.5]
    per_image = c.reshape(64, -1)
    np.testing.assert_allclose(per_image, np.broadcast_to(per_image[:, :1], per_image.shape),
                               rtol=1e-6)
    clipped = RandomContrast(0.5, value_range=(0, 255), seed=3)(x, training=True).numpy()
    assert clipped.min() >= 0 and clipped.max() <= 255
    assert (per_image >= 0.5 - 1e-4).all() and (per_image <= 1.5 + 1e-4).all()


def test_seeded_layers_repeat_and_configs_round_trip():
    x = _img().astype("float32")
    a = RandomRotation(0.3, seed=5)(x, training=True).numpy()
    fl.manual_seed(9)
    b = RandomRotation(0.3, seed=5)(x, training=True).numpy()
    np.testing.assert_array_equal(a, b)
    layer = RandomZoom((-0.2, 0.1), None, fill_mode="wrap", seed=2)
    config = layer.get_config()
    assert RandomZoom.from_config(config).get_config() == config


def test_augmentation_in_a_model_trains_and_predicts_unchanged():
    fl.manual_seed(0)
    augment = Sequential([RandomFlip("horizontal"), RandomRotation(0.05), RandomZoom(0.1)])
    inputs = Input(shape=(8, 8, 1))
    out = Dense(1)(Flatten()(Rescaling(1 / 255)(augment(inputs))))
    model = Model(inputs, out)
    x = _img((16, 8, 8, 1)).astype("float32")
    y = x.mean(axis=(1, 2, 3))[:, None] / 255
    model.compile(optimizer=fl.optimizers.SGD(0.05), loss="mse")
    history = model.fit(x, y, epochs=4, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))


def test_single_image_and_channels_first():
    x = _img((5, 6, 3)).astype("float32")
    assert RandomRotation(0.1)(x, training=True).shape == (5, 6, 3)
    xf = _img((2, 3, 5, 6)).astype("float32")
    y = RandomFlip("vertical", data_format="channels_first", seed=0)(xf, training=True)
    assert y.shape == (2, 3, 5, 6)
    for a, b in zip(y.numpy(), xf):
        assert np.array_equal(a, b) or np.array_equal(a, b[:, ::-1])


def test_errors():
    assert_error(ValueError, lambda: RandomFlip("diagonal"), contains=("RandomFlip", "mode"))
    assert_error(TypeError, lambda: RandomRotation("a lot"), contains=("RandomRotation",
                                                                       "factor"))
    assert_error(ValueError, lambda: RandomRotation((0.3, 0.1)), contains=("RandomRotation",))
    assert_error(ValueError, lambda: RandomZoom(0.2, fill_mode="mirror"),
                 contains=("RandomZoom", "fill_mode"))
    assert_error(ValueError, lambda: RandomZoom((-1.5, 0.2)), contains=("RandomZoom", "> -1"))
    assert_error(ValueError, lambda: RandomContrast(1.5), contains=("RandomContrast", "[0, 1]"))
    assert_error(ValueError, lambda: RandomFlip()(np.ones((2, 3), "float32"), training=True),
                 contains=("RandomFlip", "rank 4"))
