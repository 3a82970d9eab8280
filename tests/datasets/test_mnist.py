"""The IDX parser, and MNIST / Fashion-MNIST on the real files found through FUNDL_DATA_DIR."""
import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from fundl.datasets import fashion_mnist, mnist
from fundl.datasets._idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx


def write_idx(path: Path, arr: np.ndarray, code: int = 0x08, body: bytes | None = None) -> Path:
    """Write arr as a gzip'ed IDX file (big-endian, as the format requires)."""
    header = bytes([0, 0, code, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    path.write_bytes(gzip.compress(header + (arr.tobytes() if body is None else body)))
    return path


def test_read_idx_roundtrip_and_writable(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    got = read_idx(write_idx(tmp_path / "x.gz", x), IMAGES_MAGIC)
    np.testing.assert_array_equal(got, x)
    assert got.dtype == np.uint8 and got.flags.writeable


def test_read_idx_big_endian_int32(tmp_path):
    a = np.arange(-3, 3, dtype=">i4").reshape(2, 3)
    got = read_idx(write_idx(tmp_path / "a.gz", a, code=0x0C))
    assert got.dtype == np.int32 and got.dtype.isnative
    np.testing.assert_array_equal(got, a)


def test_read_idx_wrong_magic_names_file(tmp_path):
    path = write_idx(tmp_path / "labels.gz", np.zeros(5, np.uint8))
    with pytest.raises(ValueError, match=r"labels\.gz: expected IDX magic number 2051"):
        read_idx(path, IMAGES_MAGIC)


@pytest.mark.parametrize("body, match", [(b"\0" * 10, "found 10 bytes"), (b"\0" * 13, "found more")])
def test_read_idx_size_mismatch(tmp_path, body, match):
    path = write_idx(tmp_path / "short.gz", np.zeros((3, 2, 2), np.uint8), body=body)
    with pytest.raises(ValueError, match=match) as err:
        read_idx(path, IMAGES_MAGIC)
    assert "short.gz" in str(err.value)


def test_read_idx_truncated_gzip(tmp_path):
    path = write_idx(tmp_path / "t.gz", np.zeros((50, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(ValueError, match=r"t\.gz: not a readable gzip file"):
        read_idx(path)


@pytest.mark.parametrize("content", [b"plain text, not gzip", gzip.compress(b"\x01\x02\x08\x01abcd")])
def test_read_idx_rejects_non_idx(tmp_path, content):
    path = tmp_path / "junk.gz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="junk.gz"):
        read_idx(path, LABELS_MAGIC)


def test_read_idx_missing_file_stays_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope.gz")


def _load_real(module):
    root = os.environ.get("FUNDL_DATA_DIR")
    if not root:
        pytest.skip("FUNDL_DATA_DIR is not set (CI sets it to ../shared/data)")
    missing = [n for n in module.MD5S if not (Path(root) / module.SUBDIR / n).is_file()]
    if missing:
        pytest.skip(f"{root}/{module.SUBDIR}/ lacks {', '.join(missing)}")
    return module.load_data(progress=False)


@pytest.fixture(scope="module")
def real_mnist():
    return _load_real(mnist)


@pytest.fixture(scope="module")
def real_fashion():
    return _load_real(fashion_mnist)


def test_mnist_shapes_dtypes(real_mnist):
    (x, y), (xt, yt) = real_mnist
    assert x.shape == (60000, 28, 28) and y.shape == (60000,)
    assert xt.shape == (10000, 28, 28) and yt.shape == (10000,)
    assert x.dtype == y.dtype == xt.dtype == yt.dtype == np.uint8


def test_mnist_label_counts_and_pixels(real_mnist):
    (x, y), (xt, yt) = real_mnist
    assert np.bincount(yt).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert np.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert x.min() == 0 and x.max() == 255
    assert x.mean() == pytest.approx(33.318, abs=5e-4)
    assert xt.mean() == pytest.approx(33.791, abs=5e-4)


def test_fashion_mnist(real_fashion):
    (x, y), (xt, yt) = real_fashion
    assert x.shape == (60000, 28, 28) and xt.shape == (10000, 28, 28)
    assert x.dtype == yt.dtype == np.uint8
    assert np.bincount(y).tolist() == [6000] * 10 and np.bincount(yt).tolist() == [1000] * 10
    assert len(fashion_mnist.CLASS_NAMES) == 10
