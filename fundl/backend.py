"""Array back-ends: NumPy on the CPU, CuPy on an NVIDIA GPU.

Every op is written once against an array module ``xp`` that is either ``numpy``
or ``cupy``; :func:`get_array_module` picks the right one for a given array.
This module also holds the user's two settings: the default device and the default
floating-point dtype (the speed machinery's state lives in :mod:`fundl.runtime`). It leaves
the process's memory allocator alone: :func:`fundl.config.tune_process` tunes it on request
(:func:`_tune_malloc`).

Example:
    >>> import fundl as fl
    >>> fl.set_device("cpu")
    >>> fl.get_device()
    'cpu'
"""
from __future__ import annotations

import ctypes
import os
import sys
import warnings

import numpy

from . import runtime

_RT = runtime.state()
_DEVICES = ("cpu", "gpu")
_default_device = "cpu"
_default_dtype = numpy.dtype(numpy.float32)
_cupy = None  # the cupy module once it has been imported and found usable


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_FREED_BYTES = 1 << 30  # freed heap memory kept for reuse instead of returned to the system
_HEAP_UP_TO_BYTES = 32 << 20  # blocks up to this size come from the heap, larger ones from mmap


def _tune_malloc(environ=os.environ, platform=sys.platform) -> bool:
    """Keep freed memory for reuse (glibc only); returns whether the setting was applied.

    Only :func:`fundl.config.tune_process` calls it: the allocator is the process's, not
    fundl's, so it changes only when the user (or the ``fundl`` command) asks.

    A training step allocates and frees the same few dozen megabytes every time. With glibc's
    defaults, blocks of a few MB are mmap-ed and unmapped, or trimmed off the heap, on every
    step, and each page is page-faulted back in by the next one: 2,556 faults per LeNet-5 step
    and 72k per ResNet-20 step measured here, 40 % and 15 % of their step times
    (``benchmarks/bench_cnn.py``). Keeping freed memory in the heap turns that to zero faults.
    The process's peak memory is unchanged, but memory freed after a peak is kept by the
    process (up to 1 GiB per malloc arena: the main thread's, and one per worker thread)
    rather than returned. ``FUNDL_MALLOC=system`` vetoes it.
    Raising only the trim threshold would be worse than nothing: it switches off glibc's
    adaptive mmap threshold, so both are set.
    """
    setting = environ.get("FUNDL_MALLOC", "").strip().lower()
    if setting not in ("", "system", "reuse"):
        warnings.warn(f"fundl: FUNDL_MALLOC={setting!r} is not a setting; use 'system' (glibc's "
                      "defaults) or 'reuse' (the default). Keeping freed memory for reuse.",
                      RuntimeWarning, stacklevel=3)
    if setting == "system" or not platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _HEAP_UP_TO_BYTES)
                and mallopt(_M_TRIM_THRESHOLD, _KEEP_FREED_BYTES))


MALLOC_TUNED = False  # set by fundl.config.tune_process()


def _import_cupy():
    """Import CuPy and check that a GPU is usable, raising a clear error if not."""
    global _cupy
    if _cupy is not None:
        return _cupy
    try:
        import cupy
    except ImportError as e:
        raise RuntimeError(
            "fundl: device 'gpu' needs CuPy, which is not installed. "
            "Install it with `pip install fundl[gpu]` (or a cupy-cuda12x/cupy-cuda13x wheel "
            "matching your CUDA driver)."
        ) from e
    # `import cupy` succeeds on machines without a GPU; ask the driver instead.
    try:
        available = cupy.cuda.is_available()
    except Exception:  # noqa: BLE001 - any driver failure means "no usable GPU"
        available = False
    if not available:
        raise RuntimeError(
            "fundl: device 'gpu' was requested and CuPy is installed, but no usable NVIDIA GPU "
            "was found (cupy.cuda.is_available() is False). Check `nvidia-smi` and the CUDA "
            "driver, or use fl.set_device('cpu')."
        )
    _cupy = cupy
    return cupy


def gpu_available() -> bool:
    """True when CuPy is installed and an NVIDIA GPU is usable."""
    try:
        _import_cupy()
    except RuntimeError:
        return False
    return True


def _check_device(device: str) -> str:
    if device not in _DEVICES:
        raise ValueError(f"fundl: unknown device {device!r}; expected one of {_DEVICES}.")
    return device


def set_device(device: str) -> None:
    """Set the default device for new tensors and models: ``"cpu"`` or ``"gpu"``.

    Args:
        device: ``"cpu"`` (NumPy) or ``"gpu"`` (CuPy).

    Raises:
        RuntimeError: ``"gpu"`` was asked for but CuPy or a GPU is missing (the message says which).

    Example:
        >>> fl.set_device("cpu")
    """
    global _default_device
    _check_device(device)
    if device == "gpu":
        _import_cupy()
    _default_device = device


def get_device() -> str:
    """The default device, ``"cpu"`` or ``"gpu"``."""
    return _default_device


def get_default_dtype() -> numpy.dtype:
    """The default floating-point dtype (float32 unless changed)."""
    return _default_dtype


def set_default_dtype(dtype) -> None:
    """Set the default floating-point dtype, e.g. ``"float64"`` for gradient checks."""
    global _default_dtype
    d = numpy.dtype(dtype)
    if d.kind != "f":
        raise TypeError(f"fundl: the default dtype must be a floating dtype, got {d}.")
    _default_dtype = d


def device_module(device: str):
    """The array module (``numpy`` or ``cupy``) of a device name."""
    if _check_device(device) == "cpu":
        return numpy
    return _import_cupy()


def get_array_module(x):
    """The array module of ``x``: ``numpy`` for NumPy arrays and scalars, else ``cupy``."""
    if type(x) is numpy.ndarray or _cupy is None:
        return numpy
    return _cupy.get_array_module(x)


def ones_vector(n: int, dtype, xp=numpy):
    """A read-only vector of ``n`` ones, cached (in ``fundl.runtime.state().ones``): bias
    gradients and row sums are GEMVs with it on every training step, and allocating it each
    time costs more than the GEMV."""
    key = (xp.__name__, n, numpy.dtype(dtype).str)
    cache = _RT.ones
    v = cache.get(key)
    if v is None:
        if len(cache) > 256:  # a cache, not a leak: shapes are few in practice
            cache.clear()
        v = xp.ones(n, dtype=dtype)
        if xp is numpy:
            v.flags.writeable = False
        cache[key] = v
    return v


def device_of(x) -> str:
    """``"gpu"`` for CuPy arrays, ``"cpu"`` otherwise."""
    return "cpu" if get_array_module(x) is numpy else "gpu"


def to_device(x, device: str):
    """Move an array to ``device`` (a no-op when it is already there)."""
    if device_of(x) == _check_device(device):
        return x
    if device == "cpu":
        return x.get()
    return _import_cupy().asarray(x)


def to_numpy(x):
    """A NumPy array holding ``x`` (copied from the GPU when needed)."""
    if type(x) is numpy.ndarray:
        return x
    if _cupy is not None and get_array_module(x) is not numpy:
        return x.get()
    return numpy.asarray(x)


if os.environ.get("FUNDL_DEVICE"):
    set_device(os.environ["FUNDL_DEVICE"])
