"""Loss functions, Keras style: per-sample functions and reducing classes.

Each function takes ``(y_true, y_pred)`` (plus ``from_logits`` where it applies) and returns
a Tensor of per-sample losses: like Keras, it reduces over the last axis only, so
predictions of shape ``(batch, units)`` give losses of shape ``(batch,)``. ``y_pred`` is a
Tensor (the graph flows through it); ``y_true`` may be a NumPy array, a list or a Tensor.

Each loss is also a class (``MeanSquaredError()``, ``CategoricalCrossentropy(from_logits=True)``,
...) whose call reduces the per-sample values, optionally weighted, to one scalar Tensor.

Probabilities are clipped to ``[1e-7, 1 - 1e-7]`` before taking logarithms, as Keras does.
When ``y_pred`` was just made by a recorded softmax (or sigmoid) and ``from_logits=False``,
the cross-entropies reach back to that op's input and use the fused, exact op on the logits
instead (Keras does the same): the result matches the clipped formula on ordinary values,
stays exact for saturated ones, and costs one op instead of five.

Example:
    >>> from fundl import losses
    >>> p = fl.softmax(fl.randn(4, 3, requires_grad=True))
    >>> losses.categorical_crossentropy(np.eye(3)[[0, 1, 2, 0]], p).shape
    (4,)
    >>> losses.get("categorical_crossentropy") is losses.categorical_crossentropy
    True
"""
from __future__ import annotations

import math

import numpy

from . import backend
from . import functional as F
from ._lookup import Configurable
from .ops.activation import Sigmoid
from .ops.nn import Softmax
from .tensor import Tensor

__all__ = [
    "CategoricalHinge", "CosineSimilarity", "Huber", "LogCosh", "MeanAbsolutePercentageError",
    "MeanSquaredLogarithmicError", "Poisson", "SquaredHinge", "categorical_hinge",
    "cosine_similarity", "huber", "log_cosh", "logcosh", "mape",
    "mean_absolute_percentage_error", "mean_squared_logarithmic_error", "msle", "poisson",
    "squared_hinge",
    "EPSILON", "BinaryCrossentropy", "CategoricalCrossentropy", "Exponential", "Hinge",
    "KLDivergence", "Logistic", "Loss", "LossFunctionWrapper", "MeanAbsoluteError",
    "MeanSquaredError", "SparseCategoricalCrossentropy", "SumSquaredError", "binary_crossentropy",
    "categorical_crossentropy", "exponential", "get", "hinge", "kl_divergence", "kld", "logistic",
    "mae", "mean_absolute_error", "mean_squared_error", "mse", "reduce_weighted", "serialize",
    "sparse_categorical_crossentropy", "sum_squared_error",
]

EPSILON = 1e-7  # Keras's backend.epsilon(): the clipping margin for probabilities
_LN2 = math.log(2.0)


# -- argument handling --------------------------------------------------------------------

def _as_pred(name, y_pred) -> Tensor:
    """``y_pred`` as a floating Tensor with at least one axis."""
    if not isinstance(y_pred, Tensor):
        y_pred = Tensor(y_pred)
    if y_pred.dtype.kind != "f":
        raise TypeError(f"{name}: y_pred must be floating point, got dtype {y_pred.dtype}. "
                        "Pass the model's output (or cast it to float32).")
    if y_pred.ndim == 0:
        raise ValueError(f"{name}: y_pred needs at least one axis (losses reduce over the last "
                         "one), got a 0-d value. Reshape it to (batch, 1).")
    return y_pred


def _as_target(name, y_true, y_pred, hint="") -> Tensor:
    """``y_true`` as a Tensor of ``y_pred``'s dtype, device and shape.

    A ``y_true`` that requires a gradient keeps its graph (e.g. a KL divergence between two
    model outputs); anything else becomes a constant. As in Keras, a rank difference of one
    is forgiven when the extra axis has size 1 (labels ``(batch,)`` against outputs
    ``(batch, 1)``), so that the subtraction cannot silently broadcast to ``(batch, batch)``.
    """
    if isinstance(y_true, Tensor) and y_true.requires_grad:
        t = y_true
    else:
        data = y_true.data if isinstance(y_true, Tensor) else y_true
        t = Tensor(data, dtype=y_pred.dtype, device=y_pred.device)
    shape = t.shape
    if t.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        t = t.reshape(shape + (1,))
    elif t.ndim == y_pred.ndim + 1 and shape[-1] == 1:
        t = t.reshape(shape[:-1])
    if t.shape != y_pred.shape:
        raise ValueError(f"{name}: y_true of shape {shape} does not match y_pred of shape "
                         f"{y_pred.shape}; they must be equal (up to a trailing axis of size "
                         f"1).{hint}")
    return t


def _logits_of(y_pred, op_type):
    """The input of the recorded ``op_type`` op that made ``y_pred``, else None."""
    fn = y_pred.creator
    if not isinstance(fn, op_type) or fn.inputs is None:
        return None
    if op_type is Softmax and fn.axis not in (-1, y_pred.ndim - 1):
        return None  # a softmax over another axis is not what the cross-entropy normalises
    return fn.inputs[0]


