"""A convolution's machinery behind one entry point per direction, driven by a plan.

:func:`conv_plan` turns a convolution's geometry (from :mod:`fundl.ops.conv`, which checks
the arguments) into a :class:`ConvPlan`: the output blocking, the batch chunks, and which of
three paths runs underneath:

- ``"direct"``: every window is a whole row of x (1x1 kernels at stride 1, kernels as large
  as the input): x reshaped is the cols matrix, one GEMM each way, no im2col (through the
  dense layer's kernels, :func:`fundl.kernels.fused.dense_forward`, where they apply);
- ``"region"``: every batch chunk's im2col and GEMMs in one compiled Numba parallel region
  (:func:`fundl.kernels.conv._conv_forward_chunks`), NumPy arrays where regions can run;
- ``"chunks"``: the same chunks as Python functions run by :func:`fundl.kernels.map_chunks`
  (Python threads on the CPU without regions; one chunk, serially, on the GPU).

A region plan of a 3x3 stride-1 "same" float32 convolution (ResNet's) has ``images`` set:
where OpenBLAS's AVX-512 small kernels are at hand it runs without im2col
(:mod:`fundl.kernels.conv3x3`: GEMMs that read the padded image itself), else as a region.

:func:`conv_forward` and :func:`conv_backward` take the plan and plain arrays (x and the
kernel as the op has them, 5-D channels-last) and return plain arrays; what one path keeps
for the backward travels in a :class:`ConvSaved`. The ops read the same whatever runs
underneath. :func:`conv_forward_reference` and :func:`conv_backward_reference` compute the
same results in plain NumPy (a direct sum over the kernel's taps, no im2col): the tests
compare every path against them.

Plans are cached per geometry (:func:`conv_plan` is memoised), so a layer pays for one
dictionary lookup per call.

Example:
    >>> plan = conv_plan("conv2d", (8, 1, 28, 28, 1), (5, 5, 1, 6), (1, 5, 5), (1, 24, 24),
    ...                  1, ((0, 0),) * 3, (1, 1, 1), (1, 1, 1), True, "float32", "float32")
    >>> y5, saved = conv_forward(plan, x5, kernel, bias, need_x=False, need_k=True)
    >>> gx5, gk, gb = conv_backward(plan, saved, gy5, need_x=False, need_k=True, need_b=True)
"""
from __future__ import annotations

import ctypes
import dataclasses
import functools
import math

import numpy

from .. import kernels as _k
from ..runtime import pooled_empty
from ..backend import get_array_module, ones_vector
from . import _parallel
from . import conv3x3 as _conv3x3
from . import activation as _activation
from . import fused as _fused
from .conv import _conv_backward_chunks, _conv_forward_chunks, im2col_input, inner, pad_5d
from .conv import _implicit as implicit_padding
from .conv import _out_shape as out_shape
from .conv import _padded as padded_shape

GEMM_WIDTH = 40
"""GEMM columns (out channels x block) that output blocking aims for. Measured on whole
LeNet-5 training steps at 2 threads (ms): width 24: 4.23-4.31, 32: 3.99-4.05, 40: 3.78-3.86,
48: 3.85-4.07, 64: 3.95-4.05; ResNet-20 steps did not change beyond noise."""
BLOCK_BELOW = 16
"""Kernels at most ``BLOCK_NARROW`` wide with this many output channels or more are not
output-blocked. A GEMM of 16 columns already ran at ~85 % of the rate of a wide one on one
core (OpenBLAS 0.3, AMD EPYC; 6 columns: ~37 %, 8: ~70 %), and blocking b outputs of a k-wide
kernel multiplies the work by (b - 1 + k) / k: ResNet-20's 16-channel 3x3 layers ran at block
4 with twice the multiply-adds (single-threaded step 666 -> 594 ms without blocking in its
16- and 32-channel stages). Wider kernels keep it: blocking also shrinks the cols that
im2col writes by b / (b - 1 + k)."""
BLOCK_NARROW = 5
"""See :data:`BLOCK_BELOW`. 5: LeNet-5's 5x5 C3 (16 channels) is no longer blocked (block 5
had 1.8x its multiply-adds). Since its GEMMs take OpenBLAS's AVX-512 small kernels
(:func:`small_gemms`), for which 16 columns are one vector, the whole keras-way LeNet-5
training step (batch 64, default malloc, loaded 2-core AMD EPYC, interleaved runs) went from
4.9-5.4 to 4.0 ms on one thread and 3.1 to 2.1 ms on two; with NumPy's AVX2 GEMMs
(``FUNDL_BLAS=numpy``) it was no slower (6.3 -> 6.1 ms, one thread). With 3 (before), 5x5
kernels were blocked whatever their channels; blocking had paid for C3 before the AVX-512
kernels."""
CHUNK_BYTES = 1 << 22
"""cols per chunk on Python threads (LeNet: one; ResNet-20: a few images)."""
CHUNK_BYTES_REGION = 1 << 19
"""cols per chunk in a compiled region: they stay in the core's L2 cache (ResNet-20 steps,
A/B in one process: 4 MB 348 ms, 2 MB 320, 1 MB 311, 512 KB 300, 256 KB 304; LeNet-5
3.56-3.60 ms for all; on Python threads 1 MB was slower than 4: 443 vs 415)."""
CHUNK_BYTES_GPU = 1 << 30
"""cols per chunk on the GPU: the whole batch unless it is huge (each chunk launches)."""
KEEP_BYTES = 1 << 24
"""cols up to this size are kept for the backward, larger recomputed: a ResNet-20 layer would
otherwise keep 75 MB, and keeping them was no faster than building them twice."""
KEEP_BYTES_GPU = 1 << 27
"""The same on the GPU (memory is plentiful, every recomputation launches)."""


