"""NumPy's own BLAS GEMM as a function pointer that Numba kernels call without the GIL.

Why: a recurrent layer's time loop is a GEMM and a gate kernel per step, 28 of each for one
LSTM on row-by-row MNIST. Driven from Python, every step pays for the interpreter between the
two calls, and the loop cannot run on two threads at once without the threads taking turns
with the GIL. With the GEMM called from inside a Numba kernel, the whole loop is one call that
holds no lock, and two halves of a batch run their loops on two cores at the same time
(measured on 2 cores, 28 steps of 64 x 128 -> 512: 2.08 ms from Python, 1.45-1.58 ms as two
compiled 32-row loops side by side).

NumPy does not export its BLAS, but it links one (OpenBLAS in the wheels, sometimes with
renamed symbols, e.g. ``scipy_cblas_sgemm64_``): the symbols are looked up through NumPy's own
extension module, so this is the very library ``numpy.matmul`` uses, no second copy. Numba's
own ``np.dot`` would need SciPy, whose bundled OpenBLAS was measured here to run concurrent
small GEMMs one after the other. Before first use, the pointer's results are compared with
``numpy.matmul`` on small products (both transposes, padded leading dimensions); if the
library, a symbol or a result is not as expected, :func:`gemm_function` returns None and the
callers keep their Python loops.

The function pointer is passed to kernels as an argument (Numba types it as an external
function pointer), not read from a global, so the kernels stay cacheable on disk.

Example:
    >>> sgemm = gemm_function(numpy.float32)        # None when unavailable
    >>> # inside a Numba kernel: gemm(sgemm, False, a, lda, b, ldb, c, ldc, m, n, k, beta)
"""
from __future__ import annotations

import ctypes

import numpy

from ._jit import jit

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
# (prefix, suffix, 64-bit integers): the spellings of NumPy's wheels (scipy-openblas64),
# other ILP64 OpenBLAS builds, scipy-openblas32, and plain CBLAS (OpenBLAS, MKL's LP64, ...)
_NAMES = (("scipy_cblas_", "64_", True), ("cblas_", "64_", True), ("scipy_cblas_", "", False),
          ("cblas_", "", False))
_cache = {}


def _library():
    """A handle on NumPy's core extension module: symbol lookups through it reach the BLAS
    library it was linked with."""
    try:
        from numpy._core import _multiarray_umath as core
    except ImportError:  # NumPy 1.x
        from numpy.core import _multiarray_umath as core
    return ctypes.CDLL(core.__file__)


def _lookup(lib, letter):
    for prefix, suffix, wide in _NAMES:
        try:
            fn = getattr(lib, f"{prefix}{letter}gemm{suffix}")
        except AttributeError:
            continue
        i, n = ctypes.c_int, (ctypes.c_int64 if wide else ctypes.c_int)
        scalar = ctypes.c_float if letter == "s" else ctypes.c_double
        p = ctypes.c_void_p
        fn.argtypes = [i, i, i, n, n, n, scalar, p, n, p, n, scalar, p, n]
        fn.restype = None
        return fn
    return None


def _agrees(fn, dtype):
    """Whether ``fn`` computes what numpy.matmul does on a few small products."""
    rng = numpy.random.default_rng(0)
    for trans_a in (False, True):
        for m, n, k in ((3, 5, 4), (7, 2, 9)):
            a = rng.standard_normal((k, m + 2) if trans_a else (m, k + 3)).astype(dtype)
            b = rng.standard_normal((k, n + 1)).astype(dtype)
            c = numpy.full((m, n + 2), 7.0, dtype)
            av = a[:, :m] if trans_a else a[:, :k]
            want = (av.T if trans_a else av) @ b[:, :n] + 0.5 * c[:, :n]
            fn(ROW_MAJOR, TRANS if trans_a else NO_TRANS, NO_TRANS, m, n, k, 1.0,
               a.ctypes.data, a.shape[1], b.ctypes.data, b.shape[1], 0.5, c.ctypes.data,
               c.shape[1])
            tol = 1e-4 if dtype == numpy.float32 else 1e-10
            if not numpy.allclose(c[:, :n], want, rtol=tol, atol=tol) or \
                    not (c[:, n:] == 7.0).all():
                return False
    return True


def gemm_function(dtype):
    """The ctypes pointer of NumPy's BLAS ``cblas_sgemm`` (float32) or ``cblas_dgemm``
    (float64), checked against ``numpy.matmul``; None when it cannot be found or disagrees."""
    dtype = numpy.dtype(dtype)
    if dtype not in _cache:
        fn = None
        if dtype in (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64)):
            try:
                fn = _lookup(_library(), "s" if dtype == numpy.float32 else "d")
                if fn is not None and not _agrees(fn, dtype):
                    fn = None
            except Exception:  # noqa: BLE001 - no library, no symbol, a failed call: fall back
                fn = None
        _cache[dtype] = fn
    return _cache[dtype]


@jit
def gemm(fn, trans_a, a, lda, b, ldb, c, ldc, m, n, k, beta):
    """``c[:m, :n] = op(a) @ b[:k, :n] + beta * c`` through ``fn`` (from :func:`gemm_function`).

    Row-major, as NumPy: ``op(a)`` is ``a[:m, :k]`` or, with ``trans_a``, ``a[:k, :m].T``;
    ``lda``, ``ldb``, ``ldc`` are the row lengths (in elements) of the arrays the three
    matrices start in (the first element of ``a``, ``b`` and ``c``). For use inside kernels.
    """
    fn(ROW_MAJOR, TRANS if trans_a else NO_TRANS, NO_TRANS, m, n, k, 1.0, a.ctypes.data, lda,
       b.ctypes.data, ldb, beta, c.ctypes.data, ldc)
