"""Pointwise gate math of LSTM and GRU steps: Numba kernels beside their plain-``xp`` references.

A recurrent layer spends its time in two places: the GEMMs (BLAS does those) and the
pointwise gate math between them, which in NumPy is a dozen ufunc calls per step, each with
its own pass over memory and its own call overhead (float32 ``numpy.tanh`` alone costs 3-4 ns
an element). Here each step's gate math is one pass in a compiled loop.

Every function exists twice with the same signature:

- ``<name>_reference``: plain ``xp`` math (NumPy or CuPy), any activation of :data:`ACTIVATIONS`;
  used on the GPU, for non-default activations, and by the tests as the ground truth;
- a Numba kernel for NumPy arrays with the default activations (``tanh`` and ``sigmoid``),
  and a CUDA kernel for CuPy arrays with them (:mod:`fundl.kernels.recurrent_cuda`).

The ops' Python loops call the dispatchers :func:`lstm_forward_step`,
:func:`lstm_backward_step`, :func:`gru_forward_step` and :func:`gru_backward_step`, which pick
one or the other. Every array is 2-D ``(batch, n)`` and C-contiguous; outputs are written into
the arrays given. On the CPU the LSTM and GRU ops run whole time loops instead, Numba drivers
that compute the per-step GEMM themselves (in :func:`matmul_nt`, or through BLAS), one batch
part per thread; :func:`sweep_plan` says
which runs (a :class:`SweepPlan`, cached per geometry), and each driver has a plain-NumPy
reference in :data:`REFERENCES` that the tests compare it against.
Gate blocks follow the Keras layout along the last axis: LSTM ``[i, f, c, o]``, GRU
``[z, r, h]``.

Why the kernels look the way they do (measured on 2 cores, float32):

- float32 ``tanh`` is a rational function (Eigen's, a few ulps from the true value) and
  ``sigmoid(x) = 0.5 * tanh(0.5 x) + 0.5``: pure arithmetic that LLVM vectorises, where a call
  to ``tanhf``/``expf`` keeps the loop scalar. float64 (gradient checks) uses ``math.tanh``.
- constants are float32 scalars: one float64 literal promotes the whole expression and stops
  vectorisation; ``error_model="numpy"`` drops the divide-by-zero branch for the same reason.
- each gate is a row slice indexed from 0 in a short inner loop; offsets into one wide row
  (``z[b, H + j]``) stayed scalar;
- few arrays per loop: LLVM checks at run time that the arrays of a loop do not overlap and
  gives up vectorising when there are too many pairs to check, so a step's work is split into
  two or three loops over fewer arrays each (GRU backward step 18 -> 7.6 us, GRU forward
  14 -> 10.3, LSTM forward 16.9 -> 14.9, batch 64 x 128 units).

Example:
    >>> gates = numpy.empty((B, 4 * H), numpy.float32)
    >>> lstm_forward_step(xz, hz, c_prev, gates, c, h)   # fills gates, c and h
"""
from __future__ import annotations

import dataclasses
import functools
import math

import numpy

from .. import backend, runtime
from ._parallel import even_slices
from ._jit import FLOAT_DTYPES, njit, numba, parallel_jit, prange
from ._jit import ready as _ready
from . import blas
from .blas import gemm
from .conv import _gemm  # cblas, or OpenBLAS's AVX-512 small kernels (convolution.small_gemms)
from . import gemm as _own

_RT = runtime.state()

_OWN_STEPS = _own.usable()
"""Whether the loops' row-major products ``c = a @ b`` of 32 output columns or more take
fundl's own micro-kernel (:mod:`fundl.kernels.gemm`) where they would take OpenBLAS's small
kernel, or :func:`matmul_nt`: on a CPU with AVX-512. A constant of the compiled code (Numba
freezes it, and its disk cache is per CPU). Measured on a 2-core Intel Xeon (one core): an
LSTM step's 32 x 160 @ 160 x 512 38 us against OpenBLAS's 46, a GRU step's 32 x 128 @
128 x 384 21 against 24, the GRU's input projection 896 x 32 @ 32 x 512 224 against 286. On
a 2-core AMD EPYC (Zen 4, family 25): 49 against 50 us, 31 against 32, and 40 against
:func:`matmul_nt`'s 55 for 32 x 128 @ 128 x 512; the GRU's ``fit`` step 0.95 of the small
kernels' (paired, separate processes)."""

INFER_PACKED = _OWN_STEPS and blas.cpu_vendor() == "GenuineIntel"
"""Whether the LSTM's inference sweep (:func:`_lstm_infer_sweep`) runs its steps' products
in fundl's micro-kernel on ``[U; W; b]^T`` packed once per sweep (the caller then passes the
panels' scratch): on an Intel CPU with AVX-512, where it took 30 against 36 us a step for
OpenBLAS's kernel. On the AMD EPYC (Zen 4) OpenBLAS's kernel stays: the whole inference took
1.03 of its time packed, 1.01 unpacked (same process, alternating blocks of 40 calls),
though the product alone ran 48 against 50 us there."""


DEFAULT_ACTIVATION = "tanh"
DEFAULT_RECURRENT_ACTIVATION = "sigmoid"


# -- activations by name: the value and the derivative from the value -----------------------
def _sigmoid(xp, x):
    # 0.5 * tanh(0.5 x) + 0.5 never overflows (1 / (1 + exp(-x)) does for x << 0)
    return 0.5 * xp.tanh(0.5 * x) + 0.5


ACTIVATIONS = {
    "tanh": (lambda xp, x: xp.tanh(x), lambda y: 1 - y * y),
    "sigmoid": (_sigmoid, lambda y: y * (1 - y)),
    "relu": (lambda xp, x: xp.maximum(x, 0), lambda y: (y > 0).astype(y.dtype)),
    "linear": (lambda xp, x: x, lambda y: y * 0 + 1),
}
"""Activations the fused recurrent ops know: name -> (f(xp, x), f'(x) computed from y = f(x))."""


def _act(name, xp, x):
    return ACTIVATIONS[name][0](xp, x)


def _dact(name, y):
    return ACTIVATIONS[name][1](y)


# -- references -------------------------------------------------------------------------------
def lstm_forward_step_reference(xz, hz, c_prev, gates, c, h, activation="tanh",
                                recurrent_activation="sigmoid"):
    """One LSTM step's gate math in plain ``xp`` (the ground truth for the kernel).

    Args:
        xz: (B, 4H) input projection ``x_t @ W + b``.
        hz: (B, 4H) recurrent projection ``h_{t-1} @ U``.
        c_prev: (B, H) previous cell state.
        gates: (B, 4H) output: the activated gates ``[i, f, g, o]`` (kept for the backward).
        c: (B, H) output: ``f * c_prev + i * g``.
        h: (B, H) output: ``o * activation(c)``.
        activation, recurrent_activation: names from :data:`ACTIVATIONS` (for ``g``/``c`` and
            for ``i, f, o``).

    Returns:
        None (the outputs are written in place).
    """
    xp = backend.get_array_module(xz)
    n = c.shape[1]
    z = xz + hz
    gates[:, :2 * n] = _act(recurrent_activation, xp, z[:, :2 * n])
    gates[:, 2 * n:3 * n] = _act(activation, xp, z[:, 2 * n:3 * n])
    gates[:, 3 * n:] = _act(recurrent_activation, xp, z[:, 3 * n:])
    i, f, g, o = gates[:, :n], gates[:, n:2 * n], gates[:, 2 * n:3 * n], gates[:, 3 * n:]
    c[...] = f * c_prev + i * g
    h[...] = o * _act(activation, xp, c)


def lstm_backward_step_reference(dh, dc, gates, c_prev, c, dz, dc_prev, activation="tanh",
                                 recurrent_activation="sigmoid"):
    """The backward of one LSTM step's gate math in plain ``xp``.

    Args:
        dh: (B, H) gradient of the step's ``h`` (from the output and from step t+1).
        dc: (B, H) gradient of the step's ``c`` from step t+1.
        gates: (B, 4H) the activated gates the forward kept.
        c_prev, c: (B, H) the cell states before and after the step.
        dz: (B, 4H) output: gradient of the gate pre-activations ``xz + hz``.
        dc_prev: (B, H) output: gradient of ``c_prev``.
        activation, recurrent_activation: as in the forward.

    Returns:
        None (the outputs are written in place).
    """
    xp = backend.get_array_module(dh)
    n = c.shape[1]
    i, f, g, o = gates[:, :n], gates[:, n:2 * n], gates[:, 2 * n:3 * n], gates[:, 3 * n:]
    tc = _act(activation, xp, c)
    dct = dc + dh * o * _dact(activation, tc)
    dz[:, :n] = dct * g * _dact(recurrent_activation, i)
    dz[:, n:2 * n] = dct * c_prev * _dact(recurrent_activation, f)
    dz[:, 2 * n:3 * n] = dct * i * _dact(activation, g)
    dz[:, 3 * n:] = dh * tc * _dact(recurrent_activation, o)
    dc_prev[...] = dct * f


