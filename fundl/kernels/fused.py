"""Optimizer updates in one pass over each weight: Numba kernels and their plain-``xp`` references.

Why: NumPy runs an update rule as a chain of whole-array operations, each reading and writing
the weight-sized arrays again: plain SGD is two passes (``step = lr * g``, ``w -= step``),
Adam ten (momentum, velocity, square root, division, scaling, subtraction). On an MLP's
784 x 256 kernel that is memory traffic and one interpreter round trip per operation, every
step. A compiled loop reads each element of ``w``, ``g`` and the slots once and writes ``w``
and the slots once.

The kernels do the references' float arithmetic in the same order and in the weight's dtype
(the scalars are first rounded to it, as NumPy does with a Python float against a float32
array), so both give the same numbers; the tests compare them bit for bit. Three kernels, one
per rule family, each compiled for float32 and float64 on first use (kernel group
``"fused"`` of :func:`fundl.kernels._jit.ready`):

    sgd_update(w, g, m, lr, mu, nesterov)
        mu == 0:  w -= lr * g
        else:     m = mu * m - lr * g;  w += m   (nesterov: w += mu * m - lr * g)
    adam_update(w, g, m, v, vhat, alpha, beta_1, beta_2, eps, amsgrad)
        m += (g - m)(1 - beta_1);  v += (g^2 - v)(1 - beta_2);  [vhat = max(vhat, v)]
        w -= alpha m / (sqrt(v or vhat) + eps)
    rmsprop_update(w, g, v, m, a, lr, rho, mu, eps, centered)
        v = rho v + (1 - rho) g^2;  [a = rho a + (1 - rho) g];  d = v [- a^2] + eps
        s = lr g / sqrt(d);  mu > 0: m = mu m + s, w -= m;  else w -= s

All arrays are 1-D views of C-contiguous arrays of one dtype (:func:`flat`); ``m``/``vhat``
are ignored (any array of the dtype) where the rule has no such slot.
The optimizers call them through :func:`update`, which runs a weight of
:data:`PARALLEL_UPDATE_MIN` elements or more on every thread, a contiguous share each.

Two more serve the dense layer (:class:`fundl.ops.linalg.Linear` with a fused ReLU):
:func:`bias_relu_numba` (bias and ReLU in place, one pass) and :func:`relu_grad_numba`. A
last one serves the loss of a classifier, :func:`softmax_xent_numba`: the softmax
cross-entropy of each row of logits and its gradient in one pass over the row (NumPy takes
a dozen calls over the whole batch; :class:`fundl.ops.nn.SoftmaxCrossEntropy` keeps them as
the reference), and the softmax itself with its gradient (:func:`softmax_numba`,
:func:`softmax_grad_numba`, for a classifier's ``activation="softmax"``). Their sums run in
another order than the references', so the two agree to float rounding, not bit for bit.

The dense layer's float32 products go through OpenBLAS's AVX-512 small-matrix kernels
(:func:`dense_forward`, :func:`dense_backward`), run by one task runner,
:func:`gemm_tasks_numba`, and its parallel region :func:`dense_gemms_numba` (two more
compiled functions, float32 only, ~0.6 + 1.3 s to compile cold on the loaded 2-core
machine): on two threads a large product is cut in halves, and a layer's two gradient
products and its bias sums run side by side (:func:`run_gemms`). On a CPU with AVX-512 the
forward product ``x @ w`` takes fundl's own micro-kernel instead (:mod:`.gemm`,
:data:`OWN_FORWARD`).

And before all of these, ``fit`` gathers each shuffled batch's rows on every thread
(:func:`gather_rows`).
"""
from __future__ import annotations

import ctypes
import time

import numpy

from ._jit import FLOAT_DTYPES, jit, parallel_jit, prange, ready
from ._jit import numba as _numba
from . import _parallel, gemm
from ._parallel import Backoff
from ..runtime import pooled_empty


@jit
def sgd_update_numba(w, g, m, lr, mu, nesterov):
    """In-place SGD step on flat arrays (see the module docstring)."""
    lr_ = w.dtype.type(lr)  # rounded to the weight's dtype first, as NumPy does
    if mu == 0.0:
        for i in range(w.shape[0]):
            w[i] -= g[i] * lr_
        return
    mu_ = w.dtype.type(mu)
    for i in range(w.shape[0]):
        step = g[i] * lr_
        mi = m[i] * mu_ - step
        m[i] = mi
        if nesterov:
            w[i] = (w[i] - step) + mi * mu_
        else:
            w[i] += mi


@jit
def adam_update_numba(w, g, m, v, vhat, alpha, beta_1, beta_2, eps, amsgrad):
    """In-place Adam step on flat arrays (see the module docstring)."""
    c1 = w.dtype.type(1.0 - beta_1)  # as NumPy: 1 - beta in float64, then rounded
    c2 = w.dtype.type(1.0 - beta_2)
    eps_ = w.dtype.type(eps)
    alpha_ = w.dtype.type(alpha)
    for i in range(w.shape[0]):
        gi = g[i]
        mi = m[i] + (gi - m[i]) * c1
        m[i] = mi
        vi = v[i] + (gi * gi - v[i]) * c2
        v[i] = vi
        if amsgrad:  # vhat = maximum(vhat, v), NaN from either side kept, as NumPy's
            h = vhat[i]
            if h > vi or h != h:
                vi = h
            vhat[i] = vi
        w[i] -= (mi / (numpy.sqrt(vi) + eps_)) * alpha_


