"""Softmax, log-softmax and the fused, numerically stable cross-entropies (logits in)."""
from __future__ import annotations

from ..autograd import Function
from ..backend import get_array_module
from ..tensor import Tensor


def _log_softmax(x, axis):
    xp = get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


class Softmax(Function):
    """exp(x) / sum(exp(x)) along ``axis``; backward: y * (gy - sum(gy * y))."""

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))
        y = e / e.sum(axis=self.axis, keepdims=True)
        self.save(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        gx = y * gy
        gx -= y * gx.sum(axis=self.axis, keepdims=True)
        return gx


class LogSoftmax(Function):
    """x - logsumexp(x) along ``axis``; backward: gy - softmax * sum(gy)."""

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        y = _log_softmax(x, self.axis)
        self.save(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        return gy - get_array_module(y).exp(y) * gy.sum(axis=self.axis, keepdims=True)


class SoftmaxCrossEntropy(Function):
    """Per-sample -sum(t * log_softmax(z)) along the last axis, from logits ``z``.

    ``target`` is either class indices (integers, shape ``z.shape[:-1]``) or a
    distribution over classes (one-hot or soft, shape ``z.shape``).
    d/dz = (softmax(z) * sum(t) - t) * gy, which is softmax(z) - t for one-hot targets.
    """

    def check(self, z, t):
        if z.ndim < 1:
            raise ValueError("SoftmaxCrossEntropy: logits need a class axis; got a 0-d input.")
        if t.dtype.kind in "iub":
            if t.shape != z.shape[:-1]:
                raise ValueError(
                    f"SoftmaxCrossEntropy: integer class targets must have shape {z.shape[:-1]} for "
                    f"logits of shape {z.shape}, got {t.shape}.")
            n = z.shape[-1]
            if t.size and (t.min() < 0 or t.max() >= n):
                raise ValueError(f"SoftmaxCrossEntropy: class indices must lie in [0, {n}), got "
                                 f"values in [{int(t.min())}, {int(t.max())}].")
        elif t.shape != z.shape:
            raise ValueError(
                f"SoftmaxCrossEntropy: targets of shape {t.shape} do not match logits of shape "
                f"{z.shape}. Give one-hot/probability targets of the logits' shape, or integer "
                "class indices of shape logits.shape[:-1].")

    def forward(self, z, t):
        logp = _log_softmax(z, -1)
        xp = get_array_module(z)
        if t.dtype.kind in "iub":
            idx = t.astype(xp.intp)[..., None]
            loss = -xp.take_along_axis(logp, idx, axis=-1)[..., 0]
        else:
            loss = -(t * logp).sum(axis=-1)
        self.save(logp, t)
        return loss

    def backward(self, gy):
        logp, t = self.saved
        xp = get_array_module(logp)
        p = xp.exp(logp)
        g = gy[..., None]
        if t.dtype.kind in "iub":
            idx = t.astype(xp.intp)[..., None]
            xp.put_along_axis(p, idx, xp.take_along_axis(p, idx, axis=-1) - 1, axis=-1)
            return p * g, None
        gz = (p * t.sum(axis=-1, keepdims=True) - t) * g if self.needs_grad[0] else None
        gt = -logp * g if self.needs_grad[1] else None
        return gz, gt


class SigmoidBinaryCrossEntropy(Function):
    """Element-wise -(t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))) from logits ``z``.

    Computed as max(z, 0) - z t + log1p(exp(-|z|)), finite for any z; d/dz = sigmoid(z) - t.
    """

    def check(self, z, t):
        if z.shape != t.shape:
            raise ValueError(f"SigmoidBinaryCrossEntropy: targets of shape {t.shape} do not match "
                             f"logits of shape {z.shape}.")

    def forward(self, z, t):
        xp = get_array_module(z)
        t = t.astype(z.dtype, copy=False)
        self.save(z, t)
        return xp.maximum(z, 0) - z * t + xp.log1p(xp.exp(-abs(z)))

    def backward(self, gy):
        z, t = self.saved
        xp = get_array_module(z)
        gz = gy * (xp.tanh(z * 0.5) * 0.5 + 0.5 - t) if self.needs_grad[0] else None
        gt = -gy * z if self.needs_grad[1] else None
        return gz, gt


def softmax(x, axis=-1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``axis`` (shifted by the max, so it never overflows)."""
    return Softmax(axis).apply(x)


def log_softmax(x, axis=-1) -> Tensor:
    """log(softmax(x)) along ``axis``, computed without forming softmax."""
    return LogSoftmax(axis).apply(x)


def softmax_cross_entropy(logits, target) -> Tensor:
    """Per-sample cross-entropy of softmax(logits) against ``target``, fused and stable.

    Args:
        logits: (..., classes) unnormalised scores.
        target: class indices (..., ) integers, or probabilities (..., classes).

    Returns:
        Tensor of shape logits.shape[:-1].

    Example:
        >>> fl.softmax_cross_entropy(fl.tensor([[1000.0, 0.0]]), np.array([1]))
        tensor([1000.], dtype=float32)
    """
    return SoftmaxCrossEntropy().apply(logits, target)


def sigmoid_binary_cross_entropy(logits, target) -> Tensor:
    """Element-wise binary cross-entropy of sigmoid(logits) against ``target`` in [0, 1].

    Returns:
        Tensor of the logits' shape (reduce it yourself, e.g. ``.mean()``).
    """
    return SigmoidBinaryCrossEntropy().apply(logits, target)
