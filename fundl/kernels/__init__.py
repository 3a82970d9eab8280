"""Compiled CPU hot spots, behind one narrow interface that ops call.

Each function here takes and returns arrays of the current back-end. For NumPy arrays it runs
a Numba kernel, on all cores where the work is large enough: the convolutions' batch chunks,
pooling, ReLU, activation gradients, batch norm's passes and the LSTM/GRU time loops as
compiled parallel regions (see :mod:`fundl.kernels._parallel`; their state lives in
:mod:`fundl.runtime`); for CuPy arrays (and for NumPy when
Numba cannot be imported, after one warning at import) it runs a plain-``xp`` reference with
the same signature and results, which the tests compare the kernels against. im2col/col2im
and the recurrent gates also have one-launch CUDA kernels for CuPy arrays
(:mod:`fundl.kernels.conv_cuda`, :mod:`fundl.kernels.recurrent_cuda`). The kernels
exist because NumPy is the bottleneck there: im2col/col2im and pooling are memory shuffles
that NumPy does as many strided copies, and batch norm and the activation gradients take
several NumPy passes where one does (DESIGN.md, "Performance strategy").

The convolution and pooling kernels take channels-last arrays with three spatial axes,
``(N, D, H, W, C)`` (1-D and 2-D ops add size-1 axes), with the convolutions' zero padding as
an argument (pooling's inputs come padded); window geometry is given as 3-tuples of ints.
:func:`map_chunks` and :func:`threads` run an op's batch chunks on all
cores (:func:`map_compiled` those of a Numba parallel loop). A convolution goes through one
entry point per direction, :func:`conv_forward` and :func:`conv_backward`, driven by a
:class:`ConvPlan` (:mod:`fundl.kernels.convolution`), whatever path runs underneath. The
recurrent cells' gate math lives in :mod:`fundl.kernels.recurrent`, with its own
dispatchers; the CSR sparse x dense product of graph convolutions (:func:`spmm`) in
:mod:`fundl.kernels.sparse`. On CPUs with AVX-512 the Dense layer's forward product and the
recurrent loops' products run in fundl's own register-tiled GEMM micro-kernel
(:mod:`fundl.kernels.gemm`; the LSTM's inference sweep on Intel CPUs only).

Example:
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4, 1)
    >>> cols = fundl.kernels.im2col(x, (1, 2, 2), (1, 2, 2), (1, 1, 1), 1)
    >>> cols.shape       # (groups, output positions, taps * channels)
    (1, 4, 4)
"""
from __future__ import annotations

import warnings

import numpy

from .. import runtime
from ..backend import device_of, get_array_module
from . import _parallel
from . import activation as _activation
from . import conv as _conv
from . import norm as _norm
from . import pool as _pool
from . import sparse as _sparse
from ._jit import FLOAT_DTYPES, IMPORT_ERROR, numba
from ._jit import ready as _ready
from ._parallel import bounds_of, even_slices, map_compiled, regions, run_region
from .blas import gemm_function

__all__ = ["activation_grad", "avg_pool", "avg_pool_grad", "batch_norm_affine",
           "batch_norm_grad_sums", "batch_norm_grad_x", "batch_norm_stats", "bounds_of",
           "chunk_matmul", "col2im", "compiled", "ConvPlan", "CONV_GEMM_WIDTH", "conv_backward",
           "conv_backward_reference", "conv_forward", "conv_forward_reference", "conv_plan",
           "even_slices", "gemm_function", "im2col", "map_chunks",
           "map_compiled", "matmul", "max_pool", "max_pool_grad", "regions", "relu",
           "run_region", "spmm", "threads"]

_NUMBA = numba is not None
_RT = runtime.state()
if not _NUMBA:
    warnings.warn(
        f"fundl: Numba could not be imported ({IMPORT_ERROR!r}); convolution and pooling fall back "
        "to the plain NumPy reference kernels, which are several times slower. Install it with "
        "`pip install 'numba>=0.59'`.", RuntimeWarning, stacklevel=2)


_MIN_KERNEL_SIZE = 4096  # elements; a Numba call costs ~3 us more than a small NumPy expression