def _class_labels(name, y_true, y_pred):
    """Integer class indices of shape ``y_pred.shape[:-1]``, on ``y_pred``'s device."""
    data = y_true.data if isinstance(y_true, Tensor) else y_true
    if not hasattr(data, "dtype"):
        data = numpy.asarray(data)
    data = backend.to_device(data, y_pred.device)
    shape = data.shape
    if data.ndim == y_pred.ndim and shape[-1] == 1:
        data = data.reshape(shape[:-1])
    if data.shape != y_pred.shape[:-1]:
        raise ValueError(
            f"{name}: integer labels must have shape {y_pred.shape[:-1]} (or "
            f"{y_pred.shape[:-1] + (1,)}) for y_pred of shape {y_pred.shape}, got {shape}. For "
            "one-hot labels use categorical_crossentropy.")
    if data.dtype.kind == "f":
        ints = data.astype(numpy.int64)
        if bool((ints != data).any()):
            raise ValueError(f"{name}: labels must be integer class indices, got non-integer "
                             "values. For one-hot or soft labels use categorical_crossentropy.")
        data = ints
    elif data.dtype.kind not in "iub":
        raise TypeError(f"{name}: labels must be integer class indices, got dtype {data.dtype}.")
    n = y_pred.shape[-1]
    if data.size and (int(data.min()) < 0 or int(data.max()) >= n):
        raise ValueError(f"{name}: class indices must lie in [0, {n}) for y_pred with {n} "
                         f"classes, got values in [{int(data.min())}, {int(data.max())}].")
    return data


def _signed_labels(t):
    """Labels in {0, 1} become {-1, 1} (Keras's hinge convention); other labels are kept."""
    data = t.data
    if bool(((data == 0) | (data == 1)).all()):
        return t * 2.0 - 1.0
    return t


def _probabilities(y_pred):
    """``y_pred`` normalised over the last axis and clipped away from 0 and 1, as Keras."""
    p = y_pred / y_pred.sum(axis=-1, keepdims=True)
    return F.clip(p, EPSILON, 1.0 - EPSILON)


# -- per-sample loss functions ------------------------------------------------------------

def mean_squared_error(y_true, y_pred) -> Tensor:
    """Mean squared error over the last axis: ``mean((y_true - y_pred)**2, axis=-1)``.

    Args:
        y_true: targets, shape of ``y_pred`` (or without its trailing axis of size 1).
        y_pred: predictions, shape ``(batch, ..., d)``.

    Returns:
        Tensor of shape ``(batch, ...)``.

    Example:
        >>> losses.mean_squared_error([[0.0, 1.0]], fl.tensor([[1.0, 1.0]]))
        tensor([0.5], dtype=float32)
    """
    y_pred = _as_pred("mean_squared_error", y_pred)
    d = y_pred - _as_target("mean_squared_error", y_true, y_pred)
    return (d * d).mean(axis=-1)


def sum_squared_error(y_true, y_pred) -> Tensor:
    """Half the sum of squared errors over the last axis, ``0.5 * sum((y_true - y_pred)**2)``.

    The loss of classic backpropagation (Rumelhart, Hinton & Williams): its gradient with
    respect to ``y_pred`` is just ``y_pred - y_true``.

    Args:
        y_true: targets, shape of ``y_pred``.
        y_pred: predictions, shape ``(batch, ..., d)``.

    Returns:
        Tensor of shape ``(batch, ...)``.

    Example:
        >>> losses.sum_squared_error([[0.0, 1.0]], fl.tensor([[1.0, 3.0]]))
        tensor([2.5], dtype=float32)
    """
    y_pred = _as_pred("sum_squared_error", y_pred)
    d = y_pred - _as_target("sum_squared_error", y_true, y_pred)
    return (d * d).sum(axis=-1) * 0.5


def mean_absolute_error(y_true, y_pred) -> Tensor:
    """Mean absolute error over the last axis: ``mean(|y_true - y_pred|, axis=-1)``.

    Args:
        y_true: targets, shape of ``y_pred``.
        y_pred: predictions, shape ``(batch, ..., d)``.

    Returns:
        Tensor of shape ``(batch, ...)``.

    Example:
        >>> losses.mean_absolute_error([[0.0, 1.0]], fl.tensor([[1.0, 3.0]]))
        tensor([1.5], dtype=float32)
    """
    y_pred = _as_pred("mean_absolute_error", y_pred)
    return F.abs(y_pred - _as_target("mean_absolute_error", y_true, y_pred)).mean(axis=-1)


def binary_crossentropy(y_true, y_pred, from_logits=False) -> Tensor:
    """Binary cross-entropy, averaged over the last axis.

    ``-mean(t log p + (1 - t) log(1 - p), axis=-1)`` with ``p`` clipped to
    ``[1e-7, 1 - 1e-7]``; from logits (or from a recorded sigmoid) it is computed exactly as
    ``max(z, 0) - z t + log(1 + exp(-|z|))``.

    Args:
        y_true: targets in [0, 1], shape of ``y_pred`` (or without its trailing axis of size 1).
        y_pred: probabilities, or logits when ``from_logits=True``; shape ``(batch, ..., d)``.
        from_logits: whether ``y_pred`` holds unbounded scores rather than probabilities.

    Returns:
        Tensor of shape ``(batch, ...)``.

    Example:
        >>> z = fl.tensor([[0.0], [100.0]], requires_grad=True)
        >>> losses.binary_crossentropy(np.array([1.0, 0.0]), z, from_logits=True)
        tensor([  0.6931472, 100.       ], dtype=float32, creator=Mean)
    """
    y_pred = _as_pred("binary_crossentropy", y_pred)
    t = _as_target("binary_crossentropy", y_true, y_pred)
    logits = y_pred if from_logits else _logits_of(y_pred, Sigmoid)
    if logits is not None:
        return F.sigmoid_binary_cross_entropy(logits, t).mean(axis=-1)
    p = F.clip(y_pred, EPSILON, 1.0 - EPSILON)
    return -(t * F.log(p) + (1.0 - t) * F.log(1.0 - p)).mean(axis=-1)


