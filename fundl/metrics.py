"""Metrics: per-sample scores on NumPy arrays, and stateful Metric objects (Keras 3's).

A metric function takes ``(y_true, y_pred)`` as NumPy arrays (Tensors are converted with
``.numpy()``) and returns one float per sample as a NumPy array: metrics are reported, not
differentiated, so they never build a graph. Outputs of shape ``(batch, d)`` give scores of
shape ``(batch,)`` (averaged over the last axis, as Keras); 1-D outputs ``(batch,)`` are
already one value per sample.

Stateful metrics (:class:`Metric`: ``update_state``/``result``/``reset_state``, state in NumPy
arrays) cover what a per-sample average cannot: :class:`Precision`, :class:`Recall` and
:class:`AUC` accumulate confusion counts over the epoch; :class:`Mean` is the tracker of
custom training steps; the per-sample functions have class forms (:class:`CategoricalAccuracy`,
...) that ``compile(metrics=[...])`` takes as well as the names.

The training loop averages them over an epoch with :class:`Mean`, and names them in the
History with :func:`get`:

    >>> from fundl import metrics
    >>> name, fn = metrics.get("acc")
    >>> name
    'acc'
    >>> m = metrics.Mean()
    >>> m.update_state(fn(np.array([0, 1]), np.array([[0.9, 0.1], [0.8, 0.2]])))
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
        identifier: a name (``"accuracy"`` or ``"acc"``, ``"mae"``, ``"auc"``, ``"precision"``,
            ...), a :class:`Metric` object, or a callable ``fn(y_true, y_pred) -> per-sample
            array``.

    Returns:
        ``(name, metric)``: the name is the string as given (``"acc"`` is logged as ``"acc"``,
        ``"accuracy"`` as ``"accuracy"``, as Keras does); for a Metric object, its ``name``;
        for a callable, its ``name`` attribute or ``__name__``. ``metric`` is a function, or
        a :class:`Metric` (a new one for the names of stateful metrics such as ``"auc"``).

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
        TypeError: anything else.

    Example:
        >>> metrics.get("mae")[0]
        'mae'
    """
    if isinstance(identifier, str):
        cls = _STATEFUL.get(identifier)
        if cls is not None:
            metric = cls()
            return metric.name, metric
        fn = _METRICS.get(identifier)
        if fn is None:
            raise ValueError(f"metrics.get: unknown metric {identifier!r}; valid names are "
                             f"{sorted(set(_METRICS) | set(_STATEFUL))}, or pass a function "
                             "fn(y_true, y_pred) or a fundl.metrics.Metric object.")
        return identifier, fn
    if isinstance(identifier, Metric):
        return identifier.name, identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        metric = identifier()
        return metric.name, metric
    if callable(identifier):
        name = getattr(identifier, "name", None)
        if not isinstance(name, str):
            name = getattr(identifier, "__name__", type(identifier).__name__)
        return name, identifier
    raise TypeError(f"metrics.get: expected a metric name, a Metric or a callable, got "
                    f"{type(identifier).__name__} {identifier!r}.")


# ------------------------------------------------------------------------------------------
# Stateful metrics (Keras 3's Metric objects): state accumulated over batches in NumPy arrays.

_EPSILON = 1e-7  # Keras's backend.epsilon(), used by MAPE and the confusion-matrix metrics


