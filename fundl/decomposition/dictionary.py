"""Sparse coding and dictionary learning: min ½‖x − sD‖² + α‖s‖₁ with ISTA/FISTA codes."""
from __future__ import annotations

import math

import numpy

from .. import backend
from ..cluster._estimator import (
    check_array, check_fitted, check_n_features, check_positive_int, check_random_state,
)

_ALGORITHMS = ("ista", "fista")


def _soft_threshold(z, threshold, xp):
    return xp.sign(z) * xp.maximum(xp.abs(z) - threshold, 0)


def sparse_encode(X, dictionary, alpha=1.0, algorithm="fista", max_iter=1000, tol=1e-6,
                  init=None):
    """Codes S minimising ``½‖X − S D‖²_F + α‖S‖₁`` for a fixed dictionary D, all rows at once.

    ISTA (iterative shrinkage-thresholding) takes a gradient step on the quadratic term with
    step ``1/L``, ``L`` the largest eigenvalue of ``D Dᵀ`` (the gradient's Lipschitz constant),
    then soft-thresholds by ``α/L``. FISTA (Beck & Teboulle 2009) adds Nesterov momentum, which
    improves the convergence rate from O(1/t) to O(1/t²). Both stop when no code entry moves
    by more than ``tol`` times the largest code (or after ``max_iter`` steps).

    Args:
        X: ``(n_samples, n_features)``.
        dictionary: ``(n_components, n_features)``, one atom per row.
        alpha: the ℓ1 weight.
        algorithm: ``"ista"`` or ``"fista"``.
        max_iter: the most iterations.
        tol: the stopping tolerance (relative).
        init: optional ``(n_samples, n_components)`` starting codes (warm start).

    Returns:
        ``(n_samples, n_components)`` codes.

    Example:
        >>> D = numpy.eye(3)
        >>> sparse_encode(numpy.array([[2.0, 0.5, -3.0]]), D, alpha=1.0).round(6).tolist()
        [[1.0, 0.0, -2.0]]
    """
    if algorithm not in _ALGORITHMS:
        raise ValueError(f"sparse_encode: algorithm must be 'ista' or 'fista', got "
                         f"{algorithm!r}.")
    xp = backend.get_array_module(X)
    G = dictionary @ dictionary.T
    lipschitz = float(xp.linalg.eigvalsh(G).max()) if G.size else 0.0
    if lipschitz <= 0:
        return xp.zeros((X.shape[0], dictionary.shape[0]), dtype=X.dtype)
    step = 1.0 / lipschitz
    XDt = X @ dictionary.T
    S = xp.zeros_like(XDt) if init is None else xp.array(init, dtype=XDt.dtype)
    Y, t = S, 1.0
    for _ in range(max_iter):
        S_new = _soft_threshold(Y - step * (Y @ G - XDt), step * alpha, xp)
        if algorithm == "fista":
            t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
            Y = S_new + ((t - 1) / t_new) * (S_new - S)
            t = t_new
        else:
            Y = S_new
        delta = float(xp.abs(S_new - S).max())
        S = S_new
        if delta <= tol * max(1.0, float(xp.abs(S).max())):
            break
    return S


def _objective(X, S, D, alpha, xp):
    R = X - S @ D
    return float(0.5 * (R * R).sum() + alpha * xp.abs(S).sum())


def _check_algorithm(who, algorithm):
    if algorithm not in _ALGORITHMS:
        raise ValueError(f"{who}: transform_algorithm must be 'ista' or 'fista', got "
                         f"{algorithm!r}.")


