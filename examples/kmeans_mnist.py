"""k-means: the (a)-(f) Lloyd iterations on 2-D points, and clusters of MNIST digits (purity).

    python examples/kmeans_mnist.py [--train 10000] [--plots DIR]

``fundl.cluster.KMeans`` (k-means++ seeding, Lloyd iterations, ``n_init`` restarts). Two
parts:

1. The picture of the textbook figure (Bishop, PRML fig. 9.1): 2-D points from two blobs,
   (a) the data and two initial centres, then alternating assignment steps (points coloured
   by their nearest centre) and update steps (centres moved to the means), up to (f).
   Each step is one ``KMeans(init=centres, n_init=1, max_iter=1)`` from the previous centres.
2. MNIST: k-means with k = 10 on the raw pixels of ``--train`` digits; the clusters are
   compared with the labels by purity, ``sum_k max_c |cluster k with label c| / n`` (the
   share of digits that carry their cluster's majority label), on the training digits and
   on test digits assigned with ``predict``. With ``--plots DIR`` the cluster centres are
   drawn as images.
"""
import argparse
import os
import time
import warnings

import numpy as np

from fundl.cluster import KMeans


def purity(labels, clusters):
    """Share of samples whose label is their cluster's majority label."""
    total = 0
    for k in np.unique(clusters):
        total += np.bincount(labels[clusters == k]).max()
    return total / len(labels)


def lloyd_steps(x, centres, steps):
    """The centres and assignments after each assignment/update step, from ``centres``."""
    history = [(centres.copy(), None)]
    for _ in range(steps):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # one iteration never "converges"
            km = KMeans(n_clusters=len(centres), init=centres, n_init=1, max_iter=1).fit(x)
        assign = np.argmin(((x[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
        history.append((centres.copy(), assign))           # assignment step (E)
        centres = km.cluster_centers_
        history.append((centres.copy(), assign))           # update step (M)
    return history


def lloyd_picture(x, history, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = np.array(["tab:red", "tab:blue", "tab:green", "tab:orange"])
    panels = history[:6]
    fig, axes = plt.subplots(2, 3, figsize=(9, 6))
    for i, (ax, (centres, assign)) in enumerate(zip(axes.ravel(), panels)):
        if assign is None:
            ax.scatter(x[:, 0], x[:, 1], s=6, c="tab:gray")
        else:
            ax.scatter(x[:, 0], x[:, 1], s=6, c=colours[assign % len(colours)], alpha=0.6)
        ax.scatter(centres[:, 0], centres[:, 1], s=160, marker="X",
                   c=colours[:len(centres)], edgecolors="k")
        step = "data and initial centres" if i == 0 else (
            "assign to nearest centre" if i % 2 == 1 else "move centres to the means")
        ax.set_title(f"({'abcdef'[i]}) {step}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=10000, help="MNIST digits to cluster")
    parser.add_argument("--test", type=int, default=10000)
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--n-init", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots", default=None, help="write PNGs to this directory")
    args = parser.parse_args(argv)

    # 1. Lloyd's iterations on 2-D points, two clusters as in the textbook figure
    rng = np.random.default_rng(args.seed)
    blobs = np.concatenate([rng.normal((-1.5, 1.0), 0.45, (100, 2)),
                            rng.normal((1.5, -1.0), 0.45, (100, 2))])
    history = lloyd_steps(blobs, np.array([[-2.0, -2.0], [2.0, 2.0]]), steps=3)

    # 2. MNIST
    from fundl.datasets import mnist

    (x, y), (xt, yt) = mnist.load_data()
    x = x[:args.train].reshape(-1, 784).astype("float32") / 255
    y = y[:args.train]
    xt = xt[:args.test].reshape(-1, 784).astype("float32") / 255
    yt = yt[:args.test]
    start = time.perf_counter()
    km = KMeans(n_clusters=args.clusters, n_init=args.n_init, random_state=args.seed).fit(x)
    seconds = time.perf_counter() - start
    train_purity = purity(y, km.labels_)
    test_purity = purity(yt, km.predict(xt))
    print(f"k-means, k = {args.clusters}, on {len(x)} MNIST digits ({args.n_init} restarts, "
          f"{km.n_iter_} iterations, {seconds:.1f} s): inertia {km.inertia_:.4g}; purity "
          f"{train_purity:.3f} (train), {test_purity:.3f} (test digits assigned by predict)")
    out = {"purity": train_purity, "test_purity": test_purity, "lloyd": history}
    if args.plots:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        os.makedirs(args.plots, exist_ok=True)
        out["pictures"] = [lloyd_picture(blobs, history,
                                         os.path.join(args.plots, "kmeans_lloyd.png"))]
        grid = np.ones((29 - 1, args.clusters * 29 - 1))
        for k, c in enumerate(km.cluster_centers_):
            grid[:, k * 29:k * 29 + 28] = c.reshape(28, 28)
        path = os.path.join(args.plots, "kmeans_mnist_centres.png")
        plt.imsave(path, np.kron(grid, np.ones((2, 2))), cmap="gray", vmin=0, vmax=1)
        out["pictures"].append(path)
        for p in out["pictures"]:
            print("wrote", p)
    return out


if __name__ == "__main__":
    main()
