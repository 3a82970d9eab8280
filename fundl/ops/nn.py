"""Softmax, log-softmax and the fused, numerically stable cross-entropies (logits in)."""
from __future__ import annotations

import numpy

from ..autograd import Function
from ..backend import get_array_module, ones_vector
from ..kernels import fused as _fused
from ..tensor import Tensor
from .activation import _sigmoid


def _last(x, axis):
    return x.ndim > 0 and axis in (-1, x.ndim - 1)


def _pick_last(x, idx):
    """``x[..., idx]`` row by row: ``out[r] = x[r, idx[r]]`` over the flattened leading axes,
    with a fancy index (take_along_axis builds its index in Python: ~4x slower here)."""
    xp = get_array_module(x)
    rows = x.reshape(-1, x.shape[-1])
    return rows[xp.arange(rows.shape[0]), idx.reshape(-1)].reshape(x.shape[:-1] + (1,))


def _max_keep(x, axis):
    """``x.max(axis, keepdims=True)``; along a (short) last axis as argmax + gather, which NumPy
    does several times faster than a max-reduction (8 us -> 3 us for 128 x 10)."""
    if _last(x, axis) and x.size:
        return _pick_last(x, x.argmax(axis=-1))
    return x.max(axis=axis, keepdims=True)


def _sum_keep(x, axis):
    """``x.sum(axis, keepdims=True)``; along the last axis as a GEMV with a ones vector, which
    beats NumPy's reduction over a short last axis by ~3x."""
    if _last(x, axis) and x.dtype.kind == "f":
        xp = get_array_module(x)
        return (x @ ones_vector(x.shape[-1], x.dtype, xp))[..., None]
    return x.sum(axis=axis, keepdims=True)


def _log_softmax(x, axis):
    xp = get_array_module(x)
    shifted = x - _max_keep(x, axis)
    return shifted - xp.log(_sum_keep(xp.exp(shifted), axis))


