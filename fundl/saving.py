"""Saving and loading models without pickle.

A ``.fundl`` file is a zip archive of plain data:

- ``metadata.json``: format name and version, fundl version, date, what the file holds;
- ``config.json``: the architecture (``get_config`` of the model) and the compile settings;
- ``weights.npz``: every weight under its dotted key (``dense_1.kernel``), via ``numpy.savez``;
- ``optimizer.npz``: the optimizer's slots and iteration count, when there is an optimizer.

Loading reads arrays with ``allow_pickle=False`` and resolves class names only through
fundl's registry (built-in and registered classes), so a file from a stranger cannot run
code. Everything is read and checked before a model is touched, and saving writes a
temporary file that replaces the old one only once complete (``os.replace``).

Example:
    >>> model.save("mnist.fundl")
    >>> model = fundl.models.load_model("mnist.fundl")
"""
from __future__ import annotations

import datetime
import io
import json
import os
import struct
import tempfile
import zipfile

import numpy

FORMAT = "fundl"
FORMAT_VERSION = 1
_MAX_JSON = 64 * 1024 * 1024  # a config larger than this is not a config
# What zipfile and numpy raise on damaged input, besides their own error classes.
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
                RuntimeError, NotImplementedError, struct.error, UnicodeDecodeError, KeyError,
                IndexError, OverflowError, MemoryError)


class CorruptFileError(ValueError):
    """A file that is not a readable fundl archive (truncated, corrupt, or something else)."""


def _npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    # asarray(order="C"), not ascontiguousarray, which would turn 0-d arrays into 1-d ones
    numpy.savez(buf, **{k: numpy.asarray(v, order="C") for k, v in arrays.items()})
    return buf.getvalue()