class Metric:
    """Base class of stateful metrics: ``update_state`` per batch, ``result`` at any time.

    Subclasses create their state in ``__init__`` with :meth:`add_variable` (NumPy arrays,
    updated in place) and implement :meth:`update_state` and :meth:`result`;
    :meth:`reset_state` zeroes every variable. Calling the metric updates it and returns the
    result. Metrics are reported, never differentiated: Tensors are read as arrays.

    Args:
        name: the name it is logged under in ``fit``'s History.
        dtype: the dtype of its state (float64 by default: sums over an epoch stay exact).

    Example:
        >>> class Count(fl.metrics.Metric):
        ...     def __init__(self, name="count"):
        ...         super().__init__(name=name)
        ...         self.n = self.add_variable((), name="n")
        ...     def update_state(self, y_true, y_pred, sample_weight=None):
        ...         self.n += len(y_true)
        ...     def result(self):
        ...         return float(self.n)
    """

    def __init__(self, name=None, dtype=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: name must be a string, got "
                            f"{type(name).__name__}.")
        self.name = name or _snake(type(self).__name__)
        self.dtype = numpy.dtype(dtype or numpy.float64).name
        self._variables = []

    def add_variable(self, shape, initializer="zeros", dtype=None, name=None) -> numpy.ndarray:
        """Create a state array (zeros, or ``initializer`` as a number) that reset_state zeroes.

        Args:
            shape: its shape (``()`` for a scalar).
            initializer: ``"zeros"`` or a number to fill it with.
            dtype: its dtype (the metric's by default).
            name: a label (for ``variables``).

        Returns:
            The NumPy array; update it in place (``self.total += x`` does).
        """
        fill = 0.0 if initializer in ("zeros", None) else float(initializer)
        var = numpy.full(shape, fill, dtype=dtype or self.dtype)
        self._variables.append((name, var, fill))
        return var

    @property
    def variables(self) -> list:
        """The state arrays, in creation order."""
        return [v for _, v, _ in self._variables]

    def reset_state(self) -> None:
        """Forget every update (each variable back to its initial value)."""
        for _, var, fill in self._variables:
            var[...] = fill

    def update_state(self, *args, **kwargs) -> None:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement update_state()")

    def result(self):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement result()")

    def __call__(self, *args, **kwargs):
        """``update_state(*args, **kwargs)``, then the result."""
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self) -> dict:
        """``{"name", "dtype"}`` plus the subclass's own arguments."""
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        """A new metric from :meth:`get_config`'s dict (fresh state)."""
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} result={self.result()!r}>"


def _snake(name):
    import re

    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _weights_for(who, values, sample_weight):
    """``sample_weight`` as float64, broadcast from the left to ``values`` (or a clear error)."""
    w = numpy.asarray(_numpy(sample_weight), dtype=numpy.float64)
    if w.ndim < values.ndim:
        w = w.reshape(w.shape + (1,) * (values.ndim - w.ndim))
    elif w.ndim > values.ndim and w.shape[values.ndim:] == (1,) * (w.ndim - values.ndim):
        w = w.reshape(w.shape[:values.ndim])
    try:
        return numpy.broadcast_to(w, values.shape)
    except ValueError:
        raise ValueError(f"{who}: sample_weight of shape {numpy.shape(sample_weight)} does not "
                         f"fit values of shape {values.shape}; give one weight per value or per "
                         "sample.") from None


class Mean(Metric):
    """The running (weighted) mean of the values given to :meth:`update_state`.

    A batch's per-sample values can be passed as they are, or one batch mean with
    ``sample_weight=batch_size``: either way a short last batch counts only as much as its
    samples. ``update``/``reset`` are older names of ``update_state``/``reset_state``.

    Args:
        name: the name it is logged under (``"mean"``).
        dtype: the state's dtype.

    Example:
        >>> m = metrics.Mean()
        >>> m.update_state(0.5, sample_weight=3)      # a batch of 3 with mean loss 0.5
        >>> m.update_state(np.array([2.0]))           # one sample with loss 2.0
        >>> m.result()
        0.875
    """

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.reset_state()

    @property
    def variables(self) -> list:
        return [numpy.asarray(self.total, dtype=self.dtype),
                numpy.asarray(self.count, dtype=self.dtype)]

    def reset_state(self) -> None:
        # Python floats: updated after every training step, where a NumPy scalar costs more.
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values, sample_weight=None) -> None:
        """Add ``values`` (a number, array or Tensor), each weighted by ``sample_weight``.

        Args:
            values: a scalar or an array of per-sample values.
            sample_weight: None (weight 1 each), or weights broadcastable to ``values`` from
                the left (``(batch,)`` weights for values of shape ``(batch, ...)``).
        """
        v = numpy.asarray(_numpy(values), dtype=numpy.float64)
        if sample_weight is None:
            self.total += float(v.sum())
            self.count += v.size
            return
        w = _weights_for(f"{type(self).__name__}.update_state", v, sample_weight)
        self.total += float((v * w).sum())
        self.count += float(w.sum())

    def result(self) -> float:
        """The weighted mean of everything seen since the last reset (0.0 before any value)."""
        return self.total / self.count if self.count else 0.0

    update = update_state
    reset = reset_state


