"""FTRL-Proximal: follow the regularised leader (McMahan et al., 2013), in Keras 3's form."""
from __future__ import annotations

from ..backend import get_array_module
from .base import Optimizer, _real, register


@register
class Ftrl(Optimizer):
    """FTRL-Proximal with online L1/L2 and shrinkage L2, Keras 3's formulas.

    Per element, with ``p = -learning_rate_power`` (1/2 by default),
    ``l2 = l2_regularization_strength + beta / (2 lr)`` and
    ``g' = g + 2 l2_shrinkage_regularization_strength w``::

        n_new  = n + g**2
        z     += g' - (n_new**p - n**p) / lr * w
        w      = (clip(z, -l1, l1) - z) / (n_new**p / lr + 2 l2)
        n      = n_new

    so a weight is exactly 0 while ``|z| <= l1`` (sparse models for wide, sparse inputs).

    Args:
        learning_rate: float or schedule. Default 0.001.
        learning_rate_power: <= 0; how the per-element rate decays (0: fixed). Default -0.5.
        initial_accumulator_value: the accumulators' start, >= 0. Default 0.1.
        l1_regularization_strength: >= 0. Default 0.0.
        l2_regularization_strength: >= 0 (the paper's online L2). Default 0.0.
        l2_shrinkage_regularization_strength: >= 0; an L2 penalty added to the gradient (the
            loss's own L2). Default 0.0.
        beta: the paper's beta, added as ``beta / (2 lr)`` to the L2 strength. Default 0.0.
        **kwargs: ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``name``.

    Slots:
        ``accumulator`` (n) and ``linear`` (z).

    Example:
        >>> opt = fl.optimizers.Ftrl(learning_rate=0.1, l1_regularization_strength=0.01)
    """

    default_name = "ftrl"

    def __init__(self, learning_rate=0.001, learning_rate_power=-0.5,
                 initial_accumulator_value=0.1, l1_regularization_strength=0.0,
                 l2_regularization_strength=0.0, l2_shrinkage_regularization_strength=0.0,
                 beta=0.0, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        owner = type(self).__name__
        self.learning_rate_power = _real(owner, "learning_rate_power", learning_rate_power)
        if self.learning_rate_power > 0:
            raise ValueError(f"Ftrl: `learning_rate_power` must be <= 0 (0 keeps the rate fixed), "
                             f"got {self.learning_rate_power}.")
        self.initial_accumulator_value = _real(owner, "initial_accumulator_value",
                                               initial_accumulator_value, 0.0)
        self.l1_regularization_strength = _real(owner, "l1_regularization_strength",
                                                l1_regularization_strength, 0.0)
        self.l2_regularization_strength = _real(owner, "l2_regularization_strength",
                                                l2_regularization_strength, 0.0)
        self.l2_shrinkage_regularization_strength = _real(
            owner, "l2_shrinkage_regularization_strength", l2_shrinkage_regularization_strength,
            0.0)
        self.beta = _real(owner, "beta", beta, 0.0)

    def slot_specs(self):
        return [("accumulator", self.initial_accumulator_value), ("linear", 0.0)]

    def update_step(self, grad, weight, learning_rate):
        xp = get_array_module(grad)
        slots = self._slots[self._index[id(weight)]]
        n, z = slots["accumulator"], slots["linear"]
        w = weight.data
        p = -self.learning_rate_power
        l1 = self.l1_regularization_strength
        l2 = self.l2_regularization_strength + self.beta / (2.0 * learning_rate)
        n_new = xp.add(n, grad * grad, out=self._scratch(grad))
        n_new_p = n_new ** p
        z += grad
        if self.l2_shrinkage_regularization_strength:
            z += (2.0 * self.l2_shrinkage_regularization_strength) * w
        z -= (n_new_p - n ** p) * (1.0 / learning_rate) * w
        quadratic = n_new_p
        quadratic *= 1.0 / learning_rate
        quadratic += 2.0 * l2
        w[...] = (xp.clip(z, -l1, l1) - z) / quadratic
        n[...] = n_new

    def get_config(self):
        return {**super().get_config(),
                "learning_rate_power": self.learning_rate_power,
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1_regularization_strength": self.l1_regularization_strength,
                "l2_regularization_strength": self.l2_regularization_strength,
                "l2_shrinkage_regularization_strength":
                    self.l2_shrinkage_regularization_strength,
                "beta": self.beta}
