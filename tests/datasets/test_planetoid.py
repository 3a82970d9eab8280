"""The strict Planetoid pickle reader on hand-written opcode streams.

And Cora, Citeseer and Pubmed from FUNDL_DATA_DIR.
"""

import os
import struct
from pathlib import Path

import numpy as np
import pytest

from fundl.datasets import DatasetNotFoundError, planetoid
from fundl.datasets import _safe_pickle as sp
from fundl.saving import CorruptFileError

REAL_DATA_DIR = os.environ.get("FUNDL_DATA_DIR")
P2 = b"\x80\x02"  # PROTO 2


def gl(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def s(text: bytes) -> bytes:  # SHORT_BINSTRING
    return b"U" + bytes([len(text)]) + text


def array_pickle(a: np.ndarray, binstring: bool = True) -> bytes:
    """What numpy 1 under Python 2 writes for an ndarray, in the Planetoid files' opcode style."""
    raw = a.tobytes()
    order = {"<": b"<", ">": b">", "|": b"|", "=": b"<"}[a.dtype.byteorder]
    code = a.dtype.str[1:].encode()
    dims = b"".join(b"J" + struct.pack("<i", d) for d in a.shape)
    return (
        gl("numpy.core.multiarray", "_reconstruct")
        + b"q\x01"
        + gl("numpy", "ndarray")
        + b"q\x02K\x00\x85"
        + s(b"b")
        + b"\x87Rq\x03(K\x01("
        + dims
        + b"t"
        + gl("numpy", "dtype")
        + b"q\x04"
        + s(code)
        + b"K\x00K\x01\x87Rq\x05"
        + b"(K\x03"
        + s(order)
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
        + b"\x89"
        + (b"T" + struct.pack("<i", len(raw)) if binstring else b"X" + struct.pack("<I", len(raw)))
        + raw
        + b"tb"
    )


def csr_pickle(data, indices, indptr, shape) -> bytes:
    return (
        P2
        + gl("scipy.sparse.csr", "csr_matrix")
        + b"q\x01)\x81q\x02}q\x03("
        + s(b"_shape")
        + b"K"
        + bytes([shape[0]])
        + b"K"
        + bytes([shape[1]])
        + b"\x86"
        + s(b"indptr")
        + array_pickle(np.asarray(indptr, np.int32))
        + s(b"indices")
        + array_pickle(np.asarray(indices, np.int32))
        + s(b"data")
        + array_pickle(np.asarray(data, np.float32))
        + s(b"maxprint")
        + b"K2"
        + s(b"format")
        + s(b"csr")
        + b"ub."
    )


# -- the reader, one opcode family at a time --------------------------------------------------
@pytest.mark.parametrize(
    "stream, expected",
    [
        (P2 + b"K\x07.", 7),  # BININT1
        (P2 + b"M\x34\x12.", 0x1234),  # BININT2
        (P2 + b"J\xfe\xff\xff\xff.", -2),  # BININT
        (P2 + b"\x8a\x02\x00\x80.", -32768),  # LONG1
        (P2 + b"\x8a\x00.", 0),  # LONG1, empty
        (P2 + b"G" + struct.pack(">d", 2.5) + b".", 2.5),  # BINFLOAT
        (P2 + b"U\x03abc.", b"abc"),  # SHORT_BINSTRING
        (P2 + b"T\x02\x00\x00\x00\xe9z.", b"\xe9z"),  # BINSTRING
        (P2 + b"X\x02\x00\x00\x00\xc3\xa9.", "\u00e9"),  # BINUNICODE
        (P2 + b"\x88.", True),
        (P2 + b"\x89.", False),
        (P2 + b"N.", None),  # NEWTRUE/NEWFALSE/NONE
        (P2 + b").", ()),  # EMPTY_TUPLE
        (P2 + b"K\x01\x85.", (1,)),  # TUPLE1
        (P2 + b"K\x01K\x02\x86.", (1, 2)),  # TUPLE2
        (P2 + b"K\x01K\x02K\x03\x87.", (1, 2, 3)),  # TUPLE3
        (P2 + b"(K\x01K\x02K\x03K\x04t.", (1, 2, 3, 4)),  # MARK + TUPLE
        (P2 + b"]K\x05a.", [5]),  # EMPTY_LIST + APPEND
        (P2 + b"](K\x01K\x02e.", [1, 2]),  # APPENDS
        (P2 + b"}K\x01K\x02s.", {1: 2}),  # EMPTY_DICT + SETITEM
        (P2 + b"}(K\x01K\x02K\x03K\x04u.", {1: 2, 3: 4}),  # SETITEMS
        (P2 + b"]q\x00h\x00\x86.", ([], [])),  # BINPUT + BINGET
        (P2 + b"]r\x00\x01\x00\x00j\x00\x01\x00\x00\x86.", ([], [])),  # LONG_BINPUT/LONG_BINGET
        (b"K\x01.", 1),  # no PROTO is fine
    ],
)
def test_reader_opcodes(stream, expected):
    assert sp.loads(stream) == expected


def test_reader_memo_shares_objects():
    a, b = sp.loads(P2 + b"]q\x00h\x00\x86.")
    assert a is b


@pytest.mark.parametrize(
    "a",
    [
        np.arange(6, dtype=np.int32).reshape(2, 3),
        np.linspace(-1, 1, 5).astype(">f8"),
        np.array([[True, False]]),
        np.zeros((0, 4), np.float32),
    ],
)
def test_reader_arrays(a):
    got = sp.loads(P2 + array_pickle(a) + b".")
    assert got.shape == a.shape and got.dtype == a.dtype.newbyteorder("=") and got.dtype.isnative
    np.testing.assert_array_equal(got, a)
    assert got.flags.writeable


def test_reader_array_data_as_unicode_text():
    # A py2 str that was decoded (latin-1) on its way in must still give the same bytes.
    a = np.array([200, 1, 255], np.uint8)
    text = a.tobytes().decode("latin-1").encode("utf-8")  # 5 UTF-8 bytes for 3 characters
    stream = array_pickle(a, binstring=False).replace(
        b"X\x03\x00\x00\x00" + a.tobytes(), b"X" + struct.pack("<I", len(text)) + text
    )
    np.testing.assert_array_equal(sp.loads(P2 + stream + b"."), a)


def test_reader_csr():
    m = sp.loads(csr_pickle([1.0, 2.0, 3.0], [0, 2, 1], [0, 2, 2, 3], (3, 3)))
    assert isinstance(m, sp.CsrArrays) and m.shape == (3, 3)
    np.testing.assert_array_equal(m.indptr, [0, 2, 2, 3])
    np.testing.assert_array_equal(m.indices, [0, 2, 1])
    np.testing.assert_array_equal(m.data, np.array([1, 2, 3], np.float32))


def test_reader_defaultdict_list_is_plain_dict():
    stream = (
        P2
        + gl("collections", "defaultdict")
        + b"q\x01"
        + gl("__builtin__", "list")
        + b"q\x02\x85Rq\x03(K\x00]q\x04(K\x01K\x02eK\x01]q\x05K\x00au."
    )
    got = sp.loads(stream)
    assert type(got) is dict and got == {0: [1, 2], 1: [0]}


@pytest.mark.parametrize(
    "module, name",
    [
        ("os", "system"),
        ("builtins", "eval"),
        ("__builtin__", "eval"),
        ("numpy", "load"),
        ("subprocess", "Popen"),
    ],
)
def test_reader_rejects_forbidden_global(module, name):
    stream = P2 + gl(module, name) + s(b"echo hi") + b"\x85R."
    with pytest.raises(
        CorruptFileError, match=rf"<bytes>: refusing GLOBAL '{module}\.{name}'.*at byte 2"
    ):
        sp.loads(stream)


def test_reader_never_calls_a_global(monkeypatch, tmp_path):
    # Even an allowed name is never looked up: replacing the real function must not matter.
    import collections

    import numpy.core.multiarray as ma

    calls = []
    monkeypatch.setattr(ma, "_reconstruct", lambda *a: calls.append(a))
    monkeypatch.setattr(collections, "defaultdict", lambda *a: calls.append(a))
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))
    sp.loads(P2 + array_pickle(np.arange(3)) + b".")
    sp.loads(P2 + gl("collections", "defaultdict") + gl("__builtin__", "list") + b"\x85R.")
    with pytest.raises(CorruptFileError):
        sp.loads(P2 + gl("os", "system") + s(b"touch x") + b"\x85R.")
    path = tmp_path / "evil.pkl"
    path.write_bytes(P2 + gl("os", "system") + s(b"touch x") + b"\x85R.")
    with pytest.raises(CorruptFileError, match="evil.pkl"):
        sp.load(path)
    assert calls == []


