"""fundl.energy.BoltzmannMachine: exact likelihood rises with learning; errors."""
import numpy
import pytest

from fundl.cluster import NotFittedError
from fundl.energy import BoltzmannMachine

X = numpy.array([[1, 1, 0, 0], [0, 0, 1, 1], [1, 1, 0, 0], [0, 0, 1, 1], [1, 1, 1, 1]] * 8)


def test_learning_increases_exact_log_likelihood():
    before = BoltzmannMachine(4, 2, n_iter=0, random_state=0).fit(X).log_likelihood(X).mean()
    after = BoltzmannMachine(4, 2, n_iter=40, random_state=0).fit(X).log_likelihood(X).mean()
    assert before == pytest.approx(-4 * numpy.log(2), abs=0.05)  # near-zero weights: uniform
    assert after > before + 1.0


def test_log_likelihood_is_normalised():
    bm = BoltzmannMachine(3, 2, n_iter=3, random_state=1).fit(X[:, :3])
    every_v = numpy.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    numpy.testing.assert_allclose(numpy.exp(bm.log_likelihood(every_v)).sum(), 1.0)
    numpy.testing.assert_allclose(bm.state_probabilities().sum(), 1.0)
    W = bm.weights_
    numpy.testing.assert_array_equal(W, W.T)
    assert numpy.all(numpy.diag(W) == 0)


def test_samples_resemble_the_data():
    bm = BoltzmannMachine(4, 2, n_iter=40, random_state=0).fit(X)
    S = bm.sample(300, n_sweeps=30, random_state=0)
    assert S.shape == (300, 4)
    # the first two bits agree (as in every training vector) far more often than chance
    assert (S[:, 0] == S[:, 1]).mean() > 0.75


def test_errors():
    with pytest.raises(NotFittedError, match="BoltzmannMachine.*fit"):
        BoltzmannMachine(4, 2).log_likelihood(X)
    with pytest.raises(ValueError, match="binary"):
        BoltzmannMachine(4, 2).fit(X * 0.5)
    with pytest.raises(ValueError, match="n_visible=3"):
        BoltzmannMachine(3, 2).fit(X)
    big = BoltzmannMachine(4, 30, n_iter=0).fit(X)
    with pytest.raises(ValueError, match="n_visible \\+ n_hidden <= 20"):
        big.log_likelihood(X)


def test_partial_fit_continues_fit():
    a = BoltzmannMachine(4, 2, n_iter=3, random_state=0).fit(X)
    b = BoltzmannMachine(4, 2, n_iter=0, random_state=0).fit(X)
    for _ in range(3):
        b.partial_fit(X)
    numpy.testing.assert_array_equal(a.weights_, b.weights_)
