"""k-means: the lecture's iteration picture on 2-D data, and MNIST clustered into 10 groups.

    FUNDL_DATA_DIR=../shared/data python examples/kmeans_mnist.py [--samples 60000] [--plots DIR]

Part 1 draws six snapshots (a)-(f) of Lloyd's algorithm on three 2-D blobs: the data, the
initial centres, then assignments and centre updates, until convergence. Part 2 clusters MNIST
digits (pixels / 255, float32) with fundl.cluster.KMeans (k = 10, k-means++, n_init restarts)
and reports the inertia, the time and the cluster purity (the share of images whose cluster's
majority label is their own label); with scikit-learn installed, its KMeans on the same data
for comparison.
"""
import argparse
import os
import time

import numpy as np

from fundl.cluster import KMeans


def purity(labels, y, k):
    """Σ over clusters of the largest class count, over n."""
    counts = np.zeros((k, int(y.max()) + 1), dtype=np.int64)
    np.add.at(counts, (labels, y), 1)
    return counts.max(axis=1).sum() / len(y)


def lloyd_snapshots(X, k, seed):
    """(centres, labels) after the init and each of the first few assignment/update steps."""
    rng = np.random.default_rng(seed)
    centres = X[rng.choice(len(X), k, replace=False)] + [0.0, 3.0]  # a poor start, to watch
    shots = [(centres.copy(), None)]
    for _ in range(20):
        km = KMeans(k, init=centres, n_init=1, max_iter=1, tol=0).fit(X)
        labels = km.predict(X)
        shots.append((centres.copy(), labels))
        new = km.cluster_centers_
        if np.allclose(new, centres):
            break
        centres = new
    shots.append((centres, KMeans(k, init=centres, n_init=1, max_iter=1).fit(X).predict(X)))
    return shots


def plot_iterations(X, shots, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = [0, 1, 2, 3, len(shots) - 2, len(shots) - 1][:len(shots)]
    fig, axes = plt.subplots(2, 3, figsize=(11, 7))
    for ax, i, letter in zip(axes.flat, picks, "abcdef"):
        centres, labels = shots[i]
        if labels is None:
            ax.scatter(X[:, 0], X[:, 1], s=6, c="0.6")
        else:
            ax.scatter(X[:, 0], X[:, 1], s=6, c=labels, cmap="brg")
        ax.scatter(centres[:, 0], centres[:, 1], marker="x", s=120, c="k", linewidths=3)
        ax.set_title(f"({letter}) " + ("data and initial centres" if labels is None
                                       else f"assignment {i}"))
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60000, help="MNIST training images")
    parser.add_argument("--n-init", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots", default=None, help="write PNGs into this folder")
    parser.add_argument("--no-sklearn", action="store_true", help="skip the comparison")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    blobs = np.concatenate([rng.normal(c, 0.6, (100, 2)) for c in ([0, 0], [4, 1], [1, 4])])
    shots = lloyd_snapshots(blobs, 3, args.seed)
    print(f"2-D blobs: Lloyd's algorithm converged after {len(shots) - 2} updates")
    if args.plots:
        os.makedirs(args.plots, exist_ok=True)
        plot_iterations(blobs, shots, os.path.join(args.plots, "kmeans_iterations.png"))

    from fundl.datasets import mnist

    (x, y), _ = mnist.load_data()
    X = x[:args.samples].reshape(-1, 784).astype(np.float32) / 255
    y = y[:args.samples].astype(np.int64)
    start = time.perf_counter()
    km = KMeans(10, n_init=args.n_init, random_state=args.seed).fit(X)
    elapsed = time.perf_counter() - start
    result = {"purity": purity(km.labels_, y, 10), "inertia": km.inertia_, "time": elapsed,
              "n_iter": km.n_iter_, "blob_updates": len(shots) - 2}
    print(f"MNIST {len(X)} x 784, k=10, n_init={args.n_init}: purity {result['purity']:.4f}, "
          f"inertia {km.inertia_:.6g}, {km.n_iter_} iterations, {elapsed:.1f} s (fundl)")
    if not args.no_sklearn:
        try:
            from sklearn.cluster import KMeans as SKKMeans
        except ImportError:
            SKKMeans = None
        if SKKMeans is not None:
            start = time.perf_counter()
            sk = SKKMeans(10, n_init=args.n_init, random_state=args.seed).fit(X)
            result["sklearn_purity"] = purity(sk.labels_, y, 10)
            result["sklearn_time"] = time.perf_counter() - start
            print(f"scikit-learn: purity {result['sklearn_purity']:.4f}, inertia "
                  f"{sk.inertia_:.6g}, {result['sklearn_time']:.1f} s")
    if args.plots:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 10, figsize=(12, 1.6))
        for ax, c in zip(axes, km.cluster_centers_):
            ax.imshow(c.reshape(28, 28), cmap="gray")
            ax.axis("off")
        fig.savefig(os.path.join(args.plots, "kmeans_mnist_centres.png"), dpi=90)
        plt.close(fig)
    return result


if __name__ == "__main__":
    main()
