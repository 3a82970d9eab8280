"""Batch-parallel chunks (fundl.kernels._parallel): same results as serial, BLAS restored."""
import os
import threading

import numpy as np
import pytest

import fundl as fl
from fundl import kernels
from fundl import runtime
from fundl.kernels import _parallel


class _FakeBLAS:
    """Stands in for a threadpoolctl controller: records the thread counts it is set to."""

    def __init__(self, n):
        self.num_threads = n
        self.history = []

    def set_num_threads(self, n):
        self.history.append(n)
        self.num_threads = n


@pytest.fixture
def three_threads(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    blas = _FakeBLAS(2)
    pool = ThreadPoolExecutor(2)
    monkeypatch.setattr(runtime.state(), "parallel", (3, [blas], pool))
    yield blas
    pool.shutdown()


def test_map_chunks_keeps_order_uses_threads_and_restores_blas(three_threads):
    seen = set()

    def fn(i):
        seen.add(threading.get_ident())
        assert three_threads.num_threads == 1  # BLAS single-threaded meanwhile
        return i * i

    assert kernels.map_chunks(fn, range(7), np.zeros(1)) == [i * i for i in range(7)]
    assert len(seen) > 1
    assert three_threads.num_threads == 2 and three_threads.history == [1, 2]


def test_map_chunks_reraises_and_still_restores_blas(three_threads):
    def fn(i):
        if i == 4:
            raise ValueError("chunk 4 failed")
        return i

    with pytest.raises(ValueError, match="chunk 4 failed"):
        kernels.map_chunks(fn, range(6), np.zeros(1))
    assert three_threads.num_threads == 2


def test_map_chunks_serial_for_one_item_and_for_non_numpy(three_threads):
    assert kernels.map_chunks(lambda i: i + 1, [1], np.zeros(1)) == [2]
    assert kernels.map_chunks(lambda i: i + 1, [1, 2], [0.0]) == [2, 3]  # not a NumPy array
    assert three_threads.history == []


def test_threads_from_environment():
    assert _parallel._threads_from({"FUNDL_NUM_THREADS": "3"}, [2]) == (3, True)
    assert _parallel._threads_from({}, [2, 4]) == (4, False)
    assert _parallel._threads_from({}, []) == (1, False)
    for bad in ("many", "0", "-2"):
        with pytest.raises(ValueError, match="FUNDL_NUM_THREADS must be a positive integer"):
            _parallel._threads_from({"FUNDL_NUM_THREADS": bad}, [2])


def test_overlapping_maps_restore_blas_when_the_last_one_ends(three_threads):
    # two caller threads map at once: BLAS stays at 1 until both are done, then goes back to 2
    started, release = threading.Event(), threading.Event()

    def slow(i):
        started.set()
        release.wait(5)
        return i

    other = threading.Thread(target=lambda: kernels.map_chunks(slow, [0, 1], np.zeros(1)))
    other.start()
    started.wait(5)
    assert kernels.map_chunks(lambda i: three_threads.num_threads, [0, 1], np.zeros(1)) == [1, 1]
    assert three_threads.num_threads == 1  # the other map is still running
    release.set()
    other.join(5)
    assert three_threads.num_threads == 2


def test_a_map_inside_a_chunk_runs_serially(three_threads):
    def outer(i):
        return kernels.map_chunks(lambda j: (i, j, threading.get_ident()), [0, 1], np.zeros(1))

    for inner in kernels.map_chunks(outer, range(4), np.zeros(1)):
        assert inner[0][2] == inner[1][2]  # both inner items on the chunk's own thread


def test_parallel_convolution_matches_serial(three_threads, monkeypatch):
    import fundl.kernels.convolution as conv_ops

    _set_size(monkeypatch, conv_ops, "CHUNK_BYTES", 2000)  # several chunks on a small batch
    _set_size(monkeypatch, conv_ops, "CHUNK_BYTES_REGION", 2000)
    rng = np.random.default_rng(0)
    x = fl.tensor(rng.standard_normal((6, 7, 7, 3)), requires_grad=True)
    k = fl.tensor(rng.standard_normal((3, 3, 3, 4)), requires_grad=True)
    b = fl.tensor(rng.standard_normal(4), requires_grad=True)

    def run():
        y = fl.conv2d(x, k, b, padding="same")
        (y * y).sum().backward()
        out = [y.numpy(), x.grad, k.grad, b.grad]
        x.grad = k.grad = b.grad = None
        return out

    parallel = run()
    assert three_threads.history  # it did run in parallel
    monkeypatch.setattr(runtime.state(), "parallel", (1, [], None))
    for got, want in zip(parallel, run()):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_split_batch_norm_and_activation_kernels_match_serial(three_threads, monkeypatch):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((7, 5, 3, 6)) * 3 + 100).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    c = np.ones(6, np.float32)
    mean = x.reshape(-1, 6).mean(axis=0)
    cases = {
        "stats": lambda: np.stack(kernels.batch_norm_stats(x, 3)),
        "affine": lambda: kernels.batch_norm_affine(x, 3, mean, 2 * c, c),
        "grad_sums": lambda: np.stack(kernels.batch_norm_grad_sums(gy, x, 3, mean)),
        "grad_x": lambda: kernels.batch_norm_grad_x(gy, x, 3, mean, c, c, 2 * c),
        "relu_grad": lambda: kernels.activation_grad("relu", gy, np.maximum(x - 100, 0)),
    }
    monkeypatch.setattr(_parallel, "MIN_SPLIT_BYTES", 1)
    split = {name: fn() for name, fn in cases.items()}
    assert three_threads.history  # the kernels did run split
    monkeypatch.setattr(runtime.state(), "parallel", (1, [], None))
    for name, fn in cases.items():
        # per-thread sums merge in another order: equal to rounding
        np.testing.assert_allclose(split[name], fn(), rtol=1e-6, atol=1e-6, err_msg=name)


