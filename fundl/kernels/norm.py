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
  arrays whose arrays all share x's dtype (:func:`fits`); inputs of :data:`MIN_REGION_BYTES`
  and more run as row parts, one per thread, in one compiled parallel region (:func:`_passes`,
  a single driver for all four passes: one compilation per dtype). On Python threads (the
  earlier way) a hand-off cost ~0.1 ms a pass, so only 8 MB inputs were split; ResNet-20's
  step, BatchNorm forward + backward: 49 -> 31 ms (bench_resnet_ops.py --wall, loaded 2-core
  AMD EPYC). The driver calls the compiled kernels by address (:func:`_call_at`): the
  norm group's cold compilation (``python -m fundl._warmup norm``) went from 5.3-5.6 s of CPU
  to 6.9-7.1 s with it, where a driver that calls the kernels directly took 9.2 s.

The affine pass can also add a residual and apply a ReLU (``max(bn(x) + r, 0)``: a ResNet's
BatchNormalization -> Add -> ReLU in one pass), and the backward passes then mask gy by that
ReLU themselves: recomputed from x without a residual (``(x - mean) * scale + shift > 0``,
the forward's own float operations, so the same mask), read from y with one. Which case runs
is a runtime argument of the same kernels (absent arrays are empty), so each still compiles
once per dtype. Measured on one thread, 128x32x32x16 float32 (loaded machine, minimum CPU
times): forward 1.8 -> 1.1 ms for BN + ReLU, 2.5 -> 1.3 ms for BN + Add + ReLU.

How the kernels are laid out (measured on 2 cores, float32, C = 16 to 64):

- the flat array is walked in chunks of L = k*C elements (L near :data:`_CHUNK`), so the inner
  loop is L long whatever C is, and element j of a chunk always belongs to channel j % C;
  per-channel constants are repeated to length L once (:func:`_repeat`). A row-by-row loop
  over C was as fast from C = 16 up, but 8x slower at C = 1 and 4x at C = 3 (a short inner
  loop, and each accumulator a serial chain of adds);
- sums go into float32 (for float32 data) accumulators over one block of about
  :data:`_BLOCK` elements, then into float64 totals, so a large batch does not lose digits
  while the inner loop stays vectorised float32;
- the statistics are shifted sums, never the cancelling one-pass E[x^2] - E[x]^2: each block
  sums d = x - shift and d^2 with the shift near its mean, m2 = sum(d^2) - sum(d)^2 / n
  (the corrected two-pass form, which repairs a shift off the mean), and blocks are merged
  in float64 with Chan et al.'s update. The first block of a part takes its own mean as the
  shift (one sweep from memory for it, one more from cache); every later block takes the
  mean of the blocks before it, in one sweep: the 8 MB statistics pass 0.77-0.90 -> 0.38-0.43
  ms on one core, with float32 results within a few ulp of float64 on sorted, block-structured
  and spiky data as on shuffled data (tests);
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

from ..runtime import pooled_empty
from ..backend import get_array_module, ones_vector
from . import _parallel
from ._jit import FLOAT_DTYPES, jit, numba, parallel_jit, prange

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
        if n == 0:  # the first block: its own mean, from a sweep of its own
            acc[:] = 0
            for s in range(lo, hi, length):
                xr = xf[s:min(s + length, hi)]
                for j in range(xr.shape[0]):
                    acc[j] += xr[j]
            _fold(acc, c, bsum)
            for ch in range(c):
                bmean[ch] = bsum[ch] / nb
        else:  # later blocks: the mean so far (one sweep a block; see the module docstring)
            for ch in range(c):
                bmean[ch] = mean[ch]
        _repeat_into(bmean, shift)  # the shift, rounded to x's dtype
        # d = x - shift, then sum(d^2) - sum(d)^2 / nb (the corrected two-pass form): the
        # second term repairs a shift off the block's mean (rounded to x's dtype, or the
        # earlier blocks' mean); its error grows with (shift - block mean)^2 / variance only
        # in float32 sums over ~256 values a lane, merged in float64 per block
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
def _affine_kernel(x, mean, scale, shift, res, relu, y):
    # res: (R, C) added after the affine map, or (0, C) for none; relu: then max(., 0).
    # One loop per case: a branch inside the inner loop would stop its vectorisation.
    rows, c = x.shape
    length, _ = _geometry(rows, c)
    m = _repeat(mean, length, x)
    a = _repeat(scale, length, x)
    b = _repeat(shift, length, x)
    zero = y.dtype.type(0)  # a float64 literal would promote the float32 loop
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    rf = res.reshape(-1)
    added = rf.shape[0] > 0
    for s in range(0, xf.shape[0], length):
        e = min(s + length, xf.shape[0])
        xr = xf[s:e]
        yr = yf[s:e]
        if added:
            rr = rf[s:e]
            if relu:
                for j in range(xr.shape[0]):
                    v = (xr[j] - m[j]) * a[j] + b[j] + rr[j]
                    # as numpy.maximum(v, 0): NaN stays NaN
                    yr[j] = v if v > zero or v != v else zero
            else:
                for j in range(xr.shape[0]):
                    yr[j] = (xr[j] - m[j]) * a[j] + b[j] + rr[j]
        elif relu:
            for j in range(xr.shape[0]):
                v = (xr[j] - m[j]) * a[j] + b[j]
                yr[j] = v if v > zero or v != v else zero
        else:
            for j in range(xr.shape[0]):
                yr[j] = (xr[j] - m[j]) * a[j] + b[j]


@jit
def _grad_sums_kernel(gy, x, mean, scale, shift, y, mode, g, sum_gy, sum_gy_xc):
    # sum_gy, sum_gy_xc (C,) float64 outputs, zero on entry. ``mode`` masks gy by a ReLU
    # that followed the affine map first: 0 none; 1 where (x - mean) * scale + shift > 0
    # (the forward's value, recomputed); 2 where y > 0, the masked gy written into g.
    # (Unused arrays are empty; one loop per mode keeps each vectorised.)
    rows, c = x.shape
    length, block_rows = _geometry(rows, c)
    m = _repeat(mean, length, x)
    a = _repeat(scale if mode == 1 else mean, length, x)
    b = _repeat(shift if mode == 1 else mean, length, x)
    zero = x.dtype.type(0)
    gf = gy.reshape(-1)
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    of = g.reshape(-1)
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
            if mode == 0:
                for j in range(gr.shape[0]):
                    acc[j] += gr[j]
                    acc2[j] += gr[j] * (xr[j] - m[j])
            elif mode == 1:
                for j in range(gr.shape[0]):
                    d = xr[j] - m[j]
                    # a multiply by the mask as 0 or 1: vectorised better than a select here
                    v = gr[j] * x.dtype.type(d * a[j] + b[j] > zero)
                    acc[j] += v
                    acc2[j] += v * d
            else:
                yr = yf[s:e]
                orow = of[s:e]
                # two loops: in one, the stores to g kept the sums from vectorising
                for j in range(gr.shape[0]):
                    orow[j] = gr[j] * x.dtype.type(yr[j] > zero)
                for j in range(gr.shape[0]):
                    acc[j] += orow[j]
                    acc2[j] += orow[j] * (xr[j] - m[j])
        _fold(acc, c, part)
        for ch in range(c):
            sum_gy[ch] += part[ch]
        _fold(acc2, c, part)
        for ch in range(c):
            sum_gy_xc[ch] += part[ch]


@jit
def _grad_x_kernel(gy, x, mean, p, q, scale, shift, relu, gx):
    # relu: gy masked where (x - mean) * scale + shift > 0 (the forward's ReLU, recomputed)
    rows, c = x.shape
    length, _ = _geometry(rows, c)
    mm = _repeat(mean, length, x)
    pp = _repeat(p, length, x)
    qq = _repeat(q, length, x)
    aa = _repeat(scale, length, x)
    bb = _repeat(shift if relu else scale, length, x)
    zero = x.dtype.type(0)
    gf = gy.reshape(-1)
    xf = x.reshape(-1)
    of = gx.reshape(-1)
    for s in range(0, xf.shape[0], length):
        e = min(s + length, xf.shape[0])
        gr = gf[s:e]
        xr = xf[s:e]
        orow = of[s:e]
        if relu:
            for j in range(xr.shape[0]):
                d = xr[j] - mm[j]
                v = gr[j] * x.dtype.type(d * aa[j] + bb[j] > zero)
                orow[j] = ((v - d * pp[j]) - qq[j]) * aa[j]
        else:
            for j in range(xr.shape[0]):
                orow[j] = ((gr[j] - (xr[j] - mm[j]) * pp[j]) - qq[j]) * aa[j]


if numba is not None:
    from numba.core import types as _types
    from numba.extending import intrinsic as _intrinsic

    @_intrinsic
    def _call_at(typingctx, addr, args):
        """Call the compiled kernel at address ``addr`` with the tuple ``args`` (see
        :func:`_kernel_addresses`).

        Why by address: a parallel region that calls the kernels directly links their code
        and LLVM optimises it all again; that doubled the norm group's cold compilation
        (4.7 -> 9.2 s of CPU). Through addresses the region driver compiles in ~0.5 s. The
        argument types must be those :func:`_kernel_addresses` compiled; arrays are checked
        to be C-contiguous here, at compile time."""
        argtys = tuple(args.types)
        if any(isinstance(t, _types.Array) and t.layout != "C" for t in argtys):
            return None  # a typing error: never call with another memory layout
        sig = _types.none(addr, args)

        def codegen(context, builder, signature, llargs):
            fnty = context.call_conv.get_function_type(_types.none, argtys)
            fn = builder.inttoptr(llargs[0], fnty.as_pointer())
            values = [builder.extract_value(llargs[1], k) for k in range(len(argtys))]
            # (the kernels raise nothing: no bounds checks, error_model="numpy")
            context.call_conv.call_function(builder, fn, _types.none, argtys, values)
            return context.get_dummy_value()

        return sig, codegen
else:
    def _call_at(*args):  # never called without Numba (the entry points need it)
        raise RuntimeError("fundl: batch norm's parallel passes need Numba")


@parallel_jit
def _passes(addrs, kind, x, gy, r, mean, a, b, p, q, mode, relu, out, sums, bounds):
    """Over each row part ``bounds[i]:bounds[i + 1]`` of (R, C) data, the parts on parallel
    threads, one of the four passes (the kernel at ``addrs[kind]``): ``kind`` 0 the statistics
    (sums[i] = the part's mean, m2), 1 the affine map (into out; r the residual), 2 the
    gradient's sums (into sums[i]; r the forward's y and out the masked g in mode 2), 3 the
    input gradient (into out). Arrays a pass does not use are empty (0, C) or (C,) stand-ins:
    one signature per dtype, one compilation for all four passes."""
    for i in prange(len(bounds) - 1):
        s, e = bounds[i], bounds[i + 1]
        if kind == 0:
            _call_at(addrs[0], (x[s:e], sums[i, 0], sums[i, 1]))
        elif kind == 1:
            _call_at(addrs[1], (x[s:e], mean, a, b, r[s:e], relu, out[s:e]))
        elif kind == 2:
            _call_at(addrs[2], (gy[s:e], x[s:e], mean, a, b, r[s:e], mode, out[s:e],
                                sums[i, 0], sums[i, 1]))
        else:
            _call_at(addrs[3], (gy[s:e], x[s:e], mean, p, q, a, b, relu, out[s:e]))


_KERNEL_ADDRESSES = {}  # dtype -> int64 array of the four kernels' addresses


def _kernel_addresses(dtype):
    """The addresses of the four kernels compiled (or loaded from the cache) for arrays of
    ``dtype``, with the argument types :func:`_passes` and :func:`_run` pass them, in the
    order of :func:`_passes`' ``kind``."""
    addrs = _KERNEL_ADDRESSES.get(dtype)
    if addrs is None:
        t = numba.from_dtype(dtype)
        a2, a1 = _types.Array(t, 2, "C"), _types.Array(t, 1, "C")
        d1 = _types.Array(_types.float64, 1, "C")
        i8, b1 = _types.int64, _types.boolean
        kernels = [(_stats_kernel, (a2, d1, d1)),
                   (_affine_kernel, (a2, a1, a1, a1, a2, b1, a2)),
                   (_grad_sums_kernel, (a2, a2, a1, a1, a1, a2, i8, a2, d1, d1)),
                   (_grad_x_kernel, (a2, a2, a1, a1, a1, a1, a1, b1, a2))]
        found = []
        for kernel, sig in kernels:
            kernel.compile(sig)
            cres = kernel.overloads[sig]
            found.append(cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name))
        addrs = _KERNEL_ADDRESSES[dtype] = numpy.array(found, numpy.int64)
    return addrs


