"""Hopfield networks: the measured storage capacity against 0.138 N, and completing images.

    python examples/hopfield.py [--sizes 100 200] [--trials 3] [--plots DIR]

Capacity: for N units and p random ±1 patterns stored by Hebb's rule, each stored pattern is
the start of an asynchronous recall; a pattern counts as recalled when the fixed point reached
differs from it in at most 1 % of the units (the criterion of the 0.138 N result of Amit,
Gutfreund & Sompolinsky, where recall keeps ~98.4 % of the bits right just below capacity).
The fraction recalled is plotted against the load p / N, with 0.138 marked. Completion: four
10 x 10 letters are stored (N = 100) and recalled from copies whose lower half is hidden
(replaced by random pixels).
"""
import argparse
import os

import numpy as np

from fundl.energy import Hopfield

LETTERS = {
    "H": ["#........#"] * 4 + ["##########"] * 2 + ["#........#"] * 4,
    "T": ["##########"] * 2 + ["....##...."] * 8,
    "L": ["##........"] * 8 + ["##########"] * 2,
    "X": ["#........#", ".#......#.", "..#....#..", "...#..#...", "....##....",
          "....##....", "...#..#...", "..#....#..", ".#......#.", "#........#"],
}


def letters():
    names = list(LETTERS)
    P = np.array([[1.0 if c == "#" else -1.0 for row in LETTERS[k] for c in row] for k in names])
    return names, P


def capacity_curve(n, loads, trials, seed, tolerance=0.01):
    """Fraction of stored patterns recalled (≤ tolerance of bits wrong) at each load p/N."""
    rng = np.random.default_rng(seed)
    out = []
    for load in loads:
        p = max(1, int(round(load * n)))
        good = []
        for _ in range(trials):
            P = rng.choice([-1.0, 1.0], size=(p, n))
            net = Hopfield(n).store(P)
            final = net.recall(P, max_steps=50, random_state=rng)
            good.append(((final != P).mean(axis=1) <= tolerance).mean())
        out.append(float(np.mean(good)))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 200])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--loads", type=int, default=14, help="points on the load axis")
    parser.add_argument("--completion-trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots", default=None, help="write PNGs into this folder")
    args = parser.parse_args(argv)

    loads = np.linspace(0.02, 0.26, args.loads)
    curves = {}
    for n in args.sizes:
        curves[n] = capacity_curve(n, loads, args.trials, args.seed)
        below = [f for a, f in zip(loads, curves[n]) if a <= 0.1]
        above = [f for a, f in zip(loads, curves[n]) if a >= 0.18]
        print(f"N={n}: recalled fraction at p/N <= 0.10: {min(below):.2f}-{max(below):.2f}; "
              f"at p/N >= 0.18: {min(above):.2f}-{max(above):.2f}")
        print("   p/N " + " ".join(f"{a:.3f}" for a in loads))
        print("   ok  " + " ".join(f"{f:.3f}" for f in curves[n]))

    names, P = letters()
    net = Hopfield(100).store(P)
    rng = np.random.default_rng(args.seed)
    recovered, bits = 0, []
    for trial in range(args.completion_trials):  # a fresh random lower half each time
        probes = P.copy()
        probes[:, 50:] = rng.choice([-1.0, 1.0], size=(len(P), 50))
        completed = net.recall(probes, random_state=rng)
        recovered += int((completed == P).all(axis=1).sum())
        bits.append((completed == P).mean())
    total = len(P) * args.completion_trials
    print(f"completion of half-hidden 10x10 letters {names}, {args.completion_trials} random "
          f"maskings each: {recovered}/{total} recovered exactly; bits right "
          f"{np.mean(bits):.3f} (probes: about 0.75)")
    result = {"loads": loads.tolist(), "curves": curves, "letters_recovered": recovered,
              "letters": total}

    if args.plots:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        os.makedirs(args.plots, exist_ok=True)
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        for n, curve in curves.items():
            ax.plot(loads, curve, "o-", label=f"N = {n}")
        ax.axvline(0.138, color="k", ls="--", label="0.138 (theory)")
        ax.set_xlabel("load p / N")
        ax.set_ylabel("fraction of patterns recalled (<= 1 % bits wrong)")
        ax.legend()
        ax.set_title("Hopfield network capacity")
        fig.tight_layout()
        fig.savefig(os.path.join(args.plots, "hopfield_capacity.png"), dpi=90)
        plt.close(fig)
        fig, axes = plt.subplots(3, len(P), figsize=(1.6 * len(P), 5))
        for j in range(len(P)):
            for i, (row, title) in enumerate([(P, "stored"), (probes, "probe"),
                                              (completed, "recalled")]):
                axes[i, j].imshow(row[j].reshape(10, 10), cmap="gray_r")
                axes[i, j].set_xticks([])
                axes[i, j].set_yticks([])
                if j == 0:
                    axes[i, j].set_ylabel(title)
        fig.tight_layout()
        fig.savefig(os.path.join(args.plots, "hopfield_completion.png"), dpi=90)
        plt.close(fig)
    return result


if __name__ == "__main__":
    main()
