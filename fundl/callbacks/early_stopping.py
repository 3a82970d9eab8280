"""EarlyStopping: end training when a monitored quantity stops improving."""
from __future__ import annotations

from .base import Callback, _check_mode, _get_monitor_value, _is_max_mode, _print


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved for ``patience`` epochs.

    At each epoch end the monitored value is compared with the best so far; an
    improvement must beat it by more than ``min_delta``. After ``patience``
    epochs without one, ``model.stop_training`` is set and ``fit`` ends after
    that epoch.

    Args:
        monitor: the logged quantity to watch, e.g. ``"val_loss"``, ``"accuracy"``.
        min_delta: smallest change that counts as an improvement (absolute value used).
        patience: epochs without improvement after which training stops.
        verbose: 1 prints a message when stopping and when restoring weights.
        mode: ``"min"``, ``"max"``, or ``"auto"`` (max for names with "acc" or
            "auc", min otherwise).
        baseline: a value the quantity must beat; epochs that improve on the best
            but not on ``baseline`` still count towards ``patience``.
        restore_best_weights: at the end of training, set the model's weights back to
            those of the best epoch (whether or not training stopped early).
        start_from_epoch: epochs of warm-up during which nothing is monitored.

    Returns:
        A callback; after training, ``stopped_epoch`` (0 if it never stopped),
        ``best`` and ``best_epoch`` tell what happened.

    Raises:
        ValueError: ``mode`` is not one of "auto", "min", "max", or ``patience``
            or ``start_from_epoch`` is negative.

    Example:
        >>> stop = EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
        >>> model.fit(x, y, epochs=100, validation_split=0.1, callbacks=[stop])
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        if patience < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {patience}.")
        if start_from_epoch < 0:
            raise ValueError(
                f"EarlyStopping: start_from_epoch must be >= 0, got {start_from_epoch}."
            )
        self.monitor = monitor
        self.min_delta = abs(min_delta)
        self.patience = patience
        self.verbose = verbose
        self.mode = _check_mode("EarlyStopping", mode)
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self._maximize = _is_max_mode(monitor, self.mode)
        self._reset()

    def _reset(self):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = float("-inf") if self._maximize else float("inf")
        self.best_epoch = 0
        self.best_weights = None

    def _is_improvement(self, value, reference):
        if self._maximize:
            return value - self.min_delta > reference
        return value + self.min_delta < reference

    def on_train_begin(self, logs=None):
        """Reset the counters so the callback can be reused across ``fit`` calls."""
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        """Compare the value with the best; set ``model.stop_training`` when patience runs out."""
        current = _get_monitor_value("EarlyStopping", self.monitor, logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # Something to restore even if no epoch ever beats the baseline.
            self.best_weights = self._copy_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self._copy_weights()
            # Patience restarts only when the value beats both the best and the baseline.
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        """Report the stop and restore the best weights if asked to."""
        if self.stopped_epoch > 0 and self.verbose > 0:
            _print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _print("Restoring model weights from the end of the best epoch: "
                       f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def _copy_weights(self):
        # The optimizer may update weights in place, so keep copies, not references.
        return [w.copy() for w in self.model.get_weights()]
