"""TensorBoard: training curves, weight histograms and weight images for ``tensorboard --logdir``.

The event files are written by tensorboardX (the ``fundl[tensorboard]`` extra; it needs no
TensorFlow), in TensorBoard's own format, laid out as Keras lays them out: ``log_dir/train``
and ``log_dir/validation`` hold the same tags (``epoch_loss``, ``epoch_accuracy``, ...), so
TensorBoard draws the training and validation curves of a metric in one chart.

Example:
    >>> from fundl.callbacks import TensorBoard
    >>> model.fit(x, y, epochs=10, validation_split=0.1,
    ...           callbacks=[TensorBoard("logs/run1", histogram_freq=1, write_images=True)])
    $ tensorboard --logdir logs
"""
from __future__ import annotations

import os
import time

import numpy as np

from .base import Callback

_MISSING = ("TensorBoard needs tensorboardX to write TensorBoard's event files: "
            "pip install 'fundl[tensorboard]' (or pip install tensorboardX).")


def _summary_writer_class():
    try:
        from tensorboardX import SummaryWriter
    except ImportError as e:
        raise ImportError(_MISSING) from e
    return SummaryWriter


def _scaled(a):
    a = np.asarray(a, dtype=np.float64)
    lo, hi = a.min(), a.max()
    return np.full(a.shape, 0.5) if hi - lo < 1e-12 else (a - lo) / (hi - lo)


