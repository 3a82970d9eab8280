"""im2col and col2im for channels-last inputs with up to 3 spatial axes: Numba and plain ``xp``.

Every array here is 5-D, ``(batch, depth, height, width, channels)``; 1-D and 2-D convolutions
pass size-1 depth (and height) axes. The Numba kernels take the zero padding as an argument and
pad implicitly: windows inside x are copied as runs, windows that reach into the padding kernel
row by kernel row with zeros (no padded copy of x is made, see :func:`_implicit`); the plain-xp
references take an x padded beforehand.

``im2col`` lays out every receptive field as one row::

    cols[g, m, k] = x[n, od*sd + a*dd, oh*sh + b*dh, ow*sw + e*dw, g*cg + c]

with m = ((n*Do + od)*Ho + oh)*Wo + ow (the output position, channels-last order) and
k = ((a*kh + b)*kw + e)*cg + c (kernel position, then channel), for group g of ``groups``
groups of cg = C // groups channels. Kernels in Keras's layout ``(kd, kh, kw, cg, out)``
reshape to ``(K, out)`` in this same k order, so ``cols[g] @ kernel`` lands the output
directly in channels-last order; with ``ones=True`` every row ends with a 1, the column that
multiplies the bias. ``col2im`` is the adjoint of im2col (without that column): it adds every
entry of ``cols`` back to the input position it was copied from (overlapping windows sum).

The Numba kernels copy one window at a time as a few contiguous runs (a whole kernel row of
kw taps x C channels, when neither groups nor width dilation split it), through slices:
with flat indices into the two buffers LLVM kept the copy scalar, 1.5-3x slower here. Runs
shorter than 32 values go in fixed blocks of 16 that overrun into what is written next
(:func:`_copy_block`: every value loaded before any is stored, one vector move each).
"""
from __future__ import annotations

import math

import numpy

from ..runtime import pooled_empty
from ..backend import get_array_module
from ._jit import jit, parallel_jit, prange
from .activation import grad_kernel
from .blas import gemm


def out_size(n, k, stride, dilation):
    """Positions of a window of ``k`` taps (``dilation`` apart) sliding by ``stride`` over ``n``."""
    return (n - dilation * (k - 1) - 1) // stride + 1


def _out_shape(x_shape, ksize, strides, dilation):
    return tuple(out_size(n, k, s, d) for n, k, s, d in zip(x_shape[1:4], ksize, strides, dilation))


_SHORT_RUN = 16  # floats; shorter runs that are not whole kernel rows (groups, dilation)
# are copied by one gather loop per row
_BLOCK = 16  # floats per fixed-size copy of whole kernel rows in im2col (one AVX-512 vector)


@jit
def _copy_block(src, i, dst, o):
    """``dst[o:o + 16] = src[i:i + 16]`` (both in bounds) as one vector load and one store:
    every value is loaded before any is stored, since the two arrays might overlap for all
    LLVM knows (a loop over the 16, or loads and stores interleaved, stayed scalar: 4.6 vs
    1.4 ns per block measured in isolation; a slice assignment took 23)."""
    s = src[i:i + 16]
    d = dst[o:o + 16]
    t0 = s[0]
    t1 = s[1]
    t2 = s[2]
    t3 = s[3]
    t4 = s[4]
    t5 = s[5]
    t6 = s[6]
    t7 = s[7]
    t8 = s[8]
    t9 = s[9]
    t10 = s[10]
    t11 = s[11]
    t12 = s[12]
    t13 = s[13]
    t14 = s[14]
    t15 = s[15]
    d[0] = t0
    d[1] = t1
    d[2] = t2
    d[3] = t3
    d[4] = t4
    d[5] = t5
    d[6] = t6
    d[7] = t7
    d[8] = t8
    d[9] = t9
    d[10] = t10
    d[11] = t11
    d[12] = t12
    d[13] = t13
    d[14] = t14
    d[15] = t15


