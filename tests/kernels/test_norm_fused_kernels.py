"""Batch norm's fused ReLU / residual passes: the Numba kernels against their NumPy references.

The ReLU's mask is recomputed in the backward from x (no residual) or read from y (with one);
the recomputation must agree with the forward's own ReLU bit for bit, so the data put many
values right at the threshold (zero channels, a shift that cancels the mean).
"""
import numpy as np
import pytest

from fundl.kernels import norm as kn

SHAPES = [(6, 3), (4, 6, 5, 13), (10000, 16), (2, 5, 5, 64), (200, 300),
          (128, 16, 16, 32)]  # the last: 8 MB in float32, split over threads
TOL = {np.float32: 2e-5, np.float64: 1e-12}


def _data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    x[..., 0] = 0.5  # a constant channel: (x - mean) is 0, y is the shift exactly
    c = shape[-1]
    mean = x.reshape(-1, c).mean(axis=0).astype(dtype)
    scale = rng.uniform(0.5, 1.5, c).astype(dtype)
    shift = rng.standard_normal(c).astype(dtype)
    shift[0] = 0  # the constant channel lands on the ReLU's threshold
    res = rng.standard_normal(shape).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    return x, mean, scale, shift, res, gy


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("residual,relu", [(False, True), (True, False), (True, True)])
def test_affine_fused(dtype, shape, residual, relu):
    x, mean, scale, shift, res, _ = _data(shape, dtype)
    r = res if residual else None
    axis = x.ndim - 1
    got = kn.batch_norm_affine_numba(x, axis, mean, scale, shift, r, relu)
    want = kn.batch_norm_affine_reference(x, axis, mean, scale, shift, r, relu)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)  # the same float operations, in the same order


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_grad_passes_with_mask_from_x(dtype, shape):
    x, mean, scale, shift, _, gy = _data(shape, dtype, seed=1)
    axis = x.ndim - 1
    # the mask the backward recomputes is the forward's own
    y = kn.batch_norm_affine_numba(x, axis, mean, scale, shift, None, True)
    np.testing.assert_array_equal(kn.relu_mask_reference(x, axis, mean, scale, shift), y > 0)
    got = kn.batch_norm_grad_sums_numba(gy, x, axis, mean, scale, shift)
    want = kn.batch_norm_grad_sums_reference(gy, x, axis, mean, scale, shift)
    masked = kn.batch_norm_grad_sums_reference(np.where(y > 0, gy, 0), x, axis, mean)
    for a, b, c in zip(got, want, masked):
        np.testing.assert_allclose(a, b, rtol=TOL[dtype], atol=TOL[dtype] * shape[0])
        np.testing.assert_allclose(b, c, rtol=1e-12, atol=1e-12 * shape[0])
    p, q = scale * 0.3, shift * 0.2
    got = kn.batch_norm_grad_x_numba(gy, x, axis, mean, p, q, scale, shift)
    want = kn.batch_norm_grad_x_reference(gy, x, axis, mean, p, q, scale, shift)
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_array_equal(
        want, kn.batch_norm_grad_x_reference(np.where(y > 0, gy, 0), x, axis, mean, p, q, scale))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_grad_sums_with_mask_from_y(dtype, shape):
    x, mean, scale, shift, res, gy = _data(shape, dtype, seed=2)
    axis = x.ndim - 1
    y = kn.batch_norm_affine_numba(x, axis, mean, scale, shift, res, True)
    *sums, g = kn.batch_norm_grad_sums_numba(gy, x, axis, mean, y=y)
    *want, g_want = kn.batch_norm_grad_sums_reference(gy, x, axis, mean, y=y)
    np.testing.assert_array_equal(g, g_want)
    np.testing.assert_array_equal(g, np.where(y > 0, gy, 0))
    for a, b in zip(sums, want):
        np.testing.assert_allclose(a, b, rtol=TOL[dtype], atol=TOL[dtype] * shape[0])
