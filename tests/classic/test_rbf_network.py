"""fundl.classic.RBFNetwork: the two-stage RBF network on regression and classification."""
import numpy
import pytest

from fundl.classic import RBFNetwork
from fundl.cluster import NotFittedError
from fundl.datasets.synthetic import moons


def test_sine_regression():
    X = numpy.linspace(0, 2 * numpy.pi, 200)[:, None]
    y = numpy.sin(X[:, 0])
    net = RBFNetwork(12, random_state=0).fit(X, y)
    assert numpy.mean((net.predict(X) - y) ** 2) < 1e-3
    assert net.score(X, y) > 0.99
    assert net.coef_.shape == (12, 1) and net.centers_.shape == (12, 1)


def test_output_weights_are_the_least_squares_solution():
    rng = numpy.random.default_rng(0)
    X, y = rng.normal(size=(60, 2)), rng.normal(size=60)
    net = RBFNetwork(5, gamma=0.5, random_state=0).fit(X, y)
    d2 = ((X[:, None] - net.centers_[None]) ** 2).sum(-1)
    Phi = numpy.hstack([numpy.exp(-0.5 * d2), numpy.ones((60, 1))])
    W = numpy.linalg.lstsq(Phi, y, rcond=None)[0]
    numpy.testing.assert_allclose(net.coef_[:, 0], W[:-1], atol=1e-8)
    # the normal equations hold: the residual is orthogonal to the design
    numpy.testing.assert_allclose(Phi.T @ (y - net.predict(X)), 0, atol=1e-8)


def test_moons_classification_with_labels():
    x, y = moons(400, noise=0.1, seed=1)
    labels = numpy.array(["up", "down"])[y]
    net = RBFNetwork(20, random_state=0).fit(x, labels)
    xt, yt = moons(400, noise=0.1, seed=2)
    assert net.score(xt, numpy.array(["up", "down"])[yt]) > 0.95
    assert set(net.predict(xt)) == {"up", "down"}


def test_errors():
    with pytest.raises(NotFittedError, match="RBFNetwork.*fit"):
        RBFNetwork(3).predict(numpy.zeros((2, 2)))
    with pytest.raises(ValueError, match="one target per sample"):
        RBFNetwork(2).fit(numpy.zeros((5, 2)), numpy.zeros(4))
    with pytest.raises(ValueError, match="n_clusters=6"):
        RBFNetwork(6).fit(numpy.random.default_rng(0).normal(size=(5, 2)), numpy.zeros(5))
    net = RBFNetwork(2, random_state=0).fit(numpy.random.default_rng(0).normal(size=(9, 2)),
                                            numpy.arange(9.0))
    with pytest.raises(ValueError, match="3 features"):
        net.predict(numpy.zeros((2, 3)))
