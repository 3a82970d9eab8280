"""Convolutions (1-D, 2-D, 3-D, grouped, dilated), the 2-D transposed convolution, and zero padding.

Layouts follow Keras: inputs are channels-last ``(batch, spatial..., channels)`` (channels-first
``(batch, channels, spatial...)`` on request), kernels are ``(k1, [k2, [k3]], in_channels //
groups, out_channels)``. A convolution is one im2col and one GEMM::

    cols = im2col(pad(x))             # (groups, N*out_positions, taps * in_channels // groups, 1)
    y    = cols @ [kernel; bias]      # (N*out_positions, out_channels): already channels-last

and its gradients are GEMMs too: ``cols^T @ gy`` gives the kernel's gradient and, from the
column of ones, the bias's; ``gy @ kernel^T`` then col2im gives the input's. im2col and col2im
run as compiled kernels on the CPU (:mod:`fundl.kernels`). Every op works internally on 5-D
``(N, D, H, W, C)`` arrays, a free reshape for 1-D and 2-D inputs, so one code path serves all
ranks. Four refinements, measured on the LeNet-5 and ResNet-20 shapes (see
``benchmarks/bench_conv_ops.py`` and ``benchmarks/bench_cnn.py``):

- no im2col at all when every window is a whole row of x: 1x1 kernels at stride 1 (the
  bottlenecks of ResNet-50, GoogLeNet, DenseNet) and kernels as large as the input (LeNet's
  C5); x reshaped is then the cols matrix, and the input gradient a GEMM without col2im;
- output blocking: a GEMM with few columns (6 output channels) runs at a fraction of BLAS's
  speed, so a few outputs neighbouring along the width share one cols row, against a kernel
  widened into that many shifted copies (2.2x faster for LeNet's first convolution); not for
  kernels up to 5 wide with 16 or more output channels (ResNet's, LeNet's C3), where the
  widened kernel's extra multiply-adds cost more than the wider GEMM gains
  (``kernels.convolution.BLOCK_BELOW``, ``BLOCK_NARROW``);
- batch chunks: each chunk of the batch is im2col-ed (padding implicitly: no padded copy, and
  col2im writes the input gradient straight into its rows) and multiplied a few MB at a
  time, and cols larger than ``KEEP_BYTES`` are recomputed in the backward instead of being
  kept: a ResNet-20 layer would otherwise keep 75 MB, and keeping them was no faster than
  building them twice (538-575 vs 542-547 ms per ResNet-20 step);
- parallel chunks: every thread takes whole chunks, BLAS single-threaded meanwhile, so
  im2col and col2im use all cores too (ResNet-20 step 500-520 -> 433-455 ms on 2 cores). On
  the CPU all chunks run in one compiled parallel region
  (:func:`fundl.kernels.conv._conv_forward_chunks`, its GEMMs through
  :func:`fundl.kernels.blas.gemm_function`: MKL's sequential GEMM when the optional ``mkl``
  package is installed, else NumPy's OpenBLAS, whose AVX-512 small-matrix kernels are called
  directly on CPUs where it would pick AVX2 ones: ``kernels.convolution.small_gemms``), at
  least one chunk per thread: ResNet-20
  403-420 -> 390 ms, LeNet-5 4.2-4.4 -> 3.9 ms (its single chunk split in two; through
  Python threads that split had cost 4.4 -> 5.3 ms). Without regions (see
  :func:`fundl.kernels.regions`) and on the GPU, the chunks are Python functions run by
  :func:`fundl.kernels.map_chunks`.

- no im2col for 3x3 kernels at stride 1 with "same" padding (ResNet's), float32, 8 or more
  pixels wide, 8 or more channels, where OpenBLAS's AVX-512 small kernels are at hand: the
  GEMMs read the padded image itself (:mod:`fundl.kernels.conv3x3`; a ResNet-20 training
  step 200 -> 160 ms at best on a loaded 2-core AMD EPYC, 32x32x16 layers 4.6 -> 2.6 ms
  forward and 8.0 -> 5.5 ms backward).

A fused activation (``activation=``) runs inside the compiled regions where it can: ReLU on
each chunk's output rows right after its GEMM, and the gradient through ReLU, tanh or the
sigmoid on each chunk's rows of the output gradient right before the products that read
them (:func:`fundl.kernels.convolution.fusable_grad`); the values are those of the separate
passes, bit for bit.

The op itself only checks arguments and changes layouts: which of these paths runs, with
which chunks, is a :class:`fundl.kernels.ConvPlan` cached per geometry, and
:func:`fundl.kernels.conv_forward` / :func:`fundl.kernels.conv_backward` (in
:mod:`fundl.kernels.convolution`, with the sizes quoted above) run it.
"""
from __future__ import annotations