# -- Numba entry points (NumPy arrays that pass :func:`fits`) -------------------------------------
MIN_REGION_BYTES = 1 << 18
"""Passes over an x of this many bytes or more split its rows over a compiled parallel region
(a hand-off there costs microseconds, not the ~0.1 ms of a Python thread pool). The split
depends on x alone, not on how many arrays a pass reads: a fused pass (ReLU mask, residual)
then sums over the same parts as the unfused one, and gives the same bits."""


# Back-off from stalling regions (other processes on the cores: a ResNet-20 step's 76 passes
# took ~0.3 s more), see :class:`fundl.kernels._parallel.Backoff`: the amount is the bytes a
# pass moves, one core's rate a low estimate (13-27e9 bytes/s measured); while it backs off,
# the same row parts run one after the other, so the results do not depend on the load.
_BACKOFF = _parallel.Backoff(per_second=1e10)


def _rows(a, like=None):
    """The (rows, C) C-contiguous view (or copy) of a channels-last array ``a``.

    ``like``: an array that ``a`` must match in shape (the kernels index both alike).
    """
    if like is not None and a.shape != like.shape:
        raise ValueError(f"BatchNorm kernels: gradient of shape {a.shape} for an input of shape "
                         f"{like.shape}; they must be equal.")
    return numpy.ascontiguousarray(a).reshape(-1, a.shape[-1])


