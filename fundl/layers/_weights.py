"""Weights that carry a constraint, whichever ``Layer.add_weight`` this tree has."""
from __future__ import annotations


def add_weight_with_constraint(layer, name, shape, initializer, regularizer=None, constraint=None,
                               trainable=True):
    """``layer.add_weight`` (by keyword) with a constraint attached to the weight.

    The weight carries its constraint as the attribute ``constraint``: the optimizers read it
    after each update (the contract in :mod:`fundl.constraints`). ``add_weight(constraint=)``
    attaches it when the base class takes that argument, else it is set here.

    Raises:
        TypeError: a constraint is given but the weights of this build cannot carry one.
    """
    if constraint is None:
        return layer.add_weight(name=name, shape=shape, initializer=initializer,
                                trainable=trainable, regularizer=regularizer)
    try:
        return layer.add_weight(name=name, shape=shape, initializer=initializer,
                                trainable=trainable, regularizer=regularizer,
                                constraint=constraint)
    except TypeError as e:
        if "constraint" not in str(e):
            raise
    w = layer.add_weight(name=name, shape=shape, initializer=initializer, trainable=trainable,
                         regularizer=regularizer)
    try:
        w.constraint = constraint
    except AttributeError:
        raise TypeError(f"{type(layer).__name__} '{layer.name}': this build's weights cannot "
                        "carry a constraint (Layer.add_weight has no constraint= yet).") from None
    return w
