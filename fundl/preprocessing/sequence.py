"""Padding variable-length sequences into one array (Keras's ``pad_sequences``)."""
from __future__ import annotations

import numpy

__all__ = ["pad_sequences"]


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre",
                  value=0.0):
    """Pad (or cut) sequences to one length and stack them, with Keras's semantics.

    Sequences shorter than ``maxlen`` are padded with ``value``, longer ones are cut; both
    happen at the start (``"pre"``, the default: the most recent items stay at the end, next
    to the point where a recurrent layer's state is read) or at the end (``"post"``). Items
    may themselves be arrays (a trailing sample shape, taken from the first non-empty
    sequence).

    Args:
        sequences: a list of sequences (lists or arrays of items).
        maxlen: the output length; default: the longest sequence's length.
        dtype: the output dtype. Default ``"int32"``; use ``object`` for strings.
        padding: ``"pre"`` or ``"post"``: where padding goes.
        truncating: ``"pre"`` or ``"post"``: from where items are dropped.
        value: the padding value. Default 0.

    Returns:
        NumPy array of shape ``(len(sequences), maxlen) + sample_shape``.

    Raises:
        ValueError: a non-iterable entry, a bad ``padding``/``truncating``, a sequence whose
            items' shape differs from the others', or a string ``value`` for a numeric dtype.

    Example:
        >>> pad_sequences([[1, 2, 3], [4, 5], [6]])
        array([[1, 2, 3],
               [0, 4, 5],
               [0, 0, 6]], dtype=int32)
        >>> pad_sequences([[1, 2, 3], [4, 5], [6]], maxlen=2, padding="post", truncating="post")
        array([[1, 2],
               [4, 5],
               [6, 0]], dtype=int32)
    """
    if not hasattr(sequences, "__len__"):
        raise ValueError(f"pad_sequences: `sequences` must be a list of sequences, got "
                         f"{type(sequences).__name__}.")
    for name, arg in (("padding", padding), ("truncating", truncating)):
        if arg not in ("pre", "post"):
            raise ValueError(f"pad_sequences: `{name}` must be 'pre' or 'post', got {arg!r}.")
    lengths, sample_shape, found = [], (), False
    for i, s in enumerate(sequences):
        try:
            lengths.append(len(s))
        except TypeError:
            raise ValueError(f"pad_sequences: `sequences` must be a list of iterables; entry {i} "
                             f"is {type(s).__name__} {s!r}.") from None
        if not found and len(s):
            sample_shape = numpy.asarray(s).shape[1:]
            found = True
    if maxlen is None:
        maxlen = max(lengths, default=0)
    maxlen = int(maxlen)
    if maxlen < 0:
        raise ValueError(f"pad_sequences: maxlen must be >= 0, got {maxlen}.")
    is_text = numpy.issubdtype(numpy.dtype(dtype), numpy.str_)
    if isinstance(value, str) and numpy.dtype(dtype) != object and not is_text:
        raise ValueError(f"pad_sequences: dtype {dtype} cannot hold the string padding value "
                         f"{value!r}; use dtype=object for variable-length strings.")
    x = numpy.full((len(lengths), maxlen) + sample_shape, value, dtype=dtype)
    if maxlen == 0:
        return x
    for i, s in enumerate(sequences):
        if not len(s):
            continue
        cut = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        cut = numpy.asarray(cut, dtype=dtype)
        if cut.shape[1:] != sample_shape:
            raise ValueError(f"pad_sequences: the items of sequence {i} have shape "
                             f"{cut.shape[1:]}, unlike the others' {sample_shape}.")
        if padding == "post":
            x[i, :len(cut)] = cut
        else:
            x[i, maxlen - len(cut):] = cut
    return x