class Sum(Metric):
    """The running (weighted) sum of the values given to :meth:`update_state`.

    Example:
        >>> s = metrics.Sum()
        >>> s.update_state(np.array([1.0, 2.0]))
        >>> s.result()
        3.0
    """

    def __init__(self, name="sum", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable((), name="total")

    def update_state(self, values, sample_weight=None) -> None:
        """Add ``values`` (weighted by ``sample_weight`` as in :class:`Mean`)."""
        v = numpy.asarray(_numpy(values), dtype=numpy.float64)
        if sample_weight is not None:
            v = v * _weights_for("Sum.update_state", v, sample_weight)
        self.total += v.sum()

    def result(self) -> float:
        return float(self.total)


class MeanMetricWrapper(Mean):
    """The weighted mean of a per-sample metric function ``fn(y_true, y_pred, **kwargs)``.

    Args:
        fn: a function returning one value per sample (see this module's functions).
        name: the logged name.
        dtype: the state's dtype.
        **kwargs: extra arguments of ``fn`` (``threshold=``, ``k=``).

    Example:
        >>> m = metrics.MeanMetricWrapper(metrics.mae, name="mae")
        >>> m.update_state(np.array([[0.0]]), np.array([[2.0]]))
        >>> m.result()
        2.0
    """

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"MeanMetricWrapper: fn must be callable, got {type(fn).__name__}.")
        self._fn = fn
        self._fn_kwargs = kwargs
        super().__init__(name=name or getattr(fn, "__name__", "mean_metric_wrapper"),
                         dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """Add the per-sample values of ``fn(y_true, y_pred)``, weighted by ``sample_weight``."""
        values = self._fn(y_true, y_pred, **self._fn_kwargs)
        Mean.update_state(self, values, sample_weight)

    def get_config(self) -> dict:
        config = {"name": self.name, "dtype": self.dtype}
        config.update(self._fn_kwargs)
        return config

    @classmethod
    def from_config(cls, config):
        if cls is MeanMetricWrapper:
            raise TypeError("MeanMetricWrapper.from_config: the function cannot be restored "
                            "from a config; build it again with MeanMetricWrapper(fn).")
        return cls(**config)


def _exact_accuracy(y_true, y_pred):
    t, p = _pair("Accuracy", y_true, y_pred)
    return _per_sample((t == p).astype(numpy.float32))


def mean_absolute_percentage_error(y_true, y_pred) -> numpy.ndarray:
    """Per-sample ``100 * mean(|y_true - y_pred| / max(|y_true|, 1e-7), axis=-1)`` (Keras's).

    Example:
        >>> metrics.mape(np.array([[2.0, 4.0]]), np.array([[1.0, 5.0]]))
        array([37.5])
    """
    t, p = _pair("mean_absolute_percentage_error", y_true, y_pred)
    t, p = _float(t), _float(p)
    return _per_sample(100.0 * numpy.abs(t - p) / numpy.maximum(numpy.abs(t), _EPSILON))


mape = mean_absolute_percentage_error


class Accuracy(MeanMetricWrapper):
    """How often predictions equal labels exactly (Keras's ``Accuracy``: no arg-max, no threshold).

    Example:
        >>> metrics.Accuracy()(np.array([1, 2, 3]), np.array([1, 2, 4]))
        0.6666666666666666
    """

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(_exact_accuracy, name=name, dtype=dtype)


class BinaryAccuracy(MeanMetricWrapper):
    """How often ``y_pred > threshold`` matches the 0/1 labels (:func:`binary_accuracy`).

    Example:
        >>> metrics.BinaryAccuracy()(np.array([1, 0]), np.array([[0.7], [0.6]]))
        0.5
    """

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        super().__init__(binary_accuracy, name=name, dtype=dtype, threshold=threshold)


class CategoricalAccuracy(MeanMetricWrapper):
    """How often the arg-max of one-hot labels equals that of ``y_pred``.

    Example:
        >>> metrics.CategoricalAccuracy()(np.eye(2), np.array([[0.9, 0.1], [0.8, 0.2]]))
        0.5
    """

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(categorical_accuracy, name=name, dtype=dtype)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often integer labels equal the arg-max of ``y_pred``.

    Example:
        >>> metrics.SparseCategoricalAccuracy()(np.array([0, 1]), np.array([[0.9, 0.1], [0.8, 0.2]]))
        0.5
    """

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(sparse_categorical_accuracy, name=name, dtype=dtype)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the one-hot label's class is among the ``k`` highest scores.

    Example:
        >>> metrics.TopKCategoricalAccuracy(k=2)(np.eye(3)[[1, 2]], np.array([[.5, .3, .2]] * 2))
        0.5
    """

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(top_k_categorical_accuracy, name=name, dtype=dtype, k=k)


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the integer label is among the ``k`` highest scores.

    Example:
        >>> metrics.SparseTopKCategoricalAccuracy(k=2)(np.array([1, 2]), np.array([[.5, .3, .2]] * 2))
        0.5
    """

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None):
        super().__init__(sparse_top_k_categorical_accuracy, name=name, dtype=dtype, k=k)


class MeanAbsoluteError(MeanMetricWrapper):
    """The mean of ``|y_true - y_pred|``.

    Example:
        >>> metrics.MeanAbsoluteError()(np.array([[0.0, 1.0]]), np.array([[1.0, 3.0]]))
        1.5
    """

    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, name=name, dtype=dtype)


class MeanSquaredError(MeanMetricWrapper):
    """The mean of ``(y_true - y_pred)**2``.

    Example:
        >>> metrics.MeanSquaredError()(np.array([[0.0, 1.0]]), np.array([[1.0, 3.0]]))
        2.5
    """

    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name=name, dtype=dtype)


class MeanAbsolutePercentageError(MeanMetricWrapper):
    """The mean of ``100 * |y_true - y_pred| / max(|y_true|, 1e-7)``.

    Example:
        >>> metrics.MeanAbsolutePercentageError()(np.array([[2.0, 4.0]]), np.array([[1.0, 5.0]]))
        37.5
    """

    def __init__(self, name="mean_absolute_percentage_error", dtype=None):
        super().__init__(mean_absolute_percentage_error, name=name, dtype=dtype)


class RootMeanSquaredError(Mean):
    """``sqrt(mean((y_true - y_pred)**2))`` over every element seen (the root comes last).

    Example:
        >>> metrics.RootMeanSquaredError()(np.array([[0.0, 1.0]]), np.array([[1.0, 3.0]]))
        1.5811388300841898
    """

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """Add the squared errors of this batch (each sample weighted by ``sample_weight``)."""
        t, p = _pair("RootMeanSquaredError", y_true, y_pred)
        d = _float(t).astype(numpy.float64) - _float(p)
        Mean.update_state(self, d * d, sample_weight)

    def result(self) -> float:
        return float(numpy.sqrt(Mean.result(self)))


def _check_thresholds(who, thresholds, default):
    if thresholds is None:
        return numpy.array([default]), True
    single = isinstance(thresholds, (int, float)) and not isinstance(thresholds, bool)
    t = numpy.atleast_1d(numpy.asarray(thresholds, dtype=numpy.float64))
    if t.ndim != 1 or t.size == 0 or not numpy.isfinite(t).all():
        raise ValueError(f"{who}: thresholds must be a number or a non-empty list of finite "
                         f"numbers, got {thresholds!r}.")
    return t, single


class _Confusion(Metric):
    """Counts of true/false positives/negatives at fixed thresholds (``y_pred > threshold``).

    Every element counts as one binary decision (multi-label outputs are flattened), each
    sample weighted by ``sample_weight``. ``class_id`` keeps one column of the last axis;
    ``top_k`` counts only each row's k highest scores as candidates for a positive.
    """

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None,
                 default_threshold=0.5):
        super().__init__(name=name, dtype=dtype)
        who = type(self).__name__
        self.thresholds, self._single = _check_thresholds(who, thresholds, default_threshold)
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(
                top_k, (int, numpy.integer)) or top_k < 1):
            raise ValueError(f"{who}: top_k must be a positive integer or None, got {top_k!r}.")
        if class_id is not None and (isinstance(class_id, bool) or not isinstance(
                class_id, (int, numpy.integer)) or class_id < 0):
            raise ValueError(f"{who}: class_id must be a non-negative integer or None, got "
                             f"{class_id!r}.")
        self.top_k, self.class_id = top_k, class_id
        n = len(self.thresholds)
        self.true_positives = self.add_variable((n,), name="true_positives")
        self.false_positives = self.add_variable((n,), name="false_positives")
        self.true_negatives = self.add_variable((n,), name="true_negatives")
        self.false_negatives = self.add_variable((n,), name="false_negatives")

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """Add this batch's confusion counts at every threshold.

        Args:
            y_true: 0/1 labels, the shape of ``y_pred`` (or without its trailing axis of 1).
            y_pred: scores in [0, 1] (probabilities).
            sample_weight: None or one weight per sample (or per element).
        """
        who = f"{type(self).__name__}.update_state"
        t, p = _pair(who, y_true, y_pred)
        p = p.astype(numpy.float64)
        w = None if sample_weight is None else _weights_for(who, p, sample_weight)
        if self.top_k is not None:
            if p.ndim < 2:
                raise ValueError(f"{who}: top_k needs predictions with a class axis, got shape "
                                 f"{p.shape}.")
            k = min(self.top_k, p.shape[-1])
            kth = numpy.sort(p, axis=-1)[..., -k][..., None]
            p = numpy.where(p >= kth, p, -numpy.inf)  # outside the top k: never positive
        if self.class_id is not None:
            if p.ndim < 2 or self.class_id >= p.shape[-1]:
                raise ValueError(f"{who}: class_id={self.class_id} is out of range for "
                                 f"predictions of shape {p.shape}.")
            t, p = t[..., self.class_id], p[..., self.class_id]
            w = None if w is None else w[..., self.class_id]
        t = t.reshape(-1).astype(bool)
        p = p.reshape(-1)
        w = numpy.ones(p.shape) if w is None else w.reshape(-1)
        # One sort and cumulative sums give every threshold's counts: no loop over thresholds.
        order = numpy.argsort(p, kind="stable")
        p_sorted = p[order]
        pos_w = numpy.concatenate([[0.0], numpy.cumsum((w * t)[order])])
        neg_w = numpy.concatenate([[0.0], numpy.cumsum((w * ~t)[order])])
        below = numpy.searchsorted(p_sorted, self.thresholds, side="right")  # p <= threshold
        self.true_positives += pos_w[-1] - pos_w[below]
        self.false_positives += neg_w[-1] - neg_w[below]
        self.false_negatives += pos_w[below]
        self.true_negatives += neg_w[below]

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(thresholds=(float(self.thresholds[0]) if self._single
                                  else self.thresholds.tolist()),
                      top_k=self.top_k, class_id=self.class_id)
        return config

    def _out(self, values):
        return float(values[0]) if len(values) == 1 else values


def _divide(a, b):
    """a / b, 0 where b is 0 (Keras's divide_no_nan)."""
    with numpy.errstate(divide="ignore", invalid="ignore"):
        return numpy.where(b > 0, a / numpy.where(b > 0, b, 1.0), 0.0)


class Precision(_Confusion):
    """``TP / (TP + FP)`` with positives ``y_pred > threshold`` (0.5 by default).

    Args:
        thresholds: a number, or a list (then ``result`` is an array, one per threshold).
        top_k: count only each row's ``k`` highest scores as positive predictions.
        class_id: evaluate one class (a column of the last axis) only.
        name, dtype: as :class:`Metric`.

    Example:
        >>> metrics.Precision()(np.array([0, 1, 1, 1]), np.array([1.0, 1.0, 0.0, 0.0]))
        0.5
    """

    def __init__(self, thresholds=None, top_k=None, class_id=None, name="precision", dtype=None):
        super().__init__(thresholds, top_k, class_id, name, dtype)

    def result(self):
        return self._out(_divide(self.true_positives, self.true_positives + self.false_positives))


class Recall(_Confusion):
    """``TP / (TP + FN)`` with positives ``y_pred > threshold`` (0.5 by default).

    Args:
        thresholds, top_k, class_id, name, dtype: as :class:`Precision`.

    Example:
        >>> metrics.Recall()(np.array([0, 1, 1, 1]), np.array([1.0, 0.0, 1.0, 1.0]))
        0.6666666666666666
    """

    def __init__(self, thresholds=None, top_k=None, class_id=None, name="recall", dtype=None):
        super().__init__(thresholds, top_k, class_id, name, dtype)

    def result(self):
        return self._out(_divide(self.true_positives, self.true_positives + self.false_negatives))


class AUC(_Confusion):
    """Area under the ROC (or precision-recall) curve, from counts at fixed thresholds.

    As Keras: ``num_thresholds`` thresholds evenly spaced in [0, 1] (the first just below 0,
    the last just above 1), each sample's score compared with every threshold, the counts
    summed over batches, and the area taken from the resulting points. With
    ``summation_method="interpolation"`` the ROC area is the trapezoidal rule and the PR area
    Davis & Goadrich's interpolation (Keras's ``interpolate_pr_auc``). The bucketing makes it
    an approximation of the exact AUC (scikit-learn's ``roc_auc_score``): on scores spread over
    [0, 1] the difference is of the order of 1/num_thresholds; given ``thresholds=`` at every
    distinct score it is exact.

    Args:
        num_thresholds: how many thresholds (> 1), when ``thresholds`` is None.
        curve: ``"ROC"`` or ``"PR"``.
        summation_method: ``"interpolation"``, ``"minoring"`` or ``"majoring"``.
        thresholds: explicit thresholds in [0, 1] (then -1e-7 and 1 + 1e-7 are added).
        multi_label: accepted for Keras compatibility; only False (all labels pooled) is
            implemented.
        from_logits: apply a sigmoid to ``y_pred`` first.
        name, dtype: as :class:`Metric`.

    Example:
        >>> auc = metrics.AUC()
        >>> auc.update_state(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
        >>> round(auc.result(), 2)
        0.75
    """

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name="auc", dtype=None, thresholds=None, multi_label=False,
                 from_logits=False, num_labels=None, label_weights=None):
        if curve not in ("ROC", "PR"):
            raise ValueError(f"AUC: curve must be 'ROC' or 'PR', got {curve!r}.")
        if summation_method not in ("interpolation", "minoring", "majoring"):
            raise ValueError(f"AUC: summation_method must be 'interpolation', 'minoring' or "
                             f"'majoring', got {summation_method!r}.")
        if multi_label or num_labels is not None or label_weights is not None:
            raise ValueError("AUC: multi_label=True (one curve per label) is not implemented; "
                             "with multi_label=False all labels are pooled into one curve.")
        if thresholds is None:
            if isinstance(num_thresholds, bool) or not isinstance(
                    num_thresholds, (int, numpy.integer)) or num_thresholds < 2:
                raise ValueError(f"AUC: num_thresholds must be an integer > 1, got "
                                 f"{num_thresholds!r}.")
            inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            self._given_thresholds = None
        else:
            inner = sorted(float(t) for t in numpy.atleast_1d(thresholds))
            self._given_thresholds = inner
            num_thresholds = len(inner) + 2
        edges = [0.0 - _EPSILON] + inner + [1.0 + _EPSILON]
        super().__init__(edges, None, None, name, dtype)
        self.num_thresholds = num_thresholds
        self.curve, self.summation_method = curve, summation_method
        self.from_logits = from_logits

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """Add this batch's counts (labels 0/1, scores in [0, 1] or logits)."""
        p = _numpy(y_pred).astype(numpy.float64)
        if self.from_logits:
            p = 1.0 / (1.0 + numpy.exp(-p))
        super().update_state(y_true, p, sample_weight)

    def result(self) -> float:
        tp, fp = self.true_positives, self.false_positives
        tn, fn = self.true_negatives, self.false_negatives
        if self.curve == "PR" and self.summation_method == "interpolation":
            return float(_interpolate_pr_auc(tp, fp, fn))
        recall = _divide(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide(fp, fp + tn), recall
        else:
            x, y = recall, _divide(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = numpy.minimum(y[:-1], y[1:])
        else:
            heights = numpy.maximum(y[:-1], y[1:])
        return float(numpy.sum((x[:-1] - x[1:]) * heights))

    def get_config(self) -> dict:
        return {"num_thresholds": self.num_thresholds, "curve": self.curve,
                "summation_method": self.summation_method, "name": self.name,
                "dtype": self.dtype, "thresholds": self._given_thresholds,
                "from_logits": self.from_logits}


def _interpolate_pr_auc(tp, fp, fn):
    """Keras's precision-recall area, interpolated between thresholds (Davis & Goadrich)."""
    dtp = tp[:-1] - tp[1:]
    p = tp + fp
    dp = p[:-1] - p[1:]
    slope = _divide(dtp, numpy.maximum(dp, 0))
    intercept = tp[1:] - slope * p[1:]
    both = (p[:-1] > 0) & (p[1:] > 0)
    ratio = numpy.where(both, _divide(p[:-1], numpy.maximum(p[1:], 0)), 1.0)
    ratio = numpy.where(ratio > 0, ratio, 1.0)
    increments = _divide(slope * (dtp + intercept * numpy.log(ratio)),
                         numpy.maximum(tp[1:] + fn[1:], 0))
    return increments.sum()


# Names that compile(metrics=[...]) turns into a new stateful metric (Keras 3 accepts the class
# name and its snake_case form).
_STATEFUL = {
    "auc": AUC, "AUC": AUC,
    "precision": Precision, "Precision": Precision,
    "recall": Recall, "Recall": Recall,
    "root_mean_squared_error": RootMeanSquaredError, "rmse": RootMeanSquaredError,
    "RootMeanSquaredError": RootMeanSquaredError,
}
_METRICS.update({"mape": mape, "mean_absolute_percentage_error": mape})
__all__ += [
    "AUC", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "MeanAbsoluteError",
    "MeanAbsolutePercentageError", "MeanMetricWrapper", "MeanSquaredError", "Metric",
    "Precision", "Recall", "RootMeanSquaredError", "SparseCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy", "Sum", "TopKCategoricalAccuracy", "mape",
    "mean_absolute_percentage_error",
]
