"""LSTM and GRU training steps and inference: fundl against PyTorch eager, side by side.

    python benchmarks/bench_rnn.py [--rounds 15] [--processes 2] [--library-steps]

The row-by-row MNIST shape: 28 steps x 28 inputs -> 128 units, batch 64, float32, followed by
Dense(10) and softmax cross-entropy, plain SGD (lr 0.01), on FUNDL_BENCH_THREADS (2) threads.
Contenders:

- ``fundl fit``: ``Sequential([LSTM(128), Dense(10, "softmax")])`` trained with
  ``train_on_batch`` (the path a Keras user takes);
- ``fundl raw``: the same layers called directly, ``backward()`` and an in-place update;
- ``fundl fit, BLAS steps`` (with ``--library-steps``): the ``fit`` path with each step's
  recurrent product in the BLAS library (``FUNDL_BLAS=numpy``) instead of fundl's own kernel
  (``fundl.kernels.recurrent.matmul_nt``), to see what that kernel is worth;
- ``fundl infer``: ``model(x)`` under ``fl.no_grad()``; the LSTM then runs its lean
  inference loop where OpenBLAS's AVX-512 small kernels are usable (each step's product
  transposed, nothing kept for a backward: ``LSTMSequence._infer``);
- ``torch``: ``nn.LSTM``/``nn.GRU`` + ``nn.Linear`` + ``cross_entropy`` + ``optim.SGD``
  (PyTorch runs its LSTM through oneDNN's fused RNN primitive; its GRU through ATen ops).

Each contender is timed in processes of its own: in a shared process OpenBLAS's spinning
worker threads slow PyTorch down (measured here: a PyTorch LSTM step took 11.0 ms right after a
block of fundl steps, 6.0 ms after a pause), which would flatter fundl. The processes run in
lock step (``_common.run_paired``): each round, every contender times a block of ``--number``
steps in turn (``--number`` training steps, four times as many inference calls: ~0.1 s each),
so both sides are timed over the same stretch of the machine's phases (its speed swings by up
to 1.7x over a few hundred ms here). Ratios are of the median block times, with the middle
half of the round-by-round ratios. Before timing, both sides are started from the same
weights (fundl's Keras layout mapped to PyTorch's) and their first losses are checked to
agree. Inference: one forward of the batch without a graph. Run it on an otherwise idle
machine.
"""
import argparse
import importlib.util
import sys

# _common first: it sets OPENBLAS_NUM_THREADS & co. from FUNDL_BENCH_THREADS, which OpenBLAS
# reads once, when NumPy loads it
from _common import (THREADS, block_calls, import_torch, paired_ratio,  # isort: skip
                     print_gemm_library, report, run_paired)

import numpy as np

BATCH, STEPS, FEATURES, UNITS, CLASSES, LR = 64, 28, 28, 128, 10, 0.01
KINDS = ("LSTM", "GRU")
TARGETS = {"LSTM": 0.7, "GRU": 0.4}  # issue 19's goals (training); inference: 0.8 each
INFER_TARGET = 0.8


def data():
    rng = np.random.default_rng(0)
    return (rng.random((BATCH, STEPS, FEATURES), dtype=np.float32),
            rng.integers(0, CLASSES, BATCH))


def fundl_model(kind, softmax):
    import fundl as fl
    from fundl.layers import GRU, LSTM, Dense
    from fundl.models import Sequential

    fl.manual_seed(0)
    layer = {"LSTM": LSTM, "GRU": GRU}[kind](UNITS, input_shape=(STEPS, FEATURES))
    return Sequential([layer, Dense(CLASSES, activation="softmax" if softmax else None)])


def torch_weights(kind, cell):
    """fundl (Keras layout) -> PyTorch's weight_ih, weight_hh, bias_ih, bias_hh."""
    w, u = cell.kernel.numpy(), cell.recurrent_kernel.numpy()
    b = cell.bias.numpy()
    if kind == "LSTM":  # gates i, f, c, o in both
        return w.T, u.T, b, np.zeros_like(b)
    n = UNITS  # GRU: Keras z, r, h -> torch r, z, n
    order = np.r_[n:2 * n, 0:n, 2 * n:3 * n]
    return w[:, order].T, u[:, order].T, b[0, order], b[1, order]


def torch_model(kind, torch, model=None):
    net = getattr(torch.nn, kind)(FEATURES, UNITS, batch_first=True)
    head = torch.nn.Linear(UNITS, CLASSES)
    if model is not None:
        with torch.no_grad():
            params = (net.weight_ih_l0, net.weight_hh_l0, net.bias_ih_l0, net.bias_hh_l0)
            for p, a in zip(params, torch_weights(kind, model.layers[0].cell)):
                p.copy_(torch.from_numpy(np.ascontiguousarray(a)))
            head.weight.copy_(torch.from_numpy(model.layers[1].kernel.numpy().T.copy()))
            head.bias.copy_(torch.from_numpy(model.layers[1].bias.numpy()))
    return net, head


# -- what each process times ---------------------------------------------------------------------
def fundl_fit(kind):
    import fundl as fl

    x, y = data()
    model = fundl_model(kind, softmax=True)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=fl.optimizers.SGD(LR))
    return lambda: model.train_on_batch(x, y)


def fundl_fit_library(kind):
    """The fit path with the steps' products in NumPy's BLAS (set before fundl chooses)."""
    import os

    os.environ["FUNDL_BLAS"] = "numpy"
    return fundl_fit(kind)


def fundl_raw(kind):
    import fundl as fl

    x, y = data()
    model = fundl_model(kind, softmax=False)
    weights = model.trainable_weights
    fx = fl.tensor(x)

    def step():
        loss = fl.softmax_cross_entropy(model(fx, training=True), y).mean()
        for w in weights:
            w.grad = None
        loss.backward()
        for w in weights:
            w.data -= LR * w.grad
        return loss.item()

    return step


