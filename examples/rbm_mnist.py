"""A restricted Boltzmann machine on binarised MNIST, and its filters as a picture.

    FUNDL_DATA_DIR=../shared/data python examples/rbm_mnist.py [--samples 10000] [--n-iter 10]
        [--plots DIR]

Trains fundl.energy.RBM (256 hidden units, PCD-1, learning rate 0.1, batch 10: scikit-learn's
BernoulliRBM defaults) on the first --samples training images (pixels > 127), reports the
exact pseudo-likelihood of held-out test images before and after training, and draws the
first 100 filters (rows of components_ as 28 x 28 images) and a few Gibbs chains' samples.
"""
import argparse
import os
import time

import numpy as np

from fundl.datasets import mnist
from fundl.energy import RBM


def binarise(x):
    return (x.reshape(len(x), -1) > 127).astype(np.float32)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--components", type=int, default=256)
    parser.add_argument("--n-iter", type=int, default=10)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots", default=None, help="write PNGs into this folder")
    args = parser.parse_args(argv)

    (x, _), (xt, _) = mnist.load_data()
    X, Xt = binarise(x[:args.samples]), binarise(xt[:args.test])
    rbm = RBM(args.components, learning_rate=args.learning_rate, n_iter=1,
              random_state=args.seed).partial_fit(X[:10])
    before = float(rbm.pseudo_likelihood(Xt).mean())
    rbm = RBM(args.components, learning_rate=args.learning_rate, n_iter=args.n_iter,
              random_state=args.seed, verbose=1)
    start = time.perf_counter()
    rbm.fit(X)
    elapsed = time.perf_counter() - start
    after = float(rbm.pseudo_likelihood(Xt).mean())
    print(f"RBM {args.components} hidden, {args.n_iter} epochs on {len(X)} images: "
          f"{elapsed:.1f} s; held-out pseudo-likelihood {before:.2f} (untrained) -> "
          f"{after:.2f}")
    result = {"pl_before": before, "pl_after": after, "time": elapsed}
    if args.plots:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        os.makedirs(args.plots, exist_ok=True)
        n = min(100, args.components)
        side = int(np.ceil(np.sqrt(n)))
        fig, axes = plt.subplots(side, side, figsize=(side * 0.9, side * 0.9))
        for ax in axes.flat:
            ax.axis("off")
        for ax, w in zip(axes.flat, rbm.components_[:n]):
            ax.imshow(w.reshape(28, 28), cmap="gray")
        fig.suptitle("RBM filters (rows of components_)")
        fig.savefig(os.path.join(args.plots, "rbm_filters.png"), dpi=90)
        plt.close(fig)
        v = Xt[:10].copy()
        rows = [v]
        for _ in range(5):
            for _ in range(200):
                v = rbm.gibbs(v)
            rows.append(v)
        fig, axes = plt.subplots(len(rows), 10, figsize=(9, len(rows) * 0.95))
        for i, row in enumerate(rows):
            for j in range(10):
                axes[i, j].imshow(row[j].reshape(28, 28), cmap="gray")
                axes[i, j].axis("off")
        fig.suptitle("Gibbs chains from test digits (every 200 steps)")
        fig.savefig(os.path.join(args.plots, "rbm_gibbs.png"), dpi=90)
        plt.close(fig)
    return result


if __name__ == "__main__":
    main()
