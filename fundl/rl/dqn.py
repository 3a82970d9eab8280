"""Deep Q-learning (Mnih et al., Nature 2015) with Double DQN (van Hasselt et al., 2016).

A fundl model maps an observation to one value per action, Q(s, ·). The agent acts ε-greedily,
stores every transition in a :class:`~fundl.rl.ReplayBuffer`, and every ``train_freq``
environment steps takes ``gradient_steps`` gradient steps on uniformly sampled mini-batches,
regressing Q(s, a) on the target

    y = r + γ · (1 − terminated) · Q_target(s', argmaxₐ' Q(s', a'))     (Double DQN)
    y = r + γ · (1 − terminated) · maxₐ' Q_target(s', a')               (double=False)

with the Huber loss (the Nature paper's clipping of the TD error to [−1, 1]) and gradient
clipping by global norm. ``Q_target`` is a copy of the network whose weights are copied from
the online network every ``target_update`` environment steps.

The training step is a hand-written custom loop on the public API (see
:meth:`DQN.train_step`): the network's forward pass records the graph, the loss's gradient
with respect to the chosen Q-values is a NumPy expression on the (B, n_actions) output, and
``q.backward(grad)`` + ``optimizer.apply`` do the rest. For the small networks of classic
control the per-step Python overhead is what counts, so the step reuses its arrays and the
target computation runs under ``no_grad``.

Example:
    >>> import gymnasium as gym
    >>> env = gym.make("CartPole-v1")
    >>> fl.manual_seed(0)
    >>> net = fl.zoo.mlp_q_network(4, 2, hidden=(256, 256))
    >>> agent = fl.rl.DQN(net, env.action_space, optimizer=fl.optimizers.Adam(2.3e-3),
    ...                   random_state=0, verbose=1)
    >>> agent.learn(env, total_steps=50_000)                # doctest: +SKIP
    >>> agent.evaluate(env, episodes=100)                   # doctest: +SKIP
"""
from __future__ import annotations

import io
import json
import numbers
import os
import sys
import tempfile
import time
import zipfile
from collections import deque

import numpy

from ..autograd import no_grad
from ..layers import Layer
from ..tensor import Tensor
from .. import optimizers as _optimizers
from ._spaces import check_count, check_env, discrete_size, is_discrete, make_rng, seed_from
from ._spaces import check_real as _real
from .callbacks import _CallbackList
from .replay import ReplayBuffer
from .schedules import LinearSchedule

_FORMAT = "fundl-rl"
_FORMAT_VERSION = 1
_MEMBERS = ("metadata.json", "agent.json", "q_network.fundl", "optimizer.json", "optimizer.npz")
_LOSSES = ("huber", "mse")
_MAX_JSON = 16 * 2 ** 20        # bytes a settings member may declare
_MAX_NETWORK = 8 * 2 ** 30      # bytes the network or optimizer member may declare


