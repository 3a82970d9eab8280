"""3x3 convolutions at stride 1 with one pixel of zero padding ("same"), without im2col.

ResNet's convolutions are nearly all of this kind. In channels-last memory, with x padded by
one pixel of zeros (``xp``: H + 2 rows of W + 1 pixels of C channels per image: one zero
column at the start of each row serves as the right padding of the row before it as well as
the left padding of its own), the three taps of kernel row i that output (h, w) reads are one
contiguous run of 3C floats, ``xp[h + i, w:w + 3, :]`` (running into the next row's zero
column for the last w). Over an image's *extended* output grid (H rows of W + 1 positions:
the last of each row is garbage) consecutive positions' runs start C floats apart, so the
im2col matrix of kernel row i is ``xp`` itself read with a leading dimension of C (rows
overlapping)::

    A_i[p, :] = xp.flat[(i (W + 1) + p) C : (i (W + 1) + p) C + 3C],   p = h (W + 1) + w
    y_ext = A_0 @ K_0 + A_1 @ K_1 + A_2 @ K_2     (K_i = kernel[i] as (3C, out))

three accumulating GEMMs with K = 3C whose A operand is the padded image, then the valid
columns copied out of an L2-resident scratch (adding the bias there). The input gradient is
the same on the padded output gradient with the kernel flipped and transposed, and the
kernel gradient is ``A_i^T @ gy_ext`` where ``gy_ext`` is the padded gy read from its
position (1, 1): its garbage rows fall on the zero columns. No cols are written (the
im2col path wrote and read 9C floats per output position: 76 MB per 32x32x16 layer at batch
128) and no col2im runs.

cblas refuses a leading dimension smaller than K, so the GEMMs go to OpenBLAS's AVX-512
small-matrix kernels called by pointer (:func:`fundl.kernels.convolution.small_gemms`,
which read any stride); where those are unavailable (float64, no AVX-512, another BLAS)
:func:`fundl.kernels.convolution._three_by_three_on` says no and the im2col region path
runs. :func:`agree` checks once per process
that the kernels compute this layout right (overlapping rows included) against NumPy.

Tried and dropped: one product of K = 9C per image instead of three of 3C, on an interleaved
copy of the image (each padded pixel followed by the two below it, so that a whole 3x3
window is one run of 9C floats, rows 3C apart). OpenBLAS's kernel runs ~20 % faster at K = 9C
(and the kernel gradient's ``nt`` product at N = 9C ~45 %), but writing the interleaved copy
cost more: ResNet-20's 32x32x16 layer took 2.56 -> 2.68 ms forward and 4.39 -> 5.43 ms
backward that way (batch 128, 2 threads).

Two compiled entry points (:func:`_forward_images`, :func:`_backward_images`), each a Numba
parallel region over the batch's images, one share per thread; LeNet-5 never compiles them
(its kernels are 5x5).
"""
from __future__ import annotations

import functools

import numpy

from ._jit import jit, parallel_jit, prange

MIN_CHANNELS = 8
"""Input channels below this keep im2col (ResNet's first layer, 3 channels: runs of 9 floats
are too short for the kernels' vectors, and im2col's cols are small there)."""
MIN_WIDTH = 8
"""Narrower images keep im2col: the extended grid's garbage column is 1 / W of the products,
and the three products of K = 3C run ~15 % below one of K = 9C (OpenBLAS's AVX-512 small
kernel on one core: 1088 x 48 @ 48 x 16 at 120 GFLOP/s, 1088 x 144 @ 144 x 16 at 146; 80 x
192 @ 192 x 64 at 168, 80 x 576 @ 576 x 64 at 200). Per layer at batch 128 on 2 threads
(noisy, loaded 2-core AMD EPYC, forward / backward ms, im2col -> this path): 32x32x16 4.6 ->
2.6 / 8.0 -> 5.5; 16x16x32 2.4 -> 1.8 / 5.9 -> 3.8; 8x8x64 2.0 -> 1.9 / 4.2 -> 4.0 (another
run: 1.56 -> 1.59 / 3.43 -> 3.19). For the 8-wide stage whole ResNet-20 steps are a close
call: five interleaved in-process A/B runs, best step with / without it 161 / 160, 147 / 149,
139 / 139, 147 / 150, 149 / 153 ms, medians 184 / 192, 198 / 190, 162 / 175, 184 / 175,
179 / 192 ms; process CPU time per step in the last, 354 / 385 ms."""