import functools
import numbers

import numpy

from .. import kernels
from ..kernels import convolution as _convolution
from ..autograd import Function
from ..backend import get_array_module
from ..tensor import Tensor
from .activation import FUSABLE, apply_in_place
from .shape import Pad

_FORMATS = ("channels_last", "channels_first")
# -- argument normalisation shared with pool.py -------------------------------------------------
def _ints(value, n, what, op):
    """``value`` (an int, or a sequence of ``n`` ints) as a tuple of ``n`` positive ints."""
    seq = (value,) * n if isinstance(value, numbers.Integral) else value
    try:
        seq = tuple(seq)
    except TypeError:
        seq = (value,)
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in seq):
        raise TypeError(f"{op}: {what} must be an int or a tuple of {n} ints, got {value!r}.")
    if len(seq) != n:
        raise ValueError(f"{op}: {what} must be an int or a tuple of {n} ints (one per spatial "
                         f"axis), got {value!r}.")
    if min(seq) < 1:
        raise ValueError(f"{op}: {what} must be positive, got {value!r}.")
    return tuple(int(v) for v in seq)


def _data_format(data_format, op):
    if data_format not in _FORMATS:
        raise ValueError(f"{op}: data_format must be 'channels_last' or 'channels_first', got "
                         f"{data_format!r}.")
    return data_format == "channels_first"