@jit
def rmsprop_update_numba(w, g, v, m, a, lr, rho, mu, eps, centered):
    """In-place RMSprop step on flat arrays (see the module docstring); ``m`` is used when
    ``mu > 0``, ``a`` (the average gradient) when ``centered``."""
    rho_ = w.dtype.type(rho)
    c = w.dtype.type(1.0 - rho)
    eps_ = w.dtype.type(eps)
    lr_ = w.dtype.type(lr)
    mu_ = w.dtype.type(mu)
    for i in range(w.shape[0]):
        gi = g[i]
        vi = v[i] * rho_ + (gi * gi) * c
        v[i] = vi
        if centered:
            ai = a[i] * rho_ + gi * c
            a[i] = ai
            d = (vi - ai * ai) + eps_
        else:
            d = vi + eps_
        step = (gi / numpy.sqrt(d)) * lr_
        if mu > 0.0:
            mi = m[i] * mu_ + step
            m[i] = mi
            w[i] -= mi
        else:
            w[i] -= step


# -- the same updates on every thread, for large weights ------------------------------------
PARALLEL_UPDATE_MIN = 1 << 16
"""Weights of this many elements and more are updated by every thread, each a contiguous
share (:func:`update`). Why: in a training step the update of a large weight is a pass over
memory that the cores have just left elsewhere (the gradient written by both halves of the
product's region, the weight read in the forward pass): an MLP's 784 x 256 kernel took
109-123 us per SGD step on one core against 31 us for the same call repeated, and 72 us on
two (2-core Intel Xeon, a development script)."""


@parallel_jit
def _sgd_parts(w, g, m, lr, mu, nesterov, parts):
    n = w.shape[0]
    for i in prange(parts):
        lo, hi = n * i // parts, n * (i + 1) // parts
        sgd_update_numba(w[lo:hi], g[lo:hi], m[lo:hi], lr, mu, nesterov)


@parallel_jit
def _adam_parts(w, g, m, v, vhat, alpha, beta_1, beta_2, eps, amsgrad, parts):
    n = w.shape[0]
    for i in prange(parts):
        lo, hi = n * i // parts, n * (i + 1) // parts
        adam_update_numba(w[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi], vhat[lo:hi], alpha, beta_1,
                          beta_2, eps, amsgrad)


@parallel_jit
def _rmsprop_parts(w, g, v, m, a, lr, rho, mu, eps, centered, parts):
    n = w.shape[0]
    for i in prange(parts):
        lo, hi = n * i // parts, n * (i + 1) // parts
        rmsprop_update_numba(w[lo:hi], g[lo:hi], v[lo:hi], m[lo:hi], a[lo:hi], lr, rho, mu,
                             eps, centered)


_PARTS = {sgd_update_numba: _sgd_parts, adam_update_numba: _adam_parts,
          rmsprop_update_numba: _rmsprop_parts}

# one core's rate, elements a second, a low estimate (1.8e9 in the MLP step above): an update
# region that stalls far beyond it backs off to one thread (:class:`_parallel.Backoff`)
_UPDATE_BACKOFF = Backoff(1e9)


def update(rule, w, *args):
    """``rule(w, *args)``, one of the update kernels above (``sgd_update_numba``,
    ``adam_update_numba``, ``rmsprop_update_numba``) on flat arrays (:func:`usable` checked),
    split over the threads for a weight of :data:`PARALLEL_UPDATE_MIN` elements or more where
    parallel regions may run. Each element's arithmetic is the same: so are the results.

    Example:
        >>> update(sgd_update_numba, flat(w), flat(g), flat(w), 0.1, 0.0, False)
    """
    if w.shape[0] >= PARALLEL_UPDATE_MIN and _parallel.regions():
        loop, parts = _PARTS[rule], _parallel.threads()
        _parallel.run_backing_off(_UPDATE_BACKOFF, loop, parts, w.shape[0], (loop, w.dtype), w,
                                  *args, parts, blas=False)
    else:
        rule(w, *args)


# -- a shuffled batch's rows, gathered on every thread -----------------------------------------
GATHER_MIN_BYTES = 1 << 16
"""A batch of this many bytes or more is gathered on every thread (:func:`gather_rows`);
below, NumPy's one-thread copy costs less than handing the work to a region."""


@parallel_jit
def _gather_rows_parts(x, index, out):
    """``out[r] = x[index[r]]`` for every row ``r``, the rows split over the threads (2-D
    C-contiguous ``x`` and ``out``; ``index`` int64, every value a row of ``x``: unchecked)."""
    cols = x.shape[1]
    for r in prange(index.shape[0]):
        src, dst = x[index[r]], out[r]
        for j in range(cols):
            dst[j] = src[j]


