"""Keras-style dataset loaders and 2-D toy sets.

``mnist``, ``fashion_mnist`` and ``cifar10`` each have ``load_data()`` returning
``((x_train, y_train), (x_test, y_test))`` as NumPy uint8 arrays, with the same shapes as Keras;
``imdb`` and ``reuters`` return Keras's word-index sequences (``load_data(num_words=...)``,
``get_word_index()``).
Files are found by :func:`get_file`: ``$FUNDL_DATA_DIR/<dataset>/``, then the cache
``~/.cache/fundl/<dataset>/`` (``$FUNDL_CACHE_DIR``), then a checksummed download (from
``$FUNDL_DATASETS_URL/<dataset>/`` when set). ``planetoid.load_data("cora")`` returns a citation
graph (features, labels, edges) with its standard split. ``synthetic`` generates small 2-D problems.

Example:
    >>> from fundl.datasets import mnist, synthetic
    >>> (x_train, y_train), (x_test, y_test) = mnist.load_data()  # doctest: +SKIP
    >>> x, y = synthetic.spiral(300, seed=0)
"""
from . import cifar10, fashion_mnist, imdb, mnist, planetoid, reuters, synthetic
from ._files import ChecksumError, DatasetNotFoundError, get_file

__all__ = ["mnist", "fashion_mnist", "cifar10", "imdb", "reuters", "planetoid", "synthetic",
           "get_file",
           "ChecksumError", "DatasetNotFoundError"]
