"""fundl.cluster.KMeans against scikit-learn, and its errors."""
import numpy
import pytest

from fundl.cluster import KMeans, NotFittedError


def _blobs(n=600, centers=4, d=3, spread=0.3, seed=0):
    rng = numpy.random.default_rng(seed)
    means = rng.uniform(-10, 10, (centers, d))
    y = rng.integers(0, centers, n)
    return means[y] + spread * rng.standard_normal((n, d)), y


def _digits():
    datasets = pytest.importorskip("sklearn.datasets")
    return datasets.load_digits().data


def _same_partition(a, b):
    # labels equal up to a permutation of the cluster ids
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
@pytest.mark.parametrize("data", ["blobs", "digits"])
def test_inertia_within_one_percent_of_sklearn(data, dtype):
    cluster = pytest.importorskip("sklearn.cluster")
    X = (_blobs(1500, centers=6, d=5, spread=2.0)[0] if data == "blobs" else _digits())
    X = X.astype(dtype)
    ours = KMeans(n_clusters=10, n_init=3, random_state=0).fit(X)
    theirs = cluster.KMeans(n_clusters=10, n_init=3, random_state=0).fit(X)
    assert abs(ours.inertia_ / theirs.inertia_ - 1) < 0.01
    assert len(numpy.unique(ours.labels_)) == len(numpy.unique(theirs.labels_)) == 10
    assert ours.cluster_centers_.dtype == dtype
    assert ours.n_iter_ <= 300


def test_same_init_gives_sklearns_lloyd_result():
    cluster = pytest.importorskip("sklearn.cluster")
    X = _digits()
    init = X[numpy.random.default_rng(1).choice(len(X), 10, replace=False)]
    for tol in (1e-4, 0.0):
        ours = KMeans(10, init=init, n_init=1, tol=tol).fit(X)
        theirs = cluster.KMeans(10, init=init, n_init=1, tol=tol).fit(X)
        numpy.testing.assert_allclose(ours.inertia_, theirs.inertia_, rtol=1e-9)
        numpy.testing.assert_array_equal(ours.labels_, theirs.labels_)
        numpy.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, atol=1e-9)
        assert ours.n_iter_ == theirs.n_iter_


def test_separated_blobs_labels_agree_up_to_permutation():
    cluster = pytest.importorskip("sklearn.cluster")
    X, y = _blobs()
    ours = KMeans(4, n_init=5, random_state=0).fit(X)
    theirs = cluster.KMeans(4, n_init=5, random_state=0).fit(X)
    assert _same_partition(ours.labels_, theirs.labels_)
    assert _same_partition(ours.labels_, y)


def test_predict_transform_score_fit_predict_are_consistent():
    X, _ = _blobs()
    km = KMeans(4, n_init=2, random_state=1)
    labels = km.fit_predict(X)
    numpy.testing.assert_array_equal(labels, km.labels_)
    numpy.testing.assert_array_equal(km.predict(X), km.labels_)
    dist = km.transform(X)
    assert dist.shape == (len(X), 4)
    numpy.testing.assert_array_equal(dist.argmin(axis=1), km.labels_)
    numpy.testing.assert_allclose(-km.score(X), km.inertia_, rtol=1e-9)
    numpy.testing.assert_allclose((dist.min(axis=1) ** 2).sum(), km.inertia_, rtol=1e-9)


def test_random_state_repeats_and_random_init_works():
    X, _ = _blobs()
    a = KMeans(4, n_init=2, random_state=3).fit(X)
    b = KMeans(4, n_init=2, random_state=3).fit(X)
    numpy.testing.assert_array_equal(a.labels_, b.labels_)
    c = KMeans(4, init="random", n_init=5, random_state=0).fit(X)
    assert len(numpy.unique(c.labels_)) == 4


def test_empty_cluster_is_relocated():
    X, _ = _blobs(300, centers=3)
    far = numpy.full((1, 3), 1e3)
    init = numpy.vstack([X[:2], far])  # the far centre gets no sample in the first assignment
    km = KMeans(3, init=init, n_init=1).fit(X)
    assert len(numpy.unique(km.labels_)) == 3
    assert numpy.abs(km.cluster_centers_).max() < 100


def test_tol_zero_reaches_strict_convergence():
    X, _ = _blobs()
    km = KMeans(4, tol=0.0, n_init=1, random_state=0).fit(X)
    assert km.n_iter_ < 300
    again = KMeans(4, init=km.cluster_centers_, n_init=1, tol=0.0).fit(X)
    numpy.testing.assert_array_equal(again.labels_, km.labels_)
    assert again.n_iter_ <= 2


@pytest.mark.parametrize("X, match", [
    (numpy.zeros(5), "2-D"),
    (numpy.array([[0.0, 1.0], [numpy.nan, 1.0], [1.0, 2.0]]), "NaN"),
    (numpy.array([[0.0, 1.0], [numpy.inf, 1.0], [1.0, 2.0]]), "NaN or infinity"),
    (numpy.zeros((2, 2)), "n_clusters=3"),
])
def test_bad_input_raises(X, match):
    with pytest.raises(ValueError, match=match):
        KMeans(3).fit(X)


def test_unfitted_and_wrong_features_raise():
    with pytest.raises(NotFittedError, match="KMeans.*fit"):
        KMeans(2).predict(numpy.zeros((3, 2)))
    with pytest.raises(NotFittedError, match="fit"):
        KMeans(2).transform(numpy.zeros((3, 2)))
    km = KMeans(2, n_init=1, random_state=0).fit(numpy.random.default_rng(0).random((20, 3)))
    with pytest.raises(ValueError, match="2 features.*3 features"):
        km.predict(numpy.zeros((3, 2)))
    with pytest.raises(ValueError, match="n_clusters"):
        KMeans(0).fit(numpy.zeros((3, 2)))
    with pytest.raises(ValueError, match="init"):
        KMeans(2, init="bogus").fit(numpy.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        KMeans(2, init=numpy.zeros((3, 2))).fit(numpy.zeros((5, 2)))