def categorical_crossentropy(y_true, y_pred, from_logits=False) -> Tensor:
    """Cross-entropy between one-hot (or soft) targets and predicted class probabilities.

    ``-sum(t log p, axis=-1)`` where ``p`` is ``y_pred`` normalised to sum to 1 and clipped
    to ``[1e-7, 1 - 1e-7]`` (as Keras); from logits, or from a recorded softmax over the last
    axis, the fused ``logsumexp(z) - sum(t z)`` form is used, exact for any logits.

    Args:
        y_true: one-hot or probability targets, shape ``(batch, ..., classes)``.
        y_pred: probabilities (or logits when ``from_logits=True``), same shape.
        from_logits: whether ``y_pred`` holds logits.

    Returns:
        Tensor of shape ``(batch, ...)``.

    Example:
        >>> z = fl.tensor([[1000.0, 0.0]], requires_grad=True)
        >>> losses.categorical_crossentropy([[0.0, 1.0]], fl.softmax(z))
        tensor([1000.], dtype=float32, creator=SoftmaxCrossEntropy)
    """
    y_pred = _as_pred("categorical_crossentropy", y_pred)
    t = _as_target("categorical_crossentropy", y_true, y_pred, hint=(
        " For integer class labels use sparse_categorical_crossentropy, or one-hot encode them."))
    logits = y_pred if from_logits else _logits_of(y_pred, Softmax)
    if logits is not None:
        return F.softmax_cross_entropy(logits, t)
    return -(t * F.log(_probabilities(y_pred))).sum(axis=-1)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False) -> Tensor:
    """Cross-entropy of integer class labels against predicted class probabilities.

    The same loss as :func:`categorical_crossentropy` with ``y_true`` one-hot encoded,
    without building the one-hot array on the fused (logits or softmax) path.

    Args:
        y_true: integer class indices of shape ``(batch, ...)`` or ``(batch, ..., 1)``
            (floats holding whole numbers are accepted).
        y_pred: probabilities (or logits when ``from_logits=True``), ``(batch, ..., classes)``.
        from_logits: whether ``y_pred`` holds logits.

    Returns:
        Tensor of shape ``(batch, ...)``.

    Example:
        >>> z = fl.tensor([[2.0, 0.0, 0.0]], requires_grad=True)
        >>> losses.sparse_categorical_crossentropy(np.array([0]), z, from_logits=True)
        tensor([0.23954484], dtype=float32, creator=SoftmaxCrossEntropy)
    """
    y_pred = _as_pred("sparse_categorical_crossentropy", y_pred)
    labels = _class_labels("sparse_categorical_crossentropy", y_true, y_pred)
    logits = y_pred if from_logits else _logits_of(y_pred, Softmax)
    if logits is not None:
        return F.softmax_cross_entropy(logits, labels)
    xp = backend.get_array_module(labels)
    one_hot = (labels[..., None] == xp.arange(y_pred.shape[-1])).astype(y_pred.dtype)
    return -(F.log(_probabilities(y_pred)) * one_hot).sum(axis=-1)


def hinge(y_true, y_pred) -> Tensor:
    """Hinge loss ``mean(max(1 - y_true * y_pred, 0), axis=-1)`` (the SVM margin loss).

    Args:
        y_true: labels in {-1, 1}; labels given in {0, 1} are converted to {-1, 1}, as Keras.
        y_pred: real-valued scores, shape ``(batch, ..., d)``.

    Returns:
        Tensor of shape ``(batch, ...)``.

    Example:
        >>> losses.hinge(np.array([[1.0], [0.0]]), fl.tensor([[0.5], [0.5]]))
        tensor([0.5, 1.5], dtype=float32)
    """
    y_pred = _as_pred("hinge", y_pred)
    t = _signed_labels(_as_target("hinge", y_true, y_pred))
    return F.relu(1.0 - t * y_pred).mean(axis=-1)


def exponential(y_true, y_pred) -> Tensor:
    """Exponential loss ``mean(exp(-y_true * y_pred), axis=-1)`` (the loss AdaBoost minimises).

    Args:
        y_true: labels in {-1, 1} ({0, 1} labels are converted, as for :func:`hinge`).
        y_pred: real-valued scores, shape ``(batch, ..., d)``.

    Returns:
        Tensor of shape ``(batch, ...)``.

    Example:
        >>> losses.exponential(np.array([[1.0]]), fl.tensor([[0.0]]))
        tensor([1.], dtype=float32)
    """
    y_pred = _as_pred("exponential", y_pred)
    t = _signed_labels(_as_target("exponential", y_true, y_pred))
    return F.exp(-(t * y_pred)).mean(axis=-1)


def logistic(y_true, y_pred) -> Tensor:
    """Logistic loss ``mean(log2(1 + exp(-y_true * y_pred)), axis=-1)``.

    Computed as ``softplus(-y_true * y_pred) / ln 2``, finite for any score; it is 1 at a
    zero margin, like the hinge and exponential losses.

    Args:
        y_true: labels in {-1, 1} ({0, 1} labels are converted, as for :func:`hinge`).
        y_pred: real-valued scores, shape ``(batch, ..., d)``.

    Returns:
        Tensor of shape ``(batch, ...)``.

    Example:
        >>> losses.logistic(np.array([[1.0]]), fl.tensor([[0.0]]))
        tensor([1.], dtype=float32)
    """
    y_pred = _as_pred("logistic", y_pred)
    t = _signed_labels(_as_target("logistic", y_true, y_pred))
    return F.softplus(-(t * y_pred)).mean(axis=-1) * (1.0 / _LN2)


def kl_divergence(y_true, y_pred) -> Tensor:
    """Kullback-Leibler divergence ``sum(t log(t / p), axis=-1)`` of ``y_pred`` from ``y_true``.

    Both distributions are clipped to ``[1e-7, 1]`` first, as Keras does, so zeros in either
    give finite values.

    Args:
        y_true: the reference distribution over the last axis.
        y_pred: the predicted distribution, same shape.

    Returns:
        Tensor of shape ``(batch, ...)``.

    Example:
        >>> losses.kl_divergence([[0.5, 0.5]], fl.tensor([[0.5, 0.5]]))
        tensor([0.], dtype=float32)
    """
    y_pred = _as_pred("kl_divergence", y_pred)
    t = F.clip(_as_target("kl_divergence", y_true, y_pred), EPSILON, 1.0)
    return (t * F.log(t / F.clip(y_pred, EPSILON, 1.0))).sum(axis=-1)


