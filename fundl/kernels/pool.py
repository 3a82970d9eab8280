"""Max and average pooling over channels-last windows (1 to 3 spatial axes): Numba and ``xp``.

Arrays are 5-D, ``(batch, depth, height, width, channels)``, and arrive already padded (with
-inf for max pooling). A window has P = pd*ph*pw taps, numbered in row-major order
(depth, height, width); output position (od, oh, ow) reads taps starting at
(od*sd, oh*sh, ow*sw).

Max pooling returns, beside the maxima, the tap number (0 <= k < P, int32) of each maximum:
the first one in tap order on ties, so the whole gradient goes to that one element, as in
PyTorch. A NaN in a window makes the output NaN (and takes the gradient). Average pooling
returns the window sum times ``scale[od, oh, ow]`` (the op passes 1 / the number of unpadded
taps, so padding is not counted). On the CPU the batch is cut into one part per thread, run
in one Numba parallel region (:func:`_pool_parts`) where regions can run.
"""
from __future__ import annotations

import numpy

from ..runtime import pooled_empty
from ..backend import get_array_module
from . import _parallel
from ._jit import jit, parallel_jit, prange
from .conv import _out_shape, _window, _window_offsets

_ONES = (1, 1, 1)


def _taps(pool):
    return [(a, b, e) for a in range(pool[0]) for b in range(pool[1]) for e in range(pool[2])]


@jit
def _max_pool_kernel(x, y, arg, pool, strides):
    N, D, H, W, C = x.shape
    _, Do, Ho, Wo, _ = y.shape
    sd, sh, sw = strides
    offs = _window_offsets(x.shape, pool, (1, 1, 1), 1)
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    af = arg.reshape(-1)
    d = 0
    for n in range(N):
        for od in range(Do):
            for oh in range(Ho):
                for ow in range(Wo):
                    o = (((n * D + od * sd) * H + oh * sh) * W + ow * sw) * C
                    yr = yf[d:d + C]
                    ar = af[d:d + C]
                    # Selects, not branches (random data mispredicts the branch); v != v lets a
                    # NaN win, so NaN propagates.
                    if C < 8:  # few channels: each channel's running max stays in registers
                        for c in range(C):
                            best = xf[o + c]
                            a = numpy.int32(0)
                            for k in range(1, offs.shape[0]):
                                v = xf[o + offs[k] + c]
                                win = (v > best) | (v != v)
                                best = v if win else best
                                a = numpy.int32(k) if win else a
                            yr[c] = best
                            ar[c] = a
                    else:  # many channels: one tap at a time, vectorised across channels
                        xr = xf[o:o + C]
                        for c in range(C):
                            yr[c] = xr[c]
                            ar[c] = 0
                        for k in range(1, offs.shape[0]):
                            xr = xf[o + offs[k]:o + offs[k] + C]
                            kk = numpy.int32(k)
                            for c in range(C):
                                v = xr[c]
                                best = yr[c]
                                win = (v > best) | (v != v)
                                yr[c] = v if win else best
                                ar[c] = kk if win else ar[c]
                    d += C


@jit
def _max_pool_grad_kernel(gy, arg, gx, relu_y, first, pool, strides):
    """gx (zeroed here, sample by sample, while it is about to be written: in cache) gets
    each ``gy`` at its window's maximum. ``relu_y`` not empty: the pooled output of a ReLU-ed
    input (all samples, (N, Do*Ho*Wo, C); this part starts at sample ``first``), and windows
    whose maximum is not positive (or NaN) get no gradient: ReLU's gradient done here."""
    N, D, H, W, C = gx.shape
    _, Do, Ho, Wo, _ = gy.shape
    sd, sh, sw = strides
    offs = _window_offsets(gx.shape, pool, (1, 1, 1), 1)
    gf = gx.reshape(-1)
    gyf = gy.reshape(-1)
    af = arg.reshape(-1)
    relu = relu_y.shape[0] > 0
    yf = relu_y.reshape(-1)
    y0 = first * Do * Ho * Wo * C
    zero = gx.dtype.type(0)
    per = D * H * W * C
    d = 0
    for n in range(N):
        gn = gf[n * per:(n + 1) * per]
        for i in range(per):
            gn[i] = zero
        for od in range(Do):
            for oh in range(Ho):
                for ow in range(Wo):
                    o = (((n * D + od * sd) * H + oh * sh) * W + ow * sw) * C
                    for c in range(C):
                        a = af[d + c]
                        # -1: a window whose gradient was dropped
                        if a >= 0 and (not relu or yf[y0 + d + c] > zero):
                            gf[o + offs[a] + c] += gyf[d + c]
                    d += C


