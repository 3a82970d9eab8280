"""KMeans, PCA and RBM on CuPy arrays give the NumPy results (skipped without a GPU)."""
import numpy
import pytest

from fundl import backend


@pytest.fixture
def cupy():
    if not backend.gpu_available():
        pytest.skip("needs CuPy and an NVIDIA GPU")
    import cupy

    return cupy


def test_kmeans_on_gpu(cupy):
    from fundl.cluster import KMeans

    rng = numpy.random.default_rng(0)
    X = (rng.normal(size=(500, 4)) + rng.integers(0, 3, (500, 1)) * 5).astype(numpy.float32)
    init = X[:3].copy()
    cpu = KMeans(3, init=init, n_init=1).fit(X)
    gpu = KMeans(3, init=cupy.asarray(init), n_init=1).fit(cupy.asarray(X))
    numpy.testing.assert_array_equal(cupy.asnumpy(gpu.labels_), cpu.labels_)
    numpy.testing.assert_allclose(gpu.inertia_, cpu.inertia_, rtol=1e-5)
    assert isinstance(gpu.transform(cupy.asarray(X)), cupy.ndarray)


def test_pca_on_gpu(cupy):
    from fundl.decomposition import PCA

    X = numpy.random.default_rng(0).normal(size=(200, 6))
    cpu = PCA(3).fit(X)
    gpu = PCA(3).fit(cupy.asarray(X))
    numpy.testing.assert_allclose(cupy.asnumpy(gpu.explained_variance_ratio_),
                                  cpu.explained_variance_ratio_, atol=1e-8)


def test_rbm_on_gpu(cupy):
    from fundl.energy import RBM

    X = (numpy.random.default_rng(0).random((100, 16)) > 0.5).astype(numpy.float32)
    rbm = RBM(8, n_iter=2, random_state=0).fit(cupy.asarray(X))
    assert isinstance(rbm.transform(cupy.asarray(X)), cupy.ndarray)
    assert rbm.score_samples(cupy.asarray(X)).shape == (100,)
