"""Training-mode batch normalisation passes: Numba kernels beside their plain-``xp`` references.

Batch normalisation is four memory-bound sweeps over an activation: per-channel statistics,
the affine output, the gradient's per-channel sums and the input gradient. In NumPy each is
several ufunc or einsum passes with temporaries; here each is one compiled loop (the
statistics two, the second from cache), which reads x and gy and writes y or gx only.

Every function exists twice with the same signature (``x`` of any rank, channels along
``axis``, per-channel arrays of shape (C,)):

- ``<name>_reference``: plain ``xp`` einsum math on a (outer, C, inner) view; the GPU path,
  the path for a channel axis other than the last, and the tests' ground truth;
- ``<name>_numba``: a kernel over the (rows, C) view of a channels-last array, for NumPy
  arrays whose arrays all share x's dtype (:func:`fits`); inputs of 8 MB and more run as
  row slices on parallel threads (:mod:`fundl.kernels._parallel`).

How the kernels are laid out (measured on 2 cores, float32, C = 16 to 64):

- the flat array is walked in chunks of L = k*C elements (L near :data:`_CHUNK`), so the inner
  loop is L long whatever C is, and element j of a chunk always belongs to channel j % C;
  per-channel constants are repeated to length L once (:func:`_repeat`). A row-by-row loop
  over C was as fast from C = 16 up, but 8x slower at C = 1 and 4x at C = 3 (a short inner
  loop, and each accumulator a serial chain of adds);
- sums go into float32 (for float32 data) accumulators over one block of about
  :data:`_BLOCK` elements, then into float64 totals, so a large batch does not lose digits
  while the inner loop stays vectorised float32;
- the statistics stay two-pass: each block is read once from memory for its sum and once more
  from cache for the sum of squares around its mean (the cancelling one-pass E[x^2] - E[x]^2
  is not used), and blocks are merged in float64 with Chan et al.'s update;
- the inner loops contain no float64 literal (it would promote a float32 loop and stop its
  vectorisation); float64 appears only in the per-block merges.

Example:
    >>> x = numpy.random.rand(128, 8, 8, 64).astype(numpy.float32)
    >>> mean, var = batch_norm_stats_numba(x, 3)
    >>> mean.shape, mean.dtype
    ((64,), dtype('float32'))
"""
from __future__ import annotations

import math

import numpy

from ..backend import get_array_module, ones_vector
from . import _parallel
from ._jit import FLOAT_DTYPES, jit

_CHUNK = 256
"""Target length of the inner loop, in elements (rounded down to a multiple of C, at least C)."""
_BLOCK = 65536
"""Elements per block of partial sums (256 KiB of float32: read again from L2, not memory)."""
_MIN_BLOCK_ROWS = 8
"""Rows per block at least, so that a very wide channel axis still merges rarely."""


def fits(axis, x, *arrays) -> bool:
    """True when the kernels apply to ``x`` and ``arrays``: channels on the last axis, a
    non-empty float32 or float64 x, and every array in x's dtype (mixed precisions promote,
    which the references do as NumPy does)."""
    return (axis == x.ndim - 1 and x.size > 0 and x.dtype in FLOAT_DTYPES
            and all(a.dtype == x.dtype for a in arrays))