def _none(x2):
    """The empty (0, C) array that stands for an absent optional array in the kernels (their
    argument types stay the same, so each compiles once per dtype)."""
    return numpy.empty((0, x2.shape[1]), x2.dtype)


def _run(kind, x2, gy2=None, r=None, mean=None, a=None, b=None, p=None, q=None,
         mode=0, relu=False, out=None):
    """Pass ``kind`` of :func:`_passes` over (rows, C) data x2, split into row parts: one per
    thread in a compiled parallel region from :data:`MIN_REGION_BYTES` of x2; where regions
    cannot run, on Python threads from ``_parallel.MIN_SPLIT_BYTES`` (counted over 3 arrays
    of x2's size whatever the pass, for the same reason); else one part on this thread.
    Returns the (parts, 2, C) float64 per-part sums (zero where the pass writes none) and the
    parts' bounds."""
    none = _none(x2)
    vec = numpy.ascontiguousarray(mean) if mean is not None else numpy.empty(0, x2.dtype)
    a, b, p, q = (vec if v is None else numpy.ascontiguousarray(v) for v in (a, b, p, q))
    args = [kind, x2, none if gy2 is None else gy2, none if r is None else r, vec, a, b, p, q,
            mode, bool(relu), none if out is None else out]
    region = x2.nbytes >= MIN_REGION_BYTES and _parallel.regions()
    parts = _parallel.even_slices(x2.shape[0], _parallel.threads()) if region else \
        _parallel.slices(x2.shape[0], 3 * x2.nbytes)
    sums = numpy.zeros((len(parts), 2, x2.shape[1]))
    bounds = _parallel.bounds_of(parts)
    if region:  # (backing off: the same parts one after the other, the same sums bitwise)
        _parallel.run_backing_off(_BACKOFF, _passes, len(parts), 3 * x2.nbytes, x2.dtype,
                                  _kernel_addresses(x2.dtype), *args, sums, bounds, blas=False)
        return sums, bounds

    def part(i):  # the kernel over part i's rows, as _passes calls it
        rows = slice(bounds[i], bounds[i + 1])
        _, x, gy, r, mean, a, b, p, q, mode, relu, out = [
            v[rows] if type(v) is numpy.ndarray and v.ndim == 2 and v.shape[0] else v
            for v in args]
        if kind == 0:
            _stats_kernel(x, sums[i, 0], sums[i, 1])
        elif kind == 1:
            _affine_kernel(x, mean, a, b, r, relu, out)
        elif kind == 2:
            _grad_sums_kernel(gy, x, mean, a, b, r, mode, out, sums[i, 0], sums[i, 1])
        else:
            _grad_x_kernel(gy, x, mean, p, q, a, b, relu, out)

    if len(parts) == 1:
        part(0)
    else:
        _parallel.map_chunks(part, list(range(len(parts))))
    return sums, bounds


