"""A Boltzmann machine with hidden units learns bars and stripes (3 x 3), and its exact
log-likelihood rises.

    python examples/boltzmann_machine.py [--epochs 60] [--hidden 4] [--plots DIR]

The 14 bars-and-stripes patterns of a 3 x 3 grid (each row all on or all off, or each column)
are the data; fundl.energy.BoltzmannMachine (9 visible + --hidden hidden units, fully connected)
learns from the clamped and free Gibbs phases. With at most 20 units the log-likelihood is
computed exactly by enumerating every state; the example prints it per epoch block against
the uniform distribution (-9 log 2) and the best possible (-log 14), and the share of model
samples that are valid bars-and-stripes patterns.
"""
import argparse
import itertools
import os

import numpy as np

from fundl.energy import BoltzmannMachine


def bars_and_stripes(n=3):
    patterns = set()
    for bits in itertools.product((0, 1), repeat=n):
        rows = np.repeat(np.array(bits)[:, None], n, axis=1)
        patterns.add(tuple(rows.ravel()))
        patterns.add(tuple(rows.T.ravel()))
    return np.array(sorted(patterns), dtype=float)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--block", type=int, default=10, help="epochs between measurements")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots", default=None, help="write PNGs into this folder")
    args = parser.parse_args(argv)

    data = bars_and_stripes()
    X = np.repeat(data, 5, axis=0)  # 70 training vectors
    # n_iter=0: fit only draws the small random starting weights; then one epoch at a time
    bm = BoltzmannMachine(9, args.hidden, learning_rate=args.learning_rate, k=5, n_iter=0,
                          random_state=args.seed).fit(X)
    curve = []
    for epoch in range(args.epochs + 1):
        if epoch:
            bm.partial_fit(X)
        if epoch % args.block == 0:
            curve.append((epoch, float(bm.log_likelihood(data).mean())))
            print(f"epoch {epoch:3d}: exact mean log-likelihood {curve[-1][1]:.3f}")
    samples = bm.sample(500, n_sweeps=50, random_state=args.seed)
    valid = {tuple(p) for p in data}
    share = float(np.mean([tuple(s) in valid for s in samples]))
    print(f"uniform: {-9 * np.log(2):.3f}; best possible: {-np.log(len(data)):.3f}; "
          f"samples that are bars or stripes: {share:.2f} (uniform: {len(data) / 512:.3f})")
    result = {"curve": curve, "valid_share": share}
    if args.plots:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        os.makedirs(args.plots, exist_ok=True)
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(*zip(*curve), "o-", label="Boltzmann machine")
        ax.axhline(-9 * np.log(2), color="gray", ls=":", label="uniform")
        ax.axhline(-np.log(len(data)), color="k", ls="--", label="best possible")
        ax.set_xlabel("epochs")
        ax.set_ylabel("exact mean log-likelihood")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(args.plots, "boltzmann_loglik.png"), dpi=90)
        plt.close(fig)
    return result


if __name__ == "__main__":
    main()
