"""A strict reader for the Python-2 pickles of the Planetoid datasets, without the pickle module.

Kipf & Welling's GCN data files (``ind.cora.x`` ...) are protocol-2 pickles of NumPy arrays,
``scipy.sparse.csr_matrix`` objects and a ``collections.defaultdict(list)``. Unpickling runs
whatever callables a file names, so fundl never unpickles. This module walks the opcode stream
itself, understands only the opcodes those files use, and turns only an explicit allow-list of
GLOBAL names into objects, each through a constructor written here; nothing named in a file is
imported or called. Any other opcode or GLOBAL raises :class:`fundl.saving.CorruptFileError`
naming the file, the byte offset and the offender.

What comes back:

- ``numpy.core.multiarray._reconstruct`` + ``numpy.ndarray`` + ``numpy.dtype``: a NumPy array
  (boolean, integer, unsigned or float dtype only; never ``object``), built from the raw bytes;
- ``scipy.sparse.csr.csr_matrix``: a :class:`CsrArrays` with ``data``, ``indices``, ``indptr``
  and ``shape`` (SciPy is not needed);
- ``collections.defaultdict`` with ``__builtin__.list``: a plain ``dict`` (no default factory, so
  a lookup of a missing key fails instead of inventing an empty entry);
- Python-2 ``str`` (SHORT_BINSTRING/BINSTRING) as ``bytes``; ``unicode`` (BINUNICODE) as ``str``;
  ints, floats, True/False/None, tuples, lists and dicts as themselves.

Example:
    >>> from fundl.datasets._safe_pickle import load
    >>> ally = load("/work/shared/data/planetoid/ind.cora.ally")  # doctest: +SKIP
    >>> ally.shape, ally.dtype  # doctest: +SKIP
    ((1708, 7), dtype('int32'))
"""

from __future__ import annotations

import math
import os
import re
import struct
from dataclasses import dataclass

import numpy as np

from ..saving import CorruptFileError

# The module names are those Python 2 / NumPy 1 / SciPy < 1.8 wrote (what the Planetoid files
# hold), plus the names newer versions write for the same objects when a file is re-pickled.
_RECONSTRUCT = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
}
_NDARRAY = {("numpy", "ndarray")}
_DTYPE = {("numpy", "dtype")}
_CSR = {("scipy.sparse.csr", "csr_matrix"), ("scipy.sparse._csr", "csr_matrix")}
_DEFAULTDICT = {("collections", "defaultdict")}
_LIST = {("__builtin__", "list"), ("builtins", "list")}
_ALLOWED = _RECONSTRUCT | _NDARRAY | _DTYPE | _CSR | _DEFAULTDICT | _LIST
# Plain numeric dtypes only: "object" arrays would carry pickled Python objects.
_DTYPE_CODE = re.compile(r"b1|[iu][1248]|f[248]")
_BYTEORDERS = {"<", ">", "|", "="}


@dataclass
class CsrArrays:
    """The parts of a ``scipy.sparse.csr_matrix`` read from a pickle.

    Row ``r`` holds the values ``data[indptr[r]:indptr[r + 1]]`` at the columns
    ``indices[indptr[r]:indptr[r + 1]]``.

    Attributes:
        data: (nnz,) values.
        indices: (nnz,) column index of each value.
        indptr: (rows + 1,) start of each row in ``data``/``indices``.
        shape: ``(rows, cols)``.
    """

    data: np.ndarray | None = None
    indices: np.ndarray | None = None
    indptr: np.ndarray | None = None
    shape: tuple[int, int] | None = None


class _Global:
    """An allowed GLOBAL, pushed as a name token: the real object is never looked up."""

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def key(self) -> tuple[str, str]:
        return self.module, self.name


class _PendingArray:
    """What ``_reconstruct(ndarray, (0,), b"b")`` returns: an empty array that BUILD fills."""

    __slots__ = ("array",)

    def __init__(self):
        self.array = None


class _PendingDtype:
    """What ``dtype("i4", 0, 1)`` returns: BUILD's state then gives the byte order."""

    __slots__ = ("code", "dtype")

    def __init__(self, code: str):
        self.code, self.dtype = code, None


