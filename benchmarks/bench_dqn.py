"""DQN training throughput on CartPole-v1: fundl.rl.DQN against the same algorithm in PyTorch.

    python benchmarks/bench_dqn.py [--config zoo|small] [--steps 1024] [--repeats 3]
    FUNDL_BENCH_THREADS=1 python benchmarks/bench_dqn.py      # BLAS / torch on one thread

Both agents run the same loop, each in processes of its own, timed in lock step
(``_common.run_paired``: each round, each agent times one call in turn): ε-greedy
acting in ``gymnasium.make("CartPole-v1")`` (uniformly random actions for the first
``learning_starts`` steps), a NumPy ring replay buffer sampled uniformly, and every
``train_freq`` steps ``gradient_steps`` Double-DQN updates with the Huber loss, Adam and
gradient clipping by global norm 10, the target network copied every ``target_update``
steps. Only the framework differs: fundl's Q-network, autograd and Adam, or ``torch.nn``,
``torch.autograd`` and ``torch.optim.Adam`` (eager, as Stable-Baselines3 runs it). The
PyTorch agent below is written here, in plain torch, to the same specification.

Configurations:

- ``zoo``: RL Zoo's tuned DQN for CartPole (the one ``examples/rl_cartpole_dqn.py`` solves
  with): MLP 4-256-256-2, batch 64, train_freq 256, gradient_steps 128, target_update 10,
  Adam lr 2.3e-3. Half a gradient step per environment step; the GEMMs of the 256-wide layers
  are most of the work.
- ``small``: the per-step regime where framework overhead dominates: MLP 4-64-64-2, batch 32,
  one gradient step every environment step, target_update 500.

One timed call = ``--steps`` environment steps of training (after an untimed warm-up that
fills ``learning_starts`` = 1,000). Prints environment steps per second of each (median over
the rounds, with their range) and the ratio fundl / PyTorch of the median times per step
(below 1: fundl faster), with the middle half of the rounds' own ratios; ``--rounds`` rounds
in each of ``--repeats`` sets of processes.
"""
import argparse
import statistics
import sys

# _common first: it sets the BLAS thread counts, which NumPy's OpenBLAS reads when it loads
from _common import THREADS, import_torch, paired_ratio, run_paired

import numpy as np


CONFIGS = {
    "zoo": dict(hidden=(256, 256), batch_size=64, train_freq=256, gradient_steps=128,
                target_update=10, lr=2.3e-3, exploration_fraction=0.16, final_eps=0.04),
    "small": dict(hidden=(64, 64), batch_size=32, train_freq=1, gradient_steps=1,
                  target_update=500, lr=1e-3, exploration_fraction=0.1, final_eps=0.05),
}
LEARNING_STARTS, BUFFER, GAMMA, MAX_NORM = 1000, 100_000, 0.99, 10.0


def _args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", choices=sorted(CONFIGS), default="zoo")
    p.add_argument("--steps", type=int, default=1024, help="environment steps per timed call")
    p.add_argument("--rounds", type=int, default=5, help="timed calls per process")
    p.add_argument("--repeats", type=int, default=3, help="sets of processes, one after another")
    p.add_argument("--only", default=None, help=argparse.SUPPRESS)
    return p.parse_args()


ARGS = _args()
CFG = CONFIGS[ARGS.config]


def fundl_builder():
    import gymnasium as gym

    import fundl as fl

    fl.manual_seed(0)
    env = gym.make("CartPole-v1")
    net = fl.zoo.mlp_q_network(4, 2, hidden=CFG["hidden"])
    agent = fl.rl.DQN(
        net, env.action_space, gamma=GAMMA, buffer_size=BUFFER, batch_size=CFG["batch_size"],
        learning_starts=LEARNING_STARTS, train_freq=CFG["train_freq"],
        gradient_steps=CFG["gradient_steps"], target_update=CFG["target_update"],
        optimizer=fl.optimizers.Adam(CFG["lr"]), max_grad_norm=MAX_NORM,
        exploration_fraction=CFG["exploration_fraction"],
        exploration_final_eps=CFG["final_eps"], random_state=0)
    agent.learn(env, LEARNING_STARTS)  # fill the buffer (untimed)
    return lambda: agent.learn(env, ARGS.steps)