def gru_forward_step_reference(xz, hz, recurrent_bias, h_prev, gates, h, activation="tanh",
                               recurrent_activation="sigmoid"):
    """One GRU step's gate math (reset gate after the recurrent product) in plain ``xp``.

    ``z = ra(xz_z + hz_z + rb_z)``, ``r = ra(xz_r + hz_r + rb_r)``, ``hn = hz_h + rb_h``,
    ``n = a(xz_h + r * hn)``, ``h = z * h_prev + (1 - z) * n`` (Keras ``reset_after=True``,
    PyTorch's GRU).

    Args:
        xz: (B, 3H) input projection ``x_t @ W + input_bias``.
        hz: (B, 3H) recurrent product ``h_{t-1} @ U`` (without bias).
        recurrent_bias: (3H,) the recurrent bias (zeros when the layer has no bias).
        h_prev: (B, H) previous state.
        gates: (B, 4H) output: ``[z, r, n, hn]`` (kept for the backward).
        h: (B, H) output: the new state.
        activation, recurrent_activation: names from :data:`ACTIVATIONS`.

    Returns:
        None (the outputs are written in place).
    """
    xp = backend.get_array_module(xz)
    n = h.shape[1]
    gates[:, :2 * n] = _act(recurrent_activation, xp,
                            xz[:, :2 * n] + hz[:, :2 * n] + recurrent_bias[:2 * n])
    gates[:, 3 * n:] = hz[:, 2 * n:] + recurrent_bias[2 * n:]
    r, hn = gates[:, n:2 * n], gates[:, 3 * n:]
    gates[:, 2 * n:3 * n] = _act(activation, xp, xz[:, 2 * n:] + r * hn)
    z, cand = gates[:, :n], gates[:, 2 * n:3 * n]
    h[...] = z * h_prev + (1 - z) * cand


def gru_backward_step_reference(dh, gates, h_prev, dxz, dhz, dh_prev, activation="tanh",
                                recurrent_activation="sigmoid"):
    """The backward of one GRU step's gate math (``reset_after=True``) in plain ``xp``.

    Args:
        dh: (B, H) gradient of the step's output state.
        gates: (B, 4H) ``[z, r, n, hn]`` kept by the forward.
        h_prev: (B, H) the previous state.
        dxz: (B, 3H) output: gradient of the input projection ``xz``.
        dhz: (B, 3H) output: gradient of the recurrent projection ``hz`` (and recurrent bias).
        dh_prev: (B, H) output: the part of ``h_prev``'s gradient that does not go through
            the recurrent GEMM (``dh * z``).
        activation, recurrent_activation: as in the forward.

    Returns:
        None (the outputs are written in place).
    """
    n = dh.shape[1]
    z, r, cand, hn = gates[:, :n], gates[:, n:2 * n], gates[:, 2 * n:3 * n], gates[:, 3 * n:]
    dan = dh * (1 - z) * _dact(activation, cand)
    dxz[:, :n] = dh * (h_prev - cand) * _dact(recurrent_activation, z)
    dxz[:, n:2 * n] = dan * hn * _dact(recurrent_activation, r)
    dxz[:, 2 * n:] = dan
    dhz[:, :2 * n] = dxz[:, :2 * n]
    dhz[:, 2 * n:] = dan * r
    dh_prev[...] = dh * z


# -- Numba kernels ------------------------------------------------------------------------------
def use_compiled(flag: bool) -> bool:
    """Switch the compiled kernels (Numba, and CUDA for CuPy arrays) on or off (off: the
    references run everywhere); returns the old setting. The setting is
    ``fundl.runtime.state().compiled_recurrent``.

    Example:
        >>> old = use_compiled(False)   # e.g. to time the plain NumPy version
        >>> use_compiled(old)
    """
    rt = runtime.state()
    old = rt.compiled_recurrent
    rt.compiled_recurrent = bool(flag)
    return old


# Eigen's rational approximation of float32 tanh (numerator odd in x, denominator even): within
# a few ulps on the whole line once x is clamped to +-7.905..., where tanh rounds to +-1.
_F32 = numpy.float32
_T_CLAMP = _F32(7.90531110763549805)
_A1, _A3, _A5 = _F32(4.89352455891786e-03), _F32(6.37261928875436e-04), _F32(1.48572235717979e-05)
_A7, _A9 = _F32(5.12229709037114e-08), _F32(-8.60467152213735e-11)
_A11, _A13 = _F32(2.00018790482477e-13), _F32(-2.76076847742355e-16)
_B0, _B2 = _F32(4.89352518554385e-03), _F32(2.26843463243900e-03)
_B4, _B6 = _F32(1.18534705686654e-04), _F32(1.19825839466702e-06)


def tanh_(x):
    """tanh for the kernels (a stub that Numba replaces by a dtype-specific implementation)."""
    return math.tanh(x)


def sigmoid_(x):
    """sigmoid for the kernels (a stub, as :func:`tanh_`)."""
    return 0.5 * math.tanh(0.5 * x) + 0.5


def one_(dtype):
    """The number 1 of a float ``dtype`` (a stub): an int or float64 literal would promote a
    float32 expression to float64 in Numba."""
    return 1.0


if numba is not None:
    from numba import types
    from numba.extending import overload

    # inline at the LLVM level (Numba's own inline="always" trips an SSA check on the clamp)
    @overload(tanh_)
    def _tanh_impl(x):
        if isinstance(x, types.Float) and x.bitwidth == 32:
            def impl(x):
                # two comparisons rather than min/max: a NaN fails both and stays NaN (min/max
                # would turn it into +-1 and hide a diverging model)
                x = _T_CLAMP if x > _T_CLAMP else x
                x = -_T_CLAMP if x < -_T_CLAMP else x
                x2 = x * x
                p = x2 * _A13 + _A11
                p = x2 * p + _A9
                p = x2 * p + _A7
                p = x2 * p + _A5
                p = x2 * p + _A3
                p = x2 * p + _A1
                p = x * p
                q = x2 * _B6 + _B4
                q = x2 * q + _B2
                q = x2 * q + _B0
                return p / q
            return impl
        return lambda x: math.tanh(x)

    @overload(sigmoid_)
    def _sigmoid_impl(x):
        if isinstance(x, types.Float) and x.bitwidth == 32:
            half = _F32(0.5)
            return lambda x: half * tanh_(half * x) + half
        return lambda x: 0.5 * math.tanh(0.5 * x) + 0.5

    @overload(one_)
    def _one_impl(x):
        if isinstance(x, types.DType) and x.dtype == types.float32:
            one32 = _F32(1)
            return lambda x: one32
        return lambda x: 1.0


# "contract" lets LLVM fuse a * b + c into one FMA (also more exact); no other fast-math
jit = njit(error_model="numpy", nogil=True, fastmath={"contract"})


@jit
def _step_gemm(fn, nn, nt, small, a, lda, b, ldb, c, ldc, m, n, k):
    """``c = a @ b`` (beta 0, row-major) as :func:`fundl.kernels.conv._gemm` computes it, or
    through fundl's own micro-kernel where :data:`_OWN_STEPS` and the small kernels apply."""
    if _OWN_STEPS and small and n >= _own.COLS:
        _own.gemm_numba(a.ctypes.data, lda, 1, b.ctypes.data, ldb, c.ctypes.data, ldc, m, n, k)
    else:
        _gemm(fn, nn, nt, small, False, a, lda, b, ldb, c, ldc, m, n, k, 0.0)


@jit
def _tgemm(fn, nn, nt, small, a, lda, b, ldb, c, ldc, m, n, k, beta):
    """``c = a.T @ b + beta * c`` (a weight gradient: ``a`` (k, m), row-major) as
    :func:`fundl.kernels.conv._gemm` computes it with ``trans_a``, or for ``beta`` 0 or 1
    through fundl's own micro-kernel where :data:`_OWN_STEPS` and the small kernels apply:
    an LSTM backward's blocks of 4 steps, ``[dU; dW; db] += [h, x, 1]^T @ dz`` (160 x 128 @
    128 x 512), took 1,030-1,050 against OpenBLAS's 1,110-1,150 us a sequence (one core)."""
    if _OWN_STEPS and small and n >= _own.COLS and (beta == 0.0 or beta == 1.0):
        if beta == 0.0:
            _own.gemm_numba(a.ctypes.data, 1, lda, b.ctypes.data, ldb, c.ctypes.data, ldc, m, n,
                            k)
        else:
            _own.gemm_acc_numba(a.ctypes.data, 1, lda, b.ctypes.data, ldb, c.ctypes.data, ldc,
                                m, n, k)
    else:
        _gemm(fn, nn, nt, small, True, a, lda, b, ldb, c, ldc, m, n, k, beta)


