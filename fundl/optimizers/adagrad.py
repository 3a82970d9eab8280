"""Adagrad: per-element learning rates shrinking with the sum of squared gradients (Keras 3)."""
from __future__ import annotations

from ..backend import get_array_module
from .base import Optimizer, _real, register


@register
class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011).

    ``acc += g**2``; ``w -= lr * g / sqrt(acc + epsilon)``, with ``acc`` starting at
    ``initial_accumulator_value``. (PyTorch puts epsilon outside the square root; with
    ``epsilon=0`` both agree.)

    Args:
        learning_rate: float or schedule. Default 0.001.
        initial_accumulator_value: starting value of the accumulators, >= 0. Default 0.1.
        epsilon: added under the square root for stability. Default 1e-7.
        **kwargs: ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``name``.

    Slots:
        ``accumulator``.

    Example:
        >>> opt = fl.optimizers.Adagrad(learning_rate=0.01)
    """

    default_name = "adagrad"

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.initial_accumulator_value = _real("Adagrad", "initial_accumulator_value",
                                               initial_accumulator_value, 0.0)
        self.epsilon = _real("Adagrad", "epsilon", epsilon, 0.0)

    def slot_specs(self):
        return [("accumulator", self.initial_accumulator_value)]

    def update_step(self, grad, weight, learning_rate):
        xp = get_array_module(grad)
        acc = self._slots[self._index[id(weight)]]["accumulator"]
        tmp = xp.multiply(grad, grad, out=self._scratch(grad))
        acc += tmp
        xp.add(acc, self.epsilon, out=tmp)
        xp.sqrt(tmp, out=tmp)
        xp.divide(grad, tmp, out=tmp)
        tmp *= learning_rate
        weight.data -= tmp

    def get_config(self):
        return {**super().get_config(),
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}