@pytest.mark.parametrize(
    "stream, match",
    [
        (
            P2 + b"K\x01\x94.",
            r"unsupported opcode b'\\x94' \(0x94\) \(at byte 4\)",
        ),  # MEMOIZE (protocol 4)
        (P2 + b"I1\n.", "unsupported opcode b'I'"),  # INT (protocol 0 text)
        (b"\x80\x04K\x01.", "protocol 4 is not supported"),
        (P2 + b"T\x10\x00\x00\x00abc", "truncated: needs 16 more bytes, 3 left"),
        (P2 + b"J\x01\x00", "truncated"),
        (P2 + b"K\x01", "truncated: needs 1 more bytes, 0 left"),  # no STOP
        (P2 + b"cnumpy\nndar", "truncated inside a GLOBAL name"),
        (P2 + b"K\x01K\x02.", "STOP with 2 objects"),
        (P2 + b"K\x01.K\x02.", "trailing data"),
        (P2 + b"h\x05.", "memo slot 5, which was never PUT"),
        (P2 + b"t.", "no MARK"),
        (P2 + b"(a.", "stack underflow"),
        (P2 + b"K\x01K\x02a.", "APPEND\\(S\\) expects a list"),
        (P2 + b"}]K\x01s.", "bad dict key"),
        (P2 + b"K\x01K\x02R.", "REDUCE expects an argument tuple"),
        (P2 + b"K\x01)R.", "REDUCE on int is not allowed"),
        (P2 + gl("numpy", "ndarray") + b".", "bare Global is not a value"),
        (P2 + b"]K\x01b.", "BUILD on list is not allowed"),
        (P2 + gl("numpy", "dtype") + s(b"O8") + b"K\x00K\x01\x87R.", "dtype 'O8' is not allowed"),
        (
            P2 + gl("collections", "defaultdict") + gl("__builtin__", "dict") + b"\x85R.",
            "refusing GLOBAL '__builtin__.dict'",
        ),
        (P2 + gl("collections", "defaultdict") + b"K\x01\x85R.", r"only defaultdict\(list\)"),
        (P2 + gl("scipy.sparse.csr", "csr_matrix") + b"K\x01\x85\x81.", "NEWOBJ is allowed only"),
        (
            P2
            + gl("numpy.core.multiarray", "_reconstruct")
            + gl("numpy", "ndarray")
            + b"K\x00\x85"
            + s(b"b")
            + b"\x87R.",
            "never filled by BUILD",
        ),
    ],
)
def test_reader_rejects_malformed(stream, match):
    with pytest.raises(CorruptFileError, match=match):
        sp.loads(stream)


