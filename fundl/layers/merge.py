"""Layers that merge a list of inputs: Add, Subtract, Multiply, Average, Maximum, Minimum and
Concatenate.

Sequence masks: the output's mask is the logical AND of the inputs' masks, an unmasked input
counting as all real steps (tf.keras and Keras 3.0-3.3; Keras 3.4 switched to OR, dropping the
mask when any input is unmasked). ``Concatenate`` along the time axis joins the masks instead.
"""
from __future__ import annotations

from functools import reduce

from .. import backend
from .. import functional as F
from .base import Layer


def _check_list(layer, inputs):
    if not isinstance(inputs, (list, tuple)) or len(inputs) < 2:
        what = (f"a list of {len(inputs)}" if isinstance(inputs, (list, tuple))
                else type(inputs).__name__)
        raise ValueError(f"{type(layer).__name__} '{layer.name}': expected a list of at least 2 "
                         f"inputs, e.g. {type(layer).__name__}()([x1, x2]); got {what}.")


def _and_masks(masks):
    """The AND of the given (batch, timesteps) masks, None standing for all True.

    None when no input is masked, or when the masks' shapes differ (they cannot describe one
    output's steps then).
    """
    given = [m for m in masks if m is not None]
    if not given or any(m.shape != given[0].shape for m in given):
        return None
    return reduce(lambda a, b: a & b, given)


class _Merge(Layer):
    """Element-wise merge of a list of same-shaped inputs (size-1 axes broadcast).

    Called on a list ``[x1, x2, ...]`` of tensors of one shape ``(batch, ...)``; returns one
    tensor of that shape. A step is masked when any masked input masks it (module docstring).
    """

    supports_masking = True

    def compute_mask(self, inputs, mask=None):
        """The AND of the inputs' masks (an unmasked input counts as all real steps)."""
        return None if mask is None else _and_masks(mask)

    def _check_list(self, inputs):
        _check_list(self, inputs)

    def call(self, inputs, training=None):
        self._check_list(inputs)
        return self._merge(list(inputs))

    def compute_output_shape(self, input_shape):
        self._check_list(input_shape)
        out = list(input_shape[0])
        for shape in input_shape[1:]:
            if len(shape) != len(out):
                raise ValueError(f"inputs must have the same rank, got shapes {input_shape}.")
            for i, (a, b) in enumerate(zip(out, shape)):
                if a is None or b is None:
                    out[i] = a if b is None else b
                elif a != b and 1 not in (a, b):
                    raise ValueError(f"input shapes {input_shape} do not match (axis {i}: {a} vs "
                                     f"{b}).")
                else:
                    out[i] = max(a, b)
        return tuple(out)


class Add(_Merge):
    """Element-wise sum of a list of inputs (residual connections).

    Example:
        >>> y = Add()([x1, x2])          # x1 + x2, same shape
    """

    def _merge(self, xs):
        return reduce(F.add, xs)


class Subtract(_Merge):
    """``x1 - x2`` for a list of exactly two inputs.

    Example:
        >>> d = Subtract()([x1, x2])
    """

    def _merge(self, xs):
        if len(xs) != 2:
            raise ValueError(f"Subtract '{self.name}': expected exactly 2 inputs, got {len(xs)}.")
        return F.sub(xs[0], xs[1])


class Multiply(_Merge):
    """Element-wise product of a list of inputs (gating).

    Example:
        >>> y = Multiply()([x, gate])
    """

    def _merge(self, xs):
        return reduce(F.mul, xs)


class Average(_Merge):
    """Element-wise mean of a list of inputs (ensembles).

    Example:
        >>> y = Average()([y1, y2, y3])
    """

    def _merge(self, xs):
        return reduce(F.add, xs) * (1.0 / len(xs))


class Maximum(_Merge):
    """Element-wise maximum of a list of inputs (the gradient goes to the larger one).

    Example:
        >>> y = Maximum()([x1, x2])
    """

    def _merge(self, xs):
        return reduce(F.maximum, xs)


