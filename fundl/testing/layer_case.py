"""A reusable test harness for layers (STYLE.md section 8).

:func:`check_layer` runs the checks every layer gets, on tiny sizes:

1. build: the output shape, the weights (keys and shapes, trainable or not), and the
   symbolic output shape (``compute_output_shape``) agree with a real call;
2. ``get_config``/``from_config``: the config survives JSON, the clone's config is the same,
   and with the same weights the clone computes the same outputs;
3. save/load: a model made of the layer, saved and loaded again, predicts identical outputs;
4. training: one SGD step on a mean-squared error lowers that loss (a layer without weights
   gets a Dense in front of it, so the check still sees the gradient flow through it);
5. ``gradcheck`` in float64 of the output with respect to the input and every weight;
6. on a machine with CuPy and an NVIDIA GPU, the layer moved there (``layer.to("gpu")``) gives
   the CPU's outputs and gradients, in inference and (unless it is random) training mode;
7. optionally, forward and gradients against a PyTorch module, given how to map weights.

Example (in a test)::

    def test_dense():
        check_layer(Dense, {"units": 3}, input_shape=(2, 4),
                    expected_output_shape=(2, 3),
                    expected_weights={"kernel": (4, 3), "bias": (3,)})

:func:`check_against_torch` is the PyTorch comparison on its own, for tests that skip
without torch.
"""
from __future__ import annotations

import json
import os
import tempfile

import numpy

from .. import backend
from ..tensor import Tensor, manual_seed
from .gradcheck import gradcheck

__all__ = ["check_layer", "check_against_torch", "compare_layer_with_gpu", "layer_inputs"]


def _is_multi(input_shape):
    return isinstance(input_shape, list)


def layer_inputs(input_shape, dtype="float32", seed=0, low=-1.0, high=1.0):
    """Random inputs for a layer: one array for a shape tuple, a list for a list of shapes.

    Args:
        input_shape: a full shape with the batch axis, e.g. ``(2, 4)``, or a list of them.
        dtype: the arrays' dtype.
        seed: the NumPy seed.
        low, high: the uniform range.

    Returns:
        An array of ``input_shape`` (or a list of arrays).

    Example:
        >>> layer_inputs((2, 3)).shape
        (2, 3)
    """
    rng = numpy.random.default_rng(seed)
    shapes = input_shape if _is_multi(input_shape) else [input_shape]
    arrays = [rng.uniform(low, high, tuple(s)).astype(dtype) for s in shapes]
    return arrays if _is_multi(input_shape) else arrays[0]


def _wrap(x, requires_grad=False):
    if isinstance(x, list):
        return [Tensor(a, requires_grad=requires_grad) for a in x]
    return Tensor(x, requires_grad=requires_grad)


def _outputs(y):
    return [backend.to_numpy(t.data) for t in (y if isinstance(y, (list, tuple)) else [y])]


def _assert(condition, message):
    if not condition:
        raise AssertionError(message)


def check_layer(cls, kwargs=None, *, input_shape, expected_output_shape=None,
                expected_weights=None, expected_non_trainable=(), inputs=None,
                custom_objects=None, check_config=True, check_saving=True, check_training=True,
                check_gradients=True, gradcheck_training=False, learning_rate=0.01,
                gradcheck_atol=1e-5, gradcheck_rtol=1e-4, seed=0):
    """Run the layer checks of STYLE.md section 8; raises AssertionError on any failure.

    Args:
        cls: the layer class.
        kwargs: its constructor arguments (without ``dtype``/``name``).
        input_shape: the input's full shape with the batch axis, e.g. ``(2, 4)``; a list of
            shapes for a layer that takes a list (merge layers).
        expected_output_shape: the output's full shape, if it should be checked.
        expected_weights: ``{key: shape}`` of every weight (keys as in ``state_dict``), or None
            to skip; ``{}`` asserts the layer has no weights.
        expected_non_trainable: keys of the weights that should be non-trainable.
        inputs: the input array(s) to use (default: uniform in [-1, 1), seeded).
        custom_objects: passed to ``from_config`` and ``load_model`` (custom functions).
        check_config, check_saving, check_training, check_gradients: switch checks off
            (say why in the test).
        gradcheck_training: run the gradcheck in training mode, re-seeding fundl's generator
            before each evaluation so that random masks/noise are the same every time.
        learning_rate: the SGD step size of the training check.
        gradcheck_atol, gradcheck_rtol: the finite-difference tolerances.
        seed: seeds fundl's generator (weights) and the default inputs.

    Returns:
        The float32 layer that was built and checked.

    Example:
        >>> check_layer(Dense, {"units": 3}, input_shape=(2, 4), expected_output_shape=(2, 3),
        ...             expected_weights={"kernel": (4, 3), "bias": (3,)})
    """
    kwargs = dict(kwargs or {})
    x = inputs if inputs is not None else layer_inputs(input_shape, seed=seed)
    manual_seed(seed)
    layer = cls(**kwargs)
    y = _check_build(layer, x, input_shape, expected_output_shape, expected_weights,
                     expected_non_trainable)
    if check_config:
        _check_config(cls, layer, x, y, custom_objects)
    if check_saving:
        _check_saving(layer, x, input_shape, custom_objects)
    if check_training:
        _check_training(cls, kwargs, x, input_shape, learning_rate, seed)
    if check_gradients:
        _check_gradients(cls, kwargs, input_shape, gradcheck_training, gradcheck_atol,
                         gradcheck_rtol, seed)
    if backend.gpu_available():
        compare_layer_with_gpu(cls, kwargs, input_shape=input_shape, inputs=inputs,
                               training_modes=(False,) if gradcheck_training else (False, True),
                               seed=seed)
    return layer


