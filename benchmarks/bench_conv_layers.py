"""ResNet-20's convolutions one layer at a time: fundl against PyTorch eager, forward and backward.

    python benchmarks/bench_conv_layers.py [--rounds 5] [--processes 2] [--number 10]
                                           [--select s1]
    FUNDL_BENCH_THREADS=1 python benchmarks/bench_conv_layers.py      # one thread

Each case is one convolution of ResNet-20 (CIFAR, batch 128, float32, no bias: batch norm
follows), timed forward alone ("fwd") and forward + backward (gradients of the input and of
the kernel; "step"), each framework in processes of its own (``_common.run_isolated``),
on ``FUNDL_BENCH_THREADS`` threads (default 2). fundl runs ``fundl.ops.conv.conv2d`` on
channels-last Tensors with Keras kernels (what ``Conv2D`` calls), PyTorch
``torch.nn.functional.conv2d`` on NCHW tensors. The cases (input HxWxC -> out channels):

- ``first``: 32x32x3 -> 16, 3x3 "same" (im2col: 3 channels);
- ``s1``: 32x32x16 -> 16, 3x3 "same" (x6 per step; fundl's im2col-free 3x3 path);
- ``s1-down``: 32x32x16 -> 32, 3x3 stride 2;
- ``s2``: 16x16x32 -> 32, 3x3 "same" (x5; im2col-free);
- ``s2-down``: 16x16x32 -> 64, 3x3 stride 2;
- ``s3``: 8x8x64 -> 64, 3x3 "same" (x5; im2col-free).

Which path fundl takes is printed per case. The figures say where a whole step's convolution
time goes (``bench_cnn.py --select ResNet`` times the step); run on an idle machine.
"""
import argparse
import sys

from _common import THREADS, import_torch, run_isolated  # sets the thread counts first

import numpy as np

BATCH = 128
CASES = {"first": (32, 3, 16, 1), "s1": (32, 16, 16, 1), "s1-down": (32, 16, 32, 2),
         "s2": (16, 32, 32, 1), "s2-down": (16, 32, 64, 2), "s3": (8, 64, 64, 1)}


def _arrays(case):
    size, c, co, _ = CASES[case]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, size, size, c), dtype=np.float32)
    k = (rng.standard_normal((3, 3, c, co)) * 0.1).astype(np.float32)
    return x, k


def _padding(case):
    return "same" if CASES[case][3] == 1 else ((1, 1), (1, 1))  # PyTorch's padding=1


def fundl_case(case, backward):
    import fundl as fl
    from fundl.ops.conv import conv2d

    x, k = _arrays(case)
    stride = CASES[case][3]
    tk = fl.tensor(k, requires_grad=True)

    def step():
        tx = fl.tensor(x, requires_grad=backward)
        y = conv2d(tx, tk, None, strides=stride, padding=_padding(case))
        if backward:
            y.backward(gy)
            tk.grad = None
    y0 = conv2d(fl.tensor(x), tk, None, strides=stride, padding=_padding(case))
    gy = np.ones(y0.shape, np.float32)
    return step


def torch_case(case, backward):
    torch = import_torch()
    x, k = _arrays(case)
    stride = CASES[case][3]
    tx = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=backward)
    tk = torch.tensor(k.transpose(3, 2, 0, 1).copy(), requires_grad=True)

    def step():
        if backward:
            y = torch.nn.functional.conv2d(tx, tk, None, stride=stride, padding=1)
            y.backward(gy)
            tx.grad = tk.grad = None
        else:
            with torch.no_grad():
                torch.nn.functional.conv2d(tx, tk, None, stride=stride, padding=1)
    with torch.no_grad():
        gy = torch.ones_like(torch.nn.functional.conv2d(tx, tk, None, stride=stride, padding=1))
    return step


def fundl_path(case):
    """Which of fundl's convolution paths the case takes (its plan)."""
    import dataclasses

    from fundl.kernels import convolution
    from fundl.ops.conv import Conv

    x, k = _arrays(case)
    op = Conv(2, CASES[case][3], _padding(case), 1, 1, "channels_last")
    op.check(x, k)
    plan = op.plan
    if plan.images is not None and convolution._three_by_three_on():
        return "im2col-free 3x3"
    return dataclasses.asdict(plan)["path"] if plan.path != "region" else "im2col region"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--number", type=int, default=10, help="calls per timed sample")
    parser.add_argument("--select", default="", help="only the cases whose name contains this")
    args, _ = parser.parse_known_args()
    only = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--only=")), None)
    cases = [c for c in CASES if args.select in c]
    if only is None:
        print(f"ResNet-20 convolutions, batch {BATCH}, float32, {THREADS} thread(s); "
              "median ms per call over rounds x processes")
        print(f"  {'case':9} {'fundl path':18} {'fwd fundl':>10} {'torch':>8} {'ratio':>6}"
              f" {'step fundl':>11} {'torch':>8} {'ratio':>6}")
    for case in cases:
        row = {}
        for what, backward in (("fwd", False), ("step", True)):
            builders = {f"fundl {case} {what}": lambda c=case, b=backward: fundl_case(c, b),
                        f"torch {case} {what}": lambda c=case, b=backward: torch_case(c, b)}
            if only is not None and only not in builders:
                continue
            medians, _ = run_isolated(builders, args.number, rounds=args.rounds,
                                      processes=args.processes)
            row[what] = (medians[f"fundl {case} {what}"] * 1e3,
                         medians[f"torch {case} {what}"] * 1e3)
        if only is None:
            (ff, tf), (fs, ts) = row["fwd"], row["step"]
            print(f"  {case:9} {fundl_path(case):18} {ff:10.2f} {tf:8.2f} {ff / tf:6.2f}"
                  f" {fs:11.2f} {ts:8.2f} {fs / ts:6.2f}", flush=True)


if __name__ == "__main__":
    main()
