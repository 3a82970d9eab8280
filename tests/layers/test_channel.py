"""The learned physical layer's layers: EnergyNormalization and the AWGN channel."""
import math

import numpy as np
import pytest

import fundl as fl
from fundl.layers import AWGN, Dense, EnergyNormalization, Input
from fundl.models import Model
from fundl.testing import assert_error
from fundl.testing.layer_case import check_layer


def test_energy_normalization_harness():
    check_layer(EnergyNormalization, {}, input_shape=(3, 4), expected_output_shape=(3, 4),
                expected_weights={})
    check_layer(EnergyNormalization, {"energy": 2.5}, input_shape=(2, 3, 2),
                expected_output_shape=(2, 3, 2), expected_weights={})


def test_energy_normalization_gives_every_block_energy_n():
    x = np.random.default_rng(0).normal(size=(50, 7)).astype("float32") * 10
    y = EnergyNormalization()(x).numpy()
    np.testing.assert_allclose((y ** 2).sum(axis=1), 7.0, rtol=1e-5)
    # the direction is kept: y is a positive multiple of x
    np.testing.assert_allclose(y / np.linalg.norm(y, axis=1, keepdims=True),
                               x / np.linalg.norm(x, axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    z = EnergyNormalization(energy=1.0)(x).numpy()
    np.testing.assert_allclose((z ** 2).sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(np.isfinite(EnergyNormalization()(np.zeros((2, 3), "float32")).numpy()))


def test_awgn_harness():
    # the harness's config and saving checks compare outputs, which a noisy channel cannot
    # repeat; the config round-trip is checked below. The gradcheck re-seeds every call.
    check_layer(AWGN, {"stddev": 0.3}, input_shape=(3, 4), expected_output_shape=(3, 4),
                expected_weights={}, gradcheck_training=True, check_config=False,
                check_saving=False)
    layer = AWGN(0.25, seed=4, name="channel")
    clone = AWGN.from_config(layer.get_config())
    assert (clone.stddev, clone.seed, clone.name) == (0.25, 4, "channel")
    x = np.ones((2, 3), "float32")
    np.testing.assert_array_equal(clone(x).numpy(), AWGN(0.25, seed=4)(x).numpy())


def test_awgn_noise_level_and_always_on():
    fl.manual_seed(0)
    x = np.zeros((20000, 2), "float32")
    layer = AWGN(0.5)
    for training in (True, False):         # the channel is there in inference too
        y = layer(x, training=training).numpy()
        assert abs(y.std() - 0.5) < 0.01 and abs(y.mean()) < 0.01
    layer.stddev = 0.0
    np.testing.assert_array_equal(layer(x).numpy(), x)
    inputs = Input(shape=(2,))
    model = Model(inputs, AWGN(1.0)(Dense(2)(inputs)))
    a, b = model.predict(x[:5], verbose=0), model.predict(x[:5], verbose=0)
    assert not np.allclose(a, b)


def test_stddev_for_matches_bpsk_theory():
    # BPSK at Eb/N0 = 0 dB: sigma^2 = N0/2 = 1/2
    assert math.isclose(AWGN.stddev_for(0.0, n=1, k=1), math.sqrt(0.5))
    # (7,4): Eb = 7/4 per block energy 7 over 4 bits; 10 dB -> sigma^2 = 7 / (2 * 4 * 10)
    assert math.isclose(AWGN.stddev_for(10.0, n=7, k=4), math.sqrt(7 / 80))
    np.testing.assert_allclose(AWGN.stddev_for(np.array([0.0, 10.0]), 1, 1),
                               [math.sqrt(0.5), math.sqrt(0.05)])
    # simulated uncoded BPSK bit errors agree with Q(sqrt(2 Eb/N0)) at 4 dB
    fl.manual_seed(1)
    bits = np.random.default_rng(1).integers(0, 2, 200000)
    s = (2.0 * bits - 1).astype("float32")[:, None]
    r = AWGN(AWGN.stddev_for(4.0, 1, 1))(s).numpy()[:, 0]
    ber = np.mean((r > 0) != bits)
    theory = 0.5 * math.erfc(math.sqrt(10 ** 0.4))
    assert abs(ber - theory) < 4 * math.sqrt(theory / 200000)


def test_bad_arguments():
    assert_error(ValueError, AWGN, -1.0, contains=("AWGN", "stddev"))
    assert_error(TypeError, AWGN, "loud", contains=("AWGN",))
    assert_error(ValueError, EnergyNormalization, energy=0.0, contains=("energy",))
    assert_error(ValueError, AWGN.stddev_for, 3.0, n=0, k=1, contains=("n",))
    with pytest.raises(ValueError, match="EnergyNormalization"):
        EnergyNormalization()(np.ones((3,), "float32"))