def compiled(a, group="conv") -> bool:
    """True when the kernels of ``group`` (a kernel module: "conv", the convolution's, by
    default; "pool", "activation", "norm", "sparse") called on array ``a`` run compiled: a
    NumPy array, Numba available, and the group compiled or allowed to compile now (not while
    a background process compiles it: :func:`fundl.kernels._jit.ready`)."""
    return _NUMBA and type(a) is numpy.ndarray and _ready(group, a.dtype)


def activation_grad(kind, gy, y):
    """The gradient of activation ``kind`` ("relu", "tanh", "sigmoid") from its output ``y``.

    One pass over ``gy`` and ``y`` (see :mod:`fundl.kernels.activation`); a new array of y's
    shape and dtype.
    """
    if kind not in _activation.KINDS:
        raise ValueError(f"activation_grad: kind must be one of {_activation.KINDS}, got "
                         f"{kind!r}.")
    # small arrays: NumPy's few passes stay in cache and cost less than a kernel call
    if (y.size >= _MIN_KERNEL_SIZE and compiled(y, "activation") and type(gy) is numpy.ndarray
            and gy.shape == y.shape and gy.dtype == y.dtype and y.dtype in FLOAT_DTYPES):
        return _activation.activation_grad_numba(kind, gy, y)
    return _activation.activation_grad_reference(kind, gy, y)


def relu(x):
    """``max(x, 0)`` as a new array, as ``xp.maximum(x, 0)`` computes it; large C-contiguous
    NumPy float arrays split over a parallel region (ResNet-20's 8 MB activations)."""
    if compiled(x, "activation") and x.dtype in FLOAT_DTYPES and x.flags.c_contiguous and \
            x.nbytes >= _activation.MIN_REGION_BYTES and _parallel.regions():
        return _activation.relu_numba(x)
    return get_array_module(x).maximum(x, 0)


def map_chunks(fn, items, like) -> list:
    """``[fn(item) for item in items]``, on all cores when ``like`` is a NumPy array.

    For the batch chunks of a large op (see :mod:`fundl.kernels._parallel`): each thread runs
    whole chunks with BLAS single-threaded. CuPy arrays (one GPU stream) run serially.
    """
    if type(like) is numpy.ndarray:
        return _parallel.map_chunks(fn, list(items))
    return [fn(item) for item in items]


def chunk_matmul(a, b, out=None):
    """``a @ b`` for a batch chunk of :func:`map_chunks` (2-D or 3-D stacks).

    On a parallel thread (BLAS single-threaded meanwhile) it goes through fundl's GEMM library
    (:func:`fundl.kernels.blas.matmul`: MKL's sequential GEMM when installed); elsewhere, and
    for CuPy arrays, ``xp.matmul``.
    """
    if type(a) is numpy.ndarray and getattr(_RT.local, "inside", False):
        from . import blas

        return blas.matmul(a, b, out)
    return get_array_module(a).matmul(a, b, out=out)


_OPENBLAS_SERIAL = 1 << 18  # multiply-adds below which OpenBLAS itself uses one thread
_SERIAL_MAX = 1 << 23  # and up to which fundl keeps a product on one thread (see matmul)


def serial_product(m: int, k: int, n: int) -> bool:
    """Whether :func:`matmul` runs an (m, k) @ (k, n) NumPy product on the calling thread.

    Products of 2^18 to 2^23 multiply-adds, when ``fundl.runtime.state()
    .serial_medium_products`` says so: True or False as set, or (None, the default) while
    this thread runs a model with convolution, pooling or recurrent layers and regions can
    run (:func:`fundl.runtime.model_products`; see :mod:`fundl.runtime` for why and for the
    measurements). The answer depends on the call, never on what ran before.
    """
    if not _OPENBLAS_SERIAL <= m * k * n <= _SERIAL_MAX:
        return False
    mode = _RT.serial_medium_products
    if mode is None:
        return bool(getattr(_RT.local, "model_regions", None)) and _parallel.regions()
    return bool(mode) and _parallel.threads() > 1


