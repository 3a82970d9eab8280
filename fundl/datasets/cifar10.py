"""CIFAR-10: 50,000 training and 10,000 test 32x32 colour images in 10 classes.

Reads the *binary* distribution (``cifar-10-binary.tar.gz``) straight from the tar archive, in
memory: nothing is extracted to disk, and members other than the known ones are rejected. The
archive is looked up in ``$FUNDL_DATA_DIR/cifar10/``, then the cache, then downloaded (see
:func:`fundl.datasets.get_file`).
"""
from __future__ import annotations

import os
import tarfile
import zlib
from pathlib import Path

import numpy as np

from ._files import get_file

SUBDIR = "cifar10"
FNAME = "cifar-10-binary.tar.gz"
URL = "https://www.cs.toronto.edu/~kriz/" + FNAME
MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck")

_DIR = "cifar-10-batches-bin"
_TRAIN = tuple(f"{_DIR}/data_batch_{i}.bin" for i in range(1, 6))
_TEST = f"{_DIR}/test_batch.bin"
_SKIPPED = (f"{_DIR}/batches.meta.txt", f"{_DIR}/readme.html")  # shipped, not needed
_RECORD = 1 + 3 * 32 * 32  # one label byte, then the red, green and blue 32x32 planes


def load_data(*, fname: str = FNAME, md5: str = MD5, progress: bool = True):
    """Load CIFAR-10 like ``keras.datasets.cifar10.load_data``.

    Args:
        fname: archive file name; change it (with ``md5``) only to load another copy in the binary
            layout, e.g. a small test archive put in ``$FUNDL_DATA_DIR/cifar10/``.
        md5: expected md5 of the archive.
        progress: show a progress bar on stderr while downloading (about 163 MB).

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: x_train uint8 (50000, 32, 32, 3) channels-last,
        y_train uint8 (50000, 1), x_test uint8 (10000, 32, 32, 3), y_test uint8 (10000, 1).
        ``CLASS_NAMES[y]`` names a label.

    Example:
        >>> (x_train, y_train), (x_test, y_test) = load_data()  # doctest: +SKIP
    """
    url = URL.rsplit("/", 1)[0] + "/" + fname
    return read_archive(get_file(fname, SUBDIR, url, md5, progress))


def read_archive(path: str | os.PathLike):
    """Parse a CIFAR-10 binary ``.tar.gz`` archive in memory.

    Args:
        path: the archive.

    Returns:
        ``((x_train, y_train), (x_test, y_test))`` as :func:`load_data`; the number of images is
        whatever the batches hold.

    Raises:
        ValueError: not a gzip tar, an unexpected or non-regular member (including any path
            outside ``cifar-10-batches-bin/``), a missing or duplicate batch, or a malformed record.

    Example:
        >>> (x, y), (xt, yt) = read_archive("cifar-10-binary.tar.gz")  # doctest: +SKIP
    """
    path = Path(path)
    fix = "It is not the CIFAR-10 binary archive: delete it so it is downloaded again."
    expected = (*_TRAIN, _TEST)
    batches: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                name = member.name.rstrip("/")
                if member.isdir() and name == _DIR:
                    continue
                if not member.isfile() or name not in expected + _SKIPPED:
                    kind = "file" if member.isfile() else "link or special entry"
                    raise ValueError(f"{path}: unexpected archive member {member.name!r} ({kind}); "
                                     f"expected only {_DIR}/ with {', '.join(expected)}. {fix}")
                if name in batches:
                    raise ValueError(f"{path}: member {name!r} appears twice. {fix}")
                if name in expected:
                    batches[name] = _parse_batch(tar.extractfile(member).read(), path, name, fix)
    except FileNotFoundError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: cannot read the gzip tar archive ({exc}). {fix}") from exc
    missing = [n for n in expected if n not in batches]
    if missing:
        raise ValueError(f"{path}: missing member(s) {', '.join(missing)}. {fix}")

    def stack(names):
        # Stored channel-first (CHW); Keras returns channel-last (HWC). One C-contiguous copy.
        x = np.empty((sum(len(batches[n][1]) for n in names), 32, 32, 3), dtype=np.uint8)
        np.concatenate([batches[n][0].transpose(0, 2, 3, 1) for n in names], out=x)
        return x, np.concatenate([batches[n][1] for n in names])

    return stack(_TRAIN), stack((_TEST,))


def _parse_batch(data: bytes, path: Path, name: str, fix: str) -> tuple[np.ndarray, np.ndarray]:
    """Split one batch into channel-first images (n, 3, 32, 32) and labels (n, 1)."""
    if not data or len(data) % _RECORD:
        raise ValueError(f"{path}: {name} has {len(data)} bytes, expected a non-zero multiple of "
                         f"{_RECORD} (1 label byte + 3072 pixel bytes per image). {fix}")
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, _RECORD)
    labels = records[:, :1].copy()
    if labels.max() > 9:
        raise ValueError(f"{path}: {name} has label {labels.max()}, expected 0..9. {fix}")
    return records[:, 1:].reshape(-1, 3, 32, 32), labels
