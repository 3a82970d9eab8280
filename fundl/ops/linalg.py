"""Matrix products: ``matmul`` (batched, NumPy semantics) and the fused dense layer ``linear``."""
from __future__ import annotations

import numpy

from .. import kernels
from ..autograd import _NO_GRAD, Function
from ..backend import get_array_module, ones_vector
from ..kernels import fused as _fused
from ..tensor import Tensor
from .activation import FUSABLE, apply_in_place


class MatMul(Function):
    """``x @ y`` with NumPy's rules: 1-D operands are promoted, leading (batch) axes broadcast.

    d/dx = gy @ y^T, d/dy = x^T @ gy (the engine sums broadcast batch axes).
    """

    def check(self, x, y):
        if x.ndim == 0 or y.ndim == 0:
            raise ValueError(f"MatMul: operands must have at least one axis, got shapes {x.shape} "
                             f"and {y.shape}; use * for scalars.")
        k1 = x.shape[-1]
        k2 = y.shape[-2] if y.ndim > 1 else y.shape[0]
        if k1 != k2:
            raise ValueError(f"MatMul: inner dimensions differ: {x.shape} @ {y.shape} "
                             f"({k1} != {k2}). Did you mean to transpose one operand?")
        for a, b in zip(reversed(x.shape[:-2]), reversed(y.shape[:-2])):
            if a != b and a != 1 and b != 1:
                raise ValueError(f"MatMul: batch axes {x.shape[:-2]} and {y.shape[:-2]} of "
                                 f"{x.shape} @ {y.shape} do not broadcast ({a} != {b}, neither "
                                 "is 1).")

    def forward(self, x, y):
        self.save(x, y)
        return get_array_module(x).matmul(x, y)

    def backward(self, gy):
        x, y = self.saved
        xp = get_array_module(gy)
        # Promote 1-D operands, and the gradient with them, the way matmul did, so that both
        # formulas are matrix products: y (k,) -> (k, 1) adds a last axis to gy, x (k,) -> (1, k)
        # adds one before it (in that order, so that 1-D @ 1-D gives gy of shape (1, 1)).
        x2 = x[None, :] if x.ndim == 1 else x
        y2 = y[:, None] if y.ndim == 1 else y
        g = gy[..., None] if y.ndim == 1 else gy
        if x.ndim == 1:
            g = g[..., None, :]
        gx = gyy = None
        if self.needs_grad[0]:
            gx = xp.matmul(g, xp.swapaxes(y2, -1, -2))
            if x.ndim == 1:
                gx = gx[..., 0, :]
        if self.needs_grad[1]:
            if y.ndim == 2 and x.ndim > 2:
                # One weight shared by the whole batch: fold the batch into the rows for a single
                # GEMM, instead of a batched product that the engine would then sum.
                gyy = x.reshape(-1, x.shape[-1]).T @ g.reshape(-1, g.shape[-1])
            else:
                gyy = xp.matmul(xp.swapaxes(x2, -1, -2), g)
                if y.ndim == 1:
                    gyy = gyy[..., 0]
        return gx, gyy