def kernel_image(kernel):
    """A kernel as one image in [0, 1]: ``(H, W)`` grey or ``(H, W, 3)`` colour, or None.

    A Dense kernel ``(in, units)`` is drawn as it is (a row per input). A Conv2D kernel
    ``(kh, kw, in, filters)`` becomes a near-square mosaic of its filters, one pixel apart:
    in colour when it reads 3 channels (an RGB first layer), else the mean over its inputs;
    each filter scaled to its own range. A Conv1D kernel ``(k, in, filters)`` becomes a
    mosaic of ``in × k`` images. Other shapes give None.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim == 2:
        return _scaled(kernel)
    if kernel.ndim == 4:
        tiles = [kernel[:, :, :, f] if kernel.shape[2] == 3 else kernel[:, :, :, f].mean(axis=2)
                 for f in range(kernel.shape[3])]
    elif kernel.ndim == 3:
        tiles = [kernel[:, :, f].T for f in range(kernel.shape[2])]
    else:
        return None
    tiles = [_scaled(t) for t in tiles]
    n = len(tiles)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    h, w = tiles[0].shape[:2]
    mosaic = np.zeros((rows * (h + 1) - 1, cols * (w + 1) - 1) + tiles[0].shape[2:])
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        mosaic[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = tile
    return mosaic


class TensorBoard(Callback):
    """Write scalars, weight histograms and weight images for TensorBoard (Keras's callback).

    What is written, under ``log_dir/train`` and ``log_dir/validation``:

    - ``epoch_<name>`` at each epoch end (step = the epoch, from 0): the loss and every
      metric; ``val_<name>`` goes to ``validation`` as ``epoch_<name>``;
      ``epoch_learning_rate`` (the optimizer's current rate) to ``train``; with
      ``write_steps_per_second``, ``epoch_steps_per_second`` too.
    - ``batch_<name>`` every ``update_freq`` batches (step = batches seen over all epochs),
      when ``update_freq`` is ``"batch"`` or an integer.
    - ``<layer>/<weight>/histogram`` every ``histogram_freq`` epochs.
    - ``<layer>/kernel/image`` with ``write_images``: each kernel drawn as an image (see
      :func:`kernel_image`; the first layer's filters are the interesting ones), with the
      histograms, or every epoch when ``histogram_freq`` is 0.
    - ``model_summary`` (text) once, with ``write_graph``: the ``model.summary()`` table.
      fundl models have no TensorFlow graph to write; ``fundl.viz.plot_model`` draws one.

    Args:
        log_dir: the folder of the run (created if needed); keep one folder per run and point
            ``tensorboard --logdir`` at their parent.
        histogram_freq: epochs between weight histograms; 0 writes none.
        write_graph: write the model summary as text.
        write_images: write the kernels as images.
        write_steps_per_second: write the training speed, batches per second, each epoch.
        update_freq: ``"epoch"``, ``"batch"`` (every batch) or an integer (every that many
            batches) for the ``batch_`` scalars.

    Raises:
        ImportError: tensorboardX is not installed (the message names the extra).
        ValueError: ``histogram_freq`` is negative or ``update_freq`` is not one of the above.

    Example:
        >>> tb = TensorBoard("logs/mnist", histogram_freq=1, write_images=True)
        >>> model.fit(x, y, epochs=5, validation_data=(xv, yv), callbacks=[tb])
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch"):
        super().__init__()
        self._writer_class = _summary_writer_class()
        if isinstance(histogram_freq, bool) or not isinstance(histogram_freq, (int, np.integer)) \
                or histogram_freq < 0:
            raise ValueError(f"TensorBoard: histogram_freq must be an integer >= 0 (epochs "
                             f"between histograms, 0 for none), got {histogram_freq!r}.")
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and (isinstance(update_freq, bool)
                                       or not isinstance(update_freq, (int, np.integer))
                                       or update_freq < 1):
            raise ValueError(f"TensorBoard: update_freq must be 'epoch', 'batch' or a positive "
                             f"number of batches, got {update_freq!r}.")
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = int(histogram_freq)
        self.write_graph = bool(write_graph)
        self.write_images = bool(write_images)
        self.write_steps_per_second = bool(write_steps_per_second)
        self.update_freq = update_freq
        self._writers = {}
        self._batches_seen = 0  # over every epoch and every fit: the batch scalars' step
        self._summary_written = False
        self._epoch_start = None  # (time, batches seen) at the epoch's start

    # -- writers ----------------------------------------------------------------------------
    def _writer(self, kind):
        writer = self._writers.get(kind)
        if writer is None:
            writer = self._writer_class(logdir=os.path.join(self.log_dir, kind), flush_secs=10)
            self._writers[kind] = writer
        return writer

    def _close(self):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    # -- hooks ------------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        """Open the train writer and write the model summary (``write_graph``)."""
        writer = self._writer("train")
        if self.write_graph and not self._summary_written and self.model is not None \
                and hasattr(self.model, "summary"):
            lines = []
            try:
                self.model.summary(print_fn=lines.append)
            except (ValueError, TypeError, AttributeError):
                lines = []  # an unbuilt or unusual model: no summary rather than no training
            if lines:
                # Indented lines are preformatted text in TensorBoard's Markdown.
                writer.add_text("model_summary", "\n".join("    " + line for line in lines), 0)
                self._summary_written = True

    def on_epoch_begin(self, epoch, logs=None):
        """Note the time, for ``write_steps_per_second``."""
        self._epoch_start = (time.perf_counter(), self._batches_seen)

    def on_train_batch_end(self, batch, logs=None):
        """Write ``batch_`` scalars every ``update_freq`` batches."""
        self._batches_seen += 1
        if self.update_freq == "epoch" or not logs:
            return
        if self._batches_seen % self.update_freq == 0:
            writer = self._writer("train")
            for name, value in logs.items():
                if _is_number(value):
                    writer.add_scalar("batch_" + name, float(value), self._batches_seen)

    def on_epoch_end(self, epoch, logs=None):
        """Write the epoch's scalars, and histograms/images when due; flush."""
        logs = logs or {}
        train, validation = self._writer("train"), None
        for name, value in logs.items():
            if not _is_number(value):
                continue
            if name.startswith("val_"):
                validation = validation or self._writer("validation")
                validation.add_scalar("epoch_" + name[4:], float(value), epoch)
            else:
                train.add_scalar("epoch_" + name, float(value), epoch)
        if "learning_rate" not in logs and "lr" not in logs:
            lr = _learning_rate(self.model)
            if lr is not None:
                train.add_scalar("epoch_learning_rate", lr, epoch)
        if self.write_steps_per_second and self._epoch_start is not None:
            seconds = time.perf_counter() - self._epoch_start[0]
            steps = self._batches_seen - self._epoch_start[1]
            if seconds > 0 and steps:
                train.add_scalar("epoch_steps_per_second", steps / seconds, epoch)
        histograms = self.histogram_freq and epoch % self.histogram_freq == 0
        if histograms or (self.write_images and (not self.histogram_freq or histograms)):
            self._log_weights(train, epoch, histograms=bool(histograms))
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        """Close the writers (the files are complete; a later ``fit`` opens new ones)."""
        self._close()

    # -- weights ----------------------------------------------------------------------------
    def _log_weights(self, writer, epoch, histograms):
        for layer_name, weight_name, value in _named_weights(self.model):
            tag = f"{layer_name}/{weight_name}"
            if histograms and value.size:
                writer.add_histogram(tag + "/histogram", value, epoch)
            if self.write_images and weight_name == "kernel":
                image = kernel_image(value)
                if image is not None:
                    writer.add_image(tag + "/image", image, epoch,
                                     dataformats="HWC" if image.ndim == 3 else "HW")


def _is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value,
                                                                                        bool)


def _learning_rate(model):
    lr = getattr(getattr(model, "optimizer", None), "learning_rate", None)
    try:
        return float(lr)
    except (TypeError, ValueError):
        return None


def _named_weights(model):
    """(layer path, weight name, array) for every weight, as ``("conv2d", "kernel", ...)``;
    nested layers give paths such as ``"block/dense"``; a shared weight comes once."""
    if model is None or not hasattr(model, "_weight_entries"):
        return []
    out = []
    for key, tensor, _ in model._weight_entries():
        parts = str(key).split(".")
        layer = "/".join(parts[:-1]) or getattr(model, "name", "model")
        out.append((layer, parts[-1], np.asarray(tensor.numpy())))
    return out
