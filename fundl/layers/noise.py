"""Noise layers for regularisation: GaussianDropout, SpatialDropout1D and SpatialDropout2D.

``Dropout`` and ``GaussianNoise`` live in core.py. All of these act only in training
(``fit``, or a call with ``training=True``) and are the identity in inference; their noise
comes from fundl's generator, so ``fl.manual_seed`` makes it repeatable.

Example:
    >>> model = Sequential([Conv2D(32, 3, input_shape=(28, 28, 1)), SpatialDropout2D(0.2),
    ...                     Flatten(), GaussianDropout(0.3), Dense(10)])
"""
from __future__ import annotations

import math

from .conv import _data_format
from .core import Dropout, _check_rate, _normal, _seed_generator
from .base import Layer


class GaussianDropout(Layer):
    """Multiplies the inputs by Gaussian noise of mean 1 during training (multiplicative noise).

    Args:
        rate: the drop probability of the equivalent dropout, in [0, 1); the noise's standard
            deviation is ``sqrt(rate / (1 - rate))``, the one of inverted dropout's mask
            (Srivastava et al., 2014, section 10).
        seed: None (fundl's generator, ``fl.manual_seed``) or an int (the layer's own).

    No weights; identity in inference. Input and output shapes are equal.

    Example:
        >>> model.add(GaussianDropout(0.2))      # x * N(1, 0.5**2) while training
    """

    supports_masking = True  # per step: a sequence mask passes through

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _check_rate("GaussianDropout", rate)
        self._seed_gen = _seed_generator("GaussianDropout", seed)
        self.seed = None if seed is None else int(seed)

    def call(self, x, training=None):
        if not training or self.rate == 0:
            return x
        stddev = math.sqrt(self.rate / (1.0 - self.rate))
        noise = (_normal(x.shape, x.data, self._seed_gen) * x.dtype.type(stddev)
                 + x.dtype.type(1.0))
        return x * noise

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class _SpatialDropout(Dropout):
    """Dropout of whole channels: one mask entry per (sample, channel), shared over space."""

    _rank = 0

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        super().__init__(rate, seed=seed, **kwargs)
        self.data_format = _data_format(type(self).__name__, data_format)
        ones = (1,) * self._rank
        self.noise_shape = ((None, None) + ones if self.data_format == "channels_first"
                            else (None,) + ones + (None,))

    def _check(self, shape):
        if len(shape) != self._rank + 2:
            raise ValueError(f"{type(self).__name__} '{self.name}': expected inputs of rank "
                             f"{self._rank + 2} {self._layout}, got shape {tuple(shape)}.")

    def call(self, x, training=None):
        self._check(x.shape)
        return super().call(x, training=training)

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        return input_shape

    def get_config(self):
        config = super().get_config()
        del config["noise_shape"]
        config["data_format"] = self.data_format
        return config


class SpatialDropout1D(_SpatialDropout):
    """Drops whole feature channels of ``(batch, steps, channels)`` sequences during training.

    Args:
        rate: the fraction of channels to drop, in [0, 1); the others are scaled by
            ``1 / (1 - rate)``.
        seed: None (fundl's generator, ``fl.manual_seed``) or an int (the layer's own).

    Neighbouring steps are strongly correlated, so dropping single entries regularises little;
    this drops a channel at every step at once (Tompson et al., 2015). Identity in inference.

    Example:
        >>> model.add(SpatialDropout1D(0.2))
    """

    _rank = 1
    _layout = "(batch, steps, channels)"

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(rate, None, seed, **kwargs)

    def get_config(self):
        config = super().get_config()
        del config["data_format"]
        return config


class SpatialDropout2D(_SpatialDropout):
    """Drops whole feature maps of ``(batch, height, width, channels)`` images during training.

    Args:
        rate: the fraction of feature maps to drop, in [0, 1); the others are scaled by
            ``1 / (1 - rate)``.
        data_format: None or "channels_last", or "channels_first".
        seed: None (fundl's generator, ``fl.manual_seed``) or an int (the layer's own).

    As PyTorch's ``Dropout2d``: one draw per (sample, channel), shared over all pixels.
    Identity in inference.

    Example:
        >>> model.add(SpatialDropout2D(0.1))
    """

    _rank = 2
    _layout = "(batch, height, width, channels)"
