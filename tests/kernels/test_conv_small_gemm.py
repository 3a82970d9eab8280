"""The convolution regions' GEMMs through OpenBLAS's AVX-512 small-matrix kernels.

fundl.kernels.convolution.small_gemms offers them on AVX-512 CPUs where fundl's GEMMs come
from NumPy's OpenBLAS (and they agree with numpy.matmul); fundl.kernels.conv._gemm calls them
for the row-major products of the region drivers. Elsewhere the tests check the fallback.
"""
import numpy as np
import pytest

from fundl import kernels
from fundl.kernels import conv as kc
from fundl.kernels import convolution

NN, NT, USE = convolution.small_gemms(np.float32)
needs_kernels = pytest.mark.skipif(not USE, reason="no AVX-512 OpenBLAS kernels here")


@pytest.fixture
def settings(monkeypatch):
    """monkeypatch, with the kernels' lookup cache cleared before the test and again after
    its settings are undone (so later tests see the real answer)."""
    convolution._small_kernels.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    convolution._small_kernels.cache_clear()


def test_float64_and_switch_use_the_cblas_gemm(settings):
    assert convolution.small_gemms(np.float64)[2] is False
    settings.setattr(convolution, "SMALL_KERNELS", False)
    assert convolution.small_gemms(np.float32)[2] is False


def test_fundl_blas_numpy_keeps_numpys_library_as_configured(settings):
    settings.setenv("FUNDL_BLAS", "numpy")
    assert convolution.small_gemms(np.float32)[2] is False


@pytest.mark.parametrize("small", [False, True] if USE else [False])
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (7, 5, 3), (1024, 144, 16), (33, 290, 17)])
def test_gemm_matches_numpy(small, m, k, n):
    rng = np.random.default_rng(0)
    fn = kernels.gemm_function(np.float32)
    a = rng.standard_normal((m, k + 3)).astype(np.float32)
    at = rng.standard_normal((k, m + 1)).astype(np.float32)
    b = rng.standard_normal((k, n + 2)).astype(np.float32)
    c = np.full((m, n + 4), np.nan, np.float32)  # garbage that beta = 0 must never read
    kc._gemm(fn, NN, NT, small, False, a, k + 3, b, n + 2, c, n + 4, m, n, k, 0.0)
    np.testing.assert_allclose(c[:, :n], a[:, :k] @ b[:, :n], rtol=1e-4, atol=1e-4)
    assert np.isnan(c[:, n:]).all()  # nothing written past n columns
    c = np.full((m, n + 4), 0.5, np.float32)
    kc._gemm(fn, NN, NT, small, True, at, m + 1, b, n + 2, c, n + 4, m, n, k, 1.0)
    np.testing.assert_allclose(c[:, :n], at[:, :m].T @ b[:, :n] + 0.5, rtol=1e-4, atol=1e-4)


@needs_kernels
def test_region_convolution_same_with_and_without_them(monkeypatch):
    """A ResNet-sized 3x3 convolution (region path) forward and backward: the AVX-512
    kernels give what the cblas GEMM gives, to float32 rounding."""
    import fundl as fl
    from fundl.ops.conv import conv2d

    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 16, 16, 16)).astype(np.float32)
    k = (rng.standard_normal((3, 3, 16, 32)) * 0.1).astype(np.float32)
    gy = rng.standard_normal((8, 8, 8, 32)).astype(np.float32)
    out = []
    for use in (True, False):
        monkeypatch.setattr(convolution, "SMALL_KERNELS", use)
        convolution._small_kernels.cache_clear()
        tx, tk = fl.tensor(x, requires_grad=True), fl.tensor(k, requires_grad=True)
        y = conv2d(tx, tk, None, strides=2, padding=1)
        y.backward(gy)
        out.append((y.numpy(), tx.grad, tk.grad))
    convolution._small_kernels.cache_clear()
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
