"""Reading Keras's ``imdb.npz`` and ``reuters.npz`` without unpickling.

Those files are NumPy ``.npz`` archives whose sequence members are *object* arrays: one
Python list of word indices per review. NumPy stores an object array as a pickle of the array,
and unpickling can run code named in the file, so fundl never does it. This module reads the
archive with :mod:`zipfile`, numeric members with ``numpy.lib.format.read_array(...,
allow_pickle=False)``, and object members with a strict opcode reader built on
:mod:`fundl.datasets._safe_pickle`'s: protocols 2 to 5, only the GLOBALs that make an ndarray
(``_reconstruct``, ``ndarray``, ``dtype``, ``scalar`` for NumPy numbers, and ``_codecs.encode``
that Python 3 writes for bytes in protocol 2), object or numeric dtypes, and as elements only
inert values (ints, floats, strings, bytes, lists, tuples, dicts, None, booleans). Anything else
raises :class:`fundl.saving.CorruptFileError` naming the file, the member and the byte offset.

Example:
    >>> from fundl.datasets._keras_npz import load_npz
    >>> arrays = load_npz("imdb.npz")          # doctest: +SKIP
    >>> arrays["x_train"][0][:5]               # doctest: +SKIP
    [1, 14, 22, 16, 43]
"""
from __future__ import annotations

import io
import math
import os
import zipfile

import numpy as np

from ..saving import CorruptFileError
from . import _safe_pickle as sp

