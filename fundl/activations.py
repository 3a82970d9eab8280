"""Activation functions by name, as layers take them (``Dense(64, activation="relu")``).

Every activation here is a differentiable function of a Tensor returning a Tensor of the
same shape. Apart from :func:`linear`, they *are* the op functions of
:mod:`fundl.functional` (``fundl.activations.relu is fl.relu``), so a layer's activation
and a hand-written ``x.relu()`` record the same op.

Layers resolve their ``activation`` argument with :func:`get` and store it in their
config with :func:`serialize`:

    >>> from fundl import activations
    >>> act = activations.get("relu")
    >>> activations.serialize(act)
    'relu'
    >>> activations.get(None) is activations.linear
    True
"""
from __future__ import annotations

from .functional import (
    elu, gaussian, gelu, hard_sigmoid, hard_silu, hard_swish, leaky_relu, log_softmax, mish,
    relu, relu6, selu, sigmoid, silu, softmax, softplus, softsign, step, swish, tanh,
)

__all__ = [
    "elu", "gaussian", "gelu", "get", "hard_sigmoid", "hard_silu", "hard_swish", "leaky_relu",
    "linear", "log_softmax", "logistic", "mish", "relu", "relu6", "selu", "serialize",
    "sigmoid", "silu", "softmax", "softplus", "softsign", "step", "swish", "tanh",
]


def linear(x):
    """The identity activation ``f(x) = x`` (what ``activation=None`` means).

    Args:
        x: a Tensor of any shape.

    Returns:
        ``x`` itself (no op is recorded, so it costs nothing).

    Example:
        >>> activations.linear(fl.tensor([-1.0, 2.0]))
        tensor([-1.,  2.], dtype=float32)
    """
    return x


logistic = sigmoid  # the name used by the perceptron and MLP literature

# Canonical names first: serialize() reports the first name registered for a function.
_ACTIVATIONS = {
    "linear": linear,
    "step": step,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "gaussian": gaussian,
    "softmax": softmax,
    "log_softmax": log_softmax,
    "softplus": softplus,
    "gelu": gelu,
    "silu": silu,
    "selu": selu,
    "relu6": relu6,
    "hard_sigmoid": hard_sigmoid,
    "hard_silu": hard_silu,
    "softsign": softsign,
    "mish": mish,
    "logistic": logistic,
    "swish": swish,            # Keras 3 serialises swish as "silu"
    "hard_swish": hard_swish,  # ... and hard_swish as "hard_silu"
}
_NAMES = {}
for _name, _fn in _ACTIVATIONS.items():
    _NAMES.setdefault(_fn, _name)
del _name, _fn


def get(identifier):
    """Resolve an activation given by name, by function, or as None.

    Args:
        identifier: None (the identity, :func:`linear`), a name such as ``"relu"`` or
            ``"logistic"``, or any callable taking and returning a Tensor.

    Returns:
        The activation function.

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
        TypeError: anything that is neither None, a string nor callable.

    Example:
        >>> activations.get("tanh")(fl.tensor([0.0]))
        tensor([0.], dtype=float32)
    """
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        fn = _ACTIVATIONS.get(identifier)
        if fn is None:
            raise ValueError(f"activations.get: unknown activation {identifier!r}; valid names "
                             f"are {sorted(_ACTIVATIONS)}.")
        return fn
    if callable(identifier):
        return identifier
    raise TypeError(f"activations.get: expected None, a name or a callable, got "
                    f"{type(identifier).__name__} {identifier!r}.")


def serialize(fn) -> str:
    """The name under which a built-in activation is stored in a layer config.

    Args:
        fn: an activation function (or None, stored as ``"linear"``).

    Returns:
        Its canonical name (``serialize(logistic) == "sigmoid"``); ``get`` of that name
        gives the function back.

    Raises:
        ValueError: ``fn`` is not one of this module's activations; configs hold names only,
            never code, so a custom function cannot be saved in a config.

    Example:
        >>> activations.serialize(fl.relu)
        'relu'
    """
    if fn is None:
        return "linear"
    try:
        name = _NAMES.get(fn)
    except TypeError:  # an unhashable callable object cannot be a built-in
        name = None
    if name is None:
        raise ValueError(
            f"activations.serialize: {getattr(fn, '__name__', fn)!r} is not a built-in "
            f"activation, and configs store only the names {sorted(_ACTIVATIONS)}. Use one of "
            "them, or apply the custom function in a layer of your own.")
    return name

