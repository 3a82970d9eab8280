"""The Hopfield network (1982): Hebbian storage of ±1 patterns, recall by descending an energy."""
from __future__ import annotations

import numpy

from .. import backend
from ..cluster._estimator import check_fitted, check_positive_int, check_random_state


def _check_pm1(x, n_units, who, name):
    xp = backend.get_array_module(x)
    x = xp.asarray(x) if xp is not numpy else numpy.asarray(x)
    if x.ndim not in (1, 2) or x.shape[-1] != n_units:
        raise ValueError(f"{who}: expected {name} of shape ({n_units},) or (n, {n_units}), got "
                         f"shape {x.shape}.")
    if x.dtype.kind not in "biuf" or not bool(((x == 1) | (x == -1)).all()):
        hint = (" For 0/1 patterns pass 2 * x - 1." if x.dtype.kind in "biuf"
                and bool(((x == 0) | (x == 1)).all()) else "")
        raise ValueError(f"{who}: {name} must contain only -1 and +1 (bipolar states).{hint}")
    return x.astype(numpy.float64)


class Hopfield:
    """A Hopfield network of ``n_units`` bipolar (±1) neurons with symmetric weights.

    ``store`` sets the weights by Hebb's rule, ``W = (1/N) Σ_μ ξ^μ ξ^μᵀ`` with a zero diagonal,
    which makes the stored patterns minima of the energy ``E(s) = -½ sᵀ W s``. ``recall`` runs
    the dynamics ``s_i <- sign(Σ_j W_ij s_j)`` (a unit whose input is exactly 0 keeps its state):

    - ``"async"``: units are updated one at a time in a random order (one step = one sweep over
      all units). Each flip lowers E, so the energy never rises and a fixed point is reached.
    - ``"sync"``: all units at once; E may rise and the state may cycle between two
      configurations (then ``max_steps`` ends the recall).

    With random patterns, recall from a stored pattern is reliable up to about ``0.138·N``
    patterns (Amit, Gutfreund & Sompolinsky 1985).

    Args:
        n_units: the number of neurons N.

    Attributes:
        weights_: ``(N, N)`` symmetric weights with a zero diagonal (after ``store``).
        n_patterns_: the number of stored patterns.
        n_steps_: the sweeps the last ``recall`` ran.

    Example:
        >>> net = Hopfield(6).store([[1, -1, 1, -1, 1, -1]])
        >>> net.recall([1, -1, 1, -1, 1, 1]).tolist()
        [1.0, -1.0, 1.0, -1.0, 1.0, -1.0]
    """

    def __init__(self, n_units):
        self.n_units = check_positive_int(n_units, "Hopfield", "n_units")
        self.weights_ = None

    def store(self, patterns):
        """Set the weights from ``patterns`` ``(n_patterns, N)`` of ±1 by Hebb's rule (replacing
        what was stored before); returns self."""
        P = _check_pm1(patterns, self.n_units, "Hopfield.store", "patterns")
        xp = backend.get_array_module(P)
        P = P.reshape(-1, self.n_units)
        W = P.T @ P / self.n_units
        xp.fill_diagonal(W, 0.0)
        self.weights_ = W
        self.n_patterns_ = P.shape[0]
        return self

    def energy(self, x):
        """``E(s) = -½ sᵀ W s`` of a state ``(N,)`` (a float) or of each row of ``(n, N)``."""
        check_fitted(self, "weights_")
        S = _check_pm1(x, self.n_units, "Hopfield.energy", "x")
        E = -0.5 * ((S @ self.weights_) * S).sum(axis=-1)
        return float(E) if S.ndim == 1 else E

    def recall(self, x, max_steps=100, mode="async", random_state=None):
        """Run the dynamics from state(s) x until nothing changes or ``max_steps`` sweeps.

        Args:
            x: ``(N,)`` or ``(n, N)`` of ±1 (several probes are recalled side by side).
            max_steps: the most sweeps (async) or parallel updates (sync).
            mode: ``"async"`` or ``"sync"``.
            random_state: seeds the async update order.

        Returns:
            The final states, same shape as x, float ±1.
        """
        check_fitted(self, "weights_")
        check_positive_int(max_steps, "Hopfield.recall", "max_steps", minimum=0)
        if mode not in ("async", "sync"):
            raise ValueError(f"Hopfield.recall: mode must be 'async' or 'sync', got {mode!r}.")
        S = _check_pm1(x, self.n_units, "Hopfield.recall", "x")
        single = S.ndim == 1
        S = S.reshape(-1, self.n_units).copy()
        xp = backend.get_array_module(S)
        W = self.weights_
        rng = check_random_state(random_state)
        self.n_steps_ = 0
        for _ in range(max_steps):
            self.n_steps_ += 1
            if mode == "sync":
                h = S @ W
                new = xp.where(h > 0, 1.0, xp.where(h < 0, -1.0, S))
                changed = bool((new != S).any())
                S = new
            else:
                changed = False
                for i in rng.permutation(self.n_units).tolist():
                    h = S @ W[:, i]
                    new = xp.where(h > 0, 1.0, xp.where(h < 0, -1.0, S[:, i]))
                    if bool((new != S[:, i]).any()):
                        changed = True
                        S[:, i] = new
            if not changed:
                break
        return S[0] if single else S

    def __repr__(self):
        return f"Hopfield(n_units={self.n_units})"
