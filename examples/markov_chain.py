"""Markov chains: stationary distribution, n-step transitions, sampling, and Gibbs sampling as
a Markov chain whose stationary distribution is the Boltzmann distribution.

    python examples/markov_chain.py [--steps 20000] [--plots DIR]

Part 1, a three-state weather chain: the stationary distribution (solved), the rows of P^k
converging to it, and the state frequencies of one long sampled trajectory. Part 2, a tiny
Boltzmann machine (3 visible + 2 hidden units): its random-scan Gibbs sampler written out as a
32 x 32 transition matrix; the chain's stationary distribution equals the Boltzmann
distribution exp(-E(s)) / Z, and long Gibbs runs visit states with those frequencies.
"""
import argparse
import os

import numpy as np

from fundl.energy import BoltzmannMachine, MarkovChain

WEATHER = [[0.7, 0.2, 0.1],   # sunny -> sunny, cloudy, rainy
           [0.3, 0.4, 0.3],   # cloudy
           [0.2, 0.4, 0.4]]   # rainy


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots", default=None, help="write PNGs into this folder")
    args = parser.parse_args(argv)

    chain = MarkovChain(WEATHER, states=["sunny", "cloudy", "rainy"])
    pi = chain.stationary()
    path = chain.sample(args.steps, "rainy", random_state=args.seed)
    freq = np.array([(path == s).mean() for s in chain.states])
    gaps = [float(np.abs(chain.n_step(k) - pi).max()) for k in range(1, 16)]
    print(f"weather chain: stationary {np.round(pi, 4)}; sampled frequencies over "
          f"{args.steps} steps {np.round(freq, 4)}; max |P^k - pi| for k=1,5,10: "
          f"{gaps[0]:.3g}, {gaps[4]:.3g}, {gaps[9]:.3g}")

    rng = np.random.default_rng(args.seed)
    X = (rng.random((40, 3)) < [0.9, 0.5, 0.1]).astype(float)
    bm = BoltzmannMachine(3, 2, n_iter=20, random_state=args.seed).fit(X)
    T = bm.transition_matrix()
    boltzmann = bm.state_probabilities()
    stationary = MarkovChain(T).stationary()
    # sample the Gibbs chain itself (one unit per step) and count the visited states
    walk = MarkovChain(T).sample(args.steps * 5, 0, random_state=args.seed)
    visited = np.bincount(walk, minlength=len(boltzmann)) / len(walk)
    tv = 0.5 * np.abs(visited - boltzmann).sum()
    print(f"Boltzmann machine (5 units, 32 states): max |stationary - Boltzmann| = "
          f"{np.abs(stationary - boltzmann).max():.2e}; total variation between "
          f"{len(walk) - 1} Gibbs steps' visits and the Boltzmann distribution {tv:.4f}")
    result = {"pi": pi, "freq": freq, "gaps": gaps,
              "bm_stationary_error": float(np.abs(stationary - boltzmann).max()),
              "gibbs_tv": float(tv)}
    if args.plots:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        os.makedirs(args.plots, exist_ok=True)
        fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
        a.semilogy(range(1, 16), gaps, "o-")
        a.set_xlabel("k")
        a.set_ylabel("max |P^k - pi|")
        a.set_title("n-step transitions converge to the stationary distribution")
        idx = np.arange(len(boltzmann))
        b.bar(idx - 0.2, boltzmann, width=0.4, label="Boltzmann exp(-E)/Z")
        b.bar(idx + 0.2, visited, width=0.4, label="Gibbs chain visits")
        b.set_xlabel("state of the 5 units (binary code)")
        b.legend()
        b.set_title("Gibbs sampling samples the Boltzmann distribution")
        fig.tight_layout()
        fig.savefig(os.path.join(args.plots, "markov_chain.png"), dpi=90)
        plt.close(fig)
    return result


if __name__ == "__main__":
    main()
