"""Core layers: Input, Dense, Activation, Flatten, Reshape, Dropout, GaussianNoise, Lambda."""
from __future__ import annotations

import math

import numpy

from .. import activations, backend
from .. import functional as F
from ..tensor import Tensor, get_gpu_rng, get_rng
from ..graph_mode import random_op
from ._weights import add_weight_with_constraint as _add_weight
from ._weights import set_weight_options, weight_options_config
from .base import Layer, SymbolicTensor, _as_shape, get_registered


class InputLayer(Layer):
    """The entry point of a functional model; usually made by :func:`Input`.

    Args:
        shape: the shape of one sample (without the batch axis).
        batch_size: optionally fix the batch size.
        dtype: the input's dtype.
        name: the layer's name (unique names are made for unnamed inputs in a model).

    Its ``output`` is the :class:`SymbolicTensor` that layers are called on.

    Example:
        >>> InputLayer(shape=(784,)).output.shape
        (None, 784)
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, name=None, **kwargs):
        if "batch_input_shape" in kwargs:
            bis = kwargs.pop("batch_input_shape")
            batch_size, shape = bis[0], bis[1:]
        super().__init__(name=name or "input_layer", dtype=dtype, **kwargs)
        self._auto_name = name is None  # unnamed inputs get unique names inside a model
        if shape is None:
            raise ValueError("Input: a shape is required, e.g. Input(shape=(784,)).")
        if isinstance(shape, (int, numpy.integer)):
            shape = (shape,)
        if not isinstance(shape, (tuple, list)) or any(
                s is not None and (not isinstance(s, (int, numpy.integer)) or s < 0)
                for s in shape):
            raise ValueError(f"Input: shape must be a tuple of sizes (ints or None), without the "
                             f"batch axis, e.g. Input(shape=(784,)); got {shape!r}.")
        self.shape = _as_shape(shape)
        self.batch_size = batch_size
        self.built = True
        self.output = SymbolicTensor((batch_size,) + self.shape, self.dtype, None, 0, self.name)
        self.output.node = None

    def call(self, inputs, training=None):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype,
                "batch_input_shape": [self.batch_size, *self.shape]}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)


def Input(shape, batch_size=None, dtype=None, name=None) -> SymbolicTensor:
    """A symbolic input for the functional API.

    Args:
        shape: the shape of one sample, without the batch axis, e.g. ``(784,)`` or ``(28, 28, 1)``.
        batch_size: optionally fix the batch size.
        dtype: the input's dtype (float32 by default).
        name: a name for the input layer.

    Returns:
        SymbolicTensor of shape ``(batch_size, *shape)``.

    Example:
        >>> inputs = Input(shape=(784,))
        >>> outputs = Dense(10, activation="softmax")(inputs)
        >>> model = Model(inputs=inputs, outputs=outputs)
    """
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name)
    out = layer.output
    out.node = _InputNode(layer, out)
    return out


class _InputNode:
    """The node of an Input: it has a layer and an output but no inputs."""

    __slots__ = ("layer", "inputs", "outputs", "kwargs", "input_structure")

    def __init__(self, layer, output):
        self.layer = layer
        self.inputs = []
        self.outputs = [output]
        self.kwargs = {}
        self.input_structure = "single"


# Activations the linear op applies itself (one graph node and one pass fewer; see fl.linear).
_FUSED = {activations.relu: "relu", activations.tanh: "tanh", activations.sigmoid: "sigmoid"}


class Dense(Layer):
    """A fully connected layer: ``activation(x @ kernel + bias)``.

    Args:
        units: the output size.
        activation: a name (``"relu"``, ``"softmax"``, ...) or a function; None for linear.
        use_bias: add a bias vector.
        kernel_initializer, bias_initializer: names or initializer objects.
        kernel_regularizer, bias_regularizer, activity_regularizer: optional penalties.
        kernel_constraint, bias_constraint: optional projections applied after each optimizer
            update (``MaxNorm(3)``, ``"non_neg"``; see :mod:`fundl.constraints`).

    Input shape ``(batch, ..., in)`` -> output ``(batch, ..., units)``; the kernel is
    ``(in, units)`` (the Keras layout, so Keras weights load as they are).

    Example:
        >>> model.add(Dense(units=64, activation="relu", input_dim=100))
    """

    supports_masking = True  # per step: a sequence mask passes through

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, numpy.integer)) or units <= 0:
            raise ValueError(f"{type(self).__name__}: units must be a positive integer, got "
                             f"{units!r}.")
        self.units = int(units)
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        set_weight_options(self, kernel_initializer, bias_initializer, kernel_regularizer,
                           bias_regularizer, activity_regularizer, kernel_constraint,
                           bias_constraint)

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"Dense '{self.name}': expected an input of shape (batch, ..., "
                             f"features) with a known feature size, got {input_shape}.")
        self.kernel = _add_weight(self, "kernel", (input_shape[-1], self.units),
                                  self.kernel_initializer, self.kernel_regularizer,
                                  self.kernel_constraint)
        self.bias = (_add_weight(self, "bias", (self.units,), self.bias_initializer,
                                 self.bias_regularizer, self.bias_constraint)
                     if self.use_bias else None)

    def call(self, x, training=None):
        if x.shape[-1] != self.kernel.shape[0]:
            raise ValueError(
                f"Dense '{self.name}': expected last input axis of size {self.kernel.shape[0]} "
                f"(set when the layer was built), got input of shape {x.shape}. Did the previous "
                "layer change size?")
        fused = _FUSED.get(self.activation)  # applied inside the linear op, see fl.linear
        if fused is not None:
            return F.linear(x, self.kernel, self.bias, activation=fused)
        y = F.linear(x, self.kernel, self.bias)
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        if self.built and input_shape[-1] != self.kernel.shape[0]:
            raise ValueError(f"expected last input axis of size {self.kernel.shape[0]}, got "
                             f"{input_shape}.")
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                **weight_options_config(self)}


class Activation(Layer):
    """Applies an activation function element-wise (or along the last axis for softmax).

    Args:
        activation: a name from :mod:`fundl.activations` (``"relu"``, ``"softmax"``, ...) or
            a function; only built-in names can be saved.

    Input and output shapes are equal.

    Example:
        >>> model.add(Activation("relu"))
    """

    supports_masking = True  # per step: a sequence mask passes through

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, x, training=None):
        return self.activation(x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


class Flatten(Layer):
    """Flattens every axis but the batch axis: ``(batch, d1, d2, ...) -> (batch, d1*d2*...)``.

    Example:
        >>> Flatten()(np.zeros((2, 28, 28, 1), dtype="float32")).shape
        (2, 784)
    """

    def call(self, x, training=None):
        return F.reshape(x, (x.shape[0], -1))

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        size = None if any(s is None for s in rest) else math.prod(rest)
        return (input_shape[0], size)


class Reshape(Layer):
    """Reshapes each sample to ``target_shape`` (one entry may be -1); the batch axis stays.

    Args:
        target_shape: the new shape of one sample, e.g. ``(28, 28, 1)`` or ``(-1, 4)``.

    Shapes that cannot fit raise a ValueError when the model is defined.

    Example:
        >>> Reshape((28, 28, 1))(np.zeros((2, 784), dtype="float32")).shape
        (2, 28, 28, 1)
    """

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        try:
            target = _as_shape(target_shape)
        except (TypeError, ValueError):
            target = None
        if target is None or any(t is None or (t < 1 and t != -1) for t in target) or \
                list(target).count(-1) > 1:
            raise ValueError(f"Reshape: target_shape must be a tuple of positive sizes with at "
                             f"most one -1 (without the batch axis), got {target_shape!r}.")
        self.target_shape = target

    def call(self, x, training=None):
        return F.reshape(x, (x.shape[0],) + self.target_shape)

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        target = list(self.target_shape)
        if -1 in target and all(s is not None for s in rest):
            known = math.prod(t for t in target if t != -1)
            total = math.prod(rest)
            if known == 0 or total % known:
                raise ValueError(f"Reshape: cannot reshape samples of shape {tuple(rest)} "
                                 f"({total} elements) to {self.target_shape}: {total} is not a "
                                 f"multiple of {known}.")
            target[target.index(-1)] = total // known
        elif -1 not in target and all(s is not None for s in rest) and \
                math.prod(rest) != math.prod(target):
            raise ValueError(f"Reshape: cannot reshape samples of shape {tuple(rest)} "
                             f"({math.prod(rest)} elements) to {self.target_shape}.")
        return (input_shape[0],) + tuple(None if t == -1 else t for t in target)

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


def _draw_dtype(like):
    return numpy.float32 if like.dtype == numpy.float32 else numpy.float64


def _generators(seed_gen, like):
    """The generator a draw on ``like``'s device uses: fundl's global one, or the next one of
    a layer's own :class:`~fundl.random.SeedGenerator` (a layer built with ``seed=``)."""
    cpu = backend.device_of(like) == "cpu"
    if seed_gen is None:
        return get_rng() if cpu else get_gpu_rng()
    rng = seed_gen.next()
    if cpu:
        return rng
    return backend.device_module("gpu").random.RandomState(int(rng.integers(2 ** 63 - 1)))