def ext_size(h, w, c):
    """Floats of one padded image, plus the 2C the last extended row overreads."""
    return ((h + 2) * (w + 1) + 2) * c


@jit
def _pad_in(src, dst, H, W, C, sums, want_sums):
    """Copy image ``src`` (H*W*C flat) into the interior of the padded ``dst`` (its border
    stays as it is: zeros); with ``want_sums`` add every channel's sum into ``sums``."""
    for h in range(H):
        o = ((h + 1) * (W + 1) + 1) * C
        s = src[h * W * C:(h + 1) * W * C]
        d = dst[o:o + W * C]
        for j in range(W * C):
            d[j] = s[j]
        if want_sums:
            for w in range(W):
                for c in range(C):
                    sums[c] += s[w * C + c]


@jit
def _copy_out(src, dst, H, W, C, bias, has_bias):
    """The valid positions of the extended grid ``src`` (H*(W+1)*C flat) into ``dst``
    (H*W*C flat), plus ``bias`` (C,) where ``has_bias``."""
    for h in range(H):
        s = src[h * (W + 1) * C:h * (W + 1) * C + W * C]
        d = dst[h * W * C:(h + 1) * W * C]
        if has_bias:
            for w in range(W):
                for c in range(C):
                    d[w * C + c] = s[w * C + c] + bias[c]
        else:
            for j in range(W * C):
                d[j] = s[j]


@jit
def _three_gemms(nn0, nn1, src, c_in, w, out, m, W):
    """``out (m, co) = sum_i A_i @ w[i]``: A_i the padded image ``src`` read from row i with
    leading dimension ``c_in`` (3 c_in columns), ``w`` (3, 3 c_in, co). Column-major
    kernels: out^T = w[i]^T @ A_i^T."""
    co = w.shape[2]
    for i in range(3):
        a = src[i * (W + 1) * c_in:]
        if i == 0:
            nn0(co, m, 3 * c_in, w[i].ctypes.data, co, 1.0, a.ctypes.data, c_in,
                out.ctypes.data, co)
        else:
            nn1(co, m, 3 * c_in, w[i].ctypes.data, co, 1.0, a.ctypes.data, c_in, 1.0,
                out.ctypes.data, co)


@parallel_jit
def _forward_images(nn0, nn1, x, w, bias, has_bias, y, xbufs, ybufs, bounds):
    """y[n] = conv3x3_same(x[n]) + bias for every image; thread t takes images
    bounds[t]:bounds[t + 1]. x (N, H, W, C), w (3, 3C, co), y (N, H, W, co) C-contiguous;
    xbufs (threads, ext_size(H, W, C)), ybufs (threads, H (W + 1) co) scratch."""
    _, H, W, C = x.shape
    m = H * (W + 1)
    for t in prange(len(bounds) - 1):
        xp = xbufs[t]
        xp[:] = 0  # the border; the interior is overwritten per image
        ye = ybufs[t]
        for n in range(bounds[t], bounds[t + 1]):
            _pad_in(x[n].reshape(-1), xp, H, W, C, bias, False)
            _three_gemms(nn0, nn1, xp, C, w, ye, m, W)
            _copy_out(ye, y[n].reshape(-1), H, W, w.shape[2], bias, has_bias)


@parallel_jit
def _backward_images(nn0, nn1, nt, x, gy, wf, gx, gk, gb, need_x, need_k, need_b, xbufs,
                     gbufs, ebufs, bounds):
    """The gradients of :func:`_forward_images`. gy (N, H, W, co); wf (3, 3 co, C) the kernel
    flipped (rows and columns) and transposed; with ``need_x`` gx (N, H, W, C) is written;
    with ``need_k`` thread t writes its images' sum of kernel gradients into gk[t] (3, 3C, co)
    (x (N, H, W, C) read); with ``need_b`` gb[t] (co,) gets its images' sum of gy. xbufs (threads,
    ext_size(H, W, C)), gbufs (threads, ext_size(H, W, co)), ebufs (threads, H (W + 1) C)."""
    _, H, W, co = gy.shape
    C = wf.shape[2]
    m = H * (W + 1)
    for t in prange(len(bounds) - 1):
        gp = gbufs[t]
        gp[:] = 0
        gb[t] = 0
        if need_k:
            xbufs[t][:] = 0
            gk[t] = 0
        for n in range(bounds[t], bounds[t + 1]):
            _pad_in(gy[n].reshape(-1), gp, H, W, co, gb[t], need_b)
            if need_x:
                ge = ebufs[t]
                _three_gemms(nn0, nn1, gp, co, wf, ge, m, W)
                _copy_out(ge, gx[n].reshape(-1), H, W, C, gb[t], False)
            if need_k:
                xp = xbufs[t]
                _pad_in(x[n].reshape(-1), xp, H, W, C, gb[t], False)
                g_ext = gp[(W + 2) * co:]  # gy_ext: garbage rows land on the zero border
                for i in range(3):
                    # gk[t, i] (3C, co) += A_i^T @ g_ext; column-major: gk^T += g_ext^T A_i
                    nt(co, 3 * C, m, g_ext.ctypes.data, co, 1.0,
                       xp[i * (W + 1) * C:].ctypes.data, C, 1.0, gk[t, i].ctypes.data, co)


