"""The row-by-row max-pooling kernel for tiling windows (strides == pool, below 8 channels).

It must pick exactly the tap the window-by-window kernel and the NumPy reference pick, also
when values tie (after a ReLU whole windows are 0), across rows and columns, and with NaNs.
"""
import numpy as np
import pytest

from fundl.kernels import pool as kp

TILED = [
    # x shape (N, D, H, W, C), pool (= strides)
    ((3, 1, 8, 8, 6), (1, 2, 2)),      # LeNet's 2x2 pools, 6 channels
    ((2, 1, 28, 28, 6), (1, 2, 2)),    # LeNet's first map: most windows moved 8 values at once
    ((2, 1, 6, 10, 4), (1, 2, 2)),     # 4 channels: the fewest the 8-value moves take
    ((2, 1, 9, 7, 1), (1, 2, 2)),      # one channel, a remainder row and column left over
    ((2, 1, 9, 9, 3), (1, 3, 3)),      # 3x3 windows: ties across three rows and columns
    ((2, 1, 4, 8, 5), (1, 1, 4)),      # one row per window (1-D pooling of images)
    ((2, 1, 6, 4, 7), (1, 3, 1)),      # one column per window
    ((2, 4, 4, 6, 2), (2, 2, 3)),      # 3-D
]


def _both(x, pool):
    return kp.max_pool_numba(x, pool, pool), kp.max_pool_reference(x, pool, pool)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,pool", TILED, ids=str)
@pytest.mark.parametrize("values", ["normal", "ties", "relu"])
def test_tiled_max_pool_matches_the_reference(dtype, shape, pool, values):
    rng = np.random.default_rng(0)
    if values == "normal":
        x = rng.standard_normal(shape)
    elif values == "ties":  # three values: most windows hold a tie for their maximum
        x = rng.integers(0, 3, shape).astype(float)
    else:  # after a ReLU: many windows all zero
        x = np.maximum(rng.standard_normal(shape) - 0.8, 0)
    (y, arg), (y_ref, arg_ref) = _both(x.astype(dtype), pool)
    assert y.dtype == dtype and arg.dtype == np.int32
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)
    # and the scatter of the gradient from those taps
    gy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_array_equal(kp.max_pool_grad_numba(gy, arg, shape, pool, pool),
                                  kp.max_pool_grad_reference(gy, arg, shape, pool, pool))


@pytest.mark.parametrize("window,tap", [
    ([[0, 2, 1], [2, 0, 0], [0, 0, 0]], 1),   # an earlier row's later column beats row 1 col 0
    ([[0, 0, 1], [1, 0, 0], [0, 0, 0]], 2),
    ([[0, 0, 0], [0, 0, 3], [3, 0, 0]], 5),   # the later row's earlier column loses to row 1
    ([[1, 1, 1], [1, 1, 1], [1, 1, 1]], 0),
])
def test_tiled_max_pool_ties_go_to_the_first_tap_in_row_major_order(window, tap):
    x = np.zeros((1, 1, 3, 6, 2))
    x[0, 0, :, 3:, 0] = window  # the second window of channel 0
    x[0, 0, :, 3:, 1] = np.array(window)[::-1, ::-1]  # mirrored: the last tap order reversed
    y, arg = kp.max_pool_numba(x, (1, 3, 3), (1, 3, 3))
    _, arg_ref = kp.max_pool_reference(x, (1, 3, 3), (1, 3, 3))
    assert arg[0, 0, 0, 1, 0] == tap
    np.testing.assert_array_equal(arg, arg_ref)
    np.testing.assert_array_equal(y[0, 0, 0, 1], [np.max(window)] * 2)


@pytest.mark.parametrize("where", [(0, 0), (1, 1), (0, 1), (1, 0)])
def test_tiled_max_pool_nan_wins_and_takes_the_gradient(where):
    x = np.random.default_rng(1).standard_normal((1, 1, 2, 4, 3)).astype(np.float32)
    x[0, 0, where[0], 2 + where[1], 1] = np.nan  # the second window, channel 1
    y, arg = kp.max_pool_numba(x, (1, 2, 2), (1, 2, 2))
    assert np.isnan(y[0, 0, 0, 1, 1]) and np.isfinite(np.delete(y.ravel(), 4)).all()
    assert arg[0, 0, 0, 1, 1] == 2 * where[0] + where[1]
    gx = kp.max_pool_grad_numba(np.ones_like(y), arg, x.shape, (1, 2, 2), (1, 2, 2))
    assert gx[0, 0, where[0], 2 + where[1], 1] == 1


