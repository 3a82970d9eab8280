"""Keras's ``keras.preprocessing`` helpers that work on NumPy data (``sequence.pad_sequences``).

Example:
    >>> from fundl.preprocessing.sequence import pad_sequences
    >>> pad_sequences([[1, 2, 3], [4]], maxlen=2)
    array([[2, 3],
           [0, 4]], dtype=int32)
"""
from . import sequence
from .sequence import pad_sequences

__all__ = ["pad_sequences", "sequence"]
