"""The Optimizer base class: everything an update rule shares.

An optimizer turns gradients into in-place changes of weights. The base class does the
bookkeeping that is the same for every rule, in Keras 3's order:

1. drop weights whose gradient is None (with a warning);
2. clip the gradients (``clipnorm`` per weight, ``global_clipnorm`` over all, or ``clipvalue``);
3. decoupled weight decay, ``w -= w * weight_decay * lr``;
4. the rule itself, :meth:`Optimizer.update_step`, once per weight;
5. each weight that has a ``constraint`` attribute (set by ``add_weight(constraint=...)``,
   e.g. ``Dense(kernel_constraint=...)``) is replaced by ``constraint(weight)``;
6. ``iterations += 1``.

A subclass only names its per-weight arrays (:meth:`Optimizer.slot_specs`) and writes
:meth:`Optimizer.update_step` in a few lines of ``xp`` math that update ``weight.data`` and
the slots in place, so the same code runs on NumPy and CuPy.

Example:
    >>> opt = fl.optimizers.SGD(learning_rate=0.1)
    >>> w = fl.tensor([1.0, 2.0])
    >>> opt.apply_gradients([(numpy.array([1.0, 1.0], dtype="float32"), w)])
    1
    >>> w.numpy()
    array([0.9, 1.9], dtype=float32)
"""
from __future__ import annotations

import numbers
import re
import warnings

import numpy  # only for host-side copies in get_state; the update math uses xp

from .. import backend
from ..autograd import no_grad
from ..tensor import Tensor
from . import schedules

_REGISTRY: dict = {}

# Keras 3 optimizer arguments fundl does not implement; a Keras config may carry them with
# these "off" values, which from_config accepts and drops.
_KERAS_ONLY_OFF = {"use_ema": False, "ema_overwrite_frequency": None, "loss_scale_factor": None,
                   "gradient_accumulation_steps": None}


def register(cls):
    """Class decorator: make an optimizer class known to :func:`get` and :func:`deserialize`.

    Args:
        cls: an :class:`Optimizer` subclass; it is registered under its class name.

    Returns:
        ``cls`` unchanged.

    Example:
        >>> @fl.optimizers.register
        ... class MySGD(fl.optimizers.SGD):
        ...     pass
    """
    if not (isinstance(cls, type) and issubclass(cls, Optimizer)):
        raise TypeError(f"optimizers.register: expected an Optimizer subclass, got {cls!r}.")
    _REGISTRY[cls.__name__] = cls
    return cls


