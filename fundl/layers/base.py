"""The Layer base class: lazy weights, automatic tracking, configs, and symbolic calls.

A layer stores hyper-parameters in ``__init__``, creates its weights in ``build(input_shape)``
the first time it is called, and computes in ``call(x, training=...)`` with functional ops.
Weights and sub-layers assigned as attributes are tracked automatically, so
``weights``/``trainable_weights`` are derived, never hand-listed.

Called on a :class:`SymbolicTensor` (from :func:`~fundl.layers.Input`), a layer does no math:
it records a node of the functional graph and returns a new SymbolicTensor whose shape comes
from ``compute_output_shape``, so shape errors surface when the model is defined.

Example:
    >>> class Scale(Layer):
    ...     def build(self, input_shape):
    ...         self.scale = self.add_weight("scale", (input_shape[-1],), "ones")
    ...     def call(self, x, training=False):
    ...         return x * self.scale
    ...     def compute_output_shape(self, input_shape):
    ...         return input_shape
"""
from __future__ import annotations

import re

import numpy

from .. import backend, initializers, regularizers
from ..tensor import Tensor
from ._masking import _MASKS, pass_mask_on

# Every Layer subclass, by class name: the only classes a saved file may instantiate.
_REGISTRY: dict[str, type] = {}


def register_serializable(cls=None, *, name=None):
    """Register a class (a Layer subclass, a custom function) under ``name`` for loading.

    Layer subclasses register themselves when defined; call this for anything else a config
    refers to by name (a function used by a ``Lambda`` layer, a custom loss). Loading only
    ever instantiates or calls registered names: a file cannot name arbitrary code.

    Args:
        cls: the class or function (when used as ``@register_serializable``).
        name: the name to register under (default: its ``__name__``).

    Returns:
        ``cls`` itself (or a decorator, when called with ``name=`` only).

    Example:
        >>> @register_serializable
        ... def swish(x):
        ...     return x * fl.sigmoid(x)
        >>> Lambda(swish)     # can now be saved and loaded
    """
    def register(obj):
        _REGISTRY[name or obj.__name__] = obj
        return obj

    return register(cls) if cls is not None else register


def get_registered(name: str, custom_objects=None):
    """The registered class or function called ``name``; a clear error if unknown.

    Args:
        name: the name stored in a config.
        custom_objects: ``{name: object}`` consulted first.

    Returns:
        The class or function.

    Raises:
        ValueError: nothing is registered under ``name`` (the message says how to fix it).

    Example:
        >>> get_registered("Dense")
        <class 'fundl.layers.core.Dense'>
    """
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"Unknown class or function {name!r}: it is not registered with fundl. Define or "
            "import it before loading, decorate it with @fundl.layers.register_serializable, or "
            "pass custom_objects={name: obj}.") from None


def serialize_object(obj):
    """An initializer/regularizer/... as JSON: None, its name, or ``{class_name, config}``.

    Raises:
        ValueError: ``obj`` is a plain function or another object without ``get_config``;
            configs hold names and numbers only, never code.
    """
    if obj is None or isinstance(obj, str):
        return obj
    if not hasattr(obj, "get_config"):
        raise ValueError(f"cannot store {getattr(obj, '__name__', obj)!r} in a config: only "
                         "names and objects with get_config() can be saved. Use a built-in name "
                         "or an instance of a fundl class.")
    return {"class_name": type(obj).__name__, "config": obj.get_config()}


def deserialize_object(module, identifier):
    """The object ``identifier`` names in ``module`` (``fundl.initializers``, ...).

    Accepts what :func:`serialize_object` writes; resolution goes through ``module.get``, which
    knows only that module's own classes and names, so nothing is imported from elsewhere.
    """
    return module.get(identifier)


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _as_shape(shape):
    if isinstance(shape, int):
        return (shape,)
    return tuple(None if s is None else int(s) for s in shape)