@jit
def _lstm_forward(xz, hz, c_prev, gates, c, h):
    n = c.shape[1]
    for b in range(c.shape[0]):
        xi, xf, xg, xo = xz[b, :n], xz[b, n:2 * n], xz[b, 2 * n:3 * n], xz[b, 3 * n:]
        ri, rf, rg, ro = hz[b, :n], hz[b, n:2 * n], hz[b, 2 * n:3 * n], hz[b, 3 * n:]
        gi, gf = gates[b, :n], gates[b, n:2 * n]
        gg, go = gates[b, 2 * n:3 * n], gates[b, 3 * n:]
        cp, cb, hb = c_prev[b], c[b], h[b]
        for j in range(n):  # two loops over fewer arrays each vectorise better (see above)
            gi[j] = sigmoid_(xi[j] + ri[j])
            gf[j] = sigmoid_(xf[j] + rf[j])
            gg[j] = tanh_(xg[j] + rg[j])
            go[j] = sigmoid_(xo[j] + ro[j])
        for j in range(n):
            cc = gf[j] * cp[j] + gi[j] * gg[j]
            cb[j] = cc
            hb[j] = go[j] * tanh_(cc)

@jit
def _lstm_backward(dh, dc, gates, c_prev, c, dz, dc_prev):
    n = c.shape[1]
    one = one_(c.dtype)
    for b in range(c.shape[0]):
        gi, gf = gates[b, :n], gates[b, n:2 * n]
        gg, go = gates[b, 2 * n:3 * n], gates[b, 3 * n:]
        di, df, dg, do = dz[b, :n], dz[b, n:2 * n], dz[b, 2 * n:3 * n], dz[b, 3 * n:]
        dhb, dcb, cp, cb, dcp = dh[b], dc[b], c_prev[b], c[b], dc_prev[b]
        for j in range(n):
            i = gi[j]
            f = gf[j]
            g = gg[j]
            o = go[j]
            tc = tanh_(cb[j])
            dhj = dhb[j]
            dct = dcb[j] + dhj * o * (one - tc * tc)
            di[j] = dct * g * i * (one - i)
            df[j] = dct * cp[j] * f * (one - f)
            dg[j] = dct * i * (one - g * g)
            do[j] = dhj * tc * o * (one - o)
            dcp[j] = dct * f

@jit
def _gru_forward(xz, hz, recurrent_bias, h_prev, gates, h):
    n = h.shape[1]
    one = one_(h.dtype)
    bz, br, bh = recurrent_bias[:n], recurrent_bias[n:2 * n], recurrent_bias[2 * n:]
    for b in range(h.shape[0]):
        xzb, xr, xh = xz[b, :n], xz[b, n:2 * n], xz[b, 2 * n:]
        rz, rr, rh = hz[b, :n], hz[b, n:2 * n], hz[b, 2 * n:]
        gz, gr = gates[b, :n], gates[b, n:2 * n]
        gn, ghn = gates[b, 2 * n:3 * n], gates[b, 3 * n:]
        hp, hb = h_prev[b], h[b]
        for j in range(n):  # the gates, then the candidate and the state
            gz[j] = sigmoid_(xzb[j] + rz[j] + bz[j])
            gr[j] = sigmoid_(xr[j] + rr[j] + br[j])
            ghn[j] = rh[j] + bh[j]
        for j in range(n):
            z = gz[j]
            cand = tanh_(xh[j] + gr[j] * ghn[j])
            gn[j] = cand
            hb[j] = z * hp[j] + (one - z) * cand

@jit
def _gru_backward(dh, gates, h_prev, dxz, dhz, dh_prev):
    n = dh.shape[1]
    one = one_(dh.dtype)
    for b in range(dh.shape[0]):
        gz, gr = gates[b, :n], gates[b, n:2 * n]
        gn, ghn = gates[b, 2 * n:3 * n], gates[b, 3 * n:]
        dxzz, dxr, dxh = dxz[b, :n], dxz[b, n:2 * n], dxz[b, 2 * n:]
        dhb, hp, dhp = dh[b], h_prev[b], dh_prev[b]
        for j in range(n):  # the gradients of the gate inputs
            z = gz[j]
            r = gr[j]
            cand = gn[j]
            d = dhb[j]
            dan = d * (one - z) * (one - cand * cand)
            dxzz[j] = d * (hp[j] - cand) * z * (one - z)
            dxr[j] = dan * ghn[j] * r * (one - r)
            dxh[j] = dan
        xrow, hrow = dxz[b], dhz[b]
        for j in range(2 * n):  # z and r: the input and the recurrent product get the same
            hrow[j] = xrow[j]
        dhh = dhz[b, 2 * n:]
        for j in range(n):
            dhh[j] = dxh[j] * gr[j]
            dhp[j] = dhb[j] * gz[j]


# -- a step's recurrent product in a kernel of our own ----------------------------------------
# Why: a step's product is small (a 32-row part: 32 x 128 @ 128 x 512), and a BLAS library
# packs both operands into its own layout at every call, the 256 KB recurrent kernel included,
# 28 times per sequence. Here the kernel is transposed once per sequence and each output is a
# dot product of two contiguous rows, computed in 4 x 4 blocks (16 sums in registers, each
# row loaded once per block). Measured on the 2-core AMD EPYC (Zen 5) development machine, one
# core, min of 15 x 28 products: 32 x 128 @ 128 x 512 in 29-31 us against 43 us for NumPy's
# OpenBLAS (Haswell kernels), 32 x 512 @ 512 x 128 in 22-25 us against 42 us; the same with
# the kernel compiled for AVX2 only (NUMBA_CPU_NAME=haswell). "reassoc" lets LLVM vectorise
# the sums (their order changes, as in any BLAS); no other fast-math (NaNs stay NaNs).
_dot_jit = njit(error_model="numpy", nogil=True, fastmath={"contract", "reassoc"})


def matmul_nt_reference(a, bt, c):
    """``c[...] = a @ bt.T`` in plain ``xp`` (the ground truth of :func:`matmul_nt`)."""
    c[...] = a @ bt.T


@_dot_jit
def matmul_nt(a, bt, c):
    """``c = a @ bt.T`` for C-contiguous 2-D arrays: ``a`` (M, K), ``bt`` (N, K), ``c`` (M, N).

    The recurrent products of the compiled time loops (forward: ``h @ U`` with ``bt = U^T``;
    backward: ``dz @ U^T`` with ``bt = U``). Any M, N, K (4 x 4 blocks, then the edges).

    Example:
        >>> matmul_nt(h, numpy.ascontiguousarray(u.T), hz)   # hz = h @ u
    """
    m, k = a.shape
    n = bt.shape[0]
    m4, n4 = m - m % 4, n - n % 4
    zero = a.dtype.type(0)
    for i in range(0, m4, 4):
        a0, a1, a2, a3 = a[i], a[i + 1], a[i + 2], a[i + 3]
        c0, c1, c2, c3 = c[i], c[i + 1], c[i + 2], c[i + 3]
        for j in range(0, n4, 4):
            b0, b1, b2, b3 = bt[j], bt[j + 1], bt[j + 2], bt[j + 3]
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
            s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = zero
            for q in range(k):
                x0, x1, x2, x3 = a0[q], a1[q], a2[q], a3[q]
                y0, y1, y2, y3 = b0[q], b1[q], b2[q], b3[q]
                s00 += x0 * y0
                s01 += x0 * y1
                s02 += x0 * y2
                s03 += x0 * y3
                s10 += x1 * y0
                s11 += x1 * y1
                s12 += x1 * y2
                s13 += x1 * y3
                s20 += x2 * y0
                s21 += x2 * y1
                s22 += x2 * y2
                s23 += x2 * y3
                s30 += x3 * y0
                s31 += x3 * y1
                s32 += x3 * y2
                s33 += x3 * y3
            c0[j], c0[j + 1], c0[j + 2], c0[j + 3] = s00, s01, s02, s03
            c1[j], c1[j + 1], c1[j + 2], c1[j + 3] = s10, s11, s12, s13
            c2[j], c2[j + 1], c2[j + 2], c2[j + 3] = s20, s21, s22, s23
            c3[j], c3[j + 1], c3[j + 2], c3[j + 3] = s30, s31, s32, s33
    # the edges: the last n % 4 columns of the blocked rows, then the last m % 4 rows
    for i in range(m):
        ai, ci = a[i], c[i]
        for j in range(n4 if i < m4 else 0, n):
            bj = bt[j]
            s = zero
            for q in range(k):
                s += ai[q] * bj[q]
            ci[j] = s


