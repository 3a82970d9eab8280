"""Graph mode (fl.function, compile(jit_compile=True)) against eager fundl and PyTorch eager.

    python benchmarks/bench_graph_mode.py [--case all|mlp|dqn|tiny|fusion|resnet] [--repeats 3]

The small-network cases where per-op Python dispatch is a large part of the time:

- ``mlp``: one ``model.fit`` epoch of 784-256-ReLU-128-ReLU-10 softmax, SGD lr 0.1, batch 128,
  float32, over ``--samples`` samples (MNIST when $FUNDL_DATA_DIR has it, else random data; as
  ``bench_mlp_fit.py``), eager vs ``jit_compile=True``, and a PyTorch eager loop.
- ``dqn``: one training step of a DQN-sized network (``bench_dqn.py --config small``): MLP
  4-64-ReLU-64-ReLU-2, batch 32, Huber loss, Adam, through ``model.train_on_batch``, eager vs
  ``jit_compile=True``, and the same step in PyTorch eager.
- ``tiny``: ``bench_dispatch.py``'s 5-op graph (mul, add, tanh, exp, sum on 10-element float32
  tensors) forward + backward, eager vs ``fl.function``, and PyTorch eager.
- ``fusion``: a Huber-style chain of 9 cheap element-wise ops (sub, abs, minimum, mul, max...,
  then a mean) on ``--fuse-shape`` float32 tensors, forward + backward: eager, ``fl.function``
  (default ``fuse="auto"``: op by op here, since gradients are needed; buffers reused between
  calls), and ``fl.function(fuse=True)`` (fused ops; their backward recomputes the chain).
- ``inference``: the same chain's forward under ``fl.no_grad()`` (no mean): eager,
  ``fl.function(fuse=False)`` and ``fl.function`` (``fuse="auto"`` fuses it from 65536
  elements on), and PyTorch under ``torch.no_grad()``.
- ``resnet``: ``train_on_batch`` of ``zoo.resnet_cifar(depth=8)`` on 16x16x3, batch 32, SGD,
  eager vs ``jit_compile=True`` (BatchNormalization traced), and PyTorch eager's equivalent is
  in ``bench_cnn.py`` (not repeated here).

Every contender runs in processes of its own, all alive at once and timed in lock step
(``_common.run_paired``: each round, each contender times one block in turn), ``--repeats``
sets of processes one after another; printed: each contender's median time over the rounds
[range], and each ratio of median times (below 1: faster than the baseline) with the middle
half of the rounds' own ratios. The machine's load average is printed: on a shared machine
the ratios are noisy.
``--interleaved`` also times the two fundl contenders alternately in one process (both see
the same load; fair for the dqn and tiny cases, which use no BLAS threads worth speaking of).
"""
import argparse
import os
import statistics
import sys

# _common first: it sets the BLAS thread counts, which NumPy's OpenBLAS reads when it loads
from _common import THREADS, compare, import_torch, paired_ratio, run_paired

import numpy as np


def _args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--case", choices=["all", "mlp", "dqn", "tiny", "fusion", "inference",
                                      "resnet"],
                   default="all")
    p.add_argument("--fuse-shape", default="32,2",
                   help="shape of the fusion case's tensors, e.g. 32,2 or 128,256 or 100000")
    p.add_argument("--samples", type=int, default=60000, help="MLP epoch size")
    p.add_argument("--steps", type=int, default=200, help="DQN-sized train steps per timed call")
    p.add_argument("--repeats", type=int, default=3, help="isolated comparisons per case")
    p.add_argument("--interleaved", action="store_true",
                   help="also time fundl eager and graph mode interleaved in one process "
                        "(fairer between the two on a loaded machine; no PyTorch)")
    p.add_argument("--only", default=None, help=argparse.SUPPRESS)
    return p.parse_args()


ARGS = _args()
BATCH, LR = 128, 0.1


# -- MLP epoch ------------------------------------------------------------------------------------
def _mnist_like():
    if os.environ.get("FUNDL_DATA_DIR"):
        try:
            from fundl.datasets import mnist

            (x, y), _ = mnist.load_data()
            x = x.reshape(-1, 784).astype(np.float32) / 255
            return x[:ARGS.samples], y[:ARGS.samples].astype(np.int64)
        except (OSError, ValueError):
            pass
    rng = np.random.default_rng(0)
    return (rng.random((ARGS.samples, 784), dtype=np.float32),
            rng.integers(0, 10, ARGS.samples))


