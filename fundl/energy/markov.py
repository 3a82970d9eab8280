"""Finite Markov chains: stationary distributions, n-step transitions, sampling."""
from __future__ import annotations

import numpy

from ..cluster._estimator import check_positive_int, check_random_state


class MarkovChain:
    """A time-homogeneous Markov chain on finitely many states.

    ``P[i, j]`` is the probability of moving from state i to state j; a distribution over
    states is a row vector that evolves as ``π_{t+1} = π_t P``. A stationary distribution
    satisfies ``π = π P``: the left eigenvector of P for eigenvalue 1. For an irreducible,
    aperiodic chain it is unique and every start converges to it.

    The bridge to Boltzmann machines: Gibbs sampling, which resamples one unit at a time from
    its conditional ``p(s_i | s_-i)``, is itself a Markov chain on the network's states, and its
    stationary distribution is the Boltzmann distribution ``p(s) ∝ exp(-E(s))``. That is why
    running the sampler long enough (RBM's CD/PCD chains, :class:`BoltzmannMachine`'s free
    phase) yields samples from the model. ``BoltzmannMachine.transition_matrix()`` builds this
    chain for a tiny network, and ``MarkovChain(...).stationary()`` of it equals the Boltzmann
    distribution (tested).

    Args:
        P: ``(n_states, n_states)`` non-negative, each row summing to 1.
        states: optional labels of the states (for ``sample``'s output and start).

    Example:
        >>> chain = MarkovChain([[0.9, 0.1], [0.5, 0.5]], states=["sun", "rain"])
        >>> chain.stationary().round(4).tolist()
        [0.8333, 0.1667]
    """

    def __init__(self, P, states=None):
        P = numpy.asarray(P, dtype=numpy.float64)
        if P.ndim != 2 or P.shape[0] != P.shape[1] or P.shape[0] == 0:
            raise ValueError(f"MarkovChain: P must be a square (n_states, n_states) matrix, got "
                             f"shape {P.shape}.")
        if not numpy.isfinite(P).all() or (P < 0).any():
            raise ValueError("MarkovChain: P must be finite and non-negative (transition "
                             "probabilities).")
        sums = P.sum(axis=1)
        if not numpy.allclose(sums, 1.0, atol=1e-8):
            bad = int(numpy.argmax(numpy.abs(sums - 1)))
            raise ValueError(f"MarkovChain: each row of P must sum to 1; row {bad} sums to "
                             f"{sums[bad]:.6g}. Normalise with P / P.sum(axis=1, keepdims=True).")
        if states is not None:
            states = list(states)
            if len(states) != P.shape[0] or len(set(states)) != len(states):
                raise ValueError(f"MarkovChain: states must be {P.shape[0]} distinct labels, got "
                                 f"{states!r}.")
        self.P = P
        self.states = states
        self.n_states = P.shape[0]

    def stationary(self):
        """A stationary distribution π (``π P = π``, ``Σ π = 1``), as ``(n_states,)``.

        Solved as the linear system ``(Pᵀ - I) π = 0`` with the normalisation row appended
        (least squares). For a reducible chain with several stationary distributions this
        returns one of them.
        """
        n = self.n_states
        A = numpy.vstack([self.P.T - numpy.eye(n), numpy.ones((1, n))])
        b = numpy.zeros(n + 1)
        b[-1] = 1.0
        pi = numpy.linalg.lstsq(A, b, rcond=None)[0]
        pi = numpy.clip(pi, 0, None)
        return pi / pi.sum()

    def n_step(self, k):
        """The k-step transition matrix ``P^k`` (``P^k[i, j]``: from i to j in k steps)."""
        k = check_positive_int(k, "MarkovChain.n_step", "k", minimum=0)
        return numpy.linalg.matrix_power(self.P, k)

    def _index(self, state):
        if self.states is not None and state in self.states:
            return self.states.index(state)
        if isinstance(state, (int, numpy.integer)) and not isinstance(state, bool) \
                and 0 <= state < self.n_states and self.states is None:
            return int(state)
        known = self.states if self.states is not None else f"0..{self.n_states - 1}"
        raise ValueError(f"MarkovChain.sample: unknown start state {state!r}; expected one of "
                         f"{known}.")

    def sample(self, n_steps, start, random_state=None):
        """A trajectory of ``n_steps`` transitions from ``start``.

        Returns:
            ``(n_steps + 1,)`` states, the start first (labels when ``states`` was given, else
            int indices).
        """
        n_steps = check_positive_int(n_steps, "MarkovChain.sample", "n_steps", minimum=0)
        rng = check_random_state(random_state)
        cumulative = numpy.cumsum(self.P, axis=1)
        cumulative[:, -1] = 1.0  # rows sum to 1 up to rounding
        path = numpy.empty(n_steps + 1, dtype=numpy.int64)
        path[0] = self._index(start)
        draws = rng.random(n_steps)
        for t in range(n_steps):  # sequential by nature: each step depends on the last
            path[t + 1] = numpy.searchsorted(cumulative[path[t]], draws[t], side="right")
        if self.states is None:
            return path
        return numpy.array(self.states, dtype=object)[path]

    def __repr__(self):
        return f"MarkovChain(n_states={self.n_states})"
