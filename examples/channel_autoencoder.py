"""The learned physical layer: a communication system trained as an autoencoder over AWGN.

    python examples/channel_autoencoder.py [--systems 2,2 7,4] [--epochs 30] [--blocks 200000]
                                           [--plots DIR]

O'Shea & Hoydis (2017): ``k`` bits (one of M = 2**k messages) go one-hot into a transmitter
network that outputs ``n`` real channel symbols, ``EnergyNormalization`` gives every block
energy ``n`` (Es = 1 per real channel use, so Eb = n / k), the ``AWGN`` layer is the channel,
and a receiver network classifies the noisy block back into a message. Trained at one Eb/N0
(``fundl.zoo.channel_autoencoder``), then evaluated over a sweep by Monte Carlo: the block
error rate (BLER) from ``--blocks`` random messages per point (fewer once ``--errors`` errors
are counted, more never).

Baselines, computed exactly (no simulation):
- uncoded BPSK (QPSK for two bits per two uses): BLER = 1 - (1 - Q(sqrt(2 Eb/N0)))**k; for
  (n, k) = (2, 2) this is QPSK, the optimal 4-point constellation in 2 dimensions, so the
  autoencoder can only match it;
- Hamming (7,4) with hard decisions: each coded bit sees p = Q(sqrt(2 (4/7) Eb/N0)) and the
  decoder corrects one error: BLER = 1 - (1-p)**7 - 7 p (1-p)**6.
And, simulated on the same noise, Hamming (7,4) with maximum-likelihood (soft) decoding,
the best any (7,4) code of these 16 BPSK codewords can do.

The summary gives, at BLER 1e-3 (and 1e-4 where the sweep reaches it), the Eb/N0 each
system needs and the autoencoder's gap to the reference.
"""
import argparse
import math
import os
import time

import numpy as np

import fundl as fl
from fundl.layers import AWGN
from fundl.zoo import channel_autoencoder

DEFAULT_TRAIN_EBN0 = {(2, 2): 4.0, (7, 4): 6.0}   # the paper trained (7,4) at 7 dB


def q_function(x):
    """The Gaussian tail Q(x) = P(N(0,1) > x), exactly, for an array."""
    return 0.5 * np.array([math.erfc(v / math.sqrt(2.0)) for v in np.ravel(x)]).reshape(
        np.shape(x))


def uncoded_bler(ebn0_db, k):
    """BLER of k uncoded BPSK bits (QPSK for k = 2): 1 - (1 - Q(sqrt(2 Eb/N0)))**k."""
    p = q_function(np.sqrt(2 * 10 ** (np.asarray(ebn0_db) / 10)))
    return 1 - (1 - p) ** k


def hamming74_hard_bler(ebn0_db):
    """BLER of Hamming (7,4) on BPSK with hard decisions (corrects every single error)."""
    p = q_function(np.sqrt(2 * (4 / 7) * 10 ** (np.asarray(ebn0_db) / 10)))
    return 1 - (1 - p) ** 7 - 7 * p * (1 - p) ** 6


def hamming74_codewords():
    """The 16 codewords of Hamming (7,4) (systematic, G = [I | P]) as BPSK symbols +-1."""
    g = np.array([[1, 0, 0, 0, 1, 1, 0], [0, 1, 0, 0, 1, 0, 1], [0, 0, 1, 0, 0, 1, 1],
                  [0, 0, 0, 1, 1, 1, 1]])
    msgs = (np.arange(16)[:, None] >> np.arange(4)[::-1]) & 1
    return (2.0 * (msgs @ g % 2) - 1).astype("float32")


def required_ebn0(ebn0_db, bler, target):
    """The Eb/N0 where a BLER curve crosses ``target`` (log-linear interpolation), or nan."""
    bler = np.asarray(bler, dtype="float64")
    for i in range(len(bler) - 1):
        a, b = bler[i], bler[i + 1]
        if a >= target > b and b > 0:
            t = (math.log(a) - math.log(target)) / (math.log(a) - math.log(b))
            return ebn0_db[i] + t * (ebn0_db[i + 1] - ebn0_db[i])
    return float("nan")


