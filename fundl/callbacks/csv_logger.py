"""CSVLogger: stream the epoch logs to a CSV file."""
from __future__ import annotations

import csv
import os

from .base import Callback


class CSVLogger(Callback):
    """Write one CSV row per epoch: ``epoch`` (from 0) then the logged values, keys sorted.

    The columns are fixed by the first epoch's logs; a later key that was not
    there is left out, a missing one is written as ``NA``. Each row is flushed
    at once, so the file can be watched while training runs.

    Args:
        filename: path of the CSV file (``str`` or ``os.PathLike``).
        separator: the field separator.
        append: keep the existing file and add rows to it (the header is written only
            if the file is empty or missing); otherwise the file is overwritten.

    Returns:
        A callback.

    Example:
        >>> model.fit(x, y, epochs=3, callbacks=[CSVLogger("training.csv")])
        >>> print(open("training.csv").read())
        epoch,loss,val_loss
        0,0.71,0.65
        ...
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = append
        self.keys = None
        self._file = None
        self._writer = None
        self._write_header = True

    def on_train_begin(self, logs=None):
        """Open the file (appending or overwriting)."""
        self._close()
        if self.append:
            # No header when appending to a file that already has one.
            self._write_header = not (os.path.exists(self.filename)
                                      and os.path.getsize(self.filename) > 0)
            mode = "a"
        else:
            self._write_header = True
            mode = "w"
        self._file = open(self.filename, mode, newline="", encoding="utf-8")
        self._writer = csv.writer(self._file, delimiter=self.sep, lineterminator="\n")
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        """Write the epoch's row (and the header before the first row)."""
        logs = logs or {}
        if self._file is None:  # used without on_train_begin, e.g. in a hand-written loop
            self.on_train_begin()
        if self.keys is None:
            self.keys = sorted(logs)
            if self._write_header:
                self._writer.writerow(["epoch"] + self.keys)
        self._writer.writerow([epoch] + [logs.get(key, "NA") for key in self.keys])
        self._file.flush()

    def on_train_end(self, logs=None):
        """Close the file."""
        self._close()

    def _close(self):
        if self._file is not None and not self._file.closed:
            self._file.close()
        self._file = None
        self._writer = None