def huber(y_true, y_pred, delta=1.0) -> Tensor:
    """Huber loss, averaged over the last axis: quadratic for small errors, linear for large.

    With ``e = y_pred - y_true``: ``0.5 e**2`` where ``|e| <= delta``, else
    ``delta * (|e| - 0.5 delta)`` (Keras 3's formula; PyTorch's ``huber_loss``).

    Args:
        y_true: targets, shape of ``y_pred``.
        y_pred: predictions, shape ``(batch, ..., d)``.
        delta: where the loss turns from quadratic to linear (> 0). Default 1.0.

    Returns:
        Tensor of shape ``(batch, ...)``.

    Example:
        >>> losses.huber([[0.0, 0.0]], fl.tensor([[0.5, 3.0]]))
        tensor([1.3125], dtype=float32)
    """
    delta = _check_delta("huber", delta)
    y_pred = _as_pred("huber", y_pred)
    e = F.abs(y_pred - _as_target("huber", y_true, y_pred))
    # min(|e|, delta) = q: 0.5 q^2 + delta (|e| - q) is both branches in one expression
    q = F.minimum(e, delta)
    return (0.5 * (q * q) + delta * (e - q)).mean(axis=-1)


def _check_delta(owner, delta) -> float:
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not delta > 0 \
            or not math.isfinite(delta):
        raise ValueError(f"{owner}: delta must be a finite number > 0, got {delta!r}.")
    return float(delta)


def log_cosh(y_true, y_pred) -> Tensor:
    """Logarithm of the hyperbolic cosine of the error, averaged over the last axis.

    ``log(cosh(e))`` is about ``e**2 / 2`` for small ``e`` and ``|e| - log 2`` for large; it is
    computed as ``e + softplus(-2 e) - log 2``, finite for any error (as Keras).

    Args:
        y_true: targets, shape of ``y_pred``.
        y_pred: predictions, shape ``(batch, ..., d)``.

    Returns:
        Tensor of shape ``(batch, ...)``.

    Example:
        >>> losses.log_cosh([[0.0]], fl.tensor([[1.0]]))
        tensor([0.4337808], dtype=float32)
    """
    y_pred = _as_pred("log_cosh", y_pred)
    e = y_pred - _as_target("log_cosh", y_true, y_pred)
    return (e + F.softplus(e * -2.0) - _LN2).mean(axis=-1)


def poisson(y_true, y_pred) -> Tensor:
    """Poisson negative log-likelihood up to a constant, ``mean(y_pred - y_true log(y_pred + 1e-7))``.

    Args:
        y_true: observed counts (>= 0), shape of ``y_pred``.
        y_pred: predicted rates (> 0, e.g. from an ``exp`` or ``softplus`` output).

    Returns:
        Tensor of shape ``(batch, ...)``.

    Example:
        >>> losses.poisson([[1.0]], fl.tensor([[1.0]]))
        tensor([0.9999999], dtype=float32)
    """
    y_pred = _as_pred("poisson", y_pred)
    t = _as_target("poisson", y_true, y_pred)
    return (y_pred - t * F.log(y_pred + EPSILON)).mean(axis=-1)


def _l2_normalize(x, axis):
    """``x / max(||x||, 1e-7)`` (Keras's normalize), written so a zero vector has gradient 0."""
    return x / F.sqrt(F.maximum((x * x).sum(axis=axis, keepdims=True), EPSILON * EPSILON))


def cosine_similarity(y_true, y_pred, axis=-1) -> Tensor:
    """Negative cosine similarity ``-sum(l2_normalize(y_true) * l2_normalize(y_pred), axis)``.

    Keras's sign convention: -1 for vectors pointing the same way, 0 for orthogonal ones and
    1 for opposite ones, so that minimising the loss aligns the prediction with the target.

    Args:
        y_true: targets, shape of ``y_pred``.
        y_pred: predictions, shape ``(batch, ..., d)``.
        axis: the axis along which the similarity is taken. Default -1.

    Returns:
        Tensor of ``y_pred``'s shape without ``axis``.

    Example:
        >>> losses.cosine_similarity([[0.0, 1.0], [1.0, 1.0]], fl.tensor([[1.0, 0.0], [1.0, 1.0]]))
        tensor([-0.        , -0.99999994], dtype=float32)
    """
    y_pred = _as_pred("cosine_similarity", y_pred)
    t = _as_target("cosine_similarity", y_true, y_pred)
    if not -y_pred.ndim <= axis < y_pred.ndim:
        raise ValueError(f"cosine_similarity: axis {axis} is out of range for y_pred of shape "
                         f"{y_pred.shape}.")
    return -(_l2_normalize(t, axis) * _l2_normalize(y_pred, axis)).sum(axis=axis)


def squared_hinge(y_true, y_pred) -> Tensor:
    """Squared hinge loss ``mean(max(1 - y_true * y_pred, 0)**2, axis=-1)``.

    Args:
        y_true: labels in {-1, 1}; labels given in {0, 1} are converted to {-1, 1}, as Keras.
        y_pred: real-valued scores, shape ``(batch, ..., d)``.

    Returns:
        Tensor of shape ``(batch, ...)``.

    Example:
        >>> losses.squared_hinge(np.array([[1.0], [0.0]]), fl.tensor([[0.5], [0.5]]))
        tensor([0.25, 2.25], dtype=float32)
    """
    y_pred = _as_pred("squared_hinge", y_pred)
    t = _signed_labels(_as_target("squared_hinge", y_true, y_pred))
    m = F.relu(1.0 - t * y_pred)
    return (m * m).mean(axis=-1)