def test_reader_array_size_mismatch():
    stream = array_pickle(np.arange(4, dtype=np.int32)).replace(
        b"T\x10\x00\x00\x00", b"T\x0c\x00\x00\x00"
    )
    stream = stream.replace(
        np.arange(4, dtype=np.int32).tobytes(), np.arange(3, dtype=np.int32).tobytes()
    )
    with pytest.raises(CorruptFileError, match=r"needs 16 bytes, found 12"):
        sp.loads(P2 + stream + b".")


def test_reader_every_truncation_of_a_csr_is_an_error():
    full = csr_pickle([1.0, 2.0], [0, 1], [0, 1, 2], (2, 2))
    for cut in range(len(full)):
        with pytest.raises(CorruptFileError):
            sp.loads(full[:cut])


def test_git_blob_sha1(tmp_path):
    empty, hello = tmp_path / "e", tmp_path / "h"
    empty.write_bytes(b"")
    hello.write_bytes(b"hello\n")
    assert planetoid.git_blob_sha1(empty) == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    assert planetoid.git_blob_sha1(hello) == "ce013625030ba8dba906f756967f9e9ca394464a"


# -- the loader on the real files ---------------------------------------------------------------
def _real(name, monkeypatch, tmp_path):
    if not REAL_DATA_DIR:
        pytest.skip("FUNDL_DATA_DIR is not set (CI sets it to ../shared/data)")
    folder = Path(REAL_DATA_DIR) / planetoid.SUBDIR
    missing = [
        f for f in planetoid.MD5S if f.startswith(f"ind.{name}.") and not (folder / f).is_file()
    ]
    if missing:
        pytest.skip(f"{folder}/ lacks {', '.join(missing)}")
    monkeypatch.setenv("FUNDL_CACHE_DIR", str(tmp_path / "cache"))  # never touch the user's cache
    monkeypatch.setenv("FUNDL_DATASETS_URL", "http://127.0.0.1:9")  # and never the network
    return planetoid.load_data(name, progress=False)


