"""Activation layers with parameters: ReLU, LeakyReLU, PReLU, ELU and Softmax (Keras 3's).

``Activation("relu")`` covers the plain functions; these layers add the arguments Keras gives
them (a capped ReLU, a leaky slope, a learned slope per channel, a softmax axis and mask).

Example:
    >>> model = Sequential([Dense(64, input_shape=(20,)), LeakyReLU(0.1), Dense(10), Softmax()])
"""
from __future__ import annotations

import numbers

import numpy

from .. import backend, constraints, initializers, regularizers
from .. import functional as F
from ..tensor import Tensor
from ._weights import add_weight_with_constraint as _add_weight
from .base import Layer, deserialize_object, serialize_object


def _real(who, name, value, minimum=None, allow_none=False):
    """A finite float (>= ``minimum`` when given), or None when allowed."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
            not numpy.isfinite(value):
        raise TypeError(f"{who}: {name} must be a finite number"
                        f"{' or None' if allow_none else ''}, got {value!r}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"{who}: {name} must be >= {minimum}, got {value!r}.")
    return float(value)


class ReLU(Layer):
    """The rectified linear unit with Keras's options: a cap, a leaky slope and a threshold.

    ``f(x) = max_value`` for ``x >= max_value``; ``x`` for ``threshold <= x < max_value``;
    ``negative_slope * (x - threshold)`` below the threshold.

    Args:
        max_value: the largest output (None: no cap; 6.0 gives ReLU6).
        negative_slope: the slope below the threshold (>= 0; 0 is the plain ReLU).
        threshold: where the unit switches from the slope to the identity.

    No weights; input and output shapes are equal.

    Example:
        >>> ReLU(max_value=6.0)(fl.tensor([[-1.0, 3.0, 8.0]]))
        tensor([[0., 3., 6.]], dtype=float32)
    """

    supports_masking = True

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.max_value = _real("ReLU", "max_value", max_value, 0.0, allow_none=True)
        self.negative_slope = _real("ReLU", "negative_slope", negative_slope, 0.0)
        self.threshold = _real("ReLU", "threshold", threshold)
        self._plain = self.negative_slope == 0 and self.threshold == 0

    def call(self, x, training=None):
        if self._plain:
            y = F.relu(x)
        else:
            below = (x - self.threshold) * self.negative_slope if self.negative_slope else 0.0
            y = F.where(x.data >= self.threshold, x, below)
        if self.max_value is not None:
            y = F.minimum(y, self.max_value)
        return y

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value,
                "negative_slope": self.negative_slope, "threshold": self.threshold}


class LeakyReLU(Layer):
    """The leaky ReLU: ``x`` for ``x >= 0``, ``negative_slope * x`` below.

    Args:
        negative_slope: the slope for negative inputs (>= 0; Keras 3's default 0.3).
        alpha: Keras 2's name for ``negative_slope`` (accepted, stored as negative_slope).

    No weights; input and output shapes are equal.

    Example:
        >>> LeakyReLU(0.1)(fl.tensor([[-2.0, 3.0]]))
        tensor([[-0.2,  3. ]], dtype=float32)
    """

    supports_masking = True

    def __init__(self, negative_slope=0.3, alpha=None, **kwargs):
        super().__init__(**kwargs)
        if alpha is not None:
            negative_slope = alpha
        self.negative_slope = _real("LeakyReLU", "negative_slope", negative_slope, 0.0)

    def call(self, x, training=None):
        return F.leaky_relu(x, self.negative_slope)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class PReLU(Layer):
    """The parametric ReLU: ``x`` for ``x >= 0``, ``alpha * x`` below, with a learned ``alpha``.

    Args:
        alpha_initializer: the initializer of ``alpha`` (Keras's default "zeros": a ReLU at
            first; PyTorch starts at 0.25).
        alpha_regularizer: an optional penalty on ``alpha``.
        alpha_constraint: an optional constraint on ``alpha`` (see :mod:`fundl.constraints`).
        shared_axes: the axes (1 = the first after the batch) along which one ``alpha`` is
            shared, e.g. ``[1, 2]`` for one slope per channel of ``(batch, h, w, channels)``
            images (PyTorch's ``nn.PReLU(channels)``).

    Weights: ``alpha`` of the input's shape without the batch axis, with size 1 on the
    shared axes. Input and output shapes are equal.

    Example:
        >>> PReLU(shared_axes=[1, 2])(fl.randn(2, 8, 8, 16)).shape    # alpha (1, 1, 16)
        (2, 8, 8, 16)
    """

    supports_masking = True

    def __init__(self, alpha_initializer="zeros", alpha_regularizer=None, alpha_constraint=None,
                 shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = deserialize_object(initializers, alpha_initializer)
        self.alpha_regularizer = deserialize_object(regularizers, alpha_regularizer)
        self.alpha_constraint = deserialize_object(constraints, alpha_constraint)
        if shared_axes is None:
            self.shared_axes = None
        else:
            axes = [shared_axes] if isinstance(shared_axes, numbers.Integral) else shared_axes
            if isinstance(axes, bool) or not isinstance(axes, (list, tuple)) or not all(
                    isinstance(a, numbers.Integral) and not isinstance(a, bool) and a >= 1
                    for a in axes):
                raise ValueError(f"PReLU: shared_axes must be None, an int >= 1 or a list of "
                                 f"them (axis 0 is the batch axis), got {shared_axes!r}.")
            self.shared_axes = sorted({int(a) for a in axes})

    def build(self, input_shape):
        shape = list(input_shape[1:])
        for a in self.shared_axes or ():
            if a > len(shape):
                raise ValueError(f"PReLU '{self.name}': shared axis {a} does not exist in "
                                 f"inputs of shape {tuple(input_shape)}.")
            shape[a - 1] = 1
        if any(s is None for s in shape):
            raise ValueError(f"PReLU '{self.name}': the input shape {tuple(input_shape)} has "
                             "an unknown size on an axis that is not shared; list that axis in "
                             "shared_axes.")
        self.alpha = _add_weight(self, "alpha", tuple(shape), self.alpha_initializer,
                                 self.alpha_regularizer, self.alpha_constraint)

    def call(self, x, training=None):
        # relu(x) - alpha * relu(-x): Keras's formula, and a gradient for alpha everywhere x < 0
        return F.relu(x) - self.alpha * F.relu(-x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(),
                "alpha_initializer": serialize_object(self.alpha_initializer),
                "alpha_regularizer": serialize_object(self.alpha_regularizer),
                "alpha_constraint": serialize_object(self.alpha_constraint),
                "shared_axes": self.shared_axes}


class ELU(Layer):
    """The exponential linear unit: ``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` below.

    Args:
        alpha: the scale of the negative part (Keras's default 1.0).

    No weights; input and output shapes are equal.

    Example:
        >>> ELU()(fl.tensor([[0.0, 2.0]]))
        tensor([[0., 2.]], dtype=float32)
    """

    supports_masking = True

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = _real("ELU", "alpha", alpha)

    def call(self, x, training=None):
        return F.elu(x, self.alpha)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


_LARGE_NEGATIVE = {numpy.dtype("float16"): -3e4}  # others: -1e9, as Keras's softmax mask


class Softmax(Layer):
    """The softmax along ``axis`` (or several axes), with an optional mask as Keras.

    Args:
        axis: the axis (or list of axes) to normalise over (the last by default).

    Called as ``layer(x, mask=None)``: where a boolean ``mask`` (broadcast against ``x``) is
    False, the input is pushed to a large negative number first, so those entries get
    (almost) zero probability.

    No weights; input and output shapes are equal.

    Example:
        >>> Softmax()(fl.tensor([[0.0, 0.0]]))
        tensor([[0.5, 0.5]], dtype=float32)
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        ok = isinstance(axis, numbers.Integral) and not isinstance(axis, bool)
        if not ok and not (isinstance(axis, (list, tuple)) and axis and all(
                isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in axis)):
            raise TypeError(f"Softmax: axis must be an int or a list of ints, got {axis!r}.")
        self.axis = int(axis) if ok else [int(a) for a in axis]

    def call(self, x, training=None, mask=None):
        if mask is not None:
            xp = backend.get_array_module(x.data)
            mask = xp.asarray(mask.data if isinstance(mask, Tensor) else mask)
            big = _LARGE_NEGATIVE.get(x.dtype, -1e9)
            x = x + (1.0 - mask.astype(x.dtype)) * x.dtype.type(big)
        return F.softmax(x, axis=self.axis if isinstance(self.axis, int) else tuple(self.axis))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}

