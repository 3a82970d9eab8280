"""Cold start: seconds from launch to the first training step with an empty Numba cache.

A new user's first run compiles fundl's Numba kernels. This script runs a workload in fresh
processes, each round with a new, empty Numba cache (``NUMBA_CACHE_DIR`` pointed at a new
temporary folder, so neither the package's ``__pycache__`` nor an earlier round helps), then
once more on the cache that round filled (warm), and reports per round:

- ``import``: ``import fundl`` (seconds);
- ``first step``: from the process's launch to the end of the first training batch (what a
  user waits for before anything moves), and to its beginning;
- ``epoch 1``: the first epoch's wall time;
- ``total``: launch to exit.

The workload is ``fundl train lenet5 --dataset mnist --epochs 1 --limit 512`` by default
(``--workload cli``; needs MNIST under ``$FUNDL_DATA_DIR``), or ``model.fit`` of LeNet-5,
an LSTM (28x28 -> 128) or the MLP 784-256-128-10 on random data (``--workload lenet5`` ...).
``--policy`` picks when kernels compile (``FUNDL_COMPILE``: ``background``, the default, runs
the NumPy references while a worker process compiles; ``foreground`` compiles in the process
before the step that needs them; ``both`` runs each). ``--kernels`` adds the table of kernels
compiled in the foreground for the workload, with their compile times (Numba's compile
events; nested kernels indented under the one that compiled them).

    python benchmarks/bench_cold_start.py --rounds 3 --policy both
    python benchmarks/bench_cold_start.py --workload lstm --kernels

Medians and ranges over the rounds. On a loaded machine the times vary a lot: run it quiet.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

CLI = ["train", "lenet5", "--dataset", "mnist", "--epochs", "1", "--limit", "512",
       "--verbose", "0"]
FIELDS = ("import", "first_begin", "first_end", "epoch", "total")


def _child(args) -> None:
    """Run the workload in this (fresh) process; print one JSON line of timestamps."""
    launched = float(os.environ["BENCH_LAUNCHED"])
    events = []
    if args.kernels:
        from numba.core import event

        class _Compiles(event.Listener):
            def __init__(self):
                self.stack = []

            def on_start(self, ev):
                self.stack.append(time.perf_counter())

            def on_end(self, ev):
                start = self.stack.pop()
                d = ev.data["dispatcher"]
                name = f"{d.py_func.__module__.rsplit('.', 1)[-1]}.{d.py_func.__name__}"
                events.append((len(self.stack), name, str(ev.data["args"])[:70],
                               time.perf_counter() - start))

        event.register("numba:compile", _Compiles())
    t0 = time.time()
    import numpy as np

    import fundl as fl
    from fundl.callbacks import Callback
    from fundl.models import Model

    t_import = time.time() - t0
    marks = {}

    class _Marks(Callback):
        def on_train_batch_begin(self, batch, logs=None):
            marks.setdefault("first_begin", time.time())

        def on_train_batch_end(self, batch, logs=None):
            marks.setdefault("first_end", time.time())

        def on_epoch_begin(self, epoch, logs=None):
            marks.setdefault("epoch_begin", time.time())

        def on_epoch_end(self, epoch, logs=None):
            marks.setdefault("epoch_end", time.time())

    fit = Model.fit

    def timed_fit(self, *a, callbacks=None, **kw):  # the CLI's fit, with our marks added
        return fit(self, *a, callbacks=list(callbacks or []) + [_Marks()], **kw)

    Model.fit = timed_fit
    if args.workload == "cli":
        from fundl.cli import main

        out = tempfile.mkdtemp(prefix="fundl_cold_")
        code = main(CLI + ["--output", os.path.join(out, "m.fundl")])
        shutil.rmtree(out, ignore_errors=True)
        if code:
            raise SystemExit(f"fundl train failed with exit code {code}")
    else:
        rng = np.random.default_rng(0)
        n = args.samples
        if args.workload == "lenet5":
            model = fl.zoo.lenet5(input_shape=(28, 28, 1))
            x = rng.random((n, 28, 28, 1), dtype=np.float32)
        elif args.workload == "lstm":
            model = fl.Sequential([fl.layers.LSTM(128, input_shape=(28, 28)),
                                   fl.layers.Dense(10, activation="softmax")])
            x = rng.random((n, 28, 28), dtype=np.float32)
        else:
            model = fl.Sequential([fl.layers.Dense(256, activation="relu", input_shape=(784,)),
                                   fl.layers.Dense(128, activation="relu"),
                                   fl.layers.Dense(10, activation="softmax")])
            x = rng.random((n, 784), dtype=np.float32)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x, rng.integers(0, 10, n), batch_size=128, epochs=1, verbose=0)
    from fundl.kernels import _jit

    result = {"import": t_import,
              "first_begin": marks["first_begin"] - launched,
              "first_end": marks["first_end"] - launched,
              "epoch": marks["epoch_end"] - marks["epoch_begin"],
              "total": time.time() - launched,
              "switched": sorted(f"{g}:{c}" for (g, c), ok in _jit._READY.items() if ok),
              "worker": _jit._STATE["worker"].proc.pid if _jit._STATE["worker"] else None,
              "done_at": {f"{g}:{c}": t - launched for (g, c), t in
                          (_jit._STATE["worker"].done_at.items() if _jit._STATE["worker"]
                           else ())},
              "compiles": events}
    print("COLD_BENCH " + json.dumps(result), flush=True)


def _run(args, cache, policy) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, FUNDL_COMPILE=policy,
               BENCH_LAUNCHED=repr(time.time()))
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--workload", args.workload,
           "--samples", str(args.samples)] + (["--kernels"] if args.kernels else [])
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [x for x in out.stdout.splitlines() if x.startswith("COLD_BENCH ")]
    if out.returncode or not lines:
        raise RuntimeError(f"workload failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    result = json.loads(lines[-1][len("COLD_BENCH "):])
    result["stderr"] = [x for x in out.stderr.splitlines() if x.startswith("fundl:")]
    return result


def _wait_for(pid, timeout=600.0) -> None:
    """Wait until the background compiler ``pid`` (None: there was none) has exited."""
    deadline = time.time() + timeout
    while pid and os.path.exists(f"/proc/{pid}") and time.time() < deadline:
        try:  # a zombie of ours (it is not: its parent was the workload) or a live process
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    return
        except OSError:
            return
        time.sleep(0.2)


def _summary(label, runs) -> None:
    cells = []
    for field in FIELDS:
        values = [r[field] for r in runs]
        cells.append(f"{statistics.median(values):6.2f} [{min(values):.2f}-{max(values):.2f}]")
    print(f"  {label:<22s}" + "".join(f"{c:>20s}" for c in cells))


def _kernel_table(events) -> None:
    top = sum(dt for depth, _, _, dt in events if depth == 0)
    print(f"\nKernels compiled in the foreground ({len(events)} compilations, "
          f"{sum(1 for e in events if e[0] == 0)} called from Python, {top:.1f} s in all):")
    for depth, name, sig, dt in sorted(events, key=lambda e: -e[3] if e[0] == 0 else 0):
        if depth == 0:
            print(f"  {dt:7.2f} s  {name}  {sig}")
    print("  (nested, inside the above:)")
    for depth, name, sig, dt in events:
        if depth:
            print(f"  {'  ' * depth}{dt:5.2f} s  {name}  {sig}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="cli", choices=("cli", "lenet5", "lstm", "mlp"))
    parser.add_argument("--policy", default="background",
                        choices=("background", "foreground", "both"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=512, help="model.fit workloads' samples")
    parser.add_argument("--kernels", action="store_true",
                        help="also list the kernels compiled in the foreground, with times")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args)
    policies = ("background", "foreground") if args.policy == "both" else (args.policy,)
    print(f"cold start of {' '.join(['fundl'] + CLI) if args.workload == 'cli' else args.workload}"
          f", {args.rounds} rounds, load average {os.getloadavg()[0]:.2f} at start")
    results = {}
    for _ in range(args.rounds):
        for policy in policies:
            cache = tempfile.mkdtemp(prefix="fundl_numba_cold_")
            try:
                cold = _run(args, cache, policy)
                _wait_for(cold["worker"])  # the cache it fills is what the warm run reads
                warm = _run(args, cache, policy)
            finally:
                shutil.rmtree(cache, ignore_errors=True)
            results.setdefault(policy, []).append((cold, warm))
    print(f"load average {os.getloadavg()[0]:.2f} at the end; seconds, median [range]")
    print(f"  {'':<22s}" + "".join(f"{f:>20s}" for f in
                                     ("import", "first step begins", "first step ends",
                                      "epoch 1", "total")))
    for policy, pairs in results.items():
        _summary(f"{policy}, cold", [c for c, _ in pairs])
        _summary(f"{policy}, warm", [w for _, w in pairs])
        cold = pairs[-1][0]
        done = ", ".join(f"{k} at {v:.1f} s" for k, v in cold["done_at"].items())
        print(f"    {policy} cold: groups compiled by the worker before the run ended: "
              f"{done or 'none'}; said: {cold['stderr'] or 'nothing'}")
    if args.kernels:
        pairs = results.get("foreground") or results[policies[0]]
        _kernel_table(pairs[0][0]["compiles"])


if __name__ == "__main__":
    main()
