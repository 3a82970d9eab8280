import json
import math

import numpy as np
import pytest

import fundl as fl
from fundl import initializers as I
from fundl.testing import assert_error

TRUNCATED_STD = 0.87962566103423978  # std of a standard normal truncated to [-2, 2]
DENSE = (400, 300)                   # fan_in 400, fan_out 300
CONV = (5, 5, 64, 128)               # fan_in 5*5*64 = 1600, fan_out 5*5*128 = 3200


@pytest.mark.parametrize("shape, fans", [
    ((), (1, 1)), ((7,), (7, 7)), ((3, 5), (3, 5)), ((3, 3, 16, 32), (144, 288)),
    ((4, 8, 10), (32, 40)), ((2, 3, 3, 4, 6), (72, 108))])
def test_compute_fans(shape, fans):
    assert I.compute_fans(shape) == fans


# (initializer, scale, mode, uniform?) as Keras defines them
PRESETS = [
    (I.GlorotUniform, 1.0, "fan_avg", True), (I.GlorotNormal, 1.0, "fan_avg", False),
    (I.HeUniform, 2.0, "fan_in", True), (I.HeNormal, 2.0, "fan_in", False),
    (I.LecunUniform, 1.0, "fan_in", True), (I.LecunNormal, 1.0, "fan_in", False),
]


def _expected_std(shape, scale, mode):
    fan_in, fan_out = {DENSE: (400, 300), CONV: (1600, 3200)}[shape]
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    return math.sqrt(scale / n)


@pytest.mark.parametrize("shape", [DENSE, CONV], ids=["dense", "conv"])
@pytest.mark.parametrize("cls, scale, mode, uniform", PRESETS, ids=[p[0].__name__ for p in PRESETS])
def test_variance_scaling_statistics(cls, scale, mode, uniform, shape):
    w = cls(seed=0)(shape)
    std = _expected_std(shape, scale, mode)
    assert w.shape == shape and w.dtype == np.float32
    assert abs(w.mean()) < 0.02 * std
    assert w.std() == pytest.approx(std, rel=0.02)
    if uniform:  # U[-limit, limit] with limit = sqrt(3) std, nearly reached
        limit = math.sqrt(3) * std
        assert 0.99 * limit < np.abs(w).max() <= limit * (1 + 1e-6)
    else:  # truncated at two standard deviations of the normal before truncation
        assert np.abs(w).max() <= 2 * std / TRUNCATED_STD * (1 + 1e-6)


def test_variance_scaling_fan_out_on_conv_kernels():
    w = I.VarianceScaling(1.0, "fan_out", "untruncated_normal", seed=1)(CONV)
    assert w.std() == pytest.approx(math.sqrt(1 / 3200), rel=0.02)


def test_variance_scaling_normal_means_truncated():
    assert I.VarianceScaling(distribution="normal").distribution == "truncated_normal"


@pytest.mark.parametrize("kwargs, words", [
    ({"scale": 0.0}, ["scale", "0.0"]), ({"mode": "fan_sum"}, ["mode", "'fan_sum'"]),
    ({"distribution": "cauchy"}, ["distribution", "'cauchy'"])])
def test_variance_scaling_rejects_bad_arguments(kwargs, words):
    assert_error(ValueError, I.VarianceScaling, **kwargs, contains=["VarianceScaling"] + words)


def test_random_normal_statistics():
    w = I.RandomNormal(mean=1.0, stddev=0.5, seed=2)(DENSE)
    assert w.mean() == pytest.approx(1.0, abs=0.005) and w.std() == pytest.approx(0.5, rel=0.01)


def test_random_uniform_range():
    w = I.RandomUniform(-0.3, 0.1, seed=3)(DENSE)
    assert w.min() >= -0.3 and w.max() < 0.1 and w.mean() == pytest.approx(-0.1, abs=0.002)


def test_truncated_normal_redraws_beyond_two_stddev():
    w = I.TruncatedNormal(mean=0.5, stddev=0.1, seed=4)(DENSE)
    assert np.abs(w - 0.5).max() <= 0.2 + 1e-6
    assert w.std() == pytest.approx(0.1 * TRUNCATED_STD, rel=0.01)


