"""One call for a weight with a regularizer and a constraint (the built-in layers' builds)."""
from __future__ import annotations


def add_weight_with_constraint(layer, name, shape, initializer, regularizer=None, constraint=None,
                               trainable=True):
    """``layer.add_weight`` by keyword (Keras 3's signature), the constraint attached.

    The weight (a :class:`~fundl.tensor.Variable`) carries ``constraint`` as an attribute; the
    optimizers apply it after each update (the contract in :mod:`fundl.constraints`).
    """
    return layer.add_weight(name=name, shape=shape, initializer=initializer,
                            trainable=trainable, regularizer=regularizer, constraint=constraint)
