"""Resolving Keras-style identifiers (names, classes, instances, config dicts) in one place.

``initializers.get``, ``regularizers.get`` (and their ``serialize``) share these rules: a
string is an alias or a class name of that module, a dict is ``{"class_name", "config"}``
naming one of its classes, a class is instantiated, an instance or function is returned as
it is. Only the module's own classes are ever looked up: nothing is imported by name.
"""
from __future__ import annotations


class Configurable:
    """The config plumbing initializers, regularizers and losses share: a JSON-safe ``get_config``
    (the constructor arguments), ``from_config`` as its inverse, and a repr built from it."""

    def get_config(self) -> dict:
        """The constructor arguments as a JSON-safe dict."""
        return {}

    @classmethod
    def from_config(cls, config):
        """Rebuild the object from :meth:`get_config`'s dict."""
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def get_object(kind: str, identifier, aliases: dict, classes: dict, base: type):
    """Resolve ``identifier`` to an object of the ``kind`` module (None stays None).

    Raises:
        ValueError: an unknown name or a malformed config dict.
        TypeError: an identifier of another kind.
    """
    if identifier is None:
        return None
    if isinstance(identifier, str):
        cls = aliases.get(identifier) or classes.get(identifier)
        if cls is None:
            raise ValueError(f"{kind}.get: unknown {kind[:-1]} {identifier!r}; valid names are "
                             f"{sorted(aliases)} and the classes {sorted(classes)}.")
        return cls()
    if isinstance(identifier, dict):
        cls = classes.get(identifier.get("class_name"))
        config = identifier.get("config", {})
        if cls is None or not isinstance(config, dict):
            raise ValueError(f"{kind}.get: a config dict needs 'class_name' among "
                             f"{sorted(classes)} and a dict 'config', got {identifier!r}.")
        return cls.from_config(config)
    if isinstance(identifier, type) and issubclass(identifier, base):
        return identifier()
    if callable(identifier):
        return identifier
    raise TypeError(f"{kind}.get: expected a name, a {base.__name__}, a config dict or a "
                    f"callable, got {type(identifier).__name__} {identifier!r}.")


def serialize_object(kind: str, obj, classes: dict) -> dict:
    """``{"class_name", "config"}`` for an instance of one of the module's own classes.

    Raises:
        ValueError: a custom object (configs hold names only, never code).
    """
    cls = type(obj)
    if classes.get(cls.__name__) is not cls:
        raise ValueError(f"{kind}.serialize: {obj!r} is not a built-in {kind[:-1]}; configs "
                         f"store only the classes {sorted(classes)}.")
    return {"class_name": cls.__name__, "config": obj.get_config()}