def _check_build(layer, x, input_shape, expected_output_shape, expected_weights,
                 expected_non_trainable):
    _assert(not layer.built, f"{type(layer).__name__} is built before its first call")
    out = layer(_wrap(x))
    _assert(layer.built, f"{type(layer).__name__} is not built after its first call")
    y = _outputs(out)
    shapes = [a.shape for a in y]
    if expected_output_shape is not None:
        expected = (expected_output_shape if isinstance(expected_output_shape, list)
                    else [expected_output_shape])
        _assert(shapes == [tuple(s) for s in expected],
                f"output shape {shapes} differs from the expected {expected}")
    # compute_output_shape must predict what call produces (batch axis as None).
    batchless = ([(None,) + tuple(s[1:]) for s in input_shape] if _is_multi(input_shape)
                 else (None,) + tuple(input_shape[1:]))
    predicted = layer.compute_output_shape(batchless)
    predicted = predicted if isinstance(predicted, list) else [predicted]
    for p, s in zip(predicted, shapes):
        _assert(len(p) == len(s) and all(a is None or a == b for a, b in zip(p[1:], s[1:])),
                f"compute_output_shape gives {p}, but call returned {s}")
    if expected_weights is not None:
        state = layer.state_dict()
        got = {k: tuple(v.shape) for k, v in state.items()}
        want = {k: tuple(v) for k, v in expected_weights.items()}
        _assert(got == want, f"weights {got} differ from the expected {want}")
        non_trainable = {id(w) for w in layer.non_trainable_weights}
        keys = {k for k, w, _ in layer._weight_entries() if id(w) in non_trainable}
        _assert(keys == set(expected_non_trainable),
                f"non-trainable weights {sorted(keys)} differ from the expected "
                f"{sorted(expected_non_trainable)}")
        _assert(len(layer.trainable_weights) + len(layer.non_trainable_weights)
                == len(layer.weights), "trainable + non-trainable weights != weights")
        _assert(layer.count_params() == sum(int(numpy.prod(s)) for s in want.values()),
                "count_params() differs from the sum of the weight sizes")
    return y


def _check_config(cls, layer, x, y, custom_objects):
    config = layer.get_config()
    text = json.dumps(config)  # raises TypeError if the config is not JSON-safe
    restored = json.loads(text)
    clone = cls.from_config(restored, custom_objects=custom_objects)
    _assert(json.loads(json.dumps(clone.get_config())) == restored,
            f"from_config(get_config()) changes the config:\n{restored}\n"
            f"{clone.get_config()}")
    clone(_wrap(x))
    clone.set_weights(layer.get_weights())
    y2 = _outputs(clone(_wrap(x)))
    for a, b in zip(y, y2):
        numpy.testing.assert_array_equal(a, b, err_msg="the clone from get_config computes "
                                                       "different outputs with the same weights")


def _symbolic_model(layer, input_shape):
    from ..layers import Input
    from ..models import Model

    if _is_multi(input_shape):
        inputs = [Input(shape=tuple(s[1:])) for s in input_shape]
    else:
        inputs = Input(shape=tuple(input_shape[1:]))
    return Model(inputs=inputs, outputs=layer(inputs))


def _check_saving(layer, x, input_shape, custom_objects):
    from ..models import load_model

    model = _symbolic_model(layer, input_shape)
    before = model.predict(x, verbose=0)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "layer.fundl")
        model.save(path)
        loaded = load_model(path, custom_objects=custom_objects)
    after = loaded.predict(x, verbose=0)
    for a, b in zip(before if isinstance(before, list) else [before],
                    after if isinstance(after, list) else [after]):
        numpy.testing.assert_array_equal(a, b, err_msg="a saved and reloaded model predicts "
                                                       "different outputs")


