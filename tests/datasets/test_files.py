"""get_file / get_files: FUNDL_DATA_DIR, the cache, and real downloads from a local HTTP server."""
import functools
import gzip
import hashlib
import os
import shutil
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from fundl.datasets import ChecksumError, DatasetNotFoundError, get_file, mnist
from fundl.datasets._files import get_files
from fundl.datasets._idx import (TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS,
                                 load_idx_dataset)

SUBDIR = "toy"
CANONICAL = "https://canonical.invalid/toy/"  # never fetched: FUNDL_DATASETS_URL always wins here
REAL_DATA_DIR = os.environ.get("FUNDL_DATA_DIR")  # read before fixtures unset it


def idx_gz(arr: np.ndarray) -> bytes:
    """A gzip'ed uint8 IDX file holding arr."""
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    return gzip.compress(header + arr.astype(np.uint8).tobytes())


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def closed_port_url() -> str:
    """A localhost URL where nothing listens, so connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class Server:
    """A ThreadingHTTPServer on 127.0.0.1 serving `root`; counts requests.

    Paths under /broken/ announce more bytes than they send, to simulate a dropped connection.
    """

    def __init__(self, root: Path):
        self.root, self.requests = root, []
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if self.path.startswith("/broken/"):
                    self.send_response(200)
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    self.wfile.write(b"x" * 100)
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def put(self, fname: str, data: bytes, subdir: str = SUBDIR) -> str:
        (self.root / subdir).mkdir(parents=True, exist_ok=True)
        (self.root / subdir / fname).write_bytes(data)
        return md5(data)

    def stop(self):
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()


@pytest.fixture
def server(tmp_path, monkeypatch):
    srv = Server(tmp_path / "www")
    monkeypatch.delenv("FUNDL_DATA_DIR", raising=False)
    monkeypatch.setenv("FUNDL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FUNDL_DATASETS_URL", srv.url)
    yield srv
    srv.stop()


@pytest.fixture
def payload():
    return idx_gz(np.random.default_rng(0).integers(0, 10, size=3000, dtype=np.uint8))


def test_download_lands_in_cache_with_right_md5(server, tmp_path, payload):
    digest = server.put("labels.gz", payload)
    path = get_file("labels.gz", SUBDIR, CANONICAL + "labels.gz", digest, progress=False)
    assert path == tmp_path / "cache" / SUBDIR / "labels.gz"
    assert md5(path.read_bytes()) == digest
    assert server.requests == [f"/{SUBDIR}/labels.gz"]
    assert os.listdir(path.parent) == ["labels.gz"]  # no temporary file left behind


def test_second_call_uses_cache(server, payload):
    digest = server.put("labels.gz", payload)
    first = get_file("labels.gz", SUBDIR, CANONICAL + "labels.gz", digest, progress=False)
    server.stop()
    assert get_file("labels.gz", SUBDIR, CANONICAL + "labels.gz", digest, progress=False) == first
    assert len(server.requests) == 1


def test_corrupt_cache_copy_is_downloaded_again(server, tmp_path, payload):
    digest = server.put("labels.gz", payload)
    stale = tmp_path / "cache" / SUBDIR / "labels.gz"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"damaged")
    assert get_file("labels.gz", SUBDIR, CANONICAL + "labels.gz", digest, progress=False) == stale
    assert stale.read_bytes() == payload and len(server.requests) == 1


def test_flipped_byte_fails_checksum_and_leaves_nothing(server, tmp_path, payload):
    digest = md5(payload)
    corrupt = bytearray(payload)
    corrupt[len(corrupt) // 2] ^= 0x01
    served = server.put("labels.gz", bytes(corrupt))
    with pytest.raises(ChecksumError) as err:
        get_file("labels.gz", SUBDIR, CANONICAL + "labels.gz", digest, progress=False)
    msg = str(err.value)
    assert digest in msg and served in msg and "labels.gz" in msg
    assert list((tmp_path / "cache" / SUBDIR).iterdir()) == []


def test_404_says_what_is_missing_and_where_to_put_it(server, tmp_path):
    digest = "0123456789abcdef0123456789abcdef"
    with pytest.raises(DatasetNotFoundError) as err:
        get_file("absent.gz", SUBDIR, CANONICAL + "absent.gz", digest, progress=False)
    assert isinstance(err.value, FileNotFoundError)
    msg = str(err.value)
    for part in ("absent.gz", f"{server.url}/{SUBDIR}/absent.gz", digest, "404",
                 f"$FUNDL_DATA_DIR/{SUBDIR}/", str(tmp_path / "cache" / SUBDIR)):
        assert part in msg
    assert err.value.missing == [("absent.gz", f"{server.url}/{SUBDIR}/absent.gz", digest)]
    assert list((tmp_path / "cache" / SUBDIR).iterdir()) == []


def test_offline_gives_not_found_error(tmp_path, monkeypatch):
    monkeypatch.delenv("FUNDL_DATA_DIR", raising=False)
    monkeypatch.setenv("FUNDL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FUNDL_DATASETS_URL", closed_port_url())
    with pytest.raises(DatasetNotFoundError, match="refused"):
        get_file("a.gz", SUBDIR, CANONICAL + "a.gz", "0" * 32, progress=False)
    assert list((tmp_path / "cache" / SUBDIR).iterdir()) == []


def test_dropped_connection_leaves_nothing(server, tmp_path):
    with pytest.raises(DatasetNotFoundError, match="closed after 100 of 100000 bytes"):
        get_file("x.gz", "broken", CANONICAL + "x.gz", "0" * 32, progress=False)
    assert list((tmp_path / "cache" / "broken").iterdir()) == []


def test_data_dir_comes_first_and_is_verified(server, tmp_path, monkeypatch, payload):
    data = tmp_path / "data"
    (data / SUBDIR).mkdir(parents=True)
    (data / SUBDIR / "labels.gz").write_bytes(payload)
    monkeypatch.setenv("FUNDL_DATA_DIR", str(data))
    path = get_file("labels.gz", SUBDIR, CANONICAL + "labels.gz", md5(payload), progress=False)
    assert path == data / SUBDIR / "labels.gz" and server.requests == []
    with pytest.raises(ChecksumError, match="labels.gz has md5") as err:
        get_file("labels.gz", SUBDIR, CANONICAL + "labels.gz", "f" * 32, progress=False)
    assert "f" * 32 in str(err.value) and server.requests == []


def test_data_dir_without_the_file_falls_back_to_download(server, tmp_path, monkeypatch, payload):
    monkeypatch.setenv("FUNDL_DATA_DIR", str(tmp_path / "empty"))
    digest = server.put("labels.gz", payload)
    path = get_file("labels.gz", SUBDIR, CANONICAL + "labels.gz", digest, progress=False)
    assert path.parent == tmp_path / "cache" / SUBDIR


def test_progress_bar_on_stderr(server, capsys, payload):
    digest = server.put("labels.gz", payload)
    get_file("labels.gz", SUBDIR, CANONICAL + "labels.gz", digest, progress=True)
    err = capsys.readouterr().err
    assert "Downloading" in err and "\rlabels.gz [" in err and err.endswith("\n")


@pytest.mark.parametrize("fname, subdir, digest", [
    ("../evil", SUBDIR, "0" * 32), ("a/b", SUBDIR, "0" * 32), (".hidden", SUBDIR, "0" * 32),
    ("ok.gz", "..", "0" * 32), ("ok.gz", SUBDIR, "not-an-md5"),
])
def test_rejects_unsafe_names_and_bad_md5(server, fname, subdir, digest):
    with pytest.raises(ValueError):
        get_file(fname, subdir, CANONICAL + "x", digest, progress=False)
    assert server.requests == []


def test_get_files_lists_every_missing_file(server):
    files = {"a.gz": server.put("a.gz", b"aaa"), "b.gz": "1" * 32, "c.gz": "2" * 32}
    with pytest.raises(DatasetNotFoundError) as err:
        get_files(files, SUBDIR, CANONICAL, progress=False)
    assert [m[0] for m in err.value.missing] == ["b.gz", "c.gz"]
    assert "b.gz" in str(err.value) and "c.gz" in str(err.value)


def test_four_file_loader_end_to_end(server):
    rng = np.random.default_rng(1)
    arrays = {TRAIN_IMAGES: rng.integers(0, 256, (6, 5, 4)), TRAIN_LABELS: rng.integers(0, 10, 6),
              TEST_IMAGES: rng.integers(0, 256, (3, 5, 4)), TEST_LABELS: rng.integers(0, 10, 3)}
    md5s = {name: server.put(name, idx_gz(a)) for name, a in arrays.items()}
    (x, y), (xt, yt) = load_idx_dataset(SUBDIR, CANONICAL, md5s, progress=False)
    assert x.shape == (6, 5, 4) and y.shape == (6,) and xt.shape == (3, 5, 4) and yt.shape == (3,)
    assert x.dtype == y.dtype == np.uint8
    np.testing.assert_array_equal(x, arrays[TRAIN_IMAGES])
    np.testing.assert_array_equal(yt, arrays[TEST_LABELS])


def test_four_file_loader_rejects_count_mismatch(server):
    md5s = {TRAIN_IMAGES: server.put(TRAIN_IMAGES, idx_gz(np.zeros((6, 2, 2)))),
            TRAIN_LABELS: server.put(TRAIN_LABELS, idx_gz(np.zeros(5))),
            TEST_IMAGES: server.put(TEST_IMAGES, idx_gz(np.zeros((1, 2, 2)))),
            TEST_LABELS: server.put(TEST_LABELS, idx_gz(np.zeros(1)))}
    with pytest.raises(ValueError, match="6 images but .* 5 labels"):
        load_idx_dataset(SUBDIR, CANONICAL, md5s, progress=False)


def test_real_mnist_label_files_download(server, tmp_path):
    """The real label files, served locally, pass get_file with mnist's published md5s."""
    root = REAL_DATA_DIR
    if not root or not all((Path(root) / "mnist" / n).is_file() for n in (TRAIN_LABELS, TEST_LABELS)):
        pytest.skip("FUNDL_DATA_DIR is unset or lacks mnist/*-labels-idx1-ubyte.gz")
    for name in (TRAIN_LABELS, TEST_LABELS):
        (tmp_path / "www" / "mnist").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(root) / "mnist" / name, tmp_path / "www" / "mnist" / name)
        path = get_file(name, "mnist", mnist.BASE_URL + name, mnist.MD5S[name], progress=False)
        assert path == tmp_path / "cache" / "mnist" / name
    assert len(server.requests) == 2
