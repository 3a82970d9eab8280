"""Reductions (sum mean max min var logsumexp): forward, gradients and errors.

Each op goes through ``check_op`` (NumPy reference, float64 gradcheck, float32 gradient
shape/dtype, PyTorch forward and gradients when torch is installed) over 1-D..4-D inputs,
with axis None / int / negative int / tuple and keepdims True / False.
"""
import numpy as np
import pytest

import fundl as fl
from fundl.testing import assert_error, check_op

try:
    import torch
except ImportError:  # the PyTorch comparison inside check_op is skipped then
    torch = None

SHAPES = [(5,), (3, 4), (2, 3, 4), (2, 1, 3, 2)]
AXES = [None, 0, -1, "pair"]  # "pair": the first and the last axis as a tuple


def _axis(axis, ndim):
    if axis == "pair":
        return (0, -1) if ndim > 1 else (0,)
    return axis


def _dims(axis, ndim):
    """The torch `dim` argument for a NumPy-style axis (torch wants explicit dims for some ops)."""
    return tuple(range(ndim)) if axis is None else axis


def _numpy_logsumexp(x, axis, keepdims):
    m = np.max(x, axis=axis, keepdims=True)
    y = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return y if keepdims else np.squeeze(y, axis=axis if axis is not None else tuple(range(x.ndim)))


# name -> (fundl, torch, numpy), each called as f(x, axis, keepdims)
OPS = {
    "sum": (fl.sum, lambda t, a, k: torch.sum(t, dim=a, keepdim=k), np.sum),
    "mean": (fl.mean, lambda t, a, k: torch.mean(t, dim=a, keepdim=k), np.mean),
    "max": (fl.max, lambda t, a, k: torch.amax(t, dim=a, keepdim=k), np.max),
    "min": (fl.min, lambda t, a, k: torch.amin(t, dim=a, keepdim=k), np.min),
    "var0": (lambda x, axis, keepdims: fl.var(x, axis, keepdims, ddof=0),
             lambda t, a, k: torch.var(t, dim=a, keepdim=k, correction=0),
             lambda x, axis, keepdims: np.var(x, axis=axis, keepdims=keepdims, ddof=0)),
    "var1": (lambda x, axis, keepdims: fl.var(x, axis, keepdims, ddof=1),
             lambda t, a, k: torch.var(t, dim=a, keepdim=k, correction=1),
             lambda x, axis, keepdims: np.var(x, axis=axis, keepdims=keepdims, ddof=1)),
    "logsumexp": (fl.logsumexp, lambda t, a, k: torch.logsumexp(t, dim=a, keepdim=k),
                  _numpy_logsumexp),
}


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", list(OPS))
def test_reduction_matches_references(name, shape, axis, keepdims):
    fn, torch_fn, reference = OPS[name]
    axis = _axis(axis, len(shape))
    x = np.random.default_rng(len(shape)).standard_normal(shape)
    check_op(lambda t: fn(t, axis, keepdims),
             lambda t: torch_fn(t, _dims(axis, t.ndim), keepdims),
             [x], reference=lambda a: reference(a, axis=axis, keepdims=keepdims))


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "logsumexp"])
def test_reduction_of_0d_input(name):
    fn, _, _ = OPS[name]
    x = fl.tensor(np.float64(1.5), requires_grad=True)
    y = fn(x, None, False)
    y.backward()
    assert y.shape == () and x.grad.shape == () and x.grad.dtype == np.float64
    np.testing.assert_allclose(x.grad, 1.0)


def test_reduction_methods_on_tensor():
    x = fl.tensor(np.arange(6.0).reshape(2, 3))
    np.testing.assert_allclose(x.sum(axis=1).numpy(), [3.0, 12.0])
    np.testing.assert_allclose(x.mean(axis=0).numpy(), [1.5, 2.5, 3.5])
    np.testing.assert_allclose(x.max(axis=-1, keepdims=True).numpy(), [[2.0], [5.0]])
    np.testing.assert_allclose(x.min().numpy(), 0.0)
    np.testing.assert_allclose(x.var(ddof=1).numpy(), np.var(np.arange(6.0), ddof=1))
    np.testing.assert_allclose(x.logsumexp(axis=0).numpy(), _numpy_logsumexp(x.numpy(), 0, False))