def fundl_mlp(jit):
    import fundl as fl
    from fundl.layers import Dense

    x, y = _mnist_like()
    y1 = np.eye(10, dtype=np.float32)[y]
    fl.manual_seed(0)
    model = fl.Sequential([Dense(256, activation="relu", input_dim=784),
                           Dense(128, activation="relu"), Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer=fl.optimizers.SGD(LR),
                  metrics=["accuracy"], jit_compile=jit)
    return lambda: model.fit(x, y1, batch_size=BATCH, epochs=1, verbose=0)


def torch_mlp():
    from bench_mlp_fit import torch_epoch

    return torch_epoch(*_mnist_like())


# -- DQN-sized train step --------------------------------------------------------------------------
def _dqn_batches():
    rng = np.random.default_rng(0)
    return [(rng.standard_normal((32, 4)).astype(np.float32),
             rng.standard_normal((32, 2)).astype(np.float32)) for _ in range(16)]


def fundl_dqn(jit):
    import fundl as fl

    batches = _dqn_batches()
    fl.manual_seed(0)
    net = fl.zoo.mlp_q_network(4, 2, hidden=(64, 64))
    net.compile(optimizer=fl.optimizers.Adam(1e-3), loss="huber", jit_compile=jit)

    def steps():
        for i in range(ARGS.steps):
            x, y = batches[i % len(batches)]
            net.train_on_batch(x, y)

    return steps


def torch_dqn():
    torch = import_torch()
    batches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in _dqn_batches()]
    net = torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                              torch.nn.ReLU(), torch.nn.Linear(64, 2))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def steps():
        for i in range(ARGS.steps):
            x, y = batches[i % len(batches)]
            loss = torch.nn.functional.huber_loss(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()  # train_on_batch returns the loss as a float

    return steps


# -- tiny graph -----------------------------------------------------------------------------------
def _tiny_data():
    return (np.random.default_rng(0).standard_normal(10).astype(np.float32),
            np.random.default_rng(1).standard_normal(10).astype(np.float32))


def _graph(x, y):  # 5 ops: mul, add, tanh, exp, sum
    return ((x * y + x).tanh().exp()).sum()


def fundl_tiny(traced):
    import fundl as fl

    a, b = _tiny_data()
    x, y = fl.tensor(a, requires_grad=True), fl.tensor(b, requires_grad=True)
    fn = fl.function(_graph) if traced else _graph

    def step():
        x.grad = y.grad = None
        fn(x, y).backward()

    return step


def torch_tiny():
    torch = import_torch()
    a, b = _tiny_data()
    x, y = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)

    def step():
        x.grad = y.grad = None
        _graph(x, y).backward()

    return step


# -- element-wise fusion ---------------------------------------------------------------------------
def _fusion_chain(p, t):
    e = abs(p - t)
    q = _fl().minimum(e, 1.0)
    return (0.5 * q * q + 1.0 * _fl().maximum(e - q, 0.0)).mean()


def _inference_chain(p, t):
    with _fl().no_grad():
        e = abs(p - t)
        q = _fl().minimum(e, 1.0)
        return 0.5 * q * q + 1.0 * _fl().maximum(e - q, 0.0)


def torch_inference():
    torch = import_torch()
    shape = tuple(int(n) for n in ARGS.fuse_shape.split(","))
    rng = np.random.default_rng(0)
    p = torch.tensor(rng.standard_normal(shape).astype(np.float32))
    t = torch.tensor(rng.standard_normal(shape).astype(np.float32))
    one = torch.tensor(1.0)

    def step():
        with torch.no_grad():
            e = (p - t).abs()
            q = torch.minimum(e, one)
            return 0.5 * q * q + 1.0 * torch.clamp_min(e - q, 0.0)

    return step


def _fl():
    import fundl as fl

    return fl


def fundl_fusion(mode):
    fl = _fl()
    shape = tuple(int(n) for n in ARGS.fuse_shape.split(","))
    rng = np.random.default_rng(0)
    p = fl.tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
    t = fl.tensor(rng.standard_normal(shape).astype(np.float32))
    if ARGS.case == "inference" or (ARGS.only or "").startswith("inference"):
        chain = {"eager": _inference_chain, "replay": fl.function(_inference_chain, fuse=False),
                 "auto": fl.function(_inference_chain)}[mode]
        return lambda: chain(p, t)
    fn = {"eager": _fusion_chain, "replay": fl.function(_fusion_chain),
          "fused": fl.function(_fusion_chain, fuse=True)}[mode]

    def step():
        p.grad = None
        fn(p, t).backward()

    return step


def torch_fusion():
    torch = import_torch()
    shape = tuple(int(n) for n in ARGS.fuse_shape.split(","))
    rng = np.random.default_rng(0)
    p = torch.tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
    t = torch.tensor(rng.standard_normal(shape).astype(np.float32))

    def step():
        p.grad = None
        e = (p - t).abs()
        q = torch.minimum(e, torch.tensor(1.0))
        (0.5 * q * q + 1.0 * torch.clamp_min(e - q, 0.0)).mean().backward()

    return step


# -- a small ResNet (BatchNormalization in graph mode) ------------------------------------------
def fundl_resnet(jit):
    fl = _fl()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 16, 16, 3)).astype(np.float32)
    y = rng.integers(0, 10, 32)
    fl.manual_seed(0)
    model = fl.zoo.resnet_cifar(depth=8, input_shape=(16, 16, 3), classes=10)
    model.compile(optimizer=fl.optimizers.SGD(0.05, momentum=0.9),
                  loss="sparse_categorical_crossentropy", jit_compile=jit)
    return lambda: model.train_on_batch(x, y)


