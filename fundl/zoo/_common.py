"""Argument checks shared by the zoo's model functions (private)."""
from __future__ import annotations

import numbers

from ..layers import Input


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def positive_int(who, name, v):
    """``v`` as an int, or a ValueError naming the zoo function ``who`` and argument ``name``."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"fundl.zoo.{who}: {name} must be a positive int, got {v!r}.")
    return int(v)


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


def named_depth(family, family_name, depth, count):
    """``family`` (``resnet``, ``densenet``) fixed at ``depth``, with its own name and docstring.

    Args:
        family: the family's builder, called as ``family(depth, input_shape=..., ...)``.
        family_name: its name as users write it ("resnet", "densenet").
        depth: the depth this function fixes.
        count: the reference trainable parameter count at 224x224x3, 1000 classes (for the docs).
    """
    def model(input_shape=(224, 224, 3), classes=1000, include_top=True, weights=None,
              classifier_activation="softmax"):
        return family(depth, input_shape=input_shape, classes=classes, include_top=include_top,
                      weights=weights, classifier_activation=classifier_activation)

    title = {"resnet": "ResNet", "densenet": "DenseNet"}.get(family_name, family_name)
    model.__name__ = model.__qualname__ = f"{family_name}{depth}"
    model.__doc__ = f"""{title}-{depth}: :func:`{family_name}` with depth {depth}.

    {count} trainable parameters at 224x224x3 with 1000 classes, as torchvision's.

    Args:
        input_shape, classes, include_top, weights, classifier_activation: as in
            :func:`{family_name}`.

    Returns:
        A built, uncompiled :class:`~fundl.models.Model`.

    Example:
        >>> model = fundl.zoo.{family_name}{depth}(input_shape=(32, 32, 3), classes=10)
    """
    return model