def _check_training(cls, kwargs, x, input_shape, learning_rate, seed):
    from ..layers import Dense, Input
    from ..models import Model
    from ..optimizers import SGD

    manual_seed(seed)
    layer = cls(**kwargs)
    shapes = input_shape if _is_multi(input_shape) else [input_shape]
    inputs = [Input(shape=tuple(s[1:])) for s in shapes]
    layer(_wrap(x))  # built first, to see whether it has weights of its own
    if layer.trainable_weights:
        feed = inputs
    else:  # nothing of its own to train: train a Dense in front, through the layer
        feed = [Dense(s[-1], kernel_initializer="identity")(t) for s, t in zip(shapes, inputs)]
    out = layer(feed if _is_multi(input_shape) else feed[0])
    model = Model(inputs=inputs if _is_multi(input_shape) else inputs[0], outputs=out)
    outs = out if isinstance(out, list) else [out]
    rng = numpy.random.default_rng(seed + 1)
    targets = [rng.uniform(-1, 1, (shapes[0][0],) + tuple(o.shape[1:])).astype("float32")
               for o in outs]
    model.compile(optimizer=SGD(learning_rate), loss="mse")
    y = targets if len(targets) > 1 else targets[0]
    before = _total(model.test_on_batch(x, y))
    model.train_on_batch(x, y)
    after = _total(model.test_on_batch(x, y))
    _assert(after < before, f"one SGD step (learning rate {learning_rate}) did not lower the "
                            f"loss: {before} -> {after}")


def _total(result):
    return result[0] if isinstance(result, list) else result


def _check_gradients(cls, kwargs, input_shape, training, atol, rtol, seed):
    manual_seed(seed)
    layer = cls(**kwargs, dtype="float64")
    x = _wrap(layer_inputs(input_shape, dtype="float64", seed=seed), requires_grad=True)
    layer(x)
    weights = layer.trainable_weights
    inputs = (x if isinstance(x, list) else [x]) + weights
    n_x = len(inputs) - len(weights)

    def fn(*args):
        if training:
            manual_seed(seed + 2)  # the same dropout mask / noise at every evaluation
        xs = list(args[:n_x])
        return layer(xs if _is_multi(input_shape) else xs[0], training=training)

    gradcheck(fn, inputs, atol=atol, rtol=rtol, seed=seed)
    for w in weights:
        _assert(w.grad is not None and w.grad.shape == w.shape and w.grad.dtype == w.dtype,
                f"the gradient of weight '{w.name}' is missing or has the wrong shape/dtype")


def _layer_run(cls, kwargs, input_shape, inputs, training, device, seed):
    """Outputs, input gradients and weight gradients (NumPy, float64) of a fresh layer built
    on the CPU, moved to ``device`` and run there."""
    manual_seed(seed)
    layer = cls(**kwargs, dtype="float64")
    if inputs is None:
        inputs = layer_inputs(input_shape, dtype="float64", seed=seed)
    arrays = inputs if isinstance(inputs, list) else [inputs]
    arrays = [a.astype("float64") if a.dtype.kind == "f" else a for a in arrays]
    layer([Tensor(a) for a in arrays] if isinstance(inputs, list) else Tensor(arrays[0]))
    layer.to(device)
    for w in layer.weights:  # a weight shared with an earlier run (a cell instance in kwargs)
        w.grad = None
    xs = [Tensor(backend.to_device(a, device), requires_grad=a.dtype.kind == "f")
          for a in arrays]
    out = layer(xs if isinstance(inputs, list) else xs[0], training=training)
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    rng = numpy.random.default_rng(seed + 3)
    loss = None
    for o in outs:
        v = Tensor(backend.to_device(rng.standard_normal(o.shape), device))
        term = (o * v).sum()
        loss = term if loss is None else loss + term
    loss.backward()
    results = {f"output {i}": o.data for i, o in enumerate(outs)}
    results.update({f"gradient of input {i}": x.grad for i, x in enumerate(xs)
                    if x.requires_grad})
    results.update({f"gradient of weight '{w.name}'": w.grad for w in layer.trainable_weights})
    results.update({f"weight '{w.name}' after the call": w.data for w in layer.weights})
    for name, a in results.items():
        _assert(a is None or backend.device_of(a) == device,
                f"{cls.__name__}: {name} is on the {backend.device_of(a)}, not the {device}")
    results = {k: None if a is None else backend.to_numpy(a) for k, a in results.items()}
    layer.to("cpu")  # layers shared through kwargs (a cell, a wrapped layer) back for the next run
    return results