def test_keras_defaults():
    assert I.RandomNormal().get_config() == {"mean": 0.0, "stddev": 0.05, "seed": None}
    assert I.RandomUniform().get_config() == {"minval": -0.05, "maxval": 0.05, "seed": None}
    assert I.TruncatedNormal().get_config() == {"mean": 0.0, "stddev": 0.05, "seed": None}


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (3, 3, 4, 8)])
def test_orthogonal(shape):
    w = I.Orthogonal(gain=2.0, seed=5)(shape, dtype="float64")
    m = w.reshape(-1, shape[-1])
    small = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(small, 4.0 * np.eye(min(m.shape)), atol=1e-12)


def test_orthogonal_needs_two_axes():
    assert_error(ValueError, I.Orthogonal(), (5,), contains=["Orthogonal", "(5,)"])


def test_identity():
    np.testing.assert_array_equal(I.Identity(gain=3.0)((2, 3)), [[3, 0, 0], [0, 3, 0]])


def test_identity_needs_a_matrix():
    assert_error(ValueError, I.Identity(), (2, 2, 2), contains=["Identity", "(2, 2, 2)"])


def test_constant_initializers():
    np.testing.assert_array_equal(I.Zeros()((2, 2)), np.zeros((2, 2)))
    np.testing.assert_array_equal(I.Ones()((3,)), np.ones(3))
    np.testing.assert_array_equal(I.Constant(0.25)((2,)), [0.25, 0.25])


def test_constant_rejects_arrays():
    assert_error(TypeError, I.Constant, [1.0, 2.0], contains=["Constant", "list"])


@pytest.mark.parametrize("init", [I.Zeros(), I.GlorotUniform(seed=0), I.HeNormal(seed=0),
                                  I.Orthogonal(seed=0)], ids=lambda i: type(i).__name__)
def test_dtype_argument(init):
    assert init((4, 4), dtype="float64").dtype == np.float64
    assert init((4, 4)).dtype == np.float32


def test_integer_dtype_raises():
    assert_error(TypeError, I.GlorotUniform(), (2, 2), dtype="int32",
                 contains=["GlorotUniform", "int32"])


def test_negative_shape_raises():
    assert_error(ValueError, I.Zeros(), (2, -1), contains=["Zeros", "(2, -1)"])


# -- randomness ---------------------------------------------------------------------------

RANDOM = [I.RandomNormal, I.RandomUniform, I.TruncatedNormal, I.VarianceScaling,
          I.GlorotUniform, I.GlorotNormal, I.HeNormal, I.HeUniform, I.LecunNormal,
          I.LecunUniform, I.Orthogonal]


@pytest.mark.parametrize("cls", RANDOM, ids=lambda c: c.__name__)
def test_seed_gives_the_same_values_every_call(cls):
    a, b = cls(seed=7)((8, 6)), cls(seed=7)((8, 6))
    init = cls(seed=7)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(init((8, 6)), init((8, 6)))
    assert not np.array_equal(a, cls(seed=8)((8, 6)))


@pytest.mark.parametrize("cls", RANDOM, ids=lambda c: c.__name__)
def test_unseeded_draws_from_fundl_generator(cls):
    init = cls()
    fl.manual_seed(11)
    a, a2 = init((8, 6)), init((8, 6))
    fl.manual_seed(11)
    np.testing.assert_array_equal(init((8, 6)), a)
    assert not np.array_equal(a, a2)


def test_seed_must_be_an_int():
    assert_error(TypeError, I.HeNormal, seed="42", contains=["HeNormal", "seed", "'42'"])


# -- get, config and serialize ------------------------------------------------------------

