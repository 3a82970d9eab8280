"""The Layer base class: lazy weights, automatic tracking, configs, and symbolic calls.

A layer stores hyper-parameters in ``__init__``, creates its weights in ``build(input_shape)``
the first time it is called (or when ``build`` is called by hand: either way, once), and
computes in ``call(inputs)`` with functional ops. Weights and sub-layers assigned as
attributes are tracked automatically, so ``weights``/``trainable_weights`` are derived, never
hand-listed.

The call context (Keras 3's rules): ``call`` gets ``training=`` only when its signature takes
it, and ``mask=`` likewise; a layer called with ``training=None`` inside another layer's call
inherits that call's value, so a Dropout inside a custom block trains when the model trains;
the outermost call with None means inference.

Called on a :class:`SymbolicTensor` (from :func:`~fundl.layers.Input`), a layer does no math:
it records a node of the functional graph and returns a new SymbolicTensor whose shape comes
from ``compute_output_shape`` or, for a layer without one, from running ``call`` once on
zeros, so shape errors surface when the model is defined.

Example:
    >>> class Scale(Layer):
    ...     def build(self, input_shape):
    ...         self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones",
    ...                                      name="scale")
    ...     def call(self, inputs):
    ...         return inputs * self.scale
"""
from __future__ import annotations

import functools
import inspect
import json
import re
import threading
import warnings
import weakref

import numpy

from .. import backend, initializers, regularizers, runtime
from ..autograd import no_grad
from ..tensor import Tensor, Variable
from ._masking import _MASKS, get_mask, pass_mask_on

# What a saved file may instantiate: every Layer subclass and whatever the user registers, by
# key: a class name ("Dense"), or "package>Name" for objects registered with a package (as
# Keras's register_keras_serializable), or for a user class whose name is a fundl built-in's.
_REGISTRY: dict[str, object] = {}
_KEYS: dict[int, str] = {}  # id(registered object) -> its key (the name written to configs)


def _is_builtin(obj) -> bool:
    return getattr(obj, "__module__", "").split(".")[0] == "fundl"


def _register(key: str, obj) -> None:
    """Put ``obj`` under ``key``; a later object replaces an earlier one of the same key."""
    previous = _REGISTRY.get(key)
    if previous is not None and previous is not obj:
        same_definition = (getattr(previous, "__module__", None) == getattr(obj, "__module__", 1)
                           and getattr(previous, "__qualname__", None)
                           == getattr(obj, "__qualname__", 1))
        local = "<locals>" in getattr(obj, "__qualname__", "") or "<locals>" in getattr(
            previous, "__qualname__", "")  # a throwaway class defined in a function
        if not same_definition and not local and not _is_builtin(obj):
            # Two different definitions under one name: loading would pick one silently.
            warnings.warn(
                f"{key!r} was registered by {previous.__module__}.{previous.__qualname__}; "
                f"{obj.__module__}.{obj.__qualname__} now replaces it for loading. Give one of "
                "them a package with @fundl.layers.register_serializable(package='...') to "
                "keep both.", stacklevel=4)
        _KEYS.pop(id(previous), None)
    _REGISTRY[key] = obj
    _KEYS[id(obj)] = key


def _auto_register(cls) -> None:
    """Register a new Layer subclass under its class name (fundl's own and the user's).

    A user class named like one of fundl's built-ins (``class Dense(Layer)``) must not replace
    the built-in for loading: it goes under ``"Custom>Dense"`` instead. A class defined again
    (a notebook cell run twice) replaces its earlier definition.
    """
    name = cls.__name__
    current = _REGISTRY.get(name)
    if not _is_builtin(cls) and current is not None and _is_builtin(current):
        _register(f"Custom>{name}", cls)
    else:
        _register(name, cls)


def register_serializable(cls=None, *, package=None, name=None):
    """Register a class or function for loading, under ``name`` (or ``"package>name"``).

    Layer subclasses register themselves when defined (under their class name); call this for
    anything else a config refers to by name (a function used by a ``Lambda`` layer, a custom
    loss, initializer, regularizer or constraint), or to put a class under a package, as Keras's
    ``register_keras_serializable(package=...)``: its key is then ``"package>Name"``, so two
    classes of the same name from different packages do not collide. Loading only ever
    instantiates or calls registered names: a file cannot name arbitrary code.

    Args:
        cls: the class or function (when used as ``@register_serializable``).
        package: an optional package name; the key becomes ``"package>name"``.
        name: the name to register under (default: its ``__name__``).

    Returns:
        ``cls`` itself (or a decorator, when called with keyword arguments only).

    Raises:
        ValueError: ``package`` or ``name`` contains ``">"``.

    Example:
        >>> @register_serializable
        ... def swish(x):
        ...     return x * fl.sigmoid(x)
        >>> Lambda(swish)     # can now be saved and loaded
        >>> @register_serializable(package="my_pkg")
        ... class Scale(Layer): ...
        >>> registered_name(Scale)
        'my_pkg>Scale'
    """
    for what, value in (("package", package), ("name", name)):
        if value is not None and (not isinstance(value, str) or ">" in value or not value):
            raise ValueError(f"register_serializable: {what} must be a non-empty string without "
                             f"'>', got {value!r}.")

    def register(obj):
        key = name or obj.__name__
        if package:
            key = f"{package}>{key}"
        old = _KEYS.get(id(obj))
        if old is not None and old != key and _REGISTRY.get(old) is obj:
            del _REGISTRY[old]  # the class's automatic entry gives way to the explicit one
        _register(key, obj)
        return obj

    return register(cls) if cls is not None else register


def registered_name(obj) -> str:
    """The key ``obj`` is registered under (what configs store as its ``class_name``).

    Args:
        obj: a class or function, or an instance of a class.

    Returns:
        ``"Dense"``, ``"my_pkg>Scale"``, ...; an unregistered object's ``__name__``.

    Example:
        >>> registered_name(Dense)
        'Dense'
    """
    target = obj if isinstance(obj, type) or callable(obj) and hasattr(obj, "__name__") \
        else type(obj)
    key = _KEYS.get(id(target))
    if key is not None and _REGISTRY.get(key) is target:
        return key
    return target.__name__


def get_registered(name: str, custom_objects=None):
    """The registered class or function called ``name``; a clear error if unknown.

    Looks in ``custom_objects`` first (the exact key, then the name without its
    ``"package>"``), then in the registry. Custom initializers, regularizers, constraints and
    losses resolve the same way as layers, so a loader can rebuild them from their
    ``{"class_name", "config"}``.

    Args:
        name: the name stored in a config (``"Dense"``, ``"my_pkg>Scale"``).
        custom_objects: ``{name: object}`` consulted first.

    Returns:
        The class or function.

    Raises:
        ValueError: nothing is registered under ``name`` (the message says how to fix it).

    Example:
        >>> get_registered("Dense")
        <class 'fundl.layers.core.Dense'>
    """
    if not isinstance(name, str):
        raise TypeError(f"get_registered: a class name must be a string, got "
                        f"{type(name).__name__} {name!r}.")
    short = name.rsplit(">", 1)[-1]
    if custom_objects:
        if name in custom_objects:
            return custom_objects[name]
        if short in custom_objects:
            return custom_objects[short]
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"Unknown class or function {name!r}: it is not registered with fundl. Define or "
            "import it before loading, decorate it with @fundl.layers.register_serializable, or "
            f"pass custom_objects={{{short!r}: obj}}.") from None


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
    return {"class_name": registered_name(type(obj)), "config": obj.get_config()}


