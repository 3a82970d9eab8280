"""Normalisation layers: BatchNormalization, LayerNormalization, LocalResponseNormalization.

Keras 3 names, arguments, defaults and weight names/order (gamma, beta, moving_mean,
moving_variance), channels-last, so Keras weights load as they are. The math lives in the fused
ops of :mod:`fundl.ops.norm`.
"""
from __future__ import annotations

import math
import numbers

from .. import backend
from .. import functional as F
from .. import constraints, initializers, regularizers
from ..tensor import Tensor
from ._masking import get_mask
from ._weights import add_weight_with_constraint as _add_weight
from .base import Layer, deserialize_object, serialize_object
from .normalization_fusion import take_request


def _tracing():
    """Whether graph mode (``fl.function``) is recording ops in this thread."""
    from .. import autograd

    tracer = autograd._tracer
    return tracer is not None and tracer.in_this_thread()


def _real(layer, name, value, low=None, high=None):
    """``value`` as a float, or a TypeError/ValueError naming the layer and argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{layer}: {name} must be a real number, got {value!r} "
                        f"({type(value).__name__}).")
    value = float(value)
    if (low is not None and not value >= low) or (high is not None and not value <= high):
        bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{layer}: {name} must be {bounds}, got {value}.")
    return value


def _int_axis(layer, axis):
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"{layer}: axis must be an int, got {axis!r}.")
    return int(axis)


def _resolve_axis(layer, axis, input_shape):
    """A non-negative axis of ``input_shape`` whose size is known, or a ValueError."""
    ndim = len(input_shape)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{layer}: axis {axis} is out of range for inputs of shape "
                         f"{tuple(input_shape)} (rank {ndim}).")
    a = axis % ndim
    if input_shape[a] is None:
        raise ValueError(f"{layer}: axis {axis} of the input shape {tuple(input_shape)} must have "
                         "a known size (it sizes the weights); the batch axis cannot be used.")
    return a


class BatchNormalization(Layer):
    """Normalises each channel with batch statistics in training, moving averages in inference.

    ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta`` per channel (the ``axis`` entry),
    where in training (``training=True``) mean and var are the batch's mean and biased variance
    over every other axis, and the moving averages are updated in place, outside the graph::

        moving_mean = moving_mean * momentum + mean * (1 - momentum)
        moving_variance = moving_variance * momentum + var * (1 - momentum)

    In inference (``training=False``, the default: ``evaluate``/``predict``) mean and var are
    the moving averages.

    Frozen layers (``layer.trainable = False``, transfer learning) always run in inference mode,
    even when called with ``training=True``, and leave the moving averages alone (as Keras).

    Args:
        axis: the channel axis (-1 for channels-last images, 1 after channels-first layers).
        momentum: the moving averages' momentum. (PyTorch's ``momentum`` is ``1 - momentum``,
            and PyTorch's ``running_var`` averages the unbiased batch variance.)
        epsilon: added to the variance before the square root.
        center: learn an offset ``beta``; False drops it.
        scale: learn a scale ``gamma``; False drops it (fine before a linear layer or ReLU).
        beta_initializer, gamma_initializer, moving_mean_initializer,
        moving_variance_initializer: names or initializer objects.
        beta_regularizer, gamma_regularizer: optional penalties.
        beta_constraint, gamma_constraint: optional constraints (:mod:`fundl.constraints`).

    Weights, in order: ``gamma`` (if scale), ``beta`` (if center) (trainable), ``moving_mean``,
    ``moving_variance`` (non-trainable), each of shape (channels,).

    Input: any shape with a known size along ``axis``; output: the same shape.

    Example:
        >>> model = Sequential([Conv2D(16, 3, input_shape=(28, 28, 1)), BatchNormalization(),
        ...                     Activation("relu")])
    """

    # A sequence mask passes through, and in training the batch statistics leave the masked
    # steps out (Keras 3); every step is normalised with them. (With the channels on axis 1,
    # the time axis, a (batch, timesteps) mask cannot apply and the statistics count all.)
    supports_masking = True

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        name = "BatchNormalization"
        self.axis = _int_axis(name, axis)
        self.momentum = _real(name, "momentum", momentum, 0.0, 1.0)
        self.epsilon = _real(name, "epsilon", epsilon, 0.0)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = deserialize_object(initializers, beta_initializer)
        self.gamma_initializer = deserialize_object(initializers, gamma_initializer)
        self.moving_mean_initializer = deserialize_object(initializers, moving_mean_initializer)
        self.moving_variance_initializer = deserialize_object(initializers,
                                                              moving_variance_initializer)
        self.beta_regularizer = deserialize_object(regularizers, beta_regularizer)
        self.gamma_regularizer = deserialize_object(regularizers, gamma_regularizer)
        self.beta_constraint = deserialize_object(constraints, beta_constraint)
        self.gamma_constraint = deserialize_object(constraints, gamma_constraint)

    def _who(self):
        return f"BatchNormalization '{self.name}'"

    def build(self, input_shape):
        self._axis = _resolve_axis(self._who(), self.axis, input_shape)
        self._ndim = len(input_shape)
        shape = (input_shape[self._axis],)
        # Keras's creation order, which is also the order of get_weights()/set_weights()
        self.gamma = (_add_weight(self, "gamma", shape, self.gamma_initializer,
                                  self.gamma_regularizer, self.gamma_constraint)
                      if self.scale else None)
        self.beta = (_add_weight(self, "beta", shape, self.beta_initializer,
                                 self.beta_regularizer, self.beta_constraint)
                     if self.center else None)
        self.moving_mean = self.add_weight("moving_mean", shape, self.moving_mean_initializer,
                                           trainable=False)
        self.moving_variance = self.add_weight("moving_variance", shape,
                                               self.moving_variance_initializer, trainable=False)

    def _check_input(self, shape):
        c = self.moving_mean.shape[0]
        if len(shape) != self._ndim or shape[self._axis] not in (c, None):
            raise ValueError(
                f"{self._who()}: expected inputs of rank {self._ndim} with {c} channels along "
                f"axis {self.axis} (set when the layer was built), got shape {tuple(shape)}. "
                "Did the previous layer change size?")

    def call(self, x, training=None):
        self._check_input(x.shape)
        # A model running this layer's output through an Add and/or a ReLU and nothing else
        # asks for them fused into the op (fundl.layers.normalization_fusion): same values.
        fused = take_request(self)
        epilogue = {} if fused is None else {"residual": fused[0], "activation": "relu"}
        if training and self.trainable:
            mask = get_mask(x) if fused is None else None
            if mask is not None and x.ndim >= 3 and self._axis >= 2:
                y, mean, var, any_real = self._masked_batch_norm(x, mask)
                if not any_real:  # a batch of padding only says nothing about the statistics
                    return y
            else:
                y, mean, var = F.batch_norm(x, self.gamma, self.beta, axis=self._axis,
                                            epsilon=self.epsilon, return_stats=True,
                                            **epilogue)
                if _tracing():  # graph mode: the update is an op of the plan, replayed
                    from ..graph_mode import state_update

                    state_update((self.moving_mean, self.moving_variance),
                                 self._update_moving_averages, mean, var)
                    return y
                mean, var = mean.data, var.data
            self._update_moving_averages(mean, var)
            return y
        return F.batch_norm(x, self.gamma, self.beta, self.moving_mean, self.moving_variance,
                            axis=self._axis, epsilon=self.epsilon, **epilogue)

    def _update_moving_averages(self, mean, var):
        """``moving = moving * momentum + batch * (1 - momentum)`` for the (C,) arrays."""
        # Plain array arithmetic, in place: no graph, and the Tensors stay the same objects
        # (model.weights, state_dict). The op keeps copies of any statistics it saved.
        for moving, batch in ((self.moving_mean, mean), (self.moving_variance, var)):
            m = moving.data
            m *= self.momentum
            m += batch * (1.0 - self.momentum)

    def _masked_batch_norm(self, x, mask):
        """Training-mode batch norm whose statistics count the real steps of a (batch,
        timesteps) ``mask`` only; composed from differentiable ops (the fused op's closed-form
        backward assumes every position counts). Returns ``(y, mean, var, any_real_step)``,
        the statistics as (C,) arrays."""
        steps = backend.to_device(mask, backend.device_of(x.data))
        w = Tensor._wrap(steps.astype(x.dtype).reshape(steps.shape + (1,) * (x.ndim - 2)))
        axes = tuple(i for i in range(x.ndim) if i != self._axis)
        per_step = math.prod(x.shape[2:]) // x.shape[self._axis]
        real = float(steps.sum())
        n = max(real * per_step, 1.0)  # all padding: zeros, not NaN
        mean = F.sum(x * w, axis=axes, keepdims=True) / n
        xc = x - mean
        var = F.sum(xc * xc * w, axis=axes, keepdims=True) / n
        y = xc / F.sqrt(var + self.epsilon)
        shape = tuple(x.shape[i] if i == self._axis else 1 for i in range(x.ndim))
        if self.gamma is not None:
            y = y * F.reshape(self.gamma, shape)
        if self.beta is not None:
            y = y + F.reshape(self.beta, shape)
        c = (x.shape[self._axis],)
        return y, mean.data.reshape(c), var.data.reshape(c), real > 0

    def compute_output_shape(self, input_shape):
        if self.built:
            self._check_input(input_shape)
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": serialize_object(self.beta_initializer),
                "gamma_initializer": serialize_object(self.gamma_initializer),
                "moving_mean_initializer": serialize_object(self.moving_mean_initializer),
                "moving_variance_initializer": serialize_object(self.moving_variance_initializer),
                "beta_regularizer": serialize_object(self.beta_regularizer),
                "gamma_regularizer": serialize_object(self.gamma_regularizer),
                "beta_constraint": serialize_object(self.beta_constraint),
                "gamma_constraint": serialize_object(self.gamma_constraint)}


class LayerNormalization(Layer):
    """Normalises each sample over the axes ``axis``, then scales and shifts (Ba et al., 2016).

    ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta``, mean and biased variance taken over
    ``axis`` separately for every sample (and every position of the other axes). The same in
    training and inference; no moving statistics.

    Args:
        axis: an int or a list/tuple of ints, the axes normalised over (the batch axis is 0).
        epsilon: added to the variance before the square root (Keras's 1e-3, not PyTorch's 1e-5).
        center: learn an offset ``beta``; False drops it.
        scale: learn a scale ``gamma``; False drops it.
        beta_initializer, gamma_initializer: names or initializer objects.
        beta_regularizer, gamma_regularizer: optional penalties.
        beta_constraint, gamma_constraint: optional constraints (:mod:`fundl.constraints`).

    Weights: ``gamma`` (if scale), ``beta`` (if center), each of the shape of the normalised
    axes (their sizes in increasing axis order).

    Input: any shape with known sizes along ``axis``; output: the same shape.

    Example:
        >>> LayerNormalization()(fl.randn(2, 5, 16)).shape    # (batch, time, features)
        (2, 5, 16)
    """

    supports_masking = True  # per step: a sequence mask passes through

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None,
                 beta_constraint=None, gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        name = "LayerNormalization"
        if isinstance(axis, (list, tuple)):
            if not axis:
                raise ValueError(f"{name}: axis must name at least one axis, got {axis!r}.")
            self.axis = [_int_axis(name, a) for a in axis]
        else:
            self.axis = _int_axis(name, axis)
        self.epsilon = _real(name, "epsilon", epsilon, 0.0)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = deserialize_object(initializers, beta_initializer)
        self.gamma_initializer = deserialize_object(initializers, gamma_initializer)
        self.beta_regularizer = deserialize_object(regularizers, beta_regularizer)
        self.gamma_regularizer = deserialize_object(regularizers, gamma_regularizer)
        self.beta_constraint = deserialize_object(constraints, beta_constraint)
        self.gamma_constraint = deserialize_object(constraints, gamma_constraint)

    def _who(self):
        return f"LayerNormalization '{self.name}'"

    def build(self, input_shape):
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        resolved = [_resolve_axis(self._who(), a, input_shape) for a in axes]
        if len(set(resolved)) != len(resolved):
            raise ValueError(f"{self._who()}: repeated axis in {self.axis} for inputs of shape "
                             f"{tuple(input_shape)}.")
        self._axes = tuple(sorted(resolved))
        self._ndim = len(input_shape)
        shape = tuple(input_shape[a] for a in self._axes)
        self.gamma = (_add_weight(self, "gamma", shape, self.gamma_initializer,
                                  self.gamma_regularizer, self.gamma_constraint)
                      if self.scale else None)
        self.beta = (_add_weight(self, "beta", shape, self.beta_initializer,
                                 self.beta_regularizer, self.beta_constraint)
                     if self.center else None)
        self._param_shape = shape

    def _check_input(self, shape):
        if len(shape) != self._ndim or any(shape[a] not in (n, None)
                                           for a, n in zip(self._axes, self._param_shape)):
            expected = ", ".join(f"axis {a}: {n}" for a, n in zip(self._axes, self._param_shape))
            raise ValueError(
                f"{self._who()}: expected inputs of rank {self._ndim} with sizes ({expected}) "
                f"(set when the layer was built), got shape {tuple(shape)}. Did the previous "
                "layer change size?")

    def call(self, x, training=None):
        self._check_input(x.shape)
        return F.layer_norm(x, self.gamma, self.beta, axis=self._axes, epsilon=self.epsilon)

    def compute_output_shape(self, input_shape):
        if self.built:
            self._check_input(input_shape)
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(),
                "axis": list(self.axis) if isinstance(self.axis, list) else self.axis,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": serialize_object(self.beta_initializer),
                "gamma_initializer": serialize_object(self.gamma_initializer),
                "beta_regularizer": serialize_object(self.beta_regularizer),
                "gamma_regularizer": serialize_object(self.gamma_regularizer),
                "beta_constraint": serialize_object(self.beta_constraint),
                "gamma_constraint": serialize_object(self.gamma_constraint)}


class LocalResponseNormalization(Layer):
    """Local response normalisation across channels (AlexNet, VGG's A-LRN), channels-last.

    ``y[..., c] = x[..., c] / (bias + alpha * sum_{c'=c-r}^{c+r} x[..., c']**2) ** beta`` with
    ``r = depth_radius`` (TensorFlow's ``tf.nn.local_response_normalization``). AlexNet's
    n=5, k=2, alpha=1e-4, beta=0.75 is ``LocalResponseNormalization(2, 2.0, 1e-4, 0.75)``;
    see :func:`fundl.functional.local_response_norm` for PyTorch's equivalent arguments.

    Args:
        depth_radius: r, the half-width of the channel window (an int >= 0).
        bias: added to the weighted sum of squares.
        alpha: weight of the sum of squares.
        beta: the exponent.

    No weights. Input: (batch, ..., channels), e.g. NHWC images; output: the same shape.

    Example:
        >>> LocalResponseNormalization(depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)
    """

    def __init__(self, depth_radius=5, bias=1.0, alpha=1.0, beta=0.5, **kwargs):
        super().__init__(**kwargs)
        name = "LocalResponseNormalization"
        if isinstance(depth_radius, bool) or not isinstance(depth_radius, numbers.Integral):
            raise TypeError(f"{name}: depth_radius must be an int, got {depth_radius!r}.")
        if depth_radius < 0:
            raise ValueError(f"{name}: depth_radius must be >= 0, got {depth_radius}.")
        self.depth_radius = int(depth_radius)
        self.bias = _real(name, "bias", bias)
        self.alpha = _real(name, "alpha", alpha)
        self.beta = _real(name, "beta", beta)

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"LocalResponseNormalization '{self.name}': expected inputs of shape "
                             f"(batch, ..., channels), got {tuple(input_shape)}.")

    def call(self, x, training=None):
        return F.local_response_norm(x, self.depth_radius, self.bias, self.alpha, self.beta)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "depth_radius": self.depth_radius, "bias": self.bias,
                "alpha": self.alpha, "beta": self.beta}
