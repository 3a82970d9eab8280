"""Element-wise arithmetic with NumPy broadcasting.

Backward passes return gradients of the broadcast shape; the engine sums them back to
each input's shape (``autograd.unbroadcast``), so no op here reduces anything.

Masks are combined with arithmetic (``gy * mask``) rather than ``where`` wherever the result
is the same: NumPy's ``where`` branches per element and is ~10x slower on the CPU when the
mask is mixed (1 ms against 0.1 ms for 256K float32 elements).
"""
from __future__ import annotations

import numpy

from .. import runtime as _runtime
from ..autograd import Function
from ..backend import get_array_module
from ..tensor import Tensor


def _broadcast_check(op, x, y):
    """ValueError naming the op and both shapes when ``x`` and ``y`` do not broadcast."""
    xs, ys = getattr(x, "shape", ()), getattr(y, "shape", ())
    if xs == ys:
        return
    for a, b in zip(reversed(xs), reversed(ys)):
        if a != b and a != 1 and b != 1:
            raise ValueError(
                f"{op}: shapes {xs} and {ys} do not broadcast (axis sizes {a} and {b} differ and "
                "neither is 1). Reshape one operand or insert an axis with expand_dims."
            )


class _Binary(Function):
    def check(self, x, y):
        if x.shape != y.shape:
            _broadcast_check(self.name, x, y)


_POOLED_BYTES = 1 << 18
"""Add's outputs of this size and more (NumPy, same shapes and dtypes) come from the runtime's
:class:`fundl.runtime.Workspace`."""


class Add(_Binary):
    """x + y; d/dx = d/dy = 1.

    A big output (a residual block's sum) is written into a buffer of the runtime's
    :class:`fundl.runtime.Workspace`: under glibc's default settings a fresh multi-megabyte
    array faults all its pages in again at every training step; the workspace hands a buffer
    out again only once nothing else refers to it, so the values are those of ``x + y``.
    """

    def forward(self, x, y):
        if type(x) is numpy.ndarray and type(y) is numpy.ndarray and x.shape == y.shape \
                and x.dtype == y.dtype and x.nbytes >= _POOLED_BYTES:
            out = _runtime.pooled_empty(numpy, x.shape, x.dtype)
            return numpy.add(x, y, out=out)
        return x + y

    def backward(self, gy):
        return gy, gy


class Sub(_Binary):
    """x - y; d/dx = 1, d/dy = -1."""

    def forward(self, x, y):
        return x - y

    def backward(self, gy):
        return gy, (-gy if self.needs_grad[1] else None)


class Mul(_Binary):
    """x * y; d/dx = y, d/dy = x."""

    def forward(self, x, y):
        self.save(x, y)
        return x * y

    def backward(self, gy):
        x, y = self.saved
        return (gy * y if self.needs_grad[0] else None), (gy * x if self.needs_grad[1] else None)


class Div(_Binary):
    """z = x / y; d/dx = 1/y, d/dy = -x/y^2 = -z/y (so the output is kept, not x)."""

    def forward(self, x, y):
        z = x / y
        self.save(y, z)
        return z

    def backward(self, gy):
        y, z = self.saved
        gx = gy / y
        return gx, (-(gx * z) if self.needs_grad[1] else None)


class Pow(_Binary):
    """z = x ** y; d/dx = y x^(y-1), d/dy = z ln x."""

    def forward(self, x, y):
        z = x ** y
        self.save(x, y, z)
        return z

    def backward(self, gy):
        x, y, z = self.saved
        xp = get_array_module(x)
        gx = gexp = None
        if self.needs_grad[0]:
            # x ** 0 is constant: use exponent 1 there so 0 * 0 ** -1 cannot make a nan at x == 0.
            gx = gy * (y * x ** xp.where(y == 0, 1, y - 1))
        if self.needs_grad[1]:
            # ln 0 = -inf, but z ln x -> 0 as x -> 0 (y > 0): take 0 at x == 0, as PyTorch does.
            # Negative bases give nan, as in PyTorch: x^y has no real derivative in y there.
            gexp = gy * z * xp.log(xp.where(x == 0, 1, x))
        return gx, gexp


class Neg(Function):
    """-x; d/dx = -1."""

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Exp(Function):
    """y = e^x; d/dx = y (so the output is kept)."""

    def forward(self, x):
        y = get_array_module(x).exp(x)
        self.save(y)
        return y

    def backward(self, gy):
        return gy * self.saved[0]


class Log(Function):
    """ln x; d/dx = 1/x."""

    def forward(self, x):
        self.save(x)
        return get_array_module(x).log(x)

    def backward(self, gy):
        return gy / self.saved[0]


class Sqrt(Function):
    """y = sqrt(x); d/dx = 1 / (2 y) (so the output is kept)."""

    def forward(self, x):
        y = get_array_module(x).sqrt(x)
        self.save(y)
        return y

    def backward(self, gy):
        return gy / (2 * self.saved[0])


class Abs(Function):
    """|x|; d/dx = sign(x), 0 at 0 (as PyTorch)."""

    def forward(self, x):
        self.save(x)
        return get_array_module(x).abs(x)  # not abs(): this module's abs() is the public op

    def backward(self, gy):
        return gy * get_array_module(gy).sign(self.saved[0])