@dataclasses.dataclass(frozen=True, eq=False)
class ConvPlan:
    """How one convolution geometry runs: everything but the arrays.

    Attributes:
        op: the op's name, for messages.
        path: ``"direct"``, ``"region"`` or ``"chunks"`` (see the module docstring).
        x5_shape: x as (N, D, H, W, C), channels-last, unpadded.
        kernel_shape: the kernel's own shape (kd.., C // groups, out).
        groups: channel groups.
        ksize: (kd, kh, kw); out: output positions (Do, Ho, Wo).
        block: outputs neighbouring along the width that share one cols row (1: none).
        pads: zero padding per spatial axis, with the overhang of the last block.
        cols_ksize, cols_strides, dilation: the window im2col cuts (widened by the block).
        ones: a bias is added (cols get a column of ones, the GEMM weights a bias row).
        rows: cols rows per sample; taps: cols columns without the ones; width: with them.
        chunks: the batch's chunks (slices); keep_fits: all chunks' cols fit ``KEEP_BYTES``.
        lo, positions, padded: the region path's implicit padding before each axis, output
            positions and x's shape as the region reads it (padded beforehand where implicit
            padding does not pay); chunk_bounds, first: the chunks and each thread's first
            chunk as the compiled driver takes them. images: for a geometry the 3x3 path
            (:mod:`fundl.kernels.conv3x3`) may take, each thread's first image (bounds_of),
            else None.
    """

    op: str
    path: str
    x5_shape: tuple
    kernel_shape: tuple
    groups: int
    ksize: tuple
    out: tuple
    block: int
    pads: tuple
    cols_ksize: tuple
    cols_strides: tuple
    dilation: tuple
    ones: bool
    rows: int
    taps: int
    width: int
    chunks: tuple = ()
    keep_fits: bool = False
    lo: tuple = ()
    positions: tuple = ()
    padded: tuple = ()
    chunk_bounds: object = None
    first: object = None
    images: object = None

    @property
    def cols_geometry(self):
        """(ksize, strides, dilation) of the windows im2col cuts."""
        return self.cols_ksize, self.cols_strides, self.dilation

    @property
    def c_out(self):
        """GEMM columns: output channels times the block."""
        return self.kernel_shape[-1] * self.block

    def most_rows(self):
        """cols rows of the largest chunk (per group)."""
        return max(c.stop - c.start for c in self.chunks) * self.rows


@dataclasses.dataclass(eq=False)
class ConvSaved:
    """What :func:`conv_forward` keeps for :func:`conv_backward` (None: not needed).

    ``cols``: the direct path's x as a matrix, the chunks' cols (a list, one per chunk) or the
    region's cols buffers (one per chunk), when kept; ``x5``: x (as the region read it) when
    the cols are built again in the backward; ``w``: the GEMM weights (groups, width,
    out / groups) with the bias row, for the input gradient. ``three_by_three``: the forward
    took the 3x3 path (``x5``: x as (N, H, W, C); ``w``: the flipped kernel,
    :func:`fundl.kernels.conv3x3.flipped`).
    """

    cols: object = None
    x5: object = None
    w: object = None
    three_by_three: bool = False


