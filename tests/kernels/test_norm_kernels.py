"""Batch normalisation passes: the Numba kernels against their plain-NumPy references.

Shapes cover 2-D and 4-D inputs, one channel, channel counts that are not multiples of 8,
more channels than one chunk (:data:`kn._CHUNK`), and enough rows for several statistics
blocks (the float64 merge of :func:`kn._stats_kernel`) with a partial last block.
"""
import numpy as np
import pytest

from fundl import kernels
from fundl.kernels import norm as kn

SHAPES = [
    (6, 3),             # 2-D, fewer rows than one chunk
    (7, 5, 3),
    (2, 3, 3, 4),       # 4-D
    (4, 6, 5, 13),      # channels not a multiple of 8
    (10, 1),            # one channel
    (70000, 1),         # one channel, two blocks
    (10000, 16),        # three blocks, the last partial
    (2, 5, 5, 64),
    (200, 1000),        # wider than a chunk: one row per chunk, several blocks
]
TOL = {np.float32: 2e-5, np.float64: 1e-12}


def _data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    c = shape[-1]
    per_channel = [rng.standard_normal(c).astype(dtype) for _ in range(4)]
    return x, gy, per_channel


def _close(got, want, dtype):
    assert got.dtype == dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_stats_numba_matches_reference(dtype, shape):
    x, _, _ = _data(shape, dtype)
    axis = x.ndim - 1
    for got, want in zip(kn.batch_norm_stats_numba(x, axis),
                         kn.batch_norm_stats_reference(x, axis)):
        _close(got, want, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_affine_numba_matches_reference(dtype, shape):
    x, _, (mean, scale, shift, _) = _data(shape, dtype, seed=1)
    axis = x.ndim - 1
    _close(kn.batch_norm_affine_numba(x, axis, mean, scale, shift),
           kn.batch_norm_affine_reference(x, axis, mean, scale, shift), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_grad_sums_numba_matches_reference(dtype, shape):
    x, gy, (mean, _, _, _) = _data(shape, dtype, seed=2)
    axis = x.ndim - 1
    for got, want in zip(kn.batch_norm_grad_sums_numba(gy, x, axis, mean),
                         kn.batch_norm_grad_sums_reference(gy, x, axis, mean)):
        # relative to the largest sum: a channel's sum of random gy may be near zero
        np.testing.assert_allclose(got, want, rtol=0, atol=TOL[dtype] * np.abs(want).max())
        assert got.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_grad_x_numba_matches_reference(dtype, shape):
    x, gy, (mean, p, q, scale) = _data(shape, dtype, seed=3)
    axis = x.ndim - 1
    _close(kn.batch_norm_grad_x_numba(gy, x, axis, mean, p, q, scale),
           kn.batch_norm_grad_x_reference(gy, x, axis, mean, p, q, scale), dtype)


def test_float32_statistics_keep_their_digits_with_a_large_mean_and_batch():
    # 128*32*32 rows with |mean| / std = 1000: a float32 one-pass E[x^2] - E[x]^2 loses every
    # digit of the variance, and a plain float32 running sum loses several of the mean.
    rng = np.random.default_rng(4)
    x = (1000 + rng.standard_normal((128 * 32 * 32, 4))).astype(np.float32)
    x64 = x.astype(np.float64)
    mean, var = kn.batch_norm_stats_numba(x, 1)
    np.testing.assert_allclose(mean, x64.mean(axis=0), rtol=1e-7)
    np.testing.assert_allclose(var, x64.var(axis=0), rtol=1e-6)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    m = x64.mean(axis=0).astype(np.float32)
    sum_gy, sum_gy_xc = kn.batch_norm_grad_sums_numba(gy, x, 1, m)
    gy64 = gy.astype(np.float64)
    np.testing.assert_allclose(sum_gy, gy64.sum(axis=0), rtol=1e-5)
    np.testing.assert_allclose(sum_gy_xc, (gy64 * (x64 - m)).sum(axis=0), rtol=1e-5)


def _ordered_batches(rows, c, rng):
    """Channel data whose blocks differ (the statistics kernel shifts each block by the mean
    of the blocks before it): sorted, two halves far apart, one outlying block, a ramp of
    block means, sparse spikes."""
    halves = np.zeros((rows, c))
    halves[rows // 2:] = 1000
    first = np.zeros((rows, c))
    first[:rows // 64] = 1e4
    return {
        "sorted": np.sort(rng.standard_normal((rows, c)) * 10 + 3, axis=0),
        "halves": halves + rng.standard_normal((rows, c)) * 1e-3,
        "first block": first + rng.standard_normal((rows, c)),
        "ramp": np.repeat(np.arange(64.0), rows // 64)[:, None] * 100
        + rng.standard_normal((rows, c)),
        "spikes": np.abs(rng.standard_normal((rows, c))) * (rng.random((rows, c)) < 0.01) * 1e3,
    }


@pytest.mark.parametrize("name", ["sorted", "halves", "first block", "ramp", "spikes"])
def test_float32_statistics_of_ordered_batches_match_float64(name):
    # 2 * 131072 rows x 4: several blocks per part, whether the passes split or not
    x = _ordered_batches(2 * 131072, 4, np.random.default_rng(7))[name].astype(np.float32)
    x64 = x.astype(np.float64)
    mean, var = kn.batch_norm_stats_numba(x, 1)
    scale = np.abs(x64.mean(axis=0)) + x64.std(axis=0)
    np.testing.assert_array_less(np.abs(mean - x64.mean(axis=0)), 1e-6 * scale)
    np.testing.assert_allclose(var, x64.var(axis=0), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_constant_channel_has_its_value_as_mean_and_zero_variance(dtype):
    x = np.empty((70000, 3), dtype)
    x[:] = [1.1, 1000.3, 3.3e7]  # several blocks; sums of these are not exact in float32
    mean, var = kn.batch_norm_stats_numba(x, 1)
    np.testing.assert_array_equal(mean, x[0])
    np.testing.assert_array_equal(var, 0)


def test_kernels_on_channels_last_agree_with_references_on_another_axis():
    # the op's two paths: channels-first data goes to the references, its channels-last copy
    # to the kernels
    xl, gyl, (mean, p, q, scale) = _data((3, 4, 6, 5), np.float64, seed=5)
    x, gy = (np.ascontiguousarray(np.moveaxis(a, -1, 1)) for a in (xl, gyl))
    for got, want in zip(kn.batch_norm_stats_numba(xl, 3), kn.batch_norm_stats_reference(x, 1)):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    for got, want in zip(kn.batch_norm_grad_sums_numba(gyl, xl, 3, mean),
                         kn.batch_norm_grad_sums_reference(gy, x, 1, mean)):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(kn.batch_norm_affine_numba(xl, 3, mean, p, q),
                               np.moveaxis(kn.batch_norm_affine_reference(x, 1, mean, p, q), 1, -1),
                               rtol=1e-12)
    np.testing.assert_allclose(
        kn.batch_norm_grad_x_numba(gyl, xl, 3, mean, p, q, scale),
        np.moveaxis(kn.batch_norm_grad_x_reference(gy, x, 1, mean, p, q, scale), 1, -1),
        rtol=1e-12)


def test_numba_accepts_non_contiguous_input():
    x, gy, (mean, p, q, scale) = _data((6, 8, 10), np.float32, seed=6)
    xs = x[:, ::2]
    for got, want in zip(kn.batch_norm_stats_numba(xs, 2), kn.batch_norm_stats_reference(xs, 2)):
        _close(got, want, np.float32)
    _close(kn.batch_norm_affine_numba(xs, 2, mean, p, q),
           kn.batch_norm_affine_reference(xs, 2, mean, p, q), np.float32)


def test_numba_rejects_a_gradient_of_another_shape():
    x, gy, (mean, p, q, scale) = _data((6, 4), np.float32)
    with pytest.raises(ValueError, match=r"\(5, 4\).*\(6, 4\)"):
        kn.batch_norm_grad_sums_numba(gy[:5], x, 1, mean)
    with pytest.raises(ValueError, match=r"\(5, 4\).*\(6, 4\)"):
        kn.batch_norm_grad_x_numba(gy[:5], x, 1, mean, p, q, scale)


def test_fits_only_channels_last_nonempty_float_arrays_of_one_dtype():
    x = np.ones((4, 3), np.float32)
    c32, c64 = np.ones(3, np.float32), np.ones(3)
    assert kn.fits(1, x, c32, x)
    assert not kn.fits(0, x)                             # channels not last
    assert not kn.fits(1, x, c64)                        # mixed precisions promote
    assert not kn.fits(1, x.astype(np.float16))          # no float16 kernels
    assert not kn.fits(1, np.ones((0, 3), np.float32))   # nothing to loop over


def test_dispatchers_route_other_axes_and_mixed_dtypes_to_the_references():
    x, gy, (mean, p, q, scale) = _data((4, 3, 5), np.float32, seed=7)
    for axis in (0, 1, 2):
        m, v = kernels.batch_norm_stats(x, axis)
        for got, want in zip((m, v), kn.batch_norm_stats_reference(x, axis)):
            np.testing.assert_allclose(got, want, rtol=1e-5)
    # a float64 scale with float32 data promotes y, as NumPy would
    y = kernels.batch_norm_affine(x, 2, mean, scale.astype(np.float64), q)
    assert y.dtype == np.float64


def test_outputs_come_from_the_workspace_and_are_recycled_only_when_released():
    """The Numba passes take their outputs from the runtime's Workspace (no fresh pages per
    step): a released output's buffer is handed out again, one still referenced never is, and
    recycling leaves every result equal to the reference."""
    import fundl.runtime

    ws = fundl.runtime.state().workspace
    ws.clear()  # no free buffer of these shapes left by earlier tests
    x, gy, (mean, scale, shift, p) = _data((3, 4, 4, 8), np.float32, seed=4)
    axis = 3
    y1 = kn.batch_norm_affine_numba(x, axis, mean, scale, shift, None, True)
    assert any(a is y1 for a in ws.arrays)
    kept = y1.copy()
    y2 = kn.batch_norm_affine_numba(x * 2, axis, mean, scale, shift, None, True)
    assert y2 is not y1  # y1 is still referenced here: never handed out twice
    np.testing.assert_array_equal(y1, kept)
    address = y1.ctypes.data
    del y1
    gx = kn.batch_norm_grad_x_numba(gy, x, axis, mean, p, shift, scale, shift)
    assert gx.ctypes.data == address  # the released buffer, recycled
    _close(gx, kn.batch_norm_grad_x_reference(gy, x, axis, mean, p, shift, scale, shift),
           np.float32)
    _close(y2, kn.batch_norm_affine_reference(x * 2, axis, mean, scale, shift, None, True),
           np.float32)
    sums = kn.batch_norm_grad_sums_numba(gy, x, axis, mean, y=y2)
    want = kn.batch_norm_grad_sums_reference(gy, x, axis, mean, y=y2)
    assert sums[2] is not gx and sums[2] is not y2
    for got, ref in zip(sums, want):
        _close(got, ref, np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7, 5, 3), (10000, 16), (200, 1000)], ids=str)
def test_passes_split_over_a_parallel_region_match_the_references(dtype, shape, monkeypatch):
    """With every size split (MIN_REGION_BYTES = 1), each pass runs as row parts in the one
    compiled region driver; the results equal the references (sums to rounding) and the
    serial pass (affine and grad_x bit for bit: per-element work, no sums)."""
    from fundl.kernels import _parallel

    if not _parallel.regions():
        pytest.skip("no thread-safe Numba threading layer or a single thread here")
    x, gy, (mean, scale, shift, p) = _data(shape, dtype, seed=5)
    res = np.flip(gy, axis=0).copy()
    axis = x.ndim - 1
    mean = kn.batch_norm_stats_reference(x, axis)[0]

    def run():
        y = kn.batch_norm_affine_numba(x, axis, mean, scale, shift, res, True)
        return [*kn.batch_norm_stats_numba(x, axis), y,
                kn.batch_norm_affine_numba(x, axis, mean, scale, shift, None, True),
                *kn.batch_norm_grad_sums_numba(gy, x, axis, mean),
                *kn.batch_norm_grad_sums_numba(gy, x, axis, mean, scale, shift),
                *kn.batch_norm_grad_sums_numba(gy, x, axis, mean, y=y),
                kn.batch_norm_grad_x_numba(gy, x, axis, mean, p, shift, scale),
                kn.batch_norm_grad_x_numba(gy, x, axis, mean, p, shift, scale, shift)]

    serial = [a.copy() for a in run()]
    calls = []
    region = _parallel.run_region
    monkeypatch.setattr(kn, "MIN_REGION_BYTES", 1)
    # no back-off to one thread (a busy machine could trigger it; tested below)
    monkeypatch.setattr(kn, "_BACKOFF", _parallel.Backoff(1e10, stall_seconds=1e3))
    monkeypatch.setattr(_parallel, "run_region", lambda loop, n, *args, **kw:
                        calls.append(n) or region(loop, n, *args, **kw))
    split = run()
    assert len(calls) == 8 and min(calls) >= 2  # every pass ran as parts of a region
    y = kn.batch_norm_affine_reference(x, axis, mean, scale, shift, res, True)
    want = [*kn.batch_norm_stats_reference(x, axis), y,
            kn.batch_norm_affine_reference(x, axis, mean, scale, shift, None, True),
            *kn.batch_norm_grad_sums_reference(gy, x, axis, mean),
            *kn.batch_norm_grad_sums_reference(gy, x, axis, mean, scale, shift),
            *kn.batch_norm_grad_sums_reference(gy, x, axis, mean, y=y),
            kn.batch_norm_grad_x_reference(gy, x, axis, mean, p, shift, scale),
            kn.batch_norm_grad_x_reference(gy, x, axis, mean, p, shift, scale, shift)]
    for i, (got, ser, ref) in enumerate(zip(split, serial, want)):
        if got.shape == x.shape:
            np.testing.assert_array_equal(got, ser, err_msg=str(i))
        np.testing.assert_allclose(got, ref, rtol=TOL[dtype], atol=TOL[dtype] * 10,
                                   err_msg=str(i))


def test_a_stalled_region_sends_the_next_passes_to_one_thread(monkeypatch):
    """A region far slower than one core would be (other processes on the cores) backs off:
    the next passes run their parts on this thread alone (the same parts: the same sums bit
    for bit), for a period that doubles when it happens again, then regions resume."""
    from fundl.kernels import _parallel

    if not _parallel.regions():
        pytest.skip("no thread-safe Numba threading layer or a single thread here")
    x, gy, (mean, scale, shift, p) = _data((64, 8, 8, 16), np.float32, seed=6)
    want = kn.batch_norm_affine_reference(x, 3, mean, scale, shift, None, True)
    calls = []  # the regions on every thread (those on this thread alone not counted)
    region = _parallel.run_region
    monkeypatch.setattr(kn, "MIN_REGION_BYTES", 1)
    kn.batch_norm_stats_numba(x, 3)  # the driver compiled (or loaded) out of the test's sight
    backoff = _parallel.Backoff(1e10)
    monkeypatch.setattr(kn, "_BACKOFF", backoff)
    kn.batch_norm_stats_numba(x, 3)  # the first timed region call is not counted
    assert backoff.seen == {x.dtype} and backoff.skip == 0
    backoff.stall_seconds = -1.0  # every region counts as stalled from now on
    backoff.period = 2
    monkeypatch.setattr(_parallel, "run_region", lambda loop, n, *args, threads=None, **kw:
                        (threads is None and calls.append(n)) or
                        region(loop, n, *args, threads=threads, **kw))
    sums = kn.batch_norm_grad_sums_numba(gy, x, 3, mean)
    ran = []
    for _ in range(8):
        before = len(calls)
        np.testing.assert_array_equal(
            kn.batch_norm_affine_numba(x, 3, mean, scale, shift, None, True), want)
        ran.append(len(calls) > before)
    for got, first in zip(kn.batch_norm_grad_sums_numba(gy, x, 3, mean), sums):
        np.testing.assert_array_equal(got, first)  # serial (backing off) == region, bitwise
    # (the sums: region, stall, skip 2) 2 serial, region (skip 4), 4 serial, region (skip 8)
    assert ran == [False, False, True, False, False, False, False, True]
    backoff.stall_seconds = 1e3  # regions in time again: period back to 16
    backoff.skip = 0
    kn.batch_norm_affine_numba(x, 3, mean, scale, shift, None, True)
    assert (backoff.skip, backoff.period) == (0, _parallel.Backoff.PERIOD)