def _uniform(shape, like, seed_gen=None):
    """Uniform [0, 1) samples on the device of ``like``, in its dtype (fundl's generators, or
    the layer's own ``seed_gen``)."""
    rng = _generators(seed_gen, like)
    if backend.device_of(like) == "cpu":
        return rng.random(shape, dtype=_draw_dtype(like)).astype(like.dtype, copy=False)
    return rng.random_sample(shape, dtype=_draw_dtype(like)).astype(like.dtype, copy=False)


def _normal(shape, like, seed_gen=None):
    """Standard normal samples on the device of ``like``, in its dtype (fundl's generators, or
    the layer's own ``seed_gen``)."""
    rng = _generators(seed_gen, like)
    return rng.standard_normal(shape, dtype=_draw_dtype(like)).astype(like.dtype, copy=False)


def _seed_generator(who, seed):
    """A layer's own SeedGenerator for ``seed`` (an int), or None for fundl's global one.

    Keras 3's random layers take ``seed``: their draws then follow their own sequence, the
    same for the same seed whatever else the program draws.
    """
    if seed is None:
        return None
    from ..random import SeedGenerator

    if isinstance(seed, bool) or not isinstance(seed, (int, numpy.integer)) or seed < 0:
        raise TypeError(f"{who}: seed must be None or an int >= 0, got {seed!r}.")
    return SeedGenerator(int(seed))


