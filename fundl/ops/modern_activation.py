"""The activations of modern networks, with Keras 3's formulas: GELU, SiLU (swish), Mish, SELU,
ReLU6, the hard sigmoid and hard SiLU (hard swish), and softsign.

Each is one op with its own backward (a composition would record 3-6 nodes and keep as many
intermediate arrays for a function applied to every unit of a layer). Piecewise ones mask by
multiplication, as :mod:`fundl.ops.activation` does.

The exact GELU needs ``erf``, which NumPy lacks: on the CPU it runs ``math.erf`` in a small
Numba loop (exact to double precision; a plain NumPy vectorised loop without Numba), on the
GPU CuPy's ``cupyx.scipy.special.erf``.
"""
from __future__ import annotations

import math

import numpy

from ..autograd import Function
from ..backend import get_array_module
from ..kernels._jit import jit, numba
from ..tensor import Tensor
from .activation import _sigmoid

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


@jit
def _erf_loop(x, out):  # pragma: no cover - compiled by Numba (run as Python without it)
    for i in range(x.size):
        out[i] = math.erf(x[i])


_erf_vectorized = numpy.vectorize(math.erf, otypes=[numpy.float64])


def erf(x):
    """The error function of an array, element-wise, on the array's own back-end."""
    xp = get_array_module(x)
    if xp is not numpy:
        from cupyx.scipy.special import erf as cupy_erf
        return cupy_erf(x)
    if numba is None or x.dtype not in (numpy.float32, numpy.float64):
        return _erf_vectorized(x).astype(x.dtype, copy=False)
    flat = numpy.ascontiguousarray(x).reshape(-1)
    out = numpy.empty_like(flat)
    _erf_loop(flat, out)
    return out.reshape(x.shape)


class Gelu(Function):
    """x Phi(x) with Phi the standard normal CDF; d/dx = Phi(x) + x phi(x).

    With ``approximate=True``: ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.
    """

    def __init__(self, approximate):
        self.approximate = approximate

    def forward(self, x):
        xp = get_array_module(x)
        if self.approximate:
            t = xp.tanh((x + _GELU_CUBIC * (x * x * x)) * _SQRT_2_OVER_PI)
            self.save(x, t)
            return 0.5 * x * (1.0 + t)
        cdf = 0.5 * (1.0 + erf(x * _SQRT_HALF))
        self.save(x, cdf)
        return x * cdf

    def backward(self, gy):
        xp = get_array_module(gy)
        x, a = self.saved
        if self.approximate:  # a = tanh(u), u = sqrt(2/pi) (x + c x^3)
            du = _SQRT_2_OVER_PI * (1.0 + (3.0 * _GELU_CUBIC) * (x * x))
            return gy * (0.5 * (1.0 + a) + (0.5 * x) * (1.0 - a * a) * du)
        pdf = xp.exp(-0.5 * (x * x)) * _INV_SQRT_2PI
        return gy * (a + x * pdf)


class Silu(Function):
    """x sigmoid(x) (swish); d/dx = s (1 + x (1 - s))."""

    def forward(self, x):
        s = _sigmoid(x)
        self.save(x, s)
        return x * s

    def backward(self, gy):
        x, s = self.saved
        return gy * (s * (1.0 + x * (1.0 - s)))


class Mish(Function):
    """x tanh(softplus(x)); d/dx = tanh(sp) + x (1 - tanh(sp)^2) sigmoid(x)."""

    def forward(self, x):
        xp = get_array_module(x)
        t = xp.tanh(xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x))))
        self.save(x, t)
        return x * t

    def backward(self, gy):
        x, t = self.saved
        return gy * (t + x * (1.0 - t * t) * _sigmoid(x))


class Selu(Function):
    """scale x for x > 0, scale alpha (e^x - 1) otherwise (Klambauer et al.'s constants)."""

    def forward(self, x):
        xp = get_array_module(x)
        em1 = xp.expm1(xp.minimum(x, 0))
        self.save(x, em1)
        return SELU_SCALE * (xp.maximum(x, 0) + SELU_ALPHA * em1)

    def backward(self, gy):
        x, em1 = self.saved
        pos = x > 0
        return gy * (SELU_SCALE * (pos + (SELU_ALPHA * (em1 + 1.0)) * ~pos))


class Relu6(Function):
    """min(max(x, 0), 6); d/dx = 1 on (0, 6), else 0."""

    def forward(self, x):
        xp = get_array_module(x)
        self.save(x)
        return xp.clip(x, 0, 6).astype(x.dtype, copy=False)

    def backward(self, gy):
        (x,) = self.saved
        return gy * ((x > 0) & (x < 6))


class HardSigmoid(Function):
    """relu6(x + 3) / 6 (Keras 3's hard sigmoid); d/dx = 1/6 on (-3, 3), else 0."""

    def forward(self, x):
        xp = get_array_module(x)
        self.save(x)
        return xp.clip(x * (1.0 / 6.0) + 0.5, 0, 1).astype(x.dtype, copy=False)

    def backward(self, gy):
        (x,) = self.saved
        return gy * (((x > -3) & (x < 3)) * (1.0 / 6.0)).astype(gy.dtype, copy=False)


