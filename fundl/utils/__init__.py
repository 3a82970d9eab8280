"""Keras's ``keras.utils`` conveniences: ``to_categorical``, ``normalize``, ``set_random_seed``,
``PyDataset``, ``pad_sequences``, ``timeseries_dataset_from_array``, ``plot_model`` and
``clear_session``.

Example:
    >>> from fundl import utils
    >>> utils.to_categorical([0, 2, 1])
    array([[1., 0., 0.],
           [0., 0., 1.],
           [0., 1., 0.]])
"""
from __future__ import annotations

import inspect
import numbers
import random as _py_random
import warnings

import numpy

from ..preprocessing.sequence import pad_sequences
from .py_dataset import PyDataset, Sequence
from .timeseries import timeseries_dataset_from_array

__all__ = ["PyDataset", "Sequence", "clear_session", "normalize", "pad_sequences", "plot_model",
           "set_random_seed", "timeseries_dataset_from_array", "to_categorical"]


def to_categorical(y, num_classes=None):
    """Integer class labels as one-hot rows (Keras 3's ``to_categorical``).

    Args:
        y: integer labels, any shape (a trailing axis of size 1 is dropped, as Keras does):
            a list or NumPy array (floats holding whole numbers are accepted), or a fundl
            Tensor.
        num_classes: the number of classes; default ``max(y) + 1``.

    Returns:
        For lists and arrays, a float64 NumPy array (as Keras) of shape
        ``y.shape + (num_classes,)``; for a Tensor, a float32 Tensor (Keras returns a backend
        tensor there too, via ``one_hot``).

    Raises:
        ValueError: labels that are negative, not whole numbers, or ``>= num_classes``.

    Example:
        >>> to_categorical([1, 0], num_classes=3)
        array([[0., 1., 0.],
               [1., 0., 0.]])
    """
    from ..tensor import Tensor

    is_tensor = isinstance(y, Tensor)
    data = y.data if is_tensor else y
    if hasattr(data, "get") and not isinstance(data, numpy.ndarray):  # CuPy
        data = data.get()
    y = numpy.asarray(data)
    if y.dtype.kind == "f":
        if not numpy.all(numpy.isfinite(y)) or numpy.any(y != numpy.round(y)):
            raise ValueError("to_categorical: labels must be whole numbers (class indices), got "
                             "non-integer values.")
        y = y.astype(numpy.int64)
    elif y.dtype.kind not in "iub":
        raise ValueError(f"to_categorical: labels must be integer class indices, got dtype "
                         f"{y.dtype}.")
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y.reshape(y.shape[:-1])
    if y.size and int(y.min()) < 0:
        raise ValueError(f"to_categorical: labels must be >= 0, got {int(y.min())}.")
    top = int(y.max()) + 1 if y.size else 0
    if num_classes is None:
        num_classes = top
    elif isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) \
            or num_classes < 1:
        raise ValueError(f"to_categorical: num_classes must be a positive int, got "
                         f"{num_classes!r}.")
    elif top > num_classes:
        raise ValueError(f"to_categorical: label {top - 1} does not fit num_classes="
                         f"{num_classes}; labels must lie in [0, {num_classes}).")
    out = numpy.zeros(y.shape + (int(num_classes),),
                      dtype=numpy.float32 if is_tensor else numpy.float64)
    numpy.put_along_axis(out, y[..., None].astype(numpy.intp), 1.0, axis=-1)
    return Tensor(out) if is_tensor else out


def normalize(x, axis=-1, order=2):
    """``x`` divided by its ``order``-norm along ``axis`` (zero vectors are left as zeros).

    Args:
        x: NumPy array (or fundl Tensor: its data is used).
        axis: the axis along which to normalise. Default -1.
        order: the norm's order (2: Euclidean). Default 2.

    Returns:
        NumPy array of ``x``'s shape.

    Example:
        >>> normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
        array([[0.6, 0.8],
               [0. , 0. ]])
    """
    data = getattr(x, "data", x)
    if hasattr(data, "get") and not isinstance(data, numpy.ndarray):
        data = data.get()
    x = numpy.asarray(data)
    norm = numpy.atleast_1d(numpy.linalg.norm(x, order, axis))
    norm[norm == 0] = 1
    return x / numpy.expand_dims(norm, axis)


