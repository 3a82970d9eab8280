"""ModelCheckpoint: save the model (or its weights) during training."""
from __future__ import annotations

import os
import warnings

from .base import Callback, _check_mode, _is_max_mode, _print


class ModelCheckpoint(Callback):
    """Save the model or its weights every epoch (or every ``save_freq`` batches).

    ``filepath`` may hold ``str.format`` fields filled with ``epoch`` (counted from
    1), ``batch`` (from 1, batch-level saving only) and any key of ``logs``, e.g.
    ``"ckpt/{epoch:02d}-{val_loss:.2f}.fundl"``.

    Args:
        filepath: path (``str`` or ``os.PathLike``) of the file to write; missing
            directories are created.
        monitor: the logged quantity deciding what "best" means with ``save_best_only``.
        verbose: 1 prints a message on each save (or skipped save).
        save_best_only: save only when ``monitor`` improves on the best so far (a
            fixed ``filepath`` then always holds the best model).
        save_weights_only: call ``model.save_weights(path)`` instead of ``model.save(path)``.
        mode: ``"min"``, ``"max"``, or ``"auto"`` (max for names with "acc" or "auc").
        save_freq: ``"epoch"``, or a number of batches between saves.
        initial_value_threshold: with ``save_best_only``, the value the first save must beat.

    Returns:
        A callback; ``best`` holds the best monitored value so far.

    Raises:
        ValueError: ``save_freq`` is neither "epoch" nor a positive int, or ``mode`` is unknown.
        KeyError: (during training) ``filepath`` names a field that is not in the logs.

    Example:
        >>> ckpt = ModelCheckpoint("ckpt/{epoch:02d}-{val_loss:.2f}.fundl",
        ...                        save_best_only=True)
        >>> model.fit(x, y, epochs=10, validation_split=0.1, callbacks=[ckpt])
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__()
        if save_freq != "epoch" and (
            not isinstance(save_freq, int) or isinstance(save_freq, bool) or save_freq < 1
        ):
            raise ValueError(
                f"ModelCheckpoint: save_freq must be 'epoch' or a positive number of batches, "
                f"got {save_freq!r}."
            )
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.mode = _check_mode("ModelCheckpoint", mode)
        self.save_freq = save_freq
        self.initial_value_threshold = initial_value_threshold
        self._maximize = _is_max_mode(monitor, self.mode)
        if initial_value_threshold is not None:
            self.best = initial_value_threshold
        else:
            self.best = float("-inf") if self._maximize else float("inf")
        self._current_epoch = 0
        self._batches_since_save = 0

    def on_epoch_begin(self, epoch, logs=None):
        """Remember the epoch for batch-level saves."""
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        """Save every ``save_freq`` batches when ``save_freq`` is a number."""
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(self._current_epoch, batch, logs or {})

    def on_epoch_end(self, epoch, logs=None):
        """Save at the end of the epoch when ``save_freq="epoch"``."""
        if self.save_freq == "epoch":
            self._save(epoch, None, logs or {})

    def _file_path(self, epoch, batch, logs):
        fields = dict(logs)
        fields["epoch"] = epoch + 1
        if batch is not None:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**fields)
        except KeyError as e:
            raise KeyError(
                f"ModelCheckpoint: filepath {self.filepath!r} uses the field {e.args[0]!r}, "
                f"which is not in the logs. Available fields: {', '.join(fields)}."
            ) from None

    def _should_save(self, epoch, logs, path):
        if not self.save_best_only:
            if self.verbose > 0:
                _print(f"\nEpoch {epoch + 1}: saving model to {path}")
            return True
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(
                f"ModelCheckpoint: save_best_only needs {self.monitor!r} in the logs, which "
                f"has only: {', '.join(logs) or '(none)'}. Saving anyway.",
                stacklevel=3,
            )
            return True
        if self._is_improvement(current):
            if self.verbose > 0:
                _print(
                    f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                    f"{current:.5f}, saving model to {path}"
                )
            self.best = current
            return True
        if self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
        return False

    def _is_improvement(self, value):
        return value > self.best if self._maximize else value < self.best

    def _save(self, epoch, batch, logs):
        path = self._file_path(epoch, batch, logs)
        if not self._should_save(epoch, logs, path):
            return
        if os.path.isdir(path):
            raise IsADirectoryError(
                f"ModelCheckpoint: the checkpoint path {path!r} is an existing directory; "
                "give a file path such as 'ckpt/model-{epoch:02d}.fundl'."
            )
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
