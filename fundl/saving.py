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
import re
import secrets
import struct
import zipfile

import numpy

FORMAT = "fundl"
FORMAT_VERSION = 1
_MAX_JSON = 16 * 1024 * 1024   # a config larger than this is not a config
_MAX_METADATA = 64 * 1024
_MEMBERS = ("metadata.json", "config.json", "weights.npz", "optimizer.npz")
_NPY_HEADER_MAX = 64 * 1024    # numpy's own limit on a .npy header it will parse
_PER_ENTRY = 64 * 1024         # zip and .npy headers of one array, generously
# What zipfile and numpy raise on damaged input, besides their own error classes.
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
                RuntimeError, NotImplementedError, struct.error, UnicodeDecodeError, KeyError,
                IndexError, OverflowError, MemoryError, SyntaxError)


class CorruptFileError(ValueError):
    """A file that is not a readable fundl archive (truncated, corrupt, or something else)."""


def _npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    # asarray(order="C"), not ascontiguousarray, which would turn 0-d arrays into 1-d ones
    numpy.savez(buf, **{k: numpy.asarray(v, order="C") for k, v in arrays.items()})
    return buf.getvalue()


# -- writing ---------------------------------------------------------------------------------
_PARTIAL = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.partial-save$")


def _partial_name(path):
    """Where a save is written before it replaces ``path``: ``.NAME.PID-RANDOM.partial-save``."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.{os.getpid()}-{secrets.token_hex(4)}.partial-save")


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:   # PermissionError: someone else's live process
        return True
    return True


def _remove_stale_partials(path):
    """Delete what saves of ``path`` killed mid-write left beside it (their process is gone).

    A partial file of a process that still runs is another save in progress: left alone.
    """
    folder, name = os.path.split(os.path.abspath(path))
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        match = _PARTIAL.match(entry)
        if match and match["target"] == name and not _pid_alive(int(match["pid"])):
            try:
                os.unlink(os.path.join(folder, entry))
            except OSError:
                pass


def _file_mode(path):
    """The mode a new file gets from the umask (0666 & ~umask), or the replaced file's mode."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        pass
    try:  # Linux shows the umask without changing it (os.umask would, for every thread)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _write_atomic(path, members: dict) -> None:
    """Write a zip of ``members`` (name -> bytes) to ``path`` atomically.

    The zip goes to ``.NAME.PID-RANDOM.partial-save`` beside ``path`` and replaces it only once
    complete and flushed to disk, so a crash never destroys the previous file; partial files
    that earlier crashed saves left behind are removed first. The file gets the mode any new
    file would (the umask), or the mode of the file it replaces.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    _remove_stale_partials(path)
    tmp = _partial_name(path)
    mode = _file_mode(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as z:
                for name, data in members.items():
                    z.writestr(name, data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
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


# -- reading -----------------------------------------------------------------------------------
def _read_npy_header(f, where):
    """(shape, dtype, fortran_order, header bytes) of the .npy stream ``f``, data unread."""
    from numpy.lib import format as npy

    start = f.tell()
    version = npy.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = npy.read_array_header_1_0(f, max_header_size=_NPY_HEADER_MAX)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = npy.read_array_header_2_0(f, max_header_size=_NPY_HEADER_MAX)
    else:
        raise CorruptFileError(f"{where}: unsupported .npy version {version}.")
    return tuple(shape), dtype, fortran, f.tell() - start


class _Archive:
    """A fundl zip opened for reading; every failure becomes :class:`CorruptFileError`.

    Nothing is inflated on opening: members are read one at a time, only the known ones, and
    only after their declared sizes have been checked (a zip whose members claim gigabytes is
    refused before anything is decompressed). Arrays are read one by one into arrays of the
    shape their header declares, once that shape has been checked against what the caller
    expects, so a load's peak memory stays near the size of the weights it returns.

    Use as a context manager: ``with _Archive(path) as archive: ...``.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        if os.path.isdir(self.path):
            raise IsADirectoryError(f"{self.path} is a directory, not a fundl file.")
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (FileNotFoundError, PermissionError):
            raise
        except _READ_ERRORS as e:
            raise CorruptFileError(f"{self.path} is not a readable fundl file (truncated or "
                                   f"corrupt?): {e}") from e
        try:
            # Unknown members are never read; a duplicated known one is ambiguous.
            self.members = {}
            for info in self._zip.infolist():
                if info.filename in _MEMBERS:
                    if info.filename in self.members:
                        raise CorruptFileError(f"{self.path}: member {info.filename!r} appears "
                                               "twice.")
                    self.members[info.filename] = info
            meta = self.json("metadata.json", limit=_MAX_METADATA)
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise CorruptFileError(f"{self.path}: not a fundl file (metadata format is "
                                       f"{meta.get('format') if isinstance(meta, dict) else meta!r}).")
            version = meta.get("format_version", 0)
            if not isinstance(version, int) or version > FORMAT_VERSION:
                raise CorruptFileError(f"{self.path}: written by a newer fundl (format version "
                                       f"{meta.get('format_version')}); upgrade fundl to read it.")
            self.meta = meta
        except BaseException:
            self._zip.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._zip.close()

    def has(self, name):
        return name in self.members

    def _info(self, name):
        if name not in self.members:
            raise CorruptFileError(f"{self.path}: the archive has no {name} (is the file "
                                   "truncated, or not a fundl file?).")
        return self.members[name]

    def json(self, name, limit=_MAX_JSON):
        info = self._info(name)
        if info.file_size > limit:
            raise CorruptFileError(f"{self.path}: {name} declares {info.file_size:,} bytes, "
                                   f"more than the {limit:,} a config may have.")
        try:
            with self._zip.open(info) as f:
                raw = f.read(limit + 1)
            if len(raw) > limit:
                raise CorruptFileError(f"{self.path}: {name} is implausibly large.")
            return json.loads(raw.decode("utf-8"))
        except CorruptFileError:
            raise
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise CorruptFileError(f"{self.path}: {name} is not valid JSON: {e}") from e
        except _READ_ERRORS as e:
            raise CorruptFileError(f"{self.path}: {name} cannot be read (truncated or "
                                   f"corrupt?): {e}") from e

    def arrays(self, name, expected: dict, strict: bool = True) -> dict:
        """The arrays of the ``.npz`` member ``name`` whose keys and shapes ``expected`` names.

        Args:
            name: ``"weights.npz"`` or ``"optimizer.npz"``.
            expected: key -> shape the caller can use. The member may declare at most the
                bytes these need (plus headers); entries are checked against them from their
                headers, before their data is read.
            strict: raise on a key ``expected`` lacks or a shape that differs (else such
                entries are skipped without being read).

        Returns:
            key -> NumPy array (numeric dtypes only).

        Raises:
            CorruptFileError: sizes, headers, dtypes or CRCs that are not what they claim.
            ValueError: (``strict``) unexpected keys or shape mismatches, naming them.
        """
        info = self._info(name)
        where = f"{self.path}: {name}"
        # float64/int64 at most per element: the most any saved weight of these shapes needs.
        budget = sum(8 * int(numpy.prod(s, dtype=numpy.int64)) for s in expected.values())
        budget += _PER_ENTRY * (len(expected) + 1)
        if info.file_size > budget:
            raise CorruptFileError(f"{where} declares {info.file_size:,} bytes, but the arrays "
                                   f"the model needs take at most {budget:,}; refusing to read "
                                   "it (a damaged or hostile file).")
        out, unexpected, mismatched = {}, [], []
        try:
            with self._zip.open(info) as outer, zipfile.ZipFile(outer) as inner:
                entries = inner.infolist()
                if sum(e.file_size for e in entries) > budget:
                    raise CorruptFileError(f"{where}: its entries declare more bytes than the "
                                           "arrays the model needs; refusing to read them.")
                for entry in entries:
                    key = entry.filename[:-4] if entry.filename.endswith(".npy") \
                        else entry.filename
                    if key in out:
                        raise CorruptFileError(f"{where}: entry {key!r} appears twice.")
                    if key not in expected:
                        unexpected.append(key)
                        continue
                    array, shape = self._read_entry(inner, entry, key, expected[key], where)
                    if array is None:
                        mismatched.append((key, shape))
                    else:
                        out[key] = array
        except CorruptFileError:
            raise
        except _READ_ERRORS as e:
            raise CorruptFileError(f"{where} cannot be read safely (truncated or corrupt?): "
                                   f"{e}") from e
        if strict and unexpected:
            raise ValueError(f"{where} holds arrays the model does not have: {sorted(unexpected)}"
                             f" (the model's are {sorted(expected)}). Was it saved from another "
                             "model? load_weights(..., skip_mismatch=True) skips them.")
        if strict and mismatched:
            key, shape = mismatched[0]
            raise ValueError(f"{where}: {key!r} has shape {shape} in the file but "
                             f"{tuple(expected[key])} in the model.")
        return out

    def _read_entry(self, inner, entry, key, shape, where):
        """(array, shape) of one .npy entry; the array is None when the shape differs."""
        with inner.open(entry) as f:
            got, dtype, fortran, header = _read_npy_header(f, f"{where} entry {key!r}")
            if dtype.kind not in "fiub" or dtype.hasobject:
                raise CorruptFileError(f"{where} entry {key!r} cannot be read safely: it has "
                                       f"dtype {dtype}; only numeric arrays are allowed.")
            if got != tuple(shape):
                return None, got
            nbytes = int(numpy.prod(got, dtype=numpy.int64)) * dtype.itemsize
            if entry.file_size != header + nbytes:
                raise CorruptFileError(f"{where} entry {key!r} declares {entry.file_size:,} "
                                       f"bytes but its header says {header + nbytes:,}.")
            array = numpy.empty(got, dtype=dtype, order="F" if fortran else "C")
            view = memoryview(array.reshape(-1, order="A").view(numpy.uint8))
            filled = 0
            while filled < nbytes:
                n = f.readinto(view[filled:])
                if not n:
                    raise CorruptFileError(f"{where} entry {key!r} is truncated.")
                filled += n
            if f.read(1):  # also makes zipfile check the entry's CRC at its end
                raise CorruptFileError(f"{where} entry {key!r} is longer than it declares.")
        return (numpy.ascontiguousarray(array) if fortran else array), got


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
    config = {"class_name": type(model).__name__, "config": model.get_config(),
              "build_config": model.get_build_config()}
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
    if not model.built:
        raise ValueError(f"load_weights: model '{model.name}' is not built yet; call it on data or "
                         "give the first layer an input_shape before loading weights.")
    expected = {key: w.shape for key, w, _ in model._weight_entries()}
    with _Archive(path) as archive:
        state = archive.arrays("weights.npz", expected, strict=not skip_mismatch)
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
    with _Archive(path) as archive:
        return _load_model(archive, custom_objects, compile)