class Softmax(Function):
    """y = exp(x) / sum(exp(x)) along ``axis``; backward: y * (gy - sum(gy * y))."""

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        if _last(x, self.axis) and x.size:
            x2 = x.reshape(-1, x.shape[-1])
            if _fused.usable_2d(x2):  # one compiled pass per row
                y2 = numpy.empty_like(x2)
                _fused.softmax_numba(x2, y2)
                y = y2.reshape(x.shape)
                self.save(y)
                return y
        xp = get_array_module(x)
        e = xp.exp(x - _max_keep(x, self.axis))  # shifted: exp never overflows
        y = e / _sum_keep(e, self.axis)
        self.save(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        if _last(y, self.axis) and y.size:
            y2, gy2 = y.reshape(-1, y.shape[-1]), gy.reshape(-1, y.shape[-1])
            if _fused.usable_2d(y2, gy2):
                gx2 = numpy.empty_like(y2)
                _fused.softmax_grad_numba(y2, gy2, gx2)
                return gx2.reshape(y.shape)
        gx = y * gy
        gx -= y * _sum_keep(gx, self.axis)
        return gx


class LogSoftmax(Function):
    """y = x - logsumexp(x) along ``axis``; backward: gy - exp(y) * sum(gy)."""

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        y = _log_softmax(x, self.axis)
        self.save(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        return gy - get_array_module(y).exp(y) * _sum_keep(gy, self.axis)


class SoftmaxCrossEntropy(Function):
    """Per-sample -sum(t * log_softmax(z)) along the last axis, from logits ``z``.

    ``target`` is either class indices (integers, shape ``z.shape[:-1]``) or a
    distribution over classes (one-hot or soft, any dtype, shape ``z.shape``).
    With s = z - max(z), e = exp(s): loss = log(sum e) sum(t) - sum(t s), and
    d/dz = (softmax(z) sum(t) - t) gy (softmax(z) - t for one-hot), d/dt = -log_softmax(z) gy.
    """

    def check(self, z, t):
        if z.ndim < 1:
            raise ValueError("SoftmaxCrossEntropy: logits need a class axis; got a 0-d input.")
        if t.shape == z.shape:  # a distribution over the classes
            return
        if t.dtype.kind not in "iu":
            raise ValueError(
                f"SoftmaxCrossEntropy: targets of shape {t.shape} (dtype {t.dtype}) do not match "
                f"logits of shape {z.shape}. Give one-hot/probability targets of the logits' "
                f"shape, or integer class indices of shape {z.shape[:-1]}.")
        if t.shape != z.shape[:-1]:
            raise ValueError(
                f"SoftmaxCrossEntropy: integer class targets must have shape {z.shape[:-1]} for "
                f"logits of shape {z.shape}, got {t.shape}.")
        n = z.shape[-1]
        if t.size and (t.min() < 0 or t.max() >= n):
            raise ValueError(f"SoftmaxCrossEntropy: class indices must lie in [0, {n}) for logits "
                             f"of shape {z.shape}, got values in [{int(t.min())}, {int(t.max())}].")

    def forward(self, z, t):
        self.sparse = t.shape != z.shape
        self.gz = None
        if _fused_xent(z, t, self.sparse, self.needs_grad):
            return self._forward_compiled(z, t)
        xp = get_array_module(z)
        shifted = z - _max_keep(z, -1)  # exp never overflows, sum(e) >= 1
        e = xp.exp(shifted)
        s = _sum_keep(e, -1)
        if self.sparse:  # only the target's log-probability is needed, not the whole row
            idx = t.astype(xp.intp)
            self.save(e, s, idx)
            return (xp.log(s) - _pick_last(shifted, idx))[..., 0]
        if t.dtype.kind != "f":
            t = t.astype(z.dtype)
        t_sum = _sum_keep(t, -1)
        self.save(e, s, shifted, t, t_sum)
        return (xp.log(s) * t_sum - _sum_keep(t * shifted, -1))[..., 0]

    def _forward_compiled(self, z, t):
        """Loss and unit gradient of every row in one compiled pass (see
        :func:`fundl.kernels.fused.softmax_xent_numba`); the backward only scales the rows."""
        c = z.shape[-1]
        z2 = z.reshape(-1, c)
        loss = numpy.empty(z2.shape[0], z.dtype)
        gz = numpy.empty_like(z2)
        if self.sparse:
            idx = numpy.ascontiguousarray(t.reshape(-1), dtype=numpy.int64)
            if not idx.flags.writeable:  # the one signature compiled: writeable arrays
                idx = idx.copy()
            _fused.softmax_xent_numba(z2, z2[:1], idx, True, loss, gz)
        else:
            t2 = t.reshape(-1, c)
            if t2.dtype != z.dtype or not t2.flags.c_contiguous or not t2.flags.writeable:
                t2 = numpy.array(t2, dtype=z.dtype, order="C")
            _fused.softmax_xent_numba(z2, t2, _NO_INDEX, False, loss, gz)
        if self.needs_grad[0]:
            self.gz = gz.reshape(z.shape)
        return loss.reshape(z.shape[:-1])

    def backward(self, gy):
        xp = get_array_module(gy)
        g = gy[..., None]
        if self.gz is not None:  # the compiled forward kept the gradient for gy = 1
            return self.gz * g, None
        if self.sparse:
            e, s, idx = self.saved
            gz = e * (g / s)  # softmax(z) gy
            rows = gz.reshape(-1, gz.shape[-1])  # a view: subtract gy at each target class
            rows[xp.arange(rows.shape[0]), idx.reshape(-1)] -= gy.reshape(-1)
            return gz, None
        e, s, shifted, t, t_sum = self.saved
        gz = (e * (t_sum / s) - t) * g if self.needs_grad[0] else None
        gt = (xp.log(s) - shifted) * g if self.needs_grad[1] else None
        return gz, gt


_NO_INDEX = numpy.zeros(1, numpy.int64)  # the compiled kernel's unused index argument


def _fused_xent(z, t, sparse, needs_grad):
    """Whether :class:`SoftmaxCrossEntropy` runs its compiled one-pass kernel: NumPy logits
    of a float dtype, C-contiguous, at least one row and class; no gradient wanted for the
    targets (the kernel gives the logits' only); float targets or integer class indices."""
    if type(z) is not numpy.ndarray or type(t) is not numpy.ndarray or z.ndim < 1 or \
            z.size == 0 or not z.flags.c_contiguous or not z.flags.writeable or needs_grad[1]:
        return False
    if sparse:
        if t.dtype.kind not in "iu":
            return False
    elif t.dtype.kind not in "fiub":
        return False
    return _fused.usable(z, z)


class SigmoidBinaryCrossEntropy(Function):
    """Element-wise -(t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))) from logits ``z``.

    Computed as max(z, 0) - z t + log1p(exp(-|z|)), finite for any z;
    d/dz = sigmoid(z) - t, d/dt = -z.
    """

    def check(self, z, t):
        if z.shape != t.shape:
            raise ValueError(f"SigmoidBinaryCrossEntropy: targets of shape {t.shape} do not match "
                             f"logits of shape {z.shape}; give one target in [0, 1] per logit.")

    def forward(self, z, t):
        xp = get_array_module(z)
        if t.dtype.kind != "f":  # 0/1 labels as integers or booleans
            t = t.astype(z.dtype)
        self.save(z, t)
        return xp.maximum(z, 0) - z * t + xp.log1p(xp.exp(-xp.abs(z)))

    def backward(self, gy):
        z, t = self.saved
        gz = gy * (_sigmoid(z) - t) if self.needs_grad[0] else None
        gt = -gy * z if self.needs_grad[1] else None
        return gz, gt


def softmax(x, axis=-1) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``axis``, shifted by the max so it never overflows.

    Args:
        x: Tensor of any shape (at least 1-D).
        axis: the axis that sums to 1.

    Returns:
        Tensor of x's shape.

    Example:
        >>> fl.softmax(fl.tensor([[0.0, 0.0]]))
        tensor([[0.5, 0.5]], dtype=float32)
    """
    return Softmax(axis).apply(x)


def log_softmax(x, axis=-1) -> Tensor:
    """``log(softmax(x))`` along ``axis``, computed as x - logsumexp(x) (finite for any x).

    Args:
        x: Tensor of any shape (at least 1-D).
        axis: the axis normalised over.

    Returns:
        Tensor of x's shape.

    Example:
        >>> fl.log_softmax(fl.tensor([1000.0, 0.0]))
        tensor([    0., -1000.], dtype=float32)
    """
    return LogSoftmax(axis).apply(x)


def softmax_cross_entropy(logits, target) -> Tensor:
    """Per-sample cross-entropy of softmax(logits) against ``target``, fused and stable.

    Args:
        logits: (..., classes) unnormalised scores.
        target: class indices, integers of shape (...,) in [0, classes); or a distribution
            over the classes (one-hot or soft, any dtype) of shape (..., classes), which may
            itself require a gradient.

    Returns:
        Tensor of shape logits.shape[:-1] (reduce it yourself, e.g. ``.mean()``).

    Example:
        >>> fl.softmax_cross_entropy(fl.tensor([[1000.0, 0.0]]), np.array([1]))
        tensor([1000.], dtype=float32)
    """
    return SoftmaxCrossEntropy().apply(logits, target)


def sigmoid_binary_cross_entropy(logits, target) -> Tensor:
    """Element-wise binary cross-entropy of sigmoid(logits) against ``target`` in [0, 1].

    Args:
        logits: Tensor of any shape.
        target: labels or probabilities of the same shape (floats, ints or booleans).

    Returns:
        Tensor of the logits' shape (reduce it yourself, e.g. ``.mean()``).

    Example:
        >>> fl.sigmoid_binary_cross_entropy(fl.tensor([0.0]), fl.tensor([1.0]))
        tensor([0.6931472], dtype=float32)
    """
    return SigmoidBinaryCrossEntropy().apply(logits, target)