def matmul(a, b, out=None):
    """``a @ b`` of two 2-D arrays, as the ops' dense products take it on the CPU.

    Medium-sized products (2^18 to 2^23 multiply-adds: LeNet-5's C5 and F6) run on the
    calling thread where :func:`serial_product` says so (by default while a model with
    convolutions, pooling or recurrent layers runs). Why:
    after a product that OpenBLAS splits over its threads, its workers spin on the other
    cores for up to ~0.1 s, and a compiled parallel region that needs those cores waits for
    them (a LeNet-5 convolution backward: 0.57 ms, 3.8 ms right after OpenBLAS's two threads
    ran C5); two threads gain little on products this small. They go through fundl's GEMM
    library (MKL's sequential GEMM when installed), else through OpenBLAS set to one thread.
    Everything else (larger or smaller products, CuPy) is ``xp.matmul``.
    """
    if type(a) is numpy.ndarray and type(b) is numpy.ndarray and a.ndim == 2 == b.ndim and \
            serial_product(a.shape[0], a.shape[1], b.shape[1]):
        from . import blas

        if blas.library(a.dtype) == "mkl" and b.dtype == a.dtype:
            return blas.matmul(a, b, out)
        with _parallel.single_threaded_blas():
            return numpy.matmul(a, b, out=out)
    return get_array_module(a).matmul(a, b, out=out)


def threads() -> int:
    """How many threads :func:`map_chunks` runs on (see :mod:`fundl.kernels._parallel`)."""
    return _parallel.threads()


def im2col(x, ksize, strides, dilation, groups, ones=False, pads=None):
    """Every receptive field of ``x`` (N, D, H, W, C), zero-padded by ``pads`` ((before, after)
    per spatial axis, or None), as one row.

    Returns:
        cols (groups, N*Do*Ho*Wo, kd*kh*kw*(C // groups)), plus a last column of ones if
        ``ones``; see :mod:`fundl.kernels.conv`. The Numba kernel pads implicitly (no padded
        copy of x); the other paths pad first.
    """
    if compiled(x):
        return _conv.im2col_numba(x, ksize, strides, dilation, groups, ones,
                                  pads or _conv._NO_PADS)
    if pads is not None:
        x = _conv.pad_5d(x, pads)
    if device_of(x) == "gpu":
        from . import conv_cuda

        return conv_cuda.im2col(x, ksize, strides, dilation, groups, ones)
    return _conv.im2col_reference(x, ksize, strides, dilation, groups, ones)


def col2im(cols, x_shape, ksize, strides, dilation, groups, pads=None, out=None):
    """The adjoint of :func:`im2col`: gx of ``x_shape`` with every entry of ``cols`` added back
    (entries that fell in the ``pads`` dropped); written into ``out`` when given."""
    if compiled(cols) and (out is None or compiled(out)):
        return _conv.col2im_numba(cols, x_shape, ksize, strides, dilation, groups,
                                  pads or _conv._NO_PADS, out)
    full_shape = _conv._padded(tuple(x_shape), pads or _conv._NO_PADS)
    if device_of(cols) == "gpu":
        from . import conv_cuda

        gx = conv_cuda.col2im(cols, full_shape, ksize, strides, dilation, groups)
    else:
        gx = _conv.col2im_reference(cols, full_shape, ksize, strides, dilation, groups)
    if pads is not None:
        gx = gx[_conv.inner(tuple(x_shape), pads)]
    if out is None:
        return gx
    out[...] = gx
    return out


def max_pool(x, pool, strides, with_arg=True):
    """Window maxima of a (-inf padded) ``x`` and the int32 tap number of each; ``(y, arg)``
    (``(y, None)`` with ``with_arg=False``: inference, the tap numbers skipped where it pays)."""
    if compiled(x, "pool"):
        return _pool.max_pool_numba(x, pool, strides, with_arg)
    y, arg = _pool.max_pool_reference(x, pool, strides)
    return y, (arg if with_arg else None)


def max_pool_grad(gy, arg, x_shape, pool, strides, relu_y=None):
    """Gradient of :func:`max_pool`: each ``gy`` entry added to its window's maximum (only
    where ``relu_y``, the pooled output of a ReLU-ed input, is positive, when given)."""
    if compiled(gy, "pool"):
        return _pool.max_pool_grad_numba(gy, arg, x_shape, pool, strides, relu_y)
    return _pool.max_pool_grad_reference(gy, arg, x_shape, pool, strides, relu_y)


