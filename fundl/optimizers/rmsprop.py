"""RMSprop: divide the gradient by a running root-mean-square of past gradients (Keras 3)."""
from __future__ import annotations

from ..backend import get_array_module
from ..kernels import fused
from .base import Optimizer, _real, register


@register
class RMSprop(Optimizer):
    """RMSprop (Hinton, 2012), optionally centered and with momentum.

    ``v = rho * v + (1 - rho) * g**2``; centered also keeps ``a = rho * a + (1 - rho) * g`` and
    uses ``v - a**2`` for ``v``; ``inc = lr * g / sqrt(v + epsilon)``; with momentum
    ``m = momentum * m + inc; w -= m``, else ``w -= inc``. (PyTorch's ``alpha`` is ``rho``;
    it puts epsilon outside the square root, so the two agree for ``epsilon=0``.)

    Args:
        learning_rate: float or schedule. Default 0.001.
        rho: decay of the running averages, in [0, 1]. Default 0.9.
        momentum: in [0, 1]. Default 0.0.
        epsilon: added under the square root. Default 1e-7.
        centered: normalise by the estimated variance instead of the second moment.
        **kwargs: ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``name``.

    Slots:
        ``velocity``; ``momentum`` when ``momentum > 0``; ``average_gradient`` when centered.

    Example:
        >>> opt = fl.optimizers.RMSprop(learning_rate=1e-3, centered=True)
    """

    default_name = "rmsprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.rho = _real("RMSprop", "rho", rho, 0.0, 1.0)
        self.momentum = _real("RMSprop", "momentum", momentum, 0.0, 1.0)
        self.epsilon = _real("RMSprop", "epsilon", epsilon, 0.0)
        self.centered = bool(centered)

    def slot_specs(self):
        specs = [("velocity", 0.0)]
        if self.momentum > 0:
            specs.append(("momentum", 0.0))
        if self.centered:
            specs.append(("average_gradient", 0.0))
        return specs

    def update_step(self, grad, weight, learning_rate):
        xp = get_array_module(grad)
        slots = self._slots[self._index[id(weight)]]
        v, rho = slots["velocity"], self.rho
        w = weight.data
        m = slots["momentum"] if self.momentum > 0 else v
        a = slots["average_gradient"] if self.centered else v
        if fused.usable(w, grad, v, m, a):  # one pass instead of eight, the same numbers
            fused.update(fused.rmsprop_update_numba, fused.flat(w), fused.flat(grad),
                         fused.flat(v), fused.flat(m), fused.flat(a), float(learning_rate),
                         float(rho), float(self.momentum), float(self.epsilon),
                         bool(self.centered))
            return
        # the reference (CuPy, no Numba, non-contiguous arrays)
        tmp = xp.multiply(grad, grad, out=self._scratch(grad))
        tmp *= 1.0 - rho
        v *= rho
        v += tmp
        if self.centered:
            a = slots["average_gradient"]
            a *= rho
            xp.multiply(grad, 1.0 - rho, out=tmp)
            a += tmp
            xp.multiply(a, a, out=tmp)
            xp.subtract(v, tmp, out=tmp)
            tmp += self.epsilon
        else:
            xp.add(v, self.epsilon, out=tmp)
        xp.sqrt(tmp, out=tmp)
        xp.divide(grad, tmp, out=tmp)
        tmp *= learning_rate
        if self.momentum > 0:
            m = slots["momentum"]
            m *= self.momentum
            m += tmp
            weight.data -= m
        else:
            weight.data -= tmp

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}
