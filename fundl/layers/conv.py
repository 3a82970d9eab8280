"""Convolution layers: Conv1D/2D/3D, DepthwiseConv2D, SeparableConv2D, Conv1DTranspose,
Conv2DTranspose, ZeroPadding1D/2D/3D, UpSampling1D/2D.

Keras 3 names, arguments, defaults and weight layouts: a ``Conv2D`` kernel is
``(kh, kw, in_channels // groups, filters)`` and a ``Conv2DTranspose`` kernel
``(kh, kw, filters, in_channels)``, so ``set_weights`` takes Keras kernels as they are. Inputs
are channels-last ``(batch, spatial..., channels)`` unless ``data_format="channels_first"``.
The math is in :mod:`fundl.ops.conv` (im2col + one GEMM, called through
:mod:`fundl.functional`); these layers own the weights, check the arguments when constructed
and the shapes when built or defined symbolically, so a wrong channel count or a too-small
image is reported at model-definition time.

Example:
    >>> model = Sequential([Conv2D(6, 5, activation="tanh", input_shape=(32, 32, 1)),
    ...                     AveragePooling2D(2), Conv2D(16, 5, activation="tanh")])
    >>> model.output_shape
    (None, 10, 10, 16)
"""
from __future__ import annotations

import numbers

from .. import activations, constraints, initializers, regularizers
from .. import functional as F
from ._weights import add_weight_with_constraint as _add_weight
from ._weights import set_weight_options, weight_options_config
from .base import Layer, deserialize_object, serialize_object

_SPATIAL = {1: "steps", 2: "height, width", 3: "depth, height, width"}
# activations the convolution op applies to its output itself (fl.conv's activation argument)
_FUSED = {activations.relu: "relu", activations.tanh: "tanh", activations.sigmoid: "sigmoid"}


# -- argument checks shared with pool.py ------------------------------------------------------
def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _int_tuple(who, name, value, n, minimum=1):
    """``value`` (an int or ``n`` ints) as a tuple of ``n`` ints >= ``minimum`` (Keras's rule)."""
    seq = (value,) * n if _is_int(value) else value
    if not isinstance(seq, (tuple, list)) or len(seq) != n or not all(_is_int(v) for v in seq):
        raise TypeError(f"{who}: {name} must be an int or a tuple of {n} ints (one per spatial "
                        f"axis), got {value!r}.")
    if min(seq) < minimum:
        raise ValueError(f"{who}: {name} must be >= {minimum} along every axis, got {value!r}.")
    return tuple(int(v) for v in seq)


def _data_format(who, value):
    """None means channels-last (Keras's default ``image_data_format``)."""
    value = "channels_last" if value is None else value
    if value not in ("channels_last", "channels_first"):
        raise ValueError(f"{who}: data_format must be None, 'channels_last' or 'channels_first', "
                         f"got {value!r}.")
    return value


def _padding_mode(who, value, modes):
    if isinstance(value, str) and value.lower() in modes:
        return value.lower()
    raise ValueError(f"{who}: padding must be one of {', '.join(repr(m) for m in modes)}, got "
                     f"{value!r}.")


def _explicit_pads(who, value, n, form):
    """Per-axis (before, after) pairs from an int, ``n`` ints or ``n`` pairs (Keras's forms)."""
    if _is_int(value):
        value = (value,) * n
    try:
        pairs = tuple((p, p) if _is_int(p) else tuple(p) for p in value)
    except TypeError:
        pairs = ()
    if len(pairs) != n or not all(len(p) == 2 and all(_is_int(v) and v >= 0 for v in p)
                                  for p in pairs):
        raise ValueError(f"{who}: padding must be {form}, got {value!r}.")
    return tuple((int(b), int(a)) for b, a in pairs)


def _one_pair(value):
    """Whether ``value`` is a flat (before, after) pair of ints: the 1-D layers' Keras form."""
    return isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value)


