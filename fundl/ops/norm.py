"""Normalisation ops: batch normalisation, layer normalisation, local response normalisation.

Each is one fused op with a closed-form backward: written as a composition of primitives they
would record a dozen nodes and keep as many temporaries, and batch normalisation sits on the hot
path of every ResNet. Per-channel reductions use ``einsum`` (``"abcd->d"``, ``"abcd,abcd->d"``):
it reads each operand once without the squared temporary that ``(a * b).sum(axis)`` makes,
and on these machines it was 2-3x faster than ``sum`` over the same axes. Batch
normalisation's passes go through :mod:`fundl.kernels` instead: compiled single passes for
channels-last NumPy arrays (about 3x faster than einsum and ufuncs at ResNet-20 sizes), the
same einsum math for other NumPy arrays, GEMVs with ones for CuPy's.
"""
from __future__ import annotations

import math
import numbers
import operator

from .. import kernels
from ..autograd import _NO_GRAD, Function
from ..backend import get_array_module
from ..tensor import Tensor

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _subscripts(ndim, keep):
    """einsum subscripts for x's axes and for the axes ``keep`` (in increasing order)."""
    if ndim > len(_LETTERS):
        raise ValueError(f"normalisation ops support inputs of rank up to {len(_LETTERS)}, "
                         f"got rank {ndim}.")
    s = _LETTERS[:ndim]
    return s, "".join(s[a] for a in keep)


def _check_float(op, name, a):
    if a.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be a floating-point array, got dtype {a.dtype}. "
                        f"Convert it first, e.g. x.astype('float32').")


