"""A deep autoencoder with a 30-unit code against PCA with 30 components on MNIST.

    python examples/autoencoder_mnist.py [--epochs 5] [--train 10000] [--plots DIR]

Hinton & Salakhutdinov (2006) showed that a deep autoencoder finds a far better 30-number
code of a digit than PCA's 30 principal components. Here the encoder is
784-512-256-128-30 (ReLU, a linear code; the paper's 1000-500-250 is wider and was
pre-trained with RBMs; this one is trained end to end with Adam, which deep nets of this
size no longer need pre-training for) and the decoder mirrors it, ending in a sigmoid. It is
trained with binary cross-entropy (the paper's loss for pixels in [0, 1]), and both methods
are compared by the test reconstruction mean squared error per pixel. ``fundl.decomposition.PCA``
fitted on the same training digits gives the linear baseline. With ``--plots DIR``: test
digits (top), the autoencoder's reconstructions (middle) and PCA's (bottom).
"""
import argparse
import importlib.util
import os
import time

import numpy as np

import fundl as fl
from fundl.zoo import dense_autoencoder


# examples/_data.py (the image examples' shared loading and picture helpers), found beside this
# file so that both ``python examples/<name>.py`` and the tests' loader find it
_spec = importlib.util.spec_from_file_location(
    "_data", os.path.join(os.path.dirname(os.path.abspath(__file__)), "_data.py"))
_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_data)




def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train", type=int, default=10000, help="training digits")
    parser.add_argument("--test", type=int, default=10000, help="test digits")
    parser.add_argument("--code", type=int, default=30)
    parser.add_argument("--hidden", type=int, nargs="+", default=[512, 256, 128])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots", default=None, help="write PNGs to this directory")
    args = parser.parse_args(argv)

    x, x_test = _data.load_flat(args.train, args.test)
    pca_rec, pca_mse = _data.pca_baseline(x, x_test, args.code)

    fl.manual_seed(args.seed)
    ae = dense_autoencoder(784, args.code, hidden=tuple(args.hidden))
    ae.compile(optimizer=fl.optimizers.Adam(args.lr), loss="binary_crossentropy")
    start = time.perf_counter()
    history = ae.fit(x, x, epochs=args.epochs, batch_size=args.batch_size, verbose=2)
    seconds = time.perf_counter() - start
    ae_rec = ae.predict(x_test, batch_size=1000, verbose=0)
    ae_mse = float(np.mean((ae_rec - x_test) ** 2))
    print(f"test reconstruction MSE per pixel, {args.code}-number codes: deep autoencoder "
          f"{ae_mse:.5f}, PCA {pca_mse:.5f} (ratio {ae_mse / pca_mse:.2f}; {args.epochs} "
          f"epochs on {len(x)} digits, {seconds:.0f} s)")
    out = {"history": history.history, "ae_mse": ae_mse, "pca_mse": pca_mse}
    if args.plots:
        os.makedirs(args.plots, exist_ok=True)
        out["picture"] = _data.picture([x_test, ae_rec, pca_rec],
                                 os.path.join(args.plots, "autoencoder_vs_pca.png"))
        print("wrote", out["picture"], "(rows: test digits, autoencoder, PCA)")
    return out


if __name__ == "__main__":
    main()
