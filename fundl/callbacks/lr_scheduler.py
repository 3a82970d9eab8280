"""Callbacks that change the optimizer's learning rate: LearningRateScheduler, ReduceLROnPlateau."""
from __future__ import annotations

import inspect
import numbers

from .base import Callback, _check_mode, _get_monitor_value, _is_max_mode, _print


def _get_lr(owner, model):
    """The optimizer's learning rate as a float, or a TypeError saying why it cannot be changed."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not hasattr(optimizer, "learning_rate"):
        raise TypeError(
            f"{owner}: the model has no optimizer with a learning_rate attribute; "
            "compile the model before fit."
        )
    lr = optimizer.learning_rate
    try:
        return float(lr)
    except (TypeError, ValueError):
        raise TypeError(
            f"{owner}: model.optimizer.learning_rate must be a number to be changed by a "
            f"callback, got {type(lr).__name__}. Give the optimizer a float learning_rate "
            "(a schedule object already changes it on its own)."
        ) from None


def _takes_two_args(fn):
    """Whether ``fn`` can be called as fn(epoch, lr); Keras also accepts fn(epoch)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: assume the modern form
        return True
    positional = 0
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            return True
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= 2


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch from ``schedule(epoch, lr)``.

    Args:
        schedule: a function of the epoch index (from 0) and the current learning
            rate (float) returning the new rate (float). A one-argument
            ``schedule(epoch)`` is accepted too.
        verbose: 1 prints the rate set at each epoch.

    Returns:
        A callback; it also logs ``"learning_rate"`` at each epoch end (so it shows in
        ``History``).

    Raises:
        TypeError: ``schedule`` is not callable; (during training) it returns something
            that is not a number, or the optimizer's rate is not a number.

    Example:
        >>> def schedule(epoch, lr):
        ...     return lr if epoch < 10 else lr * 0.9
        >>> model.fit(x, y, epochs=20, callbacks=[LearningRateScheduler(schedule)])
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(
                f"LearningRateScheduler: schedule must be a function (epoch, lr) -> lr, "
                f"got {type(schedule).__name__}."
            )
        self.schedule = schedule
        self.verbose = verbose
        self._two_args = _takes_two_args(schedule)

    def on_epoch_begin(self, epoch, logs=None):
        """Ask the schedule for this epoch's rate and give it to the optimizer."""
        lr = _get_lr("LearningRateScheduler", self.model)
        new_lr = self.schedule(epoch, lr) if self._two_args else self.schedule(epoch)
        if isinstance(new_lr, bool) or not isinstance(new_lr, numbers.Real):
            raise TypeError(
                f"LearningRateScheduler: schedule({epoch}, {lr}) must return a float learning "
                f"rate, got {type(new_lr).__name__} {new_lr!r}."
            )
        self.model.optimizer.learning_rate = float(new_lr)
        if self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to "
                   f"{float(new_lr)}.")

    def on_epoch_end(self, epoch, logs=None):
        """Log the rate used in this epoch as ``"learning_rate"``."""
        if logs is not None:
            logs["learning_rate"] = _get_lr("LearningRateScheduler", self.model)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving.

    After ``patience`` epochs without an improvement larger than ``min_delta``,
    ``lr = max(lr * factor, min_lr)``; then ``cooldown`` epochs pass before
    waiting starts again.

    Args:
        monitor: the logged quantity to watch.
        factor: the multiplier, in [0, 1).
        patience: epochs without improvement before a reduction.
        verbose: 1 prints a message at each reduction.
        mode: ``"min"``, ``"max"``, or ``"auto"`` (max for names with "acc" or "auc").
        min_delta: smallest change that counts as an improvement.
        cooldown: epochs after a reduction during which no wait is counted.
        min_lr: the learning rate is never reduced below this.

    Returns:
        A callback; it also logs ``"learning_rate"`` at each epoch end.

    Raises:
        ValueError: ``factor`` is not in [0, 1), ``mode`` is unknown, or
            ``patience``/``cooldown``/``min_lr`` is negative.

    Example:
        >>> reduce = ReduceLROnPlateau(monitor="val_loss", factor=0.2, patience=5, min_lr=1e-4)
        >>> model.fit(x, y, epochs=50, validation_split=0.1, callbacks=[reduce])
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__()
        if not 0.0 <= factor < 1.0:
            raise ValueError(
                f"ReduceLROnPlateau: factor must be in [0, 1) (new_lr = lr * factor), "
                f"got {factor}."
            )
        for name, value in (("patience", patience), ("cooldown", cooldown), ("min_lr", min_lr)):
            if value < 0:
                raise ValueError(f"ReduceLROnPlateau: {name} must be >= 0, got {value}.")
        self.monitor = monitor
        self.factor = factor
        self.patience = patience
        self.verbose = verbose
        self.mode = _check_mode("ReduceLROnPlateau", mode)
        self.min_delta = min_delta
        self.cooldown = cooldown
        self.min_lr = min_lr
        self._maximize = _is_max_mode(monitor, self.mode)
        self._reset()

    def _reset(self):
        self.wait = 0
        self.cooldown_counter = 0
        self.best = float("-inf") if self._maximize else float("inf")

    def _is_improvement(self, value):
        if self._maximize:
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def in_cooldown(self):
        """Whether a recent reduction still holds the waiting off."""
        return self.cooldown_counter > 0

    def on_train_begin(self, logs=None):
        """Reset the counters so the callback can be reused across ``fit`` calls."""
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        """Log the rate, then reduce it if ``monitor`` has stalled for ``patience`` epochs."""
        logs = {} if logs is None else logs
        logs["learning_rate"] = _get_lr("ReduceLROnPlateau", self.model)
        current = _get_monitor_value("ReduceLROnPlateau", self.monitor, logs)
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current):
            self.best = current
            self.wait = 0
            return
        if self.in_cooldown():
            return
        self.wait += 1
        if self.wait < self.patience:
            return
        old_lr = logs["learning_rate"]
        new_lr = max(old_lr * self.factor, self.min_lr)
        if new_lr < old_lr:
            self.model.optimizer.learning_rate = new_lr
            if self.verbose > 0:
                _print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to "
                       f"{new_lr}.")
            self.cooldown_counter = self.cooldown
            self.wait = 0
