"""Image augmentation layers (Keras 3's): RandomFlip, RandomRotation, RandomTranslation,
RandomZoom and RandomContrast.

They act only in training (``fit``, or ``training=True``) and pass images through unchanged
in inference, so a model can carry its augmentation (Keras's "Image classification from
scratch"). Each draws one transformation per image, from fundl's generator
(``fl.manual_seed``) or, given ``seed=``, from its own. Inputs are ``(batch, height, width,
channels)`` (or one image ``(height, width, channels)``; ``data_format="channels_first"`` for
channels on axis 1).

The geometric layers share one resampler: every output pixel reads the input at an affine
function of its coordinates about the image centre, with "bilinear" or "nearest"
interpolation and Keras's fill modes for points outside the image ("reflect" (d c b a | a b c
d | d c b a), "wrap", "nearest", "constant" with ``fill_value``), as TensorFlow's
``ImageProjectiveTransform``. The reads are gathers of the input Tensor, so gradients flow to
the input.

Example:
    >>> augment = Sequential([RandomFlip("horizontal"), RandomRotation(0.1)])
    >>> model = Sequential([Input(shape=(32, 32, 3)), augment, Rescaling(1 / 255), ...])
"""
from __future__ import annotations

import math
import numbers

import numpy

from .. import backend
from .. import functional as F
from .conv import _data_format
from .core import _seed_generator
from .base import Layer
from ..tensor import Tensor, get_rng

_FILL_MODES = ("reflect", "wrap", "nearest", "constant")
_INTERPOLATIONS = ("bilinear", "nearest")


def _factor_range(who, name, factor, symmetric=True, allow_none=False):
    """Keras's factor: a number f -> (-f, f) (or (0, f)...), or a (low, high) pair."""
    if factor is None and allow_none:
        return None
    if isinstance(factor, numbers.Real) and not isinstance(factor, bool):
        low, high = (-float(factor), float(factor)) if symmetric else (0.0, float(factor))
    elif isinstance(factor, (list, tuple)) and len(factor) == 2 and all(
            isinstance(f, numbers.Real) and not isinstance(f, bool) for f in factor):
        low, high = float(factor[0]), float(factor[1])
    else:
        raise TypeError(f"{who}: {name} must be a number or a (low, high) pair of numbers, got "
                        f"{factor!r}.")
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"{who}: {name} must give a finite range with low <= high, got "
                         f"{factor!r}.")
    return low, high


def _choice(who, name, value, options):
    if value not in options:
        raise ValueError(f"{who}: {name} must be one of {', '.join(map(repr, options))}, got "
                         f"{value!r}.")
    return value


class _Augmentation(Layer):
    """Training-only image transforms: batching, layout, seeds and the draw of parameters."""

    def __init__(self, seed=None, data_format=None, **kwargs):
        super().__init__(**kwargs)
        who = type(self).__name__
        self._seed_gen = _seed_generator(who, seed)
        self.seed = None if seed is None else int(seed)
        self.data_format = _data_format(who, data_format)

    def _rng(self):
        return get_rng() if self._seed_gen is None else self._seed_gen.next()

    def _check(self, shape):
        if len(shape) not in (3, 4):
            raise ValueError(f"{type(self).__name__} '{self.name}': expected images of rank 4 "
                             "(batch, height, width, channels) or one image of rank 3, got "
                             f"shape {tuple(shape)}.")

    def call(self, x, training=None):
        self._check(x.shape)
        if not training:
            return x
        single = x.ndim == 3
        if single:
            x = F.expand_dims(x, 0)
        first = self.data_format == "channels_first"
        if first:
            x = F.transpose(x, (0, 2, 3, 1))
        if x.dtype.kind != "f":
            x = Tensor._wrap(x.data.astype(self.dtype))
        y = self._augment(x)
        if first:
            y = F.transpose(y, (0, 3, 1, 2))
        return F.squeeze(y, 0) if single else y

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed, "data_format": self.data_format}


class RandomFlip(_Augmentation):
    """Flips each image left-right and/or up-down with probability 1/2 each (training only).

    Args:
        mode: "horizontal" (left-right), "vertical" (up-down) or "horizontal_and_vertical".
        seed: None (fundl's generator) or an int (the layer's own).
        data_format: None or "channels_last", or "channels_first".

    No weights; input and output shapes are equal.

    Example:
        >>> RandomFlip("horizontal")(images, training=True)
    """

    def __init__(self, mode="horizontal_and_vertical", seed=None, data_format=None, **kwargs):
        super().__init__(seed, data_format, **kwargs)
        self.mode = _choice("RandomFlip", "mode", mode,
                            ("horizontal", "vertical", "horizontal_and_vertical"))

    def _augment(self, x):
        xp = backend.get_array_module(x.data)
        rng = self._rng()
        n = x.shape[0]
        for axis, on in ((2, "horizontal" in self.mode), (1, "vertical" in self.mode)):
            if not on:
                continue
            flip = xp.asarray(rng.random(n) < 0.5).reshape(n, 1, 1, 1)
            index = [slice(None)] * 4
            index[axis] = slice(None, None, -1)
            x = F.where(flip, F.getitem(x, tuple(index)), x)
        return x

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


