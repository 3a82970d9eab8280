import json

import numpy as np
import pytest

import fundl as fl
from fundl import regularizers as R
from fundl.testing import assert_error, gradcheck


def _w(seed=0, shape=(4, 3)):
    return np.random.default_rng(seed).standard_normal(shape)


def _value_and_grad(reg, w):
    t = fl.tensor(w, requires_grad=True)
    penalty = reg(t)
    penalty.backward()
    return penalty, t.grad


def test_l1_value_and_gradient():
    w = _w()
    penalty, grad = _value_and_grad(R.L1(0.3), w)
    assert penalty.shape == ()
    np.testing.assert_allclose(penalty.numpy(), 0.3 * np.abs(w).sum(), rtol=1e-12)
    np.testing.assert_allclose(grad, 0.3 * np.sign(w), rtol=1e-12)


def test_l2_value_and_gradient():
    w = _w(1)
    penalty, grad = _value_and_grad(R.L2(0.3), w)
    np.testing.assert_allclose(penalty.numpy(), 0.3 * (w ** 2).sum(), rtol=1e-12)
    np.testing.assert_allclose(grad, 0.6 * w, rtol=1e-12)


def test_l1_l2_is_the_sum_of_both():
    w = _w(2)
    penalty, grad = _value_and_grad(R.L1L2(l1=0.1, l2=0.2), w)
    np.testing.assert_allclose(penalty.numpy(), 0.1 * np.abs(w).sum() + 0.2 * (w ** 2).sum(),
                               rtol=1e-12)
    np.testing.assert_allclose(grad, 0.1 * np.sign(w) + 0.4 * w, rtol=1e-12)


@pytest.mark.parametrize("reg", [R.L1(0.5), R.L2(0.5), R.L1L2(0.2, 0.7)],
                         ids=lambda r: type(r).__name__)
def test_gradcheck(reg):
    assert gradcheck(reg, [fl.tensor(_w(3), requires_grad=True)])


def test_zero_factors_give_a_zero_penalty_of_the_weight_dtype():
    penalty, grad = _value_and_grad(R.L1L2(), _w(4).astype(np.float32))
    assert penalty.shape == () and penalty.dtype == np.float32 and float(penalty) == 0.0
    np.testing.assert_array_equal(grad, np.zeros((4, 3)))


def test_keras_defaults_and_aliases():
    assert R.L1().l1 == 0.01 and R.L2().l2 == 0.01
    assert R.L1L2().get_config() == {"l1": 0.0, "l2": 0.0}
    assert R.l1 is R.L1 and R.l2 is R.L2 and R.l1_l2 is R.L1L2


def test_negative_factor_raises():
    assert_error(ValueError, R.L2, -0.1, contains=["L2", "l2", "-0.1"])


def test_non_numeric_factor_raises():
    assert_error(TypeError, R.L1, "0.1", contains=["L1", "l1", "str"])


@pytest.mark.parametrize("name, cls", [("l1", R.L1), ("l2", R.L2), ("l1_l2", R.L1L2),
                                       ("L2", R.L2)])
def test_get_by_name(name, cls):
    assert type(R.get(name)) is cls


def test_get_class_instance_callable_and_none():
    reg = R.L2(0.1)

    def custom(w):
        return (w * w).sum() * 0.5

    assert type(R.get(R.L1)) is R.L1
    assert R.get(reg) is reg and R.get(custom) is custom and R.get(None) is None


def test_get_unknown_name_lists_valid_names():
    assert_error(ValueError, R.get, "l3", contains=["l3", "'l1'", "'l2'"])


def test_get_rejects_other_types():
    assert_error(TypeError, R.get, 0.01, contains=["regularizers.get", "float"])


@pytest.mark.parametrize("reg", [R.L1(0.05), R.L2(0.001), R.L1L2(0.01, 0.02)],
                         ids=lambda r: type(r).__name__)
def test_serialize_round_trip(reg):
    clone = R.get(json.loads(json.dumps(R.serialize(reg))))
    assert type(clone) is type(reg) and clone.get_config() == reg.get_config()


def test_config_round_trip():
    reg = R.L1L2(0.3, 0.4)
    assert R.L1L2.from_config(reg.get_config()).get_config() == {"l1": 0.3, "l2": 0.4}


def test_serialize_rejects_custom_regularizers():
    class MaxAbs(R.Regularizer):
        def __call__(self, w):
            return fl.abs(w).max()

    assert_error(ValueError, R.serialize, MaxAbs(), contains=["MaxAbs", "L1"])
