"""Batch-parallel work: a large op split into chunks that run on all cores at once.

Two ways, measured on 2 cores:

- compiled parallel regions (:func:`run_region`, :func:`map_compiled`): a Numba
  ``parallel=True`` loop over the batch's parts whose body is all compiled (im2col, GEMMs
  called through a function pointer, col2im; an LSTM's whole time loop). GNU OpenMP, the
  threading layer Numba picks on Linux, hands a part to the other core in 2-10 us, where a
  Python thread pool took ~90 us and its chunks took turns with the GIL. Convolutions, the
  LSTM/GRU, pooling, batch norm's passes, activation gradients and ReLU run this way
  (convolutions alone: ResNet-20 step 403-420 -> 390 ms, LeNet-5 4.2-4.4 -> 3.9 ms, its
  single chunk now split in two; LSTM step 0.4 ms faster). They need a thread-safe threading layer
  (:func:`regions`); elsewhere the parts go through :func:`map_chunks` or run serially;
- Python threads (:func:`map_chunks`): work that has Python between its kernels (the
  convolution's chunks without regions, or on CuPy) and, where regions cannot run,
  memory-bound kernels over large arrays (batch norm's passes, activation gradients) split
  into row slices (:func:`slices`), but only above :data:`MIN_SPLIT_BYTES`: a hand-off costs
  ~0.1 ms here.

In both, BLAS runs single-threaded meanwhile (each part's GEMMs on its own core), which
needs a BLAS that runs concurrent single-threaded GEMMs side by side, as NumPy's OpenBLAS
0.3.31 and MKL do (SciPy's bundled OpenBLAS 0.3.30 was measured running them one after the
other). OpenBLAS's own threads are the regions' enemy: after a product it splits over them,
its workers spin on the other cores for up to ~0.1 s, and a region waits for those cores
(a LeNet-5 convolution backward: 0.57 -> 3.8 ms); :func:`fundl.kernels.matmul` keeps the
medium-sized products of dense layers on one thread once regions are in use (or always or
never: ``fundl.runtime.state().serial_medium_products``).

Its state (the thread count and pool, the BLAS thread counts to restore, whether regions are
safe, the per-thread "inside a chunk" flag) lives in :func:`fundl.runtime.state`, which also
resets it in a forked child.

The number of threads is ``FUNDL_NUM_THREADS``, else the BLAS library's own thread count
(``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS`` set it), else 1. The BLAS thread count is read
and set through ``threadpoolctl``; without it, or without a BLAS library it knows, maps run
serially. With more than one thread, results can differ from a serial run by float rounding
(sums over chunks add up in another order).

Example:
    >>> results = map_chunks(lambda part: work(part), chunks)   # in chunks' order
"""
from __future__ import annotations

import contextlib
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy

from .. import runtime

MIN_SPLIT_BYTES = 8 << 20
"""Memory-bound kernels split over Python threads (where parallel regions cannot run) only
when they move at least this much: batch norm's passes over ResNet-20's 8 MB activations
gained (57 -> 44 ms per step), those over 2 MB ones lost (in a region a hand-off costs
microseconds, and batch norm splits from 256 KB there)."""

_RT = runtime.state()  # this module's state: parallel, blas_single_depth, blas_saved,
# regions_ok, lock and local (.inside: this thread runs a chunk; nested maps run serially)


def _threads_from(environ, blas_threads) -> tuple:
    """(threads, whether the user asked for them) from FUNDL_NUM_THREADS or the BLAS count."""
    value = environ.get("FUNDL_NUM_THREADS", "").strip()
    if value:
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"fundl: FUNDL_NUM_THREADS must be a positive integer, got "
                             f"{value!r}.")
        return n, True
    return max([1] + list(blas_threads)), False


