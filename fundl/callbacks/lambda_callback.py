"""LambdaCallback: a callback made of plain functions."""
from __future__ import annotations

from .base import _HOOKS, Callback

_ALLOWED = frozenset(_HOOKS) | {"on_batch_begin", "on_batch_end"}


class LambdaCallback(Callback):
    """A callback whose hooks are the functions given; the others do nothing.

    Each function takes the same arguments as the hook it replaces:
    ``on_epoch_begin(epoch, logs)``, ``on_epoch_end(epoch, logs)``,
    ``on_train_begin(logs)``, ``on_train_end(logs)``,
    ``on_train_batch_begin(batch, logs)``, ``on_train_batch_end(batch, logs)``;
    any other hook (``on_test_begin``, ``on_predict_batch_end``, ...) can be given
    by keyword.

    Args:
        on_epoch_begin, on_epoch_end, on_train_begin, on_train_end,
        on_train_batch_begin, on_train_batch_end: functions or ``None``.
        **kwargs: functions for the other ``on_*`` hooks.

    Returns:
        A callback.

    Raises:
        TypeError: a keyword is not a hook name, or a value is not callable.

    Example:
        >>> losses = []
        >>> log_loss = LambdaCallback(on_epoch_end=lambda epoch, logs: losses.append(logs["loss"]))
        >>> model.fit(x, y, epochs=3, callbacks=[log_loss])
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None,
                 **kwargs):
        super().__init__()
        hooks = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_train_begin=on_train_begin, on_train_end=on_train_end,
                     on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for name, fn in hooks.items():
            if name not in _ALLOWED:
                raise TypeError(
                    f"LambdaCallback: unknown hook {name!r}; hooks are "
                    f"{', '.join(sorted(_ALLOWED))}."
                )
            if fn is None:
                continue
            if not callable(fn):
                raise TypeError(
                    f"LambdaCallback: {name} must be a function, got {type(fn).__name__}."
                )
            # An instance attribute shadows the no-op method; CallbackList sees it as an override.
            setattr(self, name, fn)