def test_many_channels_keep_the_window_kernel():
    """From 8 channels max pooling runs window by window (faster there): same results."""
    x = np.random.default_rng(2).integers(0, 3, (2, 1, 6, 6, 9)).astype(np.float32)
    (y, arg), (y_ref, arg_ref) = _both(x, (1, 2, 2))
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)


@pytest.mark.parametrize("channels", [6, 9])  # the row kernel skips tap numbers; the other not
def test_max_pool_without_tap_numbers_gives_the_same_maxima(channels):
    x = np.random.default_rng(3).integers(0, 3, (5, 1, 8, 8, channels)).astype(np.float32)
    y, arg = kp.max_pool_numba(x, (1, 2, 2), (1, 2, 2), with_arg=False)
    assert arg is None
    np.testing.assert_array_equal(y, kp.max_pool_reference(x, (1, 2, 2), (1, 2, 2))[0])


def test_max_pool_op_under_no_grad_matches():
    import fundl as fl

    x = np.random.default_rng(4).standard_normal((3, 8, 8, 6)).astype(np.float32)
    with fl.no_grad():
        y = fl.max_pool2d(fl.Tensor(x, requires_grad=True), 2).numpy()
    np.testing.assert_array_equal(y, fl.max_pool2d(fl.Tensor(x, requires_grad=True), 2).numpy())


def test_a_stalled_pooling_region_sends_the_next_calls_to_one_thread(monkeypatch):
    """A region far slower than one core would be (another process holding the second core)
    backs off: the next calls run the same parts one after the other (the same results, bit
    for bit), for a period that doubles when it happens again."""
    from fundl.kernels import _parallel

    if not _parallel.regions():
        pytest.skip("no thread-safe Numba threading layer or a single thread here")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 1, 12, 12, 6)).astype(np.float32)
    want = kp.max_pool_reference(x, (1, 2, 2), (1, 2, 2))
    kp.max_pool_numba(x, (1, 2, 2), (1, 2, 2))  # compiled (or loaded) out of the test's sight
    backoff = _parallel.Backoff(1e9, stall_seconds=-1.0)  # every region counts as stalled
    backoff.period = 2
    backoff.seen.add(np.dtype(np.float32))  # not a first call
    monkeypatch.setattr(kp, "_BACKOFF", backoff)
    regions = []  # per call: a region on every thread (True) or on this thread alone
    region = _parallel.run_region
    monkeypatch.setattr(_parallel, "run_region", lambda loop, n, *args, threads=None, **kw:
                        regions.append(threads is None) or region(loop, n, *args,
                                                                  threads=threads, **kw))
    for _ in range(7):
        y, arg = kp.max_pool_numba(x, (1, 2, 2), (1, 2, 2))
        np.testing.assert_array_equal(y, want[0])
        np.testing.assert_array_equal(arg, want[1])
    # region (stall, skip 2), 2 on one thread, region (skip 4), then one thread
    assert regions == [True, False, False, True, False, False, False]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,pool", TILED + [((2, 1, 6, 6, 16), (1, 2, 2))], ids=str)
@pytest.mark.parametrize("scales", ["uniform", "per window"])
def test_tiled_avg_pool_matches_the_reference(dtype, shape, pool, scales):
    """The row kernels of average pooling (windows summed as long runs, then scaled and moved
    out 8 values at a time below 9 channels): uniform scales (no padding), and scales that
    differ along a row (windows over padding), forward and gradient."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    out = tuple(n // p for n, p in zip(shape[1:4], pool))
    scale = (np.full(out, 1.0 / np.prod(pool)) if scales == "uniform"
             else rng.random(out) + 0.5).astype(dtype)
    y = kp.avg_pool_numba(x, pool, pool, scale)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(y, kp.avg_pool_reference(x, pool, pool, scale), **tol)
    gy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(kp.avg_pool_grad_numba(gy, shape, pool, pool, scale),
                               kp.avg_pool_grad_reference(gy, shape, pool, pool, scale), **tol)
