"""The names of Keras 3's ``keras.ops`` that fundl lacked: ``square``, ``log1p``, ``expm1``,
``sign``, ``erf``, ``std``, ``cast``, ``one_hot``, ``argmax``/``argmin``, ``shape``, ``norm``,
``convert_to_tensor``/``convert_to_numpy`` (``multiply``, ``subtract``, ``divide``, ``power`` and
``negative`` are aliases of :mod:`fundl.ops.elementwise`'s ops).

``log1p``, ``expm1``, ``sign``, ``erf`` and a floating ``cast`` are ops with their own backward; the
rest compose existing ops or return non-differentiable results (indices, one-hot codes,
shapes), as in Keras.
"""
from __future__ import annotations

import numbers

import numpy

from .. import backend
from ..autograd import Function
from ..backend import get_array_module
from ..tensor import Tensor
from .elementwise import abs as _abs
from .elementwise import div, mul, neg, pow, sqrt, sub
from .modern_activation import erf as _erf_array
from .reduce import _normalize_axis
from .reduce import max as _max
from .reduce import sum as _sum
from .reduce import var as _var

multiply = mul
subtract = sub
divide = div
power = pow
negative = neg


def _tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


class Log1p(Function):
    """ln(1 + x), exact for small x; d/dx = 1 / (1 + x)."""

    def forward(self, x):
        self.save(x)
        return get_array_module(x).log1p(x)

    def backward(self, gy):
        return gy / (1.0 + self.saved[0])


class Expm1(Function):
    """e^x - 1, exact for small x; d/dx = e^x = y + 1."""

    def forward(self, x):
        y = get_array_module(x).expm1(x)
        self.save(y)
        return y

    def backward(self, gy):
        return gy * (self.saved[0] + 1.0)


class Sign(Function):
    """-1, 0 or 1; its gradient is zero everywhere (as in Keras and PyTorch)."""

    def forward(self, x):
        return get_array_module(x).sign(x)

    def backward(self, gy):
        return get_array_module(gy).zeros_like(gy)


class Erf(Function):
    """erf(x); d/dx = 2 / sqrt(pi) exp(-x^2)."""

    def forward(self, x):
        self.save(x)
        return _erf_array(x)

    def backward(self, gy):
        x = self.saved[0]
        return gy * (get_array_module(x).exp(-(x * x)) * 1.1283791670955126)


class Cast(Function):
    """x in another floating dtype; the gradient is cast back to the input's dtype."""

    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        self.save_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return gy.astype(self.save_dtype)


def square(x) -> Tensor:
    """``x * x`` element-wise; d/dx = 2x.

    Args:
        x: Tensor of any shape.

    Returns:
        Tensor of x's shape.

    Example:
        >>> fl.square(fl.tensor([-2.0, 3.0]))
        tensor([4., 9.], dtype=float32)
    """
    x = _tensor(x)
    return mul(x, x)


def log1p(x) -> Tensor:
    """``log(1 + x)``, accurate for small ``x``; d/dx = 1 / (1 + x).

    Args:
        x: Tensor of any shape, values > -1.

    Returns:
        Tensor of x's shape.

    Example:
        >>> fl.log1p(fl.tensor([0.0]))
        tensor([0.], dtype=float32)
    """
    return Log1p().apply(_tensor(x))


def expm1(x) -> Tensor:
    """``exp(x) - 1``, accurate for small ``x``; d/dx = exp(x).

    Args:
        x: Tensor of any shape.

    Returns:
        Tensor of x's shape.

    Example:
        >>> fl.expm1(fl.tensor([0.0]))
        tensor([0.], dtype=float32)
    """
    return Expm1().apply(_tensor(x))


def sign(x) -> Tensor:
    """-1 where x < 0, 0 where x == 0, 1 where x > 0; the gradient is zero.

    Args:
        x: Tensor of any shape.

    Returns:
        Tensor of x's shape and dtype.

    Example:
        >>> fl.sign(fl.tensor([-2.0, 0.0, 3.0]))
        tensor([-1.,  0.,  1.], dtype=float32)
    """
    return Sign().apply(_tensor(x))