def _window_length(n, window, stride, padding, who, what):
    """The output length along one axis of a sliding window (None stays None)."""
    if n is None:
        return None
    if padding in ("same", "causal"):
        return -(-n // stride)
    before, after = (0, 0) if padding == "valid" else padding
    padded = n + before + after
    if padded < window:
        length = f"{n} (padded: {padded})" if padded != n else f"{n}"
        raise ValueError(f"{who}: an input of spatial length {length} is smaller than the {what} "
                         f"{window}; use padding='same', a smaller {what} or a larger input.")
    return (padded - window) // stride + 1


class _ShapeChecks:
    """Rank and channel checks shared by the spatial layers (conv, pool, padding, upsampling).

    ``_check_channels`` is for layers with a kernel: it records the channel count when built
    (``building=True``) and checks it on every later call and symbolic shape.
    """

    _rank = 0  # number of spatial axes
    groups = 1  # convolutions with groups set their own

    def _who(self):
        return f"{type(self).__name__} '{self.name}'"

    def _layout(self):
        spatial = _SPATIAL[self._rank]
        if self.data_format == "channels_first":
            return f"(batch, channels, {spatial})"
        return f"(batch, {spatial}, channels)"

    def _check_rank(self, shape):
        if len(shape) != self._rank + 2:
            raise ValueError(f"{self._who()}: expected inputs of rank {self._rank + 2} "
                             f"{self._layout()}, got shape {tuple(shape)}.")

    def _channel_axis(self):
        return 1 if self.data_format == "channels_first" else -1

    def _spatial(self, shape):
        return tuple(shape[2:]) if self.data_format == "channels_first" else tuple(shape[1:-1])

    def _assemble(self, batch, spatial, channels):
        if self.data_format == "channels_first":
            return (batch, channels) + tuple(spatial)
        return (batch,) + tuple(spatial) + (channels,)

    def _check_channels(self, shape, building=False):
        self._check_rank(shape)
        channels = shape[self._channel_axis()]
        if building:
            if channels is None:
                raise ValueError(f"{self._who()}: the channel axis of the input shape "
                                 f"{tuple(shape)} must have a known size (it sizes the kernel).")
            if channels % self.groups:
                raise ValueError(f"{self._who()}: the input's {channels} channels must divide by "
                                 f"groups={self.groups}; got input shape {tuple(shape)}.")
        elif channels not in (self._channels, None):
            raise ValueError(f"{self._who()}: expected inputs with {self._channels} channels (set "
                             f"when the layer was built), got shape {tuple(shape)}. Did the "
                             "previous layer change size, or is data_format "
                             f"({self.data_format!r}) wrong?")
        return channels


# -- convolutions -------------------------------------------------------------------------------
class _Conv(_ShapeChecks, Layer):
    """The shared body of Conv1D/2D/3D (``_rank`` spatial axes)."""

    uses_parallel_regions = True  # see Layer.uses_parallel_regions

    _paddings = ("valid", "same")

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        who, n = type(self).__name__, self._rank
        if not _is_int(filters) or filters < 1:
            raise ValueError(f"{who}: filters must be a positive int, got {filters!r}.")
        if not _is_int(groups) or groups < 1 or filters % groups:
            raise ValueError(f"{who}: groups must be a positive int that divides filters "
                             f"({filters}), got {groups!r}.")
        self.filters, self.groups = int(filters), int(groups)
        self.kernel_size = _int_tuple(who, "kernel_size", kernel_size, n)
        self.strides = _int_tuple(who, "strides", strides, n)
        self.dilation_rate = _int_tuple(who, "dilation_rate", dilation_rate, n)
        if isinstance(padding, str):
            self.padding = _padding_mode(who, padding, self._paddings)
        else:  # fundl extension: explicit, PyTorch-style padding
            if n == 1 and _one_pair(padding):
                padding = (padding,)  # one (before, after) pair, as ZeroPadding1D
            form = (f"one of {self._paddings}, an int, or " + (
                "a (before, after) pair" if n == 1 else
                f"{n} ints or (before, after) pairs (one per spatial axis)"))
            self.padding = _explicit_pads(who, padding, n, form)
        self.data_format = _data_format(who, data_format)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        set_weight_options(self, kernel_initializer, bias_initializer, kernel_regularizer,
                           bias_regularizer, activity_regularizer, kernel_constraint,
                           bias_constraint)

    def build(self, input_shape):
        self._channels = self._check_channels(input_shape, building=True)
        shape = self.kernel_size + (self._channels // self.groups, self.filters)
        self.kernel = _add_weight(self, "kernel", shape, self.kernel_initializer,
                                  self.kernel_regularizer, self.kernel_constraint)
        self.bias = (_add_weight(self, "bias", (self.filters,), self.bias_initializer,
                                 self.bias_regularizer, self.bias_constraint)
                     if self.use_bias else None)

    def _op_padding(self):
        if self.padding == "causal":  # all the padding before: output t sees inputs <= t only
            return (((self.kernel_size[0] - 1) * self.dilation_rate[0], 0),)
        return self.padding

    def call(self, x, training=None):
        self._check_channels(x.shape)
        fused = _FUSED.get(self.activation)  # applied inside the conv op, see fl.conv
        y = F.conv(x, self.kernel, self.bias, strides=self.strides, padding=self._op_padding(),
                   dilation_rate=self.dilation_rate, groups=self.groups,
                   data_format=self.data_format, activation=fused)
        return y if fused else self.activation(y)

    def compute_output_shape(self, input_shape):
        if self.built:
            self._check_channels(input_shape)
        else:
            self._check_rank(input_shape)
        pads = (self.padding,) * self._rank if isinstance(self.padding, str) else self.padding
        out = tuple(_window_length(n, d * (k - 1) + 1, s, p, self._who(), "(dilated) kernel")
                    for n, k, s, d, p in zip(self._spatial(input_shape), self.kernel_size,
                                             self.strides, self.dilation_rate, pads))
        return self._assemble(input_shape[0], out, self.filters)

    def get_config(self):
        padding = (self.padding if isinstance(self.padding, str)
                   else [list(p) for p in self.padding])
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": padding, "data_format": self.data_format,
                "dilation_rate": list(self.dilation_rate), "groups": self.groups,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                **weight_options_config(self)}


_CONV_ARGS = """
    Args:
        filters: the number of output channels.
        kernel_size: an int or one int per spatial axis.
        strides: an int or one int per spatial axis.
        padding: "valid" (no padding) or "same" (ceil(size / strides) outputs, an odd total pad
            at the end, as Keras/TF){causal}; as a fundl extension also an int or one int or
            (before, after) pair per spatial axis (PyTorch's symmetric ``padding=1``).
        data_format: None or "channels_last" (the fast path), or "channels_first".
        dilation_rate: an int or one int per spatial axis (spacing between kernel taps).
        groups: split input and output channels into this many groups convolved separately
            (``groups == channels`` is a depthwise convolution); must divide both.
        activation: a name or function applied to the output; None for linear.
        use_bias: add a bias per filter.
        kernel_initializer, bias_initializer: names or initializer objects.
        kernel_regularizer, bias_regularizer, activity_regularizer: optional penalties.
        kernel_constraint, bias_constraint: optional projections applied after each optimizer
            update (see :mod:`fundl.constraints`).
"""


class Conv1D(_Conv):
    """1-D convolution over ``(batch, steps, channels)``: ``activation(conv1d(x, kernel) + bias)``.
    {args}
    Weights: ``kernel`` (kernel_size, in_channels // groups, filters), ``bias`` (filters,).

    Input ``(batch, steps, channels)`` -> output ``(batch, new_steps, filters)``
    (channels-first: ``(batch, channels, steps)`` -> ``(batch, filters, new_steps)``).

    Example:
        >>> Conv1D(16, 3, padding="causal")(fl.randn(4, 100, 8)).shape
        (4, 100, 16)
    """

    _rank = 1
    _paddings = ("valid", "same", "causal")


class Conv2D(_Conv):
    """2-D convolution over images: ``activation(conv2d(x, kernel) + bias)``.
    {args}
    Weights: ``kernel`` (kh, kw, in_channels // groups, filters) (Keras's layout; PyTorch's
    ``weight`` is ``kernel.transpose(3, 2, 0, 1)``), ``bias`` (filters,).

    Input ``(batch, height, width, channels)`` -> output ``(batch, new_height, new_width,
    filters)`` (channels-first: channels on axis 1).

    Example:
        >>> Conv2D(32, 3, strides=2, padding="same", activation="relu")(
        ...     fl.randn(8, 32, 32, 3)).shape
        (8, 16, 16, 32)
    """

    _rank = 2


class Conv3D(_Conv):
    """3-D convolution over volumes: ``activation(conv3d(x, kernel) + bias)``.
    {args}
    Weights: ``kernel`` (kd, kh, kw, in_channels // groups, filters), ``bias`` (filters,).

    Input ``(batch, depth, height, width, channels)`` -> output ``(batch, new_depth,
    new_height, new_width, filters)`` (channels-first: channels on axis 1).

    Example:
        >>> Conv3D(4, 3)(fl.randn(2, 8, 8, 8, 1)).shape
        (2, 6, 6, 6, 4)
    """

    _rank = 3


Conv1D.__doc__ = Conv1D.__doc__.replace(
    "{args}", _CONV_ARGS.replace("{causal}", ", or \"causal\" (all the padding before: output "
                                             "t depends on inputs up to t only)"))
Conv2D.__doc__ = Conv2D.__doc__.replace("{args}", _CONV_ARGS.replace("{causal}", ""))
Conv3D.__doc__ = Conv3D.__doc__.replace("{args}", _CONV_ARGS.replace("{causal}", ""))



# -- depthwise and separable convolutions ---------------------------------------------------------
class _DepthwiseBase(_ShapeChecks, Layer):
    """Argument checks and the depthwise step shared by DepthwiseConv2D and SeparableConv2D."""

    uses_parallel_regions = True  # see Layer.uses_parallel_regions

    _rank = 2

    def _init_depthwise(self, kernel_size, strides, padding, depth_multiplier, data_format,
                        dilation_rate, activation, use_bias, depthwise_initializer,
                        bias_initializer, depthwise_regularizer, bias_regularizer,
                        activity_regularizer, depthwise_constraint, bias_constraint):
        who = type(self).__name__
        if not _is_int(depth_multiplier) or depth_multiplier < 1:
            raise ValueError(f"{who}: depth_multiplier must be a positive int, got "
                             f"{depth_multiplier!r}.")
        self.depth_multiplier = int(depth_multiplier)
        self.kernel_size = _int_tuple(who, "kernel_size", kernel_size, 2)
        self.strides = _int_tuple(who, "strides", strides, 2)
        self.padding = _padding_mode(who, padding, ("valid", "same"))
        self.data_format = _data_format(who, data_format)
        self.dilation_rate = _int_tuple(who, "dilation_rate", dilation_rate, 2)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = deserialize_object(initializers, depthwise_initializer)
        self.bias_initializer = deserialize_object(initializers, bias_initializer)
        self.depthwise_regularizer = deserialize_object(regularizers, depthwise_regularizer)
        self.bias_regularizer = deserialize_object(regularizers, bias_regularizer)
        self.activity_regularizer = deserialize_object(regularizers, activity_regularizer)
        self.depthwise_constraint = deserialize_object(constraints, depthwise_constraint)
        self.bias_constraint = deserialize_object(constraints, bias_constraint)

    def _build_depthwise(self, input_shape):
        self._channels = self._check_channels(input_shape, building=True)
        self.depthwise_kernel = _add_weight(
            self, "depthwise_kernel", self.kernel_size + (self._channels, self.depth_multiplier),
            self.depthwise_initializer, self.depthwise_regularizer, self.depthwise_constraint)

    def _depthwise(self, x, bias=None, activation=None):
        """The grouped convolution with one group per input channel (Keras's kernel layout
        ``(kh, kw, C, M)`` is the grouped op's ``(kh, kw, 1, C*M)``: output c*M + m reads
        input channel c, as in Keras and PyTorch)."""
        c, m = self._channels, self.depth_multiplier
        kernel = F.reshape(self.depthwise_kernel, self.kernel_size + (1, c * m))
        return F.conv(x, kernel, bias, strides=self.strides, padding=self.padding,
                      dilation_rate=self.dilation_rate, groups=c, data_format=self.data_format,
                      activation=activation)

    def _out_shape(self, input_shape, channels):
        if self.built:
            self._check_channels(input_shape)
        else:
            self._check_rank(input_shape)
        out = tuple(_window_length(n, d * (k - 1) + 1, s, self.padding, self._who(),
                                   "(dilated) kernel")
                    for n, k, s, d in zip(self._spatial(input_shape), self.kernel_size,
                                          self.strides, self.dilation_rate))
        return self._assemble(input_shape[0], out, channels)

    def _depthwise_config(self):
        return {"kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding, "depth_multiplier": self.depth_multiplier,
                "data_format": self.data_format, "dilation_rate": list(self.dilation_rate),
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                "depthwise_initializer": serialize_object(self.depthwise_initializer),
                "bias_initializer": serialize_object(self.bias_initializer),
                "depthwise_regularizer": serialize_object(self.depthwise_regularizer),
                "bias_regularizer": serialize_object(self.bias_regularizer),
                "activity_regularizer": serialize_object(self.activity_regularizer),
                "depthwise_constraint": serialize_object(self.depthwise_constraint),
                "bias_constraint": serialize_object(self.bias_constraint)}


class DepthwiseConv2D(_DepthwiseBase):
    """Depthwise 2-D convolution: each input channel convolved with its own
    ``depth_multiplier`` filters (no mixing across channels), as Keras's.

    Args:
        kernel_size: an int or 2 ints.
        strides: an int or 2 ints.
        padding: "valid" or "same".
        depth_multiplier: output channels per input channel.
        data_format: None or "channels_last", or "channels_first".
        dilation_rate: an int or 2 ints.
        activation: a name or function applied to the output; None for linear.
        use_bias: add a bias per output channel.
        depthwise_initializer, bias_initializer: names or initializer objects.
        depthwise_regularizer, bias_regularizer, activity_regularizer: optional penalties.
        depthwise_constraint, bias_constraint: optional constraints (:mod:`fundl.constraints`).

    Weights: ``depthwise_kernel`` (kh, kw, channels, depth_multiplier) (Keras's layout; PyTorch's
    ``Conv2d(C, C*M, k, groups=C).weight`` is its reshape to (kh, kw, C*M) moved to
    (C*M, 1, kh, kw)), ``bias`` (channels * depth_multiplier,). It runs as the convolution op's
    grouped form, one group per channel.

    Input ``(batch, height, width, channels)`` -> output ``(batch, new_height, new_width,
    channels * depth_multiplier)``.

    Example:
        >>> DepthwiseConv2D(3, padding="same", depth_multiplier=2)(fl.randn(2, 8, 8, 4)).shape
        (2, 8, 8, 8)
    """

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self._init_depthwise(kernel_size, strides, padding, depth_multiplier, data_format,
                             dilation_rate, activation, use_bias, depthwise_initializer,
                             bias_initializer, depthwise_regularizer, bias_regularizer,
                             activity_regularizer, depthwise_constraint, bias_constraint)

    def build(self, input_shape):
        self._build_depthwise(input_shape)
        self.bias = (_add_weight(self, "bias", (self._channels * self.depth_multiplier,),
                                 self.bias_initializer, self.bias_regularizer,
                                 self.bias_constraint) if self.use_bias else None)

    def call(self, x, training=None):
        self._check_channels(x.shape)
        fused = _FUSED.get(self.activation)
        y = self._depthwise(x, self.bias, fused)
        return y if fused else self.activation(y)

    def compute_output_shape(self, input_shape):
        channels = input_shape[self._channel_axis()]
        return self._out_shape(input_shape,
                               None if channels is None else channels * self.depth_multiplier)

    def get_config(self):
        return {**super().get_config(), **self._depthwise_config()}


class SeparableConv2D(_DepthwiseBase):
    """Depthwise-separable 2-D convolution: a depthwise convolution (each channel on its own),
    then a 1x1 pointwise convolution mixing the channels into ``filters`` (Xception, MobileNet).

    Args:
        filters: the number of output channels.
        kernel_size, strides, padding, depth_multiplier, data_format, dilation_rate: of the
            depthwise step, as in :class:`DepthwiseConv2D`.
        activation: a name or function applied to the output; None for linear.
        use_bias: add a bias per filter (after the pointwise step).
        depthwise_initializer, pointwise_initializer, bias_initializer: initializers.
        depthwise_regularizer, pointwise_regularizer, bias_regularizer, activity_regularizer:
            optional penalties.
        depthwise_constraint, pointwise_constraint, bias_constraint: optional constraints.

    Weights (Keras's layout): ``depthwise_kernel`` (kh, kw, channels, depth_multiplier),
    ``pointwise_kernel`` (1, 1, channels * depth_multiplier, filters), ``bias`` (filters,).
    Far fewer weights than a Conv2D of the same size: ``kh*kw*C*M + C*M*filters``.

    Input ``(batch, height, width, channels)`` -> output ``(batch, new_height, new_width,
    filters)``.

    Example:
        >>> SeparableConv2D(16, 3, padding="same", activation="relu")(fl.randn(2, 8, 8, 4)).shape
        (2, 8, 8, 16)
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, pointwise_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, depthwise_constraint=None,
                 pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        if not _is_int(filters) or filters < 1:
            raise ValueError(f"SeparableConv2D: filters must be a positive int, got {filters!r}.")
        self.filters = int(filters)
        self._init_depthwise(kernel_size, strides, padding, depth_multiplier, data_format,
                             dilation_rate, activation, use_bias, depthwise_initializer,
                             bias_initializer, depthwise_regularizer, bias_regularizer,
                             activity_regularizer, depthwise_constraint, bias_constraint)
        self.pointwise_initializer = deserialize_object(initializers, pointwise_initializer)
        self.pointwise_regularizer = deserialize_object(regularizers, pointwise_regularizer)
        self.pointwise_constraint = deserialize_object(constraints, pointwise_constraint)

    def build(self, input_shape):
        self._build_depthwise(input_shape)
        self.pointwise_kernel = _add_weight(
            self, "pointwise_kernel", (1, 1, self._channels * self.depth_multiplier, self.filters),
            self.pointwise_initializer, self.pointwise_regularizer, self.pointwise_constraint)
        self.bias = (_add_weight(self, "bias", (self.filters,), self.bias_initializer,
                                 self.bias_regularizer, self.bias_constraint)
                     if self.use_bias else None)

    def call(self, x, training=None):
        self._check_channels(x.shape)
        h = self._depthwise(x)
        fused = _FUSED.get(self.activation)
        y = F.conv(h, self.pointwise_kernel, self.bias, data_format=self.data_format,
                   activation=fused)
        return y if fused else self.activation(y)

    def compute_output_shape(self, input_shape):
        return self._out_shape(input_shape, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, **self._depthwise_config(),
                "pointwise_initializer": serialize_object(self.pointwise_initializer),
                "pointwise_regularizer": serialize_object(self.pointwise_regularizer),
                "pointwise_constraint": serialize_object(self.pointwise_constraint)}

def _transpose_length(n, k, s, d, padding, output_padding):
    """Keras's ``deconv_output_length``."""
    if n is None:
        return None
    window = d * (k - 1) + 1
    if output_padding is None:
        return n * s + max(window - s, 0) if padding == "valid" else n * s
    pad = window // 2 if padding == "same" else 0
    return (n - 1) * s + window - 2 * pad + output_padding


class _ConvTranspose(_ShapeChecks, Layer):
    """The arguments, weights and config Conv1DTranspose and Conv2DTranspose share (kernel
    laid out ``kernel_size + (filters, channels)``, as Keras)."""

    uses_parallel_regions = True  # see Layer.uses_parallel_regions

    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        who, rank = type(self).__name__, self._rank
        if not _is_int(filters) or filters < 1:
            raise ValueError(f"{who}: filters must be a positive int, got {filters!r}.")
        self.filters = int(filters)
        self.kernel_size = _int_tuple(who, "kernel_size", kernel_size, rank)
        self.strides = _int_tuple(who, "strides", strides, rank)
        self.padding = _padding_mode(who, padding, ("valid", "same"))
        self.output_padding = (None if output_padding is None
                               else _int_tuple(who, "output_padding", output_padding, rank, 0))
        if self.output_padding is not None and any(
                p >= s for p, s in zip(self.output_padding, self.strides)):
            raise ValueError(f"{who}: output_padding must be smaller than strides along every "
                             f"axis, got output_padding={output_padding!r} with strides "
                             f"{self.strides}.")
        self.data_format = _data_format(who, data_format)
        self.dilation_rate = _int_tuple(who, "dilation_rate", dilation_rate, rank)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        set_weight_options(self, kernel_initializer, bias_initializer, kernel_regularizer,
                           bias_regularizer, activity_regularizer, kernel_constraint,
                           bias_constraint)

    def build(self, input_shape):
        self._channels = self._check_channels(input_shape, building=True)
        self.kernel = _add_weight(self, "kernel", self.kernel_size + (self.filters, self._channels),
                                  self.kernel_initializer, self.kernel_regularizer,
                                  self.kernel_constraint)
        self.bias = (_add_weight(self, "bias", (self.filters,), self.bias_initializer,
                                 self.bias_regularizer, self.bias_constraint)
                     if self.use_bias else None)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding,
                "output_padding": (None if self.output_padding is None
                                   else list(self.output_padding)),
                "data_format": self.data_format, "dilation_rate": list(self.dilation_rate),
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                **weight_options_config(self)}


