"""A character-level language model: an LSTM learns to write like Poe, Carroll and Shakespeare.

    python examples/char_lm.py [--epochs 80] [--temperature 0.5 1.0] [--length 400] [--plots DIR]

Trained on ``examples/data/poems.txt`` (17 KB of public-domain verse; sources in
``examples/data/README.md``): Embedding -> LSTM(256, return_sequences=True) -> Dense(vocab),
predicting every next character of random 64-character windows (sparse categorical
cross-entropy from logits, Adam). Then it writes new text one character at a time by driving
the LSTM's *cell* directly: the state (h, c) is carried from one character to the next, the
model's scores for the next character are divided by a temperature (low: safe and
repetitive, high: adventurous and misspelt) and sampled. README has a measured sample.
With ``--plots DIR`` it writes the training loss and perplexity per epoch as a PNG.
"""
import argparse
import os
import time

import numpy as np

import fundl as fl
from fundl.layers import LSTM, Dense, Embedding
from fundl.losses import SparseCategoricalCrossentropy
from fundl.models import Sequential

TEXT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "poems.txt")


def windows(codes, length, count, rng):
    """``count`` random windows: inputs codes[i:i+length], targets codes[i+1:i+length+1]."""
    starts = rng.integers(0, len(codes) - length - 1, count)
    idx = starts[:, None] + np.arange(length)
    return codes[idx], codes[idx + 1]


def sample(model, seed, length, temperature, rng, chars, index):
    """Generate ``length`` characters after ``seed``, one step of the LSTM cell at a time."""
    embedding, lstm, head = model.layers
    cell = lstm.cell
    states = cell.get_initial_state(1)
    out = []
    with fl.no_grad():
        h = None
        for ch in seed:  # read the seed: this only sets the state
            h, states = cell(embedding(np.array([[index[ch]]]))[:, 0], states)
        for _ in range(length):
            logits = head(h).numpy()[0].astype(np.float64) / temperature
            p = np.exp(logits - logits.max())
            k = rng.choice(len(chars), p=p / p.sum())
            out.append(chars[k])
            h, states = cell(embedding(np.array([[k]]))[:, 0], states)
    return seed + "".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--windows", type=int, default=1024, help="random windows per epoch")
    parser.add_argument("--seq-length", type=int, default=64)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--temperature", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--length", type=int, default=400, help="characters to generate")
    parser.add_argument("--seed-text", default="Once upon a ")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots", default=None, help="write PNG pictures to this directory")
    args = parser.parse_args(argv)
    fl.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    with open(TEXT, encoding="utf-8") as f:
        text = f.read()
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    codes = np.array([index[c] for c in text], dtype=np.int64)
    vocab = len(chars)
    print(f"{len(text)} characters, {vocab} distinct")

    model = Sequential([
        Embedding(vocab, 32, input_shape=(None,)),
        LSTM(args.units, return_sequences=True),
        Dense(vocab),  # logits for every step: Dense acts on the last axis
    ])
    model.summary()
    model.compile(optimizer=fl.optimizers.Adam(2e-3, clipnorm=1.0),
                  loss=SparseCategoricalCrossentropy(from_logits=True))
    start = time.perf_counter()
    curves = {"loss": [], "perplexity": []}
    for epoch in range(args.epochs):
        x, y = windows(codes, args.seq_length, args.windows, rng)
        history = model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)
        loss = history.history["loss"][-1]
        curves["loss"].append(loss)
        curves["perplexity"].append(float(np.exp(loss)))
        print(f"epoch {epoch + 1}/{args.epochs}  loss {loss:.3f}  "
              f"({np.exp(loss):.2f} perplexity, {time.perf_counter() - start:.0f} s)")
        if (epoch + 1) % 10 == 0 and epoch + 1 < args.epochs:
            print("   ", sample(model, args.seed_text, 80, 0.5, rng, chars, index)
                  .replace("\n", " / "))
    for t in args.temperature:
        print(f"\n--- temperature {t} ---")
        print(sample(model, args.seed_text, args.length, t, rng, chars, index))
    if args.plots:
        path = os.path.join(args.plots, "char_lm_history.png")
        fl.viz.plot_history(curves, to_file=path)
        print(f"\nwrote {path}")
    return curves


if __name__ == "__main__":
    main()