def avg_pool(x, pool, strides, scale):
    """Window sums of a (zero padded) ``x`` times ``scale`` (Do, Ho, Wo)."""
    if compiled(x, "pool"):
        return _pool.avg_pool_numba(x, pool, strides, scale)
    return _pool.avg_pool_reference(x, pool, strides, scale)


def avg_pool_grad(gy, x_shape, pool, strides, scale):
    """Gradient of :func:`avg_pool`: ``gy * scale`` added to every tap of its window."""
    if compiled(gy, "pool"):
        return _pool.avg_pool_grad_numba(gy, x_shape, pool, strides, scale)
    return _pool.avg_pool_grad_reference(gy, x_shape, pool, strides, scale)


def batch_norm_stats(x, axis):
    """Per-channel mean and biased variance of ``x`` over every axis but ``axis``.

    Two-pass quality (never E[x^2] - E[x]^2; see :mod:`fundl.kernels.norm`).

    Returns:
        (mean, var), each (C,) in x's dtype.
    """
    if compiled(x, "norm") and _norm.fits(axis, x):
        return _norm.batch_norm_stats_numba(x, axis)
    return _norm.batch_norm_stats_reference(x, axis)


def batch_norm_affine(x, axis, mean, scale, shift, residual=None, relu=False):
    """``(x - mean) * scale + shift`` with (C,) factors along ``axis``, ``+ residual`` (x's
    shape) when given, then ``max(., 0)`` when ``relu``; a new array, in one pass."""
    if compiled(x, "norm") and _norm.fits(axis, x, mean, scale, shift) and (
            residual is None or (type(residual) is numpy.ndarray and _norm.fits(
                axis, x, residual) and residual.shape == x.shape)):
        return _norm.batch_norm_affine_numba(x, axis, mean, scale, shift, residual, relu)
    return _norm.batch_norm_affine_reference(x, axis, mean, scale, shift, residual, relu)


def batch_norm_grad_sums(gy, x, axis, mean, scale=None, shift=None, y=None):
    """Per-channel ``(sum(g), sum(g * (x - mean)))`` over every axis but ``axis``, g = gy, or
    gy masked by a fused ReLU: recomputed from x with ``scale``/``shift``, or ``y > 0`` (then
    g is returned third)."""
    extra = [a for a in (scale, shift, y) if a is not None]
    if compiled(x, "norm") and _norm.fits(axis, x, gy, mean, *extra) and all(
            type(a) is numpy.ndarray for a in extra):
        return _norm.batch_norm_grad_sums_numba(gy, x, axis, mean, scale, shift, y)
    return _norm.batch_norm_grad_sums_reference(gy, x, axis, mean, scale, shift, y)


def batch_norm_grad_x(gy, x, axis, mean, p, q, scale, shift=None):
    """``((g - (x - mean) * p) - q) * scale`` with (C,) factors: batch norm's input gradient;
    g = gy, or with ``shift`` gy masked by the fused ReLU (recomputed from x)."""
    extra = [] if shift is None else [shift]
    if compiled(x, "norm") and _norm.fits(axis, x, gy, mean, p, q, scale, *extra):
        return _norm.batch_norm_grad_x_numba(gy, x, axis, mean, p, q, scale, shift)
    return _norm.batch_norm_grad_x_reference(gy, x, axis, mean, p, q, scale, shift)


def spmm(indptr, indices, values, dense):
    """CSR sparse (n_rows, n_cols) times ``dense`` (n_cols, k); a new (n_rows, k) array.

    ``indptr`` (n_rows + 1,), ``indices`` and ``values`` (nnz,) are the CSR arrays; the result
    has dense's dtype. See :mod:`fundl.kernels.sparse`.
    """
    if compiled(dense, "sparse") and dense.ndim == 2 and dense.dtype in FLOAT_DTYPES:
        return _sparse.spmm_numba(indptr, indices, values, dense)
    return _sparse.spmm_reference(indptr, indices, values, dense)


# the convolution's entry points (imported last: they call the dispatchers above)
from .convolution import GEMM_WIDTH as CONV_GEMM_WIDTH  # noqa: E402
from .convolution import (ConvPlan, conv_backward, conv_backward_reference,  # noqa: E402
                          conv_forward, conv_forward_reference, conv_plan)
