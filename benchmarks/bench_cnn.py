"""LeNet-5 and ResNet-20 training steps and LeNet-5 inference: fundl against PyTorch eager.

    python benchmarks/bench_cnn.py [--rounds 15] [--processes 2] [--skip-resnet]
                                   [--malloc default|tuned|both] [--select keras-way]

Contenders, float32, on FUNDL_BENCH_THREADS (2) threads, each timed in processes of its own
(in a shared process OpenBLAS's spinning worker threads slow PyTorch down, which would flatter
fundl), the processes in lock step (``_common.run_paired``: each round every contender times a
block of steps in turn, so both sides are timed over the same stretch of the machine's
phases, whose speed swings by up to 1.7x over a few hundred ms here; ratios of the median
block times, with the middle half of the round-by-round ratios):

- LeNet-5 training step, 28x28x1, batch 64: ``fundl.zoo.lenet5(input_shape=(28, 28, 1))``
  compiled with ``SGD(0.01)`` and sparse categorical cross-entropy, one
  ``model.train_on_batch(x, y)``; against the same network in PyTorch eager (C1 6@5x5 pad 2,
  tanh, 2x2 average pool, C3 16@5x5, tanh, pool, C5 120@5x5, tanh, F6 84 tanh, 10 logits),
  ``cross_entropy`` and an ``optim.SGD`` step.
- LeNet-5 inference, batch 64: ``model.predict(x, batch_size=64)`` against a forward under
  ``torch.no_grad()``.
- The same LeNet-5 the Keras-tutorial way ("keras-way"), training step and inference as above:
  Conv2D(6, 5, padding="same", ReLU), 2x2 max pooling, Conv2D(16, 5, ReLU), max pooling,
  Flatten, Dense(120, ReLU), Dense(84, ReLU), Dense(10, softmax) (the same 61,706 weights);
  against the same network in PyTorch eager (ReLU, ``MaxPool2d(2)``, ``Linear(400, 120)``).
- ResNet-20 training step, 32x32x3, batch 128: ``fundl.zoo.resnet_cifar(20)`` (option A
  shortcuts, BatchNormalization) compiled with ``SGD(0.1, momentum=0.9)``; against a
  PyTorch ResNet-20 written below with the same architecture (the common CIFAR one:
  subsample-and-zero-pad shortcuts, 8 zero channels on each side), ``optim.SGD`` with the
  same momentum.

Every process checks its net's trainable parameter count (61,706 and 269,722) before timing.
After timing, the parent copies fundl's initial weights into the PyTorch nets and checks
that the first losses (training mode) agree, so both sides compute the same function.
Peak memory is each process's peak resident set (data, model and framework included).
Run it on an otherwise idle machine.

Memory allocation matters as much as the arithmetic here. With glibc's default settings, the
megabytes freed after each step go back to the system and are page-faulted in again at the
next one (measured: 2,556 minor faults per LeNet-5 step and 72k per ResNet-20 step under
glibc's defaults; 548 and 13,159 for PyTorch, which caches more in its own allocator). fundl
now recycles its own big buffers (``fundl.runtime.Workspace``: convolution outputs, cols and
gradients, pooling, batch norm, recurrent ops): 0 faults per LeNet-5 step and ~4 per ResNet-20
step with glibc's defaults (count them with resource.getrusage's ru_minflt). It still leaves
the allocator alone unless asked: ``fl.config.tune_process()`` (which the ``fundl``
command calls) keeps freed memory for reuse (0 faults per step) and makes GNU OpenMP's idle
threads spin less. So every table comes twice (``--malloc both``, the default): ``default``
is each framework as a library user gets it (no process tuning); ``tuned`` gives both
processes tune_process's settings (mallopt, GOMP_SPINCOUNT=20000).

Measured on the 2-core development machine: see the README's speed table (with the command).
"""
import argparse
import ctypes
import importlib.util
import os
import sys