def set_random_seed(seed):
    """Seed every generator a Keras program draws from: fundl's, NumPy's global and Python's.

    Keras's ``set_random_seed`` seeds Python's ``random``, NumPy's global generator and the
    backend's; here the backend's is fundl's own (:func:`fundl.manual_seed`: initializers,
    dropout, ``fl.randn``, :mod:`fundl.random` with ``seed=None``). It changes global state on
    purpose, because the user asks for it.

    Args:
        seed: a non-negative int.

    Raises:
        ValueError: a seed that is not an int (as Keras).

    Example:
        >>> utils.set_random_seed(1337)
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"set_random_seed: expected an int seed, got {type(seed).__name__} "
                         f"{seed!r}.")
    if seed < 0:
        raise ValueError(f"set_random_seed: the seed must be >= 0, got {seed}.")
    from ..tensor import manual_seed

    _py_random.seed(int(seed))
    numpy.random.seed(int(seed) % 2 ** 32)
    manual_seed(int(seed))


def clear_session():
    """Start layer names afresh (``dense``, ``dense_1``, ... count from 0 again), as Keras,
    and hand back the memory of fundl's buffer pool.

    fundl keeps no graph or session state beyond the automatic layer names and the pool of
    big buffers its ops recycle from one step to the next (:class:`fundl.runtime.Workspace`,
    up to a few hundred MB after a large network's step): the pool forgets the buffers no one
    uses, so their memory goes back to the allocator. Existing models keep working.

    Example:
        >>> utils.clear_session()
    """
    from .. import runtime
    from ..layers import base

    reset = getattr(base, "reset_name_counters", None)
    if reset is not None:
        reset()
    runtime.state().workspace.clear()


_KERAS_PLOT_DEFAULTS = {"show_shapes": False, "show_dtype": False, "show_layer_names": True,
                        "rankdir": "TB", "expand_nested": False, "dpi": 200,
                        "show_layer_activations": False, "show_trainable": False}


def plot_model(model, to_file="model.png", **kwargs):
    """Draw a model's layer graph to ``to_file`` (Keras's ``plot_model``; :mod:`fundl.viz`).

    Args:
        model: a fundl model.
        to_file: the picture's path. Default ``"model.png"`` (as Keras).
        **kwargs: Keras's options ``show_shapes``, ``show_dtype``, ``show_layer_names``,
            ``rankdir``, ``expand_nested``, ``dpi``, ``show_layer_activations``,
            ``show_trainable`` (Keras's defaults); one :func:`fundl.viz.plot_model` cannot
            honour is ignored with a warning.

    Returns:
        What :func:`fundl.viz.plot_model` returns (a matplotlib Figure, or the DOT text when
        Graphviz is missing).

    Example:
        >>> utils.plot_model(model, to_file="model.png", show_shapes=True)   # doctest: +SKIP
    """
    unknown = set(kwargs) - set(_KERAS_PLOT_DEFAULTS) - {"show_layer_range"}
    if unknown:
        raise TypeError(f"plot_model: unexpected arguments {sorted(unknown)}; Keras's are "
                        f"{sorted(_KERAS_PLOT_DEFAULTS)}.")
    from .. import viz  # lazily: matplotlib and Graphviz are optional

    target = viz.plot_model
    accepted = set(inspect.signature(target).parameters)
    options = {**_KERAS_PLOT_DEFAULTS, **kwargs}
    dropped = sorted(k for k in kwargs if k not in accepted
                     and kwargs[k] != _KERAS_PLOT_DEFAULTS.get(k))
    if dropped:
        warnings.warn(f"plot_model: fundl.viz.plot_model does not support {dropped}; they are "
                      "ignored.", stacklevel=2)
    return target(model, to_file=to_file, **{k: v for k, v in options.items() if k in accepted})
