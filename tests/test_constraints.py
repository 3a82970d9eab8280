"""Weight constraints: formulas (Keras's), config round-trip, errors, and use by layers."""
import json

import numpy as np
import pytest

import fundl as fl
from fundl import constraints as C
from fundl.testing import assert_error


def _w(seed=0, shape=(4, 3)):
    return np.random.default_rng(seed).standard_normal(shape)


def test_max_norm_rescales_only_columns_over_the_limit():
    w = np.array([[3.0, 0.3], [4.0, 0.4]])          # column norms 5 and 0.5
    out = C.MaxNorm(1.0)(w)
    np.testing.assert_allclose(out[:, 0], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(out[:, 1], [0.3, 0.4], rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=0), [1.0, 0.5], rtol=1e-6)


def test_max_norm_keras_formula_on_several_axes():
    w = _w(1, (3, 3, 2, 4))
    norms = np.sqrt((w ** 2).sum(axis=(0, 1, 2), keepdims=True))
    want = w * np.clip(norms, 0, 2.0) / (1e-7 + norms)
    np.testing.assert_allclose(C.MaxNorm(2.0, axis=[0, 1, 2])(w), want, rtol=1e-12)


def test_non_neg_zeroes_negatives_and_keeps_dtype():
    w = _w(2).astype(np.float32)
    out = C.NonNeg()(w)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.where(w >= 0, w, 0))


def test_unit_norm_gives_unit_columns_and_rows():
    w = _w(3)
    np.testing.assert_allclose(np.linalg.norm(C.UnitNorm()(w), axis=0), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(C.UnitNorm(axis=1)(w), axis=1), 1.0, rtol=1e-6)


def test_min_max_norm_with_rate():
    w = np.array([[0.3, 30.0], [0.4, 40.0]])       # norms 0.5 and 50
    np.testing.assert_allclose(np.linalg.norm(C.MinMaxNorm(1.0, 2.0)(w), axis=0), [1.0, 2.0],
                               rtol=1e-6)
    half = C.MinMaxNorm(1.0, 2.0, rate=0.5)(w)     # halfway: 0.75 and 26
    np.testing.assert_allclose(np.linalg.norm(half, axis=0), [0.75, 26.0], rtol=1e-6)


def test_zero_slice_stays_zero():
    w = np.zeros((3, 2))
    for c in (C.MaxNorm(), C.UnitNorm(), C.MinMaxNorm(1.0, 2.0)):
        out = c(w)
        assert np.isfinite(out).all() and not out.any()


def test_tensor_in_tensor_out():
    t = fl.tensor(_w(4))
    out = C.NonNeg()(t)
    assert isinstance(out, fl.Tensor)
    np.testing.assert_array_equal(out.numpy(), np.maximum(_w(4), 0))


@pytest.mark.parametrize("c", [C.MaxNorm(3.0, axis=[0, 1]), C.NonNeg(), C.UnitNorm(axis=1),
                               C.MinMaxNorm(0.5, 2.0, 0.3, axis=-1)],
                         ids=lambda c: type(c).__name__)
def test_serialize_round_trip(c):
    config = json.loads(json.dumps(C.serialize(c)))
    clone = C.get(config)
    assert type(clone) is type(c) and clone.get_config() == c.get_config()
    w = _w(5, (3, 4))
    np.testing.assert_array_equal(clone(w), c(w))


def test_get_names_aliases_and_passthrough():
    assert isinstance(C.get("max_norm"), C.MaxNorm) and isinstance(C.get("NonNeg"), C.NonNeg)
    assert C.max_norm is C.MaxNorm and C.unit_norm is C.UnitNorm
    assert C.get(None) is None
    fn = lambda w: w  # noqa: E731 - any callable is accepted as it is
    assert C.get(fn) is fn
    assert C.MaxNorm().get_config() == {"max_value": 2.0, "axis": 0}


def test_errors():
    assert_error(ValueError, lambda: C.get("maxnorm"), contains=("max_norm",))
    assert_error(TypeError, lambda: C.get(3), contains=("constraints.get",))
    assert_error(ValueError, lambda: C.MaxNorm(-1.0), contains=("MaxNorm", "max_value"))
    assert_error(TypeError, lambda: C.MaxNorm("big"), contains=("MaxNorm", "max_value"))
    assert_error(ValueError, lambda: C.MinMaxNorm(2.0, 1.0),
                 contains=("MinMaxNorm", "min_value"))
    assert_error(ValueError, lambda: C.MinMaxNorm(rate=2.0), contains=("MinMaxNorm", "rate"))
    assert_error(TypeError, lambda: C.UnitNorm(axis=1.5), contains=("UnitNorm", "axis"))
    assert_error(ValueError, lambda: C.UnitNorm(axis=3)(np.ones((2, 2))),
                 contains=("UnitNorm", "(2, 2)"))
    assert_error(ValueError, lambda: C.serialize(lambda w: w),
                 contains=("constraints.serialize",))
