"""Nadam: Adam with Nesterov momentum (Dozat, 2016), in Keras 3's form."""
from __future__ import annotations

from ..backend import get_array_module
from .base import Optimizer, _real, register

_DECAY = 0.96  # the momentum schedule's base: mu_t = beta_1 (1 - 0.5 * 0.96**t)


@register
class Nadam(Optimizer):
    """Nadam: Adam whose first moment looks one step ahead (Nesterov), Keras 3's formulas.

    With ``t = iterations + 1`` and the momentum schedule ``mu_t = beta_1 (1 - 0.5 * 0.96**t)``:
    ``m += (g - m)(1 - beta_1)``; ``v += (g**2 - v)(1 - beta_2)``;
    ``m_hat = mu_{t+1} m / (1 - prod_{i<=t+1} mu_i) + (1 - mu_t) g / (1 - prod_{i<=t} mu_i)``;
    ``v_hat = v / (1 - beta_2**t)``; ``w -= lr * m_hat / (sqrt(v_hat) + epsilon)``.
    This equals ``torch.optim.NAdam`` with ``momentum_decay=1.0`` (PyTorch's default 0.004
    stretches the same schedule in time).

    The product of the ``mu_i`` is a function of :attr:`iterations` alone, so it is recomputed
    from them (kept incrementally) rather than stored: a saved and restored optimizer needs no
    extra state.

    Args:
        learning_rate: float or schedule. Default 0.001.
        beta_1: decay of the first moment, in [0, 1]. Default 0.9.
        beta_2: decay of the second moment, in [0, 1]. Default 0.999.
        epsilon: added to ``sqrt(v_hat)``. Default 1e-7.
        **kwargs: ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``name``.

    Slots:
        ``momentum`` (m) and ``velocity`` (v), as Adam's.

    Example:
        >>> opt = fl.optimizers.Nadam(learning_rate=2e-3)
        >>> model.compile(optimizer="nadam", loss="mse")   # doctest: +SKIP
    """

    default_name = "nadam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        owner = type(self).__name__
        self.beta_1 = _real(owner, "beta_1", beta_1, 0.0, 1.0)
        self.beta_2 = _real(owner, "beta_2", beta_2, 0.0, 1.0)
        self.epsilon = _real(owner, "epsilon", epsilon, 0.0)
        self._u_cache = (0, 1.0)  # (k, prod_{i<=k} mu_i)

    def slot_specs(self):
        return [("momentum", 0.0), ("velocity", 0.0)]

    def _mu(self, step):
        return self.beta_1 * (1.0 - 0.5 * _DECAY ** step)

    def _u_product(self, t):
        """``prod_{i=1..t} mu_i``, advanced from the last step (recomputed after a jump)."""
        k, prod = self._u_cache
        if k > t:
            k, prod = 0, 1.0
        while k < t:
            k += 1
            prod *= self._mu(k)
        self._u_cache = (k, prod)
        return prod

    def update_step(self, grad, weight, learning_rate):
        xp = get_array_module(grad)
        slots = self._slots[self._index[id(weight)]]
        m, v = slots["momentum"], slots["velocity"]
        t = self.iterations + 1
        u_t, u_next = self._mu(t), self._mu(t + 1)
        u_prod = self._u_product(t)
        u_prod_next = u_prod * u_next
        tmp = xp.subtract(grad, m, out=self._scratch(grad))
        tmp *= 1.0 - self.beta_1
        m += tmp
        xp.multiply(grad, grad, out=tmp)
        tmp -= v
        tmp *= 1.0 - self.beta_2
        v += tmp
        # denominator sqrt(v / (1 - beta_2**t)) + epsilon
        denom = xp.multiply(v, 1.0 / (1.0 - self.beta_2 ** t), out=tmp)
        xp.sqrt(denom, out=denom)
        denom += self.epsilon
        step = xp.multiply(m, learning_rate * u_next / (1.0 - u_prod_next),
                           out=self._scratch(grad, 1))
        step += grad * (learning_rate * (1.0 - u_t) / (1.0 - u_prod))
        step /= denom
        weight.data -= step

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}