def _chunks(n, per, threads):
    """A batch of ``n`` as chunks of about ``per`` items, in a multiple of ``threads``, so
    that every thread gets an equal share (5 chunks on 2 threads left one thread idle for a
    fifth of the op)."""
    count = -(-n // per)
    if count > 1:
        count = -(-count // threads) * threads
    return tuple(_parallel.even_slices(n, count))


@functools.lru_cache(maxsize=256)
def conv_plan(op, x5_shape, kernel_shape, ksize, out, groups, pads, cols_ksize, cols_strides,
              dilation, block, ones, x_dtype, w_dtype, on_cpu=True, compiled=False, threads=1,
              regions=False):
    """The :class:`ConvPlan` of a checked convolution geometry (memoised).

    Args:
        op: the op's name. x5_shape: x as (N, D, H, W, C). kernel_shape: the kernel's shape.
        ksize, out: (kd, kh, kw) and the output positions (Do, Ho, Wo).
        groups: channel groups. pads: (before, after) per spatial axis, incl. the overhang.
        cols_ksize, cols_strides, dilation: im2col's window; ``block``: outputs per cols
            row along the width, 0 when every window is a whole row of x (the direct path).
        ones: a bias is added. x_dtype, w_dtype: the dtypes (str) of x and the kernel.
        on_cpu: NumPy arrays (CuPy: one big chunk). compiled: :func:`fundl.kernels.compiled`
            of x. threads: :func:`fundl.kernels.threads`. regions:
            :func:`fundl.kernels.regions` (a compiled parallel region may run).

    Returns:
        ConvPlan.
    """
    c_in_g = kernel_shape[-2]
    if not block:
        taps = math.prod(kernel_shape[:-1])
        return ConvPlan(op, "direct", x5_shape, kernel_shape, groups, ksize, out, 1, pads,
                        ksize, (1, 1, 1), dilation, ones, math.prod(out), taps, taps + ones)
    n = x5_shape[0]
    rows = out[0] * out[1] * -(-out[2] // block)
    taps = math.prod(cols_ksize) * c_in_g
    width = taps + ones
    row_bytes = rows * width * numpy.dtype(x_dtype).itemsize
    region = on_cpu and compiled and regions and x_dtype == w_dtype and \
        _k.gemm_function(x_dtype) is not None
    per = CHUNK_BYTES_REGION if region else CHUNK_BYTES if on_cpu else CHUNK_BYTES_GPU
    chunks = _chunks(n, max(1, per // row_bytes), threads)
    if region and len(chunks) < threads <= n:
        # one chunk per thread at least: LeNet-5's single chunk is split in two here
        chunks = tuple(_parallel.even_slices(n, threads))
    keep_fits = n * row_bytes <= (KEEP_BYTES if on_cpu else KEEP_BYTES_GPU)
    common = dict(op=op, x5_shape=x5_shape, kernel_shape=kernel_shape, groups=groups,
                  ksize=ksize, out=out, block=block, pads=pads, cols_ksize=cols_ksize,
                  cols_strides=cols_strides, dilation=dilation, ones=ones, rows=rows,
                  taps=taps, width=width, chunks=chunks, keep_fits=keep_fits)
    if not region:
        return ConvPlan(path="chunks", **common)
    if _three_by_three(x5_shape, ksize, groups, pads, cols_strides, dilation, block, x_dtype):
        # the im2col-free path when its kernels are on at run time (the region path otherwise)
        common["images"] = _parallel.bounds_of(_parallel.even_slices(n, threads))
    # what the region reads (as im2col_input makes it): x padded beforehand where implicit
    # padding does not pay, else x with the padding left to the kernel
    if implicit_padding(x5_shape, cols_ksize, dilation, groups, pads):
        padded, lo = x5_shape, tuple(b for b, _ in pads)
        positions = out_shape(padded_shape(x5_shape, pads), cols_ksize, cols_strides, dilation)
    else:
        padded, lo = padded_shape(x5_shape, pads), (0, 0, 0)
        positions = out_shape(padded, cols_ksize, cols_strides, dilation)
    first = _parallel.bounds_of(_parallel.even_slices(len(chunks), threads))
    return ConvPlan(path="region", lo=lo, positions=positions, padded=padded,
                    chunk_bounds=_parallel.bounds_of(list(chunks)), first=first, **common)


def _three_by_three(x5_shape, ksize, groups, pads, strides, dilation, block, dtype):
    """Whether the im2col-free 3x3 path (:mod:`fundl.kernels.conv3x3`) may run this geometry:
    a 2-D 3x3 kernel at stride 1 padded by one ("same"), no groups, no dilation, enough
    channels and width, float32 (:func:`_three_by_three_on` says whether its kernels are)."""
    return (ksize == (1, 3, 3) and x5_shape[1] == 1 and groups == 1 and block == 1
            and pads == ((0, 0), (1, 1), (1, 1)) and strides == (1, 1, 1)
            and dilation == (1, 1, 1) and x5_shape[4] >= _conv3x3.MIN_CHANNELS
            and x5_shape[3] >= _conv3x3.MIN_WIDTH and numpy.dtype(dtype) == numpy.float32)


def _three_by_three_on():
    """Whether the 3x3 path's kernels are here now: OpenBLAS's AVX-512 small kernels offered
    (:func:`small_gemms`; tests and ``SMALL_KERNELS`` switch them), the accumulating one
    found, and the check of :func:`fundl.kernels.conv3x3.agree` passed."""
    return small_gemms(numpy.float32)[2] and small_nn_beta() is not None and _conv3x3.agree()


# -- the GEMM weights: the kernel widened for the output blocks, with the bias row ------------
def widen(plan, kernel):
    """The kernel as a GEMM operand: (kd, kh, kw', C // groups, block * out), the block's
    outputs each seeing the kernel shifted by one stride (zeros elsewhere)."""
    xp = get_array_module(kernel)
    k5 = kernel.reshape(plan.ksize + kernel.shape[-2:])  # (kd, kh, kw, cg, out)
    if plan.block == 1:
        return k5
    kw, sw = plan.ksize[2], plan.cols_strides[2] // plan.block
    wide = xp.zeros(plan.cols_ksize + (k5.shape[3], plan.block, k5.shape[4]), dtype=k5.dtype)
    for j in range(plan.block):  # block output j sees the kernel shifted by j strides
        wide[:, :, j * sw:j * sw + kw, :, j, :] = k5
    return wide.reshape(wide.shape[:4] + (-1,))


def fold(plan, g_wide):
    """The adjoint of :func:`widen`: the block's shifted copies summed back into one kernel."""
    if plan.block == 1:
        return g_wide
    kw, sw = plan.ksize[2], plan.cols_strides[2] // plan.block
    c_out = g_wide.shape[-1] // plan.block
    g = g_wide.reshape(g_wide.shape[:4] + (plan.block, c_out))
    return sum(g[:, :, j * sw:j * sw + kw, :, j, :] for j in range(plan.block))


@functools.lru_cache(maxsize=64)
def _widen_index(plan):
    """For a blocked plan without groups: the (width, c_out) GEMM weights of
    :func:`gemm_weights` as indices into ``[kernel.ravel(), bias, 0]``: one gather builds them
    and one ``bincount`` over the same indices folds their gradient back (:func:`fold`), where
    :func:`widen` and :func:`fold` take a Python loop over the block (LeNet-5's C1, block 7:
    ~12 and ~18 us per call, against a few)."""
    co = plan.kernel_shape[-1]
    size = math.prod(plan.kernel_shape)
    # widen() the kernel's element numbers + 1: its zeros are the places no element covers
    wide = widen(plan, numpy.arange(1, size + 1).reshape(plan.kernel_shape))
    index = numpy.where(wide > 0, wide - 1, size + co * plan.ones).reshape(-1, plan.block * co)
    if plan.ones:  # the bias row: the bias once per output of the block
        bias_row = numpy.tile(numpy.arange(size, size + co), plan.block)[None]
        index = numpy.concatenate([index, bias_row])
    return index


def gemm_weights(plan, kernel, bias):
    """(groups, width, out / groups): the widened kernel per group, then (with a bias) a last
    row holding the bias: the GEMM adds it (NumPy's broadcast add over a few channels was as
    slow as the im2col), and the kernel-gradient GEMM returns the bias gradient as its last
    row."""
    xp = get_array_module(kernel)
    g, c_out = plan.groups, plan.c_out
    if plan.block > 1 and xp is numpy:  # (blocking implies groups == 1)
        parts = [kernel.ravel(), numpy.zeros(1, kernel.dtype)]
        if plan.ones:
            parts.insert(1, numpy.asarray(bias, kernel.dtype))
        return numpy.concatenate(parts)[_widen_index(plan)][None]
    w = widen(plan, kernel).reshape(-1, g, c_out // g).transpose(1, 0, 2)  # (g, taps, out/g)
    if not plan.ones:
        return w
    wb = xp.empty((g, w.shape[1] + 1, c_out // g), dtype=w.dtype)
    wb[:, :-1] = w
    if plan.block == 1:
        wb[:, -1] = bias.reshape(g, -1)
    else:  # (blocking implies groups == 1) the bias once per output of the block
        wb[0, -1].reshape(plan.block, -1)[...] = bias
    return wb


# -- the entry points ----------------------------------------------------------------------------
def conv_forward(plan, x5, kernel, bias=None, need_x=True, need_k=True, epilogue=None,
                 activation=None):
    """The convolution of ``x5`` (N, D, H, W, C) by ``kernel`` (+ ``bias``) as ``plan`` says.

    Args:
        plan: the geometry's :class:`ConvPlan`.
        x5: x, 5-D channels-last (NumPy or CuPy).
        kernel, bias: as the op has them (bias None when the plan has none).
        need_x, need_k: x's and the kernel's gradients will be asked for (what to keep).
        epilogue: None, or a function applied in place to blocks of the output rows (a fused
            activation; chunk by chunk while they are in cache where possible).
        activation: the name of the activation ``epilogue`` applies, if any: a region plan
            applies ``"relu"`` itself, to each chunk's rows inside the region (the same values
            as :func:`fundl.ops.activation.apply_in_place`), and skips ``epilogue``.

    Returns:
        (y5 (N, Do, Ho, Wo, out) channels-last, a :class:`ConvSaved` for the backward).
    """
    xp = get_array_module(x5)
    n, c_out = x5.shape[0], kernel.shape[-1]
    if plan.path == "direct":
        x2 = x5.reshape(n * plan.rows, plan.taps)
        k2 = kernel.reshape(plan.taps, c_out)
        y = _fused.dense_forward(x2, k2)  # a dense layer's product: its AVX-512 kernels
        if y is None:
            y = _k.matmul(x2, k2)
        if bias is not None:
            y += bias
        if epilogue is not None:
            epilogue(y)
        saved = ConvSaved(cols=x2 if need_k else None, w=k2 if need_x else None)
        return y.reshape((n,) + plan.out + (c_out,)), saved
    if plan.images is not None and _three_by_three_on():
        return _forward_3x3(plan, x5, kernel, bias, need_x, need_k, epilogue)
    g, rows = plan.groups, plan.rows
    w = gemm_weights(plan, kernel, bias)
    keep = need_k and plan.keep_fits
    y = pooled_empty(xp, (g, n * rows, plan.c_out // g), xp.result_type(x5.dtype, w.dtype))
    if plan.path == "region":
        relu = activation == "relu" and y.flags.c_contiguous
        x5, kept = _forward_region(plan, x5, w, y, keep, relu)
        if epilogue is not None and not relu:
            epilogue(y)
    else:
        def chunk(part):  # cols of a batch chunk, and its rows of y
            cols = _k.im2col(x5[part], *plan.cols_geometry, g, ones=plan.ones, pads=plan.pads)
            rows_of_y = y[:, part.start * rows:part.stop * rows]
            _k.chunk_matmul(cols, w, out=rows_of_y)
            if epilogue is not None:  # while the chunk's outputs are still in cache
                epilogue(rows_of_y)
            return cols if keep else None

        kept = _k.map_chunks(chunk, plan.chunks, x5)
        kept = kept if keep else None
    saved = ConvSaved(cols=kept, x5=x5 if need_k and not keep else None,
                      w=w if need_x else None)
    # (groups, M, out/groups) -> (M, out): a view for groups == 1
    blocks_w = rows // (plan.out[0] * plan.out[1]) * plan.block  # width incl. overhang
    y = y.transpose(1, 0, 2).reshape(n, plan.out[0], plan.out[1], blocks_w, c_out)
    return y[:, :, :, :plan.out[2]], saved  # the overhang of the last block, if any


def fusable_grad(plan, kind, gy, y, need_k):
    """Whether :func:`conv_backward` can take the gradient through the fused activation
    ``kind`` itself (``activation=kind``), inside its region: a region plan without groups or
    an overhanging last block, the kernel's gradient asked for (the bias's then comes from
    the same products), and ``gy`` / ``y`` (as the op has them: the gradient before the
    activation and its output) NumPy arrays of the plan's dtype and shape, channels-last
    and C-contiguous, unless ReLU's gradient is known to change nothing
    (:func:`fundl.kernels.activation.mark_relu_applied`).

    Why: the separate pass (:func:`fundl.kernels.activation_grad`) wrote a new array of the
    whole gradient, which the region read back; inside it each chunk's rows are written
    just before its products read them (a classic LeNet-5's C1 gradient is 1.2 MB).
    """
    return (plan.path == "region" and need_k and plan.groups == 1 and kind in _activation.KINDS
            and plan.out[2] % plan.block == 0 and type(gy) is numpy.ndarray
            and type(y) is numpy.ndarray and gy.shape == y.shape and gy.dtype == y.dtype
            and y.flags.c_contiguous and gy.flags.c_contiguous
            and y.size == plan.x5_shape[0] * math.prod(plan.out) * plan.kernel_shape[-1]
            and y.shape[-1] == plan.kernel_shape[-1]
            and not _activation._relu_applied(kind, gy, y))


def conv_backward(plan, saved, gy5, need_x=True, need_k=True, need_b=False, activation=None,
                  y5=None):
    """The gradients of :func:`conv_forward` from ``gy5`` (N, Do, Ho, Wo, out).

    Args:
        plan, saved: the forward's plan and what it kept.
        gy5: the output's gradient, 5-D channels-last.
        need_x, need_k, need_b: the gradients wanted (x's, the kernel's, the bias's).
        activation, y5: None, or the fused activation (a kind :func:`fusable_grad` accepted
            for these arguments) and its output: ``gy5`` is then the gradient before it, and
            the region applies the activation's gradient chunk by chunk.

    Returns:
        (gx5 (N, D, H, W, C) or None, g_kernel (kernel_shape) or None, g_bias or None).
    """
    xp = get_array_module(gy5)
    c_out = plan.kernel_shape[-1]
    if plan.path == "direct":
        gy2 = gy5.reshape(-1, c_out)
        grads = _fused.dense_backward(gy2, saved.cols, saved.w, need_x, need_k, need_b)
        if grads is not None:  # a dense layer's gradients, as Linear takes them
            gx, gk, gb = grads
            return (gx.reshape(plan.x5_shape) if need_x else None,
                    gk.reshape(plan.kernel_shape) if need_k else None, gb)
        gx = gk = gb = None
        if need_x:
            gx = _k.matmul(gy2, saved.w.T).reshape(plan.x5_shape)
        if need_k:
            gk = _k.matmul(saved.cols.T, gy2).reshape(plan.kernel_shape)
        if need_b:
            gb = ones_vector(gy2.shape[0], gy2.dtype, xp) @ gy2
        return gx, gk, gb
    if saved.three_by_three:  # the forward took the 3x3 path
        return _backward_3x3(plan, saved, gy5, need_x, need_k, need_b)
    g, rows, taps = plan.groups, plan.rows, plan.taps
    overhang = -(-plan.out[2] // plan.block) * plan.block - plan.out[2]
    if overhang:  # the cropped outputs of the last block get no gradient
        gy5 = pad_5d(gy5, ((0, 0), (0, 0), (0, overhang)))
    gy2 = xp.ascontiguousarray(gy5.reshape(-1, plan.c_out))
    gyg = gy2.reshape(gy2.shape[0], g, plan.c_out // g).transpose(1, 0, 2)  # (g, M, out/g)
    if plan.path == "region":
        act = 0
        if activation is not None:
            act = _activation.KINDS.index(activation) + 1
            y5 = numpy.ascontiguousarray(y5.reshape(gy2.shape))
        gx5, gwb = _backward_region(plan, saved, gyg, need_x, need_k, act, y5)
    else:
        gx5 = pooled_empty(xp, plan.x5_shape, gy5.dtype) if need_x else None
        kept, x5, w = saved.cols, saved.x5, saved.w

        def chunk(i):  # a batch chunk's part of [dkernel; dbias]; its rows of gx written
            part = plan.chunks[i]
            g_part = gyg[:, part.start * rows:part.stop * rows]
            gwb_part = None
            if need_k:  # rows of gwb: the kernel's taps, then the bias if any
                cols = kept[i] if kept is not None else _k.im2col(
                    x5[part], *plan.cols_geometry, g, ones=plan.ones, pads=plan.pads)
                gwb_part = _k.chunk_matmul(cols.transpose(0, 2, 1), g_part)
            if need_x:
                gcols = _k.chunk_matmul(g_part, w[:, :taps].transpose(0, 2, 1))
                # straight into this chunk's rows of gx; the padding's gradient is dropped
                _k.col2im(gcols, (part.stop - part.start,) + plan.x5_shape[1:],
                          *plan.cols_geometry, g, pads=plan.pads, out=gx5[part])
            return gwb_part

        parts = _k.map_chunks(chunk, range(len(plan.chunks)), gy5)
        gwb = None
        if need_k:
            gwb = parts[0]
            for p in parts[1:]:
                gwb = gwb + p
    gk = gb_wide = None
    if gwb is not None and plan.block > 1 and type(gwb) is numpy.ndarray:
        # the block's shifted copies summed back in one pass over the widened weights' indices
        size = math.prod(plan.kernel_shape)
        sums = numpy.bincount(_widen_index(plan).ravel(), weights=gwb.ravel(),
                              minlength=size + plan.kernel_shape[-1] + 1)
        gk = sums[:size].reshape(plan.kernel_shape).astype(gwb.dtype)
        gb = sums[size:size + plan.kernel_shape[-1]].astype(gwb.dtype) if need_b else None
        return gx5, gk, gb
    if gwb is not None:
        g_wide = gwb[:, :taps].transpose(1, 0, 2).reshape(
            plan.cols_ksize + (plan.kernel_shape[-2], plan.c_out))
        gk = fold(plan, g_wide).reshape(plan.kernel_shape)
        gb_wide = gwb[:, taps].reshape(plan.c_out) if need_b else None
    elif need_b:  # a frozen kernel: no cols at hand
        gb_wide = ones_vector(gy2.shape[0], gy2.dtype, xp) @ gy2
    gb = gb_wide.reshape(plan.block, -1).sum(axis=0) if gb_wide is not None else None
    return gx5, gk, gb


# -- OpenBLAS's AVX-512 small-matrix kernels, for the regions' GEMMs --------------------------
SMALL_KERNELS = True
"""Let :func:`small_gemms` offer OpenBLAS's AVX-512 kernels (False: always the cblas GEMM)."""

_I64, _PTR, _F32 = ctypes.c_int64, ctypes.c_void_p, ctypes.c_float
_SMALL_PROTO = ctypes.CFUNCTYPE(ctypes.c_int, _I64, _I64, _I64, _PTR, _I64, _F32, _PTR, _I64,
                                _F32, _PTR, _I64)
_SMALL_B0_PROTO = ctypes.CFUNCTYPE(ctypes.c_int, _I64, _I64, _I64, _PTR, _I64, _F32, _PTR,
                                   _I64, _PTR, _I64)
# the signatures of OpenBLAS's sgemm_small_kernel_{nn,nt}_<CORE>: (M, N, K, A, lda, alpha, B,
# ldb, beta, C, ldc), column-major, C = alpha op(A) op(B) + beta C (C is read even when beta
# is 0: NaN garbage would stay), and of the _b0_ variants, without beta: C = alpha op(A) op(B)


def _never(*args):  # the stand-ins when the kernels are not used (the region never calls them)
    return 0


_NEVER = (_SMALL_B0_PROTO(_never), _SMALL_PROTO(_never))
_AVX512 = ("avx512f", "avx512bw", "avx512dq", "avx512vl")  # what OpenBLAS's SkylakeX code needs


def _small_agree(nn, nt):
    """Whether the two kernels compute what numpy.matmul does, as :func:`_gemm` calls them
    (nn: beta 0 over NaN garbage; nt: beta 0 and 1; padded leading dimensions)."""
    rng = numpy.random.default_rng(0)
    for m, k, n in ((5, 7, 3), (37, 19, 21)):
        a = rng.standard_normal((m, k + 2)).astype(numpy.float32)
        at = rng.standard_normal((k, m + 3)).astype(numpy.float32)
        b = rng.standard_normal((k, n + 1)).astype(numpy.float32)
        c = numpy.full((m, n + 2), numpy.nan, numpy.float32)
        nn(n, m, k, b.ctypes.data, n + 1, 1.0, a.ctypes.data, k + 2, c.ctypes.data, n + 2)
        ok = numpy.allclose(c[:, :n], a[:, :k] @ b[:, :n], rtol=1e-4, atol=1e-4)
        for beta in (0.0, 1.0):
            c = numpy.full((m, n + 2), 0.5, numpy.float32)
            nt(n, m, k, b.ctypes.data, n + 1, 1.0, at.ctypes.data, m + 3, beta, c.ctypes.data,
               n + 2)
            ok = ok and numpy.allclose(c[:, :n], at[:, :m].T @ b[:, :n] + 0.5 * beta,
                                       rtol=1e-4, atol=1e-4) and (c[:, n:] == 0.5).all()
        if not ok:
            return False
    return True


def small_kernel(variant):
    """OpenBLAS's ``sgemm_small_kernel_<variant>_SKYLAKEX`` (variant "b0_nn", "nt", "b0_tn",
    ...) from NumPy's own OpenBLAS, typed for calls from Numba and ctypes (the ``b0_``
    kernels take no beta); AttributeError where the library has no such symbol. The one
    place that names these OpenBLAS-internal symbols: callers check the kernels they use
    against numpy.matmul (:func:`_small_agree`, :func:`fundl.kernels.fused._dense_agree`)."""
    proto = _SMALL_B0_PROTO if variant.startswith("b0_") else _SMALL_PROTO
    return proto((f"sgemm_small_kernel_{variant}_SKYLAKEX", _k.blas._library()))


@functools.lru_cache(maxsize=None)
def _small_kernels():
    """OpenBLAS's SkylakeX small-matrix sgemm kernels (beta-0 nn, nt) from NumPy's own OpenBLAS, or
    None: not an AVX-512 CPU, ``FUNDL_BLAS`` set to a library, MKL chosen for fundl's GEMMs,
    symbols missing, or results that disagree with numpy.matmul."""
    if not SMALL_KERNELS or not set(_AVX512) <= _k.blas.cpu_flags() or \
            _k.blas._choice() != "auto" or _k.blas.library(numpy.float32) != "numpy":
        return None
    try:
        nn, nt = small_kernel("b0_nn"), small_kernel("nt")
        return (nn, nt) if _small_agree(nn, nt) else None
    except Exception:  # noqa: BLE001 - no such symbols (another BLAS, another version)
        return None


def small_nn_beta():
    """OpenBLAS's ``sgemm_small_kernel_nn_SKYLAKEX`` (with beta: accumulating products, for
    :mod:`fundl.kernels.conv3x3`), or None where :func:`_small_kernels` offers none or the
    symbol is missing; :func:`fundl.kernels.conv3x3.agree` checks it against NumPy."""
    return _nn_beta() if _small_kernels() is not None else None


@functools.lru_cache(maxsize=None)
def _nn_beta():
    try:
        return small_kernel("nn")
    except Exception:  # noqa: BLE001 - no such symbol (another OpenBLAS version)
        return None


def small_b0_nt(dtype):
    """OpenBLAS's beta-0 "nt" small kernel, ``sgemm_small_kernel_b0_nt_SKYLAKEX``: the row-major
    ``c = a.T @ b`` of :func:`fundl.kernels.conv._gemm`'s ``nt`` call without its beta
    argument (c is written, never read), for the LSTM's inference loop: ``(kernel, True)`` where
    :func:`small_gemms` offers its kernels and this one agrees with numpy.matmul, else
    ``(a stand-in of the same type, never called, False)``.

    Why: the "nt" kernel with beta 0 still reads C (so C must be zeroed first: 0 * NaN is
    NaN); the beta-0 one neither reads nor needs zeroing. 512 x 160 @ 160 x 32 (an LSTM
    inference step of a 32-row part): 22.0 against 22.7 us with the zeroing, the same
    values bit for bit (one core, AMD EPYC, Zen 5, 28 products, best of 20)."""
    kernel = _b0_nt() if small_gemms(dtype)[2] else None
    return (kernel, True) if kernel is not None else (_NEVER[0], False)


@functools.lru_cache(maxsize=None)
def _b0_nt():
    try:
        kernel = small_kernel("b0_nt")
    except Exception:  # noqa: BLE001 - no such symbol (another OpenBLAS version)
        return None
    rng = numpy.random.default_rng(1)
    for m, k, n in ((5, 7, 3), (37, 19, 21)):  # padded leading dimensions, C full of NaN
        at = rng.standard_normal((k, m + 3)).astype(numpy.float32)
        b = rng.standard_normal((k, n + 1)).astype(numpy.float32)
        c = numpy.full((m, n + 2), numpy.nan, numpy.float32)
        kernel(n, m, k, b.ctypes.data, n + 1, 1.0, at.ctypes.data, m + 3, c.ctypes.data, n + 2)
        if not (numpy.allclose(c[:, :n], at[:, :m].T @ b[:, :n], rtol=1e-4, atol=1e-4)
                and numpy.isnan(c[:, n:]).all()):
            return None
    return kernel


def small_gemms(dtype):
    """``(nn, nt, use)`` for the region drivers' GEMMs (:func:`fundl.kernels.conv._gemm`).

    Why: NumPy's wheels bundle one OpenBLAS built for many CPUs, which picks its kernels by
    the CPU, or by ``OPENBLAS_CORETYPE`` when set. The development machines (AMD EPYC, Zen 5,
    with AVX-512) set ``OPENBLAS_CORETYPE=Haswell`` in their environment, so NumPy's products
    there run the AVX2 kernels, while PyTorch and fundl's Numba kernels (compiled for the CPU
    they run on) use AVX-512. The same library exports its AVX-512 "SkylakeX" kernels by
    name; its small-matrix GEMMs, called directly (no packing), ran the convolutions'
    products at twice the rate on one core (1024 x 144 @ 144 x 16: 95 -> 153 GFLOP/s;
    1024 x 288 @ 288 x 32: 105 -> 228; 192 x 576 @ 576 x 64: 113 -> 226). These are
    OpenBLAS-internal symbols, not its public API, hence the checks: only for float32, on
    CPUs whose flags include AVX-512, with ``FUNDL_BLAS`` unset or "auto" (``FUNDL_BLAS=numpy``
    keeps NumPy's library as it is configured), where fundl's GEMMs come from NumPy's
    OpenBLAS, and where the kernels agree with numpy.matmul at first use; NumPy's own products
    are left as they are.
    """
    kernels = _small_kernels() if numpy.dtype(dtype) == numpy.float32 else None
    if kernels is None:
        return _NEVER[0], _NEVER[1], False
    return kernels[0], kernels[1], True


# -- the region path: every chunk in one compiled parallel region ------------------------------
_BACKOFF = _parallel.Backoff(per_second=2e10)
"""The convolutions' regions back off to one thread while they stall (another process holding
the second core makes a region wait a time slice, milliseconds, as pooling's and the recurrent
loops' did); ``per_second``: multiply-adds a second on one core, a low estimate (the small
GEMMs ran at 60-110e9 a second, im2col included ~40e9); a driver's first region (loading it) is
not counted."""


def _run(loop, threads, macs, dtype, *args, blas=True):
    """``loop(*args)`` over ``threads`` items in one region, or, while :data:`_BACKOFF` says so
    (after a region took far longer than one core would), the same compiled loop on this
    thread alone (:func:`fundl.kernels._parallel.run_backing_off`); ``macs``: the region's
    multiply-adds."""
    dtype = numpy.dtype(dtype)  # (float64 products run at half float32's rate)
    _parallel.run_backing_off(_BACKOFF, loop, threads, macs * dtype.itemsize / 4, (loop, dtype),
                              *args, blas=blas)


def _forward_region(plan, x5, w, y, keep, relu=False):
    """Every chunk's im2col and GEMM (and with ``relu`` a ReLU on its rows) in one region;
    returns (x5 as the region read it, the cols buffers if ``keep``)."""
    x5, _, _ = im2col_input(x5, plan.cols_ksize, plan.cols_strides, plan.dilation, plan.groups,
                            plan.pads)
    threads = len(plan.first) - 1
    most = plan.most_rows() * w.shape[0]
    bufs = pooled_empty(numpy, (len(plan.chunks) if keep else threads, most * plan.width),
                        x5.dtype)
    small = small_gemms(x5.dtype)  # (their GEMMs called by pointer: no threaded BLAS to tame)
    _run(_conv_forward_chunks, threads, y.size * plan.width, x5.dtype,
         _k.gemm_function(x5.dtype), *small, x5, bufs, keep,
         numpy.ascontiguousarray(w), y, plan.positions, *plan.cols_geometry, plan.lo,
         plan.chunk_bounds, plan.first, relu, blas=not small[2])
    return x5, (bufs if keep else None)


def _backward_region(plan, saved, gyg, need_x, need_w, act=0, y_out=None):
    """Both gradients, chunk by chunk, in one region: (gx (5-D, unpadded) or None, the summed
    ``[dkernel; dbias]`` rows or None). The compiled driver takes every array typed, so an
    empty array stands for one that is not needed. With ``act`` (1 + an index into
    :data:`fundl.kernels.activation.KINDS`) ``gyg`` is the gradient before the fused
    activation, whose output ``y_out`` (C-contiguous, gyg's order) each chunk reads."""
    dtype, g, co = gyg.dtype, plan.groups, gyg.shape[2]
    g_in = y_flat = g_out = numpy.empty(0, dtype)
    if act:  # (groups == 1, gyg contiguous: see fusable_grad) through the activation first
        g_in, y_flat = gyg.reshape(-1), y_out.reshape(-1)
        g_out = pooled_empty(numpy, g_in.shape, dtype)
        # (viewed as gyg was made, transposed: the same Numba type, no second specialisation)
        gyg = g_out.reshape(gyg.shape[1], 1, gyg.shape[2]).transpose(1, 0, 2)
    threads, most = len(plan.first) - 1, plan.most_rows() * g
    bufs, x5, w = saved.cols, saved.x5, saved.w
    kept = bufs is not None  # the forward's cols, one buffer per chunk
    recompute = need_w and not kept
    if not kept:
        bufs = pooled_empty(numpy, (threads, most * plan.width) if need_w else (0, 0), dtype)
    gx = pooled_empty(numpy, plan.padded if need_x else (0, 1, 1, 1, 1), dtype)
    gwb = pooled_empty(numpy, (threads, g, plan.width, co) if need_w else (0, 1, 1, 1), dtype)
    w_t = numpy.ascontiguousarray(w[:, :plan.taps].transpose(0, 2, 1)) if need_x else \
        numpy.empty((g, co, plan.taps), dtype)
    gbufs = pooled_empty(numpy, (threads, most * plan.taps) if need_x else (0, 0), dtype)
    x5 = x5 if recompute else numpy.empty((0, 1, 1, 1, 1), dtype)
    small = small_gemms(dtype)
    # (each product has the forward's multiply-adds; a recomputed im2col is not counted)
    macs = gyg.size * plan.width * (int(need_x) + int(need_w))
    _run(_conv_backward_chunks, threads, macs, dtype, _k.gemm_function(dtype), *small,
         x5, bufs, kept,
         recompute, gyg, gyg.strides[1] // gyg.itemsize, w_t, plan.width, gx, gwb,
         gbufs, plan.positions, *plan.cols_geometry, plan.lo, plan.chunk_bounds,
         plan.first, act, g_in, y_flat, g_out, blas=not small[2])
    if need_x and plan.padded != plan.x5_shape:  # x was padded beforehand: crop the padding
        gx = gx[inner(plan.x5_shape, plan.pads)]
    return (gx if need_x else None), (gwb.sum(axis=0) if need_w else None)


# -- the im2col-free 3x3 path ---------------------------------------------------------------------
def _forward_3x3(plan, x5, kernel, bias, need_x, need_k, epilogue):
    """:func:`conv_forward` through :func:`fundl.kernels.conv3x3._forward_images`."""
    n, _, h, w, c = x5.shape
    co, dtype = kernel.shape[-1], x5.dtype  # float32 (see _three_by_three)
    x4 = numpy.ascontiguousarray(x5.reshape(n, h, w, c))
    threads = len(plan.images) - 1
    y = pooled_empty(numpy, (n, h, w, co), dtype)
    xbufs = pooled_empty(numpy, (threads, _conv3x3.ext_size(h, w, c)), dtype)
    ybufs = pooled_empty(numpy, (threads, h * (w + 1) * co), dtype)
    b = numpy.ascontiguousarray(bias, dtype) if bias is not None else numpy.zeros(1, dtype)
    nn0, _, _ = small_gemms(dtype)
    _run(_conv3x3._forward_images, threads, y.size * 9 * c, dtype, nn0, small_nn_beta(), x4,
         numpy.ascontiguousarray(kernel).reshape(3, 3 * c, co), b, bias is not None,
         y, xbufs, ybufs, plan.images, blas=False)  # (small kernels only)
    if epilogue is not None:
        epilogue(y)
    saved = ConvSaved(x5=x4 if need_k else None,
                      w=_conv3x3.flipped(kernel) if need_x else None, three_by_three=True)
    return y.reshape((n,) + plan.out + (co,)), saved


def _backward_3x3(plan, saved, gy5, need_x, need_k, need_b):
    """:func:`conv_backward` through :func:`fundl.kernels.conv3x3._backward_images`."""
    n, _, h, w, c = plan.x5_shape
    co = plan.kernel_shape[-1]
    dtype = numpy.dtype(numpy.float32)  # the only dtype the path takes
    gy4 = numpy.ascontiguousarray(gy5.reshape(n, h, w, co), dtype)
    threads = len(plan.images) - 1
    gx = pooled_empty(numpy, (n, h, w, c), dtype) if need_x else numpy.empty((0, 1, 1, 1), dtype)
    gk = pooled_empty(numpy, (threads, 3, 3 * c, co), dtype) if need_k else \
        numpy.empty((0, 1, 1, 1), dtype)
    gb = pooled_empty(numpy, (threads, co), dtype)
    xbufs = pooled_empty(numpy, (threads, _conv3x3.ext_size(h, w, c) if need_k else 0), dtype)
    gbufs = pooled_empty(numpy, (threads, _conv3x3.ext_size(h, w, co)), dtype)
    ebufs = pooled_empty(numpy, (threads, h * (w + 1) * c if need_x else 0), dtype)
    x4 = saved.x5 if need_k else numpy.empty((0, 1, 1, 1), dtype)
    wf = saved.w if need_x else numpy.empty((3, 3 * co, c), dtype)
    nn0, nt, _ = small_gemms(dtype)
    _run(_conv3x3._backward_images, threads, gy4.size * 9 * c * (int(need_x) + int(need_k)),
         dtype, nn0, small_nn_beta(), nt, x4, gy4, wf, gx, gk, gb, need_x, need_k, need_b,
         xbufs, gbufs, ebufs, plan.images, blas=False)
    return (gx.reshape(plan.x5_shape) if need_x else None,
            gk.sum(axis=0).reshape(plan.kernel_shape) if need_k else None,
            gb.sum(axis=0) if need_b else None)


# -- plain-NumPy references: a direct sum over the kernel's taps (no im2col, no GEMM chunks) ---
def conv_forward_reference(x5, kernel, bias, strides, pads, dilation, groups):
    """A convolution in plain ``xp``, independent of the compiled paths: for each kernel tap,
    the strided view of the zero-padded x it reads, contracted with that tap's weights.

    Args:
        x5: (N, D, H, W, C). kernel: (kd, kh, kw, C // groups, out) (1-D and 2-D kernels
            with leading size-1 axes). bias: (out,) or None.
        strides, dilation: 3 ints; pads: 3 (before, after) pairs; groups: channel groups.

    Returns:
        y5 (N, Do, Ho, Wo, out).
    """
    xp = get_array_module(x5)
    xpad = pad_5d(x5, pads)
    kd, kh, kw, cg, c_out = kernel.shape
    n = x5.shape[0]
    out = tuple((p - d * (k - 1) - 1) // s + 1 for p, k, s, d in
                zip(xpad.shape[1:4], (kd, kh, kw), strides, dilation))
    og = c_out // groups
    y = xp.zeros((n,) + out + (c_out,), dtype=xp.result_type(x5.dtype, kernel.dtype))
    for a in range(kd):
        for b in range(kh):
            for e in range(kw):
                tap = xpad[:, a * dilation[0]:a * dilation[0] + strides[0] * (out[0] - 1) + 1:
                           strides[0],
                           b * dilation[1]:b * dilation[1] + strides[1] * (out[1] - 1) + 1:
                           strides[1],
                           e * dilation[2]:e * dilation[2] + strides[2] * (out[2] - 1) + 1:
                           strides[2]]
                for gi in range(groups):
                    y[..., gi * og:(gi + 1) * og] += tap[..., gi * cg:(gi + 1) * cg] @ \
                        kernel[a, b, e, :, gi * og:(gi + 1) * og]
    if bias is not None:
        y += bias
    return y


def conv_backward_reference(x5, kernel, gy5, strides, pads, dilation, groups):
    """The gradients of :func:`conv_forward_reference`, tap by tap, in plain ``xp``.

    Returns:
        (gx5 like x5, g_kernel like kernel, g_bias (out,)).
    """
    xp = get_array_module(x5)
    xpad = pad_5d(x5, pads)
    kd, kh, kw, cg, c_out = kernel.shape
    og = c_out // groups
    out = gy5.shape[1:4]
    gxpad = xp.zeros(xpad.shape, dtype=gy5.dtype)
    gk = xp.zeros(kernel.shape, dtype=gy5.dtype)
    for a in range(kd):
        for b in range(kh):
            for e in range(kw):
                index = (slice(None),) + tuple(
                    slice(t * d, t * d + s * (o - 1) + 1, s)
                    for t, d, s, o in zip((a, b, e), dilation, strides, out))
                tap = xpad[index]
                for gi in range(groups):
                    gyg = gy5[..., gi * og:(gi + 1) * og]
                    cin = slice(gi * cg, (gi + 1) * cg)
                    gk[a, b, e, :, gi * og:(gi + 1) * og] = xp.tensordot(
                        tap[..., cin], gyg, axes=([0, 1, 2, 3], [0, 1, 2, 3]))
                    gxpad[index + (cin,)] += gyg @ kernel[a, b, e, :, gi * og:(gi + 1) * og].T
    gx = gxpad[inner(x5.shape, pads)]
    return gx, gk, gy5.sum(axis=(0, 1, 2, 3))
