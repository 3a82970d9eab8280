"""Adam and AdamW: adaptive moment estimation, with decoupled weight decay for AdamW (Keras 3)."""
from __future__ import annotations

import math

from ..backend import get_array_module
from ..kernels import fused
from .base import Optimizer, _real, register


@register
class Adam(Optimizer):
    """Adam (Kingma & Ba, 2014) in Keras's form, optionally AMSGrad.

    With ``t = iterations + 1``: ``alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``;
    ``m += (g - m) * (1 - beta_1)``; ``v += (g**2 - v) * (1 - beta_2)``; with AMSGrad
    ``v_hat = max(v_hat, v)`` replaces ``v`` below; ``w -= alpha * m / (sqrt(v) + epsilon)``.
    Epsilon is the paper's "epsilon hat": PyTorch's ``eps`` equals ``epsilon / sqrt(1 - beta_2**t)``
    here, so the two agree exactly for ``epsilon=0``.

    Args:
        learning_rate: float or schedule. Default 0.001.
        beta_1: decay of the first-moment average, in [0, 1]. Default 0.9.
        beta_2: decay of the second-moment average, in [0, 1]. Default 0.999.
        epsilon: added to ``sqrt(v)``. Default 1e-7.
        amsgrad: use the running maximum of ``v`` (Reddi et al., 2018). Default False.
        **kwargs: ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``name``.

    Slots:
        ``momentum`` (m), ``velocity`` (v), and ``velocity_hat`` with AMSGrad.

    Example:
        >>> opt = fl.optimizers.Adam(learning_rate=3e-4)
    """

    default_name = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        owner = type(self).__name__
        self.beta_1 = _real(owner, "beta_1", beta_1, 0.0, 1.0)
        self.beta_2 = _real(owner, "beta_2", beta_2, 0.0, 1.0)
        self.epsilon = _real(owner, "epsilon", epsilon, 0.0)
        self.amsgrad = bool(amsgrad)

    def slot_specs(self):
        specs = [("momentum", 0.0), ("velocity", 0.0)]
        return specs + [("velocity_hat", 0.0)] if self.amsgrad else specs

    def update_step(self, grad, weight, learning_rate):
        xp = get_array_module(grad)
        slots = self._slots[self._index[id(weight)]]
        m, v = slots["momentum"], slots["velocity"]
        t = self.iterations + 1
        alpha = learning_rate * math.sqrt(1.0 - self.beta_2 ** t) / (1.0 - self.beta_1 ** t)
        w = weight.data
        vhat = slots["velocity_hat"] if self.amsgrad else v
        if fused.usable(w, grad, m, v, vhat):  # one pass instead of ten, the same numbers
            fused.update(fused.adam_update_numba, fused.flat(w), fused.flat(grad), fused.flat(m),
                         fused.flat(v), fused.flat(vhat), float(alpha), float(self.beta_1),
                         float(self.beta_2), float(self.epsilon), bool(self.amsgrad))
            return
        # the reference (CuPy, no Numba, non-contiguous arrays)
        tmp = xp.subtract(grad, m, out=self._scratch(grad))
        tmp *= 1.0 - self.beta_1
        m += tmp
        xp.multiply(grad, grad, out=tmp)
        tmp -= v
        tmp *= 1.0 - self.beta_2
        v += tmp
        if self.amsgrad:
            v = xp.maximum(slots["velocity_hat"], v, out=slots["velocity_hat"])
        xp.sqrt(v, out=tmp)
        tmp += self.epsilon
        xp.divide(m, tmp, out=tmp)
        tmp *= alpha
        weight.data -= tmp

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


@register
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), Keras's defaults.

    Each step first shrinks the weights, ``w -= w * weight_decay * lr``, then takes an Adam
    step; this matches ``torch.optim.AdamW`` (with ``eps=0`` in both, see :class:`Adam`).

    Args:
        learning_rate: float or schedule. Default 0.001.
        weight_decay: the decay factor (a float, required). Default 0.004.
        beta_1, beta_2, epsilon, amsgrad: as :class:`Adam`.
        **kwargs: ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``name``.

    Example:
        >>> opt = fl.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.01)
        >>> opt.exclude_from_weight_decay(var_names=["bias"])
    """

    default_name = "adamw"

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None):
        if weight_decay is None:
            raise ValueError("AdamW: `weight_decay` must be a float, got None. Use Adam for no "
                             "weight decay.")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay,
                         clipnorm, clipvalue, global_clipnorm, name)
