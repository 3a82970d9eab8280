"""Where ``fit``/``evaluate``/``predict`` get their batches: arrays, generators, PyDatasets.

Two adapters share one small interface, ``epoch()`` (an iterator over one epoch's batches),
``steps`` (batches per epoch, None while unknown) and ``on_epoch_end()``:

- :class:`ArrayBatches` cuts NumPy arrays into batches (shuffled every epoch when asked) and
  yields ``(xs, ys, sample_weight, count)``, lists of arrays, ready for the built-in step;
- :class:`DatasetBatches` draws whole batches from a Python generator or iterator, any
  re-iterable object, or a ``PyDataset`` (Keras's contract: ``__len__`` batches,
  ``__getitem__(i)`` the i-th batch, an optional ``on_epoch_end()``), and yields them as given:
  ``(x, y)``, ``(x, y, sample_weight)`` or ``x``.

Example:
    >>> def batches():
    ...     while True:
    ...         yield x[:32], y[:32]
    >>> model.fit(batches(), steps_per_epoch=10, epochs=2)
"""
from __future__ import annotations

import collections.abc
import math
import warnings

import numpy

from ..kernels import fused
from ..tensor import Tensor

__all__ = ["ArrayBatches", "DatasetBatches", "is_dataset", "unpack_x_y_sample_weight"]


def is_dataset(x) -> bool:
    """Whether ``x`` yields whole batches (a generator, iterator, iterable or PyDataset).

    Arrays, Tensors, lists, tuples, dicts and strings are data, not datasets.
    """
    if x is None or isinstance(x, (numpy.ndarray, Tensor, list, tuple, dict, str, bytes)):
        return False
    if hasattr(x, "shape") and hasattr(x, "dtype"):  # a CuPy or other array
        return False
    if isinstance(x, collections.abc.Iterator):
        return True
    if hasattr(x, "__getitem__") and hasattr(x, "__len__"):
        return True  # a PyDataset (or keras.utils.Sequence-like object)
    return isinstance(x, collections.abc.Iterable)


def unpack_x_y_sample_weight(data):
    """``(x, y, sample_weight)`` from a batch: ``(x,)``, ``(x, y)``, ``(x, y, sw)`` or ``x``.

    As Keras's ``keras.utils.unpack_x_y_sample_weight``: a list counts as a tuple; anything
    else is ``x`` alone.

    Example:
        >>> x, y, sw = unpack_x_y_sample_weight((x_batch, y_batch))      # sw is None
    """
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) == 1:
        return data[0], None, None
    if len(data) == 2:
        return data[0], data[1], None
    if len(data) == 3:
        return data
    raise ValueError(f"A batch must be x, (x,), (x, y) or (x, y, sample_weight); got a tuple "
                     f"of {len(data)} elements.")


def _gather(a, index):
    """``a[index]``: a large float batch on every thread
    (:func:`fundl.kernels.fused.gather_rows`), anything else through NumPy's indexing."""
    out = fused.gather_rows(a, index)
    return a[index] if out is None else out


class ArrayBatches:
    """Batches of in-memory arrays, reshuffled every epoch.

    Args:
        xs, ys: lists of arrays with the same first axis (``ys`` may be None).
        sample_weight: None or an array ``(n,)``.
        batch_size: samples per batch.
        shuffle: reshuffle every epoch (``"batch"`` shuffles the order of whole batches).
        steps: batches per epoch (None: one pass, the last batch short; more than one pass
            wraps around).
        rng: the NumPy Generator used for shuffling.
        keys: ``(x_keys, y_keys)``: the dict keys ``xs``/``ys`` came from (None for arrays or
            lists), so that :meth:`as_tuples` gives dicts back.
    """

    def __init__(self, xs, ys, sample_weight, batch_size, shuffle=False, steps=None, rng=None,
                 keys=(None, None)):
        self.xs, self.ys, self.sample_weight = xs, ys, sample_weight
        self.keys = keys
        self.n = len(xs[0])
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.steps = steps or math.ceil(self.n / batch_size)
        self.rng = rng

    def epoch(self):
        """Yield ``(xs, ys, sample_weight, count)`` for each batch of one epoch."""
        n, size, xs, ys, sw = self.n, self.batch_size, self.xs, self.ys, self.sample_weight
        order = None
        if self.shuffle == "batch":
            starts = self.rng.permutation(math.ceil(n / size)) * size
        else:
            starts = None
            if self.shuffle:
                order = self.rng.permutation(n)
        for step in range(self.steps):
            start = (step * size) % n if starts is None else int(starts[step % len(starts)])
            stop = min(start + size, n)
            if order is None:
                index = slice(start, stop)
                yield ([a[index] for a in xs], None if ys is None else [a[index] for a in ys],
                       None if sw is None else sw[index], stop - start)
                continue
            index = order[start:stop]
            index.sort()  # sorted gathers read memory in order: measurably faster
            yield ([_gather(a, index) for a in xs],
                   None if ys is None else [_gather(a, index) for a in ys],
                   None if sw is None else sw[index], stop - start)

    def on_epoch_end(self):
        """Nothing to do for arrays."""

    def as_tuples(self):
        """One epoch as Keras-style batches ``x``, ``(x, y)`` or ``(x, y, sw)`` (custom steps)."""
        x_keys, y_keys = self.keys
        for bx, by, bsw, _ in self.epoch():
            x = dict(zip(x_keys, bx)) if x_keys else bx[0] if len(bx) == 1 else bx
            if by is None:
                yield x if bsw is None else (x, None, bsw)
                continue
            y = dict(zip(y_keys, by)) if y_keys else by[0] if len(by) == 1 else by
            yield (x, y) if bsw is None else (x, y, bsw)


