"""Models: ``Sequential``, the functional ``Model``, and ``load_model``."""
from .functional import Model
from .sequential import Sequential

__all__ = ["Model", "Sequential", "load_model"]


def load_model(path, custom_objects=None, compile=True):  # noqa: A002 - the Keras argument name
    """Load a model saved with ``model.save(path)`` (see :mod:`fundl.saving`)."""
    from ..saving import load_model as _load

    return _load(path, custom_objects=custom_objects, compile=compile)
