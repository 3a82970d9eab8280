"""Sparse (CSR) times dense matrix product: a Numba kernel and a plain-``xp`` reference.

    spmm(indptr, indices, values, dense)[i] = sum over p in [indptr[i], indptr[i+1]) of
                                              values[p] * dense[indices[p]]

The sparse matrix is in CSR form: ``indptr`` (n_rows + 1,) row starts, ``indices`` (nnz,)
column ids, ``values`` (nnz,) entries; ``dense`` is (n_cols, k). The result is a new
(n_rows, k) array in ``dense``'s dtype (``values`` are cast to it, so a float32 graph can
multiply float64 features in the gradient checks). Graph convolutions use it with the
normalised adjacency of a graph (see :mod:`fundl.ops.graph`).

The kernel walks the rows serially; for each stored entry it adds a scaled row of ``dense``
to the output row, an inner loop over the k contiguous columns that Numba vectorises. It
writes each output row once and reads ``dense`` rows by index, so a row of the result stays
in cache while it is summed (NumPy's ``add.at`` scatters one element at a time).
"""
from __future__ import annotations

import numpy

from ..backend import get_array_module
from ._jit import jit


@jit
def _spmm_kernel(indptr, indices, values, dense, out):
    k = dense.shape[1]
    for i in range(indptr.shape[0] - 1):
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            v = values[p]
            for c in range(k):
                out[i, c] += v * dense[j, c]


def spmm_numba(indptr, indices, values, dense):
    """Numba version of :func:`spmm_reference` (NumPy arrays, float32 or float64 ``dense``)."""
    dense = numpy.ascontiguousarray(dense)
    out = numpy.zeros((indptr.shape[0] - 1, dense.shape[1]), dtype=dense.dtype)
    # One index dtype and values in dense's dtype: one compiled specialisation per float dtype,
    # and no mixed-precision multiply in the inner loop.
    _spmm_kernel(numpy.ascontiguousarray(indptr, dtype=numpy.int64),
                 numpy.ascontiguousarray(indices, dtype=numpy.int64),
                 numpy.ascontiguousarray(values, dtype=dense.dtype), dense, out)
    return out


def spmm_reference(indptr, indices, values, dense):
    """The CSR x dense product ``(n_rows, k)`` in plain ``xp`` (NumPy or CuPy).

    Args:
        indptr: (n_rows + 1,) integer row starts, non-decreasing, ``indptr[-1] == nnz``.
        indices: (nnz,) integer column ids in ``[0, n_cols)``.
        values: (nnz,) entries.
        dense: (n_cols, k) array.

    Returns:
        A new (n_rows, k) array in dense's dtype.
    """
    xp = get_array_module(dense)
    n_rows = indptr.shape[0] - 1
    out = xp.zeros((n_rows, dense.shape[1]), dtype=dense.dtype)
    # The row of every stored entry, then one scatter-add of the scaled gathered rows.
    rows = xp.repeat(xp.arange(n_rows), xp.diff(indptr))
    xp.add.at(out, rows, values.astype(dense.dtype)[:, None] * dense[indices])
    return out
