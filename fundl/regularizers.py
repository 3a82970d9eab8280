"""Weight penalties added to the loss (``Dense(64, kernel_regularizer="l2")``), as Keras.

A regularizer is called with a weight Tensor and returns a differentiable 0-d Tensor that
the training loop adds to the loss:

- :class:`L1`: ``l1 * sum(|w|)`` (drives weights to exactly zero; sparse models);
- :class:`L2`: ``l2 * sum(w**2)`` (weight decay: its gradient is ``2 * l2 * w``);
- :class:`L1L2`: both.

The lower-case names ``l1``, ``l2`` and ``l1_l2`` are the same classes, as in Keras.

    >>> from fundl import regularizers
    >>> w = fl.tensor([[1.0, -2.0]], requires_grad=True)
    >>> regularizers.L2(0.1)(w)
    tensor(0.5, dtype=float32, creator=Mul)
"""
from __future__ import annotations

import math
import numbers

from . import functional as F
from .tensor import Tensor
from ._lookup import Configurable, get_object, serialize_object

__all__ = ["L1", "L1L2", "L2", "Regularizer", "get", "l1", "l1_l2", "l2", "serialize"]


def _factor(cls_name, arg, value) -> float:
    """A finite, non-negative float penalty factor."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{cls_name}: {arg} must be a number, got {type(value).__name__} {value!r}.")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{cls_name}: {arg} must be a finite number >= 0, got {value!r}.")
    return value


class Regularizer(Configurable):
    """Base class: ``regularizer(weight) -> 0-d Tensor`` to add to the loss.

    Subclasses implement ``__call__``; ``get_config`` returns the constructor arguments
    (JSON-safe) and ``from_config`` rebuilds the regularizer.

    Example:
        >>> class MaxAbs(regularizers.Regularizer):
        ...     def __call__(self, w):
        ...         return fl.abs(w).max() * 0.01
    """

    def __call__(self, weight) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__}.__call__")


class L1L2(Regularizer):
    """The penalty ``l1 * sum(|w|) + l2 * sum(w**2)``.

    Args:
        l1: the L1 factor (>= 0).
        l2: the L2 factor (>= 0).

    Example:
        >>> regularizers.L1L2(l1=0.1, l2=0.1)(fl.tensor([1.0, -2.0]))
        tensor(0.8, dtype=float32)
    """

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor(type(self).__name__, "l1", l1)
        self.l2 = _factor(type(self).__name__, "l2", l2)

    def __call__(self, weight) -> Tensor:
        """The penalty for ``weight`` (a Tensor of any shape) as a 0-d Tensor."""
        penalty = None
        if self.l1:
            penalty = F.abs(weight).sum() * self.l1
        if self.l2:
            term = (weight * weight).sum() * self.l2
            penalty = term if penalty is None else penalty + term
        if penalty is None:  # both factors zero: a constant 0 of the weight's dtype
            penalty = (weight * 0.0).sum()
        return penalty

    def get_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """The L1 penalty ``l1 * sum(|w|)`` (its gradient is ``l1 * sign(w)``).

    Args:
        l1: the factor (>= 0; Keras's default 0.01).

    Example:
        >>> regularizers.L1(0.1)(fl.tensor([1.0, -2.0]))
        tensor(0.3, dtype=float32)
    """

    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self) -> dict:
        return {"l1": self.l1}


class L2(L1L2):
    """The L2 penalty ``l2 * sum(w**2)`` (weight decay; its gradient is ``2 * l2 * w``).

    Args:
        l2: the factor (>= 0; Keras's default 0.01).

    Example:
        >>> regularizers.L2(0.1)(fl.tensor([1.0, -2.0]))
        tensor(0.5, dtype=float32)
    """

    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self) -> dict:
        return {"l2": self.l2}


l1 = L1
l2 = L2
l1_l2 = L1L2

_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}
_ALIASES = {"l1": L1, "l2": L2, "l1_l2": L1L2}


def get(identifier):
    """Resolve a regularizer given by name, class, instance, config dict or function.

    Args:
        identifier: ``"l1"``, ``"l2"``, ``"l1_l2"`` (or ``"L1"``, ...) -> a default instance
            (``"l1_l2"`` gives ``L1L2(0.0, 0.0)`` as in Keras, so set its factors explicitly);
            a class -> a default instance; a ``{"class_name": ..., "config": ...}`` dict (from
            :func:`serialize`); a :class:`Regularizer` or any callable ``fn(weight)`` -> itself;
            None -> None.

    Returns:
        The regularizer.

    Raises:
        ValueError: an unknown name (the message lists the valid ones) or a bad config.
        TypeError: an identifier of another kind.

    Example:
        >>> regularizers.get("l2")
        L2(l2=0.01)
    """
    return get_object("regularizers", identifier, _ALIASES, _CLASSES, Regularizer)


def serialize(regularizer) -> dict:
    """``{"class_name": ..., "config": ...}`` for a built-in regularizer (for layer configs).

    Args:
        regularizer: an instance of :class:`L1`, :class:`L2` or :class:`L1L2`.

    Returns:
        A JSON-safe dict that :func:`get` turns back into an equal regularizer.

    Raises:
        ValueError: a custom regularizer (configs hold names only, never code).

    Example:
        >>> regularizers.serialize(regularizers.L2(0.001))
        {'class_name': 'L2', 'config': {'l2': 0.001}}
    """
    return serialize_object("regularizers", regularizer, _CLASSES)
