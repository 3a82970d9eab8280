"""MNIST handwritten digits: 60,000 training and 10,000 test images of 28x28 grey pixels, labels 0-9.

Files are looked up in ``$FUNDL_DATA_DIR/mnist/``, then the cache, then downloaded (see
:func:`fundl.datasets.get_file`).
"""
from __future__ import annotations

from ._idx import TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, load_idx_dataset

SUBDIR = "mnist"
BASE_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
MD5S = {
    TRAIN_IMAGES: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    TRAIN_LABELS: "d53e105ee54ea40749a09fcbcd1e9432",
    TEST_IMAGES: "9fb629c4189551a2d022fa330f9573f3",
    TEST_LABELS: "ec29112dd5afa0611ce80d1b7f02629c",
}


def load_data(progress: bool = True):
    """Load MNIST like ``keras.datasets.mnist.load_data``.

    Args:
        progress: show a progress bar on stderr if files have to be downloaded.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: x_train uint8 (60000, 28, 28), y_train uint8
        (60000,), x_test uint8 (10000, 28, 28), y_test uint8 (10000,). Pixels are 0..255.

    Example:
        >>> (x_train, y_train), (x_test, y_test) = load_data()  # doctest: +SKIP
    """
    return load_idx_dataset(SUBDIR, BASE_URL, MD5S, progress)
