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
- :func:`run_paired` keeps one process per contender alive and times them in lock step, one
  short block each in turn, so that each fundl block has a PyTorch block a fraction of a second
  away: the ratio is taken round by round (:func:`paired_ratios`). Why: on the 2-core
  development VM the CPU's speed changes by up to 1.7x in phases of a few hundred ms (a fixed
  pure-Python loop ran in 110 or 185 us, alternating every 0.25-1 s; no steal time shows it),
  so two medians taken a minute apart compare two machine states as much as two frameworks.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
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


def _child_contender(builders: dict):
    """In a child process started as ``script --only=<name>``: that name (checked against
    ``builders``); in the parent: None."""
    only = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--only=")), None)
    if only is not None and only not in builders:
        raise SystemExit(f"unknown contender {only!r}; choose from {sorted(builders)}")
    return only


def _child_command(name: str) -> list:
    """The command that re-runs the calling script as the child timing contender ``name``
    (the script's own options kept)."""
    passed = [a for a in sys.argv[1:] if not a.startswith("--only=")]
    return [sys.executable, sys.argv[0], *passed, f"--only={name}"]


def _child_failed(name: str, stderr: str) -> RuntimeError:
    """The error for a child process that failed, with the end of its own traceback."""
    return RuntimeError(f"benchmark process for {name!r} failed:\n{stderr[-3000:]}")


def block_calls(names, steps: int) -> dict:
    """Calls per timed block for :func:`run_paired`, by contender name: ``steps`` for a
    training step, four times as many for an inference contender (a name with " infer "),
    whose calls take about a third of a step: blocks of similar length."""
    return {name: steps * (4 if " infer " in name else 1) for name in names}


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
    only = _child_contender(builders)
    if only is not None:
        fn = builders[only]()
        samples = _samples({only: fn}, number, rounds, warmup)[only]
        print("FUNDL_BENCH " + json.dumps({"samples": samples, "peak_mb": peak_rss_mb()}))
        raise SystemExit(0)
    samples = {name: [] for name in builders}
    peaks = {name: 0.0 for name in builders}
    for _ in range(processes):
        for name in builders:
            out = subprocess.run(_child_command(name), capture_output=True, text=True,
                                 env=os.environ.copy())
            lines = [line for line in out.stdout.splitlines() if line.startswith("FUNDL_BENCH ")]
            if out.returncode != 0 or not lines:
                raise _child_failed(name, out.stderr)
            result = json.loads(lines[-1][len("FUNDL_BENCH "):])
            samples[name].extend(result["samples"])
            peaks[name] = max(peaks[name], result["peak_mb"])
    return {name: statistics.median(s) for name, s in samples.items()}, peaks


SETTLE_SECONDS = 0.15
"""A contender's pause before each timed block in :func:`run_paired`: the other processes'
idle worker threads stop spinning by then (OpenBLAS's spin for 2^28 cycles, ~0.1 s here, after
their last product; OpenMP's for well under a millisecond)."""


WAKE_SECONDS = 0.03
"""Untimed calls for this long start each block of :func:`run_paired`, after the pause."""


_PRIME_VARIABLE = "FUNDL_BENCH_PRIME"
"""Set for :func:`run_paired`'s priming runs: the child builds its contender, makes its
warm-up calls and exits."""