def erf(x) -> Tensor:
    """The error function ``erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt``, differentiable.

    Args:
        x: Tensor of any shape.

    Returns:
        Tensor of x's shape, values in (-1, 1).

    Example:
        >>> fl.erf(fl.tensor([0.0]))
        tensor([0.], dtype=float32)
    """
    return Erf().apply(_tensor(x))


def std(x, axis=None, keepdims=False) -> Tensor:
    """Standard deviation (population, ``ddof=0``, as Keras's ``ops.std``), differentiable.

    Args:
        x: Tensor.
        axis: an int, a tuple of ints, or None for all elements.
        keepdims: keep the reduced axes with size 1.

    Returns:
        Tensor: ``sqrt(var(x, axis))``.

    Example:
        >>> fl.std(fl.tensor([1.0, 3.0]))
        tensor(1., dtype=float32)
    """
    return sqrt(_var(_tensor(x), axis=axis, keepdims=keepdims))


def cast(x, dtype) -> Tensor:
    """``x`` converted to ``dtype`` (Keras's ``ops.cast``).

    Between floating dtypes the result is differentiable (the gradient comes back in the
    input's dtype); a cast to an integer or boolean dtype is not (no gradient flows, as in
    Keras).

    Args:
        x: Tensor, array or number.
        dtype: the target dtype (``"float32"``, ``"int64"``, NumPy dtypes, ...).

    Returns:
        Tensor of x's shape and ``dtype`` (``x`` itself when it already has it).

    Example:
        >>> fl.cast(fl.tensor([1.7, -0.2]), "int32")
        tensor([1, 0], dtype=int32)
    """
    x = _tensor(x)
    try:
        dtype = numpy.dtype(dtype)
    except TypeError:
        raise TypeError(f"cast: {dtype!r} is not a dtype.") from None
    if x.dtype == dtype:
        return x
    if dtype.kind == "f" and x.dtype.kind == "f":
        return Cast(dtype).apply(x)
    return Tensor(x.data.astype(dtype))


def one_hot(x, num_classes, axis=-1, dtype=None) -> Tensor:
    """One-hot codes of integer labels (Keras's ``ops.one_hot``); not differentiable.

    Args:
        x: integer labels (Tensor, array or list), any shape. Labels outside
            ``[0, num_classes)`` give all-zero rows, as in Keras.
        num_classes: the number of classes.
        axis: where the new class axis goes. Default -1 (last).
        dtype: the output dtype; default float32 (fundl's default dtype).

    Returns:
        Tensor of shape ``x.shape`` with a ``num_classes`` axis inserted at ``axis``.

    Example:
        >>> fl.one_hot(fl.tensor([0, 2]), 3)
        tensor([[1., 0., 0.],
                [0., 0., 1.]], dtype=float32)
    """
    x = _tensor(x)
    if x.dtype.kind not in "iub":
        raise TypeError(f"one_hot: labels must be integers, got dtype {x.dtype}. Cast them with "
                        "fl.cast(x, 'int64').")
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) \
            or num_classes < 1:
        raise ValueError(f"one_hot: num_classes must be a positive int, got {num_classes!r}.")
    ndim = x.ndim + 1
    if not -ndim <= axis < ndim:
        raise ValueError(f"one_hot: axis {axis} is out of range for an output of rank {ndim}.")
    xp = get_array_module(x.data)
    dtype = numpy.dtype(dtype or backend.get_default_dtype())
    codes = (x.data[..., None] == xp.arange(int(num_classes))).astype(dtype)
    return Tensor(xp.moveaxis(codes, -1, axis % ndim))


def _arg_extreme(name, x, axis, keepdims):
    x = _tensor(x)
    xp = get_array_module(x.data)
    if axis is None:
        i = getattr(xp, name)(x.data.reshape(-1))
        out = i.reshape((1,) * x.ndim) if keepdims else i
    else:
        (a,) = _normalize_axis(name, axis, x.ndim) or (0,)
        out = getattr(xp, name)(x.data, axis=a)
        if keepdims:
            out = xp.expand_dims(out, a)
    return Tensor(xp.asarray(out, dtype=numpy.int64))