def categorical_hinge(y_true, y_pred) -> Tensor:
    """Categorical (Crammer-Singer style) hinge ``max(neg - pos + 1, 0)``.

    ``pos = sum(y_true * y_pred, axis=-1)`` is the score of the true class and
    ``neg = max((1 - y_true) * y_pred, axis=-1)`` the best score of the others (Keras 3).

    Args:
        y_true: one-hot targets, shape ``(batch, ..., classes)``.
        y_pred: class scores, same shape.

    Returns:
        Tensor of shape ``(batch, ...)``.

    Example:
        >>> losses.categorical_hinge([[0.0, 1.0]], fl.tensor([[0.2, 0.9]]))
        tensor([0.3], dtype=float32)
    """
    y_pred = _as_pred("categorical_hinge", y_pred)
    t = _as_target("categorical_hinge", y_true, y_pred)
    pos = (t * y_pred).sum(axis=-1)
    neg = ((1.0 - t) * y_pred).max(axis=-1)
    return F.relu(neg - pos + 1.0)


def mean_absolute_percentage_error(y_true, y_pred) -> Tensor:
    """``100 * mean(|y_true - y_pred| / max(|y_true|, 1e-7), axis=-1)``, as Keras.

    Args:
        y_true: targets, shape of ``y_pred``.
        y_pred: predictions, shape ``(batch, ..., d)``.

    Returns:
        Tensor of shape ``(batch, ...)``.

    Example:
        >>> losses.mean_absolute_percentage_error([[2.0, 4.0]], fl.tensor([[1.0, 4.0]]))
        tensor([25.], dtype=float32)
    """
    y_pred = _as_pred("mean_absolute_percentage_error", y_pred)
    t = _as_target("mean_absolute_percentage_error", y_true, y_pred)
    scale = F.maximum(F.abs(t), EPSILON)
    return (F.abs(t - y_pred) / scale).mean(axis=-1) * 100.0


def mean_squared_logarithmic_error(y_true, y_pred) -> Tensor:
    """``mean((log(max(y_pred, 1e-7) + 1) - log(max(y_true, 1e-7) + 1))**2, axis=-1)``, as Keras.

    Args:
        y_true: non-negative targets, shape of ``y_pred``.
        y_pred: non-negative predictions, shape ``(batch, ..., d)``.

    Returns:
        Tensor of shape ``(batch, ...)``.

    Example:
        >>> losses.mean_squared_logarithmic_error([[0.0]], fl.tensor([[math.e - 1]]))
        tensor([0.99999976], dtype=float32)
    """
    y_pred = _as_pred("mean_squared_logarithmic_error", y_pred)
    t = _as_target("mean_squared_logarithmic_error", y_true, y_pred)
    d = F.log(F.maximum(y_pred, EPSILON) + 1.0) - F.log(F.maximum(t, EPSILON) + 1.0)
    return (d * d).mean(axis=-1)


mse = mean_squared_error
mae = mean_absolute_error
kld = kl_divergence
mape = mean_absolute_percentage_error
msle = mean_squared_logarithmic_error
logcosh = log_cosh


# -- reduction and the loss classes -------------------------------------------------------

_REDUCTIONS = ("sum_over_batch_size", "mean", "sum", "mean_with_sample_weight", "none")


def reduce_weighted(values, sample_weight=None, reduction="sum_over_batch_size") -> Tensor:
    """Weight per-sample losses and reduce them to a scalar, with Keras's reductions.

    Args:
        values: per-sample losses, a Tensor of shape ``(batch, ...)``.
        sample_weight: None, or weights broadcastable to ``values`` from the left
            (``(batch,)`` weights scale every loss of a sample).
        reduction: ``"sum_over_batch_size"`` (or ``"mean"``): sum of weighted losses divided
            by their number; ``"sum"``; ``"mean_with_sample_weight"``: divided by the sum of
            the weights instead; ``"none"``: the weighted losses themselves.

    Returns:
        A 0-d Tensor (``values``' shape for ``"none"``).

    Example:
        >>> losses.reduce_weighted(fl.tensor([1.0, 3.0]), np.array([1.0, 0.0]))
        tensor(0.5, dtype=float32)
    """
    reduction = _check_reduction(reduction)
    weights = None
    if sample_weight is not None:
        weights = _sample_weights(values, sample_weight)
        values = values * weights
    if reduction == "none" or values.ndim == 0:
        return values
    total = values.sum()
    if reduction == "sum" or values.size == 0:
        return total
    if reduction == "mean_with_sample_weight" and weights is not None:
        xp = backend.get_array_module(weights)
        weight_sum = float(xp.broadcast_to(weights, values.shape).sum())
        return total / weight_sum if weight_sum else total * 0.0
    return total / values.size


def _check_reduction(reduction):
    if reduction is None:
        return "none"
    if reduction not in _REDUCTIONS:
        raise ValueError(f"Loss: unknown reduction {reduction!r}; expected one of {_REDUCTIONS}.")
    return reduction


def _sample_weights(values, sample_weight):
    """Sample weights as an array of ``values``' dtype whose axes line up from the left."""
    data = sample_weight.data if isinstance(sample_weight, Tensor) else sample_weight
    w = Tensor(data, dtype=values.dtype, device=values.device).data
    shape = w.shape
    if w.ndim == values.ndim + 1 and shape[-1] == 1:
        w = w.reshape(shape[:-1])
    if w.ndim < values.ndim:
        w = w.reshape(w.shape + (1,) * (values.ndim - w.ndim))
    try:
        fits = numpy.broadcast_shapes(w.shape, values.shape) == values.shape
    except ValueError:
        fits = False
    if not fits:
        hint = (" The loss reduced the only axis of a 1-D y_pred; give y_pred the shape "
                "(batch, 1).") if values.ndim == 0 else ""
        raise ValueError(f"Loss: sample_weight of shape {shape} does not fit per-sample losses "
                         f"of shape {values.shape}; give one weight per sample, shape "
                         f"{values.shape[:1]}.{hint}")
    return w