class Maximum(_Binary):
    """Element-wise maximum; a tie sends half the gradient to each side (as PyTorch)."""

    def forward(self, x, y):
        self.save(x, y)
        return get_array_module(x).maximum(x, y)

    def backward(self, gy):
        x, y = self.saved
        return _split(gy, x > y, x >= y)


class Minimum(_Binary):
    """Element-wise minimum; a tie sends half the gradient to each side (as PyTorch)."""

    def forward(self, x, y):
        self.save(x, y)
        return get_array_module(x).minimum(x, y)

    def backward(self, gy):
        x, y = self.saved
        return _split(gy, x < y, x <= y)


def _split(gy, wins, wins_or_ties):
    """Split ``gy`` between two operands: all where the first wins, half each on a tie."""
    share = wins_or_ties.astype(gy.dtype)  # 1 on a win or tie ...
    share += wins                          # ... 2 on a win ...
    share *= 0.5                           # ... so 1, 1/2 or 0
    gx = gy * share
    return gx, gy - gx


class Clip(Function):
    """Clamp to [lo, hi]; the gradient passes where lo <= x <= hi (as PyTorch's clamp)."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def forward(self, x):
        self.save(x)
        return get_array_module(x).clip(x, self.lo, self.hi)

    def backward(self, gy):
        (x,) = self.saved
        if self.lo is None:
            return gy * (x <= self.hi)
        keep = x >= self.lo
        if self.hi is not None:
            keep &= x <= self.hi
        return gy * keep


class Where(Function):
    """``condition ? x : y``; the condition gets no gradient.

    The backward keeps ``where`` (not a product with the mask) so that the branch not taken
    gets an exact zero even when the incoming gradient holds inf or nan.
    """

    def check(self, cond, x, y):
        _broadcast_check("Where", x, y)
        _broadcast_check("Where", cond, x)
        _broadcast_check("Where", cond, y)

    def forward(self, cond, x, y):
        cond = cond.astype(bool, copy=False)
        self.save(cond)
        return get_array_module(x).where(cond, x, y)

    def backward(self, gy):
        (cond,) = self.saved
        xp = get_array_module(gy)
        zero = xp.zeros((), dtype=gy.dtype)
        return (None,
                xp.where(cond, gy, zero) if self.needs_grad[1] else None,
                xp.where(cond, zero, gy) if self.needs_grad[2] else None)


# -- public wrappers ----------------------------------------------------------------------

def add(x, y) -> Tensor:
    """Element-wise ``x + y`` with broadcasting; also ``x + y`` on Tensors.

    Args:
        x, y: Tensors, arrays or numbers whose shapes broadcast together.

    Returns:
        Tensor of the broadcast shape.

    Example:
        >>> fl.add(fl.ones(2, 3), fl.tensor([1.0, 2.0, 3.0])).shape
        (2, 3)
    """
    return Add().apply(x, y)


def sub(x, y) -> Tensor:
    """Element-wise ``x - y`` with broadcasting; also ``x - y`` on Tensors.

    Args:
        x, y: Tensors, arrays or numbers whose shapes broadcast together.

    Returns:
        Tensor of the broadcast shape.

    Example:
        >>> fl.sub(1.0, fl.tensor([0.25, 2.0]))
        tensor([ 0.75, -1.  ], dtype=float32)
    """
    return Sub().apply(x, y)


def mul(x, y) -> Tensor:
    """Element-wise ``x * y`` with broadcasting; also ``x * y`` on Tensors.

    Args:
        x, y: Tensors, arrays or numbers whose shapes broadcast together.

    Returns:
        Tensor of the broadcast shape.

    Example:
        >>> fl.mul(fl.tensor([1.0, 2.0]), 3)
        tensor([3., 6.], dtype=float32)
    """
    return Mul().apply(x, y)


def div(x, y) -> Tensor:
    """Element-wise ``x / y`` with broadcasting; also ``x / y`` on Tensors.

    Args:
        x, y: Tensors, arrays or numbers whose shapes broadcast together.

    Returns:
        Tensor of the broadcast shape.

    Example:
        >>> fl.div(1, fl.tensor([2.0, 4.0]))
        tensor([0.5 , 0.25], dtype=float32)
    """
    return Div().apply(x, y)


def pow(x, y) -> Tensor:  # noqa: A001 - the NumPy/PyTorch name
    """Element-wise ``x ** y``; d/dx = y x^(y-1), d/dy = x^y ln x. Also ``x ** y`` on Tensors.

    Args:
        x: base (Tensor, array or number).
        y: exponent, broadcastable with ``x``. Its gradient is 0 where x == 0 and nan where
            x < 0, as in PyTorch.

    Returns:
        Tensor of the broadcast shape.

    Example:
        >>> fl.tensor([1.0, 2.0, 3.0]) ** 2
        tensor([1., 4., 9.], dtype=float32)
    """
    return Pow().apply(x, y)


def neg(x) -> Tensor:
    """``-x``, element-wise; also unary ``-`` on Tensors.

    Args:
        x: Tensor of any shape.

    Returns:
        Tensor of x's shape.

    Example:
        >>> -fl.tensor([1.0, -2.0])
        tensor([-1.,  2.], dtype=float32)
    """
    return Neg().apply(x)


def exp(x) -> Tensor:
    """``e ** x``, element-wise; d/dx = exp(x).

    Args:
        x: Tensor of any shape.

    Returns:
        Tensor of x's shape.

    Example:
        >>> fl.exp(fl.tensor([0.0]))
        tensor([1.], dtype=float32)
    """
    return Exp().apply(x)


def log(x) -> Tensor:
    """Natural logarithm, element-wise; d/dx = 1/x.

    Args:
        x: Tensor of any shape (positive values).

    Returns:
        Tensor of x's shape.

    Example:
        >>> fl.log(fl.tensor([1.0]))
        tensor([0.], dtype=float32)
    """
    return Log().apply(x)


def sqrt(x) -> Tensor:
    """Square root, element-wise; d/dx = 1 / (2 sqrt(x)).

    Args:
        x: Tensor of any shape (non-negative values).

    Returns:
        Tensor of x's shape.

    Example:
        >>> fl.sqrt(fl.tensor([4.0]))
        tensor([2.], dtype=float32)
    """
    return Sqrt().apply(x)


def abs(x) -> Tensor:  # noqa: A001 - the NumPy name
    """Absolute value, element-wise; d/dx = sign(x) (0 at 0). Also ``abs(x)`` on Tensors.

    Args:
        x: Tensor of any shape.

    Returns:
        Tensor of x's shape.

    Example:
        >>> abs(fl.tensor([-2.0, 3.0]))
        tensor([2., 3.], dtype=float32)
    """
    return Abs().apply(x)


def maximum(x, y) -> Tensor:
    """Element-wise maximum of two broadcastable operands; a tie splits the gradient in half.

    Args:
        x, y: Tensors, arrays or numbers whose shapes broadcast together.

    Returns:
        Tensor of the broadcast shape.

    Example:
        >>> fl.maximum(fl.tensor([-1.0, 2.0]), 0.0)
        tensor([0., 2.], dtype=float32)
    """
    return Maximum().apply(x, y)


def minimum(x, y) -> Tensor:
    """Element-wise minimum of two broadcastable operands; a tie splits the gradient in half.

    Args:
        x, y: Tensors, arrays or numbers whose shapes broadcast together.

    Returns:
        Tensor of the broadcast shape.

    Example:
        >>> fl.minimum(fl.tensor([-1.0, 2.0]), 0.0)
        tensor([-1.,  0.], dtype=float32)
    """
    return Minimum().apply(x, y)


def clip(x, min=None, max=None) -> Tensor:  # noqa: A002 - the NumPy argument names
    """Clamp ``x`` to ``[min, max]`` (either may be None); gradient 1 inside, 0 outside.

    Args:
        x: Tensor of any shape.
        min, max: Python numbers; at least one must be given.

    Returns:
        Tensor of x's shape.

    Example:
        >>> fl.clip(fl.tensor([-2.0, 0.5, 3.0]), 0.0, 1.0)
        tensor([0. , 0.5, 1. ], dtype=float32)
    """
    if min is None and max is None:
        raise ValueError("clip: give at least one of min and max (both are None).")
    return Clip(min, max).apply(x)


def where(condition, x, y) -> Tensor:
    """Elements of ``x`` where ``condition`` is true, else of ``y`` (all broadcast together).

    Args:
        condition: boolean Tensor or array (non-zero counts as true); gets no gradient.
        x, y: Tensors, arrays or numbers.

    Returns:
        Tensor of the shape of all three broadcast together.

    Example:
        >>> t = fl.tensor([-1.0, 2.0])
        >>> fl.where(t > 0, t, 0.0)      # ReLU written by hand
        tensor([0., 2.], dtype=float32)
    """
    if isinstance(condition, Tensor):
        # It gets no gradient, so the graph need not hold it; and a number among x and y then
        # takes x's or y's dtype rather than the boolean condition's.
        condition = condition.data
    return Where().apply(condition, x, y)


def _compare(name):
    def compare(x, y) -> Tensor:
        xd = x.data if isinstance(x, Tensor) else x
        yd = y.data if isinstance(y, Tensor) else y
        _broadcast_check(name, xd, yd)
        xp = get_array_module(xd if hasattr(xd, "shape") else yd)
        return Tensor._wrap(getattr(xp, name)(xd, yd))

    compare.__name__ = name
    compare.__doc__ = f"""Element-wise ``{name}`` comparison: a boolean Tensor with no gradient.

    Args:
        x, y: Tensors, arrays or numbers whose shapes broadcast together.

    Returns:
        Boolean Tensor of the broadcast shape (never part of the graph).

    Example:
        >>> fl.{name}(fl.tensor([1.0, 2.0]), 2.0).dtype
        dtype('bool')
    """
    return compare


equal = _compare("equal")
not_equal = _compare("not_equal")
less = _compare("less")
less_equal = _compare("less_equal")
greater = _compare("greater")
greater_equal = _compare("greater_equal")
