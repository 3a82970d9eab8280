"""Ops that move elements around without arithmetic: reshape, transpose, indexing, joining, padding."""
from __future__ import annotations

import numbers

from ..autograd import Function
from ..backend import get_array_module
from ..tensor import Tensor
from .reduce import _normalize_axis


class Reshape(Function):
    def __init__(self, shape):
        self.shape = shape

    def check(self, x):
        shape = self.shape
        known = 1
        for n in shape:
            if n != -1:
                known *= n
        bad = shape.count(-1) > 1 or (-1 not in shape and known != x.size) or (
            -1 in shape and (known == 0 or x.size % known))
        if bad:
            raise ValueError(
                f"Reshape: cannot reshape an input of shape {x.shape} ({x.size} elements) "
                f"into shape {shape}.")

    def forward(self, x):
        self.save(x.shape)
        return x.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.saved[0])


class Transpose(Function):
    def __init__(self, axes=None):
        self.axes = axes

    def check(self, x):
        n = x.ndim
        if self.axes is not None and sorted(a % n if -n <= a < n else n for a in self.axes) != list(range(n)):
            raise ValueError(f"Transpose: axes {self.axes} are not a permutation of the "
                             f"{x.ndim} axes of an input of shape {x.shape}.")

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        if self.axes is None:
            return gy.transpose()
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a % len(self.axes)] = i
        return gy.transpose(inverse)