@jit
def _window_offsets(shape, ksize, dilation, run):
    """Flat offsets of a window's taps from its first one, each tap ``run`` consecutive channels."""
    _, _, H, W, C = shape
    kd, kh, kw = ksize
    dd, dh, dw = dilation
    offs = numpy.empty(kd * kh * kw * run, numpy.int64)
    i = 0
    for a in range(kd):
        for b in range(kh):
            for e in range(kw):
                base = ((a * dd * H + b * dh) * W + e * dw) * C
                for c in range(run):
                    offs[i] = base + c
                    i += 1
    return offs


@jit
def _runs(shape, ksize, dilation, groups):
    """A window's contiguous runs: their flat offsets from the window's start, and their length.

    Without grouping or width dilation one kernel row (kw taps x C channels) is one run in
    channels-last memory; otherwise each tap's C // groups channels are.
    """
    kd, kh, kw = ksize
    cg = shape[4] // groups
    if groups == 1 and dilation[2] == 1:
        return _window_offsets(shape, (kd, kh, 1), dilation, 1), kw * cg
    return _window_offsets(shape, ksize, dilation, 1), cg


@jit
def _border_taps(xf, dst, shape, zd0, zh0, zw0, c0, ksize, dilation, cg, whole_rows):
    """One window that reaches into the padding, with zeros where it falls outside x.

    With ``whole_rows`` (no groups, no width dilation: a kernel row is one run of kw * C
    values) each kernel row copies the part of its run inside x and zero-fills the rest;
    otherwise it goes tap by tap, ``cg`` channels each. Returns how many values it wrote.
    """
    _, D, H, W, C = shape
    kd, kh, kw = ksize
    dd, dh, dw = dilation
    d = 0
    for a in range(kd):
        zd = zd0 + a * dd
        for b in range(kh):
            zh = zh0 + b * dh
            inside = 0 <= zd < D and 0 <= zh < H
            if whole_rows:
                out = dst[d:d + kw * C]
                e0 = min(max(0, -zw0), kw) if inside else kw  # first tap inside x (or none)
                e1 = max(min(kw, W - zw0), e0) if inside else kw  # past the last one inside
                for j in range(e0 * C):
                    out[j] = 0
                if e1 > e0:
                    o = ((zd * H + zh) * W + zw0) * C
                    src = xf[o + e0 * C:o + e1 * C]
                    mid = out[e0 * C:e1 * C]
                    for j in range(mid.shape[0]):
                        mid[j] = src[j]
                for j in range(e1 * C, kw * C):
                    out[j] = 0
                d += kw * C
                continue
            for e in range(kw):
                zw = zw0 + e * dw
                out = dst[d:d + cg]
                if inside and 0 <= zw < W:
                    o = ((zd * H + zh) * W + zw) * C + c0
                    src = xf[o:o + cg]
                    for c in range(cg):
                        out[c] = src[c]
                else:
                    for c in range(cg):
                        out[c] = 0
                d += cg
    return d


