"""Element-wise activation functions (each saves what makes its derivative cheapest).

Piecewise functions are written with ``maximum``/``minimum`` and mask arithmetic
(``gy * (x > 0)``) instead of ``where``: NumPy's ``where`` branches per element and is
5-10x slower on the CPU when the mask is mixed, as it is for activations. The gradients of
ReLU, tanh and the sigmoid, which sit on every training step, are one-pass kernels
(:func:`fundl.kernels.activation_grad`); their plain-xp reference (the GPU path) computes
ReLU's with ``where`` on purpose, so that an inf or NaN upstream does not leak through a 0.
"""
from __future__ import annotations

from .. import kernels
from ..autograd import Function
from ..backend import get_array_module
from ..tensor import Tensor


def _sigmoid(x):
    """1 / (1 + e^-x) as 0.5 tanh(x/2) + 0.5: no exp overflows, for any x and dtype."""
    return get_array_module(x).tanh(x * 0.5) * 0.5 + 0.5


FUSABLE = ("relu", "tanh", "sigmoid")
"""Activations an op can apply to its own output (:func:`apply_in_place`), then differentiate
with :func:`fundl.kernels.activation_grad` from that output."""


def apply_in_place(kind, y):
    """Overwrite ``y`` with activation ``kind`` (one of :data:`FUSABLE`) of itself; returns it.

    The same arithmetic, in the same order, as :class:`ReLU`, :class:`Tanh` and
    :class:`Sigmoid`'s forward, so a fused op gives bit-identical outputs: an op such as a
    convolution applies it to its output while that output is still in cache, and saves one
    pass, one allocation and one node of the graph.
    """
    xp = get_array_module(y)
    if kind == "relu":
        if kernels.compiled(y, "activation") and y.dtype in kernels.FLOAT_DTYPES and \
                y.flags.c_contiguous:
            kernels.activation.relu_in_place_numba(y)  # NumPy's maximum: 5-7x slower here
        else:
            xp.maximum(y, 0, out=y)
    elif kind == "tanh":
        xp.tanh(y, out=y)
    elif kind == "sigmoid":  # as _sigmoid: tanh(x * 0.5) * 0.5 + 0.5
        xp.multiply(y, 0.5, out=y)
        xp.tanh(y, out=y)
        xp.multiply(y, 0.5, out=y)
        xp.add(y, 0.5, out=y)
    else:
        raise ValueError(f"apply_in_place: kind must be one of {FUSABLE}, got {kind!r}.")
    return y


class ReLU(Function):
    """max(x, 0); d/dx = 1 where x > 0, else 0 (read from the kept output)."""

    def forward(self, x):
        y = kernels.relu(x)
        self.save(y)
        return y

    def backward(self, gy):
        return kernels.activation_grad("relu", gy, self.saved[0])


class LeakyReLU(Function):
    """x for x > 0, s x otherwise; d/dx = 1 or s."""

    def __init__(self, negative_slope):
        self.negative_slope = negative_slope

    def forward(self, x):
        xp = get_array_module(x)
        self.save(x)
        scaled = x * self.negative_slope
        # max(x, s x) picks x above 0 and s x below when s <= 1; min does when s > 1.
        return xp.maximum(x, scaled) if self.negative_slope <= 1 else xp.minimum(x, scaled)

    def backward(self, gy):
        (x,) = self.saved
        slope = (x > 0).astype(gy.dtype)  # 1 or 0 ...
        slope *= 1 - self.negative_slope
        slope += self.negative_slope      # ... becomes 1 or s
        return gy * slope


class ELU(Function):
    """x for x > 0, alpha (e^x - 1) otherwise; d/dx = 1 or alpha e^x."""

    def __init__(self, alpha):
        self.alpha = alpha

    def forward(self, x):
        xp = get_array_module(x)
        em1 = xp.expm1(xp.minimum(x, 0))  # e^x - 1 below 0, exactly 0 above
        y = xp.maximum(x, 0) + self.alpha * em1
        self.save(x, em1)
        return y

    def backward(self, gy):
        x, em1 = self.saved
        pos = x > 0
        # alpha e^x = alpha (em1 + 1) is finite everywhere (unlike y + alpha at x = inf),
        # so masking it by multiplication cannot make a nan.
        return gy * (pos + (self.alpha * (em1 + 1)) * ~pos)


class Sigmoid(Function):
    """1 / (1 + e^-x), computed as 0.5 tanh(x/2) + 0.5 so no exp overflows; d/dx = y (1 - y).

    The tanh form is exact to about one float epsilon in absolute terms, so outputs smaller
    than that (x below about -20 in float32, -38 in float64) come out as 0; it is ~5x faster
    in NumPy than branching on the sign. For log-probabilities use the fused losses.
    """

    def forward(self, x):
        y = _sigmoid(x)
        self.save(y)
        return y

    def backward(self, gy):
        return kernels.activation_grad("sigmoid", gy, self.saved[0])


