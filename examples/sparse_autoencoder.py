"""A sparse autoencoder on MNIST: a KL sparsity penalty keeps the mean code activation near rho.

    python examples/sparse_autoencoder.py [--epochs 5] [--units 196] [--rho 0.05] [--plots DIR]

The lecture's sparse autoencoder: one sigmoid hidden layer (the code) with the penalty
``beta * sum_j KL(rho || rho_hat_j)`` (``fundl.regularizers.KLSparsity`` as the code layer's
``activity_regularizer``), where ``rho_hat_j`` is unit ``j``'s mean activation over a batch,
and weight decay ``(lambda / 2) sum W^2`` as in Ng's notes.
It reports the mean activation of the code units on test digits (near ``rho`` when the
penalty works; about 0.5 without it, ``--beta 0``) and the reconstruction error. With
``--plots DIR`` it draws each code unit's input weights as a 28x28 image: the learned
filters (pen strokes, as in Ng's notes).
"""
import argparse
import importlib.util
import os
import time

import numpy as np

import fundl as fl
from fundl import functional as F
from fundl.regularizers import KLSparsity
from fundl.zoo import dense_autoencoder


# examples/_data.py (the image examples' shared loading and picture helpers), found beside this
# file so that both ``python examples/<name>.py`` and the tests' loader find it
_spec = importlib.util.spec_from_file_location(
    "_data", os.path.join(os.path.dirname(os.path.abspath(__file__)), "_data.py"))
_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_data)



def half_sse(y_true, y_pred):
    """``0.5 * ||x - x_hat||^2`` per sample (summed over the pixels)."""
    d = y_pred - y_true
    return F.sum(d * d, axis=-1) * 0.5


def filters_picture(kernel, path, count=100, scale=2):
    """The first ``count`` columns of a (784, units) kernel, each scaled to [0, 1], as tiles."""
    w = kernel[:, :count].T
    w = (w - w.min(1, keepdims=True)) / (np.ptp(w, axis=1, keepdims=True) + 1e-12)
    side = int(np.ceil(np.sqrt(len(w))))
    grid = np.ones((side * 29 - 1, side * 29 - 1), dtype="float32")
    for i, f in enumerate(w):
        r, c = divmod(i, side)
        grid[r * 29:r * 29 + 28, c * 29:c * 29 + 28] = f.reshape(28, 28)
    return _data.save_picture(grid, path, scale)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train", type=int, default=10000)
    parser.add_argument("--test", type=int, default=10000)
    parser.add_argument("--units", type=int, default=196)
    parser.add_argument("--rho", type=float, default=0.05)
    parser.add_argument("--beta", type=float, default=3.0)
    parser.add_argument("--weight-decay", type=float, default=3e-3,
                        help="lambda of the (lambda / 2) * sum W^2 weight decay")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots", default=None, help="write PNGs to this directory")
    args = parser.parse_args(argv)

    x, x_test = _data.load_flat(args.train, args.test)
    fl.manual_seed(args.seed)
    reg = KLSparsity(args.rho, args.beta) if args.beta > 0 else None
    decay = fl.regularizers.L2(args.weight_decay / 2) if args.weight_decay > 0 else None
    ae = dense_autoencoder(784, args.units, code_activation="sigmoid", code_regularizer=reg,
                           kernel_regularizer=decay)
    # Ng's objective: half the squared error summed over the pixels (per digit) plus the
    # penalty; a per-pixel mean would let the penalty outweigh the reconstruction 784 times
    ae.compile(optimizer=fl.optimizers.Adam(args.lr), loss=half_sse)
    start = time.perf_counter()
    history = ae.fit(x, x, epochs=args.epochs, batch_size=args.batch_size, verbose=2)
    seconds = time.perf_counter() - start
    codes = ae.get_layer("encoder").predict(x_test, batch_size=1000, verbose=0)
    rec = ae.predict(x_test, batch_size=1000, verbose=0)
    mean_act = float(codes.mean())
    per_unit = codes.mean(axis=0)
    mse = float(np.mean((rec - x_test) ** 2))
    print(f"mean code activation on test digits {mean_act:.4f} (rho = {args.rho}, beta = "
          f"{args.beta}); units' means from {per_unit.min():.3f} to {per_unit.max():.3f}; "
          f"test MSE {mse:.5f} ({args.epochs} epochs, {seconds:.0f} s)")
    out = {"history": history.history, "mean_activation": mean_act, "test_mse": mse}
    if args.plots:
        os.makedirs(args.plots, exist_ok=True)
        kernel = ae.get_layer("encoder").get_layer("code").kernel.numpy()
        out["picture"] = filters_picture(kernel, os.path.join(args.plots,
                                                              "sparse_ae_filters.png"))
        print("wrote", out["picture"])
    return out


if __name__ == "__main__":
    main()
