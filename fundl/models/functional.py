"""``Model``: a network as a graph of layers (the functional API), or a subclass with ``call``.

``Model(inputs=..., outputs=...)`` walks back from the symbolic outputs to the inputs and
keeps the layer calls (nodes) in an order where every node comes after the nodes that feed
it; calling the model replays them on real tensors. Multi-input, multi-output, shared
layers (one layer, several nodes) and models used as layers all follow from that.

Example:
    >>> inputs = Input(shape=(784,))
    >>> h = Dense(64, activation="relu")(inputs)
    >>> outputs = Dense(10, activation="softmax")(h)
    >>> model = Model(inputs=inputs, outputs=outputs)
"""
from __future__ import annotations

import json

from ..layers.base import (
    Layer, SymbolicTensor, _snake, get_registered, registered_name, unique_name,
)
from ..layers import normalization_fusion
from ..layers.core import _InputNode
from ..tensor import Tensor
from .training import Trainer


def _as_list(x):
    if isinstance(x, dict):
        return list(x.values())
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def _topological_nodes(outputs):
    """The nodes that produce ``outputs``, each after every node that feeds it."""
    order, done, active = [], set(), set()
    for out in outputs:
        stack = [(out.node, False)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in done:
                continue
            if expanded:
                active.discard(id(node))
                done.add(id(node))
                order.append(node)
                continue
            active.add(id(node))
            stack.append((node, True))
            # Reversed, so the first input's branch is ordered (and auto-named) first.
            for x in reversed(node.inputs):
                if id(x.node) not in done:
                    if id(x.node) in active:
                        raise ValueError("Model: the layer graph has a cycle.")
                    stack.append((x.node, False))
    return order


class Model(Trainer, Layer):
    """A trainable network: a graph of layers from ``Input``s to outputs, or a subclass.

    Args:
        inputs: a SymbolicTensor from :func:`~fundl.layers.Input`, or a list/dict of them.
        outputs: the SymbolicTensor(s) computed from them.
        name: the model's name.

    Subclassing: define layers in ``__init__`` and the computation in ``call(x, training)``.

    Example:
        >>> model = Model(inputs=inputs, outputs=[out_a, out_b])    # multi-output
        >>> model.compile(optimizer="adam", loss=["mse", "binary_crossentropy"],
        ...               loss_weights=[1, 0.5])
    """

    def __init__(self, inputs=None, outputs=None, name=None, **kwargs):
        # Keras 3's names: "functional", "functional_1", ... for graphs, the class name in
        # snake case for subclasses ("my_model"), "sequential" for stacks.
        if name is None:
            prefix = ("functional" if type(self) is Model and inputs is not None
                      else _snake(type(self).__name__))
            super().__init__(name=unique_name(prefix), **kwargs)
        else:
            super().__init__(name=name, **kwargs)
        self._auto_name = name is None  # nested unnamed models get unique names
        self._graph = inputs is not None
        self._layers = []
        if self._graph or outputs is not None:
            if inputs is None or outputs is None:
                raise ValueError("Model: give both inputs= and outputs= (or subclass Model).")
            self._init_graph(inputs, outputs)

    # -- the graph --------------------------------------------------------------------------------
    def _init_graph(self, inputs, outputs):
        self._input_dict = isinstance(inputs, dict)
        self._output_dict = isinstance(outputs, dict)
        self._output_structure = "list" if isinstance(outputs, (list, tuple, dict)) else "single"
        self._input_structure = "list" if isinstance(inputs, (list, tuple, dict)) else "single"
        self.inputs = _as_list(inputs)
        self.outputs = _as_list(outputs)
        for t in self.inputs + self.outputs:
            if not isinstance(t, SymbolicTensor):
                raise TypeError(f"Model: inputs and outputs must come from Input() and layer "
                                f"calls, got {type(t).__name__}.")
        for t in self.inputs:
            if not isinstance(t.node, _InputNode):
                raise ValueError(f"Model: input {t.name!r} is not an Input(); pass the tensors "
                                 "returned by fundl.layers.Input.")
        if len({id(t) for t in self.inputs}) != len(self.inputs):
            raise ValueError("Model: the same Input is listed twice in inputs.")
        nodes = _topological_nodes(self.outputs)
        known = {id(t.node) for t in self.inputs}
        for node in nodes:
            if isinstance(node, _InputNode) and id(node) not in known:
                raise ValueError(f"Model: graph disconnected: the outputs depend on an Input "
                                 f"of shape {node.outputs[0].shape} (named "
                                 f"{node.layer.name!r}) that is not one of the model's "
                                 f"{len(self.inputs)} input(s). Add it to inputs=[...].")
        self._nodes = [n for n in nodes if not isinstance(n, _InputNode)]
        layers = [t.node.layer for t in self.inputs]
        for node in self._nodes:
            if node.layer not in layers:
                layers.append(node.layer)
        self._layers = layers
        self._inputs_struct = inputs
        self._outputs_struct = outputs
        self._make_names_unique()
        self.output_names = [t.node.layer.name for t in self.outputs]
        if self._output_dict:
            self.output_names = list(outputs.keys())
        self.input_names = list(inputs.keys()) if self._input_dict else [
            t.node.layer.name for t in self.inputs]
        self.built = True

    # -- what the training loop asks of a model kind (see Trainer) ------------------------------
    def _n_inputs(self):
        return len(self.inputs) if self._graph else None

    def _expected_input_shapes(self):
        if not self._graph:
            return None
        return self.input_names, [tuple(t.shape) for t in self.inputs]

    def _needs_sample_call(self):
        return not self._graph  # a subclass builds some weights only when data flows

    def _make_names_unique(self):
        names = {}
        for layer in self._layers:
            if layer.name in names and names[layer.name] is not layer:
                if not getattr(layer, "_auto_name", False):
                    raise ValueError(f"Model: two layers are named {layer.name!r}; layer names "
                                     "must be unique within a model.")
                base, k = layer.name, 1
                while f"{base}_{k}" in names:
                    k += 1
                layer.name = f"{base}_{k}"
            names[layer.name] = layer

    def _name_prefix(self):
        if type(self) is Model and getattr(self, "_graph", False):
            return "functional"
        return super()._name_prefix()

    def build(self, input_shape=None):
        """Build the model for inputs of ``input_shape`` (batch axis first, may be None).

        A functional model is built when defined. A subclassed model, whose layers create
        their weights on their first call, runs one forward pass on zeros of that shape
        (Keras 3 traces ``call`` the same way), so ``summary()``, ``count_params()`` and
        ``set_weights`` work before any data is seen.

        Example:
            >>> model = MyModel(); model.build((None, 784)); model.summary()   # doctest: +SKIP
        """
        if self._graph:
            return
        if input_shape is None:
            raise ValueError(f"{type(self).__name__} '{self.name}': build() needs the input "
                             "shape of a subclassed model, e.g. model.build((None, 784)).")
        several = isinstance(input_shape, list)
        shape = [tuple(s) for s in input_shape] if several else tuple(input_shape)
        self._run_on_zeros(shape)

    def _maybe_build(self, input_shape, several=False):
        # On the way into a call with real data: mark built, and let that call create the
        # sub-layers' weights (a pass on zeros would only repeat it).
        if not self.built:
            object.__setattr__(self, "built", True)
            self.input_spec_shape = input_shape

    # -- the symbolic ends (Keras's model.input(s) / model.output(s)) ------------------------
    def _symbolic_ends(self, what):
        if self._graph:
            return self._inputs_struct if what == "input" else self._outputs_struct
        raise AttributeError(f"{type(self).__name__} '{self.name}': a subclassed model has no "
                             f"symbolic {what}; only models built from Input(...) (functional) "
                             "and Sequential models with a known input shape have one.")

    @property
    def input(self):
        """The model's input(s) as given to ``Model(inputs=...)``: a SymbolicTensor, a list
        or a dict of them (Keras 3's ``model.input``).

        Example:
            >>> features = Model(inputs=model.input, outputs=model.get_layer("flatten").output)
        """
        return self._symbolic_ends("input")

    @property
    def output(self):
        """The model's output(s) as given to ``Model(outputs=...)`` (Keras 3's ``model.output``)."""
        return self._symbolic_ends("output")

    @output.setter
    def output(self, value):
        raise AttributeError(f"Model '{self.name}': output cannot be set; build a new Model.")

    @property
    def layers(self) -> list:
        """The model's layers, in the order they are first used."""
        if self._graph or getattr(self, "_sequential", False):
            return list(self._layers)
        return list(self._sublayers.values())

    def get_layer(self, name=None, index=None):
        """A layer by name (or by position in ``layers``)."""
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"Model '{self.name}': no layer named {name!r}; the layers are "
                         f"{[layer.name for layer in self.layers]}.")

    def _named_sublayers(self):
        if self._graph or getattr(self, "_sequential", False):
            return list(zip(_weight_keys(self._layers), self._layers))
        return super()._named_sublayers()

    def _sublayer_list(self):
        if self._graph or getattr(self, "_sequential", False):
            return list(self._layers)
        return super()._sublayer_list()

    # -- computing ---------------------------------------------------------------------------
    def call(self, inputs, training=False):
        if not self._graph:
            raise NotImplementedError(f"{type(self).__name__}: a subclassed Model must define "
                                      "call().")
        given = _as_list(inputs) if not isinstance(inputs, dict) else [
            inputs[k] for k in self.input_names]
        if len(given) != len(self.inputs):
            raise ValueError(f"Model '{self.name}': expected {len(self.inputs)} input(s), got "
                             f"{len(given)}.")
        values = {}
        for sym, x in zip(self.inputs, given):
            x = x if isinstance(x, Tensor) else Tensor(x)
            expected = sym.shape[1:]
            if len(x.shape) != len(sym.shape) or any(e is not None and e != g
                                                     for e, g in zip(expected, x.shape[1:])):
                raise ValueError(f"Model '{self.name}': input {sym.name!r} expects shape "
                                 f"{sym.shape}, got {x.shape}.")
            values[id(sym)] = x
        # BatchNormalization -> [Add ->] ReLU chains run as one fused op (same values)
        fused = self.__dict__.get("_fused_steps")
        if fused is None:
            fused = self.__dict__["_fused_steps"] = normalization_fusion.plan(self._nodes,
                                                                             self.outputs)
        for node in self._nodes:
            step = fused.get(id(node)) if fused else None
            if step is not None and (step is normalization_fusion.SKIP or step(values, training)):
                continue
            args = [values[id(t)] for t in node.inputs]
            # A call made with an explicit training (base_model(x, training=False)) keeps it.
            node_training = training if node.training is None else node.training
            kwargs = node.kwargs
            named = getattr(node, "tensor_kwargs", None)
            if named:  # inputs given by keyword (mha(q, v, key=k)) are the last ones
                kwargs = {**kwargs, **dict(zip(named, args[len(args) - len(named):]))}
                args = args[:len(args) - len(named)]
            if node.input_structure == "args":
                out = node.layer(*args, training=node_training, **kwargs)
            elif node.input_structure == "dict":
                out = node.layer(dict(zip(node.keys, args)), training=node_training, **kwargs)
            else:
                out = node.layer(args if node.input_structure == "list" else args[0],
                                 training=node_training, **kwargs)
            for sym, value in zip(node.outputs, out if isinstance(out, (list, tuple)) else [out]):
                values[id(sym)] = value
        outs = [values[id(t)] for t in self.outputs]
        if self._output_dict:
            return dict(zip(self.output_names, outs))
        return outs if self._output_structure == "list" else outs[0]

    def compute_output_shape(self, input_shape):
        if not self._graph:
            # A subclassed model used in the functional API: Layer.__call__ infers the shape
            # by running call on zeros.
            raise NotImplementedError(f"{type(self).__name__}: define compute_output_shape to use "
                                      "a subclassed model symbolically.")
        shapes = [tuple(t.shape) for t in self.outputs]
        return shapes if self._output_structure == "list" else shapes[0]

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None) -> None:
        """Print the layers, their output shapes and parameter counts, in Keras 3's table.

        Args:
            line_length: the table's total width (default: fitted to the contents, at least
                Keras's 78 or so).
            positions: relative or absolute column ends, as Keras (optional).
            print_fn: where each line goes (``print`` by default), e.g. ``lines.append``.
            expand_nested: also list the layers inside nested models, indented.
            show_trainable: add a "Trainable" column (Y/N per layer).
            layer_range: ``(first_name, last_name)``: only the rows from one layer to another.

        Example:
            >>> model.summary(expand_nested=True, show_trainable=True)   # doctest: +SKIP
        """
        from .summary import summary

        summary(self, line_length=line_length, positions=positions, print_fn=print_fn,
                expand_nested=expand_nested, show_trainable=show_trainable,
                layer_range=layer_range)

    def to_json(self, **kwargs) -> str:
        """The architecture as JSON text: ``{"class_name", "config", "module"}`` (no weights).

        :func:`fundl.models.model_from_json` rebuilds the model (with new weights) from it.

        Args:
            **kwargs: passed to ``json.dumps`` (``indent=2``, ...).

        Example:
            >>> clone = model_from_json(model.to_json())
        """
        return json.dumps({"class_name": registered_name(type(self)),
                           "config": self.get_config(), "module": type(self).__module__},
                          **kwargs)

    # -- saving --------------------------------------------------------------------------------
    def save(self, filepath, include_optimizer=True) -> None:
        """Save architecture, weights and optimizer state to one file (atomic, no pickle)."""
        from ..saving import save_model

        save_model(self, filepath, include_optimizer=include_optimizer)

    def save_weights(self, filepath) -> None:
        """Save only the weights (atomic, no pickle)."""
        from ..saving import save_weights

        save_weights(self, filepath)

    def load_weights(self, filepath, skip_mismatch=False) -> None:
        """Load weights from ``save_weights``/``save``; on any error the model is unchanged."""
        from ..saving import load_weights

        load_weights(self, filepath, skip_mismatch=skip_mismatch)

    def to(self, device):
        """Move the weights to ``device`` ("cpu" or "gpu"), in place; returns the model.

        The optimizer's slots follow their weights at its next step.

        Example:
            >>> model.to("gpu")          # doctest: +SKIP
        """
        return super().to(device)

    # -- configuration -------------------------------------------------------------------------
    def get_config(self):
        """The model's architecture as a JSON-safe dict (``from_config`` inverts it).

        A functional model gives its layers and how they connect; a subclassed model the
        arguments its constructor was called with (when JSON-safe, as Keras 3), so that
        ``cls.from_config(model.get_config())`` builds it again; override both for anything
        else.
        """
        if not self._graph:
            return Layer.get_config(self)
        node_index = {}
        counts = {}
        for node in [t.node for t in self.inputs] + self._nodes:
            node_index[id(node)] = counts.get(node.layer.name, 0)
            counts[node.layer.name] = node_index[id(node)] + 1

        def ref(t):
            return [t.node.layer.name, node_index[id(t.node)], t.index]

        held = [(node.layer.name, sorted(k for k, v in node.kwargs.items()
                                         if not _is_constant(v)))
                for node in self._nodes]
        held = [(name, keys) for name, keys in held if keys]  # mask=None and the like are fine
        if held:
            name, keys = held[0]
            raise ValueError(f"Model '{self.name}': layer '{name}' was called with constant "
                             f"arguments {keys} (e.g. a GraphConv's adjacency), which a model "
                             "config cannot hold, so the model cannot be saved or cloned whole. "
                             "Save its weights with save_weights(), rebuild the model in code "
                             "and load_weights().")

        return {
            "name": self.name,
            "trainable": self.trainable,
            "layers": [_layer_spec(layer) for layer in self._layers],
            "nodes": [_node_spec(node, ref) for node in self._nodes],
            "input_layers": [ref(t) for t in self.inputs],
            "output_layers": [ref(t) for t in self.outputs],
            "input_names": self.input_names if self._input_dict else None,
            "output_names": self.output_names if self._output_dict else None,
            "output_structure": self._output_structure,
            "input_structure": self._input_structure,
        }

    get_config._fundl_auto_config = True

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A model from :meth:`get_config`'s dict: the graph rebuilt layer by layer, or, for a
        subclassed model, ``cls(**config)`` (Keras 3).

        Args:
            config: the dict.
            custom_objects: ``{name: class_or_function}`` for the user's own classes.

        Raises:
            TypeError: a subclassed model's config does not hold its constructor's arguments.
            ValueError: a config naming an unknown or a non-layer class.
        """
        if not isinstance(config, dict):
            raise TypeError(f"{cls.__name__}.from_config: expected a dict, got "
                            f"{type(config).__name__}.")
        if "layers" not in config or "nodes" not in config:
            if cls is Model:
                raise ValueError("Model.from_config: the config has no 'layers' and 'nodes', so "
                                 "it is not a functional model's; a subclassed model is rebuilt "
                                 "by its own class: MyModel.from_config(config).")
            return Layer.from_config.__func__(cls, config, custom_objects)
        from ..layers.core import Input

        layers = {}
        for spec in config["layers"]:
            layer_cls = get_registered(spec["class_name"], custom_objects)
            if not (isinstance(layer_cls, type) and issubclass(layer_cls, Layer)):
                raise ValueError(f"Model config: {spec['class_name']!r} is not a layer class.")
            layer = _layer_from_spec(layer_cls, spec, custom_objects)
            layers[layer.name] = layer
        produced = {}  # (layer name, node index) -> list of output SymbolicTensors
        for name, index, _ in config["input_layers"]:
            layer = layers[name]
            sym = Input(shape=layer.shape, batch_size=layer.batch_size, dtype=layer.dtype,
                        name=name)
            produced[(name, index)] = [sym]
        counts = {}
        for spec in config["nodes"]:
            name = spec["layer"]
            args = [produced[(n, i)][t] for n, i, t in spec["inputs"]]
            kwargs = dict(spec.get("kwargs") or {})
            named = spec.get("tensor_kwargs") or []
            if named:
                kwargs.update(zip(named, args[len(args) - len(named):]))
                args = args[:len(args) - len(named)]
            if spec["structure"] == "args":
                out = layers[name](*args, **kwargs)
            elif spec["structure"] == "dict":
                out = layers[name](dict(zip(spec["keys"], args)), **kwargs)
            else:
                out = layers[name](args if spec["structure"] == "list" else args[0], **kwargs)
            index = counts.get(name, 0)
            counts[name] = index + 1
            produced[(name, index)] = out if isinstance(out, list) else [out]
        inputs = [produced[(n, i)][t] for n, i, t in config["input_layers"]]
        outputs = [produced[(n, i)][t] for n, i, t in config["output_layers"]]
        if config.get("input_names"):
            inputs = dict(zip(config["input_names"], inputs))
        elif config.get("input_structure") == "single":
            inputs = inputs[0]
        if config.get("output_names"):
            outputs = dict(zip(config["output_names"], outputs))
        elif config.get("output_structure") == "single":
            outputs = outputs[0]
        model = cls(inputs=inputs, outputs=outputs, name=config.get("name"))
        if not config.get("trainable", True):  # True would unfreeze layers frozen one by one
            model.trainable = False
        return model



def _layer_spec(layer):
    """A layer's entry in a model config: its registered class name and config."""
    # The name is kept beside the config too (as Keras does): a user's get_config may leave
    # it out, and the graph's links refer to layers by name.
    spec = {"class_name": registered_name(type(layer)), "name": layer.name,
            "config": layer.get_config()}
    if getattr(layer, "_auto_name", False):
        spec["auto_name"] = True  # its weights' file keys come from its class, not its name
    return spec


