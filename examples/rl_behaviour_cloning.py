"""Imitation learning as behaviour cloning: a policy network learns the DQN expert's actions.

    python examples/rl_behaviour_cloning.py                       # trains the expert first
    python examples/rl_behaviour_cloning.py --expert agent.fundl  # a saved fl.rl.DQN agent
    python examples/rl_behaviour_cloning.py --plots plots/        # also the bar chart

The expert is a DQN agent for CartPole-v1 (trained here with the settings of
``examples/rl_cartpole_dqn.py``, or loaded from ``--expert``, e.g. a file written by that
example's ``--save``). Its greedy policy plays ``--demos`` episodes; every visited
observation and the expert's action becomes a labelled example, and a small MLP classifier
(softmax over the 2 actions, ``model.fit`` with sparse categorical cross-entropy) learns
observation -> action: supervised learning on the expert's state distribution, no reward
used. The cloned policy (argmax of the classifier) is then evaluated over ``--eval-episodes``
episodes, for each number of demonstrations in ``--demos``.

The classic caveat (Ross et al., 2011): the clone's small mistakes can lead it to states the
expert never visited, where it has no data, so errors compound. CartPole is forgiving: measured
with the defaults (one seed, 2 cores shared with other jobs): expert 500.0 over 50 episodes;
clones from 1, 5 and 20 demonstrations 500.0 ± 0.0, 488.2 ± 57.9 and 428.0 ± 147.6, with
training accuracies 0.80, 0.89 and 0.93. More demonstrations did not help in this run; one
seed cannot tell whether the differences between the three are real.
"""
import argparse
import importlib.util
import os
import time

import numpy as np


# examples/_threads.py (the BLAS thread limit shared with rl_cartpole_dqn.py), found beside
# this file so that both ``python examples/<name>.py`` and the tests' loader find it
_spec = importlib.util.spec_from_file_location(
    "_threads", os.path.join(os.path.dirname(os.path.abspath(__file__)), "_threads.py"))
_threads = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_threads)


def train_expert(seed, steps):
    import gymnasium as gym

    import fundl as fl

    fl.manual_seed(seed)
    env = gym.make("CartPole-v1")
    agent = fl.rl.DQN(
        fl.zoo.mlp_q_network(4, 2, hidden=(256, 256)), env.action_space, buffer_size=100_000,
        batch_size=64, learning_starts=1000, train_freq=256, gradient_steps=128,
        target_update=10, exploration_fraction=0.16, exploration_final_eps=0.04,
        optimizer=fl.optimizers.Adam(fl.optimizers.schedules.CosineDecay(
            2.3e-3, decay_steps=(steps - 1000) // 256 * 128)),
        random_state=seed, verbose=1)
    agent.learn(env, steps)
    return agent


def demonstrations(agent, env, episodes, seed):
    obs_list, act_list = [], []
    for e in range(episodes):
        obs, _ = env.reset(seed=seed + e)
        done = False
        while not done:
            action = agent.act(obs, greedy=True)
            obs_list.append(np.asarray(obs, np.float32))
            act_list.append(action)
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    return np.stack(obs_list), np.array(act_list)


def clone(x, y, seed, epochs):
    import fundl as fl

    fl.manual_seed(seed)
    model = fl.models.Sequential([
        fl.layers.Dense(64, activation="relu", input_shape=(4,)),
        fl.layers.Dense(64, activation="relu"),
        fl.layers.Dense(2, activation="softmax"),
    ])
    model.compile(optimizer=fl.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    return model, history.history


def play(model, env, episodes, seed):
    returns = []
    for e in range(episodes):
        obs, _ = env.reset(seed=10_000 + seed + e)
        done, total = False, 0.0
        while not done:
            p = model.predict(np.asarray(obs, np.float32)[None])
            obs, r, terminated, truncated, _ = env.step(int(p[0].argmax()))
            total += r
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns)), float(np.std(returns))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--expert", default=None, help="a saved fl.rl.DQN agent for CartPole-v1")
    p.add_argument("--expert-steps", type=int, default=50_000)
    p.add_argument("--demos", type=int, nargs="+", default=[1, 5, 20])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--eval-episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    _threads.add_blas_threads(p)
    p.add_argument("--plots", default=None, help="write PNG pictures to this directory")
    args = p.parse_args(argv)
    return _threads.run_with_blas_threads(args.blas_threads, _main, args)


def _main(args):
    import gymnasium as gym

    import fundl as fl

    env = gym.make("CartPole-v1")
    start = time.perf_counter()
    agent = (fl.rl.DQN.load(args.expert) if args.expert
             else train_expert(args.seed, args.expert_steps))
    expert = agent.evaluate(env, args.eval_episodes)
    print(f"expert (DQN, greedy): {expert[0]:.1f} ± {expert[1]:.1f} over {args.eval_episodes} "
          f"episodes ({time.perf_counter() - start:.0f} s to get it)")
    results = {"expert": expert}
    for n in args.demos:
        x, y = demonstrations(agent, env, n, seed=args.seed * 1000)
        model, hist = clone(x, y, args.seed, args.epochs)
        mean, std = play(model, env, args.eval_episodes, args.seed)
        results[n] = (mean, std)
        print(f"behaviour cloning from {n:3d} expert episodes ({len(x):6d} state-action pairs, "
              f"training accuracy {hist['accuracy'][-1]:.3f}): return {mean:.1f} ± {std:.1f}")
    if args.plots:
        print(f"wrote {plot(results, args, args.plots)}")
    return results


def plot(results, args, folder):
    """The picture of ``--plots``: a bar per number of demonstrations, the expert as a line."""
    spec = importlib.util.spec_from_file_location(  # examples/_plots.py, beside this file
        "_plots", os.path.join(os.path.dirname(os.path.abspath(__file__)), "_plots.py"))
    plots = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plots)
    path = plots.path(folder, "rl_behaviour_cloning.png")
    demos = [n for n in results if n != "expert"]
    means = np.array([results[n][0] for n in demos])
    stds = np.array([results[n][1] for n in demos])
    expert_mean, expert_std = results["expert"]
    fig = plots.figure((6.4, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(demos))
    bars = ax.bar(x, means, 0.6, yerr=stds, capsize=4, color="C0",
                  label=f"clone (mean ± std over {args.eval_episodes} episodes)")
    for bar, mean, top in zip(bars, means, means + stds):
        ax.annotate(f"{mean:.1f}", (bar.get_x() + bar.get_width() / 2, top), xytext=(0, 2),
                    textcoords="offset points", ha="center", va="bottom", fontsize=8)
    ax.axhline(expert_mean, color="C3", linestyle="--",
               label=f"expert DQN: {expert_mean:.1f} ± {expert_std:.1f}")
    ax.set_xticks(x)
    ax.set_xticklabels([str(n) for n in demos])
    ax.set_xlabel("expert episodes demonstrated")
    ax.set_ylabel("return (CartPole-v1, max 500)")
    ax.set_ylim(0, 1.15 * max(expert_mean, float((means + stds).max()), 1.0))
    ax.set_title("behaviour cloning: the clone's return", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    # below the axes: inside, it would hide the bars' tops
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
              frameon=False)
    fig.tight_layout()
    plots.save_figure(fig, path)
    return path


if __name__ == "__main__":
    main()