class Linear(Function):
    """``activation(x @ w + b)`` for x of shape (..., in), w (in, out), b (out,) in one op.

    Leading axes are folded into one batch axis so each gradient is a single GEMM
    (the bias gradient a GEMV with a vector of ones, faster than ``sum(axis=0)``).
    Only x and w are kept for the backward (and the output, when an activation is fused).

    ``activation`` (None or one of ``"relu"``, ``"tanh"``, ``"sigmoid"``) is applied to the
    product in place while it is still in cache (:func:`~fundl.ops.activation.apply_in_place`:
    the same arithmetic as the separate op, so the same values), and its gradient is taken
    from the kept output in one pass (:func:`fundl.kernels.activation_grad`): one graph node,
    one allocation and one pass over the output fewer than ``relu(linear(x, w, b))``. Under
    ``no_grad`` nothing is kept (the op checks ``needs_grad is _NO_GRAD``).
    """

    def __init__(self, activation=None):
        if activation is not None and activation not in FUSABLE:
            raise ValueError(f"linear: activation must be None or one of {FUSABLE}, got "
                             f"{activation!r}.")
        self.activation = activation

    def check(self, x, w, b=None):
        if w.ndim != 2 or x.ndim < 1 or x.shape[-1] != w.shape[0]:
            raise ValueError(f"Linear: expected x (..., {w.shape[0] if w.ndim == 2 else 'in'}) and "
                             f"kernel (in, out), got x {x.shape} and kernel {w.shape}.")
        if b is not None and b.shape != (w.shape[1],):
            raise ValueError(f"Linear: bias must have shape ({w.shape[1]},) for a kernel of shape "
                             f"{w.shape}, got {b.shape}.")

    def forward(self, x, w, b=None):
        x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
        relu_b = b if self.activation == "relu" and b is not None and b.dtype == x2.dtype and \
            _fused.usable_2d(b.reshape(1, -1)) else None
        # OpenBLAS's or fundl's AVX-512 kernel where it applies, with bias and ReLU if given
        y = _fused.dense_forward(x2, w, relu_b)
        if y is None:
            y, relu_b = kernels.matmul(x2, w), None
        if relu_b is not None:
            pass  # applied by dense_forward, as bias_relu_numba below computes it
        elif self.activation == "relu" and b is not None and _fused.usable_2d(y, b):
            # bias and ReLU in one compiled pass, the same values as the two NumPy calls below
            _fused.bias_relu_numba(y, b)
        else:
            if b is not None:
                y += b
            if self.activation is not None:
                apply_in_place(self.activation, y)
        if self.needs_grad is not _NO_GRAD:  # inference keeps nothing for a backward
            self.save(x, w)
            self.y = y if self.activation is not None else None
        return y.reshape(x.shape[:-1] + (w.shape[1],)) if x.ndim != 2 else y

    def backward(self, gy):
        x, w = self.saved
        xp = get_array_module(gy)
        g2 = gy.reshape(-1, gy.shape[-1]) if gy.ndim != 2 else gy
        if self.activation is not None:  # through the fused activation, from the kept output
            y = self.y
            if self.activation == "relu" and _fused.usable_2d(y, g2):
                g2 = _relu_grad(g2, y)
            else:
                g2 = kernels.activation_grad(self.activation, g2, y)
        need_x, need_w = self.needs_grad[0], self.needs_grad[1]
        x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
        # both products at once (one core each, or halves) where OpenBLAS's AVX-512 kernels apply
        need_b = len(self.needs_grad) > 2 and bool(self.needs_grad[2])
        grads = _fused.dense_backward(g2, x2, w, need_x, need_w, need_b)
        gx, gw, gb = (None, None, None) if grads is None else grads
        if need_x:
            if gx is None:
                gx = kernels.matmul(g2, w.T)
            gx = gx.reshape(x.shape)
        if need_w and gw is None:
            gw = kernels.matmul(x2.T, g2)
        if need_b and gb is None:
            gb = ones_vector(g2.shape[0], g2.dtype, xp) @ g2
        return gx, gw, gb


def _relu_grad(gy, y):
    """ReLU's gradient from the kept output, through the dense layer's compiled kernel."""
    gx = numpy.empty_like(y)
    _fused.relu_grad_numba(gy, y, gx)
    return gx


def matmul(x, y) -> Tensor:
    """Matrix product with NumPy's ``matmul`` rules (batched, broadcast, 1-D promoted); ``x @ y``.

    Args:
        x: (..., n, k), or (k,) treated as one row.
        y: (..., k, m), or (k,) treated as one column; batch axes broadcast against x's.

    Returns:
        Tensor of shape (broadcast batch..., n, m), without the axes that 1-D operands added.

    Example:
        >>> (fl.ones(4, 2, 3) @ fl.ones(3, 5)).shape
        (4, 2, 5)
    """
    return MatMul().apply(x, y)


def linear(x, kernel, bias=None, activation=None) -> Tensor:
    """The dense layer ``activation(x @ kernel + bias)`` as one op with GEMM gradients.

    Args:
        x: (..., in) inputs.
        kernel: (in, out) weights.
        bias: (out,) or None.
        activation: None, or ``"relu"``, ``"tanh"`` or ``"sigmoid"`` applied to the output
            inside the op (fused: the same values as ``fl.relu(fl.linear(...))``, one pass and
            one graph node fewer; :class:`~fundl.layers.Dense` uses it for these activations).

    Returns:
        Tensor of shape (..., out).

    Example:
        >>> fl.linear(fl.ones(8, 3), fl.ones(3, 2), fl.zeros(2)).shape
        (8, 2)
    """
    if bias is None:
        return Linear(activation).apply(x, kernel)
    return Linear(activation).apply(x, kernel, bias)
