"""Tabular Q-learning (Watkins 1989) with ε-greedy exploration.

The update after each step ``(s, a, r, s')``:

    Q(s, a) ← Q(s, a) + α · (r + γ · maxₐ' Q(s', a') · (1 − terminated) − Q(s, a))

A terminal state has no future (the bracket drops the bootstrap term); a time-limit
truncation is not terminal, so it still bootstraps from ``s'``.

Example:
    >>> import gymnasium as gym
    >>> env = gym.make("FrozenLake-v1")
    >>> agent = fl.rl.QLearning(env.observation_space, env.action_space, learning_rate=0.1,
    ...                         gamma=0.99, epsilon=(1.0, 0.05, 5_000), random_state=0)
    >>> returns = agent.learn(env, episodes=10_000)
    >>> agent.act(0, greedy=True)
"""
from __future__ import annotations

import numbers

import numpy

from ._spaces import check_count, check_env, discrete_size, is_discrete, make_rng, seed_from
from .schedules import as_schedule


def _size(value, owner, arg, what):
    if is_discrete(value) or (hasattr(value, "sample") and hasattr(value, "contains")):
        return discrete_size(value, owner, what)  # a gymnasium space
    return check_count(owner, arg, value)


class QLearning:
    """Tabular Q-learning for environments with Discrete observation and action spaces.

    Args:
        n_states: number of states, or the environment's observation space (a gymnasium
            ``Discrete``; anything else raises a TypeError naming the space).
        n_actions: number of actions, or the environment's action space (``Discrete``).
        learning_rate: the step size α in (0, 1]. Default 0.1.
        gamma: the discount γ in [0, 1]. Default 0.99.
        epsilon: the exploration rate of ε-greedy, as a function of the episode number: a float
            (constant), a tuple ``(start, end, decay_episodes)`` (linear decay from ``start``
            to ``end`` over ``decay_episodes`` episodes, then ``end``), or a callable
            ``episode -> ε`` (e.g. :class:`fundl.rl.ExponentialSchedule`). Default
            ``(1.0, 0.05, 1000)``.
        random_state: seed (int), ``numpy.random.Generator`` or None, for exploration, tie
            breaking and the environment's resets.

    Attributes:
        q_table_: float64 array ``(n_states, n_actions)``, the learned action values.
        episodes_: episodes learned so far (ε's clock).

    Example:
        >>> agent = QLearning(16, 4, epsilon=(1.0, 0.01, 2000), random_state=0)
        >>> returns = agent.learn(env, 5000)              # doctest: +SKIP
        >>> policy = agent.q_table_.argmax(axis=1)        # doctest: +SKIP
    """

    def __init__(self, n_states, n_actions, learning_rate=0.1, gamma=0.99,
                 epsilon=(1.0, 0.05, 1000), random_state=None):
        who = "QLearning"
        self.n_states = _size(n_states, who, "n_states", "observation space")
        self.n_actions = _size(n_actions, who, "n_actions", "action space")
        for arg, value, low, high in (("learning_rate", learning_rate, 0.0, 1.0),
                                      ("gamma", gamma, 0.0, 1.0)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                    or not low <= value <= high or (arg == "learning_rate" and value == 0):
                raise ValueError(f"{who}: `{arg}` must be a number in "
                                 f"{'(0, 1]' if arg == 'learning_rate' else '[0, 1]'}, got "
                                 f"{value!r}.")
        self.learning_rate = float(learning_rate)
        self.gamma = float(gamma)
        self.epsilon = epsilon
        self._epsilon = as_schedule(epsilon, who)
        self.random_state = random_state
        self._rng = make_rng(random_state)
        self.q_table_ = numpy.zeros((self.n_states, self.n_actions))
        self.episodes_ = 0

    # -- acting ----------------------------------------------------------------------------
    def _check_state(self, state):
        if isinstance(state, numpy.ndarray) and state.ndim == 0:
            state = state.item()
        if isinstance(state, bool) or not isinstance(state, numbers.Integral) \
                or not 0 <= state < self.n_states:
            raise ValueError(f"QLearning: a state must be an int in [0, {self.n_states}), got "
                             f"{state!r}. Is the observation space Discrete({self.n_states})?")
        return int(state)

    def _greedy(self, state):
        # break ties at random: argmax would always pick the first of equal values, which
        # keeps an untrained agent walking into the same wall
        row = self.q_table_[state]
        best = numpy.flatnonzero(row == row.max())
        return int(best[0]) if len(best) == 1 else int(self._rng.choice(best))

    def act(self, state, greedy=False) -> int:
        """The action for ``state``: greedy, or ε-greedy with the current ε.

        Args:
            state: an int in ``[0, n_states)``.
            greedy: take the best action (ties broken at random) instead of exploring.

        Returns:
            int action in ``[0, n_actions)``.
        """
        state = self._check_state(state)
        if not greedy and self._rng.random() < self._epsilon(self.episodes_):
            return int(self._rng.integers(self.n_actions))
        return self._greedy(state)

    # -- learning --------------------------------------------------------------------------
    def update(self, state, action, reward, next_state, terminated) -> float:
        """One Q-learning update; returns the TD error ``r + γ·max Q(s') − Q(s, a)``.

        Args:
            state, action, reward, next_state: one transition.
            terminated: True when ``next_state`` is terminal (no bootstrapping).

        Returns:
            float, the TD error before the update.
        """
        q = self.q_table_
        target = reward + (0.0 if terminated else self.gamma * q[next_state].max())
        delta = target - q[state, action]
        q[state, action] += self.learning_rate * delta
        return float(delta)

    def _check_env(self, env):
        check_env(env, "QLearning")
        n_s = discrete_size(env.observation_space, "QLearning", "observation space")
        n_a = discrete_size(env.action_space, "QLearning", "action space")
        if (n_s, n_a) != (self.n_states, self.n_actions):
            raise ValueError(f"QLearning: the agent has {self.n_states} states and "
                             f"{self.n_actions} actions, but the environment has {n_s} states "
                             f"({env.observation_space}) and {n_a} actions ({env.action_space}).")

    def learn(self, env, episodes) -> numpy.ndarray:
        """Run ``episodes`` episodes of ε-greedy Q-learning in ``env``.

        Args:
            env: a gymnasium environment with Discrete observation and action spaces.
            episodes: number of episodes (each ends when terminated or truncated).

        Returns:
            float64 array ``(episodes,)``: the (undiscounted) return of each episode.
        """
        episodes = check_count("QLearning.learn", "episodes", episodes)
        self._check_env(env)
        rng, q, lr, gamma = self._rng, self.q_table_, self.learning_rate, self.gamma
        returns = numpy.zeros(episodes)
        env.action_space.seed(seed_from(rng))
        for e in range(episodes):
            state, _ = env.reset(seed=seed_from(rng))
            eps = self._epsilon(self.episodes_)
            total, done = 0.0, False
            while not done:
                if rng.random() < eps:
                    action = int(rng.integers(self.n_actions))
                else:
                    action = self._greedy(state)
                next_state, reward, terminated, truncated, _ = env.step(action)
                target = reward + (0.0 if terminated else gamma * q[next_state].max())
                q[state, action] += lr * (target - q[state, action])
                total += reward
                state = next_state
                done = terminated or truncated
            returns[e] = total
            self.episodes_ += 1
        return returns

    def evaluate(self, env, episodes=100):
        """Mean and standard deviation of the greedy policy's return over ``episodes`` episodes.

        Args:
            env: the environment.
            episodes: number of evaluation episodes.

        Returns:
            ``(mean_return, std_return)`` as floats.
        """
        episodes = check_count("QLearning.evaluate", "episodes", episodes)
        self._check_env(env)
        returns = numpy.zeros(episodes)
        for e in range(episodes):
            state, _ = env.reset(seed=seed_from(self._rng))
            done = False
            while not done:
                state, reward, terminated, truncated, _ = env.step(self._greedy(state))
                returns[e] += reward
                done = terminated or truncated
        return float(returns.mean()), float(returns.std())