def _load_model(archive, custom_objects, compile):  # noqa: A002
    from .layers.base import Layer, get_registered

    if archive.meta.get("kind") != "model":
        raise CorruptFileError(f"{archive.path} holds only weights; build the model and call "
                               "model.load_weights(path) instead.")
    config = archive.json("config.json")
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
        # A subclassed model creates its weights on its first call: one pass on zeros of the
        # shape it was built for (Keras 3's build_from_config).
        model.build_from_config(_checked_build_config(archive, config.get("build_config")))
    if not model.built:
        raise ValueError(f"load_model: the saved model '{model.name}' has no input shape, so its "
                         "weights cannot be placed; save models after building them.")
    # The architecture says what the weights must be: nothing else is read, and nothing is
    # inflated before its declared size and shape have been checked against it.
    entries = {key: w for key, w, _ in model._weight_entries()}
    state = archive.arrays("weights.npz", {key: w.shape for key, w in entries.items()})
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
        if archive.has("optimizer.npz"):
            keys = config.get("optimizer_weights")
            if not isinstance(keys, list) or any(not isinstance(k, str) or k not in entries
                                                 for k in keys):
                raise CorruptFileError(f"{archive.path}: the optimizer state names weights the "
                                       "model does not have.")
            weights = [entries[k] for k in keys]
            expected = {"iterations": ()}
            for i, w in enumerate(weights):
                for slot, _ in model.optimizer.slot_specs():
                    expected[f"{i}.{slot}"] = w.shape
            opt_state = archive.arrays("optimizer.npz", expected)
            model.optimizer.set_state(opt_state, weights)
    return model


_MAX_BUILD_ELEMENTS = 1 << 26  # zeros of a saved build shape: a model's input, not gigabytes


def _checked_build_config(archive, build):
    """The ``build_config`` of a file, checked before a forward pass allocates its zeros."""
    if build is None:
        return None
    shape = build.get("input_shape") if isinstance(build, dict) else None
    shapes = shape if shape and all(isinstance(s, list) for s in shape) else [shape]
    total = 0
    for s in shapes:
        if not isinstance(s, list) or not 1 <= len(s) <= 8 or not all(
                d is None or (isinstance(d, int) and not isinstance(d, bool) and 0 < d)
                for d in s):
            raise CorruptFileError(f"{archive.path}: build_config holds an invalid input shape "
                                   f"{shape!r}.")
        total += int(numpy.prod([d or 1 for d in s], dtype=numpy.float64))
    if total > _MAX_BUILD_ELEMENTS:
        raise CorruptFileError(f"{archive.path}: build_config asks for inputs of {total:,} "
                               f"values, more than the {_MAX_BUILD_ELEMENTS:,} a model's build "
                               "may take; refusing to build it.")
    return build


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
