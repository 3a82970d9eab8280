"""Random tensors with Keras 3's ``keras.random`` surface: ``normal``, ``uniform``, ``randint``,
``truncated_normal``, ``categorical``, ``dropout``, ``shuffle`` and ``SeedGenerator``.

Every function takes ``seed``, with Keras 3's meaning:

- ``None``: a draw from fundl's global generator, so :func:`fundl.manual_seed` (or
  :func:`fundl.utils.set_random_seed`) makes a whole program repeatable;
- an int: a fixed, stateless result (the same int gives the same values on every call);
- a :class:`SeedGenerator`: a stateful source; each use advances it, so successive calls
  differ but a generator built with the same seed replays the same sequence (what a layer
  keeps for its dropout masks).

Values are drawn with NumPy on the host and returned as fundl Tensors on the default device
(floats in the default dtype, float32, unless ``dtype`` says otherwise).

Example:
    >>> import fundl as fl
    >>> gen = fl.random.SeedGenerator(42)
    >>> a = fl.random.normal((2, 3), seed=gen)
    >>> b = fl.random.normal((2, 3), seed=gen)      # differs from a
    >>> c = fl.random.uniform((2,), seed=7)         # the same on every call
"""
from __future__ import annotations

import numbers

import numpy

from . import backend
from .tensor import Tensor, get_rng

__all__ = ["SeedGenerator", "categorical", "dropout", "normal", "randint", "shuffle",
           "truncated_normal", "uniform"]


class SeedGenerator:
    """A stateful source of seeds (Keras 3's ``keras.random.SeedGenerator``).

    Passing it as ``seed=`` to the functions of this module draws with a generator derived
    from ``(seed, counter)`` and advances the counter, so each call gives new values and the
    sequence is the same for the same initial seed.

    Args:
        seed: an int; None draws one from fundl's global generator (seeded by
            :func:`fundl.manual_seed`).

    Attributes:
        seed: the initial seed (an int).
        state: how many draws have been made.

    Example:
        >>> gen = fl.random.SeedGenerator(1337)
        >>> x = fl.random.dropout(fl.ones(4, 4), rate=0.5, seed=gen)
    """

    def __init__(self, seed=None, **kwargs):
        # Keras accepts name= and backend-specific arguments; they change nothing here
        unknown = set(kwargs) - {"name", "backend"}
        if unknown:
            raise TypeError(f"SeedGenerator: unexpected arguments {sorted(unknown)}.")
        if seed is None:
            seed = int(get_rng().integers(0, 2 ** 31 - 1))
        self.seed = _check_int_seed("SeedGenerator", seed)
        self.state = 0

    def next(self) -> numpy.random.Generator:
        """A NumPy generator for the next draw; advances :attr:`state`.

        Returns:
            ``numpy.random.Generator`` seeded with ``(seed, state)``.
        """
        gen = numpy.random.default_rng([self.seed, self.state])
        self.state += 1
        return gen

    def get_config(self) -> dict:
        return {"seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self) -> str:
        return f"SeedGenerator(seed={self.seed}, state={self.state})"


def _check_int_seed(who, seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{who}: seed must be an int, None or a SeedGenerator, got "
                        f"{type(seed).__name__} {seed!r}.")
    if seed < 0:
        raise ValueError(f"{who}: seed must be >= 0, got {seed}.")
    return int(seed)


def _generator(who, seed) -> numpy.random.Generator:
    """The NumPy generator a call with ``seed`` draws from (see the module notes)."""
    if seed is None:
        return get_rng()
    if isinstance(seed, SeedGenerator):
        return seed.next()
    return numpy.random.default_rng(_check_int_seed(who, seed))


def _shape(who, shape) -> tuple:
    if isinstance(shape, numbers.Integral):
        shape = (shape,)
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise TypeError(f"{who}: shape must be a tuple of ints, got {shape!r}.") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"{who}: shape must not have negative sizes, got {shape}.")
    return shape


