"""``Sequential``: a plain stack of layers, each feeding the next."""
from __future__ import annotations

from ..layers.base import Layer, SymbolicTensor, _reraise_in_context, get_registered
from ..layers.core import _InputNode
from .functional import Model


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
        super().__init__(name=name or "sequential", **kwargs)
        self._auto_name = name is None
        self._sequential = True
        self._input_shape = None   # batch shape, once known
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
        return self._layers.pop()

    def _build_layers(self):
        """Build every layer from the input shape, checking that consecutive shapes fit."""
        shape = self._input_shape
        for layer in self._layers:
            try:
                layer._maybe_build(shape)
                shape = layer.compute_output_shape(shape)
            except NotImplementedError:
                break  # a custom layer without compute_output_shape: the rest build on first call
            except (ValueError, TypeError) as e:
                _reraise_in_context(layer, e, shape)
        self.built = True

    def build(self, input_shape):
        self._input_shape = tuple(input_shape)
        self._build_layers()

    def _maybe_build(self, input_shape):
        if not self.built:
            self.build(input_shape)

    def call(self, x, training=False):
        if not self._layers:
            raise ValueError("Sequential: the model has no layers; add some with model.add().")
        for layer in self._layers:
            x = layer(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self._layers:
            try:
                shape = layer.compute_output_shape(shape)
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
                  "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                             for layer in self._layers]}
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
            model.add(layer_cls.from_config(spec["config"], custom_objects=custom_objects))
        if not config.get("trainable", True):  # True would unfreeze layers frozen one by one
            model.trainable = False
        return model


def _declared_input_shape(layer):
    """The batch input shape a first layer declares (input_shape=, or a built model's input)."""
    if layer._batch_input_shape is not None:
        return tuple(layer._batch_input_shape)
    if isinstance(layer, Sequential):
        return layer._input_shape
    if isinstance(layer, Model) and layer._graph and len(layer.inputs) == 1:
        return tuple(layer.inputs[0].shape)
    return None
