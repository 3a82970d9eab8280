"""Learning-rate schedules: the learning rate as a function of the optimizer step (Keras 3).

Pass a schedule as an optimizer's ``learning_rate``; before each step the optimizer calls it
with its ``iterations`` (0 for the first step) and uses the float it returns.

Example:
    >>> lr = fl.optimizers.schedules.ExponentialDecay(0.1, decay_steps=100, decay_rate=0.5)
    >>> lr(0), lr(100)
    (0.1, 0.05)
    >>> opt = fl.optimizers.SGD(learning_rate=lr)
"""
from __future__ import annotations

import math

_REGISTRY: dict = {}


def register(cls):
    """Class decorator: make a schedule class known to :func:`deserialize`.

    Args:
        cls: a :class:`LearningRateSchedule` subclass, registered under its class name.

    Returns:
        ``cls`` unchanged.
    """
    if not (isinstance(cls, type) and issubclass(cls, LearningRateSchedule)):
        raise TypeError(f"schedules.register: expected a LearningRateSchedule subclass, got "
                        f"{cls!r}.")
    _REGISTRY[cls.__name__] = cls
    return cls


class LearningRateSchedule:
    """Base class: a callable mapping the optimizer step to a learning rate.

    Subclasses implement ``__call__(step) -> float`` and ``get_config()`` (the ``__init__``
    arguments); ``from_config`` is ``cls(**config)``.

    Example:
        >>> class InverseStep(fl.optimizers.schedules.LearningRateSchedule):
        ...     def __init__(self, lr):
        ...         self.lr = lr
        ...     def __call__(self, step):
        ...         return self.lr / (step + 1)
        ...     def get_config(self):
        ...         return {"lr": self.lr}
    """

    def __call__(self, step) -> float:
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must "
                                  "override __call__(self, step).")

    def get_config(self) -> dict:
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must "
                                  "override get_config() to be serialisable.")

    @classmethod
    def from_config(cls, config: dict) -> "LearningRateSchedule":
        """Create the schedule from :meth:`get_config` output."""
        return cls(**config)

    def __repr__(self) -> str:
        try:
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        except NotImplementedError:
            args = ""
        return f"{type(self).__name__}({args})"


def _positive_steps(owner, decay_steps):
    if not decay_steps > 0:
        raise ValueError(f"{owner}: `decay_steps` must be > 0, got decay_steps={decay_steps}.")


@register
class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: positive number of steps over which the rate is multiplied by
            ``decay_rate`` once.
        decay_rate: the factor per ``decay_steps``.
        staircase: use ``floor(step / decay_steps)``, so the rate changes in discrete jumps.
        name: a name kept in the config (Keras compatibility).

    Returns:
        Called with a step, a float.

    Example:
        >>> ExponentialDecay(1.0, 10, 0.5, staircase=True)(19)
        0.5
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        _positive_steps("ExponentialDecay", decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def __call__(self, step) -> float:
        p = float(step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return float(self.initial_learning_rate * self.decay_rate ** p)

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


@register
class PiecewiseConstantDecay(LearningRateSchedule):
    """A constant rate per interval of steps.

    ``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < step <= boundaries[i]``, and ``values[-1]`` after ``boundaries[-1]``.

    Args:
        boundaries: strictly increasing step numbers.
        values: one more value than boundaries.
        name: a name kept in the config (Keras compatibility).

    Returns:
        Called with a step, a float.

    Example:
        >>> s = PiecewiseConstantDecay([100, 200], [1.0, 0.5, 0.1])
        >>> s(100), s(101), s(1000)
        (1.0, 0.5, 0.1)
    """

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        boundaries, values = list(boundaries), list(values)
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "PiecewiseConstantDecay: `values` must have one more element than `boundaries`; "
                f"got {len(boundaries)} boundaries {boundaries} and {len(values)} values "
                f"{values}."
            )
        if any(b >= c for b, c in zip(boundaries, boundaries[1:])):
            raise ValueError(f"PiecewiseConstantDecay: `boundaries` must be strictly increasing, "
                             f"got {boundaries}.")
        self.boundaries = boundaries
        self.values = values
        self.name = name

    def __call__(self, step) -> float:
        for b, v in zip(self.boundaries, self.values):
            if step <= b:
                return float(v)
        return float(self.values[-1])

    def get_config(self) -> dict:
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


@register
class CosineDecay(LearningRateSchedule):
    """Cosine decay, optionally after a linear warm-up (SGDR without restarts).

    Without warm-up (``warmup_target=None``), with ``s = min(step, decay_steps)``:
    ``initial_learning_rate * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha)``.
    With warm-up, the rate rises linearly from ``initial_learning_rate`` to ``warmup_target``
    over ``warmup_steps``, then decays as above from ``warmup_target`` over ``decay_steps``.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: positive number of steps to decay over.
        alpha: the final rate as a fraction of the rate decayed from.
        warmup_target: the rate reached at the end of the warm-up, or None for no warm-up.
        warmup_steps: length of the warm-up.
        name: a name kept in the config (Keras compatibility).

    Returns:
        Called with a step, a float.

    Example:
        >>> CosineDecay(1.0, 100)(50)
        0.5
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, warmup_target=None,
                 warmup_steps=0, name="CosineDecay"):
        _positive_steps("CosineDecay", decay_steps)
        if warmup_target is not None and not warmup_steps >= 0:
            raise ValueError(f"CosineDecay: `warmup_steps` must be >= 0, got {warmup_steps}.")
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.warmup_target = warmup_target
        self.warmup_steps = warmup_steps
        self.name = name

    def _decay(self, step, start):
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))
        return start * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step) -> float:
        step = float(step)
        if self.warmup_target is None:
            return float(self._decay(min(step, self.decay_steps), self.initial_learning_rate))
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            delta = self.warmup_target - self.initial_learning_rate
            return float(delta * step / self.warmup_steps + self.initial_learning_rate)
        return float(self._decay(step - self.warmup_steps, self.warmup_target))

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps,
                "name": self.name}


def serialize(schedule: LearningRateSchedule) -> dict:
    """A schedule as ``{"class_name": ..., "config": ...}`` (JSON-safe).

    Args:
        schedule: a :class:`LearningRateSchedule`.

    Returns:
        A dict for :func:`deserialize`.
    """
    if not isinstance(schedule, LearningRateSchedule):
        raise TypeError(f"schedules.serialize: expected a LearningRateSchedule, got "
                        f"{type(schedule).__name__}.")
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config: dict) -> LearningRateSchedule:
    """Rebuild a schedule from :func:`serialize` output (registered classes only).

    Args:
        config: ``{"class_name": str, "config": dict}`` (extra Keras keys are ignored).

    Returns:
        A :class:`LearningRateSchedule`.
    """
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise TypeError(f"schedules.deserialize: expected a dict with a 'class_name' string, "
                        f"got {config!r}.")
    cls = _REGISTRY.get(config["class_name"])
    if cls is None:
        raise ValueError(f"schedules.deserialize: unknown schedule {config['class_name']!r}; "
                         f"known: {sorted(_REGISTRY)}. Register custom schedules with "
                         "fl.optimizers.schedules.register.")
    return cls.from_config(config.get("config") or {})
