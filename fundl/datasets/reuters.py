"""Reuters newswire topics, as Keras ships them (``reuters.npz``): 11,228 newswires, 46 topics.

Each newswire is a list of word indices (ranked by frequency), labelled with its topic.
Files are looked up in ``$FUNDL_DATA_DIR/reuters/``, then the cache, then downloaded from
Keras's bucket and md5-checked (see :func:`fundl.datasets.get_file`); the archive is read
without unpickling (:mod:`fundl.datasets._keras_npz`).

Example:
    >>> from fundl.datasets import reuters
    >>> (x_train, y_train), (x_test, y_test) = reuters.load_data(num_words=10000)  # doctest: +SKIP
"""
from __future__ import annotations

import json
import numbers

import numpy

from . import _text_sequences as ts
from ._files import get_file
from ._keras_npz import load_npz

SUBDIR = "reuters"
FILES = {"reuters.npz": "87aedbeb0cb229e378797a632c1997b6",
         "reuters_word_index.json": "4d44cc38712099c9e383dc6e5f11a921"}


def load_data(path="reuters.npz", num_words=None, skip_top=0, maxlen=None, test_split=0.2,
              seed=113, start_char=1, oov_char=2, index_from=3, progress=True):
    """Load Reuters like ``keras.datasets.reuters.load_data``, same arguments and results.

    All newswires are shuffled with ``numpy.random.RandomState(seed)``, shifted and filtered
    as in :func:`fundl.datasets.imdb.load_data`, then the first ``1 - test_split`` of them are
    the training set.

    Args:
        path: the file name. Default "reuters.npz".
        num_words, skip_top, maxlen, seed, start_char, oov_char, index_from: as in
            :func:`fundl.datasets.imdb.load_data`.
        test_split: the fraction kept for the test set, in [0, 1). Default 0.2.
        progress: show a progress bar if the file is downloaded.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: x arrays are 1-D object arrays of lists of
        ints, y arrays integer topic labels (0-45).

    Raises:
        DatasetNotFoundError: no local copy and no network (the message names the file, its
            md5 and where to put it).
        ValueError: bad arguments.

    Example:
        >>> (x_train, y_train), (x_test, y_test) = load_data(num_words=10000)  # doctest: +SKIP
    """
    ts.check_words_args("reuters.load_data", num_words, skip_top, maxlen, start_char, oov_char,
                        index_from)
    if isinstance(test_split, bool) or not isinstance(test_split, numbers.Real) \
            or not 0 <= test_split < 1:
        raise ValueError(f"reuters.load_data: test_split must be a number in [0, 1), got "
                         f"{test_split!r}.")
    arrays = load_npz(get_file(path, SUBDIR, ts.ORIGIN + "reuters.npz",
                               FILES["reuters.npz"], progress))
    if not {"x", "y"} <= set(arrays):
        raise ValueError(f"reuters.load_data: {path} lacks the arrays 'x' and 'y'; it is not "
                         "Keras's reuters.npz.")
    xs = ts.as_lists(arrays["x"], "reuters.load_data", "x")
    labels = arrays["y"]
    order = numpy.arange(len(xs))
    numpy.random.RandomState(seed).shuffle(order)
    xs, labels = [xs[i] for i in order], labels[order]
    xs = ts.shift(xs, start_char, index_from)
    if maxlen:
        xs, labels = ts.remove_long(maxlen, xs, labels)
    if not num_words:
        num_words = ts.max_index(xs)
    xs = ts.limit_words(xs, num_words, skip_top, oov_char)
    n = int(len(xs) * (1 - test_split))
    return ((ts.object_array(xs[:n]), numpy.array(labels[:n])),
            (ts.object_array(xs[n:]), numpy.array(labels[n:])))


def get_word_index(path="reuters_word_index.json", progress=True) -> dict:
    """The word -> index dictionary of :func:`load_data` (before the ``index_from`` shift).

    Args:
        path: the file name. Default "reuters_word_index.json".
        progress: show a progress bar if the file is downloaded.

    Returns:
        dict ``{word: index}``.

    Example:
        >>> index = get_word_index()   # doctest: +SKIP
    """
    file = get_file(path, SUBDIR, ts.ORIGIN + "reuters_word_index.json",
                    FILES["reuters_word_index.json"], progress)
    with open(file, encoding="utf-8") as f:
        return json.load(f)
