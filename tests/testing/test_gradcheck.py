"""fl.gradcheck itself: it passes correct ops, catches wrong backwards, and leaves inputs as they were."""
import numpy as np
import pytest

import fundl as fl
from fundl.autograd import Function
from fundl.testing import assert_error, check_op, gradcheck


class WrongSquare(Function):
    """x**2 with a deliberately wrong backward (3x instead of 2x) at every element."""

    def forward(self, x):
        self.save(x)
        return x * x

    def backward(self, gy):
        return gy * 3 * self.saved[0]


class WrongSecondInput(Function):
    """x * y whose gradient for y is off by one at element 2 only."""

    def forward(self, x, y):
        self.save(x, y)
        return x * y

    def backward(self, gy):
        x, y = self.saved
        gy_ = gy * x
        gy_[2] += 1.0
        return gy * y, gy_


class TooFewGradients(Function):
    """x + y whose backward forgets y's gradient (returns one gradient for two inputs)."""

    def forward(self, x, y):
        return x + y

    def backward(self, gy):
        return gy


def _leaf(*shape, seed=0):
    return fl.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def test_passes_on_a_correct_op():
    assert gradcheck(lambda a, b: (a * b + fl.exp(a)).sum(axis=0), [_leaf(3, 2), _leaf(2, seed=1)])


def test_passes_on_a_0d_input_and_keeps_its_shape():
    x = _leaf()
    assert gradcheck(lambda t: t * t * 3, [x])
    assert x.shape == () and x.grad.shape == ()


def test_raises_naming_the_input_and_index():
    x = _leaf(3)
    e = assert_error(AssertionError, gradcheck, lambda t: WrongSquare().apply(t), [x],
                     contains=["input 0", "shape (3,)", "index"])
    assert "3 of 3 elements differ" in str(e)


def test_names_the_second_input_and_the_wrong_element():
    x, y = _leaf(4), _leaf(4, seed=1)
    assert_error(AssertionError, gradcheck, lambda a, b: WrongSecondInput().apply(a, b), [x, y],
                 contains=["input 1", "index (2,)", "1 of 4 elements differ"])


def test_input_position_counts_non_tensor_inputs():
    x = _leaf(3)
    assert_error(AssertionError, gradcheck, lambda k, t: WrongSquare().apply(t) * k, [2.0, x],
                 contains=["input 1"])


def test_returns_false_without_raising():
    assert gradcheck(lambda t: WrongSquare().apply(t), [_leaf(2)], raise_exception=False) is False


def test_rejects_float32_inputs():
    x = fl.tensor([1.0, 2.0], requires_grad=True)
    assert_error(TypeError, gradcheck, lambda t: t * t, [x], contains=["float64", "float32"])


def test_ignores_inputs_without_requires_grad():
    c = fl.tensor([1.0, 2.0])  # float32 but constant: not checked, so not rejected
    assert gradcheck(lambda t, k: t * k, [_leaf(2), c])


def test_no_differentiable_output():
    x = fl.tensor(np.ones(2))
    assert_error(ValueError, gradcheck, lambda t: t * 2, [x], contains=["requires_grad"])


def test_multiple_outputs():
    assert gradcheck(lambda t: (t * 2, fl.exp(t)), [_leaf(3)])


def test_non_contiguous_input_is_checked_and_restored():
    base = np.random.default_rng(0).standard_normal((3, 4))
    x = fl.tensor(base.T, requires_grad=True)  # a Fortran-ordered view
    original = x.data
    assert gradcheck(lambda t: (t * t).sum(axis=1), [x])
    assert x.data is original
    assert x.grad.shape == (4, 3)


def test_non_contiguous_input_with_wrong_backward_is_caught():
    x = fl.tensor(np.random.default_rng(0).standard_normal((3, 4))[:, ::2], requires_grad=True)
    assert_error(AssertionError, gradcheck, lambda t: WrongSquare().apply(t), [x], contains=["input 0"])


def test_read_only_input_is_checked():
    data = np.random.default_rng(0).standard_normal(3)
    data.flags.writeable = False
    assert gradcheck(lambda t: t * t, [fl.tensor(data, requires_grad=True)])


def test_callers_array_is_left_untouched():
    data = np.random.default_rng(0).standard_normal(3)
    copy = data.copy()
    x = fl.tensor(data, requires_grad=True)  # shares memory with `data`
    gradcheck(lambda t: t * t, [x])
    assert x.data is data
    np.testing.assert_array_equal(data, copy)


def test_inputs_sharing_memory_are_checked_independently():
    data = np.random.default_rng(0).standard_normal(3)
    a = fl.tensor(data, requires_grad=True)
    b = a.detach().requires_grad_()  # same memory, a separate leaf
    assert gradcheck(lambda u, v: u * v * v, [a, b])


def test_restores_inputs_after_a_failure():
    x = fl.tensor(np.random.default_rng(0).standard_normal((2, 3)).T, requires_grad=True)
    original = x.data
    with pytest.raises(AssertionError):
        gradcheck(lambda t: WrongSquare().apply(t), [x])
    assert x.data is original


def test_check_op_catches_a_wrong_backward():
    with pytest.raises(AssertionError):
        check_op(lambda t: WrongSquare().apply(t), None, [np.random.default_rng(0).standard_normal(3)])


def test_check_op_catches_a_wrong_forward_reference():
    with pytest.raises(AssertionError, match="NumPy reference"):
        check_op(fl.exp, None, [np.zeros(2)], reference=np.sin)


def test_check_op_compares_with_torch():
    torch = pytest.importorskip("torch")
    with pytest.raises(AssertionError, match="PyTorch"):
        check_op(fl.exp, torch.sin, [np.random.default_rng(0).standard_normal(3)])


def test_check_op_catches_a_missing_gradient():
    rng = np.random.default_rng(0)
    with pytest.raises(AssertionError):
        check_op(lambda a, b: TooFewGradients().apply(a, b), None,
                 [rng.standard_normal(2), rng.standard_normal(2)])