def _nonneg_int(owner, arg, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{owner}: `{arg}` must be a non-negative integer, got {value!r}.")
    return int(value)


class DQN:
    """Deep Q-network agent for gymnasium environments with a Discrete action space.

    Args:
        q_network: a fundl model (``Sequential``, functional ``Model`` or a ``Layer``) mapping
            a batch of observations ``(B, *obs_shape)`` to Q-values ``(B, n_actions)``,
            compiled or not (the agent owns its optimizer and loss; a compiled model's are
            ignored). Seed its initial weights with ``fl.manual_seed`` before building it.
        n_actions: number of actions, or the environment's ``Discrete`` action space.
        gamma: discount factor in [0, 1]. Default 0.99.
        buffer_size: replay capacity (transitions; frames with ``frame_stack``). Default 50,000.
        batch_size: mini-batch size. Default 64.
        learning_starts: environment steps of uniformly random actions before training
            starts (they fill the buffer). Default 1,000.
        train_freq: train every this many environment steps. Default 1.
        gradient_steps: gradient steps each time it trains. Default 1.
        target_update: environment steps between copies of the online weights into the
            target network. Default 500.
        double: Double DQN targets (the online network picks the next action, the target
            network values it). Default True.
        loss: ``"huber"`` (δ = 1, the Nature paper's TD-error clipping) or ``"mse"``.
        optimizer: an optimizer name (Keras defaults, e.g. ``"adam"``) or an
            :class:`~fundl.optimizers.Optimizer` (e.g. ``Adam(learning_rate=2.3e-3)``).
        exploration_fraction: fraction of ``total_steps`` (of each :meth:`learn` call) over
            which ε falls linearly from ``exploration_initial_eps`` to
            ``exploration_final_eps``. Default 0.1.
        exploration_final_eps: ε after the decay. Default 0.05.
        exploration_initial_eps: ε at the start. Default 1.0.
        max_grad_norm: clip the gradients to this global L2 norm (None: no clipping). Default 10.
        frame_stack: None, or ``k`` for observations of ``k`` frames stacked on the last axis
            (Atari): the replay buffer then stores each frame once.
        random_state: seed (int), ``numpy.random.Generator`` or None: exploration, replay
            sampling and the environment's first reset. With ``fl.manual_seed`` before the
            network is built, two runs give identical results.
        verbose: 0 silent, 1 a progress line every 5% of ``total_steps`` (steps, episodes,
            mean return of the last 100 episodes, ε, loss, steps per second).

    Attributes:
        q_network, target_network: the online network and its copy.
        optimizer: the optimizer updating ``q_network``.
        replay_buffer: the :class:`ReplayBuffer` (created by the first :meth:`learn`).
        num_timesteps: environment steps taken by :meth:`learn` so far.
        episode_returns_, episode_lengths_: per finished training episode.
        episode_end_steps_: ``num_timesteps`` at the end of each training episode.
        losses_: mean loss of each training round (``gradient_steps`` steps).
    """

    def __init__(self, q_network, n_actions, gamma=0.99, buffer_size=50_000, batch_size=64,
                 learning_starts=1_000, train_freq=1, gradient_steps=1, target_update=500,
                 double=True, loss="huber", optimizer="adam", exploration_fraction=0.1,
                 exploration_final_eps=0.05, exploration_initial_eps=1.0, max_grad_norm=10,
                 frame_stack=None, random_state=None, verbose=0):
        who = "DQN"
        if not isinstance(q_network, Layer):
            raise TypeError(f"{who}: `q_network` must be a fundl model or layer (e.g. "
                            f"fl.Sequential([...]) or fl.zoo.nature_dqn(n_actions)), got "
                            f"{type(q_network).__name__}.")
        self.q_network = q_network
        if is_discrete(n_actions) or (hasattr(n_actions, "sample")
                                      and hasattr(n_actions, "contains")):
            n_actions = discrete_size(n_actions, who, "action space")
        self.n_actions = check_count(who, "n_actions", n_actions)
        self.gamma = _real(who, "gamma", gamma, 0.0, 1.0)
        self.buffer_size = check_count(who, "buffer_size", buffer_size)
        self.batch_size = check_count(who, "batch_size", batch_size)
        self.learning_starts = _nonneg_int(who, "learning_starts", learning_starts)
        self.train_freq = check_count(who, "train_freq", train_freq)
        self.gradient_steps = _nonneg_int(who, "gradient_steps", gradient_steps)
        self.target_update = check_count(who, "target_update", target_update)
        self.double = bool(double)
        if loss not in _LOSSES:
            raise ValueError(f"{who}: `loss` must be one of {list(_LOSSES)}, got {loss!r}.")
        self.loss = loss
        self.optimizer = _optimizers.get(optimizer)
        self.exploration_fraction = _real(who, "exploration_fraction", exploration_fraction,
                                          0.0, 1.0)
        self.exploration_final_eps = _real(who, "exploration_final_eps",
                                           exploration_final_eps, 0.0, 1.0)
        self.exploration_initial_eps = _real(who, "exploration_initial_eps",
                                             exploration_initial_eps, 0.0, 1.0)
        self.max_grad_norm = _real(who, "max_grad_norm", max_grad_norm, 0.0, allow_none=True)
        self.frame_stack = (None if frame_stack is None
                            else check_count(who, "frame_stack", frame_stack))
        self.random_state = random_state
        self.verbose = int(verbose)
        self._rng = make_rng(random_state)
        self.target_network = None
        self.replay_buffer = None
        self.obs_shape = None
        self.obs_dtype = None
        self.num_timesteps = 0
        self.episode_returns_, self.episode_lengths_, self.episode_end_steps_ = [], [], []
        self.losses_ = []
        self.stop_training = False
        # before learn: the initial ε; learn sets the decay over its total_steps
        self.exploration_schedule = LinearSchedule(self.exploration_initial_eps,
                                                   self.exploration_initial_eps, 0)
        self._schedule_start = 0
        self._weights = None
        self._target_weights = None
        self._grad_q = {}
        self._arange = {}

    # -- set-up ----------------------------------------------------------------------------
    def _name(self):
        return getattr(self.q_network, "name", type(self.q_network).__name__)

    def _expected_input(self):
        """The Q-network's declared input shape (without batch axis), or None if it has none."""
        try:
            shape = self.q_network.input_shape
        except (AttributeError, ValueError, TypeError, IndexError):
            return None
        if isinstance(shape, list):
            return None
        return None if shape is None else tuple(shape[1:])

    def _check_env(self, env):
        who = "DQN"
        check_env(env, who)
        space = env.action_space
        if not is_discrete(space):
            raise TypeError(
                f"{who}: the environment's action space is {space!r}, but DQN picks one of "
                f"{self.n_actions} discrete actions (argmax of the Q-network's outputs): it "
                "needs a gymnasium Discrete action space. Continuous actions need an "
                "actor-critic method (DDPG, SAC), or wrap the environment to discretise them.")
        n = discrete_size(space, who, "action space")
        if n != self.n_actions:
            raise ValueError(f"{who}: the agent has n_actions={self.n_actions} but the "
                             f"environment's action space is {space} ({n} actions).")
        obs_space = env.observation_space
        shape = getattr(obs_space, "shape", None)
        if type(obs_space).__name__ != "Box" or not shape:
            raise TypeError(f"{who}: the environment's observation space must be a gymnasium "
                            f"Box (an array of numbers), got {obs_space!r}. Wrap Discrete "
                            "observations in a one-hot encoding, or use fl.rl.QLearning.")
        return tuple(shape), numpy.dtype(obs_space.dtype)

    def _setup(self, obs_shape, obs_dtype):
        """Build and check the network for ``obs_shape``, the target copy and the buffer."""
        if self.obs_shape is not None:
            if obs_shape != self.obs_shape:
                raise ValueError(f"DQN: this agent was set up for observations of shape "
                                 f"{self.obs_shape}, but the environment gives {obs_shape}.")
            return
        self._check_network(obs_shape, obs_dtype)
        self.obs_shape, self.obs_dtype = obs_shape, obs_dtype
        self._make_target()
        store = numpy.uint8 if obs_dtype == numpy.uint8 else numpy.float32
        self.replay_buffer = ReplayBuffer(self.buffer_size, obs_shape, store,
                                          frame_stack=self.frame_stack)

    def _check_network(self, obs_shape, obs_dtype):
        net, name = self.q_network, self._name()
        expected = self._expected_input()
        if expected is not None and None not in expected and expected != tuple(obs_shape):
            raise ValueError(
                f"DQN: the Q-network '{name}' expects inputs of shape {expected} (batch axis "
                f"excluded) but the environment's observations have shape {tuple(obs_shape)}. "
                "Build the network for the observation shape (e.g. input_shape="
                f"{tuple(obs_shape)}) or wrap the environment to reshape its observations.")
        dtype = obs_dtype if obs_dtype == numpy.uint8 else numpy.float32
        try:
            with no_grad():
                out = net(numpy.zeros((1,) + tuple(obs_shape), dtype=dtype))
        except (ValueError, TypeError) as e:
            shape = f"{expected}" if expected is not None else "a different shape"
            raise ValueError(
                f"DQN: the Q-network '{name}' (expecting inputs of {shape}) cannot take the "
                f"environment's observations of shape {tuple(obs_shape)}: {e}") from e
        if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[1] != self.n_actions:
            got = getattr(out, "shape", type(out).__name__)
            raise ValueError(
                f"DQN: the Q-network '{name}' must output one value per action, shape "
                f"(batch, {self.n_actions}), but for a batch of 1 observation of shape "
                f"{tuple(obs_shape)} it returned {got}. Make its last layer "
                f"Dense({self.n_actions}) with no activation.")
        self._weights = list(net.trainable_weights)
        if not self._weights:
            raise ValueError(f"DQN: the Q-network '{name}' has no trainable weights.")

    def _make_target(self):
        net = self.q_network
        try:
            target = type(net).from_config(net.get_config())
        except Exception as e:  # any failure of a user class's config round-trip
            raise TypeError(f"DQN: cannot copy the Q-network '{self._name()}' for the target "
                            f"network through get_config/from_config ({type(e).__name__}: {e}). "
                            "Give custom layers a get_config and register them with "
                            "@fundl.layers.register_serializable.") from e
        with no_grad():
            target(numpy.zeros((1,) + self.obs_shape,
                               dtype=numpy.uint8 if self.obs_dtype == numpy.uint8
                               else numpy.float32))
        target.set_weights(net.get_weights())
        self.target_network = target
        src, dst = net.weights, target.weights
        self._sync_pairs = list(zip(src, dst))
        for w in dst:
            w.requires_grad = False

    def sync_target(self) -> None:
        """Copy the online network's weights into the target network (in place)."""
        for w, t in self._sync_pairs:
            t.data[...] = w.data

    # -- acting ----------------------------------------------------------------------------
    @property
    def epsilon(self) -> float:
        """The exploration rate at the current step of the current schedule."""
        return float(self.exploration_schedule(self.num_timesteps - self._schedule_start))

    def _prep_obs(self, obs):
        obs = numpy.asarray(obs)
        if self.obs_shape is not None and obs.shape != self.obs_shape:
            raise ValueError(f"DQN.act: expected one observation of shape {self.obs_shape}, got "
                             f"shape {obs.shape}. For a batch, call q_values(obs).")
        if obs.dtype != numpy.uint8 and obs.dtype != numpy.float32:
            obs = obs.astype(numpy.float32)
        return obs

    def q_values(self, obs) -> numpy.ndarray:
        """Q-values of a batch of observations ``(B, *obs_shape)`` -> ``(B, n_actions)``."""
        obs = numpy.asarray(obs)
        if obs.dtype != numpy.uint8 and obs.dtype != numpy.float32:
            obs = obs.astype(numpy.float32)
        with no_grad():
            return self.q_network(obs).data

    def _greedy(self, obs):
        with no_grad():
            q = self.q_network(obs[None]).data
        return int(q[0].argmax())

    def act(self, obs, greedy=False) -> int:
        """The action for one observation: greedy, or ε-greedy with the current ε.

        Args:
            obs: one observation, of the environment's observation shape.
            greedy: always take ``argmax Q(obs, ·)`` (evaluation).

        Returns:
            int action in ``[0, n_actions)``.
        """
        obs = self._prep_obs(obs)
        if not greedy and self._rng.random() < self.epsilon:
            return int(self._rng.integers(self.n_actions))
        return self._greedy(obs)

    # -- training --------------------------------------------------------------------------
    def _step_arrays(self, b):
        g = self._grad_q.get(b)
        if g is None:
            g = self._grad_q[b] = numpy.zeros((b, self.n_actions), dtype=numpy.float32)
            self._arange[b] = numpy.arange(b)
        return g, self._arange[b]

    def compute_targets(self, rewards, next_obs, terminated) -> numpy.ndarray:
        """The regression targets ``y`` for a batch (no gradient is recorded).

        Args:
            rewards: ``(B,)`` float32.
            next_obs: ``(B, *obs_shape)``.
            terminated: ``(B,)`` float32, 1.0 where the transition ended the episode.

        Returns:
            float32 array ``(B,)``: ``r + γ (1 − terminated) Q_target(s', a*)`` with ``a*``
            the online network's argmax (Double DQN) or the target's own max.
        """
        with no_grad():
            q_next = self.target_network(next_obs).data
            if self.double:
                a_star = self.q_network(next_obs).data.argmax(axis=1)
                v = q_next[self._step_arrays(len(rewards))[1], a_star]
            else:
                v = q_next.max(axis=1)
        return (rewards + self.gamma * (1.0 - terminated) * v).astype(numpy.float32, copy=False)

    def train_step(self, obs, actions, rewards, next_obs, terminated) -> float:
        """One gradient step on a batch of transitions; returns the loss before the step.

        Args:
            obs: ``(B, *obs_shape)``; actions: ``(B,)`` ints; rewards: ``(B,)``;
            next_obs: ``(B, *obs_shape)``; terminated: ``(B,)`` (1.0 where terminal).

        Returns:
            float, the mean Huber (or squared) TD error of the batch.
        """
        y = self.compute_targets(rewards, next_obs, terminated)
        weights = self._weights
        for w in weights:
            w.grad = None
        q = self.q_network(obs, training=True)
        g, rows = self._step_arrays(len(y))
        d = q.data[rows, actions] - y
        b = float(len(y))
        # the loss is a function of the B chosen Q-values only: its gradient with respect to
        # the (B, n_actions) output is zero except at (i, a_i), so write it directly
        if self.loss == "huber":
            ad = numpy.abs(d)
            small = ad <= 1.0
            loss = float(numpy.where(small, 0.5 * d * d, ad - 0.5).sum()) / b
            gd = numpy.clip(d, -1.0, 1.0)
        else:
            loss = float((d * d).sum()) / b
            gd = 2.0 * d
        g[rows, actions] = gd / b
        q.backward(g)
        g[rows, actions] = 0.0  # leave the buffer all zeros for the next step
        grads = [w.grad for w in weights]
        if self.max_grad_norm is not None:
            sq = 0.0
            for gr in grads:
                flat = gr.ravel()
                sq += float(numpy.dot(flat, flat))
            norm = sq ** 0.5
            if norm > self.max_grad_norm:
                scale = self.max_grad_norm / (norm + 1e-6)
                grads = [gr * scale for gr in grads]
        self.optimizer.apply(grads, weights)
        return loss

    def _train(self):
        buf, rng, total = self.replay_buffer, self._rng, 0.0
        for _ in range(self.gradient_steps):
            total += self.train_step(*buf.sample(self.batch_size, rng))
        return total / max(self.gradient_steps, 1)

    def learn(self, env, total_steps, callbacks=None):
        """Train for ``total_steps`` environment steps.

        Calling ``learn`` again continues training (buffer, step counter and optimizer are
        kept); ε's schedule restarts over the new ``total_steps``.

        Args:
            env: a gymnasium environment with a ``Discrete`` action space and a ``Box``
                observation space whose shape the Q-network accepts.
            total_steps: number of environment steps.
            callbacks: list of :class:`fundl.rl.Callback`.

        Returns:
            ``self``.
        """
        total_steps = check_count("DQN.learn", "total_steps", total_steps)
        obs_shape, obs_dtype = self._check_env(env)
        self._setup(obs_shape, obs_dtype)
        cbs = _CallbackList(callbacks, self)
        self.stop_training = False
        self._schedule_start = self.num_timesteps
        self.exploration_schedule = LinearSchedule(
            self.exploration_initial_eps, self.exploration_final_eps,
            self.exploration_fraction * total_steps)
        rng, buf, n_actions = self._rng, self.replay_buffer, self.n_actions
        store = buf.obs_dtype
        for fn in cbs.train_begin:
            fn({"total_steps": total_steps})
        obs, _ = env.reset(seed=seed_from(rng))
        obs = numpy.asarray(obs, dtype=store)
        ep_return, ep_len = 0.0, 0
        recent = deque(self.episode_returns_[-100:], maxlen=100)
        log_every = max(total_steps // 20, 1)
        start_time, start_step, last_loss = time.perf_counter(), self.num_timesteps, float("nan")
        for _ in range(total_steps):
            t = self.num_timesteps
            eps = self.exploration_schedule(t - self._schedule_start)
            if t < self.learning_starts or rng.random() < eps:
                action = int(rng.integers(n_actions))
            else:
                action = self._greedy(obs)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            next_obs = numpy.asarray(next_obs, dtype=store)
            buf.add(obs, action, reward, next_obs, terminated)
            self.num_timesteps = t = t + 1
            ep_return += reward
            ep_len += 1
            trained = False
            if t >= self.learning_starts and t % self.train_freq == 0 and self.gradient_steps:
                last_loss = self._train()
                self.losses_.append(last_loss)
                trained = True
            if t % self.target_update == 0:
                self.sync_target()
            if cbs.step:
                logs = {"reward": float(reward), "epsilon": eps}
                if trained:
                    logs["loss"] = last_loss
                for fn in cbs.step:
                    fn(t, logs)
            if terminated or truncated:
                self.episode_returns_.append(float(ep_return))
                self.episode_lengths_.append(ep_len)
                self.episode_end_steps_.append(t)
                recent.append(float(ep_return))
                if cbs.episode_end:
                    logs = {"return": float(ep_return), "length": ep_len, "step": t,
                            "mean_return_100": float(numpy.mean(recent))}
                    for fn in cbs.episode_end:
                        fn(len(self.episode_returns_) - 1, logs)
                ep_return, ep_len = 0.0, 0
                obs, _ = env.reset()
                obs = numpy.asarray(obs, dtype=store)
            else:
                obs = next_obs
            if self.verbose and ((t - start_step) % log_every == 0
                                 or t - start_step == total_steps):
                self._log(t, start_step + total_steps, recent, eps, last_loss,
                          (t - start_step) / max(time.perf_counter() - start_time, 1e-9))
            if self.stop_training:
                break
        for fn in cbs.train_end:
            fn({"steps": self.num_timesteps, "episodes": len(self.episode_returns_)})
        return self

    def _log(self, t, end, recent, eps, loss, speed):
        mean = f"{numpy.mean(recent):8.2f}" if recent else "     n/a"
        print(f"step {t:>8}/{end} | episodes {len(self.episode_returns_):>5} | mean return "
              f"(last 100) {mean} | eps {eps:.3f} | loss {loss:.4f} | {speed:,.0f} steps/s",
              file=sys.stdout, flush=True)

    def evaluate(self, env, episodes=100, epsilon=0.0):
        """Mean and standard deviation of the return of the greedy policy.

        Args:
            env: the environment (a separate instance from the training one is best).
            episodes: number of episodes.
            epsilon: exploration during evaluation (0: greedy; Atari evaluations often use
                0.05).

        Returns:
            ``(mean_return, std_return)`` as floats.
        """
        episodes = check_count("DQN.evaluate", "episodes", episodes)
        obs_shape, obs_dtype = self._check_env(env)
        self._setup(obs_shape, obs_dtype)
        store = self.replay_buffer.obs_dtype
        eps = _real("DQN.evaluate", "epsilon", epsilon, 0.0, 1.0)
        returns = numpy.zeros(episodes)
        rng = self._rng
        obs, _ = env.reset(seed=seed_from(rng))
        for e in range(episodes):
            if e:
                obs, _ = env.reset()
            done = False
            while not done:
                if eps and rng.random() < eps:
                    action = int(rng.integers(self.n_actions))
                else:
                    action = self._greedy(numpy.asarray(obs, dtype=store))
                obs, reward, terminated, truncated, _ = env.step(action)
                returns[e] += reward
                done = terminated or truncated
        return float(returns.mean()), float(returns.std())

    # -- saving ----------------------------------------------------------------------------
    def get_config(self) -> dict:
        """The constructor arguments (without the network and optimizer) as a JSON-safe dict."""
        return {"n_actions": self.n_actions, "gamma": self.gamma,
                "buffer_size": self.buffer_size, "batch_size": self.batch_size,
                "learning_starts": self.learning_starts, "train_freq": self.train_freq,
                "gradient_steps": self.gradient_steps, "target_update": self.target_update,
                "double": self.double, "loss": self.loss,
                "exploration_fraction": self.exploration_fraction,
                "exploration_final_eps": self.exploration_final_eps,
                "exploration_initial_eps": self.exploration_initial_eps,
                "max_grad_norm": self.max_grad_norm, "frame_stack": self.frame_stack,
                "verbose": self.verbose}

    def save(self, path) -> None:
        """Save the agent (network, optimizer state, settings) to one file, atomically.

        The file is a zip of JSON and ``.npz`` members plus the Q-network as a nested
        ``.fundl`` model archive; loading never unpickles. The replay buffer is not saved.

        Args:
            path: the file to write (``.fundl`` by convention).
        """
        if self.obs_shape is None:
            raise ValueError("DQN.save: the agent has not been set up yet; call learn or "
                             "evaluate with an environment first.")
        fd, tmp = tempfile.mkstemp(suffix=".fundl")
        os.close(fd)
        try:
            self.q_network.save(tmp, include_optimizer=False)
            with open(tmp, "rb") as f:
                net_bytes = f.read()
        finally:
            os.unlink(tmp)
        state = self.optimizer.get_state() if self.optimizer.built else {}
        buf = io.BytesIO()
        numpy.savez(buf, **state)
        agent = {"config": self.get_config(), "num_timesteps": self.num_timesteps,
                 "obs_shape": list(self.obs_shape), "obs_dtype": self.obs_dtype.name}
        members = {
            "metadata.json": json.dumps({"format": _FORMAT, "format_version": _FORMAT_VERSION,
                                         "kind": "dqn"}).encode(),
            "agent.json": json.dumps(agent).encode(),
            "q_network.fundl": net_bytes,
            "optimizer.json": json.dumps(_optimizers.serialize(self.optimizer)).encode(),
            "optimizer.npz": buf.getvalue(),
        }
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".fundl-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                with zipfile.ZipFile(f, "w") as z:
                    for name, data in members.items():
                        z.writestr(name, data)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path, random_state=None) -> "DQN":
        """Load an agent written by :meth:`save`.

        Args:
            path: the file.
            random_state: the new agent's seed for exploration and sampling.

        Returns:
            A :class:`DQN` with the saved network (and a fresh target copy of it), optimizer
            state, settings and step count; its replay buffer is empty.

        Raises:
            ValueError: the file is not a fundl DQN archive (truncated, corrupt, other kind).
        """
        from ..models import load_model

        path = os.fspath(path)
        try:
            with zipfile.ZipFile(path) as z:
                names = set(z.namelist())
                missing = [m for m in _MEMBERS if m not in names]
                if missing:
                    raise ValueError(f"DQN.load: {path} is not a fundl DQN file (missing "
                                     f"{missing}).")
                for m in _MEMBERS:  # sizes are checked before anything is inflated
                    limit = _MAX_NETWORK if m.endswith((".fundl", ".npz")) else _MAX_JSON
                    if z.getinfo(m).file_size > limit:
                        raise ValueError(f"DQN.load: {path}: member {m} declares "
                                         f"{z.getinfo(m).file_size:,} bytes, more than the "
                                         f"{limit:,} allowed (a damaged or hostile file).")
                raw = {m: z.read(m) for m in _MEMBERS}
        except (zipfile.BadZipFile, EOFError, OSError) as e:
            if isinstance(e, (FileNotFoundError, PermissionError)):
                raise
            raise ValueError(f"DQN.load: {path} is not a readable fundl DQN file (truncated or "
                             f"corrupt?): {e}") from e
        try:
            meta = json.loads(raw["metadata.json"])
            agent = json.loads(raw["agent.json"])
            opt_config = json.loads(raw["optimizer.json"])
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"DQN.load: {path} has damaged JSON members: {e}") from e
        if meta.get("format") != _FORMAT or meta.get("kind") != "dqn":
            raise ValueError(f"DQN.load: {path} is not a fundl DQN file (metadata {meta}).")
        if meta.get("format_version", 0) > _FORMAT_VERSION:
            raise ValueError(f"DQN.load: {path} was written by a newer fundl; upgrade to read it.")
        with numpy.load(io.BytesIO(raw["optimizer.npz"]), allow_pickle=False) as npz:
            opt_state = {k: npz[k] for k in npz.files}
        fd, tmp = tempfile.mkstemp(suffix=".fundl")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(raw["q_network.fundl"])
            net = load_model(tmp, compile=False)
        finally:
            os.unlink(tmp)
        optimizer = _optimizers.deserialize(opt_config)
        self = cls(net, optimizer=optimizer, random_state=random_state, **agent["config"])
        self._setup(tuple(agent["obs_shape"]), numpy.dtype(agent["obs_dtype"]))
        if opt_state:
            optimizer.set_state(opt_state, self._weights)
        self.num_timesteps = int(agent["num_timesteps"])
        return self

    def __repr__(self):
        return (f"DQN(q_network='{self._name()}', n_actions={self.n_actions}, "
                f"double={self.double}, num_timesteps={self.num_timesteps})")
