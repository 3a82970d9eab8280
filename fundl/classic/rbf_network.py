"""The classic two-stage radial-basis-function network: k-means centres, least-squares output."""
from __future__ import annotations

import numpy

from ..cluster import KMeans
from ..cluster._estimator import (
    check_array, check_fitted, check_n_features, check_positive_int, check_random_state,
)
from ..layers.rbf import RBF


class RBFNetwork:
    """An RBF network trained in two stages (Moody & Darken 1989; Haykin ch. 5).

    1. The hidden layer's centres are the k-means centres of the inputs
       (:class:`fundl.cluster.KMeans`), and one width for all units comes from their spacing,
       ``sigma = d_max / sqrt(2M)`` (``gamma = M / d_max²``), unless ``gamma`` is given.
    2. The output layer is linear, ``y = Φ W + b`` with ``Φ_ij = exp(-gamma ‖x_i − c_j‖²)``,
       and solved in one step by least squares (``numpy.linalg.lstsq``).

    No gradient descent at all; the same network trained end to end by backpropagation is
    ``Sequential([RBF(...), Dense(...)])`` (:class:`fundl.layers.RBF`).

    Targets with a floating dtype are a regression (``predict`` returns values, ``score`` is
    R²); any other labels are classes (one-hot least-squares targets, ``predict`` returns the
    class with the largest output, ``score`` is the accuracy).

    Args:
        n_centers: the number of hidden units (k-means clusters).
        gamma: the width; None uses the spacing rule above.
        random_state: seeds k-means.

    Attributes:
        centers_: ``(n_centers, n_features)``.  gamma_: the width used.
        coef_: ``(n_centers, n_outputs)`` output weights.  intercept_: ``(n_outputs,)``.
        classes_: the class labels (classification only).

    Example:
        >>> X = numpy.linspace(0, 6, 100)[:, None]
        >>> net = RBFNetwork(n_centers=10, random_state=0).fit(X, numpy.sin(X[:, 0]))
        >>> float(abs(net.predict(X) - numpy.sin(X[:, 0])).max()) < 0.05
        True
    """

    def __init__(self, n_centers, gamma=None, random_state=None):
        self.n_centers = n_centers
        self.gamma = gamma
        self.random_state = random_state

    def _design(self, X):
        sq = (X ** 2).sum(axis=1)
        c_sq = (self.centers_ ** 2).sum(axis=1)
        d2 = numpy.maximum(sq[:, None] - 2 * X @ self.centers_.T + c_sq[None, :], 0)
        return numpy.exp(-self.gamma_ * d2)

    def fit(self, X, y):
        """Fit on X ``(n_samples, n_features)`` and targets y ``(n_samples,)`` or
        ``(n_samples, n_outputs)``; returns self."""
        k = check_positive_int(self.n_centers, "RBFNetwork", "n_centers")
        X = numpy.asarray(check_array(X, "RBFNetwork.fit"), dtype=numpy.float64)
        y = numpy.asarray(y)
        if y.shape[0] != X.shape[0] or y.ndim not in (1, 2):
            raise ValueError(f"RBFNetwork.fit: y should have one target per sample "
                             f"({X.shape[0]}), got shape {y.shape}.")
        if self.gamma is not None and not self.gamma > 0:
            raise ValueError(f"RBFNetwork: gamma must be positive or None, got {self.gamma!r}.")
        rng = check_random_state(self.random_state)
        km = KMeans(n_clusters=k, n_init=3, random_state=rng).fit(X)
        self.centers_ = km.cluster_centers_
        self.gamma_ = float(self.gamma) if self.gamma is not None else \
            RBF.spacing_gamma(self.centers_)
        self._regression = y.dtype.kind == "f"
        if self._regression:
            if not numpy.isfinite(y).all():
                raise ValueError("RBFNetwork.fit: y contains NaN or infinity.")
            T = y.reshape(len(y), -1)
        else:
            if y.ndim != 1:
                raise ValueError("RBFNetwork.fit: class labels must be 1-D.")
            self.classes_, codes = numpy.unique(y, return_inverse=True)
            T = numpy.eye(len(self.classes_))[codes]
        Phi = numpy.hstack([self._design(X), numpy.ones((len(X), 1))])
        W = numpy.linalg.lstsq(Phi, T, rcond=None)[0]
        self.coef_, self.intercept_ = W[:-1], W[-1]
        self._y_ndim = y.ndim
        self.n_features_in_ = X.shape[1]
        return self

    def _outputs(self, X, who):
        check_fitted(self, "coef_")
        X = numpy.asarray(check_array(X, who), dtype=numpy.float64)
        check_n_features(self, X, self.n_features_in_, who)
        return self._design(X) @ self.coef_ + self.intercept_

    def predict(self, X):
        """Values (regression) or class labels (classification) for each row of X."""
        out = self._outputs(X, "RBFNetwork.predict")
        if not self._regression:
            return self.classes_[out.argmax(axis=1)]
        return out[:, 0] if self._y_ndim == 1 else out

    def score(self, X, y):
        """R² (regression) or accuracy (classification)."""
        y = numpy.asarray(y)
        pred = self.predict(X)
        if not self._regression:
            return float((pred == y).mean())
        ss_res = float(((y - pred) ** 2).sum())
        ss_tot = float(((y - y.mean(axis=0)) ** 2).sum())
        return 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0

    def __repr__(self):
        return f"RBFNetwork(n_centers={self.n_centers}, gamma={self.gamma!r})"
