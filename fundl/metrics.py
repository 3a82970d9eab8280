"""Metrics: per-sample scores on NumPy arrays, and a running mean for the training loop.

A metric function takes ``(y_true, y_pred)`` as NumPy arrays (Tensors are converted with
``.numpy()``) and returns one float per sample as a NumPy array: metrics are reported, not
differentiated, so they never build a graph. Outputs of shape ``(batch, d)`` give scores of
shape ``(batch,)`` (averaged over the last axis, as Keras); 1-D outputs ``(batch,)`` are
already one value per sample.

The training loop averages them over an epoch with :class:`Mean`, and names them in the
History with :func:`get`:

    >>> from fundl import metrics
    >>> name, fn = metrics.get("acc")
    >>> name
    'accuracy'
    >>> m = metrics.Mean()
    >>> m.update(fn(np.array([0, 1]), np.array([[0.9, 0.1], [0.8, 0.2]])))
    >>> m.result()
    0.5
"""
from __future__ import annotations

import numpy

from . import backend
from .tensor import Tensor

__all__ = [
    "Mean", "accuracy", "binary_accuracy", "categorical_accuracy", "get", "mae",
    "mean_absolute_error", "mean_squared_error", "mse", "sparse_categorical_accuracy",
    "sparse_top_k_categorical_accuracy", "top_k_categorical_accuracy",
]


def _numpy(x) -> numpy.ndarray:
    return backend.to_numpy(x.data if isinstance(x, Tensor) else x)


def _pair(name, y_true, y_pred):
    """Both arrays, ``y_true`` given ``y_pred``'s rank where they differ by a size-1 axis."""
    t, p = _numpy(y_true), _numpy(y_pred)
    if p.ndim == 0:
        raise ValueError(f"{name}: y_pred needs a batch axis, got a 0-d value.")
    shape = t.shape
    if t.ndim == p.ndim - 1 and p.shape[-1] == 1:
        t = t.reshape(shape + (1,))
    elif t.ndim == p.ndim + 1 and shape[-1] == 1:
        t = t.reshape(shape[:-1])
    if t.shape != p.shape:
        raise ValueError(f"{name}: y_true of shape {shape} does not match y_pred of shape "
                         f"{p.shape}; they must be equal (up to a trailing axis of size 1).")
    return t, p


def _per_sample(scores):
    """Average over the last axis, except for 1-D inputs, which hold one value per sample."""
    return scores if scores.ndim == 1 else scores.mean(axis=-1)


def _labels(name, y_true, p):
    """Integer class indices of shape ``p.shape[:-1]`` from ``(batch,)`` or ``(batch, 1)``."""
    t = _numpy(y_true)
    shape = t.shape
    if t.ndim == p.ndim and t.ndim and shape[-1] == 1:
        t = t.reshape(shape[:-1])
    if p.ndim < 2 or t.shape != p.shape[:-1]:
        raise ValueError(f"{name}: expected integer labels of shape {p.shape[:-1]} (or with a "
                         f"trailing axis of size 1) for y_pred of shape {p.shape}, got {shape}. "
                         "For one-hot labels use categorical_accuracy.")
    labels = t.astype(numpy.int64)
    if (labels != t).any():
        raise ValueError(f"{name}: labels must be integer class indices, got non-integer values. "
                         "For one-hot labels use categorical_accuracy.")
    n = p.shape[-1]
    if labels.size and (labels.min() < 0 or labels.max() >= n):
        raise ValueError(f"{name}: class indices must lie in [0, {n}), got values in "
                         f"[{labels.min()}, {labels.max()}].")
    return labels


def binary_accuracy(y_true, y_pred, threshold=0.5) -> numpy.ndarray:
    """Fraction of binary predictions that match: ``y_true == (y_pred > threshold)``.

    Args:
        y_true: labels in {0, 1}, shape of ``y_pred`` (or without its trailing axis of size 1).
        y_pred: probabilities, shape ``(batch,)`` or ``(batch, ..., d)``.
        threshold: predictions above it count as 1.

    Returns:
        float32 array of shape ``(batch,)`` (``(batch, ...)`` for higher ranks).

    Example:
        >>> metrics.binary_accuracy(np.array([1, 0, 1]), np.array([[0.7], [0.6], [0.2]]))
        array([1., 0., 0.], dtype=float32)
    """
    t, p = _pair("binary_accuracy", y_true, y_pred)
    return _per_sample((t == (p > threshold)).astype(numpy.float32))


def categorical_accuracy(y_true, y_pred) -> numpy.ndarray:
    """1 where the arg-max of a one-hot ``y_true`` equals that of ``y_pred``, else 0.

    Args:
        y_true: one-hot (or probability) targets, shape ``(batch, ..., classes)``.
        y_pred: scores or probabilities, same shape.

    Returns:
        float32 array of shape ``(batch, ...)``.

    Example:
        >>> metrics.categorical_accuracy(np.eye(2), np.array([[0.9, 0.1], [0.8, 0.2]]))
        array([1., 0.], dtype=float32)
    """
    t, p = _numpy(y_true), _numpy(y_pred)
    if t.shape != p.shape or p.ndim < 2:
        raise ValueError(f"categorical_accuracy: one-hot y_true of shape {t.shape} does not "
                         f"match y_pred of shape {p.shape}. For integer labels use "
                         "sparse_categorical_accuracy.")
    return (t.argmax(axis=-1) == p.argmax(axis=-1)).astype(numpy.float32)


