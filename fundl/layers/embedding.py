"""Embedding and Masking, and the small mechanism that carries sequence masks between layers.

Padded sequences need a mask (batch, timesteps) saying which steps are real. In Keras, a
layer produces one with ``compute_mask`` and the model hands it to the next layer's ``call``.
fundl's models do not pass masks yet, so the mask travels *with the output tensor*:

- a layer that makes or keeps a mask calls :func:`attach_mask` on its output;
- a layer that consumes one (the recurrent layers, ``TimeDistributed``, :func:`masked_loss`)
  reads it with :func:`get_mask` from its input, unless a ``mask=`` is passed explicitly.

The registry maps ``id(tensor)`` to the mask and holds the tensor only weakly, so an entry
disappears with its tensor. A layer in between that knows nothing about masks (``Dropout``,
``Dense``) returns a new tensor without one: the chain stops there, as it should when the
layer cannot say what its output's mask is. Layers that preserve the time axis can pass
the mask on with ``attach_mask(out, get_mask(x))``.

Example:
    >>> model = Sequential([Embedding(100, 16, mask_zero=True), LSTM(32), Dense(1)])
    >>> # padded steps (index 0) neither update the LSTM's state nor reach the loss
"""
from __future__ import annotations

import weakref

import numpy

from .. import backend, initializers, regularizers
from .. import functional as F
from ..tensor import Tensor
from .base import Layer, deserialize_object, serialize_object

_MASKS: dict = {}  # id(tensor) -> (weak reference to the tensor, boolean mask array)


def attach_mask(tensor, mask):
    """Attach a boolean mask of shape (batch, timesteps) to ``tensor`` (None removes it).

    Args:
        tensor: a Tensor of shape (batch, timesteps, ...).
        mask: an array (or Tensor) of booleans, True for real steps, or None.

    Returns:
        ``tensor`` itself.

    Example:
        >>> x = attach_mask(fl.zeros(2, 3, 4), np.array([[1, 1, 0], [1, 0, 0]], bool))
        >>> get_mask(x).sum()
        3
    """
    key = id(tensor)
    if mask is None:
        _MASKS.pop(key, None)
        return tensor
    if isinstance(mask, Tensor):
        mask = mask.data
    shape = tuple(getattr(tensor, "shape", ()))
    if tuple(mask.shape) != shape[:2]:
        raise ValueError(f"attach_mask: a mask must have shape (batch, timesteps) = {shape[:2]} "
                         f"for a tensor of shape {shape}, got {tuple(mask.shape)}.")
    if mask.dtype != bool:
        mask = mask.astype(bool)
    _MASKS[key] = (weakref.ref(tensor, lambda _, k=key: _MASKS.pop(k, None)), mask)
    return tensor


def get_mask(tensor):
    """The mask attached to ``tensor`` by :func:`attach_mask`, or None."""
    entry = _MASKS.get(id(tensor))
    if entry is None or entry[0]() is not tensor:
        return None
    return entry[1]


def masked_loss(loss):
    """Wrap a per-element loss so that masked (padded) steps do not count.

    The returned function computes ``loss(y_true, y_pred)`` per step, multiplies it by the
    mask attached to ``y_pred`` (if any) and averages over the real steps of each sample, so
    the mean over a batch equals Keras' masked loss for equal-length batches.

    Args:
        loss: a loss function or name from :mod:`fundl.losses` returning (batch, timesteps).

    Returns:
        A loss function ``(y_true, y_pred) -> (batch,)`` usable in ``compile``.

    Example:
        >>> model.compile(loss=masked_loss("categorical_crossentropy"), optimizer="adam")
    """
    from .. import losses

    fn = losses.get(loss) if isinstance(loss, str) else loss

    def masked(y_true, y_pred):
        value = fn(y_true, y_pred)
        mask = get_mask(y_pred)
        if mask is None or value.ndim < 2:
            return value
        xp = backend.get_array_module(value.data)
        m = xp.asarray(mask).astype(value.dtype)
        while m.ndim < value.ndim:
            m = m[..., None]
        per_step = m.sum(axis=tuple(range(1, m.ndim)))
        return (value * m).sum(axis=tuple(range(1, value.ndim))) / xp.maximum(per_step, 1)

    masked.__name__ = f"masked_{getattr(fn, '__name__', 'loss')}"
    return masked