def _write_atomic(path, members: dict) -> None:
    """Write a zip of ``members`` (name -> bytes) to ``path`` atomically."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".fundl-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as z:
                for name, data in members.items():
                    z.writestr(name, data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _metadata(kind: str) -> bytes:
    from . import __version__

    return json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
                       "fundl_version": __version__,
                       "date": datetime.datetime.now(datetime.timezone.utc).isoformat()}).encode()


class _Archive:
    """A fundl zip opened for reading, with every failure turned into CorruptFileError."""

    def __init__(self, path):
        self.path = os.fspath(path)
        if os.path.isdir(self.path):
            raise IsADirectoryError(f"{self.path} is a directory, not a fundl file.")
        try:
            with zipfile.ZipFile(self.path) as z:
                bad = z.testzip()
                if bad is not None:
                    raise CorruptFileError(f"{self.path}: member {bad!r} fails its CRC check.")
                self.members = {info.filename: info for info in z.infolist()}
                if any(info.file_size > 8 * 1024 ** 3 for info in self.members.values()):
                    raise CorruptFileError(f"{self.path}: a member claims an absurd size.")
                self.data = {name: z.read(name) for name in self.members}
        except (FileNotFoundError, PermissionError):
            raise
        except _READ_ERRORS as e:
            if isinstance(e, CorruptFileError):
                raise
            raise CorruptFileError(f"{self.path} is not a readable fundl file (truncated or "
                                   f"corrupt?): {e}") from e
        meta = self.json("metadata.json")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise CorruptFileError(f"{self.path}: not a fundl file (metadata format is "
                                   f"{meta.get('format')!r}).")
        version = meta.get("format_version", 0)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CorruptFileError(f"{self.path}: written by a newer fundl (format version "
                                   f"{meta.get('format_version')}); upgrade fundl to read it.")
        self.meta = meta

    def has(self, name):
        return name in self.data

    def json(self, name):
        if name not in self.data:
            raise CorruptFileError(f"{self.path}: the archive has no {name} (is the file "
                                   "truncated, or not a fundl file?).")
        raw = self.data[name]
        if len(raw) > _MAX_JSON:
            raise CorruptFileError(f"{self.path}: {name} is implausibly large.")
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise CorruptFileError(f"{self.path}: {name} is not valid JSON: {e}") from e

    def arrays(self, name) -> dict:
        if name not in self.data:
            raise CorruptFileError(f"{self.path}: the archive has no {name} (is the file "
                                   "truncated, or not a fundl file?).")
        try:
            # allow_pickle=False: an object array (which would unpickle) raises instead.
            with numpy.load(io.BytesIO(self.data[name]), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except _READ_ERRORS as e:
            raise CorruptFileError(f"{self.path}: {name} cannot be read safely: {e}") from e
        for key, a in arrays.items():
            if not isinstance(a, numpy.ndarray) or a.dtype.kind not in "fiub":
                raise CorruptFileError(f"{self.path}: {name} entry {key!r} has dtype "
                                       f"{getattr(a, 'dtype', type(a).__name__)}; only numeric "
                                       "arrays are allowed.")
        return arrays


def _serialize_compile(model):
    from .layers.base import serialize_object

    def spec(value):
        if value is None or isinstance(value, (str, int, float)):
            return value
        if isinstance(value, (list, tuple)):
            return [spec(v) for v in value]
        if isinstance(value, dict):
            return {k: spec(v) for k, v in value.items()}
        if hasattr(value, "get_config"):
            return serialize_object(value)
        name = getattr(value, "__name__", None)
        if name is None or name == "<lambda>":
            raise ValueError(f"save: cannot save the compile setting {value!r}; use a name or a "
                             "registered function.")
        return name

    from .optimizers import serialize as serialize_optimizer

    return {"loss": spec(model._loss_spec), "metrics": spec(model._metric_spec),
            "loss_weights": spec(model._loss_weight_spec),
            "optimizer": serialize_optimizer(model.optimizer)}


def save_model(model, path, include_optimizer: bool = True) -> None:
    """Save architecture, weights and (optionally) optimizer state to one file, atomically.

    Args:
        model: a built model.
        path: the file to write (``.fundl`` by convention); an existing file is replaced only
            once the new one is complete.
        include_optimizer: also save the optimizer's state (slots and step count), so training
            resumes exactly where it stopped.

    Raises:
        ValueError: the model is not built, or its config holds something that cannot be
            saved (an anonymous ``Lambda`` function, a custom loss that is not registered).

    Example:
        >>> save_model(model, "mnist.fundl")
    """
    if not model.built:
        raise ValueError(f"save: model '{model.name}' is not built yet, so it has no weights to "
                         "save; give the first layer an input_shape or call fit/predict first.")
    config = {"class_name": type(model).__name__, "config": model.get_config()}
    if model.compiled:
        config["compile"] = _serialize_compile(model)
    members = {"metadata.json": _metadata("model"), "config.json": None,
               "weights.npz": _npz_bytes(model.state_dict())}
    if include_optimizer and model.compiled and model.optimizer.iterations > 0:
        # The optimizer numbers its weights in the order training registered them (the
        # trainable weights at compile time); store their keys to match them up on loading.
        keys = {id(w): key for key, w, _ in model._weight_entries()}
        config["optimizer_weights"] = [keys[id(w)] for w in model._compiled_trainable or []]
        members["optimizer.npz"] = _npz_bytes(model.optimizer.get_state())
    members["config.json"] = json.dumps(config).encode()
    _write_atomic(path, members)


def save_weights(model, path) -> None:
    """Save only the weights (dotted keys), atomically.

    Example:
        >>> model.save_weights("mlp.weights.fundl")
    """
    if not model.built:
        raise ValueError(f"save_weights: model '{model.name}' is not built yet, so it has no "
                         "weights; give the first layer an input_shape or call it on data first.")
    _write_atomic(path, {"metadata.json": _metadata("weights"),
                         "weights.npz": _npz_bytes(model.state_dict())})


def load_weights(model, path, skip_mismatch: bool = False) -> None:
    """Load weights saved by ``save_weights`` or ``save`` into ``model``.

    Every key and shape is checked before any weight is written, so on error the model is
    unchanged.

    Args:
        model: a built model with the same layer names.
        path: the file.
        skip_mismatch: ignore weights whose key is missing on either side or whose shape
            differs (as Keras), instead of raising.

    Raises:
        CorruptFileError (a ValueError): the file is truncated, corrupt or not a fundl file.
        ValueError: keys or shapes do not match (unless ``skip_mismatch``).

    Example:
        >>> model.load_weights("mlp.weights.fundl")
    """
    archive = _Archive(path)
    state = archive.arrays("weights.npz")
    if not model.built:
        raise ValueError(f"load_weights: model '{model.name}' is not built yet; call it on data or "
                         "give the first layer an input_shape before loading weights.")
    if skip_mismatch:
        shapes = {key: w.shape for key, w, _ in model._weight_entries()}
        state = {k: v for k, v in state.items() if shapes.get(k) == v.shape}
    model.load_state_dict(state, strict=not skip_mismatch)


def load_model(path, custom_objects=None, compile: bool = True):  # noqa: A002 - Keras's name
    """Rebuild a model saved by ``model.save(path)``: architecture, weights, optimizer state.

    Args:
        path: the file.
        custom_objects: ``{name: class_or_function}`` for user-defined classes not registered
            with ``@fundl.layers.register_serializable``.
        compile: re-compile with the saved settings (and restore the optimizer state).

    Raises:
        CorruptFileError (a ValueError): the file is truncated, corrupt or not a fundl file.
        ValueError: the config names an unknown class, or weights do not fit.
    """
    from .layers.base import Layer, get_registered

    archive = _Archive(path)
    if archive.meta.get("kind") != "model":
        raise CorruptFileError(f"{archive.path} holds only weights; build the model and call "
                               "model.load_weights(path) instead.")
    config = archive.json("config.json")
    state = archive.arrays("weights.npz")
    opt_state = archive.arrays("optimizer.npz") if archive.has("optimizer.npz") else None
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str) \
            or not isinstance(config.get("config"), dict):
        raise CorruptFileError(f"{archive.path}: config.json lacks class_name/config.")
    cls = get_registered(config["class_name"], custom_objects)
    if not (isinstance(cls, type) and issubclass(cls, Layer) and hasattr(cls, "fit")):
        raise ValueError(f"load_model: {config['class_name']!r} is not a model class.")
    try:
        model = cls.from_config(config["config"], custom_objects=custom_objects)
    except (KeyError, TypeError, IndexError, AttributeError, RecursionError) as e:
        raise CorruptFileError(f"{archive.path}: the model config is malformed: {e!r}") from e
    if not model.built:
        raise ValueError(f"load_model: the saved model '{model.name}' has no input shape, so its "
                         "weights cannot be placed; save models after building them.")
    model.load_state_dict(state)
    if compile and "compile" in config:
        from .optimizers import deserialize as deserialize_optimizer

        try:
            settings = config["compile"]
            optimizer = deserialize_optimizer(settings["optimizer"])
            loss = _deserialize_spec(settings["loss"], custom_objects)
            metrics = _deserialize_spec(settings["metrics"], custom_objects)
            loss_weights = settings["loss_weights"]
        except (KeyError, TypeError, AttributeError) as e:
            raise CorruptFileError(f"{archive.path}: the compile settings are malformed: "
                                   f"{e!r}") from e
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics, loss_weights=loss_weights)
        try:
            model._prepare_compiled()  # an unknown loss or metric name fails here, not in fit
        except (ValueError, TypeError) as e:
            raise type(e)(f"load_model: {e} If the model was compiled with a function of your "
                          "own, register it with @fundl.layers.register_serializable or pass "
                          "custom_objects={name: function}; or load with compile=False.") from e
        if opt_state is not None:
            entries = {key: w for key, w, _ in model._weight_entries()}
            keys = config.get("optimizer_weights")
            if not isinstance(keys, list) or any(k not in entries for k in keys):
                raise CorruptFileError(f"{archive.path}: the optimizer state names weights the "
                                       "model does not have.")
            model.optimizer.set_state(opt_state, [entries[k] for k in keys])
    return model


def _deserialize_spec(value, custom_objects):
    """Loss/metric settings from JSON: names stay names; ``{class_name, config}`` objects are
    rebuilt from :mod:`fundl.losses` or :mod:`fundl.metrics` classes only."""
    from . import losses, metrics

    if isinstance(value, list):
        return [_deserialize_spec(v, custom_objects) for v in value]
    if isinstance(value, dict) and "class_name" in value:
        name = value["class_name"]
        if custom_objects and name in custom_objects:
            return custom_objects[name](**value.get("config", {}))
        for module in (losses, metrics):
            cls = getattr(module, name, None)
            if isinstance(cls, type) and not name.startswith("_"):
                return cls.from_config(value.get("config", {})) if hasattr(cls, "from_config") \
                    else cls(**value.get("config", {}))
        raise ValueError(f"load_model: unknown loss or metric class {name!r}; pass "
                         f"custom_objects={{{name!r}: cls}} or load with compile=False.")
    if isinstance(value, dict):
        return {k: _deserialize_spec(v, custom_objects) for k, v in value.items()}
    if isinstance(value, str):
        if custom_objects and value in custom_objects:
            return custom_objects[value]
        if not _is_builtin_name(value):
            from .layers.base import _REGISTRY

            fn = _REGISTRY.get(value)
            if fn is not None and not isinstance(fn, type):
                return fn  # a function registered with @register_serializable
    return value


def _is_builtin_name(name):
    from . import losses, metrics

    for module in (losses, metrics):
        try:
            module.get(name)
            return True
        except (ValueError, TypeError):
            pass
    return False