# -- kernels -------------------------------------------------------------------------------------
@jit
def _geometry(rows, c):
    """(chunk length L, rows per block) for (rows, c) data."""
    k = max(1, _CHUNK // c)
    return k * c, k * max(_MIN_BLOCK_ROWS, _BLOCK // (k * c))


@jit
def _repeat_into(v, out):
    """out[j] = v[j % C] (out's length a multiple of C, any dtypes)."""
    c = v.shape[0]
    for j in range(out.shape[0]):
        out[j] = v[j % c]


@jit
def _repeat(v, length, dtype_of):
    """v (C,) repeated to ``length`` (a multiple of C), in the dtype of array ``dtype_of``."""
    out = numpy.empty(length, dtype_of.dtype)
    _repeat_into(v, out)
    return out


@jit
def _fold(acc, c, out):
    """out[ch] = sum of acc[j] over j % c == ch (float64 out, any acc)."""
    for ch in range(c):
        s = 0.0
        for j in range(ch, acc.shape[0], c):
            s += acc[j]
        out[ch] = s


@jit
def _stats_kernel(x, mean, m2):
    # x (R, C) C-contiguous; mean, m2 (C,) float64 outputs, zero on entry
    rows, c = x.shape
    length, block_rows = _geometry(rows, c)
    xf = x.reshape(-1)
    acc = numpy.empty(length, x.dtype)
    acc2 = numpy.empty(length, x.dtype)
    bsum = numpy.empty(c, numpy.float64)
    bsum2 = numpy.empty(c, numpy.float64)
    bmean = numpy.empty(c, numpy.float64)
    shift = numpy.empty(length, x.dtype)
    n = 0
    for r0 in range(0, rows, block_rows):
        nb = min(block_rows, rows - r0)
        lo = r0 * c
        hi = lo + nb * c
        acc[:] = 0
        for s in range(lo, hi, length):
            xr = xf[s:min(s + length, hi)]
            for j in range(xr.shape[0]):
                acc[j] += xr[j]
        _fold(acc, c, bsum)
        for ch in range(c):
            bmean[ch] = bsum[ch] / nb
        _repeat_into(bmean, shift)  # the block mean rounded to x's dtype
        # d = x - shift, then sum(d^2) - sum(d)^2 / nb (the corrected two-pass form): the
        # second term repairs the rounding of the shift to x's dtype
        acc[:] = 0
        acc2[:] = 0
        for s in range(lo, hi, length):
            xr = xf[s:min(s + length, hi)]
            for j in range(xr.shape[0]):
                d = xr[j] - shift[j]
                acc[j] += d
                acc2[j] += d * d
        _fold(acc, c, bsum)
        _fold(acc2, c, bsum2)
        tot = n + nb  # Chan et al.'s merge of (n, mean, m2) with the block's (nb, mb, m2b)
        for ch in range(c):
            mb = shift[ch] + bsum[ch] / nb
            m2b = bsum2[ch] - bsum[ch] * bsum[ch] / nb
            delta = mb - mean[ch]
            mean[ch] += delta * nb / tot
            m2[ch] += m2b + delta * delta * n * nb / tot
        n = tot


@jit
def _affine_kernel(x, mean, scale, shift, y):
    rows, c = x.shape
    length, _ = _geometry(rows, c)
    m = _repeat(mean, length, x)
    a = _repeat(scale, length, x)
    b = _repeat(shift, length, x)
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    for s in range(0, xf.shape[0], length):
        e = min(s + length, xf.shape[0])
        xr = xf[s:e]
        yr = yf[s:e]
        for j in range(xr.shape[0]):
            yr[j] = (xr[j] - m[j]) * a[j] + b[j]


@jit
def _grad_sums_kernel(gy, x, mean, sum_gy, sum_gy_xc):
    # sum_gy, sum_gy_xc (C,) float64 outputs, zero on entry
    rows, c = x.shape
    length, block_rows = _geometry(rows, c)
    m = _repeat(mean, length, x)
    gf = gy.reshape(-1)
    xf = x.reshape(-1)
    acc = numpy.empty(length, x.dtype)
    acc2 = numpy.empty(length, x.dtype)
    part = numpy.empty(c, numpy.float64)
    for r0 in range(0, rows, block_rows):
        lo = r0 * c
        hi = min(r0 + block_rows, rows) * c
        acc[:] = 0
        acc2[:] = 0
        for s in range(lo, hi, length):
            e = min(s + length, hi)
            gr = gf[s:e]
            xr = xf[s:e]
            for j in range(gr.shape[0]):
                acc[j] += gr[j]
                acc2[j] += gr[j] * (xr[j] - m[j])
        _fold(acc, c, part)
        for ch in range(c):
            sum_gy[ch] += part[ch]
        _fold(acc2, c, part)
        for ch in range(c):
            sum_gy_xc[ch] += part[ch]


@jit
def _grad_x_kernel(gy, x, mean, p, q, scale, gx):
    rows, c = x.shape
    length, _ = _geometry(rows, c)
    mm = _repeat(mean, length, x)
    pp = _repeat(p, length, x)
    qq = _repeat(q, length, x)
    aa = _repeat(scale, length, x)
    gf = gy.reshape(-1)
    xf = x.reshape(-1)
    of = gx.reshape(-1)
    for s in range(0, xf.shape[0], length):
        e = min(s + length, xf.shape[0])
        gr = gf[s:e]
        xr = xf[s:e]
        orow = of[s:e]
        for j in range(xr.shape[0]):
            orow[j] = ((gr[j] - (xr[j] - mm[j]) * pp[j]) - qq[j]) * aa[j]


# -- Numba entry points (NumPy arrays that pass :func:`fits`) -------------------------------------
def _rows(a, like=None):
    """The (rows, C) C-contiguous view (or copy) of a channels-last array ``a``.

    ``like``: an array that ``a`` must match in shape (the kernels index both alike).
    """
    if like is not None and a.shape != like.shape:
        raise ValueError(f"BatchNorm kernels: gradient of shape {a.shape} for an input of shape "
                         f"{like.shape}; they must be equal.")
    return numpy.ascontiguousarray(a).reshape(-1, a.shape[-1])


def _row_parts(x2, streams):
    """Row slices of (rows, C) data for parallel threads (``streams``: arrays of x2's size
    read or written; small work stays one slice)."""
    return _parallel.slices(x2.shape[0], streams * x2.nbytes)


def batch_norm_stats_numba(x, axis):
    """Numba version of :func:`batch_norm_stats_reference` (float64 accumulation).

    Large inputs are split into row slices that run on parallel threads; the slices'
    (count, mean, m2) are merged in float64 with Chan et al.'s formula, as the kernel merges
    its blocks.
    """
    x2 = _rows(x)

    def part(rows):
        mean, m2 = numpy.zeros(x2.shape[1]), numpy.zeros(x2.shape[1])
        _stats_kernel(x2[rows], mean, m2)
        return rows.stop - rows.start, mean, m2

    stats = _parallel.map_chunks(part, _row_parts(x2, 1))
    total = x2.shape[0]
    mean = sum(n * m for n, m, _ in stats) / total
    m2 = sum(m2 + n * (m - mean) ** 2 for n, m, m2 in stats)
    # m2 >= 0 but for rounding in a constant channel: never hand out a negative variance
    var = numpy.maximum(m2, 0) / total
    return mean.astype(x.dtype), var.astype(x.dtype)


def batch_norm_affine_numba(x, axis, mean, scale, shift):
    """Numba version of :func:`batch_norm_affine_reference`."""
    x2 = _rows(x)
    y = numpy.empty(x.shape, x.dtype)
    y2 = y.reshape(x2.shape)
    _parallel.map_chunks(lambda r: _affine_kernel(x2[r], mean, scale, shift, y2[r]),
                         _row_parts(x2, 2))
    return y


def batch_norm_grad_sums_numba(gy, x, axis, mean):
    """Numba version of :func:`batch_norm_grad_sums_reference` (float64 accumulation)."""
    x2, gy2 = _rows(x), _rows(gy, x)

    def part(rows):
        sums = numpy.zeros(x2.shape[1]), numpy.zeros(x2.shape[1])
        _grad_sums_kernel(gy2[rows], x2[rows], mean, *sums)
        return sums

    sums = _parallel.map_chunks(part, _row_parts(x2, 2))
    sum_gy = sum(s[0] for s in sums)
    sum_gy_xc = sum(s[1] for s in sums)
    return sum_gy.astype(x.dtype), sum_gy_xc.astype(x.dtype)


def batch_norm_grad_x_numba(gy, x, axis, mean, p, q, scale):
    """Numba version of :func:`batch_norm_grad_x_reference`."""
    x2, gy2 = _rows(x), _rows(gy, x)
    gx = numpy.empty(x.shape, x.dtype)
    gx2 = gx.reshape(x2.shape)
    _parallel.map_chunks(lambda r: _grad_x_kernel(gy2[r], x2[r], mean, p, q, scale, gx2[r]),
                         _row_parts(x2, 3))
    return gx


# -- references (plain xp) -----------------------------------------------------------------------
def _split(a, axis):
    """``a`` as (outer, C, inner), channels in the middle: a view when ``a`` is contiguous."""
    shape = a.shape
    return a.reshape(math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:]))