def sparse_categorical_accuracy(y_true, y_pred) -> numpy.ndarray:
    """1 where the integer label equals the arg-max of ``y_pred``, else 0.

    Args:
        y_true: class indices, shape ``(batch, ...)`` or ``(batch, ..., 1)``.
        y_pred: scores or probabilities, shape ``(batch, ..., classes)``.

    Returns:
        float32 array of shape ``(batch, ...)``.

    Example:
        >>> metrics.sparse_categorical_accuracy(np.array([0, 1]), np.array([[0.9, 0.1], [0.8, 0.2]]))
        array([1., 0.], dtype=float32)
    """
    p = _numpy(y_pred)
    t = _labels("sparse_categorical_accuracy", y_true, p)
    return (t == p.argmax(axis=-1)).astype(numpy.float32)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5) -> numpy.ndarray:
    """1 where the true class is among the ``k`` highest scores, else 0.

    A class tied with the k-th highest score counts as inside the top k (as Keras's
    ``in_top_k``). The top-5 error of ImageNet papers is ``1 - mean`` of this with k=5.

    Args:
        y_true: class indices, shape ``(batch, ...)`` or ``(batch, ..., 1)``.
        y_pred: scores, shape ``(batch, ..., classes)``.
        k: how many of the highest scores count.

    Returns:
        float32 array of shape ``(batch, ...)``.

    Example:
        >>> p = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]])
        >>> metrics.sparse_top_k_categorical_accuracy(np.array([1, 2]), p, k=2)
        array([1., 0.], dtype=float32)
    """
    if not isinstance(k, (int, numpy.integer)) or k < 1:
        raise ValueError(f"sparse_top_k_categorical_accuracy: k must be a positive integer, "
                         f"got {k!r}.")
    p = _numpy(y_pred)
    t = _labels("sparse_top_k_categorical_accuracy", y_true, p)
    n = p.shape[-1]
    if k >= n:
        return numpy.ones(t.shape, dtype=numpy.float32)
    kth = numpy.partition(p, n - k, axis=-1)[..., n - k]
    true_score = numpy.take_along_axis(p, t[..., None], axis=-1)[..., 0]
    return (true_score >= kth).astype(numpy.float32)


def top_k_categorical_accuracy(y_true, y_pred, k=5) -> numpy.ndarray:
    """1 where the class of the one-hot ``y_true`` is among the ``k`` highest scores, else 0.

    Args:
        y_true: one-hot targets, shape ``(batch, ..., classes)``.
        y_pred: scores, same shape.
        k: how many of the highest scores count.

    Returns:
        float32 array of shape ``(batch, ...)``.

    Example:
        >>> p = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]])
        >>> metrics.top_k_categorical_accuracy(np.eye(3)[[1, 2]], p, k=2)
        array([1., 0.], dtype=float32)
    """
    t, p = _numpy(y_true), _numpy(y_pred)
    if t.shape != p.shape or p.ndim < 2:
        raise ValueError(f"top_k_categorical_accuracy: one-hot y_true of shape {t.shape} does "
                         f"not match y_pred of shape {p.shape}. For integer labels use "
                         "sparse_top_k_categorical_accuracy.")
    return sparse_top_k_categorical_accuracy(t.argmax(axis=-1), p, k)


def accuracy(y_true, y_pred) -> numpy.ndarray:
    """Accuracy of the kind the shapes imply, as Keras's ``metrics=["accuracy"]``.

    Binary (:func:`binary_accuracy`, threshold 0.5) when ``y_pred`` is 1-D or has a last
    axis of size 1; sparse (:func:`sparse_categorical_accuracy`) when ``y_true`` has one axis
    fewer than ``y_pred`` or a last axis of size 1; otherwise categorical (one-hot
    ``y_true``, :func:`categorical_accuracy`).

    Args:
        y_true: labels (0/1, class indices or one-hot).
        y_pred: probabilities or scores.

    Returns:
        float32 array of shape ``(batch,)``.

    Example:
        >>> metrics.accuracy(np.array([2, 0]), np.array([[0.1, 0.2, 0.7], [0.1, 0.8, 0.1]]))
        array([1., 0.], dtype=float32)
    """
    t, p = _numpy(y_true), _numpy(y_pred)
    if p.ndim == 1 or p.shape[-1] == 1:
        return binary_accuracy(t, p)
    if t.ndim < p.ndim or t.shape[-1] == 1:
        return sparse_categorical_accuracy(t, p)
    return categorical_accuracy(t, p)