class Embedding(Layer):
    """Maps integer indices to dense vectors: row ``i`` of an ``(input_dim, output_dim)`` table.

    Args:
        input_dim: the vocabulary size (indices run from 0 to input_dim - 1).
        output_dim: the size of each vector.
        embeddings_initializer: the table's initializer (Keras default: uniform in +-0.05).
        embeddings_regularizer: an optional penalty on the table.
        mask_zero: index 0 is padding: the output carries a mask (False at 0s) that the
            recurrent layers read, so padded steps update nothing. Index 0 then cannot be a
            real token (use input_dim = vocabulary + 1).

    Input ``(batch, timesteps)`` integers -> output ``(batch, timesteps, output_dim)``. The weight
    is ``embeddings`` (the Keras name and layout).

    Example:
        >>> emb = Embedding(1000, 64, mask_zero=True)
        >>> emb(np.array([[4, 20, 0]])).shape
        (1, 3, 64)
    """

    def __init__(self, input_dim, output_dim, embeddings_initializer="random_uniform",
                 embeddings_regularizer=None, mask_zero=False, **kwargs):
        super().__init__(**kwargs)
        for arg, v in (("input_dim", input_dim), ("output_dim", output_dim)):
            if isinstance(v, bool) or not isinstance(v, (int, numpy.integer)) or v <= 0:
                raise ValueError(f"Embedding: {arg} must be a positive integer, got {v!r}.")
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.embeddings_initializer = deserialize_object(initializers, embeddings_initializer)
        self.embeddings_regularizer = deserialize_object(regularizers, embeddings_regularizer)
        self.mask_zero = bool(mask_zero)

    def build(self, input_shape):
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer,
                                          regularizer=self.embeddings_regularizer)

    def call(self, x, training=False):
        idx = x.data
        if idx.dtype.kind not in "iub":
            if idx.dtype.kind != "f":
                raise TypeError(f"Embedding '{self.name}': expected integer indices, got dtype "
                                f"{idx.dtype}.")
            idx = idx.astype(numpy.int64)  # Keras casts float indices (e.g. from fit) too
        xp = backend.get_array_module(idx)
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= self.input_dim):
            raise ValueError(f"Embedding '{self.name}': indices must be in [0, {self.input_dim}), "
                             f"got values from {int(idx.min())} to {int(idx.max())}. Is input_dim "
                             "the vocabulary size (plus one for padding)?")
        out = F.getitem(self.embeddings, xp.asarray(idx))
        if self.mask_zero and idx.ndim >= 2:
            attach_mask(out, self.compute_mask(idx))
        return out

    def compute_mask(self, inputs, mask=None):
        """``inputs != 0`` when ``mask_zero``, else None."""
        if not self.mask_zero:
            return None
        idx = inputs.data if isinstance(inputs, Tensor) else inputs
        return idx != 0

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim,
                "output_dim": self.output_dim,
                "embeddings_initializer": serialize_object(self.embeddings_initializer),
                "embeddings_regularizer": serialize_object(self.embeddings_regularizer),
                "mask_zero": self.mask_zero}


class Masking(Layer):
    """Masks the time steps whose features all equal ``mask_value`` (padding of real-valued data).

    Args:
        mask_value: the padding value.

    Input ``(batch, timesteps, features)`` -> the same, with masked steps set to 0 and a mask
    (True where some feature differs from ``mask_value``) attached for the next layers.

    Example:
        >>> model = Sequential([Masking(0.0, input_shape=(None, 3)), LSTM(8)])
    """

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = float(mask_value)

    def call(self, x, training=False):
        if x.ndim < 3:
            raise ValueError(f"Masking '{self.name}': expected inputs of shape (batch, timesteps, "
                             f"features), got shape {x.shape}.")
        mask = self.compute_mask(x)
        keep = mask.astype(x.dtype)
        out = x * keep.reshape(keep.shape + (1,) * (x.ndim - 2))
        return attach_mask(out, mask)

    def compute_mask(self, inputs, mask=None):
        """True at steps where some feature differs from ``mask_value``."""
        data = inputs.data if isinstance(inputs, Tensor) else inputs
        return (data != self.mask_value).any(axis=tuple(range(2, data.ndim)))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}
