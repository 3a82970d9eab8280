"""Convolution and pooling ops, and a LeNet-5 training step: fundl vs PyTorch eager on the CPU.

    python benchmarks/bench_conv_ops.py                 # everything, both frameworks
    python benchmarks/bench_conv_ops.py --lenet         # only the LeNet-5 step
    python benchmarks/bench_conv_ops.py --only=torch    # time one framework (see below)

Every case runs the same computation in both frameworks, interleaved in one process (see
``_common.compare``), float32, on ``FUNDL_BENCH_THREADS`` threads (default 2):

- conv2d forward + backward (gradients of input, kernel and bias) at the sizes of LeNet-5 and
  ResNet-20 (batch 128, 32x32x3 images); fundl channels-last with Keras kernels, PyTorch NCHW;
- max-pool 2x2 forward + backward at LeNet-5 sizes and on a ResNet-20-sized activation;
- a LeNet-5 training step (28x28x1, batch 64; conv 6@5x5 "same" -> relu -> maxpool 2 -> conv
  16@5x5 -> relu -> maxpool 2 -> dense 120 -> 84 -> 10, softmax cross-entropy, SGD) written
  from fundl's ops with weights as Tensors and a manual SGD update, against the same network
  in PyTorch from the same weights; the two losses are checked to agree first.

Both frameworks allocate and free megabytes per step. glibc returns freed memory to the
system and then page-faults it back; which framework pays depends on which ran last in the
process (a fundl-only process had no page faults per step, a PyTorch-only one ~800). So that
neither pays for the other in this shared process, the benchmark raises glibc's trim and mmap
thresholds (``mallopt``) before anything is allocated; set ``FUNDL_BENCH_MALLOPT=0`` to see
the effect.

Sharing one process is not neutral with 2 threads either: the idle worker threads of each
framework's thread pool (OpenBLAS's spin-waiting threads under NumPy, PyTorch's OpenMP pool)
keep a core busy while the other framework runs. On a quiet machine PyTorch's LeNet-5 step
took 3.1-3.3 ms in a process of its own and 5.9-9.4 ms interleaved with fundl here (4.1-4.3
ms for fundl alone), so the interleaved ratio flatters fundl. For the fair ratio, time each
framework in its own process with ``--only=fundl`` and ``--only=torch`` (the loss check
still runs both).
"""
import ctypes
import os
import sys

from _common import THREADS, compare, import_torch, report  # sets the thread counts first

ONLY = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--only=")), None)

if os.environ.get("FUNDL_BENCH_MALLOPT", "1") != "0":
    try:
        _libc = ctypes.CDLL("libc.so.6")
        _libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
        _libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
    except OSError:  # not glibc: nothing to tune
        pass

import numpy as np  # noqa: E402

import fundl as fl  # noqa: E402
from fundl.ops.conv import conv2d  # noqa: E402
from fundl.ops.pool import max_pool2d  # noqa: E402

LENET_BATCH = 64


def _timed(title, cases, baseline, **kwargs):
    """compare() the cases (only ``ONLY``'s, if given) and report them."""
    if ONLY is not None:
        cases = {name: fn for name, fn in cases.items() if name == ONLY}
    if not cases:
        print(f"\n{title}: nothing to time for --only={ONLY}")
        return {}
    times = compare(cases, **kwargs)
    report(title, times, baseline if baseline in times else next(iter(times)), unit="ms")
    return times
LR = 0.05

# (name, input NHWC, kernel (kh, kw, in, out), strides, padding on every side). Explicit pads,
# the same in both frameworks: for stride 2, Keras's "same" pads (0, 1) where PyTorch pads (1, 1).
CONV_CASES = [
    ("LeNet conv1 28x28x1->6", (64, 28, 28, 1), (5, 5, 1, 6), 1, 2),
    ("LeNet conv2 14x14x6->16", (64, 14, 14, 6), (5, 5, 6, 16), 1, 0),
    ("ResNet-20 stem 32x32x3->16", (128, 32, 32, 3), (3, 3, 3, 16), 1, 1),
    ("ResNet-20 32x32x16->16", (128, 32, 32, 16), (3, 3, 16, 16), 1, 1),
    ("ResNet-20 32x32x16->32 /2", (128, 32, 32, 16), (3, 3, 16, 32), 2, 1),
    ("ResNet-20 16x16x32->32", (128, 16, 16, 32), (3, 3, 32, 32), 1, 1),
    ("ResNet-20 8x8x64->64", (128, 8, 8, 64), (3, 3, 64, 64), 1, 1),
]
POOL_CASES = [
    ("LeNet pool1 28x28x6", (64, 28, 28, 6)),
    ("LeNet pool2 10x10x16", (64, 10, 10, 16)),
    ("ResNet-20-size 32x32x16", (128, 32, 32, 16)),
]