class DatasetBatches:
    """Whole batches from a generator, an iterator, an iterable or a PyDataset.

    Args:
        source: the dataset.
        steps: batches per epoch; None means "until the source runs out" (one pass of an
            iterable, ``len()`` of a PyDataset, the whole of a generator).
        who: the calling method and argument, for messages (``"fit: x"``).

    A generator or iterator is one stream for the whole of ``fit``: with ``steps`` each epoch
    takes the next ``steps`` batches; without, the first epoch drains it. An epoch that gets no
    batch (or fewer than ``steps``) sets :attr:`exhausted`, and ``fit`` stops with a warning
    (:meth:`out_of_data`), as Keras does. An iterable is iterated afresh every epoch; a
    PyDataset is indexed ``0 .. steps-1`` (wrapping around its length); its
    ``on_epoch_begin()`` and ``on_epoch_end()`` (when it has them) run around each epoch.
    """

    def __init__(self, source, steps=None, who="fit: x"):
        self.source = source
        self.who = who
        self.exhausted = False
        self.last_count = 0
        self.indexed = not isinstance(source, collections.abc.Iterator) and hasattr(
            source, "__getitem__") and hasattr(source, "__len__")
        self.stream = isinstance(source, collections.abc.Iterator)
        if self.indexed:
            try:
                length = len(source)
            except (TypeError, NotImplementedError) as e:
                if steps is None:
                    raise TypeError(f"{who}: len() of the {type(source).__name__} failed ({e}); "
                                    "a PyDataset's __len__ must return its number of batches "
                                    "(or pass steps_per_epoch / steps).") from e
                length = steps
            if isinstance(length, bool) or not isinstance(length, (int, numpy.integer)) or \
                    length < 0:
                raise TypeError(f"{who}: len() of the {type(source).__name__} must be the number "
                                f"of batches, a non-negative int, got {length!r}.")
            if length == 0 and steps is None:
                raise ValueError(f"{who}: the {type(source).__name__} is empty (len() is 0).")
            self.length = int(length)
            self.steps = steps or self.length
        else:
            self.steps = steps
        self._iterator = source if self.stream else None

    def epoch(self):
        """Yield the batches of one epoch, as the source gives them."""
        count = 0
        hook = getattr(self.source, "on_epoch_begin", None)
        if callable(hook):
            hook()
        if self.indexed:
            for i in range(self.steps):
                yield self.source[i % self.length]
            return
        iterator = self._iterator if self.stream else iter(self.source)
        while self.steps is None or count < self.steps:
            try:
                batch = next(iterator)
            except StopIteration:
                break
            count += 1
            yield batch
        self.last_count = count
        if count == 0 or (self.steps is not None and count < self.steps):
            self.exhausted = True  # the caller says what it does about it (see out_of_data)
        elif self.stream and self.steps is None:
            self.steps = count  # a drained stream: what the next epoch would need

    def out_of_data(self, consequence):
        """Warn that the source ran out during the last epoch, and what happens now."""
        warnings.warn(f"{self.who}: the input ran out of data after {self.last_count} batch(es) "
                      f"of this epoch; {consequence}. Make sure the dataset or generator can give "
                      "at least steps * epochs batches (a generator is one stream for the whole "
                      "fit: loop inside it, or pass a PyDataset or a re-iterable object).",
                      stacklevel=3)

    def on_epoch_end(self):
        """Call the PyDataset's ``on_epoch_end()`` (to reshuffle it), if it has one."""
        hook = getattr(self.source, "on_epoch_end", None)
        if callable(hook):
            hook()