def simulate(codewords, decide, ebn0_db, n, k, blocks, errors, rng, chunk=50000):
    """Monte-Carlo BLER of ``codewords`` (M, n) decided by ``decide(received) -> messages``.

    Returns ``(bler, simulated_blocks)`` per Eb/N0: blocks are drawn in chunks until
    ``errors`` block errors are counted or ``blocks`` blocks were sent.
    """
    out, sent = [], []
    m = len(codewords)
    for db in ebn0_db:
        sigma = AWGN.stddev_for(float(db), n, k)
        wrong = total = 0
        while total < blocks and wrong < errors:
            size = min(chunk, blocks - total)
            s = rng.integers(0, m, size)
            r = codewords[s] + rng.standard_normal((size, n)).astype("float32") * sigma
            wrong += int(np.sum(decide(r) != s))
            total += size
        out.append(wrong / total)
        sent.append(total)
    return np.array(out), np.array(sent)


def train_system(n, k, train_ebn0, epochs, messages, batch_size, lr, seed, verbose):
    fl.manual_seed(seed)
    m = 2 ** k
    model = channel_autoencoder(n, k, ebn0_db=train_ebn0)
    rng = np.random.default_rng(seed)
    s = rng.integers(0, m, messages)
    x = np.eye(m, dtype="float32")[s]
    # a learning-rate drop for the last third sharpens the constellation
    first = max(1, (2 * epochs) // 3)
    model.compile(optimizer=fl.optimizers.Adam(lr), loss="sparse_categorical_crossentropy")
    h1 = model.fit(x, s, epochs=first, batch_size=batch_size, verbose=verbose).history
    model.compile(optimizer=fl.optimizers.Adam(lr / 10), loss="sparse_categorical_crossentropy")
    h2 = model.fit(x, s, epochs=max(0, epochs - first), batch_size=batch_size,
                   verbose=verbose).history if epochs > first else {"loss": []}
    return model, h1["loss"] + h2["loss"]


def plot(results, directory):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(directory, exist_ok=True)
    paths = []
    for (n, k), r in results.items():
        fig, ax = plt.subplots(figsize=(5.5, 4))
        ebn0 = r["ebn0_db"]
        fine = np.linspace(ebn0[0], ebn0[-1], 200)
        ax.semilogy(fine, uncoded_bler(fine, k), "k-",
                    label="uncoded BPSK" if k != 2 or n != 2 else "uncoded QPSK (theory)")
        if (n, k) == (7, 4):
            ax.semilogy(fine, hamming74_hard_bler(fine), "b--", label="Hamming (7,4) hard")
            ax.semilogy(ebn0, np.where(r["hamming_mld"] > 0, r["hamming_mld"], np.nan), "bs:",
                        ms=4, label="Hamming (7,4) ML soft (sim.)")
        ax.semilogy(ebn0, np.where(r["autoencoder"] > 0, r["autoencoder"], np.nan), "ro",
                    label=f"autoencoder ({n},{k}) (sim.)")
        ax.set_xlabel("Eb/N0 [dB]")
        ax.set_ylabel("block error rate")
        ax.set_ylim(max(1e-6, 0.5 / r["blocks"].max()), 1)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(f"({n},{k}) over AWGN, trained at {r['train_ebn0']:g} dB")
        fig.tight_layout()
        path = os.path.join(directory, f"channel_ae_{n}_{k}.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
        # the learned constellation of (2,2)
        if n == 2:
            fig, ax = plt.subplots(figsize=(3, 3))
            c = r["codewords"]
            ax.scatter(c[:, 0], c[:, 1], c="r")
            for i, (a, b) in enumerate(c):
                ax.annotate(format(i, f"0{k}b"), (a, b), textcoords="offset points",
                            xytext=(4, 4))
            ax.set_aspect("equal")
            ax.set_xlim(-2, 2)
            ax.set_ylim(-2, 2)
            ax.grid(alpha=0.3)
            ax.set_title("learned constellation")
            fig.tight_layout()
            path = os.path.join(directory, f"channel_ae_{n}_{k}_constellation.png")
            fig.savefig(path, dpi=90)
            plt.close(fig)
            paths.append(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="+", default=["2,2", "7,4"],
                        help="(n,k) pairs as n,k")
    parser.add_argument("--train-ebn0", type=float, default=None,
                        help="training Eb/N0 in dB (default: 4 for (2,2), 6 for (7,4))")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--messages", type=int, default=20000, help="training messages/epoch")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--ebn0", type=float, nargs=3, default=[0.0, 10.0, 1.0],
                        metavar=("FROM", "TO", "STEP"), help="the evaluation sweep in dB")
    parser.add_argument("--blocks", type=int, default=200000,
                        help="at most this many blocks per Eb/N0 point")
    parser.add_argument("--errors", type=int, default=500,
                        help="stop a point after this many block errors")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots", default=None, help="write PNGs to this directory")
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args(argv)

    ebn0 = np.arange(args.ebn0[0], args.ebn0[1] + 1e-9, args.ebn0[2])
    results = {}
    for spec in args.systems:
        n, k = (int(v) for v in spec.split(","))
        train_ebn0 = args.train_ebn0 if args.train_ebn0 is not None else \
            DEFAULT_TRAIN_EBN0.get((n, k), 5.0)
        start = time.perf_counter()
        model, loss = train_system(n, k, train_ebn0, args.epochs, args.messages,
                                   args.batch_size, args.lr, args.seed, args.verbose)
        seconds = time.perf_counter() - start
        tx = model.get_layer("transmitter")
        rx = model.get_layer("receiver")
        codewords = tx.predict(np.eye(2 ** k, dtype="float32"), verbose=0)

        def decide(r, rx=rx):
            return np.argmax(rx.predict(r, batch_size=50000, verbose=0), axis=1)

        rng = np.random.default_rng(args.seed + 1)
        ae, sent = simulate(codewords, decide, ebn0, n, k, args.blocks, args.errors, rng)
        r = {"ebn0_db": ebn0, "autoencoder": ae, "blocks": sent, "train_ebn0": train_ebn0,
             "codewords": codewords, "loss": loss, "uncoded": uncoded_bler(ebn0, k)}
        print(f"\n({n},{k}): trained {args.epochs} epochs at Eb/N0 = {train_ebn0:g} dB in "
              f"{seconds:.0f} s, loss {loss[0]:.3f} -> {loss[-1]:.4f}; block energy "
              f"{np.mean((codewords ** 2).sum(1)):.3f} (n = {n})")
        header = "Eb/N0 dB | autoencoder BLER | blocks  | uncoded BPSK BLER"
        if (n, k) == (7, 4):
            cw = hamming74_codewords()

            def mld(rcv, cw=cw):     # nearest codeword = largest correlation (equal energies)
                return np.argmax(rcv @ cw.T, axis=1)

            r["hamming_hard"] = hamming74_hard_bler(ebn0)
            r["hamming_mld"], _ = simulate(cw, mld, ebn0, n, k, args.blocks, args.errors,
                                           np.random.default_rng(args.seed + 2))
            header += " | Hamming hard (theory) | Hamming ML soft (sim.)"
        print(header)
        for i, db in enumerate(ebn0):
            row = f"{db:8.1f} | {ae[i]:16.2e} | {sent[i]:7d} | {r['uncoded'][i]:17.2e}"
            if (n, k) == (7, 4):
                row += f" | {r['hamming_hard'][i]:21.2e} | {r['hamming_mld'][i]:22.2e}"
            print(row)
        fine = np.linspace(ebn0[0], ebn0[-1], 801)
        for target in (1e-3, 1e-4):
            need_ae = required_ebn0(ebn0, ae, target)
            ref_name, ref = (("uncoded QPSK", uncoded_bler(fine, k)) if (n, k) != (7, 4)
                             else ("Hamming hard", hamming74_hard_bler(fine)))
            need_ref = required_ebn0(fine, ref, target)
            r[f"gap_db_{target:g}"] = need_ae - need_ref
            print(f"BLER {target:g}: autoencoder needs {need_ae:.2f} dB, {ref_name} "
                  f"{need_ref:.2f} dB: autoencoder {need_ae - need_ref:+.2f} dB")
        results[(n, k)] = r
    if args.plots:
        for path in plot(results, args.plots):
            print("wrote", path)
    return results


if __name__ == "__main__":
    main()
