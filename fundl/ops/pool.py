"""Pooling (max and average, 1-D to 3-D, global) and 2-D upsampling, Keras semantics.

Windowed pooling runs as compiled kernels on the CPU (:mod:`fundl.kernels`) on 5-D
channels-last arrays, like the convolutions in :mod:`fundl.ops.conv`. Max pooling records
which element of each window won in the forward pass, so the backward is a single scatter.
"""
from __future__ import annotations

import functools

import numpy

from .. import kernels
from ..autograd import Function
from ..backend import get_array_module
from ..kernels.activation import mark_relu_applied
from ..kernels.conv import inner, pad_5d
from ..tensor import Tensor
from .conv import (
    _as_5d, _cached, _channels_back, _channels_last, _check_float, _data_format, _frozen, _ints,
    _lead, _paddings,
)


@functools.lru_cache(maxsize=256)
def _pool_plan(kind, shape, dtype, dims, pool_size, strides, padding, data_format):
    """Check a pooling's arguments against an input of ``shape``; its 5-D geometry.

    Returns the op's name, channels_first, (pool, strides, pads) as 3-tuples over (D, H, W)
    and, for average pooling, the NumPy array (in ``dtype``, read-only) of 1 / (unpadded taps)
    per output position (Do, Ho, Wo); None for max pooling.
    Memoised like the convolution's plan: a layer sees the same shapes every step.
    """
    given, dims = dims, len(shape) - 2 if dims is None else dims
    op = f"{kind}_pool{dims}d" if 1 <= dims <= 3 else f"{kind}_pool"
    cf = _data_format(data_format, op)
    if len(shape) != dims + 2 or not 1 <= dims <= 3:
        layout = "(batch, channels, spatial...)" if cf else "(batch, spatial..., channels)"
        expected = f"rank {dims + 2}" if given is not None else "rank 3, 4 or 5"
        raise ValueError(f"{op}: expected an input of {expected} {layout}, got shape {shape}.")
    pool = _ints(pool_size, dims, "pool_size", op)
    strides = pool if strides is None else _ints(strides, dims, "strides", op)
    spatial = shape[2:] if cf else shape[1:-1]
    pads = _paddings(padding, spatial, pool, strides, op, explicit=False)
    if any(n < p for n, p in zip(spatial, pool)) and all(b == a == 0 for b, a in pads):
        raise ValueError(f"{op}: the input's spatial shape {spatial} is smaller than "
                         f"pool_size {pool} with padding='valid'; use padding='same' or a "
                         "smaller pool.")
    pool3, stride3, pads3 = _lead(pool, 1), _lead(strides, 1), _lead(pads, (0, 0))
    scale = None
    if kind == "avg":
        spatial3 = _lead(tuple(spatial), 1)
        cd, ch, cw = (_valid_counts(n, p, s, b, (n + b + a - p) // s + 1)
                      for n, p, s, (b, a) in zip(spatial3, pool3, stride3, pads3))
        scale = 1.0 / (cd[:, None, None] * ch[None, :, None] * cw[None, None, :])
        scale = scale.astype(dtype)
        scale.setflags(write=False)  # shared by every call with this plan
    return op, cf, pool3, stride3, pads3, scale


class _Pool(Function):
    """Shared argument checks and 5-D geometry of max and average pooling."""

    kind = ""

    def __init__(self, dims, pool_size, strides, padding, data_format):
        self.dims = dims  # number of spatial axes, or None to take it from the input
        self.pool_size = pool_size
        self.strides = strides
        self.padding = padding
        self.data_format = data_format

    def check(self, x):
        key = (self.kind, x.shape, x.dtype.str, self.dims, _frozen(self.pool_size),
               _frozen(self.strides), _frozen(self.padding), self.data_format)
        op, self.cf, self.pool3, self.stride3, self.pads, self.scale = _cached(_pool_plan, key)
        _check_float(op, x=x)

    def _out(self, y5, x):
        """The kernel's 5-D output back to the input's rank and layout."""
        return _channels_back(y5.reshape(y5.shape[:1] + y5.shape[5 - x.ndim + 1:]), self.cf)

    def _grad_out(self, gxpad):
        gx5 = gxpad[inner(self.x5_shape, self.pads)]
        return _channels_back(gx5.reshape(self.x_cl_shape), self.cf)


class MaxPool(_Pool):
    """Window maxima; the gradient goes to the first maximum of each window (tap order).

    After a ReLU fused into the op that made the input (``fl.conv(..., activation="relu")``,
    Conv2D(activation="relu")), the backward also does that ReLU's gradient, which then costs
    nothing: max(relu(x)) = relu(max(x)), so ReLU's gradient keeps exactly the windows whose
    maximum is positive. The gradient kernel skips the other windows as it scatters (it
    reads the pooled output beside the tap numbers; a separate NumPy pass marking them took
    300 us on LeNet-5's first map, as long as the scatter), and the input gradient is recorded with
    :func:`fundl.kernels.activation.mark_relu_applied`, so the producer's ReLU gradient hands
    it on instead of reading and writing the whole map again.
    """

    kind = "max"

    def forward(self, x):
        x_cl = _channels_last(x, self.cf)
        x5 = _as_5d(x_cl)
        xpad = pad_5d(x5, self.pads, -numpy.inf)
        need = bool(self.needs_grad[0])  # no tap numbers when no backward will route them
        y5, arg = kernels.max_pool(xpad, self.pool3, self.stride3, need)
        if need:
            self.save(arg, y5)
            self.x5_shape, self.x_cl_shape, self.padded_shape = x5.shape, x_cl.shape, xpad.shape
        return self._out(y5, x)

    def _relu_producer(self):
        """The input, when the op that made it applied ReLU to it and differentiates that
        from this very array (its ``activation`` and kept output ``y``); else None."""
        inputs = getattr(self, "inputs", None)
        creator = getattr(inputs[0], "creator", None) if inputs else None
        y = getattr(creator, "y", None)
        if getattr(creator, "activation", None) == "relu" and y is inputs[0].data:
            return y
        return None

    def backward(self, gy):
        arg, y5 = self.saved
        relu_out = self._relu_producer()
        gy5 = _as_5d(_channels_last(gy, self.cf))
        # after a ReLU: windows whose maximum is not positive (NaN too, as ReLU's) dropped
        gx = self._grad_out(kernels.max_pool_grad(gy5, arg, self.padded_shape, self.pool3,
                                                  self.stride3,
                                                  y5 if relu_out is not None else None))
        if relu_out is not None:
            mark_relu_applied(gx, relu_out)
        return gx


def _valid_counts(n, p, s, before, out):
    """How many of each window's taps fall inside an axis of length n (padding excluded)."""
    start = numpy.arange(out) * s - before
    return numpy.clip(start + p, 0, n) - numpy.clip(start, 0, n)


class AvgPool(_Pool):
    """Window means over the unpadded elements only (Keras/TF "same" padding)."""

    kind = "avg"

    def forward(self, x):
        x_cl = _channels_last(x, self.cf)
        x5 = _as_5d(x_cl)
        xpad = pad_5d(x5, self.pads)
        # the plan's (read-only, shared) scale, already in x's dtype: a no-op on NumPy
        self.scale = get_array_module(x).asarray(self.scale)
        self.x5_shape, self.x_cl_shape, self.padded_shape = x5.shape, x_cl.shape, xpad.shape
        return self._out(kernels.avg_pool(xpad, self.pool3, self.stride3, self.scale), x)

    def backward(self, gy):
        gy5 = _as_5d(_channels_last(gy, self.cf))
        return self._grad_out(kernels.avg_pool_grad(gy5, self.padded_shape, self.pool3,
                                                    self.stride3, self.scale))


_POOL_ARGS = """
    Args:
        x: (batch, spatial..., channels) (channels-first: (batch, channels, spatial...)).
        pool_size: int or one int per spatial axis.
        strides: int, one int per spatial axis, or None (= pool_size, as in Keras).
        padding: "valid" (windows inside the input) or "same" (ceil(s / strides) outputs,
            an odd total pad at the end, as Keras/TF).
        data_format: "channels_last" (the fast path) or "channels_first".

    Returns:
        Tensor (batch, out..., channels), out = (s - pool) // strides + 1 for "valid".
"""


def max_pool(x, pool_size, strides=None, padding="valid", data_format="channels_last") -> Tensor:
    """Max pooling over 1 to 3 spatial axes (from the input's rank), Keras semantics.

    ``y[n, o, c] = max_{t in window} x_pad[n, o*strides + t, c]``, padding never wins ("same"
    pads with -inf). Ties: the whole gradient goes to the first maximum in row-major window
    order (as PyTorch); a NaN in a window makes its output NaN.
    {args}
    Example:
        >>> fl.max_pool(fl.randn(8, 28, 28, 6), 2).shape
        (8, 14, 14, 6)
    """
    return MaxPool(None, pool_size, strides, padding, data_format).apply(x)


def avg_pool(x, pool_size, strides=None, padding="valid", data_format="channels_last") -> Tensor:
    """Average pooling over 1 to 3 spatial axes (from the input's rank), Keras semantics.

    ``y[n, o, c] = mean_{t in window, inside x} x[n, o*strides + t - pad_before, c]``: with
    "same" padding the padded elements are not counted (Keras/TF; PyTorch's
    ``count_include_pad=False``).
    {args}
    Example:
        >>> fl.avg_pool(fl.randn(8, 32, 32, 3), 3, strides=2, padding="same").shape
        (8, 16, 16, 3)
    """
    return AvgPool(None, pool_size, strides, padding, data_format).apply(x)


max_pool.__doc__ = max_pool.__doc__.replace("{args}", _POOL_ARGS)
avg_pool.__doc__ = avg_pool.__doc__.replace("{args}", _POOL_ARGS)


def _pool_n(cls, dims, shape):
    def pool_nd(x, pool_size=2, strides=None, padding="valid",
                data_format="channels_last") -> Tensor:
        return cls(dims, pool_size, strides, padding, data_format).apply(x)

    name = f"{cls.kind}_pool{dims}d"
    reduce = "max" if cls is MaxPool else "mean"
    example = (2,) + (8,) * dims + (3,)
    pool_nd.__name__ = pool_nd.__qualname__ = name
    pool_nd.__doc__ = f"""{"Max" if cls is MaxPool else "Average"} pooling of {shape} inputs.

    ``y[n, o, c] = {reduce}_(t in window) x[n, o*strides + t, c]``; :func:`{cls.kind}_pool` with
    {dims} spatial ax{"es" if dims > 1 else "is"} (the same padding rules).

    Args:
        x: {shape} (channels-first: channels on axis 1).
        pool_size: int, or a tuple of {dims} ints (default 2, as Keras).
        strides, padding, data_format: as in :func:`{cls.kind}_pool`.

    Returns:
        Tensor of the input's rank, each spatial axis pooled.

    Example:
        >>> fl.{name}(fl.ones{example}).shape
        {(2,) + (4,) * dims + (3,)}
    """
    return pool_nd


max_pool1d = _pool_n(MaxPool, 1, "(batch, steps, channels)")
max_pool2d = _pool_n(MaxPool, 2, "(batch, height, width, channels)")
max_pool3d = _pool_n(MaxPool, 3, "(batch, depth, height, width, channels)")
avg_pool1d = _pool_n(AvgPool, 1, "(batch, steps, channels)")
avg_pool2d = _pool_n(AvgPool, 2, "(batch, height, width, channels)")
avg_pool3d = _pool_n(AvgPool, 3, "(batch, depth, height, width, channels)")


# -- global pooling -------------------------------------------------------------------------------
class _GlobalPool(Function):
    kind = ""

    def __init__(self, keepdims, data_format):
        self.keepdims = keepdims
        self.data_format = data_format

    def check(self, x):
        op = f"global_{self.kind}_pool"
        self.cf = _data_format(self.data_format, op)
        if x.ndim < 3:
            raise ValueError(f"{op}: expected an input with at least one spatial axis, (batch, "
                             f"spatial..., channels), got shape {x.shape}.")
        _check_float(op, x=x)

    def _out_shape(self, x_shape, keepdims):
        n, c = x_shape[0], x_shape[1] if self.cf else x_shape[-1]
        if not keepdims:
            return (n, c)
        ones = (1,) * (len(x_shape) - 2)
        return (n, c) + ones if self.cf else (n,) + ones + (c,)


class GlobalAvgPool(_GlobalPool):
    """Mean over every spatial axis; each element gets gy / (number of spatial positions)."""

    kind = "avg"

    def forward(self, x):
        self.x_shape = x.shape
        axes = tuple(range(2, x.ndim)) if self.cf else tuple(range(1, x.ndim - 1))
        self.count = int(numpy.prod([x.shape[a] for a in axes]))
        return x.mean(axis=axes).reshape(self._out_shape(x.shape, self.keepdims))

    def backward(self, gy):
        xp = get_array_module(gy)
        gx = xp.empty(self.x_shape, dtype=gy.dtype)
        gx[...] = gy.reshape(self._out_shape(self.x_shape, True)) * (1.0 / self.count)
        return gx


class GlobalMaxPool(_GlobalPool):
    """Maximum over every spatial axis; the gradient goes to the first maximum (row-major)."""

    kind = "max"

    def forward(self, x):
        xp = get_array_module(x)
        x_cl = _channels_last(x, self.cf)
        n, c = x.shape[0], x_cl.shape[-1]
        x3 = x_cl.reshape(n, -1, c)
        arg = x3.argmax(axis=1)  # (n, c): the first maximum (or NaN) of each channel
        self.save(arg)
        self.x_cl_shape = x_cl.shape
        y = x3[xp.arange(n)[:, None], arg, xp.arange(c)[None, :]]
        return y.reshape(self._out_shape(x.shape, self.keepdims))

    def backward(self, gy):
        (arg,) = self.saved
        xp = get_array_module(gy)
        n, c = self.x_cl_shape[0], self.x_cl_shape[-1]
        gx3 = xp.zeros((n, int(numpy.prod(self.x_cl_shape[1:-1])), c), dtype=gy.dtype)
        gx3[xp.arange(n)[:, None], arg, xp.arange(c)[None, :]] = gy.reshape(n, c)
        return _channels_back(gx3.reshape(self.x_cl_shape), self.cf)


def global_avg_pool(x, keepdims=False, data_format="channels_last") -> Tensor:
    """Mean over all spatial axes (Keras's GlobalAveragePooling1D/2D/3D).

    ``y[n, c] = mean_s x[n, s, c]``.

    Args:
        x: (batch, spatial..., channels) (channels-first: (batch, channels, spatial...)).
        keepdims: keep the spatial axes with length 1.
        data_format: "channels_last" or "channels_first".

    Returns:
        Tensor (batch, channels), or with keepdims (batch, 1, ..., 1, channels)
        (channels-first: (batch, channels, 1, ..., 1)).

    Example:
        >>> fl.global_avg_pool(fl.ones(2, 8, 8, 64)).shape
        (2, 64)
    """
    return GlobalAvgPool(keepdims, data_format).apply(x)


def global_max_pool(x, keepdims=False, data_format="channels_last") -> Tensor:
    """Maximum over all spatial axes (Keras's GlobalMaxPooling1D/2D/3D).

    ``y[n, c] = max_s x[n, s, c]``; on ties the gradient goes to the first maximum in
    row-major spatial order.

    Args:
        x: (batch, spatial..., channels) (channels-first: (batch, channels, spatial...)).
        keepdims: keep the spatial axes with length 1.
        data_format: "channels_last" or "channels_first".

    Returns:
        Tensor (batch, channels), or with keepdims (batch, 1, ..., 1, channels).

    Example:
        >>> fl.global_max_pool(fl.ones(2, 8, 8, 64), keepdims=True).shape
        (2, 1, 1, 64)
    """
    return GlobalMaxPool(keepdims, data_format).apply(x)


# -- upsampling -----------------------------------------------------------------------------------
def _bilinear_matrix(n, factor, dtype):
    """(n * factor, n) weights of half-pixel-centre linear interpolation (TF resize, PyTorch
    ``align_corners=False``): output i samples input (i + 0.5) / factor - 0.5, clamped at 0."""
    src = numpy.maximum((numpy.arange(n * factor) + 0.5) / factor - 0.5, 0.0)
    lo = numpy.floor(src).astype(numpy.intp)
    hi = numpy.minimum(lo + 1, n - 1)
    frac = src - lo
    m = numpy.zeros((n * factor, n))
    rows = numpy.arange(n * factor)
    numpy.add.at(m, (rows, lo), 1.0 - frac)
    numpy.add.at(m, (rows, hi), frac)
    return m.astype(dtype)


class Upsample2d(Function):
    """Repeat (nearest) or linearly interpolate (bilinear) rows and columns by integer factors.

    Bilinear is separable: y = A_h x A_w^T per channel, so the backward is A_h^T gy A_w.
    """

    def __init__(self, size, interpolation, data_format):
        self.size = size
        self.interpolation = interpolation
        self.data_format = data_format

    def check(self, x):
        op = "upsample2d"
        self.cf = _data_format(self.data_format, op)
        if x.ndim != 4:
            raise ValueError(f"{op}: expected an input of rank 4 (batch, height, width, channels), "
                             f"got shape {x.shape}.")
        _check_float(op, x=x)
        self.factors = _ints(self.size, 2, "size", op)
        if self.interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"{op}: interpolation must be 'nearest' or 'bilinear', got "
                             f"{self.interpolation!r}.")

    def forward(self, x):
        xp = get_array_module(x)
        x = _channels_last(x, self.cf)
        n, h, w, c = x.shape
        fh, fw = self.factors
        self.x_cl_shape = x.shape
        if self.interpolation == "nearest":
            y = xp.broadcast_to(x[:, :, None, :, None, :], (n, h, fh, w, fw, c))
            return _channels_back(y.reshape(n, h * fh, w * fw, c), self.cf)
        self.a_h = xp.asarray(_bilinear_matrix(h, fh, x.dtype))
        self.a_w = xp.asarray(_bilinear_matrix(w, fw, x.dtype))
        t = xp.matmul(self.a_h, x.reshape(n, h, w * c))                  # rows: (n, h*fh, w*c)
        y = xp.matmul(self.a_w, t.reshape(n * h * fh, w, c))             # columns
        return _channels_back(y.reshape(n, h * fh, w * fw, c), self.cf)

    def backward(self, gy):
        xp = get_array_module(gy)
        gy = _channels_last(gy, self.cf)
        n, h, w, c = self.x_cl_shape
        fh, fw = self.factors
        if self.interpolation == "nearest":
            gx = gy.reshape(n, h, fh, w, fw, c).sum(axis=(2, 4))
        else:
            t = xp.matmul(self.a_w.T, gy.reshape(n * h * fh, w * fw, c))   # (n*h*fh, w, c)
            gx = xp.matmul(self.a_h.T, t.reshape(n, h * fh, w * c)).reshape(n, h, w, c)
        return _channels_back(gx, self.cf)


def upsample2d(x, size=2, interpolation="nearest", data_format="channels_last") -> Tensor:
    """Upsample height and width by integer factors (Keras's UpSampling2D).

    "nearest" repeats each pixel ``size`` times along each axis; "bilinear" interpolates with
    half-pixel centres, as Keras/TF ``resize`` and PyTorch's
    ``interpolate(mode="bilinear", align_corners=False)``:
    ``y[i] = (1 - f) x[floor(u)] + f x[min(floor(u) + 1, h - 1)]`` along each axis, with
    u = max((i + 0.5) / size - 0.5, 0) and f = u - floor(u).

    Args:
        x: (batch, height, width, channels) (channels-first: (batch, channels, h, w)).
        size: int or 2 ints (height factor, width factor).
        interpolation: "nearest" or "bilinear".
        data_format: "channels_last" or "channels_first".

    Returns:
        Tensor (batch, height * size[0], width * size[1], channels).

    Example:
        >>> fl.upsample2d(fl.ones(1, 7, 7, 4), 2, interpolation="bilinear").shape
        (1, 14, 14, 4)
    """
    return Upsample2d(size, interpolation, data_format).apply(x)
