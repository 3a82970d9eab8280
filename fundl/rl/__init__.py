"""Reinforcement learning on gymnasium environments: tabular Q-learning and deep Q-learning.

- :class:`QLearning`: tabular Q-learning with ε-greedy exploration (FrozenLake, Taxi).
- :class:`DQN`: deep Q-networks (Mnih et al., 2015) with experience replay, a target network,
  Double DQN, the Huber loss and gradient clipping, on any fundl model.
- :class:`ReplayBuffer`: preallocated uniform replay, storing stacked Atari frames once.
- schedules (:class:`LinearSchedule`, :class:`ExponentialSchedule`) and callbacks
  (:class:`Callback`, :class:`LambdaCallback`) with ``on_step`` / ``on_episode_end`` hooks.

gymnasium is an optional dependency (``pip install 'fundl[rl]'``; Atari: ``'fundl[atari]'``);
the agents only need an object with gymnasium's ``reset``/``step`` API and spaces.

Example:
    >>> import gymnasium as gym
    >>> env = gym.make("CartPole-v1")
    >>> agent = fl.rl.DQN(fl.zoo.mlp_q_network(4, 2), env.action_space, random_state=0)
    >>> agent.learn(env, total_steps=20_000).evaluate(env, episodes=10)   # doctest: +SKIP
"""
from .callbacks import Callback, EvalCallback, LambdaCallback
from .dqn import DQN
from .qlearning import QLearning
from .replay import ReplayBuffer
from .schedules import ExponentialSchedule, LinearSchedule

__all__ = ["Callback", "DQN", "EvalCallback", "ExponentialSchedule", "LambdaCallback",
           "LinearSchedule", "QLearning", "ReplayBuffer"]
