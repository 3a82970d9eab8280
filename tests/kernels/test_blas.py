"""fundl.kernels.blas: NumPy's GEMM reached from compiled code, checked against numpy.matmul."""
import numpy as np
import pytest

import fundl as fl
from fundl.kernels import blas
from fundl.kernels import recurrent as kernels


def _gemm_or_skip(dtype):
    fn = blas.gemm_function(dtype)
    if fn is None:
        pytest.skip("NumPy's BLAS GEMM is not reachable from compiled code here")
    return fn


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a", [False, True])
def test_gemm_on_sub_blocks_matches_matmul(dtype, trans_a):
    """Products of blocks inside bigger arrays (leading dimensions larger than the blocks),
    with beta accumulating into what c held."""
    pytest.importorskip("numba")
    fn = _gemm_or_skip(dtype)
    rng = np.random.default_rng(0)
    m, n, k = 13, 21, 17
    big_a = rng.standard_normal((k + 3, m + 5) if trans_a else (m + 3, k + 5)).astype(dtype)
    a = big_a[2:2 + k, 1:1 + m] if trans_a else big_a[2:2 + m, 1:1 + k]
    big_b = rng.standard_normal((k + 1, n + 4)).astype(dtype)
    b = big_b[1:, 3:3 + n]
    c = rng.standard_normal((m + 2, n + 6)).astype(dtype)
    want = c.copy()
    want[1:1 + m, 2:2 + n] = (a.T if trans_a else a) @ b + 0.25 * c[1:1 + m, 2:2 + n]
    blas.gemm(fn, trans_a, big_a[2, 1:], big_a.shape[1], big_b[1, 3:], big_b.shape[1],
              c[1, 2:], c.shape[1], m, n, k, 0.25)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(c, want, rtol=tol, atol=tol)


def test_a_function_that_computes_something_else_is_refused():
    calls = []
    assert not blas._agrees(lambda *args: calls.append(args), np.float32)
    assert calls  # it was tried


def test_other_dtypes_have_no_gemm():
    assert blas.gemm_function(np.int32) is None
    assert blas.gemm_function(np.float16) is None


def test_without_the_gemm_the_lstm_loops_over_time_in_python(monkeypatch):
    pytest.importorskip("numba")
    x = np.random.default_rng(1).standard_normal((40, 4, 3)).astype(np.float32)
    w = np.full((3, 8), 0.1, np.float32)
    u = np.full((2, 8), -0.2, np.float32)
    assert kernels.sweeps("lstm", x) is not None or blas.gemm_function(np.float32) is None
    want = fl.lstm(x, w, u)[0].numpy()
    monkeypatch.setattr(blas, "gemm_function", lambda dtype: None)
    assert kernels.sweeps("lstm", x) is None
    np.testing.assert_allclose(fl.lstm(x, w, u)[0].numpy(), want, rtol=1e-6, atol=1e-6)