# one core's rate, bytes a second, a low estimate (NumPy's gather alone: ~8e9 on the Zen 4): the
# gather's region backs off to one thread while it stalls, as the updates' (_UPDATE_BACKOFF)
_GATHER_BACKOFF = Backoff(2e9)


def gather_rows(a, index):
    """``a[index]`` for a C-contiguous float32 or float64 NumPy array ``a`` (n, ...) and an
    int64 ``index`` (k,) of rows of ``a`` (values in ``0 .. n - 1``, not checked: the shuffled
    batches of ``fit``, from a permutation), copied on every thread in one region; None where
    that does not apply (a batch under :data:`GATHER_MIN_BYTES`, one thread, another dtype
    or layout, the kernels still compiling): then ``a[index]``.

    Why: a batch's rows lie far apart in a large dataset, so a gather waits on memory rather
    than computes, and two cores wait in parallel. An MLP's batch of 128 MNIST rows (401 KB),
    2-core AMD EPYC (Zen 4), each call alone: 51 us for NumPy's ``a[index]``, 29 us here;
    inside a ``fit`` epoch of the 784-256-128-10 MLP 84 against 60 us a step (development
    scripts); the whole epoch 1.00 of NumPy's gather's by the medians, the rounds' own ratios
    0.97-0.99 (paired, separate processes): a small gain, within the machine's noise.

    Example:
        >>> batch = gather_rows(x, numpy.sort(order[:128]))   # None: use x[idx]
    """
    if type(a) is not numpy.ndarray or a.ndim < 2 or a.dtype not in FLOAT_DTYPES or \
            not a.flags.c_contiguous or type(index) is not numpy.ndarray or \
            index.dtype != numpy.int64 or index.ndim != 1 or \
            len(index) * a.strides[0] < GATHER_MIN_BYTES or not _parallel.regions() or \
            not ready("fused", a.dtype):
        return None
    out = numpy.empty((len(index),) + a.shape[1:], a.dtype)
    _parallel.run_backing_off(_GATHER_BACKOFF, _gather_rows_parts, len(index), out.nbytes,
                              (_gather_rows_parts, a.dtype), a.reshape(len(a), -1),
                              numpy.ascontiguousarray(index), out.reshape(len(index), -1),
                              blas=False)
    return out


@jit
def bias_relu_numba(y, b):
    """``y = max(y + b, 0)`` in place over a (n, c) array, ``b`` (c,), as ``y += b;
    numpy.maximum(y, 0, out=y)`` computes it (NaN stays NaN, -0.0 becomes 0.0) in one pass:
    NumPy's maximum alone takes ~20 us on 128 x 256 float32 here, this loop ~1-2 us (it
    vectorises)."""
    n, c = y.shape
    zero = y.dtype.type(0)
    for i in range(n):
        for j in range(c):
            v = y[i, j] + b[j]
            y[i, j] = v if v > zero or v != v else zero


@jit
def sum_bias_relu_numba(blocks, m, parts, b, relu):
    """``y = blocks[:m] + blocks[m:2m] + ...`` (``parts`` blocks of ``m`` rows) in place in the
    first block, then ``+ b`` (unless ``b`` is empty) and with ``relu`` ``max(., 0)``: the sum
    over k in shares of :func:`dense_forward`, finished in one pass. The same arithmetic, in
    the same order, as adding the blocks with NumPy and then :func:`bias_relu_numba`."""
    n = blocks.shape[1]
    zero = blocks.dtype.type(0)
    bias = b.shape[0] > 0
    for i in range(m):  # row by row, each loop over j alone (a loop over p inside stayed scalar)
        row = blocks[i]
        for p in range(1, parts):
            other = blocks[p * m + i]
            for j in range(n):
                row[j] += other[j]
        if bias:
            for j in range(n):
                row[j] += b[j]
        if relu:
            for j in range(n):
                v = row[j]
                row[j] = v if v > zero or v != v else zero


@jit
def relu_grad_numba(gy, y, gx):
    """``gx = gy where y > 0, else 0`` over (n, c) arrays (ReLU's gradient from its output,
    as :func:`fundl.kernels.activation_grad` computes it), without that function's Python
    wrapper: the dense layer calls it on every step."""
    n, c = gx.shape
    zero = gx.dtype.type(0)
    for i in range(n):
        for j in range(c):
            gx[i, j] = gy[i, j] if y[i, j] > zero else zero


def flat(a):
    """``a`` as a 1-D view (the kernels' layout); ``a`` must be C-contiguous."""
    return a.reshape(-1)


_ENABLED = True  # tests switch the kernels off to run the references


