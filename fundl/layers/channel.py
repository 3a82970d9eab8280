"""Layers of the learned physical layer (O'Shea & Hoydis, 2017): EnergyNormalization and AWGN.

A communication system as an autoencoder: the transmitter (encoder) maps a message to ``n``
real channel symbols, an energy constraint keeps it honest, the channel adds white Gaussian
noise, and the receiver (decoder) guesses the message. ``EnergyNormalization`` is the
constraint (every block has energy ``n``: one unit per real channel use) and ``AWGN`` is the
channel. Unlike ``GaussianNoise`` (a regulariser, identity in inference) the channel is part of
the system: ``AWGN`` adds its noise in training *and* inference.

Example:
    >>> x = Input(shape=(16,))                                   # one-hot messages, M = 16
    >>> s = EnergyNormalization()(Dense(7)(Dense(16, activation="relu")(x)))
    >>> r = AWGN(AWGN.stddev_for(ebn0_db=7.0, n=7, k=4))(s)      # Eb/N0 = 7 dB
    >>> y = Dense(16, activation="softmax")(Dense(16, activation="relu")(r))
"""
from __future__ import annotations

import math

import numpy

from .. import functional as F
from .base import Layer
from .core import _normal, _seed_generator


def _number(who, name, value, minimum=0.0, strict=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, numpy.integer,
                                                         numpy.floating)):
        raise TypeError(f"{who}: {name} must be a number, got {value!r}.")
    value = float(value)
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        bound = ">" if strict else ">="
        raise ValueError(f"{who}: {name} must be a finite number {bound} {minimum}, got {value}.")
    return value


class EnergyNormalization(Layer):
    """Scales every sample to the energy ``energy`` (default: one unit per component).

    ``y = x * sqrt(E) / ||x||`` per sample, with ``E = energy`` or, by default, the number of
    components ``n`` of a sample: an ``(n,)`` block of real channel symbols then carries energy
    ``n``, i.e. ``Es = 1`` per real channel use, the transmitter's power constraint in the
    channel autoencoder. The norm is taken over all non-batch axes.

    Args:
        energy: None (``n``, the number of components of a sample) or a positive number.
        epsilon: added to ``||x||^2`` before the square root (a zero input stays finite).

    No weights. Input and output shapes are equal: ``(batch, ...)``.

    Example:
        >>> y = EnergyNormalization()(np.array([[3.0, 4.0]], "float32"))
        >>> float((y.numpy() ** 2).sum())                       # n = 2
        2.0
    """

    def __init__(self, energy=None, epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.energy = None if energy is None else _number(
            "EnergyNormalization", "energy", energy, strict=True)
        self.epsilon = _number("EnergyNormalization", "epsilon", epsilon)

    def _check(self, shape):
        if len(shape) < 2:
            raise ValueError(f"EnergyNormalization '{self.name}': expected inputs of shape "
                             f"(batch, n, ...), got shape {tuple(shape)}; a single block needs a "
                             "batch axis: x[None].")

    def call(self, x, training=None):
        self._check(x.shape)
        axes = tuple(range(1, len(x.shape)))
        n = int(numpy.prod(x.shape[1:]))
        energy = float(n) if self.energy is None else self.energy
        power = F.sum(x * x, axis=axes, keepdims=True) + x.dtype.type(self.epsilon)
        return x * (F.sqrt(power) ** -1) * x.dtype.type(math.sqrt(energy))

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        return input_shape

    def get_config(self):
        return {**super().get_config(), "energy": self.energy, "epsilon": self.epsilon}


class AWGN(Layer):
    """The additive white Gaussian noise channel: ``y = x + N(0, stddev^2)``, always on.

    Args:
        stddev: the noise's standard deviation per real component (>= 0); ``stddev**2`` is
            ``N0 / 2``. :meth:`stddev_for` converts an Eb/N0 in dB.
        seed: None (fundl's generator, ``fl.manual_seed``) or an int (the layer's own).

    The noise is added in training and in inference (it is the channel, not a regulariser;
    compare ``GaussianNoise``). Set ``layer.stddev`` to evaluate a trained system at another
    signal-to-noise ratio. No weights; input and output shapes are equal.

    Example:
        >>> channel = AWGN(AWGN.stddev_for(ebn0_db=4.0, n=2, k=2))
        >>> y = channel(np.zeros((1000, 2), "float32"))        # pure noise of that level
    """

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.stddev = _number("AWGN", "stddev", stddev)
        self._seed_gen = _seed_generator("AWGN", seed)
        self.seed = None if seed is None else int(seed)

    @staticmethod
    def stddev_for(ebn0_db, n, k, energy_per_use=1.0):
        """The noise standard deviation for ``Eb/N0 = ebn0_db`` with ``k`` bits in ``n`` real uses.

        Each block carries ``n * energy_per_use`` of energy for ``k`` bits, so
        ``Eb = n * energy_per_use / k`` and ``sigma^2 = N0 / 2 = Eb / (2 Eb/N0)``. Uncoded BPSK
        (``n = k = 1``, unit energy) then has the textbook bit error rate
        ``Q(sqrt(2 Eb/N0))``.

        Args:
            ebn0_db: Eb/N0 in decibels (a number or an array).
            n: real channel uses per block.
            k: information bits per block.
            energy_per_use: the average energy of one real channel symbol (1 after
                :class:`EnergyNormalization` with its default).

        Returns:
            ``sigma`` (a float, or an array like ``ebn0_db``).

        Example:
            >>> AWGN.stddev_for(0.0, n=1, k=1)       # sqrt(1/2)
            0.7071067811865476
        """
        for name, v in (("n", n), ("k", k)):
            if isinstance(v, bool) or not isinstance(v, (int, numpy.integer)) or v < 1:
                raise ValueError(f"AWGN.stddev_for: {name} must be a positive int, got {v!r}.")
        ebn0 = 10.0 ** (numpy.asarray(ebn0_db, dtype="float64") / 10.0)
        sigma = numpy.sqrt(n * float(energy_per_use) / (2.0 * k * ebn0))
        return float(sigma) if sigma.ndim == 0 else sigma

    def call(self, x, training=None):
        if self.stddev == 0:
            return x
        return x + _normal(x.shape, x.data, self._seed_gen) * x.dtype.type(self.stddev)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}