class Conv2DTranspose(_ConvTranspose):
    """2-D transposed convolution ("deconvolution"): the adjoint of a strided Conv2D.

    Each input pixel scatters ``x[n, i, j, :] @ kernel[a, b].T`` to output pixel ``(i*sh +
    a*dh, j*sw + b*dw)``; the sum is cropped to the output size, then the bias and activation
    apply. Used to upsample in decoders, segmentation nets and GAN generators.

    Args:
        filters: the number of output channels.
        kernel_size: an int or 2 ints.
        strides: an int or 2 ints (the upsampling factor).
        padding: "valid" or "same".
        output_padding: None, or an int / 2 ints, each smaller than its stride: extra rows and
            columns at the end (chooses among the output sizes a strided conv maps back from).
        data_format: None or "channels_last", or "channels_first".
        dilation_rate: an int or 2 ints.
        activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint: as in
        :class:`Conv2D`.

    Weights: ``kernel`` (kh, kw, filters, in_channels) (Keras's layout; PyTorch's
    ``ConvTranspose2d.weight`` is ``kernel.transpose(3, 2, 0, 1)``), ``bias`` (filters,).

    Input ``(batch, height, width, channels)`` -> output ``(batch, new_height, new_width,
    filters)``, lengths as Keras: without output_padding, "valid" gives ``n*s + max(k' - s,
    0)`` and "same" ``n*s``; with it, ``(n - 1)*s + k' - 2*pad + output_padding`` (pad = k' // 2
    for "same", else 0), k' = dilation*(k - 1) + 1.

    Example:
        >>> Conv2DTranspose(16, 3, strides=2, padding="same")(fl.randn(2, 7, 7, 32)).shape
        (2, 14, 14, 16)
    """

    _rank = 2

    def call(self, x, training=None):
        self._check_channels(x.shape)
        first = self.data_format == "channels_first"
        if first:  # the op is channels-last only
            x = F.transpose(x, (0, 2, 3, 1))
        y = F.conv2d_transpose(x, self.kernel, self.bias, strides=self.strides,
                               padding=self.padding, output_padding=self.output_padding,
                               dilation_rate=self.dilation_rate)
        if first:
            y = F.transpose(y, (0, 3, 1, 2))
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        if self.built:
            self._check_channels(input_shape)
        else:
            self._check_rank(input_shape)
        pads = self.output_padding or (None, None)
        out = tuple(_transpose_length(n, k, s, d, self.padding, p) for n, k, s, d, p in zip(
            self._spatial(input_shape), self.kernel_size, self.strides, self.dilation_rate,
            pads))
        if any(n is not None and n < 1 for n in out):
            raise ValueError(f"{self._who()}: the output would be empty ({out}) for input shape "
                             f"{tuple(input_shape)}.")
        return self._assemble(input_shape[0], out, self.filters)