@jit
def _avg_pool_kernel(x, y, scale, pool, strides):
    N, D, H, W, C = x.shape
    _, Do, Ho, Wo, _ = y.shape
    sd, sh, sw = strides
    offs = _window_offsets(x.shape, pool, (1, 1, 1), 1)
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    sf = scale.reshape(-1)
    d = 0
    for n in range(N):
        j = 0
        for od in range(Do):
            for oh in range(Ho):
                for ow in range(Wo):
                    o = (((n * D + od * sd) * H + oh * sh) * W + ow * sw) * C
                    yr = yf[d:d + C]
                    xr = xf[o:o + C]
                    for c in range(C):
                        yr[c] = xr[c]
                    for k in range(1, offs.shape[0]):
                        xr = xf[o + offs[k]:o + offs[k] + C]
                        for c in range(C):
                            yr[c] += xr[c]
                    s = sf[j]
                    for c in range(C):
                        yr[c] *= s
                    d += C
                    j += 1


@jit
def _avg_pool_grad_kernel(gy, gx, scale, pool, strides):
    N, D, H, W, C = gx.shape
    _, Do, Ho, Wo, _ = gy.shape
    sd, sh, sw = strides
    offs = _window_offsets(gx.shape, pool, (1, 1, 1), 1)
    gf = gx.reshape(-1)
    gyf = gy.reshape(-1)
    sf = scale.reshape(-1)
    d = 0
    for n in range(N):
        j = 0
        for od in range(Do):
            for oh in range(Ho):
                for ow in range(Wo):
                    o = (((n * D + od * sd) * H + oh * sh) * W + ow * sw) * C
                    s = sf[j]
                    gr = gyf[d:d + C]
                    for k in range(offs.shape[0]):
                        dst = gf[o + offs[k]:o + offs[k] + C]
                        for c in range(C):
                            dst[c] += gr[c] * s
                    d += C
                    j += 1


@jit
def _move8(src, i, dst, o):
    """``dst[o:o + 8] = src[i:i + 8]`` (both in bounds, not overlapping) as one vector move:
    the copy-out of a few channels per window, which as a loop over C (6 on LeNet-5's first
    map) stayed scalar (that map's forward with taps: 300 -> 225 us on one thread)."""
    s = src[i:i + 8]
    d = dst[o:o + 8]
    t0, t1, t2, t3, t4, t5, t6, t7 = s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
    d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7] = t0, t1, t2, t3, t4, t5, t6, t7


