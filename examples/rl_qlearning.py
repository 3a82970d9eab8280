"""Tabular Q-learning on FrozenLake-v1 (slippery 4x4) and Taxi-v4.

    python examples/rl_qlearning.py                          # both, default budgets
    python examples/rl_qlearning.py --env frozenlake --plots plots/

FrozenLake: the agent slides to a random perpendicular direction 2 times in 3, and an
episode ends after 100 steps; the best policy then reaches the goal about 74% of the time
(value iteration on the known model, computed below for comparison). The learned greedy policy
is evaluated over ``--eval-episodes`` episodes; ``--plots`` draws the values max_a Q(s, a) and
the greedy actions as arrows on the grid, and the learning curves.

Taxi: 500 states, 6 actions, -1 per step, +20 for a delivery, -10 for an illegal
pick-up/drop-off; the optimal average return is about 8.
"""
import argparse
import os
import time

import numpy as np

ARROWS = {0: (-1, 0), 1: (0, 1), 2: (1, 0), 3: (0, -1)}  # left, down, right, up as (dx, dy)


def optimal_success_rate(env, horizon=100, gamma=1.0):
    """Finite-horizon value iteration on FrozenLake's model: P(reach the goal within 100 steps)."""
    P = env.unwrapped.P
    n_s, n_a = env.observation_space.n, env.action_space.n
    v = np.zeros(n_s)
    for _ in range(horizon):
        q = np.zeros((n_s, n_a))
        for s in range(n_s):
            for a in range(n_a):
                for p, s2, r, done in P[s][a]:
                    q[s, a] += p * (r + (0.0 if done else gamma * v[s2]))
        v = q.max(axis=1)
    return v[0]


def frozenlake(args):
    import gymnasium as gym

    import fundl as fl

    env = gym.make("FrozenLake-v1", map_name="4x4", is_slippery=True)
    agent = fl.rl.QLearning(env.observation_space, env.action_space,
                            learning_rate=args.lr, gamma=args.gamma,
                            epsilon=(1.0, 0.01, int(args.frozen_episodes * 0.6)),
                            random_state=args.seed)
    start = time.perf_counter()
    returns = agent.learn(env, args.frozen_episodes)
    took = time.perf_counter() - start
    success, _ = agent.evaluate(env, args.eval_episodes)
    best = optimal_success_rate(env)
    print(f"FrozenLake-v1 (slippery 4x4): {args.frozen_episodes} episodes in {took:.1f} s; "
          f"greedy success rate {success:.3f} over {args.eval_episodes} episodes (optimal "
          f"policy: {best:.3f})")
    return agent, returns, success, best, env


def taxi(args):
    import gymnasium as gym

    import fundl as fl

    env = gym.make("Taxi-v4")
    agent = fl.rl.QLearning(env.observation_space, env.action_space, learning_rate=0.5,
                            gamma=0.99, epsilon=(1.0, 0.01, int(args.taxi_episodes * 0.5)),
                            random_state=args.seed)
    start = time.perf_counter()
    returns = agent.learn(env, args.taxi_episodes)
    took = time.perf_counter() - start
    mean, std = agent.evaluate(env, args.eval_episodes)
    print(f"Taxi-v4: {args.taxi_episodes} episodes in {took:.1f} s; greedy return "
          f"{mean:.2f} ± {std:.2f} over {args.eval_episodes} episodes")
    return agent, returns, mean


def plot_frozenlake(agent, returns, env, folder):
    # a Figure with its own Agg canvas: no pyplot, no process-wide backend switch
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    desc = env.unwrapped.desc.astype(str)
    n = desc.shape[0]
    values = agent.q_table_.max(axis=1).reshape(n, n)
    policy = agent.q_table_.argmax(axis=1).reshape(n, n)
    fig = Figure(figsize=(10, 4.5))
    FigureCanvasAgg(fig)
    ax, ax2 = fig.subplots(1, 2)
    im = ax.imshow(values, cmap="viridis")
    fig.colorbar(im, ax=ax, fraction=0.046, label="max_a Q(s, a)")
    for i in range(n):
        for j in range(n):
            cell = desc[i, j]
            if cell in "HG":
                ax.text(j, i, cell, ha="center", va="center", fontsize=16,
                        color="white" if cell == "H" else "black", weight="bold")
                continue
            dx, dy = ARROWS[int(policy[i, j])]
            ax.arrow(j - 0.25 * dx, i - 0.25 * dy, 0.4 * dx, 0.4 * dy, head_width=0.12,
                     color="white", length_includes_head=True)
            ax.text(j, i + 0.38, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("FrozenLake 4x4: greedy policy and values")
    window = 500
    curve = np.convolve(returns, np.ones(window) / window, mode="valid")
    ax2.plot(np.arange(window, len(returns) + 1), curve)
    ax2.set_xlabel("episode")
    ax2.set_ylabel(f"success rate (moving mean of {window}, ε-greedy)")
    ax2.set_title("learning curve")
    fig.tight_layout()
    path = os.path.join(folder, "rl_frozenlake_policy.png")
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", choices=["frozenlake", "taxi", "both"], default="both")
    p.add_argument("--frozen-episodes", type=int, default=20_000)
    p.add_argument("--taxi-episodes", type=int, default=3_000)
    p.add_argument("--lr", type=float, default=0.05, help="FrozenLake's step size")
    p.add_argument("--gamma", type=float, default=0.99, help="FrozenLake's discount")
    p.add_argument("--eval-episodes", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plots", default=None, help="folder for PNGs")
    args = p.parse_args(argv)
    out = {}
    if args.env in ("frozenlake", "both"):
        agent, returns, success, best, env = frozenlake(args)
        out["frozenlake"] = (success, best)
        if args.plots:
            os.makedirs(args.plots, exist_ok=True)
            plot_frozenlake(agent, returns, env, args.plots)
    if args.env in ("taxi", "both"):
        out["taxi"] = taxi(args)[2]
    return out


if __name__ == "__main__":
    main()
