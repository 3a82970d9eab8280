"""Weight initializers with Keras's names, defaults and fan rules.

An initializer is called with a shape (and optionally a dtype) and returns a NumPy array;
layers pass it to ``add_weight``. Variance-scaling initializers (Glorot, He, LeCun) read
the fans from the shape: a dense kernel ``(in, out)`` has ``fan_in = in`` and
``fan_out = out``; a convolution kernel ``(kh, kw, in, out)`` (any number of leading
spatial axes) has ``fan_in = kh*kw*in`` and ``fan_out = kh*kw*out``.

Randomness: with ``seed=None`` values are drawn from fundl's generator, so
``fl.manual_seed(0)`` makes a whole model reproducible; with an integer ``seed`` every call
returns the same values (as Keras's seeded initializers do).

    >>> from fundl import initializers
    >>> init = initializers.get("he_normal")
    >>> round(float(init((3, 3, 16, 32)).std()), 2)     # sqrt(2 / (3*3*16))
    0.12
    >>> initializers.GlorotUniform(seed=1)((2, 2)).dtype
    dtype('float32')
"""
from __future__ import annotations

import math

import numpy

from . import backend
from .tensor import get_rng
from ._lookup import Configurable, get_object, serialize_object

__all__ = [
    "Constant", "GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "Identity",
    "Initializer", "LecunNormal", "LecunUniform", "Ones", "Orthogonal", "RandomNormal",
    "RandomUniform", "TruncatedNormal", "VarianceScaling", "Zeros", "compute_fans", "get",
    "serialize",
]

# The standard deviation of a standard normal truncated to [-2, 2]: dividing by it makes the
# truncated samples' standard deviation the one asked for.
_TRUNCATED_STD = 0.87962566103423978


def compute_fans(shape) -> tuple:
    """``(fan_in, fan_out)`` of a weight shape, by Keras's rules.

    Args:
        shape: ``()`` -> (1, 1); ``(n,)`` -> (n, n); ``(in, out)``; or a convolution kernel
            ``(*spatial, in, out)`` -> ``(prod(spatial) * in, prod(spatial) * out)``.

    Returns:
        A pair of ints.

    Example:
        >>> initializers.compute_fans((5, 5, 3, 64))
        (75, 1600)
    """
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _shape(name, shape) -> tuple:
    try:
        shape = tuple(int(n) for n in shape)
    except TypeError:
        raise TypeError(f"{name}: shape must be a tuple of ints, got {shape!r}.") from None
    if any(n < 0 for n in shape):
        raise ValueError(f"{name}: shape {shape} has a negative size.")
    return shape


def _dtype(name, dtype):
    dtype = numpy.dtype(dtype) if dtype is not None else backend.get_default_dtype()
    if dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating dtype such as 'float32', got {dtype}.")
    return dtype


class Initializer(Configurable):
    """Base class: ``init(shape, dtype=None) -> numpy.ndarray``.

    Subclasses implement ``__call__``; ``get_config`` returns the constructor arguments
    (JSON-safe) and ``from_config`` rebuilds the initializer from them.

    Example:
        >>> class Halves(initializers.Initializer):
        ...     def __call__(self, shape, dtype=None):
        ...         return np.full(shape, 0.5, dtype=dtype or "float32")
    """

    def __call__(self, shape, dtype=None) -> numpy.ndarray:
        raise NotImplementedError(f"{type(self).__name__}.__call__")


class _Random(Initializer):
    """An initializer that draws from a seeded generator, or from fundl's when unseeded."""

    def __init__(self, seed=None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, numpy.integer))):
            raise TypeError(f"{type(self).__name__}: seed must be an int or None, got {seed!r}.")
        self.seed = None if seed is None else int(seed)

    def _rng(self) -> numpy.random.Generator:
        # A fresh generator per call makes a seeded initializer return the same values every
        # time; get_rng() is looked up per call because manual_seed replaces the generator.
        return get_rng() if self.seed is None else numpy.random.default_rng(self.seed)

    def get_config(self) -> dict:
        return {"seed": self.seed}


def _truncated_normal(rng, shape, mean, stddev, dtype):
    """Normal samples with those more than two standard deviations out redrawn."""
    x = rng.standard_normal(shape)
    bad = numpy.abs(x) > 2.0
    while bad.any():  # each round keeps ~95 % of the redrawn values, so this ends quickly
        x[bad] = rng.standard_normal(int(bad.sum()))
        bad = numpy.abs(x) > 2.0
    return (x * stddev + mean).astype(dtype)