# -- whole time loops: one batch part's GEMMs and gate math, without the GIL --------------------
@jit
def _recurrent_product(fn, nn, nt, small, hx1, u, ut, hs, hz, k, lo, rm, nonzero, hp):
    """Step k of a part's forward: h_{k-1} (times the recurrent dropout mask ``rm``, if not
    (0, 0)) into the first H columns of ``hx1[k]``, where the weight gradient will read it,
    then ``hz = that @ u`` (zeros when h_{k-1} is known to be zero): with ``small``, through
    OpenBLAS's AVX-512 small kernel ``nn``; else through :func:`matmul_nt` when ``ut``
    (G, H) is ``u``'s transpose (with ``rm``, the product's input goes through the scratch
    ``hp`` (P, H)), through BLAS's ``fn`` when it is (0, 0).

    Why the small kernel first: one core, 64 x 128 @ 128 x 512 took 41 us there against
    63 us in :func:`matmul_nt` (32 rows: 27 against 31 us; loaded machine, CPU time)."""
    p, kk = hx1.shape[1], hx1.shape[2]
    n, g = u.shape
    for b in range(p):
        hrow, dst = hs[k, lo + b], hx1[k, b, :n]
        if rm.shape[0]:
            mrow, prow = rm[lo + b], hp[b]
            for j in range(n):
                v = hrow[j] * mrow[j]
                dst[j] = v
                prow[j] = v
        else:
            dst[:] = hrow
    if not nonzero:
        hz[:] = 0
    elif small:
        _step_gemm(fn, nn, nt, small, hx1[k, 0], kk, u, g, hz, g, p, g, n)
    elif ut.shape[0]:
        matmul_nt(hp if rm.shape[0] else hs[k, lo:lo + p], ut, hz)
    else:
        gemm(fn, False, hx1[k, 0], kk, u, g, hz, g, p, g, n, 0.0)


@jit
def _carry_over(mask, k, lo, p, states):
    """Rows ``lo:lo+p`` whose step k is padding (``mask`` (T, B) uint8, or (0, 0): none) keep
    their previous state: ``states[k + 1]`` gets ``states[k]`` there."""
    if mask.shape[0]:
        for b in range(p):
            if not mask[k, lo + b]:
                states[k + 1, lo + b] = states[k, lo + b]


@jit
def _lstm_activate(z, c_prev, c, h):
    """One LSTM step's gate math in place: ``z`` (P, 4H) holds the gate pre-activations
    ``[h_{t-1}, x_t, 1] @ [U; W; b]`` and becomes the activated gates ``[i, f, g, o]``;
    ``c`` and ``h`` (P, H) get the new states (see :func:`lstm_forward_step_reference`)."""
    n = c.shape[1]
    for b in range(c.shape[0]):
        zif, zg, zo = z[b, :2 * n], z[b, 2 * n:3 * n], z[b, 3 * n:]
        cp, cb, hb = c_prev[b], c[b], h[b]
        # one array per loop, in place: each vectorises without overlap checks (see above)
        for j in range(2 * n):
            zif[j] = sigmoid_(zif[j])
        for j in range(n):
            zg[j] = tanh_(zg[j])
        for j in range(n):
            zo[j] = sigmoid_(zo[j])
        zi, zf = z[b, :n], z[b, n:2 * n]
        for j in range(n):
            cc = zf[j] * cp[j] + zi[j] * zg[j]
            cb[j] = cc
            hb[j] = zo[j] * tanh_(cc)


@jit
def _lstm_forward_sweep(fn, nn, nt, small, x, backwards, ones, hx1, uwb, uwbt, hs, cs, gates, lo,
                        mask, rm, from_state, ut, s0, s1):
    """The forward of an LSTM over the rows ``lo:lo+P`` of the batch (one part).

    Each step is ONE product, ``[h_{t-1}, x_t, 1] @ [U; W; b]`` straight into the step's
    gate buffer, then the gate math in place there (:func:`_lstm_activate`): no separate
    input projection for all steps, whose (T, P, 4H) result (1.8 MB for a 32-row part of
    row-MNIST) does not stay in a core's L2 and was read back step by step. One core, 28
    steps of a 32-row part (x 28 -> 128 units): 0.65 ms of CPU against 0.82 ms for the
    projection plus the steps' h @ U (loaded machine, OpenBLAS's AVX-512 small kernel).

    ``fn``: the GEMM of :func:`fundl.kernels.blas.gemm_function`; ``nn``, ``nt``, ``small``:
    :func:`fundl.kernels.convolution.small_gemms` (with ``small``, the steps' products run in
    OpenBLAS's AVX-512 small kernel, see :func:`fundl.kernels.conv._gemm`). ``x`` (B, T, D)
    the whole batch's inputs, taken from the last step to the first with ``backwards``;
    ``hx1`` (T, P, K), K >= H + D [+ 1]: the part's ``[h_{t-1}, x_t, 1, 0]`` rows, all
    written here (x_t, a one if ``ones`` (the bias row) and zeros up to K first, then
    h_{t-1} times the recurrent dropout mask step by step), which the backward's weight
    gradient reads (filled here, on the part's thread, rather than by NumPy before the
    region: ~70 us of the forward op's CPU in a row-MNIST training step, cold caches);
    ``uwb`` (K, 4H) ``[U; W; b; 0]``; ``uwbt`` (4H, K) its transpose to take the products from
    :func:`matmul_nt`, or (0, 0) for BLAS (or the small kernel); ``hs``, ``cs`` (T + 1, B, H)
    the whole batch's states with step 0 set; ``gates`` (T or 1, B, 4H); ``mask`` (T, B) uint8
    or (0, 0); ``rm`` (B, H) recurrent dropout mask or (0, 0); ``from_state``: h0 may be nonzero
    (else step 0's product skips the h columns); ``ut`` (4H, H): the rows ``s0:s1`` of ``U^T``
    are written here, this part's share of the transpose the backward's products take (or
    (0, 0): none). Every array C-contiguous.
    """
    t, p, kk = hx1.shape
    n, g = hs.shape[2], uwb.shape[1]
    d = x.shape[2]
    hi = lo + p
    zero, one = x.dtype.type(0), x.dtype.type(1)
    # U^T's rows s0:s1 for the backward (each part a share: ~25 us each instead of ~50 us
    # in every part of the backward)
    if ut.shape[0]:
        for j in range(s0, s1):
            row = ut[j]
            for i in range(n):
                row[i] = uwb[i, j]
    # x, the ones and the zeros of every step first, each sample's steps in one sequential
    # read of x (per step, the part's 32 rows of x, 3 KB apart, came from L3: ~30 us more)
    for b in range(p):
        xb = x[lo + b]
        for k in range(t):
            row, xrow = hx1[k, b], xb[t - 1 - k if backwards else k]
            for j in range(d):
                row[n + j] = xrow[j]
            for j in range(n + d, kk):
                row[j] = zero
            if ones:
                row[n + d] = one
    for k in range(t):
        for b in range(p):
            hrow, dst = hs[k, lo + b], hx1[k, b, :n]
            if rm.shape[0]:
                mrow = rm[lo + b]
                for j in range(n):
                    dst[j] = hrow[j] * mrow[j]
            else:
                dst[:] = hrow
        z = gates[k % gates.shape[0], lo:hi]
        if uwbt.shape[0] and not small:
            matmul_nt(hx1[k], uwbt, z)  # (h0 = 0 at step 0: its zero columns are in hx1)
        elif k or from_state:
            _step_gemm(fn, nn, nt, small, hx1[k, 0], kk, uwb, g, z, g, p, g, kk)
        else:  # h0 = 0: [x_0, 1] @ [W; b] only
            _step_gemm(fn, nn, nt, small, hx1[k, 0, n:], kk, uwb[n:], g, z, g, p, g, kk - n)
        _lstm_activate(z, cs[k, lo:hi], cs[k + 1, lo:hi], hs[k + 1, lo:hi])
        _carry_over(mask, k, lo, p, hs)
        _carry_over(mask, k, lo, p, cs)