def mean_absolute_error(y_true, y_pred) -> numpy.ndarray:
    """Per-sample mean absolute error, ``mean(|y_true - y_pred|, axis=-1)``.

    Args:
        y_true: targets, shape of ``y_pred`` (or without its trailing axis of size 1).
        y_pred: predictions, shape ``(batch,)`` or ``(batch, ..., d)``.

    Returns:
        float array of shape ``(batch,)`` (``(batch, ...)`` for higher ranks).

    Example:
        >>> metrics.mae(np.array([[0.0, 1.0]]), np.array([[1.0, 3.0]]))
        array([1.5])
    """
    t, p = _pair("mean_absolute_error", y_true, y_pred)
    return _per_sample(numpy.abs(_float(t) - _float(p)))


def mean_squared_error(y_true, y_pred) -> numpy.ndarray:
    """Per-sample mean squared error, ``mean((y_true - y_pred)**2, axis=-1)``.

    Args:
        y_true: targets, shape of ``y_pred`` (or without its trailing axis of size 1).
        y_pred: predictions, shape ``(batch,)`` or ``(batch, ..., d)``.

    Returns:
        float array of shape ``(batch,)`` (``(batch, ...)`` for higher ranks).

    Example:
        >>> metrics.mse(np.array([[0.0, 1.0]]), np.array([[1.0, 3.0]]))
        array([2.5])
    """
    t, p = _pair("mean_squared_error", y_true, y_pred)
    d = _float(t) - _float(p)
    return _per_sample(d * d)


def _float(a):
    """Integer arrays become float32 so differences of unsigned labels cannot wrap around."""
    return a if a.dtype.kind == "f" else a.astype(numpy.float32)


mae = mean_absolute_error
mse = mean_squared_error

_METRICS = {
    "accuracy": accuracy,
    "acc": accuracy,
    "binary_accuracy": binary_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "top_k_categorical_accuracy": top_k_categorical_accuracy,
    "sparse_top_k_categorical_accuracy": sparse_top_k_categorical_accuracy,
    "mae": mae,
    "mean_absolute_error": mae,
    "mse": mse,
    "mean_squared_error": mse,
}


def get(identifier):
    """Resolve a metric and the name it gets in the training History.

    Args:
        identifier: a name (``"accuracy"`` or ``"acc"``, ``"mae"``, ``"top_k_categorical_accuracy"``,
            ...) or a callable ``fn(y_true, y_pred) -> per-sample array``.

    Returns:
        ``(name, fn)``: the name is the string as given, except that ``"acc"`` is reported as
        ``"accuracy"``; for a callable, its ``name`` attribute or ``__name__``.

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
        TypeError: anything else.

    Example:
        >>> metrics.get("mae")[0]
        'mae'
    """
    if isinstance(identifier, str):
        fn = _METRICS.get(identifier)
        if fn is None:
            raise ValueError(f"metrics.get: unknown metric {identifier!r}; valid names are "
                             f"{sorted(_METRICS)}, or pass a function fn(y_true, y_pred).")
        return ("accuracy" if identifier == "acc" else identifier), fn
    if callable(identifier):
        name = getattr(identifier, "name", None)
        if not isinstance(name, str):
            name = getattr(identifier, "__name__", type(identifier).__name__)
        return name, identifier
    raise TypeError(f"metrics.get: expected a metric name or a callable, got "
                    f"{type(identifier).__name__} {identifier!r}.")


class Mean:
    """A running (weighted) mean, to average per-batch metric values over an epoch exactly.

    Every value counts with its weight (1 by default); a batch's per-sample values can be
    passed as they are, or one batch mean with ``sample_weight=batch_size``: either way a
    short last batch counts only as much as its samples.

    Args:
        name: a label for logs.

    Example:
        >>> m = metrics.Mean()
        >>> m.update(0.5, sample_weight=3)      # a batch of 3 with mean loss 0.5
        >>> m.update(np.array([2.0]))           # one sample with loss 2.0
        >>> m.result()
        0.875
    """

    def __init__(self, name="mean"):
        self.name = name
        self.reset()

    def reset(self) -> None:
        """Forget every value seen so far."""
        self.total = 0.0
        self.count = 0.0

    def update(self, values, sample_weight=None) -> None:
        """Add ``values`` (a number or array), each weighted by ``sample_weight``.

        Args:
            values: a scalar or an array of per-sample values (NumPy array or Tensor).
            sample_weight: None (weight 1 each), or weights broadcastable to ``values`` from
                the left (``(batch,)`` weights for values of shape ``(batch, ...)``).
        """
        v = numpy.asarray(_numpy(values), dtype=numpy.float64)
        if sample_weight is None:
            self.total += float(v.sum())
            self.count += v.size
            return
        w = numpy.asarray(_numpy(sample_weight), dtype=numpy.float64)
        if w.ndim < v.ndim:
            w = w.reshape(w.shape + (1,) * (v.ndim - w.ndim))
        try:
            w = numpy.broadcast_to(w, v.shape)
        except ValueError:
            raise ValueError(f"Mean.update: sample_weight of shape {numpy.shape(sample_weight)} "
                             f"does not fit values of shape {v.shape}; give one weight per "
                             "value or per sample.") from None
        self.total += float((v * w).sum())
        self.count += float(w.sum())

    def result(self) -> float:
        """The weighted mean of everything seen since the last reset (0.0 before any value)."""
        return self.total / self.count if self.count else 0.0
