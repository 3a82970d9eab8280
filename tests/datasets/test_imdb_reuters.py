"""imdb and reuters loaders on small archives written here (never the network): Keras's
shuffling, shift, maxlen, num_words rules; safe reading of object arrays; offline errors."""
import hashlib
import io
import json
import pickle  # only to WRITE test archives the way NumPy does; fundl never unpickles
import zipfile

import numpy as np
import pytest

from fundl.datasets import DatasetNotFoundError, imdb, reuters
from fundl.datasets._keras_npz import load_npz
from fundl.saving import CorruptFileError


def _objects(seqs):
    out = np.empty(len(seqs), dtype=object)
    for i, s in enumerate(seqs):
        out[i] = list(s)
    return out


def _write_npz(path, arrays, protocol=None):
    """An .npz as NumPy writes it (np.savez), or with object members pickled at ``protocol``."""
    if protocol is None:
        np.savez(path, **arrays)
        return path
    with zipfile.ZipFile(path, "w") as z:
        for name, a in arrays.items():
            buf = io.BytesIO()
            if a.dtype.hasobject:
                np.lib.format.write_array_header_1_0(
                    buf, {"descr": "|O", "fortran_order": False, "shape": a.shape})
                buf.write(pickle.dumps(a, protocol=protocol))
            else:
                np.lib.format.write_array(buf, a)
            z.writestr(name + ".npy", buf.getvalue())
    return path


def _install(tmp_path, monkeypatch, module, fname, arrays, protocol=None):
    data = tmp_path / "data"
    (data / module.SUBDIR).mkdir(parents=True, exist_ok=True)
    path = _write_npz(data / module.SUBDIR / fname, arrays, protocol)
    monkeypatch.setenv("FUNDL_DATA_DIR", str(data))
    monkeypatch.setenv("FUNDL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FUNDL_DATASETS_URL", "http://127.0.0.1:9")  # must not be used
    monkeypatch.setitem(module.FILES, fname, hashlib.md5(path.read_bytes()).hexdigest())
    return path


def _keras_imdb(x_train, y_train, x_test, y_test, num_words=None, skip_top=0, maxlen=None,
                seed=113, start_char=1, oov_char=2, index_from=3):
    """Keras's imdb.load_data algorithm, written out independently for the comparison."""
    rng = np.random.RandomState(seed)
    i = np.arange(len(x_train))
    rng.shuffle(i)
    x_train, y_train = [x_train[k] for k in i], y_train[i]
    i = np.arange(len(x_test))
    rng.shuffle(i)
    x_test, y_test = [x_test[k] for k in i], y_test[i]

    def shift(xs):
        if start_char is not None:
            return [[start_char] + [w + index_from for w in x] for x in xs]
        return [[w + index_from for w in x] for x in xs]

    x_train, x_test = shift(x_train), shift(x_test)
    if maxlen:
        keep = [k for k, x in enumerate(x_train) if len(x) < maxlen]
        x_train, y_train = [x_train[k] for k in keep], y_train[keep]
        keep = [k for k, x in enumerate(x_test) if len(x) < maxlen]
        x_test, y_test = [x_test[k] for k in keep], y_test[keep]
    xs = x_train + x_test
    if not num_words:
        num_words = max(max(x) for x in xs)
    if oov_char is not None:
        xs = [[w if skip_top <= w < num_words else oov_char for w in x] for x in xs]
    else:
        xs = [[w for w in x if skip_top <= w < num_words] for x in xs]
    n = len(x_train)
    return (xs[:n], y_train), (xs[n:], y_test)


def _random_reviews(rng, n, vocab=60):
    return [list(rng.integers(1, vocab, rng.integers(2, 12))) for _ in range(n)]


