"""Max and average pooling: the Numba kernels against their plain-NumPy references.

Both max-pooling regimes of the kernel are covered: few channels (each channel's running
maximum in registers) and 8 or more (vectorised across channels).
"""
import numpy as np
import pytest

from fundl.kernels import pool as kp

GEOMETRIES = [
    # x shape (N, D, H, W, C), pool, strides
    ((2, 1, 6, 6, 3), (1, 2, 2), (1, 2, 2)),     # few channels
    ((2, 1, 6, 6, 9), (1, 2, 2), (1, 2, 2)),     # many channels
    ((1, 1, 7, 6, 2), (1, 3, 2), (1, 1, 2)),     # overlapping windows
    ((1, 1, 7, 8, 16), (1, 3, 3), (1, 2, 2)),
    ((2, 4, 5, 4, 5), (2, 2, 3), (2, 1, 1)),     # 3-D
    ((2, 1, 1, 9, 1), (1, 1, 3), (1, 1, 2)),     # 1-D, one channel
    ((2, 1, 8, 8, 6), (1, 2, 2), (1, 2, 2)),     # tiling windows (avg: row kernels), covered
    ((2, 1, 7, 9, 3), (1, 2, 3), (1, 2, 3)),     # tiling, with a remainder left over
    ((2, 4, 4, 6, 2), (2, 2, 3), (2, 2, 3)),     # tiling, 3-D
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,pool,strides", GEOMETRIES, ids=str)
def test_max_pool_numba_matches_reference(dtype, shape, pool, strides):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    y, arg = kp.max_pool_numba(x, pool, strides)
    y_ref, arg_ref = kp.max_pool_reference(x, pool, strides)
    assert y.dtype == dtype and arg.dtype == np.int32
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,pool,strides", GEOMETRIES, ids=str)
def test_max_pool_grad_numba_matches_reference(dtype, shape, pool, strides):
    rng = np.random.default_rng(1)
    _, arg = kp.max_pool_numba(rng.standard_normal(shape).astype(dtype), pool, strides)
    gy = rng.standard_normal(arg.shape).astype(dtype)
    got = kp.max_pool_grad_numba(gy, arg, shape, pool, strides)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, kp.max_pool_grad_reference(gy, arg, shape, pool, strides),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,pool,strides", GEOMETRIES, ids=str)
def test_avg_pool_numba_matches_reference(dtype, shape, pool, strides):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(dtype)
    scale = rng.uniform(0.1, 1.0, kp._pooled_shape(shape, pool, strides)[1:4])
    got = kp.avg_pool_numba(x, pool, strides, scale)
    assert got.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, kp.avg_pool_reference(x, pool, strides, scale), rtol=tol,
                               atol=tol)
    gy = rng.standard_normal(got.shape).astype(dtype)
    np.testing.assert_allclose(kp.avg_pool_grad_numba(gy, shape, pool, strides, scale),
                               kp.avg_pool_grad_reference(gy, shape, pool, strides, scale),
                               rtol=tol, atol=tol)


@pytest.mark.parametrize("channels", [1, 9])
def test_max_pool_ties_pick_the_first_tap(channels):
    x = np.zeros((1, 1, 2, 2, channels))
    x[0, 0, 1, :] = 1.0  # taps 2 and 3 tie for the maximum
    for y, arg in (kp.max_pool_numba(x, (1, 2, 2), (1, 2, 2)),
                   kp.max_pool_reference(x, (1, 2, 2), (1, 2, 2))):
        np.testing.assert_array_equal(y.ravel(), np.ones(channels))
        np.testing.assert_array_equal(arg.ravel(), np.full(channels, 2))


@pytest.mark.parametrize("channels", [1, 9])
def test_max_pool_propagates_nan(channels):
    x = np.random.default_rng(3).standard_normal((1, 1, 2, 4, channels))
    x[0, 0, 1, 2, :] = np.nan  # in the second window only
    for y, _ in (kp.max_pool_numba(x, (1, 2, 2), (1, 2, 2)),
                 kp.max_pool_reference(x, (1, 2, 2), (1, 2, 2))):
        assert np.isfinite(y[0, 0, 0, 0]).all() and np.isnan(y[0, 0, 0, 1]).all()


def test_avg_pool_grad_spreads_scaled_gradients_over_overlaps():
    gy = np.ones((1, 1, 1, 2, 1))  # windows of 2 at stride 1 over 3 positions
    gx = kp.avg_pool_grad_numba(gy, (1, 1, 1, 3, 1), (1, 1, 2), (1, 1, 1),
                                np.full((1, 1, 2), 0.5))
    np.testing.assert_array_equal(gx.ravel(), [0.5, 1.0, 0.5])


@pytest.mark.parametrize("pool, strides", [((1, 2, 2), (1, 2, 2)), ((1, 3, 2), (1, 2, 1))],
                         ids=["tiled", "overlapping"])
def test_parts_in_a_parallel_region_match_one_pass(pool, strides, monkeypatch):
    """The pooling kernels over one batch part per thread in a region (:func:`_run`) give
    exactly the single pass over the whole batch."""
    from fundl.kernels import _parallel, pool as module

    if not _parallel.regions():
        pytest.skip("no Numba parallel regions here")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((7, 1, 7, 6, 3)).astype(np.float32)
    y_shape = module._pooled_shape(x.shape, pool, strides)
    gy = rng.standard_normal(y_shape).astype(np.float32)
    scale = np.full(y_shape[1:4], 0.25, np.float32)

    def everything():
        y, arg = module.max_pool_numba(x, pool, strides)
        return [y, arg, module.max_pool_grad_numba(gy, arg, x.shape, pool, strides),
                module.avg_pool_numba(x, pool, strides, scale),
                module.avg_pool_grad_numba(gy, x.shape, pool, strides, scale)]

    parts = everything()
    monkeypatch.setattr(_parallel, "regions", lambda: False)
    for got, want in zip(parts, everything()):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool,strides", [((1, 2, 2), (1, 2, 2)), ((1, 3, 3), (1, 2, 2))],
                         ids=str)
def test_max_pool_grad_after_a_relu_drops_windows_not_positive(dtype, pool, strides):
    """relu_y given: windows whose maximum is <= 0 or NaN get no gradient, in the kernel as in
    the reference, and as ReLU's gradient of the unfused ops would (gy where y > 0)."""
    rng = np.random.default_rng(3)
    x = np.maximum(rng.standard_normal((5, 1, 9, 9, 3)), 0).astype(dtype)  # a ReLU's output
    x[0, 0, :3, :3, 0] = np.nan
    y, arg = kp.max_pool_reference(x, pool, strides)
    gy = rng.standard_normal(y.shape).astype(dtype)
    got = kp.max_pool_grad_numba(gy, arg.copy(), x.shape, pool, strides, relu_y=y)
    want = kp.max_pool_grad_reference(gy, arg, x.shape, pool, strides, relu_y=y)
    tol = dict(rtol=1e-6 if dtype == np.float32 else 1e-12)  # overlaps: another sum order
    np.testing.assert_allclose(got, want, **tol)
    unfused = kp.max_pool_grad_reference(np.where(y > 0, gy, 0), arg, x.shape, pool, strides)
    np.testing.assert_allclose(got, unfused, **tol)
    assert (got[0, 0, :2, :2, 0] == 0).all() and got.any()
    # without relu_y nothing is dropped, and a recycled gx comes back zeroed first
    full = kp.max_pool_grad_numba(gy, arg, x.shape, pool, strides)
    np.testing.assert_allclose(full, kp.max_pool_grad_reference(gy, arg, x.shape, pool,
                                                                strides), **tol)
