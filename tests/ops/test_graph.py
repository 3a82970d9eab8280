"""sparse_matmul, normalized_adjacency and SparseMatrix: values, gradients, errors.

The forward is checked against the dense product with ``SparseMatrix.to_dense()`` (itself
checked against a dense GCN formula), the backward by float64 gradcheck; the PyTorch check
(torch.sparse.mm) runs only when torch is installed.
"""
import numpy as np
import pytest

import fundl as fl
from fundl.testing import assert_error, check_op


def _random_edges(rng, n, e):
    return rng.integers(0, n, (2, e))


def _dense_gcn(edges, n, self_loops=True):
    """D^-1/2 (A + I) D^-1/2 the textbook way, float64 (repeated edges count once)."""
    a = np.zeros((n, n))
    a[edges[0], edges[1]] = 1
    if self_loops:
        a[np.arange(n), np.arange(n)] = 1
    d = a.sum(axis=1)
    inv = np.where(d > 0, 1 / np.sqrt(np.maximum(d, 1)), 0)
    return inv[:, None] * a * inv[None, :]


def _torch_product(a):
    def fn(x):
        import torch

        dense = a.to_dense().astype(np.float64)
        rows, cols = np.nonzero(dense)
        sp = torch.sparse_coo_tensor(np.stack([rows, cols]), dense[rows, cols], a.shape,
                                     check_invariants=True)
        return torch.sparse.mm(sp, x)

    return fn


@pytest.mark.parametrize("self_loops", [True, False])
def test_normalized_adjacency_matches_dense_formula(self_loops):
    rng = np.random.default_rng(0)
    edges = _random_edges(rng, 12, 30)  # directed, with repeats and maybe self-loops
    a = fl.normalized_adjacency(edges, 12, self_loops=self_loops)
    assert a.shape == (12, 12) and a.values.dtype == np.float32
    assert a.indptr.dtype == np.int64 and a.indices.dtype == np.int64
    np.testing.assert_allclose(a.to_dense(), _dense_gcn(edges, 12, self_loops), rtol=1e-6)


def test_normalized_adjacency_of_a_symmetric_graph_is_symmetric_and_isolated_nodes():
    edges = np.array([[0, 1, 1, 2, 0, 0], [1, 0, 2, 1, 1, 1]])  # repeated edge 0->1
    a = fl.normalized_adjacency(edges, 4).to_dense()
    np.testing.assert_allclose(a, a.T)
    np.testing.assert_allclose(a[3], [0, 0, 0, 1])  # isolated node: only its self-loop
    np.testing.assert_allclose(a[0, 1], 1 / np.sqrt(2 * 3), rtol=1e-6)
    b = fl.normalized_adjacency(edges, 4, self_loops=False).to_dense()
    assert np.all(b[3] == 0) and np.all(np.isfinite(b))  # degree 0: a zero row, no NaN


def test_transpose_of_a_directed_graph():
    rng = np.random.default_rng(1)
    a = fl.normalized_adjacency(_random_edges(rng, 9, 20), 9, self_loops=False)
    np.testing.assert_array_equal(a.T.to_dense(), a.to_dense().T)
    assert a.T is a.T  # built once, then cached


def test_rectangular_transpose():
    a = fl.SparseMatrix(np.array([0, 2, 2, 3]), np.array([4, 0, 1]),
                        np.array([1.0, 2.0, 3.0], np.float32), (3, 5))
    assert a.T.shape == (5, 3)
    np.testing.assert_array_equal(a.T.to_dense(), a.to_dense().T)


@pytest.mark.parametrize("features", [1, 4])
def test_sparse_matmul_directed_graph(features):
    rng = np.random.default_rng(2)
    # directed edges: A is not symmetric, so the backward must use the real transpose
    a = fl.normalized_adjacency(_random_edges(rng, 10, 25), 10)
    x = rng.standard_normal((10, features))
    check_op(lambda t: fl.sparse_matmul(a, t), _torch_product(a), [x],
             reference=lambda v: a.to_dense().astype(np.float64) @ v)


def test_sparse_matmul_rectangular():
    rng = np.random.default_rng(3)
    a = fl.SparseMatrix(np.array([0, 2, 2, 5]), np.array([4, 0, 1, 1, 3]),
                        rng.standard_normal(5).astype(np.float32), (3, 5))
    x = rng.standard_normal((5, 3))
    check_op(lambda t: fl.sparse_matmul(a, t), _torch_product(a), [x],
             reference=lambda v: a.to_dense().astype(np.float64) @ v)


def test_sparse_matmul_keeps_float32_and_no_grad_to_adjacency():
    a = fl.normalized_adjacency(np.array([[0, 1], [1, 2]]), 3)
    x = fl.tensor(np.ones((3, 2), np.float32), requires_grad=True)
    y = fl.sparse_matmul(a, x)
    assert y.dtype == np.float32 and y.requires_grad
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad, a.to_dense().sum(axis=0)[:, None] * np.ones((3, 2)),
                               rtol=1e-6)


def test_shape_mismatch_names_op_and_shapes():
    a = fl.normalized_adjacency(np.array([[0], [1]]), 4)
    assert_error(ValueError, fl.sparse_matmul, a, fl.ones(5, 3),
                 contains=("sparse_matmul", "(4, 4)", "(5, 3)"))
    assert_error(ValueError, fl.sparse_matmul, a, fl.ones(4),
                 contains=("sparse_matmul", "(4, 4)", "(4,)"))


def test_wrong_types():
    a = fl.normalized_adjacency(np.array([[0], [1]]), 2)
    assert_error(TypeError, fl.sparse_matmul, np.eye(2), fl.ones(2, 2),
                 contains=("sparse_matmul", "SparseMatrix", "ndarray"))
    assert_error(TypeError, fl.sparse_matmul, a, np.ones((2, 2), np.int64),
                 contains=("sparse_matmul", "int64"))


def test_normalized_adjacency_errors():
    assert_error(ValueError, fl.normalized_adjacency, np.array([[0, 5], [1, 2]]), 5,
                 contains=("normalized_adjacency", "[0, 5)", "5"))
    assert_error(ValueError, fl.normalized_adjacency, np.array([[0, 1, 2]]), 5,
                 contains=("normalized_adjacency", "(2, E)", "(1, 3)"))
    assert_error(TypeError, fl.normalized_adjacency, np.array([[0.0], [1.0]]), 5,
                 contains=("normalized_adjacency", "float64"))


def test_sparse_matrix_validates_its_arrays():
    assert_error(ValueError, fl.SparseMatrix, np.array([0, 1]), np.array([0]),
                 np.array([1.0]), (2, 2), contains=("indptr", "(3,)", "(2,)"))
    assert_error(ValueError, fl.SparseMatrix, np.array([0, 1, 2]), np.array([0]),
                 np.array([1.0]), (2, 2), contains=("indices", "(2,)", "(1,)"))