@pytest.fixture
def tiny_imdb(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    raw = {"x_train": _random_reviews(rng, 9), "y_train": rng.integers(0, 2, 9),
           "x_test": _random_reviews(rng, 7), "y_test": rng.integers(0, 2, 7)}
    arrays = {k: (_objects(v) if k.startswith("x") else v) for k, v in raw.items()}
    _install(tmp_path, monkeypatch, imdb, "imdb.npz", arrays)
    return raw


@pytest.mark.parametrize("kwargs", [
    {}, {"num_words": 30}, {"num_words": 30, "skip_top": 5}, {"maxlen": 9},
    {"oov_char": None, "num_words": 25}, {"start_char": None, "index_from": 0}, {"seed": 7},
])
def test_imdb_matches_keras_algorithm(tiny_imdb, kwargs):
    (x, y), (xt, yt) = imdb.load_data(progress=False, **kwargs)
    (ex, ey), (ext, eyt) = _keras_imdb(tiny_imdb["x_train"], tiny_imdb["y_train"],
                                       tiny_imdb["x_test"], tiny_imdb["y_test"], **kwargs)
    assert x.dtype == object and x.ndim == 1 and [list(s) for s in x] == ex
    assert [list(s) for s in xt] == ext
    np.testing.assert_array_equal(y, ey)
    np.testing.assert_array_equal(yt, eyt)
    assert all(type(w) is int for s in x for w in s)


def test_imdb_by_hand(tmp_path, monkeypatch):
    arrays = {"x_train": _objects([[5, 2, 9]]), "y_train": np.array([1]),
              "x_test": _objects([[7, 1]]), "y_test": np.array([0])}
    _install(tmp_path, monkeypatch, imdb, "imdb.npz", arrays)
    (x, y), (xt, yt) = imdb.load_data(num_words=10, progress=False)
    assert list(x[0]) == [1, 8, 5, 2] and list(xt[0]) == [1, 2, 4] and y[0] == 1
    (x, _), _ = imdb.load_data(progress=False)  # num_words=None: Keras's max index is OOV too
    assert list(x[0]) == [1, 8, 5, 2]
    with pytest.raises(ValueError, match="maxlen=2"):
        imdb.load_data(maxlen=2, progress=False)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_object_arrays_of_every_pickle_protocol_are_read(tmp_path, protocol):
    seqs = [[1, 2, 70000], [3], [4, 5, 6, 7]]
    path = _write_npz(tmp_path / "a.npz", {"x": _objects(seqs), "y": np.arange(3)}, protocol)
    out = load_npz(path)
    assert [list(s) for s in out["x"]] == seqs
    np.testing.assert_array_equal(out["y"], np.arange(3))


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned > /tmp/fundl_pwned",))


def test_a_pickle_that_calls_code_is_refused(tmp_path):
    bad = np.empty(1, dtype=object)
    bad[0] = _Evil()
    path = _write_npz(tmp_path / "evil.npz", {"x": bad}, protocol=3)
    with pytest.raises(CorruptFileError, match="refusing GLOBAL"):
        load_npz(path)
    with pytest.raises(CorruptFileError, match="not a valid .npz"):
        load_npz(_write_bytes(tmp_path / "junk.npz", b"not a zip"))


def _write_bytes(path, data):
    path.write_bytes(data)
    return path


def test_truncated_member_is_a_clear_error(tmp_path):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False,
                                               "shape": (2,)})
    buf.write(pickle.dumps(_objects([[1, 2], [3]]), protocol=3)[:-5])
    path = tmp_path / "t.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", buf.getvalue())
    with pytest.raises(CorruptFileError, match="t.npz:x.npy"):
        load_npz(path)


def test_offline_without_a_copy_names_the_file_and_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("FUNDL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FUNDL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FUNDL_DATASETS_URL", "http://127.0.0.1:9")
    for module, fname in ((imdb, "imdb.npz"), (reuters, "reuters.npz")):
        with pytest.raises(DatasetNotFoundError) as info:
            module.load_data(progress=False)
        text = str(info.value)
        assert fname in text and module.FILES[fname] in text and f"/{module.SUBDIR}/" in text


def test_word_indexes(tmp_path, monkeypatch):
    data = tmp_path / "data"
    for module, fname in ((imdb, "imdb_word_index.json"), (reuters, "reuters_word_index.json")):
        (data / module.SUBDIR).mkdir(parents=True, exist_ok=True)
        path = data / module.SUBDIR / fname
        path.write_text(json.dumps({"the": 1, "film": 19}))
        monkeypatch.setitem(module.FILES, fname, hashlib.md5(path.read_bytes()).hexdigest())
    monkeypatch.setenv("FUNDL_DATA_DIR", str(data))
    monkeypatch.setenv("FUNDL_CACHE_DIR", str(tmp_path / "cache"))
    assert imdb.get_word_index(progress=False) == {"the": 1, "film": 19}
    assert reuters.get_word_index(progress=False)["film"] == 19


def test_reuters_matches_keras_algorithm(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    xs, ys = _random_reviews(rng, 20), rng.integers(0, 46, 20)
    _install(tmp_path, monkeypatch, reuters, "reuters.npz", {"x": _objects(xs), "y": ys})
    (x, y), (xt, yt) = reuters.load_data(num_words=40, test_split=0.25, progress=False)
    order = np.arange(20)
    np.random.RandomState(113).shuffle(order)
    ref = [[1] + [w + 3 for w in xs[i]] for i in order]
    ref = [[w if w < 40 else 2 for w in s] for s in ref]
    assert [list(s) for s in x] == ref[:15] and [list(s) for s in xt] == ref[15:]
    np.testing.assert_array_equal(np.concatenate([y, yt]), ys[order])
    (x, _), (xt, _) = reuters.load_data(maxlen=8, progress=False)
    assert all(len(s) < 8 for s in list(x) + list(xt))
    with pytest.raises(ValueError, match="test_split"):
        reuters.load_data(test_split=1.0, progress=False)


def test_bad_arguments_are_named(tiny_imdb):
    with pytest.raises(ValueError, match="imdb.load_data: num_words"):
        imdb.load_data(num_words=0, progress=False)
    with pytest.raises(ValueError, match="skip_top"):
        imdb.load_data(skip_top=-1, progress=False)