CASES = {
    "mlp": ("MLP epoch 784-256-128-10, batch 128 (model.fit)", "s",
            dict(number=1, rounds=2, warmup=1),
            {"fundl eager": lambda: fundl_mlp(False),
             "fundl jit_compile": lambda: fundl_mlp(True),
             "PyTorch eager": torch_mlp}),
    "dqn": (f"DQN-sized train step 4-64-64-2, batch 32, Adam + Huber ({ARGS.steps} steps per "
            "call, time per step)", "us", dict(number=1, rounds=5, warmup=2),
            {"fundl eager": lambda: fundl_dqn(False),
             "fundl jit_compile": lambda: fundl_dqn(True),
             "PyTorch eager": torch_dqn}),
    "tiny": ("5-op graph forward + backward, 10-element float32 tensors", "us",
             dict(number=2000, rounds=7, warmup=200),
             {"fundl eager": lambda: fundl_tiny(False),
              "fundl fl.function": lambda: fundl_tiny(True),
              "PyTorch eager": torch_tiny}),
    "fusion": (f"9-op element-wise chain + mean, forward + backward, float32 {ARGS.fuse_shape}",
               "us", dict(number=500, rounds=7, warmup=50),
               {"fundl eager": lambda: fundl_fusion("eager"),
                "fundl fl.function": lambda: fundl_fusion("replay"),
                "fundl fl.function fuse": lambda: fundl_fusion("fused"),
                "PyTorch eager": torch_fusion}),
    "inference": (f"9-op element-wise chain forward under no_grad, float32 {ARGS.fuse_shape}",
                  "us", dict(number=500, rounds=7, warmup=50),
                  {"fundl eager": lambda: fundl_fusion("eager"),
                   "fundl fl.function(fuse=False)": lambda: fundl_fusion("replay"),
                   "fundl fl.function auto": lambda: fundl_fusion("auto"),
                   "PyTorch eager": torch_inference}),
    "resnet": ("ResNet-8 train_on_batch, 16x16x3, batch 32, SGD (BatchNormalization traced)",
               "s", dict(number=5, rounds=3, warmup=3),
               {"fundl eager": lambda: fundl_resnet(False),
                "fundl jit_compile": lambda: fundl_resnet(True)}),
}


def _check_equal():
    """Graph mode gives eager mode's numbers on the benchmarked MLP step (before timing)."""
    import fundl as fl
    from fundl.layers import Dense

    rng = np.random.default_rng(1)
    x, y = rng.random((256, 784), dtype=np.float32), rng.integers(0, 10, 256)
    runs = []
    for jit in (False, True):
        fl.manual_seed(0)
        model = fl.Sequential([Dense(256, activation="relu", input_dim=784),
                               Dense(128, activation="relu"), Dense(10, activation="softmax")])
        model.compile(loss="sparse_categorical_crossentropy", optimizer=fl.optimizers.SGD(LR),
                      jit_compile=jit)
        runs.append(model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0,
                              shuffle=False).history["loss"])
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-6)


def main():
    selected = list(CASES) if ARGS.case == "all" else [ARGS.case]
    if ARGS.only is None:
        _check_equal()
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
        print(f"load average {load}; {os.cpu_count()} CPUs; {THREADS} threads")
    for key in selected:
        title, unit, timing, contenders = CASES[key]
        # names unique across cases: a child process (--only=NAME) finds its own case
        builders = {f"{key}: {name}": fn for name, fn in contenders.items()
                    if import_torch() is not None or not name.startswith("PyTorch")}
        if ARGS.only is not None and ARGS.only not in builders:
            continue
        _, _, samples = run_paired(builders, number=timing["number"], rounds=timing["rounds"],
                                   warmup=timing["warmup"], processes=ARGS.repeats)
        scale = {"s": 1.0, "us": 1e6}[unit]
        per = ARGS.steps if key == "dqn" else 1
        print(f"\n{title}; median of {len(samples[next(iter(builders))])} paired rounds "
              f"({ARGS.repeats} sets of processes) [range]")
        for name in builders:
            ts = [t * scale / per for t in samples[name]]
            print(f"  {name:<24s} {statistics.median(ts):10.3f} {unit}  "
                  f"[{min(ts):.3f} - {max(ts):.3f}]")
        if ARGS.interleaved and key not in ("mlp", "resnet"):
            pair = {name: contenders[name]() for name in contenders if name.startswith("fundl")}
            times = compare(pair, number=timing["number"], rounds=15, warmup=timing["warmup"])
            names = list(pair)
            print(f"  interleaved in one process (median of 15 rounds): "
                  + ", ".join(f"{n} {times[n] * scale / per:.3f} {unit}" for n in names)
                  + "; " + ", ".join(f"{n} / {names[0]} {times[n] / times[names[0]]:.2f}"
                                     for n in names[1:]))
        for base in (f"{key}: fundl eager", f"{key}: PyTorch eager"):
            if base not in builders:
                continue
            for name in builders:
                if name == base or (base.endswith("fundl eager") and "PyTorch" in name):
                    continue
                print(f"  {name} / {base.split(': ')[1]}: {paired_ratio(samples, name, base)}")


if __name__ == "__main__":
    main()
