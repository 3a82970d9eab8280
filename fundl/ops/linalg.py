"""Matrix products: ``matmul`` (batched, NumPy semantics) and the fused dense layer ``linear``."""
from __future__ import annotations

from ..autograd import Function
from ..backend import get_array_module
from ..tensor import Tensor


class MatMul(Function):
    """``x @ y`` with NumPy's rules: 1-D operands are promoted, leading axes broadcast.

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

    def forward(self, x, y):
        self.save(x, y)
        return get_array_module(x).matmul(x, y)

    def backward(self, gy):
        x, y = self.saved
        xp = get_array_module(gy)
        # Promote 1-D operands the way matmul did, so both formulas stay matrix products.
        x2 = x[None, :] if x.ndim == 1 else x
        y2 = y[:, None] if y.ndim == 1 else y
        g = gy
        if x.ndim == 1:
            g = xp.expand_dims(g, -2)
        if y.ndim == 1:
            g = xp.expand_dims(g, -1)
        gx = gyy = None
        if self.needs_grad[0]:
            gx = xp.matmul(g, xp.swapaxes(y2, -1, -2))
            if x.ndim == 1:
                gx = gx.reshape(gx.shape[:-2] + gx.shape[-1:])
        if self.needs_grad[1]:
            gyy = xp.matmul(xp.swapaxes(x2, -1, -2), g)
            if y.ndim == 1:
                gyy = gyy.reshape(gyy.shape[:-1])
        return gx, gyy


class Linear(Function):
    """``x @ w + b`` for x of shape (..., in), w (in, out), b (out,) in one op.

    Leading axes are folded into one batch axis so each gradient is a single GEMM
    (the bias gradient a GEMV with a vector of ones, faster than ``sum(axis=0)``).
    """

    def check(self, x, w, b=None):
        if w.ndim != 2 or x.ndim < 1 or x.shape[-1] != w.shape[0]:
            raise ValueError(f"Linear: expected x (..., {w.shape[0] if w.ndim == 2 else 'in'}) and "
                             f"kernel (in, out), got x {x.shape} and kernel {w.shape}.")
        if b is not None and b.shape != (w.shape[1],):
            raise ValueError(f"Linear: bias must have shape ({w.shape[1]},), got {b.shape}.")

    def forward(self, x, w, b=None):
        x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
        y = x2 @ w
        if b is not None:
            y += b
        self.save(x, w)
        return y.reshape(x.shape[:-1] + (w.shape[1],)) if x.ndim != 2 else y

    def backward(self, gy):
        x, w = self.saved
        xp = get_array_module(gy)
        g2 = gy.reshape(-1, gy.shape[-1]) if gy.ndim != 2 else gy
        gx = (g2 @ w.T).reshape(x.shape) if self.needs_grad[0] else None
        gw = None
        if self.needs_grad[1]:
            x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
            gw = x2.T @ g2
        gb = None
        if len(self.needs_grad) > 2 and self.needs_grad[2]:
            gb = xp.ones(g2.shape[0], dtype=g2.dtype) @ g2
        return gx, gw, gb


def matmul(x, y) -> Tensor:
    """Matrix product with NumPy's ``matmul`` rules (batched, broadcast, 1-D promoted).

    Example:
        >>> (fl.ones(4, 2, 3) @ fl.ones(3, 5)).shape
        (4, 2, 5)
    """
    return MatMul().apply(x, y)


def linear(x, kernel, bias=None) -> Tensor:
    """The dense layer ``x @ kernel + bias``: x (..., in), kernel (in, out), bias (out,) -> (..., out)."""
    if bias is None:
        return Linear().apply(x, kernel)
    return Linear().apply(x, kernel, bias)