def _layer_from_spec(layer_cls, spec, custom_objects):
    """The layer of a model config's entry, named as it was in the model."""
    layer = layer_cls.from_config(spec["config"], custom_objects=custom_objects)
    name = spec.get("name") or spec["config"].get("name")
    if name is not None and layer.name != name:
        layer.name = name  # a get_config without "name": the graph's links need it
    if spec.get("auto_name"):
        layer._auto_name = True
    return layer


def _node_spec(node, ref):
    spec = {"layer": node.layer.name, "inputs": [ref(t) for t in node.inputs],
            "structure": node.input_structure}
    kwargs = {k: v for k, v in node.kwargs.items() if v is not None}
    if node.training is not None:
        kwargs["training"] = bool(node.training)
    if kwargs:
        spec["kwargs"] = kwargs  # constants only (use_causal_mask=True, ...): checked above
    if node.tensor_kwargs:
        spec["tensor_kwargs"] = list(node.tensor_kwargs)
    if node.input_structure == "dict":
        spec["keys"] = list(node.keys)
    return spec


def _is_constant(value) -> bool:
    """Whether a call's keyword argument can live in a config: None, a number, a string, a
    bool, or a list of those (not an array: a GraphConv's adjacency, a mask)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    return isinstance(value, (list, tuple)) and all(_is_constant(v) for v in value)


def _weight_keys(layers):
    """The state-dict key of each layer of a model: its name when the user gave one, else
    its class in snake case numbered within the model (``dense``, ``dense_1``), as Keras 3's
    weight files, so that two instances of one architecture share their keys whatever the
    session's automatic names (``dense_7``) are."""
    taken = {layer.name for layer in layers if not getattr(layer, "_auto_name", False)}
    counts, keys = {}, []
    for layer in layers:
        if not getattr(layer, "_auto_name", False):
            keys.append(layer.name)
            continue
        stem = layer._name_prefix()
        while True:
            k = counts.get(stem, 0)
            counts[stem] = k + 1
            key = stem if k == 0 else f"{stem}_{k}"
            if key not in taken:
                break
        taken.add(key)
        keys.append(key)
    return keys


def model_from_json(json_string, custom_objects=None):
    """A model with the architecture in ``json_string`` (from ``model.to_json()``) and new weights.

    Classes are resolved only through fundl's registry and ``custom_objects``: the text never
    names code to import or run.

    Args:
        json_string: the JSON text.
        custom_objects: ``{name: class_or_function}`` for the user's own layers, functions...

    Returns:
        The model (uncompiled, freshly initialised weights).

    Raises:
        ValueError: text that is not such JSON, or names an unknown class.

    Example:
        >>> clone = model_from_json(model.to_json())
        >>> clone.set_weights(model.get_weights())
    """
    try:
        spec = json.loads(json_string)
    except (TypeError, ValueError) as e:
        raise ValueError(f"model_from_json: not valid JSON text ({e}).") from None
    if not isinstance(spec, dict) or "class_name" not in spec or not isinstance(
            spec.get("config"), dict):
        raise ValueError("model_from_json: expected the JSON of model.to_json(), an object with "
                         "'class_name' and 'config'.")
    cls = get_registered(spec["class_name"], custom_objects)
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise ValueError(f"model_from_json: {spec['class_name']!r} is not a model or layer class.")
    return cls.from_config(spec["config"], custom_objects=custom_objects)
