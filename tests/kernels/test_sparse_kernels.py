"""The CSR x dense product: the Numba kernel against the plain-xp reference and a dense product."""
import numpy as np
import pytest

from fundl import kernels
from fundl.kernels import sparse


def _random_csr(rng, n_rows, n_cols, density=0.3):
    """CSR arrays of a random matrix (some rows empty) and the same matrix dense, float64."""
    dense = rng.standard_normal((n_rows, n_cols)) * (rng.random((n_rows, n_cols)) < density)
    rows, cols = np.nonzero(dense)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))])
    return indptr.astype(np.int64), cols.astype(np.int64), dense[rows, cols], dense


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7, 5, 3), (40, 30, 17), (1, 1, 1), (0, 4, 3), (5, 4, 0),
                                   (6, 0, 2)], ids=str)
def test_kernel_matches_reference_and_dense(dtype, shape):
    n_rows, n_cols, k = shape
    rng = np.random.default_rng(0)
    indptr, indices, values, a = _random_csr(rng, n_rows, n_cols)
    x = rng.standard_normal((n_cols, k)).astype(dtype)
    values = values.astype(np.float32)  # a float32 graph, as normalized_adjacency makes
    got = sparse.spmm_numba(indptr, indices, values, x)
    want = sparse.spmm_reference(indptr, indices, values, x)
    assert got.shape == want.shape == (n_rows, k)
    assert got.dtype == want.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    exact = a.astype(np.float32).astype(np.float64) @ x.astype(np.float64)
    np.testing.assert_allclose(want, exact, rtol=tol, atol=tol)
    np.testing.assert_allclose(kernels.spmm(indptr, indices, values, x), want, rtol=tol, atol=tol)


def test_repeated_column_in_a_row_is_summed():
    # two entries of row 0 point at column 1: both must be added, not the last one kept
    indptr = np.array([0, 2, 3])
    indices = np.array([1, 1, 0])
    values = np.array([2.0, 3.0, 4.0], np.float32)
    x = np.array([[1.0, 10.0], [100.0, 1000.0]], np.float32)
    want = np.array([[500.0, 5000.0], [4.0, 40.0]], np.float32)
    np.testing.assert_array_equal(sparse.spmm_numba(indptr, indices, values, x), want)
    np.testing.assert_array_equal(sparse.spmm_reference(indptr, indices, values, x), want)


def test_non_contiguous_dense_and_int32_indices():
    rng = np.random.default_rng(1)
    indptr, indices, values, a = _random_csr(rng, 9, 8)
    x = rng.standard_normal((6, 8)).T  # (8, 6), Fortran order
    got = sparse.spmm_numba(indptr.astype(np.int32), indices.astype(np.int32), values, x)
    np.testing.assert_allclose(got, a @ x, rtol=1e-12, atol=1e-12)


def test_integer_dense_takes_the_reference_path():
    indptr, indices = np.array([0, 1, 2]), np.array([1, 0])
    values = np.array([1, 2])
    x = np.array([[1, 2], [3, 4]])
    out = kernels.spmm(indptr, indices, values, x)
    np.testing.assert_array_equal(out, [[3, 4], [2, 4]])
    assert out.dtype == x.dtype