def _check_common(g, n, f, classes, e, n_train):
    assert g.x.shape == (n, f) and g.x.dtype == np.float32
    assert g.y.shape == (n,) and g.y.dtype == np.int64 and g.num_classes == classes
    assert g.edges.shape == (2, e) and g.edges.dtype == np.int64
    src, dst = g.edges
    assert np.all(src != dst)
    codes = src * n + dst
    assert np.all(np.diff(codes) > 0)  # sorted, no duplicates
    assert np.array_equal(np.sort(dst * n + src), codes)  # both directions present
    np.testing.assert_array_equal(g.train_index, np.arange(n_train))
    np.testing.assert_array_equal(g.val_index, np.arange(n_train, n_train + 500))
    assert len(g.test_index) == 1000 and np.all(np.diff(g.test_index) > 0)
    assert g.train_index.dtype == g.val_index.dtype == g.test_index.dtype == np.int64
    split = np.concatenate([g.train_index, g.val_index, g.test_index])
    assert np.all(g.y[split] >= 0)
    assert np.bincount(g.y[g.train_index]).tolist() == [20] * classes


def test_cora(monkeypatch, tmp_path):
    g = _real("cora", monkeypatch, tmp_path)
    _check_common(g, 2708, 1433, 7, 10556, 140)
    assert g.name == "cora" and g.num_nodes == 2708
    assert np.bincount(g.y).tolist() == [351, 217, 418, 818, 426, 298, 180]
    assert g.test_index[0] == 1708 and g.test_index[-1] == 2707
    assert set(np.unique(g.x)) == {0.0, 1.0} and g.x.sum() == 31261 + 17955  # nnz of allx + tx
    # tx row i lies at node test.index[i]: the file's first test id is 2692.
    folder = Path(REAL_DATA_DIR) / "planetoid"
    first = int((folder / "ind.cora.test.index").read_text().split()[0])
    tx = sp.load(folder / "ind.cora.tx")
    row0 = np.zeros(1433, np.float32)
    row0[tx.indices[tx.indptr[0] : tx.indptr[1]]] = tx.data[tx.indptr[0] : tx.indptr[1]]
    np.testing.assert_array_equal(g.x[first], row0)


def test_citeseer(monkeypatch, tmp_path):
    g = _real("citeseer", monkeypatch, tmp_path)
    _check_common(g, 3327, 3703, 6, 9104, 120)
    unlabelled = np.flatnonzero(g.y < 0)
    assert len(unlabelled) == 15 and np.all(unlabelled >= 2312)
    assert not np.isin(unlabelled, g.test_index).any()
    assert np.all(g.x[unlabelled] == 0)
    # With PyG's convention (class 0 for the 15), the counts are PyG's.
    assert np.bincount(np.maximum(g.y, 0)).tolist() == [264, 590, 668, 701, 596, 508]


def test_pubmed_without_allx_says_where_to_put_it(monkeypatch, tmp_path):
    if not REAL_DATA_DIR:
        pytest.skip("FUNDL_DATA_DIR is not set")
    if (Path(REAL_DATA_DIR) / "planetoid" / "ind.pubmed.allx").is_file():
        pytest.skip("this FUNDL_DATA_DIR has ind.pubmed.allx")
    monkeypatch.setenv("FUNDL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FUNDL_DATASETS_URL", "http://127.0.0.1:9")
    with pytest.raises(DatasetNotFoundError, match="ind.pubmed.allx") as err:
        planetoid.load_data("pubmed", progress=False)
    msg = str(err.value)
    assert "planetoid/" in msg and str(tmp_path / "cache" / "planetoid") in msg
    assert planetoid.GIT_BLOBS["ind.pubmed.allx"] in msg


