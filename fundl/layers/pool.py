"""Pooling layers: MaxPooling1D/2D/3D, AveragePooling1D/2D/3D and the global poolings.

Keras 3 names, arguments and defaults (``pool_size``, ``strides=None`` meaning
``pool_size``, ``padding="valid"|"same"``, ``data_format``). None of them has weights. The
math is in :mod:`fundl.ops.pool` (compiled window kernels on the CPU).

Example:
    >>> MaxPooling2D(2)(fl.randn(8, 28, 28, 6)).shape
    (8, 14, 14, 6)
"""
from __future__ import annotations

from .. import functional as F
from .base import Layer
from .conv import _data_format, _int_tuple, _padding_mode, _ShapeChecks, _window_length


class _Pooling(_ShapeChecks, Layer):
    """The shared body of the windowed poolings (``_rank`` spatial axes, ``_op`` the function)."""

    uses_parallel_regions = True  # see Layer.uses_parallel_regions

    _op = None

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        who, n = type(self).__name__, self._rank
        self.pool_size = _int_tuple(who, "pool_size", pool_size, n)
        self.strides = self.pool_size if strides is None else _int_tuple(who, "strides",
                                                                          strides, n)
        self.padding = _padding_mode(who, padding, ("valid", "same"))
        self.data_format = _data_format(who, data_format)

    def build(self, input_shape):
        self._check_rank(input_shape)

    def call(self, x, training=None):
        self._check_rank(x.shape)
        return self._op(x, self.pool_size, self.strides, padding=self.padding,
                        data_format=self.data_format)

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        out = tuple(_window_length(n, p, s, self.padding, self._who(), "pool_size")
                    for n, p, s in zip(self._spatial(input_shape), self.pool_size, self.strides))
        return self._assemble(input_shape[0], out, input_shape[self._channel_axis()])

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size),
                "strides": list(self.strides), "padding": self.padding,
                "data_format": self.data_format}


def _doc(cls):
    """Fills the shared argument list into a pooling class's docstring."""
    cls.__doc__ = cls.__doc__.replace("{args}", _POOL_ARGS)
    return cls


_POOL_ARGS = """Args:
        pool_size: an int or one int per spatial axis (the window).
        strides: an int, one int per spatial axis, or None (= pool_size, as Keras).
        padding: "valid" (windows inside the input) or "same" (ceil(size / strides) outputs,
            an odd total pad at the end, as Keras/TF).
        data_format: None or "channels_last", or "channels_first".

    No weights. Each spatial axis becomes ``(size - pool_size) // strides + 1`` long with
    "valid", ``ceil(size / strides)`` with "same".
"""


@_doc
class MaxPooling1D(_Pooling):
    """Max pooling over the steps of ``(batch, steps, channels)``: the maximum of each window.

    {args}
    The gradient goes to the first maximum of each window.

    Example:
        >>> MaxPooling1D(2)(fl.randn(4, 10, 3)).shape
        (4, 5, 3)
    """

    _rank, _op = 1, staticmethod(F.max_pool)

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


@_doc
class MaxPooling2D(_Pooling):
    """Max pooling over the height and width of images: the maximum of each window.

    {args}
    The gradient goes to the first maximum of each window.

    Example:
        >>> MaxPooling2D((3, 3), strides=2, padding="same")(fl.randn(1, 112, 112, 64)).shape
        (1, 56, 56, 64)
    """

    _rank, _op = 2, staticmethod(F.max_pool)

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


