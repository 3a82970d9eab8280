"""Weight penalties added to the loss (``Dense(64, kernel_regularizer="l2")``), as Keras.

A regularizer is called with a weight Tensor and returns a differentiable 0-d Tensor that
the training loop adds to the loss:

- :class:`L1`: ``l1 * sum(|w|)`` (drives weights to exactly zero; sparse models);
- :class:`L2`: ``l2 * sum(w**2)`` (weight decay: its gradient is ``2 * l2 * w``);
- :class:`L1L2`: both;
- :class:`KLSparsity`: the sparse autoencoder's ``beta * sum_j KL(rho || rho_hat_j)``, an
  activity regularizer on a sigmoid layer's outputs.

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

__all__ = ["KLSparsity", "L1", "L1L2", "L2", "Regularizer", "get", "kl_sparsity", "l1", "l1_l2",
           "l2", "serialize"]

_KL_EPSILON = 1e-7  # rho_hat is kept inside [eps, 1 - eps] so the logarithms stay finite


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


class KLSparsity(Regularizer):
    """The sparse autoencoder's penalty ``beta * sum_j KL(rho || rho_hat_j)`` (Ng's lecture notes).

    ``rho_hat_j`` is the mean activation of unit ``j`` over the batch (over every axis but the
    last, so for images the mean per channel), and
    ``KL(rho || r) = rho log(rho / r) + (1 - rho) log((1 - rho) / (1 - r))``, which is 0 at
    ``r = rho`` and grows as a unit is active more (or less) often than ``rho``. It is meant for
    outputs in [0, 1]: use it as the ``activity_regularizer`` of a sigmoid layer.

    How it is scaled: Keras (and fundl's ``Layer``) divides whatever an activity regularizer
    returns by the batch size, because L1/L2 activity penalties are sums over the samples. The
    KL penalty is already a statistic of the whole batch, so calling this object returns it
    multiplied by the batch size ``n``: the loss a layer adds is then exactly
    ``beta * sum_j KL(rho || rho_hat_j)``, whatever the batch size. :meth:`penalty` gives that
    value directly.

    Args:
        rho: the target mean activation, in (0, 1). Default 0.05.
        beta: the weight of the penalty (>= 0). Default 3.0.

    Example:
        >>> h = fl.layers.Dense(64, activation="sigmoid",
        ...                     activity_regularizer=regularizers.KLSparsity(rho=0.05, beta=3.0))
        >>> regularizers.KLSparsity(0.5, 1.0).penalty(fl.tensor([[0.5, 0.5]]))
        tensor(0., dtype=float32)
    """

    def __init__(self, rho=0.05, beta=3.0):
        self.rho = _factor("KLSparsity", "rho", rho)
        if not 0.0 < self.rho < 1.0:
            raise ValueError(f"KLSparsity: rho (the target mean activation) must lie strictly "
                             f"between 0 and 1, got {self.rho!r}.")
        self.beta = _factor("KLSparsity", "beta", beta)

    def penalty(self, activations) -> Tensor:
        """``beta * sum_j KL(rho || rho_hat_j)`` for a batch of activations.

        Args:
            activations: Tensor of shape ``(batch, ..., units)``, values in [0, 1].

        Returns:
            A 0-d Tensor, differentiable with respect to ``activations``.

        Raises:
            ValueError: a 0-d input, or mean activations outside [0, 1] (not a sigmoid output).
        """
        if not isinstance(activations, Tensor):
            activations = Tensor(activations)
        if activations.ndim == 0:
            raise ValueError("KLSparsity: expected activations of shape (batch, ..., units), "
                             "got a 0-d value.")
        axes = tuple(range(activations.ndim - 1))
        rho_hat = activations.mean(axis=axes) if axes else activations
        low, high = float(rho_hat.data.min()), float(rho_hat.data.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"KLSparsity: mean activations must lie in [0, 1] (it compares them with the "
                f"target rho={self.rho}), got values in [{low:.4g}, {high:.4g}] for activations "
                f"of shape {activations.shape}. Use it on a sigmoid layer.")
        r = F.clip(rho_hat, _KL_EPSILON, 1.0 - _KL_EPSILON)
        rho = self.rho
        kl = (rho * math.log(rho) + (1.0 - rho) * math.log(1.0 - rho)) \
            - rho * F.log(r) - (1.0 - rho) * F.log(1.0 - r)
        return kl.sum() * self.beta

    def __call__(self, activations) -> Tensor:
        """The penalty times the batch size (see the class notes on scaling).

        Args:
            activations: Tensor of shape ``(batch, ..., units)``, values in [0, 1].

        Returns:
            A 0-d Tensor: ``batch * beta * sum_j KL(rho || rho_hat_j)``.
        """
        if not isinstance(activations, Tensor):
            activations = Tensor(activations)
        n = activations.shape[0] if activations.ndim else 1
        return self.penalty(activations) * float(n)

    def get_config(self) -> dict:
        return {"rho": self.rho, "beta": self.beta}


l1 = L1
l2 = L2
l1_l2 = L1L2
kl_sparsity = KLSparsity

_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2, "KLSparsity": KLSparsity}
_ALIASES = {"l1": L1, "l2": L2, "l1_l2": L1L2, "kl_sparsity": KLSparsity}


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
        regularizer: an instance of :class:`L1`, :class:`L2`, :class:`L1L2` or
            :class:`KLSparsity`.

    Returns:
        A JSON-safe dict that :func:`get` turns back into an equal regularizer.

    Raises:
        ValueError: a custom regularizer (configs hold names only, never code).

    Example:
        >>> regularizers.serialize(regularizers.L2(0.001))
        {'class_name': 'L2', 'config': {'l2': 0.001}}
    """
    return serialize_object("regularizers", regularizer, _CLASSES)
