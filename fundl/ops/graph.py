"""Graph ops: a constant sparse matrix (CSR) times a dense Tensor, and the GCN adjacency.

:class:`SparseMatrix` is a small frozen value (CSR arrays and a shape), not a Tensor: it is a
constant of the computation and gets no gradient. :func:`normalized_adjacency` builds Kipf &
Welling's ``D^-1/2 (A + I) D^-1/2`` from an edge list; :func:`sparse_matmul` multiplies it with
node features, with the backward ``gx = A^T gy`` (the transpose is built once and cached).

Example:
    >>> a = fl.normalized_adjacency(np.array([[0, 1], [1, 0]]), num_nodes=3)
    >>> fl.sparse_matmul(a, fl.ones(3, 4)).shape
    (3, 4)
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .. import kernels
from ..autograd import Function
from ..backend import device_of, get_array_module, to_device
from ..tensor import Tensor


@dataclass(frozen=True, eq=False)
class SparseMatrix:
    """A sparse matrix in CSR form, used as a constant (e.g. a graph's adjacency).

    Attributes:
        indptr: (n_rows + 1,) int64 row starts; row i's entries are ``[indptr[i], indptr[i+1])``.
        indices: (nnz,) int64 column ids.
        values: (nnz,) float32 entries.
        shape: ``(n_rows, n_cols)``.

    Example:
        >>> a = SparseMatrix(np.array([0, 1, 1]), np.array([1]), np.array([2.0], np.float32),
        ...                  (2, 2))
        >>> a.to_dense()
        array([[0., 2.], [0., 0.]], dtype=float32)
    """

    indptr: object
    indices: object
    values: object
    shape: tuple
    # The transpose, made on first use by the backward; frozen=True only guards the CSR data.
    _transpose: object = field(default=None, init=False, repr=False)

    def __post_init__(self):
        shape = tuple(int(s) for s in self.shape)
        object.__setattr__(self, "shape", shape)
        if len(shape) != 2 or min(shape) < 0:
            raise ValueError(f"SparseMatrix: shape must be (n_rows, n_cols), got {self.shape}.")
        if self.indptr.shape != (shape[0] + 1,):
            raise ValueError(f"SparseMatrix: indptr must have shape ({shape[0] + 1},) for "
                             f"{shape[0]} rows, got {self.indptr.shape}.")
        nnz = int(self.indptr[-1])
        if self.indices.shape != (nnz,) or self.values.shape != (nnz,):
            raise ValueError(f"SparseMatrix: indices and values must have shape ({nnz},) "
                             f"(indptr[-1]), got {self.indices.shape} and {self.values.shape}.")

    @property
    def nnz(self) -> int:
        """The number of stored entries."""
        return int(self.values.shape[0])

    @property
    def T(self) -> "SparseMatrix":
        """The transpose (n_cols, n_rows), in CSR form; computed once, then cached."""
        if self._transpose is None:
            object.__setattr__(self, "_transpose", _transpose(self))
        return self._transpose

    def to_dense(self):
        """The dense (n_rows, n_cols) array (for tests and small graphs)."""
        xp = get_array_module(self.values)
        out = xp.zeros(self.shape, dtype=self.values.dtype)
        rows = xp.repeat(xp.arange(self.shape[0]), xp.diff(self.indptr))
        xp.add.at(out, (rows, self.indices), self.values)
        return out

    def to(self, device: str) -> "SparseMatrix":
        """The same matrix with its arrays on ``device`` ("cpu" or "gpu")."""
        if device_of(self.values) == device:
            return self
        return SparseMatrix(to_device(self.indptr, device), to_device(self.indices, device),
                            to_device(self.values, device), self.shape)


def _transpose(a: SparseMatrix) -> SparseMatrix:
    """CSR of a^T: a's entries ordered by column (a counting sort), columns become rows."""
    xp = get_array_module(a.values)
    rows = xp.repeat(xp.arange(a.shape[0]), xp.diff(a.indptr))
    order = xp.argsort(a.indices, kind="stable")
    counts = xp.bincount(a.indices, minlength=a.shape[1])
    indptr = xp.concatenate([xp.zeros(1, dtype=xp.int64), xp.cumsum(counts)])
    return SparseMatrix(indptr, rows[order], a.values[order], (a.shape[1], a.shape[0]))


def normalized_adjacency(edges, num_nodes, self_loops=True) -> SparseMatrix:
    """Kipf & Welling's propagation matrix ``D^-1/2 (A + I) D^-1/2`` of a graph, in CSR.

    ``A[i, j] = 1`` for every edge ``(edges[0, k], edges[1, k]) = (i, j)`` (repeated edges
    count once), so row i of the product gathers from the nodes j that i links to; give both
    directions for an undirected graph (the Planetoid loader does). ``D`` holds the row sums of
    ``A + I``; a node without any entry gets a zero row (not a division by zero).

    Args:
        edges: (2, E) integer array of node ids in ``[0, num_nodes)``.
        num_nodes: N, the number of nodes.
        self_loops: add I (each node keeps its own features); an existing self-loop still
            weighs 1.

    Returns:
        SparseMatrix of shape (N, N) with float32 values (symmetric for a symmetric edge list).

    Raises:
        ValueError: edges is not (2, E) or holds ids outside ``[0, num_nodes)``.
        TypeError: edges is not an integer array.

    Example:
        >>> fl.normalized_adjacency(np.array([[0, 1], [1, 0]]), 2).to_dense()
        array([[0.5, 0.5], [0.5, 0.5]], dtype=float32)
    """
    xp = get_array_module(edges)
    edges = xp.asarray(edges)
    n = int(num_nodes)
    if edges.dtype.kind not in "iu":
        raise TypeError(f"normalized_adjacency: edges must be an integer array, got dtype "
                        f"{edges.dtype}.")
    if edges.ndim != 2 or edges.shape[0] != 2:
        raise ValueError(f"normalized_adjacency: edges must have shape (2, E), got {edges.shape}.")
    if edges.size and (int(edges.min()) < 0 or int(edges.max()) >= n):
        raise ValueError(f"normalized_adjacency: node ids must lie in [0, {n}) for num_nodes={n}, "
                         f"got ids from {int(edges.min())} to {int(edges.max())}.")
    rows, cols = edges[0].astype(xp.int64), edges[1].astype(xp.int64)
    if self_loops:
        loop = xp.arange(n, dtype=xp.int64)
        rows, cols = xp.concatenate([rows, loop]), xp.concatenate([cols, loop])
    # One key per (row, column): unique both drops repeated edges and sorts into CSR order.
    keys = xp.unique(rows * n + cols)
    rows, cols = keys // n, keys % n
    degree = xp.bincount(rows, minlength=n).astype(xp.float64)
    inv_sqrt = xp.where(degree > 0, 1 / xp.sqrt(xp.maximum(degree, 1)), 0)
    values = (inv_sqrt[rows] * inv_sqrt[cols]).astype(xp.float32)
    indptr = xp.concatenate([xp.zeros(1, dtype=xp.int64), xp.cumsum(xp.bincount(rows,
                                                                                 minlength=n))])
    return SparseMatrix(indptr, cols, values, (n, n))


class SparseMatmul(Function):
    """``adjacency @ x`` for a constant CSR ``adjacency`` (n, m) and x (m, F).

    d/dx = adjacency^T @ gy; the adjacency gets no gradient (it is not an input of the graph).
    """

    def __init__(self, adjacency):
        self.adjacency = adjacency

    def check(self, x):
        a = self.adjacency
        if not isinstance(a, SparseMatrix):
            raise TypeError(f"sparse_matmul: adjacency must be a SparseMatrix (see "
                            f"fl.normalized_adjacency), got {type(a).__name__}.")
        if x.dtype.kind != "f":
            raise TypeError(f"sparse_matmul: x must be a float array, got dtype {x.dtype}.")
        if x.ndim != 2 or x.shape[0] != a.shape[1]:
            raise ValueError(f"sparse_matmul: expected x of shape ({a.shape[1]}, features) for an "
                             f"adjacency of shape {a.shape}, got x of shape {x.shape}. The graph "
                             "is one batch: x needs one row per node.")

    def forward(self, x):
        a = self.adjacency.to(device_of(x))
        return kernels.spmm(a.indptr, a.indices, a.values, x)

    def backward(self, gy):
        at = self.adjacency.T.to(device_of(gy))
        return kernels.spmm(at.indptr, at.indices, at.values, gy)


def sparse_matmul(adjacency, x) -> Tensor:
    """The product of a constant sparse matrix and a Tensor: ``y = adjacency @ x``.

    Args:
        adjacency: a :class:`SparseMatrix` (n, m), e.g. from :func:`normalized_adjacency`;
            treated as a constant (no gradient).
        x: Tensor (m, F), float.

    Returns:
        Tensor (n, F) in x's dtype.

    Example:
        >>> a = fl.normalized_adjacency(graph.edges, graph.x.shape[0])
        >>> fl.sparse_matmul(a, fl.tensor(graph.x)).shape      # (N, F)
    """
    return SparseMatmul(adjacency).apply(x)