class RandomNormal(_Random):
    """Samples from a normal distribution N(mean, stddev²).

    Args:
        mean: the mean.
        stddev: the standard deviation.
        seed: an int for reproducible values, or None to draw from fundl's generator.

    Example:
        >>> initializers.RandomNormal(stddev=0.01, seed=0)((2, 3)).shape
        (2, 3)
    """

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean = float(mean)
        self.stddev = float(stddev)

    def __call__(self, shape, dtype=None) -> numpy.ndarray:
        shape, dtype = _shape("RandomNormal", shape), _dtype("RandomNormal", dtype)
        return (self._rng().standard_normal(shape) * self.stddev + self.mean).astype(dtype)

    def get_config(self) -> dict:
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


class TruncatedNormal(_Random):
    """Normal samples N(mean, stddev²), redrawn when more than two stddev from the mean.

    Args:
        mean: the mean.
        stddev: the standard deviation of the normal *before* truncation.
        seed: an int for reproducible values, or None to draw from fundl's generator.

    Example:
        >>> bool(abs(initializers.TruncatedNormal(stddev=1.0, seed=0)((1000,))).max() <= 2.0)
        True
    """

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean = float(mean)
        self.stddev = float(stddev)

    def __call__(self, shape, dtype=None) -> numpy.ndarray:
        shape, dtype = _shape("TruncatedNormal", shape), _dtype("TruncatedNormal", dtype)
        return _truncated_normal(self._rng(), shape, self.mean, self.stddev, dtype)

    def get_config(self) -> dict:
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


class RandomUniform(_Random):
    """Samples from the uniform distribution on ``[minval, maxval)``.

    Args:
        minval, maxval: the range.
        seed: an int for reproducible values, or None to draw from fundl's generator.

    Example:
        >>> initializers.RandomUniform(-1.0, 1.0, seed=0)((2,)).shape
        (2,)
    """

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval = float(minval)
        self.maxval = float(maxval)

    def __call__(self, shape, dtype=None) -> numpy.ndarray:
        shape, dtype = _shape("RandomUniform", shape), _dtype("RandomUniform", dtype)
        return self._rng().uniform(self.minval, self.maxval, shape).astype(dtype)

    def get_config(self) -> dict:
        return {"minval": self.minval, "maxval": self.maxval, **super().get_config()}


_MODES = ("fan_in", "fan_out", "fan_avg")
_DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")


class VarianceScaling(_Random):
    """Samples whose variance is ``scale / n``, with ``n`` a fan of the weight shape.

    ``n`` is ``fan_in``, ``fan_out`` or their average (``mode``). ``"truncated_normal"``
    draws a normal truncated at two standard deviations, scaled so that the standard
    deviation *after* truncation is ``sqrt(scale / n)`` (Keras's 0.8796 correction);
    ``"untruncated_normal"`` a plain normal; ``"uniform"`` draws from ``[-limit, limit]``
    with ``limit = sqrt(3 * scale / n)``.

    Args:
        scale: positive factor (2.0 for ReLU networks, He et al.).
        mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``.
        distribution: ``"truncated_normal"`` (``"normal"`` means the same),
            ``"untruncated_normal"`` or ``"uniform"``.
        seed: an int for reproducible values, or None to draw from fundl's generator.

    Example:
        >>> init = initializers.VarianceScaling(2.0, "fan_in", "uniform", seed=0)
        >>> bool(init((100, 10)).max() <= math.sqrt(6 / 100))
        True
    """

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        name = type(self).__name__
        if not scale > 0:
            raise ValueError(f"{name}: scale must be positive, got {scale!r}.")
        if mode not in _MODES:
            raise ValueError(f"{name}: mode must be one of {_MODES}, got {mode!r}.")
        distribution = str(distribution).lower()
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in _DISTRIBUTIONS:
            raise ValueError(f"{name}: distribution must be one of {_DISTRIBUTIONS}, got "
                             f"{distribution!r}.")
        self.scale = float(scale)
        self.mode = mode
        self.distribution = distribution

    def __call__(self, shape, dtype=None) -> numpy.ndarray:
        name = type(self).__name__
        shape, dtype = _shape(name, shape), _dtype(name, dtype)
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        rng = self._rng()
        if self.distribution == "truncated_normal":
            return _truncated_normal(rng, shape, 0.0, math.sqrt(variance) / _TRUNCATED_STD, dtype)
        if self.distribution == "untruncated_normal":
            return (rng.standard_normal(shape) * math.sqrt(variance)).astype(dtype)
        limit = math.sqrt(3.0 * variance)
        return rng.uniform(-limit, limit, shape).astype(dtype)

    def get_config(self) -> dict:
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                **super().get_config()}


