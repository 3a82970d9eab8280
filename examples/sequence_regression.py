"""Sequence regression: a GRU forecasts a noisy sine + sawtooth mix, plotted against the truth.

    python examples/sequence_regression.py [--epochs 20] [--plot out.png]

The signal is ``sin(2 pi t / 50) + 0.5 * sawtooth(t / 37)``, observed with Gaussian noise
(sigma 0.2). From the last 40 noisy observations the model predicts the next *clean* value,
so it has to denoise and extrapolate at once: GRU(32) -> Dense(1), mean squared error, Adam.
It is trained on the first 4,000 steps and tested on the 1,000 after them, against two naive
forecasts (the last noisy value; the mean of the last five). With matplotlib installed it
saves a PNG of predictions against the truth (``--plot``); without, it prints the same
comparison as a text chart. README has the measured errors.
"""
import argparse

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--plot", default="sequence_regression.png",
                        help="PNG file to write when matplotlib is installed")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    fl.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    t = np.arange(TRAIN + TEST + WINDOW, dtype=np.float64)
    clean = clean_signal(t)
    noisy = clean + rng.normal(0, NOISE, t.shape)
    x, y = make_windows(noisy, clean)
    x_train, y_train = x[:TRAIN], y[:TRAIN]
    x_test, y_test = x[TRAIN:], y[TRAIN:]

    model = Sequential([GRU(args.units, input_shape=(WINDOW, 1)), Dense(1)])
    model.compile(optimizer=fl.optimizers.Adam(3e-3), loss="mse")
    model.fit(x_train, y_train, batch_size=32, epochs=args.epochs, verbose=2,
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
    span = slice(0, 200)
    steps = t[TRAIN + WINDOW:][span]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\nmatplotlib is not installed: the first 100 test steps as text "
              "('.' noisy, '-' truth, 'o' GRU, '*' both)\n")
        print(text_chart(truth[:100], pred[:100], observed[:100]))
        return
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(steps, observed[span], ".", color="0.7", label="noisy observations")
    ax.plot(steps, truth[span], "-", color="k", label="clean signal")
    ax.plot(steps, pred[span], "-", color="tab:red", label="GRU one-step forecast")
    ax.set_xlabel("t")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"\nplot saved to {args.plot}")


if __name__ == "__main__":
    main()
