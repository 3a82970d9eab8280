"""What a Ray worker holds: a model rebuilt from its saved file, and the maths of one step.

No fundl object ever crosses a process boundary. The driver saves the model the way
``model.save`` does (a zip of JSON config + ``.npz`` arrays, no pickle) and ships those bytes;
a worker writes them to a private temporary file and rebuilds the model with
:func:`fundl.models.load_model`, the same code path as loading any saved model. After that,
only dicts of NumPy arrays move: weights ``{dotted key: array}`` one way, gradients
``{dotted key: array}`` the other, through Ray's object store.

A subclassed model or a layer of the user's own must be registered
(``@fundl.layers.register_serializable``) in a module the workers import too.
"""
from __future__ import annotations

import os
import tempfile
import time

import numpy

from .. import backend


def model_to_bytes(model, include_optimizer=True, who="fundl.distributed"):
    """A compiled, built model as the bytes of a ``.fundl`` file (architecture, compile
    settings, weights and optionally the optimizer state)."""
    with tempfile.TemporaryDirectory(prefix="fundl-dist-") as folder:
        path = os.path.join(folder, "model.fundl")
        try:
            model.save(path, include_optimizer=include_optimizer)
        except ValueError as e:
            raise ValueError(f"{who}: workers rebuild the model from its saved config, and "
                             f"saving it failed: {e}") from e
        with open(path, "rb") as f:
            return f.read()


def model_from_bytes(data):
    """The model :func:`model_to_bytes` saved, rebuilt and compiled (runs in a worker)."""
    from ..models import load_model

    with tempfile.TemporaryDirectory(prefix="fundl-dist-") as folder:
        path = os.path.join(folder, "model.fundl")
        with open(path, "wb") as f:
            f.write(data)
        return load_model(path)


def weight_keys(model):
    """``(entries, trainable keys)``: every weight by dotted key, and the keys of the weights
    training updates, in the order the optimizer numbers them (those fixed at compile)."""
    entries = {key: w for key, w, _ in model._weight_entries()}
    trainable = getattr(model, "_compiled_trainable", None)
    if trainable is None:
        trainable = model.trainable_weights
        if getattr(model, "compiled", False):
            model._compiled_trainable = trainable  # as the first training step would fix it
    by_id = {id(w): key for key, w in entries.items()}
    return entries, [by_id[id(w)] for w in trainable]


def optimizer_state_by_key(optimizer, keys):
    """The optimizer's state with weight indices replaced by dotted keys.

    Returns:
        ``{"iterations": int, "slots": {key: {slot: array}}}``.
    """
    state = optimizer.get_state()
    slots = {}
    for name, value in state.items():
        if name == "iterations":
            continue
        index, slot = name.split(".", 1)
        slots.setdefault(keys[int(index)], {})[slot] = value
    return {"iterations": int(state["iterations"]), "slots": slots}


def set_optimizer_state_by_key(optimizer, state, entries, keys):
    """Restore :func:`optimizer_state_by_key` output for the weights named ``keys``."""
    flat = {"iterations": numpy.array(state["iterations"], dtype=numpy.int64)}
    names = [name for name, _ in optimizer.slot_specs()]
    for i, key in enumerate(keys):
        for slot in names:
            flat[f"{i}.{slot}"] = state["slots"][key][slot]
    optimizer.set_state(flat, [entries[k] for k in keys])


class Replica:
    """A model replica with access to the training data, computing gradients on batches.

    Args:
        spec: bytes from :func:`model_to_bytes`, or ``[ref]`` of them in Ray's store.
        data: ``(xs, ys)``: lists of arrays (the inputs and targets, as ``fit`` standardised
            them), read-only views into Ray's object store on the worker's node.
    """

    def __init__(self, spec, data=None):
        if isinstance(spec, list):  # [ref] of the bytes, see WorkerMixin._resolve
            from ._runtime import import_ray

            spec = import_ray().get(spec[0])
        self.model = model_from_bytes(spec)
        self.model._prepare_compiled()
        self.entries, self.trainable_keys = weight_keys(self.model)
        self.trainable = [self.entries[k] for k in self.trainable_keys]
        self.state_keys = [k for k in self.entries if k not in set(self.trainable_keys)]
        self.penalties = self.model._has_losses()
        self.xs, self.ys = data if data is not None else (None, None)

    def set_weights(self, weights):
        """Copy ``{key: array}`` into the replica's weights (arrays from Ray are read-only)."""
        for key, value in weights.items():
            self.entries[key].data[...] = value

    def state(self):
        """The weights training does not update (moving statistics), ``{key: array}``."""
        return {k: backend.to_numpy(self.entries[k].data).copy() for k in self.state_keys}

    def batch(self, index):
        return [a[index] for a in self.xs], [a[index] for a in self.ys]

    def gradients(self, xs, ys):
        """Forward, loss and backward on one batch, with the replica's current weights.

        Returns:
            ``(grads, logs)``: ``{key: array}`` for every trainable weight (zeros where the
            loss does not reach a weight), and ``{"loss": float, metric: float, ...}`` of the
            batch. The loss is the batch mean, as in ``fit``; combining shards means weighting
            each shard's gradient by its number of samples.
        """
        model = self.model
        for w in self.trainable:
            w.grad = None
        outs = model(xs if len(xs) > 1 else xs[0], training=True)
        outs = list(outs.values()) if isinstance(outs, dict) else (
            list(outs) if isinstance(outs, (list, tuple)) else [outs])
        total, parts = model._compute_loss(ys, outs, None, self.penalties)
        if not total.requires_grad:
            raise RuntimeError(f"fundl.distributed: the loss of model '{model.name}' does not "
                               "depend on any trainable weight.")
        total.backward()
        grads = {}
        for key, w in zip(self.trainable_keys, self.trainable):
            grads[key] = (backend.to_numpy(w.grad) if w.grad is not None
                          else numpy.zeros(w.shape, w.dtype))
            w.grad = None
        return grads, model._logs(total, parts, ys, outs)


def weighted_mean(dicts, counts):
    """``sum_i counts[i] * dicts[i][key] / sum(counts)`` per key (the shards' batch mean)."""
    total = float(sum(counts))
    out = {}
    for d, c in zip(dicts, counts):
        scale = c / total
        for key, value in d.items():
            if key in out:
                out[key] += value * scale
            else:
                out[key] = value * numpy.asarray(scale, dtype=value.dtype)
    return out


class Timer:
    """Seconds spent computing and communicating (``ray.get``/``ray.put``/actor calls)."""

    def __init__(self):
        self.compute = 0.0
        self.comm = 0.0

    def take(self):
        out = {"compute_s": self.compute, "comm_s": self.comm}
        self.compute = self.comm = 0.0
        return out

    @staticmethod
    def now():
        return time.perf_counter()