class _Preset(VarianceScaling):
    """A VarianceScaling with fixed settings, whose only argument is ``seed``."""

    _settings = ()  # (scale, mode, distribution)

    def __init__(self, seed=None):
        super().__init__(*self._settings, seed=seed)

    def get_config(self) -> dict:
        return {"seed": self.seed}


class GlorotUniform(_Preset):
    """Glorot (Xavier) uniform: ``U[-limit, limit]``, ``limit = sqrt(6 / (fan_in + fan_out))``.

    The default kernel initializer (Glorot & Bengio 2010); ``VarianceScaling(1.0, "fan_avg",
    "uniform")``.

    Args:
        seed: an int for reproducible values, or None to draw from fundl's generator.

    Example:
        >>> initializers.GlorotUniform(seed=0)((64, 32)).shape
        (64, 32)
    """

    _settings = (1.0, "fan_avg", "uniform")


class GlorotNormal(_Preset):
    """Glorot (Xavier) normal: truncated normal with ``stddev = sqrt(2 / (fan_in + fan_out))``.

    ``VarianceScaling(1.0, "fan_avg", "truncated_normal")`` (Glorot & Bengio 2010).

    Args:
        seed: an int for reproducible values, or None to draw from fundl's generator.

    Example:
        >>> initializers.GlorotNormal(seed=0)((64, 32)).shape
        (64, 32)
    """

    _settings = (1.0, "fan_avg", "truncated_normal")


class HeNormal(_Preset):
    """He normal: truncated normal with ``stddev = sqrt(2 / fan_in)``, for ReLU networks.

    ``VarianceScaling(2.0, "fan_in", "truncated_normal")`` (He et al. 2015).

    Args:
        seed: an int for reproducible values, or None to draw from fundl's generator.

    Example:
        >>> initializers.HeNormal(seed=0)((3, 3, 16, 32)).shape
        (3, 3, 16, 32)
    """

    _settings = (2.0, "fan_in", "truncated_normal")


class HeUniform(_Preset):
    """He uniform: ``U[-limit, limit]`` with ``limit = sqrt(6 / fan_in)``.

    ``VarianceScaling(2.0, "fan_in", "uniform")`` (He et al. 2015).

    Args:
        seed: an int for reproducible values, or None to draw from fundl's generator.

    Example:
        >>> initializers.HeUniform(seed=0)((64, 32)).shape
        (64, 32)
    """

    _settings = (2.0, "fan_in", "uniform")


class LecunNormal(_Preset):
    """LeCun normal: truncated normal with ``stddev = sqrt(1 / fan_in)`` (for SELU networks).

    ``VarianceScaling(1.0, "fan_in", "truncated_normal")`` (LeCun et al. 1998).

    Args:
        seed: an int for reproducible values, or None to draw from fundl's generator.

    Example:
        >>> initializers.LecunNormal(seed=0)((64, 32)).shape
        (64, 32)
    """

    _settings = (1.0, "fan_in", "truncated_normal")


class LecunUniform(_Preset):
    """LeCun uniform: ``U[-limit, limit]`` with ``limit = sqrt(3 / fan_in)``.

    ``VarianceScaling(1.0, "fan_in", "uniform")`` (LeCun et al. 1998).

    Args:
        seed: an int for reproducible values, or None to draw from fundl's generator.

    Example:
        >>> initializers.LecunUniform(seed=0)((64, 32)).shape
        (64, 32)
    """

    _settings = (1.0, "fan_in", "uniform")


class Orthogonal(_Random):
    """A (semi-)orthogonal matrix times ``gain`` (Saxe et al. 2014), e.g. for recurrent kernels.

    The shape is flattened to ``(prod(shape[:-1]), shape[-1])``; the result has orthonormal
    columns when it has at least as many rows as columns, else orthonormal rows. It is the
    Q factor of a QR decomposition of a Gaussian matrix, with signs fixed so that it is
    uniformly distributed.

    Args:
        gain: multiplies the matrix.
        seed: an int for reproducible values, or None to draw from fundl's generator.

    Example:
        >>> q = initializers.Orthogonal(seed=0)((4, 4))
        >>> np.allclose(q.T @ q, np.eye(4), atol=1e-6)
        True
    """

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = float(gain)

    def __call__(self, shape, dtype=None) -> numpy.ndarray:
        shape, dtype = _shape("Orthogonal", shape), _dtype("Orthogonal", dtype)
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: the shape must have at least 2 axes, got {shape}. "
                             "Use it for kernels (in, out), not for biases.")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = self._rng().standard_normal((max(rows, cols), min(rows, cols)))
        q, r = numpy.linalg.qr(a)
        q *= numpy.where(numpy.diag(r) < 0, -1.0, 1.0)  # sign fix: Q is Haar-distributed
        if rows < cols:
            q = q.T
        return numpy.ascontiguousarray((self.gain * q).reshape(shape), dtype=dtype)

    def get_config(self) -> dict:
        return {"gain": self.gain, **super().get_config()}


