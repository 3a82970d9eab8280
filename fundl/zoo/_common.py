"""Argument checks shared by the zoo's model functions (private)."""
from __future__ import annotations

import numbers

from ..layers import Input


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def check_args(who, input_shape, classes, include_top, weights):
    """Validate the arguments every zoo function takes; returns ``input_shape`` as a tuple.

    Raises:
        ValueError: ``weights`` is not None (the zoo ships no pretrained weights), a bad
            ``input_shape`` (not (height, width, channels) of positive sizes) or ``classes``.
        TypeError: ``include_top`` is not a bool.
    """
    if weights is not None:
        raise ValueError(f"fundl.zoo.{who}: weights must be None (random initialization): fundl "
                         f"ships no pretrained weights, got weights={weights!r}. Train the model, "
                         "or load your own with model.load_weights(path).")
    if not isinstance(include_top, bool):
        raise TypeError(f"fundl.zoo.{who}: include_top must be True or False, got "
                        f"{include_top!r}.")
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if shape is None or len(shape) != 3 or not all(
            s is None or (_is_int(s) and s > 0) for s in shape) or shape[2] is None:
        raise ValueError(f"fundl.zoo.{who}: input_shape must be (height, width, channels) of "
                         f"positive ints (channels-last), got {input_shape!r}.")
    if include_top and (not _is_int(classes) or classes < 1):
        raise ValueError(f"fundl.zoo.{who}: classes must be a positive int, got {classes!r}.")
    return tuple(int(s) if s is not None else None for s in shape)


def build(who, input_shape, body, name):
    """``Model(inputs, body(inputs))``; a shape error names the zoo function and the input shape.

    ``body`` runs on the symbolic input, so an input too small for the architecture fails
    here, at definition time, with the layer that could not fit.
    """
    from ..models import Model

    inputs = Input(shape=input_shape, name="input")
    try:
        outputs = body(inputs)
    except ValueError as e:
        raise ValueError(f"fundl.zoo.{who}: cannot build the model for input_shape "
                         f"{input_shape}: {e}") from e
    return Model(inputs=inputs, outputs=outputs, name=name)
