"""fundl.kernels.blas: NumPy's (or MKL's) GEMM reached from compiled code, checked against
numpy.matmul."""
import numpy as np
import pytest

import fundl as fl
from fundl import runtime
from fundl.kernels import blas
from fundl.kernels import recurrent as kernels


def _gemm_or_skip(dtype):
    fn = blas.gemm_function(dtype)
    if fn is None:
        pytest.skip("NumPy's BLAS GEMM is not reachable from compiled code here")
    return fn


@pytest.fixture(params=["numpy", "mkl"])
def gemm_library(request, monkeypatch):
    """Each GEMM library in turn (MKL only where the optional package is installed)."""
    monkeypatch.setenv("FUNDL_BLAS", request.param)
    monkeypatch.setattr(runtime.state(), "gemm", {})
    if request.param == "mkl" and blas._checked(blas._mkl, np.dtype(np.float32)) is None:
        pytest.skip("MKL is not installed (pip install 'fundl[mkl]')")
    return request.param


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a", [False, True])
def test_gemm_on_sub_blocks_matches_matmul(dtype, trans_a, gemm_library):
    """Products of blocks inside bigger arrays (leading dimensions larger than the blocks),
    with beta accumulating into what c held."""
    pytest.importorskip("numba")
    fn = _gemm_or_skip(dtype)
    assert blas.library(dtype) == gemm_library
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


def test_fundl_blas_chooses_the_library(monkeypatch):
    monkeypatch.setattr(runtime.state(), "gemm", {})
    monkeypatch.setenv("FUNDL_BLAS", "numpy")
    assert blas.library() in ("numpy", None)
    monkeypatch.setattr(runtime.state(), "gemm", {})
    monkeypatch.setenv("FUNDL_BLAS", "openblas")
    with pytest.raises(ValueError, match="FUNDL_BLAS must be 'auto', 'mkl' or 'numpy'"):
        blas.gemm_function(np.float32)


def test_without_mkl_auto_takes_numpys_blas_and_mkl_is_an_error(monkeypatch):
    monkeypatch.setattr(blas, "_mkl", lambda: None)  # as if the package were not installed
    monkeypatch.setattr(runtime.state(), "gemm", {})
    monkeypatch.delenv("FUNDL_BLAS", raising=False)
    assert blas.library() in ("numpy", None)
    monkeypatch.setattr(runtime.state(), "gemm", {})
    monkeypatch.setenv("FUNDL_BLAS", "mkl")
    with pytest.raises(RuntimeError, match=r"pip install 'fundl\[mkl\]'"):
        blas.gemm_function(np.float32)


def test_the_lstm_and_gru_loops_agree_with_either_library(gemm_library):
    """The compiled loops give the same results on NumPy's BLAS and on MKL (each library is
    compared with the Python loop, whose GEMMs are numpy.matmul's)."""
    pytest.importorskip("numba")
    _gemm_or_skip(np.float32)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((40, 6, 3)).astype(np.float32)
    for fn, g in ((fl.lstm, 4), (fl.gru, 3)):
        w = rng.standard_normal((3, g * 5)).astype(np.float32)
        u = rng.standard_normal((5, g * 5)).astype(np.float32) * 0.5
        assert kernels.sweeps(fn.__name__, x) is not None
        got = fn(x, w, u)[0].numpy()
        old = kernels.use_compiled(False)
        try:
            want = fn(x, w, u)[0].numpy()
        finally:
            kernels.use_compiled(old)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_matches_numpy_on_views_stacks_and_out(dtype, gemm_library):
    """blas.matmul (the GEMM of parallel batch chunks): plain, transposed and sliced operands,
    2-D and 3-D stacks, into a given out or a new array."""
    _gemm_or_skip(dtype)
    rng = np.random.default_rng(7)

    def r(*shape):
        return rng.standard_normal(shape).astype(dtype)

    tol = 1e-5 if dtype == np.float32 else 1e-12
    cases = [
        (r(13, 9), r(9, 6)),
        (r(9, 13).T, r(9, 6)),                          # a transposed
        (r(13, 9), r(8, 12)[:, 2:11].T),                # b a transposed slice
        (r(3, 13, 9), r(3, 9, 5)),                      # a stack (groups)
        (r(3, 9, 13).transpose(0, 2, 1), r(3, 4, 9)[:, :, :].transpose(0, 2, 1)),
        (r(13, 12)[:, 1:10], r(9, 7)[:, :5]),           # leading dimensions > widths
    ]
    for a, b in cases:
        np.testing.assert_allclose(blas.matmul(a, b), a @ b, rtol=tol, atol=tol)
        out = np.full((2,) + (a @ b).shape, 9.0, dtype)
        blas.matmul(a, b, out=out[1])
        np.testing.assert_allclose(out[1], a @ b, rtol=tol, atol=tol)
        assert (out[0] == 9.0).all()


def test_matmul_leaves_what_blas_cannot_read_to_numpy(gemm_library):
    rng = np.random.default_rng(8)
    a = rng.standard_normal((10, 8)).astype(np.float32)
    b = rng.standard_normal((8, 6)).astype(np.float32)
    for x, y in ((a[::2, ::2], b[:4]), (a, b[:, ::2]), (a, b.astype(np.float64)),
                 (a[:, :1], b[:1]), (a[None], b)):
        np.testing.assert_allclose(blas.matmul(x, y), np.matmul(x, y), rtol=1e-6, atol=1e-6)


def test_chunk_matmul_uses_the_library_only_inside_a_parallel_chunk(monkeypatch):
    from fundl import kernels as all_kernels
    from fundl.kernels import _parallel

    calls = []
    monkeypatch.setattr(blas, "matmul", lambda a, b, out=None: calls.append(1) or a @ b)
    a = np.ones((4, 3), np.float32)
    np.testing.assert_array_equal(all_kernels.chunk_matmul(a, a.T), a @ a.T)
    assert not calls  # on the caller's thread BLAS keeps its threads: numpy.matmul
    monkeypatch.setattr(runtime.state().local, "inside", True, raising=False)
    np.testing.assert_array_equal(all_kernels.chunk_matmul(a, a.T), a @ a.T)
    assert calls == [1]


@pytest.mark.parametrize("alias", ["a", "b"])
def test_matmul_into_one_of_its_operands_is_numpys_result(alias, gemm_library):
    """An out that is (or overlaps) an operand: BLAS would read what it already overwrote,
    so that product is NumPy's, which copies first."""
    _gemm_or_skip(np.float32)
    rng = np.random.default_rng(9)
    a = rng.standard_normal((64, 64)).astype(np.float32)
    b = rng.standard_normal((64, 64)).astype(np.float32)
    want = a @ b
    blas.matmul(a, b, out=a if alias == "a" else b)
    np.testing.assert_allclose(a if alias == "a" else b, want, rtol=1e-5, atol=1e-4)


def test_matmul_keeps_numpys_broadcasting_and_errors(gemm_library):
    rng = np.random.default_rng(10)
    a = rng.standard_normal((3, 5, 7)).astype(np.float32)
    np.testing.assert_allclose(blas.matmul(a, rng.standard_normal((1, 7, 3)).astype(
        np.float32)).shape, (3, 5, 3))
    with pytest.raises(ValueError):
        blas.matmul(a, rng.standard_normal((2, 7, 3)).astype(np.float32))