def _unwrap_index(index):
    """Replace Tensors inside an index by their arrays."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


def _no_repeats(index):
    """True when ``x[index]`` cannot pick an element twice (no integer arrays), so the
    gradient can be assigned instead of accumulated."""
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice)) or i is None or i is Ellipsis
               or (hasattr(i, "dtype") and i.dtype == bool) for i in items)


class GetItem(Function):
    """``x[index]`` with ints, slices, None, Ellipsis, integer arrays and boolean masks."""

    def __init__(self, index):
        self.index = _unwrap_index(index)

    def forward(self, x):
        try:
            y = x[self.index]
        except IndexError as e:
            raise IndexError(f"GetItem: index {self.index!r} is invalid for an input of shape "
                             f"{x.shape}: {e}") from e
        self.save(x.shape, x.dtype)
        return y

    def backward(self, gy):
        shape, dtype = self.saved
        xp = get_array_module(gy)
        gx = xp.zeros(shape, dtype=gy.dtype)
        if _no_repeats(self.index):
            gx[self.index] = gy
        else:  # integer arrays may repeat an element: accumulate, don't overwrite
            xp.add.at(gx, self.index, gy)
        return gx


class Concatenate(Function):
    def __init__(self, axis=0):
        self.axis = axis

    def check(self, *xs):
        if not xs:
            raise ValueError("Concatenate: needs at least one input.")
        ref = xs[0]
        if ref.ndim == 0:
            raise ValueError("Concatenate: zero-dimensional inputs cannot be concatenated; use stack.")
        axis = _normalize_axis("Concatenate", self.axis, ref.ndim)[0]
        for x in xs[1:]:
            if x.ndim != ref.ndim or any(a != b for i, (a, b) in enumerate(zip(x.shape, ref.shape))
                                         if i != axis):
                raise ValueError(
                    f"Concatenate: all inputs must have the same shape except along axis {self.axis}; "
                    f"got shapes {[t.shape for t in xs]}.")
        self.axis = axis

    def forward(self, *xs):
        self.save([x.shape[self.axis] for x in xs])
        return get_array_module(xs[0]).concatenate(xs, axis=self.axis)

    def backward(self, gy):
        (sizes,) = self.saved
        out = []
        start = 0
        for n in sizes:
            index = [slice(None)] * gy.ndim
            index[self.axis] = slice(start, start + n)
            out.append(gy[tuple(index)])
            start += n
        return tuple(out)


class Stack(Function):
    def __init__(self, axis=0):
        self.axis = axis

    def check(self, *xs):
        if not xs:
            raise ValueError("Stack: needs at least one input.")
        if any(x.shape != xs[0].shape for x in xs):
            raise ValueError(f"Stack: all inputs must have the same shape; got shapes "
                             f"{[x.shape for x in xs]}.")
        self.axis = _normalize_axis("Stack", self.axis, xs[0].ndim + 1)[0]

    def forward(self, *xs):
        return get_array_module(xs[0]).stack(xs, axis=self.axis)

    def backward(self, gy):
        xp = get_array_module(gy)
        return tuple(xp.moveaxis(gy, self.axis, 0))


def _pad_pairs(pw, ndim):
    """``pad_width`` in numpy.pad's forms (n, (n,), (before, after), ((b, a),), one pair per axis)
    as one (before, after) pair per axis; None when it has none of those forms."""
    if isinstance(pw, numbers.Integral):
        return ((int(pw), int(pw)),) * ndim
    try:
        pw = tuple(pw)
        if all(isinstance(p, numbers.Integral) for p in pw):
            pw = (pw,)
        pairs = tuple(tuple(int(v) for v in p) for p in pw)
    except TypeError:
        return None
    pairs = tuple(p * 2 if len(p) == 1 else p for p in pairs)
    return pairs * ndim if len(pairs) == 1 else pairs


class Pad(Function):
    """Constant padding; ``pad_width`` as in ``numpy.pad``."""

    def __init__(self, pad_width, constant_values=0):
        self.pad_width = pad_width
        self.constant_values = constant_values

    def check(self, x):
        pw = _pad_pairs(self.pad_width, x.ndim)
        if pw is None or len(pw) != x.ndim or any(len(p) != 2 or min(p) < 0 for p in pw):
            raise ValueError(f"Pad: pad_width {self.pad_width} does not fit an input of shape "
                             f"{x.shape}; give one (before, after) pair of non-negative ints per axis.")
        self.pad_width = pw

    def forward(self, x):
        return get_array_module(x).pad(x, self.pad_width, mode="constant",
                                       constant_values=self.constant_values)

    def backward(self, gy):
        return gy[tuple(slice(b, gy.shape[i] - a) for i, (b, a) in enumerate(self.pad_width))]


class BroadcastTo(Function):
    def __init__(self, shape):
        self.shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)

    def check(self, x):
        lead = len(self.shape) - x.ndim
        if lead < 0 or any(a != b and a != 1 for a, b in zip(x.shape, self.shape[lead:])):
            raise ValueError(f"BroadcastTo: cannot broadcast shape {x.shape} to {self.shape}.")

    def forward(self, x):
        return get_array_module(x).broadcast_to(x, self.shape)

    def backward(self, gy):
        return gy  # the engine sums it back to the input's shape


class ExpandDims(Function):
    def __init__(self, axis):
        self.axis = axis

    def check(self, x):
        axes = self.axis if isinstance(self.axis, (tuple, list)) else (self.axis,)
        n = x.ndim + len(axes)
        if any(not -n <= a < n for a in axes):
            raise ValueError(f"ExpandDims: axis {self.axis} is out of range for an input of shape "
                             f"{x.shape} (valid: {-n} to {n - 1}).")

    def forward(self, x):
        self.save(x.shape)
        return get_array_module(x).expand_dims(x, self.axis)

    def backward(self, gy):
        return gy.reshape(self.saved[0])


class Squeeze(Function):
    def __init__(self, axis=None):
        self.axis = axis

    def check(self, x):
        if self.axis is not None:
            for a in _normalize_axis("Squeeze", self.axis, x.ndim):
                if x.shape[a] != 1:
                    raise ValueError(f"Squeeze: axis {a} of an input of shape {x.shape} has size "
                                     f"{x.shape[a]}, not 1.")

    def forward(self, x):
        self.save(x.shape)
        return x.squeeze(self.axis)

    def backward(self, gy):
        return gy.reshape(self.saved[0])


# -- public wrappers ----------------------------------------------------------------------

def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


def reshape(x, *shape) -> Tensor:
    """A tensor with the same elements in a new shape (one axis may be -1).

    Example:
        >>> fl.arange(6.0).reshape(2, 3).shape
        (2, 3)
    """
    return Reshape(_shape_arg(shape)).apply(x)


def transpose(x, *axes) -> Tensor:
    """Permute axes (reverse them when none are given), like ``numpy.transpose``."""
    axes = _shape_arg(axes) if axes and axes[0] is not None else None
    return Transpose(axes).apply(x)


def getitem(x, index) -> Tensor:
    """``x[index]``: ints, slices, None, Ellipsis, integer arrays, boolean masks."""
    return GetItem(index).apply(x)


def concatenate(tensors, axis=0) -> Tensor:
    """Join tensors along an existing axis; the shapes must agree elsewhere."""
    return Concatenate(axis).apply(*tensors)


def stack(tensors, axis=0) -> Tensor:
    """Join same-shaped tensors along a new axis."""
    return Stack(axis).apply(*tensors)


def pad(x, pad_width, constant_values=0) -> Tensor:
    """Pad with a constant; ``pad_width`` is an int, a (before, after) pair, or one pair per axis."""
    return Pad(pad_width, constant_values).apply(x)


def broadcast_to(x, shape) -> Tensor:
    """Broadcast to ``shape`` (a view); the gradient is summed back."""
    return BroadcastTo(shape).apply(x)


def expand_dims(x, axis) -> Tensor:
    """Insert a size-1 axis at ``axis``."""
    return ExpandDims(axis).apply(x)


def squeeze(x, axis=None) -> Tensor:
    """Remove size-1 axes (all of them, or those in ``axis``)."""
    return Squeeze(axis).apply(x)