def test_slices(three_threads):
    assert _parallel.slices(10, 1 << 30) == [slice(0, 3), slice(3, 6), slice(6, 10)]
    assert _parallel.slices(2, 1 << 30) == [slice(0, 1), slice(1, 2)]
    assert _parallel.slices(10, 1) == [slice(0, 10)]  # too little work to split


def test_without_threadpoolctl_everything_runs_serially(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import fails
    monkeypatch.setattr(runtime.state(), "parallel", None)
    monkeypatch.delenv("FUNDL_NUM_THREADS", raising=False)
    assert _parallel.threads() == 1
    assert kernels.map_chunks(lambda i: i, [1, 2, 3], np.zeros(1)) == [1, 2, 3]
    monkeypatch.setattr(runtime.state(), "parallel", None)
    monkeypatch.setenv("FUNDL_NUM_THREADS", "2")
    with pytest.warns(RuntimeWarning, match="threadpoolctl found no BLAS library"):
        assert _parallel.threads() == 1
    monkeypatch.setattr(runtime.state(), "parallel", None)  # the next test sets it up afresh


def _numba_loop():
    numba = pytest.importorskip("numba")

    @numba.njit(parallel=True)
    def loop(outs, los, scale):
        for i in numba.prange(len(los)):
            outs[i][:] = los[i] * scale
    return loop


@pytest.mark.parametrize("runner", ["region", "python threads", "one item"])
def test_map_compiled_runs_every_item_with_blas_single_threaded(three_threads, monkeypatch,
                                                                runner):
    loop = _numba_loop()
    if runner == "region" and not _parallel._numba_regions():
        pytest.skip("Numba has no thread-safe threading layer here")
    if runner == "python threads":
        monkeypatch.setattr(runtime.state(), "regions_ok", False)
    n = 1 if runner == "one item" else 5
    outs = tuple(np.zeros(i + 1) for i in range(n))   # one array per item, of another size
    kernels.map_compiled(loop, n, outs, tuple(range(n)), 2.0)
    for i, out in enumerate(outs):
        np.testing.assert_array_equal(out, np.full(i + 1, 2.0 * i))
    assert three_threads.history == ([] if runner == "one item" else [1, 2])


@pytest.mark.parametrize("blas", [True, False])
def test_run_region_sets_blas_single_threaded_unless_told_the_loop_calls_none(three_threads,
                                                                              blas):
    loop = _numba_loop()
    if not _parallel.regions():
        pytest.skip("no parallel regions here")
    outs = tuple(np.zeros(i + 1) for i in range(3))
    _parallel.run_region(loop, 3, outs, np.arange(3), 2.0, blas=blas)
    for i, out in enumerate(outs):
        np.testing.assert_array_equal(out, np.full(i + 1, 2.0 * i))
    assert three_threads.history == ([1, 2] if blas else [])
    assert three_threads.num_threads == 2


def test_run_backing_off_times_regions_and_runs_the_compiled_loop_alone_while_they_stall(
        three_threads, monkeypatch):
    """Each timed region reports to the Backoff (its driver's first untimed); after a stall the
    next calls run the compiled loop on one thread, with the same results."""
    loop = _numba_loop()
    if not _parallel.regions():
        pytest.skip("no parallel regions here")
    asked = []
    monkeypatch.setattr(_parallel, "run_region", lambda *a, threads=None, real=_parallel.
                        run_region, **kw: asked.append(threads) or real(*a, threads=threads,
                                                                        **kw))
    backoff = _parallel.Backoff(1e9, stall_seconds=-1.0)  # every region counts as stalled
    backoff.period = 1
    outs = tuple(np.zeros(i + 1) for i in range(3))
    for _ in range(4):
        _parallel.run_backing_off(backoff, loop, 3, 1.0, ("loop", "f8"), outs, np.arange(3),
                                  2.0, blas=False)
        for i, out in enumerate(outs):
            np.testing.assert_array_equal(out, np.full(i + 1, 2.0 * i))
    # the region that compiles the loop: untimed; the driver's first timed one: not counted;
    # a stall (the next call on one thread); that call
    assert asked == [None, None, None, 1] and backoff.skip == 0 and backoff.period == 2
    assert ("loop", "f8") in backoff.seen


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_runs_the_compiled_recurrent_loops_without_parallel_regions():
    """GNU OpenMP's threads do not survive a fork: a region started in the child would make
    Numba terminate it. The child runs the LSTM's parts on Python threads instead."""
    if _parallel.threads() < 2 or not _parallel._numba_regions():
        pytest.skip("no parallel regions here")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3, 4)).astype(np.float32)
    w, u = (rng.standard_normal(s).astype(np.float32) for s in ((4, 32), (8, 32)))
    want = fl.lstm(x, w, u)[1].numpy()  # the parent runs its parts in a region first
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 only if it computed the same result
        code = 1
        try:
            code = 0 if np.array_equal(fl.lstm(x, w, u)[1].numpy(), want) else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