def _same_pad(n, k, s):
    """Keras/TF "same": ceil(n / s) outputs; an odd total pad puts the extra one at the end."""
    total = max((-(-n // s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _paddings(padding, spatial, window, strides, op, modes=("valid", "same"), explicit=True):
    """One (before, after) pair per spatial axis from a mode of ``modes``, an int or explicit pairs.

    ``window`` holds the (dilated) window extent per axis, for "same".
    """
    n = len(spatial)
    if isinstance(padding, str) and padding.lower() in modes:
        if padding.lower() == "valid":
            return ((0, 0),) * n
        return tuple(_same_pad(m, k, s) for m, k, s in zip(spatial, window, strides))
    if explicit and not isinstance(padding, (str, bool)):
        try:
            entries = (padding,) * n if isinstance(padding, numbers.Integral) else tuple(padding)
            pairs = tuple((p, p) if isinstance(p, numbers.Integral) else tuple(p) for p in entries)
            if len(pairs) == n and all(len(p) == 2 and all(
                    isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0
                    for v in p) for p in pairs):
                return tuple((int(b), int(a)) for b, a in pairs)
        except TypeError:
            pass
    hint = " or ".join(repr(m) for m in modes)
    if explicit:
        hint = (hint + ", " if hint else "") + (f"an int, or {n} non-negative ints or (before, "
                                                 "after) pairs (one per spatial axis)")
    raise ValueError(f"{op}: padding must be {hint}, got {padding!r}.")


def _channels_last(x, channels_first):
    return get_array_module(x).moveaxis(x, 1, -1) if channels_first else x


def _channels_back(y, channels_first):
    return get_array_module(y).moveaxis(y, -1, 1) if channels_first else y


def _as_5d(x):
    """(N, spatial..., C) -> (N, D, H, W, C) with size-1 leading spatial axes (a view)."""
    return x.reshape((x.shape[0],) + (1,) * (5 - x.ndim) + x.shape[1:])


def _lead(pairs, fill):
    """Extend per-axis values of 1 or 2 spatial axes to the 3 axes of the 5-D layout."""
    return (fill,) * (3 - len(pairs)) + tuple(pairs)


def _check_float(op, **arrays):
    for what, a in arrays.items():
        if a is not None and a.dtype.kind != "f":
            raise TypeError(f"{op}: {what} must be a floating-point array, got dtype {a.dtype}. "
                            "Convert it with .astype('float32').")


# -- convolution -------------------------------------------------------------------------------
def _frozen(value):
    """Lists (also nested) as tuples, so hyper-parameters can key a cache."""
    return tuple(_frozen(v) for v in value) if isinstance(value, (list, tuple)) else value


def _cached(plan, key):
    """``plan(*key)``, memoised: the same layer sees the same shapes every step."""
    try:
        hash(key)
    except TypeError:  # an unhashable hyper-parameter (an array of strides): plan afresh
        return plan.__wrapped__(*key)
    return plan(*key)


@functools.lru_cache(maxsize=256)
def _conv_plan(x_shape, kernel_shape, bias_shape, expected_dims, strides, padding, dilation_rate,
               groups, data_format, on_cpu=True):
    """Check a convolution's shapes and arguments; return its geometry (raises ValueError).

    ``on_cpu``: plan for NumPy arrays (output blocking for BLAS); CuPy arrays get none.
    """
    dims = len(kernel_shape) - 2
    op = f"conv{dims}d" if 1 <= dims <= 3 else "conv"
    if expected_dims is not None and dims != expected_dims:
        op = f"conv{expected_dims}d"
        raise ValueError(f"{op}: expected a kernel of rank {expected_dims + 2} (kernel_size..., "
                         f"in_channels // groups, out_channels), got shape {kernel_shape}.")
    if not 1 <= dims <= 3:
        raise ValueError(f"conv: the kernel must have rank 3, 4 or 5 ((k1, [k2, [k3]], "
                         f"in_channels // groups, out_channels)), got shape {kernel_shape}.")
    cf = _data_format(data_format, op)
    layout = "(batch, channels, spatial...)" if cf else "(batch, spatial..., channels)"
    if len(x_shape) != dims + 2:
        raise ValueError(f"{op}: expected an input of rank {dims + 2} {layout} for a kernel of "
                         f"shape {kernel_shape}, got shape {x_shape}.")
    g = groups
    if not isinstance(g, numbers.Integral) or isinstance(g, bool) or g < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {g!r}.")
    c_in, c_out = (x_shape[1] if cf else x_shape[-1]), kernel_shape[-1]
    if c_in % g or c_out % g or kernel_shape[-2] * g != c_in:
        raise ValueError(
            f"{op}: an input of shape {x_shape} has {c_in} channels, but a kernel of shape "
            f"{kernel_shape} with groups={g} expects {kernel_shape[-2] * g} (kernel.shape[-2] "
            f"* groups), and both the input and output channels ({c_out}) must divide by "
            f"groups. Check data_format ({data_format!r}) and the kernel's layout "
            "(kernel_size..., in_channels // groups, out_channels).")
    if bias_shape is not None and bias_shape != (c_out,):
        raise ValueError(f"{op}: bias must have shape ({c_out},) for a kernel of shape "
                         f"{kernel_shape}, got {bias_shape}.")
    spatial = x_shape[2:] if cf else x_shape[1:-1]
    ksize = kernel_shape[:-2]
    strides = _ints(strides, dims, "strides", op)
    dilation = _ints(dilation_rate, dims, "dilation_rate", op)
    window = tuple(d * (k - 1) + 1 for k, d in zip(ksize, dilation))
    pads = _paddings(padding, spatial, window, strides, op)
    padded = tuple(n + b + a for n, (b, a) in zip(spatial, pads))
    if any(p < w for p, w in zip(padded, window)):
        raise ValueError(f"{op}: the input's spatial shape {spatial} (padded: {padded}) is "
                         f"smaller than the (dilated) kernel {window}; use padding='same' or a "
                         "smaller kernel.")
    ksize, strides = _lead(ksize, 1), _lead(strides, 1)
    dilation, pads = _lead(dilation, 1), _lead(pads, (0, 0))
    out = tuple((p - w) // s + 1 for p, w, s in zip(_lead(padded, 1), _lead(window, 1), strides))
    # Output blocking: with few output channels the GEMM is too thin for BLAS (N = 6 ran at a
    # quarter of its speed), so `block` neighbouring outputs along the width share one im2col
    # row whose receptive field spans them all, and the kernel is widened to `block` shifted
    # copies (zeros elsewhere): block * out_channels GEMM columns, shorter cols. The last
    # block may overhang the output; its extra columns are cropped.
    # On the GPU a thin GEMM is no problem for cuBLAS, and blocking would only add the widened
    # kernel's zeros to its work.
    wo, block = out[2], 1
    # Narrow kernels with enough output channels are not blocked: blocking's extra
    # multiply-adds cost more than the wider GEMM gains (see kernels.convolution.BLOCK_BELOW).
    blockable = c_out < _convolution.BLOCK_BELOW or ksize[-1] > _convolution.BLOCK_NARROW
    if on_cpu and g == 1 and dilation[2] == 1 and blockable:
        # prefer a block dividing the width: no overhang
        want = min(-(-kernels.CONV_GEMM_WIDTH // c_out), wo)
        block = next((b for b in range(want, 2 * want) if wo % b == 0), want)
    # Every window a whole row of x: a 1x1 kernel at stride 1 without padding (ResNet's and
    # GoogLeNet's 1x1 convolutions), or a kernel as large as the unpadded input (LeNet's C5).
    # Then x itself, reshaped, is the cols matrix: no im2col, no col2im.
    pointwise = ksize == (1, 1, 1) and strides == (1, 1, 1)
    whole = out == (1, 1, 1) and tuple(_lead(spatial, 1)) == ksize
    if g == 1 and all(p == (0, 0) for p in pads) and (pointwise or whole):
        return op, cf, ksize, out, 0, pads, None
    cols_ksize, cols_strides = ksize, strides
    if block > 1:
        extra = (-(-wo // block) * block - wo) * strides[2]
        pads = pads[:2] + ((pads[2][0], pads[2][1] + extra),)
        cols_ksize = ksize[:2] + ((block - 1) * strides[2] + ksize[2],)
        cols_strides = strides[:2] + (block * strides[2],)
    return op, cf, ksize, out, block, pads, (cols_ksize, cols_strides, dilation)


def _compiled_chunks():
    """Whether the CPU convolutions run their chunks through the compiled region drivers: where
    a parallel region can run, and on one thread, where the driver's loop runs as Python over
    the same compiled im2col and GEMM calls (AVX-512 GEMMs included, see
    ``kernels.convolution.small_gemms``), one chunk after another."""
    return kernels.regions() or kernels.threads() == 1


class Conv(Function):
    """N-D convolution (cross-correlation, as in every DL framework) by im2col + GEMM.

    y[n, o, :] = sum_{taps t, channels c} x_pad[n, o*s + t*d, c] kernel[t, c, :] + bias.
    Gradients: [kernel; bias] = cols^T @ gy, x = col2im(gy @ kernel^T) cropped. The op only
    checks the arguments and changes layouts; a :class:`fundl.kernels.ConvPlan` (cached per
    geometry) says how the work runs, and :func:`fundl.kernels.conv_forward` /
    :func:`fundl.kernels.conv_backward` run it, whichever path that is.
    """

    def __init__(self, dims, strides, padding, dilation_rate, groups, data_format,
                 activation=None):
        self.dims = dims  # number of spatial axes, or None to take it from the kernel
        self.strides = strides
        self.padding = padding
        self.dilation_rate = dilation_rate
        self.groups = groups
        self.data_format = data_format
        if activation is not None and activation not in FUSABLE:
            raise ValueError(f"conv: activation must be None or one of {FUSABLE}, got "
                             f"{activation!r}.")
        self.activation = activation  # applied to the output in place, chunk by chunk

    def check(self, x, kernel, bias=None):
        on_cpu = type(x) is numpy.ndarray
        key = (x.shape, kernel.shape, None if bias is None else bias.shape, self.dims,
               _frozen(self.strides), _frozen(self.padding), _frozen(self.dilation_rate),
               self.groups, self.data_format, on_cpu)
        op, self.cf, ksize, out, block, pads, cols = _cached(_conv_plan, key)
        _check_float(op, x=x, kernel=kernel, bias=bias)
        x5_shape = _as_5d_shape(x.shape, self.cf)
        cols_ksize, cols_strides, dilation = cols if cols is not None else (ksize, None, None)
        self.plan = kernels.conv_plan(
            op, x5_shape, kernel.shape, ksize, out, self.groups, pads, cols_ksize,
            cols_strides or (1, 1, 1), dilation or (1, 1, 1), block, bias is not None,
            x.dtype.str, kernel.dtype.str, on_cpu, kernels.compiled(x),
            kernels.threads() if on_cpu else 1, on_cpu and _compiled_chunks())

    def forward(self, x, kernel, bias=None):
        x5 = _as_5d(_channels_last(x, self.cf))
        fuse = self.activation
        need = self.needs_grad
        y5, kept = kernels.conv_forward(self.plan, x5, kernel, bias, need[0], need[1],
                                        (lambda rows: apply_in_place(fuse, rows)) if fuse else None,
                                        fuse)
        self.save(kept)
        y = y5.reshape((x.shape[0],) + self.plan.out[3 - (kernel.ndim - 2):] + (kernel.shape[-1],))
        y = _channels_back(y, self.cf)
        self.y = y if fuse else None  # the activation's gradient reads it
        return y

    def backward(self, gy):
        need = self.needs_grad
        fused = self.activation if self.activation and not self.cf and \
            _convolution.fusable_grad(self.plan, self.activation, gy, self.y, need[1]) else None
        if self.activation and fused is None:  # through the activation first, from the output
            gy = kernels.activation_grad(self.activation, gy, self.y)
        gy5 = _as_5d(_channels_last(gy, self.cf))
        gx5, gk, gb = kernels.conv_backward(self.plan, self.saved[0], gy5, need[0], need[1],
                                            len(need) > 2 and need[2], fused,
                                            self.y if fused else None)
        gx = None
        if gx5 is not None:
            n_spatial = len(self.plan.kernel_shape) - 2
            gx = _channels_back(gx5.reshape(gx5.shape[:1] + gx5.shape[4 - n_spatial:]), self.cf)
        return gx, gk, gb


def _as_5d_shape(shape, channels_first):
    """The (N, D, H, W, C) shape of an input of ``shape`` (see :func:`_as_5d`)."""
    if channels_first:
        shape = (shape[0],) + tuple(shape[2:]) + (shape[1],)
    return (shape[0],) + (1,) * (5 - len(shape)) + tuple(shape[1:])


def conv(x, kernel, bias=None, strides=1, padding="valid", dilation_rate=1, groups=1,
         data_format="channels_last", activation=None) -> Tensor:
    """N-D convolution (1-D, 2-D or 3-D, from the kernel's rank), Keras layouts.

    ``y[n, p, o] = bias[o] + sum_{t, c} x_pad[n, p*strides + t*dilation_rate, c] * kernel[t, c, o]``
    over kernel taps t and the input channels c of output channel o's group (a
    cross-correlation, as in Keras and PyTorch).

    Args:
        x: (batch, s1, [s2, [s3]], in_channels), or (batch, in_channels, s1, ...) with
            ``data_format="channels_first"``.
        kernel: (k1, [k2, [k3]], in_channels // groups, out_channels).
        bias: (out_channels,) or None.
        strides: int or one int per spatial axis.
        padding: "valid" (none), "same" (Keras/TF: ceil(s / strides) outputs, an odd total pad
            puts the extra element at the end), an int (both sides of every axis), or one
            int or (before, after) pair per spatial axis.
        dilation_rate: int or one int per spatial axis (spacing between kernel taps).
        groups: split the channels into this many groups convolved separately (``groups ==
            in_channels`` is a depthwise convolution).
        data_format: "channels_last" (the fast path) or "channels_first".
        activation: None, or ``"relu"``, ``"tanh"`` or ``"sigmoid"`` applied to the output
            inside the op (fused: the same values as ``fl.tanh(fl.conv(...))``, one pass and
            one graph node fewer; the Conv layers use it for these activations).

    Returns:
        Tensor (batch, o1, [o2, [o3]], out_channels) (channels-first: channels on axis 1), with
        o = (s + pad_before + pad_after - dilation*(k - 1) - 1) // strides + 1.

    Example:
        >>> x = fl.randn(8, 28, 28, 1)
        >>> fl.conv(x, fl.randn(5, 5, 1, 6), padding="same").shape
        (8, 28, 28, 6)
    """
    fn = Conv(None, strides, padding, dilation_rate, groups, data_format, activation)
    return fn.apply(x, kernel) if bias is None else fn.apply(x, kernel, bias)


def _conv_n(dims):
    def conv_nd(x, kernel, bias=None, strides=1, padding="valid", dilation_rate=1, groups=1,
                data_format="channels_last") -> Tensor:
        fn = Conv(dims, strides, padding, dilation_rate, groups, data_format)
        return fn.apply(x, kernel) if bias is None else fn.apply(x, kernel, bias)

    conv_nd.__name__ = conv_nd.__qualname__ = f"conv{dims}d"
    return conv_nd


conv1d = _conv_n(1)
conv1d.__doc__ = """1-D convolution over (batch, steps, channels): :func:`conv`, rank-3 kernel.

    Args:
        x: (batch, steps, in_channels) (channels-first: (batch, in_channels, steps)).
        kernel: (kernel_size, in_channels // groups, out_channels).
        bias, strides, padding, dilation_rate, groups, data_format: as in :func:`conv`.

    Returns:
        Tensor (batch, out_steps, out_channels).

    Example:
        >>> fl.conv1d(fl.randn(4, 100, 8), fl.randn(3, 8, 16), padding="same").shape
        (4, 100, 16)
    """
conv2d = _conv_n(2)
conv2d.__doc__ = """2-D convolution of (batch, height, width, channels): :func:`conv`, 4-D kernel.

    ``y[n, i, j, o] = bias[o] + sum_{a, b, c} x_pad[n, i*sh + a*dh, j*sw + b*dw, c]
    kernel[a, b, c, o]``.

    Args:
        x: (batch, height, width, in_channels) (channels-first: (batch, in_channels, h, w)).
        kernel: (kh, kw, in_channels // groups, out_channels), Keras's Conv2D layout.
        bias, strides, padding, dilation_rate, groups, data_format: as in :func:`conv`.

    Returns:
        Tensor (batch, out_height, out_width, out_channels).

    Example:
        >>> x, kernel = fl.randn(8, 32, 32, 3), fl.randn(3, 3, 3, 16)
        >>> fl.conv2d(x, kernel, strides=2, padding="same").shape
        (8, 16, 16, 16)
    """
conv3d = _conv_n(3)
conv3d.__doc__ = """3-D convolution of (batch, depth, height, width, channels): :func:`conv`.

    Args:
        x: (batch, depth, height, width, in_channels) (channels-first: channels on axis 1).
        kernel: (kd, kh, kw, in_channels // groups, out_channels).
        bias, strides, padding, dilation_rate, groups, data_format: as in :func:`conv`.

    Returns:
        Tensor (batch, out_depth, out_height, out_width, out_channels).

    Example:
        >>> fl.conv3d(fl.randn(2, 8, 8, 8, 1), fl.randn(3, 3, 3, 1, 4)).shape
        (2, 6, 6, 6, 4)
    """


# -- transposed convolution ----------------------------------------------------------------------
def _transpose_length(n, k, s, d, padding, output_padding):
    """Keras's output length of a transposed convolution and the crop at its start."""
    window = d * (k - 1) + 1
    if output_padding is None:
        length = n * s + max(window - s, 0) if padding == "valid" else n * s
    else:
        pad = window // 2 if padding == "same" else 0
        length = (n - 1) * s + window - 2 * pad + output_padding
    # the transposed conv is the input gradient of a conv from `length` to n with this padding
    before = 0 if padding == "valid" else max((n - 1) * s + window - length, 0) // 2
    return length, before


class Conv2dTranspose(Function):
    """2-D transposed convolution: the input gradient of a 2-D convolution, as a layer.

    cols = x @ kernel^T (per input pixel, one row of kh*kw*out values), summed into the
    output by col2im with the strides; gradients: x = im2col(gy) @ kernel,
    kernel = im2col(gy)^T @ x, bias = ones @ gy.
    """

    def __init__(self, strides, padding, output_padding, dilation_rate):
        self.strides = strides
        self.padding = padding
        self.output_padding = output_padding
        self.dilation_rate = dilation_rate

    def check(self, x, kernel, bias=None):
        op = "conv2d_transpose"
        if kernel.ndim != 4 or x.ndim != 4 or x.shape[-1] != kernel.shape[-1]:
            raise ValueError(f"{op}: expected an input (batch, height, width, in_channels) and a "
                             f"kernel (kh, kw, out_channels, in_channels) with the same "
                             f"in_channels, got input {x.shape} and kernel {kernel.shape}.")
        _check_float(op, x=x, kernel=kernel, bias=bias)
        if bias is not None and bias.shape != (kernel.shape[2],):
            raise ValueError(f"{op}: bias must have shape ({kernel.shape[2]},) for a kernel of "
                             f"shape {kernel.shape}, got {bias.shape}.")
        strides = _ints(self.strides, 2, "strides", op)
        dilation = _ints(self.dilation_rate, 2, "dilation_rate", op)
        padding = self.padding.lower() if isinstance(self.padding, str) else self.padding
        if padding not in ("valid", "same"):
            raise ValueError(f"{op}: padding must be 'valid' or 'same', got {self.padding!r}.")
        out_pad = (None, None)
        if self.output_padding is not None:
            out_pad = self.output_padding
            out_pad = (out_pad,) * 2 if isinstance(out_pad, numbers.Integral) else tuple(out_pad)
            if len(out_pad) != 2 or not all(isinstance(p, numbers.Integral) and 0 <= p < s
                                            for p, s in zip(out_pad, strides)):
                raise ValueError(f"{op}: output_padding must be None or one int per spatial axis "
                                 f"in [0, strides), got {self.output_padding!r} with strides "
                                 f"{strides}.")
        geometry = [_transpose_length(n, k, s, d, padding, p) for n, k, s, d, p in
                    zip(x.shape[1:3], kernel.shape[:2], strides, dilation, out_pad)]
        if min(length for length, _ in geometry) < 1:
            raise ValueError(f"{op}: the output would be empty for an input of shape {x.shape} "
                             f"and a kernel of shape {kernel.shape}; check output_padding.")
        self.out_shape = tuple(length for length, _ in geometry)
        self.before = tuple(b for _, b in geometry)
        self.ksize, self.stride3 = (1,) + kernel.shape[:2], (1,) + strides
        self.dilation3 = (1,) + dilation
        # the uncropped output, exactly as far as the last window reaches
        self.full = (x.shape[0], 1) + tuple((n - 1) * s + d * (k - 1) + 1 for n, k, s, d in zip(
            x.shape[1:3], kernel.shape[:2], strides, dilation)) + (kernel.shape[2],)

    def _overlap(self):
        """Index pairs (into the full output, into y) of the region they share."""
        rows = [min(length, full - b) for length, full, b in zip(self.out_shape, self.full[2:4],
                                                                  self.before)]
        in_full = (slice(None), 0) + tuple(slice(b, b + r) for b, r in zip(self.before, rows))
        in_y = (slice(None),) + tuple(slice(0, r) for r in rows)
        return in_full, in_y

    def forward(self, x, kernel, bias=None):
        xp = get_array_module(x)
        x2 = x.reshape(-1, x.shape[-1])
        kr = kernel.reshape(-1, kernel.shape[-1])  # (kh*kw*out, in), rows in im2col's tap order
        cols = (x2 @ kr.T)[None]
        full = kernels.col2im(cols, self.full, self.ksize, self.stride3, self.dilation3, 1)
        y = xp.zeros((x.shape[0],) + self.out_shape + (kernel.shape[2],), dtype=full.dtype)
        in_full, in_y = self._overlap()
        y[in_y] = full[in_full]
        if bias is not None:
            y += bias
        self.save(x2 if self.needs_grad[1] else None, kr if self.needs_grad[0] else None)
        self.x_shape, self.kernel_shape = x.shape, kernel.shape
        return y

    def backward(self, gy):
        x2, kr = self.saved
        xp = get_array_module(gy)
        gfull = xp.zeros(self.full, dtype=gy.dtype)
        in_full, in_y = self._overlap()
        gfull[in_full] = gy[in_y]
        gcols = kernels.im2col(gfull, self.ksize, self.stride3, self.dilation3, 1)[0]
        gx = (gcols @ kr).reshape(self.x_shape) if self.needs_grad[0] else None
        gk = (gcols.T @ x2).reshape(self.kernel_shape) if self.needs_grad[1] else None
        gb = None
        if len(self.needs_grad) > 2 and self.needs_grad[2]:
            gy2 = gy.reshape(-1, gy.shape[-1])
            gb = xp.ones(gy2.shape[0], dtype=gy2.dtype) @ gy2
        return gx, gk, gb


def conv2d_transpose(x, kernel, bias=None, strides=1, padding="valid", output_padding=None,
                     dilation_rate=1) -> Tensor:
    """2-D transposed convolution ("deconvolution"), Keras's Conv2DTranspose, channels-last.

    The adjoint of :func:`conv2d`: ``y_full[n, i*sh + a*dh, j*sw + b*dw, o] += x[n, i, j, c] *
    kernel[a, b, o, c]``, then cropped (and, with ``output_padding``, extended by zeros) to the
    output length, plus the bias.

    Args:
        x: (batch, height, width, in_channels).
        kernel: (kh, kw, out_channels, in_channels), Keras's layout (PyTorch's is
            (in_channels, out_channels, kh, kw)).
        bias: (out_channels,) or None.
        strides, dilation_rate: int or 2 ints.
        padding: "valid" or "same".
        output_padding: None, or int / 2 ints in [0, strides): extra rows/columns at the end.

    Returns:
        Tensor (batch, out_height, out_width, out_channels), lengths as in Keras: without
        output_padding, "valid": ``n*s + max(k' - s, 0)``, "same": ``n*s``; with it,
        ``(n - 1)*s + k' - 2*pad + output_padding`` (pad = k' // 2 for "same", else 0), where
        k' = dilation*(k - 1) + 1.

    Example:
        >>> fl.conv2d_transpose(fl.randn(2, 7, 7, 8), fl.randn(3, 3, 4, 8), strides=2,
        ...                     padding="same").shape
        (2, 14, 14, 4)
    """
    fn = Conv2dTranspose(strides, padding, output_padding, dilation_rate)
    return fn.apply(x, kernel) if bias is None else fn.apply(x, kernel, bias)


# -- zero padding ---------------------------------------------------------------------------------
def zero_pad(x, padding=1, data_format="channels_last") -> Tensor:
    """Pad the spatial axes with zeros (Keras's ZeroPadding1D/2D/3D) for 1 to 3 spatial axes.

    Args:
        x: (batch, spatial..., channels) (channels-first: (batch, channels, spatial...)).
        padding: an int (both sides of every spatial axis), or one int or (before, after)
            pair per spatial axis.
        data_format: "channels_last" or "channels_first".

    Returns:
        Tensor with each spatial axis longer by before + after; the gradient is the cropped one.

    Example:
        >>> fl.zero_pad(fl.ones(1, 2, 2, 3), ((1, 0), (2, 2))).shape
        (1, 3, 6, 3)
    """
    op = "zero_pad"
    cf = _data_format(data_format, op)
    shape = x.shape
    if not 3 <= len(shape) <= 5:
        raise ValueError(f"{op}: expected an input with 1 to 3 spatial axes, (batch, spatial..., "
                         f"channels), got shape {shape}.")
    spatial = shape[2:] if cf else shape[1:-1]
    pads = _paddings(padding, spatial, (), (), op, modes=())
    width = ((0, 0), (0, 0)) + pads if cf else ((0, 0),) + pads + ((0, 0),)
    return Pad(width).apply(x)