if os.environ.get("FUNDL_BENCH_MALLOPT", "0") == "1":  # set by main() for its child processes
    # fl.config.tune_process()'s settings, for either framework, before either loads
    os.environ.setdefault("GOMP_SPINCOUNT", "20000")
    try:
        _libc = ctypes.CDLL("libc.so.6")
        _libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD, as fundl.config.tune_process sets it
        _libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    except OSError:  # not glibc: nothing to tune
        pass

# _common first: it sets the BLAS thread counts, which NumPy's OpenBLAS reads when it loads
from _common import (THREADS, block_calls, import_torch, paired_ratio,  # noqa: E402
                     print_gemm_library, report, run_paired)

import numpy as np  # noqa: E402

LENET_BATCH, RESNET_BATCH, CLASSES = 64, 128, 10
LENET_PARAMS, RESNET20_PARAMS = 61_706, 269_722
LENET_LR, RESNET_LR, MOMENTUM = 0.01, 0.1, 0.9
TARGETS = {"LeNet-5 train": 0.65, "LeNet-5 keras-way train": 0.65, "LeNet-5 infer": 0.8,
           "LeNet-5 keras-way infer": 0.8, "ResNet-20 train": 1.0}


def data(batch, shape, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((batch,) + shape, dtype=np.float32),
            rng.integers(0, CLASSES, batch))


def lenet_data():
    return data(LENET_BATCH, (28, 28, 1), 0)


def resnet_data():
    return data(RESNET_BATCH, (32, 32, 3), 1)


def trainable_count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def check_count(who, got, want):
    if got != want:
        raise SystemExit(f"{who}: {got:,} trainable parameters, expected {want:,}: the two "
                         "nets differ")


# -- fundl ---------------------------------------------------------------------------------------
def fundl_lenet(compiled=True):
    import fundl as fl

    fl.manual_seed(0)
    model = fl.zoo.lenet5(input_shape=(28, 28, 1), classes=CLASSES)
    check_count("fundl LeNet-5", trainable_count(model.trainable_weights), LENET_PARAMS)
    if compiled:
        model.compile(optimizer=fl.optimizers.SGD(LENET_LR),
                      loss="sparse_categorical_crossentropy")
    return model


def fundl_lenet_keras(compiled=True):
    """LeNet-5 as the Keras tutorials write it: ReLU, max pooling, padding="same" on C1."""
    import fundl as fl
    from fundl.layers import Conv2D, Dense, Flatten, Input, MaxPooling2D

    fl.manual_seed(0)
    model = fl.Sequential([
        Input((28, 28, 1)), Conv2D(6, 5, padding="same", activation="relu"), MaxPooling2D(2),
        Conv2D(16, 5, activation="relu"), MaxPooling2D(2), Flatten(),
        Dense(120, activation="relu"), Dense(84, activation="relu"),
        Dense(CLASSES, activation="softmax")])
    check_count("fundl LeNet-5 keras-way", trainable_count(model.trainable_weights),
                LENET_PARAMS)
    if compiled:
        model.compile(optimizer=fl.optimizers.SGD(LENET_LR),
                      loss="sparse_categorical_crossentropy")
    return model


def fundl_resnet():
    import fundl as fl

    fl.manual_seed(0)
    model = fl.zoo.resnet_cifar(20, input_shape=(32, 32, 3), classes=CLASSES)
    check_count("fundl ResNet-20", trainable_count(model.trainable_weights), RESNET20_PARAMS)
    model.compile(optimizer=fl.optimizers.SGD(RESNET_LR, momentum=MOMENTUM),
                  loss="sparse_categorical_crossentropy")
    return model


def fundl_lenet_train():
    model, (x, y) = fundl_lenet(), lenet_data()
    return lambda: model.train_on_batch(x, y)


def fundl_lenet_infer():
    model, (x, _) = fundl_lenet(compiled=False), lenet_data()
    return lambda: model.predict(x, batch_size=LENET_BATCH)


