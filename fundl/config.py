"""Process-wide tuning, only when asked: ``fl.config.tune_process()``.

Importing fundl and training with it leave the process as they found it: the allocator, the
environment and other libraries' thread pools are untouched. Two settings of the whole process
make fundl measurably faster, and the ``fundl`` command and the benchmarks turn them on by
calling :func:`tune_process`; a program of yours may call it too, knowing what it changes:

- **glibc's allocator keeps freed memory for reuse** (``mallopt`` of the mmap and trim
  thresholds). A training step allocates and frees the same few dozen megabytes every time;
  with glibc's defaults they are unmapped and page-faulted back in at every step (2,556 faults
  per LeNet-5 step, 72k per ResNet-20 step measured here, 40 % and 15 % of their step times).
  The cost: memory freed after a peak stays with the process (up to 1 GiB per malloc arena)
  for every library in it.
- **GNU OpenMP's idle threads spin less** (``GOMP_SPINCOUNT=20000`` in the environment before
  OpenMP starts, unless ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` is set): libgomp's default
  kept the other core busy for milliseconds after each of fundl's parallel regions (ResNet-20
  step 387-405 -> 339-376 ms). It applies to every user of libgomp in the process, and only if
  OpenMP has not started yet (call it first thing).

Example:
    >>> import fundl as fl
    >>> fl.config.tune_process()          # doctest: +SKIP
    {'malloc': True, 'openmp': True}
"""
from __future__ import annotations

import os
import warnings

from . import backend

GOMP_SPINCOUNT = 20000
_applied = {"malloc": False, "openmp": False}


def _openmp_started() -> bool:
    """Whether libgomp is already loaded in this process (then its settings are fixed)."""
    try:
        with open("/proc/self/maps") as f:
            return "libgomp" in f.read()
    except OSError:
        return False


def tune_process(malloc: bool = True, openmp: bool = True) -> dict:
    """Apply fundl's process-wide speed settings (see the module's documentation).

    Args:
        malloc: keep freed memory for reuse (glibc only; ``FUNDL_MALLOC=system`` vetoes it).
        openmp: make GNU OpenMP's idle threads spin briefly (sets ``GOMP_SPINCOUNT`` in
            ``os.environ`` unless it or ``OMP_WAIT_POLICY`` is set; only before OpenMP starts).

    Returns:
        ``{"malloc": bool, "openmp": bool}``: which settings are in force after the call.

    Example:
        >>> fl.config.tune_process(openmp=False)   # doctest: +SKIP
        {'malloc': True, 'openmp': False}
    """
    if malloc and not _applied["malloc"]:
        _applied["malloc"] = backend._tune_malloc()
        backend.MALLOC_TUNED = _applied["malloc"]
    if openmp and not _applied["openmp"]:
        if "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ:
            pass  # the user's own choice stands
        elif _openmp_started():
            warnings.warn("fundl.config.tune_process: GNU OpenMP has started already, so its "
                          "spin count can no longer be set; call tune_process() before the "
                          "first training step.", RuntimeWarning, stacklevel=2)
        else:
            os.environ["GOMP_SPINCOUNT"] = str(GOMP_SPINCOUNT)
            _applied["openmp"] = True
    return dict(_applied)


def process_tuning() -> dict:
    """Which of :func:`tune_process`'s settings this process has applied so far."""
    return dict(_applied)


def set_compile_policy(policy):
    """When fundl's CPU kernels compile: ``"background"`` (the default on a cold Numba cache:
    a worker process compiles them while the first steps run on the NumPy references, not
    bit-identical to later runs) or ``"foreground"`` (this process compiles each kernel before
    its first call: the first step waits, every step is the compiled one); None goes back to
    the ``FUNDL_COMPILE`` environment variable. Returns the policy in force before.

    See :mod:`fundl.kernels._jit`. With a warm cache (every run after the first) both are
    the same.

    Example:
        >>> fl.config.set_compile_policy("foreground")   # doctest: +SKIP
        'background'
    """
    from .kernels._jit import set_compile_policy as set_policy

    return set_policy(policy)


def compile_policy() -> str:
    """The compile policy in force (see :func:`set_compile_policy`)."""
    from .kernels._jit import compile_policy as policy

    return policy()