class Loss(Configurable):
    """Base class of the reducing losses: ``loss(y_true, y_pred, sample_weight=None)``.

    Subclasses implement ``call(y_true, y_pred)`` returning per-sample losses; calling the
    instance weights them and reduces them to a scalar (see :func:`reduce_weighted`).

    Args:
        name: a name for logs; defaults to the per-sample function's name.
        reduction: ``"sum_over_batch_size"`` (default, the mean over samples), ``"mean"``,
            ``"sum"``, ``"mean_with_sample_weight"`` or ``"none"``.

    Example:
        >>> class Cubic(losses.Loss):
        ...     def call(self, y_true, y_pred):
        ...         return (fl.abs(y_pred - y_true) ** 3).mean(axis=-1)
        >>> Cubic()(fl.zeros(2, 1), fl.ones(2, 1))
        tensor(1., dtype=float32)
    """

    def __init__(self, name=None, reduction="sum_over_batch_size"):
        self.name = name or type(self).__name__
        self.reduction = _check_reduction(reduction)

    def call(self, y_true, y_pred) -> Tensor:
        """Per-sample losses of shape ``(batch, ...)``; subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__}.call")

    def __call__(self, y_true, y_pred, sample_weight=None) -> Tensor:
        """The weighted losses of a batch, reduced to a 0-d Tensor (by default their mean).

        Args:
            y_true: targets (NumPy array or Tensor).
            y_pred: predictions (Tensor).
            sample_weight: optional per-sample weights, shape ``(batch,)``.
        """
        return reduce_weighted(self.call(y_true, y_pred), sample_weight, self.reduction)

    def get_config(self) -> dict:
        """The constructor arguments as a JSON-safe dict (``from_config`` inverts it)."""
        return {"name": self.name, "reduction": self.reduction}


class LossFunctionWrapper(Loss):
    """A :class:`Loss` around any per-sample loss function ``fn(y_true, y_pred, **kwargs)``.

    Args:
        fn: the per-sample function (one of this module's, or your own).
        name: defaults to ``fn``'s name.
        reduction: see :class:`Loss`.
        **kwargs: extra keyword arguments passed to ``fn`` on every call.

    Example:
        >>> loss = losses.LossFunctionWrapper(losses.hinge)
        >>> loss(np.array([[1.0]]), fl.tensor([[0.5]]))
        tensor(0.5, dtype=float32)
    """

    def __init__(self, fn, name=None, reduction="sum_over_batch_size", **kwargs):
        super().__init__(name or getattr(fn, "__name__", None), reduction)
        self.fn = fn
        self.fn_kwargs = kwargs

    def call(self, y_true, y_pred) -> Tensor:
        return self.fn(y_true, y_pred, **self.fn_kwargs)

    def get_config(self) -> dict:
        config = {**super().get_config(), **self.fn_kwargs}
        if type(self) is LossFunctionWrapper:  # subclasses fix their function themselves
            config["fn"] = serialize(self.fn)
        return config

    @classmethod
    def from_config(cls, config):
        if cls is LossFunctionWrapper:
            config = dict(config)
            return cls(get(config.pop("fn")), **config)
        return cls(**config)


class MeanSquaredError(LossFunctionWrapper):
    """The mean of :func:`mean_squared_error` over a batch.

    Example:
        >>> losses.MeanSquaredError()(np.zeros((2, 2)), fl.ones(2, 2))
        tensor(1., dtype=float32)
    """

    def __init__(self, name="mean_squared_error", reduction="sum_over_batch_size"):
        super().__init__(mean_squared_error, name, reduction)


class SumSquaredError(LossFunctionWrapper):
    """The mean over a batch of :func:`sum_squared_error` (½ the summed squares per sample).

    Example:
        >>> losses.SumSquaredError()(np.zeros((2, 2)), fl.ones(2, 2))
        tensor(1., dtype=float32)
    """

    def __init__(self, name="sum_squared_error", reduction="sum_over_batch_size"):
        super().__init__(sum_squared_error, name, reduction)


class MeanAbsoluteError(LossFunctionWrapper):
    """The mean of :func:`mean_absolute_error` over a batch.

    Example:
        >>> losses.MeanAbsoluteError()(np.zeros((2, 2)), fl.ones(2, 2))
        tensor(1., dtype=float32)
    """

    def __init__(self, name="mean_absolute_error", reduction="sum_over_batch_size"):
        super().__init__(mean_absolute_error, name, reduction)


class _FromLogits(LossFunctionWrapper):
    """A wrapper whose function takes ``from_logits``."""

    _fn = None

    def __init__(self, from_logits=False, name=None, reduction="sum_over_batch_size"):
        super().__init__(self._fn, name or self._fn.__name__, reduction,
                         from_logits=bool(from_logits))

    @property
    def from_logits(self) -> bool:
        return self.fn_kwargs["from_logits"]


class BinaryCrossentropy(_FromLogits):
    """The mean of :func:`binary_crossentropy` over a batch.

    Args:
        from_logits: whether predictions are logits (then the stable fused form is used).
        name, reduction: see :class:`Loss`.

    Example:
        >>> losses.BinaryCrossentropy(from_logits=True)(np.ones((2, 1)), fl.zeros(2, 1))
        tensor(0.6931472, dtype=float32)
    """

    _fn = staticmethod(binary_crossentropy)


class CategoricalCrossentropy(_FromLogits):
    """The mean of :func:`categorical_crossentropy` over a batch (one-hot targets).

    Args:
        from_logits: whether predictions are logits (then the stable fused form is used).
        name, reduction: see :class:`Loss`.

    Example:
        >>> losses.CategoricalCrossentropy(from_logits=True)(np.eye(2), fl.zeros(2, 2))
        tensor(0.6931472, dtype=float32)
    """

    _fn = staticmethod(categorical_crossentropy)


class SparseCategoricalCrossentropy(_FromLogits):
    """The mean of :func:`sparse_categorical_crossentropy` over a batch (integer labels).

    Args:
        from_logits: whether predictions are logits (then the stable fused form is used).
        name, reduction: see :class:`Loss`.

    Example:
        >>> losses.SparseCategoricalCrossentropy(from_logits=True)(np.array([0, 1]), fl.zeros(2, 2))
        tensor(0.6931472, dtype=float32)
    """

    _fn = staticmethod(sparse_categorical_crossentropy)


class Hinge(LossFunctionWrapper):
    """The mean of :func:`hinge` over a batch.

    Example:
        >>> losses.Hinge()(np.array([[1.0]]), fl.tensor([[0.5]]))
        tensor(0.5, dtype=float32)
    """

    def __init__(self, name="hinge", reduction="sum_over_batch_size"):
        super().__init__(hinge, name, reduction)


class Exponential(LossFunctionWrapper):
    """The mean of :func:`exponential` over a batch.

    Example:
        >>> losses.Exponential()(np.array([[1.0]]), fl.tensor([[0.0]]))
        tensor(1., dtype=float32)
    """

    def __init__(self, name="exponential", reduction="sum_over_batch_size"):
        super().__init__(exponential, name, reduction)


class Logistic(LossFunctionWrapper):
    """The mean of :func:`logistic` over a batch.

    Example:
        >>> losses.Logistic()(np.array([[1.0]]), fl.tensor([[0.0]]))
        tensor(1., dtype=float32)
    """

    def __init__(self, name="logistic", reduction="sum_over_batch_size"):
        super().__init__(logistic, name, reduction)


class KLDivergence(LossFunctionWrapper):
    """The mean of :func:`kl_divergence` over a batch.

    Example:
        >>> losses.KLDivergence()([[0.5, 0.5]], fl.tensor([[0.5, 0.5]]))
        tensor(0., dtype=float32)
    """

    def __init__(self, name="kl_divergence", reduction="sum_over_batch_size"):
        super().__init__(kl_divergence, name, reduction)


class Huber(LossFunctionWrapper):
    """The mean of :func:`huber` over a batch.

    Args:
        delta: where the loss turns from quadratic to linear. Default 1.0.
        name, reduction: see :class:`Loss`.

    Example:
        >>> losses.Huber(delta=1.0)(np.zeros((1, 2)), fl.tensor([[0.5, 3.0]]))
        tensor(1.3125, dtype=float32)
    """

    def __init__(self, delta=1.0, name="huber_loss", reduction="sum_over_batch_size"):
        super().__init__(huber, name, reduction, delta=_check_delta("Huber", delta))

    @property
    def delta(self) -> float:
        return self.fn_kwargs["delta"]


class LogCosh(LossFunctionWrapper):
    """The mean of :func:`log_cosh` over a batch.

    Example:
        >>> losses.LogCosh()(np.zeros((1, 1)), fl.ones(1, 1))
        tensor(0.4337808, dtype=float32)
    """

    def __init__(self, name="log_cosh", reduction="sum_over_batch_size"):
        super().__init__(log_cosh, name, reduction)


class Poisson(LossFunctionWrapper):
    """The mean of :func:`poisson` over a batch.

    Example:
        >>> losses.Poisson()(np.ones((1, 1)), fl.ones(1, 1))
        tensor(0.9999999, dtype=float32)
    """

    def __init__(self, name="poisson", reduction="sum_over_batch_size"):
        super().__init__(poisson, name, reduction)


class CosineSimilarity(LossFunctionWrapper):
    """The mean of :func:`cosine_similarity` over a batch (Keras's sign: -1 is best).

    Args:
        axis: the axis along which the similarity is taken. Default -1.
        name, reduction: see :class:`Loss`.

    Example:
        >>> y_pred = fl.tensor([[1.0, 0.0], [1.0, 1.0]])
        >>> losses.CosineSimilarity(axis=1)([[0.0, 1.0], [1.0, 1.0]], y_pred)
        tensor(-0.49999997, dtype=float32)
    """

    def __init__(self, axis=-1, name="cosine_similarity", reduction="sum_over_batch_size"):
        super().__init__(cosine_similarity, name, reduction, axis=int(axis))

    @property
    def axis(self) -> int:
        return self.fn_kwargs["axis"]


class SquaredHinge(LossFunctionWrapper):
    """The mean of :func:`squared_hinge` over a batch.

    Example:
        >>> losses.SquaredHinge()(np.array([[1.0]]), fl.tensor([[0.5]]))
        tensor(0.25, dtype=float32)
    """

    def __init__(self, name="squared_hinge", reduction="sum_over_batch_size"):
        super().__init__(squared_hinge, name, reduction)


class CategoricalHinge(LossFunctionWrapper):
    """The mean of :func:`categorical_hinge` over a batch.

    Example:
        >>> losses.CategoricalHinge()([[0.0, 1.0]], fl.tensor([[0.2, 0.9]]))
        tensor(0.3, dtype=float32)
    """

    def __init__(self, name="categorical_hinge", reduction="sum_over_batch_size"):
        super().__init__(categorical_hinge, name, reduction)


class MeanAbsolutePercentageError(LossFunctionWrapper):
    """The mean of :func:`mean_absolute_percentage_error` over a batch.

    Example:
        >>> losses.MeanAbsolutePercentageError()([[2.0, 4.0]], fl.tensor([[1.0, 4.0]]))
        tensor(25., dtype=float32)
    """

    def __init__(self, name="mean_absolute_percentage_error", reduction="sum_over_batch_size"):
        super().__init__(mean_absolute_percentage_error, name, reduction)


class MeanSquaredLogarithmicError(LossFunctionWrapper):
    """The mean of :func:`mean_squared_logarithmic_error` over a batch.

    Example:
        >>> losses.MeanSquaredLogarithmicError()(np.zeros((1, 1)), fl.zeros(1, 1))
        tensor(0., dtype=float32)
    """

    def __init__(self, name="mean_squared_logarithmic_error", reduction="sum_over_batch_size"):
        super().__init__(mean_squared_logarithmic_error, name, reduction)


# -- lookup by name -----------------------------------------------------------------------

# Canonical names first: serialize() reports the first name registered for a function.
_FUNCTIONS = {
    "mean_squared_error": mean_squared_error,
    "sum_squared_error": sum_squared_error,
    "mean_absolute_error": mean_absolute_error,
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "hinge": hinge,
    "exponential": exponential,
    "logistic": logistic,
    "kl_divergence": kl_divergence,
    "mse": mse,
    "mae": mae,
    "kld": kld,
    "kullback_leibler_divergence": kl_divergence,
    "huber": huber,
    "log_cosh": log_cosh,
    "poisson": poisson,
    "cosine_similarity": cosine_similarity,
    "squared_hinge": squared_hinge,
    "categorical_hinge": categorical_hinge,
    "mean_absolute_percentage_error": mean_absolute_percentage_error,
    "mean_squared_logarithmic_error": mean_squared_logarithmic_error,
    "huber_loss": huber,
    "logcosh": log_cosh,
    "mape": mean_absolute_percentage_error,
    "msle": mean_squared_logarithmic_error,
}
_FUNCTION_NAMES = {}
for _name, _fn in _FUNCTIONS.items():
    _FUNCTION_NAMES.setdefault(_fn, _name)
del _name, _fn

_CLASSES = {cls.__name__: cls for cls in (
    MeanSquaredError, SumSquaredError, MeanAbsoluteError, BinaryCrossentropy,
    CategoricalCrossentropy, SparseCategoricalCrossentropy, Hinge, Exponential, Logistic,
    KLDivergence, Huber, LogCosh, Poisson, CosineSimilarity, SquaredHinge, CategoricalHinge,
    MeanAbsolutePercentageError, MeanSquaredLogarithmicError, LossFunctionWrapper)}


def get(identifier):
    """Resolve a loss given by name, class, instance, config dict or function (as Keras).

    Args:
        identifier: a function name or alias (``"mse"``, ``"categorical_crossentropy"``) ->
            the per-sample function; a class name (``"MeanSquaredError"``) or class -> a
            default instance; a ``{"class_name": ..., "config": ...}`` dict (from
            :func:`serialize`) -> that instance; a :class:`Loss` or any callable -> itself;
            None -> None.

    Returns:
        A per-sample function or a :class:`Loss` (wrap a function in
        :class:`LossFunctionWrapper` to get a reducing object in either case).

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
        TypeError: an identifier of another kind.

    Example:
        >>> losses.get("mse") is losses.mean_squared_error
        True
        >>> losses.get({"class_name": "CategoricalCrossentropy", "config": {"from_logits": True}})
        CategoricalCrossentropy(name='categorical_crossentropy', reduction='sum_over_batch_size', from_logits=True)
    """
    if identifier is None:
        return None
    if isinstance(identifier, str):
        if identifier in _FUNCTIONS:
            return _FUNCTIONS[identifier]
        if identifier in _CLASSES and identifier != "LossFunctionWrapper":
            return _CLASSES[identifier]()
        raise ValueError(f"losses.get: unknown loss {identifier!r}; valid names are "
                         f"{sorted(_FUNCTIONS)} and the classes "
                         f"{sorted(set(_CLASSES) - {'LossFunctionWrapper'})}.")
    if isinstance(identifier, dict):
        cls = _CLASSES.get(identifier.get("class_name"))
        if cls is None or not isinstance(identifier.get("config", {}), dict):
            raise ValueError(f"losses.get: a config dict needs 'class_name' among "
                             f"{sorted(_CLASSES)} and a dict 'config', got {identifier!r}.")
        return cls.from_config(identifier.get("config", {}))
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if callable(identifier):
        return identifier
    raise TypeError(f"losses.get: expected a name, a Loss, a config dict or a callable, got "
                    f"{type(identifier).__name__} {identifier!r}.")


def serialize(loss):
    """A JSON-safe description of a built-in loss that :func:`get` turns back into it.

    Args:
        loss: one of this module's functions, or an instance of one of its classes.

    Returns:
        The function's canonical name (``serialize(mse) == "mean_squared_error"``), or
        ``{"class_name": ..., "config": ...}`` for a :class:`Loss`.

    Raises:
        ValueError: a custom function or class (configs hold names only, never code).

    Example:
        >>> losses.serialize(losses.BinaryCrossentropy(from_logits=True))["config"]["from_logits"]
        True
    """
    if isinstance(loss, Loss) and _CLASSES.get(type(loss).__name__) is type(loss):
        return {"class_name": type(loss).__name__, "config": loss.get_config()}
    try:
        name = _FUNCTION_NAMES.get(loss)
    except TypeError:  # an unhashable callable object cannot be a built-in
        name = None
    if name is None:
        raise ValueError(
            f"losses.serialize: {getattr(loss, '__name__', loss)!r} is not a built-in loss, and "
            f"configs store only the built-in names {sorted(_FUNCTIONS)} and classes "
            f"{sorted(_CLASSES)}, never code.")
    return name
