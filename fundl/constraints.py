"""Weight constraints: projections applied to a weight after each optimizer update, as Keras.

``Dense(64, kernel_constraint=MaxNorm(3))`` keeps every column of the kernel (the weights
into one unit) within an L2 norm of 3 (the max-norm regularisation of the dropout paper):
after the optimizer updates the kernel it replaces it by ``constraint(kernel)``.

- :class:`MaxNorm`: rescales slices whose L2 norm exceeds ``max_value``;
- :class:`NonNeg`: zeroes the negative entries;
- :class:`UnitNorm`: rescales slices to unit L2 norm;
- :class:`MinMaxNorm`: rescales slices into ``[min_value, max_value]`` (with a ``rate``).

The norms are taken along ``axis`` (Keras's default 0: the input axis of a Dense kernel
``(in, units)``; use ``axis=[0, 1, 2]`` for a ``Conv2D`` kernel ``(kh, kw, in, filters)``).
The lower-case names ``max_norm``, ``non_neg``, ``unit_norm`` and ``min_max_norm`` are the
same classes, as in Keras.

The contract with the optimizers: a weight Tensor carries its constraint as the attribute
``constraint`` (set by ``Layer.add_weight(..., constraint=...)``); after updating the weight
the optimizer writes ``constraint(w.data)`` back into it. A constraint is called with a raw
array (NumPy or CuPy) and returns an array of the same shape, dtype and device; called with
a Tensor it returns a Tensor (no gradient is recorded: it is a projection, not an op).

    >>> from fundl import constraints
    >>> constraints.NonNeg()(np.array([1.0, -2.0]))
    array([1., 0.])
    >>> constraints.MaxNorm(1.0)(np.array([[3.0], [4.0]])).ravel()     # norm 5 -> 1
    array([0.6, 0.8])
"""
from __future__ import annotations

import math
import numbers

from . import backend
from .tensor import Tensor
from ._lookup import Configurable, get_object, serialize_object

__all__ = [
    "Constraint", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm", "get", "max_norm",
    "min_max_norm", "non_neg", "serialize", "unit_norm",
]

_EPSILON = 1e-7  # Keras's backend.epsilon(): keeps an all-zero slice at zero instead of NaN


def _number(cls_name, arg, value, low=0.0, high=math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{cls_name}: {arg} must be a number, got {type(value).__name__} "
                        f"{value!r}.")
    value = float(value)
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{cls_name}: {arg} must be a finite number in [{low}, {high}], got "
                         f"{value!r}.")
    return value


def _axis(cls_name, axis):
    """An int, or a tuple of ints (stored as a list in configs: JSON has no tuples)."""
    if isinstance(axis, bool):
        raise TypeError(f"{cls_name}: axis must be an int or a list of ints, got {axis!r}.")
    if isinstance(axis, numbers.Integral):
        return int(axis)
    if isinstance(axis, (list, tuple)) and axis and all(
            isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in axis):
        return tuple(int(a) for a in axis)
    raise TypeError(f"{cls_name}: axis must be an int or a non-empty list of ints, got {axis!r}.")


class Constraint(Configurable):
    """Base class: ``constraint(w) -> w'`` projects a weight after each optimizer update.

    Subclasses implement :meth:`project` on a raw array (use
    ``backend.get_array_module(w)`` for NumPy/CuPy); ``__call__`` accepts a raw array or a
    Tensor and returns the same kind. ``get_config`` returns the constructor arguments.

    Example:
        >>> class Clip(constraints.Constraint):
        ...     def __init__(self, c=1.0):
        ...         self.c = c
        ...     def project(self, w):
        ...         return w.clip(-self.c, self.c)
        ...     def get_config(self):
        ...         return {"c": self.c}
    """

    def project(self, w):
        """The projected weight, for a raw array ``w`` (same shape, dtype and device)."""
        return w

    def __call__(self, w):
        """``project`` on a raw array, or on a Tensor's data (then wrapped in a new Tensor)."""
        if isinstance(w, Tensor):
            return Tensor._wrap(self.project(w.data))
        return self.project(w)

    def _check_axis(self, w):
        axes = self.axis if isinstance(self.axis, tuple) else (self.axis,)
        if any(not -w.ndim <= a < w.ndim for a in axes):
            raise ValueError(f"{type(self).__name__}: axis {self.axis} is out of range for a "
                             f"weight of shape {tuple(w.shape)}; for a Conv2D kernel "
                             "(kh, kw, in, filters) use axis=[0, 1, 2].")

    def _norms(self, w):
        self._check_axis(w)
        xp = backend.get_array_module(w)
        return xp.sqrt((w * w).sum(axis=self.axis, keepdims=True))

    def get_config(self) -> dict:
        return {}