class SymbolicTensor:
    """A placeholder for data flowing through a functional model being defined.

    Attributes:
        shape: the shape, batch axis first, as ``None``.
        dtype: the dtype the data will have.
        node: the :class:`Node` that produced it (None for an ``Input``).
        index: which output of that node it is.
    """

    __slots__ = ("shape", "dtype", "node", "index", "name")

    def __init__(self, shape, dtype="float32", node=None, index=0, name=None):
        self.shape = tuple(shape)
        self.dtype = numpy.dtype(dtype)
        self.node = node
        self.index = index
        self.name = name

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<SymbolicTensor shape={self.shape} dtype={self.dtype} name={self.name!r}>"


class Node:
    """One call of a layer inside a functional graph: its layer, inputs and outputs."""

    __slots__ = ("layer", "inputs", "outputs", "kwargs", "input_structure")

    def __init__(self, layer, inputs, kwargs, input_structure):
        self.layer = layer
        self.inputs = inputs            # flat list of SymbolicTensors
        self.kwargs = kwargs
        self.input_structure = input_structure  # "single" or "list"
        self.outputs = []


def _flatten(x):
    if isinstance(x, (list, tuple)):
        return list(x), "list"
    return [x], "single"


class Layer:
    """Base class of every layer (and of models).

    Args:
        name: a name, unique within a model (defaults to the class name in snake case; models
            make duplicates unique).
        trainable: whether the layer's weights are updated by training.
        dtype: the dtype of its weights (float32 by default).
        input_shape: the shape of one sample (Keras style), for the first layer of a Sequential.
        input_dim: shorthand for ``input_shape=(input_dim,)``.
        batch_size: fixes the batch size of the input (rarely needed).

    Subclasses override ``build``, ``call``, ``compute_output_shape`` and ``get_config``.
    Layers (and lists of layers) assigned as attributes become sub-layers: their weights,
    losses and ``trainable`` switch are part of this layer's.

    Masks: a layer that keeps the (batch, time) axes and acts on each step alone sets the
    class attribute ``supports_masking = True``; calling it then passes its input's sequence
    mask on to its output (see :meth:`compute_mask` and :mod:`fundl.layers._masking`). Other
    layers' outputs carry no mask unless they attach one themselves.

    Example:
        >>> layer = Dense(3)
        >>> y = layer(np.ones((2, 4), dtype="float32"))     # builds a (4, 3) kernel
        >>> [w.shape for w in layer.weights]
        [(4, 3), (3,)]
    """

    supports_masking = False  # True: the input's mask is passed on to the output (Keras)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _REGISTRY.setdefault(cls.__name__, cls)

    def __init__(self, name=None, trainable=True, dtype=None, input_shape=None, input_dim=None,
                 batch_size=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) "
                            f"{sorted(kwargs)}.")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: name must be a string, got "
                            f"{type(name).__name__}.")
        object.__setattr__(self, "_own_weights", [])     # [Tensor, trainable, regularizer]
        object.__setattr__(self, "_sublayers", {})       # key -> Layer ("block", "blocks.0")
        self._auto_name = name is None
        self.name = name or _snake(type(self).__name__)
        self._trainable = bool(trainable)
        self.dtype = numpy.dtype(dtype or backend.get_default_dtype()).name
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        self._batch_input_shape = ((batch_size,) + _as_shape(input_shape)
                                   if input_shape is not None else None)
        self.built = False
        self.input_spec_shape = None   # input shape seen at build, batch axis as None
        self._activity_losses = []
        self.activity_regularizer = None
        self._inbound_nodes = []

    # -- tracking ----------------------------------------------------------------------------
    def __setattr__(self, name, value):
        sublayers = self.__dict__.get("_sublayers")
        if sublayers is None and isinstance(value, Layer):
            raise RuntimeError(f"{type(self).__name__}: assign sub-layers after calling "
                               "super().__init__() in __init__, so that they are tracked.")
        if sublayers is not None and not name.startswith("_"):
            # Forget what the attribute held before (a layer or a list of layers) ...
            for key in [k for k in sublayers if k == name or k.startswith(name + ".")]:
                del sublayers[key]
            # ... and track what it holds now.
            if isinstance(value, Layer):
                sublayers[name] = value
            elif isinstance(value, (list, tuple)) and value and all(
                    isinstance(v, Layer) for v in value):
                for i, v in enumerate(value):
                    sublayers[f"{name}.{i}"] = v
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        sublayers = self.__dict__.get("_sublayers") or {}
        for key in [k for k in sublayers if k == name or k.startswith(name + ".")]:
            del sublayers[key]
        object.__delattr__(self, name)

    def add_weight(self, name, shape, initializer="glorot_uniform", trainable=True,
                   regularizer=None, dtype=None) -> Tensor:
        """Create, track and return a weight Tensor (call it from ``build``).

        Args:
            name: a short, stable name (``"kernel"``, ``"bias"``): it becomes a file key.
            shape: the weight's shape.
            initializer: a name or an initializer object (see :mod:`fundl.initializers`).
            trainable: False for state updated outside of training (batch-norm statistics).
            regularizer: an optional penalty (see :mod:`fundl.regularizers`).
            dtype: the weight's dtype (the layer's by default).

        Returns:
            Tensor of ``shape`` on the current device; it requires a gradient when trainable.

        Example:
            >>> self.kernel = self.add_weight("kernel", (n_in, self.units), "glorot_uniform")
        """
        if any(e[0].name == name for e in self._own_weights):
            raise ValueError(f"{type(self).__name__} '{self.name}': a weight named {name!r} "
                             "exists already; weight names must be unique within a layer.")
        init = deserialize_object(initializers, initializer)
        # C order whatever the initializer returns (an orthogonal Q comes transposed): the
        # kernels and BLAS calls take C-contiguous weights without a copy, and an in-place
        # update of an F-ordered weight from a C-ordered gradient was measured 15x slower
        value = numpy.asarray(init(tuple(shape), dtype=dtype or self.dtype), order="C")
        w = Tensor._wrap(backend.to_device(value, backend.get_device()))
        w.name = name
        w.requires_grad = bool(trainable and self._trainable)
        penalty = deserialize_object(regularizers, regularizer)
        self._own_weights.append([w, bool(trainable), penalty])
        return w

    @property
    def trainable(self) -> bool:
        """Whether training updates this layer's weights; setting it freezes or unfreezes them all.

        A frozen layer's weights stop requiring gradients, so no gradient is computed for them,
        ``fit`` leaves them unchanged and they count as non-trainable.
        """
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool):
        self._trainable = bool(value)
        for entry in self._own_weights:
            entry[0].requires_grad = entry[1] and self._trainable
        for _, layer in self._named_sublayers():
            layer.trainable = value

    def _named_sublayers(self):
        """(key, layer) for each direct sub-layer, in weight order (models override it)."""
        return list(self._sublayers.items())

    def _weight_entries(self):
        """(key, tensor, trainable) for every weight, own first, then sub-layers', no repeats."""
        out, seen = [], set()
        own = sorted(self._own_weights, key=lambda e: not e[1])  # trainable first, as Keras
        for w, trainable, _ in own:
            if id(w) not in seen:
                seen.add(id(w))
                out.append((w.name, w, trainable and self._trainable))
        for prefix, layer in self._named_sublayers():
            for key, w, trainable in layer._weight_entries():
                if id(w) not in seen:
                    seen.add(id(w))
                    out.append((f"{prefix}.{key}", w, trainable and self._trainable))
        return out

    @property
    def weights(self) -> list:
        """All weights: the layer's own (trainable ones first), then each sub-layer's (as Keras)."""
        return [w for _, w, _ in self._weight_entries()]

    @property
    def trainable_weights(self) -> list:
        """The weights that training updates (a shared weight appears once)."""
        return [w for _, w, t in self._weight_entries() if t]

    @property
    def non_trainable_weights(self) -> list:
        """The weights training leaves alone: frozen layers' and ``trainable=False`` state."""
        return [w for _, w, t in self._weight_entries() if not t]

    trainable_variables = trainable_weights
    variables = weights

    def count_params(self) -> int:
        """The number of scalars in all the weights."""
        if not self.built:
            raise ValueError(f"{type(self).__name__} '{self.name}': count_params() needs the layer "
                             "to be built; call it on data or give input_shape first.")
        return int(sum(w.size for w in self.weights))

    def get_weights(self) -> list:
        """The weights as NumPy arrays (copies), in ``weights`` order (Keras layout).

        Returns:
            list of arrays; a Dense layer gives ``[kernel (in, units), bias (units,)]``.
        """
        return [w.numpy().copy() for w in self.weights]

    def set_weights(self, weights) -> None:
        """Set the weights from NumPy arrays in ``weights`` order; shapes must match exactly.

        Every array is checked before any weight is written, so on error nothing changes.

        Args:
            weights: a list of arrays, as :meth:`get_weights` returns.

        Raises:
            ValueError: wrong number of arrays, or an array of the wrong shape (the message
                names the layer, the weight and both shapes).
        """
        entries = self._weight_entries()
        weights = list(weights)
        if len(weights) != len(entries):
            raise ValueError(f"{type(self).__name__} '{self.name}': set_weights expected "
                             f"{len(entries)} arrays ({[k for k, _, _ in entries]}), got "
                             f"{len(weights)}.")
        values = []
        for (key, w, _), value in zip(entries, weights):
            value = numpy.asarray(value.numpy() if isinstance(value, Tensor) else value)
            if value.shape != w.shape:
                raise ValueError(f"{type(self).__name__} '{self.name}': weight '{key}' has shape "
                                 f"{w.shape}, but the array given for it has shape "
                                 f"{value.shape}.")
            if value.dtype.kind not in "fiub":
                raise TypeError(f"{type(self).__name__} '{self.name}': weight '{key}' needs a "
                                f"numeric array, got dtype {value.dtype}.")
            values.append(value)
        for (_, w, _), value in zip(entries, values):
            xp = backend.get_array_module(w.data)
            w.data[...] = xp.asarray(value.astype(w.dtype, copy=False))

    def state_dict(self) -> dict:
        """Weights by dotted key (``"dense_1.kernel"``), as NumPy arrays.

        Returns:
            dict of key -> array (on the CPU this shares memory with the weight; copy it to
            keep a snapshot).
        """
        return {key: w.numpy() for key, w, _ in self._weight_entries()}

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Load weights saved by :meth:`state_dict`; checks every key and shape before writing.

        Args:
            state: dotted key -> array.
            strict: require exactly the model's keys (else missing and unexpected keys are
                ignored; shapes must still match).

        Raises:
            ValueError: missing or unexpected keys (with ``strict``), or a shape mismatch
                (naming the key and both shapes). Nothing is written then.
        """
        entries = {key: w for key, w, _ in self._weight_entries()}
        missing = [k for k in entries if k not in state]
        unexpected = [k for k in state if k not in entries]
        if strict and (missing or unexpected):
            raise ValueError(f"{type(self).__name__} '{self.name}': state does not match: missing "
                             f"keys {missing}, unexpected keys {unexpected}.")
        values = {}
        for key, w in entries.items():
            if key not in state:
                continue
            value = state[key]
            value = numpy.asarray(value.numpy() if isinstance(value, Tensor) else value)
            if value.shape != w.shape:
                raise ValueError(f"{type(self).__name__} '{self.name}': '{key}' has shape "
                                 f"{w.shape} in the model but {value.shape} in the state.")
            if value.dtype.kind not in "fiub":
                raise TypeError(f"{type(self).__name__} '{self.name}': '{key}' in the state has "
                                f"dtype {value.dtype}; a numeric array is needed.")
            values[key] = value
        for key, value in values.items():
            w = entries[key]
            xp = backend.get_array_module(w.data)
            w.data[...] = xp.asarray(value.astype(w.dtype, copy=False))

    # -- losses ------------------------------------------------------------------------------
    @property
    def losses(self) -> list:
        """Regularization penalties (scalar Tensors) of this layer and its sub-layers.

        Weight penalties are computed now from the current weights; activity penalties are
        those of the layer's latest call.
        """
        out = list(self._activity_losses)
        for w, trainable, reg in self._own_weights:
            if reg is not None and trainable and self._trainable:
                out.append(reg(w))
        seen = set()
        for _, layer in self._named_sublayers():
            if id(layer) not in seen:  # a layer listed twice still adds its penalty once
                seen.add(id(layer))
                out.extend(layer.losses)
        return out

    def _has_losses(self) -> bool:
        """Whether this layer or a sub-layer can ever add a penalty (checked once per fit)."""
        if self.activity_regularizer is not None or any(
                reg is not None for _, _, reg in self._own_weights):
            return True
        return any(layer._has_losses() for _, layer in self._named_sublayers())

    # -- building and calling -----------------------------------------------------------------
    def build(self, input_shape) -> None:
        """Create the weights for inputs of ``input_shape`` (batch axis first, may be None)."""

    def call(self, inputs, training=False):
        """The computation, on Tensors, with functional ops."""
        raise NotImplementedError(f"{type(self).__name__} must implement call()")

    def compute_output_shape(self, input_shape):
        """The output shape for an input shape (batch axis included, may be None)."""
        raise NotImplementedError(f"{type(self).__name__} must implement compute_output_shape()")

    def compute_mask(self, inputs, mask=None):
        """The output's mask, given the inputs and their mask(s) (Keras' ``compute_mask``).

        ``Layer.__call__`` asks it, for layers with ``supports_masking``, whenever an input is
        masked. The default passes the mask through unchanged (None for a layer that does not
        support masking); merge layers combine a list of masks.

        Args:
            inputs: the input Tensor (or list of Tensors).
            mask: a boolean (batch, timesteps) array, a list of them (None for an unmasked
                input), or None.

        Returns:
            A boolean (batch, timesteps) array, or None.
        """
        return mask if self.supports_masking else None

    def _maybe_build(self, input_shape):
        if not self.built:
            self.build(input_shape)
            self.built = True
            self.input_spec_shape = input_shape

    def __call__(self, inputs, training=None, **kwargs):
        """Run the layer on data (Tensors or arrays), or record a graph node on SymbolicTensors.

        Args:
            inputs: a Tensor/array, or a list of them for merge layers; SymbolicTensors from
                :func:`~fundl.layers.Input` for the functional API.
            training: True for training behaviour (dropout, noise), else inference.

        Returns:
            The output Tensor(s), or SymbolicTensor(s) when called symbolically.

        Raises:
            ValueError, TypeError: from building or ``call``, re-raised with the layer's name
                and the input shapes prepended.
        """
        if type(inputs) is Tensor:  # the common case, kept short: this runs every layer, every step
            args = inputs
            shapes = inputs.data.shape
        else:
            flat, structure = _flatten(inputs)
            if any(isinstance(x, SymbolicTensor) for x in flat):
                return self._symbolic_call(inputs, flat, structure, kwargs)
            device = self._device_of_weights()
            if structure == "list":
                args = [x if isinstance(x, Tensor) else Tensor(x, device=device) for x in flat]
                shapes = [t.shape for t in args]
            else:
                x = flat[0]
                args = x if isinstance(x, Tensor) else Tensor(x, device=device)
                shapes = args.shape
        try:
            if not self.built:
                self._maybe_build(_batchless(shapes))
            out = self.call(args, training=bool(training), **kwargs)
        except (ValueError, TypeError) as e:
            _reraise_in_context(self, e, shapes)
        if _MASKS and self.supports_masking:  # no mask alive anywhere: nothing to pass on
            pass_mask_on(self, args, out)
        if self.activity_regularizer is not None:
            self._activity_losses = [self.activity_regularizer(o) / o.shape[0]
                                     for o in _flatten(out)[0]]
        return out

    def _symbolic_call(self, inputs, flat, structure, kwargs):
        """Record a node of the functional graph and return symbolic outputs."""
        if not all(isinstance(x, SymbolicTensor) for x in flat):
            raise TypeError(f"{type(self).__name__} '{self.name}': cannot mix symbolic inputs "
                            "(from Input) with real data in one call; got "
                            f"{[type(x).__name__ for x in flat]}.")
        shapes = [x.shape for x in flat]
        in_shape = shapes if structure == "list" else shapes[0]
        try:
            if not self.built:
                self._maybe_build(_batchless(in_shape))
            out_shape = self.compute_output_shape(in_shape)
        except (ValueError, TypeError) as e:
            _reraise_in_context(self, e, in_shape)
        node = Node(self, flat, kwargs, structure)
        self._inbound_nodes.append(node)
        multi = isinstance(out_shape, list)
        shapes_out = out_shape if multi else [out_shape]
        dtype = self.dtype if flat[0].dtype.kind == "f" else flat[0].dtype
        outs = [SymbolicTensor(s, dtype, node, i, self.name) for i, s in enumerate(shapes_out)]
        node.outputs = outs
        return outs if multi else outs[0]

    # -- configuration ---------------------------------------------------------------------------
    def get_config(self) -> dict:
        """A JSON-safe dict of the constructor arguments (``from_config`` inverts it).

        Returns:
            ``{"name", "trainable", "dtype"}`` plus ``"batch_input_shape"`` when the layer was
            given an input shape, plus each subclass's own arguments.
        """
        config = {"name": self.name, "trainable": self._trainable, "dtype": self.dtype}
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = list(self._batch_input_shape)
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        """A new layer from :meth:`get_config`'s dict (``custom_objects``: extra names to resolve).

        Example:
            >>> clone = Dense.from_config(Dense(4, activation="relu").get_config())
        """
        if not isinstance(config, dict):
            raise TypeError(f"{cls.__name__}.from_config: expected a dict, got "
                            f"{type(config).__name__}.")
        config = dict(config)
        batch_input_shape = config.pop("batch_input_shape", None)
        if batch_input_shape is not None:
            config["input_shape"] = tuple(batch_input_shape[1:])
            config["batch_size"] = batch_input_shape[0]
        return cls(**config)

    # -- devices -----------------------------------------------------------------------------------
    def _device_of_weights(self):
        """Where raw array inputs go: the device of the layer's weights (None before it has
        any: then the default device)."""
        entries = self._weight_entries() if self.built else ()
        return backend.device_of(entries[0][1].data) if entries else None

    def to(self, device: str) -> "Layer":
        """Move every weight to ``device`` ("cpu" or "gpu"), in place; returns the layer."""
        for _, w, _ in self._weight_entries():
            w.data = backend.to_device(w.data, device)
            if w.grad is not None:
                w.grad = backend.to_device(w.grad, device)
        return self

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}, built={self.built}>"


def _batchless(shapes):
    """Input shapes with the batch axis replaced by None (the shape a layer is built for)."""
    if isinstance(shapes, list):
        return [(None,) + tuple(s[1:]) for s in shapes]
    return (None,) + tuple(shapes[1:])


def _reraise_in_context(layer, error, shapes):
    """Re-raise ``error`` (same type, chained) with the layer's name and input shape(s) first.

    A message that already names the layer keeps its text after the name; one that already
    shows the input shape is raised unchanged.
    """
    message = str(error)
    prefix = f"{type(layer).__name__} '{layer.name}'"
    shape_text = _fmt_shapes(shapes)
    if message.startswith(prefix) and shape_text in message:
        raise error
    rest = message[len(prefix):] if message.startswith(prefix) else ": " + message
    try:
        new = type(error)(f"{prefix} (input shape {shape_text}){rest}")
    except Exception:  # an exception class with another constructor: keep the original
        raise error from None
    raise new from error


def _fmt_shapes(shapes):
    """Shapes for messages: ``(32, 170)`` or ``[(32, 4), (32, 5)]``."""
    if isinstance(shapes, list):
        return "[" + ", ".join(str(tuple(s)) for s in shapes) + "]"
    return str(tuple(shapes))
