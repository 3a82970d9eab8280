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
  widened into that many shifted copies (2.2x faster for LeNet's first convolution);
- batch chunks: each chunk of the batch is im2col-ed (padding implicitly: no padded copy, and
  col2im writes the input gradient straight into its rows) and multiplied a few MB at a
  time, and cols larger than ``_KEEP_BYTES`` are recomputed in the backward instead of being
  kept: a ResNet-20 layer would otherwise keep 75 MB, and keeping them was no faster than
  building them twice (538-575 vs 542-547 ms per ResNet-20 step);
- parallel chunks: every thread takes whole chunks, BLAS single-threaded meanwhile, so
  im2col and col2im use all cores too (ResNet-20 step 500-520 -> 433-455 ms on 2 cores). On
  the CPU all chunks run in one compiled parallel region
  (:func:`fundl.kernels.conv._conv_forward_chunks`, its GEMMs through
  :func:`fundl.kernels.blas.gemm_function`: MKL's sequential GEMM when the optional ``mkl``
  package is installed, else NumPy's OpenBLAS), at least one chunk per thread: ResNet-20
  403-420 -> 390 ms, LeNet-5 4.2-4.4 -> 3.9 ms (its single chunk split in two; through
  Python threads that split had cost 4.4 -> 5.3 ms). Without regions (see
  :func:`fundl.kernels.regions`) and on the GPU, the chunks are Python functions run by
  :func:`fundl.kernels.map_chunks`.
"""
from __future__ import annotations

import functools
import math
import numbers

import numpy

from .. import kernels
from ..autograd import Function
from ..backend import get_array_module, ones_vector
from ..kernels.conv import pad_5d
from ..tensor import Tensor
from .activation import FUSABLE, apply_in_place
from .shape import Pad

_FORMATS = ("channels_last", "channels_first")
_GEMM_WIDTH = 40  # GEMM columns (out channels x block) to aim for; see the note below
# Measured on whole LeNet-5 training steps at 2 threads (ms): width 24: 4.23-4.31, 32: 3.99-4.05,
# 40: 3.78-3.86, 48: 3.85-4.07, 64: 3.95-4.05; ResNet-20 steps did not change beyond noise.
_CHUNK_BYTES = 1 << 22  # cols per chunk on Python threads (LeNet: one; ResNet-20: a few images)
_CHUNK_BYTES_REGION = 1 << 19  # in a compiled region: cols that stay in the core's L2 cache
# (ResNet-20 steps, A/B in one process: 4 MB 348 ms, 2 MB 320, 1 MB 311, 512 KB 300, 256 KB
# 304; LeNet-5 3.56-3.60 ms for all; on Python threads 1 MB was slower than 4: 443 vs 415)
_KEEP_BYTES = 1 << 24  # cols up to this size are kept for the backward, larger recomputed
_KEEP_BYTES_GPU = 1 << 27  # on the GPU (memory is plentiful, every recomputation launches)
_CHUNK_BYTES_GPU = 1 << 30  # cols per chunk on the GPU: the whole batch unless it is huge


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
    if on_cpu and g == 1 and dilation[2] == 1:  # prefer a block dividing the width: no overhang
        want = min(-(-_GEMM_WIDTH // c_out), wo)
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


def _chunks(n, per):
    """A batch of ``n`` as chunks of about ``per`` items, in a multiple of the thread count.

    So that every thread of :func:`fundl.kernels.map_chunks` gets an equal share (5 chunks on
    2 threads left one thread idle for a fifth of the op).
    """
    count = -(-n // per)
    if count > 1:
        count = -(-count // kernels.threads()) * kernels.threads()
    return kernels.even_slices(n, count)


class Conv(Function):
    """N-D convolution (cross-correlation, as in every DL framework) by im2col + GEMM.

    y[n, o, :] = sum_{taps t, channels c} x_pad[n, o*s + t*d, c] kernel[t, c, :] + bias.
    Gradients: [kernel; bias] = cols^T @ gy, x = col2im(gy @ kernel^T) cropped, with the
    kernel widened by :meth:`_widen` (and its gradient folded back by :meth:`_fold`) when
    outputs are blocked.
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
        key = (x.shape, kernel.shape, None if bias is None else bias.shape, self.dims,
               _frozen(self.strides), _frozen(self.padding), _frozen(self.dilation_rate),
               self.groups, self.data_format, type(x) is numpy.ndarray)
        (self.op, self.cf, self.ksize, self.out, self.block, self.pads,
         self.cols_geometry) = _cached(_conv_plan, key)
        _check_float(self.op, x=x, kernel=kernel, bias=bias)

    def _widen(self, kernel):
        """The kernel as a GEMM operand: (taps * cg, block * out) rows and columns."""
        xp = get_array_module(kernel)
        k5 = kernel.reshape(self.ksize + kernel.shape[-2:])  # (kd, kh, kw, cg, out)
        if self.block == 1:
            return k5
        kw, sw = self.ksize[2], self.cols_geometry[1][2] // self.block
        wide = xp.zeros(self.cols_geometry[0] + (k5.shape[3], self.block, k5.shape[4]),
                        dtype=k5.dtype)
        for j in range(self.block):  # block output j sees the kernel shifted by j strides
            wide[:, :, j * sw:j * sw + kw, :, j, :] = k5
        return wide.reshape(wide.shape[:4] + (-1,))

    def _fold(self, g_wide):
        """The adjoint of :meth:`_widen`: sum the block's shifted copies back into one kernel."""
        if self.block == 1:
            return g_wide
        kw, sw = self.ksize[2], self.cols_geometry[1][2] // self.block
        c_out = g_wide.shape[-1] // self.block
        g = g_wide.reshape(g_wide.shape[:4] + (self.block, c_out))
        return sum(g[:, :, j * sw:j * sw + kw, :, j, :] for j in range(self.block))

    def forward(self, x, kernel, bias=None):
        if not self.block:
            return self._forward_direct(x, kernel, bias)
        xp = get_array_module(x)
        x5 = _as_5d(_channels_last(x, self.cf))
        g, c_out = self.groups, kernel.shape[-1] * self.block
        w = self._widen(kernel).reshape(-1, g, c_out // g).transpose(1, 0, 2)  # (g, taps, out/g)
        self.taps = w.shape[1]
        # With a bias, cols get a column of ones and the kernel a last row holding the bias:
        # the GEMM adds it (numpy's broadcast add over a few channels was as slow as the
        # im2col), and the kernel-gradient GEMM returns the bias gradient as its last row.
        self.ones = bias is not None
        if self.ones:
            wb = xp.empty((g, w.shape[1] + 1, c_out // g), dtype=w.dtype)
            wb[:, :-1] = w
            if self.block == 1:
                wb[:, -1] = bias.reshape(g, -1)
            else:  # (blocking implies groups == 1) the bias once per output of the block
                wb[0, -1].reshape(self.block, -1)[...] = bias
            w = wb
        # The batch goes through in chunks (im2col-ed and multiplied chunk by chunk, on
        # parallel threads for large inputs). Small cols are kept for the kernel gradient;
        # large ones (ResNet sizes: 75 MB a layer) are recomputed in the backward.
        n, rows = x5.shape[0], self.out[0] * self.out[1] * -(-self.out[2] // self.block)
        row_bytes = rows * w.shape[1] * x.dtype.itemsize
        # CPU chunks are sized for the caches; on the GPU, where each chunk costs launches and
        # memory is plentiful, the batch is one chunk unless its cols would pass 1 GiB.
        self.region = self._region_gemm(x5, w)
        per = _CHUNK_BYTES_REGION if self.region is not None else \
            _CHUNK_BYTES if xp is numpy else _CHUNK_BYTES_GPU
        self.chunks = _chunks(n, max(1, per // row_bytes))
        if self.region is not None and len(self.chunks) < kernels.threads() <= n:
            # one chunk per thread at least: LeNet-5's single chunk is split in two here
            self.chunks = kernels.even_slices(n, kernels.threads())
        keep = self.needs_grad[1] and n * row_bytes <= (_KEEP_BYTES if xp is numpy
                                                        else _KEEP_BYTES_GPU)
        y = xp.empty((g, n * rows, c_out // g), dtype=xp.result_type(x.dtype, w.dtype))
        self.rows, self.x5_shape = rows, x5.shape
        if self.region is not None:
            x5, kept = self._forward_region(x5, w, y, keep)
            if self.activation:
                apply_in_place(self.activation, y)
        else:
            def chunk(part):  # cols of a batch chunk, and its rows of y
                cols = kernels.im2col(x5[part], *self.cols_geometry, g, ones=self.ones,
                                      pads=self.pads)
                rows_of_y = y[:, part.start * rows:part.stop * rows]
                kernels.chunk_matmul(cols, w, out=rows_of_y)
                if self.activation:  # while the chunk's outputs are still in cache
                    apply_in_place(self.activation, rows_of_y)
                return cols if keep else None

            kept = kernels.map_chunks(chunk, self.chunks, x)
            kept = kept if keep else []
        self.kernel_shape = kernel.shape
        self.save(kept, x5 if self.needs_grad[1] and not keep else None,
                  w if self.needs_grad[0] else None)
        # (groups, M, out/groups) -> (M, out): a view for groups == 1
        blocks_w = rows // (self.out[0] * self.out[1]) * self.block  # width incl. overhang
        y = y.transpose(1, 0, 2).reshape(n, self.out[0], self.out[1], blocks_w, kernel.shape[-1])
        y = y[:, :, :, :self.out[2]]  # the overhang of the last block, if any
        y = y.reshape((n,) + self.out[3 - (kernel.ndim - 2):] + (kernel.shape[-1],))
        y = _channels_back(y, self.cf)
        self.y = y if self.activation else None  # the activation's gradient reads it
        return y

    # -- the CPU's batch chunks in one compiled parallel region ---------------------------------
    def _region_gemm(self, x5, w):
        """The GEMM for :func:`fundl.kernels.conv._conv_forward_chunks` when the chunks can run
        in a Numba parallel region (NumPy arrays of one float dtype, Numba, a reachable GEMM,
        :func:`fundl.kernels.regions`), else None: the chunks then run through
        :func:`fundl.kernels.map_chunks` (also on the GPU, as one chunk)."""
        if not (kernels.compiled(x5) and type(w) is numpy.ndarray and w.dtype == x5.dtype
                and kernels.regions()):
            return None
        return kernels.gemm_function(x5.dtype)

    def _forward_region(self, x5, w, y, keep):
        """Every chunk's im2col and GEMM in one region; returns (x5 as the region read it:
        padded beforehand where implicit padding does not pay, the cols if ``keep``)."""
        x5, lo, positions = kernels.conv_im2col_input(x5, *self.cols_geometry, self.groups,
                                                      self.pads)
        # thread t takes the chunks first[t]:first[t + 1]
        first = kernels.bounds_of(kernels.even_slices(len(self.chunks), kernels.threads()))
        self.plan = (lo, positions, kernels.bounds_of(self.chunks), first, x5.shape)
        self.width = w.shape[1]  # cols columns: the taps, then the ones of the bias if any
        threads, most = len(first) - 1, self._most_rows() * w.shape[0]
        bufs = numpy.empty((len(self.chunks) if keep else threads, most * self.width), x5.dtype)
        kernels.run_region(kernels.conv_forward_chunks, threads, self.region, x5, bufs, keep,
                           numpy.ascontiguousarray(w), y, positions, *self.cols_geometry, lo,
                           *self.plan[2:4])
        return x5, (bufs if keep else None)

    def _most_rows(self):
        return max(c.stop - c.start for c in self.chunks) * self.rows

    def _backward_region(self, bufs, x5, w, gyg):
        """Both gradients, chunk by chunk, in one region: (gx (5-D) or None, the summed
        ``[dkernel; dbias]`` rows or None)."""
        dtype, g, co = gyg.dtype, self.groups, gyg.shape[2]
        need_x, need_w = self.needs_grad[0], self.needs_grad[1]
        lo, positions, chunks, first, x5_shape = self.plan
        threads, most = len(first) - 1, self._most_rows() * g
        kept = bufs is not None  # the forward's cols, one buffer per chunk
        recompute = need_w and not kept
        if not kept:
            bufs = numpy.empty((threads, most * self.width) if need_w else (0, 0), dtype)
        gx = numpy.empty(x5_shape if need_x else (0, 1, 1, 1, 1), dtype)
        gwb = numpy.empty((threads, g, self.width, co) if need_w else (0, 1, 1, 1), dtype)
        w_t = numpy.ascontiguousarray(w[:, :self.taps].transpose(0, 2, 1)) if need_x else \
            numpy.empty((g, co, self.taps), dtype)
        gbufs = numpy.empty((threads, most * self.taps) if need_x else (0, 0), dtype)
        x5 = x5 if recompute else numpy.empty((0, 1, 1, 1, 1), dtype)
        kernels.run_region(kernels.conv_backward_chunks, threads, self.region, x5, bufs,
                           kept, recompute, gyg, gyg.strides[1] // gyg.itemsize, w_t,
                           self.width, gx, gwb, gbufs, positions, *self.cols_geometry, lo,
                           chunks, first)
        if need_x and x5_shape != self.x5_shape:  # x was padded beforehand: crop the padding
            gx = gx[kernels.conv_inner(self.x5_shape, self.pads)]
        return (gx if need_x else None), (gwb.sum(axis=0) if need_w else None)

    def backward(self, gy):
        if self.activation:  # through the fused activation first, from the kept output
            gy = kernels.activation_grad(self.activation, gy, self.y)
        if not self.block:
            return self._backward_direct(gy)
        kept, x5, w = self.saved
        xp = get_array_module(gy)
        g, c_out, taps, rows = self.groups, self.kernel_shape[-1] * self.block, self.taps, self.rows
        gy5 = _as_5d(_channels_last(gy, self.cf))
        overhang = -(-self.out[2] // self.block) * self.block - self.out[2]
        if overhang:  # the cropped outputs of the last block get no gradient
            gy5 = pad_5d(gy5, ((0, 0), (0, 0), (0, overhang)))
        gy2 = xp.ascontiguousarray(gy5.reshape(-1, c_out))
        gyg = gy2.reshape(gy2.shape[0], g, c_out // g).transpose(1, 0, 2)  # (groups, M, out/g)
        need_bias = len(self.needs_grad) > 2 and self.needs_grad[2]
        if self.region is not None:
            gx5, gwb = self._backward_region(kept, x5, w, gyg)
            return self._gradients(gx5, gwb, gy2, need_bias)
        gx5 = xp.empty(self.x5_shape, gy.dtype) if self.needs_grad[0] else None

        def chunk(i):  # a batch chunk's part of [dkernel; dbias]; its rows of gx written
            part = self.chunks[i]
            g_part = gyg[:, part.start * rows:part.stop * rows]
            gwb_part = None
            if self.needs_grad[1]:  # rows of gwb: the kernel's taps, then the bias if any
                cols = kept[i] if kept else kernels.im2col(
                    x5[part], *self.cols_geometry, g, ones=self.ones, pads=self.pads)
                gwb_part = kernels.chunk_matmul(cols.transpose(0, 2, 1), g_part)
            if self.needs_grad[0]:
                gcols = kernels.chunk_matmul(g_part, w[:, :taps].transpose(0, 2, 1))
                # straight into this chunk's rows of gx; the padding's gradient is dropped
                kernels.col2im(gcols, (part.stop - part.start,) + self.x5_shape[1:],
                               *self.cols_geometry, g, pads=self.pads, out=gx5[part])
            return gwb_part

        parts = kernels.map_chunks(chunk, range(len(self.chunks)), gy)
        gwb = None
        if self.needs_grad[1]:
            gwb = parts[0]
            for p in parts[1:]:
                gwb = gwb + p
        return self._gradients(gx5, gwb, gy2, need_bias)

    def _gradients(self, gx5, gwb, gy2, need_bias):
        """The op's gradients from gx (5-D) and ``gwb`` (groups, taps [+1], out/g): the
        kernel's rows, then the bias's if it has one."""
        xp = get_array_module(gy2)
        taps, c_out = self.taps, self.kernel_shape[-1] * self.block
        gx = gk = gb = None
        if gx5 is not None:
            n_spatial = len(self.kernel_shape) - 2
            gx = _channels_back(gx5.reshape(gx5.shape[:1] + gx5.shape[4 - n_spatial:]), self.cf)
        gb_wide = None
        if gwb is not None:
            g_wide = gwb[:, :taps].transpose(1, 0, 2).reshape(
                self.cols_geometry[0] + (self.kernel_shape[-2], c_out))
            gk = self._fold(g_wide).reshape(self.kernel_shape)
            gb_wide = gwb[:, taps].reshape(c_out) if need_bias else None
        elif need_bias:  # a frozen kernel: no cols at hand
            gb_wide = ones_vector(gy2.shape[0], gy2.dtype, xp) @ gy2
        if gb_wide is not None:
            gb = gb_wide.reshape(self.block, -1).sum(axis=0)
        return gx, gk, gb

    # -- the im2col-free case (the plan's block 0): x is its own cols matrix ---------------------
    def _forward_direct(self, x, kernel, bias):
        x_cl = _channels_last(x, self.cf)
        x2 = x_cl.reshape(x.shape[0] * math.prod(self.out), math.prod(kernel.shape[:-1]))
        k2 = kernel.reshape(x2.shape[1], kernel.shape[-1])
        y = kernels.matmul(x2, k2)
        if bias is not None:
            y += bias
        if self.activation:
            apply_in_place(self.activation, y)
        self.x_cl_shape, self.kernel_shape = x_cl.shape, kernel.shape
        self.save(x2 if self.needs_grad[1] else None, k2 if self.needs_grad[0] else None)
        y = y.reshape((x.shape[0],) + self.out[3 - (kernel.ndim - 2):] + (kernel.shape[-1],))
        y = _channels_back(y, self.cf)
        self.y = y if self.activation else None
        return y

    def _backward_direct(self, gy):
        x2, k2 = self.saved
        gy2 = _channels_last(gy, self.cf).reshape(-1, self.kernel_shape[-1])
        need = self.needs_grad
        gx = gk = gb = None
        if need[0]:
            gx = _channels_back(kernels.matmul(gy2, k2.T).reshape(self.x_cl_shape), self.cf)
        if need[1]:
            gk = kernels.matmul(x2.T, gy2).reshape(self.kernel_shape)
        if len(need) > 2 and need[2]:
            gb = ones_vector(gy2.shape[0], gy2.dtype, get_array_module(gy2)) @ gy2
        return gx, gk, gb


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
