"""Element-wise arithmetic with NumPy broadcasting.

Backward passes return gradients of the broadcast shape; the engine sums them back to
each input's shape (``autograd.unbroadcast``), so no op here reduces anything.
"""
from __future__ import annotations

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


class Add(_Binary):
    def forward(self, x, y):
        return x + y

    def backward(self, gy):
        return gy, gy


class Sub(_Binary):
    def forward(self, x, y):
        return x - y

    def backward(self, gy):
        return gy, (-gy if self.needs_grad[1] else None)


class Mul(_Binary):
    def forward(self, x, y):
        self.save(x, y)
        return x * y

    def backward(self, gy):
        x, y = self.saved
        return (gy * y if self.needs_grad[0] else None), (gy * x if self.needs_grad[1] else None)


class Div(_Binary):
    def forward(self, x, y):
        self.save(x, y)
        return x / y

    def backward(self, gy):
        x, y = self.saved
        gx = gy / y
        return gx, (-gx * x / y if self.needs_grad[1] else None)


class Pow(_Binary):
    """x ** y; d/dx = y x^(y-1), d/dy = x^y log x."""

    def forward(self, x, y):
        z = x ** y
        self.save(x, y, z)
        return z

    def backward(self, gy):
        x, y, z = self.saved
        xp = get_array_module(x)
        gx = gy * y * x ** (y - 1) if self.needs_grad[0] else None
        gexp = None
        if self.needs_grad[1]:
            # x^y log x, taking 0 where x == 0 (the limit for y > 0, as PyTorch does)
            gexp = gy * z * xp.log(xp.where(x > 0, x, 1))
        return gx, gexp


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Exp(Function):
    def forward(self, x):
        y = get_array_module(x).exp(x)
        self.save(y)
        return y

    def backward(self, gy):
        return gy * self.saved[0]


class Log(Function):
    def forward(self, x):
        self.save(x)
        return get_array_module(x).log(x)

    def backward(self, gy):
        return gy / self.saved[0]


class Sqrt(Function):
    def forward(self, x):
        y = get_array_module(x).sqrt(x)
        self.save(y)
        return y

    def backward(self, gy):
        return gy / (2 * self.saved[0])


class Abs(Function):
    def forward(self, x):
        self.save(x)
        return abs(x)

    def backward(self, gy):
        return gy * get_array_module(gy).sign(self.saved[0])


class Maximum(_Binary):
    """Element-wise maximum; a tie sends half the gradient to each side (as PyTorch)."""

    def forward(self, x, y):
        self.save(x, y)
        return get_array_module(x).maximum(x, y)

    def backward(self, gy):
        x, y = self.saved
        return _pick(gy, x, y, x > y)


class Minimum(_Binary):
    """Element-wise minimum; a tie sends half the gradient to each side (as PyTorch)."""

    def forward(self, x, y):
        self.save(x, y)
        return get_array_module(x).minimum(x, y)

    def backward(self, gy):
        x, y = self.saved
        return _pick(gy, x, y, x < y)


def _pick(gy, x, y, first):
    xp = get_array_module(gy)
    share = xp.where(first, 1.0, xp.where(x == y, 0.5, 0.0)).astype(gy.dtype, copy=False)
    return gy * share, gy * (1 - share)


class Clip(Function):
    """Clamp to [lo, hi]; the gradient passes where lo <= x <= hi."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def forward(self, x):
        self.save(x)
        return get_array_module(x).clip(x, self.lo, self.hi)

    def backward(self, gy):
        (x,) = self.saved
        keep = True
        if self.lo is not None:
            keep = x >= self.lo
        if self.hi is not None:
            keep = keep & (x <= self.hi)
        return gy * keep


class Where(Function):
    """``condition ? x : y``; the condition gets no gradient."""

    def check(self, cond, x, y):
        _broadcast_check("Where", x, y)
        _broadcast_check("Where", cond, x)

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
    """Element-wise ``x + y`` with broadcasting."""
    return Add().apply(x, y)


def sub(x, y) -> Tensor:
    """Element-wise ``x - y`` with broadcasting."""
    return Sub().apply(x, y)


def mul(x, y) -> Tensor:
    """Element-wise ``x * y`` with broadcasting."""
    return Mul().apply(x, y)


def div(x, y) -> Tensor:
    """Element-wise ``x / y`` with broadcasting."""
    return Div().apply(x, y)


def pow(x, y) -> Tensor:  # noqa: A001 - the NumPy/PyTorch name
    """Element-wise ``x ** y``; d/dx = y x^(y-1), d/dy = x^y ln x."""
    return Pow().apply(x, y)


def neg(x) -> Tensor:
    """``-x``."""
    return Neg().apply(x)


def exp(x) -> Tensor:
    """``e ** x``; d/dx = exp(x)."""
    return Exp().apply(x)


def log(x) -> Tensor:
    """Natural logarithm; d/dx = 1/x."""
    return Log().apply(x)


def sqrt(x) -> Tensor:
    """Square root; d/dx = 1 / (2 sqrt(x))."""
    return Sqrt().apply(x)


def abs(x) -> Tensor:  # noqa: A001 - the NumPy name
    """Absolute value; d/dx = sign(x) (0 at 0)."""
    return Abs().apply(x)


def maximum(x, y) -> Tensor:
    """Element-wise maximum of two broadcastable operands."""
    return Maximum().apply(x, y)


def minimum(x, y) -> Tensor:
    """Element-wise minimum of two broadcastable operands."""
    return Minimum().apply(x, y)


def clip(x, min=None, max=None) -> Tensor:  # noqa: A002 - the NumPy argument names
    """Clamp ``x`` to ``[min, max]`` (either may be None); gradient 1 inside, 0 outside.

    Example:
        >>> fl.clip(fl.tensor([-2.0, 0.5, 3.0]), 0.0, 1.0)
        tensor([0. , 0.5, 1. ], dtype=float32)
    """
    if min is None and max is None:
        raise ValueError("clip: give at least one of min and max.")
    return Clip(min, max).apply(x)


def where(condition, x, y) -> Tensor:
    """Elements of ``x`` where ``condition`` is true, else of ``y`` (all broadcast together).

    Example:
        >>> fl.where(t > 0, t, 0.0)      # ReLU written by hand
    """
    return Where().apply(condition, x, y)


def _compare(name):
    def compare(x, y) -> Tensor:
        xd = x.data if isinstance(x, Tensor) else x
        yd = y.data if isinstance(y, Tensor) else y
        xp = get_array_module(xd if hasattr(xd, "shape") else yd)
        return Tensor._wrap(getattr(xp, name)(xd, yd))

    compare.__name__ = name
    compare.__doc__ = f"Element-wise ``{name}`` comparison; a boolean tensor with no gradient."
    return compare


equal = _compare("equal")
not_equal = _compare("not_equal")
less = _compare("less")
less_equal = _compare("less_equal")
greater = _compare("greater")
greater_equal = _compare("greater_equal")