def batch_norm_stats_numba(x, axis):
    """Numba version of :func:`batch_norm_stats_reference` (float64 accumulation).

    Large inputs are split into row parts that run on parallel threads; the parts'
    (count, mean, m2) are merged in float64 with Chan et al.'s formula, as the kernel merges
    its blocks.
    """
    x2 = _rows(x)
    sums, bounds = _run(0, x2)
    counts = numpy.diff(bounds).astype(numpy.float64)[:, None]
    total = x2.shape[0]
    means, m2s = sums[:, 0], sums[:, 1]
    mean = (counts * means).sum(axis=0) / total
    m2 = (m2s + counts * (means - mean) ** 2).sum(axis=0)
    # m2 >= 0 but for rounding in a constant channel: never hand out a negative variance
    var = numpy.maximum(m2, 0) / total
    return mean.astype(x.dtype), var.astype(x.dtype)


def batch_norm_affine_numba(x, axis, mean, scale, shift, residual=None, relu=False):
    """Numba version of :func:`batch_norm_affine_reference`."""
    x2 = _rows(x)
    r2 = None if residual is None else _rows(residual, x)
    y = pooled_empty(numpy, x.shape, x.dtype)
    _run(1, x2, r=r2, mean=mean, a=scale, b=shift, relu=relu,
         out=y.reshape(x2.shape))
    return y


