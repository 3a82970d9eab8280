"""Embedding and Masking: the layers that start a sequence mask, and ``masked_loss``.

Padded sequences need a mask (batch, timesteps) saying which steps are real.
``Embedding(mask_zero=True)`` makes one from the indices (False at 0s), ``Masking`` from the
steps whose features all equal ``mask_value``. The mask travels with the output tensor
(:func:`attach_mask` / :func:`get_mask`, defined in :mod:`fundl.layers._masking` and
re-exported here): layers that keep the time axis and act per step (``supports_masking``:
``Dense``, ``Dropout``, ``LayerNormalization``, merge layers, ...) pass it on, the recurrent
layers skip masked steps (and pass the mask on with ``return_sequences=True``), and a model
compiled with a loss leaves masked steps out of the loss (Keras 3's masked mean).

Example:
    >>> model = Sequential([Embedding(100, 16, mask_zero=True), LSTM(32, return_sequences=True),
    ...                     Dense(5, activation="softmax")])
    >>> model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    >>> # padded steps (index 0) neither update the LSTM's state nor reach the loss
"""
from __future__ import annotations

import numpy

from .. import backend, constraints, initializers, regularizers
from .. import functional as F
from ..tensor import Tensor
from ._masking import attach_mask, get_mask  # re-exported: imported from here too
from ._weights import add_weight_with_constraint as _add_weight
from .base import Layer, deserialize_object, serialize_object


def masked_loss(loss):
    """Wrap a per-element loss so that masked steps do not count, averaging per sequence.

    ``compile`` now masks any loss by itself (Keras 3): with a mask on the output, the loss
    is the mean over all real steps of the batch, every step weighing the same. This wrapper
    gives the other common weighting: the mean over the real steps *of each sequence*, so
    that ``compile`` then averages sequences, each weighing the same whatever its length.
    The two agree when every sequence of a batch has the same number of real steps. It
    returns one value per sample, so ``compile`` does not mask it a second time.

    Args:
        loss: a loss function or name from :mod:`fundl.losses` returning (batch, timesteps).

    Returns:
        A loss function ``(y_true, y_pred) -> (batch,)`` usable in ``compile`` (unchanged
        per-element values when ``y_pred`` has no mask).

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
        embeddings_constraint: an optional constraint on the table, applied after each
            optimizer update (e.g. ``MaxNorm(1.0, axis=1)``: every vector within norm 1).
        mask_zero: index 0 is padding: the output carries a mask (False at 0s) that
            per-step layers pass on and the recurrent layers and the compiled loss read, so
            padded steps update nothing. Index 0 then cannot be a real token (use
            input_dim = vocabulary + 1).

    Input ``(batch, timesteps)`` integers -> output ``(batch, timesteps, output_dim)``. The weight
    is ``embeddings`` (the Keras name and layout).

    Example:
        >>> emb = Embedding(1000, 64, mask_zero=True)
        >>> emb(np.array([[4, 20, 0]])).shape
        (1, 3, 64)
    """

    def __init__(self, input_dim, output_dim, embeddings_initializer="random_uniform",
                 embeddings_regularizer=None, embeddings_constraint=None, mask_zero=False,
                 **kwargs):
        super().__init__(**kwargs)
        for arg, v in (("input_dim", input_dim), ("output_dim", output_dim)):
            if isinstance(v, bool) or not isinstance(v, (int, numpy.integer)) or v <= 0:
                raise ValueError(f"Embedding: {arg} must be a positive integer, got {v!r}.")
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.embeddings_initializer = deserialize_object(initializers, embeddings_initializer)
        self.embeddings_regularizer = deserialize_object(regularizers, embeddings_regularizer)
        self.embeddings_constraint = deserialize_object(constraints, embeddings_constraint)
        self.mask_zero = bool(mask_zero)

    def build(self, input_shape):
        self.embeddings = _add_weight(self, "embeddings", (self.input_dim, self.output_dim),
                                      self.embeddings_initializer, self.embeddings_regularizer,
                                      self.embeddings_constraint)

    def call(self, x, training=None):
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
                "embeddings_constraint": serialize_object(self.embeddings_constraint),
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

    def call(self, x, training=None):
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
