"""Rosenblatt's perceptron: the decision line epoch by epoch, and why XOR defeats it.

    python examples/perceptron.py [--samples 100] [--plots DIR]

Trains fundl.classic.Perceptron one epoch at a time (partial_fit) on linearly separable 2-D
data until an epoch makes no mistake, and draws the decision line after each epoch; then
trains it on XOR, where no line separates the classes: the mistakes never reach zero and fit
ends with a ConvergenceWarning after max_iter epochs.
"""
import argparse
import os
import warnings

import numpy as np

from fundl.classic import Perceptron
from fundl.cluster import ConvergenceWarning


def separable(n, seed, margin=0.15):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (4 * n, 2))
    score = X @ np.array([1.0, -1.5]) + 0.2
    keep = np.abs(score) > margin
    X, score = X[keep][:n], score[keep][:n]
    return X, (score > 0).astype(int)


def plot(X, y, lines, xor_mistakes, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.8))
    ax.scatter(*X[y == 0].T, marker="o", c="tab:blue", label="class 0")
    ax.scatter(*X[y == 1].T, marker="s", c="tab:red", label="class 1")
    xs = np.array([-1.0, 1.0])
    colours = plt.cm.viridis(np.linspace(0, 1, len(lines)))
    for epoch, ((w, b), colour) in enumerate(zip(lines, colours), 1):
        if abs(w[1]) > 1e-12:
            ax.plot(xs, -(w[0] * xs + b) / w[1], color=colour, lw=2 if epoch == len(lines)
                    else 1, label=f"epoch {epoch}")
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    ax.set_title("decision line after each epoch")
    ax.legend(fontsize=7, loc="lower right")
    ax2.plot(range(1, len(xor_mistakes) + 1), xor_mistakes)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("mistakes in the epoch (of 4)")
    ax2.set_title("XOR: never an epoch without mistakes")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots", default=None, help="write PNGs into this folder")
    args = parser.parse_args(argv)

    X, y = separable(args.samples, args.seed)
    p = Perceptron(random_state=args.seed)
    lines = []
    for epoch in range(args.max_epochs):
        p.partial_fit(X, y, classes=[0, 1])
        lines.append((p.coef_[0].copy(), float(p.intercept_[0])))
        print(f"epoch {epoch + 1}: {p.mistakes_[-1]} mistakes, w = {np.round(p.coef_[0], 3)}, "
              f"b = {p.intercept_[0]:.3f}")
        if p.mistakes_[-1] == 0:
            break
    result = {"separable_epochs": p.n_iter_, "separable_accuracy": p.score(X, y)}
    print(f"separable data: converged after {p.n_iter_} epochs, training accuracy "
          f"{result['separable_accuracy']:.3f}")

    X_xor = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
    y_xor = np.array([0, 1, 1, 0])
    xor = Perceptron(max_iter=args.max_epochs, random_state=args.seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        xor.fit(X_xor, y_xor)
    result.update(xor_min_mistakes=min(xor.mistakes_), xor_accuracy=xor.score(X_xor, y_xor),
                  xor_warned=any(issubclass(w.category, ConvergenceWarning) for w in caught))
    print(f"XOR: {xor.n_iter_} epochs, fewest mistakes in an epoch {min(xor.mistakes_)}, "
          f"accuracy {result['xor_accuracy']:.2f}, ConvergenceWarning: {result['xor_warned']}")
    if args.plots:
        os.makedirs(args.plots, exist_ok=True)
        plot(X, y, lines, xor.mistakes_, os.path.join(args.plots, "perceptron_epochs.png"))
    return result


if __name__ == "__main__":
    main()
