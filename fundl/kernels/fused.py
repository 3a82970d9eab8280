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

Two more serve the dense layer (:class:`fundl.ops.linalg.Linear` with a fused ReLU):
:func:`bias_relu_numba` (bias and ReLU in place, one pass) and :func:`relu_grad_numba`. A
last one serves the loss of a classifier, :func:`softmax_xent_numba`: the softmax
cross-entropy of each row of logits and its gradient in one pass over the row (NumPy takes
a dozen calls over the whole batch; :class:`fundl.ops.nn.SoftmaxCrossEntropy` keeps them as
the reference). Its sums run in another order than the reference's, so the two agree to
float rounding, not bit for bit.
"""
from __future__ import annotations

import numpy

from ._jit import FLOAT_DTYPES, jit, ready
from ._jit import numba as _numba


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


@jit
def bias_relu_numba(y, b, has_bias):
    """``y = max(y + b, 0)`` in place over a (n, c) array (``b`` (c,) ignored without
    ``has_bias``), as ``y += b; numpy.maximum(y, 0, out=y)`` computes it (NaN stays NaN, -0.0
    becomes 0.0) in one pass: NumPy's maximum alone takes ~20 us on 128 x 256 float32 here,
    this loop ~1-2 us (it vectorises)."""
    n, c = y.shape
    zero = y.dtype.type(0)
    for i in range(n):
        for j in range(c):
            v = y[i, j] + b[j] if has_bias else y[i, j]
            y[i, j] = v if v > zero or v != v else zero


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
        top = z[r, 0]
        for j in range(1, c):
            if z[r, j] > top or z[r, j] != z[r, j]:
                top = z[r, j]
        total = z.dtype.type(0.0)
        for j in range(c):
            e = numpy.exp(z[r, j] - top)
            gz[r, j] = e
            total += e
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
    C-contiguous float32 NumPy matrices, else None (see :func:`_load_dense_kernels`)."""
    if not DENSE_SMALL_GEMMS or type(a) is not numpy.ndarray or type(b) is not numpy.ndarray \
            or a.dtype != numpy.float32 or b.dtype != numpy.float32 or a.ndim != 2 or \
            b.ndim != 2 or not a.flags.c_contiguous or not b.flags.c_contiguous or \
            a.size == 0 or b.size == 0:
        return None
    return _load_dense_kernels()


_DENSE_KERNELS = []  # [] until looked up, then [None] or [(nn, nt, tn)]


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


def dense_forward(x, w):
    """``x @ w`` (m, k) @ (k, n) through OpenBLAS's AVX-512 small-matrix kernel (large products
    as two halves on two threads), or None where it does not apply (then the caller uses ``fundl.kernels.matmul``).

    Why: this machine's NumPy OpenBLAS runs its AVX2 kernels (``OPENBLAS_CORETYPE=Haswell``
    in the environment) on an AVX-512 CPU; the same library's AVX-512 kernel, called
    directly, did an MLP's 128 x 784 @ 784 x 256 in 1.2 ms against NumPy's 1.6 ms on one
    core (loaded machine). The sums run in another order than NumPy's: results agree to
    float rounding.
    """
    kernels = _dense_kernels(x, w)
    m, k = x.shape
    n = w.shape[1]
    if kernels is None or k != w.shape[0] or m * k * n > _DENSE_MAX_MACS:
        return None
    y = numpy.empty((m, n), numpy.float32)
    nn, xp, wp, yp = kernels[0], x.ctypes.data, w.ctypes.data, y.ctypes.data

    def rows(r0, r1):  # y[r0:r1] = x[r0:r1] @ w
        def run():
            # column-major kernels: the row-major y = x @ w is y^T = w^T @ x^T (w first)
            nn(n, r1 - r0, k, wp, n, 1.0, xp + 4 * r0 * k, k, yp + 4 * r0 * n, n)
        return run

    _run_halves(m * k * n, m, rows)
    return y


def dense_weight_grad(x, g):
    """``x.T @ g`` for x (m, k), g (m, n) (the kernel's gradient) through OpenBLAS's AVX-512
    small-matrix kernel, or None where it does not apply (see :func:`dense_forward`;
    measured 0.74 ms against NumPy's 1.8 ms for 784 x 128 @ 128 x 256 on one core)."""
    kernels = _dense_kernels(x, g)
    m, k = x.shape
    n = g.shape[1]
    if kernels is None or g.shape[0] != m or m * k * n > _DENSE_MAX_MACS:
        return None
    gw = numpy.empty((k, n), numpy.float32)
    nt, xp, gp, wp = kernels[1], x.ctypes.data, g.ctypes.data, gw.ctypes.data

    def cols(c0, c1):  # gw[:, c0:c1] = x.T @ g[:, c0:c1]
        def run():
            nt(c1 - c0, k, m, gp + 4 * c0, n, 1.0, xp, k, wp + 4 * c0, n)
        return run

    _run_halves(m * k * n, n, cols)
    return gw


def dense_input_grad(g, w):
    """``g @ w.T`` for g (m, n), w (k, n) (the input's gradient) through OpenBLAS's AVX-512
    small-matrix kernel, or None where it does not apply (see :func:`dense_forward`)."""
    kernels = _dense_kernels(g, w)
    m, n = g.shape
    k = w.shape[0]
    if kernels is None or w.shape[1] != n or m * k * n > _DENSE_MAX_MACS:
        return None
    gx = numpy.empty((m, k), numpy.float32)
    tn, gp, wp, xp = kernels[2], g.ctypes.data, w.ctypes.data, gx.ctypes.data

    def rows(r0, r1):  # gx[r0:r1] = g[r0:r1] @ w.T
        def run():
            tn(k, r1 - r0, n, wp, n, 1.0, gp + 4 * r0 * n, n, xp + 4 * r0 * k, k)
        return run

    _run_halves(m * k * n, m, rows)
    return gx


_SPLIT_MACS = 1 << 23
"""Products of this many multiply-adds and more run as two halves on two threads."""


def _run_halves(macs, extent, part):
    """Run ``part(0, extent)``, or ``part(0, h)`` and ``part(h, extent)`` at once on two threads
    (fundl's pool, :mod:`fundl.kernels._parallel`) for products of :data:`_SPLIT_MACS` and
    more when fundl runs more than one thread. The kernels are foreign calls that release the
    GIL; each half writes its own rows or columns of the result."""
    from . import _parallel

    n_threads, _, pool = _parallel._setup()
    if macs < _SPLIT_MACS or n_threads < 2 or extent < 2 or pool is None or \
            getattr(_parallel._RT.local, "inside", False):
        part(0, extent)()
        return
    half = extent // 2
    future = pool.submit(part(half, extent))
    part(0, half)()
    future.result()
