"""The runtime state of fundl's speed machinery, in one documented object.

The compiled kernels, the parallel regions and the GEMM library keep a little state between
calls: how many threads to use, the BLAS thread counts to restore, whether Numba's threading
layer is safe, caches of looked-up GEMM pointers and of constant vectors, the recycled
buffers of the recurrent ops. All of it lives here, in one :class:`Runtime` object
(:func:`state`), instead of module-level globals scattered over ``fundl.kernels``,
``fundl.ops`` and ``fundl.backend``, so that it can be read in one place and reset by tests
(:meth:`Runtime.reset`). Each
field is configuration (read from the environment or set by the user) or a cache whose
contents never change a result, and no choice depends on what ran earlier in the process.

Fields of :class:`Runtime` (process-wide unless said otherwise):

- ``parallel``: ``(threads, BLAS controllers, thread pool)`` or None until the first parallel
  op asks (:mod:`fundl.kernels._parallel` fills it from ``FUNDL_NUM_THREADS`` or the BLAS
  thread count, through threadpoolctl);
- ``blas_single_depth``, ``blas_saved``: how many maps/regions run with BLAS set to one
  thread right now, and the thread counts to restore when the last one ends (BLAS's thread
  count is the process's, so this count is too);
- ``lock``: guards the two fields above and the lazy set-ups;
- ``regions_ok``: whether Numba's threading layer can run parallel regions from several
  threads (None: not asked yet); False in a forked child of a process whose OpenMP threads
  were started;
- ``serial_medium_products``: configuration of :func:`fundl.kernels.matmul`: True, dense
  products of 2^18 to 2^23 multiply-adds run on the calling thread (when fundl runs more than
  one thread), so that OpenBLAS's spinning workers never hold the cores a parallel region
  needs; False, they keep BLAS's own threads; None (the default), "auto": decided by the call
  itself, never by what ran before: inside a model's ``fit``/``evaluate``/``predict``/
  ``*_on_batch`` (:func:`model_products`), True when the model has convolution, pooling or
  recurrent layers (whose parallel regions follow the products), else False; outside a
  model, False. Measured here (loaded 2-core machine, one process, min of interleaved runs):
  a LeNet-5 step 33 ms serial vs 108 ms with BLAS's threads; an MLP alone (784-256-128-10)
  8 ms with BLAS's threads vs 25 ms serial, which is why no single fixed rule serves both;
- ``compiled_recurrent``: the recurrent ops use their compiled (Numba/CUDA) kernels (True) or
  the plain-``xp`` references everywhere (:func:`fundl.kernels.recurrent.use_compiled`);
- ``gemm``: dtype -> (GEMM function pointer, library name) found by
  :func:`fundl.kernels.blas.gemm_function` (a lookup cache);
- ``ones``: the read-only vectors of ones of :func:`fundl.backend.ones_vector` (a cache);
- ``workspace``: the pool of big buffers (:class:`Workspace`) of the recurrent ops, the
  convolutions, pooling and batch norm, recycled only when nothing else refers to them;
- ``local`` (thread-local): ``local.inside`` is True while this thread runs a chunk of
  :func:`fundl.kernels.map_chunks` (nested parallel work then runs serially);
  ``local.model_regions`` is the "auto" rule's answer for the model this thread is running
  (None outside a model call, see :func:`model_products`).

What stays outside, on purpose: the user's settings of :mod:`fundl.backend` (default device
and dtype, and the CuPy module once imported: public API, ``fl.set_device``);
``fundl.backend.MALLOC_TUNED`` (what :func:`fundl.config.tune_process` did); pure memos of
functions of their arguments (``fundl.ops.conv``'s and ``fundl.ops.pool``'s plan caches,
``fundl.kernels.blas._mkl``'s loaded library, the compiled CUDA kernels of
``fundl.kernels.conv_cuda`` and ``fundl.kernels.recurrent_cuda``), and constants
(``fundl.kernels._NUMBA``: whether Numba could be imported).

Example:
    >>> import fundl.runtime
    >>> rt = fundl.runtime.state()
    >>> rt.compiled_recurrent
    True
    >>> rt.serial_medium_products = True   # fixed: medium products always on one thread
    >>> rt.reset()      # tests: back to the state of a fresh process
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import threading

import numpy

__all__ = ["Runtime", "Workspace", "aligned_empty", "pooled_empty", "state"]


class Workspace:
    """Big NumPy buffers, recycled from one call to the next.

    Why: under glibc's default settings a freed multi-megabyte array goes back to the OS, and
    a fresh one is mapped again, every one of its pages faulting on first touch. The buffers
    of one LSTM step (gates, projections, their gradients) cost more in page faults than in
    arithmetic (a 28-step forward of 64 x 128 went from 6.1 to 3.1 ms with recycled memory);
    page faults took about 45 % of a LeNet-5 training step before its convolutions and
    pooling took their outputs, cols and gradients from here, and about 40 % of batch norm's
    passes at ResNet-20 sizes. Ops ask for buffers through :func:`pooled_empty`.

    An array is handed out again only when nothing but this pool refers to it (CPython's
    reference count): while a graph keeps it for the backward, or a Tensor, a view or a
    gradient still uses it, it is left alone, so recycling can never change a result. The
    pool is indexed by (shape, dtype), so a request costs one dictionary lookup and a few
    reference counts, however many buffers are kept. At most ``max_bytes`` are kept: when a
    new buffer would pass it, free buffers of the shapes used least recently are dropped to
    make room (a model's shapes come back every step; those of a model no longer trained go
    first), and a buffer that still does not fit is handed out unpooled. A lock makes it
    safe to use from several threads.

    Every buffer starts on a 64-byte boundary (a cache line, one AVX-512 vector), where
    NumPy's allocator gives 16: OpenBLAS's AVX-512 small kernel took 26.8 us for 32 x 160 @
    160 x 512 with aligned operands against 32-33 us at the other offsets (one core, 2-core
    AMD EPYC, Zen 5), and which offset a malloc'd array got changed from one process to the
    next. So a pooled array is a view into a slightly larger block; views a caller makes of it
    refer to that block, which the reference count checks as well.

    Args:
        max_bytes: the most memory the pool keeps (in use or free).

    Example:
        >>> ws = Workspace(1 << 20)
        >>> a = ws.empty(numpy, (4, 4), numpy.float32)
        >>> del a; b = ws.empty(numpy, (4, 4), numpy.float32)   # the same memory again
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        # (shape, dtype) -> the buffers of that kind; the dict's order is the order of last
        # use (least recent first), for _make_room
        self._buckets = {}
        self.nbytes = 0
        self._lock = threading.Lock()
        # a free buffer's references in a loop over its bucket: the bucket's list, the loop
        # variable and getrefcount's own argument (see _free)
        self._free_refs = 3 if sys.implementation.name == "cpython" else None

    @property
    def arrays(self) -> list:
        """Every pooled buffer (in use or free), least recently requested kind first."""
        with self._lock:
            return [a for bucket in self._buckets.values() for a in bucket]

    def empty(self, xp, shape, dtype):
        """An uninitialised array of ``shape``/``dtype`` (recycled when possible, NumPy only).

        Args:
            xp: the array module (CuPy arrays are never pooled: CuPy has its own pool).
            shape: a tuple of ints (or an int).
            dtype: anything ``numpy.dtype`` takes.

        Returns:
            A C-contiguous array; its contents are whatever the buffer held last.
        """
        if xp is not numpy or self._free_refs is None:
            return xp.empty(shape, dtype=dtype)
        key = ((shape,) if isinstance(shape, int) else tuple(shape), numpy.dtype(dtype))
        with self._lock:
            bucket = self._buckets.pop(key, None)
            if bucket is None:
                bucket = []
            self._buckets[key] = bucket  # now the most recently used kind
            for a in bucket:
                if self._free(a):
                    return a
            a = aligned_empty(key[0], key[1])
            if a.nbytes <= self.max_bytes:
                self._make_room(a.nbytes)  # (may drop this kind's entry: set it again)
                if self.nbytes + a.nbytes <= self.max_bytes:
                    bucket.append(a)
                    self.nbytes += a.nbytes
            if bucket:
                self._buckets[key] = bucket
            else:
                self._buckets.pop(key, None)
            return a

    def _free(self, a):
        """Whether nothing refers to pooled array ``a`` but the pool, and to its block nothing
        but ``a`` (a caller's views of ``a`` refer to the block: NumPy's ``.base``). Called
        from a loop over a bucket: the bucket's list, the loop variable, this parameter and
        getrefcount's argument hold ``a``; ``a.base`` and getrefcount's argument the block."""
        return sys.getrefcount(a) == self._free_refs + 1 and sys.getrefcount(a.base) == 2

    def _make_room(self, nbytes):
        """Drop free buffers, least recently used kinds first, until ``nbytes`` more fit."""
        for key in list(self._buckets):
            if self.nbytes + nbytes <= self.max_bytes:
                return
            keep = []
            for a in self._buckets[key]:
                if self.nbytes + nbytes > self.max_bytes and self._free(a):
                    self.nbytes -= a.nbytes
                else:
                    keep.append(a)
            if keep:
                self._buckets[key] = keep
            else:
                del self._buckets[key]

    def clear(self):
        """Forget every pooled buffer (those still in use stay valid: they are not freed)."""
        with self._lock:
            self._buckets, self.nbytes = {}, 0


