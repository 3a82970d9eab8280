"""Element-wise activation functions (each saves what makes its derivative cheapest)."""
from __future__ import annotations

from ..autograd import Function
from ..backend import get_array_module
from ..tensor import Tensor


class ReLU(Function):
    def forward(self, x):
        y = get_array_module(x).maximum(x, 0)
        self.save(y)
        return y

    def backward(self, gy):
        return gy * (self.saved[0] > 0)


class LeakyReLU(Function):
    def __init__(self, negative_slope):
        self.negative_slope = negative_slope

    def forward(self, x):
        self.save(x)
        return get_array_module(x).where(x > 0, x, x * self.negative_slope)

    def backward(self, gy):
        (x,) = self.saved
        return get_array_module(gy).where(x > 0, gy, gy * self.negative_slope)


class ELU(Function):
    """x for x > 0, alpha (e^x - 1) otherwise; d/dx = 1 or y + alpha."""

    def __init__(self, alpha):
        self.alpha = alpha

    def forward(self, x):
        xp = get_array_module(x)
        y = xp.where(x > 0, x, self.alpha * xp.expm1(xp.minimum(x, 0)))
        self.save(x, y)
        return y

    def backward(self, gy):
        x, y = self.saved
        return get_array_module(gy).where(x > 0, gy, gy * (y + self.alpha))


class Sigmoid(Function):
    """1 / (1 + e^-x), written as 0.5 tanh(x/2) + 0.5 so no exp overflows; d/dx = y (1 - y)."""

    def forward(self, x):
        y = get_array_module(x).tanh(x * 0.5) * 0.5 + 0.5
        self.save(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        return gy * y * (1 - y)


class Tanh(Function):
    def forward(self, x):
        y = get_array_module(x).tanh(x)
        self.save(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        return gy * (1 - y * y)


class Gaussian(Function):
    """exp(-x^2 / sigma^2) (radial-basis units); d/dx = -2 x / sigma^2 * y."""

    def __init__(self, sigma):
        self.sigma = sigma

    def forward(self, x):
        y = get_array_module(x).exp(-(x * x) / (self.sigma * self.sigma))
        self.save(x, y)
        return y

    def backward(self, gy):
        x, y = self.saved
        return gy * y * x * (-2.0 / (self.sigma * self.sigma))


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
        return xp.maximum(x, 0) + xp.log1p(xp.exp(-abs(x)))

    def backward(self, gy):
        (x,) = self.saved
        return gy * (get_array_module(x).tanh(x * 0.5) * 0.5 + 0.5)


def relu(x) -> Tensor:
    """max(x, 0); gradient 1 where x > 0, else 0."""
    return ReLU().apply(x)


def leaky_relu(x, negative_slope=0.2) -> Tensor:
    """x for x > 0, ``negative_slope * x`` otherwise (Keras's default slope 0.2)."""
    return LeakyReLU(negative_slope).apply(x)


def elu(x, alpha=1.0) -> Tensor:
    """x for x > 0, ``alpha * (exp(x) - 1)`` otherwise."""
    return ELU(alpha).apply(x)


def sigmoid(x) -> Tensor:
    """The logistic function 1 / (1 + exp(-x)), stable for any x.

    Example:
        >>> fl.sigmoid(fl.tensor([0.0]))
        tensor([0.5], dtype=float32)
    """
    return Sigmoid().apply(x)


def tanh(x) -> Tensor:
    """Hyperbolic tangent; d/dx = 1 - tanh(x)^2."""
    return Tanh().apply(x)


def gaussian(x, sigma=1.0) -> Tensor:
    """The Gaussian (radial-basis) activation ``exp(-x**2 / sigma**2)``."""
    return Gaussian(sigma).apply(x)


def step(x) -> Tensor:
    """Heaviside step (1 where x > 0, else 0) as in the perceptron; its gradient is zero."""
    return Step().apply(x)


def softplus(x) -> Tensor:
    """log(1 + exp(x)), stable for any x; d/dx = sigmoid(x)."""
    return Softplus().apply(x)
