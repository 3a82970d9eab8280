"""The Keras ``ops`` names: square, log1p, expm1, sign, cast, one_hot, argmax/argmin, shape,
norm, convert_to_tensor/numpy, the arithmetic aliases, zeros/ones(shape=)."""
import numpy as np
import pytest

import fundl as fl
from fundl.testing import assert_error, check_op


def _x(seed=0, shape=(3, 4)):
    return np.random.default_rng(seed).standard_normal(shape)


def test_square_log1p_expm1_gradcheck_and_torch():
    torch = pytest.importorskip("torch")
    check_op(fl.square, torch.square, [_x()], reference=np.square)
    x = np.abs(_x(1)) * 0.5 - 0.3  # > -1
    check_op(fl.log1p, torch.log1p, [x], reference=np.log1p)
    check_op(fl.expm1, torch.expm1, [_x(2)], reference=np.expm1)


def test_erf_and_std():
    torch = pytest.importorskip("torch")
    check_op(fl.erf, torch.erf, [_x(7)], atol=1e-12, rtol=1e-10)
    check_op(lambda t: fl.std(t, axis=1), lambda t: torch.std(t, dim=1, unbiased=False), [_x(8)],
             reference=lambda x: np.std(x, axis=1))
    check_op(fl.std, None, [_x(9)], reference=lambda x: np.std(x))


def test_log1p_and_expm1_are_exact_for_tiny_inputs():
    x = fl.tensor([1e-12], dtype="float64")
    assert fl.log1p(x).numpy()[0] == pytest.approx(1e-12, rel=1e-9)
    assert fl.expm1(x).numpy()[0] == pytest.approx(1e-12, rel=1e-9)


def test_sign_has_zero_gradient():
    x = fl.tensor(_x(), requires_grad=True)
    y = fl.sign(x)
    np.testing.assert_array_equal(y.numpy(), np.sign(x.numpy()))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, np.zeros(x.shape))


@pytest.mark.parametrize("name,np_fn", [("multiply", np.multiply), ("subtract", np.subtract),
                                        ("divide", np.divide), ("power", np.power)])
def test_binary_aliases(name, np_fn):
    a = np.abs(_x(3)) + 0.5
    b = _x(4)
    check_op(getattr(fl, name), None, [a, b], reference=np_fn)
    assert np.allclose(fl.negative(fl.tensor(a)).numpy(), -a)


def test_cast_float_is_differentiable_and_int_is_not():
    x = fl.tensor(_x(), dtype="float64", requires_grad=True)
    y = fl.cast(x, "float32")
    assert y.dtype == np.float32 and y.requires_grad
    (y * 2).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad, np.full(x.shape, 2.0))
    i = fl.cast(fl.tensor([1.7, -0.2, 2.0]), "int32")
    assert i.dtype == np.int32 and not i.requires_grad
    np.testing.assert_array_equal(i.numpy(), [1, 0, 2])
    assert fl.cast(x, "float64") is x
    assert_error(TypeError, fl.cast, x, "not-a-dtype", contains=["cast"])


def test_one_hot_matches_numpy_and_keras_rules():
    labels = np.array([[0, 2], [1, 5]])  # 5 is out of range: an all-zero row, as Keras
    got = fl.one_hot(fl.tensor(labels), 3)
    assert got.shape == (2, 2, 3) and got.dtype == np.float32
    expected = np.zeros((2, 2, 3))
    expected[0, 0, 0] = expected[0, 1, 2] = expected[1, 0, 1] = 1
    np.testing.assert_array_equal(got.numpy(), expected)
    first = fl.one_hot(labels, 3, axis=0)
    np.testing.assert_array_equal(first.numpy(), np.moveaxis(expected, -1, 0))
    assert_error(TypeError, fl.one_hot, fl.tensor([0.5]), 3, contains=["one_hot", "float32"])
    assert_error(ValueError, fl.one_hot, [0], 0, contains=["one_hot", "num_classes"])


@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, False), (-1, True), (1, False)])
def test_argmax_argmin(axis, keepdims):
    x = _x(5, (3, 4, 2))
    for name in ("argmax", "argmin"):
        got = getattr(fl, name)(fl.tensor(x), axis=axis, keepdims=keepdims)
        ref = getattr(np, name)(x, axis=axis, keepdims=keepdims)
        np.testing.assert_array_equal(got.numpy(), ref)
        assert got.dtype == np.int64


def test_shape_of_tensors_arrays_and_lists():
    assert fl.shape(fl.zeros(2, 3)) == (2, 3)
    assert fl.shape(np.zeros((4,))) == (4,)
    assert fl.shape([[1, 2, 3]]) == (1, 3)


@pytest.mark.parametrize("ord_,axis", [(None, None), (2, 1), (1, 0), (np.inf, -1)])
def test_norm_forward_and_gradcheck(ord_, axis):
    check_op(lambda t: fl.norm(t, ord=ord_, axis=axis), None, [_x(6)],
             reference=lambda x: np.linalg.norm(x.ravel() if axis is None else x,
                                                ord=ord_, axis=axis))
    assert_error(ValueError, fl.norm, fl.tensor(_x()), ord=3, contains=["norm", "ord"])
    assert_error(ValueError, fl.norm, fl.tensor(_x()), axis=(0, 1), contains=["norm", "vector"])


def test_convert_to_tensor_and_numpy():
    t = fl.convert_to_tensor([1, 2], dtype="float32")
    assert isinstance(t, fl.Tensor) and t.dtype == np.float32
    assert fl.convert_to_tensor(t) is t
    a = fl.convert_to_numpy(t)
    assert isinstance(a, np.ndarray) and a.tolist() == [1.0, 2.0]


def test_zeros_and_ones_take_a_shape_keyword_or_tuple():
    for fn, value in ((fl.zeros, 0.0), (fl.ones, 1.0)):
        for t in (fn(2, 3), fn((2, 3)), fn(shape=(2, 3)), fn(shape=[2, 3])):
            assert t.shape == (2, 3) and t.dtype == np.float32
            assert (t.numpy() == value).all()
        assert fn(shape=4).shape == (4,)
        assert fn(shape=(2,), dtype="float64").dtype == np.float64
        assert_error(TypeError, fn, 2, shape=(2,), contains=["shape", "not both"])