class _Reader:
    """One pass over an opcode stream; ``fail`` turns any problem into CorruptFileError."""

    def __init__(self, data: bytes, source: str):
        self.data, self.source, self.pos = data, source, 0
        self.op_pos = 0  # offset of the opcode being run, for error messages
        self.stack: list = []
        self.marks: list[int] = []
        self.memo: dict[int, object] = {}

    def fail(self, what: str) -> CorruptFileError:
        return CorruptFileError(
            f"{self.source}: {what} (at byte {self.op_pos}). fundl reads only the Planetoid pickle "
            "subset (NumPy arrays, SciPy CSR matrices, defaultdict(list)) and never runs code "
            "from a file; replace the file with the original."
        )

    # -- raw reads -------------------------------------------------------------------------
    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(
                f"file is truncated: needs {n} more bytes, {len(self.data) - self.pos} left"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "little")

    def line(self) -> str:
        end = self.data.find(b"\n", self.pos)
        if end < 0:
            raise self.fail("file is truncated inside a GLOBAL name")
        text = self.take(end + 1 - self.pos)[:-1]
        try:
            return text.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"GLOBAL name {text!r} is not ASCII") from None

    # -- stack helpers ---------------------------------------------------------------------
    def pop(self):
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
            raise self.fail("stack underflow")
        return self.stack.pop()

    def pop_mark(self) -> list:
        if not self.marks:
            raise self.fail("no MARK on the stack")
        start = self.marks.pop()
        items = self.stack[start:]
        del self.stack[start:]
        return items

    def top(self, kind, what: str):
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
            raise self.fail("stack underflow")
        obj = self.stack[-1]
        if not isinstance(obj, kind):
            raise self.fail(f"{what} expects a {kind.__name__} below, found {type(obj).__name__}")
        return obj

    # -- main loop -------------------------------------------------------------------------
    def run(self):
        while True:
            self.op_pos = self.pos
            code = self.take(1)
            handler = _OPCODES.get(code)
            if handler is None:
                raise self.fail(f"unsupported opcode {code!r} (0x{code[0]:02x})")
            if handler is _stop:
                return self.finish()
            handler(self)

    def finish(self):
        if self.marks or len(self.stack) != 1:
            raise self.fail(f"STOP with {len(self.stack)} objects on the stack, expected 1")
        if self.pos != len(self.data):
            raise self.fail(f"{len(self.data) - self.pos} bytes of trailing data after STOP")
        return _unwrap(self, self.stack[0])


def _unwrap(r: _Reader, obj):
    """Replace a finished pending array by its ndarray (one never built is an error)."""
    if isinstance(obj, _PendingArray):
        if obj.array is None:
            raise r.fail("an array was created but never filled by BUILD")
        return obj.array
    if isinstance(obj, CsrArrays) and obj.shape is None:
        raise r.fail("a csr_matrix was created but never filled by BUILD")
    if isinstance(obj, (_Global, _PendingDtype)):
        raise r.fail(f"a bare {type(obj).__name__.lstrip('_')} is not a value")
    return obj