def _real(owner, arg, value, low=None, high=None, allow_none=False):
    """``value`` as a Python float, checked to lie in ``[low, high]``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: `{arg}` must be a number, got {value!r} of type "
                        f"{type(value).__name__}.")
    value = float(value)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{owner}: `{arg}` must be {bounds}, got {value}.")
    return value


class Optimizer:
    """Base class of the update rules (Keras 3 semantics).

    Args:
        learning_rate: a float, or a :class:`~fundl.optimizers.schedules.LearningRateSchedule`
            evaluated at :attr:`iterations` before each step.
        weight_decay: decoupled weight decay: before each update, ``w -= w * weight_decay * lr``.
            None (default) or 0 turns it off.
        clipnorm: clip each weight's gradient to at most this L2 norm.
        clipvalue: clip each gradient element to ``[-clipvalue, clipvalue]``.
        global_clipnorm: scale all gradients together so their joint L2 norm is at most this.
            At most one of ``clipnorm``, ``clipvalue``, ``global_clipnorm`` may be set.
        name: the optimizer's name (used in error messages); default: the rule's Keras name.

    Attributes:
        iterations: number of steps applied so far (an int).

    Example:
        >>> opt = fl.optimizers.Adam(learning_rate=1e-3, clipnorm=1.0)
        >>> opt.apply_gradients(zip(grads, model.trainable_weights))   # doctest: +SKIP
    """

    default_name = "optimizer"

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None):
        owner = type(self).__name__
        self.name = self.default_name if name is None else str(name)
        self._learning_rate = self._check_learning_rate(learning_rate)
        self.weight_decay = _real(owner, "weight_decay", weight_decay, 0.0, allow_none=True)
        self.clipnorm = _real(owner, "clipnorm", clipnorm, 0.0, allow_none=True)
        self.clipvalue = _real(owner, "clipvalue", clipvalue, 0.0, allow_none=True)
        self.global_clipnorm = _real(owner, "global_clipnorm", global_clipnorm, 0.0,
                                     allow_none=True)
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                f"{owner}: only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set; "
                f"got clipnorm={clipnorm}, clipvalue={clipvalue}, "
                f"global_clipnorm={global_clipnorm}."
            )
        self.iterations = 0
        self.built = False
        self._weights = []      # Tensors in index order; holding them keeps their id()s unique
        self._index = {}        # id(weight) -> index into _weights and _slots
        self._slots = []        # per weight index: {slot name: array like the weight}
        self._types = []        # per weight index: array type the slots live on (device check)
        self._exclude_ids = set()
        self._exclude_pattern = None
        self._scratch_buffers = {}  # (k, array type, dtype) -> flat array, see _scratch

    # -- learning rate ---------------------------------------------------------------------
    def _check_learning_rate(self, lr):
        if isinstance(lr, schedules.LearningRateSchedule):
            return lr
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
            raise TypeError(
                f"{type(self).__name__} '{self.name}': `learning_rate` must be a float or a "
                f"fundl.optimizers.schedules.LearningRateSchedule, got {lr!r} of type "
                f"{type(lr).__name__}."
            )
        return float(lr)

    @property
    def learning_rate(self) -> float:
        """The current learning rate (a schedule is evaluated at :attr:`iterations`).

        Assign a float to change it (as ``ReduceLROnPlateau`` does) or a new schedule.
        """
        lr = self._learning_rate
        if isinstance(lr, schedules.LearningRateSchedule):
            return float(lr(self.iterations))
        return lr

    @learning_rate.setter
    def learning_rate(self, value):
        if (isinstance(self._learning_rate, schedules.LearningRateSchedule)
                and not isinstance(value, schedules.LearningRateSchedule)):
            raise TypeError(
                f"{type(self).__name__} '{self.name}': this optimizer was created with a "
                f"learning-rate schedule ({type(self._learning_rate).__name__}), so a float "
                f"learning rate cannot be assigned (got {value!r}). Assign a new schedule, or "
                "create the optimizer with a float learning_rate if it must be settable."
            )
        self._learning_rate = self._check_learning_rate(value)

    # -- slots -----------------------------------------------------------------------------
    def slot_specs(self) -> list:
        """The per-weight arrays this rule keeps, as ``[(name, initial_value), ...]``.

        Returns:
            A list of ``(str, float)`` pairs; each slot is an array of its weight's shape and
            dtype filled with ``initial_value``. Subclasses override this; the base keeps none.
        """
        return []

    def build(self, weights) -> None:
        """Create the slot arrays for ``weights`` (called automatically by :meth:`apply`).

        Weights already known are skipped, so calling it again with more weights only adds
        slots for the new ones. A weight's index (its position the first time it was seen) is
        the number in its :meth:`get_state` keys.

        Args:
            weights: an iterable of :class:`fundl.Tensor`.
        """
        specs = self.slot_specs()
        for w in weights:
            if id(w) in self._index:
                continue
            if not isinstance(w, Tensor):
                raise TypeError(
                    f"{type(self).__name__} '{self.name}': weights must be fundl.Tensor objects "
                    f"(updated in place), got {type(w).__name__}. Wrap the array with "
                    "fl.Tensor(array)."
                )
            if w.data.dtype.kind != "f":
                raise TypeError(
                    f"{type(self).__name__} '{self.name}': weights must be floating-point, got "
                    f"a weight {_describe(w)} of dtype {w.data.dtype}."
                )
            xp = backend.get_array_module(w.data)
            self._index[id(w)] = len(self._weights)
            self._weights.append(w)
            self._slots.append({name: (xp.zeros_like(w.data) if value == 0.0
                                       else xp.full_like(w.data, value))
                                for name, value in specs})
            self._types.append(type(w.data))
        self.built = True

    def slots(self, weight) -> dict:
        """The slot arrays of ``weight``, ``{name: array}``, updated in place by each step.

        Args:
            weight: a weight this optimizer was built with.

        Returns:
            A dict of arrays of the weight's shape (empty for plain SGD).
        """
        try:
            return self._slots[self._index[id(weight)]]
        except KeyError:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': unknown weight {_describe(weight)}; "
                "call build() or apply() with it first."
            ) from None

    def _scratch(self, like, k=0):
        """Temporary array ``k`` of ``like``'s shape, dtype and device, for an update step.

        One flat buffer per ``k`` (and dtype and device), as large as the largest weight,
        serves every weight in turn (steps update weights one after the other). Why: a fresh
        temporary of a large weight is new memory from the OS each step, whose page faults
        cost more than the arithmetic (an LSTM's 128 x 512 recurrent kernel: 96 -> 15 us).
        """
        xp = backend.get_array_module(like)
        key = (k, type(like), like.dtype)
        buf = self._scratch_buffers.get(key)
        if buf is None or buf.size < like.size:
            buf = self._scratch_buffers[key] = xp.empty(like.size, dtype=like.dtype)
        return buf[:like.size].reshape(like.shape)

    def _follow_device(self, i, data):
        """Move weight ``i``'s slots to where its data now lives (after ``model.to(...)``)."""
        device = backend.device_of(data)
        slots = self._slots[i]
        for name in slots:
            slots[name] = backend.to_device(slots[name], device)
        self._types[i] = type(data)

    # -- applying gradients ----------------------------------------------------------------
    def apply_gradients(self, grads_and_weights) -> int:
        """Apply one step from ``(gradient, weight)`` pairs (Keras's signature).

        Args:
            grads_and_weights: iterable of ``(grad, weight)``; ``grad`` is an array or Tensor
                of the weight's shape (or None to skip that weight), ``weight`` a Tensor.

        Returns:
            :attr:`iterations` after the step.

        Example:
            >>> opt.apply_gradients(zip([w.grad for w in ws], ws))   # doctest: +SKIP
        """
        pairs = list(grads_and_weights)
        if not pairs:
            return self.iterations
        grads, weights = zip(*pairs)
        self._apply(grads, weights, stacklevel=3)
        return self.iterations

    def apply(self, grads, weights=None) -> None:
        """Apply one step: update each weight in place from its gradient.

        Args:
            grads: list of arrays or Tensors (None entries are skipped with a warning), one per
                weight, each of its weight's shape.
            weights: list of :class:`fundl.Tensor`; may be omitted after :meth:`build`, then
                the built weights are used in order.

        Raises:
            ValueError: lengths differ, a gradient's shape differs from its weight's, or every
                gradient is None.
        """
        self._apply(grads, weights, stacklevel=3)

    def _apply(self, grads, weights, stacklevel):
        grads = list(grads)
        if not grads:
            return
        who = f"{type(self).__name__} '{self.name}'"
        if weights is None:
            if not self.built:
                raise ValueError(f"{who}: apply(grads) without weights needs a built optimizer; "
                                 "pass the weights or call build(weights) first.")
            weights = self._weights
        else:
            weights = list(weights)
        if len(grads) != len(weights):
            raise ValueError(f"{who}: got {len(grads)} gradients for {len(weights)} weights; "
                             "pass exactly one gradient (or None) per weight.")
        index = self._index
        if not self.built or any(id(w) not in index for w in weights):
            self.build(weights)

        pairs, missing = [], []
        for g, w in zip(grads, weights):
            if g is None:
                missing.append(_describe(w))
                continue
            if isinstance(g, Tensor):
                g = g.data
            data = w.data
            if getattr(g, "shape", None) != data.shape:
                if not hasattr(g, "shape"):
                    raise TypeError(f"{who}: gradients must be arrays or Tensors, got "
                                    f"{type(g).__name__} for weight {_describe(w)}.")
                raise ValueError(
                    f"{who}: the gradient for weight {index[id(w)]} ({_describe(w)}) has shape "
                    f"{tuple(g.shape)} but the weight has shape {tuple(data.shape)}. Pass "
                    "gradients in the same order as the weights."
                )
            if g.dtype != data.dtype:
                g = g.astype(data.dtype)
            i = index[id(w)]
            if type(data) is not self._types[i]:
                self._follow_device(i, data)
            pairs.append((g, w))
        if missing:
            if not pairs:
                raise ValueError(f"{who}: no gradients provided for any weight (all None).")
            warnings.warn(f"{who}: gradients do not exist for weights {missing}; they are left "
                          "unchanged. Is the loss connected to them?", stacklevel=stacklevel)

        grads = self._clip([g for g, _ in pairs])
        lr = self.learning_rate
        if self.weight_decay:
            for _, w in pairs:
                if self._use_weight_decay(w):
                    w.data -= w.data * (self.weight_decay * lr)
        for g, (_, w) in zip(grads, pairs):
            self.update_step(g, w, lr)
        for _, w in pairs:  # one getattr per weight: free when no weight has a constraint
            if getattr(w, "constraint", None) is not None:
                self._constrain(w)
        self.iterations += 1

    def _constrain(self, w):
        """Project ``w`` onto its ``constraint`` after the update (Keras 3's order).

        The constraint gets the raw array and returns the constrained one (an array or a
        Tensor); it is written back in place, outside any recorded graph.
        """
        with no_grad():
            new = w.constraint(w.data)
        if isinstance(new, Tensor):
            new = new.data
        if getattr(new, "shape", None) != w.data.shape:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': the constraint {w.constraint!r} of weight "
                f"{_describe(w)} returned {getattr(new, 'shape', type(new).__name__)}; a "
                "constraint must return an array of its weight's shape.")
        if new is not w.data:
            w.data[...] = new

    def update_step(self, grad, weight, learning_rate) -> None:
        """The update rule for one weight, in place: subclasses implement it.

        Args:
            grad: array of ``weight.data``'s shape and dtype (already clipped); never modified.
            weight: the :class:`fundl.Tensor` whose ``data`` is updated in place.
            learning_rate: the learning rate of this step, a float.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement update_step().")

    def _clip(self, grads):
        """Keras 3's gradient clipping; returns new arrays, never touches the inputs."""
        if self.clipnorm:
            c = self.clipnorm
            out = []
            for g in grads:
                xp = backend.get_array_module(g)
                flat = g.ravel()
                # c / max(norm, c): 1 below the threshold; NaN/inf norms poison the gradient
                # as in Keras, so TerminateOnNaN can see them.
                out.append(g * (c / xp.maximum(xp.sqrt(xp.dot(flat, flat)), c)))
            return out
        if self.global_clipnorm:
            c = self.global_clipnorm
            xp = backend.get_array_module(grads[0])
            norm = xp.sqrt(sum(xp.dot(g.ravel(), g.ravel()) for g in grads))
            scale = c / xp.maximum(norm, c) + (norm - norm)
            return [g * scale for g in grads]
        if self.clipvalue:
            v = self.clipvalue
            return [backend.get_array_module(g).clip(g, -v, v) for g in grads]
        return grads

    # -- weight decay exclusions -----------------------------------------------------------
    def exclude_from_weight_decay(self, var_list=None, var_names=None) -> None:
        """Exempt weights from ``weight_decay`` (Keras's method; e.g. biases, norm scales).

        Args:
            var_list: weights (Tensors) to exempt.
            var_names: strings; a weight whose ``name`` contains any of them is exempt.

        Example:
            >>> opt = fl.optimizers.AdamW()
            >>> opt.exclude_from_weight_decay(var_names=["bias", "gamma"])
        """
        self._exclude_ids = {id(w) for w in (var_list or ())}
        self._exclude_pattern = (re.compile("|".join(re.escape(s) for s in var_names))
                                 if var_names else None)

    def _use_weight_decay(self, w):
        if id(w) in self._exclude_ids:
            return False
        return not (self._exclude_pattern is not None and w.name
                    and self._exclude_pattern.search(w.name))

    # -- state -----------------------------------------------------------------------------
    def get_state(self) -> dict:
        """The optimizer's state as NumPy arrays with stable keys, for saving.

        Returns:
            ``{"iterations": int64 0-d array, "<i>.<slot>": array of weight i's shape, ...}``,
            copies (later steps do not change them). Keys are like ``"0.momentum"``,
            ``"3.velocity"``: weight index (order of :meth:`build`) and slot name.

        Example:
            >>> state = opt.get_state()                     # doctest: +SKIP
            >>> opt2.set_state(state, model.trainable_weights)   # doctest: +SKIP
        """
        state = {"iterations": numpy.array(self.iterations, dtype=numpy.int64)}
        for i, slots in enumerate(self._slots):
            for name, arr in slots.items():
                state[f"{i}.{name}"] = backend.to_numpy(arr).copy()
        return state

    def set_state(self, state: dict, weights) -> None:
        """Restore :meth:`get_state` output; builds the slots for ``weights`` if needed.

        Everything is checked before anything is written, so a mismatched state leaves the
        optimizer untouched.

        Args:
            state: dict from :meth:`get_state` (e.g. read back from a file).
            weights: the Tensors the state belongs to, in the order it was saved with.

        Raises:
            ValueError: a key is missing or unexpected, or an array's shape differs from its
                weight's (the message names the key and both shapes).
        """
        who = f"{type(self).__name__} '{self.name}'"
        weights = list(weights)
        for w in weights:
            if not isinstance(w, Tensor):
                raise TypeError(f"{who}: set_state expects fundl.Tensor weights, got "
                                f"{type(w).__name__}.")
        specs = self.slot_specs()
        expected = {"iterations": ()}
        for i, w in enumerate(weights):
            for name, _ in specs:
                expected[f"{i}.{name}"] = tuple(w.shape)
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise ValueError(
                f"{who}: the optimizer state does not match this optimizer and its "
                f"{len(weights)} weights: missing keys {missing}, unexpected keys {unexpected}. "
                "Was it saved from a different optimizer or model?"
            )
        for key, shape in expected.items():
            got = tuple(getattr(state[key], "shape", ()))
            if got != shape:
                raise ValueError(f"{who}: state entry {key!r} has shape {got} but this "
                                 f"optimizer expects {shape} (the shape of its weight).")
        iterations = state["iterations"]
        if getattr(iterations, "dtype", None) is not None and iterations.dtype.kind not in "iu":
            raise TypeError(f"{who}: state entry 'iterations' must be an integer, got dtype "
                            f"{iterations.dtype}.")
        self.build(weights)
        for i, w in enumerate(weights):
            slots = self._slots[self._index[id(w)]]
            for name, _ in specs:
                slots[name][...] = backend.to_device(state[f"{i}.{name}"],
                                                     backend.device_of(slots[name]))
        self.iterations = int(iterations)

    # -- config ----------------------------------------------------------------------------
    def get_config(self) -> dict:
        """The constructor arguments as a JSON-safe dict (a schedule as class name + config).

        Returns:
            ``{"name", "learning_rate", "weight_decay", "clipnorm", "global_clipnorm",
            "clipvalue", ...rule arguments}``; the learning rate is its current value.
        """
        lr = self._learning_rate
        return {
            "name": self.name,
            "learning_rate": (schedules.serialize(lr)
                              if isinstance(lr, schedules.LearningRateSchedule) else lr),
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
        }

    @classmethod
    def from_config(cls, config: dict) -> "Optimizer":
        """Create an optimizer from :meth:`get_config` output (or a Keras 3 config).

        Args:
            config: the dict; a ``learning_rate`` dict is deserialised as a schedule.

        Returns:
            A new, unbuilt optimizer.
        """
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        for key, off in _KERAS_ONLY_OFF.items():
            if key in config and config.pop(key) != off:
                raise ValueError(f"{cls.__name__}.from_config: Keras option {key!r} is not "
                                 f"supported by fundl (only {key}={off!r}).")
        config.pop("ema_momentum", None)
        return cls(**config)

    def __repr__(self) -> str:
        try:
            config = self.get_config()
        except NotImplementedError:  # e.g. a user schedule without get_config
            config = {"name": self.name}
        args = ", ".join(f"{k}={v!r}" for k, v in config.items() if v is not None)
        return f"{type(self).__name__}({args})"