def argmax(x, axis=None, keepdims=False) -> Tensor:
    """Indices of the largest values along ``axis`` (first one on ties); not differentiable.

    Args:
        x: Tensor or array.
        axis: an int, or None for the index into the flattened array.
        keepdims: keep ``axis`` with size 1.

    Returns:
        int64 Tensor.

    Example:
        >>> fl.argmax(fl.tensor([[1.0, 3.0], [5.0, 2.0]]), axis=-1)
        tensor([1, 0])
    """
    return _arg_extreme("argmax", x, axis, keepdims)


def argmin(x, axis=None, keepdims=False) -> Tensor:
    """Indices of the smallest values along ``axis`` (first one on ties); not differentiable.

    Args:
        x: Tensor or array.
        axis: an int, or None for the index into the flattened array.
        keepdims: keep ``axis`` with size 1.

    Returns:
        int64 Tensor.

    Example:
        >>> fl.argmin(fl.tensor([[1.0, 3.0], [5.0, 2.0]]), axis=-1)
        tensor([0, 1])
    """
    return _arg_extreme("argmin", x, axis, keepdims)


def shape(x) -> tuple:
    """The shape of a Tensor, array or symbolic tensor as a tuple (Keras's ``ops.shape``).

    Example:
        >>> fl.shape(fl.zeros(2, 3))
        (2, 3)
    """
    s = getattr(x, "shape", None)
    if s is None:
        s = numpy.shape(x)
    return tuple(s)


def norm(x, ord=None, axis=None, keepdims=False) -> Tensor:  # noqa: A002 - NumPy's name
    """Vector norms (Keras's ``ops.norm`` for vectors), differentiable.

    Args:
        x: Tensor.
        ord: None or 2 (Euclidean), 1 (sum of absolute values) or ``inf`` (largest absolute
            value). Matrix norms are not supported.
        axis: an int, or None for the norm of the flattened tensor.
        keepdims: keep ``axis`` with size 1.

    Returns:
        Tensor: the norms.

    Raises:
        ValueError: another ``ord``, or a tuple of axes (a matrix norm).

    Example:
        >>> fl.norm(fl.tensor([3.0, 4.0]))
        tensor(5., dtype=float32)
    """
    x = _tensor(x)
    if isinstance(axis, (tuple, list)):
        if len(axis) != 1:
            raise ValueError(f"norm: only vector norms (one axis) are supported, got axis={axis}.")
        (axis,) = axis
    if ord is None or ord == 2:
        return sqrt(_sum(mul(x, x), axis=axis, keepdims=keepdims))
    if ord == 1:
        return _sum(_abs(x), axis=axis, keepdims=keepdims)
    if ord in (numpy.inf, "inf"):
        return _max(_abs(x), axis=axis, keepdims=keepdims)
    raise ValueError(f"norm: ord must be None, 1, 2 or inf (vector norms), got {ord!r}.")


def convert_to_tensor(x, dtype=None) -> Tensor:
    """``x`` as a fundl Tensor (Keras's ``ops.convert_to_tensor``); a Tensor of the right dtype
    is returned as it is.

    Args:
        x: array-like, number or Tensor.
        dtype: an optional dtype.

    Returns:
        Tensor.

    Example:
        >>> fl.convert_to_tensor([1, 2], dtype="float32")
        tensor([1., 2.], dtype=float32)
    """
    if isinstance(x, Tensor):
        return x if dtype is None else cast(x, dtype)
    return Tensor(x, dtype=dtype)


def convert_to_numpy(x) -> numpy.ndarray:
    """``x`` as a NumPy array on the host (Keras's ``ops.convert_to_numpy``).

    Example:
        >>> fl.convert_to_numpy(fl.tensor([1.0]))
        array([1.], dtype=float32)
    """
    data = x.data if isinstance(x, Tensor) else x
    if hasattr(data, "shape") and not isinstance(data, numpy.ndarray):  # a CuPy array
        return backend.to_numpy(data)
    return numpy.asarray(data)