class TorchDQN:
    """Double DQN in plain PyTorch eager, the same loop and settings as fundl.rl.DQN."""

    def __init__(self, torch, env, seed=0):
        nn = torch.nn
        self.torch, self.env = torch, env
        torch.manual_seed(seed)
        layers, width = [], 4
        for h in CFG["hidden"]:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 2))
        self.net = nn.Sequential(*layers)
        self.target = nn.Sequential(*[type(m)(m.in_features, m.out_features)
                                      if isinstance(m, nn.Linear) else nn.ReLU() for m in layers])
        self.target.load_state_dict(self.net.state_dict())
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.params = list(self.net.parameters())
        self.opt = torch.optim.Adam(self.params, lr=CFG["lr"])
        self.rng = np.random.default_rng(seed)
        self.obs = np.zeros((BUFFER, 4), np.float32)
        self.next_obs = np.zeros((BUFFER, 4), np.float32)
        self.actions = np.zeros(BUFFER, np.int64)
        self.rewards = np.zeros(BUFFER, np.float32)
        self.term = np.zeros(BUFFER, np.float32)
        self.pos = self.size = self.t = 0
        self.current, _ = env.reset(seed=seed)

    def add(self, o, a, r, o2, d):
        i = self.pos
        self.obs[i], self.next_obs[i], self.actions[i], self.rewards[i], self.term[i] = \
            o, o2, a, r, d
        self.pos = (i + 1) % BUFFER
        self.size = min(self.size + 1, BUFFER)

    def train_step(self):
        torch, F = self.torch, self.torch.nn.functional
        idx = self.rng.integers(0, self.size, CFG["batch_size"])
        obs = torch.from_numpy(self.obs[idx])
        nxt = torch.from_numpy(self.next_obs[idx])
        act = torch.from_numpy(self.actions[idx])
        rew = torch.from_numpy(self.rewards[idx])
        term = torch.from_numpy(self.term[idx])
        with torch.no_grad():
            a_star = self.net(nxt).argmax(dim=1, keepdim=True)
            v = self.target(nxt).gather(1, a_star).squeeze(1)
            y = rew + GAMMA * (1.0 - term) * v
        q = self.net(obs).gather(1, act.unsqueeze(1)).squeeze(1)
        loss = F.smooth_l1_loss(q, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, MAX_NORM)
        self.opt.step()
        return loss.item()

    def learn(self, steps):
        torch, env = self.torch, self.env
        obs, start = self.current, self.t
        ramp = CFG["exploration_fraction"] * steps
        for _ in range(steps):
            frac = min((self.t - start) / ramp, 1.0) if ramp else 1.0
            eps = 1.0 + (CFG["final_eps"] - 1.0) * frac
            if self.t < LEARNING_STARTS or self.rng.random() < eps:
                a = int(self.rng.integers(2))
            else:
                with torch.no_grad():
                    a = int(self.net(torch.from_numpy(obs[None])).argmax())
            o2, r, terminated, truncated, _ = env.step(a)
            o2 = np.asarray(o2, np.float32)
            self.add(obs, a, r, o2, terminated)
            self.t += 1
            if self.t >= LEARNING_STARTS and self.t % CFG["train_freq"] == 0:
                for _ in range(CFG["gradient_steps"]):
                    self.train_step()
            if self.t % CFG["target_update"] == 0:
                with torch.no_grad():
                    for p, q in zip(self.net.parameters(), self.target.parameters()):
                        q.copy_(p)
            if terminated or truncated:
                obs, _ = env.reset()
                obs = np.asarray(obs, np.float32)
            else:
                obs = o2
        self.current = obs


def torch_builder():
    import gymnasium as gym

    torch = import_torch()
    agent = TorchDQN(torch, gym.make("CartPole-v1"))
    agent.learn(LEARNING_STARTS)
    return lambda: agent.learn(ARGS.steps)


def main():
    builders = {"fundl": fundl_builder}
    if ARGS.only is None and import_torch() is None:
        print("PyTorch is not installed: timing fundl alone.")
    elif ARGS.only is None or ARGS.only == "pytorch":
        builders["pytorch"] = torch_builder
    _, _, samples = run_paired(builders, number=1, rounds=ARGS.rounds, warmup=1,
                               processes=ARGS.repeats)
    print(f"\nDQN on CartPole-v1, config {ARGS.config!r} {CFG}, {ARGS.steps} steps per call, "
          f"{THREADS} threads")
    for name, s in samples.items():
        speeds = [ARGS.steps / t for t in s]
        print(f"  {name:8s} {statistics.median(speeds):8,.0f} env steps/s  "
              f"(range {min(speeds):,.0f}-{max(speeds):,.0f} over {len(s)} rounds)")
    if "pytorch" in samples:
        print(f"  time per step fundl / PyTorch: {paired_ratio(samples, 'fundl', 'pytorch')}; "
              "below 1: fundl faster")


if __name__ == "__main__":
    sys.exit(main())