def _import_threadpoolctl():
    """threadpoolctl's controller class, imported without the environment variable
    (``KMP_DUPLICATE_LIB_OK``) that threadpoolctl sets at import: fundl leaves the host
    process's environment as it found it."""
    before = os.environ.get("KMP_DUPLICATE_LIB_OK")
    try:
        from threadpoolctl import ThreadpoolController
    finally:
        if before is None:
            os.environ.pop("KMP_DUPLICATE_LIB_OK", None)
        else:
            os.environ["KMP_DUPLICATE_LIB_OK"] = before
    return ThreadpoolController


def _setup():
    state = _RT.parallel
    if state is not None:  # the common case, without the lock
        return state
    with _RT.lock:
        if _RT.parallel is None:
            try:
                ThreadpoolController = _import_threadpoolctl()
                blas = [c for c in ThreadpoolController().lib_controllers
                        if c.user_api == "blas"]
            except Exception:  # noqa: BLE001 - not installed, or cannot inspect the libraries
                blas = []
            threads, asked = _threads_from(os.environ, [c.num_threads for c in blas])
            if threads > 1 and not blas:
                if asked:
                    warnings.warn("fundl: FUNDL_NUM_THREADS is set, but threadpoolctl found no "
                                  "BLAS library to run single-threaded inside parallel chunks "
                                  "(is threadpoolctl installed?); fundl's ops run serially.",
                                  RuntimeWarning, stacklevel=3)
                threads = 1
            pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="fundl") if threads > 1 \
                else None
            _RT.parallel = (threads, blas, pool)
    return _RT.parallel


class Backoff:
    """Backing off from parallel regions while the cores are busy with other work.

    Why: a region waits for all its threads. GNU OpenMP's workers spin between regions, so
    when other processes keep the cores busy the scheduler ranks them last, and each region
    waits a time slice (milliseconds) for its second thread: an MLP epoch took 2.3-21.6 s
    instead of 0.8 s on one thread with two busy-looping processes on the 2-core machine, and
    a ResNet-20 step's 76 batch-norm passes ~0.3 s more. So a region that takes far longer
    than one core would (``stall_seconds`` more than twice ``amount / per_second``) sends the
    next calls to one thread, for twice as many calls each time it happens again (at most
    4096), and regions come back once one runs in time. The caller keeps one per kind of
    work and runs the same parts serially meanwhile, so results do not depend on the load.

    Args:
        per_second: one core's rate for the work, in the unit of ``amount`` (a low estimate:
            too high a rate would count ordinary regions as stalls).
        stall_seconds: the wait beyond that which counts as a stall.

    Example:
        >>> backoff = Backoff(per_second=6e10)   # multiply-adds per second
        >>> if backoff.allowed():
        ...     start = time.perf_counter(); run_the_region()
        ...     backoff.took(time.perf_counter() - start, macs)
    """

    __slots__ = ("per_second", "stall_seconds", "skip", "period", "seen")
    PERIOD = 16
    """Calls on one thread after a first stall (doubled for each stall in a row)."""

    def __init__(self, per_second: float, stall_seconds: float = 1e-3):
        self.per_second = per_second
        self.stall_seconds = stall_seconds
        self.skip = 0
        self.period = self.PERIOD
        self.seen = set()  # the keys of :meth:`took` whose first region has run

    def allowed(self) -> bool:
        """Whether the next call may run a region (False while backing off; counts the call)."""
        if self.skip > 0:
            self.skip -= 1
            return False
        return True

    def took(self, seconds: float, amount: float, key=None) -> None:
        """Record that a region doing ``amount`` of work took ``seconds``. The first region of
        each ``key`` (a driver and dtype) is not counted: it compiled or loaded the driver."""
        if key is not None and key not in self.seen:
            self.seen.add(key)
            return
        if seconds > self.stall_seconds + 2 * amount / self.per_second:
            self.skip = self.period
            self.period = min(2 * self.period, 4096)
        else:
            self.period = self.PERIOD


