"""TerminateOnNaN: stop training as soon as the loss is NaN or infinite."""
from __future__ import annotations

import math

from .base import Callback, _print


class TerminateOnNaN(Callback):
    """Set ``model.stop_training`` after a batch whose ``"loss"`` is NaN or infinite.

    The training loop checks ``stop_training`` after every batch, so no further
    step runs on broken weights.

    Returns:
        A callback.

    Example:
        >>> model.fit(x, y, epochs=10, callbacks=[TerminateOnNaN()])
    """

    def on_train_batch_end(self, batch, logs=None):
        """Check the batch loss; stop training if it is not finite."""
        loss = logs.get("loss") if logs else None
        if loss is not None and not math.isfinite(loss):
            _print(f"\nBatch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True