@jit
def _lstm_infer_sweep(fn, nn, nt, small, x, uwb, seq, h_last, c_last, h0, c0, lo, hi,
                      backwards, nt0, b0, panels):
    """An LSTM's forward over the rows ``lo:hi`` of the batch for inference (no graph): the
    same steps as :func:`_lstm_forward_sweep`, laid out transposed, keeping nothing.

    Each step computes ``z^T = [U; W; b]^T @ [h_{t-1}; x_t; 1]`` (4H, P), the batch along
    the columns: OpenBLAS's AVX-512 small kernel ran this shape of the product (512 x 160 @
    160 x 32, its "nt" kernel on ``[U; W; b]`` as it is) in 25 us against 30 us for the
    row-major ``[h, x, 1] @ [U; W; b]`` (32 x 160 @ 160 x 512; one core of the 2-core AMD
    EPYC, Zen 5, 28 products, min of 7 runs). In this
    layout each gate is one contiguous block of ``z`` and the state ``h^T`` (H, P) is written
    by the gate math straight into the first H rows of the next step's input column block:
    no copy of h per step. Scratch (a few tens of KB) stays in L1/L2.

    ``fn``, ``nn``, ``nt``, ``small``: as :func:`_lstm_forward_sweep`; ``x`` (B, T, D) the
    inputs (batch-major, C-contiguous); ``uwb`` (K, 4H) ``[U; W; b; 0]`` (K = H + D [+1],
    padded with zero rows, as the training loops'); ``seq`` (B, T, H) output: the states
    of every step in processing order, or (0, 0, 0) when not wanted; ``h_last``, ``c_last``
    (B, H) outputs: the final states; ``h0``, ``c0`` (B, H) the initial states or (0, 0)
    for zeros; ``backwards``: take the steps from the last to the first; ``nt0``, ``b0``:
    :func:`fundl.kernels.convolution.small_b0_nt` (with ``small`` and ``b0`` the products run
    in the beta-0 kernel, which never reads z: no zeroing per step); ``panels``: float32
    scratch of :func:`fundl.kernels.gemm.panels_size` ``(4H, K)`` elements for ``[U; W; b]^T``
    packed for fundl's micro-kernel (where :data:`_OWN_STEPS`, ``small`` and ``b0``), or
    empty: then OpenBLAS's kernel. (The caller's, recycled: a 328 KB array allocated here at
    every call, in both threads, cost its page faults every time.)
    """
    t, d = x.shape[1], x.shape[2]
    kk, g = uwb.shape
    n = g // 4
    p = hi - lo
    hn = n * p
    dt = x.dtype
    cols = numpy.zeros((kk, p), dt)  # [h_{t-1}; x_t; 1; 0] of the step, one column a sample
    z = numpy.zeros((g, p), dt)
    ca = numpy.empty((n, p), dt)
    cb = numpy.empty((n, p), dt)
    if kk > n + d:
        cols[n + d] = 1  # the bias row ([U; W; b; 0]'s rows after it are zeros)
    from_state = h0.shape[0] > 0
    if from_state:
        for b in range(p):
            for j in range(n):
                ca[j, b] = c0[lo + b, j]
                cols[j, b] = h0[lo + b, j]
    else:
        ca[:] = 0
    # flat views of each gate's rows, indexed from 0 (a loop over z.reshape(-1)[2 * hn:3 * hn]
    # stayed scalar: 558 against 141 us for the gate math of 28 steps of a 32-row part)
    zif, zi, zff = z[:2 * n].reshape(2 * hn), z[:n].reshape(hn), z[n:2 * n].reshape(hn)
    zg, zo = z[2 * n:3 * n].reshape(hn), z[3 * n:].reshape(hn)
    hf = cols[:n].reshape(hn)
    # Given the panels (INFER_PACKED), the steps' products run in fundl's micro-kernel, on
    # [U; W; b]^T packed once per sweep (35 us) into panels read as one stream: 30 against
    # 36 us a step for OpenBLAS's kernel (512 x 160 @ 160 x 32, one core of an Intel Xeon)
    own = _OWN_STEPS and small and b0 and panels.shape[0] >= _own.panels_size(g, kk)
    if own:
        _own.pack_numba(uwb.ctypes.data, 1, g, g, kk, panels)
    for k in range(t):
        kx = t - 1 - k if backwards else k
        for b in range(p):
            xr = x[lo + b, kx]
            for j in range(d):
                cols[n + j, b] = xr[j]
        first = 0 if k or from_state else n  # h0 = 0: [W; b]^T @ [x_0; 1] only
        if own:
            _own.gemm_packed_numba(panels, kk, first, cols[first].ctypes.data, p, z.ctypes.data,
                                   p, g, p, kk - first)
        elif small and b0:  # (the column-major form of _gemm's "nt" call, without beta)
            nt0(p, g, kk - first, cols[first].ctypes.data, p, 1.0, uwb[first].ctypes.data, g,
                z.ctypes.data, p)
        else:
            z[:] = 0  # OpenBLAS's small nt kernel reads z even with beta 0 (0 * NaN is NaN)
            _gemm(fn, nn, nt, small, True, uwb[first], g, cols[first], p, z, p, g, p,
                  kk - first, 0.0)
        cp, cn = (ca, cb) if k % 2 == 0 else (cb, ca)
        cpf, cnf = cp.reshape(hn), cn.reshape(hn)
        # one flat block per gate, in place: long loops over one array each vectorise well
        for i in range(2 * hn):
            zif[i] = sigmoid_(zif[i])
        for i in range(hn):
            zg[i] = tanh_(zg[i])
        for i in range(hn):
            zo[i] = sigmoid_(zo[i])
        for i in range(hn):
            cc = zff[i] * cpf[i] + zi[i] * zg[i]
            cnf[i] = cc
            hf[i] = zo[i] * tanh_(cc)
        if seq.shape[0]:
            for b in range(p):
                row = seq[lo + b, k]
                for j in range(n):
                    row[j] = cols[j, b]
    cl = ca if t % 2 == 0 else cb
    for b in range(p):
        hrow, crow = h_last[lo + b], c_last[lo + b]
        for j in range(n):
            hrow[j] = cols[j, b]
            crow[j] = cl[j, b]


@jit
def _transpose(a, out):
    """``out[...] = a.T`` for 2-D C-contiguous arrays, in bands of 16 rows of ``a``."""
    m, n = a.shape
    for i0 in range(0, m, 16):
        i1 = min(i0 + 16, m)
        for j in range(n):
            row = out[j]
            for i in range(i0, i1):
                row[i] = a[i, j]


_DALL_STEPS = 4
"""Steps per block of the LSTM backward's weight-gradient GEMM (:func:`_lstm_backward_sweep`)."""


@jit
def _lstm_backward_sweep(fn, nn, nt, small, hx1, ut, u, cs, gates, dz, gy, dh, dc, dc_prev, lo,
                         mask, rm, need_h0, dall):
    """The backward of :func:`_lstm_forward_sweep` over the same part.

    ``ut`` (4H, H) ``U^T`` for BLAS or, with ``small``, OpenBLAS's small kernel (there the
    forward's transpose, :func:`_lstm_forward_parts`; with ``small`` and ``ut`` (0, 0),
    each part transposes ``u`` for itself); when ``u`` (H, 4H) is not (0, 0) and not
    ``small``, each step's ``dz @ U^T`` runs in :func:`matmul_nt`; ``dz`` (T, P, 4H) output: the
    gate-input gradients; ``gy``
    (B, T, H) gradient of the output sequence or (0, 0, 0); ``dh``, ``dc``, ``dc_prev``
    (P, H): the part's rows of the final states' gradients on entry, of h0's and (in ``dc``
    after an even number of steps, else ``dc_prev``) c0's on exit; ``need_h0``: compute
    h0's; ``dall`` (H + D + 1, 4H) output: the part's ``[dU; dW; db]``.
    """
    t, p, kk = hx1.shape
    g, n = dz.shape[2], dh.shape[1]  # (ut or u may be (0, 0))
    hi = lo + p
    keep_h = numpy.empty((p, n), dh.dtype)
    keep_c = numpy.empty((p, n), dh.dtype)
    # [dU; dW; db] accumulates block by block, every _DALL_STEPS steps, while the block's dz
    # is still in the core's L2: one core, 28 steps of a 32-row part, 888 us as one GEMM at
    # the end (dz's 1.8 MB read back from L3) against 720-760 us in blocks of 4 or 7 steps
    dall[:] = 0  # (and OpenBLAS's small nt kernel reads c even with beta 0)
    end = t  # dz of the steps k..end-1 is not in dall yet
    # with the small kernels, each step's dz @ U^T runs in OpenBLAS's small nn kernel on U^T,
    # transposed here by each part for itself (~40 us, the parts side by side; NumPy's copy
    # took 85 us on one thread): 24 against 28-32 us a step for matmul_nt (32 x 512 @ 512 x 128)
    own_t = small and u.shape[0] > 0 and ut.shape[0] == 0
    utl = numpy.empty((g if own_t else 0, n), dh.dtype)
    if own_t:
        _transpose(u, utl)
    uts = utl if own_t else ut
    for k in range(t - 1, -1, -1):
        if gy.shape[0]:
            for b in range(p):
                dh[b] += gy[lo + b, k]
        if mask.shape[0]:  # a padded step passes dh and dc through untouched
            for b in range(p):
                if not mask[k, lo + b]:
                    keep_h[b] = dh[b]
                    keep_c[b] = dc[b]
                    dh[b] = 0
                    dc[b] = 0
        _lstm_backward(dh, dc, gates[k, lo:hi], cs[k, lo:hi], cs[k + 1, lo:hi], dz[k],
                       dc_prev)
        if k or need_h0:
            if small and uts.shape[0]:
                _step_gemm(fn, nn, nt, small, dz[k, 0], g, uts, n, dh, n, p, n, g)
            elif u.shape[0]:
                matmul_nt(dz[k], u, dh)
            else:
                gemm(fn, False, dz[k], g, ut, n, dh, n, p, n, g, 0.0)
            if rm.shape[0]:
                for b in range(p):
                    dh[b] *= rm[lo + b]
        if mask.shape[0]:
            for b in range(p):
                if not mask[k, lo + b]:
                    dh[b] = keep_h[b]
                    dc_prev[b] = keep_c[b]
        dc, dc_prev = dc_prev, dc
        if k % _DALL_STEPS == 0:  # the gradients of [U; W; b] of the steps k..end-1
            _tgemm(fn, nn, nt, small, hx1[k, 0], kk, dz[k, 0], g, dall, g, kk, g, (end - k) * p,
                   1.0)
            end = k


