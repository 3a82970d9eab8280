"""Training steps on an NVIDIA GPU: fundl on CuPy against PyTorch eager on CUDA.

    python benchmarks/bench_gpu.py [--rounds 5] [--processes 1] [--only-case NAME]

The CPU benchmarks' networks and shapes (``bench_cnn.py``, ``bench_rnn.py``), float32, the
batch handed over as GPU arrays on both sides:

- LeNet-5 training step, 28x28x1, batch 64, SGD;
- ResNet-20 training step, 32x32x3, batch 128, SGD with momentum;
- LSTM and GRU training steps, 28 steps x 28 inputs -> 128 units, batch 64, Dense(10), SGD.

fundl: the model moved with ``model.to("gpu")``, one ``train_on_batch(x, y)`` on CuPy arrays
(it copies them to the host and back, as ``fit`` cuts batches on the host: a round trip of
200-1,600 KB per step that PyTorch's step does not make; it returns the loss as a Python
float, which waits for the GPU). PyTorch: forward, ``cross_entropy``,
backward, ``optim.SGD`` step and ``loss.item()`` (the same wait). PyTorch runs cuDNN's
convolutions and fused RNN kernels; fundl's CuPy path runs cuBLAS GEMMs (im2col for the
convolutions) and one CuPy kernel per element-wise step, so launch overhead, not arithmetic,
bounds these small networks. Each contender runs in a process of its own
(``_common.run_isolated``). Needs CuPy, a GPU, and for the comparison PyTorch with CUDA.
"""
import argparse
import sys

import bench_cnn
import bench_rnn
from _common import import_torch, report, run_isolated


def _cupy():
    import cupy

    return cupy


# -- fundl ---------------------------------------------------------------------------------------
def fundl_cnn(model_fn, data_fn):
    def build():
        cp = _cupy()
        model = model_fn().to("gpu")
        x, y = data_fn()
        gx, gy = cp.asarray(x), cp.asarray(y)
        return lambda: model.train_on_batch(gx, gy)

    return build


def fundl_rnn(kind):
    def build():
        import fundl as fl

        cp = _cupy()
        x, y = bench_rnn.data()
        model = bench_rnn.fundl_model(kind, softmax=True).to("gpu")
        model.compile(loss="sparse_categorical_crossentropy",
                      optimizer=fl.optimizers.SGD(bench_rnn.LR))
        gx, gy = cp.asarray(x), cp.asarray(y)
        return lambda: model.train_on_batch(gx, gy)

    return build


# -- PyTorch: the CPU benchmarks' steps, on the GPU -----------------------------------------------
def torch_cnn(net_fn, data_fn, lr, momentum):
    def build():
        import_torch().backends.cudnn.benchmark = True
        return bench_cnn.torch_train(net_fn, data_fn, lr, momentum, device="cuda")

    return build


def torch_rnn(kind):
    return lambda: bench_rnn.torch_step(kind, device="cuda")


CASES = {
    "LeNet-5": (fundl_cnn(bench_cnn.fundl_lenet, bench_cnn.lenet_data),
                torch_cnn(bench_cnn.torch_lenet, bench_cnn.lenet_data, bench_cnn.LENET_LR, 0.0),
                30),
    "ResNet-20": (fundl_cnn(bench_cnn.fundl_resnet, bench_cnn.resnet_data),
                  torch_cnn(bench_cnn.torch_resnet20, bench_cnn.resnet_data,
                            bench_cnn.RESNET_LR, bench_cnn.MOMENTUM), 10),
    "LSTM": (fundl_rnn("LSTM"), torch_rnn("LSTM"), 20),
    "GRU": (fundl_rnn("GRU"), torch_rnn("GRU"), 20),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--only-case", choices=sorted(CASES))
    args, _ = parser.parse_known_args()
    torch = import_torch()
    with_torch = torch is not None and torch.cuda.is_available()
    if not with_torch:
        print("PyTorch with CUDA is not available: timing fundl alone", file=sys.stderr)
    child = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--only=")), None)
    for name, (ours, theirs, number) in CASES.items():
        if (args.only_case and name != args.only_case) or (child and
                                                           not child.startswith(name + " ")):
            continue
        builders = {f"{name} fundl": ours}
        if with_torch:
            builders[f"{name} torch"] = theirs
        times, _ = run_isolated(builders, number=number, rounds=args.rounds, warmup=3,
                                    processes=args.processes)
        report(f"{name} training step on the GPU", times, f"{name} torch" if with_torch
               else f"{name} fundl", unit="ms")


if __name__ == "__main__":
    main()
