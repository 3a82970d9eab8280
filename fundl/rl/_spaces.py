"""Checks of gymnasium spaces, environments and seeds shared by the agents."""
from __future__ import annotations

import numbers

import numpy


def is_discrete(space) -> bool:
    """True for a gymnasium ``Discrete`` space (checked without importing gymnasium)."""
    return type(space).__name__ == "Discrete" and hasattr(space, "n")


def discrete_size(space, owner, what):
    """``space.n`` for a Discrete space, else a TypeError naming the space."""
    if not is_discrete(space):
        raise TypeError(f"{owner}: the environment's {what} must be a gymnasium Discrete space, "
                        f"got {space!r}. {owner} handles finitely many {what.split()[0]}s only"
                        + (" (a continuous action space needs an actor-critic method such as "
                           "DDPG/SAC, or discretised actions)." if what == "action space"
                           else " (discretise continuous observations, or use DQN)."))
    start = int(getattr(space, "start", 0))
    if start != 0:
        raise ValueError(f"{owner}: Discrete {what} must start at 0, got start={start}.")
    return int(space.n)


def check_real(owner, arg, value, low=None, high=None, allow_none=False):
    """``value`` as a float, checked to lie in ``[low, high]`` (None: no bound on that side)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: `{arg}` must be a number, got {value!r} of type "
                        f"{type(value).__name__}.")
    value = float(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{owner}: `{arg}` must lie in [{low}, {high}], got {value}.")
    return value


def check_count(owner, arg, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{owner}: `{arg}` must be a positive integer, got {value!r}.")
    return int(value)


def check_env(env, owner):
    """An environment must have reset/step and spaces (gymnasium's API)."""
    for attr in ("reset", "step", "action_space", "observation_space"):
        if not hasattr(env, attr):
            raise TypeError(f"{owner}: expected a gymnasium environment (with reset, step, "
                            f"action_space, observation_space), got {type(env).__name__} "
                            f"without `{attr}`.")


def seed_from(rng):
    """A fresh int seed drawn from a NumPy Generator (for env.reset(seed=...))."""
    return int(rng.integers(0, 2 ** 31 - 1))


def make_rng(random_state):
    if random_state is None or isinstance(random_state, numbers.Integral):
        return numpy.random.default_rng(random_state)
    if isinstance(random_state, numpy.random.Generator):
        return random_state
    raise TypeError(f"random_state must be None, an int or a numpy.random.Generator, got "
                    f"{type(random_state).__name__}.")