class _Affine(_Augmentation):
    """Resampling through a per-image affine map (output pixel -> input coordinates)."""

    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(seed, data_format, **kwargs)
        who = type(self).__name__
        self.fill_mode = _choice(who, "fill_mode", fill_mode, _FILL_MODES)
        self.interpolation = _choice(who, "interpolation", interpolation, _INTERPOLATIONS)
        if isinstance(fill_value, bool) or not isinstance(fill_value, numbers.Real):
            raise TypeError(f"{who}: fill_value must be a number, got {fill_value!r}.")
        self.fill_value = float(fill_value)

    def _augment(self, x):
        n, h, w, _ = x.shape
        # (n, 2, 3): [src_y, src_x] = A @ [y - cy, x - cx, 1] + [cy, cx]
        matrices = self._matrices(self._rng(), n, h, w)
        return _resample(x, matrices, self.fill_mode, self.interpolation, self.fill_value)

    def get_config(self):
        return {**super().get_config(), "fill_mode": self.fill_mode,
                "interpolation": self.interpolation, "fill_value": self.fill_value}


def _fill_coordinates(t, n, mode, xp):
    """Continuous source coordinates mapped into the image as TensorFlow's fill modes do."""
    if mode == "reflect":
        if n == 1:
            return xp.zeros_like(t)
        t = xp.mod(t, 2 * n)
        t = xp.where(t >= n, 2 * n - 1 - t, t)
    elif mode == "wrap":
        t = xp.mod(t, n)
    if mode != "constant":
        t = xp.clip(t, 0, n - 1)
    return t


def _resample(x, matrices, fill_mode, interpolation, fill_value):
    """Each output pixel of x (n, h, w, c) read at its affine source, interpolated."""
    xp = backend.get_array_module(x.data)
    n, h, w, c = x.shape
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    ys, xs = numpy.meshgrid(numpy.arange(h) - cy, numpy.arange(w) - cx, indexing="ij")
    grid = numpy.stack([ys, xs, numpy.ones_like(ys)])                 # (3, h, w)
    src = numpy.einsum("nij,jhw->nihw", matrices, grid)                # (n, 2, h, w)
    sy = _fill_coordinates(xp.asarray(src[:, 0] + cy), h, fill_mode, xp)
    sx = _fill_coordinates(xp.asarray(src[:, 1] + cx), w, fill_mode, xp)
    batch = xp.arange(n).reshape(n, 1, 1)
    dtype = x.dtype

    def read(iy, ix):
        """x at integer coordinates; (values, inside) with outside points clamped."""
        inside = (iy >= 0) & (iy <= h - 1) & (ix >= 0) & (ix <= w - 1)
        iy = xp.clip(iy, 0, h - 1).astype(numpy.int64)
        ix = xp.clip(ix, 0, w - 1).astype(numpy.int64)
        return F.getitem(x, (batch, iy, ix)), inside

    def blend(values, inside, weight):
        weight = weight.astype(dtype)
        if fill_mode == "constant":  # outside: the fill value instead of the clamped read
            out = values * (weight * inside)[..., None]
            return out + (weight * ~inside * dtype.type(fill_value))[..., None]
        return values * weight[..., None]

    if interpolation == "nearest":
        # TensorFlow rounds half away from zero
        iy = xp.sign(sy) * xp.floor(xp.abs(sy) + 0.5)
        ix = xp.sign(sx) * xp.floor(xp.abs(sx) + 0.5)
        values, inside = read(iy, ix)
        return blend(values, inside, xp.ones(iy.shape))
    y0, x0 = xp.floor(sy), xp.floor(sx)
    fy, fx = sy - y0, sx - x0
    out = None
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            values, inside = read(y0 + dy, x0 + dx)
            term = blend(values, inside, wy * wx)
            out = term if out is None else out + term
    return out


class RandomRotation(_Affine):
    """Rotates each image by a random angle about its centre (training only).

    Args:
        factor: a fraction of a full turn: ``f`` draws angles in ``[-f, f] * 2 pi``, a pair
            ``(low, high)`` in ``[low, high] * 2 pi``; positive angles turn counter-clockwise.
        fill_mode: "reflect" (default), "wrap", "nearest" or "constant".
        interpolation: "bilinear" (default) or "nearest".
        seed: None (fundl's generator) or an int (the layer's own).
        fill_value: the value outside the image with ``fill_mode="constant"``.
        data_format: None or "channels_last", or "channels_first".

    No weights; input and output shapes are equal.

    Example:
        >>> RandomRotation(0.1)(images, training=True)      # within +-36 degrees
    """

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.factor = _factor_range("RandomRotation", "factor", factor)

    def _matrices(self, rng, n, h, w):
        angles = rng.uniform(*self.factor, size=n) * 2 * math.pi
        return _rotation(angles)

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor)}