def _float_dtype(who, dtype):
    dtype = numpy.dtype(dtype or backend.get_default_dtype())
    if dtype.kind != "f":
        raise TypeError(f"{who}: dtype must be a floating-point type, got {dtype}.")
    return dtype


def _out(array, dtype) -> Tensor:
    return Tensor(array.astype(dtype, copy=False))


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None) -> Tensor:
    """Samples from the normal distribution ``N(mean, stddev**2)``.

    Args:
        shape: the output shape (tuple of ints, or an int).
        mean, stddev: the distribution's mean and standard deviation.
        dtype: a floating dtype; default float32 (fundl's default dtype).
        seed: None, an int or a :class:`SeedGenerator` (see the module notes).

    Returns:
        Tensor of ``shape``.

    Example:
        >>> fl.random.normal((2, 2), seed=0).shape
        (2, 2)
    """
    dtype = _float_dtype("random.normal", dtype)
    gen = _generator("random.normal", seed)
    return _out(gen.normal(mean, stddev, _shape("random.normal", shape)), dtype)


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None) -> Tensor:
    """Samples from the uniform distribution on ``[minval, maxval)``.

    Args:
        shape: the output shape.
        minval, maxval: the interval (``minval < maxval``).
        dtype: a floating dtype; default float32.
        seed: None, an int or a :class:`SeedGenerator`.

    Returns:
        Tensor of ``shape``.

    Example:
        >>> float(fl.random.uniform((100,), 2.0, 3.0, seed=0).numpy().min()) >= 2.0
        True
    """
    if not minval < maxval:
        raise ValueError(f"random.uniform: minval must be < maxval, got minval={minval}, "
                         f"maxval={maxval}.")
    dtype = _float_dtype("random.uniform", dtype)
    gen = _generator("random.uniform", seed)
    return _out(gen.uniform(minval, maxval, _shape("random.uniform", shape)), dtype)


def randint(shape, minval, maxval, dtype="int32", seed=None) -> Tensor:
    """Random integers in ``[minval, maxval)``.

    Args:
        shape: the output shape.
        minval, maxval: the bounds (``minval < maxval``; ``maxval`` excluded).
        dtype: an integer dtype. Default ``"int32"`` (as Keras).
        seed: None, an int or a :class:`SeedGenerator`.

    Returns:
        Tensor of ``shape`` and ``dtype``.

    Example:
        >>> fl.random.randint((3,), 0, 10, seed=1).dtype
        dtype('int32')
    """
    dtype = numpy.dtype(dtype)
    if dtype.kind not in "iu":
        raise TypeError(f"random.randint: dtype must be an integer type, got {dtype}.")
    if not minval < maxval:
        raise ValueError(f"random.randint: minval must be < maxval, got minval={minval}, "
                         f"maxval={maxval}.")
    gen = _generator("random.randint", seed)
    return _out(gen.integers(minval, maxval, _shape("random.randint", shape)), dtype)


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None) -> Tensor:
    """Normal samples with those beyond two standard deviations drawn again (as Keras).

    Args:
        shape: the output shape.
        mean, stddev: of the untruncated distribution.
        dtype: a floating dtype; default float32.
        seed: None, an int or a :class:`SeedGenerator`.

    Returns:
        Tensor of ``shape``; every value within ``mean +- 2 stddev``.

    Example:
        >>> x = fl.random.truncated_normal((1000,), seed=0).numpy()
        >>> bool(abs(x).max() <= 2)
        True
    """
    dtype = _float_dtype("random.truncated_normal", dtype)
    gen = _generator("random.truncated_normal", seed)
    z = gen.standard_normal(_shape("random.truncated_normal", shape))
    bad = numpy.abs(z) > 2.0
    while bad.any():  # about 4.6 % per round: a few rounds at most
        z[bad] = gen.standard_normal(int(bad.sum()))
        bad = numpy.abs(z) > 2.0
    return _out(z * stddev + mean, dtype)


