"""Callback base class and the CallbackList that training loops call.

A :class:`Callback` overrides only the ``on_*`` hooks it needs. The training loop
never talks to callbacks one by one: it builds one :class:`CallbackList` (which
adds a :class:`~fundl.callbacks.History` and, when ``verbose``, a
:class:`~fundl.callbacks.ProgbarLogger`) and calls its hooks. The list works out
once, per hook, which callbacks override it, so a per-batch hook that nobody
overrides costs one empty loop.

Example:
    >>> class PrintLoss(Callback):
    ...     def on_epoch_end(self, epoch, logs=None):
    ...         print(epoch, logs["loss"])
    >>> model.fit(x, y, epochs=2, callbacks=[PrintLoss()])
"""
from __future__ import annotations

import warnings

# Hooks a CallbackList dispatches; the legacy Keras names on_batch_begin/on_batch_end
# are aliases of the train-batch hooks.
_HOOKS = (
    "on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
    "on_train_batch_begin", "on_train_batch_end",
    "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end",
    "on_predict_begin", "on_predict_end", "on_predict_batch_begin", "on_predict_batch_end",
)
_LEGACY_ALIASES = {"on_train_batch_begin": "on_batch_begin", "on_train_batch_end": "on_batch_end"}
_MODES = ("auto", "min", "max")


class Callback:
    """Base class of callbacks: hooks called by ``fit``/``evaluate``/``predict``.

    Subclasses override any of the ``on_*`` methods; the defaults do nothing.
    ``logs`` is a dict of floats: ``"loss"`` and the metric names (after each
    batch, their running means over the epoch so far, as in Keras 3; at epoch
    end, the epoch's values, where ``"val_"``-prefixed entries join).

    Attributes:
        model: the model being trained (set by :meth:`set_model`); callbacks may set
            ``model.stop_training = True`` to end ``fit`` after the current epoch.
        params: dict with ``"epochs"``, ``"steps"`` (batches per epoch) and ``"verbose"``.

    Example:
        >>> class Stopper(Callback):
        ...     def on_epoch_end(self, epoch, logs=None):
        ...         if logs["loss"] < 0.1:
        ...             self.model.stop_training = True
    """

    model = None
    params = None

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        """Attach the model the callback acts on.

        Args:
            model: the model being trained, evaluated or run.
        """
        self.model = model

    def set_params(self, params):
        """Receive the training parameters.

        Args:
            params: dict with ``"epochs"``, ``"steps"`` and ``"verbose"``.
        """
        self.params = params

    def on_train_begin(self, logs=None):
        """Called once at the start of ``fit``."""

    def on_train_end(self, logs=None):
        """Called once at the end of ``fit`` with the last epoch's logs (validation included;
        empty when no epoch ran)."""

    def on_epoch_begin(self, epoch, logs=None):
        """Called at the start of epoch ``epoch`` (counted from 0)."""

    def on_epoch_end(self, epoch, logs=None):
        """Called at the end of epoch ``epoch`` with the epoch's logs (validation included)."""

    def on_batch_begin(self, batch, logs=None):
        """Legacy alias: called by the default :meth:`on_train_batch_begin`."""

    def on_batch_end(self, batch, logs=None):
        """Legacy alias: called by the default :meth:`on_train_batch_end`."""

    def on_train_batch_begin(self, batch, logs=None):
        """Called before training batch ``batch`` (counted from 0 in each epoch)."""
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        """Called after training batch ``batch`` with the epoch's running logs."""
        self.on_batch_end(batch, logs=logs)

    def on_test_begin(self, logs=None):
        """Called at the start of ``evaluate`` (and of each validation inside ``fit``, where
        the ``on_test_batch_*`` hooks and ``on_test_end`` follow as in ``evaluate``)."""

    def on_test_end(self, logs=None):
        """Called at the end of ``evaluate`` (and of validation inside ``fit``)."""

    def on_test_batch_begin(self, batch, logs=None):
        """Called before evaluation batch ``batch``."""

    def on_test_batch_end(self, batch, logs=None):
        """Called after evaluation batch ``batch``."""

    def on_predict_begin(self, logs=None):
        """Called at the start of ``predict``."""

    def on_predict_end(self, logs=None):
        """Called at the end of ``predict``."""

    def on_predict_batch_begin(self, batch, logs=None):
        """Called before prediction batch ``batch``."""

    def on_predict_batch_end(self, batch, logs=None):
        """Called after prediction batch ``batch``; ``logs["outputs"]`` holds its outputs."""