_CODECS_ENCODE = {("_codecs", "encode")}
_SCALAR = {("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}
_ALLOWED = sp._RECONSTRUCT | sp._NDARRAY | sp._DTYPE | _CODECS_ENCODE | _SCALAR


class _Reader(sp._Reader):
    """The safe reader with this module's opcode table and error message."""

    def fail(self, what: str) -> CorruptFileError:
        return CorruptFileError(
            f"{self.source}: {what} (at byte {self.op_pos}). fundl reads Keras's object arrays "
            "of word-index lists without unpickling and never runs code from a file; replace "
            "the file with the original."
        )

    def run(self):
        while True:
            self.op_pos = self.pos
            code = self.take(1)
            handler = _OPCODES.get(code)
            if handler is None:
                raise self.fail(f"unsupported opcode {code!r} (0x{code[0]:02x})")
            if handler is sp._stop:
                return self.finish()
            handler(self)


def _proto(r: _Reader) -> None:
    version = r.uint(1)
    if not 2 <= version <= 5:
        raise r.fail(f"pickle protocol {version} is not supported (2 to 5 are)")


def _push_global(r: _Reader, module: str, name: str) -> None:
    if (module, name) not in _ALLOWED:
        raise r.fail(f"refusing GLOBAL '{module}.{name}': only NumPy arrays may appear here")
    r.stack.append(sp._Global(module, name))


def _global(r: _Reader) -> None:
    module = r.line()
    _push_global(r, module, r.line())


def _stack_global(r: _Reader) -> None:
    name, module = r.pop(), r.pop()
    if not (isinstance(module, str) and isinstance(name, str)):
        raise r.fail("STACK_GLOBAL expects two strings")
    _push_global(r, module, name)


def _reduce_dtype(r: _Reader, args: tuple):
    if len(args) != 3:
        raise r.fail(f"numpy.dtype expects 3 arguments, got {len(args)}")
    code = sp._text(r, args[0], "a dtype code")
    if not (sp._DTYPE_CODE.fullmatch(code) or code in ("O4", "O8")):
        raise r.fail(f"dtype {code!r} is not allowed (object, bool, int, uint and float only)")
    return sp._PendingDtype(code)


def _reduce_codecs_encode(r: _Reader, args: tuple):
    # Python 3 writes bytes in protocol 2 as _codecs.encode(str, "latin1")
    if len(args) != 2 or not isinstance(args[0], str) or args[1] != "latin1":
        raise r.fail("_codecs.encode is allowed only as encode(text, 'latin1')")
    return args[0].encode("latin-1")


def _reduce_scalar(r: _Reader, args: tuple):
    # A NumPy scalar (a word index kept as numpy.int64) is scalar(dtype, raw bytes): it
    # becomes the equal Python number.
    if len(args) != 2 or not isinstance(args[0], sp._PendingDtype) or args[0].dtype is None:
        raise r.fail("numpy scalar must be scalar(dtype, bytes)")
    dtype, raw = args[0].dtype, args[1]
    if isinstance(raw, str):
        raw = raw.encode("latin-1")
    if dtype.kind == "O" or not isinstance(raw, bytes) or len(raw) != dtype.itemsize:
        raise r.fail(f"numpy scalar of dtype {dtype} needs {dtype.itemsize} raw bytes")
    return np.frombuffer(raw, dtype=dtype)[0].item()


_REDUCERS = {
    **dict.fromkeys(_SCALAR, _reduce_scalar),
    **dict.fromkeys(sp._RECONSTRUCT, sp._reduce_reconstruct),
    **dict.fromkeys(sp._DTYPE, _reduce_dtype),
    **dict.fromkeys(_CODECS_ENCODE, _reduce_codecs_encode),
}


def _reduce(r: _Reader) -> None:
    args = r.pop()
    func = r.pop()
    if not isinstance(args, tuple):
        raise r.fail(f"REDUCE expects an argument tuple, got {type(args).__name__}")
    reducer = _REDUCERS.get(func.key()) if isinstance(func, sp._Global) else None
    if reducer is None:
        what = (f"'{func.module}.{func.name}'" if isinstance(func, sp._Global)
                else type(func).__name__)
        raise r.fail(f"REDUCE on {what} is not allowed")
    r.stack.append(reducer(r, args))


def _build_object_array(r: _Reader, target, state) -> None:
    _, shape, dtype, _fortran, items = state
    if not (isinstance(shape, tuple) and all(type(d) is int and d >= 0 for d in shape)):
        raise r.fail(f"ndarray shape must be a tuple of non-negative ints, got {shape!r}")
    if not isinstance(items, list) or len(items) != math.prod(shape):
        raise r.fail(f"an object array of shape {shape} needs a list of {math.prod(shape)} "
                     "items")
    array = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):  # element by element: lists must stay lists
        array[i] = sp._unwrap(r, item)
    target.array = array.reshape(shape)


def _build(r: _Reader) -> None:
    state = r.pop()
    target = r.top(object, "BUILD")
    if isinstance(target, sp._PendingArray) and target.array is None:
        if not isinstance(state, tuple) or len(state) != 5:
            raise r.fail("ndarray state must be (version, shape, dtype, fortran_order, data)")
        dtype = state[2]
        if isinstance(dtype, sp._PendingDtype) and dtype.dtype is not None \
                and dtype.dtype.kind == "O":
            _build_object_array(r, target, state)
        else:
            sp._build_array(r, target, state)
    elif isinstance(target, sp._PendingDtype) and target.dtype is None:
        sp._build_dtype(r, target, state)
    else:
        raise r.fail(f"BUILD on {type(target).__name__} is not allowed")


def _memoize(r: _Reader) -> None:
    sp._put(r, len(r.memo))


def _short_binunicode(r: _Reader) -> None:
    raw = r.take(r.uint(1))
    try:
        r.stack.append(raw.decode("utf-8", "surrogatepass"))
    except UnicodeDecodeError:
        raise r.fail("SHORT_BINUNICODE is not valid UTF-8") from None


_OPCODES = {
    **{k: v for k, v in sp._OPCODES.items() if k != b"\x81"},  # no NEWOBJ (no CSR here)
    b"\x80": _proto,  # PROTO
    b"c": _global,  # GLOBAL
    b"\x93": _stack_global,  # STACK_GLOBAL
    b"R": _reduce,  # REDUCE
    b"b": _build,  # BUILD
    b"\x94": _memoize,  # MEMOIZE
    b"\x95": lambda r: r.take(8) and None,  # FRAME: a length prefix only
    b"\x8c": _short_binunicode,  # SHORT_BINUNICODE
    b"C": lambda r: sp._binstring(r, r.uint(1)),  # SHORT_BINBYTES
    b"B": lambda r: sp._binstring(r, r.uint(4)),  # BINBYTES
}


def loads_object_array(data: bytes, source: str):
    """The object (or numeric) ndarray pickled in ``data``; see the module notes."""
    reader = _Reader(bytes(data), source)
    try:
        out = reader.run()
    except CorruptFileError:
        raise
    except (TypeError, ValueError, OverflowError, MemoryError) as exc:
        raise reader.fail(f"malformed data ({type(exc).__name__}: {exc})") from exc
    if not isinstance(out, np.ndarray):
        raise reader.fail(f"expected a pickled ndarray, found {type(out).__name__}")
    return out


def _read_member(data: bytes, source: str):
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except ValueError as exc:
        raise CorruptFileError(f"{source}: not a valid .npy member ({exc}).") from exc
    if dtype.hasobject:
        array = loads_object_array(f.read(), source)
        if array.shape != tuple(shape):
            raise CorruptFileError(f"{source}: the header says shape {tuple(shape)}, the data "
                                   f"has {array.shape}.")
        return array
    f.seek(0)
    try:
        return np.lib.format.read_array(f, allow_pickle=False)
    except ValueError as exc:
        raise CorruptFileError(f"{source}: {exc}") from exc


def load_npz(path: str | os.PathLike) -> dict:
    """Every array of a ``.npz`` archive, object arrays read safely (no unpickling).

    Args:
        path: the archive (e.g. Keras's ``imdb.npz``).

    Returns:
        dict ``{name: ndarray}`` (names without ``.npy``).

    Raises:
        CorruptFileError: not a zip archive, a malformed member, or a pickle outside what
            this module reads.
    """
    path = os.fspath(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CorruptFileError(f"{path}: not a valid .npz archive ({exc}); replace the file "
                               "with the original.") from exc
    out = {}
    with archive:
        for name in archive.namelist():
            if not name.endswith(".npy"):
                continue
            try:
                data = archive.read(name)
            except (zipfile.BadZipFile, OSError, ValueError) as exc:  # CRC error, truncation
                raise CorruptFileError(f"{path}: member {name} cannot be read ({exc}).") from exc
            out[name[:-4]] = _read_member(data, f"{path}:{name}")
    return out
