"""Batch-parallel work: large ops split into chunks that run on all cores, BLAS one thread each.

A convolution on a ResNet-sized batch runs as a loop over batch chunks (im2col, then a GEMM,
per chunk). Left alone, only the GEMMs use both cores (OpenBLAS threads them) while im2col and
col2im, half of the work, run on one; and OpenBLAS's threads keep spinning after each GEMM,
so other threads cannot use the second core either (measured: splitting only the compiled
kernels over threads made whole training steps slower). Running whole chunks on parallel
threads instead, with OpenBLAS set to one thread meanwhile, keeps every core on useful work:
a 32x32x16 ResNet-20 convolution forward went from 6.85 to 5.30 ms on 2 cores.

The number of threads is ``FUNDL_NUM_THREADS``, else the BLAS library's own thread count
(``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS`` set it), else 1. The BLAS thread count is read
and set through ``threadpoolctl``; without it, or without a BLAS library it knows, every map
runs serially, as it does for a single chunk.

Example:
    >>> results = map_chunks(lambda part: work(part), chunks)   # in chunks' order
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

_lock = threading.Lock()
_state = None  # (number of threads, BLAS controllers, thread pool), set up on first use


def _threads_from(environ, blas_threads) -> int:
    value = environ.get("FUNDL_NUM_THREADS", "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            raise ValueError(f"fundl: FUNDL_NUM_THREADS must be a positive integer, got "
                             f"{value!r}.") from None
    return max([1] + list(blas_threads))


def _setup():
    global _state
    with _lock:
        if _state is None:
            try:
                from threadpoolctl import ThreadpoolController
                blas = [c for c in ThreadpoolController().lib_controllers
                        if c.user_api == "blas"]
            except Exception:  # noqa: BLE001 - not installed, or cannot inspect the libraries
                blas = []
            threads = _threads_from(os.environ, [c.num_threads for c in blas])
            pool = (ThreadPoolExecutor(threads - 1, thread_name_prefix="fundl")
                    if threads > 1 and blas else None)
            _state = (threads if pool else 1, blas, pool)
    return _state


MIN_SPLIT_BYTES = 8 << 20
"""Memory-bound kernels split over threads only when they move at least this much: a thread
hand-off costs ~0.1 ms here, and batch norm's passes over ResNet-20's 8 MB activations gained
(57 -> 44 ms per step) while those over 2 MB ones lost."""


def slices(n: int, nbytes: int) -> list:
    """``n`` rows (``nbytes`` moved in all) as one slice per thread, or one slice if small."""
    parts = threads() if nbytes >= MIN_SPLIT_BYTES else 1
    parts = max(1, min(parts, n))
    bounds = [n * i // parts for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def threads() -> int:
    """How many threads :func:`map_chunks` uses (1: everything runs serially)."""
    return _setup()[0]


def map_chunks(fn, items) -> list:
    """``[fn(item) for item in items]``, computed on :func:`threads` threads at once.

    Thread k takes items k, k + threads, ...; the results come back in ``items``' order.
    Meanwhile the BLAS library runs single-threaded (restored afterwards, also on an error),
    so each thread's GEMMs use one core. ``fn`` must only write to memory no other item
    writes (its own outputs, or disjoint slices of a shared one).
    """
    n_threads, blas, pool = _setup()
    if n_threads == 1 or len(items) < 2:
        return [fn(item) for item in items]
    n_threads = min(n_threads, len(items))
    out = [None] * len(items)

    def share(k):
        for i in range(k, len(items), n_threads):
            out[i] = fn(items[i])

    saved = [c.num_threads for c in blas]
    for c in blas:
        c.set_num_threads(1)
    try:
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
        for c, n in zip(blas, saved):
            c.set_num_threads(n)
    return out


def _forget():
    global _state
    _state = None  # a forked child has the pool object but none of its threads


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget)
