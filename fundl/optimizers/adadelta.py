"""Adadelta: step sizes from running averages of squared gradients and updates (Keras 3)."""
from __future__ import annotations

from ..backend import get_array_module
from .base import Optimizer, _real, register


@register
class Adadelta(Optimizer):
    """Adadelta (Zeiler, 2012) with a learning rate, as in Keras and PyTorch.

    ``Eg = rho * Eg + (1 - rho) * g**2``;
    ``d = -sqrt(Ed + epsilon) / sqrt(Eg + epsilon) * g``;
    ``Ed = rho * Ed + (1 - rho) * d**2``; ``w += lr * d``.

    Args:
        learning_rate: float or schedule. Default 0.001 (the paper's form is 1.0).
        rho: decay rate of the running averages, in [0, 1]. Default 0.95.
        epsilon: added under the square roots. Default 1e-7.
        **kwargs: ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``name``.

    Slots:
        ``accumulated_grad`` (Eg), ``accumulated_delta_var`` (Ed).

    Example:
        >>> opt = fl.optimizers.Adadelta(learning_rate=1.0)
    """

    default_name = "adadelta"

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.rho = _real("Adadelta", "rho", rho, 0.0, 1.0)
        self.epsilon = _real("Adadelta", "epsilon", epsilon, 0.0)

    def slot_specs(self):
        return [("accumulated_grad", 0.0), ("accumulated_delta_var", 0.0)]

    def update_step(self, grad, weight, learning_rate):
        xp = get_array_module(grad)
        slots = self._slots[self._index[id(weight)]]
        eg, ed = slots["accumulated_grad"], slots["accumulated_delta_var"]
        rho, eps = self.rho, self.epsilon
        tmp = xp.multiply(grad, grad, out=self._scratch(grad))
        tmp *= 1.0 - rho
        eg *= rho
        eg += tmp
        delta = xp.add(ed, eps, out=self._scratch(grad, 1))  # -d (the positive step) from here
        xp.sqrt(delta, out=delta)
        delta *= grad
        xp.add(eg, eps, out=tmp)
        xp.sqrt(tmp, out=tmp)
        delta /= tmp
        xp.multiply(delta, delta, out=tmp)
        tmp *= 1.0 - rho
        ed *= rho
        ed += tmp
        delta *= learning_rate
        weight.data -= delta

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}
