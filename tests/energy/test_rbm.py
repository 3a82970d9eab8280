"""fundl.energy.RBM against scikit-learn's BernoulliRBM, its pseudo-likelihood, and errors."""
import numpy
import pytest

from fundl.cluster import NotFittedError
from fundl.energy import RBM


def _digits_binary():
    datasets = pytest.importorskip("sklearn.datasets")
    X = (datasets.load_digits().data / 16 > 0.5).astype(numpy.float64)
    idx = numpy.random.default_rng(0).permutation(len(X))
    return X[idx[:1400]], X[idx[1400:]]


def _as_ours(sk):
    # scikit-learn's fitted parameters in an RBM, to score both models with the same formula
    r = RBM(sk.n_components)
    r.components_, r.intercept_hidden_ = sk.components_, sk.intercept_hidden_
    r.intercept_visible_, r.n_features_in_ = sk.intercept_visible_, sk.components_.shape[1]
    r._dtype, r.random_state_ = sk.components_.dtype, numpy.random.default_rng(0)
    return r


def test_held_out_pseudo_likelihood_at_least_sklearns():
    neural_network = pytest.importorskip("sklearn.neural_network")
    train, test = _digits_binary()
    ours, theirs = [], []
    for seed in (0, 1):
        settings = dict(n_components=32, learning_rate=0.05, batch_size=10, n_iter=10,
                        random_state=seed)
        ours.append(RBM(**settings).fit(train).pseudo_likelihood(test).mean())
        sk = neural_network.BernoulliRBM(**settings).fit(train)
        theirs.append(_as_ours(sk).pseudo_likelihood(test).mean())
    assert numpy.mean(ours) >= numpy.mean(theirs)


def test_surface_matches_sklearn():
    neural_network = pytest.importorskip("sklearn.neural_network")
    X = (numpy.random.default_rng(0).random((40, 12)) > 0.5).astype(numpy.float32)
    ours = RBM(n_components=5, n_iter=2, batch_size=7, random_state=0).fit(X)
    theirs = neural_network.BernoulliRBM(n_components=5, n_iter=2, batch_size=7,
                                         random_state=0).fit(X)
    for name in ("components_", "intercept_hidden_", "intercept_visible_", "h_samples_"):
        assert getattr(ours, name).shape == getattr(theirs, name).shape, name
        assert getattr(ours, name).dtype == getattr(theirs, name).dtype, name
    for method in ("transform", "gibbs", "score_samples"):
        assert getattr(ours, method)(X).shape == getattr(theirs, method)(X).shape, method
    numpy.testing.assert_allclose(ours.transform(X), 1 / (1 + numpy.exp(
        -(X @ ours.components_.T + ours.intercept_hidden_))), rtol=1e-5)
    assert set(numpy.unique(ours.gibbs(X))) <= {0.0, 1.0}


def test_pseudo_likelihood_formulas():
    rng = numpy.random.default_rng(1)
    X = (rng.random((6, 5)) > 0.5).astype(numpy.float64)
    rbm = RBM(n_components=3, random_state=0).partial_fit(X)
    rbm.components_ = rng.normal(size=(3, 5))
    rbm.intercept_hidden_, rbm.intercept_visible_ = rng.normal(size=3), rng.normal(size=5)
    # exact: the mean over all units of scikit-learn's one-flip estimate
    per_unit = []
    for i in range(5):
        Xf = X.copy()
        Xf[:, i] = 1 - Xf[:, i]
        diff = rbm.free_energy(Xf) - rbm.free_energy(X)
        per_unit.append(-numpy.logaddexp(0, -diff))
    numpy.testing.assert_allclose(rbm.pseudo_likelihood(X), numpy.sum(per_unit, axis=0))
    # the stochastic score is 5 x one of those terms, per sample
    s = rbm.score_samples(X)
    assert all(numpy.isclose(s[j], 5 * numpy.array(per_unit)[:, j]).any() for j in range(6))


