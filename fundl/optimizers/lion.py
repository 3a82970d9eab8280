"""Lion: evolved sign momentum (Chen et al., 2023, "Symbolic Discovery of Optimization
Algorithms"), in Keras 3's form."""
from __future__ import annotations

from ..backend import get_array_module
from .base import Optimizer, _real, register


@register
class Lion(Optimizer):
    """Lion, Keras 3's formulas: every update has the same size per element.

    ``w -= lr * sign(beta_1 m + (1 - beta_1) g)``, then ``m = beta_2 m + (1 - beta_2) g``.
    Its steps are larger than Adam's, so the paper uses a 3-10x smaller learning rate (and a
    3-10x larger decoupled ``weight_decay``).

    Args:
        learning_rate: float or schedule. Default 0.001.
        beta_1: interpolation for the update direction, in (0, 1]. Default 0.9.
        beta_2: decay of the momentum, in [0, 1]. Default 0.99.
        **kwargs: ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``name``.

    Slots:
        ``momentum`` (m).

    Example:
        >>> opt = fl.optimizers.Lion(learning_rate=1e-4, weight_decay=0.01)
    """

    default_name = "lion"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        owner = type(self).__name__
        self.beta_1 = _real(owner, "beta_1", beta_1, 0.0, 1.0)
        if self.beta_1 == 0.0:
            raise ValueError("Lion: `beta_1` must be in (0, 1]; with 0 the optimizer degenerates "
                             "to sign SGD. Got beta_1=0.0.")
        self.beta_2 = _real(owner, "beta_2", beta_2, 0.0, 1.0)

    def slot_specs(self):
        return [("momentum", 0.0)]

    def update_step(self, grad, weight, learning_rate):
        xp = get_array_module(grad)
        m = self._slots[self._index[id(weight)]]["momentum"]
        tmp = xp.multiply(m, self.beta_1, out=self._scratch(grad))
        tmp += grad * (1.0 - self.beta_1)
        xp.sign(tmp, out=tmp)
        tmp *= learning_rate
        weight.data -= tmp
        m *= self.beta_2
        m += grad * (1.0 - self.beta_2)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}
