"""Fashion-MNIST (Zalando): 60,000 training and 10,000 test 28x28 grey images of 10 clothing classes.

A drop-in replacement for MNIST. Files are looked up in ``$FUNDL_DATA_DIR/fashion-mnist/``, then
the cache, then downloaded (see :func:`fundl.datasets.get_file`).
"""
from __future__ import annotations

from ._idx import TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, load_idx_dataset

SUBDIR = "fashion-mnist"
BASE_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
MD5S = {
    TRAIN_IMAGES: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    TRAIN_LABELS: "25c81989df183df01b3e8a0aad5dffbe",
    TEST_IMAGES: "bef4ecab320f06d8554ea6380940ec79",
    TEST_LABELS: "bb300cfdad3c16e7a12a480ee83cd310",
}
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def load_data(progress: bool = True):
    """Load Fashion-MNIST like ``keras.datasets.fashion_mnist.load_data``.

    Args:
        progress: show a progress bar on stderr if files have to be downloaded.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: x_train uint8 (60000, 28, 28), y_train uint8
        (60000,), x_test uint8 (10000, 28, 28), y_test uint8 (10000,). ``CLASS_NAMES[y]`` names
        a label.

    Example:
        >>> (x_train, y_train), (x_test, y_test) = load_data()  # doctest: +SKIP
    """
    return load_idx_dataset(SUBDIR, BASE_URL, MD5S, progress)
