"""Rosenblatt's perceptron (1958): the step unit and its mistake-driven learning rule."""
from __future__ import annotations

import warnings

import numpy

from ..cluster._estimator import (
    ConvergenceWarning, check_array, check_fitted, check_n_features, check_positive_int,
    check_random_state,
)


class Perceptron:
    """The perceptron: ``y = step(w·x + b)`` trained by Rosenblatt's rule.

    Each epoch visits the samples one at a time (shuffled when ``shuffle``); on a mistake,
    ``t·(w·x + b) <= 0`` with the target ``t`` in {-1, +1}, the weights move towards the sample:
    ``w += eta0·t·x``, ``b += eta0·t``. Training stops after the first epoch without a mistake
    (by the perceptron convergence theorem this happens for linearly separable data), or after
    ``max_iter`` epochs with a :class:`~fundl.cluster.ConvergenceWarning`: data that no line
    separates, such as XOR, never get there. A score of exactly 0 counts as a mistake, so
    learning starts from ``w = 0``.

    Labels may be any two values (the second of the sorted classes is the positive one). With
    more classes, one perceptron per class is trained against the rest (one-vs-rest, as
    scikit-learn does) and ``predict`` takes the class of the largest score.

    Args:
        max_iter: the most epochs.
        eta0: the learning rate (for the perceptron it only scales the weights when they start
            from zero; it matters with ``warm_start``-like use of ``partial_fit``).
        random_state: seeds the order of the samples in each epoch.
        shuffle: shuffle the samples each epoch.

    Attributes:
        coef_: ``(1, n_features)`` for two classes, ``(n_classes, n_features)`` otherwise.
        intercept_: ``(1,)`` or ``(n_classes,)``.
        classes_: the sorted class labels.
        n_iter_: the epochs run (the last, mistake-free one included when it converged).
        mistakes_: the number of mistakes in each epoch (for two classes; summed over the
            one-vs-rest units otherwise).

    Example:
        >>> X = numpy.array([[0, 0], [0, 1], [1, 0], [1, 1]])
        >>> Perceptron(random_state=0).fit(X, [0, 0, 0, 1]).predict(X).tolist()   # AND
        [0, 0, 0, 1]
    """

    def __init__(self, max_iter=1000, eta0=1.0, random_state=None, shuffle=True):
        self.max_iter = max_iter
        self.eta0 = eta0
        self.random_state = random_state
        self.shuffle = shuffle

    def _check_xy(self, X, y, who):
        X = check_array(X, who)
        y = numpy.asarray(y)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(f"{who}: y should be a 1-D array with one label per sample "
                             f"({X.shape[0]}), got shape {y.shape}.")
        return numpy.asarray(X, dtype=numpy.float64), y

    def fit(self, X, y):
        """Train from zero weights on X ``(n_samples, n_features)`` and labels y.

        Returns:
            self
        """
        check_positive_int(self.max_iter, "Perceptron", "max_iter")
        X, y = self._check_xy(X, y, "Perceptron.fit")
        classes = numpy.unique(y)
        if classes.size < 2:
            raise ValueError(f"Perceptron.fit: needs samples of at least 2 classes, got only "
                             f"{classes.tolist()}.")
        self._start(X, classes)
        self._rng = check_random_state(self.random_state)
        self.mistakes_ = []
        for epoch in range(self.max_iter):
            mistakes = self._epoch(X, y)
            self.mistakes_.append(mistakes)
            self.n_iter_ = epoch + 1
            if mistakes == 0:
                return self
        warnings.warn(f"Perceptron: {self.max_iter} epochs ended with {self.mistakes_[-1]} "
                      "mistakes in the last one; the data may not be linearly separable.",
                      ConvergenceWarning, stacklevel=2)
        return self

    def partial_fit(self, X, y, classes=None):
        """One epoch of Rosenblatt's rule from the current weights (the first call needs
        ``classes``, all the labels that will ever appear, unless fit ran before).

        Returns:
            self
        """
        X, y = self._check_xy(X, y, "Perceptron.partial_fit")
        if getattr(self, "coef_", None) is None:
            if classes is None:
                raise ValueError("Perceptron.partial_fit: the first call needs classes=, the "
                                 "list of all labels (e.g. classes=[0, 1]).")
            classes = numpy.unique(numpy.asarray(classes))
            if classes.size < 2:
                raise ValueError("Perceptron.partial_fit: classes needs at least 2 labels.")
            self._start(X, classes)
            self._rng = check_random_state(self.random_state)
            self.mistakes_, self.n_iter_ = [], 0
        else:
            check_n_features(self, X, self.n_features_in_, "Perceptron.partial_fit")
        unknown = numpy.setdiff1d(numpy.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(f"Perceptron.partial_fit: labels {unknown.tolist()} are not in "
                             f"classes {self.classes_.tolist()}.")
        self.mistakes_.append(self._epoch(X, y))
        self.n_iter_ += 1
        return self

    def _start(self, X, classes):
        self.classes_ = classes
        units = 1 if classes.size == 2 else classes.size
        self.coef_ = numpy.zeros((units, X.shape[1]))
        self.intercept_ = numpy.zeros(units)
        self.n_features_in_ = X.shape[1]

    def _targets(self, y):
        if self.classes_.size == 2:
            return numpy.where(y == self.classes_[1], 1.0, -1.0)[:, None]
        return numpy.where(y[:, None] == self.classes_[None, :], 1.0, -1.0)

    def _epoch(self, X, y):
        """One pass of the rule over the samples; returns the number of mistakes."""
        T = self._targets(y)
        order = (self._rng.permutation(X.shape[0]) if self.shuffle
                 else numpy.arange(X.shape[0]))
        W, b, eta = self.coef_, self.intercept_, float(self.eta0)
        mistakes = 0
        # sequential by definition: each update changes the unit that judges the next sample
        for i in order:
            x, t = X[i], T[i]
            wrong = t * (W @ x + b) <= 0
            if wrong.any():
                step = eta * t * wrong
                W += step[:, None] * x[None, :]
                b += step
                mistakes += int(wrong.sum())
        return mistakes

    def decision_function(self, X):
        """Scores ``X @ coef_.T + intercept_``: ``(n_samples,)`` for two classes."""
        check_fitted(self, "coef_")
        X = check_array(X, "Perceptron.decision_function")
        check_n_features(self, X, self.n_features_in_, "Perceptron.decision_function")
        scores = X @ self.coef_.T + self.intercept_
        return scores[:, 0] if self.classes_.size == 2 else scores

    def predict(self, X):
        """The step unit's class for each row of X."""
        scores = self.decision_function(X)
        if self.classes_.size == 2:
            return self.classes_[(scores > 0).astype(int)]
        return self.classes_[scores.argmax(axis=1)]

    def score(self, X, y):
        """Mean accuracy on X, y."""
        return float((self.predict(X) == numpy.asarray(y)).mean())

    def __repr__(self):
        return f"Perceptron(max_iter={self.max_iter}, eta0={self.eta0})"