class Minimum(_Merge):
    """Element-wise minimum of a list of inputs.

    Example:
        >>> y = Minimum()([x1, x2])
    """

    def _merge(self, xs):
        return reduce(F.minimum, xs)


class Concatenate(Layer):
    """Concatenates a list of inputs along ``axis`` (the last by default).

    Args:
        axis: the axis to join along; the inputs' other axes must agree. The batch axis (0)
            cannot be used.

    Shapes ``(batch, a)`` and ``(batch, b)`` give ``(batch, a + b)``. Sequence masks: joined
    along ``axis=1`` (time; an unmasked input's steps are all real), else their AND.

    Example:
        >>> merged = Concatenate()([Dense(4)(x), Dense(6)(x)])     # (None, 10)
    """

    supports_masking = True

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"Concatenate: axis must be an int, got {axis!r}.")
        self.axis = axis

    def call(self, inputs, training=None):
        _check_list(self, inputs)
        return F.concatenate(list(inputs), axis=self.axis)

    def compute_mask(self, inputs, mask=None):
        """The inputs' masks joined in time for ``axis=1``, else their AND (None: unmasked)."""
        if mask is None or all(m is None for m in mask):
            return None
        if self.axis % inputs[0].ndim != 1:
            return _and_masks(mask)
        xp = backend.get_array_module(next(m for m in mask if m is not None))
        return xp.concatenate([xp.ones(x.shape[:2], dtype=bool) if m is None else m
                               for x, m in zip(inputs, mask)], axis=1)

    def compute_output_shape(self, input_shape):
        _check_list(self, input_shape)
        rank = len(input_shape[0])
        if not -rank <= self.axis < rank or self.axis % rank == 0:
            raise ValueError(f"axis {self.axis} is out of range for inputs of rank {rank} (the "
                             "batch axis 0 cannot be concatenated).")
        axis = self.axis % rank
        out = list(input_shape[0])
        for shape in input_shape[1:]:
            if len(shape) != rank or any(a != b and None not in (a, b)
                                         for i, (a, b) in enumerate(zip(out, shape)) if i != axis):
                raise ValueError(f"shapes {input_shape} must agree except along axis {self.axis}.")
            known = out[axis] is not None and shape[axis] is not None
            out[axis] = out[axis] + shape[axis] if known else None
        return tuple(out)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


# -- Keras's functional forms: create the layer and call it on the list ----------------------
def _functional(cls, doc_example):
    def merge(inputs, **kwargs):
        return cls(**kwargs)(inputs)

    merge.__name__ = merge.__qualname__ = cls.__name__.lower()
    merge.__doc__ = (f"``{cls.__name__}(**kwargs)(inputs)``: the functional form of "
                     f":class:`{cls.__name__}`, as Keras's ``keras.layers.{merge.__name__}``.\n\n"
                     "    Args:\n"
                     "        inputs: a list of at least 2 Tensors or SymbolicTensors.\n"
                     "        **kwargs: the layer's arguments (``name=...``).\n\n"
                     "    Returns:\n"
                     "        The merged Tensor (SymbolicTensor in the functional API).\n\n"
                     "    Example:\n"
                     f"        >>> y = {merge.__name__}({doc_example})\n")
    return merge


add = _functional(Add, "[x1, x2]")
subtract = _functional(Subtract, "[x1, x2]")
multiply = _functional(Multiply, "[x, gate]")
average = _functional(Average, "[y1, y2, y3]")
maximum = _functional(Maximum, "[x1, x2]")
minimum = _functional(Minimum, "[x1, x2]")


def concatenate(inputs, axis=-1, **kwargs):
    """``Concatenate(axis, **kwargs)(inputs)``: the functional form of :class:`Concatenate`.

    Args:
        inputs: a list of at least 2 Tensors or SymbolicTensors.
        axis: the axis to join along (the last by default).
        **kwargs: the layer's other arguments (``name=...``).

    Returns:
        The joined Tensor (SymbolicTensor in the functional API).

    Example:
        >>> merged = concatenate([Dense(4)(x), Dense(6)(x)])     # (None, 10)
    """
    return Concatenate(axis=axis, **kwargs)(inputs)
