"""The one Numba decorator every CPU kernel uses, and whether Numba could be imported at all."""
from __future__ import annotations

import numpy

FLOAT_DTYPES = (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64))
"""The dtypes the kernels are compiled for (others take the plain-xp references)."""

try:
    import numba
    IMPORT_ERROR = None
except Exception as e:  # noqa: BLE001 - ImportError, or a broken install (llvmlite mismatch)
    numba = None
    IMPORT_ERROR = e


def jit(fn):
    """Compile ``fn`` with Numba (one thread, cached on disk), or return it unchanged without
    Numba.

    A kernel compiled here runs on the thread that calls it. Parallelism is a level up: the
    :func:`parallel_jit` drivers (convolutions, pooling, the LSTM/GRU time loops, ReLU and
    activation gradients) call such kernels once per batch part inside one Numba parallel
    region, and batch norm's passes run as row slices on Python threads (see
    :mod:`fundl.kernels._parallel`). A kernel that was itself ``parallel=True`` would nest
    one region inside another and fight BLAS's threads (measured slower on 2 cores).
    ``error_model="numpy"`` drops the division-by-zero branch that blocks vectorisation;
    ``nogil`` lets other Python threads run while a kernel works.
    """
    if numba is None:
        return fn
    return numba.njit(cache=True, error_model="numpy", nogil=True)(fn)


def parallel_jit(fn):
    """Compile ``fn``, a loop over a batch's parts with :data:`prange`, as one Numba parallel
    region (cached, no GIL); ``fn`` unchanged without Numba.

    Only for drivers that call serial kernels (and single-threaded BLAS) once per part, run
    through :func:`fundl.kernels._parallel.map_compiled`, which also runs their Python source
    where a region cannot be used.
    """
    if numba is None:
        return fn
    return numba.njit(cache=True, nogil=True, parallel=True)(fn)


prange = numba.prange if numba is not None else range
"""The parallel loop of :func:`parallel_jit` drivers (``range`` when run as Python)."""


def cached_kernel_modules() -> set:
    """The kernel modules (``"conv"``, ``"pool"``, ...) with compiled kernels in Numba's disk cache.

    Compiling every kernel a network needs takes ~20 s the first time; the command line uses
    this to say so instead of showing a silent first step. Looks in the package's
    ``__pycache__`` and in ``NUMBA_CACHE_DIR`` when set.

    Example:
        >>> "conv" in cached_kernel_modules()   # doctest: +SKIP
        True
    """
    import pathlib

    roots = [pathlib.Path(__file__).resolve().parent / "__pycache__"]
    if numba is not None and getattr(numba.config, "CACHE_DIR", ""):
        roots.append(pathlib.Path(numba.config.CACHE_DIR))
    found = set()
    for root in roots:
        if root.is_dir():
            found.update(p.name.split(".", 1)[0] for p in root.rglob("*.nbi"))
    return found
