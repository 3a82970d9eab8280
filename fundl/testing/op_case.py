"""A reusable test harness for differentiable ops (STYLE.md section 8).

:func:`check_op` runs the four checks every op gets:

1. forward against a plain-NumPy reference (float64), when one is given;
2. :func:`~fundl.testing.gradcheck.gradcheck`: central finite differences in float64;
3. gradients of float32 inputs have the inputs' shapes and dtypes;
4. forward and gradients against PyTorch (skipped when torch is not installed).

Example (in a test)::

    def test_exp():
        check_op(fl.exp, torch.exp, [np.random.randn(3, 4)], reference=np.exp)

:func:`assert_error` covers the error path: the exception type and the words (op name,
shapes) its message must contain.
"""
from __future__ import annotations

import numpy

from .. import backend
from ..tensor import Tensor
from .gradcheck import gradcheck


def _make_inputs(inputs, dtype, constant):
    """Tensors for float arrays (requiring a gradient unless their index is in ``constant``)."""
    out = []
    for i, a in enumerate(inputs):
        if isinstance(a, numpy.ndarray) and a.dtype.kind == "f":
            out.append(Tensor(a.astype(dtype), requires_grad=i not in constant))
        else:
            out.append(a)
    return out


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def check_op(fn, torch_fn=None, inputs=(), *, reference=None, constant=(), atol=1e-6, rtol=1e-6,
             gradcheck_atol=1e-5, gradcheck_rtol=1e-4, eps=1e-6, check_grad=True, seed=0):
    """Check an op's forward and backward four ways; raises AssertionError on any failure.

    Args:
        fn: the fundl function under test, called as ``fn(*inputs)``; returns a Tensor.
        torch_fn: the PyTorch equivalent on torch tensors (float64), or None to skip that check.
        inputs: NumPy arrays (float ones become Tensors that require a gradient) or other values
            passed through unchanged (ints, integer arrays, ...).
        reference: a NumPy function of the same inputs (float64) for the forward check.
        constant: indices of float inputs that should not require a gradient.
        atol, rtol: tolerances of the NumPy and PyTorch comparisons (float64).
        gradcheck_atol, gradcheck_rtol, eps: the finite-difference check's settings.
        check_grad: False for ops without a gradient (comparisons).
    """
    inputs = list(inputs)
    x64 = _make_inputs(inputs, numpy.float64, constant)
    out = fn(*x64)
    y = backend.to_numpy(out.data)
    if reference is not None:
        numpy.testing.assert_allclose(y, reference(*inputs), atol=atol, rtol=rtol,
                                      err_msg="forward differs from the NumPy reference")
    if check_grad:
        gradcheck(fn, x64, eps=eps, atol=gradcheck_atol, rtol=gradcheck_rtol, seed=seed)
        _check_grad_shapes(fn, inputs, constant)
    torch = _torch()
    if torch_fn is not None and torch is not None:
        _compare_with_torch(torch, fn, torch_fn, inputs, constant, atol, rtol, check_grad, seed)


def _check_grad_shapes(fn, inputs, constant):
    """In float32: every gradient has its input's shape and dtype."""
    x32 = _make_inputs(inputs, numpy.float32, constant)
    out = fn(*x32)
    if not out.requires_grad:
        raise AssertionError("the output does not require a gradient although an input does")
    out.backward(numpy.ones(out.shape, dtype=out.dtype))
    for t in x32:
        if isinstance(t, Tensor) and t.requires_grad:
            if t.grad is None:
                raise AssertionError(f"no gradient reached an input of shape {t.shape}")
            if t.grad.shape != t.shape or t.grad.dtype != t.dtype:
                raise AssertionError(f"gradient {t.grad.shape} {t.grad.dtype} for input "
                                     f"{t.shape} {t.dtype}")


def _compare_with_torch(torch, fn, torch_fn, inputs, constant, atol, rtol, check_grad, seed):
    x64 = _make_inputs(inputs, numpy.float64, constant)
    tx = []
    for i, a in enumerate(inputs):
        if isinstance(a, numpy.ndarray):
            tx.append(torch.tensor(a, requires_grad=check_grad and a.dtype.kind == "f"
                                   and i not in constant))
        else:
            tx.append(a)
    out = fn(*x64)
    tout = torch_fn(*tx)
    numpy.testing.assert_allclose(backend.to_numpy(out.data), tout.detach().numpy(), atol=atol,
                                  rtol=rtol, err_msg="forward differs from PyTorch")
    if not check_grad:
        return
    v = numpy.random.default_rng(seed).standard_normal(out.shape)
    out.backward(v)
    tout.backward(torch.tensor(v))
    for i, (t, tt) in enumerate(zip(x64, tx)):
        if isinstance(t, Tensor) and t.requires_grad:
            expected = tt.grad.numpy() if tt.grad is not None else numpy.zeros(t.shape)
            numpy.testing.assert_allclose(backend.to_numpy(t.grad), expected, atol=atol, rtol=rtol,
                                          err_msg=f"gradient of input {i} differs from PyTorch")


def assert_error(exc_type, fn, *args, contains=(), **kwargs):
    """Call ``fn`` and check it raises ``exc_type`` with every string of ``contains`` in its message.

    Returns:
        The exception, for further checks.
    """
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        msg = str(e)
        for part in contains:
            if str(part) not in msg:
                raise AssertionError(f"error message lacks {part!r}: {msg!r}") from e
        return e
    raise AssertionError(f"{getattr(fn, '__name__', fn)} did not raise {exc_type.__name__}")
