"""RBF networks: the classic two-stage training against end-to-end backpropagation.

    python examples/rbf_network.py [--centers 20] [--epochs 100] [--plots DIR]

Two problems: the two moons (2-D classification, fundl.datasets.synthetic.moons) and a 1-D
regression of sin(x) with noise. For each, (1) fundl.classic.RBFNetwork: k-means centres, one
width from the centres' spacing, output weights by linear least squares (no gradient descent);
(2) Sequential([RBF.from_kmeans(...), Dense(...)]) trained end to end with Adam, centres and
widths included. Reports test accuracy and test MSE.
"""
import argparse
import os

import numpy as np

import fundl as fl
from fundl.classic import RBFNetwork
from fundl.cluster import KMeans
from fundl.datasets.synthetic import moons
from fundl.layers import RBF, Dense
from fundl.models import Sequential
from fundl.optimizers import Adam


def sine(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 2 * np.pi, (n, 1)).astype(np.float32)
    return x, (np.sin(x[:, 0]) + 0.1 * rng.standard_normal(n)).astype(np.float32)


def backprop_net(x, centers, outputs, activation, seed):
    km = KMeans(centers, n_init=3, random_state=seed).fit(x)
    model = Sequential([RBF.from_kmeans(km, trainable_gamma=True),
                        Dense(outputs, activation=activation)])
    loss = "sparse_categorical_crossentropy" if activation == "softmax" else "mse"
    model.compile(optimizer=Adam(learning_rate=0.02), loss=loss)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--centers", type=int, default=20)
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots", default=None, help="write PNGs into this folder")
    args = parser.parse_args(argv)
    fl.manual_seed(args.seed)
    result = {}

    x, y = moons(args.samples, noise=0.15, seed=args.seed)
    xt, yt = moons(1000, noise=0.15, seed=args.seed + 1)
    two_stage = RBFNetwork(args.centers, random_state=args.seed).fit(x, y)
    result["moons_two_stage_accuracy"] = two_stage.score(xt, yt)
    model = backprop_net(x, args.centers, 2, "softmax", args.seed)
    h = model.fit(x, y, epochs=args.epochs, batch_size=32, verbose=0)
    result["moons_backprop_loss"] = h.history["loss"]
    result["moons_backprop_accuracy"] = float((model.predict(xt).argmax(1) == yt).mean())
    print(f"moons, {args.centers} centres: two-stage (k-means + least squares) test accuracy "
          f"{result['moons_two_stage_accuracy']:.3f}; end-to-end backprop "
          f"{result['moons_backprop_accuracy']:.3f}")

    xs, ys = sine(args.samples, args.seed)
    xst, yst = sine(1000, args.seed + 1)
    reg = RBFNetwork(args.centers // 2, random_state=args.seed).fit(xs, ys.astype(np.float64))
    result["sine_two_stage_mse"] = float(np.mean((reg.predict(xst) - np.sin(xst[:, 0])) ** 2))
    reg_model = backprop_net(xs, args.centers // 2, 1, None, args.seed)
    h = reg_model.fit(xs, ys[:, None], epochs=args.epochs, batch_size=32, verbose=0)
    result["sine_backprop_loss"] = h.history["loss"]
    pred = reg_model.predict(xst)[:, 0]
    result["sine_backprop_mse"] = float(np.mean((pred - np.sin(xst[:, 0])) ** 2))
    print(f"sin(x) + noise (sd 0.1), {args.centers // 2} centres: test MSE against sin(x): "
          f"two-stage {result['sine_two_stage_mse']:.4f}, backprop "
          f"{result['sine_backprop_mse']:.4f}")

    if args.plots:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        os.makedirs(args.plots, exist_ok=True)
        fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.5))
        gx, gy = np.meshgrid(np.linspace(-1.5, 2.5, 200), np.linspace(-1, 1.5, 150))
        grid = np.c_[gx.ravel(), gy.ravel()]
        a.contourf(gx, gy, two_stage.predict(grid).reshape(gx.shape), alpha=0.3, cmap="coolwarm")
        a.scatter(*x.T, c=y, s=8, cmap="coolwarm")
        a.scatter(*two_stage.centers_.T, marker="x", c="k", s=50)
        a.set_title(f"two-stage RBF network, test acc. {result['moons_two_stage_accuracy']:.3f}")
        order = np.argsort(xst[:, 0])
        b.scatter(xs[:, 0], ys, s=5, c="0.6", label="training data")
        b.plot(xst[order, 0], reg.predict(xst)[order], label="two-stage")
        b.plot(xst[order, 0], pred[order], "--", label="backprop")
        b.legend()
        b.set_title("sin(x) regression")
        fig.tight_layout()
        fig.savefig(os.path.join(args.plots, "rbf_network.png"), dpi=90)
        plt.close(fig)
    return result


if __name__ == "__main__":
    main()