def compare_layer_with_gpu(cls, kwargs=None, *, input_shape, inputs=None,
                           training_modes=(False, True), atol=1e-8, rtol=1e-6, seed=0,
                           device="gpu"):
    """The layer on the GPU computes what it computes on the CPU (float64).

    A fresh float64 layer is built on the CPU, moved with ``layer.to(device)`` and called
    there; its outputs, the gradients of its inputs and weights (for a random direction), and
    its weights after the call (moving averages) must agree between ``"cpu"`` and ``device``
    and stay on their device. Needs CuPy and a GPU (the caller checks
    ``fundl.gpu_available()``); ``device="cpu"`` runs the comparison on the CPU twice.

    Example (in a test that runs only where a GPU is)::

        compare_layer_with_gpu(Dense, {"units": 3}, input_shape=(2, 4))
    """
    kwargs = dict(kwargs or {})
    for training in training_modes:
        want = _layer_run(cls, kwargs, input_shape, inputs, training, "cpu", seed)
        got = _layer_run(cls, kwargs, input_shape, inputs, training, device, seed)
        _assert(got.keys() == want.keys(), f"{cls.__name__}: results differ in kind between "
                                           f"{device} and cpu: {sorted(got)} vs {sorted(want)}")
        for name, w in want.items():
            g = got[name]
            _assert((g is None) == (w is None), f"{cls.__name__}: {name} on one device only")
            if w is not None:
                numpy.testing.assert_allclose(
                    g, w, atol=atol, rtol=rtol,
                    err_msg=f"{cls.__name__} (training={training}): {name} differs between "
                            f"{device} and cpu")


def check_against_torch(layer, torch_module, weight_map, inputs, *, torch_forward=None,
                        training=False, atol=1e-6, rtol=1e-6, seed=0):
    """Compare a built float64 layer's forward and gradients with a PyTorch module's.

    Args:
        layer: a fundl layer of dtype float64 (built, or built by the first call here).
        torch_module: the PyTorch module (its parameters are overwritten, in float64).
        weight_map: ``fn(arrays: {fundl key: array}) -> {torch parameter name: array}``, a
            pure re-layout (transpose, reshape, ...), e.g. ``lambda w: {"weight": w["kernel"].T,
            "bias": w["bias"]}`` for Dense vs ``torch.nn.Linear``. Gradients are compared by
            applying the same map to fundl's gradients.
        inputs: the input array (or list of arrays), float64, in fundl's layout.
        torch_forward: ``fn(module, x) -> y`` in fundl's layouts (e.g. permuting channels);
            default ``module(x)``.
        training: the mode both run in.
        atol, rtol: the tolerances.
        seed: the seed of the random output direction used for the backward pass.

    Raises:
        AssertionError: outputs or any gradient differ.

    Example:
        >>> check_against_torch(Dense(3, dtype="float64"), torch.nn.Linear(4, 3).double(),
        ...                     lambda w: {"weight": w["kernel"].T, "bias": w["bias"]},
        ...                     np.random.randn(2, 4))
    """
    import torch

    xs = inputs if isinstance(inputs, list) else [inputs]
    fx = [Tensor(numpy.asarray(a, dtype="float64"), requires_grad=True) for a in xs]
    out = layer(fx if isinstance(inputs, list) else fx[0], training=training)
    keyed = {k: w for k, w, _ in layer._weight_entries()}
    mapped = weight_map({k: backend.to_numpy(w.data) for k, w in keyed.items()})
    torch_module.double()  # before copying, so float64 weights are not rounded to float32
    params = dict(torch_module.named_parameters())
    with torch.no_grad():
        for name, value in mapped.items():
            if name not in params:
                raise AssertionError(f"weight_map names {name!r}, not a parameter of the torch "
                                     f"module (it has {sorted(params)})")
            params[name].copy_(torch.as_tensor(numpy.ascontiguousarray(value)))
    torch_module.train(training)
    tx = [torch.tensor(numpy.asarray(a, dtype="float64"), requires_grad=True) for a in xs]
    targ = tx if isinstance(inputs, list) else tx[0]
    tout = torch_forward(torch_module, targ) if torch_forward else torch_module(targ)
    numpy.testing.assert_allclose(backend.to_numpy(out.data), tout.detach().numpy(),
                                  atol=atol, rtol=rtol, err_msg="forward differs from PyTorch")
    v = numpy.random.default_rng(seed).standard_normal(out.shape)
    for w in keyed.values():
        w.grad = None
    out.backward(v)
    tout.backward(torch.as_tensor(v))
    for i, (a, b) in enumerate(zip(fx, tx)):
        numpy.testing.assert_allclose(backend.to_numpy(a.grad), b.grad.numpy(), atol=atol,
                                      rtol=rtol, err_msg=f"gradient of input {i} differs from "
                                                         "PyTorch")
    grads = {k: (backend.to_numpy(w.grad) if w.grad is not None else numpy.zeros(w.shape))
             for k, w in keyed.items()}
    for name, g in weight_map(grads).items():
        tg = params[name].grad
        expected = tg.numpy() if tg is not None else numpy.zeros(g.shape)
        numpy.testing.assert_allclose(g, expected, atol=atol, rtol=rtol,
                                      err_msg=f"gradient of {name!r} differs from PyTorch")
