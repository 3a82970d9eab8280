"""Callbacks: code that ``fit``, ``evaluate`` and ``predict`` call at fixed points.

Keras semantics and argument names. Pass a list to ``fit(callbacks=[...])``;
``fit`` itself adds a :class:`History` (returned) and, when ``verbose``, a
:class:`ProgbarLogger`.

Example:
    >>> from fundl.callbacks import EarlyStopping, ModelCheckpoint
    >>> model.fit(x, y, epochs=50, validation_split=0.1,
    ...           callbacks=[EarlyStopping(patience=3, restore_best_weights=True),
    ...                      ModelCheckpoint("best.fundl", save_best_only=True)])
"""
from .base import Callback, CallbackList
from .checkpoint import ModelCheckpoint
from .csv_logger import CSVLogger
from .early_stopping import EarlyStopping
from .history import History
from .lambda_callback import LambdaCallback
from .lr_scheduler import LearningRateScheduler, ReduceLROnPlateau
from .progbar import Progbar, ProgbarLogger
from .tensorboard import TensorBoard
from .terminate_on_nan import TerminateOnNaN

__all__ = [
    "Callback", "CallbackList", "CSVLogger", "EarlyStopping", "History", "LambdaCallback",
    "LearningRateScheduler", "ModelCheckpoint", "Progbar", "ProgbarLogger",
    "ReduceLROnPlateau", "TensorBoard", "TerminateOnNaN",
]
