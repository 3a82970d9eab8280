"""Sequence regression: a GRU forecasts a noisy sine + sawtooth mix, plotted against the truth.

    python examples/sequence_regression.py [--epochs 20] [--plots DIR]

The signal is ``sin(2 pi t / 50) + 0.5 * sawtooth(t / 37)``, observed with Gaussian noise
(sigma 0.2). From the last 40 noisy observations the model predicts the next *clean* value,
so it has to denoise and extrapolate at once: GRU(32) -> Dense(1), mean squared error, Adam.
It is trained on the first 4,000 steps and tested on the 1,000 after them, against two naive
forecasts (the last noisy value; the mean of the last five). With ``--plots DIR`` it writes
the training curves and the forecasts against the truth on the first 200 test steps as PNGs
(matplotlib); without, it prints the same comparison as a text chart. ``--train N`` trains on
the first N windows only (a quick run). README has the measured errors.
"""
import argparse
import importlib.util
import os

import numpy as np

import fundl as fl
from fundl.layers import GRU, Dense
from fundl.models import Sequential

WINDOW, TRAIN, TEST, NOISE = 40, 4000, 1000, 0.2


def clean_signal(t):
    saw = 2 * (t / 37 - np.floor(t / 37 + 0.5))  # sawtooth in [-1, 1), period 37
    return np.sin(2 * np.pi * t / 50) + 0.5 * saw


def make_windows(noisy, clean):
    """Inputs (n, WINDOW, 1) of noisy values; targets (n, 1): the clean value that follows."""
    idx = np.arange(len(noisy) - WINDOW)[:, None] + np.arange(WINDOW)
    return noisy[idx][..., None].astype(np.float32), clean[WINDOW:, None].astype(np.float32)


def text_chart(truth, pred, noisy, width=100, height=21):
    """A character plot: '.' noisy observations, '-' truth, 'o' prediction ('*' where they meet)."""
    lo = min(truth.min(), pred.min(), noisy.min())
    hi = max(truth.max(), pred.max(), noisy.max())
    grid = [[" "] * width for _ in range(height)]

    def row(v):
        return height - 1 - int(round((v - lo) / (hi - lo) * (height - 1)))

    for x in range(width):
        grid[row(noisy[x])][x] = "."
        grid[row(truth[x])][x] = "-"
        r = row(pred[x])
        grid[r][x] = "*" if grid[r][x] == "-" else "o"
    lines = ["".join(r) for r in grid]
    lines[0] += f"  {hi:+.2f}"
    lines[-1] += f"  {lo:+.2f}"
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--train", type=int, default=TRAIN,
                        help="training windows (the first N of the 4,000; a quick run)")
    parser.add_argument("--plots", default=None, help="write PNG pictures to this directory")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    fl.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    t = np.arange(TRAIN + TEST + WINDOW, dtype=np.float64)
    clean = clean_signal(t)
    noisy = clean + rng.normal(0, NOISE, t.shape)
    x, y = make_windows(noisy, clean)
    x_train, y_train = x[:min(args.train, TRAIN)], y[:min(args.train, TRAIN)]
    x_test, y_test = x[TRAIN:], y[TRAIN:]

    model = Sequential([GRU(args.units, input_shape=(WINDOW, 1)), Dense(1)])
    model.compile(optimizer=fl.optimizers.Adam(3e-3), loss="mse")
    history = model.fit(x_train, y_train, batch_size=32, epochs=args.epochs, verbose=2,
                        validation_data=(x_test, y_test))
    pred = model.predict(x_test, batch_size=500)[:, 0]
    truth = y_test[:, 0]
    last = x_test[:, -1, 0]
    mean5 = x_test[:, -5:, 0].mean(axis=1)
    print(f"\nTest MSE against the clean signal (noise variance is {NOISE ** 2:.3f}):")
    print(f"  GRU forecast            {np.mean((pred - truth) ** 2):.4f}")
    print(f"  last noisy value        {np.mean((last - truth) ** 2):.4f}")
    print(f"  mean of the last five   {np.mean((mean5 - truth) ** 2):.4f}")

    observed = noisy[TRAIN + WINDOW:]  # the noisy value at each forecast's own step
    mse = float(np.mean((pred - truth) ** 2))
    if not args.plots:
        print("\nThe first 100 test steps ('.' noisy, '-' truth, 'o' GRU, '*' both; "
              "--plots DIR for PNGs)\n")
        print(text_chart(truth[:100], pred[:100], observed[:100]))
        return mse
    plots = _plots()
    paths = [plots.path(args.plots, "sequence_regression_history.png"),
             plots.path(args.plots, "sequence_regression_forecast.png")]
    fl.viz.plot_history(history, to_file=paths[0])
    span = slice(0, 200)
    steps = t[TRAIN + WINDOW:][span]
    fig = plots.figure((10, 4))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(steps, observed[span], ".", color="0.7", label="noisy observations")
    ax.plot(steps, truth[span], "-", color="k", label="clean signal")
    ax.plot(steps, pred[span], "-", color="tab:red", label="GRU one-step forecast")
    ax.set_xlabel("t")
    ax.set_title(f"the first {len(steps)} of {len(truth)} test steps; test MSE over all of them: "
                 f"GRU {mse:.4f}, last noisy value {np.mean((last - truth) ** 2):.4f}",
                 fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    plots.save_figure(fig, paths[1])
    for path in paths:
        print(f"wrote {path}")
    return mse


def _plots():
    """examples/_plots.py (shared picture helpers), found beside this file."""
    spec = importlib.util.spec_from_file_location(
        "_plots", os.path.join(os.path.dirname(os.path.abspath(__file__)), "_plots.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

if __name__ == "__main__":
    main()