class DictionaryLearning:
    """Learn a dictionary D in which the data have sparse codes (Olshausen & Field's sparse
    coding): ``min_{D, S} ½‖X − S D‖²_F + α‖S‖₁`` with unit-norm atoms (rows of D).

    Alternates (as scikit-learn's ``DictionaryLearning``):

    1. codes for the current dictionary by ISTA or FISTA, warm-started from the last codes
       (:func:`sparse_encode`);
    2. one pass of block coordinate descent over the atoms with the codes fixed (atom k moves
       to its least-squares optimum given the others: ``d_k += (B_k − A_k D) / A_kk`` with
       ``A = SᵀS``, ``B = XᵀS``), each atom then renormalised to unit norm; an atom no code
       uses is re-drawn from a random sample (plus 1 % noise).

    The dictionary starts from the data's top right-singular vectors scaled by their singular
    values (scikit-learn's start). ``error_`` records the objective after each iteration (the
    same formula scikit-learn records: a sum over samples, not a mean); iterations stop when it
    falls by less than ``tol`` relative to its value.

    Args:
        n_components: the number of atoms.
        alpha: the sparsity weight in fitting.
        max_iter: the most alternations.
        tol: relative tolerance on the objective's decrease.
        transform_algorithm: ``"ista"`` or ``"fista"``, for fitting and for ``transform``.
        transform_alpha: the ℓ1 weight in ``transform`` (default: ``alpha``).
        code_max_iter: the most ISTA/FISTA steps per code update.
        random_state: None, an int or a ``numpy.random.Generator`` (re-drawn atoms).

    Attributes:
        components_: ``(n_components, n_features)`` unit-norm atoms.
        error_: the objective after each iteration.
        n_iter_: iterations run.

    Example:
        >>> X = numpy.random.default_rng(0).normal(size=(50, 8))
        >>> dl = DictionaryLearning(n_components=4, alpha=0.5, max_iter=10, random_state=0)
        >>> dl.fit(X).transform(X).shape
        (50, 4)
    """

    def __init__(self, n_components, alpha=1.0, max_iter=1000, tol=1e-8,
                 transform_algorithm="ista", transform_alpha=None, code_max_iter=500,
                 random_state=None):
        self.n_components = n_components
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.transform_algorithm = transform_algorithm
        self.transform_alpha = transform_alpha
        self.code_max_iter = code_max_iter
        self.random_state = random_state

    def fit(self, X, y=None):
        """Learn the dictionary from X ``(n_samples, n_features)``; returns self."""
        self._fit(X)
        return self

    def fit_transform(self, X, y=None):
        """Learn the dictionary and return the codes of X."""
        return self.transform(self._fit(X))

    def _fit(self, X):
        who = "DictionaryLearning"
        k = check_positive_int(self.n_components, who, "n_components")
        check_positive_int(self.max_iter, who, "max_iter")
        _check_algorithm(who, self.transform_algorithm)
        if self.alpha < 0:
            raise ValueError(f"{who}: alpha must be >= 0, got {self.alpha!r}.")
        X = check_array(X, f"{who}.fit")
        xp = backend.get_array_module(X)
        rng = check_random_state(self.random_state)
        n, d = X.shape
        _, sv, Vt = xp.linalg.svd(X, full_matrices=False)
        D = sv[:, None] * Vt
        if k <= D.shape[0]:
            D = D[:k]
        else:  # more atoms than the data's rank: the rest start as random samples
            extra = X[xp.asarray(rng.integers(0, n, k - D.shape[0]))]
            D = xp.concatenate([D, extra], axis=0)
        D = D / xp.maximum(xp.linalg.norm(D, axis=1, keepdims=True), 1e-12)
        S = None
        self.error_ = []
        for it in range(self.max_iter):
            S = sparse_encode(X, D, self.alpha, self.transform_algorithm,
                              max_iter=self.code_max_iter, init=S)
            D = self._update_dict(X, S, D, rng, xp)
            self.error_.append(_objective(X, S, D, self.alpha, xp))
            self.n_iter_ = it + 1
            if it > 0 and self.error_[-2] - self.error_[-1] < self.tol * self.error_[-1]:
                break
        self.components_ = D
        self.n_features_in_ = d
        return X

    @staticmethod
    def _update_dict(X, S, D, rng, xp):
        """One pass of block coordinate descent over the atoms, then unit norms."""
        D = D.copy()
        A = S.T @ S
        B = X.T @ S
        for k in range(D.shape[0]):
            if float(A[k, k]) > 1e-6:
                D[k] += (B[:, k] - A[k] @ D) / A[k, k]
            else:  # an unused atom: re-draw it from the data
                new = X[int(rng.integers(X.shape[0]))]
                noise = 0.01 * (float(new.std()) or 1.0)
                D[k] = new + xp.asarray(rng.normal(0, noise, new.shape[0]))
                S[:, k] = 0
            D[k] /= max(float(xp.linalg.norm(D[k])), 1e-12)
        return D

    def transform(self, X):
        """Sparse codes ``(n_samples, n_components)`` of X for the learned dictionary."""
        check_fitted(self, "components_")
        X = check_array(X, "DictionaryLearning.transform")
        check_n_features(self, X, self.n_features_in_, "DictionaryLearning.transform")
        alpha = self.alpha if self.transform_alpha is None else self.transform_alpha
        return sparse_encode(X, self.components_, alpha, self.transform_algorithm,
                             max_iter=self.code_max_iter)

    def __repr__(self):
        return f"DictionaryLearning(n_components={self.n_components}, alpha={self.alpha})"


class SparseCoder:
    """Sparse codes for a fixed dictionary: ``min_s ½‖x − s D‖² + α‖s‖₁`` per sample.

    Args:
        dictionary: ``(n_components, n_features)`` atoms (ideally unit norm).
        transform_algorithm: ``"fista"`` or ``"ista"``.
        transform_alpha: the ℓ1 weight α.
        transform_max_iter: the most ISTA/FISTA steps.

    Example:
        >>> coder = SparseCoder(numpy.eye(3), transform_alpha=1.0)
        >>> coder.transform(numpy.array([[2.0, 0.5, -3.0]])).round(6).tolist()
        [[1.0, 0.0, -2.0]]
    """

    def __init__(self, dictionary, transform_algorithm="fista", transform_alpha=1.0,
                 transform_max_iter=1000):
        D = check_array(dictionary, "SparseCoder", name="dictionary")
        _check_algorithm("SparseCoder", transform_algorithm)
        self.dictionary = D
        self.components_ = D
        self.transform_algorithm = transform_algorithm
        self.transform_alpha = transform_alpha
        self.transform_max_iter = transform_max_iter
        self.n_components_, self.n_features_in_ = D.shape

    def fit(self, X=None, y=None):
        """Nothing to learn (scikit-learn's convention); returns self."""
        return self

    def transform(self, X):
        """Codes ``(n_samples, n_components)`` of X ``(n_samples, n_features)``."""
        X = check_array(X, "SparseCoder.transform")
        check_n_features(self, X, self.n_features_in_, "SparseCoder.transform")
        return sparse_encode(X, self.components_, self.transform_alpha,
                             self.transform_algorithm, max_iter=self.transform_max_iter)

    def fit_transform(self, X, y=None):
        """The codes of X."""
        return self.transform(X)

    def __repr__(self):
        return (f"SparseCoder(n_components={self.n_components_}, "
                f"transform_alpha={self.transform_alpha})")