def usable(w, g, *slots, min_size=0) -> bool:
    """Whether the kernels may update ``w`` (with gradient ``g`` and ``slots``) now.

    NumPy arrays of one float dtype and shape, all C-contiguous and writeable (the one
    signature compiled), at least ``min_size``
    elements (below it NumPy's few calls cost less than a kernel call), Numba present and the
    ``"fused"`` group compiled or allowed to compile (:func:`fundl.kernels._jit.ready`).
    """
    if not _ENABLED or _numba is None or type(w) is not numpy.ndarray or w.size < min_size:
        return False
    dtype = w.dtype
    if dtype not in FLOAT_DTYPES or not w.flags.c_contiguous or not w.flags.writeable:
        return False
    for a in (g,) + slots:  # (a read-only array would be a new signature to compile)
        if type(a) is not numpy.ndarray or a.dtype != dtype or a.shape != w.shape or \
                not a.flags.c_contiguous or not a.flags.writeable:
            return False
    return ready("fused", dtype)


@jit
def _shifted_exp(z, r, out):
    """``out[r] = exp(z[r] - top)`` with ``top = max(z[r])`` (a NaN wins: the row turns NaN);
    returns ``(top, sum of out[r])``. The first pass of :func:`softmax_xent_numba` and
    :func:`softmax_numba`."""
    c = z.shape[1]
    top = z[r, 0]
    for j in range(1, c):
        if z[r, j] > top or z[r, j] != z[r, j]:
            top = z[r, j]
    total = z.dtype.type(0.0)
    for j in range(c):
        e = numpy.exp(z[r, j] - top)
        out[r, j] = e
        total += e
    return top, total


@jit
def softmax_xent_numba(z, t, idx, sparse, loss, gz):
    """Softmax cross-entropy of each row of logits ``z`` (n, c) and its gradient, one pass.

    ``sparse``: the targets are the class indices ``idx`` (n,) (``t`` is ignored), else the
    distributions ``t`` (n, c) (``idx`` is ignored). Writes ``loss[r] = log(sum e) sum(t) -
    sum(t s)`` with ``s = z - max(z)``, ``e = exp(s)`` (for indices: ``log(sum e) - s[idx]``)
    and ``gz[r] = softmax(z) sum(t) - t`` (for indices: ``softmax(z) - onehot(idx)``): the
    loss's gradient for an incoming gradient of 1, which the backward scales row by row.
    """
    n, c = z.shape
    one = z.dtype.type(1.0)
    for r in range(n):
        top, total = _shifted_exp(z, r, gz)
        log_total = numpy.log(total)
        scale = one / total
        if sparse:
            k = idx[r]
            if k < 0 or k >= c:  # the op checks first; a replayed plan may not
                raise IndexError("softmax_xent: a class index is outside [0, classes)")
            loss[r] = log_total - (z[r, k] - top)
            for j in range(c):
                gz[r, j] *= scale
            gz[r, k] -= one
        else:
            t_sum = z.dtype.type(0.0)
            dot = z.dtype.type(0.0)
            for j in range(c):
                t_sum += t[r, j]
                dot += t[r, j] * (z[r, j] - top)
            loss[r] = log_total * t_sum - dot
            scale *= t_sum
            for j in range(c):
                gz[r, j] = gz[r, j] * scale - t[r, j]


@jit
def softmax_numba(z, y):
    """``y[r] = exp(s) / sum(exp(s))`` with ``s = z[r] - max(z[r])`` for each row of (n, c)
    arrays, in one pass over the row (:class:`fundl.ops.nn.Softmax` keeps the NumPy
    reference: five whole-batch calls, ~60 us in a LeNet-5 step for a 64 x 10 batch). A NaN
    in a row makes the row NaN, as there."""
    n, c = z.shape
    for r in range(n):
        _, total = _shifted_exp(z, r, y)
        for j in range(c):
            y[r, j] /= total


@jit
def softmax_grad_numba(y, gy, gx):
    """Softmax's gradient row by row: ``gx[r] = y[r] gy[r] - y[r] sum(y[r] gy[r])``, as
    :meth:`fundl.ops.nn.Softmax.backward`'s reference computes it."""
    n, c = y.shape
    for r in range(n):
        total = y.dtype.type(0.0)
        for j in range(c):
            g = y[r, j] * gy[r, j]
            gx[r, j] = g
            total += g
        for j in range(c):
            gx[r, j] -= y[r, j] * total


def usable_2d(*arrays) -> bool:
    """Whether the dense layer's kernels may run on these arrays: NumPy, one float dtype,
    C-contiguous and writeable, the first one 2-D; Numba present, group ``"fused"`` ready."""
    if not _ENABLED or _numba is None:
        return False
    y = arrays[0]
    if type(y) is not numpy.ndarray or y.ndim != 2:
        return False
    dtype = y.dtype
    if dtype not in FLOAT_DTYPES:
        return False
    for a in arrays:
        if type(a) is not numpy.ndarray or a.dtype != dtype or not a.flags.c_contiguous or \
                not a.flags.writeable:
            return False
    return ready("fused", dtype)


# -- the dense layer's two big products through OpenBLAS's AVX-512 kernels ---------------------
DENSE_SMALL_GEMMS = True
"""Let :func:`dense_forward` / :func:`dense_weight_grad` call OpenBLAS's AVX-512 small-matrix
kernels (False: the dense layer's products stay ``fundl.kernels.matmul``)."""

