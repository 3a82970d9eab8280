"""A model's BatchNormalization -> ReLU and BatchNormalization -> Add -> ReLU, run fused.

A residual network computes ``conv -> BatchNormalization -> ReLU`` and ``... ->
BatchNormalization -> Add(shortcut) -> ReLU`` over and over; as separate layers each link is a
pass over memory, a new array and a graph node. :func:`fundl.ops.norm.batch_norm` can do the
whole chain as one op (``residual=``, ``activation="relu"``: the same values). This module
finds those chains in a functional model's graph so that :class:`~fundl.models.Model` runs
them through the fused op while the model stays as it was built: the same layers, weights,
config, summary and saved file; only the intermediate arrays that nothing else reads are never
made. Sequential models get the same for BatchNormalization directly followed by a ReLU
(:func:`run_sequential`).

A chain qualifies when every intermediate output has exactly one consumer, the next link,
and is not an output of the model; the layers are exactly :class:`BatchNormalization`,
:class:`~fundl.layers.Add` of two inputs and a plain ReLU (``Activation("relu")`` or
``ReLU()`` without options), called without extra arguments. At run time a chain falls back
to its layers one after the other (the same results) when sequence masks are alive, a layer
has an activity regularizer, or the residual's shape or dtype differs from the normalised
input's.

How the fused call reaches the layer: the runner leaves a request for that layer in a
thread-local slot and calls the layer as usual (``Layer.__call__``: training flag, error
messages, moving averages); :meth:`BatchNormalization.call` takes the request
(:func:`take_request`) and asks the op for the epilogue.

Example:
    >>> steps = plan(model._nodes, model.outputs)   # {id(node): runner or SKIP}
"""
from __future__ import annotations

import importlib
import threading

from .. import activations
from ..tensor import Tensor
from ._masking import _MASKS

_REQUEST = threading.local()


def take_request(layer):
    """The residual Tensor (or None) that :class:`_Chain` asks ``layer`` to fuse, as
    ``(residual,)``; None when this call of ``layer`` is not a fused one."""
    request = getattr(_REQUEST, "fuse", None)
    if request is None or request[0] is not layer:
        return None
    _REQUEST.fuse = None
    return request[1:]


_CLASSES = {}
"""Layer classes by name, imported at first use (their modules import this one); an import
statement in the checks below cost ~1 us per layer per step (LeNet-5: 7 per step)."""


def _cls(module, name):
    cls = _CLASSES.get(name)
    if cls is None:
        cls = _CLASSES[name] = getattr(importlib.import_module(f"fundl.layers.{module}"), name)
    return cls


def _is_relu(layer) -> bool:
    if type(layer) is _cls("core", "Activation"):
        return layer.activation is activations.relu
    return type(layer) is _cls("activation", "ReLU") and layer._plain and \
        layer.max_value is None


def _is_batch_norm(layer) -> bool:
    return type(layer) is _cls("norm", "BatchNormalization")


def _is_add(layer) -> bool:
    return type(layer) is _cls("merge", "Add")


def _simple(node, structure="single", n_inputs=1) -> bool:
    """A node called on plain inputs without extra arguments (what the runner reproduces)."""
    return (node.input_structure == structure and not node.kwargs and len(node.inputs) == n_inputs
            and not getattr(node, "tensor_kwargs", None) and len(node.outputs) == 1)


SKIP = object()
"""A node that a fused chain computes later (at its last node): the model skips it."""