@jit
def _avg_pool_tiled_kernel(x, y, scale, pool):
    """Average pooling when the windows tile the input (strides == pool): LeNet's 2x2 pools.

    Row by row instead of window by window: the rows of one output row's windows are summed
    into a buffer as long contiguous runs, then each value with its right-hand neighbours
    (``e * C`` further: the window's columns), then scaled, all vectorised; each window's C
    results are then copied out (8-value moves below 9 channels, as in
    :func:`_max_pool_tiled_kernel`). Where the scales of an output row differ (windows that
    overlap the padding) each window is scaled as it is copied. The window-by-window kernel
    spent its time in loops of only C iterations, and so did the per-window sums here
    (LeNet-5's first map, batch 64, one thread: 139 -> 87 us, the same values bit for bit).
    """
    N, D, H, W, C = x.shape
    _, Do, Ho, Wo, _ = y.shape
    pd, ph, pw = pool
    run = Wo * pw * C
    cols = run - (pw - 1) * C  # the values of m that a window's sum may start at
    r = numpy.empty(run, x.dtype)
    m = numpy.empty(run, x.dtype)
    blocks = 0 if C > 8 else max(0, min((Wo * C - 8) // C + 1, (run - 8) // (pw * C) + 1))
    sf = scale.reshape(-1)
    for n in range(N):
        j = 0
        for od in range(Do):
            for oh in range(Ho):
                first = True
                for a in range(pd):
                    for b in range(ph):
                        xr = x[n, od * pd + a, oh * ph + b].reshape(-1)[:run]
                        if first:
                            for i in range(run):
                                r[i] = xr[i]
                            first = False
                        else:
                            for i in range(run):
                                r[i] += xr[i]
                mr = r
                if pw > 1:  # (shifted slices: see _max_pool_tiled_kernel)
                    r1 = r[C:]
                    for i in range(cols):
                        m[i] = r[i] + r1[i]
                    for e in range(2, pw):
                        re = r[e * C:]
                        for i in range(cols):
                            m[i] += re[i]
                    mr = m
                s = sf[j]
                uniform = True
                for ow in range(1, Wo):
                    uniform = uniform and sf[j + ow] == s
                yr = y[n, od, oh].reshape(-1)
                if uniform:
                    for i in range(cols):
                        mr[i] *= s
                    for ow in range(blocks):
                        _move8(mr, ow * pw * C, yr, ow * C)
                    for ow in range(blocks, Wo):
                        yo = yr[ow * C:(ow + 1) * C]
                        ms = mr[ow * pw * C:ow * pw * C + C]
                        for c in range(C):
                            yo[c] = ms[c]
                else:
                    for ow in range(Wo):
                        yo = yr[ow * C:(ow + 1) * C]
                        ms = mr[ow * pw * C:ow * pw * C + C]
                        so = sf[j + ow]
                        for c in range(C):
                            yo[c] = ms[c] * so
                j += Wo


@jit
def _avg_pool_grad_tiled_kernel(gy, gx, scale, pool):
    """The gradient of :func:`_avg_pool_tiled_kernel`: each window's ``gy`` spread over its
    ``pw`` columns in a row buffer (8-value moves below 9 channels) and scaled (vectorised,
    where the row's scales are equal), then copied to the window rows of ``gx`` (no
    accumulation). LeNet-5's first map, batch 64, one thread: 118 -> 72 us."""
    N, Do, Ho, Wo, C = gy.shape
    pd, ph, pw = pool
    run = Wo * pw * C
    r = numpy.empty(run, gy.dtype)
    blocks = 0 if C > 8 else max(0, min((Wo * C - 8) // C + 1,
                                        (run - 8 - (pw - 1) * C) // (pw * C) + 1))
    sf = scale.reshape(-1)
    for n in range(N):
        j = 0
        for od in range(Do):
            for oh in range(Ho):
                gr = gy[n, od, oh].reshape(-1)
                s = sf[j]
                uniform = True
                for ow in range(1, Wo):
                    uniform = uniform and sf[j + ow] == s
                if uniform:
                    for ow in range(blocks):
                        for e in range(pw):
                            _move8(gr, ow * C, r, (ow * pw + e) * C)
                    for ow in range(blocks, Wo):
                        g = gr[ow * C:(ow + 1) * C]
                        for e in range(pw):
                            re = r[(ow * pw + e) * C:(ow * pw + e + 1) * C]
                            for c in range(C):
                                re[c] = g[c]
                    for i in range(run):
                        r[i] *= s
                else:
                    for ow in range(Wo):
                        g = gr[ow * C:(ow + 1) * C]
                        so = sf[j + ow]
                        for e in range(pw):
                            re = r[(ow * pw + e) * C:(ow * pw + e + 1) * C]
                            for c in range(C):
                                re[c] = g[c] * so
                j += Wo
                for a in range(pd):
                    for b in range(ph):
                        dst = gx[n, od * pd + a, oh * ph + b].reshape(-1)[:run]
                        for i in range(run):
                            dst[i] = r[i]


@jit
def _max_pool_tiled_kernel(x, y, arg, pool):
    """Max pooling when the windows tile the input (strides == pool): the 2x2 pools of LeNet
    and VGG.

    Every step is a loop over a whole output row's contiguous run of input (Wo * pw * C
    elements), which vectorises: the window rows are compared element by element, keeping
    the winning row, then each element with its right-hand neighbours (``e * C`` further),
    and only then each window's result is copied out. The window-by-window kernel ran loops
    of C iterations (below 8 channels, strided ones) and took 1.8-3x as long on LeNet's
    64x28x28x6 map (one thread, a loaded machine).
    Ties go to the first tap in (depth, height, width) order, as there; a NaN wins. An empty
    ``arg`` writes no tap numbers (a third of the work on LeNet's first map).
    """
    N, D, H, W, C = x.shape
    _, Do, Ho, Wo, _ = y.shape
    pd, ph, pw = pool
    run = Wo * pw * C
    r = numpy.empty(run, x.dtype)
    ra = numpy.empty(run, numpy.int32)  # tap number of r's value (within its window)
    m = numpy.empty(run, x.dtype)
    ma = numpy.empty(run, numpy.int32)
    keep = arg.size > 0  # an empty arg: the maxima only (inference: no backward to route)
    # windows whose 8-value move stays inside the output row and the row buffer (C <= 8)
    blocks = 0 if C > 8 else max(0, min((Wo * C - 8) // C + 1, (run - 8) // (pw * C) + 1))
    for n in range(N):
        for od in range(Do):
            for oh in range(Ho):
                row = 0
                for a in range(pd):
                    for b in range(ph):
                        xr = x[n, od * pd + a, oh * ph + b].reshape(-1)[:run]
                        if row == 0:
                            for i in range(run):
                                r[i] = xr[i]
                                ra[i] = 0
                        else:
                            k = numpy.int32(row * pw)
                            for i in range(run):
                                v = xr[i]
                                best = r[i]
                                win = (v > best) | (v != v)  # strict: ties keep the earlier row
                                r[i] = v if win else best
                                ra[i] = k if win else ra[i]
                        row += 1
                # columns: m[i] = the best of r[i], r[i + C], ... r[i + (pw-1) C]; a tie
                # between an earlier row of a later column and a later row: smaller tap wins.
                # (Shifted slices, not r[i + e*C]: Numba's wraparound check on an index it
                # cannot prove non-negative stops the loop from vectorising, 15x slower.)
                mr, mra = r, ra
                for e in range(1, pw):
                    ee = numpy.int32(e)
                    rs, ras = r[e * C:], ra[e * C:]
                    for i in range(run - e * C):
                        v = rs[i]
                        k = ras[i] + ee
                        best = mr[i]
                        bk = mra[i]
                        win = (v > best) | ((v == best) & (k < bk)) | (v != v)
                        m[i] = v if win else best
                        ma[i] = k if win else bk
                    mr, mra = m, ma
                # each window's result, at the start of its C-run: the first `blocks` in
                # 8-value moves that run past it (the next window's copy overwrites that)
                yr = y[n, od, oh].reshape(-1)
                for ow in range(blocks):
                    _move8(mr, ow * pw * C, yr, ow * C)
                for ow in range(blocks, Wo):
                    yo = yr[ow * C:(ow + 1) * C]
                    ms = mr[ow * pw * C:ow * pw * C + C]
                    for c in range(C):
                        yo[c] = ms[c]
                if keep:
                    ar = arg[n, od, oh].reshape(-1)
                    for ow in range(blocks):
                        _move8(mra, ow * pw * C, ar, ow * C)
                    for ow in range(blocks, Wo):
                        ao = ar[ow * C:(ow + 1) * C]
                        mas = mra[ow * pw * C:ow * pw * C + C]
                        for c in range(C):
                            ao[c] = mas[c]


# -- the batch's parts on parallel threads, in one region --------------------------------------
MAX, MAX_GRAD, AVG, AVG_GRAD = 0, 1, 2, 3


@parallel_jit
def _pool_parts(kind, src, dst, arg, scale, pool, strides, tiled, bounds):
    """One of the kernels above over the samples ``bounds[i]:bounds[i + 1]`` of each part:
    ``kind`` MAX (src x, dst y, arg written), MAX_GRAD (src gy, arg read, dst gx, zeroed by
    the kernel; ``scale``, when not empty, the pooled output of a ReLU-ed input, see
    :func:`_max_pool_grad_kernel`), AVG (src x, dst y) or AVG_GRAD (src gy, dst gx);
    ``tiled``: pool == strides."""
    for i in prange(len(bounds) - 1):
        s, e = bounds[i], bounds[i + 1]
        if kind == MAX and tiled:
            _max_pool_tiled_kernel(src[s:e], dst[s:e], arg[s:e], pool)
        elif kind == MAX:
            _max_pool_kernel(src[s:e], dst[s:e], arg[s:e], pool, strides)
        elif kind == MAX_GRAD:
            _max_pool_grad_kernel(src[s:e], arg[s:e], dst[s:e], scale, s, pool, strides)
        elif kind == AVG and tiled:
            _avg_pool_tiled_kernel(src[s:e], dst[s:e], scale, pool)
        elif kind == AVG:
            _avg_pool_kernel(src[s:e], dst[s:e], scale, pool, strides)
        elif tiled:
            _avg_pool_grad_tiled_kernel(src[s:e], dst[s:e], scale, pool)
        else:
            _avg_pool_grad_kernel(src[s:e], dst[s:e], scale, pool, strides)


def _run(kind, src, dst, arg, scale, pool, strides):
    """:func:`_pool_parts` over one part per thread in a parallel region where regions can
    run (a LeNet-5 step's four pooling passes: 0.41 -> 0.2 ms), else over the whole batch
    on this thread. Unused arrays come as empty ones of the right kind."""
    n = src.shape[0]
    parts = _parallel.even_slices(n, _parallel.threads() if _parallel.regions() else 1)
    # max pooling takes the row-by-row kernel below 8 channels only: from 8 on the
    # window-by-window kernel's loops over channels vectorise, and it was faster (10x10x16:
    # 40 vs 55 us; 16x16x64: 150-180 vs 210-220 us)
    tiled = _tiled(pool, strides) and (kind != MAX or src.shape[4] < 8)
    args = (kind, src, dst, arg, scale, tuple(pool), tuple(strides), tiled,
            _parallel.bounds_of(parts))
    # (one thread, or backing off: the same parts one after the other, the same results)
    _parallel.run_backing_off(_BACKOFF, _pool_parts, len(parts), src.nbytes + dst.nbytes,
                              src.dtype, *args, blas=False)


_BACKOFF = _parallel.Backoff(per_second=1e9)
"""Pooling's regions back off to one thread while they stall (another process holding the
second core made a region wait a time slice: LeNet-5's first max pooling took ~8 ms instead
of ~0.15 ms); ``per_second``: bytes read and written per second on one core, a low estimate
(that map, 1.5 MB, took ~0.2-0.3 ms on one thread); a dtype's first region (loading the
driver) is not counted (see :func:`fundl.kernels._parallel.run_backing_off`)."""


_NO_ARG = numpy.empty((0, 1, 1, 1, 1), numpy.int32)


def _no_scale(dtype):
    return numpy.empty((0, 0, 0), dtype)


def _tiled(pool, strides):
    return tuple(pool) == tuple(strides)


def _pooled_shape(x_shape, pool, strides):
    return (x_shape[0],) + _out_shape(x_shape, pool, strides, _ONES) + (x_shape[4],)


def max_pool_numba(x, pool, strides, with_arg=True):
    """Numba version of :func:`max_pool_reference` (NumPy arrays only); ``with_arg=False``
    (no backward will follow) returns ``(y, None)``, skipping the tap numbers where the
    kernel can (tiling windows below 8 channels)."""
    x = numpy.ascontiguousarray(x)
    shape = _pooled_shape(x.shape, pool, strides)
    y = pooled_empty(numpy, shape, x.dtype)
    skip = not with_arg and _tiled(pool, strides) and x.shape[4] < 8
    arg = _NO_ARG if skip else pooled_empty(numpy, shape, numpy.int32)
    _run(MAX, x, y, arg, _no_scale(x.dtype), pool, strides)
    return y, (arg if with_arg else None)


def max_pool_grad_numba(gy, arg, x_shape, pool, strides, relu_y=None):
    """Numba version of :func:`max_pool_grad_reference` (NumPy arrays only)."""
    # A scatter into zeros, also for tiling windows: a kernel writing every element once
    # (no zeroing) was no faster on a LeNet step, as spreading gy over the window rows is
    # 4x the scalar work of the scatter and zeroing is a fast memset (done by the kernel,
    # sample by sample, on recycled memory: no page faults, and in cache for the scatter)
    gx = pooled_empty(numpy, x_shape, gy.dtype)
    if relu_y is None:
        relu_y = _no_scale(gy.dtype)
    else:  # as the kernel reads it: (N, positions, C), one dtype with gy
        relu_y = numpy.ascontiguousarray(relu_y, dtype=gy.dtype).reshape(
            relu_y.shape[0], -1, relu_y.shape[-1])
    _run(MAX_GRAD, numpy.ascontiguousarray(gy), gx, numpy.ascontiguousarray(arg), relu_y,
         pool, strides)
    return gx


def avg_pool_numba(x, pool, strides, scale):
    """Numba version of :func:`avg_pool_reference` (NumPy arrays only)."""
    x = numpy.ascontiguousarray(x)
    y = pooled_empty(numpy, _pooled_shape(x.shape, pool, strides), x.dtype)
    scale = numpy.ascontiguousarray(scale, dtype=x.dtype)
    _run(AVG, x, y, _NO_ARG, scale, pool, strides)
    return y


def avg_pool_grad_numba(gy, x_shape, pool, strides, scale):
    """Numba version of :func:`avg_pool_grad_reference` (NumPy arrays only)."""
    gy = numpy.ascontiguousarray(gy)
    scale = numpy.ascontiguousarray(scale, dtype=gy.dtype)
    if _tiled(pool, strides):
        # every input element in a window is written once; the rest (a remainder the windows
        # do not reach) gets no gradient, so zeros are needed only when there is one
        covered = all(o * p == n for o, p, n in zip(gy.shape[1:4], pool, x_shape[1:4]))
        gx = pooled_empty(numpy, x_shape, gy.dtype)
        if not covered:
            gx.fill(0)
    else:
        gx = pooled_empty(numpy, x_shape, gy.dtype)
        gx.fill(0)
    _run(AVG_GRAD, gy, gx, _NO_ARG, scale, pool, strides)
    return gx


def max_pool_reference(x, pool, strides):
    """The maximum of every window, and which tap held it (plain ``xp``; the GPU path).

    Args:
        x: (N, D, H, W, C), already padded with -inf.
        pool, strides: 3 ints each (depth, height, width).

    Returns:
        (y, arg): the maxima, (N, Do, Ho, Wo, C), and int32 tap numbers of the same shape.
    """
    xp = get_array_module(x)
    out = _out_shape(x.shape, pool, strides, _ONES)
    taps = xp.stack([x[_window(a, b, e, out, strides, _ONES)] for a, b, e in _taps(pool)])
    # argmax takes the first maximum, max propagates NaN: as the Numba kernel (which may pick
    # another NaN of the window than argmax's first one).
    return taps.max(axis=0), taps.argmax(axis=0).astype(xp.int32)


def max_pool_grad_reference(gy, arg, x_shape, pool, strides, relu_y=None):
    """Route each output gradient to the input element that held the window's maximum.

    Args:
        gy: (N, Do, Ho, Wo, C) gradient of the pooled output.
        arg: the tap numbers from :func:`max_pool_reference`; -1 drops a window's gradient.
        x_shape: the (padded) input shape.
        pool, strides: as given to the forward.
        relu_y: None, or the pooled output (like gy) of an input that went through a ReLU:
            windows whose maximum is not positive (or NaN) are dropped too, which is ReLU's
            gradient (max(relu(x)) = relu(max(x))).

    Returns:
        gx of shape ``x_shape`` (overlapping windows add up).
    """
    xp = get_array_module(gy)
    if relu_y is not None:
        arg = xp.where(relu_y > 0, arg, -1)
    gx = xp.zeros(x_shape, dtype=gy.dtype)
    out = gy.shape[1:4]
    for k, (a, b, e) in enumerate(_taps(pool)):
        gx[_window(a, b, e, out, strides, _ONES)] += xp.where(arg == k, gy, 0)
    return gx


def avg_pool_reference(x, pool, strides, scale):
    """Every window's sum times ``scale`` (plain ``xp``; the GPU path).

    Args:
        x: (N, D, H, W, C), already padded with zeros.
        pool, strides: 3 ints each.
        scale: (Do, Ho, Wo) factors, usually 1 / the number of unpadded taps.

    Returns:
        y of shape (N, Do, Ho, Wo, C).
    """
    out = _out_shape(x.shape, pool, strides, _ONES)
    y = None
    for a, b, e in _taps(pool):
        tap = x[_window(a, b, e, out, strides, _ONES)]
        y = tap.copy() if y is None else y + tap
    return y * scale[None, :, :, :, None].astype(x.dtype)


def avg_pool_grad_reference(gy, x_shape, pool, strides, scale):
    """The adjoint of :func:`avg_pool_reference`: each tap gets ``gy * scale``.

    Args:
        gy: (N, Do, Ho, Wo, C).
        x_shape: the (padded) input shape.
        pool, strides, scale: as given to the forward.

    Returns:
        gx of shape ``x_shape``.
    """
    xp = get_array_module(gy)
    gx = xp.zeros(x_shape, dtype=gy.dtype)
    g = gy * scale[None, :, :, :, None].astype(gy.dtype)
    for a, b, e in _taps(pool):
        gx[_window(a, b, e, gy.shape[1:4], strides, _ONES)] += g
    return gx