_DENSE_MAX_MACS = 1 << 27  # multiply-adds: above, OpenBLAS's packed, threaded GEMM wins


def _dense_kernels(a, b):
    """OpenBLAS's SkylakeX beta-0 kernels ``(nn, nt, tn)`` when ``a`` and ``b`` are
    C-contiguous writeable float32 NumPy matrices, else None (see :func:`_load_dense_kernels`)."""
    if not DENSE_SMALL_GEMMS or type(a) is not numpy.ndarray or type(b) is not numpy.ndarray \
            or a.dtype != numpy.float32 or b.dtype != numpy.float32 or a.ndim != 2 or \
            b.ndim != 2 or not a.flags.c_contiguous or not b.flags.c_contiguous or \
            not a.flags.writeable or not b.flags.writeable or a.size == 0 or b.size == 0:
        # (read-only arrays are another Numba type: a second compiled signature)
        return None
    return _load_dense_kernels()


_DENSE_KERNELS = []  # [] until looked up, then [None] or [(nn, nt, tn)], + their addresses


def _load_dense_kernels():
    """OpenBLAS's AVX-512 small-matrix kernels ``sgemm_small_kernel_b0_{nn,nt,tn}_SKYLAKEX``
    from NumPy's own OpenBLAS, where :func:`fundl.kernels.convolution.small_gemms` found the
    AVX-512 kernels usable (an AVX-512 CPU, NumPy's OpenBLAS as fundl's GEMM library) and
    the three agree with numpy.matmul on a few odd-sized products (C filled with NaN: the
    beta-0 kernels must never read it); else None."""
    if _DENSE_KERNELS:
        return _DENSE_KERNELS[0]
    found = None
    try:
        from . import convolution as cv

        if cv.small_gemms(numpy.float32)[2]:
            found = tuple(cv.small_kernel(v) for v in ("b0_nn", "b0_nt", "b0_tn"))
            if not _dense_agree(*found):
                found = None
    except Exception:  # noqa: BLE001 - other BLAS, other version: NumPy's products stay
        found = None
    _DENSE_KERNELS.append(found)
    return found


def _dense_agree(nn, nt, tn):
    rng = numpy.random.default_rng(0)
    for m, k, n in ((5, 7, 3), (37, 19, 21), (2, 65, 17)):
        x = rng.standard_normal((m, k)).astype(numpy.float32)
        w = rng.standard_normal((k, n)).astype(numpy.float32)
        g = rng.standard_normal((m, n)).astype(numpy.float32)
        got = [numpy.full(shape, numpy.nan, numpy.float32) for shape in ((m, n), (k, n), (m, k))]
        nn(n, m, k, w.ctypes.data, n, 1.0, x.ctypes.data, k, got[0].ctypes.data, n)
        nt(n, k, m, g.ctypes.data, n, 1.0, x.ctypes.data, k, got[1].ctypes.data, n)
        tn(k, m, n, w.ctypes.data, n, 1.0, g.ctypes.data, n, got[2].ctypes.data, k)
        for a, b in zip(got, (x @ w, x.T @ g, g @ w.T)):
            if not numpy.allclose(a, b, rtol=1e-4, atol=1e-4):
                return False
    return True


def dense_forward(x, w, relu_bias=None):
    """``x @ w`` (m, k) @ (k, n) through OpenBLAS's AVX-512 small-matrix kernel (a large product
    split over fundl's threads, see :func:`run_gemms`), or None where it does not apply (then
    the caller uses ``fundl.kernels.matmul``). With ``relu_bias`` (a float32 C-contiguous
    (n,) array): ``max(x @ w + relu_bias, 0)``, as :func:`bias_relu_numba` computes it.

    Why: this machine's NumPy OpenBLAS runs its AVX2 kernels (``OPENBLAS_CORETYPE=Haswell``
    in the environment) on an AVX-512 CPU; the same library's AVX-512 kernel, called
    directly, did an MLP's 128 x 784 @ 784 x 256 in 1.2 ms against NumPy's 1.6 ms on one
    core (loaded machine). The sums run in another order than NumPy's: results agree to
    float rounding.
    """
    if _dense_kernels(x, w) is None:
        return None
    m, k = x.shape
    n = w.shape[1]
    if k != w.shape[0] or m * k * n > _DENSE_MAX_MACS:
        return None
    # column-major kernels: the row-major y = x @ w is y^T = w^T @ x^T (w first), split over
    # the rows of y (the kernel's N)
    kind = OWN_NN if n >= gemm.COLS and _own_forward() else NN
    if kind == NN or k * n < PARALLEL_UPDATE_MIN:
        y = numpy.empty((m, n), numpy.float32)
        run_gemms([(kind, n, m, k, 1, n, 0, k, 2, n, 1, 1)], (x, w, y, _PAD, _PAD))
        if relu_bias is not None:
            bias_relu_numba(y, relu_bias)
        return y
    # A large weight: each thread takes a share of w's rows (x's columns), the share the
    # optimizer's update gives it (see PARALLEL_UPDATE_MIN), and sums over it into its own
    # block of y; the blocks are added after. Why: the update leaves each share of w in
    # the cache of the core that wrote it, where a split over y's rows made both cores read
    # all of w, half of it from the other core. The MLP's 784 x 256 kernel, 2-core Intel
    # Xeon, separate processes: its SGD update 55-62 -> 33-35 us a step, this product
    # 224-229 -> 187-198 us with the micro-kernel.
    # (recycled memory: fresh pages faulting in both threads' region cost ~60 us a call)
    blocks = pooled_empty(numpy, (_parallel.threads() * m, n), numpy.float32)
    tasks = [(kind, n, m, k, 1, n, 0, k, 2, n, 2, 1)]
    run_gemms(tasks, (x, w, blocks, _PAD, _PAD))
    parts = tasks[0][11]
    if parts > 1 or relu_bias is not None:  # the blocks' sum, with bias and ReLU: one pass
        sum_bias_relu_numba(blocks, m, parts, _NO_SUMS if relu_bias is None else relu_bias,
                            relu_bias is not None)
    return blocks[:m]


