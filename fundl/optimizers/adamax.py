"""Adamax: Adam with the infinity norm (Kingma & Ba, 2014, section 7.1), in Keras 3's form."""
from __future__ import annotations

from ..backend import get_array_module
from .base import Optimizer, _real, register


@register
class Adamax(Optimizer):
    """Adamax, Keras 3's formulas.

    With ``t = iterations + 1``: ``m += (g - m)(1 - beta_1)``; ``u = max(beta_2 u, |g|)``;
    ``w -= lr * m / ((1 - beta_1**t) (u + epsilon))``. ``torch.optim.Adamax`` adds its ``eps``
    to ``|g|`` inside the max instead; with ``epsilon=0`` the two are the same rule.

    Args:
        learning_rate: float or schedule. Default 0.001.
        beta_1: decay of the first moment, in [0, 1]. Default 0.9.
        beta_2: decay of the infinity norm, in [0, 1]. Default 0.999.
        epsilon: added to ``u``. Default 1e-7.
        **kwargs: ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``name``.

    Slots:
        ``momentum`` (m) and ``norm`` (u).

    Example:
        >>> opt = fl.optimizers.Adamax(learning_rate=2e-3)
    """

    default_name = "adamax"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        owner = type(self).__name__
        self.beta_1 = _real(owner, "beta_1", beta_1, 0.0, 1.0)
        self.beta_2 = _real(owner, "beta_2", beta_2, 0.0, 1.0)
        self.epsilon = _real(owner, "epsilon", epsilon, 0.0)

    def slot_specs(self):
        return [("momentum", 0.0), ("norm", 0.0)]

    def update_step(self, grad, weight, learning_rate):
        xp = get_array_module(grad)
        slots = self._slots[self._index[id(weight)]]
        m, u = slots["momentum"], slots["norm"]
        t = self.iterations + 1
        tmp = xp.subtract(grad, m, out=self._scratch(grad))
        tmp *= 1.0 - self.beta_1
        m += tmp
        u *= self.beta_2
        xp.maximum(u, xp.abs(grad, out=tmp), out=u)
        xp.add(u, self.epsilon, out=tmp)
        xp.divide(m, tmp, out=tmp)
        tmp *= learning_rate / (1.0 - self.beta_1 ** t)
        weight.data -= tmp

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}