def test_medium_products_follow_the_runtimes_setting(three_threads, monkeypatch):
    """kernels.matmul: products of 2^18 to 2^23 multiply-adds run single-threaded (MKL's
    sequential GEMM, or OpenBLAS set to one thread) where fundl.runtime's
    serial_medium_products says so: always (True), never (False), or while a model with
    parallel regions runs ("auto", None); others go to numpy.matmul unchanged."""
    from fundl.kernels import blas

    rt = runtime.state()
    monkeypatch.setattr(blas, "library", lambda dtype=None: "numpy")
    monkeypatch.setattr(_parallel, "regions", lambda: True)
    rng = np.random.default_rng(3)
    cases = (((64, 400, 120), True), ((8, 8, 8), False), ((512, 512, 64), False))
    for mode, ran, serial in ((True, False, True), (True, True, True), (False, True, False),
                              (None, True, True), (None, False, False)):
        monkeypatch.setattr(rt, "serial_medium_products", mode)
        monkeypatch.setattr(rt.local, "model_regions", ran, raising=False)
        for (m, k, n), medium in cases:
            three_threads.history.clear()
            a = rng.standard_normal((k, m)).T          # a transposed view, as the backward's
            b = rng.standard_normal((k, n))
            single = medium and serial
            assert kernels.serial_product(m, k, n) == single, (mode, ran, m, k, n)
            np.testing.assert_allclose(kernels.matmul(a, b), a @ b, rtol=1e-12)
            assert three_threads.history == ([1, 2] if single else []), (mode, ran, m, k, n)


def _in_a_fork(fn):
    """fn() in a forked child; its exit status (0: fn returned True)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if fn() else 3
        finally:
            os._exit(code)
    return os.waitpid(pid, 0)[1]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_fork_between_forward_and_backward_and_after_the_users_own_regions():
    """Regions decided in the parent's forward are not started in the child's backward, and
    a parent's own Numba parallel loop (never fundl's) counts as started OpenMP threads."""
    numba = pytest.importorskip("numba")
    if _parallel.threads() < 2 or not _parallel._numba_regions():
        pytest.skip("no parallel regions here")
    rng = np.random.default_rng(1)
    x = fl.tensor(rng.standard_normal((8, 6, 6, 4)).astype(np.float32), requires_grad=True)
    k = fl.tensor(rng.standard_normal((3, 3, 4, 5)).astype(np.float32), requires_grad=True)
    y = fl.conv2d(x, k, padding="same")
    assert y.creator.plan.path == "region"

    def backward_in_child():
        y.sum().backward()
        return x.grad is not None and np.isfinite(k.grad).all()

    assert _in_a_fork(backward_in_child) == 0

    @numba.njit(parallel=True)
    def users_loop(a):
        for i in numba.prange(a.size):
            a[i] += 1

    users_loop(np.zeros(4))
    rt = runtime.state()
    saved = rt.regions_ok
    try:
        rt.regions_ok = None  # as if fundl had never started one itself
        want = fl.conv2d(x.numpy(), k.numpy(), padding="same").numpy()
        rt.regions_ok = None
        status = _in_a_fork(lambda: np.allclose(
            fl.conv2d(x.numpy(), k.numpy(), padding="same").numpy(), want, atol=1e-5))
    finally:
        rt.regions_ok = saved
    assert status == 0


def test_a_region_leaves_numbas_thread_count_as_it_found_it():
    numba = pytest.importorskip("numba")
    if not _parallel.regions():
        pytest.skip("no parallel regions here")
    before = numba.get_num_threads()
    x = np.ones((1, 5, 5, 2), np.float32)   # one sample: a region of one part
    fl.conv2d(x, np.ones((3, 3, 2, 2), np.float32), padding="same")
    kernels.relu(np.ones(1 << 17, np.float32))
    assert numba.get_num_threads() == before


def _set_size(monkeypatch, module, name, value):
    """Change a size of fundl.kernels.convolution for this test; plans are cached per
    geometry, so meanwhile the ops plan afresh on every call (nothing stale stays cached)."""
    from fundl import kernels

    monkeypatch.setattr(module, name, value)
    monkeypatch.setattr(kernels, "conv_plan", module.conv_plan.__wrapped__)
