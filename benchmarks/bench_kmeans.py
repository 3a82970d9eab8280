"""k-means on MNIST (60,000 x 784, k = 10): fundl.cluster.KMeans against scikit-learn's KMeans.

    python benchmarks/bench_kmeans.py [--n-init 1] [--rounds 3] [--processes 2]

Both get the same float32 data (pixels / 255), k-means++ seeding, n_init, max_iter = 300 and
tol = 1e-4; each timed call uses the next random_state (0, 1, 2, ... in every process, the same
for both), so both average over the same number of different starts. Each contender runs in a
process of its own (see _common.run_isolated), alternating. Prints the median seconds per fit,
the ratio fundl / scikit-learn with its range over the paired rounds, and (--check, in this
process) the inertia both reach from the same seeds.

The two libraries draw different k-means++ starts from the same seed, and the number of Lloyd
iterations depends on the start, so the per-seed ratio mixes speed per iteration with luck.
--same-init removes the luck: the parent draws k-means++ starts (fundl's, seeds 0, 1, ...) and
both fit from exactly those centres (n_init = 1); both then run the same iterations (scikit-
learn's Lloyd and fundl's give the same result from the same start).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# _common first: it sets the BLAS thread counts, which NumPy's OpenBLAS reads when it loads
from _common import THREADS, peak_rss_mb

import numpy as np


def load_data(n):
    if os.environ.get("FUNDL_DATA_DIR"):
        try:
            from fundl.datasets import mnist

            (x, _), _ = mnist.load_data(progress=False)
            return x.reshape(-1, 784)[:n].astype(np.float32) / 255, "MNIST"
        except (OSError, ValueError):
            pass
    rng = np.random.default_rng(0)
    return rng.random((n, 784), dtype=np.float32), "random data"


def make(name, args):
    if name == "fundl":
        from fundl.cluster import KMeans
    else:
        from sklearn.cluster import KMeans
    X, _ = load_data(args.samples)
    if args.same_init:
        starts = np.load(args.same_init)
        return lambda seed: KMeans(n_clusters=args.k, init=starts[str(seed)], n_init=1,
                                   max_iter=300, tol=1e-4).fit(X)
    return lambda seed: KMeans(n_clusters=args.k, n_init=args.n_init, max_iter=300, tol=1e-4,
                               random_state=seed).fit(X)


def child(name, args):
    fit = make(name, args)
    fit(args.rounds if args.same_init else 1000)  # warm-up: imports, BLAS threads, page faults
    out = []
    for seed in range(args.rounds):
        start = time.perf_counter()
        km = fit(seed)
        out.append({"time": time.perf_counter() - start, "inertia": float(km.inertia_),
                    "n_iter": int(km.n_iter_)})
    print("KMEANS_BENCH " + json.dumps({"runs": out, "peak_mb": peak_rss_mb()}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--n-init", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="fits per process (seeds 0..)")
    parser.add_argument("--processes", type=int, default=2, help="processes per contender")
    parser.add_argument("--same-init", nargs="?", const="draw", default=None,
                        help="fit both from the same k-means++ starts")
    parser.add_argument("--only", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        return child(args.only, args)
    if args.same_init:
        import tempfile

        from fundl.cluster.kmeans import _kmeans_plusplus, _row_norms_sq

        X, _ = load_data(args.samples)
        Xc = X - X.mean(axis=0)
        starts = {}
        for seed in range(args.rounds + 1):  # the last one is the warm-up's
            c = _kmeans_plusplus(Xc, _row_norms_sq(Xc, np), args.k, np.random.default_rng(seed),
                                 np)
            starts[str(seed)] = c + X.mean(axis=0)
        path = os.path.join(tempfile.mkdtemp(), "starts.npz")
        np.savez(path, **starts)
        sys.argv = [a for a in sys.argv if not a.startswith("--same-init")] + \
            [f"--same-init={path}"]
    _, source = load_data(10)
    runs = {"fundl": [], "scikit-learn": []}
    peaks = {}
    for _ in range(args.processes):
        for name in runs:
            passed = [a for a in sys.argv[1:] if not a.startswith("--only")]
            out = subprocess.run([sys.executable, sys.argv[0], *passed, f"--only={name}"],
                                 capture_output=True, text=True, env=os.environ.copy())
            lines = [ln for ln in out.stdout.splitlines() if ln.startswith("KMEANS_BENCH ")]
            if out.returncode != 0 or not lines:
                raise RuntimeError(f"{name} failed:\n{out.stderr[-3000:]}")
            result = json.loads(lines[-1][len("KMEANS_BENCH "):])
            runs[name].extend(result["runs"])
            peaks[name] = max(peaks.get(name, 0), result["peak_mb"])
    how = "the same k-means++ starts, n_init=1" if args.same_init else f"n_init={args.n_init}"
    print(f"\nk-means on {source} ({args.samples} x 784, k={args.k}, {how}, "
          f"max_iter=300, tol=1e-4, float32), {THREADS} threads, "
          f"{args.rounds} seeds x {args.processes} processes each")
    for name, rs in runs.items():
        times = [r["time"] for r in rs]
        print(f"  {name:<13s} median {statistics.median(times):7.2f} s  "
              f"(min {min(times):.2f}, max {max(times):.2f})  mean inertia "
              f"{statistics.mean(r['inertia'] for r in rs):.6g}  iterations "
              f"{[r['n_iter'] for r in rs]}  peak {peaks[name]:.0f} MB")
    ratios = [a["time"] / b["time"] for a, b in zip(runs["fundl"], runs["scikit-learn"])]
    inertia = [a["inertia"] / b["inertia"] for a, b in zip(runs["fundl"], runs["scikit-learn"])]
    total = sum(r["time"] for r in runs["fundl"]) / sum(r["time"] for r in runs["scikit-learn"])
    print(f"  fundl / scikit-learn time: total {total:.2f}, per seed median "
          f"{statistics.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f}); "
          f"inertia ratio per seed {min(inertia):.4f}-{max(inertia):.4f}")


if __name__ == "__main__":
    main()
