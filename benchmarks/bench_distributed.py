"""Scaling of fundl.distributed on this machine: 1, 2, 4 workers, local Ray and 2 nodes.

    FUNDL_DATA_DIR=../shared/data python benchmarks/bench_distributed.py [--quick]

For the MNIST MLP (784-256-128-10) and a small CNN (conv 8 - pool - conv 16 - pool - dense
10), trained by the asynchronous parameter server (ParameterServerStrategy, Adam, batch
128 per push), it measures

- throughput: training samples per second over the timed epochs (Ray's start-up and the
  actors' start excluded; the first short epoch is a warm-up);
- time to 97 % test accuracy (MLP only): wall time from the start of training to the end of
  the first quarter-epoch after which the test accuracy is >= 97 % (checked every quarter
  epoch; the checks themselves are not counted);
- communication share: time the workers spend pulling weights and pushing gradients
  (``ray.get`` of actor calls, object store transfers and waiting for the server) over
  that plus their compute (forward, loss, backward);
- per update: compute t_c, communication t_m and the server's busy time t_s, the inputs of
  the scaling model in docs/distributed.md;

in two settings: ``local`` (one Ray node started by fundl, 2 CPUs) and ``2-node`` (two
``ray start`` nodes of 1 CPU each on this machine, started and stopped here, with a shared
token: see fundl.distributed.LocalCluster). One process without Ray (model.fit) is the
baseline row. The machine has 2 cores shared with other work: more than 2 busy processes
cannot run faster, so the table shows overheads and contention, not a cluster's speedup.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import fundl as fl  # noqa: E402
from fundl.datasets import mnist  # noqa: E402
from fundl.layers import Conv2D, Dense, Flatten, MaxPooling2D  # noqa: E402


def mlp():
    return fl.Sequential([Dense(256, activation="relu", input_shape=(784,)),
                          Dense(128, activation="relu"), Dense(10, activation="softmax")])


def cnn():
    return fl.Sequential([Conv2D(8, 3, activation="relu", input_shape=(28, 28, 1)),
                          MaxPooling2D(2), Conv2D(16, 3, activation="relu"), MaxPooling2D(2),
                          Flatten(), Dense(10, activation="softmax")])


def compiled(build, seed):
    fl.manual_seed(seed)
    model = build()
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=fl.optimizers.Adam(1e-3), metrics=["accuracy"])
    return model


class Clock(fl.callbacks.Callback):
    """Wall time of each epoch and, optionally, the test accuracy after it (not timed)."""

    def __init__(self, test=None, target=0.97, strategy=None):
        super().__init__()
        self.test, self.target, self.strategy = test, target, strategy
        self.warm = {}
        self.nodes = None
        self.epoch_times, self.accuracies = [], []
        self.trained = 0.0
        self.time_to_target = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - self._start
        self.epoch_times.append(elapsed)
        self.trained += elapsed
        if len(self.epoch_times) == 1 and self.strategy is not None:
            # the first epoch compiles Numba kernels in every worker: leave it out
            self.warm = dict(self.strategy.stats)
            import ray

            self.nodes = len({p[2] for p in ray.get([w.ping.remote()
                                                     for w in self.strategy.workers])})
        if self.test is not None:
            acc = self.model.evaluate(*self.test, batch_size=2000, verbose=0)[1]
            self.accuracies.append(acc)
            if acc >= self.target and self.time_to_target is None:
                self.time_to_target = self.trained
                self.model.stop_training = True


def run(build, data, workers, steps, epochs, test=None, seed=0):
    """One fit; returns the measurements (workers=0: one process, no Ray)."""
    (x, y) = data
    model = compiled(build, seed)
    # One CPU's worth of Ray resources per 2 / workers: with 2 workers on 2 nodes of 1 CPU,
    # one on each node (Ray's SPREAD alone is best effort); with 4, two per node.
    strategy = (None if workers == 0 else fl.distributed.ParameterServerStrategy(
        num_workers=workers, mode="async",
        resources_per_worker={"CPU": 1.0 if workers == 1 else 2.0 / workers}))
    clock = Clock(test, strategy=strategy)
    if workers == 0:
        model.fit(x, y, batch_size=128, epochs=epochs, steps_per_epoch=steps, verbose=0,
                  callbacks=[clock])
        stats = None
    else:
        model.fit(x, y, batch_size=128, epochs=epochs, steps_per_epoch=steps, verbose=0,
                  callbacks=[clock], strategy=strategy)
        stats = {k: v - clock.warm.get(k, 0) for k, v in strategy.stats.items()
                 if isinstance(v, (int, float))}
        stats["mean_staleness"] = strategy.stats["mean_staleness"]
    timed = clock.epoch_times[1:] or clock.epoch_times  # the first epoch warms up
    out = {"workers": workers, "samples_per_s": steps * 128 * len(timed) / sum(timed),
           "time_to_97": clock.time_to_target, "epochs_run": len(clock.epoch_times),
           "best_accuracy": max(clock.accuracies) if clock.accuracies else None}
    if stats:
        out["worker_nodes"] = clock.nodes
        updates = max(stats["steps"], 1)
        worker_time = stats["comm_s"] + stats["compute_s"]
        out.update(comm_share=stats["comm_s"] / worker_time,
                   t_compute_ms=1e3 * stats["compute_s"] / updates,
                   t_comm_ms=1e3 * stats["comm_s"] / updates,
                   t_server_ms=1e3 * stats["server_busy_s"] / updates,
                   staleness=stats["mean_staleness"])
    return out


def table(rows):
    lines = ["| setting | model | workers (nodes used) | samples/s | time to 97 % | comm share | "
             "t_c / t_m / t_s per update (ms) | staleness |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        workers = {0: "1 process, no Ray", -1: "1 process, no Ray, 1 thread"}.get(
            r["workers"], f"{r['workers']} ({r.get('worker_nodes')})")
        ttt = "-" if r["model"] != "mlp" else (
            f"{r['time_to_97']:.0f} s" if r["time_to_97"] else
            f"not reached (best {100 * (r['best_accuracy'] or 0):.1f} %)")
        if "comm_share" in r:
            comm = f"{100 * r['comm_share']:.0f} %"
            times = f"{r['t_compute_ms']:.1f} / {r['t_comm_ms']:.1f} / {r['t_server_ms']:.1f}"
            stale = f"{r['staleness']:.2f}"
        else:
            comm, times, stale = "-", "-", "-"
        lines.append(f"| {r['setting']} | {r['model']} | {workers} | {r['samples_per_s']:.0f} | "
                     f"{ttt} | {comm} | {times} | {stale} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--settings", nargs="+", default=["local", "2-node"],
                        choices=["local", "2-node"])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    parser.add_argument("--baseline", choices=["mlp", "cnn"], default=None,
                        help=argparse.SUPPRESS)  # internal: one single-thread baseline row
    args = parser.parse_args(argv)

    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    x_train = x_train.astype(np.float32) / 255
    x_test = x_test.astype(np.float32) / 255
    y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)
    quarter = len(x_train) // 128 // 4  # updates in a quarter epoch
    if args.quick:
        x_train, y_train = x_train[:2048], y_train[:2048]
        x_test, y_test = x_test[:1000], y_test[:1000]
    data = {"mlp": (x_train.reshape(-1, 784), y_train), "cnn": (x_train[..., None], y_train)}
    tests = {"mlp": (x_test.reshape(-1, 784), y_test)}
    builds = {"mlp": mlp, "cnn": cnn}
    rows = []

    def settings_for(name):
        if name == "mlp":  # to 97 % (at most 5 epochs), quarter epochs
            return ((4, 3) if args.quick else (quarter, 20)), tests["mlp"]
        return ((4, 3) if args.quick else (60, 3)), None  # throughput only: 3 short epochs

    if args.baseline:
        (steps, epochs), test = settings_for(args.baseline)
        print(json.dumps(run(builds[args.baseline], data[args.baseline], 0, steps, epochs,
                             test)))
        return

    def single_thread_baseline(name):
        # Ray's workers run with one BLAS thread each; so does this row, in a fresh process.
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
        cmd = [sys.executable, os.path.abspath(__file__), "--baseline", name] + (
            ["--quick"] if args.quick else [])
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        row["workers"] = -1
        return row

    def measure(setting):
        for name in args.models:
            counts = ([-1, 0] if setting == "local" else []) + args.workers
            for workers in counts:
                if workers == -1:
                    row = single_thread_baseline(name)
                    row.update(setting=setting, model=name)
                    rows.append(row)
                    print(table([row]).splitlines()[-1], flush=True)
                    continue
                (steps, epochs), test = settings_for(name)
                row = run(builds[name], data[name], workers, steps, epochs, test)
                row.update(setting=setting, model=name)
                rows.append(row)
                print(table([row]).splitlines()[-1], flush=True)

    print(table([]))
    for setting in args.settings:
        if setting == "local":
            started = fl.distributed.connect(num_cpus=2)
            try:
                measure("local")
            finally:
                fl.distributed.disconnect(started)
        else:
            with fl.distributed.LocalCluster(num_nodes=2, cpus_per_node=1) as cluster:
                print(f"(2-node cluster at {cluster.address}: nodes {cluster.node_ids()})",
                      flush=True)
                measure("2-node")
    print()
    print(table(rows))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