@pytest.mark.parametrize("name, cls", [
    ("glorot_uniform", I.GlorotUniform), ("glorot_normal", I.GlorotNormal),
    ("he_normal", I.HeNormal), ("he_uniform", I.HeUniform), ("lecun_normal", I.LecunNormal),
    ("lecun_uniform", I.LecunUniform), ("zeros", I.Zeros), ("ones", I.Ones),
    ("constant", I.Constant), ("random_normal", I.RandomNormal),
    ("random_uniform", I.RandomUniform), ("truncated_normal", I.TruncatedNormal),
    ("orthogonal", I.Orthogonal), ("identity", I.Identity),
    ("variance_scaling", I.VarianceScaling), ("GlorotUniform", I.GlorotUniform)])
def test_get_by_name(name, cls):
    assert type(I.get(name)) is cls


def test_get_class_instance_callable_and_none():
    init = I.HeNormal(seed=1)

    def custom(shape, dtype=None):
        return np.full(shape, 0.5, dtype=dtype or "float32")

    assert type(I.get(I.Ones)) is I.Ones
    assert I.get(init) is init and I.get(custom) is custom and I.get(None) is None


def test_get_unknown_name_lists_valid_names():
    assert_error(ValueError, I.get, "xavier", contains=["xavier", "'glorot_uniform'"])


def test_get_bad_config_dict_raises():
    assert_error(ValueError, I.get, {"class_name": "Xavier", "config": {}},
                 contains=["class_name", "GlorotUniform"])


def test_get_rejects_other_types():
    assert_error(TypeError, I.get, 0.5, contains=["initializers.get", "float"])


CONFIGURED = [
    I.Zeros(), I.Ones(), I.Constant(0.3), I.RandomNormal(0.1, 0.2, seed=1),
    I.RandomUniform(-1.0, 2.0, seed=2), I.TruncatedNormal(0.0, 0.3, seed=3),
    I.VarianceScaling(0.5, "fan_out", "uniform", seed=4), I.GlorotUniform(seed=5),
    I.GlorotNormal(), I.HeNormal(seed=6), I.HeUniform(), I.LecunNormal(), I.LecunUniform(seed=7),
    I.Orthogonal(gain=1.5, seed=8), I.Identity(gain=2.0)]


@pytest.mark.parametrize("init", CONFIGURED, ids=lambda i: type(i).__name__)
def test_serialize_round_trip(init):
    clone = I.get(json.loads(json.dumps(I.serialize(init))))
    assert type(clone) is type(init) and clone.get_config() == init.get_config()
    if init.get_config().get("seed", 0) is not None:  # deterministic: the same values
        np.testing.assert_array_equal(clone((5, 5)), init((5, 5)))


def test_preset_config_holds_only_the_seed():
    assert I.GlorotUniform(seed=3).get_config() == {"seed": 3}


def test_serialize_rejects_custom_initializers():
    class Halves(I.Initializer):
        def __call__(self, shape, dtype=None):
            return np.full(shape, 0.5, dtype=dtype or "float32")

    assert_error(ValueError, I.serialize, Halves(), contains=["Halves", "GlorotUniform"])


@pytest.mark.parametrize("shape", [(3, 8), (8, 3), (2, 3, 4)])
def test_orthogonal_returns_c_contiguous_arrays(shape):
    # a transposed Q would make every in-place update of the weight a strided one
    assert fl.initializers.Orthogonal(seed=0)(shape).flags.c_contiguous


def test_layer_weights_are_c_contiguous_whatever_the_initializer_returns():
    from fundl.layers import LSTM, Dense

    lstm = LSTM(4)
    lstm.build((None, 3, 2))
    dense = Dense(3, kernel_initializer=lambda shape, dtype=None: np.ones(shape[::-1], dtype).T)
    dense.build((None, 5))
    for w in lstm.weights + dense.weights:
        assert w.data.flags.c_contiguous, w.name


def test_scalar_weights_keep_their_shape():
    from fundl.layers import Layer

    class Temperature(Layer):
        def build(self, input_shape):
            self.t = self.add_weight("t", shape=(), initializer="ones")

    layer = Temperature()
    layer.build((None, 3))
    assert layer.t.shape == ()
    layer.set_weights([np.array(2.0)])
    assert float(layer.t.numpy()) == 2.0