def fundl_infer(kind):
    import fundl as fl

    x, _ = data()
    model = fundl_model(kind, softmax=False)
    fx = fl.tensor(x)

    def infer():
        with fl.no_grad():
            return model(fx)

    return infer


def torch_step(kind, device="cpu"):
    torch = import_torch()
    x, y = data()
    net, head = (m.to(device) for m in torch_model(kind, torch))
    opt = torch.optim.SGD(list(net.parameters()) + list(head.parameters()), lr=LR)
    tx, ty = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)

    def step():
        out, _ = net(tx)
        loss = torch.nn.functional.cross_entropy(head(out[:, -1]), ty)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def torch_infer(kind):
    torch = import_torch()
    x, _ = data()
    net, head = torch_model(kind, torch)
    tx = torch.from_numpy(x)

    def infer():
        with torch.no_grad():
            out, _ = net(tx)
            return head(out[:, -1])

    return infer


def builders(torch_available, library_steps=False):
    """Contenders by name, each next to the one it is compared with (run_paired times them in
    this order, then backwards)."""
    out = {}
    for kind in KINDS:
        out[f"{kind} train fundl fit"] = lambda k=kind: fundl_fit(k)
        if torch_available:
            out[f"{kind} train torch"] = lambda k=kind: torch_step(k)
        out[f"{kind} train fundl raw"] = lambda k=kind: fundl_raw(k)
        if library_steps:
            out[f"{kind} train fundl fit, BLAS steps"] = lambda k=kind: fundl_fit_library(k)
        out[f"{kind} infer fundl"] = lambda k=kind: fundl_infer(k)
        if torch_available:
            out[f"{kind} infer torch"] = lambda k=kind: torch_infer(k)
    return out


def check_agreement(torch):
    """Same weights, same data: fundl's and PyTorch's first losses agree (both paths)."""
    import fundl as fl

    x, y = data()
    for kind in KINDS:
        model = fundl_model(kind, softmax=True)
        model.compile(loss="sparse_categorical_crossentropy", optimizer=fl.optimizers.SGD(LR))
        net, head = torch_model(kind, torch, model)
        t_loss = torch.nn.functional.cross_entropy(head(net(torch.from_numpy(x))[0][:, -1]),
                                                   torch.from_numpy(y)).item()
        f_loss = model.test_on_batch(x, y)
        if abs(f_loss - t_loss) > 1e-5:
            raise SystemExit(f"{kind}: fundl's loss {f_loss} differs from PyTorch's {t_loss}")
        print(f"{kind}: first loss fundl {f_loss:.6f}, PyTorch {t_loss:.6f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="blocks per process")
    parser.add_argument("--number", type=int, default=20,
                        help="training steps per block (inference: four times as many)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--library-steps", action="store_true",
                        help="also time the fit path with the steps' products in BLAS")
    args, _ = parser.parse_known_args()
    child = any(a.startswith("--only=") for a in sys.argv)
    # Check for torch without importing it here: a child inherits this process's peak memory
    # (ru_maxrss survives exec), so the parent stays small until the timing is done.
    torch_available = child or importlib.util.find_spec("torch") is not None
    cases = builders(torch_available, args.library_steps)
    times, peaks, samples = run_paired(cases, number=block_calls(cases, args.number),
                                       rounds=args.rounds, processes=args.processes)
    torch = import_torch()
    if torch is not None:
        check_agreement(torch)
    print_gemm_library()
    from fundl.kernels import blas

    print(f"each step's recurrent product in the compiled loops: {blas.recurrent_products()} "
          f"(fundl: fundl.kernels.recurrent.matmul_nt; FUNDL_BLAS=numpy or mkl: that library)")
    from fundl.kernels import convolution

    small = convolution.small_gemms(np.float32)[2]
    print(f"OpenBLAS's AVX-512 small kernels for float32 (input projections, forward steps' "
          f"products, weight gradients): {'yes' if small else 'no'}")
    lean = "the lean loop, products transposed (fundl.kernels.recurrent._lstm_infer_parts)"
    print(f"LSTM inference without a graph: {lean if small else 'the training loops'}")
    summary = []
    for kind in KINDS:
        for mode, title in (("train", f"{kind} training step ({STEPS}x{FEATURES} -> {UNITS}, "
                                      f"batch {BATCH}, + Dense 10)"),
                            ("infer", f"{kind} inference (forward, no graph)")):
            group = {name.split(f"{kind} {mode} ", 1)[1]: t for name, t in times.items()
                     if name.startswith(f"{kind} {mode} ")}
            group_peaks = {name.split(f"{kind} {mode} ", 1)[1]: p for name, p in peaks.items()
                           if name.startswith(f"{kind} {mode} ")}
            base = "torch" if "torch" in group else next(iter(group))
            report(title, group, baseline=base, unit="ms", peaks=group_peaks)
        if torch is not None:
            ratio = {m: paired_ratio(samples, f"{kind} {m}", f"{kind} {m.split()[0]} torch")
                     for m in ("train fundl fit", "train fundl raw", "infer fundl")}
            summary.append(f"  {kind}: fit / torch = {ratio['train fundl fit']} (target <= "
                           f"{TARGETS[kind]}), raw / torch = {ratio['train fundl raw']}, "
                           f"inference / torch = {ratio['infer fundl']} (target <= "
                           f"{INFER_TARGET})")
    if summary:
        rounds = len(next(iter(samples.values())))
        print(f"\nsummary ({THREADS} threads): ratios of the median block times over {rounds} "
              "rounds (in brackets: the middle half of the rounds' own ratios)")
        print("\n".join(summary))


if __name__ == "__main__":
    main()