@jit
def _gru_forward_sweep(fn, nn, nt, small, hx1, wb, u, ut, xz, hz, rbias, hs, gates, lo, mask, rm,
                       from_state):
    """The forward of a GRU (``reset_after``) over the rows ``lo:lo+P`` of the batch.

    As :func:`_lstm_forward_sweep`, with ``wb`` (D + 1, 3H) ``[W; input bias]``, ``u`` (H, 3H)
    (``ut`` its transpose or (0, 0)),
    ``rbias`` (3H,) the recurrent bias (zeros without bias), ``xz`` (T, P, 3H) and ``hz``
    (P, 3H) scratch, ``hs`` (T + 1, B, H) and ``gates`` (T or 1, B, 4H).
    """
    t, p, kk = hx1.shape
    n, g = u.shape
    hi = lo + p
    _step_gemm(fn, nn, nt, small, hx1[0, 0, n:], kk, wb, g, xz, g, t * p, g, kk - n)
    hp = numpy.empty((p if rm.shape[0] else 0, n), hz.dtype)
    for k in range(t):
        _recurrent_product(fn, nn, nt, small, hx1, u, ut, hs, hz, k, lo, rm,
                           k > 0 or from_state, hp)
        _gru_forward(xz[k], hz, rbias, hs[k, lo:hi], gates[k % gates.shape[0], lo:hi],
                     hs[k + 1, lo:hi])
        _carry_over(mask, k, lo, p, hs)


@jit
def _gru_backward_sweep(fn, nn, nt, small, hx1, ut, u, hs, gates, dxz, dhz, gy, dh, dh_direct, lo,
                        mask, rm, need_h0, dwb, du, drb):
    """The backward of :func:`_gru_forward_sweep` over the same part.

    ``ut`` (3H, H) ``U^T`` and ``u`` as in :func:`_lstm_backward_sweep`; ``dxz``, ``dhz``
    (T, P, 3H) outputs: the gradients of the input
    projections and of the recurrent products; ``gy`` as in :func:`_lstm_backward_sweep`;
    ``dh`` (P, H): the part's rows of h_T's gradient on entry, of h0's on exit;
    ``dh_direct`` (P, H) scratch; ``need_h0``: compute h0's. Outputs summed over the part's
    steps and samples: ``dwb`` (D + 1, 3H) ``[dW; d input bias]``, ``du`` (H, 3H), ``drb``
    (3H,) the recurrent bias's.
    """
    t, p, kk = hx1.shape
    g, n = dhz.shape[2], dh.shape[1]  # (ut or u may be (0, 0))
    hi = lo + p
    keep = numpy.empty((p, n), dh.dtype)
    drb[:] = 0
    for k in range(t - 1, -1, -1):
        if gy.shape[0]:
            for b in range(p):
                dh[b] += gy[lo + b, k]
        if mask.shape[0]:  # a padded step passes dh through untouched
            for b in range(p):
                if not mask[k, lo + b]:
                    keep[b] = dh[b]
                    dh[b] = 0
        _gru_backward(dh, gates[k, lo:hi], hs[k, lo:hi], dxz[k], dhz[k], dh_direct)
        for b in range(p):
            drow = dhz[k, b]
            for j in range(g):
                drb[j] += drow[j]
        if k or need_h0:
            if _OWN_STEPS and small and ut.shape[0]:  # fundl's micro-kernel on U^T
                _step_gemm(fn, nn, nt, small, dhz[k, 0], g, ut, n, dh, n, p, n, g)
            elif u.shape[0]:
                matmul_nt(dhz[k], u, dh)
            else:
                gemm(fn, False, dhz[k], g, ut, n, dh, n, p, n, g, 0.0)
            if rm.shape[0]:
                for b in range(p):
                    dh[b] *= rm[lo + b]
            dh += dh_direct
        else:
            dh[:] = dh_direct
        if mask.shape[0]:
            for b in range(p):
                if not mask[k, lo + b]:
                    dh[b] = keep[b]
    # [x_t, 1]^T @ dxz and h_{t-1}^T @ dhz, summed over the part's steps and samples
    if small:  # OpenBLAS's small nt kernel reads c even with beta 0
        dwb[:] = 0
        du[:] = 0
    _tgemm(fn, nn, nt, small, hx1[0, 0, n:], kk, dxz[0, 0], g, dwb, g, kk - n, g, t * p, 0.0)
    _tgemm(fn, nn, nt, small, hx1[0, 0], kk, dhz[0, 0], g, du, g, n, g, t * p, 0.0)


# -- every part of the batch, one per thread: Numba parallel regions over the loops above ------
# Why not Python threads: handing a part to the other core and waiting for it cost ~90 us per
# call through a thread pool (wake-ups and GIL hand-overs), ~2-10 us through GNU OpenMP, the
# threading layer Numba picks on Linux (an LSTM training step: 0.4 ms of ~5.5). The per-part
# arguments come as tuples (one array per part) and ``los``, the first batch row of each part.
# Run through :func:`fundl.kernels._parallel.map_compiled`, which falls back to these
# functions' Python source (one part after the other) where a parallel region is unsafe.


