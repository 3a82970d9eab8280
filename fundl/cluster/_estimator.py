"""What every scikit-learn-style estimator of fundl shares: input checks, random states, the
not-fitted error and the convergence warning.

Used by :mod:`fundl.cluster`, :mod:`fundl.decomposition`, :mod:`fundl.classic` and
:mod:`fundl.energy` (all on the same floor; this module imports only NumPy and the backend).
"""
from __future__ import annotations

import math
import numbers

import numpy

from .. import backend


class NotFittedError(ValueError, AttributeError):
    """An estimator was used before ``fit`` (a ValueError and an AttributeError, as in
    scikit-learn)."""


class ConvergenceWarning(UserWarning):
    """An iterative estimator stopped at ``max_iter`` without converging."""


def check_random_state(seed) -> numpy.random.Generator:
    """A NumPy ``Generator`` from None, an int or a Generator (returned as it is).

    Example:
        >>> check_random_state(0).integers(10) == check_random_state(0).integers(10)
        True
    """
    if isinstance(seed, numpy.random.Generator):
        return seed
    if seed is None or (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)):
        return numpy.random.default_rng(seed)
    if isinstance(seed, numpy.random.RandomState):
        return numpy.random.default_rng(seed.randint(2**31))
    raise TypeError(f"random_state must be None, an int or a numpy.random.Generator, got "
                    f"{type(seed).__name__}.")


def check_array(X, who: str, *, ndim=2, dtype="float", allow_empty=False, name="X"):
    """Validate an estimator's input: rank, finiteness, dtype; returns an xp array.

    Args:
        X: array-like (NumPy or CuPy; lists are converted with NumPy).
        who: the estimator and method for messages, e.g. ``"KMeans.fit"``.
        ndim: the required rank.
        dtype: ``"float"`` keeps float32/float64 and turns anything else into float64;
            None keeps the dtype.
        allow_empty: accept zero samples.
        name: the argument's name in messages.

    Raises:
        ValueError: wrong rank, no samples, NaN or inf.
        TypeError: a non-numeric dtype.
    """
    xp = backend.get_array_module(X)
    if xp is numpy:
        X = numpy.asarray(X)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{who}: expected numeric {name}, got dtype {X.dtype}.")
    if X.ndim != ndim:
        hint = (" Reshape a single feature with X.reshape(-1, 1), a single sample with "
                "X.reshape(1, -1)." if ndim == 2 and X.ndim == 1 else "")
        raise ValueError(f"{who}: expected a {ndim}-D array {name}, got shape {X.shape}.{hint}")
    if not allow_empty and X.shape[0] == 0:
        raise ValueError(f"{who}: {name} has 0 samples (shape {X.shape}); at least one is "
                         "needed.")
    if dtype == "float" and X.dtype not in (numpy.float32, numpy.float64):
        X = X.astype(numpy.float64)
    # the sum is finite when every entry is (one pass, no temporary); only a non-finite sum,
    # which a huge but finite entry can also cause, needs the element-wise check
    if X.dtype.kind == "f" and not math.isfinite(float(X.sum())) and \
            not bool(xp.isfinite(X).all()):
        raise ValueError(f"{who}: {name} contains NaN or infinity; remove or impute those "
                         "values first.")
    return X


def check_fitted(estimator, attribute: str) -> None:
    """Raise :class:`NotFittedError` naming the estimator when ``attribute`` is missing."""
    if getattr(estimator, attribute, None) is None:
        raise NotFittedError(f"This {type(estimator).__name__} instance is not fitted yet; call "
                             "'fit' with appropriate arguments before using this method.")


def check_n_features(estimator, X, expected: int, who: str) -> None:
    """Raise a ValueError when X's feature count differs from the one seen in ``fit``."""
    if X.shape[1] != expected:
        raise ValueError(f"{who}: X has {X.shape[1]} features, but {type(estimator).__name__} "
                         f"was fitted with {expected} features.")


def check_positive_int(value, who: str, name: str, minimum: int = 1) -> int:
    """``value`` as an int when it is an integer >= minimum, else a clear error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{who}: {name} must be an integer, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{who}: {name} must be >= {minimum}, got {value}.")
    return int(value)