@pytest.mark.parametrize("persistent, k", [(True, 1), (False, 1), (False, 3), (True, 2)])
def test_training_increases_pseudo_likelihood(persistent, k):
    train, test = _digits_binary()
    rbm = RBM(n_components=16, learning_rate=0.05, n_iter=1, k=k, persistent=persistent,
              random_state=0)
    rbm.partial_fit(train[:10])
    before = rbm.pseudo_likelihood(test).mean()
    rbm.fit(train[:600])
    assert rbm.pseudo_likelihood(test).mean() > before + 3


def test_gaussian_visible_units_learn_the_data():
    rng = numpy.random.default_rng(0)
    centres = numpy.array([[2.0, -2.0, 1.0], [-2.0, 2.0, -1.0]])
    X = centres[rng.integers(0, 2, 400)] + 0.3 * rng.standard_normal((400, 3))
    rbm = RBM(n_components=8, visible="gaussian", learning_rate=0.01, n_iter=20,
              random_state=0).fit(X)
    far = rng.standard_normal((400, 3)) * 0.3 + numpy.array([2.0, 2.0, 2.0])
    assert rbm.free_energy(X).mean() < rbm.free_energy(far).mean()
    assert rbm.gibbs(X).dtype == numpy.float64
    with pytest.raises(ValueError, match="bernoulli"):
        rbm.score_samples(X)


def test_errors():
    X = numpy.zeros((4, 3))
    with pytest.raises(NotFittedError, match="RBM.*fit"):
        RBM().transform(X)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        RBM().fit(X + 2)
    with pytest.raises(ValueError, match="2-D"):
        RBM().fit(numpy.zeros(3))
    with pytest.raises(ValueError, match="visible"):
        RBM(visible="poisson").fit(X)
    rbm = RBM(n_components=2, n_iter=1).fit(X)
    with pytest.raises(ValueError, match="3 features"):
        rbm.transform(numpy.zeros((2, 4)))


@pytest.mark.parametrize("n_iter, averaged", [(3, 140), (1, 70)])
def test_fit_averages_the_last_epochs_iterates(n_iter, averaged):
    # 1400 samples in 140 batches: the last epoch's 140 iterates, or the second half of one
    train, _ = _digits_binary()
    seen = []

    class Recording(RBM):
        def _update(self, v_pos, rng):
            super()._update(v_pos, rng)
            seen.append([p.copy() for p in self._params()])

    settings = dict(n_components=8, learning_rate=0.05, n_iter=n_iter, random_state=0)
    avg = Recording(**settings).fit(train)
    assert len(seen) == 140 * n_iter
    seen_avg, seen = seen, []
    last = Recording(average=False, **settings).fit(train)
    # averaging draws no random numbers: both runs follow the same path
    for a, b in zip(seen_avg, seen):
        for p, q in zip(a, b):
            numpy.testing.assert_array_equal(p, q)
    numpy.testing.assert_array_equal(avg.h_samples_, last.h_samples_)
    for i, name in enumerate(("components_", "intercept_hidden_", "intercept_visible_")):
        numpy.testing.assert_array_equal(getattr(last, name), seen[-1][i])
        expected = numpy.mean([s[i] for s in seen[-averaged:]], axis=0)
        numpy.testing.assert_allclose(getattr(avg, name), expected, rtol=1e-10, atol=1e-12)
        assert not numpy.allclose(getattr(avg, name), seen[-averaged - 1][i])


def test_averaging_improves_the_held_out_pseudo_likelihood():
    # at a fixed learning rate PCD's iterates oscillate; their last-epoch mean scores higher
    train, test = _digits_binary()
    gains = []
    for seed in (0, 1):
        settings = dict(n_components=32, learning_rate=0.1, n_iter=10, random_state=seed)
        gains.append(RBM(**settings).fit(train).pseudo_likelihood(test).mean()
                     - RBM(average=False, **settings).fit(train).pseudo_likelihood(test).mean())
    # measured +0.69 and +0.70 nats; the last iterate is not a fluke of one seed
    assert min(gains) > 0.3
