"""Restricted Boltzmann machines trained by contrastive divergence (CD-k) or persistent CD."""
from __future__ import annotations

import contextlib
import math
import time

import numpy

from .. import backend
from ..cluster._estimator import (
    check_array, check_fitted, check_n_features, check_positive_int, check_random_state,
)
from ..kernels._parallel import single_threaded_blas


def _sigmoid(x, xp):
    # 1 / (1 + exp(-x)) in place, overflow-free: exp of a large positive -x gives inf -> 0
    with numpy.errstate(over="ignore"):
        xp.negative(x, out=x)
        xp.exp(x, out=x)
        x += 1
        xp.reciprocal(x, out=x)
    return x


def _softplus(x, xp):
    return xp.logaddexp(0, x)


class RBM:
    """A restricted Boltzmann machine with scikit-learn's ``BernoulliRBM`` surface.

    Energy ``E(v, h) = -vᵀWᵀh - bᵀv - cᵀh`` for binary visible units (``visible="bernoulli"``)
    or ``E(v, h) = ½‖v - b‖² - vᵀWᵀh - cᵀh`` for real-valued visible units of unit variance
    (``visible="gaussian"``; standardise the data first); the hidden units are binary. Both
    conditionals factorise: ``p(h_j = 1 | v) = σ(c_j + W_j·v)`` and ``p(v | h)`` is
    ``σ(b + Wᵀh)`` (Bernoulli) or ``N(b + Wᵀh, 1)`` (Gaussian).

    Training (Hinton 2002; Tieleman 2008): for each mini-batch the positive statistics come from
    the data with hidden probabilities; the negative ones from ``k`` steps of block Gibbs
    sampling, started from the data's hidden samples (CD-k, ``persistent=False``) or continued
    from persistent chains kept across updates (PCD, the default, which is scikit-learn's
    algorithm with k = 1). The gradient step is
    ``W += lr · (⟨h vᵀ⟩_data - ⟨h vᵀ⟩_model)`` with batch means, and likewise for the biases;
    hidden units enter both statistics as probabilities ``p(h | v)``, visible units as the
    data and as the chains' sampled v (scikit-learn's estimator, unbiased for PCD).
    Mini-batches are visited in a new random order each epoch (scikit-learn keeps one order).

    With ``average=True`` (the default) :meth:`fit` returns the mean of the parameters over
    its last epoch's updates (the second half of the updates when ``n_iter`` is 1): Polyak-
    Ruppert iterate averaging. At a fixed learning rate PCD's parameters oscillate (the
    chains and the weights chase each other): on binarised MNIST with scikit-learn's settings
    the held-out pseudo-likelihood of the current parameters swings between about -100 and
    -120 nats within one epoch, while the last epoch's average scores about -84 (see
    benchmarks/bench_rbm.py). The persistent chains ``h_samples_`` stay those of the last
    iterate; :meth:`partial_fit` never averages. ``average=False`` returns the last iterate,
    as scikit-learn does.
    Everything runs in the data's float dtype (float32 stays float32) with in-place updates,
    so a mini-batch costs a handful of GEMMs and little Python.

    Args:
        n_components: the number of hidden units.
        learning_rate: the step size.
        batch_size: samples per mini-batch (also the number of persistent chains).
        n_iter: epochs over the training data.
        k: Gibbs steps per update.
        persistent: PCD (True) or CD-k (False).
        visible: ``"bernoulli"`` (data in [0, 1]) or ``"gaussian"`` (real-valued).
        random_state: None, an int or a ``numpy.random.Generator``.
        verbose: print the pseudo-likelihood (Bernoulli) or mean free energy after each epoch.
        average: fit returns the parameters averaged over its last epoch (True) or the last
            iterate (False).

    Attributes:
        components_: ``(n_components, n_features)`` the weights W.
        intercept_hidden_: ``(n_components,)`` c.  intercept_visible_: ``(n_features,)`` b.
        h_samples_: ``(batch_size, n_components)`` the persistent chains' hidden states.

    Example:
        >>> X = (numpy.random.default_rng(0).random((100, 16)) > 0.5).astype(numpy.float32)
        >>> rbm = RBM(n_components=8, n_iter=2, random_state=0).fit(X)
        >>> rbm.transform(X).shape
        (100, 8)
    """

    def __init__(self, n_components=256, learning_rate=0.1, batch_size=10, n_iter=10, k=1,
                 persistent=True, visible="bernoulli", random_state=None, verbose=0,
                 average=True):
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.k = k
        self.persistent = persistent
        self.visible = visible
        self.random_state = random_state
        self.verbose = verbose
        self.average = average

    # ------------------------------------------------------------------ the conditionals
    def _mean_hiddens(self, v):
        xp = backend.get_array_module(v)
        h = v @ self.components_.T
        h += self.intercept_hidden_
        return _sigmoid(h, xp)

    def _mean_visibles(self, h):
        xp = backend.get_array_module(h)
        v = h @ self.components_
        v += self.intercept_visible_
        return v if self.visible == "gaussian" else _sigmoid(v, xp)

    def _sample(self, p, rng):
        xp = backend.get_array_module(p)
        u = self._uniform(p.shape, rng, xp)
        return (u < p).astype(p.dtype)

    def _uniform(self, shape, rng, xp):
        if xp is numpy:
            return rng.random(shape, dtype=self._dtype)
        return xp.random.random(shape, dtype=self._dtype)

    def _draw_visibles(self, v_mean, rng):
        """A sample of v given its conditional mean (Bernoulli, or unit-variance Gaussian)."""
        if self.visible == "gaussian":
            xp = backend.get_array_module(v_mean)
            noise = (rng.standard_normal(v_mean.shape, dtype=self._dtype) if xp is numpy
                     else xp.random.standard_normal(v_mean.shape, dtype=self._dtype))
            return v_mean + noise
        return self._sample(v_mean, rng)

    def _sample_visibles(self, h, rng):
        return self._draw_visibles(self._mean_visibles(h), rng)

    def free_energy(self, v):
        """``F(v) = -log Σ_h exp(-E(v, h))`` for each row of v ``(n_samples, n_features)``."""
        check_fitted(self, "components_")
        xp = backend.get_array_module(v)
        hidden = _softplus(v @ self.components_.T + self.intercept_hidden_, xp).sum(axis=1)
        if self.visible == "gaussian":
            return 0.5 * ((v - self.intercept_visible_) ** 2).sum(axis=1) - hidden
        return -(v @ self.intercept_visible_) - hidden

    # ------------------------------------------------------------------ fitting
    def _check_params(self):
        who = "RBM"
        check_positive_int(self.n_components, who, "n_components")
        check_positive_int(self.batch_size, who, "batch_size")
        check_positive_int(self.n_iter, who, "n_iter", minimum=0)
        check_positive_int(self.k, who, "k")
        if self.visible not in ("bernoulli", "gaussian"):
            raise ValueError(f"RBM: visible must be 'bernoulli' or 'gaussian', got "
                             f"{self.visible!r}.")

    def _check_X(self, X, who):
        X = check_array(X, who)
        if self.visible == "bernoulli" and (bool((X < 0).any()) or bool((X > 1).any())):
            raise ValueError(f"{who}: a Bernoulli RBM needs data in [0, 1] (binary or "
                             "probabilities); scale the data, or use visible='gaussian' for "
                             "real values.")
        return X

    def _initialise(self, X):
        self._check_params()
        xp = backend.get_array_module(X)
        self._dtype = X.dtype
        self.random_state_ = check_random_state(self.random_state)
        rng = self.random_state_
        W = rng.normal(0, 0.01, (self.n_components, X.shape[1])).astype(X.dtype)
        self.components_ = xp.asarray(W)
        self.intercept_hidden_ = xp.zeros(self.n_components, dtype=X.dtype)
        self.intercept_visible_ = xp.zeros(X.shape[1], dtype=X.dtype)
        if self.visible == "gaussian":
            self.intercept_visible_ += X.mean(axis=0).astype(X.dtype)
        self.h_samples_ = xp.zeros((self.batch_size, self.n_components), dtype=X.dtype)
        self.n_features_in_ = X.shape[1]

    def fit(self, X, y=None):
        """Train on X ``(n_samples, n_features)`` for ``n_iter`` epochs; returns self."""
        X = self._check_X(X, "RBM.fit")
        self._initialise(X)
        rng = self.random_state_
        n = X.shape[0]
        n_batches = int(math.ceil(n / self.batch_size))
        # even slices as scikit-learn's gen_even_slices: sizes differ by at most one
        bounds = [(i * n) // n_batches for i in range(n_batches + 1)]
        # iterate averaging over the last epoch (the second half of a single one): PCD's
        # parameters oscillate at a fixed learning rate, and their mean is a far better model
        # than any one iterate (the class docstring gives the figures)
        total = self.n_iter * n_batches
        start_avg = total - min(n_batches, (total + 1) // 2) if self.average else total
        sums, n_avg, step = None, 0, 0
        for epoch in range(self.n_iter):
            start = time.perf_counter()
            with self._blas_threads(X):
                for b in rng.permutation(n_batches).tolist():
                    self._update(X[bounds[b]:bounds[b + 1]], rng)
                    step += 1
                    if step > start_avg:
                        params = self._params()
                        if sums is None:
                            sums = [p.copy() for p in params]
                        else:
                            for acc, p in zip(sums, params):
                                acc += p
                        n_avg += 1
            if self.verbose:
                elapsed = time.perf_counter() - start
                what = ("pseudo-likelihood", float(self.score_samples(X).mean())) \
                    if self.visible == "bernoulli" else \
                    ("mean free energy", float(self.free_energy(X).mean()))
                print(f"[RBM] Iteration {epoch + 1}, {what[0]} = {what[1]:.2f}, time = "
                      f"{elapsed:.2f}s")
        if sums is not None:
            for acc in sums:
                acc /= n_avg
            self.components_, self.intercept_hidden_, self.intercept_visible_ = sums
        return self

    def _params(self):
        return self.components_, self.intercept_hidden_, self.intercept_visible_

    def _blas_threads(self, X):
        """One BLAS thread for small mini-batches: their GEMMs take microseconds, and
        splitting them over threads costs more than it saves (10 x 784 x 256 products measured
        0.3 ms on one thread against 5 ms on two on a busy 2-core machine)."""
        if backend.get_array_module(X) is numpy and self.batch_size <= 64:
            return single_threaded_blas()
        return contextlib.nullcontext()

    def partial_fit(self, X, y=None):
        """One update with X as a single mini-batch (initialising on the first call)."""
        X = self._check_X(X, "RBM.partial_fit")
        if getattr(self, "components_", None) is None:
            self._initialise(X)
        else:
            check_n_features(self, X, self.n_features_in_, "RBM.partial_fit")
            X = X.astype(self._dtype, copy=False)
        self._update(X, self.random_state_)
        return self

    def _update(self, v_pos, rng):
        """One CD-k / PCD step on a mini-batch."""
        h_pos = self._mean_hiddens(v_pos)
        h = self.h_samples_ if self.persistent else self._sample(h_pos, rng)
        for _ in range(self.k):
            v_mean = self._mean_visibles(h)
            v_neg = self._draw_visibles(v_mean, rng)
            h_neg = self._mean_hiddens(v_neg)
            h = self._sample(h_neg, rng)
        # negative statistics with the sampled v, as scikit-learn: p(v | h) in its place
        # (fundl's earlier choice) pairs h_neg = p(h | v_neg) with a v it was not computed
        # from, which biases the model's correlations (binarised MNIST, 10k samples, 10
        # epochs, last-epoch averages, seeds 0-3: held-out pseudo-likelihood -87.4/-85.7/
        # -87.2/-86.0 with p(v | h) against -84.1/-84.7/-85.6/-82.8 with the sample)
        lr = self.learning_rate / v_pos.shape[0]
        W = self.components_
        W += (h_pos * lr).T @ v_pos
        W -= (h_neg * lr).T @ v_neg
        self.intercept_hidden_ += lr * (h_pos.sum(axis=0) - h_neg.sum(axis=0))
        self.intercept_visible_ += lr * (v_pos.sum(axis=0) - v_neg.sum(axis=0))
        if self.persistent:
            self.h_samples_ = h

    # ------------------------------------------------------------------ using
    def _check_input(self, X, who):
        check_fitted(self, "components_")
        X = check_array(X, who)
        check_n_features(self, X, self.n_features_in_, who)
        return X.astype(self._dtype, copy=False)

    def transform(self, X):
        """The hidden units' probabilities ``p(h = 1 | v)``, ``(n_samples, n_components)``."""
        return self._mean_hiddens(self._check_input(X, "RBM.transform"))

    def fit_transform(self, X, y=None):
        """Fit and return the hidden probabilities of X."""
        return self.fit(X).transform(X)

    def gibbs(self, v):
        """One Gibbs step from visible states v: sample h, then v; returns the new v."""
        v = self._check_input(v, "RBM.gibbs")
        rng = self.random_state_
        return self._sample_visibles(self._sample(self._mean_hiddens(v), rng), rng)

    def score_samples(self, X):
        """The pseudo-likelihood of each row of X, as scikit-learn's ``BernoulliRBM`` computes
        it: ``n_features · log σ(F(ṽ) - F(v))`` with ṽ equal to v with one randomly chosen
        visible unit flipped (a stochastic estimate; Bernoulli visible units only).

        Returns:
            ``(n_samples,)`` float64 (higher is better).
        """
        X = self._check_input(X, "RBM.score_samples")
        if self.visible != "bernoulli":
            raise ValueError("RBM.score_samples: the pseudo-likelihood flips binary units and "
                             "needs visible='bernoulli'; use free_energy(X) for a Gaussian RBM.")
        xp = backend.get_array_module(X)
        rng = self.random_state_
        n, d = X.shape
        flip = xp.asarray(rng.integers(0, d, n))
        rows = xp.arange(n)
        Xf = X.copy()
        Xf[rows, flip] = 1 - Xf[rows, flip]
        diff = (self.free_energy(Xf) - self.free_energy(X)).astype(xp.float64)
        return -d * xp.logaddexp(0, -diff)

    def pseudo_likelihood(self, X, batch_size=16):
        """The exact log pseudo-likelihood ``Σ_i log p(v_i | v_-i)`` of each row of X: the
        expectation of :meth:`score_samples` over the flipped unit, without its noise
        (Bernoulli visible units only). Costs ``n_samples · n_features · n_components``.

        Returns:
            ``(n_samples,)`` float64.
        """
        X = self._check_input(X, "RBM.pseudo_likelihood")
        if self.visible != "bernoulli":
            raise ValueError("RBM.pseudo_likelihood: needs visible='bernoulli'.")
        xp = backend.get_array_module(X)
        W = self.components_.astype(xp.float64)
        out = xp.empty(X.shape[0], dtype=xp.float64)
        for s in range(0, X.shape[0], batch_size):
            v = X[s:s + batch_size].astype(xp.float64)
            a = v @ W.T + self.intercept_hidden_                  # (n, H)
            sign = 1 - 2 * v                                        # +1 turns a 0 into a 1
            # F(flipped_i) - F(v) for every unit i: the visible term and the hidden softplus
            # terms with the pre-activations moved by ±W[:, i]
            shifted = a[:, None, :] + sign[:, :, None] * W.T[None, :, :]   # (n, D, H)
            diff = (-sign * self.intercept_visible_
                    - _softplus(shifted, xp).sum(axis=2)
                    + _softplus(a, xp).sum(axis=1)[:, None])
            out[s:s + batch_size] = -xp.logaddexp(0, -diff).sum(axis=1)
        return out

    def score(self, X, y=None):
        """The mean pseudo-likelihood of X."""
        return float(self.score_samples(X).mean())

    def __repr__(self):
        return (f"RBM(n_components={self.n_components}, learning_rate={self.learning_rate}, "
                f"k={self.k}, persistent={self.persistent}, visible={self.visible!r}, "
                f"average={self.average})")
