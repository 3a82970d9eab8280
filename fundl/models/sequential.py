"""``Sequential``: a plain stack of layers, each feeding the next."""
from __future__ import annotations

from ..layers import normalization_fusion
from ..layers.base import Layer, SymbolicTensor, _reraise_in_context, get_registered
from ..layers.core import Input, _InputNode
from .functional import Model, _layer_from_spec, _layer_spec


class Sequential(Model):
    """A linear stack of layers.

    Args:
        layers: an optional list of layers (or an ``Input(...)`` first).
        name: the model's name.

    The first layer may declare ``input_shape=`` or ``input_dim=`` (Keras style); the model is
    then built at once, so ``summary()`` works before training and shape errors surface when a
    layer is added.

    Example:
        >>> model = Sequential()
        >>> model.add(Dense(units=64, activation="relu", input_dim=100))
        >>> model.add(Dense(units=10, activation="softmax"))
    """

    def __init__(self, layers=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)  # "sequential", "sequential_1", ...
        self._auto_name = name is None
        self._sequential = True
        self._input_shape = None   # batch shape, once known
        # Once the input shape is known the stack is also a functional graph, as in Keras 3:
        # one Input and each layer's symbolic output (model.inputs, layer.output work).
        self._sym_input = None
        self._sym_outputs = []
        if layers is not None and not isinstance(layers, (list, tuple)):
            raise TypeError(f"Sequential: layers must be a list of layers, got "
                            f"{type(layers).__name__}.")
        for layer in layers or ():
            self.add(layer)

    def add(self, layer) -> None:
        """Append a layer (or an ``Input(...)``, which sets the input shape).

        When the input shape is known (an ``Input`` first, or ``input_shape=``/``input_dim=``
        on the first layer), the new layer is built at once, so a layer that does not fit the
        previous one's output raises a ValueError here, and nothing is added.

        Example:
            >>> model.add(Dense(10, activation="softmax"))
        """
        if isinstance(layer, SymbolicTensor) and isinstance(layer.node, _InputNode):
            if self._layers or self._input_shape is not None:
                raise ValueError("Sequential.add: an Input can only come first.")
            self._input_shape = tuple(layer.shape)
            self._sym_input = layer
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add: expected a Layer, got {type(layer).__name__}.")
        if any(existing is layer for existing in self._layers):
            raise ValueError(f"Sequential.add: layer '{layer.name}' is already in the model; "
                             "create a new layer instead of adding one twice.")
        if not self._layers and self._input_shape is None:
            self._input_shape = _declared_input_shape(layer)
        self._layers.append(layer)
        try:
            self._make_names_unique()
            if self._input_shape is not None:
                self._build_layers()
        except (ValueError, TypeError):
            self._layers.pop()
            raise

    def pop(self) -> Layer:
        """Remove and return the last layer.

        Example:
            >>> head = model.pop()     # e.g. drop a classifier to reuse the features
        """
        if not self._layers:
            raise ValueError("Sequential.pop: the model has no layers.")
        del self._sym_outputs[len(self._layers) - 1:]
        return self._layers.pop()

    def _build_layers(self):
        """Build every layer from the input shape, checking that consecutive shapes fit.

        Each layer is called on the previous one's symbolic output (only the layers not yet
        called: ``add`` extends the graph rather than rebuilding it), which builds it and
        gives it an ``output``; a custom layer without ``compute_output_shape`` has its shape
        inferred (see ``Layer.__call__``).
        """
        shape = tuple(self._input_shape)
        if self._sym_input is None or tuple(self._sym_input.shape) != shape:
            self._sym_input = Input(shape=shape[1:], batch_size=shape[0])
            self._sym_outputs = []
        del self._sym_outputs[len(self._layers):]
        x = self._sym_outputs[-1] if self._sym_outputs else self._sym_input
        for layer in self._layers[len(self._sym_outputs):]:
            try:
                x = layer(x)
            except (ValueError, TypeError) as e:
                _reraise_in_context(layer, e, x.shape if isinstance(x, SymbolicTensor) else "?")
            if not isinstance(x, SymbolicTensor):
                raise ValueError(f"Sequential: layer '{layer.name}' returns several outputs; in "
                                 "a Sequential model each layer must return one tensor. Use the "
                                 "functional API (Model(inputs, outputs)) for this layer.")
            self._sym_outputs.append(x)
        self.built = True

    def build(self, input_shape=None):
        """Build the stack for inputs of ``input_shape`` (batch axis first, may be None)."""
        if input_shape is None:
            if self._input_shape is None:
                raise ValueError("Sequential.build: give the input shape, e.g. "
                                 "model.build((None, 784)).")
            input_shape = self._input_shape
        self._input_shape = tuple(input_shape)
        self._build_layers()

    def _maybe_build(self, input_shape, several=False):
        if not self.built:
            self.build(input_shape)

    # -- the symbolic ends (Keras 3: a built Sequential is also a functional graph) -----------
    def _ends(self, what):
        if self._sym_input is None or len(self._sym_outputs) != len(self._layers) or \
                not self._layers:
            raise AttributeError(f"Sequential '{self.name}' has no symbolic {what} yet: give "
                                 "the first layer input_shape=..., start with an Input(...), "
                                 "or build/call the model first.")
        return self._sym_input if what == "input" else self._sym_outputs[-1]

    @property
    def input(self):
        """The model's symbolic input (once the input shape is known)."""
        return self._ends("input")

    @property
    def output(self):
        """The symbolic output of the last layer (once the input shape is known)."""
        return self._ends("output")

    @output.setter
    def output(self, value):
        raise AttributeError(f"Sequential '{self.name}': output cannot be set.")

    @property
    def inputs(self):
        """``[model.input]``, as Keras 3 (for ``Model(inputs=model.inputs, outputs=...)``)."""
        return [self._ends("input")]

    @property
    def outputs(self):
        """``[model.output]``."""
        return [self._ends("output")]

    def call(self, x, training=False):
        if not self._layers:
            raise ValueError("Sequential: the model has no layers; add some with model.add().")
        # BatchNormalization -> ReLU pairs run as one fused op (same values)
        return normalization_fusion.run_sequential(self._layers, x, training)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        if shape == self._input_shape and len(self._sym_outputs) == len(self._layers) and \
                self._layers:
            return tuple(self._sym_outputs[-1].shape)  # known since the build
        for layer in self._layers:
            try:
                shape = layer._output_shape_for(shape)
            except (ValueError, TypeError) as e:
                _reraise_in_context(layer, e, shape)
        return shape

    @property
    def input_shape(self):
        """The input's shape with the batch axis (``(None, 100)``), or None while unknown."""
        return self._input_shape

    @property
    def output_shape(self):
        """The output's shape with the batch axis; a ValueError while the input is unknown."""
        if self._input_shape is None:
            raise ValueError("Sequential: the output shape is unknown until the input shape is.")
        return self.compute_output_shape(self._input_shape)

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable,
                  "layers": [_layer_spec(layer) for layer in self._layers]}
        if self._input_shape is not None:
            config["input_shape"] = list(self._input_shape)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        model = cls(name=config.get("name"))
        if config.get("input_shape") is not None:
            model._input_shape = tuple(config["input_shape"])
        for spec in config["layers"]:
            layer_cls = get_registered(spec["class_name"], custom_objects)
            if not (isinstance(layer_cls, type) and issubclass(layer_cls, Layer)):
                raise ValueError(f"Sequential config: {spec['class_name']!r} is not a layer class.")
            model.add(_layer_from_spec(layer_cls, spec, custom_objects))
        if not config.get("trainable", True):  # True would unfreeze layers frozen one by one
            model.trainable = False
        return model


    # -- what the training loop asks of a model kind (see Trainer) ------------------------------
    def _n_inputs(self):
        return 1

    def _expected_input_shapes(self):
        return None if self._input_shape is None else (["input"], [tuple(self._input_shape)])

    def _needs_sample_call(self):
        # A layer without compute_output_shape stops the symbolic build: run data through.
        return not all(layer.built for layer in self._sublayer_list())

def _declared_input_shape(layer):
    """The batch input shape a first layer declares (input_shape=, or a built model's input)."""
    if layer._batch_input_shape is not None:
        return tuple(layer._batch_input_shape)
    if isinstance(layer, Sequential):
        return layer._input_shape
    if isinstance(layer, Model) and layer._graph and len(layer.inputs) == 1:
        return tuple(layer.inputs[0].shape)
    return None
