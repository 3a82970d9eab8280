"""k-means clustering: k-means++ seeding and Lloyd's iterations, as scikit-learn's ``KMeans``."""
from __future__ import annotations

import math
import warnings

import numpy

from .. import backend
from ._estimator import (
    ConvergenceWarning, check_array, check_fitted, check_n_features, check_positive_int,
    check_random_state,
)

_CHUNK_ELEMENTS = 1 << 22  # rows per distance block: at most this many (row, centre) pairs


def _row_norms_sq(X, xp):
    return xp.einsum("ij,ij->i", X, X)


def _sq_distances(X, x_sq, C, xp):
    """Squared distances ``||x||² - 2 x·c + ||c||²`` for all rows and centres: one GEMM."""
    d = X @ C.T
    d *= -2
    d += x_sq[:, None]
    d += _row_norms_sq(C, xp)[None, :]
    return xp.maximum(d, 0, out=d)


def _two_nearest(X, x_sq, C, xp):
    """Nearest centre of each row, its squared distance and the second nearest's, in blocks."""
    n, k = X.shape[0], C.shape[0]
    labels = xp.empty(n, dtype=xp.int64)
    d1 = xp.empty(n, dtype=X.dtype)
    d2 = xp.full(n, xp.inf, dtype=X.dtype)
    step = max(1, _CHUNK_ELEMENTS // max(k, 1))
    for s in range(0, n, step):
        d = _sq_distances(X[s:s + step], x_sq[s:s + step], C, xp)
        if k == 1:
            labels[s:s + step] = 0
            d1[s:s + step] = d[:, 0]
            continue
        part = xp.argpartition(d, 1, axis=1)[:, :2]
        pd = xp.take_along_axis(d, part, axis=1)
        first = pd[:, 0] <= pd[:, 1]
        labels[s:s + step] = xp.where(first, part[:, 0], part[:, 1])
        d1[s:s + step] = xp.minimum(pd[:, 0], pd[:, 1])
        d2[s:s + step] = xp.maximum(pd[:, 0], pd[:, 1])
    return labels, d1, d2


def _onehot(labels, k, dtype, xp):
    return (labels[:, None] == xp.arange(k)[None, :]).astype(dtype)


def _cluster_sums(X, labels, k, xp):
    """Per-cluster sums of the rows in float64, accumulated over float32-exact blocks."""
    sums = xp.zeros((X.shape[1], k), dtype=xp.float64)
    step = 16384
    for s in range(0, X.shape[0], step):  # X.T @ onehot: BLAS's fast shape for this product
        sums += X[s:s + step].T @ _onehot(labels[s:s + step], k, X.dtype, xp)
    return sums.T


def _inertia(X, labels, C, xp):
    """Sum of squared distances to the assigned centres, in float64 (exact differences)."""
    total = 0.0
    step = 4096
    for s in range(0, X.shape[0], step):
        diff = (X[s:s + step] - C[labels[s:s + step]]).astype(xp.float64)
        total += float(xp.einsum("ij,ij->", diff, diff))
    return total


def _kmeans_plusplus(X, x_sq, k, rng, xp):
    """Greedy k-means++ (Arthur & Vassilvitskii 2007) as scikit-learn runs it: each new centre
    is the best of ``2 + log(k)`` candidates drawn with probability proportional to D(x)²."""
    n = X.shape[0]
    n_trials = 2 + int(math.log(k))
    centers = xp.empty((k, X.shape[1]), dtype=X.dtype)
    first = int(rng.integers(n))
    centers[0] = X[first]
    closest = _sq_distances(X, x_sq, X[first:first + 1], xp)[:, 0].astype(xp.float64)
    pot = float(closest.sum())
    for c in range(1, k):
        draws = xp.asarray(rng.uniform(size=n_trials) * pot)
        cand = xp.minimum(xp.searchsorted(xp.cumsum(closest), draws), n - 1)
        d = _sq_distances(X, x_sq, X[cand], xp).T.astype(xp.float64)  # (trials, n)
        xp.minimum(closest[None, :], d, out=d)
        pots = d.sum(axis=1)
        best = int(xp.argmin(pots))
        closest, pot = d[best], float(pots[best])
        centers[c] = X[int(cand[best])]
    return centers


class KMeans:
    """k-means clustering (Lloyd's algorithm) with scikit-learn's ``KMeans`` surface.

    Minimises the inertia ``sum_i min_j ||x_i - c_j||²``. Each of the ``n_init`` runs seeds the
    centres with greedy k-means++ (or picks random rows), then alternates assigning each sample
    to its nearest centre and moving each centre to the mean of its samples, until no label
    changes or the centres' total squared shift falls to ``tol`` times the mean feature variance
    (scikit-learn's rule); the run with the lowest inertia is kept.

    How it is computed: squared distances come from ``||x||² - 2 x·c + ||c||²`` with one GEMM in
    the data's dtype (float32 stays float32; the data are centred first, as scikit-learn does,
    so the expansion loses no precision to a large offset). Hamerly's bounds (2010: an upper bound
    on each sample's distance to its centre, a lower bound on the distance to any other) skip the
    samples that provably keep their label, so late iterations touch only the few samples near a
    boundary; centres are updated from the samples that moved, with sums kept in float64. The
    result is that of plain Lloyd iterations. A cluster that empties is re-seeded with the
    samples farthest from their centres. The inertia is computed in float64 from exact
    differences.

    Args:
        n_clusters: the number of clusters k.
        init: ``"k-means++"``, ``"random"`` (k distinct rows), or an array of shape
            ``(n_clusters, n_features)`` of initial centres (then one run is made).
        n_init: runs with different seeds; the best inertia is kept.
        max_iter: the most Lloyd iterations per run.
        tol: relative tolerance on the centres' total squared shift (times the mean variance
            of the features); 0 iterates until no label changes.
        random_state: None, an int or a ``numpy.random.Generator``.

    Attributes:
        cluster_centers_: ``(n_clusters, n_features)``, in the input's float dtype.
        labels_: ``(n_samples,)`` int labels of the training data.
        inertia_: float, the sum of squared distances to the closest centre.
        n_iter_: iterations of the best run.
        n_features_in_: the number of features seen in ``fit``.

    Works on NumPy and, where the data are CuPy arrays, on the GPU.

    Example:
        >>> X = numpy.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]], float)
        >>> km = KMeans(n_clusters=2, n_init=3, random_state=0).fit(X)
        >>> sorted(km.cluster_centers_[:, 0].tolist())
        [1.0, 10.0]
    """

    def __init__(self, n_clusters=8, init="k-means++", n_init=10, max_iter=300, tol=1e-4,
                 random_state=None):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def _check_params(self, X):
        who = "KMeans"
        k = check_positive_int(self.n_clusters, who, "n_clusters")
        check_positive_int(self.n_init, who, "n_init")
        check_positive_int(self.max_iter, who, "max_iter")
        if not isinstance(self.tol, (int, float)) or self.tol < 0:
            raise ValueError(f"KMeans: tol must be a non-negative number, got {self.tol!r}.")
        if X.shape[0] < k:
            raise ValueError(f"KMeans: n_samples={X.shape[0]} should be >= n_clusters={k}; "
                             "ask for fewer clusters or give more samples.")
        if isinstance(self.init, str):
            if self.init not in ("k-means++", "random"):
                raise ValueError(f"KMeans: init must be 'k-means++', 'random' or an array of "
                                 f"centres, got {self.init!r}.")
        else:
            init = backend.get_array_module(X).asarray(self.init)
            if init.shape != (k, X.shape[1]):
                raise ValueError(f"KMeans: init centres should have shape {(k, X.shape[1])} "
                                 f"(n_clusters, n_features), got {init.shape}.")
        return k

    def fit(self, X, y=None):
        """Compute the clustering.

        Args:
            X: ``(n_samples, n_features)`` array (NumPy or CuPy).
            y: ignored (scikit-learn's signature).

        Returns:
            self
        """
        X = check_array(X, "KMeans.fit")
        k = self._check_params(X)
        xp = backend.get_array_module(X)
        rng = check_random_state(self.random_state)
        # the column means as one GEMV (float32 accumulation in BLAS's blocks is ample: the
        # same mean is added back to the centres)
        mean = (backend.ones_vector(X.shape[0], X.dtype, xp) @ X).astype(xp.float64) / X.shape[0]
        Xc = X - mean.astype(X.dtype)  # a centred copy: the user's array is never changed
        x_sq = _row_norms_sq(Xc, xp)
        tol = self.tol * float(x_sq.sum(dtype=xp.float64)) / X.size  # tol * mean variance
        n_init = self.n_init
        if not isinstance(self.init, str):
            n_init = 1
        best = None
        for _ in range(n_init):
            centers = self._init_centers(Xc, x_sq, k, rng, xp, mean)
            labels, inertia, centers, n_iter = self._lloyd(Xc, x_sq, centers, tol, xp)
            if best is None or inertia < best[1]:
                best = (labels, inertia, centers, n_iter)
        labels, inertia, centers, n_iter = best
        distinct = int(xp.unique(labels).size)
        if distinct < k:
            warnings.warn(f"KMeans: found {distinct} distinct clusters, fewer than n_clusters={k}"
                          "; the data may have duplicate points.", ConvergenceWarning,
                          stacklevel=2)
        self.cluster_centers_ = (centers.astype(xp.float64) + mean).astype(X.dtype)
        self.labels_ = labels
        self.inertia_ = inertia
        self.n_iter_ = n_iter
        self.n_features_in_ = X.shape[1]
        return self

    def _init_centers(self, X, x_sq, k, rng, xp, mean):
        if isinstance(self.init, str) and self.init == "k-means++":
            return _kmeans_plusplus(X, x_sq, k, rng, xp)
        if isinstance(self.init, str):  # "random": k distinct rows
            idx = rng.choice(X.shape[0], size=k, replace=False)
            return X[xp.asarray(idx)].copy()
        return (xp.asarray(self.init, dtype=xp.float64) - mean).astype(X.dtype)

    def _lloyd(self, X, x_sq, centers, tol, xp):
        """One run of Lloyd's iterations with Hamerly's bounds (same result as plain Lloyd)."""
        n, k = X.shape[0], centers.shape[0]
        eps = float(numpy.finfo(X.dtype).eps)
        c_sq_max = float(_row_norms_sq(centers, xp).max())

        def slack(rows_sq):
            # rounding of the GEMM expansion: the bounds are widened by it, so they stay bounds
            return 8 * eps * (rows_sq + c_sq_max) + 1e-30

        labels, d1, d2 = _two_nearest(X, x_sq, centers, xp)
        s = slack(x_sq)
        upper = xp.sqrt(d1 + s)
        lower = xp.sqrt(xp.maximum(d2 - s, 0))
        counts = xp.bincount(labels, minlength=k).astype(xp.float64)
        sums = _cluster_sums(X, labels, k, xp)
        c64 = centers.astype(xp.float64)
        strict = False
        n_changed = n
        it = 0
        for it in range(self.max_iter):
            if it > 0:
                n_changed = self._reassign(X, x_sq, centers, labels, upper, lower, sums, counts,
                                           slack, xp)
            if bool((counts == 0).any()):
                self._relocate_empty(X, centers, labels, sums, counts, lower, xp)
            new = sums / counts[:, None]
            shift = xp.sqrt(((new - c64) ** 2).sum(axis=1))
            c64 = new
            centers = new.astype(X.dtype)
            c_sq_max = float(_row_norms_sq(centers, xp).max())
            if it > 0 and n_changed == 0:
                strict = True
                break
            if float((shift ** 2).sum()) <= tol:
                break
            # the centres moved: a sample's distance to its own centre grows by at most that
            # centre's shift, its distance to any other shrinks by at most the largest other
            upper += shift[labels]
            if k > 1:
                order = xp.argsort(shift)
                top, second = int(order[-1]), float(shift[order[-2]])
                lower -= xp.where(labels == top, second, float(shift[top]))
        if not strict:
            self._reassign(X, x_sq, centers, labels, upper, lower, sums, counts, slack, xp)
        return labels, _inertia(X, labels, centers, xp), centers, it + 1

    @staticmethod
    def _reassign(X, x_sq, centers, labels, upper, lower, sums, counts, slack, xp):
        """Assignment step on the samples whose bounds allow a change; returns how many moved.

        Updates labels, bounds, and the per-cluster sums and counts in place. When many samples
        are in doubt (early iterations) all rows go through the GEMM without gathering them, and
        when many moved the sums are recomputed rather than patched."""
        n, k = X.shape[0], centers.shape[0]
        active = upper > lower
        m = int(active.sum())
        if m == 0:
            return 0
        if m > n // 4:
            idx = None
            new, d1, d2 = _two_nearest(X, x_sq, centers, xp)
            s = slack(x_sq)
            old = labels.copy()
        else:
            idx = xp.nonzero(active)[0]
            new, d1, d2 = _two_nearest(X[idx], x_sq[idx], centers, xp)
            s = slack(x_sq[idx])
            old = labels[idx]
        d1 = xp.sqrt(d1 + s)
        d2 = xp.sqrt(xp.maximum(d2 - s, 0))
        moved = new != old
        n_moved = int(moved.sum())
        if idx is None:
            upper[:], lower[:] = d1, d2
            labels[:] = new
        else:
            upper[idx], lower[idx] = d1, d2
        if n_moved > n // 20:  # patching costs ~5x a full recompute per row
            if idx is not None:
                labels[idx] = new
            sums[:] = _cluster_sums(X, labels, k, xp)
            counts[:] = xp.bincount(labels, minlength=k)
        elif n_moved:
            rows = xp.nonzero(moved)[0] if idx is None else idx[moved]
            old, new = old[moved], new[moved]
            change = _onehot(new, k, xp.float64, xp) - _onehot(old, k, xp.float64, xp)
            sums += change.T @ X[rows].astype(xp.float64)
            counts += change.sum(axis=0)
            labels[rows] = new
        return n_moved

    @staticmethod
    def _relocate_empty(X, centers, labels, sums, counts, lower, xp):
        """Give each empty cluster one of the samples farthest from their centres."""
        empty = xp.nonzero(counts == 0)[0]
        diff = X - centers[labels]
        far = xp.einsum("ij,ij->i", diff, diff)
        far[counts[labels] <= 1] = -1  # never empty another cluster
        picks = xp.argsort(far)[::-1][:empty.size]
        for j, i in zip(empty.tolist(), picks.tolist()):
            old = int(labels[i])
            row = X[i].astype(xp.float64)
            sums[old] -= row
            counts[old] -= 1
            sums[j] = row
            counts[j] = 1
            labels[i] = j
        lower[:] = -1.0  # bounds are stale: every sample is checked on the next assignment

    # ------------------------------------------------------------------ using
    def _check_X(self, X, method):
        check_fitted(self, "cluster_centers_")
        X = check_array(X, f"KMeans.{method}")
        check_n_features(self, X, self.n_features_in_, f"KMeans.{method}")
        return X.astype(self.cluster_centers_.dtype, copy=False)

    def predict(self, X):
        """Index of the closest centre for each sample of X ``(n_samples, n_features)``."""
        X = self._check_X(X, "predict")
        xp = backend.get_array_module(X)
        C = xp.asarray(self.cluster_centers_)
        out = xp.empty(X.shape[0], dtype=xp.int64)
        step = max(1, _CHUNK_ELEMENTS // C.shape[0])
        for s in range(0, X.shape[0], step):
            Xb = X[s:s + step].astype(xp.float64)
            out[s:s + step] = xp.argmin(
                _sq_distances(Xb, _row_norms_sq(Xb, xp), C.astype(xp.float64), xp), axis=1)
        return out

    def fit_predict(self, X, y=None):
        """Fit and return ``labels_``."""
        return self.fit(X).labels_

    def transform(self, X):
        """Euclidean distances ``(n_samples, n_clusters)`` from each sample to each centre."""
        X = self._check_X(X, "transform")
        xp = backend.get_array_module(X)
        Xb = X.astype(xp.float64)
        return xp.sqrt(_sq_distances(Xb, _row_norms_sq(Xb, xp),
                                     xp.asarray(self.cluster_centers_, dtype=xp.float64), xp))

    def fit_transform(self, X, y=None):
        """Fit and return the distances of the training data to the centres."""
        return self.fit(X).transform(X)

    def score(self, X, y=None):
        """Minus the inertia of X with respect to the fitted centres (higher is better)."""
        X = self._check_X(X, "score")
        xp = backend.get_array_module(X)
        labels = self.predict(X)
        return -_inertia(X.astype(xp.float64), labels,
                         xp.asarray(self.cluster_centers_, dtype=xp.float64), xp)

    def __repr__(self):
        return f"KMeans(n_clusters={self.n_clusters})"