class Conv1DTranspose(_ConvTranspose):
    """1-D transposed convolution over ``(batch, steps, channels)``: the adjoint of a strided
    Conv1D (sequence decoders, e.g. Keras's time-series autoencoder).

    Args:
        filters: the number of output channels.
        kernel_size: an int.
        strides: an int (the upsampling factor).
        padding: "valid" or "same".
        output_padding: None, or an int smaller than ``strides``: extra steps at the end.
        data_format: None or "channels_last", or "channels_first".
        dilation_rate: an int.
        activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint: as in
        :class:`Conv1D`.

    Weights: ``kernel`` (kernel_size, filters, in_channels) (Keras's layout; PyTorch's
    ``ConvTranspose1d.weight`` is ``kernel.transpose(2, 1, 0)``), ``bias`` (filters,). It runs
    as the 2-D transposed convolution op on a height-1 image.

    Output length as Keras's: "valid" ``n*s + max(k' - s, 0)``, "same" ``n*s``; with
    output_padding ``(n - 1)*s + k' - 2*pad + output_padding``, k' = dilation*(k - 1) + 1.

    Example:
        >>> Conv1DTranspose(16, 7, strides=2, padding="same")(fl.randn(2, 50, 32)).shape
        (2, 100, 16)
    """

    _rank = 1

    def call(self, x, training=None):
        self._check_channels(x.shape)
        if self.data_format == "channels_first":
            x = F.transpose(x, (0, 2, 1))
        # (batch, steps, c) as a height-1 image; the kernel as a (1, k, filters, c) one
        kernel = F.reshape(self.kernel, (1,) + tuple(self.kernel.shape))
        y = F.conv2d_transpose(F.expand_dims(x, 1), kernel, self.bias,
                               strides=(1, self.strides[0]), padding=self.padding,
                               output_padding=(None if self.output_padding is None
                                               else (0, self.output_padding[0])),
                               dilation_rate=(1, self.dilation_rate[0]))
        y = F.squeeze(y, 1)
        if self.data_format == "channels_first":
            y = F.transpose(y, (0, 2, 1))
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        if self.built:
            self._check_channels(input_shape)
        else:
            self._check_rank(input_shape)
        (n,) = self._spatial(input_shape)
        pad = None if self.output_padding is None else self.output_padding[0]
        length = _transpose_length(n, self.kernel_size[0], self.strides[0],
                                   self.dilation_rate[0], self.padding, pad)
        if length is not None and length < 1:
            raise ValueError(f"{self._who()}: the output would be empty for input shape "
                             f"{tuple(input_shape)}.")
        return self._assemble(input_shape[0], (length,), self.filters)