# -- the loader on a tiny hand-made dataset (runs without the real files) ----------------------
def onehot(labels, classes):
    out = np.zeros((len(labels), classes), np.int32)
    out[np.arange(len(labels)), labels] = 1
    return out


def write_tiny(folder: Path, test_ids=(4, 3), graph=b""):
    """5 nodes: allx/ally rows 0-2, tx/ty rows for nodes 4 then 3 (test.index order)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "y": P2 + array_pickle(onehot([0, 1], 2)) + b".",
        "ally": P2 + array_pickle(onehot([0, 1, 1], 2)) + b".",
        "ty": P2 + array_pickle(onehot([0, 1][: len(test_ids)], 2)) + b".",
        "allx": csr_pickle([1, 2, 3], [0, 1, 2], [0, 1, 2, 3], (3, 3)),
        "tx": csr_pickle(
            [7, 8][: len(test_ids)],
            [1, 2][: len(test_ids)],
            [0, 1, 2][: len(test_ids) + 1],
            (len(test_ids), 3),
        ),
        # 0-1 twice, 1-0 again, a self-loop 2-2, 3-4 one way only
        "graph": graph
        or (
            P2 + gl("collections", "defaultdict") + gl("__builtin__", "list") + b"\x85R("
            b"K\x00](K\x01K\x01eK\x01](K\x00eK\x02](K\x02eK\x03](K\x04eK\x04]u."
        ),
    }
    for part, data in files.items():
        (folder / f"ind.tiny.{part}").write_bytes(data)
    (folder / "ind.tiny.test.index").write_text("".join(f"{i}\n" for i in test_ids))


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """Load the tiny dataset through load_data(path=...), its md5s and name check patched in."""
    monkeypatch.setattr(planetoid, "NAMES", planetoid.NAMES + ("tiny",))
    monkeypatch.setattr(planetoid, "NUM_VAL", 1)
    monkeypatch.setattr(planetoid, "_verify", lambda path, fname: None)
    return tmp_path / "tiny"


def test_tiny_order_labels_and_edges(tiny):
    write_tiny(tiny)
    g = planetoid.load_data("tiny", path=tiny)
    expected_x = np.zeros((5, 3), np.float32)
    expected_x[0, 0], expected_x[1, 1], expected_x[2, 2] = 1, 2, 3
    expected_x[4, 1], expected_x[3, 2] = 7, 8  # tx row i goes to node test.index[i]
    np.testing.assert_array_equal(g.x, expected_x)
    np.testing.assert_array_equal(g.y, [0, 1, 1, 1, 0])
    np.testing.assert_array_equal(g.edges, [[0, 1, 3, 4], [1, 0, 4, 3]])
    np.testing.assert_array_equal(g.test_index, [3, 4])
    np.testing.assert_array_equal(g.train_index, [0, 1])
    np.testing.assert_array_equal(g.val_index, [2])


def test_tiny_gap_in_test_ids_gives_zero_row_and_minus_one(tiny):
    write_tiny(tiny, test_ids=(4,))  # node 3 has neither a feature row nor a label
    g = planetoid.load_data("tiny", path=tiny)
    assert g.x.shape == (5, 3) and np.all(g.x[3] == 0) and g.y[3] == -1 and g.y[4] == 0


def test_tiny_rejects_wrong_object_type(tiny):
    write_tiny(tiny, graph=P2 + b"]K\x01a.")
    with pytest.raises(CorruptFileError, match=r"ind\.tiny\.graph: expected a dict"):
        planetoid.load_data("tiny", path=tiny)


def test_tiny_rejects_out_of_range_neighbour(tiny):
    graph = (
        P2 + gl("collections", "defaultdict") + gl("__builtin__", "list") + b"\x85R(K\x00](K\teu."
    )
    write_tiny(tiny, graph=graph)  # {0: [9]} in a 5-node graph
    with pytest.raises(CorruptFileError, match=r"node ids must lie in 0\.\.4"):
        planetoid.load_data("tiny", path=tiny)


def test_path_with_missing_file_is_not_found(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"ind\.cora\.allx"):
        planetoid.load_data("cora", path=tmp_path)


def test_unknown_name():
    with pytest.raises(
        ValueError, match=r"name must be one of \('cora', 'citeseer', 'pubmed'\), got 'reddit'"
    ):
        planetoid.load_data("reddit")
