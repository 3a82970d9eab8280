"""Activation gradients from the kept output, in one pass: Numba and plain ``xp``.

The backward of ReLU, tanh and the logistic sigmoid reads the forward's output ``y`` and the
incoming gradient ``gy`` and writes ``gx``. NumPy does ``gy * (1 - y * y)`` as three passes over
memory with two temporaries; these kernels make one pass, reading two arrays and writing one,
which is what bounds them (measured on a 64x28x28x6 float32 tensor: 244 -> 118 us for tanh,
176 -> 122 us for ReLU; the same ratio on ResNet-20's 128x32x32x16).

    relu_grad(gy, y)     = gy where y > 0, else 0
    tanh_grad(gy, y)     = gy * (1 - y^2)
    sigmoid_grad(gy, y)  = gy * y * (1 - y)

Inputs are arrays of one float dtype and one shape; the result is a new array. Arrays of
:data:`MIN_REGION_BYTES` and more run as one slice per thread in a Numba parallel region
where regions can run, else large ones (8 MB moved and more) as slices on Python threads
(:mod:`fundl.kernels._parallel`).
"""
from __future__ import annotations

import weakref

import numpy

from ..backend import get_array_module
from . import _parallel
from ._jit import jit, parallel_jit, prange


@jit
def _relu_grad_kernel(gy, y, gx):
    zero = gx.dtype.type(0)  # a float64 literal would block vectorisation in float32
    for i in range(gx.shape[0]):
        gx[i] = gy[i] if y[i] > zero else zero


@jit
def _tanh_grad_kernel(gy, y, gx):
    one = gx.dtype.type(1)
    for i in range(gx.shape[0]):
        gx[i] = gy[i] * (one - y[i] * y[i])


@jit
def _sigmoid_grad_kernel(gy, y, gx):
    one = gx.dtype.type(1)
    for i in range(gx.shape[0]):
        gx[i] = gy[i] * y[i] * (one - y[i])


_KERNELS = {"relu": _relu_grad_kernel, "tanh": _tanh_grad_kernel,
            "sigmoid": _sigmoid_grad_kernel}
KINDS = tuple(_KERNELS)
MIN_REGION_BYTES = 1 << 18
"""Arrays split over a parallel region from this size (a hand-off there costs microseconds)."""


@jit
def grad_kernel(kind, gy, y, gx):
    """``gx`` = the gradient through activation ``kind`` (an index into :data:`KINDS`) of
    ``gy`` from its output ``y`` (flat arrays), for compiled callers: the parts below and the
    convolutions' backward regions (:func:`fundl.kernels.conv._conv_backward_chunks`)."""
    if kind == 0:
        _relu_grad_kernel(gy, y, gx)
    elif kind == 1:
        _tanh_grad_kernel(gy, y, gx)
    else:
        _sigmoid_grad_kernel(gy, y, gx)


@parallel_jit
def _grad_parts(kind, gy, y, gx, bounds):
    """The kernel of ``kind`` (an index into :data:`KINDS`) over each part's elements."""
    for i in prange(len(bounds) - 1):
        s, e = bounds[i], bounds[i + 1]
        grad_kernel(kind, gy[s:e], y[s:e], gx[s:e])


@jit
def _relu_kernel(x, y):
    zero = y.dtype.type(0)
    for i in range(x.shape[0]):
        v = x[i]
        # as numpy.maximum(x, 0): NaN stays NaN, -0.0 becomes 0.0
        y[i] = v if v > zero or v != v else zero


@jit
def _relu_in_place_kernel(y):
    # one array, not _relu_kernel(y, y): with two arguments LLVM guards its vector loop with
    # an overlap check, which an in-place call fails, and the scalar loop ran 5-7x slower
    zero = y.dtype.type(0)
    for i in range(y.shape[0]):
        v = y[i]
        y[i] = v if v > zero or v != v else zero


def relu_in_place_numba(y):
    """``numpy.maximum(y, 0, out=y)`` of a C-contiguous float array (the same values: NaN
    stays NaN, -0.0 becomes 0.0), in one vectorised pass: a LeNet-5 convolution's 1.2 MB
    output took 16 us here against NumPy's 105-115 us (one thread, AMD EPYC)."""
    _relu_in_place_kernel(y.reshape(-1))
    return y


