"""One call for a weight with a regularizer and a constraint (the built-in layers' builds), and
the kernel/bias options (initializers, regularizers, constraints) the Keras layers share."""
from __future__ import annotations

from .. import constraints, initializers, regularizers
from .base import deserialize_object, serialize_object

# the seven kernel/bias options of Dense, the convolutions and MultiHeadAttention, in Keras's
# argument (and config) order, with the module each is looked up in
_WEIGHT_OPTIONS = (("kernel_initializer", initializers), ("bias_initializer", initializers),
                   ("kernel_regularizer", regularizers), ("bias_regularizer", regularizers),
                   ("activity_regularizer", regularizers), ("kernel_constraint", constraints),
                   ("bias_constraint", constraints))


def add_weight_with_constraint(layer, name, shape, initializer, regularizer=None, constraint=None,
                               trainable=True):
    """``layer.add_weight`` by keyword (Keras 3's signature), the constraint attached.

    The weight (a :class:`~fundl.tensor.Variable`) carries ``constraint`` as an attribute; the
    optimizers apply it after each update (the contract in :mod:`fundl.constraints`).
    """
    return layer.add_weight(name=name, shape=shape, initializer=initializer,
                            trainable=trainable, regularizer=regularizer, constraint=constraint)


def set_weight_options(layer, kernel_initializer, bias_initializer, kernel_regularizer,
                       bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint):
    """Resolve the seven kernel/bias options (names, config dicts, objects or None) onto
    ``layer`` as attributes of the same names, in Keras's order (the first bad one raises)."""
    given = (kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
             activity_regularizer, kernel_constraint, bias_constraint)
    for (attr, module), value in zip(_WEIGHT_OPTIONS, given):
        setattr(layer, attr, deserialize_object(module, value))


def weight_options_config(layer):
    """The seven kernel/bias options of ``layer`` serialized for ``get_config``, in order."""
    return {attr: serialize_object(getattr(layer, attr)) for attr, _ in _WEIGHT_OPTIONS}