def batch_norm_grad_sums_numba(gy, x, axis, mean, scale=None, shift=None, y=None):
    """Numba version of :func:`batch_norm_grad_sums_reference` (float64 accumulation)."""
    x2, gy2 = _rows(x), _rows(gy, x)
    mode = 2 if y is not None else 1 if shift is not None else 0
    g = pooled_empty(numpy, x.shape, x.dtype) if mode == 2 else None
    sums, _ = _run(2, x2, gy2, _rows(y, x) if mode == 2 else None,
                   mean, scale if mode == 1 else None, shift if mode == 1 else None,
                   mode=mode, out=g.reshape(x2.shape) if mode == 2 else None)
    sum_gy, sum_gy_xc = sums.sum(axis=0).astype(x.dtype)
    return (sum_gy, sum_gy_xc) if g is None else (sum_gy, sum_gy_xc, g)


def batch_norm_grad_x_numba(gy, x, axis, mean, p, q, scale, shift=None):
    """Numba version of :func:`batch_norm_grad_x_reference`."""
    x2, gy2 = _rows(x), _rows(gy, x)
    gx = pooled_empty(numpy, x.shape, x.dtype)
    _run(3, x2, gy2, None, mean, scale, shift, p, q, relu=shift is not None,
         out=gx.reshape(x2.shape))
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


