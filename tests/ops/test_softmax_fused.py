"""The compiled softmax and its gradient (fundl.kernels.fused.softmax_numba /
softmax_grad_numba, run by fl.softmax along the last axis) against the NumPy reference path,
PyTorch and finite differences."""
import numpy as np
import pytest

import fundl as fl
from fundl.kernels import fused
from fundl.testing import check_op

pytestmark = pytest.mark.skipif(fused._numba is None, reason="needs Numba")


def _softmax_and_grad(x, gy, enabled, monkeypatch, axis=-1):
    monkeypatch.setattr(fused, "_ENABLED", enabled)
    xt = fl.tensor(x, requires_grad=True)
    y = fl.softmax(xt, axis=axis)
    (y * fl.tensor(gy)).sum().backward()
    return y.numpy(), xt.grad


@pytest.mark.parametrize("shape", [(64, 10), (3, 5, 7), (4,), (2, 1)], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_matches_reference(shape, dtype, monkeypatch):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    x.flat[0] = 80.0  # a large logit: the shift must keep exp finite
    gy = rng.standard_normal(shape).astype(dtype)
    calls = []
    monkeypatch.setattr(fused, "softmax_numba", _spy(fused.softmax_numba, calls))
    monkeypatch.setattr(fused, "softmax_grad_numba", _spy(fused.softmax_grad_numba, calls))
    fast = _softmax_and_grad(x, gy, True, monkeypatch)
    assert calls == ["softmax_numba", "softmax_grad_numba"]  # the compiled path ran
    ref = _softmax_and_grad(x, gy, False, monkeypatch)
    assert calls == ["softmax_numba", "softmax_grad_numba"]  # and the reference did not
    tol = 2e-6 if dtype == np.float32 else 1e-13
    for a, b in zip(fast, ref):
        assert a.dtype == dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def _spy(fn, calls):
    def wrapped(*args):
        calls.append(fn.__name__)
        return fn(*args)
    return wrapped


def test_other_axes_and_layouts_take_the_reference(monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 6)).astype(np.float32)
    gy = rng.standard_normal((5, 6)).astype(np.float32)
    for args in ((x, gy, 0), (np.asfortranarray(x), gy, -1)):
        fast = _softmax_and_grad(*args[:2], True, monkeypatch, axis=args[2])
        ref = _softmax_and_grad(*args[:2], False, monkeypatch, axis=args[2])
        for a, b in zip(fast, ref):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(fast[0].sum(-1), 1.0, rtol=1e-6)


def test_nan_row_stays_nan_and_the_rest_is_exact(monkeypatch):
    x = np.array([[0.0, np.nan, 1.0], [0.0, 1.0, 2.0]])
    y, _ = _softmax_and_grad(x, np.ones_like(x), True, monkeypatch)
    assert np.isnan(y[0]).all()
    e = np.exp(x[1] - 2.0)
    np.testing.assert_allclose(y[1], e / e.sum(), rtol=1e-15)


def test_gradcheck_and_torch():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 5))

    def reference(a):
        e = np.exp(a - a.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    def torch_fn(a):
        import torch

        return torch.softmax(a, dim=-1)

    check_op(lambda a: fl.softmax(a), torch_fn, [x], reference=reference)