def bench_conv(torch, name, x_shape, k_shape, strides, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(np.float32)
    k = (rng.standard_normal(k_shape) / np.sqrt(np.prod(k_shape[:3]))).astype(np.float32)
    b = np.zeros(k_shape[-1], np.float32)
    fx, fk, fb = (fl.tensor(a, requires_grad=True) for a in (x, k, b))
    y = conv2d(fx, fk, fb, strides=strides, padding=padding)
    gy = rng.standard_normal(y.shape).astype(np.float32)

    def fl_case():
        fx.grad = fk.grad = fb.grad = None
        conv2d(fx, fk, fb, strides=strides, padding=padding).backward(gy)

    cases = {"fundl": fl_case}
    if torch is not None:
        F = torch.nn.functional
        tx = torch.tensor(x).permute(0, 3, 1, 2).contiguous().requires_grad_()
        tk = torch.tensor(k).permute(3, 2, 0, 1).contiguous().requires_grad_()
        tb = torch.tensor(b, requires_grad=True)
        tgy = torch.tensor(gy).permute(0, 3, 1, 2).contiguous()

        def t_case():
            tx.grad = tk.grad = tb.grad = None
            F.conv2d(tx, tk, tb, stride=strides, padding=padding).backward(tgy)

        fl_case(), t_case()
        np.testing.assert_allclose(fk.grad, tk.grad.permute(2, 3, 1, 0).numpy(), rtol=1e-3,
                                   atol=1e-3 * float(np.abs(fk.grad).max()))
        cases["torch"] = t_case
    big = x.size > 1e6
    return _timed(f"conv2d forward+backward, {name}", cases, "torch",
                  number=3 if big else 20, rounds=5 if big else 9, warmup=2)


def bench_pool(torch, name, x_shape):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(x_shape).astype(np.float32)
    fx = fl.tensor(x, requires_grad=True)
    gy = rng.standard_normal(max_pool2d(fx).shape).astype(np.float32)

    def fl_case():
        fx.grad = None
        max_pool2d(fx).backward(gy)

    cases = {"fundl": fl_case}
    if torch is not None:
        tx = torch.tensor(x).permute(0, 3, 1, 2).contiguous().requires_grad_()
        tgy = torch.tensor(gy).permute(0, 3, 1, 2).contiguous()

        def t_case():
            tx.grad = None
            torch.nn.functional.max_pool2d(tx, 2).backward(tgy)

        cases["torch"] = t_case
    big = x.size > 1e6
    return _timed(f"max-pool 2x2 forward+backward, {name}", cases, "torch",
                  number=5 if big else 30, rounds=7 if big else 9, warmup=2)


def lenet_weights(seed=0):
    """Glorot-uniform kernels (Keras layouts) and zero biases, as float32 arrays."""
    rng = np.random.default_rng(seed)

    def glorot(shape, fan_in, fan_out):
        limit = np.sqrt(6 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape).astype(np.float32)

    return [glorot((5, 5, 1, 6), 25, 150), np.zeros(6, np.float32),
            glorot((5, 5, 6, 16), 150, 400), np.zeros(16, np.float32),
            glorot((400, 120), 400, 120), np.zeros(120, np.float32),
            glorot((120, 84), 120, 84), np.zeros(84, np.float32),
            glorot((84, 10), 84, 10), np.zeros(10, np.float32)]


def bench_lenet(torch):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((LENET_BATCH, 28, 28, 1)).astype(np.float32)
    labels = rng.integers(0, 10, LENET_BATCH)
    fw = [fl.tensor(w, requires_grad=True) for w in lenet_weights()]
    fx = fl.tensor(x)

    def fl_step():
        h = max_pool2d(fl.relu(conv2d(fx, fw[0], fw[1], padding="same")))
        h = max_pool2d(fl.relu(conv2d(h, fw[2], fw[3])))
        h = h.reshape(LENET_BATCH, 400)  # (h, w, c) order, as Keras's Flatten
        h = fl.relu(fl.linear(h, fw[4], fw[5]))
        h = fl.relu(fl.linear(h, fw[6], fw[7]))
        loss = fl.softmax_cross_entropy(fl.linear(h, fw[8], fw[9]), labels).mean()
        for w in fw:
            w.grad = None
        loss.backward()
        for w in fw:
            w.data -= LR * w.grad
        return loss.item()

    cases = {"fundl": fl_step}
    if torch is not None:
        F = torch.nn.functional
        tw = [torch.tensor(w) for w in lenet_weights()]
        tw[0], tw[2] = (w.permute(3, 2, 0, 1).contiguous() for w in (tw[0], tw[2]))
        for w in tw:
            w.requires_grad_(True)
        tx = torch.tensor(x).permute(0, 3, 1, 2).contiguous()
        ty = torch.tensor(labels)

        def t_step():
            h = F.max_pool2d(F.relu(F.conv2d(tx, tw[0], tw[1], padding=2)), 2)
            h = F.max_pool2d(F.relu(F.conv2d(h, tw[2], tw[3])), 2)
            h = h.permute(0, 2, 3, 1).reshape(LENET_BATCH, 400)
            h = F.relu(h @ tw[4] + tw[5])
            h = F.relu(h @ tw[6] + tw[7])
            loss = F.cross_entropy(h @ tw[8] + tw[9], ty)
            for w in tw:
                w.grad = None
            loss.backward()
            with torch.no_grad():
                for w in tw:
                    w -= LR * w.grad
            return loss.item()

        losses = [(fl_step(), t_step()) for _ in range(10)]
        worst = max(abs(a - b) for a, b in losses)
        print(f"\nLeNet-5: losses over 10 SGD steps agree with PyTorch within {worst:.1e} "
              f"(first {losses[0][0]:.6f}, last {losses[-1][0]:.6f})")
        assert worst < 1e-4, losses
        cases["torch"] = t_step
    return _timed(f"LeNet-5 training step (batch {LENET_BATCH})", cases, "torch",
                  number=20, rounds=11, warmup=5)


def main():
    torch = import_torch()
    print(f"fundl vs PyTorch {torch.__version__ if torch else '(not installed)'}, "
          f"{THREADS} threads, float32")
    if "--lenet" not in sys.argv:
        for case in CONV_CASES:
            bench_conv(torch, *case)
        for case in POOL_CASES:
            bench_pool(torch, *case)
    bench_lenet(torch)


if __name__ == "__main__":
    main()
