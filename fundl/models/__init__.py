"""Models: ``Sequential``, the functional ``Model``, ``load_model`` and ``model_from_json``."""
from .functional import Model, model_from_json
from .sequential import Sequential

__all__ = ["Model", "Sequential", "load_model", "model_from_json"]


def load_model(path, custom_objects=None, compile=True):  # noqa: A002 - the Keras argument name
    """Load a model saved with ``model.save(path)`` (see :mod:`fundl.saving`).

    Args:
        path: the ``.fundl`` file.
        custom_objects: ``{name: class_or_function}`` for your own layers, functions or
            losses that are not registered with ``@fundl.layers.register_serializable``.
        compile: restore the compile settings and the optimizer state.

    Returns:
        The model, with identical weights (and optimizer state): training resumes exactly.

    Raises:
        fundl.saving.CorruptFileError (a ValueError): a truncated, corrupt or foreign file.
        ValueError: the file names a class or function fundl does not know.

    Example:
        >>> model = load_model("mnist.fundl")
    """
    from ..saving import load_model as _load

    return _load(path, custom_objects=custom_objects, compile=compile)
