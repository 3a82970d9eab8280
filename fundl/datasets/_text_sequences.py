"""What Keras's imdb and reuters loaders share: shuffling, the index shift, maxlen, num_words."""
from __future__ import annotations

import numpy

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"


def check_words_args(who, num_words, skip_top, maxlen, start_char, oov_char, index_from):
    for name, value, low in (("num_words", num_words, 1), ("maxlen", maxlen, 1),
                             ("skip_top", skip_top, 0), ("index_from", index_from, 0),
                             ("start_char", start_char, 0), ("oov_char", oov_char, 0)):
        if value is None and name not in ("skip_top", "index_from"):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)) or value < low:
            raise ValueError(f"{who}: {name} must be an int >= {low}"
                             f"{'' if name in ('skip_top', 'index_from') else ' or None'}, got "
                             f"{value!r}.")


def as_lists(array, who, source):
    """An object array of sequences as a list of lists of ints (checked)."""
    out = []
    for i, seq in enumerate(array):
        if not isinstance(seq, (list, tuple, numpy.ndarray)):
            raise ValueError(f"{who}: {source} entry {i} is a {type(seq).__name__}, not a "
                             "sequence of word indices; the file is not Keras's.")
        out.append([int(w) for w in seq])
    return out


def shift(seqs, start_char, index_from):
    """Prepend ``start_char`` and add ``index_from`` to every index, as Keras."""
    if start_char is not None:
        return [[start_char] + [w + index_from for w in s] for s in seqs]
    if index_from:
        return [[w + index_from for w in s] for s in seqs]
    return seqs


def remove_long(maxlen, seqs, labels):
    """Keep the sequences shorter than ``maxlen`` (strictly, as Keras's ``_remove_long_seq``)."""
    keep = [i for i, s in enumerate(seqs) if len(s) < maxlen]
    return [seqs[i] for i in keep], labels[numpy.asarray(keep, dtype=numpy.intp)]


def limit_words(seqs, num_words, skip_top, oov_char):
    """Indices outside ``[skip_top, num_words)`` become ``oov_char`` (or are dropped if None)."""
    if oov_char is not None:
        return [[w if skip_top <= w < num_words else oov_char for w in s] for s in seqs]
    return [[w for w in s if skip_top <= w < num_words] for s in seqs]


def object_array(seqs):
    """A 1-D object array of lists (never a 2-D array, even when all lengths are equal)."""
    out = numpy.empty(len(seqs), dtype=object)
    for i, s in enumerate(seqs):
        out[i] = s
    return out


def max_index(seqs):
    return max((max(s) for s in seqs if s), default=0)
