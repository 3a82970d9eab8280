"""Preprocessing layers inside the model: Rescaling and Normalization (with ``adapt``), as Keras.

Putting the input scaling in the model means a saved model takes raw data: ``Rescaling(1/255)``
for pixels, ``Normalization`` for features standardised with statistics learned by
``adapt(train_data)`` and saved with the weights.

Example:
    >>> norm = Normalization()
    >>> norm.adapt(x_train)                     # per-feature mean and variance
    >>> model = Sequential([Input(shape=(8,)), norm, Dense(1)])
"""
from __future__ import annotations

import numbers

import numpy

from .. import backend
from ..tensor import Tensor
from .base import Layer

_EPSILON = 1e-7  # Keras's backend.epsilon(): the smallest standard deviation divided by


def _scalar_or_list(who, name, value):
    """A float, or a list of floats (one per channel), for configs."""
    if isinstance(value, bool):
        raise TypeError(f"{who}: {name} must be a number or a list of numbers, got {value!r}.")
    if isinstance(value, numbers.Real):
        return float(value)
    try:
        array = numpy.asarray(value, dtype="float64")
    except (TypeError, ValueError):
        array = None
    if array is None or array.ndim == 0 or not numpy.isfinite(array).all():
        raise TypeError(f"{who}: {name} must be a finite number or a list of numbers, got "
                        f"{value!r}.")
    return array.tolist()


class Rescaling(Layer):
    """Multiplies the inputs by ``scale`` and adds ``offset``: ``y = x * scale + offset``.

    Args:
        scale: a number, or a list of numbers broadcast against the last axes (one per
            channel), e.g. ``1 / 255`` for pixels in [0, 1], ``1 / 127.5`` with ``offset=-1``
            for [-1, 1].
        offset: a number or a list of numbers, broadcast the same way.

    Integer inputs (uint8 images) are cast to the layer's dtype first. No weights; input and
    output shapes are equal.

    Example:
        >>> Rescaling(1 / 127.5, offset=-1.0)(np.array([[0, 255]], dtype="uint8"))
        tensor([[-1.,  1.]], dtype=float32)
    """

    supports_masking = True

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = _scalar_or_list("Rescaling", "scale", scale)
        self.offset = _scalar_or_list("Rescaling", "offset", offset)
        self._constants = {}  # (device, dtype) -> (scale, offset) arrays

    def _arrays(self, x):
        key = (backend.device_of(x.data), x.dtype)
        if key not in self._constants:
            xp = backend.get_array_module(x.data)
            self._constants[key] = tuple(
                v if isinstance(v, float) else xp.asarray(v, dtype=x.dtype)
                for v in (self.scale, self.offset))
        return self._constants[key]

    def call(self, x, training=None):
        if x.dtype.kind != "f":
            x = Tensor._wrap(x.data.astype(self.dtype))
        scale, offset = self._arrays(x)
        y = x * scale
        return y + offset if not (isinstance(offset, float) and offset == 0.0) else y

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


def _axes(axis):
    if axis is None:
        return ()
    if isinstance(axis, numbers.Integral) and not isinstance(axis, bool):
        return (int(axis),)
    if isinstance(axis, (list, tuple)) and all(
            isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in axis):
        return tuple(int(a) for a in axis)
    raise TypeError(f"Normalization: axis must be None, an int or a tuple of ints (the axes "
                    f"with their own mean and variance), got {axis!r}.")


