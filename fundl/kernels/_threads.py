"""Running a compiled kernel on slices of the batch, one slice per core.

NumPy runs its element-wise work on one core and the Numba kernels here are serial, so on a
2-core machine everything but the matrix products (which OpenBLAS threads itself) used half of
the CPU. The kernels are compiled with ``nogil=True``; a large call is split into one batch
slice per thread, and the slices run at the same time in a small thread pool. Small calls
stay on the calling thread: handing work to a thread costs tens of microseconds.

The thread count is ``FUNDL_NUM_THREADS``, else ``OMP_NUM_THREADS`` (the variable that sizes
the other thread pools of a process), else the number of cores this process may use.

Example:
    >>> parts = batch_slices(128, nbytes=8 << 20)   # [slice(0, 64), slice(64, 128)] on 2 cores
    >>> run(kernel, [(x[s], y[s]) for s in parts])
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

MIN_BYTES_PER_THREAD = 1 << 19  # below ~0.5 MB of data a slice is not worth a hand-off

_pool = None
_pool_lock = threading.Lock()


def _count_from_environment() -> int:
    for name in ("FUNDL_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value:
            try:
                return max(1, int(value))
            except ValueError:
                raise ValueError(f"fundl: {name} must be a positive integer, got {value!r}.") \
                    from None
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


THREADS = _count_from_environment()


def batch_slices(n: int, nbytes: int, threads: int | None = None) -> list:
    """Split a batch of ``n`` items (``nbytes`` of data in all) into per-thread slices.

    At most ``threads`` (default :data:`THREADS`) slices of near-equal size, fewer when the
    data is small (each slice gets at least :data:`MIN_BYTES_PER_THREAD`); one slice
    covering everything means "run it on this thread".
    """
    threads = THREADS if threads is None else threads
    parts = max(1, min(threads, n, nbytes // MIN_BYTES_PER_THREAD))
    bounds = [n * i // parts for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def run(fn, calls) -> None:
    """``fn(*args)`` for every tuple of ``calls``, in parallel threads; returns when all are done.

    The calling thread runs the first call itself. An exception in any call is re-raised here
    (after every call has finished, so no thread still writes into the caller's arrays).
    """
    if len(calls) == 1:
        fn(*calls[0])
        return
    futures = [_executor().submit(fn, *args) for args in calls[1:]]
    error = None
    try:
        fn(*calls[0])
    except BaseException as e:  # noqa: BLE001 - wait for the other threads first
        error = e
    for f in futures:
        try:
            f.result()
        except BaseException as e:  # noqa: BLE001
            error = error or e
    if error is not None:
        raise error


def _forget_pool():
    global _pool
    _pool = None  # a forked child inherits the pool object but none of its threads


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _executor():
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=max(1, THREADS - 1),
                                           thread_name_prefix="fundl-kernel")
    return _pool