def categorical(logits, num_samples, dtype="int32", seed=None) -> Tensor:
    """Class indices drawn from the softmax of each row of ``logits``.

    Args:
        logits: array or Tensor of shape ``(batch, classes)`` (unnormalised log-probabilities).
        num_samples: draws per row.
        dtype: integer dtype of the result. Default ``"int32"``.
        seed: None, an int or a :class:`SeedGenerator`.

    Returns:
        Tensor of shape ``(batch, num_samples)``.

    Example:
        >>> fl.random.categorical([[0.0, 100.0]], 3, seed=0).numpy()
        array([[1, 1, 1]], dtype=int32)
    """
    z = backend.to_numpy(logits.data if isinstance(logits, Tensor) else numpy.asarray(logits))
    if z.ndim != 2:
        raise ValueError(f"random.categorical: logits must have shape (batch, classes), got "
                         f"{z.shape}.")
    z = z.astype(numpy.float64)
    p = numpy.exp(z - z.max(axis=1, keepdims=True))
    cdf = numpy.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
    gen = _generator("random.categorical", seed)
    u = gen.random((z.shape[0], int(num_samples)))
    idx = (u[:, :, None] > cdf[:, None, :]).sum(axis=2)
    return _out(numpy.minimum(idx, z.shape[1] - 1), numpy.dtype(dtype))


def dropout(inputs, rate, noise_shape=None, seed=None) -> Tensor:
    """Zero each element with probability ``rate`` and scale the rest by ``1 / (1 - rate)``.

    Differentiable with respect to ``inputs`` (the mask is a constant), whatever the mode:
    unlike the ``Dropout`` layer it always drops.

    Args:
        inputs: Tensor (or array) of any shape.
        rate: the drop probability, in [0, 1).
        noise_shape: a shape broadcastable to ``inputs``' (e.g. ``(batch, 1, features)`` to
            drop the same features at every time step); default: ``inputs``' shape.
        seed: None, an int or a :class:`SeedGenerator`.

    Returns:
        Tensor of ``inputs``' shape.

    Example:
        >>> y = fl.random.dropout(fl.ones(1000), rate=0.5, seed=0)
        >>> sorted(set(y.numpy().tolist()))
        [0.0, 2.0]
    """
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
        raise ValueError(f"random.dropout: rate must be a number in [0, 1), got {rate!r}.")
    if not isinstance(inputs, Tensor):
        inputs = Tensor(inputs)
    shape = inputs.shape if noise_shape is None else _shape("random.dropout", noise_shape)
    try:
        numpy.broadcast_shapes(shape, inputs.shape)
    except ValueError:
        raise ValueError(f"random.dropout: noise_shape {shape} does not broadcast to the input "
                         f"shape {inputs.shape}.") from None
    if rate == 0:
        return inputs * 1.0
    gen = _generator("random.dropout", seed)
    keep = gen.random(shape) >= rate
    mask = (keep * (1.0 / (1.0 - rate))).astype(inputs.dtype)
    return inputs * backend.to_device(mask, inputs.device)


def shuffle(x, axis=0, seed=None) -> Tensor:
    """A random permutation of ``x`` along ``axis``.

    Args:
        x: Tensor or array.
        axis: the axis to shuffle. Default 0 (the samples).
        seed: None, an int or a :class:`SeedGenerator`.

    Returns:
        Tensor of ``x``'s shape (differentiable: it is an indexing of ``x``).

    Example:
        >>> sorted(fl.random.shuffle(fl.arange(5), seed=0).numpy().tolist())
        [0, 1, 2, 3, 4]
    """
    if not isinstance(x, Tensor):
        x = Tensor(x)
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"random.shuffle: axis {axis} is out of range for shape {x.shape}.")
    axis %= x.ndim
    perm = _generator("random.shuffle", seed).permutation(x.shape[axis])
    index = (slice(None),) * axis + (backend.to_device(perm, x.device),)
    return x[index]