def _check_rate(who, rate):
    """A drop rate as a float in [0, 1) (TypeError / ValueError naming ``who`` otherwise)."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, numpy.floating)):
        raise TypeError(f"{who}: rate must be a number in [0, 1), got {rate!r}.")
    if not 0 <= rate < 1:
        raise ValueError(f"{who}: rate must be in [0, 1), got {rate}.")
    return float(rate)


class Dropout(Layer):
    """Randomly zeroes a fraction ``rate`` of the inputs during training, scaling the rest by
    ``1 / (1 - rate)`` so the expected sum is unchanged (inverted dropout); identity in inference.

    Args:
        rate: the fraction to drop, in [0, 1).
        noise_shape: a shape broadcast against the input (e.g. ``(None, 1, features)``) to drop
            whole slices; None entries take the input's size.
        seed: None (the masks come from fundl's generator: seed it with ``fl.manual_seed``),
            or an int: the layer draws from its own generator, the same sequence of masks for
            the same seed (Keras 3).

    Example:
        >>> model.add(Dropout(0.2))
    """

    supports_masking = True  # per step: a sequence mask passes through

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _check_rate(type(self).__name__, rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self._seed_gen = _seed_generator(type(self).__name__, seed)
        self.seed = None if seed is None else int(seed)

    def call(self, x, training=None):
        if not training or self.rate == 0:
            return x
        shape = x.shape
        if self.noise_shape is not None:
            if len(self.noise_shape) != x.ndim:
                raise ValueError(f"Dropout '{self.name}': noise_shape {self.noise_shape} must have "
                                 f"one entry per input axis, got an input of shape {x.shape}.")
            shape = tuple(s if n is None else n for s, n in zip(x.shape, self.noise_shape))
            if any(n not in (1, s) for n, s in zip(shape, x.shape)):
                raise ValueError(f"Dropout '{self.name}': noise_shape {self.noise_shape} does not "
                                 f"broadcast to the input shape {x.shape}; use 1 or None per "
                                 "axis.")
        keep = 1.0 - self.rate
        like, seed_gen = x.data.ravel()[:1].copy(), self._seed_gen  # dtype and device only

        def draw():  # drawn inside an op, so that a graph-mode replay draws a fresh mask
            return ((_uniform(shape, like, seed_gen) < keep).astype(like.dtype)
                    * like.dtype.type(1.0 / keep))

        return x * random_op(draw)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate,
                "noise_shape": None if self.noise_shape is None else list(self.noise_shape),
                "seed": self.seed}


class GaussianNoise(Layer):
    """Adds zero-mean Gaussian noise of standard deviation ``stddev`` during training only.

    Args:
        stddev: the noise's standard deviation (>= 0).
        seed: None (fundl's generator, ``fl.manual_seed``) or an int (the layer's own).

    A regulariser (and a data augmentation): identity in inference.

    Example:
        >>> model.add(GaussianNoise(0.1))
    """

    supports_masking = True  # per step: a sequence mask passes through

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float, numpy.floating)) \
                or not stddev >= 0:
            raise ValueError(f"GaussianNoise: stddev must be a number >= 0, got {stddev!r}.")
        self.stddev = float(stddev)
        self._seed_gen = _seed_generator("GaussianNoise", seed)
        self.seed = None if seed is None else int(seed)

    def call(self, x, training=None):
        if not training or self.stddev == 0:
            return x
        return x + _normal(x.shape, x.data, self._seed_gen) * x.dtype.type(self.stddev)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


class Lambda(Layer):
    """Wraps a function of Tensors as a layer: ``Lambda(lambda x: x * 2)``.

    Args:
        function: called as ``function(x)`` (or ``function(x, **arguments)``).
        output_shape: the output shape (without batch axis), or a function of the input shape;
            if omitted, it is found by running ``function`` on a zero batch of one sample.
        arguments: extra keyword arguments for ``function``.

    Saving stores only the function's name: to save a model with a Lambda, the function must
    be a module-level function, and to load it, it must be registered
    (``@fundl.layers.register_serializable``) or passed in ``custom_objects``; code is never
    read from a file, so saving a model with an anonymous ``lambda`` raises a ValueError.

    Example:
        >>> @register_serializable
        ... def double(x):
        ...     return x * 2
        >>> model.add(Lambda(double))
    """

    def __init__(self, function, output_shape=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Lambda: function must be callable, got {type(function).__name__}.")
        self.function = function
        self.output_shape = output_shape
        self.arguments = dict(arguments or {})

    def call(self, x, training=None):
        return self.function(x, **self.arguments)

    def compute_output_shape(self, input_shape):
        if callable(self.output_shape):
            return tuple(self.output_shape(input_shape))
        if self.output_shape is not None:
            return (input_shape[0],) + _as_shape(self.output_shape)
        from ..autograd import no_grad

        def probe(shape):
            return Tensor(numpy.zeros((1,) + tuple(1 if s is None else s for s in shape[1:]),
                                      dtype=self.dtype))

        with no_grad():
            if isinstance(input_shape, list):
                out = self.function([probe(s) for s in input_shape], **self.arguments)
            else:
                out = self.function(probe(input_shape), **self.arguments)
        return (None,) + tuple(out.shape[1:])

    def get_config(self):
        name = getattr(self.function, "__name__", None)
        if name is None or name == "<lambda>" or "<locals>" in getattr(
                self.function, "__qualname__", ""):
            raise ValueError(
                f"Lambda '{self.name}': cannot save {name or self.function!r}: an anonymous or "
                "nested function has no name to store, and fundl never writes code into files. "
                "Define a module-level function, decorate it with "
                "@fundl.layers.register_serializable, and pass it to Lambda.")
        if callable(self.output_shape):
            raise ValueError(f"Lambda '{self.name}': cannot save an output_shape given as a "
                             "function; give the output shape as a tuple.")
        return {**super().get_config(), "function": name,
                "output_shape": None if self.output_shape is None
                else list(_as_shape(self.output_shape)),
                "arguments": self.arguments}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        name = config.pop("function", None)
        if not isinstance(name, str):
            raise ValueError("Lambda: the saved config names no function; it cannot be loaded "
                             "(fundl never reads code from files).")
        fn = get_registered(name, custom_objects)
        if isinstance(fn, type):
            raise ValueError(f"Lambda: {name!r} names a class, not a function.")
        config["function"] = fn
        return super().from_config.__func__(cls, config, custom_objects)
