"""Principal component analysis, as scikit-learn's ``PCA`` (full SVD or covariance eigh)."""
from __future__ import annotations

import numbers

import numpy

from .. import backend
from ..cluster._estimator import check_array, check_fitted, check_n_features


def _flip_signs(components, xp):
    """Make the largest-magnitude entry of each component positive (scikit-learn's rule), so the
    result does not depend on the LAPACK routine's arbitrary signs."""
    biggest = xp.argmax(xp.abs(components), axis=1)
    signs = xp.sign(components[xp.arange(components.shape[0]), biggest])
    signs[signs == 0] = 1
    return components * signs[:, None]


class PCA:
    """Principal component analysis: a linear projection onto the directions of most variance.

    The centred data ``X - mean_`` are factorised either by a thin SVD (``"full"``:
    ``Xc = U S Vᵀ``, components are the rows of ``Vᵀ``) or by the eigendecomposition of
    ``Xcᵀ Xc`` (``"covariance_eigh"``: one GEMM and an eigh of a ``(n_features, n_features)``
    matrix; much faster when there are many more samples than features, slightly less accurate
    for the smallest components). ``"auto"`` picks covariance_eigh when ``n_samples >=
    10 * n_features`` and ``n_features <= 1000``, else full, as scikit-learn does.

    Args:
        n_components: None keeps ``min(n_samples, n_features)``; an int keeps that many; a float
            in (0, 1) keeps the fewest components whose explained variance ratio adds up to more
            than it.
        whiten: scale the projections to unit variance (``transform`` divides by
            ``sqrt(explained_variance_)``).
        svd_solver: ``"auto"``, ``"full"`` or ``"covariance_eigh"``.
        random_state: accepted for scikit-learn compatibility; both solvers are deterministic.

    Attributes:
        components_: ``(n_components_, n_features)``, orthonormal rows, by decreasing variance.
        explained_variance_: ``(n_components_,)`` variances along them (divided by n - 1).
        explained_variance_ratio_: the same as fractions of the total variance.
        singular_values_: ``(n_components_,)`` singular values of the centred data.
        mean_: ``(n_features,)`` the per-feature mean.
        n_components_: the number of components kept.
        noise_variance_: the mean variance of the discarded directions (0 when none).

    Example:
        >>> X = numpy.random.default_rng(0).normal(size=(100, 5))
        >>> pca = PCA(n_components=2).fit(X)
        >>> pca.transform(X).shape
        (100, 2)
    """

    def __init__(self, n_components=None, whiten=False, svd_solver="auto", random_state=None):
        self.n_components = n_components
        self.whiten = whiten
        self.svd_solver = svd_solver
        self.random_state = random_state

    def _n_keep(self, ratio, n_max):
        nc = self.n_components
        if nc is None:
            return n_max
        if isinstance(nc, numbers.Integral) and not isinstance(nc, bool):
            if not 1 <= nc <= n_max:
                raise ValueError(f"PCA: n_components={nc} must be between 1 and min(n_samples, "
                                 f"n_features)={n_max}.")
            return int(nc)
        if isinstance(nc, float) and 0 < nc < 1:
            cumulative = numpy.cumsum(backend.to_numpy(ratio))
            return int(min(numpy.searchsorted(cumulative, nc, side="right") + 1, n_max))
        raise ValueError(f"PCA: n_components must be None, an int or a float in (0, 1), got "
                         f"{nc!r}.")

    def fit(self, X, y=None):
        """Fit the model on X ``(n_samples, n_features)``; returns self."""
        self._fit(X)
        return self

    def _fit(self, X):
        X = check_array(X, "PCA.fit")
        xp = backend.get_array_module(X)
        n, d = X.shape
        if self.svd_solver not in ("auto", "full", "covariance_eigh"):
            raise ValueError(f"PCA: svd_solver must be 'auto', 'full' or 'covariance_eigh', got "
                             f"{self.svd_solver!r}.")
        if n < 2:
            raise ValueError(f"PCA.fit: needs at least 2 samples to estimate a variance, got "
                             f"X of shape {X.shape}.")
        solver = self.svd_solver
        if solver == "auto":
            solver = "covariance_eigh" if n >= 10 * d and d <= 1000 else "full"
        self.mean_ = X.mean(axis=0)
        Xc = X - self.mean_
        if solver == "full":
            U, S, Vt = xp.linalg.svd(Xc, full_matrices=False)
            variance = S ** 2 / (n - 1)
            n_max = min(n, d)
        else:
            gram = Xc.T @ Xc
            total = xp.trace(gram) / (n - 1)
            evals, evecs = xp.linalg.eigh(gram)
            evals, Vt = evals[::-1], evecs[:, ::-1].T
            evals = xp.maximum(evals, 0)  # rounding can make the smallest ones slightly negative
            S = xp.sqrt(evals)
            variance = evals / (n - 1)
            n_max = min(n, d)
            S, variance, Vt = S[:n_max], variance[:n_max], Vt[:n_max]
        if solver == "full":
            total = variance.sum()
        ratio = variance / total
        k = self._n_keep(ratio, n_max)
        self.components_ = _flip_signs(Vt[:k], xp)
        self.explained_variance_ = variance[:k]
        self.explained_variance_ratio_ = ratio[:k]
        self.singular_values_ = S[:k]
        self.n_components_ = k
        self.n_samples_ = n
        self.n_features_in_ = d
        rest = variance[k:]
        self.noise_variance_ = float(rest.mean()) if k < min(n, d) and rest.size else 0.0
        return X

    def transform(self, X):
        """Project X ``(n_samples, n_features)`` to ``(n_samples, n_components_)``."""
        check_fitted(self, "components_")
        X = check_array(X, "PCA.transform")
        check_n_features(self, X, self.n_features_in_, "PCA.transform")
        Z = (X - self.mean_) @ self.components_.T
        if self.whiten:
            Z = Z / backend.get_array_module(Z).sqrt(self.explained_variance_)
        return Z

    def fit_transform(self, X, y=None):
        """Fit on X and return its projection."""
        return self.transform(self._fit(X))

    def inverse_transform(self, Z):
        """Map projections ``(n_samples, n_components_)`` back to the feature space."""
        check_fitted(self, "components_")
        Z = check_array(Z, "PCA.inverse_transform", name="Z")
        if Z.shape[1] != self.n_components_:
            raise ValueError(f"PCA.inverse_transform: expected {self.n_components_} components "
                             f"per row, got Z of shape {Z.shape}.")
        if self.whiten:
            Z = Z * backend.get_array_module(Z).sqrt(self.explained_variance_)
        return Z @ self.components_ + self.mean_

    def __repr__(self):
        return f"PCA(n_components={self.n_components!r}, whiten={self.whiten})"
