"""The Nature DQN pipeline on Atari (Pong or Breakout): gymnasium's wrappers, fundl's network.

    python examples/rl_atari_dqn.py                          # Pong, a 5,000-step smoke run
    python examples/rl_atari_dqn.py --game Breakout --steps 20000 --plots plots/

Needs ``pip install 'fundl[atari]'`` (gymnasium's Atari extra, ale-py with its ROMs, and
OpenCV for the preprocessing wrapper). The pipeline, as in Mnih et al. (2015):

- ``gym.make("ALE/<Game>-v5", frameskip=1)`` then gymnasium's ``AtariPreprocessing``
  (4-frame max-pooled action repeat, up to 30 no-op starts, 84x84 grey-scale) and
  ``FrameStackObservation(4)``; ``TransformObservation`` moves the stack axis last for
  fundl's channels-last convolutions; ``ClipReward`` clips rewards to [-1, 1];
- ``fundl.zoo.nature_dqn(n_actions)``: uint8 frames scaled inside the model, 3 convolutions,
  512 units;
- ``fundl.rl.DQN(..., frame_stack=4)``: the replay buffer stores each 84x84 frame once
  (one million frames: 7.07 GB, printed below).

Training to human level takes ~10M agent steps (40M frames): days on 2 CPU cores. The command
for a full run (about the Nature paper's settings, Adam instead of RMSprop as is usual now):

    python examples/rl_atari_dqn.py --game Pong --steps 10000000 --buffer 1000000 \\
        --learning-starts 50000 --target-update 10000 --exploration-fraction 0.1 \\
        --final-eps 0.01 --lr 1e-4 --save pong.fundl

The default is a short smoke run that reports the throughput in frames per second (4 frames
per agent step) before and after training starts. ``--plots DIR`` writes what the network
sees (one observation's 4 stacked 84x84 frames) and the run's returns: the clipped reward
summed over each episode so far, per agent step, with the finished episodes' returns marked
(a short run may finish none: a Pong game lasts about 800 agent steps).
"""
import argparse
import importlib.util
import os
import time
from array import array

import numpy as np


def make_env(game, seed=0):
    import gymnasium as gym
    from gymnasium.wrappers import (
        AtariPreprocessing, ClipReward, FrameStackObservation, TransformObservation,
    )

    try:
        import ale_py
    except ImportError as e:
        raise SystemExit("This example needs the Atari environments: pip install "
                         "'fundl[atari]' (gymnasium[atari], ale-py, opencv-python-headless)"
                         ) from e
    gym.register_envs(ale_py)
    env = gym.make(f"ALE/{game}-v5", frameskip=1)
    env = AtariPreprocessing(env, frame_skip=4, noop_max=30, screen_size=84,
                             terminal_on_life_loss=False, grayscale_obs=True)
    env = FrameStackObservation(env, 4)  # (4, 84, 84) uint8
    space = gym.spaces.Box(0, 255, (84, 84, 4), np.uint8)
    env = TransformObservation(env, lambda obs: np.moveaxis(obs, 0, -1), space)
    env = ClipReward(env, -1.0, 1.0)
    env.action_space.seed(seed)
    return env