class MaxNorm(Constraint):
    """Rescales each slice whose L2 norm (along ``axis``) exceeds ``max_value`` down to it.

    Args:
        max_value: the largest norm allowed (Keras's default 2).
        axis: the axis (or list of axes) the norm runs over; 0 for a Dense kernel
            ``(in, units)`` constrains the weights into each unit.

    Formula: ``w * clip(n, 0, max_value) / (eps + n)`` with ``n = ||w||_axis``.

    Example:
        >>> Dense(64, kernel_constraint=constraints.MaxNorm(3.0))
    """

    def __init__(self, max_value=2.0, axis=0):
        self.max_value = _number(type(self).__name__, "max_value", max_value)
        self.axis = _axis(type(self).__name__, axis)

    def project(self, w):
        xp = backend.get_array_module(w)
        norms = self._norms(w)
        desired = xp.clip(norms, 0, self.max_value)
        return (w * (desired / (_EPSILON + norms))).astype(w.dtype, copy=False)

    def get_config(self) -> dict:
        return {"max_value": self.max_value,
                "axis": list(self.axis) if isinstance(self.axis, tuple) else self.axis}


class NonNeg(Constraint):
    """Zeroes the negative entries of the weight (non-negative weights).

    Example:
        >>> constraints.NonNeg()(np.array([0.5, -1.0]))
        array([0.5, 0. ])
    """

    def project(self, w):
        return (w * (w >= 0)).astype(w.dtype, copy=False)


class UnitNorm(Constraint):
    """Rescales each slice (along ``axis``) to L2 norm 1.

    Args:
        axis: the axis (or list of axes) the norm runs over (Keras's default 0).

    Formula: ``w / (eps + ||w||_axis)``.

    Example:
        >>> constraints.UnitNorm()(np.array([[3.0], [4.0]])).ravel()
        array([0.6, 0.8])
    """

    def __init__(self, axis=0):
        self.axis = _axis(type(self).__name__, axis)

    def project(self, w):
        return (w / (_EPSILON + self._norms(w))).astype(w.dtype, copy=False)

    def get_config(self) -> dict:
        return {"axis": list(self.axis) if isinstance(self.axis, tuple) else self.axis}


class MinMaxNorm(Constraint):
    """Rescales each slice's L2 norm (along ``axis``) into ``[min_value, max_value]``.

    Args:
        min_value: the smallest norm allowed.
        max_value: the largest norm allowed.
        rate: in [0, 1]; 1 projects at once, a smaller rate moves the norm part of the way:
            ``rate * clip(n, min_value, max_value) + (1 - rate) * n``.
        axis: the axis (or list of axes) the norm runs over (Keras's default 0).

    Example:
        >>> constraints.MinMaxNorm(1.0, 2.0)(np.array([[0.3], [0.4]])).ravel()
        array([0.6, 0.8])
    """

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        name = type(self).__name__
        self.min_value = _number(name, "min_value", min_value)
        self.max_value = _number(name, "max_value", max_value)
        if self.min_value > self.max_value:
            raise ValueError(f"{name}: min_value ({self.min_value}) must not exceed max_value "
                             f"({self.max_value}).")
        self.rate = _number(name, "rate", rate, 0.0, 1.0)
        self.axis = _axis(name, axis)

    def project(self, w):
        xp = backend.get_array_module(w)
        norms = self._norms(w)
        desired = (self.rate * xp.clip(norms, self.min_value, self.max_value)
                   + (1 - self.rate) * norms)
        return (w * (desired / (_EPSILON + norms))).astype(w.dtype, copy=False)

    def get_config(self) -> dict:
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": list(self.axis) if isinstance(self.axis, tuple) else self.axis}


max_norm = MaxNorm
non_neg = NonNeg
unit_norm = UnitNorm
min_max_norm = MinMaxNorm

_CLASSES = {"MaxNorm": MaxNorm, "NonNeg": NonNeg, "UnitNorm": UnitNorm,
            "MinMaxNorm": MinMaxNorm}
_ALIASES = {"max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm,
            "min_max_norm": MinMaxNorm}


def get(identifier):
    """Resolve a constraint given by name, class, instance, config dict or function.

    Args:
        identifier: ``"max_norm"``, ``"non_neg"``, ``"unit_norm"``, ``"min_max_norm"`` (or the
            class names) -> a default instance; a class -> a default instance; a
            ``{"class_name": ..., "config": ...}`` dict (from :func:`serialize`); a
            :class:`Constraint` or any callable ``fn(array) -> array`` -> itself; None -> None.

    Returns:
        The constraint.

    Raises:
        ValueError: an unknown name (the message lists the valid ones) or a bad config.
        TypeError: an identifier of another kind.

    Example:
        >>> constraints.get("non_neg")
        NonNeg()
    """
    return get_object("constraints", identifier, _ALIASES, _CLASSES, Constraint)


def serialize(constraint) -> dict:
    """``{"class_name": ..., "config": ...}`` for a built-in constraint (for layer configs).

    Args:
        constraint: an instance of one of this module's classes.

    Returns:
        A JSON-safe dict that :func:`get` turns back into an equal constraint.

    Raises:
        ValueError: a custom constraint (configs hold names only, never code).

    Example:
        >>> constraints.serialize(constraints.MaxNorm(3.0))
        {'class_name': 'MaxNorm', 'config': {'max_value': 3.0, 'axis': 0}}
    """
    return serialize_object("constraints", constraint, _CLASSES)