def _check_number(op, name, value, low=None):
    """A real number (not bool), at least ``low`` when given; returns it as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number, got {value!r} "
                        f"({type(value).__name__}).")
    if low is not None and not value >= low:  # `not >=` also rejects NaN
        raise ValueError(f"{op}: {name} must be >= {low}, got {value}.")
    return float(value)


def _normalize_axes(op, axis, ndim, allow_tuple):
    """Sorted non-negative axes of an input of rank ``ndim``, or an error naming the op."""
    raw = tuple(axis) if allow_tuple and isinstance(axis, (tuple, list)) else (axis,)
    if not raw:
        raise ValueError(f"{op}: axis must name at least one axis, got {axis!r}.")
    out = []
    for a in raw:
        try:
            a = operator.index(a)
        except TypeError:
            kind = "an int or a tuple of ints" if allow_tuple else "an int"
            raise TypeError(f"{op}: axis must be {kind}, got {axis!r}.") from None
        if not -ndim <= a < ndim:
            raise ValueError(f"{op}: axis {a} is out of range for an input of rank {ndim} "
                             f"(valid: {-ndim} to {ndim - 1}).")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis!r}.")
    return tuple(sorted(out))


class BatchNorm(Function):
    """Batch normalisation along the channel axis ``axis`` (every other axis is reduced),
    optionally followed, in the same pass, by a residual addition and a ReLU.

    Training (no mean/var inputs): with m, v the batch mean and biased variance per channel,
    y = (x - m) / sqrt(v + eps) * gamma + beta; backward (n values per channel, xh the
    normalised x): gx = gamma / sqrt(v + eps) * (gy - sum(gy)/n - xh sum(gy xh)/n).
    Inference (mean and var given): the same affine map with the given statistics, which are
    then differentiable inputs like gamma and beta.

    Fused epilogue (a ResNet's BatchNormalization -> ReLU and BatchNormalization -> Add ->
    ReLU): ``residual`` adds an input r of x's shape, ``relu`` applies max(., 0) last:
    y = max(bn(x) + r, 0). Backward: g = gy where y > 0 (else 0) is r's gradient and goes
    through batch norm's backward as gy would; without a residual the mask is recomputed from
    x inside batch norm's two backward passes (no pass of its own, y not kept).

    Inputs, in order: x, then gamma if ``scale``, beta if ``center``, r if ``residual``, then
    mean and var in inference mode; every parameter has shape (channels,). The statistics
    used are left in ``self.stats`` as (mean, var) for the caller (moving averages). Saved for
    backward: x, the mean, 1 / sqrt(v + eps), gamma, the affine map's scale and shift, and y
    when a residual or inference mode needs it (x - mean is recomputed inside the backward's
    passes).
    """

    stats_out = False  # graph mode: the statistics as outputs 2 and 3 (set by batch_norm)

    def __init__(self, axis=-1, epsilon=1e-3, scale=True, center=True, training=True,
                 residual=False, relu=False):
        self.axis = axis
        self.epsilon = epsilon
        self.scale = scale
        self.center = center
        self.training = training
        self.residual = residual
        self.relu = relu
        self.stats = None

    def _param_names(self):
        names = ["gamma"] if self.scale else []
        names += ["beta"] if self.center else []
        return names + ([] if self.training else ["mean", "var"])

    def check(self, x, *params):
        _check_float(self.name, "x", x)
        if x.ndim == 0:
            raise ValueError(f"{self.name}: x needs a channel axis, got a 0-d input.")
        self.axis = _normalize_axes(self.name, self.axis, x.ndim, allow_tuple=False)[0]
        c = x.shape[self.axis]
        params = list(params)
        if self.residual:
            r = params.pop(self.scale + self.center)
            if r.shape != x.shape:
                raise ValueError(f"{self.name}: the residual must have x's shape {x.shape}, "
                                 f"got {r.shape}.")
            _check_float(self.name, "residual", r)
        for name, p in zip(self._param_names(), params):
            if p.shape != (c,):
                raise ValueError(
                    f"{self.name}: {name} must have shape ({c},), one value per channel along "
                    f"axis {self.axis} of x with shape {x.shape}, got {name} of shape {p.shape}.")
            _check_float(self.name, name, p)
        if self.training and x.size == 0:
            raise ValueError(f"{self.name}: cannot compute batch statistics of an empty input "
                             f"of shape {x.shape}.")
        self._bshape = tuple(c if i == self.axis else 1 for i in range(x.ndim))

    def _unpack(self, params):
        params = list(params)
        gamma = params.pop(0) if self.scale else None
        beta = params.pop(0) if self.center else None
        residual = params.pop(0) if self.residual else None
        return gamma, beta, residual, params

    def forward(self, x, *params):
        xp = get_array_module(x)
        gamma, beta, residual, stats = self._unpack(params)
        if self.training:
            # shifted statistics, never the cancelling E[x^2] - E[x]^2 (see fundl.kernels.norm)
            mean, var = kernels.batch_norm_stats(x, self.axis)
            self.stats = (mean.copy(), var)  # the caller's copy: saved arrays stay private
        else:
            # Copies of the (tiny) statistics: a layer updates its moving averages in place,
            # and saved arrays must not change under a recorded graph.
            mean, var = stats[0].copy(), stats[1].copy()
            self.stats = (mean, var)
        inv = 1 / xp.sqrt(var + self.epsilon)
        scale = inv * gamma if gamma is not None else inv
        shift = beta if beta is not None else xp.zeros_like(scale)
        # Centre first, y = (x - mean) * scale + shift (x * scale + (shift - mean * scale) would
        # cancel when |mean| >> std). x itself is saved, not x - mean: it is alive in the graph
        # anyway, and backward recentres it on the fly.
        y = kernels.batch_norm_affine(x, self.axis, mean, scale, shift, residual, self.relu)
        # the ReLU's mask: recomputed from x in training without a residual, else y > 0
        if self.needs_grad is not _NO_GRAD:  # nothing kept for a backward that cannot come
            keep_y = self.relu and (self.residual or not self.training)
            self.save(x, mean, inv, gamma, scale, shift, y if keep_y else None)
        return (y,) + self.stats if self.stats_out else y

    def backward(self, gy, *stat_grads):  # (the statistics' outputs, if any, get no gradient)
        x, mean, inv, gamma, scale, shift, y = self.saved
        need = self.needs_grad
        k = 1 + self.scale + self.center + self.residual  # index of mean, var in inference mode
        gbeta = ggamma = None
        gres = gy if self.residual else None
        relu_shift = None  # given: the batch-norm passes mask gy by the ReLU themselves
        if self.relu:
            if y is None:
                relu_shift = shift
            elif self.training:  # masked in the first pass, which also writes g for r
                gbeta, ggamma, gy = kernels.batch_norm_grad_sums(gy, x, self.axis, mean, y=y)
                gres = gy
            else:
                gy = kernels.activation_grad("relu", gy, y)
                gres = gy
        # training: gx needs both sums; inference: only gamma's, beta's, mean's and var's do
        if gbeta is None and (self.training or any(need[1:1 + self.scale + self.center])
                              or any(need[k:])):
            # sum(g) and sum(g * (x - mean)) in one pass; ggamma = sum(g * xh)
            gbeta, ggamma = kernels.batch_norm_grad_sums(
                gy, x, self.axis, mean, *((scale, relu_shift) if relu_shift is not None else ()))
        if ggamma is not None:
            ggamma = ggamma * inv
        extra = (gres if self.residual and need[k - 1] else None,) if self.residual else ()
        if self.training:
            gx = None
            if need[0]:
                n = x.size // x.shape[self.axis]
                # gx = scale * (g - gbeta/n - xc * inv * ggamma/n), in one pass
                gx = kernels.batch_norm_grad_x(gy, x, self.axis, mean, inv * ggamma / n,
                                               gbeta / n, scale, relu_shift)
            return (gx,) + self._param_grads(ggamma, gbeta, extra)
        gx = gy * scale.reshape(self._bshape) if need[0] else None
        gmean = -gbeta * scale if need[k] else None
        gvar = None
        if need[k + 1]:  # d/dv (v + eps)^(-1/2) = -(v + eps)^(-3/2) / 2
            gvar = -0.5 * ggamma * scale * inv
        return (gx,) + self._param_grads(ggamma, gbeta, extra + (gmean, gvar))

    def _param_grads(self, ggamma, gbeta, extra=()):
        out = []
        if self.scale:
            out.append(ggamma)
        if self.center:
            out.append(gbeta)
        return tuple(out) + tuple(extra)


class LayerNorm(Function):
    """Per-sample normalisation over the axes ``axis``, then ``* gamma + beta``.

    y = (x - m) / sqrt(v + eps) * gamma + beta with m, v the mean and biased variance over
    ``axis``; gamma and beta span those axes (their sizes, in increasing axis order). Backward,
    with g = gy * gamma, xh the normalised x and means over ``axis``:
    gx = (g - mean(g) - xh mean(g xh)) / sqrt(v + eps).
    """

    def __init__(self, axis=-1, epsilon=1e-3, scale=True, center=True):
        self.axis = axis
        self.epsilon = epsilon
        self.scale = scale
        self.center = center

    def check(self, x, *params):
        _check_float(self.name, "x", x)
        if x.ndim == 0:
            raise ValueError(f"{self.name}: x needs at least one axis, got a 0-d input.")
        self.axis = _normalize_axes(self.name, self.axis, x.ndim, allow_tuple=True)
        pshape = tuple(x.shape[a] for a in self.axis)
        names = (["gamma"] if self.scale else []) + (["beta"] if self.center else [])
        for name, p in zip(names, params):
            if p.shape != pshape:
                raise ValueError(
                    f"{self.name}: {name} must have shape {pshape} (the sizes of axes "
                    f"{self.axis} of x with shape {x.shape}), got {name} of shape {p.shape}.")
            _check_float(self.name, name, p)
        if x.size == 0:
            raise ValueError(f"{self.name}: cannot normalise an empty input of shape {x.shape}.")
        keep = tuple(i for i in range(x.ndim) if i not in self.axis)
        self._s, self._keep = _subscripts(x.ndim, keep)
        self._norm = _subscripts(x.ndim, self.axis)[1]
        # statistics broadcast over the normalised axes, parameters over the kept ones
        self._sshape = tuple(1 if i in self.axis else n for i, n in enumerate(x.shape))
        self._pshape = tuple(n if i in self.axis else 1 for i, n in enumerate(x.shape))

    def forward(self, x, *params):
        xp = get_array_module(x)
        params = list(params)
        gamma = params.pop(0) if self.scale else None
        beta = params.pop(0) if self.center else None
        s, keep = self._s, self._keep
        n = math.prod(x.shape[a] for a in self.axis)
        mean = (xp.einsum(f"{s}->{keep}", x) / n).reshape(self._sshape)
        xh = x - mean
        var = xp.einsum(f"{s},{s}->{keep}", xh, xh) / n
        inv = (1 / xp.sqrt(var + self.epsilon)).reshape(self._sshape)
        xh *= inv
        if gamma is not None:
            y = xh * gamma.reshape(self._pshape)
            if beta is not None:
                y += beta.reshape(self._pshape)
        else:
            y = xh + beta.reshape(self._pshape) if beta is not None else xh.copy()
        self.save(xh, inv, gamma)
        return y

    def backward(self, gy):
        xp = get_array_module(gy)
        xh, inv, gamma = self.saved
        s, keep, norm = self._s, self._keep, self._norm
        need = self.needs_grad
        grads = [None]
        if need[0]:
            n = math.prod(xh.shape[a] for a in self.axis)
            g = gy * gamma.reshape(self._pshape) if gamma is not None else gy
            a = (xp.einsum(f"{s}->{keep}", g) / n).reshape(self._sshape)
            b = (xp.einsum(f"{s},{s}->{keep}", g, xh) / n).reshape(self._sshape)
            gx = xh * b
            xp.subtract(g, gx, out=gx)
            gx -= a
            gx *= inv
            grads[0] = gx
        if self.scale:
            grads.append(xp.einsum(f"{s},{s}->{norm}", gy, xh) if need[1] else None)
        if self.center:
            grads.append(xp.einsum(f"{s}->{norm}", gy) if need[1 + self.scale] else None)
        return tuple(grads)


def _window_sum(a, r):
    """Sum of ``a`` over the window [c - r, c + r] of the last axis (clipped at the edges).

    2r + 1 passes over slices: exact, unlike a difference of cumulative sums, and with a small
    radius (2 in AlexNet, 5 in TF's default) cheaper than a banded matrix product.
    """
    out = a.copy()
    for k in range(1, min(r, a.shape[-1] - 1) + 1):
        out[..., k:] += a[..., :-k]
        out[..., :-k] += a[..., k:]
    return out


class LocalResponseNorm(Function):
    """Local response normalisation across the last (channel) axis, TensorFlow's formula.

    y = x / d**beta with d = bias + alpha * sum_{c' in [c-r, c+r]} x[c']**2. Backward (the
    window is symmetric, so its transpose is itself):
    gx = gy d**-beta - 2 alpha beta x window_sum(gy x d**(-beta-1)).
    """

    def __init__(self, depth_radius=5, bias=1.0, alpha=1.0, beta=0.5):
        self.depth_radius = depth_radius
        self.bias = bias
        self.alpha = alpha
        self.beta = beta

    def check(self, x):
        _check_float(self.name, "x", x)
        if x.ndim == 0:
            raise ValueError(f"{self.name}: x needs a channel (last) axis, got a 0-d input.")

    def forward(self, x):
        xp = get_array_module(x)
        d = _window_sum(x * x, self.depth_radius)
        d *= self.alpha
        d += self.bias
        if self.beta == 0.5:  # the default: sqrt is much cheaper than a general power
            dpow = xp.sqrt(d)
            xp.reciprocal(dpow, out=dpow)
        else:
            dpow = d ** -self.beta
        self.save(x, d, dpow)
        return x * dpow

    def backward(self, gy):
        x, d, dpow = self.saved
        t = gy * x
        t *= dpow
        t /= d
        w = _window_sum(t, self.depth_radius)
        w *= x
        w *= 2 * self.alpha * self.beta
        gx = gy * dpow
        gx -= w
        return gx


def batch_norm(x, gamma, beta, mean=None, var=None, axis=-1, epsilon=1e-3,
               return_stats=False, residual=None, activation=None):
    """Batch normalisation: ``(x - mean) / sqrt(var + epsilon) * gamma + beta`` per channel.

    Without ``mean``/``var`` (training mode) the statistics are the batch's: the mean and the
    biased variance over every axis except ``axis``. With both given (inference mode) they are
    used as they are (and are differentiable). One fused op with the closed-form backward.

    ``residual`` and ``activation="relu"`` fuse what a residual network does next into the
    same op: ``y = relu(batch_norm(x) + residual)``, the same values as the three ops one
    after the other, in one pass over memory forward and inside batch norm's own passes
    backward (the BatchNormalization layer uses it where a model's graph has
    BatchNormalization -> ReLU, or BatchNormalization -> Add -> ReLU).

    Args:
        x: Tensor of shape (..., channels, ...), channels along ``axis``.
        gamma: (channels,) scale, or None for 1.
        beta: (channels,) offset, or None for 0.
        mean, var: (channels,) statistics for inference mode; both None for training mode.
        axis: the channel axis (-1 for channels-last images, as Keras).
        epsilon: added to the variance before the square root.
        return_stats: also return the mean and variance used (batch statistics in training
            mode, copies of ``mean``/``var`` otherwise), as Tensors without a graph; a layer
            uses them to update its moving averages.
        residual: None, or a Tensor of x's shape added after the normalisation.
        activation: None, or ``"relu"``: applied last.

    Returns:
        Tensor of x's shape; or ``(y, mean, var)`` with ``return_stats=True``, mean and var of
        shape (channels,).

    Raises:
        ValueError: a parameter is not of shape (channels,), the axis is out of range, only
            one of mean/var is given, a residual not of x's shape, or another activation.
        TypeError: non-float inputs, or a non-numeric epsilon.

    Example:
        >>> x = fl.randn(8, 4, 4, 3)                       # NHWC
        >>> y, m, v = fl.batch_norm(x, fl.ones(3), fl.zeros(3), return_stats=True)
        >>> y.shape, m.shape
        ((8, 4, 4, 3), (3,))
        >>> fl.batch_norm(x, fl.ones(3), fl.zeros(3), residual=x, activation="relu").shape
        (8, 4, 4, 3)
    """
    if (mean is None) != (var is None):
        given = "mean" if var is None else "var"
        raise ValueError(f"BatchNorm: give both mean and var (inference mode) or neither "
                         f"(training mode, batch statistics); got only {given}.")
    epsilon = _check_number("BatchNorm", "epsilon", epsilon, low=0)
    if activation not in (None, "relu"):
        raise ValueError(f"BatchNorm: activation must be None or 'relu' (fused into the op), "
                         f"got {activation!r}; apply other activations after it.")
    training = mean is None
    fn = BatchNorm(axis, epsilon, scale=gamma is not None, center=beta is not None,
                   training=training, residual=residual is not None,
                   relu=activation == "relu")
    inputs = [x] + [p for p in (gamma, beta, residual) if p is not None]
    if not training:
        inputs += [mean, var]
    from .. import autograd

    tracer = autograd._tracer
    if return_stats and tracer is not None and tracer.in_this_thread():
        # graph mode (fl.function) is tracing: the statistics leave as op outputs, so that a
        # replay gives the moving-average update its own batch's statistics
        fn.stats_out = True
        y, m, v = fn.apply(*inputs)
        return y, m.detach(), v.detach()
    y = fn.apply(*inputs)
    if not return_stats:
        fn.stats = None
        return y
    m, v = fn.stats
    fn.stats = None  # do not keep them alive with the graph
    return y, Tensor._wrap(m), Tensor._wrap(v)


def layer_norm(x, gamma, beta, axis=-1, epsilon=1e-3) -> Tensor:
    """Layer normalisation: each sample normalised over ``axis``, then ``* gamma + beta``.

    ``y = (x - mean) / sqrt(var + epsilon) * gamma + beta``, mean and biased variance taken over
    the axes ``axis`` separately for every position of the other axes.

    Args:
        x: Tensor of any rank >= 1.
        gamma: scale of shape ``tuple(x.shape[a] for a in sorted(axis))``, or None for 1.
        beta: offset of the same shape, or None for 0.
        axis: an int or a tuple of ints: the axes normalised over.
        epsilon: added to the variance before the square root.

    Returns:
        Tensor of x's shape.

    Raises:
        ValueError: gamma/beta of the wrong shape, an axis out of range or repeated.
        TypeError: non-float inputs, an axis that is not an int or tuple of ints.

    Example:
        >>> x = fl.randn(2, 5, 16)                           # (batch, time, features)
        >>> fl.layer_norm(x, fl.ones(16), fl.zeros(16)).shape
        (2, 5, 16)
    """
    epsilon = _check_number("LayerNorm", "epsilon", epsilon, low=0)
    fn = LayerNorm(axis, epsilon, scale=gamma is not None, center=beta is not None)
    return fn.apply(x, *[p for p in (gamma, beta) if p is not None])


def local_response_norm(x, depth_radius=5, bias=1.0, alpha=1.0, beta=0.5) -> Tensor:
    """Local response normalisation across channels (the last axis), as TensorFlow/Keras.

    ``y[..., c] = x[..., c] / (bias + alpha * sum_{c'=c-r}^{c+r} x[..., c']**2) ** beta`` with
    ``r = depth_radius``, the window clipped at the first and last channel.

    PyTorch's ``torch.nn.functional.local_response_norm(x, size, alpha, beta, k)`` (channels on
    axis 1) averages over the window instead of summing it: the same result comes from
    ``size = 2 * depth_radius + 1``, ``alpha_torch = alpha * size``, ``k = bias``. (AlexNet's
    n=5, alpha=1e-4, beta=0.75, k=2 is ``depth_radius=2, alpha=1e-4, beta=0.75, bias=2`` here.)

    Args:
        x: Tensor of shape (..., channels), e.g. NHWC images.
        depth_radius: r, the half-width of the channel window (an int >= 0).
        bias: added to the weighted sum of squares (k in the AlexNet paper).
        alpha: weight of the sum of squares.
        beta: the exponent.

    Returns:
        Tensor of x's shape.

    Raises:
        TypeError: a non-float x, non-integer depth_radius or non-numeric bias/alpha/beta.
        ValueError: a negative depth_radius or a 0-d x.

    Example:
        >>> x = fl.randn(1, 6, 6, 96)
        >>> fl.local_response_norm(x, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75).shape
        (1, 6, 6, 96)
    """
    op = "LocalResponseNorm"
    if isinstance(depth_radius, bool) or not isinstance(depth_radius, numbers.Integral):
        raise TypeError(f"{op}: depth_radius must be an int, got {depth_radius!r}.")
    if depth_radius < 0:
        raise ValueError(f"{op}: depth_radius must be >= 0, got {depth_radius}.")
    bias = _check_number(op, "bias", bias)
    alpha = _check_number(op, "alpha", alpha)
    beta = _check_number(op, "beta", beta)
    return LocalResponseNorm(int(depth_radius), bias, alpha, beta).apply(x)
