"""Stochastic gradient descent, with optional (Nesterov) momentum (Keras 3's rule)."""
from __future__ import annotations

from ..backend import get_array_module
from ..kernels import fused
from .base import Optimizer, _real, register

_MIN_FUSED = 4096  # elements: below, NumPy's two calls cost less than a kernel call


@register
class SGD(Optimizer):
    """Gradient descent with optional momentum.

    Without momentum: ``w -= lr * g``. With momentum ``mu``: ``m = mu * m - lr * g``, then
    ``w += m``, or with ``nesterov=True`` ``w += mu * m - lr * g``. For a constant learning
    rate this equals PyTorch's ``b = mu * b + g; w -= lr * b`` (``m = -lr * b``).

    Args:
        learning_rate: float or schedule. Default 0.01.
        momentum: in [0, 1]; 0 is plain gradient descent. Default 0.0.
        nesterov: use Nesterov momentum. Default False.
        **kwargs: ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``name``
            (see :class:`~fundl.optimizers.Optimizer`).

    Slots:
        ``momentum`` (only when ``momentum > 0``).

    Example:
        >>> opt = fl.optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True)
    """

    default_name = "SGD"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.momentum = _real("SGD", "momentum", momentum, 0.0, 1.0)
        self.nesterov = bool(nesterov)

    def slot_specs(self):
        return [("momentum", 0.0)] if self.momentum != 0 else []

    def update_step(self, grad, weight, learning_rate):
        w = weight.data
        m = self._slots[self._index[id(weight)]]["momentum"] if self.momentum != 0 else w
        if fused.usable(w, grad, m, min_size=_MIN_FUSED):  # one pass, the same numbers
            fused.update(fused.sgd_update_numba, fused.flat(w), fused.flat(grad), fused.flat(m),
                         float(learning_rate), float(self.momentum), bool(self.nesterov))
            return
        # the reference (and the path for small weights, CuPy, no Numba)
        step = get_array_module(grad).multiply(grad, learning_rate, out=self._scratch(grad))
        if self.momentum == 0:
            w -= step
            return
        mu = self.momentum
        m = self._slots[self._index[id(weight)]]["momentum"]
        m *= mu
        m -= step
        if self.nesterov:
            w -= step
            w += get_array_module(m).multiply(m, mu, out=step)
        else:
            w += m

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