class Tanh(Function):
    """y = tanh(x); d/dx = 1 - y^2."""

    def forward(self, x):
        y = get_array_module(x).tanh(x)
        self.save(y)
        return y

    def backward(self, gy):
        return kernels.activation_grad("tanh", gy, self.saved[0])


class Gaussian(Function):
    """y = exp(-x^2 / sigma^2) (radial-basis units); d/dx = -2 x / sigma^2 * y."""

    def __init__(self, sigma):
        self.scale = -1.0 / (sigma * sigma)  # y = exp(scale x^2), dy/dx = 2 scale x y

    def forward(self, x):
        y = get_array_module(x).exp((x * x) * self.scale)
        self.save(x, y)
        return y

    def backward(self, gy):
        x, y = self.saved
        return (gy * y) * (x * (2.0 * self.scale))


class Step(Function):
    """The perceptron's Heaviside step: 1 where x > 0, else 0. Its gradient is zero everywhere."""

    def forward(self, x):
        return (x > 0).astype(x.dtype)

    def backward(self, gy):
        return get_array_module(gy).zeros_like(gy)


class Softplus(Function):
    """log(1 + e^x), computed as max(x, 0) + log1p(e^-|x|); d/dx = sigmoid(x)."""

    def forward(self, x):
        xp = get_array_module(x)
        self.save(x)
        return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, gy):
        return gy * _sigmoid(self.saved[0])


def relu(x) -> Tensor:
    """Rectified linear unit ``max(x, 0)``; gradient 1 where x > 0, else 0.

    Args:
        x: Tensor of any shape.

    Returns:
        Tensor of x's shape.

    Example:
        >>> fl.relu(fl.tensor([-1.0, 2.0]))
        tensor([0., 2.], dtype=float32)
    """
    return ReLU().apply(x)


def leaky_relu(x, negative_slope=0.2) -> Tensor:
    """``x`` for x > 0, ``negative_slope * x`` otherwise (Keras's default slope 0.2).

    Args:
        x: Tensor of any shape.
        negative_slope: the slope below 0 (PyTorch's default is 0.01).

    Returns:
        Tensor of x's shape.

    Example:
        >>> fl.leaky_relu(fl.tensor([-1.0, 2.0]))
        tensor([-0.2,  2. ], dtype=float32)
    """
    return LeakyReLU(negative_slope).apply(x)


def elu(x, alpha=1.0) -> Tensor:
    """Exponential linear unit: ``x`` for x > 0, ``alpha * (exp(x) - 1)`` otherwise.

    Args:
        x: Tensor of any shape.
        alpha: the value approached as x -> -inf is ``-alpha``.

    Returns:
        Tensor of x's shape.

    Example:
        >>> fl.elu(fl.tensor([0.0, 2.0]))
        tensor([0., 2.], dtype=float32)
    """
    return ELU(alpha).apply(x)


def sigmoid(x) -> Tensor:
    """The logistic function ``1 / (1 + exp(-x))``, finite for any x; d/dx = y (1 - y).

    Args:
        x: Tensor of any shape.

    Returns:
        Tensor of x's shape, values in [0, 1].

    Example:
        >>> fl.sigmoid(fl.tensor([0.0]))
        tensor([0.5], dtype=float32)
    """
    return Sigmoid().apply(x)


def tanh(x) -> Tensor:
    """Hyperbolic tangent; d/dx = 1 - tanh(x)^2.

    Args:
        x: Tensor of any shape.

    Returns:
        Tensor of x's shape, values in [-1, 1].

    Example:
        >>> fl.tanh(fl.tensor([0.0]))
        tensor([0.], dtype=float32)
    """
    return Tanh().apply(x)


def gaussian(x, sigma=1.0) -> Tensor:
    """The Gaussian (radial-basis) activation ``exp(-x**2 / sigma**2)``.

    Args:
        x: Tensor of any shape.
        sigma: the width, a non-zero number.

    Returns:
        Tensor of x's shape, values in (0, 1].

    Example:
        >>> fl.gaussian(fl.tensor([0.0]))
        tensor([1.], dtype=float32)
    """
    if sigma == 0:
        raise ValueError("gaussian: sigma must be non-zero (it divides x**2), got 0.")
    return Gaussian(sigma).apply(x)


def step(x) -> Tensor:
    """Heaviside step as in the perceptron: 1 where x > 0, else 0; its gradient is zero.

    Args:
        x: Tensor of any shape.

    Returns:
        Tensor of x's shape and dtype holding 0s and 1s.

    Example:
        >>> fl.step(fl.tensor([-1.0, 0.0, 2.0]))
        tensor([0., 0., 1.], dtype=float32)
    """
    return Step().apply(x)


def softplus(x) -> Tensor:
    """``log(1 + exp(x))``, finite for any x; d/dx = sigmoid(x).

    Args:
        x: Tensor of any shape.

    Returns:
        Tensor of x's shape, positive values.

    Example:
        >>> fl.softplus(fl.tensor([0.0]))
        tensor([0.6931472], dtype=float32)
    """
    return Softplus().apply(x)
