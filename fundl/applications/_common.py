"""What every application shares: Keras's argument checks, the input, pooling and the model."""
from __future__ import annotations

import numbers

from ..layers import Dense, GlobalAveragePooling2D, GlobalMaxPooling2D, Input
from ..layers.base import SymbolicTensor

_POOLINGS = (None, "avg", "max")


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def check_args(who, include_top, weights, input_tensor, input_shape, pooling, classes,
               classifier_activation, min_size=32, default_size=224):
    """Validate Keras's application arguments; returns the input shape to build for.

    Raises:
        ValueError: ``weights`` other than None (fundl ships no pretrained weights), a bad
            ``input_shape``, ``pooling`` or ``classes``.
        TypeError: ``include_top`` not a bool, ``input_tensor`` not a symbolic tensor.
    """
    if weights is not None:
        raise ValueError(
            f"fundl.applications.{who}: pretrained weights are not shipped with fundl (got "
            f"weights={weights!r}). Pass weights=None for a randomly initialised model, then "
            "train it, or load weights you have saved with model.load_weights(path).")
    if not isinstance(include_top, bool):
        raise TypeError(f"fundl.applications.{who}: include_top must be True or False, got "
                        f"{include_top!r}.")
    if pooling not in _POOLINGS:
        raise ValueError(f"fundl.applications.{who}: pooling must be None, 'avg' or 'max', got "
                         f"{pooling!r}.")
    if include_top and (not _is_int(classes) or classes < 1):
        raise ValueError(f"fundl.applications.{who}: classes must be a positive int, got "
                         f"{classes!r}.")
    if not (classifier_activation is None or isinstance(classifier_activation, str)
            or callable(classifier_activation)):
        raise TypeError(f"fundl.applications.{who}: classifier_activation must be None, a name "
                        f"or a callable, got {classifier_activation!r}.")
    if input_tensor is not None:
        if not isinstance(input_tensor, SymbolicTensor):
            raise TypeError(f"fundl.applications.{who}: input_tensor must be a symbolic tensor "
                            f"(from fundl.layers.Input or a layer called on one), got "
                            f"{type(input_tensor).__name__}.")
        shape = tuple(input_tensor.shape[1:])
        if input_shape is not None and tuple(input_shape) != shape:
            raise ValueError(f"fundl.applications.{who}: input_shape {tuple(input_shape)} "
                             f"differs from input_tensor's shape {shape}; give one of them.")
        input_shape = shape
    if input_shape is None:
        input_shape = (default_size, default_size, 3) if include_top else (None, None, 3)
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if shape is None or len(shape) != 3 or shape[2] is None or not all(
            s is None or (_is_int(s) and s > 0) for s in shape):
        raise ValueError(f"fundl.applications.{who}: input_shape must be (height, width, "
                         f"channels) of positive ints (channels-last), got {input_shape!r}.")
    if include_top and None in shape[:2]:
        raise ValueError(f"fundl.applications.{who}: include_top=True needs a fixed image size; "
                         f"got input_shape={shape}. Give the height and width.")
    if any(s is not None and s < min_size for s in shape[:2]):
        raise ValueError(f"fundl.applications.{who}: the images must be at least "
                         f"{min_size}x{min_size}, got input_shape={shape}.")
    return tuple(int(s) if s is not None else None for s in shape)


def source_inputs(tensor):
    """The Input tensors a symbolic tensor was computed from (Keras's ``get_source_inputs``)."""
    found, seen, stack = [], set(), [tensor]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        node = t.node
        if node is None or not node.inputs:
            found.append(t)
        else:
            stack.extend(node.inputs)
    return found[0] if len(found) == 1 else found


def input_of(input_tensor, shape):
    """The tensor the network starts from: ``input_tensor``, or a new ``Input``."""
    return input_tensor if input_tensor is not None else Input(shape=shape, name="input_layer")


def pool(x, pooling):
    """Keras's ``pooling`` for ``include_top=False``: None, ``"avg"`` or ``"max"``."""
    if pooling == "avg":
        return GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return GlobalMaxPooling2D(name="max_pool")(x)
    return x


def avg_pool_top(x, include_top, pooling, classes, classifier_activation):
    """ResNet's and DenseNet's head: with ``include_top``, global average pooling
    (``avg_pool``) and the classifier (``predictions``); without it, ``pool(x, pooling)``."""
    if include_top:
        x = GlobalAveragePooling2D(name="avg_pool")(x)
        return Dense(classes, activation=classifier_activation, name="predictions")(x)
    return pool(x, pooling)


def finish(who, start, outputs, name):
    """The functional model from the source inputs of ``start`` to ``outputs``."""
    from ..models import Model

    return Model(inputs=source_inputs(start), outputs=outputs, name=name)
