"""Optimizers: update rules that turn gradients into in-place weight changes (Keras 3 API).

``SGD``, ``Adagrad``, ``Adadelta``, ``RMSprop``, ``Adam``, ``AdamW``, ``Nadam``, ``Adamax``,
``Lion`` and ``Ftrl`` take Keras's
argument names and defaults and follow Keras's update formulas, so a Keras user's numbers come
out the same. Every optimizer also takes ``weight_decay`` (decoupled), ``clipnorm``,
``clipvalue``, ``global_clipnorm`` and a learning rate that is a float or a schedule from
:mod:`fundl.optimizers.schedules`.

Example:
    >>> opt = fl.optimizers.get("adam")          # Keras defaults
    >>> opt.apply_gradients(zip(grads, weights))  # doctest: +SKIP
"""
from . import schedules
from .base import Optimizer, deserialize, get, register, serialize
from .sgd import SGD
from .adagrad import Adagrad
from .adadelta import Adadelta
from .rmsprop import RMSprop
from .adam import Adam, AdamW
from .nadam import Nadam
from .adamax import Adamax
from .lion import Lion
from .ftrl import Ftrl

__all__ = ["Optimizer", "SGD", "Adagrad", "Adadelta", "RMSprop", "Adam", "AdamW", "Nadam",
           "Adamax", "Lion", "Ftrl", "schedules", "get", "serialize", "deserialize", "register"]
