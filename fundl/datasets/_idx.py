"""The IDX file format (MNIST's) and the four-file train/test layout shared by MNIST and Fashion-MNIST.

An IDX file is a big-endian header ``0x00 0x00 <type code> <ndim>``, then ``ndim`` uint32 sizes,
then the values in C order. The MNIST family ships four gzip-compressed IDX files per dataset.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ._files import get_files

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
IMAGES_MAGIC = 0x00000803  # 2051: uint8, 3 dimensions
LABELS_MAGIC = 0x00000801  # 2049: uint8, 1 dimension

_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike, magic: int | None = None) -> np.ndarray:
    """Read a gzip-compressed IDX file into a writable NumPy array of its stored shape.

    Args:
        path: the ``.gz`` file.
        magic: expected magic number (e.g. 2051 for MNIST images), or None to accept any valid one.

    Returns:
        np.ndarray: shape as in the header, native-endian dtype (uint8 for MNIST files).

    Raises:
        ValueError: not gzip, wrong or unknown magic number, or the size disagrees with the header;
            the message names the file.

    Example:
        >>> y = read_idx("/work/shared/data/mnist/t10k-labels-idx1-ubyte.gz", LABELS_MAGIC)  # doctest: +SKIP
        >>> y.shape, y.dtype
        ((10000,), dtype('uint8'))
    """
    path = Path(path)
    fix = "Delete the file so it is downloaded again, or replace it with the original."
    f = gzip.open(path, "rb")  # outside the try: a missing file stays a FileNotFoundError
    try:
        with f:
            head = f.read(4)
            code = int.from_bytes(head, "big") if len(head) == 4 else None
            if code is None or head[:2] != b"\0\0" or head[2] not in _DTYPES or head[3] == 0:
                raise ValueError(f"{path}: not an IDX file (header bytes {head.hex() or 'missing'}). {fix}")
            if magic is not None and code != magic:
                raise ValueError(f"{path}: expected IDX magic number {magic} ({magic:#010x}), "
                                 f"found {code} ({code:#010x}): wrong file type. {fix}")
            raw_dims = f.read(4 * head[3])
            if len(raw_dims) != 4 * head[3]:
                raise ValueError(f"{path}: IDX header is truncated. {fix}")
            dims = struct.unpack(f">{head[3]}I", raw_dims)
            dtype = np.dtype(_DTYPES[head[2]])
            expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
            # A bytearray grows without a final copy and gives NumPy a writable buffer.
            buf = bytearray()
            while len(buf) <= expected and (chunk := f.read(1 << 20)):
                buf += chunk
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: not a readable gzip file or truncated ({exc}). {fix}") from exc
    if len(buf) != expected:
        raise ValueError(f"{path}: header says shape {dims} ({expected} bytes of data), "
                         f"found {'more' if len(buf) > expected else len(buf)} bytes. {fix}")
    arr = np.frombuffer(buf, dtype=dtype).reshape(dims)
    return arr if dtype.isnative else arr.astype(dtype.newbyteorder("="))


def load_idx_dataset(subdir: str, base_url: str, md5s: Mapping[str, str], progress: bool = True):
    """Fetch and parse the four MNIST-layout files of a dataset.

    Args:
        subdir: dataset folder name (``"mnist"``, ``"fashion-mnist"``).
        base_url: canonical URL prefix of the four files.
        md5s: ``{fname: md5}`` for the four names TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES,
            TEST_LABELS.
        progress: show download progress on stderr.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: x uint8 (n, rows, cols), y uint8 (n,).

    Example:
        >>> from fundl.datasets import mnist
        >>> (x, y), _ = load_idx_dataset("mnist", mnist.BASE_URL, mnist.MD5S)  # doctest: +SKIP
    """
    names = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
    if sorted(md5s) != sorted(names):
        raise ValueError(f"load_idx_dataset: md5s must have exactly the keys {names}, got {tuple(md5s)}.")
    paths = get_files({n: md5s[n] for n in names}, subdir, base_url, progress)

    def pair(images: str, labels: str):
        x, y = read_idx(paths[images], IMAGES_MAGIC), read_idx(paths[labels], LABELS_MAGIC)
        if len(x) != len(y):
            raise ValueError(f"{paths[images]} holds {len(x)} images but {paths[labels]} holds "
                             f"{len(y)} labels; one of them is from another dataset. Replace both.")
        return x, y

    return pair(TRAIN_IMAGES, TRAIN_LABELS), pair(TEST_IMAGES, TEST_LABELS)