def test_axis_may_be_a_numpy_integer():
    x = fl.tensor(np.ones((2, 3)))
    assert x.sum(axis=np.int64(1)).shape == (2,)


# -- ties: max/min share the gradient evenly among tied extremes (as torch.amax/amin) -------------

def test_max_ties_share_gradient_evenly():
    x = fl.tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]), requires_grad=True)
    fl.max(x, axis=1).backward(np.array([1.0, 3.0]))
    np.testing.assert_allclose(x.grad, [[0.0, 0.5, 0.5], [1.0, 1.0, 1.0]])


def test_min_ties_share_gradient_evenly_over_all_axes():
    x = fl.tensor(np.array([[0.0, 4.0], [0.0, 0.0]]), requires_grad=True)
    fl.min(x).backward()
    np.testing.assert_allclose(x.grad, [[1 / 3, 0.0], [1 / 3, 1 / 3]])


@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)], ids=str)
@pytest.mark.parametrize("name", ["max", "min"])
def test_ties_match_torch_amax_amin(name, axis):
    torch = pytest.importorskip("torch")
    data = np.array([[1.0, 3.0, 3.0, -1.0], [3.0, -1.0, 0.0, -1.0], [3.0, 2.0, 3.0, -1.0]])
    fn, torch_fn, _ = OPS[name]
    x = fl.tensor(data, requires_grad=True)
    t = torch.tensor(data, requires_grad=True)
    y = fn(x, axis, False)
    ty = torch_fn(t, _dims(axis, 2), False)
    g = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(g)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy())
    np.testing.assert_allclose(x.grad, t.grad.numpy(), atol=1e-12)


# -- numerical stability ----------------------------------------------------------------------

def test_logsumexp_of_huge_values_is_finite():
    x = fl.tensor(np.array([[1000.0, 1000.0, 999.0], [-1000.0, -1001.0, -1000.0]]),
                  requires_grad=True)
    y = fl.logsumexp(x, axis=1)
    y.sum().backward()
    assert np.all(np.isfinite(y.numpy())) and np.all(np.isfinite(x.grad))
    expected = np.array([1000.0 + np.log(2 + np.exp(-1.0)), -1000.0 + np.log(2 + np.exp(-1.0))])
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(x.grad.sum(axis=1), [1.0, 1.0])  # softmax rows sum to one


def test_logsumexp_huge_values_match_torch():
    torch = pytest.importorskip("torch")
    data = np.array([1000.0, 1000.0, 999.0, -5.0])
    check_op(lambda t: fl.logsumexp(t, axis=0), lambda t: torch.logsumexp(t, dim=0), [data])


def test_logsumexp_float32_huge_values_is_finite():
    x = fl.tensor(np.array([1000.0, 1000.0], dtype=np.float32), requires_grad=True)
    y = fl.logsumexp(x)
    y.backward()
    assert y.dtype == np.float32 and np.isfinite(y.item())
    np.testing.assert_allclose(y.item(), 1000.0 + np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(x.grad, [0.5, 0.5])


def test_var_ddof1_gradient_formula():
    data = np.array([1.0, 2.0, 4.0, 7.0])
    x = fl.tensor(data, requires_grad=True)
    fl.var(x, ddof=1).backward()
    np.testing.assert_allclose(x.grad, 2 * (data - data.mean()) / 3)


# -- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("op,name", [(fl.sum, "Sum"), (fl.mean, "Mean"), (fl.max, "Max"),
                                     (fl.min, "Min"), (fl.var, "Var"), (fl.logsumexp, "LogSumExp")])
def test_axis_out_of_range_names_the_op(op, name):
    assert_error(ValueError, op, fl.ones(2, 3), axis=2, contains=[name, "axis 2", "rank 2"])


def test_negative_axis_out_of_range():
    assert_error(ValueError, fl.sum, fl.ones(2, 3), axis=-3, contains=["Sum", "axis -3"])


def test_repeated_axis_is_rejected():
    assert_error(ValueError, fl.mean, fl.ones(2, 3), axis=(1, -1), contains=["Mean", "repeated axis"])


def test_non_integer_axis_is_a_type_error():
    assert_error(TypeError, fl.sum, fl.ones(2, 3), axis=1.5, contains=["Sum", "1.5"])


def test_max_of_empty_tensor():
    assert_error(ValueError, fl.max, fl.zeros(0, 3), axis=0, contains=["Max", "(0, 3)"])
