"""Sliding windows over a time series as batches (Keras's ``timeseries_dataset_from_array``)."""
from __future__ import annotations

import numbers

import numpy

from .py_dataset import PyDataset

__all__ = ["timeseries_dataset_from_array"]


class TimeseriesDataset(PyDataset):
    """Batches of windows cut from ``data`` (see :func:`timeseries_dataset_from_array`).

    ``len(ds)`` is the number of batches; ``ds[i]`` is ``x`` of shape
    ``(batch, sequence_length, ...)`` or ``(x, y)`` when targets were given.
    """

    def __init__(self, data, targets, starts, sequence_length, sampling_rate, batch_size):
        super().__init__()
        self.data, self.targets, self.starts = data, targets, starts
        self.offsets = numpy.arange(sequence_length) * sampling_rate
        self.batch_size = batch_size

    def __len__(self) -> int:
        if self.batch_size is None:
            return len(self.starts)
        return -(-len(self.starts) // self.batch_size)

    def __getitem__(self, index):
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"TimeseriesDataset: batch {index} out of range for {n} batches.")
        index %= n
        if self.batch_size is None:
            starts = self.starts[index:index + 1]
        else:
            starts = self.starts[index * self.batch_size:(index + 1) * self.batch_size]
        x = self.data[starts[:, None] + self.offsets]
        if self.batch_size is None:
            x = x[0]
        if self.targets is None:
            return x
        y = self.targets[starts]
        return x, (y[0] if self.batch_size is None else y)


def _positive_int(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"timeseries_dataset_from_array: {name} must be a positive int, got "
                         f"{value!r}.")
    return int(value)


def timeseries_dataset_from_array(data, targets, sequence_length, sequence_stride=1,
                                  sampling_rate=1, batch_size=128, shuffle=False, seed=None,
                                  start_index=None, end_index=None):
    """Windows of a time series, batched, with Keras's arguments and indexing.

    Window ``i`` starts at time ``start_index + p_i`` (``p_i = i * sequence_stride``) and holds
    ``data[t]`` for ``t = start + k * sampling_rate``, ``k < sequence_length``; its target is
    ``targets[start]``. (To predict the value after a window, pass targets shifted by the
    window's length, as Keras's guides do.)

    Args:
        data: array of shape ``(time, ...)``.
        targets: array with one target per time step (``targets[t]`` goes with the window
            starting at ``t``), or None for windows only.
        sequence_length: steps per window.
        sequence_stride: steps between window starts. Default 1.
        sampling_rate: steps between the elements of a window. Default 1.
        batch_size: windows per batch (None: single windows). Default 128.
        shuffle: shuffle the window order (once, with ``seed``). Default False.
        seed: the shuffling seed (an int); None draws one.
        start_index, end_index: only use ``data[start_index:end_index]``.

    Returns:
        A :class:`~fundl.utils.PyDataset` (``len`` = batches; items ``(x, y)`` or ``x``), which
        ``model.fit`` / ``evaluate`` / ``predict`` take like any PyDataset, and which can be
        iterated.

    Raises:
        ValueError: bad sizes or indices (the message names the argument).

    Example:
        >>> ds = timeseries_dataset_from_array(np.arange(10), None, sequence_length=5,
        ...                                    sequence_stride=2, batch_size=None)
        >>> ds[1]
        array([2, 3, 4, 5, 6])
    """
    who = "timeseries_dataset_from_array"
    data = numpy.asarray(data)
    if data.ndim < 1:
        raise ValueError(f"{who}: data must have a time axis, got a 0-d value.")
    sequence_length = _positive_int("sequence_length", sequence_length)
    sequence_stride = _positive_int("sequence_stride", sequence_stride)
    sampling_rate = _positive_int("sampling_rate", sampling_rate)
    batch_size = _positive_int("batch_size", batch_size, allow_none=True)
    start = 0 if start_index is None else int(start_index)
    end = len(data) if end_index is None else int(end_index)
    if not 0 <= start < len(data):
        raise ValueError(f"{who}: start_index must be in [0, {len(data)}), got {start_index}.")
    if not start < end <= len(data):
        raise ValueError(f"{who}: end_index must be in ({start}, {len(data)}], got {end_index}.")
    count = end - start - (sequence_length - 1) * sampling_rate
    if targets is not None:
        targets = numpy.asarray(targets)
        if targets.ndim < 1:
            raise ValueError(f"{who}: targets must have a time axis, got a 0-d value.")
        # as Keras: no more windows than targets (targets may be shorter than data)
        count = min(count, len(targets) - start)
    starts = numpy.arange(0, max(count, 0), sequence_stride) + start
    if shuffle:
        if seed is None:
            seed = numpy.random.randint(1_000_000)
        numpy.random.RandomState(seed).shuffle(starts)
    return TimeseriesDataset(data, targets, starts, sequence_length, sampling_rate, batch_size)
