"""Callbacks for agents: hooks that ``DQN.learn`` calls while it trains.

An RL callback is a :class:`fundl.callbacks.Callback` (so ``on_train_begin`` and
``on_train_end`` mean what they mean in ``fit``) with two more hooks for the RL loop:
``on_step`` after every environment step and ``on_episode_end`` after every finished
episode. ``self.model`` and ``self.agent`` are the agent; set ``agent.stop_training = True``
to end ``learn`` after the current step. Keras callbacks that only use ``on_train_begin`` /
``on_train_end`` work unchanged; the per-epoch and per-batch hooks of ``fit`` are not called.

Example:
    >>> class StopWhenSolved(fl.rl.Callback):
    ...     def on_episode_end(self, episode, logs=None):
    ...         if logs["mean_return_100"] >= 475:
    ...             self.agent.stop_training = True
    >>> agent.learn(env, 50_000, callbacks=[StopWhenSolved()])   # doctest: +SKIP
"""
from __future__ import annotations

from ..callbacks import Callback as _KerasCallback


class Callback(_KerasCallback):
    """Base class of agent callbacks; override the hooks you need.

    Hooks (``logs`` is a dict of floats):
        ``on_train_begin(logs)``: once, before the first step; ``logs`` has ``total_steps``.
        ``on_step(step, logs)``: after each environment step (``step`` counts from 1);
            ``logs`` has ``reward``, ``epsilon`` and, on steps that trained, ``loss``.
        ``on_episode_end(episode, logs)``: after each episode (``episode`` counts from 0);
            ``logs`` has ``return``, ``length``, ``step`` and ``mean_return_100``.
        ``on_train_end(logs)``: once, at the end of ``learn``.

    Attributes:
        agent: the agent being trained (also as ``model``, the Keras name).
    """

    @property
    def agent(self):
        return self.model

    def on_step(self, step, logs=None):
        """Called after each environment step."""

    def on_episode_end(self, episode, logs=None):
        """Called after each finished episode (terminated or truncated)."""


class LambdaCallback(Callback):
    """A callback from plain functions, e.g. ``LambdaCallback(on_episode_end=print)``.

    Args:
        on_train_begin, on_step, on_episode_end, on_train_end: functions taking the same
            arguments as the hooks of :class:`Callback`; omitted ones do nothing.

    Example:
        >>> returns = []
        >>> cb = fl.rl.LambdaCallback(
        ...     on_episode_end=lambda episode, logs: returns.append(logs["return"]))
    """

    def __init__(self, on_train_begin=None, on_step=None, on_episode_end=None,
                 on_train_end=None):
        super().__init__()
        for name, fn in (("on_train_begin", on_train_begin), ("on_step", on_step),
                         ("on_episode_end", on_episode_end), ("on_train_end", on_train_end)):
            if fn is not None:
                if not callable(fn):
                    raise TypeError(f"LambdaCallback: `{name}` must be callable, got "
                                    f"{type(fn).__name__}.")
                setattr(self, name, fn)


class _CallbackList:
    """The callbacks of one ``learn`` call; per hook, only those that override it are called."""

    def __init__(self, callbacks, agent):
        callbacks = list(callbacks or [])
        for cb in callbacks:
            if not isinstance(cb, _KerasCallback):
                raise TypeError(f"learn: callbacks must be fundl.rl.Callback (or "
                                f"fundl.callbacks.Callback) objects, got {type(cb).__name__}.")
            cb.set_model(agent)
        self.callbacks = callbacks

        def overriding(name):
            out = []
            for cb in callbacks:
                fn = getattr(cb, name, None)
                base = getattr(Callback, name, None)
                if fn is None:
                    continue
                if getattr(fn, "__func__", None) is base or fn is base:
                    continue
                out.append(fn)
            return out

        self.train_begin = overriding("on_train_begin")
        self.step = overriding("on_step")
        self.episode_end = overriding("on_episode_end")
        self.train_end = overriding("on_train_end")


class EvalCallback(Callback):
    """Evaluate the greedy policy every ``eval_every`` steps; optionally keep the best weights.

    Evaluation runs on its own environment (its steps are not training steps). With
    ``keep_best``, the Q-network's weights at the best evaluation are kept in
    ``best_weights`` (and restored into the agent at the end of training when
    ``restore_best``), a common way to report DQN results, since its performance can dip
    late in training.

    Args:
        eval_env: the evaluation environment (a separate instance from the training one).
        eval_every: environment steps between evaluations.
        episodes: episodes per evaluation. Default 10.
        keep_best: keep a copy of the weights at the best mean return. Default True.
        restore_best: load the best weights into the agent when training ends. Default False.
        stop_at: stop training once an evaluation's mean return reaches this (None: never).

    Attributes:
        evaluations: list of ``(step, mean_return, std_return)``.
        best_mean, best_step, best_weights: the best evaluation and the weights then.

    Example:
        >>> cb = fl.rl.EvalCallback(gym.make("CartPole-v1"), eval_every=5_000)
        >>> agent.learn(env, 50_000, callbacks=[cb])          # doctest: +SKIP
        >>> cb.evaluations[-1]                                 # doctest: +SKIP
    """

    def __init__(self, eval_env, eval_every, episodes=10, keep_best=True, restore_best=False,
                 stop_at=None):
        super().__init__()
        self.eval_env = eval_env
        if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 1:
            raise ValueError(f"EvalCallback: `eval_every` must be a positive int, got "
                             f"{eval_every!r}.")
        self.eval_every = eval_every
        self.episodes = episodes
        self.keep_best = keep_best
        self.restore_best = restore_best
        self.stop_at = stop_at
        self.evaluations = []
        self.best_mean, self.best_step, self.best_weights = float("-inf"), None, None

    def on_step(self, step, logs=None):
        if step % self.eval_every:
            return
        mean, std = self.agent.evaluate(self.eval_env, self.episodes)
        self.evaluations.append((step, mean, std))
        if mean > self.best_mean:
            self.best_mean, self.best_step = mean, step
            if self.keep_best:
                self.best_weights = self.agent.q_network.get_weights()
        if self.stop_at is not None and mean >= self.stop_at:
            self.agent.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best and self.best_weights is not None:
            self.agent.q_network.set_weights(self.best_weights)
            self.agent.sync_target()
