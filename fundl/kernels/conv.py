"""im2col and col2im for channels-last inputs with up to 3 spatial axes: Numba and plain ``xp``.

Every array here is 5-D, ``(batch, depth, height, width, channels)``; 1-D and 2-D convolutions
pass size-1 depth (and height) axes. Inputs arrive already padded, so no kernel checks bounds.

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
with flat indices into the two buffers LLVM kept the copy scalar, 1.5-3x slower here.
"""
from __future__ import annotations

import numpy

from ..backend import get_array_module
from ._jit import jit


def out_size(n, k, stride, dilation):
    """Positions of a window of ``k`` taps (``dilation`` apart) sliding by ``stride`` over ``n``."""
    return (n - dilation * (k - 1) - 1) // stride + 1


def _out_shape(x_shape, ksize, strides, dilation):
    return tuple(out_size(n, k, s, d) for n, k, s, d in zip(x_shape[1:4], ksize, strides, dilation))


_SHORT_RUN = 16  # floats; shorter contiguous runs are copied by one gather loop per row


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
def _im2col_kernel(x, cols, out, ksize, strides, dilation):
    N, D, H, W, C = x.shape
    G, M, width = cols.shape
    cg = C // G
    sd, sh, sw = strides
    Do, Ho, Wo = out
    offs, run = _runs(x.shape, ksize, dilation, G)
    taps = offs.shape[0] * run
    xf = x.reshape(-1)
    cf = cols.reshape(-1)
    # Short runs (LeNet's first layer: one channel, 11 floats) cost more in per-run slicing
    # than in copying: there one gather loop over precomputed offsets copies the whole row
    # (C1 of LeNet-5: 194 -> 144 us; with long runs the gather was 2.5x slower).
    short = run < _SHORT_RUN
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
            for od in range(Do):
                for oh in range(Ho):
                    for ow in range(Wo):
                        o = (((n * D + od * sd) * H + oh * sh) * W + ow * sw) * C + g * cg
                        d = row
                        if short:
                            dst = cf[d:d + taps]
                            for t in range(taps):
                                dst[t] = xf[o + gather[t]]
                            d += taps
                        else:
                            for r in range(offs.shape[0]):
                                # slices, not flat indices: LLVM then vectorises the copy
                                src = xf[o + offs[r]:o + offs[r] + run]
                                dst = cf[d:d + run]
                                for j in range(run):
                                    dst[j] = src[j]
                                d += run
                        if width > taps:  # the column of ones that carries the bias
                            cf[d] = 1
                        row += width


@jit
def _col2im_kernel(cols, gx, out, ksize, strides, dilation):
    N, D, H, W, C = gx.shape
    G, M, K = cols.shape
    cg = C // G
    sd, sh, sw = strides
    Do, Ho, Wo = out
    offs, run = _runs(gx.shape, ksize, dilation, G)
    gf = gx.reshape(-1)
    cf = cols.reshape(-1)
    d = 0
    for g in range(G):
        for n in range(N):
            for od in range(Do):
                for oh in range(Ho):
                    for ow in range(Wo):
                        o = (((n * D + od * sd) * H + oh * sh) * W + ow * sw) * C + g * cg
                        for r in range(offs.shape[0]):
                            dst = gf[o + offs[r]:o + offs[r] + run]
                            src = cf[d:d + run]
                            for j in range(run):
                                dst[j] += src[j]
                            d += run


def im2col_numba(x, ksize, strides, dilation, groups, ones=False):
    """Numba version of :func:`im2col_reference` (NumPy arrays only)."""
    x = numpy.ascontiguousarray(x)
    N, C = x.shape[0], x.shape[4]
    Do, Ho, Wo = _out_shape(x.shape, ksize, strides, dilation)
    width = ksize[0] * ksize[1] * ksize[2] * (C // groups) + bool(ones)
    cols = numpy.empty((groups, N * Do * Ho * Wo, width), dtype=x.dtype)
    _im2col_kernel(x, cols, (Do, Ho, Wo), tuple(ksize), tuple(strides), tuple(dilation))
    return cols


def col2im_numba(cols, x_shape, ksize, strides, dilation, groups):
    """Numba version of :func:`col2im_reference` (NumPy arrays only)."""
    cols = numpy.ascontiguousarray(cols)
    gx = numpy.zeros(x_shape, dtype=cols.dtype)
    out = _out_shape(x_shape, ksize, strides, dilation)
    _col2im_kernel(cols, gx, out, tuple(ksize), tuple(strides), tuple(dilation))
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
