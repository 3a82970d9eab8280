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

With the optional ``mkl`` package installed (``pip install 'fundl[mkl]'``) on an Intel CPU,
Intel MKL's sequential GEMM is used instead: on the small products of a recurrent step it was
measured ~25 % faster than OpenBLAS on one core of an Intel machine (28 steps of 32 x 128 ->
512: 32 us a product against 40-43), and an LSTM training step went from 5.1-5.7 to 4.0-4.3
ms. On an AMD EPYC the same package made the LSTM step slower (1.02 of PyTorch's time against
0.88 with OpenBLAS): there "auto" keeps NumPy's BLAS (:func:`cpu_vendor`). The compiled
LSTM/GRU loops no longer call either library for their per-step products by default
(:func:`recurrent_products`), only for their larger GEMMs. MKL is loaded privately
(not NumPy's BLAS, which stays OpenBLAS), set to its LP64 interface and its sequential
layer: its GEMMs run on the threads that call them, the parts of a batch, and load no
OpenMP runtime of their own. Where this process has that library loaded already (a NumPy
built on MKL) it is left alone. ``FUNDL_BLAS=numpy`` keeps NumPy's BLAS even with MKL
installed, ``FUNDL_BLAS=mkl`` makes a missing MKL an error.

The function pointer is passed to kernels as an argument (Numba types it as an external
function pointer), not read from a global, so the kernels stay cacheable on disk.

Example:
    >>> sgemm = gemm_function(numpy.float32)        # None when unavailable
    >>> # inside a Numba kernel: gemm(sgemm, False, a, lda, b, ldb, c, ldc, m, n, k, beta)
"""
from __future__ import annotations

import ctypes
import functools
import os

import numpy

from .. import runtime
from ._jit import jit

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
# (prefix, suffix, 64-bit integers): the spellings of NumPy's wheels (scipy-openblas64),
# other ILP64 OpenBLAS builds, scipy-openblas32, and plain CBLAS (OpenBLAS, MKL's LP64, ...)
_NAMES = (("scipy_cblas_", "64_", True), ("cblas_", "64_", True), ("scipy_cblas_", "", False),
          ("cblas_", "", False))


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


MKL_LP64, MKL_SEQUENTIAL = 0, 1  # MKL_Set_Interface_Layer / MKL_Set_Threading_Layer values


def _mkl_path():
    """The path of the ``mkl`` package's ``libmkl_rt``, or None when it is not installed."""
    from importlib import metadata

    try:
        files = metadata.files("mkl") or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name.startswith("libmkl_rt.so") or f.name == "mkl_rt.2.dll":
            return str(f.locate())
    return None


@functools.lru_cache(maxsize=None)
def _mkl():
    """MKL's runtime library, loaded privately with the LP64 interface and the sequential
    threading layer; None when the ``mkl`` package is absent, this process has the library
    loaded already (someone else's, whose settings are not ours to change) or the layers
    cannot be set."""
    path = _mkl_path()
    if path is None:
        return None
    try:
        ctypes.CDLL(path, mode=os.RTLD_NOLOAD)  # succeeds only if it is loaded already
        return None
    except (OSError, AttributeError):  # not loaded (or no RTLD_NOLOAD on this system)
        pass
    lib = ctypes.CDLL(path)
    if lib.MKL_Set_Interface_Layer(MKL_LP64) != MKL_LP64 or \
            lib.MKL_Set_Threading_Layer(MKL_SEQUENTIAL) != MKL_SEQUENTIAL:
        return None
    return lib


def _choice():
    """``FUNDL_BLAS``: "auto" (MKL if installed and the CPU is Intel's, else NumPy's), "mkl"
    or "numpy"."""
    choice = os.environ.get("FUNDL_BLAS", "").strip().lower() or "auto"
    if choice not in ("auto", "mkl", "numpy"):
        raise ValueError(f"fundl: FUNDL_BLAS must be 'auto', 'mkl' or 'numpy', got "
                         f"{os.environ['FUNDL_BLAS']!r}.")
    return choice


@functools.lru_cache(maxsize=None)
def cpu_info(field: str) -> str:
    """The value of ``field`` ("vendor_id", "model name", "flags", ...) for the first CPU in
    ``/proc/cpuinfo``, or "" where there is no such file or field (not Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":", 1)[0].strip() == field:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_flags() -> frozenset:
    """The CPU's feature flags ("avx2", "avx512f", ...); empty where they cannot be read."""
    return frozenset(cpu_info("flags").split())


@functools.lru_cache(maxsize=None)
def cpu_vendor():
    """The CPU's vendor string ("GenuineIntel", "AuthenticAMD", ...), or "" when unknown.

    From ``/proc/cpuinfo`` on Linux, else ``platform.processor()`` (which names the vendor
    on Windows and macOS on Intel)."""
    vendor = cpu_info("vendor_id")
    if vendor:
        return vendor
    import platform

    name = platform.processor()
    return "GenuineIntel" if "Intel" in name else "AuthenticAMD" if "AMD" in name else ""


def recurrent_products():
    """Where the compiled LSTM/GRU loops take each step's recurrent product from: "fundl"
    (:func:`fundl.kernels.recurrent.matmul_nt`, the default) or, when ``FUNDL_BLAS`` names a
    library ("numpy" or "mkl"), that library.

    Why: those products are small (32 x 128 @ 128 x 512 per part of a batch of 64), and a
    library call packs both operands, the 256 KB recurrent kernel included, every step.
    Measured on the 2-core AMD EPYC (Zen 5) development machine, one core: 32 x 128 @
    128 x 512 in 29-31 us against 43 us for NumPy's OpenBLAS, 32 x 512 @ 512 x 128 in 22-25
    against 42 us (the figures of whole steps are in benchmarks/bench_rnn.py's notes).
    """
    choice = _choice()
    return "fundl" if choice == "auto" else choice


def _checked(load, dtype):
    """The GEMM of the library ``load()`` returns, if found and agreeing with matmul."""
    try:
        lib = load()
        fn = None if lib is None else _lookup(lib, "s" if dtype == numpy.float32 else "d")
        return fn if fn is not None and _agrees(fn, dtype) else None
    except Exception:  # noqa: BLE001 - no library, no symbol, a failed call: fall back
        return None


def gemm_function(dtype):
    """The ctypes pointer of ``cblas_sgemm`` (float32) or ``cblas_dgemm`` (float64), checked
    against ``numpy.matmul``: MKL's (sequential) when the ``mkl`` package is installed and the
    CPU is Intel's (or ``FUNDL_BLAS=mkl``), else NumPy's own BLAS's; None when neither can be
    found or agrees (see ``FUNDL_BLAS`` above)."""
    return _pick(numpy.dtype(dtype))[0]


def library(dtype=numpy.float32):
    """Which library :func:`gemm_function` takes its GEMM from: "mkl", "numpy" or None."""
    return _pick(numpy.dtype(dtype))[1]


def _pick(dtype):
    cache = runtime.state().gemm  # dtype -> (pointer, library): looked up once per dtype
    if dtype not in cache:
        found = (None, None)
        if dtype in (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64)):
            choice = _choice()
            # MKL only where it was measured to win: on an AMD EPYC its GEMMs (AVX2 code
            # paths there) made the LSTM step slower than OpenBLAS's (1.02 vs 0.88 of PyTorch)
            if choice == "mkl" or choice == "auto" and cpu_vendor() == "GenuineIntel":
                found = (_checked(_mkl, dtype), "mkl")
                if found[0] is None and choice == "mkl":
                    raise RuntimeError("fundl: FUNDL_BLAS=mkl, but MKL could not be used: "
                                       "install it with `pip install 'fundl[mkl]'` (and do "
                                       "not load another MKL first), or unset FUNDL_BLAS.")
            if found[0] is None:
                found = (_checked(_library, dtype), "numpy")
            if found[0] is None:
                found = (None, None)
        cache[dtype] = found
    return cache[dtype]


