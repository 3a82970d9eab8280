"""Exploration schedules: ε as a function of the step (DQN) or episode (Q-learning) count.

A schedule is any callable ``t -> float``. :class:`LinearSchedule` is the one DQN uses (the
Nature paper anneals ε linearly from 1 to 0.1 over the first million frames);
:class:`ExponentialSchedule` is the usual choice for tabular Q-learning.

Example:
    >>> eps = fl.rl.LinearSchedule(1.0, 0.05, 10_000)
    >>> eps(0), eps(5_000), eps(20_000)
    (1.0, 0.525, 0.05)
"""
from __future__ import annotations

import math
import numbers

from ._spaces import check_real as _number


class LinearSchedule:
    """Linear interpolation from ``start`` to ``end`` over ``duration`` steps, then ``end``.

    ``value(t) = start + (end - start) * min(t / duration, 1)``.

    Args:
        start: the value at ``t = 0``.
        end: the value from ``t = duration`` on.
        duration: number of steps (or episodes) of the ramp, > 0; 0 means ``end`` at once.

    Example:
        >>> LinearSchedule(1.0, 0.1, 100)(50)
        0.55
    """

    def __init__(self, start, end, duration):
        self.start = _number("LinearSchedule", "start", start)
        self.end = _number("LinearSchedule", "end", end)
        self.duration = _number("LinearSchedule", "duration", duration, 0.0)

    def __call__(self, t) -> float:
        if self.duration == 0 or t >= self.duration:
            return self.end
        return self.start + (self.end - self.start) * (t / self.duration)

    def __repr__(self):
        return f"LinearSchedule(start={self.start}, end={self.end}, duration={self.duration:g})"


class ExponentialSchedule:
    """``max(end, start * decay**t)``: geometric decay towards a floor.

    Args:
        start: the value at ``t = 0``.
        end: the floor.
        decay: the factor per step, in (0, 1].

    Example:
        >>> ExponentialSchedule(1.0, 0.01, 0.5)(3)
        0.125
    """

    def __init__(self, start, end, decay):
        self.start = _number("ExponentialSchedule", "start", start)
        self.end = _number("ExponentialSchedule", "end", end)
        self.decay = _number("ExponentialSchedule", "decay", decay, 0.0, 1.0)
        if self.decay == 0.0:
            raise ValueError("ExponentialSchedule: `decay` must be > 0, got 0.")

    def __call__(self, t) -> float:
        return max(self.end, self.start * math.pow(self.decay, t))

    def __repr__(self):
        return f"ExponentialSchedule(start={self.start}, end={self.end}, decay={self.decay})"


def as_schedule(value, owner, arg="epsilon"):
    """A schedule from a float (constant), a ``(start, end, duration)`` tuple or a callable.

    Args:
        value: the user's setting.
        owner: the class name for error messages.
        arg: the argument name for error messages.

    Returns:
        A callable ``t -> float``.
    """
    if callable(value):
        return value
    if isinstance(value, (tuple, list)):
        if len(value) != 3:
            raise ValueError(f"{owner}: `{arg}` as a sequence must be (start, end, duration), "
                             f"got {value!r}.")
        return LinearSchedule(*value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        v = _number(owner, arg, value)
        return LinearSchedule(v, v, 0)
    raise TypeError(f"{owner}: `{arg}` must be a float, a (start, end, duration) tuple or a "
                    f"callable t -> float, got {value!r} of type {type(value).__name__}.")
