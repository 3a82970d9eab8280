"""Reshaping layers: Cropping1D, Cropping2D, Permute and RepeatVector (Keras 3's).

``Flatten``, ``Reshape`` and the zero-padding layers live in core.py and conv.py; these add
the rest of Keras's reshaping family. None of them has weights; their gradients are those of
the slicing, transposing and broadcasting ops they are made of.

Example:
    >>> Cropping2D(((2, 2), (4, 4)))(fl.ones(1, 28, 28, 1)).shape
    (1, 24, 20, 1)
"""
from __future__ import annotations

import numbers

from .. import functional as F
from .base import Layer
from .conv import _ShapeChecks, _data_format, _explicit_pads, _is_int, _one_pair


class _Cropping(_ShapeChecks, Layer):
    """The shared body of Cropping1D/2D: ``self.crops`` holds (before, after) per spatial axis."""

    _form = ""

    def __init__(self, cropping, data_format=None, **kwargs):
        super().__init__(**kwargs)
        who = type(self).__name__
        value = (cropping,) if self._rank == 1 and _one_pair(cropping) else cropping
        try:  # the 1-D form is one (start, end) pair, wrapped above as the one axis's pair
            self.crops = _explicit_pads(who, value, self._rank, self._form)
        except ValueError:
            raise ValueError(f"{who}: cropping must be {self._form}, got {cropping!r}.") from None
        self.data_format = _data_format(who, data_format)

    def _cropped(self, shape):
        out = []
        for n, (b, a) in zip(self._spatial(shape), self.crops):
            if n is not None and b + a >= n:
                raise ValueError(f"{self._who()}: cropping {self.crops} removes all of an axis "
                                 f"of size {n} (input shape {tuple(shape)}); crop less.")
            out.append(None if n is None else n - b - a)
        return out

    def build(self, input_shape):
        self._check_rank(input_shape)
        self._cropped(input_shape)

    def call(self, x, training=None):
        self._check_rank(x.shape)
        self._cropped(x.shape)
        spatial = tuple(slice(b, n - a) for n, (b, a) in zip(self._spatial(x.shape), self.crops))
        if self.data_format == "channels_first":
            index = (slice(None), slice(None)) + spatial
        else:
            index = (slice(None),) + spatial + (slice(None),)
        return F.getitem(x, index)

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        return self._assemble(input_shape[0], self._cropped(input_shape),
                              input_shape[self._channel_axis()])

    def get_config(self):
        cropping = list(self.crops[0]) if self._rank == 1 else [list(p) for p in self.crops]
        config = {**super().get_config(), "cropping": cropping}
        if self._rank > 1:
            config["data_format"] = self.data_format
        return config


class Cropping1D(_Cropping):
    """Removes steps at the start and end of ``(batch, steps, features)`` sequences.

    Args:
        cropping: an int (both ends) or a pair ``(start, end)``.

    No weights. Output ``(batch, steps - start - end, features)``.

    Example:
        >>> Cropping1D((1, 2))(fl.ones(2, 10, 3)).shape
        (2, 7, 3)
    """

    _rank = 1
    _form = "an int or a pair (start, end) of ints >= 0"

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(cropping, None, **kwargs)


class Cropping2D(_Cropping):
    """Removes rows and columns at the borders of images (Keras's forms of ``cropping``).

    Args:
        cropping: an int (the same on all four sides); ``(sym_height, sym_width)``; or
            ``((top, bottom), (left, right))``.
        data_format: None or "channels_last", or "channels_first".

    No weights. Output ``(batch, height - top - bottom, width - left - right, channels)``.

    Example:
        >>> Cropping2D(((1, 0), (2, 2)))(fl.ones(1, 5, 6, 3)).shape
        (1, 4, 2, 3)
    """

    _rank = 2
    _form = "an int, 2 ints (symmetric height, width cropping) or 2 (before, after) pairs"

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)


class Permute(Layer):
    """Permutes the axes of each sample (the batch axis stays first).

    Args:
        dims: a permutation of ``1..rank-1`` (1-indexed: axis 1 is the first after the batch),
            e.g. ``(2, 1)`` swaps the two axes of ``(batch, steps, features)``.

    No weights. Output: the sample axes in the order ``dims``.

    Example:
        >>> Permute((2, 1))(fl.ones(4, 10, 64)).shape
        (4, 64, 10)
    """

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        try:
            dims = tuple(dims)
        except TypeError:
            dims = None
        if dims is None or not dims or not all(_is_int(d) for d in dims) or \
                sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"Permute: dims must be a permutation of 1..n (1-indexed, the batch "
                             f"axis excluded), e.g. (2, 1); got {dims!r}.")
        self.dims = tuple(int(d) for d in dims)

    def _check(self, shape):
        if len(shape) != len(self.dims) + 1:
            raise ValueError(f"Permute '{self.name}': dims {self.dims} need inputs of rank "
                             f"{len(self.dims) + 1}, got shape {tuple(shape)}.")

    def call(self, x, training=None):
        self._check(x.shape)
        return F.transpose(x, (0,) + self.dims)

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def get_config(self):
        return {**super().get_config(), "dims": list(self.dims)}


class RepeatVector(Layer):
    """Repeats each input vector ``n`` times: ``(batch, features) -> (batch, n, features)``.

    Args:
        n: the number of repetitions (the new time axis; sequence-to-sequence decoders).

    No weights; the gradient sums over the repetitions.

    Example:
        >>> RepeatVector(3)(fl.ones(2, 5)).shape
        (2, 3, 5)
    """

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 1:
            raise ValueError(f"RepeatVector: n must be a positive int, got {n!r}.")
        self.n = int(n)

    def _check(self, shape):
        if len(shape) != 2:
            raise ValueError(f"RepeatVector '{self.name}': expected inputs of rank 2 (batch, "
                             f"features), got shape {tuple(shape)}.")

    def call(self, x, training=None):
        self._check(x.shape)
        return F.broadcast_to(F.expand_dims(x, 1), (x.shape[0], self.n, x.shape[1]))

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self):
        return {**super().get_config(), "n": self.n}