class Zeros(Initializer):
    """All zeros (the default for biases).

    Example:
        >>> initializers.Zeros()((2,))
        array([0., 0.], dtype=float32)
    """

    def __call__(self, shape, dtype=None) -> numpy.ndarray:
        return numpy.zeros(_shape("Zeros", shape), dtype=_dtype("Zeros", dtype))


class Ones(Initializer):
    """All ones (the default for normalisation scales).

    Example:
        >>> initializers.Ones()((2,))
        array([1., 1.], dtype=float32)
    """

    def __call__(self, shape, dtype=None) -> numpy.ndarray:
        return numpy.ones(_shape("Ones", shape), dtype=_dtype("Ones", dtype))


class Constant(Initializer):
    """Every element equal to ``value``.

    Args:
        value: a Python number.

    Example:
        >>> initializers.Constant(0.1)((2,))
        array([0.1, 0.1], dtype=float32)
    """

    def __init__(self, value=0.0):
        if not isinstance(value, (int, float, numpy.number)) or isinstance(value, bool):
            raise TypeError(f"Constant: value must be a number, got {type(value).__name__} "
                            f"{value!r}.")
        self.value = float(value)

    def __call__(self, shape, dtype=None) -> numpy.ndarray:
        return numpy.full(_shape("Constant", shape), self.value, dtype=_dtype("Constant", dtype))

    def get_config(self) -> dict:
        return {"value": self.value}


class Identity(Initializer):
    """``gain`` times the identity matrix (ones on the main diagonal of a 2-D shape).

    Args:
        gain: multiplies the matrix.

    Example:
        >>> initializers.Identity()((2, 3))
        array([[1., 0., 0.],
               [0., 1., 0.]], dtype=float32)
    """

    def __init__(self, gain=1.0):
        self.gain = float(gain)

    def __call__(self, shape, dtype=None) -> numpy.ndarray:
        shape, dtype = _shape("Identity", shape), _dtype("Identity", dtype)
        if len(shape) != 2:
            raise ValueError(f"Identity: only 2-D shapes have an identity matrix, got {shape}.")
        return (self.gain * numpy.eye(*shape)).astype(dtype)

    def get_config(self) -> dict:
        return {"gain": self.gain}


_CLASSES = {cls.__name__: cls for cls in (
    Zeros, Ones, Constant, RandomNormal, RandomUniform, TruncatedNormal, VarianceScaling,
    GlorotUniform, GlorotNormal, HeNormal, HeUniform, LecunNormal, LecunUniform, Orthogonal,
    Identity)}
_ALIASES = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "random_normal": RandomNormal,
    "random_uniform": RandomUniform, "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling, "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal, "he_normal": HeNormal, "he_uniform": HeUniform,
    "lecun_normal": LecunNormal, "lecun_uniform": LecunUniform, "orthogonal": Orthogonal,
    "identity": Identity,
}


def get(identifier):
    """Resolve an initializer given by name, class, instance, config dict or function.

    Args:
        identifier: a Keras name (``"glorot_uniform"``, ``"he_normal"``, ``"zeros"``, ...)
            or class name (``"GlorotUniform"``) -> a default instance; a class -> a default
            instance; a ``{"class_name": ..., "config": ...}`` dict (from :func:`serialize`);
            an :class:`Initializer` or any callable ``fn(shape, dtype)`` -> itself; None -> None.

    Returns:
        The initializer.

    Raises:
        ValueError: an unknown name (the message lists the valid ones) or a bad config.
        TypeError: an identifier of another kind.

    Example:
        >>> initializers.get("glorot_uniform")
        GlorotUniform(seed=None)
    """
    return get_object("initializers", identifier, _ALIASES, _CLASSES, Initializer)


def serialize(initializer) -> dict:
    """``{"class_name": ..., "config": ...}`` for a built-in initializer (for layer configs).

    Args:
        initializer: an instance of one of this module's classes.

    Returns:
        A JSON-safe dict that :func:`get` turns back into an equal initializer.

    Raises:
        ValueError: a custom initializer (configs hold names only, never code).

    Example:
        >>> initializers.serialize(initializers.Constant(0.1))
        {'class_name': 'Constant', 'config': {'value': 0.1}}
    """
    return serialize_object("initializers", initializer, _CLASSES)
