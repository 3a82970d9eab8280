"""fundl.classic.Perceptron: convergence on separable data, none on XOR, scikit-learn parity."""
import warnings

import numpy
import pytest

from fundl.classic import Perceptron
from fundl.cluster import ConvergenceWarning, NotFittedError

XOR_X = numpy.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
XOR_Y = numpy.array([0, 1, 1, 0])


def _separable(n=200, seed=0, margin=0.2):
    rng = numpy.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 2))
    score = X @ numpy.array([1.0, -2.0]) + 0.3
    keep = numpy.abs(score) > margin
    return X[keep], numpy.where(score[keep] > 0, "yes", "no")


def test_converges_on_separable_data():
    X, y = _separable()
    p = Perceptron(random_state=0).fit(X, y)
    assert p.score(X, y) == 1.0
    assert p.n_iter_ < p.max_iter
    assert p.mistakes_[-1] == 0 and all(m > 0 for m in p.mistakes_[:-1])
    assert p.coef_.shape == (1, 2) and p.intercept_.shape == (1,)
    assert set(p.predict(X)) == {"yes", "no"}


def test_never_converges_on_xor():
    p = Perceptron(max_iter=200, random_state=0)
    with pytest.warns(ConvergenceWarning, match="not be linearly separable"):
        p.fit(XOR_X, XOR_Y)
    assert p.n_iter_ == 200
    assert min(p.mistakes_) > 0  # no epoch is ever mistake-free
    assert p.score(XOR_X, XOR_Y) < 1.0


def test_agrees_with_sklearn_on_separable_data():
    linear_model = pytest.importorskip("sklearn.linear_model")
    X, y = _separable(seed=1)
    ours = Perceptron(random_state=0).fit(X, y)
    theirs = linear_model.Perceptron(random_state=0, tol=None, max_iter=1000).fit(X, y)
    assert ours.score(X, y) == theirs.score(X, y) == 1.0
    Xt, yt = _separable(n=400, seed=2)
    assert abs(ours.score(Xt, yt) - theirs.score(Xt, yt)) < 0.05


def test_rule_by_hand_without_shuffle():
    # AND from zero weights, no shuffling, eta0 = 1: the updates can be followed by hand
    X = numpy.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
    p = Perceptron(shuffle=False).partial_fit(X, [0, 0, 0, 1], classes=[0, 1])
    # sample 0: score 0 -> mistake (t=-1): w=(0,0), b=-1; samples 1, 2 right; sample 3: score -1,
    # t=+1 -> w=(1,1), b=0
    numpy.testing.assert_array_equal(p.coef_, [[1.0, 1.0]])
    numpy.testing.assert_array_equal(p.intercept_, [0.0])
    assert p.mistakes_ == [2]


def test_multiclass_one_vs_rest():
    rng = numpy.random.default_rng(0)
    centres = numpy.array([[0, 5], [5, 0], [-5, -5]], float)
    y = rng.integers(0, 3, 150)
    X = centres[y] + rng.normal(size=(150, 2)) * 0.5
    p = Perceptron(random_state=0).fit(X, y)
    assert p.coef_.shape == (3, 2)
    assert p.score(X, y) == 1.0


def test_errors():
    with pytest.raises(NotFittedError, match="Perceptron.*fit"):
        Perceptron().predict(XOR_X)
    with pytest.raises(ValueError, match="one label per sample"):
        Perceptron().fit(XOR_X, [0, 1])
    with pytest.raises(ValueError, match="2 classes"):
        Perceptron().fit(XOR_X, [1, 1, 1, 1])
    with pytest.raises(ValueError, match="NaN"):
        Perceptron().fit(numpy.array([[numpy.nan, 0.0], [1.0, 1.0]]), [0, 1])
    with pytest.raises(ValueError, match="classes="):
        Perceptron().partial_fit(XOR_X, XOR_Y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        p = Perceptron(max_iter=3).fit(XOR_X, XOR_Y)
    with pytest.raises(ValueError, match="3 features"):
        p.predict(numpy.zeros((2, 3)))