def _text(r: _Reader, value, what: str) -> str:
    """Python-2 ``str`` arrives as bytes (latin-1 maps each byte to one character)."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, str):
        return value
    raise r.fail(f"{what} must be a string, got {type(value).__name__}")


# -- constructors for the allowed GLOBALs (REDUCE / NEWOBJ / BUILD) ---------------------------
def _reduce_reconstruct(r: _Reader, args: tuple):
    # numpy.core.multiarray._reconstruct(ndarray, (0,), b"b"): an empty array, BUILD sets the rest.
    if len(args) != 3 or not isinstance(args[0], _Global) or args[0].key() not in _NDARRAY:
        raise r.fail("_reconstruct must be called as _reconstruct(numpy.ndarray, shape, typecode)")
    return _PendingArray()


def _reduce_dtype(r: _Reader, args: tuple):
    # numpy.dtype("i4", align, copy): the byte order comes in BUILD's state.
    if len(args) != 3:
        raise r.fail(f"numpy.dtype expects 3 arguments, got {len(args)}")
    code = _text(r, args[0], "a dtype code")
    if not _DTYPE_CODE.fullmatch(code):
        raise r.fail(f"dtype {code!r} is not allowed (only bool, int, uint and float dtypes)")
    return _PendingDtype(code)


def _reduce_defaultdict(r: _Reader, args: tuple):
    if len(args) != 1 or not isinstance(args[0], _Global) or args[0].key() not in _LIST:
        raise r.fail("only defaultdict(list) is allowed")
    return {}


_REDUCERS = {
    **dict.fromkeys(_RECONSTRUCT, _reduce_reconstruct),
    **dict.fromkeys(_DTYPE, _reduce_dtype),
    **dict.fromkeys(_DEFAULTDICT, _reduce_defaultdict),
}


def _build_dtype(r: _Reader, target: _PendingDtype, state) -> None:
    # state = (version, byteorder, subdescr, names, fields, elsize, alignment, flags)
    if (
        not isinstance(state, tuple)
        or len(state) not in (8, 9)
        or any(s is not None for s in state[2:5])
    ):
        raise r.fail("dtype state is not that of a plain numeric dtype")
    order = _text(r, state[1], "a dtype byte order")
    if order not in _BYTEORDERS:
        raise r.fail(f"dtype byte order {order!r} is not one of < > | =")
    dtype = np.dtype(target.code)
    target.dtype = dtype.newbyteorder(order) if order in "<>" else dtype


def _build_array(r: _Reader, target: _PendingArray, state) -> None:
    # state = (version, shape, dtype, is_fortran, raw bytes)
    if not isinstance(state, tuple) or len(state) != 5:
        raise r.fail("ndarray state must be (version, shape, dtype, fortran_order, data)")
    _, shape, dtype, fortran, raw = state
    if not (isinstance(shape, tuple) and all(type(d) is int and d >= 0 for d in shape)):
        raise r.fail(f"ndarray shape must be a tuple of non-negative ints, got {shape!r}")
    if not isinstance(dtype, _PendingDtype) or dtype.dtype is None:
        raise r.fail("ndarray dtype must be a numpy.dtype built earlier in the file")
    if isinstance(raw, str):  # a Python-2 str decoded as latin-1 holds one byte per character
        raw = raw.encode("latin-1")
    if not isinstance(raw, bytes):
        raise r.fail(f"ndarray data must be raw bytes, got {type(raw).__name__}")
    expected = math.prod(shape) * dtype.dtype.itemsize
    if len(raw) != expected:
        raise r.fail(
            f"ndarray of shape {shape} and dtype {dtype.dtype} needs {expected} bytes, "
            f"found {len(raw)}"
        )
    array = np.frombuffer(raw, dtype=dtype.dtype).reshape(shape, order="F" if fortran else "C")
    # Native byte order and a writable copy, so callers can use the array like any other.
    target.array = array.astype(dtype.dtype.newbyteorder("="), order="C")


def _build_csr(r: _Reader, target: CsrArrays, state) -> None:
    if not isinstance(state, dict):
        raise r.fail("csr_matrix state must be a dict")
    fields = {}
    for key, value in state.items():
        fields[_text(r, key, "a csr_matrix attribute name")] = value
    missing = [k for k in ("data", "indices", "indptr", "_shape") if k not in fields]
    if missing:
        raise r.fail(f"csr_matrix state lacks {', '.join(missing)}")
    shape = fields["_shape"]
    if not (
        isinstance(shape, tuple)
        and len(shape) == 2
        and all(type(d) is int and d >= 0 for d in shape)
    ):
        raise r.fail(f"csr_matrix shape must be two non-negative ints, got {shape!r}")
    parts = {}
    for k in ("data", "indices", "indptr"):
        value = fields[k]  # SETITEMS already turned the built arrays into ndarrays
        if not (isinstance(value, np.ndarray) and value.ndim == 1):
            raise r.fail(f"csr_matrix {k} must be a 1-D array")
        parts[k] = value
    target.data, target.indices, target.indptr, target.shape = (
        parts["data"],
        parts["indices"],
        parts["indptr"],
        shape,
    )


# -- opcode handlers --------------------------------------------------------------------------
def _proto(r: _Reader) -> None:
    version = r.uint(1)
    if version > 2:
        raise r.fail(f"pickle protocol {version} is not supported (the Planetoid files use 2)")


def _global(r: _Reader) -> None:
    module, name = r.line(), r.line()
    if (module, name) not in _ALLOWED:
        raise r.fail(
            f"refusing GLOBAL '{module}.{name}': only NumPy arrays, SciPy CSR matrices "
            "and defaultdict(list) may appear in a Planetoid file"
        )
    r.stack.append(_Global(module, name))


def _reduce(r: _Reader) -> None:
    args = r.pop()
    func = r.pop()
    if not isinstance(args, tuple):
        raise r.fail(f"REDUCE expects an argument tuple, got {type(args).__name__}")
    reducer = _REDUCERS.get(func.key()) if isinstance(func, _Global) else None
    if reducer is None:
        what = f"'{func.module}.{func.name}'" if isinstance(func, _Global) else type(func).__name__
        raise r.fail(f"REDUCE on {what} is not allowed")
    r.stack.append(reducer(r, args))


def _newobj(r: _Reader) -> None:
    args = r.pop()
    cls = r.pop()
    if not (
        isinstance(cls, _Global) and cls.key() in _CSR and isinstance(args, tuple) and not args
    ):
        raise r.fail("NEWOBJ is allowed only as csr_matrix.__new__(csr_matrix)")
    r.stack.append(CsrArrays())


def _build(r: _Reader) -> None:
    state = r.pop()
    target = r.top(object, "BUILD")
    if isinstance(target, _PendingArray) and target.array is None:
        _build_array(r, target, state)
    elif isinstance(target, _PendingDtype) and target.dtype is None:
        _build_dtype(r, target, state)
    elif isinstance(target, CsrArrays) and target.shape is None:
        _build_csr(r, target, state)
    else:
        raise r.fail(f"BUILD on {type(target).__name__} is not allowed")


def _setitems(r: _Reader, pairs: list) -> None:
    if len(pairs) % 2:
        raise r.fail("SETITEMS needs key/value pairs")
    target = r.top(dict, "SETITEM(S)")
    try:
        for i in range(0, len(pairs), 2):
            target[pairs[i]] = _unwrap(r, pairs[i + 1])
    except TypeError as exc:  # an unhashable key such as a list
        raise r.fail(f"bad dict key ({exc})") from None


def _setitem(r: _Reader) -> None:
    value = r.pop()
    key = r.pop()
    _setitems(r, [key, value])


def _appends(r: _Reader, items: list) -> None:
    r.top(list, "APPEND(S)").extend(_unwrap(r, x) for x in items)


def _put(r: _Reader, index: int) -> None:
    if not r.stack:
        raise r.fail("PUT with an empty stack")
    r.memo[index] = r.stack[-1]


def _get(r: _Reader, index: int) -> None:
    if index not in r.memo:
        raise r.fail(f"GET of memo slot {index}, which was never PUT")
    r.stack.append(r.memo[index])


def _tuple(r: _Reader, n: int) -> None:
    items = [r.pop() for _ in range(n)][::-1]
    r.stack.append(tuple(items))


def _binstring(r: _Reader, n: int) -> None:
    if n < 0:
        raise r.fail(f"negative string length {n}")
    r.stack.append(r.take(n))


def _binunicode(r: _Reader) -> None:
    raw = r.take(r.uint(4))
    try:
        r.stack.append(raw.decode("utf-8", "surrogatepass"))
    except UnicodeDecodeError:
        raise r.fail("BINUNICODE is not valid UTF-8") from None


def _stop(r: _Reader) -> None:  # handled in _Reader.run; present so the table names it
    raise AssertionError("unreachable")


_OPCODES = {
    b"\x80": _proto,  # PROTO
    b"c": _global,  # GLOBAL
    b"R": _reduce,  # REDUCE
    b"\x81": _newobj,  # NEWOBJ
    b"b": _build,  # BUILD
    b".": _stop,  # STOP
    b"(": lambda r: r.marks.append(len(r.stack)),  # MARK
    b"}": lambda r: r.stack.append({}),  # EMPTY_DICT
    b"]": lambda r: r.stack.append([]),  # EMPTY_LIST
    b")": lambda r: r.stack.append(()),  # EMPTY_TUPLE
    b"\x85": lambda r: _tuple(r, 1),  # TUPLE1
    b"\x86": lambda r: _tuple(r, 2),  # TUPLE2
    b"\x87": lambda r: _tuple(r, 3),  # TUPLE3
    b"t": lambda r: r.stack.append(tuple(r.pop_mark())),  # TUPLE
    b"s": _setitem,  # SETITEM
    b"u": lambda r: _setitems(r, r.pop_mark()),  # SETITEMS
    b"a": lambda r: _appends(r, [r.pop()]),  # APPEND
    b"e": lambda r: _appends(r, r.pop_mark()),  # APPENDS
    b"q": lambda r: _put(r, r.uint(1)),  # BINPUT
    b"r": lambda r: _put(r, r.uint(4)),  # LONG_BINPUT
    b"h": lambda r: _get(r, r.uint(1)),  # BINGET
    b"j": lambda r: _get(r, r.uint(4)),  # LONG_BINGET
    b"J": lambda r: r.stack.append(int.from_bytes(r.take(4), "little", signed=True)),  # BININT
    b"K": lambda r: r.stack.append(r.uint(1)),  # BININT1
    b"M": lambda r: r.stack.append(r.uint(2)),  # BININT2
    b"\x8a": lambda r: r.stack.append(
        int.from_bytes(r.take(r.uint(1)), "little", signed=True)
    ),  # LONG1
    b"G": lambda r: r.stack.append(struct.unpack(">d", r.take(8))[0]),  # BINFLOAT
    b"U": lambda r: _binstring(r, r.uint(1)),  # SHORT_BINSTRING
    b"T": lambda r: _binstring(r, int.from_bytes(r.take(4), "little", signed=True)),  # BINSTRING
    b"X": _binunicode,  # BINUNICODE
    b"\x88": lambda r: r.stack.append(True),  # NEWTRUE
    b"\x89": lambda r: r.stack.append(False),  # NEWFALSE
    b"N": lambda r: r.stack.append(None),  # NONE
}


def loads(data: bytes, source: str = "<bytes>"):
    """Read one object from a Planetoid-style protocol-2 pickle held in memory.

    Args:
        data: the whole file's bytes.
        source: name used in error messages (normally the file path).

    Returns:
        an ndarray, :class:`CsrArrays`, dict, list, tuple, bytes, str, int, float, bool or None.

    Raises:
        CorruptFileError: an opcode or GLOBAL outside the allow-list, a malformed or truncated
            stream, or trailing bytes after STOP; the message names ``source``, the byte offset
            and the offender.

    Example:
        >>> loads(b"\\x80\\x02]q\\x00(K\\x01K\\x02e.")
        [1, 2]
    """
    reader = _Reader(bytes(data), source)
    try:
        return reader.run()
    except CorruptFileError:
        raise
    except (
        TypeError,
        ValueError,
        OverflowError,
        MemoryError,
    ) as exc:  # e.g. NumPy refusing a dtype
        raise reader.fail(f"malformed data ({type(exc).__name__}: {exc})") from exc


def load(path: str | os.PathLike):
    """Read the object in a Planetoid pickle file; see :func:`loads`.

    Args:
        path: the file, e.g. ``.../planetoid/ind.cora.allx``.

    Returns:
        the object, as described in :func:`loads`.

    Example:
        >>> load("/work/shared/data/planetoid/ind.cora.tx").shape  # doctest: +SKIP
        (1000, 1433)
    """
    with open(path, "rb") as f:
        data = f.read()
    return loads(data, os.fspath(path))