def deserialize_object(module, identifier, custom_objects=None):
    """The object ``identifier`` names in ``module`` (``fundl.initializers``, ...).

    Accepts what :func:`serialize_object` writes. A name or ``{class_name, config}`` dict is
    resolved by ``module.get`` (which knows only that module's own classes and names), or, for
    a class of the user's own (a custom initializer, regularizer or constraint), through
    ``custom_objects`` and then the registry of :func:`register_serializable`: nothing is
    imported from elsewhere.

    Args:
        module: the module whose ``get`` resolves built-in names.
        identifier: None, a name, a ``{"class_name", "config"}`` dict, or an object.
        custom_objects: ``{name: class_or_function}`` tried before the registry.

    Returns:
        The object (None for None).
    """
    name = identifier.get("class_name") if isinstance(identifier, dict) else identifier
    if isinstance(name, str) and custom_objects and (
            name in custom_objects or name.rsplit(">", 1)[-1] in custom_objects):
        return _instantiate(get_registered(name, custom_objects), identifier)
    try:
        return module.get(identifier)
    except ValueError:
        if not isinstance(name, str) or name not in _REGISTRY:
            raise
        return _instantiate(_REGISTRY[name], identifier)


def _instantiate(obj, identifier):
    """``obj`` built from a config dict (``from_config``), a class instantiated, else ``obj``."""
    if isinstance(identifier, dict) and isinstance(obj, type):
        config = identifier.get("config") or {}
        from_config = getattr(obj, "from_config", None)
        return from_config(config) if from_config is not None else obj(**config)
    if isinstance(obj, type):
        return obj()
    return obj


def _resolve_custom_config_values(config, custom_objects):
    """Config values that are ``{class_name, config}`` dicts of user classes, as objects.

    A layer's constructor resolves its initializers (regularizers, ...) through the built-in
    modules only; a custom one stored in the config is rebuilt here first, from
    ``custom_objects`` or the registry. Layer configs (wrappers' ``layer``) and built-in
    names are left for the constructor.
    """
    out = dict(config)
    for key, value in config.items():
        if not (isinstance(value, dict) and isinstance(value.get("class_name"), str)
                and isinstance(value.get("config", {}), dict)):
            continue
        name = value["class_name"]
        custom = custom_objects and (name in custom_objects
                                     or name.rsplit(">", 1)[-1] in custom_objects)
        obj = get_registered(name, custom_objects) if custom else _REGISTRY.get(name)
        if obj is None or _is_builtin(obj) or (isinstance(obj, type) and issubclass(obj, Layer)):
            continue
        out[key] = _instantiate(obj, value)
    return out