def dense_weight_grad(x, g):
    """``x.T @ g`` for x (m, k), g (m, n) (the kernel's gradient) through OpenBLAS's AVX-512
    small-matrix kernel, or None where it does not apply (see :func:`dense_forward`;
    measured 0.74 ms against NumPy's 1.8 ms for 784 x 128 @ 128 x 256 on one core)."""
    grads = dense_backward(g, x, None, False, True)
    return None if grads is None else grads[1]


def dense_input_grad(g, w):
    """``g @ w.T`` for g (m, n), w (k, n) (the input's gradient) through OpenBLAS's AVX-512
    small-matrix kernel, or None where it does not apply (see :func:`dense_forward`)."""
    grads = dense_backward(g, None, w, True, False)
    return None if grads is None else grads[0]


def dense_backward(g, x, w, need_x, need_w, need_b=False):
    """A dense layer's gradients at once: ``(g @ w.T if need_x, x.T @ g if need_w, g's column
    sums if need_b)`` (None for those not asked) for g (m, n), x (m, k), w (k, n) (``x``/``w``
    may be None where not needed), through OpenBLAS's AVX-512 small-matrix kernels; or None
    where they do not apply (float32 C-contiguous writeable NumPy matrices on an AVX-512 CPU,
    see :func:`dense_forward`).

    Everything runs in one call (:func:`run_gemms`): with two threads each product takes a
    core, or each is split in halves when it is large, instead of one after the other; the
    bias sums (row by row, in another order than a GEMV with ones: equal to float rounding)
    take no OpenBLAS call, whose worker threads would fight the region's.
    """
    if not (need_x or need_w):
        return None
    if _dense_kernels(g, w if need_x else x) is None or \
            (need_x and need_w and _dense_kernels(x, w) is None):
        return None
    m, n = g.shape
    if (need_x and w.shape[1] != n) or (need_w and x.shape[0] != m):
        return None
    k = w.shape[0] if need_x else x.shape[1]
    if m * k * n > _DENSE_MAX_MACS or (need_x and need_w and x.shape[1] != k):
        return None
    tasks = []
    # arrays 0-4: g, x, w, gw, gx
    gw = numpy.empty((k, n), numpy.float32) if need_w else None
    if need_w:  # gw (k, n) = x.T @ g: column-major gw^T = g^T @ x, split over gw's rows
        tasks.append((NT, n, k, m, 0, n, 1, k, 3, n, 1, 1))
    gx = numpy.empty((m, k), numpy.float32) if need_x else None
    if need_x:  # gx (m, k) = g @ w.T: column-major gx^T = w @ g^T, split over gx's rows
        tasks.append((TN, k, m, n, 2, n, 0, n, 4, k, 1, 1))
    gb = numpy.empty(n, numpy.float32) if need_b else None
    run_gemms(tasks, (g, _PAD if x is None else x, _PAD if w is None else w,
                      _PAD if gw is None else gw, _PAD if gx is None else gx), gb)
    return gx, gw, gb


# -- several products in one compiled parallel region -------------------------------------------
NN, NT, TN = 0, 1, 2
"""Which of OpenBLAS's kernels a task calls (``op(A) op(B)``, column-major: N plain, T
transposed); each computes ``C = op(A) op(B)`` over float32 matrices."""
OWN_NN = 3
"""A task computing what :data:`NN` does through fundl's own micro-kernel
(:func:`fundl.kernels.gemm.gemm_numba`)."""

OWN_FORWARD = None
"""Whether the dense layer's forward product (``x @ w``, 32 output columns or more) takes
fundl's own micro-kernel (:mod:`fundl.kernels.gemm`) rather than OpenBLAS's small kernel.
None (the default): where :func:`fundl.kernels.gemm.usable` (AVX-512). Measured on a
2-core Intel Xeon, one core, ``64 x 784 @ 784 x 256``: ~157 us against OpenBLAS's ~218 us
(MKL's: ~156 us); on a 2-core AMD EPYC (Zen 4) 253 against 261 us, and with the split by
weight rows it allows (:func:`dense_forward`) the MLP's epoch took 0.92 of the small
kernels' (paired, separate processes). Its weight gradient ``x.T @ g`` stays with OpenBLAS,
whose kernel was as fast (Intel: 156 against 163 us; AMD: 460 against 466 us for 128 rows)."""


