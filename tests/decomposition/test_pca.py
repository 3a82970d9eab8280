"""fundl.decomposition.PCA against scikit-learn, and its errors."""
import numpy
import pytest

from fundl.cluster import NotFittedError
from fundl.decomposition import PCA


def _data(n=200, d=12, seed=0):
    rng = numpy.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d) * 5


def _equal_up_to_sign(a, b, atol):
    signs = numpy.sign((a * b).sum(axis=1))
    numpy.testing.assert_allclose(a * signs[:, None], b, atol=atol)


@pytest.mark.parametrize("solver", ["full", "covariance_eigh", "auto"])
@pytest.mark.parametrize("n_components", [None, 5, 0.9])
def test_matches_sklearn(solver, n_components):
    decomposition = pytest.importorskip("sklearn.decomposition")
    X = _data()
    ours = PCA(n_components=n_components, svd_solver=solver).fit(X)
    theirs = decomposition.PCA(n_components=n_components, svd_solver=solver).fit(X)
    assert ours.n_components_ == theirs.n_components_
    numpy.testing.assert_allclose(ours.explained_variance_ratio_,
                                  theirs.explained_variance_ratio_, atol=1e-5)
    numpy.testing.assert_allclose(ours.explained_variance_, theirs.explained_variance_,
                                  rtol=1e-6)
    numpy.testing.assert_allclose(ours.singular_values_, theirs.singular_values_, rtol=1e-6)
    numpy.testing.assert_allclose(ours.mean_, theirs.mean_)
    _equal_up_to_sign(ours.components_, theirs.components_, 1e-6)
    Zo, Zt = ours.transform(X), theirs.transform(X)
    _equal_up_to_sign(Zo.T, Zt.T, 1e-6)


def test_float32_on_digits_ratio_to_1e5():
    datasets = pytest.importorskip("sklearn.datasets")
    decomposition = pytest.importorskip("sklearn.decomposition")
    X = datasets.load_digits().data.astype(numpy.float32)
    ours = PCA(n_components=20).fit(X)
    theirs = decomposition.PCA(n_components=20).fit(X.astype(numpy.float64))
    numpy.testing.assert_allclose(ours.explained_variance_ratio_,
                                  theirs.explained_variance_ratio_, atol=1e-5)


def test_whiten_and_inverse_transform():
    decomposition = pytest.importorskip("sklearn.decomposition")
    X = _data()
    pca = PCA(n_components=4, whiten=True)
    Z = pca.fit_transform(X)
    numpy.testing.assert_allclose(numpy.cov(Z.T), numpy.eye(4), atol=1e-8)
    theirs = decomposition.PCA(n_components=4, whiten=True).fit(X)
    _equal_up_to_sign(Z.T, theirs.transform(X).T, 1e-6)
    numpy.testing.assert_allclose(pca.inverse_transform(Z), theirs.inverse_transform(
        theirs.transform(X)), atol=1e-8)
    full = PCA().fit(X)
    numpy.testing.assert_allclose(full.inverse_transform(full.transform(X)), X, atol=1e-8)


def test_components_orthonormal_and_sorted():
    pca = PCA().fit(_data())
    numpy.testing.assert_allclose(pca.components_ @ pca.components_.T, numpy.eye(12), atol=1e-10)
    assert numpy.all(numpy.diff(pca.explained_variance_) <= 0)
    numpy.testing.assert_allclose(pca.explained_variance_ratio_.sum(), 1.0)


def test_errors():
    with pytest.raises(NotFittedError, match="PCA.*fit"):
        PCA().transform(numpy.zeros((2, 3)))
    with pytest.raises(ValueError, match="2-D"):
        PCA().fit(numpy.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        PCA().fit(numpy.array([[1.0, numpy.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="n_components=20"):
        PCA(n_components=20).fit(_data(d=5))
    with pytest.raises(ValueError, match="svd_solver"):
        PCA(svd_solver="arpack").fit(_data())
    pca = PCA(2).fit(_data())
    with pytest.raises(ValueError, match="3 features"):
        pca.transform(numpy.zeros((2, 3)))
    with pytest.raises(ValueError, match="2 components"):
        pca.inverse_transform(numpy.zeros((2, 3)))