def run_backing_off(backoff, loop, n_items, amount, key, *args, blas=True):
    """:func:`run_region` of ``loop`` over ``n_items`` items, timed for ``backoff`` (a
    :class:`Backoff`; ``amount``: the region's work in its unit, ``key``: the driver and
    dtype); while ``backoff`` says no (or with one item) the same compiled loop runs on this
    thread alone, the items one after the other: the same results, bit for bit, and no wait
    for the other core. A region that compiled a new specialisation of ``loop`` is not timed.

    Example:
        >>> run_backing_off(_BACKOFF, _relu_parts, 2, x.nbytes, (_relu_parts, x.dtype), x, y,
        ...                 bounds, blas=False)   # doctest: +SKIP
    """
    if n_items < 2 or not backoff.allowed():
        return run_region(loop, n_items, *args, blas=blas, threads=1)
    compiled = len(loop.overloads)  # (not .signatures: a list built per call, ~4 us and up)
    start = time.perf_counter()
    run_region(loop, n_items, *args, blas=blas)
    if len(loop.overloads) == compiled:
        backoff.took(time.perf_counter() - start, amount, key)
    return None


def threads() -> int:
    """How many threads :func:`map_chunks` uses (1: everything runs serially)."""
    return _setup()[0]


def even_slices(n: int, parts: int) -> list:
    """``n`` items as ``parts`` (at most ``n``, at least 1) slices of near-equal size."""
    parts = max(1, min(parts, n))
    bounds = [n * i // parts for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def bounds_of(parts):
    """Contiguous slices ``parts`` as the int64 array of their starts and the last stop, the
    way :func:`run_region` drivers take them (a Numba parallel region refuses tuples of more
    than 100 items)."""
    return numpy.array([p.start for p in parts] + [parts[-1].stop], numpy.int64)


def slices(n: int, nbytes: int) -> list:
    """``n`` rows (``nbytes`` moved in all) as one slice per thread, or one slice if small."""
    return even_slices(n, threads() if nbytes >= MIN_SPLIT_BYTES else 1)


def _blas_single(blas, enter):
    """Enter (set every BLAS library to one thread) or leave a map; counted, so that
    overlapping maps from several caller threads restore the counts only when the last ends."""
    rt = _RT
    with rt.lock:
        if enter:
            rt.blas_single_depth += 1
            if rt.blas_single_depth == 1:
                rt.blas_saved = [c.num_threads for c in blas]
                for c in blas:
                    c.set_num_threads(1)
        else:
            rt.blas_single_depth -= 1
            if rt.blas_single_depth == 0 and rt.blas_saved is not None:
                for c, n in zip(blas, rt.blas_saved):
                    c.set_num_threads(n)
                rt.blas_saved = None


@contextlib.contextmanager
def single_threaded_blas():
    """The BLAS library on one thread inside the ``with`` block (counted like the maps)."""
    blas = _setup()[1]
    _blas_single(blas, True)
    try:
        yield
    finally:
        _blas_single(blas, False)


def map_chunks(fn, items) -> list:
    """``[fn(item) for item in items]``, computed on :func:`threads` threads at once.

    Thread k takes items k, k + threads, ...; the results come back in ``items``' order.
    Meanwhile the BLAS library runs single-threaded (restored afterwards, also on an error),
    so each thread's GEMMs use one core. ``fn`` must only write to memory no other item
    writes (its own outputs, or disjoint slices of a shared one). A map started from inside
    a chunk runs serially.
    """
    n_threads, blas, pool = _setup()
    if n_threads == 1 or len(items) < 2 or getattr(_RT.local, "inside", False):
        return [fn(item) for item in items]
    n_threads = min(n_threads, len(items))
    out = [None] * len(items)

    def share(k):
        local = _RT.local
        local.inside = True
        try:
            for i in range(k, len(items), n_threads):
                out[i] = fn(items[i])
        finally:
            local.inside = False

    try:
        _blas_single(blas, True)
        futures = [pool.submit(share, k) for k in range(1, n_threads)]
        error = None
        try:
            share(0)
        except BaseException as e:  # noqa: BLE001 - let the other threads finish first
            error = e
        for f in futures:
            try:
                f.result()
            except BaseException as e:  # noqa: BLE001
                error = error or e
        if error is not None:
            raise error
    finally:
        _blas_single(blas, False)
    return out


def _numba_regions() -> bool:
    """Whether Numba's parallel regions can be used: its threading layer is thread-safe (GNU
    OpenMP, present on Linux, or TBB), not the ``workqueue`` fallback, which aborts the
    process when two Python threads start regions at once."""
    ok = _RT.regions_ok
    if ok is None:
        try:
            import numba
            from numba.np.ufunc import parallel

            parallel._launch_threads()  # picks the layer, as the first parallel call would
            ok = numba.threading_layer() in ("omp", "tbb")
        except Exception:  # noqa: BLE001 - no Numba, or a layer that failed to load
            ok = False
        _RT.regions_ok = ok
    return ok


def map_compiled(loop, n_items, *args):
    """``loop(*args)``, a Numba ``parallel=True`` loop over ``n_items`` items (a ``prange``),
    with its items on :func:`threads` threads and the BLAS library single-threaded meanwhile.

    Why not :func:`map_chunks`: inside a compiled parallel region, handing an item to another
    core and waiting for it costs ~2-10 us (GNU OpenMP's threads spin a while between regions)
    against ~90 us through Python threads (measured here; see
    :mod:`fundl.kernels.recurrent`). Every argument that is a tuple holds one value per item.
    Where a region is unsafe (a threading layer that is not thread-safe, a process forked from
    one that ran regions) the items run through :func:`map_chunks`, each as the loop's Python
    source over a one-item slice of the tuples; with one item or one thread, or inside a
    chunk, the Python source runs them one after the other on this thread.
    """
    if n_items < 2 or threads() == 1 or getattr(_RT.local, "inside", False):
        return loop.py_func(*args)
    if not regions():
        map_chunks(lambda i: loop.py_func(*[(a[i],) if type(a) is tuple else a for a in args]),
                   list(range(n_items)))
        return None
    return run_region(loop, n_items, *args)


def regions() -> bool:
    """Whether a Numba parallel region may run here and now: more than one thread, a
    thread-safe threading layer, not a forked child of a process that ran regions, not inside
    a chunk of :func:`map_chunks` (which runs nested work serially)."""
    return threads() > 1 and not getattr(_RT.local, "inside", False) and _numba_regions()


def run_region(loop, n_items, *args, blas=True, threads=None):
    """``loop(*args)``, a :func:`~fundl.kernels._jit.parallel_jit` loop over ``n_items`` items,
    on up to :func:`threads` threads (at most ``threads`` if given: 1 runs the compiled loop on
    this thread alone, the items one after the other) with BLAS single-threaded meanwhile
    (``blas=False``: the loop calls no BLAS library through its threaded interface, and its
    thread count is left alone: ~5 us of threadpoolctl calls saved per region), where
    :func:`regions` says so; elsewhere its Python source runs the items one after another
    here."""
    if not regions():  # decided earlier (a convolution's forward), unsafe now (a fork since)
        return loop.py_func(*args)
    import numba

    n_threads, libraries, _ = _setup()
    old = numba.get_num_threads()
    want = max(1, min(n_threads, n_items, numba.config.NUMBA_NUM_THREADS,
                      n_threads if threads is None else threads))
    if want != old:  # (each call costs microseconds: skipped when nothing changes)
        numba.set_num_threads(want)
    try:
        if blas:
            _blas_single(libraries, True)
        return loop(*args)
    finally:
        if blas:
            _blas_single(libraries, False)
        if want != old:
            numba.set_num_threads(old)  # the user's own parallel loops keep theirs