def _own_forward():
    """Whether the forward product takes fundl's micro-kernel (see :data:`OWN_FORWARD`)."""
    return (OWN_FORWARD is None or bool(OWN_FORWARD)) and gemm.usable()


_SPLIT_MACS = 1 << 21
"""Products of this many multiply-adds and more are cut in one slice per thread in a region."""

_REGION_MACS = 1 << 21
"""A region runs only for this many multiply-adds in all: a hand-off inside a compiled region
costs a few microseconds on an idle core, a 128 x 256 @ 256 x 128 product ~50 us on one."""

_PAD = numpy.zeros((0, 0), numpy.float32)  # fills the unused places of a task's arrays
_NO_SUMS = numpy.zeros(0, numpy.float32)  # gb when there are no bias sums to write


if _numba is not None:
    from llvmlite import ir as _ir
    from numba.core import types as _types
    from numba.extending import intrinsic as _intrinsic

    @_intrinsic
    def _call_small_kernel(typingctx, fn, m, n, k, a, lda, b, ldb, c, ldc):
        """Call the OpenBLAS small-matrix kernel at address ``fn`` (all arguments int64, alpha
        1): ``kernel(m, n, k, a, lda, 1.0, b, ldb, c, ldc)``.

        Why an address and not a ctypes function argument: Numba unboxes each ctypes function
        argument through Python (``ctypes.cast``) on every call, ~1 us apiece, three per call
        of the task runner; an int64 address costs nothing, and the compiled code (cached on
        disk) holds no process-specific address."""
        sig = _types.int32(*([_types.int64] * 10))

        def codegen(context, builder, signature, args):
            i64 = _ir.IntType(64)
            f32 = _ir.FloatType()
            fnty = _ir.FunctionType(_ir.IntType(32), [i64] * 5 + [f32] + [i64] * 4)
            target = builder.inttoptr(args[0], fnty.as_pointer())
            return builder.call(target, list(args[1:6]) + [_ir.Constant(f32, 1.0)] +
                                list(args[6:]))

        return sig, codegen
else:
    def _call_small_kernel(*args):  # never called without Numba (see run_gemms)
        raise RuntimeError("fundl: the small-kernel task runner needs Numba")


@jit
def gemm_tasks_numba(fns, tasks, arrays, t, threads, gb, sums):
    """Thread ``t``'s share of the products ``tasks`` (of ``threads`` sharing them).

    A task is a row ``(kind, M, N, K, A, lda, B, ldb, C, ldc, axis, parts)``: the arguments of
    OpenBLAS's column-major kernel ``kind`` (:data:`NN`, :data:`NT`, :data:`TN`, at the
    address ``fns[kind]``: ``nn``, ``nt``, ``tn``; :data:`OWN_NN`: fundl's own kernel),
    ``C (M, N) = op(A) (M, K) @ op(B) (K, N)``, with ``A``/``B``/``C`` indices into ``arrays``
    (float32, C-contiguous); it is cut into ``parts`` slices of C along ``axis`` (0: M, 1: N),
    or (2, NN kinds only) of the sum over K, slice ``p`` writing its partial C into block
    ``p`` of ``C`` (``N * ldc`` floats apart; the caller adds the blocks). The slices of all
    tasks, numbered in order, go round robin to the threads (two halves of one product, or
    two products, one per core). With ``sums``, one more item writes ``gb[j] = sum_i
    arrays[0][i, j]`` (a dense layer's bias gradient).
    """
    item = 0
    for i in range(tasks.shape[0]):
        kind, m, n, k = tasks[i, 0], tasks[i, 1], tasks[i, 2], tasks[i, 3]
        lda, ldb, ldc = tasks[i, 5], tasks[i, 7], tasks[i, 9]
        axis, parts = tasks[i, 10], tasks[i, 11]
        for p in range(parts):
            if item % threads == t:
                a = numpy.int64(arrays[tasks[i, 4]].ctypes.data)
                b = numpy.int64(arrays[tasks[i, 6]].ctypes.data)
                c = numpy.int64(arrays[tasks[i, 8]].ctypes.data)
                pm, pn, pk = m, n, k
                if axis == 0:  # rows p of C (and of op(A)); 4 bytes per float32
                    lo, hi = m * p // parts, m * (p + 1) // parts
                    pm = hi - lo
                    a += 4 * lo * (lda if kind == 2 else 1)
                    c += 4 * lo
                elif axis == 1:  # columns p of C (and of op(B))
                    lo, hi = n * p // parts, n * (p + 1) // parts
                    pn = hi - lo
                    b += 4 * lo * (1 if kind == NT else ldb)
                    c += 4 * lo * ldc
                else:  # (NN) the sum over k's share p, into C's block p (blocks n columns apart)
                    lo, hi = k * p // parts, k * (p + 1) // parts
                    pk = hi - lo
                    a += 4 * lo * lda
                    b += 4 * lo
                    c += 4 * p * n * ldc
                if pm > 0 and pn > 0:
                    if kind == OWN_NN:  # the row-major C^T (pn, pm) = B^T (pn, k) @ A^T
                        gemm.gemm_numba(b, ldb, 1, a, lda, c, ldc, pn, pm, pk)
                    else:
                        _call_small_kernel(fns[kind], pm, pn, pk, a, lda, b, ldb, c, ldc)
            item += 1
    if sums and item % threads == t:
        g = arrays[0]
        for j in range(g.shape[1]):
            gb[j] = 0
        for r in range(g.shape[0]):
            for j in range(g.shape[1]):
                gb[j] += g[r, j]


