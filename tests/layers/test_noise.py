"""Noise layers: GaussianDropout, SpatialDropout1D, SpatialDropout2D."""
import numpy as np
import pytest

import fundl as fl
from fundl.layers import Dense, GaussianDropout, Input, SpatialDropout1D, SpatialDropout2D
from fundl.models import Model
from fundl.testing import assert_error
from fundl.testing.layer_case import check_layer


def test_gaussian_dropout_harness():
    check_layer(GaussianDropout, {"rate": 0.3}, input_shape=(3, 4), expected_output_shape=(3, 4),
                expected_weights={}, gradcheck_training=True)


def test_spatial_dropout_harnesses():
    check_layer(SpatialDropout1D, {"rate": 0.3}, input_shape=(2, 5, 4),
                expected_output_shape=(2, 5, 4), expected_weights={}, gradcheck_training=True)
    check_layer(SpatialDropout2D, {"rate": 0.3}, input_shape=(2, 3, 3, 4),
                expected_output_shape=(2, 3, 3, 4), expected_weights={},
                gradcheck_training=True)
    check_layer(SpatialDropout2D, {"rate": 0.3, "data_format": "channels_first"},
                input_shape=(2, 4, 3, 3), expected_output_shape=(2, 4, 3, 3),
                expected_weights={}, gradcheck_training=True)


def test_gaussian_dropout_noise_statistics():
    fl.manual_seed(0)
    x = np.ones((400, 250), "float32")
    y = GaussianDropout(0.2)(x, training=True).numpy()
    assert abs(y.mean() - 1.0) < 0.01
    assert abs(y.std() - np.sqrt(0.2 / 0.8)) < 0.01
    np.testing.assert_array_equal(GaussianDropout(0.2)(x).numpy(), x)  # inference: identity


@pytest.mark.parametrize("layer, shape, space, channel", [
    (lambda: SpatialDropout1D(0.4), (64, 7, 16), (1,), 2),
    (lambda: SpatialDropout2D(0.4), (64, 5, 6, 16), (1, 2), 3),
    (lambda: SpatialDropout2D(0.4, data_format="channels_first"), (64, 16, 5, 6), (2, 3), 1),
], ids=["1d", "2d", "2d_channels_first"])
def test_spatial_dropout_drops_whole_channels(layer, shape, space, channel):
    fl.manual_seed(1)
    y = layer()(np.ones(shape, "float32"), training=True).numpy()
    # every (sample, channel) slice is all zeros or all 1 / (1 - rate)
    lo, hi = y.min(axis=space), y.max(axis=space)
    np.testing.assert_array_equal(lo, hi)
    np.testing.assert_allclose(np.unique(lo), [0.0, 1 / 0.6], rtol=1e-6)
    assert abs((lo == 0).mean() - 0.4) < 0.06  # 1024 draws
    assert lo.shape == (shape[0], shape[channel])


def test_spatial_dropout_trains_in_fit_only():
    inputs = Input(shape=(6, 4))
    model = Model(inputs, Dense(1)(SpatialDropout1D(0.5)(inputs)))
    x = np.ones((3, 6, 4), "float32")
    a = model.predict(x, verbose=0)
    np.testing.assert_array_equal(a, model.predict(x, verbose=0))
    assert SpatialDropout1D(0.5).get_config()["rate"] == 0.5
    assert "noise_shape" not in SpatialDropout2D(0.5).get_config()


def test_errors():
    assert_error(ValueError, lambda: GaussianDropout(1.0), contains=("GaussianDropout", "rate"))
    assert_error(TypeError, lambda: SpatialDropout1D("0.1"), contains=("SpatialDropout1D",))
    assert_error(ValueError, lambda: SpatialDropout2D(0.1)(np.ones((2, 3, 4), "float32"),
                                                           training=True),
                 contains=("SpatialDropout2D", "rank 4", "(2, 3, 4)"))
    assert_error(ValueError, lambda: SpatialDropout2D(0.1, data_format="nhwc"),
                 contains=("SpatialDropout2D", "data_format"))


# -- seed= (Keras 3): a layer's own, repeatable sequence of masks -----------------------------

@pytest.mark.parametrize("make", [
    lambda seed: fl.layers.Dropout(0.5, seed=seed),
    lambda seed: fl.layers.GaussianNoise(0.5, seed=seed),
    lambda seed: GaussianDropout(0.5, seed=seed),
    lambda seed: SpatialDropout1D(0.5, seed=seed),
    lambda seed: SpatialDropout2D(0.5, seed=seed),
], ids=["dropout", "gaussian_noise", "gaussian_dropout", "spatial1d", "spatial2d"])
def test_seeded_layers_repeat_their_own_sequence(make):
    x = np.ones((4, 3, 3, 5), "float32")
    if "1D" in type(make(None)).__name__:
        x = x[:, 0]
    a, b = make(7), make(7)
    fl.manual_seed(0)
    a1, a2 = a(x, training=True).numpy(), a(x, training=True).numpy()
    fl.manual_seed(123)  # the global generator does not matter to a seeded layer
    b1, b2 = b(x, training=True).numpy(), b(x, training=True).numpy()
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(a1, a2)  # the sequence moves on
    c = make(8)(x, training=True).numpy()
    assert not np.array_equal(c, a1)
    config = make(7).get_config()
    assert config["seed"] == 7 and type(make(7)).from_config(config).seed == 7
    assert make(None).get_config()["seed"] is None


def test_seeded_attention_dropout_repeats():
    x = np.random.default_rng(0).standard_normal((2, 4, 4)).astype("float32")
    outs = []
    for _ in range(2):
        fl.manual_seed(0)
        mha = fl.layers.MultiHeadAttention(2, 2, dropout=0.5, seed=3)
        mha(x, x)
        fl.manual_seed(99)
        outs.append(mha(x, x, training=True).numpy())
    np.testing.assert_array_equal(outs[0], outs[1])
    assert fl.layers.Attention(dropout=0.2, seed=4).get_config()["seed"] == 4


def test_bad_seed():
    assert_error(TypeError, lambda: fl.layers.Dropout(0.1, seed="x"), contains=("Dropout", "seed"))
    assert_error(TypeError, lambda: GaussianDropout(0.1, seed=-1),
                 contains=("GaussianDropout", "seed"))