@parallel_jit
def _lstm_forward_parts(fn, nn, nt, small, x, backwards, ones, hx1s, uwb, uwbt, hs, cs, gates,
                        los, mask, rm, from_state, ut):
    """:func:`_lstm_forward_sweep` of every part (``hx1s``: one per part); ``ut`` (4H, H)
    gets ``U^T``, each part transposing a share of the rows (or (0, 0): not wanted)."""
    m = len(los)
    for i in prange(m):
        _lstm_forward_sweep(fn, nn, nt, small, x, backwards, ones, hx1s[i], uwb, uwbt, hs, cs,
                            gates, los[i], mask, rm, from_state, ut, ut.shape[0] * i // m,
                            ut.shape[0] * (i + 1) // m)


@parallel_jit
def _lstm_infer_parts(fn, nn, nt, small, x, uwb, seq, h_last, c_last, h0, c0, los, his,
                      backwards, nt0, b0, panels):
    """:func:`_lstm_infer_sweep` of every part (rows ``los[i]:his[i]``, scratch ``panels[i]``:
    ``panels`` is float32 (parts, size), size 0 where the micro-kernel is not used)."""
    for i in prange(len(los)):
        _lstm_infer_sweep(fn, nn, nt, small, x, uwb, seq, h_last, c_last, h0, c0, los[i],
                          his[i], backwards, nt0, b0, panels[i])


@parallel_jit
def _lstm_backward_parts(fn, nn, nt, small, hx1s, ut, u, cs, gates, dzs, gy, dh, dc, dc_prev, los,
                         mask, rm, need_h0, dalls):
    """:func:`_lstm_backward_sweep` of every part; ``dh``, ``dc``, ``dc_prev`` (B, H) are the
    whole batch's (each part works on its rows)."""
    for i in prange(len(los)):
        lo = los[i]
        hi = lo + hx1s[i].shape[1]
        _lstm_backward_sweep(fn, nn, nt, small, hx1s[i], ut, u, cs, gates, dzs[i], gy, dh[lo:hi],
                             dc[lo:hi], dc_prev[lo:hi], lo, mask, rm, need_h0, dalls[i])


@parallel_jit
def _gru_forward_parts(fn, nn, nt, small, hx1s, wb, u, ut, xzs, hzs, rbias, hs, gates, los, mask,
                       rm, from_state):
    """:func:`_gru_forward_sweep` of every part."""
    for i in prange(len(los)):
        _gru_forward_sweep(fn, nn, nt, small, hx1s[i], wb, u, ut, xzs[i], hzs[i], rbias, hs, gates,
                           los[i], mask, rm, from_state)


@parallel_jit
def _gru_backward_parts(fn, nn, nt, small, hx1s, ut, u, hs, gates, dxzs, dhzs, gy, dh, dh_direct,
                        los, mask, rm, need_h0, dwbs, dus, drbs):
    """:func:`_gru_backward_sweep` of every part; ``dh``, ``dh_direct`` (B, H) whole-batch."""
    for i in prange(len(los)):
        lo = los[i]
        hi = lo + hx1s[i].shape[1]
        _gru_backward_sweep(fn, nn, nt, small, hx1s[i], ut, u, hs, gates, dxzs[i], dhzs[i], gy,
                            dh[lo:hi], dh_direct[lo:hi], lo, mask, rm, need_h0, dwbs[i], dus[i],
                            drbs[i])


# -- plain-NumPy references of the four drivers above (same signatures, ``fn``, the scratch
# arrays and the second copy of the recurrent kernel, ``ut`` or ``u``, unused): a Python time
# loop over each part with the step references and xp.matmul,
# independent of the compiled sweeps; the tests compare the drivers against them.
def _keep_rows(mask, k, lo, hi):
    """Rows of the part whose step k is padding (bool (P, 1)), or None without a mask."""
    return None if not mask.shape[0] else (mask[k, lo:hi] == 0)[:, None]


def _masked_input(hs, k, lo, hi, rm):
    h = hs[k, lo:hi]
    return h * rm[lo:hi] if rm.shape[0] else h


def lstm_forward_parts_reference(fn, nn, nt, small, x, backwards, ones, hx1s, uwb, uwbt, hs, cs,
                                 gates, los, mask, rm, from_state, ut):
    """What :func:`_lstm_forward_parts` computes, in plain NumPy (the tests' ground truth):
    the input projection and the recurrent product apart, as the textbook writes them."""
    n, d = hs.shape[2], x.shape[2]
    u, wb = uwb[:n], uwb[n:]
    if ut.shape[0]:
        ut[...] = u.T
    for hx1, lo in zip(hx1s, los):
        t, p, _ = hx1.shape
        hi = lo + p
        xt = x[lo:hi].transpose(1, 0, 2)
        hx1[:, :, n:n + d] = xt[::-1] if backwards else xt
        hx1[:, :, n + d:] = 0
        if ones:
            hx1[:, :, n + d] = 1
        xz = hx1[:, :, n:] @ wb
        for k in range(t):
            hx1[k, :, :n] = _masked_input(hs, k, lo, hi, rm)
            hz = hx1[k, :, :n] @ u if k or from_state else numpy.zeros((p, u.shape[1]), u.dtype)
            lstm_forward_step_reference(xz[k], hz, cs[k, lo:hi], gates[k % gates.shape[0], lo:hi],
                                        cs[k + 1, lo:hi], hs[k + 1, lo:hi])
            pad = _keep_rows(mask, k, lo, hi)
            if pad is not None:
                hs[k + 1, lo:hi] = numpy.where(pad, hs[k, lo:hi], hs[k + 1, lo:hi])
                cs[k + 1, lo:hi] = numpy.where(pad, cs[k, lo:hi], cs[k + 1, lo:hi])


def lstm_backward_parts_reference(fn, nn, nt, small, hx1s, ut, u, cs, gates, dzs, gy, dh, dc,
                                  dc_prev, los, mask, rm, need_h0, dalls):
    """What :func:`_lstm_backward_parts` computes, in plain NumPy (the same buffers: c0's
    gradient ends in ``dc`` after an even number of steps, else in ``dc_prev``)."""
    for hx1, dz, dall, lo in zip(hx1s, dzs, dalls, los):
        t, p, kk = hx1.shape
        hi = lo + p
        d_h, d_c, d_cp = dh[lo:hi], dc[lo:hi], dc_prev[lo:hi]
        for k in range(t - 1, -1, -1):
            if gy.shape[0]:
                d_h += gy[lo:hi, k]
            pad = _keep_rows(mask, k, lo, hi)
            if pad is not None:  # a padded step passes dh and dc through untouched
                keep_h, keep_c = d_h.copy(), d_c.copy()
                d_h[...] = numpy.where(pad, 0, d_h)
                d_c[...] = numpy.where(pad, 0, d_c)
            lstm_backward_step_reference(d_h, d_c, gates[k, lo:hi], cs[k, lo:hi],
                                         cs[k + 1, lo:hi], dz[k], d_cp)
            if k or need_h0:
                d_h[...] = dz[k] @ (u.T if u.shape[0] else ut)
                if rm.shape[0]:
                    d_h *= rm[lo:hi]
            if pad is not None:
                d_h[...] = numpy.where(pad, keep_h, d_h)
                d_cp[...] = numpy.where(pad, keep_c, d_cp)
            d_c, d_cp = d_cp, d_c
        dall[...] = hx1.reshape(t * p, kk).T @ dz.reshape(t * p, -1)


def gru_forward_parts_reference(fn, nn, nt, small, hx1s, wb, u, ut, xzs, hzs, rbias, hs, gates,
                                los, mask, rm, from_state):
    """What :func:`_gru_forward_parts` computes, in plain NumPy."""
    n = u.shape[0]
    for hx1, lo in zip(hx1s, los):
        t, p, _ = hx1.shape
        hi = lo + p
        xz = hx1[:, :, n:] @ wb
        for k in range(t):
            hx1[k, :, :n] = _masked_input(hs, k, lo, hi, rm)
            hz = hx1[k, :, :n] @ u if k or from_state else numpy.zeros((p, u.shape[1]), u.dtype)
            gru_forward_step_reference(xz[k], hz, rbias, hs[k, lo:hi],
                                       gates[k % gates.shape[0], lo:hi], hs[k + 1, lo:hi])
            pad = _keep_rows(mask, k, lo, hi)
            if pad is not None:
                hs[k + 1, lo:hi] = numpy.where(pad, hs[k, lo:hi], hs[k + 1, lo:hi])


def gru_backward_parts_reference(fn, nn, nt, small, hx1s, ut, u, hs, gates, dxzs, dhzs, gy, dh,
                                 dh_direct, los, mask, rm, need_h0, dwbs, dus, drbs):
    """What :func:`_gru_backward_parts` computes, in plain NumPy."""
    n = dh.shape[1]
    for hx1, dxz, dhz, dwb, du, drb, lo in zip(hx1s, dxzs, dhzs, dwbs, dus, drbs, los):
        t, p, kk = hx1.shape
        hi = lo + p
        d_h, d_direct = dh[lo:hi], dh_direct[lo:hi]
        for k in range(t - 1, -1, -1):
            if gy.shape[0]:
                d_h += gy[lo:hi, k]
            pad = _keep_rows(mask, k, lo, hi)
            if pad is not None:  # a padded step passes dh through untouched
                keep = d_h.copy()
                d_h[...] = numpy.where(pad, 0, d_h)
            gru_backward_step_reference(d_h, gates[k, lo:hi], hs[k, lo:hi], dxz[k], dhz[k],
                                        d_direct)
            if k or need_h0:
                d_h[...] = dhz[k] @ (u.T if u.shape[0] else ut)
                if rm.shape[0]:
                    d_h *= rm[lo:hi]
                d_h += d_direct
            else:
                d_h[...] = d_direct
            if pad is not None:
                d_h[...] = numpy.where(pad, keep, d_h)
        drb[...] = dhz.reshape(t * p, -1).sum(axis=0)
        dwb[...] = hx1[:, :, n:].reshape(t * p, kk - n).T @ dxz.reshape(t * p, -1)
        du[...] = hx1[:, :, :n].reshape(t * p, n).T @ dhz.reshape(t * p, -1)


def lstm_infer_parts_reference(fn, nn, nt, small, x, uwb, seq, h_last, c_last, h0, c0, los,
                               his, backwards, nt0=None, b0=False, panels=None):
    """What :func:`_lstm_infer_parts` computes, in plain NumPy: the textbook LSTM, batch
    along the rows, the input projection and the recurrent product apart."""
    t, d = x.shape[1], x.shape[2]
    g = uwb.shape[1]
    n = g // 4
    u, w, b = uwb[:n], uwb[n:n + d], uwb[n + d:n + d + 1].sum(axis=0)  # (b: 0 without bias)
    for lo, hi in zip(los, his):
        h = h0[lo:hi].copy() if h0.shape[0] else numpy.zeros((hi - lo, n), x.dtype)
        c = c0[lo:hi].copy() if c0.shape[0] else numpy.zeros((hi - lo, n), x.dtype)
        gates = numpy.empty((hi - lo, g), x.dtype)
        for k in range(t):
            xk = x[lo:hi, t - 1 - k if backwards else k]
            c_new, h_new = numpy.empty_like(c), numpy.empty_like(h)
            lstm_forward_step_reference(xk @ w + b, h @ u, c, gates, c_new, h_new)
            h, c = h_new, c_new
            if seq.shape[0]:
                seq[lo:hi, k] = h
        h_last[lo:hi] = h
        c_last[lo:hi] = c


REFERENCES = {"lstm_forward_parts": lstm_forward_parts_reference,
              "lstm_infer_parts": lstm_infer_parts_reference,
              "lstm_backward_parts": lstm_backward_parts_reference,
              "gru_forward_parts": gru_forward_parts_reference,
              "gru_backward_parts": gru_backward_parts_reference}
"""The plain-NumPy reference of each compiled driver (the tests compare them)."""


_KERNELS = {"lstm_forward": _lstm_forward, "lstm_backward": _lstm_backward,
            "gru_forward": _gru_forward, "gru_backward": _gru_backward,
            "lstm_forward_sweep": _lstm_forward_sweep,
            "lstm_backward_sweep": _lstm_backward_sweep,
            "gru_forward_sweep": _gru_forward_sweep, "gru_backward_sweep": _gru_backward_sweep,
            "lstm_forward_parts": _lstm_forward_parts,
            "lstm_infer_sweep": _lstm_infer_sweep, "lstm_infer_parts": _lstm_infer_parts,
            "lstm_backward_parts": _lstm_backward_parts,
            "gru_forward_parts": _gru_forward_parts, "gru_backward_parts": _gru_backward_parts}


def compiled(name):
    """The Numba kernel ``name`` (``"lstm_forward"``, ...), or None when Numba is unavailable."""
    return _KERNELS[name] if numba is not None else None


def _pick(name, arrays, activation, recurrent_activation):
    """The compiled kernel when it applies (default activations; NumPy float32 arrays: Numba,
    CuPy float32/float64 arrays: :mod:`fundl.kernels.recurrent_cuda`), else None."""
    if not _RT.compiled_recurrent or activation != "tanh" or recurrent_activation != "sigmoid":
        return None
    a = arrays[0]
    if type(a) is numpy.ndarray:  # first: this runs twice per time step on the CPU
        # float64 (gradient checks) stays on the reference: Numba calls a scalar math.tanh
        # there, slower than NumPy's vectorised one; the kernel is still tested in float64
        # via compiled().
        # (and not while a background process compiles them: fundl.kernels._jit.ready)
        return compiled(name) if a.dtype == numpy.float32 and _ready("recurrent", a.dtype) \
            else None
    if backend.device_of(a) == "gpu":
        from . import recurrent_cuda

        return recurrent_cuda.KERNELS[name] if a.dtype in FLOAT_DTYPES else None
    return None


def sweeps(cell, a, activation="tanh", recurrent_activation="sigmoid"):
    """The compiled time loops of ``cell`` (``"lstm"`` or ``"gru"``, the latter with the
    reset gate after the product) for arrays like ``a``, or None where they do not apply.

    Returns ``(gemm, forward_parts, backward_parts)``: NumPy's BLAS GEMM
    (:func:`fundl.kernels.blas.gemm_function`; the loops' first argument, followed by
    :func:`fundl.kernels.convolution.small_gemms`) and the two Numba loops that call it, over
    every part of the batch (run them through :func:`fundl.kernels.map_compiled`, which puts
    the parts on parallel threads). They apply to NumPy float32 arrays with the default
    activations when Numba and the GEMM pointer are available; otherwise the ops loop over
    time in Python with the per-step dispatchers below (and their references).
    """
    if type(a) is not numpy.ndarray or \
            _pick(f"{cell}_forward", (a,), activation, recurrent_activation) is None:
        return None
    from . import blas

    fn = blas.gemm_function(a.dtype)
    return None if fn is None else (fn, compiled(f"{cell}_forward_parts"),
                                    compiled(f"{cell}_backward_parts"))


@dataclasses.dataclass(frozen=True, eq=False)
class SweepPlan:
    """How a recurrent op's time loop runs (:func:`sweep_plan`).

    Attributes:
        cell: ``"lstm"`` or ``"gru"``.
        compiled: the compiled drivers run the whole loop (NumPy float32, default
            activations, Numba and a GEMM pointer); else a Python loop over time calls the
            step dispatchers (CuPy, float64, other activations).
        parts: the batch's parts (slices), one per thread for the drivers; the whole batch
            for the Python loop. starts: the first row of each part.
        forward, backward: the drivers (:func:`_lstm_forward_parts`, ...) or None.
        own_gemm: the drivers' per-step recurrent products run in :func:`matmul_nt` (the
            recurrent kernel's transpose made once per call); else in BLAS
            (:func:`fundl.kernels.blas.recurrent_products` says which).
    """

    cell: str
    compiled: bool
    parts: tuple
    starts: tuple
    forward: object = None
    backward: object = None
    own_gemm: bool = False


@functools.lru_cache(maxsize=256)
def _sweep_plan(cell, batch, dtype, activation, recurrent_activation, threads, min_rows,
                max_parts, use_compiled, own_gemm):
    found = sweeps(cell, numpy.empty(0, dtype), activation, recurrent_activation) \
        if use_compiled else None
    if found is None:
        return SweepPlan(cell, False, (slice(None),), (0,))
    n = max(1, min(threads, batch // min_rows, max_parts))
    parts = tuple(even_slices(batch, n))
    return SweepPlan(cell, True, parts, tuple(s.start for s in parts), found[1], found[2],
                     own_gemm)


def sweep_plan(cell, x, weights, activation="tanh", recurrent_activation="sigmoid",
               threads=1, min_rows=16, max_parts=64):
    """The :class:`SweepPlan` of a ``cell`` op on input ``x`` (B, T, D) with ``weights``
    (the kernel, the recurrent kernel, the bias if any), cached per geometry; ``threads``:
    how many parts at most (:func:`fundl.kernels.threads`).

    The drivers hand the weights to BLAS as raw memory of x's dtype: weights of another
    dtype (or not NumPy arrays) keep the Python loop, which lets NumPy promote. A part has
    at least ``min_rows`` rows (thinner GEMMs lose efficiency) and there are at most
    ``max_parts`` (a Numba parallel region takes tuples of at most 100 items).

    Example:
        >>> plan = sweep_plan("lstm", x, (w, u, b), threads=2)
        >>> plan.compiled, len(plan.parts)
        (True, 2)
    """
    ok = type(x) is numpy.ndarray and all(type(a) is numpy.ndarray and a.dtype == x.dtype
                                          for a in weights if a is not None)
    # (whether the GEMM is reachable is part of the key: tests change the library mid-process)
    ok = ok and _RT.compiled_recurrent and numba is not None and \
        blas.gemm_function(x.dtype) is not None and \
        (x.dtype != numpy.float32 or _ready("recurrent", x.dtype))  # float32: compiled
    return _sweep_plan(cell, x.shape[0], x.dtype.str, activation, recurrent_activation,
                       threads, min_rows, max_parts, ok, blas.recurrent_products() == "fundl")


# -- dispatchers: what the ops call ------------------------------------------------------------
def lstm_forward_step(xz, hz, c_prev, gates, c, h, activation="tanh",
                      recurrent_activation="sigmoid"):
    """An LSTM step's gates, compiled when possible (see :func:`lstm_forward_step_reference`)."""
    k = _pick("lstm_forward", (xz,), activation, recurrent_activation)
    if k is None:
        return lstm_forward_step_reference(xz, hz, c_prev, gates, c, h, activation,
                                           recurrent_activation)
    k(xz, hz, c_prev, gates, c, h)


def lstm_backward_step(dh, dc, gates, c_prev, c, dz, dc_prev, activation="tanh",
                       recurrent_activation="sigmoid"):
    """An LSTM step backward, compiled when possible (see :func:`lstm_backward_step_reference`)."""
    k = _pick("lstm_backward", (dh,), activation, recurrent_activation)
    if k is None:
        return lstm_backward_step_reference(dh, dc, gates, c_prev, c, dz, dc_prev, activation,
                                            recurrent_activation)
    k(dh, dc, gates, c_prev, c, dz, dc_prev)


def gru_forward_step(xz, hz, recurrent_bias, h_prev, gates, h, activation="tanh",
                     recurrent_activation="sigmoid"):
    """One GRU step's gate math, compiled when possible; see :func:`gru_forward_step_reference`."""
    k = _pick("gru_forward", (xz,), activation, recurrent_activation)
    if k is None:
        return gru_forward_step_reference(xz, hz, recurrent_bias, h_prev, gates, h, activation,
                                          recurrent_activation)
    k(xz, hz, recurrent_bias, h_prev, gates, h)


def gru_backward_step(dh, gates, h_prev, dxz, dhz, dh_prev, activation="tanh",
                      recurrent_activation="sigmoid"):
    """Backward of one GRU step, compiled when possible; see :func:`gru_backward_step_reference`."""
    k = _pick("gru_backward", (dh,), activation, recurrent_activation)
    if k is None:
        return gru_backward_step_reference(dh, gates, h_prev, dxz, dhz, dh_prev, activation,
                                           recurrent_activation)
    k(dh, gates, h_prev, dxz, dhz, dh_prev)