@parallel_jit
def dense_gemms_numba(fns, tasks, arrays, threads, gb, sums):
    """:func:`gemm_tasks_numba` for every thread ``t < threads`` at once, one region."""
    for t in prange(threads):
        gemm_tasks_numba(fns, tasks, arrays, t, threads, gb, sums)


def run_gemms(tasks, arrays, gb=None):
    """Run the products ``tasks`` (a list of rows as :func:`gemm_tasks_numba` takes them; it is
    changed) over ``arrays`` (a 5-tuple of C-contiguous writeable float32 matrices, ``_PAD``
    where unused), which write disjoint outputs; with ``gb`` also ``gb = arrays[0].sum(0)``.

    With more than one thread (:func:`fundl.kernels._parallel.regions`) and at least
    :data:`_SPLIT_MACS` multiply-adds in all, every product of that size is cut in one slice
    per thread, and the slices (or, for smaller products, the products themselves) run in one
    compiled parallel region (:func:`dense_gemms_numba`): a hand-off costs a few microseconds
    there, against ~20-90 us through a Python thread pool (an MLP's 128 x 784 @ 784 x 256:
    299 us on one core, 162 us in a region on two, 270 us as two halves on Python threads;
    2-core AMD EPYC, loaded). Otherwise they run one after the other on this thread. The
    addresses are taken in the compiled code (``a.ctypes.data`` costs ~1-2 us in Python).
    OpenBLAS's own thread count is not touched: these kernels are single-threaded.
    """
    threads, items = 1, len(tasks) + (gb is not None)
    if _numba is not None and ready("fused", numpy.float32):
        fns = _kernel_addresses()
        macs = sum(task[1] * task[2] * task[3] for task in tasks)
        if macs >= _REGION_MACS and _parallel.regions():
            # the products are cut the same way whether the region runs or backs off (then
            # this thread computes every slice in turn): a sum over k in shares (axis 2) is
            # added in another order than the whole sum, and a model's outputs must not
            # depend on whether the other core was busy a moment ago
            slices = _parallel.threads()
            for i, task in enumerate(tasks):
                m, n, k, axis = task[1], task[2], task[3], task[10]
                if m * n * k >= _SPLIT_MACS and (m, n, k)[axis] >= slices:
                    tasks[i] = task[:11] + (slices,)
                    items += slices - 1
            threads = slices if _BACKOFF.allowed() else 1
        table = numpy.array(tasks, numpy.int64).reshape(-1, 12)
        sums, gb = gb is not None, _NO_SUMS if gb is None else gb
        if threads < 2 or items < 2:
            gemm_tasks_numba(fns, table, arrays, 0, 1, gb, sums)
        else:
            start = time.perf_counter()
            dense_gemms_numba(fns, table, arrays, min(threads, items), gb, sums)
            _BACKOFF.took(time.perf_counter() - start, macs)
        return
    # the compiled kernels not ready yet (compiling in the background): through ctypes
    kernels = _DENSE_KERNELS[0]
    for kind, m, n, k, a, lda, b, ldb, c, ldc, _, _ in tasks:
        kernels[NN if kind == OWN_NN else kind](m, n, k, arrays[a].ctypes.data, lda, 1.0,
                                                arrays[b].ctypes.data, ldb,
                                                arrays[c].ctypes.data, ldc)
    if gb is not None:
        numpy.sum(arrays[0], axis=0, out=gb)


# one core's rate for these kernels, a low estimate (75-85e9): the products' region backs off to
# one thread while it stalls (:class:`fundl.kernels._parallel.Backoff`)
_SERIAL_MACS_PER_SECOND = 6e10
_BACKOFF = Backoff(_SERIAL_MACS_PER_SECOND)


def _kernel_addresses():
    """The addresses of the three kernels (nn, nt, tn) as an int64 array, for
    :func:`gemm_tasks_numba`."""
    if len(_DENSE_KERNELS) < 2:
        _DENSE_KERNELS.append(numpy.array([ctypes.cast(f, ctypes.c_void_p).value
                                           for f in _DENSE_KERNELS[0]], numpy.int64))
    return _DENSE_KERNELS[1]
