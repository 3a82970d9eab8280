"""History: the per-epoch record that ``fit`` returns."""
from __future__ import annotations

from .base import Callback


class History(Callback):
    """Record the epoch logs of ``fit``; ``fit`` adds one automatically and returns it.

    Attributes:
        history: dict mapping each logged name (``"loss"``, ``"accuracy"``,
            ``"val_loss"``, ...) to the list of its per-epoch values.
        epoch: list of the epoch indices (from 0) recorded in this ``fit``.

    Example:
        >>> history = model.fit(x, y, epochs=3, validation_split=0.1)
        >>> history.history["loss"]
        [0.71, 0.42, 0.33]
        >>> history.epoch
        [0, 1, 2]
    """

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        """Start a new epoch list (``history`` keeps growing when one object sees several fits)."""
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        """Append this epoch's index and each logged value."""
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        if self.model is not None:
            self.model.history = self