@parallel_jit
def _relu_parts(x, y, bounds):
    for i in prange(len(bounds) - 1):
        _relu_kernel(x[bounds[i]:bounds[i + 1]], y[bounds[i]:bounds[i + 1]])


def relu_numba(x):
    """``numpy.maximum(x, 0)`` of a C-contiguous float array, one slice per thread in a
    parallel region (for arrays of :data:`MIN_REGION_BYTES` or more, where regions can run)."""
    x1 = x.reshape(-1)
    y = numpy.empty_like(x)
    parts = _parallel.even_slices(x1.size, _parallel.threads())
    _parallel.run_backing_off(_BACKOFF, _relu_parts, len(parts), 2 * x.nbytes,
                              (_relu_parts, x.dtype), x1, y.reshape(-1),
                              _parallel.bounds_of(parts), blas=False)
    return y


_BACKOFF = _parallel.Backoff(per_second=1e9)
"""The activation regions back off to one thread while they stall (another process holding
the second core makes a region wait a time slice), as pooling's: ``per_second`` is bytes
read and written a second on one core, a low estimate (a 1.2 MB ReLU pass took 16 us)."""


# -- gradients already through ReLU ------------------------------------------------------------
_RELU_DONE = {}  # id(g) -> (weak g, weak y): g is already 0 wherever y <= 0 (or NaN)


def mark_relu_applied(g, y):
    """Record that gradient ``g`` is already 0 wherever ``y`` is not positive, so that ReLU's
    gradient of ``g`` from the output ``y``, ``where(y > 0, g, 0)``, is ``g`` itself: then
    :func:`activation_grad_numba` / :func:`activation_grad_reference` return ``g`` without a
    pass over memory (nor a new array).

    Max pooling after a ReLU uses it (max(relu(x)) = relu(max(x))): its backward drops the
    gradient of every window whose maximum is not positive, which is ReLU's gradient
    restricted to the elements that get one. The record holds only while both arrays live
    and is matched by identity (the very ``g`` object from the very ``y``): a gradient summed
    with another branch's, or copied, is a new object and takes the normal pass.
    """
    try:
        key = id(g)
        _RELU_DONE[key] = (weakref.ref(g, lambda _, k=key: _RELU_DONE.pop(k, None)),
                           weakref.ref(y))
    except TypeError:  # an array type without weak references: no record, the normal pass
        pass


def _relu_applied(kind, gy, y):
    entry = _RELU_DONE.get(id(gy)) if kind == "relu" and _RELU_DONE else None
    return entry is not None and entry[0]() is gy and entry[1]() is y


def activation_grad_numba(kind, gy, y):
    """Numba version of :func:`activation_grad_reference` (NumPy arrays)."""
    if _relu_applied(kind, gy, y):
        return gy
    gy = numpy.asarray(gy, order="C")  # not ascontiguousarray: it makes 0-d arrays 1-d
    y = numpy.asarray(y, order="C")
    gx = numpy.empty_like(y)
    g1, y1, gx1 = gy.reshape(-1), y.reshape(-1), gx.reshape(-1)
    if _parallel.regions() and y.nbytes >= MIN_REGION_BYTES:
        parts = _parallel.even_slices(y1.size, _parallel.threads())
        _parallel.run_backing_off(_BACKOFF, _grad_parts, len(parts), 3 * y.nbytes,
                                  (_grad_parts, y.dtype), KINDS.index(kind), g1, y1, gx1,
                                  _parallel.bounds_of(parts), blas=False)
        return gx
    kernel = _KERNELS[kind]
    _parallel.map_chunks(lambda s: kernel(g1[s], y1[s], gx1[s]),
                         _parallel.slices(y1.size, 3 * y.nbytes))
    return gx


def activation_grad_reference(kind, gy, y):
    """The gradient of activation ``kind`` ("relu", "tanh", "sigmoid") from its output ``y``.

    ``gy`` itself when :func:`mark_relu_applied` recorded that ReLU's gradient would not
    change it."""
    if _relu_applied(kind, gy, y):
        return gy
    if kind == "relu":  # where, not gy * (y > 0): an inf or NaN in gy must not leak through a 0
        return get_array_module(y).where(y > 0, gy, 0)
    if kind == "tanh":
        return gy * (1 - y * y)
    if kind == "sigmoid":
        return gy * y * (1 - y)
    raise ValueError(f"activation_grad: kind must be 'relu', 'tanh' or 'sigmoid', got {kind!r}.")