ALIGNMENT = 64
"""Bytes: where :func:`aligned_empty` (and so every pooled buffer) starts."""


def aligned_empty(shape, dtype):
    """An uninitialised C-contiguous NumPy array starting on an :data:`ALIGNMENT`-byte
    boundary: a view into a block ``ALIGNMENT`` bytes larger (its ``.base``).

    Example:
        >>> aligned_empty((32, 160), numpy.float32).ctypes.data % 64
        0
    """
    dtype = numpy.dtype(dtype)
    nbytes = math.prod((shape,) if isinstance(shape, int) else shape) * dtype.itemsize
    block = numpy.empty(nbytes + ALIGNMENT, numpy.uint8)
    start = -block.ctypes.data % ALIGNMENT
    return block[start:start + nbytes].view(dtype).reshape(shape)


WORKSPACE_BYTES = 384 << 20
"""The workspace holds at most this much. A LeNet-5 step (batch 64) pools about 10 MB (its
convolutions' outputs, cols and gradients, pooling's outputs and gradients); a ResNet-20 step
(batch 128) about 273 MB, most of it the forward's activations, which are all alive at its end
anyway (with a 128 MB cap it still had 12.9k page faults per step, 4 with this one; peak
resident memory 461 MB against PyTorch's 742 MB). Memory kept after training ends is given
back with ``fundl.runtime.state().workspace.clear()``."""