@jit
def gemm(fn, trans_a, a, lda, b, ldb, c, ldc, m, n, k, beta):
    """``c[:m, :n] = op(a) @ b[:k, :n] + beta * c`` through ``fn`` (from :func:`gemm_function`).

    Row-major, as NumPy: ``op(a)`` is ``a[:m, :k]`` or, with ``trans_a``, ``a[:k, :m].T``;
    ``lda``, ``ldb``, ``ldc`` are the row lengths (in elements) of the arrays the three
    matrices start in (the first element of ``a``, ``b`` and ``c``). For use inside kernels.
    """
    fn(ROW_MAJOR, TRANS if trans_a else NO_TRANS, NO_TRANS, m, n, k, 1.0, a.ctypes.data, lda,
       b.ctypes.data, ldb, beta, c.ctypes.data, ldc)


def _operand(m):
    """(transposed, leading dimension) of a 2-D block that BLAS reads in place, or None."""
    item = m.itemsize
    if m.shape[0] < 2 or m.shape[1] < 2:
        return None  # degenerate strides: let NumPy handle it
    if m.strides[1] == item and m.strides[0] % item == 0 and m.strides[0] >= m.shape[1] * item:
        return False, m.strides[0] // item
    if m.strides[0] == item and m.strides[1] % item == 0 and m.strides[1] >= m.shape[0] * item:
        return True, m.strides[1] // item
    return None


