"""The Boltzmann machine (Ackley, Hinton & Sejnowski 1985): stochastic binary units, fully
connected by symmetric weights, learned from clamped and free Gibbs sampling phases."""
from __future__ import annotations

import itertools

import numpy

from ..cluster._estimator import (
    check_array, check_fitted, check_positive_int, check_random_state,
)

_MAX_EXACT_UNITS = 20


def _sigmoid(x):
    return 0.5 * (1 + numpy.tanh(0.5 * x))  # overflow-free


class BoltzmannMachine:
    """A fully connected Boltzmann machine with visible and hidden binary (0/1) units.

    Energy ``E(s) = -½ sᵀ W s - bᵀ s`` over all units ``s = (v, h)``, W symmetric with a zero
    diagonal; ``p(s) ∝ exp(-E(s))``. Unit i turns on with probability
    ``σ(Σ_j W_ij s_j + b_i)`` given the others, and Gibbs sampling (one unit at a time, over
    all units in a sweep) draws from ``p``: it is a Markov chain whose stationary distribution
    is the Boltzmann distribution (see :class:`MarkovChain` and :meth:`transition_matrix`).

    Learning (the Boltzmann machine rule): ``ΔW_ij = lr · (⟨s_i s_j⟩_clamped - ⟨s_i s_j⟩_free)``
    and ``Δb_i = lr · (⟨s_i⟩_clamped - ⟨s_i⟩_free)``. The clamped phase fixes the visible units
    to a data vector and runs ``k`` Gibbs sweeps over the hidden units; the free phase runs
    ``k`` sweeps over all units of ``n_particles`` persistent chains (persistent "fantasy
    particles", Tieleman 2008). Unlike an :class:`RBM`, hidden-hidden and visible-visible
    connections exist, so neither phase has a closed form.

    Args:
        n_visible, n_hidden: the numbers of units.
        learning_rate: the step size.
        n_iter: epochs over the data.
        k: Gibbs sweeps per phase and update.
        batch_size: data vectors per update.
        n_particles: persistent chains of the free phase.
        random_state: None, an int or a ``numpy.random.Generator``.

    Attributes:
        weights_: ``(n_units, n_units)`` symmetric, zero diagonal (visible units first).
        bias_: ``(n_units,)``.

    Example:
        >>> X = numpy.array([[1, 1, 0, 0], [0, 0, 1, 1]] * 20)
        >>> bm = BoltzmannMachine(4, 2, n_iter=50, random_state=0).fit(X)
        >>> bool(bm.log_likelihood(X).mean() > -4 * numpy.log(2))   # better than uniform
        True
    """

    def __init__(self, n_visible, n_hidden, learning_rate=0.05, n_iter=100, k=5,
                 batch_size=10, n_particles=100, random_state=None):
        self.n_visible = n_visible
        self.n_hidden = n_hidden
        self.learning_rate = learning_rate
        self.n_iter = n_iter
        self.k = k
        self.batch_size = batch_size
        self.n_particles = n_particles
        self.random_state = random_state

    def _check_params(self):
        who = "BoltzmannMachine"
        check_positive_int(self.n_visible, who, "n_visible")
        check_positive_int(self.n_hidden, who, "n_hidden", minimum=0)
        check_positive_int(self.n_iter, who, "n_iter", minimum=0)
        check_positive_int(self.k, who, "k")
        check_positive_int(self.batch_size, who, "batch_size")
        check_positive_int(self.n_particles, who, "n_particles")

    def _check_X(self, X, who):
        X = check_array(X, who)
        if not bool(((X == 0) | (X == 1)).all()):
            raise ValueError(f"{who}: X must be binary (0/1 values).")
        if X.shape[1] != self.n_visible:
            raise ValueError(f"{who}: X has {X.shape[1]} features, but the machine has "
                             f"n_visible={self.n_visible} visible units.")
        return numpy.asarray(X, dtype=numpy.float64)

    def _sweep(self, S, units, rng):
        """One Gibbs sweep over ``units`` (in a random order) of each row of S, in place."""
        W, b = self.weights_, self.bias_
        for i in rng.permutation(units).tolist():
            p = _sigmoid(S @ W[:, i] + b[i])
            S[:, i] = rng.random(S.shape[0]) < p

    def fit(self, X, y=None):
        """Learn from binary X ``(n_samples, n_visible)`` for ``n_iter`` epochs, starting from
        small random weights; returns self."""
        self._check_params()
        X = self._check_X(X, "BoltzmannMachine.fit")
        self._initialise()
        for _ in range(self.n_iter):
            self._epoch(X)
        return self

    def partial_fit(self, X, y=None):
        """One epoch over X from the current weights (initialising them on the first call);
        returns self."""
        self._check_params()
        X = self._check_X(X, "BoltzmannMachine.partial_fit")
        if getattr(self, "weights_", None) is None:
            self._initialise()
        self._epoch(X)
        return self

    def _initialise(self):
        rng = check_random_state(self.random_state)
        n_units = self.n_visible + self.n_hidden
        W = numpy.triu(rng.normal(0, 0.01, (n_units, n_units)), 1)
        self.weights_ = W + W.T
        self.bias_ = numpy.zeros(n_units)
        self.particles_ = (rng.random((self.n_particles, n_units)) < 0.5).astype(numpy.float64)
        self.random_state_ = rng
        self.n_features_in_ = self.n_visible

    def _epoch(self, X):
        rng = self.random_state_
        n_units = self.n_visible + self.n_hidden
        hidden = numpy.arange(self.n_visible, n_units)
        every = numpy.arange(n_units)
        order = rng.permutation(X.shape[0])
        for s in range(0, X.shape[0], self.batch_size):
            v = X[order[s:s + self.batch_size]]
            clamped = numpy.hstack([v, (rng.random((v.shape[0], self.n_hidden)) < 0.5)
                                    .astype(numpy.float64)])
            for _ in range(self.k):
                self._sweep(clamped, hidden, rng)
            for _ in range(self.k):
                self._sweep(self.particles_, every, rng)
            free = self.particles_
            dW = clamped.T @ clamped / clamped.shape[0] - free.T @ free / free.shape[0]
            numpy.fill_diagonal(dW, 0.0)
            self.weights_ += self.learning_rate * dW
            self.bias_ += self.learning_rate * (clamped.mean(axis=0) - free.mean(axis=0))

    def energy(self, S):
        """``E(s)`` of each row of S ``(n, n_units)`` (visible units first)."""
        check_fitted(self, "weights_")
        S = numpy.asarray(S, dtype=numpy.float64)
        return -0.5 * ((S @ self.weights_) * S).sum(axis=-1) - S @ self.bias_

    def _all_states(self):
        n_units = self.n_visible + self.n_hidden
        if n_units > _MAX_EXACT_UNITS:
            raise ValueError(f"BoltzmannMachine: exact enumeration needs 2^{n_units} states; it "
                             f"is limited to n_visible + n_hidden <= {_MAX_EXACT_UNITS}.")
        return numpy.array(list(itertools.product((0.0, 1.0), repeat=n_units)))

    def log_likelihood(self, X):
        """Exact ``log p(v)`` of each row of X by enumerating all ``2^(n_visible+n_hidden)``
        states (tiny machines only: at most 20 units).

        Returns:
            ``(n_samples,)`` float64.
        """
        check_fitted(self, "weights_")
        X = self._check_X(X, "BoltzmannMachine.log_likelihood")
        states = self._all_states()
        neg_e = -self.energy(states)
        log_z = numpy.logaddexp.reduce(neg_e)
        # log p(v) = log Σ_h exp(-E(v, h)) - log Z, states grouped by their visible part
        weights = 2 ** numpy.arange(self.n_visible)[::-1]
        v_code = states[:, :self.n_visible] @ weights
        log_pv = numpy.full(2 ** self.n_visible, -numpy.inf)
        numpy.logaddexp.at(log_pv, v_code.astype(int), neg_e)
        return log_pv[(X @ weights).astype(int)] - log_z

    def transition_matrix(self):
        """The random-scan Gibbs sampler as a Markov chain over all ``2^n_units`` states
        (tiny machines only): pick a unit uniformly, resample it from its conditional.

        Returns:
            ``(2^n_units, 2^n_units)`` row-stochastic; its stationary distribution is the
            Boltzmann distribution :meth:`state_probabilities`.
        """
        check_fitted(self, "weights_")
        states = self._all_states()
        n_states, n_units = states.shape
        T = numpy.zeros((n_states, n_states))
        field = states @ self.weights_ + self.bias_  # zero diagonal: unit i's own input
        codes = numpy.arange(n_states)
        for i in range(n_units):
            bit = 1 << (n_units - 1 - i)
            on = codes | bit
            off = codes & ~bit
            p_on = _sigmoid(field[:, i])
            numpy.add.at(T, (codes, on), p_on / n_units)
            numpy.add.at(T, (codes, off), (1 - p_on) / n_units)
        return T

    def state_probabilities(self):
        """The exact Boltzmann distribution ``p(s)`` over all ``2^n_units`` states."""
        neg_e = -self.energy(self._all_states())
        return numpy.exp(neg_e - numpy.logaddexp.reduce(neg_e))

    def sample(self, n_samples, n_sweeps=100, random_state=None):
        """Visible samples from the model: ``n_sweeps`` Gibbs sweeps from random states.

        Returns:
            ``(n_samples, n_visible)`` of 0/1.
        """
        check_fitted(self, "weights_")
        rng = check_random_state(random_state)
        n_units = self.n_visible + self.n_hidden
        S = (rng.random((n_samples, n_units)) < 0.5).astype(numpy.float64)
        for _ in range(n_sweeps):
            self._sweep(S, numpy.arange(n_units), rng)
        return S[:, :self.n_visible]

    def __repr__(self):
        return f"BoltzmannMachine(n_visible={self.n_visible}, n_hidden={self.n_hidden})"