def flipped(kernel):
    """(3, 3, C, co) -> (3, 3 co, C): the kernel of the input gradient (both spatial axes
    reversed, channels swapped), contiguous."""
    c, co = kernel.shape[-2:]
    k = kernel.reshape(3, 3, c, co)[::-1, ::-1].transpose(0, 1, 3, 2)
    return numpy.ascontiguousarray(k).reshape(3, 3 * co, c)


@functools.lru_cache(maxsize=None)
def agree():
    """Whether OpenBLAS's small kernels compute this module's overlapping-row products right
    (forward, input gradient, kernel gradient, on a small odd-sized image, against the
    NumPy reference), checked once per process; False disables the path."""
    from . import convolution
    nn0, nt, ok = convolution.small_gemms(numpy.float32)
    nn1 = convolution.small_nn_beta()
    if not ok or nn1 is None:
        return False
    try:
        rng = numpy.random.default_rng(1)
        x = rng.standard_normal((2, 5, 6, 8)).astype(numpy.float32)
        k = rng.standard_normal((3, 3, 8, 16)).astype(numpy.float32)
        b = rng.standard_normal(16).astype(numpy.float32)
        gy = rng.standard_normal((2, 5, 6, 16)).astype(numpy.float32)
        y, gx, gk, gb = _run_both(nn0, nn1, nt, x, k, b, gy)
        x5, gy5 = x[:, None], gy[:, None]
        pads = ((0, 0), (1, 1), (1, 1))
        ry = convolution.conv_forward_reference(x5, k[None], b, (1, 1, 1), pads, (1, 1, 1), 1)
        rgx, rgk, rgb = convolution.conv_backward_reference(x5, k[None], gy5, (1, 1, 1), pads,
                                                            (1, 1, 1), 1)
        close = functools.partial(numpy.allclose, rtol=1e-4, atol=1e-4)
        return bool(close(y, ry[:, 0]) and close(gx, rgx[:, 0]) and close(gk, rgk[0])
                    and close(gb, rgb))
    except Exception:  # noqa: BLE001 - a kernel that misbehaves: the im2col path then
        return False


def _run_both(nn0, nn1, nt, x, k, b, gy, threads=1):
    """Forward and backward through the drivers' Python source on fresh buffers (for
    :func:`agree`): (y, gx, gk, gb)."""
    n, h, w_, c = x.shape
    co = k.shape[-1]
    bounds = numpy.array([0, n], numpy.int64)
    y = numpy.empty((n, h, w_, co), numpy.float32)
    xbufs = numpy.empty((1, ext_size(h, w_, c)), numpy.float32)
    _forward_images.py_func(nn0, nn1, x, k.reshape(3, 3 * c, co), b, True, y, xbufs,
                            numpy.empty((1, h * (w_ + 1) * co), numpy.float32), bounds)
    gx = numpy.empty_like(x)
    gk = numpy.empty((1, 3, 3 * c, co), numpy.float32)
    gb = numpy.empty((1, co), numpy.float32)
    _backward_images.py_func(nn0, nn1, nt, x, gy, flipped(k), gx, gk, gb, True, True, True,
                             xbufs,
                             numpy.empty((1, ext_size(h, w_, co)), numpy.float32),
                             numpy.empty((1, h * (w_ + 1) * c), numpy.float32), bounds)
    return y, gx, gk[0].reshape(k.shape), gb[0]
