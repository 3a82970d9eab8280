"""An MLP training epoch through ``model.fit``, against a PyTorch eager loop and hand-written NumPy.

    python benchmarks/bench_mlp_fit.py [--rounds 6] [--processes 2]

784-256-ReLU-128-ReLU-10 softmax, categorical cross-entropy, SGD lr 0.1, batch 128, float32,
one epoch over 60,000 samples (MNIST when $FUNDL_DATA_DIR has it, else random data of the same
shape), reshuffled every epoch in all three, each contender in a process of its own, the
processes in lock step (``_common.run_paired``: each round every contender times one epoch in
turn, ``--rounds`` rounds per process, ``--processes`` sets of processes). Prints the CPU
model, the load average, fundl's GEMM library, seconds per epoch (median [range] over the
rounds) and the two ratios the project tracks, fundl / PyTorch and fundl / NumPy (ratios of
the median epochs, in brackets the middle half of the rounds' own ratios), for fundl as a
library user gets it and for fundl with ``fl.config.tune_process()`` (glibc's allocator
keeping freed memory for reuse: what the ``fundl`` command applies).
"""
import argparse
import os
import statistics

# _common first: it sets the BLAS thread counts, which NumPy's OpenBLAS reads when it loads
from _common import THREADS, import_torch, paired_ratio, print_gemm_library, run_paired

import numpy as np


BATCH, LR = 128, 0.1


def load_data():
    if os.environ.get("FUNDL_DATA_DIR"):
        try:
            from fundl.datasets import mnist

            (x, y), _ = mnist.load_data()
            return x.reshape(-1, 784).astype(np.float32) / 255, y.astype(np.int64), "MNIST"
        except (OSError, ValueError):
            pass
    rng = np.random.default_rng(0)
    return (rng.random((60000, 784), dtype=np.float32), rng.integers(0, 10, 60000),
            "random data")


def glorot(rng, fan_in, fan_out):
    limit = np.sqrt(6 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)


def numpy_epoch(params, x, y_onehot, rng):
    """Hand-written forward, backward and SGD for the same network (the floor to aim at)."""
    w1, b1, w2, b2, w3, b3 = params
    n = len(x)
    order = rng.permutation(n)
    for start in range(0, n, BATCH):
        idx = np.sort(order[start:start + BATCH])
        xb, yb = x[idx], y_onehot[idx]
        m = len(xb)
        a1 = xb @ w1 + b1
        h1 = np.maximum(a1, 0)
        a2 = h1 @ w2 + b2
        h2 = np.maximum(a2, 0)
        z = h2 @ w3 + b3
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        p = e / e.sum(axis=1, keepdims=True)
        g = (p - yb) / m
        gw3, gb3 = h2.T @ g, g.sum(0)
        g = (g @ w3.T) * (a2 > 0)
        gw2, gb2 = h1.T @ g, g.sum(0)
        g = (g @ w2.T) * (a1 > 0)
        gw1, gb1 = xb.T @ g, g.sum(0)
        for w, gw in zip(params, (gw1, gb1, gw2, gb2, gw3, gb3)):
            w -= LR * gw


def fundl_epoch(tuned=False):
    import fundl as fl

    if tuned:
        fl.config.tune_process()
    from fundl.layers import Dense
    from fundl.models import Sequential

    x, y, _ = load_data()
    y_onehot = np.eye(10, dtype=np.float32)[y]
    fl.manual_seed(0)
    model = Sequential([Dense(256, activation="relu", input_dim=784),
                        Dense(128, activation="relu"), Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer=fl.optimizers.SGD(LR),
                  metrics=["accuracy"])
    return lambda: model.fit(x, y_onehot, batch_size=BATCH, epochs=1, verbose=0)


def numpy_run():
    x, y, _ = load_data()
    y_onehot = np.eye(10, dtype=np.float32)[y]
    rng = np.random.default_rng(0)
    params = [glorot(rng, 784, 256), np.zeros(256, np.float32), glorot(rng, 256, 128),
              np.zeros(128, np.float32), glorot(rng, 128, 10), np.zeros(10, np.float32)]
    return lambda: numpy_epoch(params, x, y_onehot, rng)


def torch_epoch_fn():
    x, y, _ = load_data()
    return torch_epoch(x, y)


def torch_epoch(x, y):
    """One epoch of the same MLP in a plain PyTorch loop over (x, y) (also bench_graph_mode's)."""
    torch = import_torch()
    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 128), torch.nn.ReLU(),
                              torch.nn.Linear(128, 10))
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def epoch():
        order = torch.randperm(len(tx))
        for start in range(0, len(tx), BATCH):
            idx = order[start:start + BATCH].sort().values
            logits = net(tx[idx])
            loss = torch.nn.functional.cross_entropy(logits, ty[idx])
            acc = (logits.argmax(1) == ty[idx]).float().mean()  # fit reports accuracy too
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item(), acc.item()

    return epoch


def _cpu_model():
    import platform

    from fundl.kernels.blas import cpu_info

    return cpu_info("model name") or platform.processor() or platform.machine()


def _load():
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _spread(values):
    """'median [min-max]' of a list of numbers."""
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6, help="epochs timed per process")
    parser.add_argument("--processes", type=int, default=2,
                        help="sets of processes, one process per contender each")
    parser.add_argument("--only", default=None)  # used by run_paired's child processes
    args = parser.parse_args()
    builders = {"fundl model.fit": fundl_epoch}
    torch_available = args.only is not None or import_torch() is not None
    if torch_available:  # (next to fundl: lock step times them one after the other)
        builders["PyTorch eager loop"] = torch_epoch_fn
    builders["fundl fit, tuned"] = lambda: fundl_epoch(tuned=True)
    builders["hand-written NumPy"] = numpy_run
    load_before = _load()
    _, peaks, samples = run_paired(builders, number=1, rounds=args.rounds, warmup=1,
                                   processes=args.processes)
    source = load_data()[2]
    print(f"\nMLP epoch, 784-256-128-10, batch {BATCH}, 60,000 samples of {source}, "
          f"{THREADS} threads, each contender in its own process, in lock step; "
          f"{args.processes} x {args.rounds} epochs each: median [range]")
    print(f"CPU: {_cpu_model()}; load average before {load_before}, after {_load()}")
    print_gemm_library()
    for name in builders:
        print(f"  {name:<22s} {_spread(samples[name])} s/epoch   peak {peaks[name]:6.0f} MB")
    for name in ("fundl model.fit", "fundl fit, tuned"):
        if "PyTorch eager loop" in builders:
            print(f"  {name}: fundl / PyTorch = "
                  f"{paired_ratio(samples, name, 'PyTorch eager loop')}   (goal <= 0.75)")
        print(f"  {name}: fundl / NumPy   = {paired_ratio(samples, name, 'hand-written NumPy')}")


if __name__ == "__main__":
    main()