def _rotation(angles):
    """Output -> source maps for counter-clockwise turns by ``angles`` (rows point down)."""
    cos, sin = numpy.cos(angles), numpy.sin(angles)
    zeros = numpy.zeros_like(angles)
    # with u = x, v = -y (y up): source = R(-angle) @ (u, v), then back to rows and columns
    return numpy.stack([numpy.stack([cos, sin, zeros], -1),
                        numpy.stack([-sin, cos, zeros], -1)], 1)


class RandomTranslation(_Affine):
    """Shifts each image by a random fraction of its height and width (training only).

    Args:
        height_factor: ``f`` draws vertical shifts in ``[-f, f] * height`` (positive: down), or a
            pair ``(low, high)``.
        width_factor: the same for horizontal shifts (positive: right).
        fill_mode, interpolation, seed, fill_value, data_format: as :class:`RandomRotation`.

    No weights; input and output shapes are equal.

    Example:
        >>> RandomTranslation(0.1, 0.1)(images, training=True)
    """

    def __init__(self, height_factor, width_factor, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor = _factor_range("RandomTranslation", "height_factor", height_factor)
        self.width_factor = _factor_range("RandomTranslation", "width_factor", width_factor)

    def _matrices(self, rng, n, h, w):
        ty = rng.uniform(*self.height_factor, size=n) * h
        tx = rng.uniform(*self.width_factor, size=n) * w
        m = numpy.zeros((n, 2, 3))
        m[:, 0, 0] = m[:, 1, 1] = 1.0
        m[:, 0, 2], m[:, 1, 2] = -ty, -tx  # output (y, x) reads input (y - ty, x - tx)
        return m

    def get_config(self):
        return {**super().get_config(), "height_factor": list(self.height_factor),
                "width_factor": list(self.width_factor)}


class RandomZoom(_Affine):
    """Zooms each image in or out about its centre by a random factor (training only).

    Args:
        height_factor: ``f`` draws vertical zooms ``1 + z`` with z in ``[-f, f]``, or a pair
            ``(low, high)``; positive z zooms out (the image shrinks), negative zooms in.
        width_factor: the same horizontally; None zooms both axes by the same factor.
        fill_mode, interpolation, seed, fill_value, data_format: as :class:`RandomRotation`.

    No weights; input and output shapes are equal.

    Example:
        >>> RandomZoom(0.2)(images, training=True)
    """

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor = _factor_range("RandomZoom", "height_factor", height_factor)
        self.width_factor = _factor_range("RandomZoom", "width_factor", width_factor,
                                          allow_none=True)
        if self.height_factor[0] <= -1 or (self.width_factor and self.width_factor[0] <= -1):
            raise ValueError(f"RandomZoom: factors must be > -1 (a zoom of 1 + z > 0), got "
                             f"{height_factor!r}, {width_factor!r}.")

    def _matrices(self, rng, n, h, w):
        zy = 1.0 + rng.uniform(*self.height_factor, size=n)
        zx = zy if self.width_factor is None else 1.0 + rng.uniform(*self.width_factor, size=n)
        m = numpy.zeros((n, 2, 3))
        m[:, 0, 0], m[:, 1, 1] = zy, zx
        return m

    def get_config(self):
        return {**super().get_config(), "height_factor": list(self.height_factor),
                "width_factor": None if self.width_factor is None else list(self.width_factor)}


class RandomContrast(_Augmentation):
    """Scales each image's contrast by a random factor about its per-channel mean (training only).

    ``y = clip((x - mean) * c + mean, *value_range)``, mean over the pixels of each image and
    channel, ``c`` drawn in ``[1 - lower, 1 + upper]`` per image.

    Args:
        factor: ``f`` (lower = upper = f) or a pair ``(lower, upper)``, each in [0, 1].
        value_range: the (min, max) the output is clipped to (Keras's default (0, 255)).
        seed: None (fundl's generator) or an int (the layer's own).
        data_format: None or "channels_last", or "channels_first".

    No weights; input and output shapes are equal.

    Example:
        >>> RandomContrast(0.2)(images, training=True)
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(seed, data_format, **kwargs)
        if isinstance(factor, (list, tuple)):
            lower, upper = _factor_range("RandomContrast", "factor", factor)
        else:  # one number: the same on both sides
            lower = upper = _factor_range("RandomContrast", "factor", factor, False)[1]
        if not (0 <= lower <= 1 and 0 <= upper <= 1):
            raise ValueError(f"RandomContrast: factor must be in [0, 1] (one number or a "
                             f"(lower, upper) pair), got {factor!r}.")
        self.factor = (lower, upper)
        if not isinstance(value_range, (list, tuple)):
            raise TypeError(f"RandomContrast: value_range must be a (min, max) pair, got "
                            f"{value_range!r}.")
        self.value_range = _factor_range("RandomContrast", "value_range", tuple(value_range))

    def _augment(self, x):
        xp = backend.get_array_module(x.data)
        n = x.shape[0]
        c = self._rng().uniform(1 - self.factor[0], 1 + self.factor[1], size=n)
        c = xp.asarray(c.astype(x.dtype)).reshape(n, 1, 1, 1)
        mean = F.mean(x, axis=(1, 2), keepdims=True)
        return F.clip((x - mean) * c + mean, *self.value_range)

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor),
                "value_range": list(self.value_range)}