def fundl_lenet_keras_train():
    model, (x, y) = fundl_lenet_keras(), lenet_data()
    return lambda: model.train_on_batch(x, y)


def fundl_lenet_keras_infer():
    model, (x, _) = fundl_lenet_keras(compiled=False), lenet_data()
    return lambda: model.predict(x, batch_size=LENET_BATCH)


def fundl_resnet_train():
    model, (x, y) = fundl_resnet(), resnet_data()
    return lambda: model.train_on_batch(x, y)


# -- PyTorch -------------------------------------------------------------------------------------
def torch_lenet(torch):
    nn = torch.nn
    net = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(),
        nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, CLASSES))
    check_count("PyTorch LeNet-5", trainable_count(net.parameters()), LENET_PARAMS)
    return net


def torch_lenet_keras(torch):
    nn = torch.nn
    net = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, CLASSES))
    check_count("PyTorch LeNet-5 keras-way", trainable_count(net.parameters()), LENET_PARAMS)
    return net


def torch_resnet20(torch):
    """ResNet-20 for CIFAR (He et al. 2016, option A), as fundl.zoo.resnet_cifar(20) builds it."""
    nn, F = torch.nn, torch.nn.functional

    class Block(nn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.extra = c_out - c_in  # zero channels the shortcut adds, half on each side
            self.stride = stride

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            s = x
            if self.stride != 1 or self.extra:
                s = F.pad(x[:, :, ::self.stride, ::self.stride],
                          (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))
            return F.relu(y + s)

    class ResNet20(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            blocks, c_in = [], 16
            for stage, c_out in enumerate((16, 32, 64)):
                for i in range(3):
                    blocks.append(Block(c_in, c_out, 2 if stage and i == 0 else 1))
                    c_in = c_out
            self.blocks = nn.Sequential(*blocks)
            self.fc = nn.Linear(64, CLASSES)

        def forward(self, x):
            x = self.blocks(F.relu(self.bn1(self.conv1(x))))
            return self.fc(x.mean(dim=(2, 3)))

    net = ResNet20()
    check_count("PyTorch ResNet-20", trainable_count(net.parameters()), RESNET20_PARAMS)
    return net


def nchw(torch, x):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def torch_train(net_fn, data_fn, lr, momentum, device="cpu"):
    torch = import_torch()
    torch.manual_seed(0)
    net = net_fn(torch).to(device)
    x, y = data_fn()
    tx, ty = nchw(torch, x).to(device), torch.from_numpy(y).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    net.train()

    def step():
        loss = torch.nn.functional.cross_entropy(net(tx), ty)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def torch_lenet_infer(net_fn=torch_lenet):
    torch = import_torch()
    net = net_fn(torch).eval()
    tx = nchw(torch, lenet_data()[0])

    def forward():
        with torch.no_grad():
            return net(tx).numpy()

    return forward


# -- the same function on both sides ---------------------------------------------------------------
def copy_weights(torch, model, net):
    """fundl's weights (Keras layouts) into the PyTorch net, layer kind by layer kind, in order."""
    from fundl.layers import BatchNormalization, Conv2D, Dense

    nn = torch.nn
    pairs = [(Conv2D, nn.Conv2d), (BatchNormalization, nn.BatchNorm2d), (Dense, nn.Linear)]
    with torch.no_grad():
        for f_type, t_type in pairs:
            ours = [layer for layer in model.layers if type(layer) is f_type]
            theirs = [m for m in net.modules() if type(m) is t_type]
            if len(ours) != len(theirs):
                raise SystemExit(f"{f_type.__name__}: fundl has {len(ours)}, PyTorch "
                                 f"{len(theirs)} {t_type.__name__}")
            for layer, module in zip(ours, theirs):
                if f_type is Conv2D:
                    arrays = [(module.weight, layer.kernel.numpy().transpose(3, 2, 0, 1))]
                elif f_type is Dense:
                    k = layer.kernel.numpy()
                    if module.in_features == 400:  # after Flatten: fundl's rows are (h, w, c)
                        k = k.reshape(5, 5, 16, -1).transpose(2, 0, 1, 3).reshape(400, -1)
                    arrays = [(module.weight, k.T)]
                else:
                    arrays = [(module.weight, layer.gamma.numpy()),
                              (module.bias, layer.beta.numpy()),
                              (module.running_mean, layer.moving_mean.numpy()),
                              (module.running_var, layer.moving_variance.numpy())]
                if f_type is not BatchNormalization and layer.use_bias:
                    arrays.append((module.bias, layer.bias.numpy()))
                for param, a in arrays:
                    if tuple(param.shape) != a.shape:
                        raise SystemExit(f"{layer.name}: shape {a.shape} vs PyTorch's "
                                         f"{tuple(param.shape)}")
                    param.copy_(torch.from_numpy(np.ascontiguousarray(a)))


def check_agreement(torch, resnet):
    """From the same weights and data, fundl's and PyTorch's first training losses agree."""
    nets = [("LeNet-5", fundl_lenet, torch_lenet, lenet_data),
            ("LeNet-5 keras-way", fundl_lenet_keras, torch_lenet_keras, lenet_data)]
    if resnet:
        nets.append(("ResNet-20", fundl_resnet, torch_resnet20, resnet_data))
    for name, fundl_fn, torch_fn, data_fn in nets:
        model, net, (x, y) = fundl_fn(), torch_fn(torch), data_fn()
        copy_weights(torch, model, net)
        net.train()
        t_loss = torch.nn.functional.cross_entropy(net(nchw(torch, x)), torch.from_numpy(y))
        f_loss = model.train_on_batch(x, y)  # the loss before the update, as Keras
        if abs(f_loss - t_loss.item()) > 1e-4 * max(1.0, abs(f_loss)):
            raise SystemExit(f"{name}: fundl's first loss {f_loss} differs from PyTorch's "
                             f"{t_loss.item()}")
        print(f"{name}: first training loss fundl {f_loss:.6f}, PyTorch {t_loss.item():.6f}")


def builders(torch_available, resnet):
    """Contenders by name, each fundl one next to its PyTorch counterpart (run_paired times
    them in this order, then backwards)."""
    torch_side = {"LeNet-5 train torch": lambda: torch_train(torch_lenet, lenet_data, LENET_LR,
                                                             0.0),
                  "LeNet-5 infer torch": torch_lenet_infer,
                  "LeNet-5 keras-way train torch": lambda: torch_train(
                      torch_lenet_keras, lenet_data, LENET_LR, 0.0),
                  "LeNet-5 keras-way infer torch": lambda: torch_lenet_infer(torch_lenet_keras)}
    out = {}
    for name, fn in (("LeNet-5 train fundl", fundl_lenet_train),
                     ("LeNet-5 infer fundl", fundl_lenet_infer),
                     ("LeNet-5 keras-way train fundl", fundl_lenet_keras_train),
                     ("LeNet-5 keras-way infer fundl", fundl_lenet_keras_infer)):
        out[name] = fn
        if torch_available:
            twin = name[:-len("fundl")] + "torch"
            out[twin] = torch_side[twin]
    if resnet:
        out["ResNet-20 train fundl"] = fundl_resnet_train
        if torch_available:
            out["ResNet-20 train torch"] = lambda: torch_train(torch_resnet20, resnet_data,
                                                               RESNET_LR, MOMENTUM)
    return out


def time_all(cases, only, args):
    """run_paired on the LeNet-5 and the ResNet-20 contenders; (times, peaks, samples) by
    name."""
    # ResNet-20 steps take most of a second: fewer calls per block than LeNet's milliseconds
    groups = [({k: v for k, v in cases.items() if k.startswith("LeNet")}, 20, 3),
              ({k: v for k, v in cases.items() if k.startswith("ResNet")}, 2, 1)]
    times, peaks, samples = {}, {}, {}
    for group, number, warmup in groups:
        if group and (only is None or only in group):
            t, p, s = run_paired(group, number=block_calls(group, number), rounds=args.rounds,
                                 warmup=warmup, processes=args.processes)
            times.update(t)
            peaks.update(p)
            samples.update(s)
    return times, peaks, samples


def print_tables(label, times, peaks, samples):
    titles = {"LeNet-5 train": f"LeNet-5 training step (28x28x1, batch {LENET_BATCH}, SGD)",
              "LeNet-5 infer": f"LeNet-5 inference (batch {LENET_BATCH}: predict / no_grad)",
              "LeNet-5 keras-way train": f"LeNet-5 keras-way training step (ReLU, max pooling, "
                                         f"batch {LENET_BATCH}, SGD)",
              "LeNet-5 keras-way infer": f"LeNet-5 keras-way inference (batch {LENET_BATCH})",
              "ResNet-20 train": f"ResNet-20 training step (32x32x3, batch {RESNET_BATCH}, "
                                 "SGD momentum)"}
    summary = []
    for key, title in titles.items():
        group = {n[len(key) + 1:]: t for n, t in times.items() if n.startswith(key + " ")}
        if not group:
            continue
        group_peaks = {n[len(key) + 1:]: p for n, p in peaks.items() if n.startswith(key + " ")}
        report(f"{title}, malloc {label}", group,
               baseline="torch" if "torch" in group else "fundl", unit="ms", peaks=group_peaks)
        if "torch" in group:
            target = f" (target <= {TARGETS[key]})" if key in TARGETS else ""
            ratios = paired_ratio(samples, f"{key} fundl", f"{key} torch")
            summary.append(f"  {key:<16s} time fundl / torch = {ratios}{target}, peak memory "
                           f"fundl / torch = {group_peaks['fundl'] / group_peaks['torch']:.2f} "
                           "(target <= 1.0)")
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="blocks per process")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--skip-resnet", action="store_true")
    parser.add_argument("--malloc", choices=("default", "tuned", "both"), default="both")
    parser.add_argument("--select", default="",
                        help="time only the cases whose name contains this text, e.g. keras-way")
    args, _ = parser.parse_known_args()
    only = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--only=")), None)
    # run_paired starts the children with --only=<name> alone: they get --rounds from here
    if only is None:
        os.environ["FUNDL_BENCH_ROUNDS"] = str(args.rounds)
    else:
        args.rounds = int(os.environ.get("FUNDL_BENCH_ROUNDS", args.rounds))
    # Check for torch without importing it here: a child inherits this process's peak memory
    # (ru_maxrss survives exec), so the parent stays small until the timing is done.
    torch_available = only is not None or importlib.util.find_spec("torch") is not None
    cases = {name: fn for name, fn in builders(torch_available, resnet=not args.skip_resnet).items()
             if args.select in name}
    if only is not None:  # a child: time one contender (run_paired exits)
        time_all(cases, only, args)
        raise SystemExit(f"unknown contender {only!r}; choose from {sorted(cases)}")
    modes = ("default", "tuned") if args.malloc == "both" else (args.malloc,)
    results = {}
    for mode in modes:
        os.environ["FUNDL_BENCH_MALLOPT"] = "1" if mode == "tuned" else "0"
        results[mode] = time_all(cases, None, args)
    torch = import_torch()
    if torch is not None:
        check_agreement(torch, resnet=not args.skip_resnet)
    print_gemm_library()
    summaries = {mode: print_tables(mode, *results[mode]) for mode in modes}
    for mode, summary in summaries.items():
        if summary:
            print(f"\nsummary, malloc {mode} ({THREADS} threads): time ratios of the median "
                  "block times (in brackets: the middle half of the rounds' own ratios)")
            print("\n".join(summary))


if __name__ == "__main__":
    main()
