"""A convolutional autoencoder on MNIST (strided convolutions down, transposed ones up).

    python examples/conv_autoencoder.py [--epochs 3] [--train 10000] [--plots DIR]

``fundl.zoo.conv_autoencoder((28, 28, 1), filters=(16, 32))``: two stride-2 3x3 convolutions
take a digit to a 7x7x32 feature map (or, with ``--code N``, a dense N-number code) and two
stride-2 transposed convolutions bring it back. It reports the test reconstruction MSE per
pixel beside PCA with as many components as the code has numbers (capped at 784) and writes
test digits above their reconstructions with ``--plots DIR``.
"""
import argparse
import importlib.util
import os
import time

import numpy as np

import fundl as fl
from fundl.zoo import conv_autoencoder


# examples/_data.py (the image examples' shared loading and picture helpers), found beside this
# file so that both ``python examples/<name>.py`` and the tests' loader find it
_spec = importlib.util.spec_from_file_location(
    "_data", os.path.join(os.path.dirname(os.path.abspath(__file__)), "_data.py"))
_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_data)


def load(n_train, n_test):
    from fundl.datasets import mnist

    (x, _), (xt, _) = mnist.load_data()
    return (x[:n_train, ..., None].astype("float32") / 255,
            xt[:n_test, ..., None].astype("float32") / 255)



def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train", type=int, default=10000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--filters", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--code", type=int, default=32,
                        help="a dense code of this size (0: the 7x7 feature map is the code)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots", default=None, help="write PNGs to this directory")
    args = parser.parse_args(argv)

    x, x_test = load(args.train, args.test)
    fl.manual_seed(args.seed)
    ae = conv_autoencoder((28, 28, 1), filters=tuple(args.filters), code_dim=args.code or None)
    ae.compile(optimizer=fl.optimizers.Adam(args.lr), loss="binary_crossentropy")
    start = time.perf_counter()
    history = ae.fit(x, x, epochs=args.epochs, batch_size=args.batch_size, verbose=2)
    seconds = time.perf_counter() - start
    rec = ae.predict(x_test, batch_size=500, verbose=0)
    mse = float(np.mean((rec - x_test) ** 2))
    size = int(np.prod(ae.get_layer("encoder").outputs[0].shape[1:]))
    k = min(size, 784, len(x))
    _, pca_mse = _data.pca_baseline(x, x_test, k)
    print(f"conv autoencoder (code of {size} numbers): test MSE per pixel {mse:.5f}; PCA-{k} "
          f"{pca_mse:.5f} ({args.epochs} epochs on {len(x)} digits, {seconds:.0f} s)")
    out = {"history": history.history, "test_mse": mse, "pca_mse": pca_mse, "code_size": size}
    if args.plots:
        os.makedirs(args.plots, exist_ok=True)
        out["picture"] = _data.picture([x_test, rec], os.path.join(args.plots, "conv_ae.png"))
        print("wrote", out["picture"])
    return out


if __name__ == "__main__":
    main()