class HardSilu(Function):
    """x relu6(x + 3) / 6 (hard swish); d/dx = h(x) + x/6 on (-3, 3)."""

    def forward(self, x):
        xp = get_array_module(x)
        h = xp.clip(x * (1.0 / 6.0) + 0.5, 0, 1).astype(x.dtype, copy=False)
        self.save(x, h)
        return x * h

    def backward(self, gy):
        x, h = self.saved
        return gy * (h + x * ((x > -3) & (x < 3)) * (1.0 / 6.0))


class Softsign(Function):
    """x / (1 + |x|); d/dx = 1 / (1 + |x|)^2."""

    def forward(self, x):
        xp = get_array_module(x)
        d = 1.0 + xp.abs(x)
        self.save(d)
        return x / d

    def backward(self, gy):
        (d,) = self.saved
        return gy / (d * d)


def gelu(x, approximate=False) -> Tensor:
    """Gaussian error linear unit ``x * Phi(x)`` (Hendrycks & Gimpel), Keras 3's default exact form.

    Args:
        x: Tensor of any shape.
        approximate: False (Keras's default): the exact ``0.5 x (1 + erf(x / sqrt 2))``; True:
            the tanh approximation ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``
            (PyTorch's ``approximate="tanh"``).

    Returns:
        Tensor of x's shape.

    Example:
        >>> fl.gelu(fl.tensor([0.0, 1.0]))
        tensor([0.       , 0.8413447], dtype=float32)
    """
    return Gelu(bool(approximate)).apply(x)


def silu(x) -> Tensor:
    """Sigmoid linear unit (swish) ``x * sigmoid(x)``.

    Args:
        x: Tensor of any shape.

    Returns:
        Tensor of x's shape.

    Example:
        >>> fl.silu(fl.tensor([0.0, 1.0]))
        tensor([0.       , 0.7310586], dtype=float32)
    """
    return Silu().apply(x)


swish = silu  # Keras 3 has both names for the same function


def mish(x) -> Tensor:
    """Mish ``x * tanh(softplus(x))`` (Misra, 2019), finite for any x.

    Args:
        x: Tensor of any shape.

    Returns:
        Tensor of x's shape.

    Example:
        >>> fl.mish(fl.tensor([0.0, 1.0]))
        tensor([0.       , 0.8650984], dtype=float32)
    """
    return Mish().apply(x)


def selu(x) -> Tensor:
    """Scaled ELU ``scale * elu(x, alpha)``, alpha ~ 1.67326, scale ~ 1.05070 (self-normalising).

    Args:
        x: Tensor of any shape.

    Returns:
        Tensor of x's shape; pair it with the ``lecun_normal`` initializer, as Keras advises.

    Example:
        >>> fl.selu(fl.tensor([1.0]))
        tensor([1.050701], dtype=float32)
    """
    return Selu().apply(x)


def relu6(x) -> Tensor:
    """ReLU capped at 6, ``min(max(x, 0), 6)`` (MobileNet).

    Args:
        x: Tensor of any shape.

    Returns:
        Tensor of x's shape, values in [0, 6].

    Example:
        >>> fl.relu6(fl.tensor([-1.0, 3.0, 8.0]))
        tensor([0., 3., 6.], dtype=float32)
    """
    return Relu6().apply(x)


def hard_sigmoid(x) -> Tensor:
    """Keras 3's hard sigmoid ``relu6(x + 3) / 6``: 0 below -3, 1 above 3, linear between.

    (Keras 2 used ``0.2 x + 0.5``; Keras 3 and PyTorch's ``hardsigmoid`` use this one.)

    Args:
        x: Tensor of any shape.

    Returns:
        Tensor of x's shape, values in [0, 1].

    Example:
        >>> fl.hard_sigmoid(fl.tensor([-4.0, 0.0, 1.5]))
        tensor([0.  , 0.5 , 0.75], dtype=float32)
    """
    return HardSigmoid().apply(x)


def hard_silu(x) -> Tensor:
    """Hard SiLU (hard swish, MobileNetV3) ``x * relu6(x + 3) / 6``.

    Args:
        x: Tensor of any shape.

    Returns:
        Tensor of x's shape.

    Example:
        >>> fl.hard_silu(fl.tensor([-4.0, 1.5, 4.0]))
        tensor([-0.   ,  1.125,  4.   ], dtype=float32)
    """
    return HardSilu().apply(x)


hard_swish = hard_silu  # Keras 3 has both names


def softsign(x) -> Tensor:
    """Softsign ``x / (1 + |x|)``.

    Args:
        x: Tensor of any shape.

    Returns:
        Tensor of x's shape, values in (-1, 1).

    Example:
        >>> fl.softsign(fl.tensor([1.0, -3.0]))
        tensor([ 0.5 , -0.75], dtype=float32)
    """
    return Softsign().apply(x)
