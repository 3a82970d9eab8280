"""Shared timing helpers for fundl-vs-PyTorch benchmarks, run side by side in one command.

Two ways to time, both printing medians and the ratio fundl / PyTorch (below 1: fundl faster):

- :func:`compare` interleaves the contenders inside one process. Right for work without
  threads (per-op dispatch overhead on tiny tensors).
- :func:`run_isolated` times each contender in a process of its own, alternating processes.
  Needed as soon as BLAS threads are involved: NumPy's OpenBLAS keeps its worker threads
  spinning for a while after each matrix product, and in a shared process they steal a core
  from PyTorch (measured here: PyTorch's LeNet step went from 3.3 ms alone to 6-9 ms when
  interleaved with NumPy work), which would flatter fundl. Each process also reports its peak
  resident memory, which is then the contender's own.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

THREADS = int(os.environ.get("FUNDL_BENCH_THREADS", "2"))
# Before NumPy or PyTorch load: both read these when their thread pools start.
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(THREADS))
os.environ.setdefault("MKL_NUM_THREADS", str(THREADS))
# Time compiled kernels only: on a cold Numba cache fundl would otherwise run its NumPy
# references while a background process compiles (fundl.kernels._jit).
os.environ.setdefault("FUNDL_COMPILE", "foreground")


def import_torch():
    """PyTorch on THREADS threads, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(THREADS)
    return torch


def _time_once(fn, number):
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def _samples(cases: dict, number: int, rounds: int, warmup: int) -> dict:
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            samples[name].append(_time_once(fn, number))
    return samples


def compare(cases: dict, number: int = 50, rounds: int = 7, warmup: int = 5) -> dict:
    """Median seconds per call of each case, interleaved in this process (no-thread work only).

    Args:
        cases: name -> zero-argument function.
        number: calls per timed round.
        rounds: timed rounds per case (the median is reported).
        warmup: untimed calls first.
    """
    return {name: statistics.median(s)
            for name, s in _samples(cases, number, rounds, warmup).items()}


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux).

    Read from ``VmHWM`` in /proc/self/status, which starts afresh at ``exec``; ``ru_maxrss``
    would carry over the parent's peak into a child process.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_isolated(builders: dict, number: int, rounds: int = 5, warmup: int = 3,
                 processes: int = 2) -> tuple[dict, dict]:
    """Time each contender in its own process; returns (median seconds, peak MB) by name.

    Args:
        builders: name -> zero-argument function that imports what it needs and returns the
            zero-argument function to time (so a fundl process never loads PyTorch and vice
            versa).
        number, rounds, warmup: as for :func:`compare`, inside each process.
        processes: processes per contender, alternating between contenders.

    The calling script is re-run as ``script --only=<name>``; in that child this function times
    just that contender and prints one JSON line for the parent.
    """
    only = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--only=")), None)
    if only is not None:
        if only not in builders:
            raise SystemExit(f"unknown contender {only!r}; choose from {sorted(builders)}")
        fn = builders[only]()
        samples = _samples({only: fn}, number, rounds, warmup)[only]
        print("FUNDL_BENCH " + json.dumps({"samples": samples, "peak_mb": peak_rss_mb()}))
        raise SystemExit(0)
    samples = {name: [] for name in builders}
    peaks = {name: 0.0 for name in builders}
    for _ in range(processes):
        for name in builders:
            passed = [a for a in sys.argv[1:] if not a.startswith("--only=")]  # keep options
            out = subprocess.run([sys.executable, sys.argv[0], *passed, f"--only={name}"],
                                 capture_output=True, text=True, env=os.environ.copy())
            lines = [line for line in out.stdout.splitlines() if line.startswith("FUNDL_BENCH ")]
            if out.returncode != 0 or not lines:
                raise RuntimeError(f"benchmark process for {name!r} failed:\n{out.stderr[-3000:]}")
            result = json.loads(lines[-1][len("FUNDL_BENCH "):])
            samples[name].extend(result["samples"])
            peaks[name] = max(peaks[name], result["peak_mb"])
    return {name: statistics.median(s) for name, s in samples.items()}, peaks


def print_gemm_library() -> None:
    """Which GEMM fundl's compiled loops call (MKL when the optional extra is installed)."""
    from fundl.kernels import blas

    print(f"fundl's GEMM in compiled loops: {blas.library()} "
          f"(FUNDL_BLAS=numpy or mkl chooses; see fundl/kernels/blas.py)")


def report(title: str, times: dict, baseline: str, unit: str = "us", peaks=None) -> None:
    """Print a small table of times (and peak memory) and each time's ratio to ``baseline``."""
    scale = {"us": 1e6, "ms": 1e3, "s": 1.0}[unit]
    print(f"\n{title}  ({THREADS} threads)")
    base = times.get(baseline)
    for name, t in times.items():
        ratio = f"{t / base:6.2f}x {baseline}" if base and name != baseline else " " * 8 + \
            " " * len(baseline) + " "
        memory = f"   peak {peaks[name]:7.0f} MB" if peaks else ""
        print(f"  {name:<24s} {t * scale:10.2f} {unit}   {ratio}{memory}")