@functools.lru_cache(maxsize=1024)
def _snake(name: str) -> str:
    """Keras's ``to_snake_case``: ``Conv2DTranspose`` -> ``conv2d_transpose`` (memoised: a
    model's weight keys are made from its layers' class names several times per
    ``train_on_batch``, and three regular expressions per name cost ~4 us)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub(r"([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


_NAME_COUNTS: dict[str, int] = {}  # prefix -> how many names were made from it this session


def unique_name(prefix: str) -> str:
    """``prefix``, then ``prefix_1``, ``prefix_2``, ... (Keras's automatic layer names).

    Example:
        >>> Dense(2).name, Dense(2).name          # in a fresh session
        ('dense', 'dense_1')
    """
    count = _NAME_COUNTS.get(prefix, 0)
    _NAME_COUNTS[prefix] = count + 1
    return prefix if count == 0 else f"{prefix}_{count}"


def reset_name_counters() -> None:
    """Start automatic names afresh (``dense`` again); ``fl.utils.clear_session`` calls it.

    Example:
        >>> reset_name_counters(); Dense(2).name
        'dense'
    """
    _NAME_COUNTS.clear()


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
    """One call of a layer inside a functional graph: its layer, inputs and outputs.

    ``input_structure`` says how the inputs were given: ``"single"`` (one tensor), ``"list"``
    (one list, as merge layers take), ``"args"`` (several positional arguments,
    ``layer(a, b)``) or ``"dict"`` (one dict, its ``keys`` kept); ``training`` is the value
    passed explicitly in that call (None: the model's own), as in
    ``base_model(inputs, training=False)``.
    """

    __slots__ = ("layer", "inputs", "outputs", "kwargs", "input_structure", "training",
                 "tensor_kwargs", "keys")

    def __init__(self, layer, inputs, kwargs, input_structure, training=None):
        self.layer = layer
        self.inputs = inputs            # flat list of SymbolicTensors (positional, then keyword)
        self.kwargs = kwargs            # the constant keyword arguments
        self.input_structure = input_structure
        self.training = training
        self.tensor_kwargs = []         # names of the keyword inputs, the last of ``inputs``
        self.keys = None                # the keys of a dict input ("dict" structure)
        self.outputs = []


def _flatten(x):
    if isinstance(x, (list, tuple)):
        return list(x), "list"
    return [x], "single"


class _CallContext(threading.local):
    """The ``training`` value of the layer call in progress, per thread (Keras's CallContext).

    A layer called with ``training=None`` inside another layer's ``call`` inherits the value
    of that call; outside any call it is None.
    """

    training = None


_CALL_CONTEXT = _CallContext()


class _CallSpec:
    """What ``Layer.__call__`` needs to know about a class's ``call`` signature (read once).

    Attributes:
        passes_training: ``call`` takes ``training`` (by name, or through ``**kwargs``).
        training_default: the signature's default for ``training``, used when neither the
            caller nor an enclosing call gives one (None there means False).
        fills_mask: ``call`` has a ``mask`` parameter: it gets the input's mask if none is given.
        passes_mask: ``call`` accepts ``mask`` (by name or ``**kwargs``); otherwise a ``mask=``
            given to the layer is not passed on.
        positional: the names of the parameters that extra positional arguments fill, in order.
    """

    __slots__ = ("passes_training", "training_default", "fills_mask", "passes_mask",
                 "positional")

    def __init__(self, cls):
        try:
            params = list(inspect.signature(cls.call).parameters.values())[1:]  # not self
        except (TypeError, ValueError):  # no introspectable signature: pass training, as before
            params = [inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)]
        named = {p.name: p for p in params if p.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
        var_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        training = named.get("training")
        self.passes_training = training is not None or var_keyword
        default = training.default if training is not None else None
        self.training_default = bool(default) if default not in (None, inspect.Parameter.empty) \
            else False
        self.fills_mask = "mask" in named
        self.passes_mask = self.fills_mask or var_keyword
        self.positional = [p.name for p in params[1:] if p.kind in (
            inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]


_CALL_SPECS: dict[type, _CallSpec] = {}


def _call_spec(cls) -> _CallSpec:
    spec = _CALL_SPECS.get(cls)
    if spec is None:
        spec = _CALL_SPECS[cls] = _CallSpec(cls)
    return spec


def _wrap_build(build):
    """``build`` that marks the layer built (and records the shape) once it returns.

    So that ``layer.build(shape)`` called by hand, then ``layer(x)``, builds once (Keras 3
    wraps ``build`` the same way), without subclasses having to set ``self.built``.
    """
    if getattr(build, "_fundl_marks_built", False):
        return build

    @functools.wraps(build)
    def wrapper(self, *args, **kwargs):
        result = build(self, *args, **kwargs)
        if not self.__dict__.get("built", False):
            object.__setattr__(self, "built", True)
        if self.__dict__.get("input_spec_shape") is None and args:
            self.input_spec_shape = _shape_key(args[0], tuples=True)
        return result

    wrapper._fundl_marks_built = True
    return wrapper


def _shape_key(shape, tuples=False):
    """A shape (or a list of shapes) as nested tuples (hashable), or None if it is not one."""
    if isinstance(shape, (list, tuple)) and shape and all(
            isinstance(s, (list, tuple)) for s in shape):
        return [tuple(s) for s in shape] if tuples else tuple(tuple(s) for s in shape)
    if isinstance(shape, (list, tuple)):
        return tuple(shape)
    return None


def _is_jsonable(value) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


_INIT_SIGNATURES: dict[type, inspect.Signature] = {}

# The layers holding add_loss terms (id -> weak reference): the outermost call of a forward
# pass clears those inside it. Empty unless add_loss is used, so the check costs nothing else.
_LOSS_HOLDERS: dict[int, weakref.ref] = {}
# Whether any layer has called add_metric (then fit/evaluate look for their values).
_METRIC_LAYERS = weakref.WeakSet()


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
        activity_regularizer: an optional penalty on the layer's output (see
            :mod:`fundl.regularizers`), divided by the batch size, as Keras.

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
    # True for layers whose ops run compiled parallel regions over the batch (convolutions,
    # pooling, recurrent layers): a model holding one keeps its medium dense products on one
    # thread while it runs (fundl.runtime's "auto" rule for kernels.matmul).
    uses_parallel_regions = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _auto_register(cls)
        if "build" in cls.__dict__:
            cls.build = _wrap_build(cls.__dict__["build"])

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        # A subclass without its own get_config gets one from its constructor's arguments
        # when they are JSON-safe (Keras 3 records them the same way), which is what lets a
        # subclassed model or layer be rebuilt with cls.from_config(layer.get_config()).
        auto = None
        if getattr(cls.get_config, "_fundl_auto_config", False) and not _base_init(cls):
            auto = _constructor_arguments(cls, args, kwargs)
        object.__setattr__(obj, "_auto_config", auto)
        return obj

    def __init__(self, name=None, trainable=True, dtype=None, input_shape=None, input_dim=None,
                 batch_size=None, activity_regularizer=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) "
                            f"{sorted(kwargs)}.")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: name must be a string, got "
                            f"{type(name).__name__}.")
        object.__setattr__(self, "_call_spec", _call_spec(type(self)))
        object.__setattr__(self, "_own_weights", [])     # [Tensor, trainable, regularizer]
        object.__setattr__(self, "_sublayers", {})       # key -> Layer ("block", "blocks.0")
        self._auto_name = name is None
        # Keras's automatic names: snake case of the class, unique in the session (dense,
        # dense_1, ...); reset_name_counters() starts again.
        self.name = name or unique_name(self._name_prefix())
        self._trainable = bool(trainable)
        self.dtype = numpy.dtype(dtype or backend.get_default_dtype()).name
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        self._batch_input_shape = ((batch_size,) + _as_shape(input_shape)
                                   if input_shape is not None else None)
        if not self.__dict__.get("built", False):  # a build() by hand before super().__init__
            self.built = False
            self.input_spec_shape = None   # input shape seen at build, batch axis as None
        self._activity_losses = []
        self._added_losses = []
        self.activity_regularizer = deserialize_object(regularizers, activity_regularizer)
        self._inbound_nodes = []

    def _name_prefix(self) -> str:
        """The stem of this layer's automatic name (models override it: ``functional``)."""
        return _snake(type(self).__name__)

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

    def add_weight(self, *args, shape=None, initializer=None, dtype=None, trainable=True,
                   regularizer=None, constraint=None, name=None, autocast=True,
                   aggregation="none") -> Tensor:
        """Create, track and return a weight (call it from ``build``).

        Keras 3's order, ``add_weight(shape, initializer, dtype, trainable, autocast,
        regularizer, constraint, name=...)``, with every argument optional; a string first
        argument is the older ``add_weight(name, shape, initializer, trainable, regularizer,
        dtype)`` form.

        Args:
            shape: the weight's shape (``()`` when None).
            initializer: a name or an initializer object (see :mod:`fundl.initializers`);
                ``"glorot_uniform"`` for floating dtypes and ``"zeros"`` for others when None.
            dtype: the weight's dtype (the layer's by default).
            trainable: False for state updated outside of training (batch-norm statistics).
            regularizer: an optional penalty (see :mod:`fundl.regularizers`).
            constraint: an optional projection applied after each optimizer update (see
                :mod:`fundl.constraints`); it becomes the weight's ``constraint`` attribute.
            name: a short, stable name (``"kernel"``, ``"bias"``): it becomes a file key.
                Unnamed weights are ``variable``, ``variable_1``, ... within the layer.
            autocast, aggregation: accepted for Keras code; fundl has no mixed-precision
                autocasting nor replicas to aggregate over, so they change nothing.

        Returns:
            A :class:`~fundl.tensor.Variable` (a Tensor with ``assign``, ``assign_add``,
            ``value``) of ``shape`` on the current device; it requires a gradient when
            trainable.

        Raises:
            ValueError: a weight of that name exists already in the layer, or a bad shape.
            TypeError: too many positional arguments, or one given twice.

        Example:
            >>> self.kernel = self.add_weight(shape=(n_in, self.units),
            ...                               initializer="glorot_uniform", name="kernel")
            >>> self.bias = self.add_weight("bias", (self.units,), "zeros")    # the older form
        """
        who = f"{type(self).__name__} '{self.name}'"
        given = {"shape": shape, "initializer": initializer, "dtype": dtype,
                 "trainable": trainable, "regularizer": regularizer, "name": name,
                 "autocast": autocast, "constraint": constraint}
        defaults = {"shape": None, "initializer": None, "dtype": None, "trainable": True,
                    "regularizer": None, "name": None, "autocast": True, "constraint": None}
        if args:
            order = (("name", "shape", "initializer", "trainable", "regularizer", "dtype")
                     if isinstance(args[0], str) else
                     ("shape", "initializer", "dtype", "trainable", "autocast", "regularizer",
                      "constraint"))
            if len(args) > len(order):
                raise TypeError(f"{who}: add_weight takes at most {len(order)} positional "
                                f"arguments ({', '.join(order)}), got {len(args)}.")
            for key, value in zip(order, args):
                if given[key] is not defaults[key]:
                    raise TypeError(f"{who}: add_weight got {key!r} both by position and by "
                                    "keyword.")
                given[key] = value
        shape, initializer, dtype = given["shape"], given["initializer"], given["dtype"]
        trainable, name = given["trainable"], given["name"]
        if name is None:
            taken = {e[0].name for e in self._own_weights}
            name, k = "variable", 1
            while name in taken:
                name, k = f"variable_{k}", k + 1
        elif not isinstance(name, str):
            raise TypeError(f"{who}: a weight name must be a string, got {type(name).__name__}.")
        if any(e[0].name == name for e in self._own_weights):
            raise ValueError(f"{who}: a weight named {name!r} exists already; weight names must "
                             "be unique within a layer.")
        try:
            shape = () if shape is None else _as_shape(shape)
        except (TypeError, ValueError):
            raise TypeError(f"{who}: add_weight needs shape= as a tuple of ints, got "
                            f"{shape!r}.") from None
        if any(s is None or s < 0 for s in shape):
            raise ValueError(f"{who}: weight {name!r} needs a fully known shape of sizes >= 0, "
                             f"got {shape}.")
        dtype = numpy.dtype(dtype or self.dtype)
        if initializer is None:
            initializer = "glorot_uniform" if dtype.kind == "f" else "zeros"
        trainable = bool(trainable)
        if trainable and dtype.kind not in "fc":
            raise TypeError(f"{who}: weight {name!r} of dtype {dtype} cannot be trainable; pass "
                            "trainable=False (only floating-point weights get gradients).")
        init = deserialize_object(initializers, initializer)
        # C order whatever the initializer returns (an orthogonal Q comes transposed): the
        # kernels and BLAS calls take C-contiguous weights without a copy, and an in-place
        # update of an F-ordered weight from a C-ordered gradient was measured 15x slower.
        # Integer state (a step counter) is drawn as floats and cast, as the initializers
        # produce floating dtypes only.
        if dtype.kind in "fc":
            value = numpy.asarray(init(shape, dtype=dtype.name), order="C")
        else:
            value = numpy.asarray(init(shape, dtype=backend.get_default_dtype()),
                                  order="C").astype(dtype)
        if value.shape != shape:
            raise ValueError(f"{who}: the initializer of weight {name!r} returned shape "
                             f"{value.shape}, expected {shape}.")
        if value.nbytes >= 4096 and value.ctypes.data % runtime.ALIGNMENT:
            # on a cache line, as fundl's buffers (runtime.aligned_empty): the AVX-512 GEMM
            # kernels read it faster (a 128x784 @ 784x256 Dense forward + backward: 427 vs
            # 451 us, median of 7). Updates and set_weights write in place, so it stays there.
            aligned = runtime.aligned_empty(value.shape, value.dtype)
            aligned[...] = value
            value = aligned
        w = Variable._from_array(backend.to_device(value, backend.get_device()), name=name,
                                 constraint=_constraint(given["constraint"]),
                                 trainable=trainable)
        w.requires_grad = bool(trainable and self._trainable)
        penalty = deserialize_object(regularizers, given["regularizer"])
        self._own_weights.append([w, trainable, penalty])
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
        for layer in self._sublayer_list():
            layer.trainable = value

    def _named_sublayers(self):
        """(key, layer) for each direct sub-layer, in weight order (models override it)."""
        return list(self._sublayers.items())

    def _sublayer_list(self):
        """The direct sub-layers, as :meth:`_named_sublayers` without the keys (models give
        their layer list: no weight keys to make on the walks that need none)."""
        return [layer for _, layer in self._named_sublayers()]

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
    non_trainable_variables = non_trainable_weights
    variables = weights

    @property
    def compute_dtype(self) -> str:
        """The dtype of the computation (Keras 3): the layer's dtype (no mixed precision)."""
        return self.dtype

    @property
    def variable_dtype(self) -> str:
        """The dtype of the weights (Keras 3): the layer's dtype."""
        return self.dtype

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

        Weight penalties are computed now from the current weights; activity penalties and
        the terms given to :meth:`add_loss` are those of the latest forward pass.
        """
        out = list(self._activity_losses)
        if self._added_losses:
            out.extend(self._added_losses)
        for w, trainable, reg in self._own_weights:
            if reg is not None and trainable and self._trainable:
                out.append(reg(w))
        seen = set()
        for layer in self._sublayer_list():
            if id(layer) not in seen:  # a layer listed twice still adds its penalty once
                seen.add(id(layer))
                out.extend(layer.losses)
        return out

    def add_loss(self, loss) -> None:
        """Add a loss term computed in ``call`` (Keras): it joins the training loss.

        The terms are those of the latest forward pass: the outermost layer call clears the
        terms of every layer inside it first, so ``model.losses`` after a forward pass holds
        that pass's terms only (a shared layer called twice in it contributes twice).

        Args:
            loss: a scalar Tensor (or a number); a Tensor with more elements is summed (Keras).

        Raises:
            TypeError: anything else.

        Example:
            >>> class ActivityPenalty(Layer):
            ...     def call(self, x):
            ...         self.add_loss(0.01 * (x * x).mean())
            ...         return x
        """
        if not isinstance(loss, Tensor):
            if isinstance(loss, bool) or not isinstance(loss, (int, float, numpy.number)):
                raise TypeError(f"{type(self).__name__} '{self.name}': add_loss expects a "
                                f"scalar Tensor or a number, got {type(loss).__name__}.")
            loss = Tensor(float(loss))
        elif loss.data.size != 1:
            loss = loss.sum()
        self._uses_add_loss = True
        self._added_losses.append(loss)
        _LOSS_HOLDERS[id(self)] = weakref.ref(self)

    def add_metric(self, value, name=None, aggregation="mean") -> None:
        """Report a value computed in ``call`` in ``fit``/``evaluate``'s logs (tf.keras's
        ``add_metric``; Keras 3 dropped it for :class:`fundl.metrics.Metric` trackers).

        The built-in training and test steps log the latest value under ``name`` for each
        batch and average it over the epoch's samples, like a metric function. A custom
        ``train_step`` reports what it returns (use a ``fundl.metrics.Mean`` there).

        Args:
            value: a scalar Tensor or a number (a larger Tensor is averaged).
            name: the log key (required).
            aggregation: ``"mean"`` (the only one, as tf.keras's default).

        Raises:
            ValueError: no name, or another aggregation. TypeError: a value of another type.

        Example:
            >>> class Probe(Layer):
            ...     def call(self, x):
            ...         self.add_metric(x.mean(), name="mean_activation")
            ...         return x
        """
        who = f"{type(self).__name__} '{self.name}'"
        if not isinstance(name, str) or not name:
            raise ValueError(f"{who}: add_metric needs a name= for its log key, got {name!r}.")
        if aggregation not in ("mean", None):
            raise ValueError(f"{who}: add_metric aggregation must be 'mean', got "
                             f"{aggregation!r}.")
        if isinstance(value, Tensor):
            value = float(backend.to_numpy(value.data).mean())
        elif isinstance(value, bool) or not isinstance(value, (int, float, numpy.number)):
            raise TypeError(f"{who}: add_metric expects a scalar Tensor or a number, got "
                            f"{type(value).__name__}.")
        self.__dict__.setdefault("_added_metrics", {})[name] = float(value)
        _METRIC_LAYERS.add(self)

    def _uses_parallel_regions(self) -> bool:
        """Whether this layer or one inside it runs compiled parallel regions."""
        return self.uses_parallel_regions or any(
            layer._uses_parallel_regions() for layer in self._sublayer_list())

    def _added_metric_values(self) -> dict:
        """``{name: latest value}`` of :meth:`add_metric` in this layer and the layers in it."""
        out = dict(self.__dict__.get("_added_metrics") or {})
        for layer in self._sublayer_list():
            out.update(layer._added_metric_values())
        return out

    def _clear_added_losses(self) -> None:
        """Forget the add_loss terms of this layer and of every layer inside it."""
        held = set()
        for key, ref in list(_LOSS_HOLDERS.items()):
            layer = ref()
            if layer is None:
                del _LOSS_HOLDERS[key]
            else:
                held.add(id(layer))
        if not held:
            return
        stack, seen = [self], set()
        while stack:
            layer = stack.pop()
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            if id(layer) in held:
                layer._added_losses = []
                _LOSS_HOLDERS.pop(id(layer), None)
            stack.extend(layer._sublayer_list())

    def _has_losses(self) -> bool:
        """Whether this layer or a sub-layer can ever add a penalty (checked once per fit)."""
        if self.activity_regularizer is not None or self.__dict__.get("_uses_add_loss") or any(
                reg is not None for _, _, reg in self._own_weights):
            return True
        return any(layer._has_losses() for layer in self._sublayer_list())

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

    def _maybe_build(self, input_shape, several=False):
        """Build for ``input_shape`` unless built; ``several``: ``call`` took several positional
        inputs, whose shapes go to ``build`` one per parameter when it has as many (Keras's
        ``build(self, query_shape, value_shape)``), else as one list."""
        if not self.built:
            if several and _positional_count(type(self).build) == len(input_shape):
                self.build(*input_shape)
            else:
                self.build(input_shape)
            self.built = True
            self.input_spec_shape = input_shape

    def __call__(self, inputs, *args, training=None, **kwargs):
        """Run the layer on data (Tensors or arrays), or record a graph node on SymbolicTensors.

        Args:
            inputs: a Tensor/array, or a list of them for merge layers; SymbolicTensors from
                :func:`~fundl.layers.Input` for the functional API.
            *args: more positional arguments of ``call`` (``layer(query, value)``).
            training: True for training behaviour (dropout, noise), False for inference, None
                to inherit it from the layer call this one runs inside (False outside any,
                unless ``call``'s signature has another default). Passed to ``call`` only when
                its signature takes ``training`` (or ``**kwargs``).
            **kwargs: passed to ``call``; ``mask=`` only if ``call`` takes it, and a ``call``
                with a ``mask`` parameter gets the input's mask when none is given.

        Returns:
            The output Tensor(s), or SymbolicTensor(s) when called symbolically.

        Raises:
            ValueError, TypeError: from building or ``call``, re-raised with the layer's name
                and the input shapes prepended.
        """
        # The hot path (a built layer on one Tensor, no masks alive, no extra arguments): this
        # runs for every layer at every step, so it does the least.
        if type(inputs) is Tensor and not args and not kwargs and not _MASKS and self.built:
            spec = self._call_spec
            context = _CALL_CONTEXT
            outer = context.training
            if outer is None and _LOSS_HOLDERS:
                self._clear_added_losses()
            if training is None:
                training = outer if outer is not None else spec.training_default
            elif training is not True and training is not False:
                training = bool(training)
            if training is outer:  # inherited: the context already says so
                try:
                    out = (self.call(inputs, training=training) if spec.passes_training
                           else self.call(inputs))
                except (ValueError, TypeError) as e:
                    _reraise_in_context(self, e, inputs.data.shape)
            else:
                context.training = training
                try:
                    out = (self.call(inputs, training=training) if spec.passes_training
                           else self.call(inputs))
                except (ValueError, TypeError) as e:
                    _reraise_in_context(self, e, inputs.data.shape)
                finally:
                    context.training = outer
            if self.activity_regularizer is not None:
                self._activity_losses = [self.activity_regularizer(o) / o.shape[0]
                                         for o in _flatten(out)[0]]
            return out
        return self._call_general(inputs, args, training, kwargs)

    def _call_general(self, inputs, args, training, kwargs):
        """``__call__`` for everything but the hot path: arrays, lists, several inputs,
        keyword arguments, masks, symbolic inputs, the first call (which builds)."""
        try:
            spec = self._call_spec
        except AttributeError:  # a subclass whose __init__ skipped Layer's
            spec = _call_spec(type(self))
        if args or kwargs:
            inputs, args, training, kwargs = self._sort_arguments(spec, inputs, args, training,
                                                                  kwargs)
        if type(inputs) is Tensor and not args:  # the common case, kept short: this runs every
            call_inputs = inputs                 # layer, every step
            shapes = inputs.data.shape
        else:
            keys = None
            if args:
                flat, structure = [inputs, *args], "args"
            elif isinstance(inputs, dict):  # a dict of inputs reaches call as a dict (Keras)
                keys, flat, structure = list(inputs), list(inputs.values()), "dict"
            else:
                flat, structure = _flatten(inputs)
            if any(isinstance(x, SymbolicTensor) for x in flat) or kwargs and any(
                    isinstance(v, SymbolicTensor) for v in kwargs.values()):
                return self._symbolic_call(flat, structure, training, kwargs, keys)
            device = self._device_of_weights()
            if structure == "dict":
                call_inputs = {k: x if isinstance(x, Tensor) else Tensor(x, device=device)
                               for k, x in zip(keys, flat)}
                shapes = {k: t.shape for k, t in call_inputs.items()}
            elif structure == "single":
                x = flat[0]
                call_inputs = x if isinstance(x, Tensor) else Tensor(x, device=device)
                shapes = call_inputs.shape
            else:
                call_inputs = [x if isinstance(x, Tensor) else Tensor(x, device=device)
                               for x in flat]
                shapes = [t.shape for t in call_inputs]
        if _MASKS and spec.fills_mask and kwargs.get("mask") is None:
            mask = _input_mask(call_inputs)
            if mask is not None:
                kwargs["mask"] = mask
        # The call context: training=None inherits the value of the enclosing layer call, so
        # Dropout in a custom block trains when the model does (Keras 3's CallContext).
        context = _CALL_CONTEXT
        outer = context.training
        if outer is None and _LOSS_HOLDERS:  # a new forward pass: add_loss terms start afresh
            self._clear_added_losses()
        if training is None:
            training = outer if outer is not None else spec.training_default
        elif training is not True and training is not False:
            training = bool(training)
        # Only a call that changes the context's value writes it (and restores it): a nested
        # layer inheriting its caller's value, the common case, pays one read.
        swap = training is not outer
        if swap:
            context.training = training
        try:
            if not self.built:
                self._maybe_build(_batchless(shapes), several=bool(args))
            if spec.passes_training:
                if args:
                    out = self.call(*call_inputs, training=training, **kwargs)
                else:
                    out = self.call(call_inputs, training=training, **kwargs)
            elif args:
                out = self.call(*call_inputs, **kwargs)
            else:
                out = self.call(call_inputs, **kwargs)
        except (ValueError, TypeError) as e:
            _reraise_in_context(self, e, shapes)
        finally:
            if swap:
                context.training = outer
        if _MASKS and self.supports_masking:  # no mask alive anywhere: nothing to pass on
            pass_mask_on(self, call_inputs, out)
        if self.activity_regularizer is not None:
            self._activity_losses = [self.activity_regularizer(o) / o.shape[0]
                                     for o in _flatten(out)[0]]
        return out

    def _sort_arguments(self, spec, inputs, args, training, kwargs):
        """Positional ``training``/``mask`` moved to keywords; a ``mask`` ``call`` cannot take
        dropped; ``training`` inside ``kwargs`` (from a wrapper) taken out."""
        if args:
            args = list(args)
            for i, param in reversed(list(enumerate(spec.positional[:len(args)]))):
                if param == "training":
                    if training is not None:
                        raise TypeError(f"{type(self).__name__} '{self.name}': training given "
                                        "both by position and by keyword.")
                    training = args.pop(i)
                elif param == "mask" and "mask" not in kwargs:
                    kwargs["mask"] = args.pop(i)
            args = tuple(args)
        if "mask" in kwargs and not spec.passes_mask:
            kwargs.pop("mask")
        return inputs, args, training, kwargs

    def _symbolic_call(self, flat, structure, training, kwargs, keys=None):
        """Record a node of the functional graph and return symbolic outputs.

        Symbolic tensors given by keyword (``mha(query, value, key=k)``) are inputs of the node
        too; ``compute_output_shape`` and ``build`` then get one shape per positional input
        and ``<name>_shape`` per keyword when their signatures take them (Keras 3's rule), else
        the list of the positional inputs' shapes.
        """
        tensor_kwargs = [k for k, v in kwargs.items() if isinstance(v, SymbolicTensor)]
        everything = flat + [kwargs[k] for k in tensor_kwargs]
        if not all(isinstance(x, SymbolicTensor) for x in flat):
            raise TypeError(f"{type(self).__name__} '{self.name}': cannot mix symbolic inputs "
                            "(from Input) with real data in one call; got "
                            f"{[type(x).__name__ for x in everything]}.")
        shapes = [x.shape for x in flat]
        in_shape = (shapes[0] if structure == "single" else dict(zip(keys, shapes))
                    if structure == "dict" else shapes)
        kw_shapes = {f"{k}_shape": kwargs[k].shape for k in tensor_kwargs}
        several = structure == "args" or bool(tensor_kwargs)
        constants = {k: v for k, v in kwargs.items() if k not in tensor_kwargs}
        dtypes = None
        try:
            if not self.built:
                if several:
                    self._build_for_several(shapes if structure != "single" else [shapes[0]],
                                            kw_shapes)
                else:
                    self._maybe_build(_batchless(in_shape))
            try:
                if several and _takes_several(type(self).compute_output_shape,
                                              len(shapes), kw_shapes):
                    out_shape = self.compute_output_shape(*shapes, **{
                        k: v for k, v in kw_shapes.items()
                        if _accepts_keyword(type(self).compute_output_shape, k)})
                else:
                    out_shape = self.compute_output_shape(in_shape)
            except NotImplementedError:
                # No compute_output_shape of its own: run call on zeros to learn the shapes
                # (Keras 3 traces call symbolically; this is the eager equivalent).
                out_shape, dtypes = self._infer_output_spec(flat, structure, training, kwargs,
                                                            keys)
        except (ValueError, TypeError) as e:
            _reraise_in_context(self, e, in_shape)
        if isinstance(out_shape, tuple) and out_shape and isinstance(out_shape[0], (tuple, list)):
            out_shape = [tuple(s) for s in out_shape]  # several outputs given as a tuple
        node = Node(self, everything, constants, structure, training)
        node.tensor_kwargs = tensor_kwargs
        node.keys = keys
        self._inbound_nodes.append(node)
        multi = isinstance(out_shape, list)
        shapes_out = out_shape if multi else [out_shape]
        if dtypes is None:
            dtype = self.dtype if flat[0].dtype.kind == "f" else flat[0].dtype
            dtypes = [dtype] * len(shapes_out)
        outs = [SymbolicTensor(s, d, node, i, self.name)
                for i, (s, d) in enumerate(zip(shapes_out, dtypes))]
        node.outputs = outs
        return outs if multi else outs[0]

    def _build_for_several(self, shapes, kw_shapes):
        """Build for several inputs: ``build(*shapes, **kw_shapes)`` when the signature takes
        them, else ``build(list of the positional shapes)``."""
        shapes = [_batchless(s) for s in shapes]
        if _takes_several(type(self).build, len(shapes), kw_shapes):
            self.build(*shapes, **{k: _batchless(v) for k, v in kw_shapes.items()
                                   if _accepts_keyword(type(self).build, k)})
            self.built = True
            if self.input_spec_shape is None:
                self.input_spec_shape = shapes
        else:
            self._maybe_build(shapes)

    def _infer_output_spec(self, flat, structure, training=None, kwargs=None, keys=None):
        """Output shape(s) and dtypes from running ``call`` on zeros (for the functional API).

        The unknown sizes (the batch axis, None axes) are filled twice with different small
        sizes (batch 2 then 3, other axes 8 then 12); an output axis that changes between the
        two runs is unknown (None), one that does not is fixed. Runs under ``no_grad``; the
        layer's state is not changed by it (inference mode, no activity losses kept).

        Returns:
            ``(shape or list of shapes, list of dtypes)``.

        Raises:
            ValueError (or the TypeError ``call`` raised): ``call`` failed on zeros; the
                message names the layer and both the symbolic and the concrete shapes.
        """
        kwargs = dict(kwargs or {})
        tensor_kwargs = [k for k, v in kwargs.items() if isinstance(v, SymbolicTensor)]
        n_positional = len(flat)
        flat = list(flat) + [kwargs.pop(k) for k in tensor_kwargs]
        shapes = [tuple(x.shape) for x in flat]
        cache_key = None
        if not kwargs:
            cache_key = (tuple(shapes), structure, training, tuple(tensor_kwargs),
                         tuple(keys or ()))
            cached = self.__dict__.get("_inferred_specs", {}).get(cache_key)
            if cached is not None:
                return cached
        has_unknown = any(s is None for shape in shapes for s in shape)
        runs = []
        for batch, size in ((2, 8), (3, 12)) if has_unknown else ((2, 8),):
            concrete = [tuple((batch if i == 0 else size) if s is None else s
                              for i, s in enumerate(shape)) for shape in shapes]
            values = [Tensor(numpy.zeros(c, dtype=x.dtype)) for c, x in zip(concrete, flat)]
            kwargs.update(zip(tensor_kwargs, values[n_positional:]))
            values = values[:n_positional]
            call_in = (values[0] if structure == "single" else dict(zip(keys, values))
                       if structure == "dict" else values)
            saved_losses = self._activity_losses
            try:
                with no_grad(), numpy.errstate(all="ignore"):
                    if structure == "args":
                        out = self(*call_in, training=bool(training), **kwargs)
                    else:
                        out = self(call_in, training=bool(training), **kwargs)
            except Exception as e:  # any failure: say which layer and which shapes
                shown = concrete[0] if structure == "single" else concrete
                symbolic = shapes[0] if structure == "single" else shapes
                message = (f"{type(self).__name__} '{self.name}' has no compute_output_shape, "
                           f"and running its call() on zeros of shape {_fmt_shapes(shown)} to "
                           f"infer the output shape for input shape {_fmt_shapes(symbolic)} "
                           f"failed: {type(e).__name__}: {e}. Fix call(), or implement "
                           "compute_output_shape(input_shape) on the layer.")
                raise (TypeError if isinstance(e, TypeError) else ValueError)(message) from e
            finally:
                self._activity_losses = saved_losses
                if _LOSS_HOLDERS:  # terms added while tracing are not a forward pass's
                    self._clear_added_losses()
            if isinstance(out, dict) or not (isinstance(out, (list, tuple)) or hasattr(
                    out, "shape")):
                raise TypeError(f"{type(self).__name__} '{self.name}': call() returned "
                                f"{type(out).__name__}; in the functional API a layer returns a "
                                "Tensor or a list/tuple of Tensors.")
            runs.append(out)
        multi = isinstance(runs[0], (list, tuple))
        outs = [list(r) if multi else [r] for r in runs]
        result_shapes, dtypes = [], []
        for i, first in enumerate(outs[0]):
            shape = tuple(first.shape)
            for other in outs[1:]:
                second = tuple(other[i].shape)
                if len(second) != len(shape):
                    raise ValueError(f"{type(self).__name__} '{self.name}': the rank of output "
                                     f"{i} depends on the input size ({shape} vs {second}); "
                                     "implement compute_output_shape(input_shape).")
                shape = tuple(a if a == b else None for a, b in zip(shape, second))
            if not has_unknown and shape and shapes[0] and shapes[0][0] is None:
                shape = (None,) + shape[1:]
            result_shapes.append(shape)
            dtypes.append(numpy.dtype(first.dtype))
        result = (result_shapes if multi else result_shapes[0], dtypes)
        if cache_key is not None:
            self.__dict__.setdefault("_inferred_specs", {})[cache_key] = result
        return result

    def _output_shape_for(self, input_shape):
        """``compute_output_shape``, or, for a layer without one, the inferred shape."""
        try:
            return self.compute_output_shape(input_shape)
        except NotImplementedError:
            shapes = input_shape if isinstance(input_shape, list) else [input_shape]
            flat = [SymbolicTensor(s, self.dtype) for s in shapes]
            structure = "list" if isinstance(input_shape, list) else "single"
            return self._infer_output_spec(flat, structure)[0]

    # -- the functional graph ----------------------------------------------------------------
    def _node_attribute(self, what):
        nodes = self.__dict__.get("_inbound_nodes") or []
        if not nodes:
            raise AttributeError(f"{type(self).__name__} '{self.name}' has never been called on "
                                 f"a symbolic input (from fundl.layers.Input), so it has no "
                                 f"{what} yet.")
        node = nodes[0]
        tensors = node.inputs if what == "input" else node.outputs
        if what == "input" and node.input_structure == "single" or (
                what == "output" and len(tensors) == 1):
            return tensors[0]
        return list(tensors)

    @property
    def input(self):
        """The symbolic input of the layer's first call in a functional graph (Keras 3).

        A shared layer (called several times) gives its first call's input, as Keras 3.

        Raises:
            AttributeError: the layer was never called on symbolic tensors.
        """
        return self._node_attribute("input")

    @property
    def output(self):
        """The symbolic output of the layer's first call in a functional graph (Keras 3).

        Example:
            >>> features = Model(inputs=model.input, outputs=model.get_layer("flatten").output)

        Raises:
            AttributeError: the layer was never called on symbolic tensors.
        """
        fixed = self.__dict__.get("_output")
        if fixed is not None:
            return fixed
        return self._node_attribute("output")

    @output.setter
    def output(self, value):  # InputLayer's output exists before any call
        self._output = value

    # -- configuration ---------------------------------------------------------------------------
    def get_config(self) -> dict:
        """A JSON-safe dict of the constructor arguments (``from_config`` inverts it).

        A subclass that does not override it gets its constructor's arguments recorded for it
        when they are JSON-safe (numbers, strings, lists, dicts), as Keras 3 does.

        Returns:
            ``{"name", "trainable", "dtype"}`` plus ``"batch_input_shape"`` when the layer was
            given an input shape, plus each subclass's own arguments.

        Raises:
            NotImplementedError: a subclass whose constructor took arguments that are not
                JSON-safe (a layer, an array) and that does not implement ``get_config``.
        """
        config = {"name": self.name, "trainable": self._trainable, "dtype": self.dtype}
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = list(self._batch_input_shape)
        if self.__dict__.get("activity_regularizer") is not None:
            config["activity_regularizer"] = serialize_object(self.activity_regularizer)
        return self._with_constructor_arguments(config)

    get_config._fundl_auto_config = True

    def _with_constructor_arguments(self, config):
        if not getattr(type(self).get_config, "_fundl_auto_config", False) or \
                type(self).__init__ in (Layer.__init__, ) or _base_init(type(self)):
            return config
        auto = self.__dict__.get("_auto_config")
        if auto is None:
            raise NotImplementedError(
                f"{type(self).__name__} '{self.name}': its constructor arguments are not all "
                "JSON-safe (numbers, strings, lists, dicts), so get_config() cannot record "
                "them; implement get_config() (returning the arguments __init__ needs) and, if "
                "needed, from_config().")
        params = _init_signature(type(self)).parameters
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        extra = {k: v for k, v in auto.items() if k not in _BASE_ARGUMENTS}
        if not accepts_any:  # name, trainable, dtype only if __init__ can take them back
            config = {k: v for k, v in config.items() if k in params}
        return {**extra, **config}

    def get_build_config(self):
        """The shape the layer was built for, as JSON (Keras 3): ``{"input_shape": [...]}``.

        A loader calls :meth:`build_from_config` with it after ``from_config`` to create the
        weights before setting them (what a subclassed model needs to be reloaded).

        Returns:
            ``{"input_shape": shape or list of shapes}``, or None while unbuilt.
        """
        shape = self.input_spec_shape
        if not self.built or shape is None:
            return None
        if isinstance(shape, list):
            return {"input_shape": [list(s) for s in shape]}
        return {"input_shape": list(shape)}

    def build_from_config(self, config) -> None:
        """Create the weights from :meth:`get_build_config`'s dict (None or {}: nothing).

        A layer with its own ``build`` is built with the shape; one without (a subclassed
        model, whose sub-layers build on their first call) runs one forward pass on zeros of
        that shape (unknown sizes as 1), without a graph, in inference mode.

        Raises:
            ValueError: a config without ``input_shape``, or a forward pass that fails.

        Example:
            >>> clone = MyModel.from_config(model.get_config())
            >>> clone.build_from_config(model.get_build_config())
            >>> clone.set_weights(model.get_weights())
        """
        if not config:
            return
        if not isinstance(config, dict) or "input_shape" not in config:
            raise ValueError(f"{type(self).__name__} '{self.name}': build_from_config expects "
                             f"{{'input_shape': [...]}}, got {config!r}.")
        raw = config["input_shape"]
        several = bool(raw) and all(isinstance(s, (list, tuple)) for s in raw)
        shape = [tuple(s) for s in raw] if several else tuple(raw)
        if type(self).build is Layer.build:
            self._run_on_zeros(shape)
        elif not self.built:
            self.build(shape)

    def _run_on_zeros(self, input_shape):
        """One forward pass on zeros of ``input_shape`` (unknown sizes as 1), without a graph,
        in inference mode: what creates the weights of a layer that builds them lazily."""
        several = isinstance(input_shape, list)
        shapes = input_shape if several else [input_shape]
        zeros = [Tensor(numpy.zeros(tuple(1 if s is None else s for s in shape),
                                    dtype=self.dtype)) for shape in shapes]
        object.__setattr__(self, "built", True)  # the pass must not build again
        self.input_spec_shape = input_shape
        try:
            with no_grad():
                self(zeros if several else zeros[0], training=False)
        except Exception:
            object.__setattr__(self, "built", False)
            self.input_spec_shape = None
            raise

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        """A new layer from :meth:`get_config`'s dict (``custom_objects``: extra names to resolve).

        Initializers, regularizers and constraints of the user's own classes stored as
        ``{"class_name", "config"}`` are rebuilt first, from ``custom_objects`` or the
        registry (see :func:`register_serializable`).

        Example:
            >>> clone = Dense.from_config(Dense(4, activation="relu").get_config())
        """
        if not isinstance(config, dict):
            raise TypeError(f"{cls.__name__}.from_config: expected a dict, got "
                            f"{type(config).__name__}.")
        config = _resolve_custom_config_values(config, custom_objects)
        batch_input_shape = config.pop("batch_input_shape", None)
        if batch_input_shape is not None:
            config["input_shape"] = tuple(batch_input_shape[1:])
            config["batch_size"] = batch_input_shape[0]
        try:
            return cls(**config)
        except TypeError as e:
            raise TypeError(f"{cls.__name__}.from_config: could not rebuild the layer from its "
                            f"config {sorted(config)}: {e}. Its get_config() must return the "
                            "arguments __init__ takes (or override from_config).") from e

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


_BASE_ARGUMENTS = ("name", "trainable", "dtype", "input_shape", "input_dim", "batch_size",
                   "batch_input_shape", "activity_regularizer")


def _init_signature(cls) -> inspect.Signature:
    sig = _INIT_SIGNATURES.get(cls)
    if sig is None:
        sig = _INIT_SIGNATURES[cls] = inspect.signature(cls.__init__)
    return sig


def _base_init(cls) -> bool:
    """Whether ``cls.__init__`` is one of fundl's own (Layer's, Model's): nothing to record."""
    return _is_builtin(cls.__init__) and cls.__init__.__qualname__.split(".")[0] in (
        "Layer", "Model", "Trainer")


def _constructor_arguments(cls, args, kwargs):
    """The arguments ``cls(*args, **kwargs)`` was given, by name, if all JSON-safe; else None."""
    try:
        bound = _init_signature(cls).bind(None, *args, **kwargs)
    except TypeError:
        return None  # __init__ will raise the user a clear error itself
    out = {}
    for i, (name, value) in enumerate(bound.arguments.items()):
        if i == 0:
            continue  # self
        kind = bound.signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                return None
            continue
        if kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        else:
            out[name] = value
    if not _is_jsonable(out):
        return None
    return json.loads(json.dumps(out))  # tuples become lists, as they would in a file


def _takes_several(fn, n, kw_shapes) -> bool:
    """Whether ``fn(self, shape_1, ..., shape_n, **kw_shapes)`` is how to call ``fn`` (a
    ``build``/``compute_output_shape`` written for several inputs), rather than ``fn(list)``."""
    count = _positional_count(fn)
    if count != -1 and count < n:
        return False
    if n > 1:
        return True
    return bool(kw_shapes) and all(_accepts_keyword(fn, k) for k in kw_shapes)


def _accepts_keyword(fn, name) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD
                                 for p in params.values())


def _positional_count(fn) -> int:
    """How many positional parameters ``fn`` takes after ``self`` (-1 with ``*args``)."""
    try:
        params = list(inspect.signature(fn).parameters.values())[1:]
    except (TypeError, ValueError):
        return -1
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return -1
    return sum(p.kind in (inspect.Parameter.POSITIONAL_ONLY,
                          inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in params)


def _constraint(identifier):
    if identifier is None:
        return None
    from .. import constraints

    return constraints.get(identifier)


def _input_mask(inputs):
    """The input's mask (a list of masks for a list input; None when nothing is masked)."""
    if isinstance(inputs, list):
        masks = [get_mask(x) for x in inputs]
        return None if all(m is None for m in masks) else masks
    return get_mask(inputs)


def _batchless(shapes):
    """Input shapes with the batch axis replaced by None (the shape a layer is built for)."""
    if isinstance(shapes, dict):
        return {k: (None,) + tuple(s[1:]) for k, s in shapes.items()}
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
    if isinstance(shapes, dict):
        return "{" + ", ".join(f"{k!r}: {tuple(s)}" for k, s in shapes.items()) + "}"
    if isinstance(shapes, list):
        return "[" + ", ".join(str(tuple(s)) for s in shapes) + "]"
    return str(tuple(shapes))
