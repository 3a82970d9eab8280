"""Shared timing helpers: fundl and PyTorch measured side by side, in one process, interleaved.

Each case is a zero-argument function doing one unit of work (a training step, ...). Rounds
alternate between the contenders so that machine noise hits both alike; we report the median
time per call of each and the ratio fundl / PyTorch (below 1 means fundl is faster).
"""
from __future__ import annotations

import os
import statistics
import time

THREADS = int(os.environ.get("FUNDL_BENCH_THREADS", "2"))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(THREADS))


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


def compare(cases: dict, number: int = 50, rounds: int = 7, warmup: int = 5) -> dict:
    """Median seconds per call of each case, measured in interleaved rounds.

    Args:
        cases: name -> zero-argument function.
        number: calls per timed round.
        rounds: timed rounds per case (the median is reported).
        warmup: untimed calls first.
    """
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            samples[name].append(_time_once(fn, number))
    return {name: statistics.median(s) for name, s in samples.items()}


def report(title: str, times: dict, baseline: str, unit: str = "us") -> None:
    """Print a small table of times and of each time's ratio to ``baseline``."""
    scale = {"us": 1e6, "ms": 1e3, "s": 1.0}[unit]
    print(f"\n{title}  ({THREADS} threads)")
    base = times.get(baseline)
    for name, t in times.items():
        ratio = f"{t / base:6.2f}x {baseline}" if base and name != baseline else ""
        print(f"  {name:<28s} {t * scale:10.1f} {unit}   {ratio}")


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