def _channel_sums(a3, b3=None):
    """Per-channel sums of an (outer, C, inner) array, or of its product with ``b3``: (C,).

    NumPy: einsum, which reads its operands once without a product temporary (1.5x faster than
    ``sum`` over the same axes at ResNet sizes). CuPy: CuPy's einsum costs more Python than the
    GPU spends on it, and a reduction over the outer axis runs one block per channel, a few
    dozen for the whole GPU; with the channels last (inner == 1) a GEMV with a vector of ones
    spreads over all of it.
    """
    xp = get_array_module(a3)
    if xp is numpy:
        return xp.einsum("abc->b", a3) if b3 is None else xp.einsum("abc,abc->b", a3, b3)
    a3 = a3 if b3 is None else a3 * b3
    if a3.shape[2] != 1:
        return a3.sum(axis=(0, 2))
    a2 = a3.reshape(a3.shape[:2])
    return ones_vector(a2.shape[0], a2.dtype, xp) @ a2


def batch_norm_stats_reference(x, axis):
    """Per-channel mean and biased variance of ``x`` over every axis but ``axis``.

    Two passes (centre, then square): the one-pass E[x^2] - E[x]^2 cancels catastrophically
    in float32 when |mean| >> std.

    Args:
        x: (..., C, ...) non-empty, channels along ``axis`` (a non-negative int).
        axis: the channel axis.

    Returns:
        (mean, var), each (C,) in x's dtype.
    """
    x3 = _split(x, axis)
    n = x.size // x.shape[axis]
    mean = _channel_sums(x3) / n
    xc = x3 - mean[:, None]
    return mean, _channel_sums(xc, xc) / n