@_doc
class MaxPooling3D(_Pooling):
    """Max pooling over the depth, height and width of volumes: the maximum of each window.

    {args}
    The gradient goes to the first maximum of each window.

    Example:
        >>> MaxPooling3D(2)(fl.randn(1, 8, 8, 8, 2)).shape
        (1, 4, 4, 4, 2)
    """

    _rank, _op = 3, staticmethod(F.max_pool)

    def __init__(self, pool_size=(2, 2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


@_doc
class AveragePooling1D(_Pooling):
    """Average pooling over the steps of ``(batch, steps, channels)``: the mean of each window.

    {args}
    Padded positions are not counted in the mean (Keras/TF).

    Example:
        >>> AveragePooling1D(2)(fl.randn(4, 10, 3)).shape
        (4, 5, 3)
    """

    _rank, _op = 1, staticmethod(F.avg_pool)

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


@_doc
class AveragePooling2D(_Pooling):
    """Average pooling over the height and width of images: the mean of each window.

    {args}
    Padded positions are not counted in the mean (Keras/TF).

    Example:
        >>> AveragePooling2D(2)(fl.randn(1, 28, 28, 6)).shape
        (1, 14, 14, 6)
    """

    _rank, _op = 2, staticmethod(F.avg_pool)

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


@_doc
class AveragePooling3D(_Pooling):
    """Average pooling over the depth, height and width of volumes: the mean of each window.

    {args}
    Padded positions are not counted in the mean (Keras/TF).

    Example:
        >>> AveragePooling3D(2)(fl.randn(1, 8, 8, 8, 2)).shape
        (1, 4, 4, 4, 2)
    """

    _rank, _op = 3, staticmethod(F.avg_pool)

    def __init__(self, pool_size=(2, 2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class _GlobalPooling(_ShapeChecks, Layer):
    """The shared body of the global poolings: one value per channel over all spatial axes."""

    _op = None

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        who = type(self).__name__
        self.data_format = _data_format(who, data_format)
        if not isinstance(keepdims, bool):
            raise TypeError(f"{who}: keepdims must be True or False, got {keepdims!r}.")
        self.keepdims = keepdims

    def build(self, input_shape):
        self._check_rank(input_shape)

    def call(self, x, training=None):
        self._check_rank(x.shape)
        return self._op(x, keepdims=self.keepdims, data_format=self.data_format)

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        channels = input_shape[self._channel_axis()]
        if not self.keepdims:
            return (input_shape[0], channels)
        return self._assemble(input_shape[0], (1,) * self._rank, channels)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format,
                "keepdims": self.keepdims}


_GLOBAL_ARGS = """Args:
        data_format: None or "channels_last", or "channels_first".
        keepdims: keep the spatial axes, with length 1.

    No weights. Output ``(batch, channels)``; with keepdims, the input's rank with every
    spatial axis of length 1."""


def _global_doc(cls):
    cls.__doc__ = cls.__doc__.replace("{args}", _GLOBAL_ARGS)
    return cls


@_global_doc
class GlobalAveragePooling1D(_GlobalPooling):
    """The mean over all steps of ``(batch, steps, channels)``, per channel.

    {args}

    Example:
        >>> GlobalAveragePooling1D()(fl.randn(4, 10, 3)).shape
        (4, 3)
    """

    _rank, _op = 1, staticmethod(F.global_avg_pool)


@_global_doc
class GlobalAveragePooling2D(_GlobalPooling):
    """The mean over all positions of an image, per channel (the head of ResNet, DenseNet, ...).

    {args}

    Example:
        >>> GlobalAveragePooling2D()(fl.randn(2, 7, 7, 512)).shape
        (2, 512)
    """

    _rank, _op = 2, staticmethod(F.global_avg_pool)


@_global_doc
class GlobalAveragePooling3D(_GlobalPooling):
    """The mean over all positions of a volume, per channel.

    {args}

    Example:
        >>> GlobalAveragePooling3D(keepdims=True)(fl.randn(2, 4, 4, 4, 8)).shape
        (2, 1, 1, 1, 8)
    """

    _rank, _op = 3, staticmethod(F.global_avg_pool)


@_global_doc
class GlobalMaxPooling1D(_GlobalPooling):
    """The maximum over all steps of ``(batch, steps, channels)``, per channel.

    {args}

    Example:
        >>> GlobalMaxPooling1D()(fl.randn(4, 10, 3)).shape
        (4, 3)
    """

    _rank, _op = 1, staticmethod(F.global_max_pool)


@_global_doc
class GlobalMaxPooling2D(_GlobalPooling):
    """The maximum over all positions of an image, per channel.

    {args}

    Example:
        >>> GlobalMaxPooling2D()(fl.randn(2, 7, 7, 512)).shape
        (2, 512)
    """

    _rank, _op = 2, staticmethod(F.global_max_pool)


@_global_doc
class GlobalMaxPooling3D(_GlobalPooling):
    """The maximum over all positions of a volume, per channel.

    {args}

    Example:
        >>> GlobalMaxPooling3D()(fl.randn(2, 4, 4, 4, 8)).shape
        (2, 8)
    """

    _rank, _op = 3, staticmethod(F.global_max_pool)
