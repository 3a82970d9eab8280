"""Reductions along axes: sum, mean, max, min, var, logsumexp.

Each takes ``axis`` (None, an int or a tuple of ints, negative allowed) and ``keepdims``.
Backward re-inserts the reduced axes (size 1) so the gradient broadcasts over them.
"""
from __future__ import annotations

import builtins
import operator

from ..autograd import Function
from ..backend import get_array_module
from ..tensor import Tensor


def _normalize_axis(op, axis, ndim):
    """A sorted tuple of non-negative axes, or an error naming the op.

    As in PyTorch, a 0-d input accepts axis 0 or -1 and is then left as it is.
    """
    if axis is None:
        return tuple(range(ndim))
    if type(axis) is int and 0 <= axis < ndim:
        return (axis,)
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in axes:
        try:
            a = operator.index(a)
        except TypeError:
            raise TypeError(f"{op}: axis must be None, an int or a tuple of ints, got {axis!r}.") from None
        n = builtins.max(ndim, 1)  # builtins: this module defines its own `max` (the op)
        if not -n <= a < n:
            raise ValueError(f"{op}: axis {a} is out of range for an input of rank {ndim} "
                             f"(valid: {-n} to {n - 1}).")
        if ndim:
            out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis}.")
    return tuple(sorted(out))


def _spread(g, shape):
    """``g`` (with size-1 reduced axes) copied out to ``shape``; cheaper than broadcast_to."""
    out = get_array_module(g).empty(shape, dtype=g.dtype)
    out[...] = g
    return out


class _Reduce(Function):
    def __init__(self, axis=None, keepdims=False):
        self.axis = axis
        self.keepdims = keepdims

    def check(self, x):
        self.axis = _normalize_axis(self.name, self.axis, x.ndim)

    def _expand(self, g, shape):
        """Give ``g`` back the reduced axes as size-1 axes (a view)."""
        if self.keepdims or not self.axis or g.ndim == 0:  # a 0-d g broadcasts as it is
            return g
        return g.reshape(tuple(1 if i in self.axis else n for i, n in enumerate(shape)))


class Sum(_Reduce):
    def forward(self, x):
        self.save(x.shape)
        return x.sum(axis=self.axis, keepdims=self.keepdims)

    def backward(self, gy):
        (shape,) = self.saved
        return _spread(self._expand(gy, shape), shape)


class Mean(_Reduce):
    def forward(self, x):
        self.save(x.shape)
        if x.dtype.kind != "f" or x.size == 0:
            return x.mean(axis=self.axis, keepdims=self.keepdims)
        count = 1
        for a in self.axis:
            count *= x.shape[a]
        # sum * (1/n): NumPy's mean() is a slow Python-level wrapper around the same sum
        return x.sum(axis=self.axis, keepdims=self.keepdims) * x.dtype.type(1.0 / count)

    def backward(self, gy):
        (shape,) = self.saved
        count = 1
        for a in self.axis:
            count *= shape[a]
        return _spread(self._expand(gy, shape) / count, shape)


class _Extreme(_Reduce):
    """max/min; tied extremes share the gradient evenly (as PyTorch's amax/amin)."""

    def forward(self, x):
        if x.size == 0:
            raise ValueError(f"{self.name}: cannot reduce an empty array of shape {x.shape}.")
        y = self._reduce(x, axis=self.axis, keepdims=True)
        self.save(x, y)
        return y if self.keepdims else y.reshape(
            tuple(n for i, n in enumerate(x.shape) if i not in self.axis))

    def backward(self, gy):
        x, y = self.saved
        mask = (x == y).astype(gy.dtype)
        mask /= mask.sum(axis=self.axis, keepdims=True)
        return mask * self._expand(gy, x.shape)


class Max(_Extreme):
    @staticmethod
    def _reduce(x, **kw):
        return x.max(**kw)


class Min(_Extreme):
    @staticmethod
    def _reduce(x, **kw):
        return x.min(**kw)


class Var(_Reduce):
    """Variance with ``ddof`` delta degrees of freedom; d/dx = 2 (x - mean) / (N - ddof)."""

    def __init__(self, axis=None, keepdims=False, ddof=0):
        super().__init__(axis, keepdims)
        self.ddof = ddof

    def forward(self, x):
        mean = x.mean(axis=self.axis, keepdims=True)
        d = x - mean
        n = x.size // builtins.max(mean.size, 1)
        self.save(d, n)
        return (d * d).sum(axis=self.axis, keepdims=self.keepdims) / (n - self.ddof)

    def backward(self, gy):
        d, n = self.saved
        return self._expand(gy, d.shape) * (2.0 / (n - self.ddof)) * d


class LogSumExp(_Reduce):
    """log(sum(exp(x))), computed as m + log(sum(exp(x - m))) with m = max(x) so it never overflows."""

    def forward(self, x):
        xp = get_array_module(x)
        m = x.max(axis=self.axis, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)
        e = xp.exp(x - m)
        s = e.sum(axis=self.axis, keepdims=True)
        y = xp.log(s) + m
        self.save(e / s)
        return y if self.keepdims else y.reshape(
            tuple(n for i, n in enumerate(x.shape) if i not in self.axis))

    def backward(self, gy):
        (softmax,) = self.saved
        return self._expand(gy, softmax.shape) * softmax


# -- public wrappers ----------------------------------------------------------------------

def sum(x, axis=None, keepdims=False) -> Tensor:  # noqa: A001 - the NumPy name
    """Sum over ``axis`` (all axes by default).

    Example:
        >>> fl.tensor([[1.0, 2.0], [3.0, 4.0]]).sum(axis=0)
        tensor([4., 6.], dtype=float32)
    """
    return Sum(axis, keepdims).apply(x)


def mean(x, axis=None, keepdims=False) -> Tensor:
    """Arithmetic mean over ``axis`` (all axes by default)."""
    return Mean(axis, keepdims).apply(x)


def max(x, axis=None, keepdims=False) -> Tensor:  # noqa: A001 - the NumPy name
    """Maximum over ``axis``; tied maxima share the gradient evenly."""
    return Max(axis, keepdims).apply(x)


def min(x, axis=None, keepdims=False) -> Tensor:  # noqa: A001 - the NumPy name
    """Minimum over ``axis``; tied minima share the gradient evenly."""
    return Min(axis, keepdims).apply(x)


def var(x, axis=None, keepdims=False, ddof=0) -> Tensor:
    """Variance over ``axis`` (population variance by default, ``ddof=1`` for the unbiased one)."""
    return Var(axis, keepdims, ddof).apply(x)


def logsumexp(x, axis=None, keepdims=False) -> Tensor:
    """``log(sum(exp(x), axis))`` without overflow; its gradient is softmax(x) along ``axis``."""
    return LogSumExp(axis, keepdims).apply(x)