def batch_norm_affine_reference(x, axis, mean, scale, shift, residual=None, relu=False):
    """``y = (x - mean) * scale + shift`` per channel, centred first (exact for |mean| >> std);
    then ``+ residual`` when given, then ``max(y, 0)`` when ``relu``.

    Args:
        x: (..., C, ...), channels along ``axis``.
        axis: the channel axis (a non-negative int).
        mean, scale, shift: (C,) each.
        residual: None, or an array of x's shape added after the affine map (a residual
            block's shortcut).
        relu: apply a ReLU last (NaN stays NaN, as ``xp.maximum``).

    Returns:
        y of x's shape.
    """
    xp = get_array_module(x)
    y = (_split(x, axis) - mean[:, None]) * scale[:, None] + shift[:, None]
    y = y.reshape(x.shape)
    if residual is not None:
        y = y + residual
    if relu:
        xp.maximum(y, 0, out=y)
    return y


def relu_mask_reference(x, axis, mean, scale, shift):
    """Where the ReLU after ``(x - mean) * scale + shift`` let the gradient through: the
    affine value, recomputed as the forward computed it, ``> 0`` (a bool array of x's shape)."""
    v = (_split(x, axis) - mean[:, None]) * scale[:, None] + shift[:, None]
    return (v > 0).reshape(x.shape)


def batch_norm_grad_sums_reference(gy, x, axis, mean, scale=None, shift=None, y=None):
    """Per-channel ``sum(g)`` and ``sum(g * (x - mean))``, the reductions of the backward,
    where ``g`` is ``gy`` or, after a fused ReLU, ``gy`` masked by it.

    Args:
        gy: gradient of the output, x's shape.
        x: the op's input; channels along ``axis`` (a non-negative int).
        mean: (C,) the mean subtracted in the forward.
        scale, shift: (C,) each, or None: a ReLU followed the affine map with these factors,
            its mask recomputed from x (:func:`relu_mask_reference`).
        y: None, or the fused output (a ReLU applied last, after a residual): mask ``y > 0``.

    Returns:
        (sum_g, sum_g_xc), each (C,); with ``y``, also g (x's shape), the masked gy.

    The mask multiplies (``gy * mask``), as the kernels do (a select did not vectorise
    there): a NaN or infinite gy where the ReLU was off gives NaN, not 0.
    """
    g = gy
    if y is not None:
        g = gy * (y > 0).astype(gy.dtype)
    elif shift is not None:
        g = gy * relu_mask_reference(x, axis, mean, scale, shift).astype(gy.dtype)
    g3 = _split(g, axis)
    sums = _channel_sums(g3), _channel_sums(g3, _split(x, axis) - mean[:, None])
    return sums if y is None else sums + (g,)


def batch_norm_grad_x_reference(gy, x, axis, mean, p, q, scale, shift=None):
    """``gx = ((g - (x - mean) * p) - q) * scale`` per channel, the input gradient; ``g`` is
    ``gy``, or with ``shift`` given ``gy`` masked by the ReLU that followed the affine map
    ``(x - mean) * scale + shift`` (recomputed).

    With p = inv * ggamma / n, q = gbeta / n and scale = gamma * inv this is training-mode
    batch normalisation's gx = gamma * inv * (g - mean(g) - xh * mean(g * xh)).

    Args:
        gy: gradient of the output, x's shape.
        x: the op's input; channels along ``axis`` (a non-negative int).
        mean, p, q, scale: (C,) each.
        shift: None, or (C,): mask gy by the fused ReLU first.

    Returns:
        gx of x's shape.
    """
    if shift is not None:
        gy = gy * relu_mask_reference(x, axis, mean, scale, shift).astype(gy.dtype)
    gx = ((_split(gy, axis) - (_split(x, axis) - mean[:, None]) * p[:, None]) - q[:, None])
    return (gx * scale[:, None]).reshape(x.shape)