# -- zero padding ---------------------------------------------------------------------------------
class _ZeroPadding(_ShapeChecks, Layer):
    """The shared body of ZeroPadding1D/2D/3D; ``self.pads`` holds (before, after) per axis."""

    _form = ""

    def __init__(self, padding, data_format=None, **kwargs):
        super().__init__(**kwargs)
        who = type(self).__name__
        if self._rank == 1 and _one_pair(padding):
            # Keras's 1-D form: an int, or ONE (left, right) pair (not one entry per axis)
            padding = (padding,)
        self.pads = _explicit_pads(who, padding, self._rank, self._form)
        self.data_format = _data_format(who, data_format)

    def build(self, input_shape):
        self._check_rank(input_shape)

    def call(self, x, training=None):
        self._check_rank(x.shape)
        return F.zero_pad(x, self.pads, data_format=self.data_format)

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        spatial = tuple(None if n is None else n + b + a
                        for n, (b, a) in zip(self._spatial(input_shape), self.pads))
        return self._assemble(input_shape[0], spatial, input_shape[self._channel_axis()])

    def get_config(self):
        padding = list(self.pads[0]) if self._rank == 1 else [list(p) for p in self.pads]
        return {**super().get_config(), "padding": padding, "data_format": self.data_format}


class ZeroPadding1D(_ZeroPadding):
    """Adds zeros at the start and end of the steps axis of ``(batch, steps, channels)``.

    Args:
        padding: an int (both ends), or a pair ``(left, right)``.
        data_format: None or "channels_last", or "channels_first".

    No weights. Output ``(batch, steps + left + right, channels)``.

    Example:
        >>> ZeroPadding1D((2, 0))(fl.ones(1, 5, 3)).shape
        (1, 7, 3)
    """

    _rank = 1
    _form = "an int or a pair (left, right) of ints >= 0"

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