def batch_norm_affine_reference(x, axis, mean, scale, shift):
    """``y = (x - mean) * scale + shift`` per channel, centred first (exact for |mean| >> std).

    Args:
        x: (..., C, ...), channels along ``axis``.
        axis: the channel axis (a non-negative int).
        mean, scale, shift: (C,) each.

    Returns:
        y of x's shape.
    """
    y = (_split(x, axis) - mean[:, None]) * scale[:, None] + shift[:, None]
    return y.reshape(x.shape)


def batch_norm_grad_sums_reference(gy, x, axis, mean):
    """Per-channel ``sum(gy)`` and ``sum(gy * (x - mean))``, the reductions of the backward.

    Args:
        gy: gradient of the output, x's shape.
        x: the op's input; channels along ``axis`` (a non-negative int).
        mean: (C,) the mean subtracted in the forward.

    Returns:
        (sum_gy, sum_gy_xc), each (C,).
    """
    g3 = _split(gy, axis)
    return _channel_sums(g3), _channel_sums(g3, _split(x, axis) - mean[:, None])


def batch_norm_grad_x_reference(gy, x, axis, mean, p, q, scale):
    """``gx = ((gy - (x - mean) * p) - q) * scale`` per channel, the input gradient.

    With p = inv * ggamma / n, q = gbeta / n and scale = gamma * inv this is training-mode
    batch normalisation's gx = gamma * inv * (gy - mean(gy) - xh * mean(gy * xh)).

    Args:
        gy: gradient of the output, x's shape.
        x: the op's input; channels along ``axis`` (a non-negative int).
        mean, p, q, scale: (C,) each.

    Returns:
        gx of x's shape.
    """
    gx = ((_split(gy, axis) - (_split(x, axis) - mean[:, None]) * p[:, None]) - q[:, None])
    return (gx * scale[:, None]).reshape(x.shape)