@jit
def _im2col_kernel(x, cols, out, ksize, strides, dilation, lo):
    N, D, H, W, C = x.shape
    G, M, width = cols.shape
    cg = C // G
    sd, sh, sw = strides
    Do, Ho, Wo = out
    # the padding is implicit: window origins are shifted by the `lo` pads, and a window that
    # reaches outside x is copied tap by tap with zeros (no padded copy of x is made)
    ext_d = (ksize[0] - 1) * dilation[0] + 1
    ext_h = (ksize[1] - 1) * dilation[1] + 1
    ext_w = (ksize[2] - 1) * dilation[2] + 1
    offs, run = _runs(x.shape, ksize, dilation, G)
    taps = offs.shape[0] * run
    whole_rows = G == 1 and dilation[2] == 1  # a kernel row is one run (see _runs)
    xf = x.reshape(-1)
    cf = cols.reshape(-1)
    # Short runs (LeNet's first layer: one channel, 11 floats) cost more in per-run slicing
    # than in copying: there one gather loop over precomputed offsets copies the whole row
    # (C1 of LeNet-5: 194 -> 144 us; with long runs the gather was 2.5x slower).
    # Whole kernel rows are copied in blocks of _BLOCK floats, the last block of each run
    # running past it into what is written next (the next run, the column of ones, the next
    # row); only where that overrun stays inside both arrays (else the exact copies below).
    # Fixed-size blocks become single vector moves (:func:`_copy_block`): im2col of a batch
    # of 64 on one thread (loaded 2-core AMD EPYC) took 0.16-0.23 -> 0.07-0.11 ms for
    # LeNet-5's C1 (blocked: runs of 11 floats, 56-wide rows; before, one gather loop per
    # row), 0.14-0.21 -> 0.10-0.15 ms for its C3 (runs of 30; before, a loop per run), and
    # ResNet-20's first layer (runs of 9, batch 128) 1.7-1.9 -> 0.92-0.98 ms.
    # Only for runs shorter than two blocks: longer ones (ResNet's stride-2 layers, runs of
    # 48 and 96 floats) copied 15-25 % slower in blocks than by the loop below.
    blocks = whole_rows and run < 2 * _BLOCK
    over = -(-run // _BLOCK) * _BLOCK
    last = offs[offs.shape[0] - 1] + over  # past the last value the copy of a window reads
    short = run < _SHORT_RUN and not whole_rows
    gather = numpy.empty(taps if short else 0, numpy.int64)
    if short:
        k = 0
        for r in range(offs.shape[0]):
            for j in range(run):
                gather[k] = offs[r] + j
                k += 1
    row = 0
    for g in range(G):
        for n in range(N):
            xn = xf[n * D * H * W * C:(n + 1) * D * H * W * C]
            for od in range(Do):
                zd = od * sd - lo[0]
                for oh in range(Ho):
                    zh = oh * sh - lo[1]
                    for ow in range(Wo):
                        zw = ow * sw - lo[2]
                        d = row
                        if (zd < 0 or zd + ext_d > D or zh < 0 or zh + ext_h > H or zw < 0
                                or zw + ext_w > W):
                            d += _border_taps(xn, cf[d:d + taps], x.shape, zd, zh, zw, g * cg,
                                              ksize, dilation, cg, whole_rows)
                        elif blocks and (n * D * H * W * C + ((zd * H + zh) * W + zw) * C
                                             + last <= xf.shape[0]) and (
                                d + taps - run + over <= cf.shape[0]):
                            o = n * D * H * W * C + ((zd * H + zh) * W + zw) * C
                            for r in range(offs.shape[0]):
                                for q in range(0, over, _BLOCK):
                                    _copy_block(xf, o + offs[r] + q, cf, d + q)
                                d += run
                        elif short:
                            o = ((zd * H + zh) * W + zw) * C + g * cg
                            dst = cf[d:d + taps]
                            for t in range(taps):
                                dst[t] = xn[o + gather[t]]
                            d += taps
                        else:
                            o = ((zd * H + zh) * W + zw) * C + g * cg
                            for r in range(offs.shape[0]):
                                # slices, not flat indices: LLVM then vectorises the copy
                                src = xn[o + offs[r]:o + offs[r] + run]
                                dst = cf[d:d + run]
                                for j in range(run):
                                    dst[j] = src[j]
                                d += run
                        if width > taps:  # the column of ones that carries the bias
                            cf[d] = 1
                        row += width


@jit
def _col2im_kernel(cols, gx, out, ksize, strides, dilation, lo):
    N, D, H, W, C = gx.shape
    G, M, K = cols.shape
    cg = C // G
    sd, sh, sw = strides
    dd, dh, dw = dilation
    kd, kh, kw = ksize
    Do, Ho, Wo = out
    ext_d = (kd - 1) * dd + 1
    ext_h = (kh - 1) * dh + 1
    ext_w = (kw - 1) * dw + 1
    offs, run = _runs(gx.shape, ksize, dilation, G)
    whole_rows = G == 1 and dw == 1  # a kernel row is one run (see _runs)
    gf = gx.reshape(-1)
    cf = cols.reshape(-1)
    d = 0
    for g in range(G):
        for n in range(N):
            gn = gf[n * D * H * W * C:(n + 1) * D * H * W * C]
            for od in range(Do):
                zd0 = od * sd - lo[0]
                for oh in range(Ho):
                    zh0 = oh * sh - lo[1]
                    for ow in range(Wo):
                        zw0 = ow * sw - lo[2]
                        if (zd0 < 0 or zd0 + ext_d > D or zh0 < 0 or zh0 + ext_h > H
                                or zw0 < 0 or zw0 + ext_w > W):
                            # a window reaching into the padding: the padding's share of the
                            # gradient is dropped (the part of a kernel row's run inside x is
                            # added as one run when rows are whole, else tap by tap)
                            for a in range(kd):
                                zd = zd0 + a * dd
                                for b in range(kh):
                                    zh = zh0 + b * dh
                                    inside = 0 <= zd < D and 0 <= zh < H
                                    if whole_rows:
                                        if inside:
                                            e0 = min(max(0, -zw0), kw)  # first tap inside x
                                            e1 = max(min(kw, W - zw0), e0)  # past the last
                                            o = ((zd * H + zh) * W + zw0) * C
                                            dst = gn[o + e0 * C:o + e1 * C]
                                            src = cf[d + e0 * C:d + e1 * C]
                                            for j in range(dst.shape[0]):
                                                dst[j] += src[j]
                                        d += kw * C
                                        continue
                                    for e in range(kw):
                                        zw = zw0 + e * dw
                                        if inside and 0 <= zw < W:
                                            o = ((zd * H + zh) * W + zw) * C + g * cg
                                            dst = gn[o:o + cg]
                                            src = cf[d:d + cg]
                                            for c in range(cg):
                                                dst[c] += src[c]
                                        d += cg
                        else:
                            o = ((zd0 * H + zh0) * W + zw0) * C + g * cg
                            for r in range(offs.shape[0]):
                                dst = gn[o + offs[r]:o + offs[r] + run]
                                src = cf[d:d + run]
                                for j in range(run):
                                    dst[j] += src[j]
                                d += run


@jit
def _gemm(fn, nn, nt, small, trans_a, a, lda, b, ldb, c, ldc, m, n, k, beta):
    """:func:`fundl.kernels.blas.gemm` (``c = op(a) @ b + beta * c``, row-major, through the
    cblas pointer ``fn``), or with ``small`` through OpenBLAS's AVX-512 small-matrix kernels
    called directly (see :func:`fundl.kernels.convolution.small_gemms`): ``nn`` for
    ``c = a @ b`` (its beta-0 variant: c is never read, it may hold garbage), ``nt`` for
    ``c = a.T @ b + beta * c``. They are column-major: the row-major product is computed as
    c^T = b^T @ op(a)^T, so b comes first and a transposed ``a`` becomes the "nt" case."""
    if small and trans_a:
        nt(n, m, k, b.ctypes.data, ldb, 1.0, a.ctypes.data, lda, beta, c.ctypes.data, ldc)
    elif small and beta == 0:
        nn(n, m, k, b.ctypes.data, ldb, 1.0, a.ctypes.data, lda, c.ctypes.data, ldc)
    else:
        gemm(fn, trans_a, a, lda, b, ldb, c, ldc, m, n, k, beta)


# -- a convolution's batch chunks, all in one Numba parallel region ------------------------------
# Thread t takes the chunks first[t]:first[t + 1]; chunk c has the samples chunks[c]:chunks[c +
# 1] (both arrays from fundl.kernels._parallel.bounds_of). Why a
# compiled region and not Python threads: handing work to the other core cost ~90 us through
# a thread pool and the chunks' Python took turns with the GIL; LeNet-5's convolutions could
# not be split at all that way (its step went from 4.4 to 5.3 ms with two chunks).
@jit
def _relu_rows(y):
    """``numpy.maximum(y, 0, out=y)`` of a flat run of a convolution's output (NaN stays NaN,
    -0.0 becomes 0.0), as :func:`fundl.kernels.activation.relu_in_place_numba` computes it: a
    fused ReLU applied per chunk inside the region instead of one more pass over the whole
    output after it (LeNet-5's C1 output is 1.2 MB; that pass took ~16 us on one thread)."""
    zero = y.dtype.type(0)
    for i in range(y.shape[0]):
        v = y[i]
        y[i] = v if v > zero or v != v else zero


@parallel_jit
def _conv_forward_chunks(fn, nn, nt, small, x, bufs, per_chunk, w, y, out, ksize, strides,
                         dilation, lo, chunks, first, relu):
    """im2col and the GEMM of every batch chunk: ``y[g, rows of the chunk] = cols[g] @ w[g]``,
    with ``relu`` then ``max(y, 0)`` on those rows while they are in cache (:func:`_relu_rows`).

    ``fn``: the GEMM (:func:`fundl.kernels.blas.gemm_function`), or with ``small`` the
    kernels ``nn``/``nt`` (:func:`_gemm`); ``x`` (N, D, H, W, C), its
    padding ``lo`` implicit; ``bufs`` (count, size) flat cols buffers, one per chunk when
    ``per_chunk`` (kept for the backward) else one per thread; ``w`` (G, width, out/G);
    ``y`` (G, N * rows, out/G) written, rows = the output positions ``out`` of a sample.
    """
    g_count, width, co = w.shape
    rows = out[0] * out[1] * out[2]
    for t in prange(len(first) - 1):
        for c in range(first[t], first[t + 1]):
            s, e = chunks[c], chunks[c + 1]
            m = (e - s) * rows
            if m == 0:
                continue
            # (a 1-D slice: Numba reshapes only arrays it knows to be contiguous; the parallel
            # loop's index is unsigned, and unsigned with signed would make a float index)
            cols = bufs[c if per_chunk else numpy.int64(t)][:g_count * m * width].reshape(
                (g_count, m, width))
            _im2col_kernel(x[s:e], cols, out, ksize, strides, dilation, lo)
            for g in range(g_count):
                _gemm(fn, nn, nt, small, False, cols[g, 0], width, w[g, 0], co, y[g, s * rows],
                      co, m, co, width, 0.0)
                if relu:
                    _relu_rows(y[g].reshape(-1)[s * rows * co:(s * rows + m) * co])


@parallel_jit
def _conv_backward_chunks(fn, nn, nt, small, x, bufs, per_chunk, recompute, gy, ldg, w_t,
                          width, gx, gwb, gbufs, out, ksize, strides, dilation, lo, chunks,
                          first, act, g_in, y_out, g_out):
    """The gradients of :func:`_conv_forward_chunks`, chunk by chunk.

    ``gy`` (G, N * rows, out/G), rows ``ldg`` elements apart; with ``gwb`` (threads, G, width,
    out/G) not empty, thread t writes the sum of its chunks' ``cols^T @ gy`` there (cols from
    ``bufs``, built again first when ``recompute``); with ``gx`` (N, D, H, W, C) not empty,
    each chunk writes ``col2im(gy @ w_t)`` into its samples of gx (``w_t`` (G, out/G, taps):
    the kernel without its bias row, transposed; ``gbufs`` (threads, size) scratch).

    With ``act`` (1 ReLU, 2 tanh, 3 sigmoid; 0 none; G == 1 and ``ldg`` == out) each chunk
    first writes its rows of ``gy`` itself, flat ``g_out`` (the same memory), as the gradient
    through the fused activation of the incoming ``g_in`` from the kept output ``y_out`` (both
    flat), while the products that read them next find them in cache
    (:func:`fundl.kernels.activation.grad_kernel`: the separate pass's arithmetic).
    """
    g_count, co, taps = w_t.shape
    rows = out[0] * out[1] * out[2]
    for t in prange(len(first) - 1):
        if gwb.shape[0]:
            gwb[t] = 0
        for c in range(first[t], first[t + 1]):
            s, e = chunks[c], chunks[c + 1]
            m = (e - s) * rows
            if m == 0:
                continue
            if act:
                lo_, hi_ = s * rows * ldg, (s * rows + m) * ldg
                grad_kernel(act - 1, g_in[lo_:hi_], y_out[lo_:hi_], g_out[lo_:hi_])
            if gwb.shape[0]:
                cols = bufs[c if per_chunk else numpy.int64(t)][:g_count * m * width].reshape(
                    (g_count, m, width))
                if recompute:
                    _im2col_kernel(x[s:e], cols, out, ksize, strides, dilation, lo)
                for g in range(g_count):
                    _gemm(fn, nn, nt, small, True, cols[g, 0], width, gy[g, s * rows], ldg,
                          gwb[t, g, 0], co, width, co, m, 1.0)
            if gx.shape[0]:
                gcols = gbufs[t][:g_count * m * taps].reshape((g_count, m, taps))
                for g in range(g_count):
                    _gemm(fn, nn, nt, small, False, gy[g, s * rows], ldg, w_t[g, 0], taps,
                          gcols[g, 0], taps, m, taps, co, 0.0)
                part = gx[s:e]
                part.reshape(-1)[:] = 0
                _col2im_kernel(gcols, part, out, ksize, strides, dilation, lo)


def _padded(shape, pads):
    """The 5-D ``shape`` with ``pads`` ((before, after) per spatial axis) added."""
    return (shape[0],) + tuple(n + b + a for n, (b, a) in zip(shape[1:4], pads)) + (shape[4],)


def inner(shape, pads):
    """The index of the unpadded region (of a 5-D ``shape``) inside its padded array."""
    return (slice(None),) + tuple(slice(b, b + n) for n, (b, _) in zip(shape[1:4], pads)) + (
        slice(None),)


def pad_5d(x, pads, value=0):
    """Pad the 3 spatial axes of a 5-D array with ``value``; ``x`` itself when no pad is needed."""
    if not any(b or a for b, a in pads):
        return x
    xp = get_array_module(x)
    shape = _padded(x.shape, pads)
    out = xp.zeros(shape, dtype=x.dtype) if value == 0 else xp.full(shape, value, dtype=x.dtype)
    out[inner(x.shape, pads)] = x
    return out


_NO_PADS = ((0, 0),) * 3


def _implicit(shape, ksize, dilation, groups, pads):
    """Whether the kernels should pad implicitly: yes, unless the runs are short.

    Border windows are copied kernel row by kernel row, and that costs per row: with long runs
    (ResNet's 16-64 channels) implicit padding beat a padded copy (im2col and col2im 12-15 %
    faster), with short ones (LeNet's one-channel C1: 11 floats) it was 5x slower than
    copying a padded x, so those keep the copy.
    """
    if not any(b or a for b, a in pads):
        return True
    whole = groups == 1 and dilation[2] == 1
    run = ksize[2] * shape[4] if whole else shape[4] // groups
    return run >= _SHORT_RUN


def im2col_input(x, ksize, strides, dilation, groups, pads):
    """What :func:`_im2col_kernel` reads, for :func:`im2col_numba` and the chunk drivers: (x,
    padded beforehand where implicit padding does not pay, C-contiguous; the ``lo`` pads left
    to the kernel; the output positions (Do, Ho, Wo) of a sample)."""
    if not _implicit(x.shape, ksize, dilation, groups, pads):
        x, pads = pad_5d(x, pads), _NO_PADS
    positions = _out_shape(_padded(x.shape, pads), ksize, strides, dilation)
    return numpy.ascontiguousarray(x), tuple(b for b, _ in pads), positions


def im2col_numba(x, ksize, strides, dilation, groups, ones=False, pads=_NO_PADS):
    """Numba version of :func:`im2col_reference` (NumPy arrays only); ``pads`` ((before,
    after) per spatial axis) pads x with zeros, implicitly where that is faster."""
    x, lo, positions = im2col_input(x, ksize, strides, dilation, groups, pads)
    width = ksize[0] * ksize[1] * ksize[2] * (x.shape[4] // groups) + bool(ones)
    cols = pooled_empty(numpy, (groups, x.shape[0] * math.prod(positions), width), x.dtype)
    _im2col_kernel(x, cols, positions, tuple(ksize), tuple(strides), tuple(dilation), lo)
    return cols


def col2im_numba(cols, x_shape, ksize, strides, dilation, groups, pads=_NO_PADS, out=None):
    """Numba version of :func:`col2im_reference` (NumPy arrays only) for an x of ``x_shape``
    padded implicitly by ``pads``: the padding's gradient is dropped, gx has ``x_shape``.
    ``out``: a C-contiguous array of ``x_shape`` to write gx into (its contents are replaced)."""
    cols = numpy.ascontiguousarray(cols)
    if not _implicit(x_shape, ksize, dilation, groups, pads):
        full = col2im_numba(cols, _padded(tuple(x_shape), pads), ksize, strides, dilation,
                            groups)
        cropped = full[inner(tuple(x_shape), pads)]
        if out is None:
            return numpy.ascontiguousarray(cropped)
        out[...] = cropped
        return out
    if out is not None and not out.flags.c_contiguous:  # the kernel writes flat rows
        out[...] = col2im_numba(cols, x_shape, ksize, strides, dilation, groups, pads)
        return out
    gx = pooled_empty(numpy, x_shape, cols.dtype) if out is None else out
    gx[...] = 0
    positions = _out_shape(_padded(tuple(x_shape), pads), ksize, strides, dilation)
    _col2im_kernel(cols, gx, positions, tuple(ksize), tuple(strides), tuple(dilation),
                   tuple(b for b, _ in pads))
    return gx


def _window(a, b, e, out, strides, dilation):
    """The slices of x that tap (a, b, e) of every window reads."""
    return (slice(None),) + tuple(
        slice(t * d, t * d + s * (o - 1) + 1, s)
        for t, o, s, d in zip((a, b, e), out, strides, dilation)) + (slice(None),)


def im2col_reference(x, ksize, strides, dilation, groups, ones=False):
    """Every receptive field of ``x`` as one row (plain ``xp``; the GPU path).

    Args:
        x: (N, D, H, W, C), already padded.
        ksize, strides, dilation: 3 ints each (depth, height, width).
        groups: C is split into this many groups of C // groups channels.
        ones: append a column of ones to every row (``cols @ [kernel; bias]`` then adds the
            bias inside the GEMM, and ``cols^T @ gy`` yields the bias gradient as its last row).

    Returns:
        cols of shape (groups, N*Do*Ho*Wo, kd*kh*kw*(C // groups) [+ 1]), rows in channels-last
        output order, columns in (kd, kh, kw, channel) order.
    """
    xp = get_array_module(x)
    N, C = x.shape[0], x.shape[4]
    out = _out_shape(x.shape, ksize, strides, dilation)
    cg = C // groups
    cols = xp.empty((groups, N) + out + tuple(ksize) + (cg,), dtype=x.dtype)
    for a in range(ksize[0]):
        for b in range(ksize[1]):
            for e in range(ksize[2]):
                tap = x[_window(a, b, e, out, strides, dilation)].reshape((N,) + out + (groups, cg))
                cols[:, :, :, :, :, a, b, e, :] = xp.moveaxis(tap, 4, 0)
    cols = cols.reshape(groups, N * out[0] * out[1] * out[2], -1)
    if ones:
        cols = xp.concatenate([cols, xp.ones(cols.shape[:2] + (1,), dtype=x.dtype)], axis=2)
    return cols


def col2im_reference(cols, x_shape, ksize, strides, dilation, groups):
    """The adjoint of :func:`im2col_reference`: sums each row entry back to its input position.

    Args:
        cols: (groups, N*Do*Ho*Wo, kd*kh*kw*(C // groups)).
        x_shape: the (padded) input shape (N, D, H, W, C).
        ksize, strides, dilation, groups: as given to ``im2col``.

    Returns:
        gx of shape ``x_shape``.
    """
    xp = get_array_module(cols)
    N, C = x_shape[0], x_shape[4]
    out = _out_shape(x_shape, ksize, strides, dilation)
    gx = xp.zeros(x_shape, dtype=cols.dtype)
    c = cols.reshape((groups, N) + out + tuple(ksize) + (C // groups,))
    for a in range(ksize[0]):
        for b in range(ksize[1]):
            for e in range(ksize[2]):
                tap = xp.moveaxis(c[:, :, :, :, :, a, b, e, :], 0, 4)  # (N, Do, Ho, Wo, G, cg)
                gx[_window(a, b, e, out, strides, dilation)] += tap.reshape((N,) + out + (C,))
    return gx
