"""``PyDataset``: Keras 3's base class for data that Python code produces batch by batch."""
from __future__ import annotations

__all__ = ["PyDataset", "Sequence"]


class PyDataset:
    """Base class for a dataset of batches: subclass it, implement ``__len__`` and ``__getitem__``.

    ``model.fit(dataset)`` asks for ``len(dataset)`` batches per epoch, each as
    ``dataset[index]`` -> ``(x, y)`` or ``(x, y, sample_weight)`` (or ``x`` alone when the
    model's ``train_step`` needs no targets), and calls :meth:`on_epoch_end` after each epoch
    (reshuffle there). Keras's arguments for its worker pool are accepted and kept; fundl reads
    the batches in the training thread (``workers`` > 1 does not start processes).

    Args:
        workers: Keras's number of workers (kept; see above). Default 1.
        use_multiprocessing: Keras's switch for processes (kept). Default False.
        max_queue_size: Keras's prefetch queue length (kept). Default 10.

    Example:
        >>> class Batches(fl.utils.PyDataset):
        ...     def __init__(self, x, y, batch_size=32, **kwargs):
        ...         super().__init__(**kwargs)
        ...         self.x, self.y, self.batch_size = x, y, batch_size
        ...     def __len__(self):
        ...         return -(-len(self.x) // self.batch_size)
        ...     def __getitem__(self, index):
        ...         s = slice(index * self.batch_size, (index + 1) * self.batch_size)
        ...         return self.x[s], self.y[s]
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"PyDataset: workers must be an int >= 1, got {workers!r}.")
        if isinstance(max_queue_size, bool) or not isinstance(max_queue_size, int) \
                or max_queue_size < 1:
            raise ValueError(f"PyDataset: max_queue_size must be an int >= 1, got "
                             f"{max_queue_size!r}.")
        self._workers = workers
        self._use_multiprocessing = bool(use_multiprocessing)
        self._max_queue_size = max_queue_size

    # A subclass that forgets super().__init__() still works, with Keras's defaults.
    @property
    def workers(self) -> int:
        return getattr(self, "_workers", 1)

    @workers.setter
    def workers(self, value):
        self._workers = value

    @property
    def use_multiprocessing(self) -> bool:
        return getattr(self, "_use_multiprocessing", False)

    @use_multiprocessing.setter
    def use_multiprocessing(self, value):
        self._use_multiprocessing = bool(value)

    @property
    def max_queue_size(self) -> int:
        return getattr(self, "_max_queue_size", 10)

    @max_queue_size.setter
    def max_queue_size(self, value):
        self._max_queue_size = value

    def __getitem__(self, index):
        """The batch at ``index`` (0 <= index < ``len(self)``); subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__(index) "
                                  "returning one batch.")

    def __len__(self) -> int:
        """The number of batches per epoch; subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__} must implement __len__() returning "
                                  "the number of batches.")

    @property
    def num_batches(self):
        """``len(self)``, or None when the subclass does not define ``__len__`` (Keras 3)."""
        try:
            return len(self)
        except NotImplementedError:
            return None

    def on_epoch_begin(self) -> None:
        """Called before each epoch; override it if needed."""

    def on_epoch_end(self) -> None:
        """Called after each epoch (shuffle the data here); override it if needed."""

    def __iter__(self):
        """The batches of one epoch, in order."""
        for i in range(len(self)):
            yield self[i]


Sequence = PyDataset  # Keras 2's name; Keras 3 keeps it as an alias