def run_paired(builders: dict, number, rounds: int = 15, warmup: int = 3,
               processes: int = 2) -> tuple[dict, dict, dict]:
    """Time each contender in a process of its own, all alive at once, in lock step.

    Each round, every contender times one block of ``number`` calls in turn (the order
    reversed every other round), after a pause of :data:`SETTLE_SECONDS` in which the others
    sit idle; so blocks of the same round ran within a second or two of each other, in much the
    same machine state. Returns ``(median seconds, peak MB, samples)`` by name, ``samples``
    being each round's seconds per call, rounds aligned across contenders (see
    :func:`paired_ratios`).

    Args:
        builders: as for :func:`run_isolated` (the script is re-run with ``--only=<name>``).
        number: calls per block: an int, or a dict of ints by name (blocks of similar
            length for contenders of different speeds: ~0.1 s each is right here, short
            enough to fall within one of the machine's phases, long enough to time).
        rounds: blocks per contender and process.
        warmup: untimed calls when a process starts.
        processes: processes per contender, one after the other (each starts afresh: memory
            layout and thread placement differ between processes).

    Before the timed processes, each contender runs once in a priming process of its own
    (built, its warm-up calls made, nothing timed): kernels missing from Numba's cache compile
    there. Why: the first run after a kernel change otherwise compiled inside the first set of
    timed processes, whose peak memory then held Numba's compiler (a GRU inference's peak went
    from 0.65 to 1.01 of PyTorch's), and on an Intel Xeon that run's fundl LSTM inference
    took 1.94 ms against 1.64 ms in the next run of the script (PyTorch: 2.13 and 2.20 ms).
    """
    only = _child_contender(builders)
    if only is not None:
        fn = builders[only]()
        calls = number[only] if isinstance(number, dict) else number
        for _ in range(warmup):
            fn()
        if os.environ.get(_PRIME_VARIABLE):  # a priming run: kernels compiled, nothing to time
            raise SystemExit(0)
        print("FUNDL_READY", flush=True)
        for line in sys.stdin:
            if line.strip() != "go":
                break
            time.sleep(SETTLE_SECONDS)
            # untimed calls first: thread pools, caches and the core's clock wake up from the
            # pause (the first call after it ran 1.3-1.9x slower than the steady state, in
            # either framework: LSTM step and inference, measured here)
            start = time.perf_counter()
            while time.perf_counter() - start < WAKE_SECONDS:
                fn()
            print(f"FUNDL_BLOCK {_time_once(fn, calls)!r}", flush=True)
        print("FUNDL_BENCH " + json.dumps({"peak_mb": peak_rss_mb()}), flush=True)
        raise SystemExit(0)
    names = list(builders)
    samples = {name: [] for name in names}
    peaks = {name: 0.0 for name in names}
    for name in names:  # priming runs: compile what is missing from the cache, untimed
        out = subprocess.run(_child_command(name), capture_output=True, text=True,
                             env={**os.environ, _PRIME_VARIABLE: "1"})
        if out.returncode != 0:
            raise _child_failed(name, out.stderr)
    for _ in range(processes):
        # (stderr to files: a pipe nobody reads while the others run could fill and block)
        errors = {name: tempfile.TemporaryFile("w+") for name in names}
        children = {name: subprocess.Popen(_child_command(name),
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           stderr=errors[name], text=True,
                                           env=os.environ.copy())
                    for name in names}
        try:
            for name, child in children.items():
                _expect(child, name, "FUNDL_READY", errors[name])
            for r in range(rounds):
                for name in (names if r % 2 == 0 else names[::-1]):
                    child = children[name]
                    child.stdin.write("go\n")
                    child.stdin.flush()
                    samples[name].append(float(_expect(child, name, "FUNDL_BLOCK ",
                                                       errors[name])))
            for name, child in children.items():
                child.stdin.write("done\n")
                child.stdin.flush()
                result = json.loads(_expect(child, name, "FUNDL_BENCH ", errors[name]))
                peaks[name] = max(peaks[name], result["peak_mb"])
                child.wait()
        finally:
            for name, child in children.items():
                if child.poll() is None:
                    child.kill()
                    child.wait()
                errors[name].close()
    return {name: statistics.median(s) for name, s in samples.items()}, peaks, samples


def _expect(child, name, prefix, errors):
    """The rest of the next line of ``child``'s output that starts with ``prefix``."""
    for line in child.stdout:
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    child.wait()
    errors.seek(0)
    raise _child_failed(name, errors.read())


def paired_ratios(samples: dict, name: str, baseline: str) -> list:
    """``name``'s time over ``baseline``'s, round by round, from :func:`run_paired`'s samples."""
    return [a / b for a, b in zip(samples[name], samples[baseline])]


def paired_ratio(samples: dict, name: str, baseline: str) -> str:
    """The ratio of ``name``'s median block time to ``baseline``'s (both timed over the same
    rounds, so the same stretch of the machine's phases), then the middle half (quartiles) of
    the round-by-round ratios: ``0.62 (rounds 0.55-0.71)``. The median of the round-by-round
    ratios is not the headline: blocks a fraction of a second apart still fall in different
    phases often enough to skew it."""
    ratio = statistics.median(samples[name]) / statistics.median(samples[baseline])
    rounds = paired_ratios(samples, name, baseline)
    if len(rounds) < 2:  # (one round: no quartiles)
        return f"{ratio:.2f}"
    q = statistics.quantiles(rounds, n=4)
    return f"{ratio:.2f} (rounds {q[0]:.2f}-{q[2]:.2f})"


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