class Normalization(Layer):
    """Standardises features: ``(x - mean) / sqrt(variance)``, statistics from ``adapt`` or given.

    Args:
        axis: the axis (or axes) that keep a separate mean and variance per index: -1 (one per
            feature of the last axis), a tuple, or None (one mean and variance for everything).
            The statistics are taken over all the other axes, the batch axis included.
        mean, variance: fixed statistics (numbers or arrays broadcast to the kept axes); then
            the layer has no weights and ``adapt`` is not used.
        invert: apply the inverse, ``x * sqrt(variance) + mean`` (to undo a normalisation of
            targets).

    Weights (without ``mean``/``variance``): ``mean`` and ``variance``, non-trainable, of the
    kept axes' sizes (zeros and ones until :meth:`adapt`); they are saved with the model.
    The standard deviation is floored at 1e-7, as Keras. Input and output shapes are equal.

    Example:
        >>> norm = Normalization(axis=-1)
        >>> norm.adapt(np.array([[0.0, 10.0], [2.0, 30.0]]))
        >>> norm(np.array([[1.0, 20.0]], dtype="float32"))
        tensor([[0., 0.]], dtype=float32)
    """

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        self.axis = _axes(axis)
        if (mean is None) != (variance is None):
            raise ValueError("Normalization: give both mean and variance, or neither (then "
                             "call adapt(data) to learn them); got only "
                             f"{'mean' if variance is None else 'variance'}.")
        self.input_mean = None if mean is None else numpy.asarray(mean, dtype="float64")
        self.input_variance = (None if variance is None
                               else numpy.asarray(variance, dtype="float64"))
        if self.input_variance is not None and (self.input_variance < 0).any():
            raise ValueError("Normalization: variance must be >= 0 everywhere.")
        self.invert = bool(invert)

    # -- shapes -----------------------------------------------------------------------------
    def _kept_axes(self, ndim, shape):
        keep = []
        for a in self.axis:
            if not -ndim <= a < ndim:
                raise ValueError(f"Normalization '{self.name}': axis {a} is out of range for "
                                 f"inputs of rank {ndim} (shape {tuple(shape)}).")
            keep.append(a % ndim)
        if 0 in keep:
            raise ValueError(f"Normalization '{self.name}': axis {self.axis} includes the batch "
                             "axis 0; the statistics are per feature, taken over the batch.")
        return tuple(sorted(set(keep)))

    def build(self, input_shape):
        ndim = len(input_shape)
        self._keep = self._kept_axes(ndim, input_shape)
        if any(input_shape[a] is None for a in self._keep):
            raise ValueError(f"Normalization '{self.name}': the kept axes {self.axis} of the "
                             f"input shape {tuple(input_shape)} need known sizes.")
        self._reduce = tuple(a for a in range(ndim) if a not in self._keep)
        self._stat_shape = tuple(input_shape[a] for a in self._keep)
        self._broadcast = tuple(input_shape[a] if a in self._keep else 1 for a in range(ndim))
        if self.input_mean is None:
            self.mean = self.add_weight(name="mean", shape=self._stat_shape,
                                        initializer="zeros", trainable=False)
            self.variance = self.add_weight(name="variance", shape=self._stat_shape,
                                            initializer="ones", trainable=False)

    def _stats(self, like):
        """(mean, std) arrays in the broadcast shape, on ``like``'s device and dtype."""
        xp = backend.get_array_module(like)
        if self.input_mean is not None:
            mean = numpy.broadcast_to(self.input_mean, self._stat_shape)
            var = numpy.broadcast_to(self.input_variance, self._stat_shape)
        else:
            mean, var = self.mean.data, self.variance.data
        mean = xp.asarray(mean, dtype=like.dtype).reshape(self._broadcast)
        std = xp.maximum(xp.sqrt(xp.asarray(var, dtype=like.dtype)), _EPSILON)
        return mean, std.reshape(self._broadcast)

    def call(self, x, training=None):
        if x.dtype.kind != "f":
            x = Tensor._wrap(x.data.astype(self.dtype))
        if x.ndim != len(self._broadcast) or any(
                b != 1 and b != s for b, s in zip(self._broadcast, x.shape)):
            raise ValueError(f"Normalization '{self.name}': expected inputs of shape "
                             f"{(None,) + self._broadcast[1:]} on the kept axes {self.axis} "
                             f"(set when built), got {x.shape}.")
        mean, std = self._stats(x.data)  # recomputed each call: adapt/set_weights may change them
        if self.invert:
            return x * std + mean
        return (x - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    # -- adapt --------------------------------------------------------------------------------
    def adapt(self, data, batch_size=None, steps=None):
        """Learn the mean and variance of ``data`` (over all axes but the kept ones).

        Args:
            data: an array (batch first), a nested list or a Tensor, or an iterable of batches
                (arrays, or ``(x, y)`` tuples whose x is used); batches are combined exactly.
            batch_size: unused with arrays (all of it is read at once); accepted as Keras.
            steps: read at most this many batches from an iterable.

        Raises:
            ValueError: the layer was given fixed ``mean``/``variance``, the data is empty, or
                its shape does not fit the kept axes.

        Example:
            >>> norm = Normalization(); norm.adapt(x_train); x = norm(x_test)
        """
        if self.input_mean is not None:
            raise ValueError(f"Normalization '{self.name}': adapt() cannot be used when mean "
                             "and variance were given to the constructor.")
        if isinstance(data, (Tensor, list)) or hasattr(data, "shape"):
            batches = [data]
        else:
            batches = data
        count, mean, m2 = 0, None, None
        for i, batch in enumerate(batches):
            if steps is not None and i >= steps:
                break
            if isinstance(batch, tuple):
                batch = batch[0]
            if isinstance(batch, Tensor):
                batch = batch.data
            batch = backend.to_numpy(batch if hasattr(batch, "shape") else numpy.asarray(batch))
            batch = batch.astype("float64")
            if not self.built:
                self._maybe_build((None,) + batch.shape[1:])
            elif batch.ndim != len(self._broadcast) or any(
                    batch.shape[a] != self._broadcast[a] for a in self._keep):
                raise ValueError(f"Normalization '{self.name}': adapt data of shape "
                                 f"{batch.shape} does not fit the kept axes {self.axis} "
                                 f"(built for {(None,) + self._broadcast[1:]}).")
            n = int(numpy.prod([batch.shape[a] for a in self._reduce]))
            if n == 0:
                continue
            b_mean = batch.mean(axis=self._reduce).reshape(self._stat_shape)
            b_m2 = ((batch - b_mean.reshape(self._broadcast)) ** 2).sum(
                axis=self._reduce).reshape(self._stat_shape)
            if mean is None:
                count, mean, m2 = n, b_mean, b_m2
            else:  # Chan et al.'s pairwise update: exact for any split into batches
                delta = b_mean - mean
                total = count + n
                mean = mean + delta * (n / total)
                m2 = m2 + b_m2 + delta ** 2 * (count * n / total)
                count = total
        if mean is None:
            raise ValueError(f"Normalization '{self.name}': adapt() got no data.")
        self.set_weights([mean, m2 / count])

    def get_config(self):
        axis = self.axis[0] if len(self.axis) == 1 else (list(self.axis) if self.axis else None)
        return {**super().get_config(), "axis": axis,
                "mean": None if self.input_mean is None else self.input_mean.tolist(),
                "variance": (None if self.input_variance is None
                             else self.input_variance.tolist()),
                "invert": self.invert}