class ZeroPadding2D(_ZeroPadding):
    """Adds rows and columns of zeros around images (Keras's forms of ``padding``).

    Args:
        padding: an int (the same on all four sides); ``(sym_height, sym_width)``; or
            ``((top, bottom), (left, right))``.
        data_format: None or "channels_last", or "channels_first".

    No weights. Output ``(batch, height + top + bottom, width + left + right, channels)``.

    Example:
        >>> ZeroPadding2D(((1, 0), (2, 2)))(fl.ones(1, 2, 2, 3)).shape
        (1, 3, 6, 3)
    """

    _rank = 2
    _form = "an int, 2 ints (symmetric height, width padding) or 2 (before, after) pairs"

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


class ZeroPadding3D(_ZeroPadding):
    """Adds zeros around volumes ``(batch, depth, height, width, channels)``.

    Args:
        padding: an int; 3 ints (symmetric per axis); or 3 (before, after) pairs.
        data_format: None or "channels_last", or "channels_first".

    No weights. Each spatial axis grows by its before + after.

    Example:
        >>> ZeroPadding3D(1)(fl.ones(1, 2, 2, 2, 1)).shape
        (1, 4, 4, 4, 1)
    """

    _rank = 3
    _form = "an int, 3 ints (symmetric per axis) or 3 (before, after) pairs"

    def __init__(self, padding=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


# -- upsampling -----------------------------------------------------------------------------------
class UpSampling2D(_ShapeChecks, Layer):
    """Upsamples images by integer factors: repeats pixels ("nearest") or interpolates ("bilinear").

    Args:
        size: an int or 2 ints (height factor, width factor).
        data_format: None or "channels_last", or "channels_first".
        interpolation: "nearest" or "bilinear" (half-pixel centres, as Keras/TF ``resize`` and
            PyTorch's ``align_corners=False``).

    No weights. Output ``(batch, height * size[0], width * size[1], channels)``.

    Example:
        >>> UpSampling2D(2)(fl.ones(1, 7, 7, 4)).shape
        (1, 14, 14, 4)
    """

    _rank = 2

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        who = "UpSampling2D"
        self.size = _int_tuple(who, "size", size, 2)
        self.data_format = _data_format(who, data_format)
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"{who}: interpolation must be 'nearest' or 'bilinear', got "
                             f"{interpolation!r}.")
        self.interpolation = interpolation

    def build(self, input_shape):
        self._check_rank(input_shape)

    def call(self, x, training=None):
        self._check_rank(x.shape)
        return F.upsample2d(x, self.size, interpolation=self.interpolation,
                            data_format=self.data_format)

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        spatial = tuple(None if n is None else n * f
                        for n, f in zip(self._spatial(input_shape), self.size))
        return self._assemble(input_shape[0], spatial, input_shape[self._channel_axis()])

    def get_config(self):
        return {**super().get_config(), "size": list(self.size), "data_format": self.data_format,
                "interpolation": self.interpolation}


class UpSampling1D(_ShapeChecks, Layer):
    """Repeats each step ``size`` times along the steps axis of ``(batch, steps, features)``.

    Args:
        size: the upsampling factor (an int).

    No weights. Output ``(batch, steps * size, features)``; the gradient sums over the
    repeats.

    Example:
        >>> UpSampling1D(2)(fl.ones(1, 3, 4)).shape
        (1, 6, 4)
    """

    _rank = 1
    data_format = "channels_last"

    def __init__(self, size=2, **kwargs):
        super().__init__(**kwargs)
        (self.size,) = _int_tuple("UpSampling1D", "size", size, 1)

    def build(self, input_shape):
        self._check_rank(input_shape)

    def call(self, x, training=None):
        self._check_rank(x.shape)
        # a (batch, steps, 1, features) image upsampled (size, 1): repeats each step
        y = F.upsample2d(F.expand_dims(x, 2), (self.size, 1))
        return F.squeeze(y, 2)

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        n = input_shape[1]
        return (input_shape[0], None if n is None else n * self.size, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "size": self.size}
