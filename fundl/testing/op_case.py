"""A reusable test harness for differentiable ops (STYLE.md section 8).

:func:`check_op` runs the four checks every op gets:

1. forward against a plain-NumPy reference (float64), when one is given;
2. :func:`~fundl.testing.gradcheck.gradcheck`: central finite differences in float64;
3. gradients of float32 inputs have the inputs' shapes and dtypes;
4. forward and gradients against PyTorch (skipped when torch is not installed);
5. on a machine with CuPy and an NVIDIA GPU, forward and gradients on the GPU against the
   CPU's (skipped elsewhere): the same op code runs on ``cupy`` arrays there.

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
    if backend.gpu_available():
        compare_with_gpu(fn, inputs, constant=constant, check_grad=check_grad, seed=seed)


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


def _on_device(inputs, device):
    """The arrays among ``inputs`` on ``device``; Tensors keep their requires_grad."""
    out = []
    for a in inputs:
        if isinstance(a, Tensor):
            out.append(Tensor(backend.to_device(a.data, device), requires_grad=a.requires_grad))
        elif isinstance(a, numpy.ndarray):
            out.append(backend.to_device(a, device))
        else:
            out.append(a)
    return out


def _run_with_grads(fn, tensors, v, device):
    """Forward ``fn`` and, if ``v`` is given, backward with it; NumPy copies of the results.

    Raises AssertionError when the output or a gradient is not on ``device``.
    """
    out = fn(*tensors)
    arrays = [out.data]
    if v is not None:
        out.backward(backend.to_device(v, device))
        arrays += [t.grad for t in tensors if isinstance(t, Tensor) and t.requires_grad]
    for a in arrays:
        if a is not None and backend.device_of(a) != device:
            raise AssertionError(f"a result of the op left the {device} for the "
                                 f"{backend.device_of(a)}")
    return [None if a is None else backend.to_numpy(a) for a in arrays]


def compare_with_gpu(fn, inputs, *, constant=(), check_grad=True, atol=1e-8, rtol=1e-6, seed=0,
                     device="gpu"):
    """Run ``fn`` on the CPU and on the GPU (float64) and compare forward and gradients.

    The inputs are built as in :func:`check_op`, then copied to the GPU (float inputs as
    Tensors, other arrays as CuPy arrays); the GPU run must give the CPU's outputs and input
    gradients to float64 rounding, and keep them on the GPU. Needs CuPy and a GPU (the caller
    checks ``fundl.gpu_available()``); ``device="cpu"`` runs the same comparison on the CPU
    twice (how the harness itself is tested without a GPU).

    Example (in a test that runs only where a GPU is)::

        compare_with_gpu(fl.tanh, [np.random.randn(3, 4)])
    """
    inputs = list(inputs)
    shape = fn(*_make_inputs(inputs, numpy.float64, constant)).shape
    v = numpy.random.default_rng(seed).standard_normal(shape) if check_grad else None
    want = _run_with_grads(fn, _make_inputs(inputs, numpy.float64, constant), v, "cpu")
    moved = _on_device(_make_inputs(inputs, numpy.float64, constant), device)
    got = _run_with_grads(fn, moved, v, device)
    names = ["forward"] + [f"gradient of input {i}" for i in range(len(got) - 1)]
    for name, g, w in zip(names, got, want):
        if (g is None) != (w is None):
            raise AssertionError(f"{name}: present on one device only")
        if g is not None:
            numpy.testing.assert_allclose(g, w, atol=atol, rtol=rtol,
                                          err_msg=f"{name} differs between {device} and cpu")


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