def _overrides(callback, hook):
    """True when ``callback`` does something in ``hook`` (class override or instance attribute)."""
    names = (hook, _LEGACY_ALIASES[hook]) if hook in _LEGACY_ALIASES else (hook,)
    for name in names:
        if name in getattr(callback, "__dict__", ()):
            return True
        if getattr(type(callback), name) is not getattr(Callback, name):
            return True
    return False


def _floatify(logs):
    """Turn array scalars in ``logs`` into Python floats, in place (only values change)."""
    for key, value in logs.items():
        if not isinstance(value, float):
            try:
                logs[key] = float(value)
            except (TypeError, ValueError):
                pass


class CallbackList(Callback):
    """The callbacks of one ``fit``/``evaluate``/``predict`` call, called as one.

    Adds a :class:`History` (unless the list holds one) and, when ``verbose`` is
    non-zero, a :class:`ProgbarLogger` (unless the list holds one); both go last,
    so they see what user callbacks add to ``logs`` (e.g. ``"learning_rate"``).

    Args:
        callbacks: a list of :class:`Callback` instances (or one, or ``None``).
        add_history: add a :class:`History`, exposed as ``.history`` and set as
            ``model.history``.
        add_progbar: add a :class:`ProgbarLogger` when ``verbose`` is non-zero.
        model: the model, given to every callback with ``set_model``.
        **params: the training parameters given to every callback with ``set_params``:
            ``epochs``, ``steps`` (batches per epoch, ``None`` if unknown), ``verbose``.

    Returns:
        A callback whose hooks call the matching hook of each callback, in order.

    Raises:
        TypeError: an entry of ``callbacks`` is not a :class:`Callback`.

    Example:
        >>> cbs = CallbackList([EarlyStopping()], model=model, verbose=1, epochs=5, steps=100)
        >>> cbs.on_train_begin()
        >>> cbs.on_epoch_begin(0)
        >>> cbs.on_train_batch_end(0, {"loss": 0.7})
    """

    def __init__(self, callbacks=None, add_history=True, add_progbar=True, model=None, **params):
        super().__init__()
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, Callback):
            callbacks = [callbacks]
        self.callbacks = list(callbacks)
        for i, cb in enumerate(self.callbacks):
            if not isinstance(cb, Callback):
                raise TypeError(
                    f"CallbackList: callbacks[{i}] must be a fundl.callbacks.Callback instance, "
                    f"got {type(cb).__name__}. Subclass Callback, or wrap functions in "
                    "LambdaCallback(on_epoch_end=...)."
                )
        self._add_default_callbacks(add_history, add_progbar and params.get("verbose", 1))
        self.set_model(model)
        self.set_params(params)
        self._build_dispatch()

    def _add_default_callbacks(self, add_history, add_progbar):
        # Imported here: history.py and progbar.py import Callback from this module.
        from .history import History
        from .progbar import ProgbarLogger

        self.history = next((cb for cb in self.callbacks if isinstance(cb, History)), None)
        self.progbar = next((cb for cb in self.callbacks if isinstance(cb, ProgbarLogger)), None)
        if self.history is None and add_history:
            self.history = History()
            self.callbacks.append(self.history)
        if self.progbar is None and add_progbar:
            self.progbar = ProgbarLogger()
            self.callbacks.append(self.progbar)

    def _build_dispatch(self):
        # Per hook, the bound methods of the callbacks that override it: the hot per-batch
        # hooks then loop over only those (usually zero or one), with no lookups.
        for hook in _HOOKS:
            fns = tuple(getattr(cb, hook) for cb in self.callbacks if _overrides(cb, hook))
            setattr(self, "_" + hook, fns)

    def append(self, callback):
        """Add ``callback`` at the end of the list, giving it the model and the params.

        Args:
            callback: a :class:`Callback` instance.

        Raises:
            TypeError: ``callback`` is not a :class:`Callback`.
        """
        if not isinstance(callback, Callback):
            raise TypeError(
                f"CallbackList.append: expected a fundl.callbacks.Callback instance, "
                f"got {type(callback).__name__}."
            )
        self.callbacks.append(callback)
        if self.model is not None:
            callback.set_model(self.model)
        if self.params:
            callback.set_params(self.params)
        self._build_dispatch()

    def set_model(self, model):
        """Give ``model`` to every callback and make ``model.history`` the History."""
        self.model = model
        if model is None:
            return
        if self.history is not None:
            model.history = self.history
        for cb in self.callbacks:
            cb.set_model(model)

    def set_params(self, params):
        """Give ``params`` (``epochs``, ``steps``, ``verbose``) to every callback."""
        self.params = params
        if params:
            for cb in self.callbacks:
                cb.set_params(params)

    def on_train_begin(self, logs=None):
        """Call ``on_train_begin`` of every callback that overrides it."""
        logs = {} if logs is None else logs
        for fn in self._on_train_begin:
            fn(logs)

    def on_train_end(self, logs=None):
        """Call ``on_train_end`` of every callback with the last epoch's logs (as floats)."""
        logs = {} if logs is None else logs
        _floatify(logs)
        for fn in self._on_train_end:
            fn(logs)

    def on_epoch_begin(self, epoch, logs=None):
        """Call ``on_epoch_begin`` of every callback that overrides it."""
        logs = {} if logs is None else logs
        for fn in self._on_epoch_begin:
            fn(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        """Call ``on_epoch_end`` of every callback; array scalars in ``logs`` become floats."""
        logs = {} if logs is None else logs
        _floatify(logs)
        for fn in self._on_epoch_end:
            fn(epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        """Call ``on_train_batch_begin`` of every callback that overrides it."""
        for fn in self._on_train_batch_begin:
            fn(batch, {} if logs is None else logs)

    def on_train_batch_end(self, batch, logs=None):
        """Call ``on_train_batch_end`` of every callback that overrides it."""
        for fn in self._on_train_batch_end:
            fn(batch, {} if logs is None else logs)

    on_batch_begin = on_train_batch_begin
    on_batch_end = on_train_batch_end

    def on_test_begin(self, logs=None):
        """Call ``on_test_begin`` of every callback that overrides it."""
        logs = {} if logs is None else logs
        for fn in self._on_test_begin:
            fn(logs)

    def on_test_end(self, logs=None):
        """Call ``on_test_end`` of every callback that overrides it."""
        logs = {} if logs is None else logs
        _floatify(logs)
        for fn in self._on_test_end:
            fn(logs)

    def on_test_batch_begin(self, batch, logs=None):
        """Call ``on_test_batch_begin`` of every callback that overrides it."""
        for fn in self._on_test_batch_begin:
            fn(batch, {} if logs is None else logs)

    def on_test_batch_end(self, batch, logs=None):
        """Call ``on_test_batch_end`` of every callback that overrides it."""
        for fn in self._on_test_batch_end:
            fn(batch, {} if logs is None else logs)

    def on_predict_begin(self, logs=None):
        """Call ``on_predict_begin`` of every callback that overrides it."""
        logs = {} if logs is None else logs
        for fn in self._on_predict_begin:
            fn(logs)

    def on_predict_end(self, logs=None):
        """Call ``on_predict_end`` of every callback that overrides it."""
        logs = {} if logs is None else logs
        for fn in self._on_predict_end:
            fn(logs)

    def on_predict_batch_begin(self, batch, logs=None):
        """Call ``on_predict_batch_begin`` of every callback that overrides it."""
        for fn in self._on_predict_batch_begin:
            fn(batch, {} if logs is None else logs)

    def on_predict_batch_end(self, batch, logs=None):
        """Call ``on_predict_batch_end`` of every callback that overrides it."""
        for fn in self._on_predict_batch_end:
            fn(batch, {} if logs is None else logs)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self):
        return len(self.callbacks)


# ----------------------------------------------------------------------------------------
# Helpers shared by the callbacks that watch one logged quantity.

def _check_mode(owner, mode):
    """Validate ``mode`` ("auto", "min" or "max") for callback class ``owner``."""
    if mode not in _MODES:
        raise ValueError(
            f"{owner}: mode must be one of {_MODES}, got {mode!r}. Use 'min' for losses and "
            "errors, 'max' for accuracies, or 'auto' to infer it from the monitored name."
        )
    return mode


def _is_max_mode(monitor, mode):
    """Whether larger values of ``monitor`` are better; 'auto' says so for accuracy/AUC names."""
    if mode != "auto":
        return mode == "max"
    name = monitor.lower()
    name = name[4:] if name.startswith("val_") else name
    return "acc" in name or "auc" in name


def _get_monitor_value(owner, monitor, logs):
    """``logs[monitor]``, or ``None`` after a warning naming the key and the available keys."""
    value = logs.get(monitor) if logs else None
    if value is None:
        available = ", ".join(logs) if logs else "(none)"
        warnings.warn(
            f"{owner} is conditioned on {monitor!r}, which is not in the logs. "
            f"Available keys: {available}. Pass monitor= one of these (validation values "
            "need validation_data or validation_split in fit).",
            stacklevel=3,
        )
    return value


def _print(message):
    """Print a callback's message on stdout (looked up now, so redirection and capture work)."""
    print(message, flush=True)