def _describe(w) -> str:
    name = getattr(w, "name", None)
    return f"'{name}' of shape {tuple(w.shape)}" if name else f"of shape {tuple(w.shape)}"


def serialize(optimizer: Optimizer) -> dict:
    """An optimizer as a JSON-safe ``{"class_name": ..., "config": ...}`` dict.

    Args:
        optimizer: an :class:`Optimizer`.

    Returns:
        A dict that :func:`deserialize` turns back into an equal (unbuilt) optimizer.

    Example:
        >>> fl.optimizers.serialize(fl.optimizers.SGD())["class_name"]
        'SGD'
    """
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizers.serialize: expected an Optimizer, got "
                        f"{type(optimizer).__name__}.")
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def _lookup(name: str):
    cls = _REGISTRY.get(name)
    if cls is None:
        lowered = {k.lower(): v for k, v in _REGISTRY.items()}
        cls = lowered.get(name.lower())
    if cls is None:
        raise ValueError(f"optimizers: unknown optimizer {name!r}; known: "
                         f"{sorted(k.lower() for k in _REGISTRY)}. Register custom classes with "
                         "fl.optimizers.register.")
    return cls


def deserialize(config: dict) -> Optimizer:
    """Rebuild an optimizer from :func:`serialize` output (classes come from the registry only).

    Args:
        config: ``{"class_name": str, "config": dict}``.

    Returns:
        A new, unbuilt :class:`Optimizer`.
    """
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise TypeError(f"optimizers.deserialize: expected a dict with a 'class_name' string, "
                        f"got {config!r}.")
    return _lookup(config["class_name"]).from_config(config.get("config") or {})


def get(identifier) -> Optimizer:
    """An optimizer from a name (Keras defaults), a serialized dict, or an instance.

    Args:
        identifier: ``"sgd"``, ``"adam"``, ``"adamw"``, ``"rmsprop"``, ``"adagrad"``,
            ``"adadelta"``, ``"nadam"``, ``"adamax"``, ``"lion"``, ``"ftrl"``
            (case-insensitive), a dict from :func:`serialize`, or an
            :class:`Optimizer` (returned as is).

    Returns:
        An :class:`Optimizer`.

    Example:
        >>> fl.optimizers.get("adam").learning_rate
        0.001
    """
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        return _lookup(identifier)()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise TypeError(f"optimizers.get: expected an optimizer name, config dict or Optimizer, got "
                    f"{identifier!r} of type {type(identifier).__name__}.")