def throughput_callback(fl, record_returns=False):
    """A callback that notes (step, time) at the start, just before training begins, 40 steps
    later (the first gradient steps compile fundl's CPU kernels, ~seconds), and at the end.
    With ``record_returns`` it also keeps the running episode return after every agent step
    (``.running``, 4 bytes a step) for the returns picture."""

    class Marks(fl.rl.Callback):
        def __init__(self):
            super().__init__()
            self.marks = {}
            self.running = array("f") if record_returns else None
            self._episode = 0.0

        def on_train_begin(self, logs=None):
            self.marks["start"] = (self.agent.num_timesteps, time.perf_counter())

        def on_step(self, step, logs=None):
            starts = self.agent.learning_starts
            if step == starts - 1:
                self.marks["acting"] = (step, time.perf_counter())
            elif step == starts + 40:
                self.marks["warm"] = (step, time.perf_counter())
            if self.running is not None:
                self._episode += logs["reward"]
                self.running.append(self._episode)

        def on_episode_end(self, episode, logs=None):
            self._episode = 0.0

        def on_train_end(self, logs=None):
            self.marks["end"] = (self.agent.num_timesteps, time.perf_counter())

    return Marks()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--game", default="Pong")
    p.add_argument("--steps", type=int, default=5000, help="agent steps (4 frames each)")
    p.add_argument("--buffer", type=int, default=10_000, help="replay capacity in frames")
    p.add_argument("--learning-starts", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--train-freq", type=int, default=4)
    p.add_argument("--target-update", type=int, default=1000)
    p.add_argument("--exploration-fraction", type=float, default=0.5)
    p.add_argument("--final-eps", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--eval-episodes", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="'gpu' to train on a CUDA GPU (CuPy)")
    p.add_argument("--save", default=None, help="write the trained agent to this file")
    p.add_argument("--verbose", type=int, default=1)
    p.add_argument("--plots", default=None, help="write PNG pictures to this directory")
    args = p.parse_args(argv)

    import fundl as fl

    if args.device:
        fl.set_device(args.device)
    env = make_env(args.game, args.seed)
    fl.manual_seed(args.seed)
    net = fl.zoo.nature_dqn(env.action_space.n)
    print(f"{args.game}: {env.action_space.n} actions, observations "
          f"{env.observation_space.shape} {env.observation_space.dtype}; nature_dqn has "
          f"{net.count_params():,} parameters")
    full = fl.rl.ReplayBuffer(1_000_000, (84, 84, 4), "uint8", frame_stack=4)
    print(f"replay buffer for 1M frames (each frame stored once): {full.nbytes / 1e9:.2f} GB "
          f"({full.nbytes / 2 ** 30:.2f} GiB); stacked obs and next_obs would take "
          f"{2 * 1_000_000 * 84 * 84 * 4 / 1e9:.1f} GB")
    del full
    agent = fl.rl.DQN(
        net, env.action_space, gamma=0.99, buffer_size=args.buffer,
        batch_size=args.batch_size, learning_starts=args.learning_starts,
        train_freq=args.train_freq, gradient_steps=1, target_update=args.target_update,
        optimizer=fl.optimizers.Adam(args.lr, epsilon=1.5e-4),
        exploration_fraction=args.exploration_fraction, exploration_final_eps=args.final_eps,
        max_grad_norm=10, frame_stack=4, random_state=args.seed, verbose=args.verbose)
    meter = throughput_callback(fl, record_returns=bool(args.plots))
    agent.learn(env, args.steps, callbacks=[meter])
    marks = meter.marks
    if "acting" in marks:
        (s0, t0), (s1, t1) = marks["start"], marks["acting"]
        print(f"acting only (random actions, filling the buffer): "
              f"{4 * (s1 - s0) / (t1 - t0):,.0f} frames/s")
    if "warm" in marks and marks["end"][0] > marks["warm"][0]:
        (s1, t1), (s2, t2) = marks["warm"], marks["end"]
        print(f"training (ε-greedy acting, one gradient step of batch {args.batch_size} every "
              f"{args.train_freq} agent steps): {4 * (s2 - s1) / (t2 - t1):,.1f} frames/s")
    print(f"{len(agent.episode_returns_)} episodes finished; replay holds "
          f"{len(agent.replay_buffer)} transitions in {agent.replay_buffer.nbytes / 1e6:.1f} MB; "
          f"last losses {np.round(agent.losses_[-3:], 4).tolist()}")
    if agent.episode_returns_:
        print(f"episode returns (clipped rewards): {agent.episode_returns_}")
    if args.eval_episodes:
        mean, std = agent.evaluate(env, args.eval_episodes, epsilon=0.05)
        print(f"evaluation (ε = 0.05, {args.eval_episodes} episodes): {mean:.1f} ± {std:.1f}")
    if args.save:
        agent.save(args.save)
        print(f"saved the agent to {args.save}")
    if args.plots:
        for path in plot(fl, env, agent, meter.running, args, args.plots):
            print(f"wrote {path}")
    return agent


def plot(fl, env, agent, running, args, folder):
    """The pictures of ``--plots``: one observation's 4 frames, the returns of the run."""
    spec = importlib.util.spec_from_file_location(  # examples/_plots.py, beside this file
        "_plots", os.path.join(os.path.dirname(os.path.abspath(__file__)), "_plots.py"))
    plots = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plots)
    paths = [plots.path(folder, "rl_atari_dqn_observation.png"),
             plots.path(folder, "rl_atari_dqn_returns.png")]
    # an observation some steps into a new episode (the first ones repeat the reset frame),
    # chosen by the trained agent: the (84, 84, 4) stack as 4 images, oldest first
    obs, _ = env.reset(seed=args.seed + 1)
    for _ in range(60):
        obs, _, terminated, truncated, _ = env.step(agent.act(obs, greedy=True))
        if terminated or truncated:
            obs, _ = env.reset()
    frames = np.moveaxis(np.asarray(obs), -1, 0)
    fl.viz.image_grid(frames, nrow=4, titles=[f"t-{3 - k}" if k < 3 else "t" for k in range(4)],
                      to_file=paths[0], figsize=(8.0, 2.4))
    fig = plots.figure((7.0, 3.8))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(np.arange(1, len(running) + 1), np.asarray(running), linewidth=1,
            label="running episode return")
    if agent.episode_returns_:
        ax.plot(agent.episode_end_steps_, agent.episode_returns_, "o", color="C3",
                label="finished episodes")
    ax.axvline(agent.learning_starts, color="grey", linestyle=":", label="training starts")
    ax.set_xlabel("agent step (4 frames each)")
    ax.set_ylabel("return (clipped rewards)")
    ax.set_title(f"{args.game}: DQN, {args.steps:,} agent steps, "
                 f"{len(agent.episode_returns_)} episodes finished", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    plots.save_figure(fig, paths[1])
    return paths


if __name__ == "__main__":
    main()
