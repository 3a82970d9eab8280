"""IMDB movie reviews for sentiment classification, as Keras ships them (``imdb.npz``).

25,000 training and 25,000 test reviews, each a list of word indices (words ranked by
frequency: index 1 is the most frequent word before the shift below), labelled 0 (negative)
or 1 (positive). Files are looked up in ``$FUNDL_DATA_DIR/imdb/``, then the cache, then
downloaded from Keras's bucket and md5-checked (see :func:`fundl.datasets.get_file`); the
archive is read without unpickling (:mod:`fundl.datasets._keras_npz`).

Example:
    >>> from fundl.datasets import imdb
    >>> (x_train, y_train), (x_test, y_test) = imdb.load_data(num_words=10000)  # doctest: +SKIP
    >>> from fundl.preprocessing.sequence import pad_sequences
    >>> x_train = pad_sequences(x_train, maxlen=200)                           # doctest: +SKIP
"""
from __future__ import annotations

import json

import numpy

from . import _text_sequences as ts
from ._files import get_file
from ._keras_npz import load_npz

SUBDIR = "imdb"
FILES = {"imdb.npz": "599dadb1135973df5b59232a0e9a887c",
         "imdb_word_index.json": "bfafd718b763782e994055a2d397834f"}


def load_data(path="imdb.npz", num_words=None, skip_top=0, maxlen=None, seed=113,
              start_char=1, oov_char=2, index_from=3, progress=True):
    """Load IMDB like ``keras.datasets.imdb.load_data``, with the same arguments and results.

    The training and test sets are each shuffled with ``numpy.random.RandomState(seed)``
    (Keras's order); every review gets ``start_char`` in front and its indices shifted by
    ``index_from`` (so 0 is padding, 1 the start, 2 out-of-vocabulary); reviews of
    ``maxlen`` words or more are dropped; indices ``>= num_words`` or ``< skip_top`` become
    ``oov_char`` (or are removed when ``oov_char`` is None).

    Args:
        path: the file name looked up as described in the module notes. Default "imdb.npz".
        num_words: keep the ``num_words`` most frequent words (indices below it, after the
            shift); None keeps all.
        skip_top: also replace the ``skip_top`` most frequent indices by ``oov_char``.
        maxlen: drop sequences of this length or longer; None keeps all.
        seed: the shuffling seed. Default 113.
        start_char: the index marking a review's start (None: no marker). Default 1.
        oov_char: the index of out-of-vocabulary words (None: drop them). Default 2.
        index_from: added to every word index. Default 3.
        progress: show a progress bar if the file is downloaded.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: x arrays are 1-D object arrays of lists of
        ints (pad them with :func:`fundl.preprocessing.sequence.pad_sequences`), y arrays
        int64 labels.

    Raises:
        DatasetNotFoundError: no local copy and no network (the message names the file, its
            md5 and where to put it).
        ValueError: bad arguments, or ``maxlen`` so small that no review is left.

    Example:
        >>> (x_train, y_train), _ = load_data(num_words=5000, maxlen=400)   # doctest: +SKIP
    """
    ts.check_words_args("imdb.load_data", num_words, skip_top, maxlen, start_char, oov_char,
                        index_from)
    arrays = load_npz(get_file(path, SUBDIR, ts.ORIGIN + "imdb.npz", FILES["imdb.npz"],
                               progress))
    missing = {"x_train", "y_train", "x_test", "y_test"} - set(arrays)
    if missing:
        raise ValueError(f"imdb.load_data: {path} lacks the arrays {sorted(missing)}; it is not "
                         "Keras's imdb.npz.")
    rng = numpy.random.RandomState(seed)
    x_train = ts.as_lists(arrays["x_train"], "imdb.load_data", "x_train")
    x_test = ts.as_lists(arrays["x_test"], "imdb.load_data", "x_test")
    labels_train, labels_test = arrays["y_train"], arrays["y_test"]
    order = numpy.arange(len(x_train))
    rng.shuffle(order)
    x_train, labels_train = [x_train[i] for i in order], labels_train[order]
    order = numpy.arange(len(x_test))
    rng.shuffle(order)
    x_test, labels_test = [x_test[i] for i in order], labels_test[order]

    x_train = ts.shift(x_train, start_char, index_from)
    x_test = ts.shift(x_test, start_char, index_from)
    if maxlen:
        x_train, labels_train = ts.remove_long(maxlen, x_train, labels_train)
        x_test, labels_test = ts.remove_long(maxlen, x_test, labels_test)
        if not x_train or not x_test:
            raise ValueError(f"imdb.load_data: after keeping the sequences shorter than "
                             f"maxlen={maxlen}, no sequence was kept. Increase maxlen.")
    xs = x_train + x_test
    if not num_words:
        num_words = ts.max_index(xs)
    xs = ts.limit_words(xs, num_words, skip_top, oov_char)
    n = len(x_train)
    labels = numpy.concatenate([labels_train, labels_test])
    return ((ts.object_array(xs[:n]), labels[:n]), (ts.object_array(xs[n:]), labels[n:]))


def get_word_index(path="imdb_word_index.json", progress=True) -> dict:
    """The word -> index dictionary of :func:`load_data` (before the ``index_from`` shift).

    Args:
        path: the file name. Default "imdb_word_index.json".
        progress: show a progress bar if the file is downloaded.

    Returns:
        dict ``{word: index}``; to decode a loaded review use ``index + index_from``.

    Example:
        >>> index = get_word_index()                                  # doctest: +SKIP
        >>> reverse = {i + 3: w for w, i in index.items()}            # doctest: +SKIP
    """
    file = get_file(path, SUBDIR, ts.ORIGIN + "imdb_word_index.json",
                    FILES["imdb_word_index.json"], progress)
    with open(file, encoding="utf-8") as f:
        return json.load(f)