def matmul(a, b, out=None):
    """``a @ b`` (2-D, or 3-D stacks of the same length) through :func:`gemm_function`'s
    library, written into ``out`` if given (C-contiguous rows) or a new array.

    For the GEMMs of batch chunks that run on parallel threads (one core each), where MKL's
    sequential GEMM beats OpenBLAS's (measured here on ResNet-20's convolutions: 80-146
    GFLOP/s against 62-121). Operands may be transposed or sliced views; anything BLAS
    cannot read in place, another dtype, or no library: ``numpy.matmul``.
    """
    fn = gemm_function(a.dtype) if a.dtype == b.dtype else None
    if fn is None or a.ndim != b.ndim or a.ndim not in (2, 3):
        return numpy.matmul(a, b, out=out)
    stack = a.ndim == 3
    a3, b3 = (a, b) if stack else (a[None], b[None])
    g, m, k = a3.shape
    n = b3.shape[2]
    shape = (g, m, n) if stack else (m, n)
    # NumPy's rules (broadcast stacks, shape errors) and its care for an out that overlaps an
    # operand (BLAS would read what it has already overwritten) stay NumPy's
    if b3.shape[:2] != (g, k) or out is not None and (
            out.shape != shape or out.dtype != a.dtype or numpy.may_share_memory(out, a)
            or numpy.may_share_memory(out, b)):
        return numpy.matmul(a, b, out=out)
    if out is None:
        out = numpy.empty(shape, a.dtype)
    o3 = out if stack else out[None]
    ops = [(_operand(a3[i]), _operand(b3[i]), _operand(o3[i])) for i in range(g)]
    if any(x is None or y is None or z is None or z[0] for x, y, z in ops) or \
            max(m, n, k, *(d[1] for d in sum(ops, ()))) >= 2 ** 31:  # 32-bit BLAS integers
        return numpy.matmul(a, b, out=out)
    p = ctypes.c_void_p
    for i, ((ta, lda), (tb, ldb), (_, ldc)) in enumerate(ops):
        fn(ROW_MAJOR, TRANS if ta else NO_TRANS, TRANS if tb else NO_TRANS, m, n, k, 1.0,
           p(a3[i].ctypes.data), lda, p(b3[i].ctypes.data), ldb, 0.0, p(o3[i].ctypes.data), ldc)
    return out
