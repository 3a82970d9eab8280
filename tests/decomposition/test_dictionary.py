"""fundl.decomposition.DictionaryLearning / SparseCoder against scikit-learn, and errors."""
import numpy
import pytest

from fundl.cluster import NotFittedError
from fundl.decomposition import DictionaryLearning, SparseCoder, sparse_encode


def _patches(n=200):
    # 8x8 image patches: scikit-learn's digits are exactly that
    datasets = pytest.importorskip("sklearn.datasets")
    return datasets.load_digits().data[:n] / 16.0


def test_objective_within_5_percent_of_sklearn():
    decomposition = pytest.importorskip("sklearn.decomposition")
    X = _patches(120)
    ours = DictionaryLearning(16, alpha=1.0, max_iter=6, transform_algorithm="fista",
                              random_state=0).fit(X)
    theirs = decomposition.DictionaryLearning(16, alpha=1.0, max_iter=6, tol=1e-8,
                                              random_state=0).fit(X)
    # both record 0.5 * ||X - S D||_F^2 + alpha * ||S||_1 (sums over samples)
    codes = ours.transform(X)
    recomputed = 0.5 * ((X - codes @ ours.components_) ** 2).sum() + numpy.abs(codes).sum()
    assert recomputed == pytest.approx(ours.error_[-1], rel=1e-3)
    assert ours.error_[-1] <= 1.05 * theirs.error_[-1]
    numpy.testing.assert_allclose(numpy.linalg.norm(ours.components_, axis=1), 1.0)
    assert ours.components_.shape == theirs.components_.shape
    assert numpy.all(numpy.diff(ours.error_) <= 1e-6 * ours.error_[0])


@pytest.mark.parametrize("algorithm", ["ista", "fista"])
def test_codes_match_sklearn_lasso(algorithm):
    decomposition = pytest.importorskip("sklearn.decomposition")
    X = _patches(100)
    D = numpy.random.default_rng(0).normal(size=(20, 64))
    D /= numpy.linalg.norm(D, axis=1, keepdims=True)
    ours = sparse_encode(X, D, alpha=0.5, algorithm=algorithm, max_iter=20_000, tol=1e-10)
    theirs = decomposition.sparse_encode(X, D, algorithm="lasso_cd", alpha=0.5, max_iter=20_000)
    numpy.testing.assert_allclose(ours, theirs, atol=1e-4)
    coder = SparseCoder(D, transform_algorithm=algorithm, transform_alpha=0.5,
                        transform_max_iter=20_000)
    numpy.testing.assert_allclose(coder.transform(X), theirs, atol=1e-3)


def test_fista_converges_faster_than_ista():
    X = _patches(50)
    D = numpy.random.default_rng(1).normal(size=(30, 64))
    D /= numpy.linalg.norm(D, axis=1, keepdims=True)
    exact = sparse_encode(X, D, 0.3, "fista", max_iter=20_000, tol=1e-12)

    def gap(alg):
        S = sparse_encode(X, D, 0.3, alg, max_iter=50, tol=0)
        return (0.5 * ((X - S @ D) ** 2).sum() + 0.3 * numpy.abs(S).sum()
                - 0.5 * ((X - exact @ D) ** 2).sum() - 0.3 * numpy.abs(exact).sum())

    assert 0 <= gap("fista") < gap("ista")


def test_orthonormal_dictionary_gives_soft_thresholding():
    X = numpy.array([[2.0, 0.5, -3.0], [0.2, -1.5, 1.0]])
    codes = SparseCoder(numpy.eye(3), transform_alpha=1.0).transform(X)
    numpy.testing.assert_allclose(codes, [[1.0, 0.0, -2.0], [0.0, -0.5, 0.0]], atol=1e-9)


def test_errors():
    with pytest.raises(NotFittedError, match="DictionaryLearning.*fit"):
        DictionaryLearning(3).transform(numpy.zeros((2, 4)))
    with pytest.raises(ValueError, match="transform_algorithm"):
        DictionaryLearning(3, transform_algorithm="omp").fit(numpy.ones((5, 4)))
    with pytest.raises(ValueError, match="transform_algorithm"):
        SparseCoder(numpy.eye(3), transform_algorithm="lars")
    with pytest.raises(ValueError, match="NaN"):
        DictionaryLearning(2).fit(numpy.array([[numpy.nan, 1.0], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="2-D"):
        SparseCoder(numpy.eye(3)).transform(numpy.zeros(3))
    with pytest.raises(ValueError, match="4 features.*3 features"):
        SparseCoder(numpy.eye(3)).transform(numpy.zeros((2, 4)))