class Runtime:
    """The speed machinery's state (see the module docstring for every field).

    One per process (:func:`state`); ``local`` is per thread.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.local = threading.local()
        self.workspace = Workspace(WORKSPACE_BYTES)
        self._fresh()

    def _fresh(self):
        self.parallel = None
        self.blas_single_depth = 0
        self.blas_saved = None
        self.regions_ok = None
        self.serial_medium_products = None
        self.compiled_recurrent = True
        self.gemm = {}
        self.ones = {}

    def reset(self) -> None:
        """Back to a fresh process's state (for tests): BLAS thread counts restored if a map
        was in progress, the thread pool shut down, caches and settings cleared."""
        with self.lock:
            if self.parallel is not None and self.blas_saved is not None:
                for c, n in zip(self.parallel[1], self.blas_saved):
                    c.set_num_threads(n)
            pool = self.parallel[2] if self.parallel is not None else None
            self._fresh()
            self.workspace.clear()
        self.local.inside = False
        if pool is not None:
            pool.shutdown(wait=False)

    def after_fork_in_child(self) -> None:
        """A forked child has the pool object but none of its threads, and maybe a held lock;
        Numba's OpenMP threads are gone too (a region started in the child would abort it)."""
        self.lock = threading.Lock()
        self.workspace._lock = threading.Lock()
        if self.parallel is not None and self.blas_saved is not None:  # forked mid-map
            for c, n in zip(self.parallel[1], self.blas_saved):
                c.set_num_threads(n)
        self.parallel, self.blas_single_depth, self.blas_saved = None, 0, None
        # Numba's OpenMP threads, if the parent started them (for fundl or for the user's own
        # parallel loops), are gone: a region started here would make Numba terminate the child
        launched = getattr(sys.modules.get("numba.np.ufunc.parallel"), "_is_initialized", True)
        if self.regions_ok or ("numba" in sys.modules and launched):
            self.regions_ok = False


_STATE = Runtime()


@contextlib.contextmanager
def model_products(uses_regions: bool):
    """While a model runs (its ``fit``, ``evaluate``, ``predict``, ``*_on_batch``): the "auto"
    rule of ``serial_medium_products`` for this thread, from the model's own layers.

    Args:
        uses_regions: the model has layers whose compiled parallel regions follow its dense
            products (convolutions, pooling, recurrent layers).

    Example:
        >>> with fundl.runtime.model_products(True):   # what Model.fit does for a CNN
        ...     pass
    """
    local = _STATE.local
    before = getattr(local, "model_regions", None)
    local.model_regions = bool(uses_regions)
    try:
        yield
    finally:
        local.model_regions = before


def pooled_empty(xp, shape, dtype):
    """An uninitialised array from the process's buffer pool (:class:`Workspace`): recycled
    memory, no page faults, for the big outputs and temporaries of fundl's ops (a plain
    ``xp.empty`` for CuPy, which pools on its own).

    Example:
        >>> a = pooled_empty(numpy, (64, 128), numpy.float32)
    """
    return _STATE.workspace.empty(xp, shape, dtype)


def state() -> Runtime:
    """The process's :class:`Runtime` (the same object on every call).

    Example:
        >>> fundl.runtime.state().serial_medium_products = False   # BLAS's threads for all
    """
    return _STATE


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _STATE.after_fork_in_child())