class _Chain:
    """BatchNormalization [-> Add] -> ReLU of one graph, run where its ReLU node runs."""

    __slots__ = ("bn", "add", "relu", "residual", "first")

    def __init__(self, bn, add, relu, residual):
        self.bn, self.add, self.relu = bn, add, relu
        self.residual = residual  # the Add's other input (a SymbolicTensor), or None
        self.first = add is None or add.inputs[0] is not bn.outputs[0]  # residual first

    def __call__(self, values, training):
        """Compute the chain's output into ``values`` (symbolic tensor id -> Tensor)."""
        bn, add, relu = self.bn, self.add, self.relu
        x = values[id(bn.inputs[0])]
        r = values[id(self.residual)] if self.residual is not None else None
        layers = (bn.layer, relu.layer) if add is None else (bn.layer, add.layer, relu.layer)
        bn_training = training if bn.training is None else bn.training
        fusable = (not _MASKS and type(x) is Tensor and _is_batch_norm(bn.layer)
                   and _is_relu(relu.layer) and all(a.activity_regularizer is None for a in layers)
                   and (r is None or (type(r) is Tensor and r.shape == x.shape
                                      and r.dtype == x.dtype)))
        if fusable:
            _REQUEST.fuse = (bn.layer, r)
            try:
                y = bn.layer(x, training=bn_training)
            finally:
                _REQUEST.fuse = None
        else:  # the layers one after the other, as the model would call them
            y = bn.layer(x, training=bn_training)
            if add is not None:
                pair = [r, y] if self.first else [y, r]
                y = add.layer(pair, training=training if add.training is None else add.training)
            y = relu.layer(y, training=training if relu.training is None else relu.training)
        values[id(relu.outputs[0])] = y
        return True


def plan(nodes, outputs) -> dict:
    """The fused chains of a functional graph: ``{id(node): runner or SKIP}``.

    Args:
        nodes: the graph's layer nodes in topological order (a Model's ``_nodes``).
        outputs: the model's output SymbolicTensors (never fused away).

    Returns:
        A dict, empty when nothing fuses. A chain's BatchNormalization and Add nodes map to
        :data:`SKIP`; its ReLU node maps to a runner ``runner(values, training)`` that
        computes the ReLU's output into ``values`` (id of a SymbolicTensor -> Tensor) from its
        inputs, and returns True.
    """
    consumers = {}
    for node in nodes:
        for t in node.inputs:
            consumers.setdefault(id(t), []).append(node)
    kept = {id(t) for t in outputs}

    def only_consumer(t):
        users = consumers.get(id(t), [])
        return users[0] if len(users) == 1 and id(t) not in kept else None

    steps = {}
    for node in nodes:
        if not (_is_batch_norm(node.layer) and _simple(node)) or id(node) in steps:
            continue
        nxt = only_consumer(node.outputs[0])
        if nxt is None or id(nxt) in steps:
            continue
        add = residual = None
        if _is_add(nxt.layer) and _simple(nxt, "list", 2):
            other = [t for t in nxt.inputs if t is not node.outputs[0]]
            if len(other) != 1:  # bn + bn: not a residual
                continue
            add, residual, nxt = nxt, other[0], only_consumer(nxt.outputs[0])
            if nxt is None or id(nxt) in steps:
                continue
        if not (_is_relu(nxt.layer) and _simple(nxt)):
            continue
        steps[id(node)] = SKIP
        if add is not None:
            steps[id(add)] = SKIP
        steps[id(nxt)] = _Chain(node, add, nxt, residual)
    return steps


def run_sequential(layers, x, training):
    """A Sequential stack's layers on ``x``, each BatchNormalization that is directly
    followed by a plain ReLU (and whose ReLU would not fall back) run with the ReLU fused in
    (the ReLU layer is then skipped); the same values as layer after layer."""
    i, n = 0, len(layers)
    while i < n:
        layer = layers[i]
        if (i + 1 < n and not _MASKS and type(x) is Tensor and _is_batch_norm(layer)
                and _is_relu(layers[i + 1]) and layer.activity_regularizer is None
                and layers[i + 1].activity_regularizer is None):
            _REQUEST.fuse = (layer, None)
            try:
                x = layer(x, training=training)
            finally:
                _REQUEST.fuse = None
            i += 2
            continue
        x = layer(x, training=training)
        i += 1
    return x
