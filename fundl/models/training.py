"""Training: ``compile``, ``fit``, ``evaluate``, ``predict`` and the per-batch steps.

One training step is the course's recipe, literally: take a batch, run it forward to the loss,
back-propagate, let the optimizer update the weights. Everything else here is bookkeeping,
done once per fit rather than once per step where possible, because per-step overhead is what
separates a framework from hand-written NumPy. The file reads top-down by responsibility:

- argument checks (``_int_arg``, ``_verbose_arg``, ...): every argument of compile/fit/evaluate/
  predict is checked at the public boundary, with a message naming it;
- ``Trainer.compile`` and the compiled state: losses and metrics per output, ``model.metrics``
  (the ``"loss"`` tracker, the compiled Metric objects, the model's own trackers),
  ``compute_loss`` / ``compute_metrics`` (Keras 3's hooks);
- data handling: inputs and targets as lists of arrays, checked against the model; the
  batches come from :mod:`fundl.models.data_adapter` (arrays, generators, PyDatasets);
- the built-in step (``_train_step``/``_test_step``: lists of arrays in, floats out, the fast
  path) and the overridable steps (``train_step``/``test_step``/``predict_step``, called when a
  subclass overrides them, or ``compute_loss``/``compute_metrics``);
- ``fit`` (check arguments, make the batches, then ``_fit_epochs``: the epoch loop with its
  callbacks, validation and metric resets), ``evaluate`` and ``predict``.

What differs between model kinds is asked through three methods that ``Model`` and
``Sequential`` override (``_n_inputs``, ``_expected_input_shapes``, ``_needs_sample_call``).
"""
from __future__ import annotations

import collections.abc
import functools
import math
import warnings

import numpy

from .. import backend, losses as losses_module, metrics as metrics_module
from .. import optimizers as optimizers_module
from ..callbacks.base import Callback, CallbackList
from ..autograd import gradients_of, no_grad
from ..layers._masking import _MASKS, get_mask
from ..layers import base as layers_base
from ..runtime import model_products
from ..tensor import Tensor, get_rng
from .data_adapter import ArrayBatches, DatasetBatches, is_dataset, unpack_x_y_sample_weight

_FIT_ARGS = ["x", "y", "batch_size", "epochs", "verbose", "callbacks", "validation_split",
             "validation_data", "shuffle", "class_weight", "sample_weight", "initial_epoch",
             "steps_per_epoch", "validation_steps", "validation_batch_size", "validation_freq",
             "strategy"]


def _as_list(x):
    if x is None:
        return None
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def _num_samples(arrays, what):
    sizes = {len(a) for a in arrays}
    if len(sizes) > 1:
        raise ValueError(f"fit: all {what} arrays must have the same number of samples, got "
                         f"{[len(a) for a in arrays]}.")
    return sizes.pop() if sizes else 0


def _to_array(a):
    """NumPy data for fit/evaluate/predict; float64 becomes the default float dtype once, here.

    CuPy arrays are copied to the host too: batches are cut and shuffled there, then moved to
    the model's device one at a time.
    """
    a = a.numpy() if isinstance(a, Tensor) else backend.to_numpy(a)
    if a.dtype == numpy.float64 and backend.get_default_dtype() != numpy.float64:
        a = a.astype(backend.get_default_dtype())
    return a


def _loss_name(loss):
    if isinstance(loss, str):
        return loss
    return getattr(loss, "name", None) or getattr(loss, "__name__", type(loss).__name__)


# Losses whose targets must have the outputs' exact shape (one entry per class or unit).
_SAME_SHAPE = {"categorical_crossentropy", "kl_divergence", "kld", "kullback_leibler_divergence",
               "CategoricalCrossentropy", "KLDivergence"}
_SPARSE = {"sparse_categorical_crossentropy", "SparseCategoricalCrossentropy"}


def _fits(got, want):
    """Whether a per-sample shape ``got`` matches ``want`` (None in ``want`` matches any size)."""
    return len(got) == len(want) and all(w is None or w == g for w, g in zip(want, got))


def _is_builtin_loss(fn):
    """Whether ``fn`` is one of fundl's losses, whose target shapes ``fit`` can check."""
    if type(fn) is losses_module.LossFunctionWrapper:
        fn = fn.fn  # a wrapper is as checkable as the function it wraps
    elif isinstance(fn, losses_module.Loss):
        return type(fn).__module__ == losses_module.__name__
    return getattr(fn, "__module__", None) == losses_module.__name__


def _step_mask(out, values):
    """The mask of output ``out`` if it has the shape of the per-element losses ``values``.

    A loss of shape (batch, timesteps) can leave masked steps out; one already reduced over
    time (a custom loss, :func:`~fundl.layers.embedding.masked_loss`) cannot and is left alone.
    """
    mask = get_mask(out) if _MASKS else None
    if mask is None or values.ndim < 2 or tuple(mask.shape) != values.shape:
        return None
    return mask


def _mask_weights(mask, sample_weight, values, reduction):
    """Keras 3's ``apply_mask``: the mask as per-element loss weights, times ``sample_weight``.

    For the mean reductions the real steps get weight ``total / valid``, so that the mean over
    all elements becomes the mean over the real ones: ``sum(loss * mask * sw) / sum(mask)``
    (padded steps get weight 0, hence no gradient). ``"sum"`` and ``"none"`` get the 0/1 mask,
    ``"mean_with_sample_weight"`` divides by ``sum(mask * sw)``.

    Args:
        mask: boolean (batch, timesteps), the shape of ``values``.
        sample_weight: None or (batch,) weights.
        values: the per-element losses (a Tensor), for their dtype and device.
        reduction: the loss's reduction.

    Returns:
        An array of shape (batch, timesteps) on ``values``' device.
    """
    xp = backend.get_array_module(values.data)
    weights = xp.asarray(mask).astype(values.dtype)
    if reduction in ("sum_over_batch_size", "mean"):
        valid = float(weights.sum())
        weights *= weights.dtype.type(weights.size / valid if valid else 0.0)
    if sample_weight is not None:
        sw = xp.asarray(sample_weight, dtype=values.dtype)
        weights *= sw.reshape(sw.shape[:1] + (1,) * (weights.ndim - 1))
    return weights


def _loss_value(fn, reduces, y, out, sample_weight):
    """One output's loss, a 0-d Tensor, with masked steps left out (see ``_compute_loss``).

    Args:
        fn: the loss: a per-element function, or a :class:`~fundl.losses.Loss` (``reduces``).
        reduces: whether ``fn`` is a Loss, which applies its own ``reduction``.
        y, out: the targets and the output Tensor.
        sample_weight: None or (batch,) weights.
    """
    if reduces:
        if not _MASKS or type(fn).__call__ is not losses_module.Loss.__call__:
            return fn(y, out, sample_weight=sample_weight)  # no mask alive, or its own __call__
        # Loss.__call__ is reduce_weighted(call(...)); split here so that a mask can join the
        # sample weights.
        values = fn.call(y, out)
        mask = _step_mask(out, values)
        weights = (sample_weight if mask is None
                   else _mask_weights(mask, sample_weight, values, fn.reduction))
        return losses_module.reduce_weighted(values, weights, fn.reduction)
    values = fn(y, out)
    mask = _step_mask(out, values)
    if mask is not None:
        return losses_module.reduce_weighted(
            values, _mask_weights(mask, sample_weight, values, "sum_over_batch_size"))
    if sample_weight is not None:
        values = values * sample_weight.reshape(sample_weight.shape + (1,) * (values.ndim - 1))
    return values.mean()


# -- argument checks (the public boundary of compile/fit/evaluate/predict) ----------------------

def _int_arg(who, name, value, low, allow_none=True, hint=""):
    """``value`` as an int >= ``low`` (None passes when allowed), or a clear error."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, numpy.bool_)) or not isinstance(value, (int, numpy.integer)):
        none = " or None" if allow_none else ""
        raise TypeError(f"{who}: {name} must be an integer >= {low}{none}, got {value!r} "
                        f"({type(value).__name__}).{hint}")
    if value < low:
        raise ValueError(f"{who}: {name} must be an integer >= {low}, got {value}.{hint}")
    return int(value)


def _verbose_arg(who, verbose):
    """``"auto"`` -> 1; 0, 1, 2 (True/False as 1/0) pass; anything else is an error."""
    if verbose == "auto" and isinstance(verbose, str):
        return 1
    if isinstance(verbose, (bool, numpy.bool_)):
        return int(verbose)
    if isinstance(verbose, (int, numpy.integer)) and 0 <= verbose <= 2:
        return int(verbose)
    raise ValueError(f"{who}: verbose must be 'auto', 0 (silent), 1 (progress bar) or 2 (one "
                     f"line per epoch), got {verbose!r}.")


def _bool_arg(who, name, value, extra=()):
    if isinstance(value, str) and value in extra:
        return value
    if isinstance(value, (bool, numpy.bool_)):
        return bool(value)
    allowed = "True or False" + "".join(f" or {e!r}" for e in extra)
    raise TypeError(f"{who}: {name} must be {allowed}, got {value!r} ({type(value).__name__}).")


def _unknown_kwargs(who, kwargs, known):
    """A TypeError naming unexpected keyword arguments, with the closest valid name."""
    import difflib

    parts = []
    for key in sorted(kwargs):
        close = difflib.get_close_matches(key, known, n=1)
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise TypeError(f"{who}: unexpected keyword argument(s) {', '.join(parts)}; the arguments "
                    f"are {', '.join(known)}.")


def _check_callbacks(who, callbacks):
    """None, a Callback, or a list/tuple of Callbacks (checked before any work is done)."""
    if callbacks is None or isinstance(callbacks, Callback):
        return
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"{who}: callbacks must be a list of fundl.callbacks.Callback objects, "
                        f"got {type(callbacks).__name__}.")
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise TypeError(f"{who}: callbacks[{i}] must be a fundl.callbacks.Callback instance, "
                            f"got {type(cb).__name__}. Subclass Callback, or wrap functions in "
                            "LambdaCallback(on_epoch_end=...).")


def _check_class_weight(class_weight):
    if class_weight is None:
        return None
    if not isinstance(class_weight, dict):
        raise TypeError(f"fit: class_weight must be a dict {{class index: weight}}, got "
                        f"{type(class_weight).__name__}.")
    for c, w in class_weight.items():
        if isinstance(c, (bool, numpy.bool_)) or not isinstance(c, (int, numpy.integer)) or c < 0:
            raise ValueError(f"fit: class_weight keys must be class indices (integers >= 0), got "
                             f"the key {c!r}; e.g. class_weight={{0: 1.0, 1: 5.0}}.")
        if isinstance(w, (bool, numpy.bool_)) or not isinstance(w, (int, float, numpy.number)) \
                or not math.isfinite(w) or w < 0:
            raise ValueError(f"fit: class_weight[{c}] must be a finite number >= 0, got {w!r}.")
    return class_weight


def _log_value(who, key, value):
    """A value of a custom step's logs as a float (Metric: its result; Tensor: its value)."""
    if isinstance(value, metrics_module.Metric):
        value = value.result()
    if isinstance(value, Tensor):
        value = backend.to_numpy(value.data)
    if isinstance(value, (float, int, numpy.number, numpy.ndarray)) and not isinstance(value, bool):
        arr = numpy.asarray(value)
        if arr.size == 1:
            return float(arr.reshape(()))
        return arr
    raise TypeError(f"{who}: the value of log {key!r} must be a number, a Tensor or a Metric, got "
                    f"{type(value).__name__}.")


def _to_step_data(data, device):
    """NumPy arrays in a batch (nested tuples/lists/dicts) as Tensors on the model's device."""
    if isinstance(data, numpy.ndarray):
        if data.dtype == numpy.float64 and backend.get_default_dtype() != numpy.float64:
            data = data.astype(backend.get_default_dtype())
        return Tensor._wrap(backend.to_device(data, device))
    if isinstance(data, tuple):
        return tuple(_to_step_data(d, device) for d in data)
    if isinstance(data, list):
        return [_to_step_data(d, device) for d in data]
    if isinstance(data, dict):
        return {k: _to_step_data(v, device) for k, v in data.items()}
    return data


def _concat_outputs(chunks, who):
    """Per-batch predictions (arrays, or lists/tuples/dicts of them) joined along axis 0."""
    first = chunks[0]
    if isinstance(first, dict):
        return {k: _concat_outputs([c[k] for c in chunks], who) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(_concat_outputs([c[i] for c in chunks], who)
                            for i in range(len(first)))
    if isinstance(first, Tensor):
        chunks = [backend.to_numpy(c.data) for c in chunks]
    elif not isinstance(first, numpy.ndarray):
        chunks = [numpy.asarray(backend.to_numpy(c)) for c in chunks]
    if chunks[0].ndim == 0:
        return numpy.stack(chunks)
    return numpy.concatenate(chunks)


def _batch_len(x):
    """The number of samples in a batch's inputs (the first array's first axis), or None."""
    for a in _flat_arrays(x):
        shape = getattr(a, "shape", None)
        if shape:
            return int(shape[0])
    return None


def _flat_arrays(x):
    """The arrays of inputs ``x`` (a Tensor/array, or a list/tuple/dict of them), as NumPy."""
    items = list(x.values()) if isinstance(x, dict) else list(x) if isinstance(
        x, (list, tuple)) else [x]
    out = []
    for a in items:
        if isinstance(a, Tensor):
            a = backend.to_numpy(a.data)
        if isinstance(a, numpy.ndarray):
            out.append(a)
    return out


def _runs_the_model(method):
    """Run ``method`` with the model's own rule for medium dense products (see
    :func:`fundl.runtime.model_products`): decided by its layers, not by what ran before."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with model_products(self._uses_parallel_regions()):
            return method(self, *args, **kwargs)

    return run


class _NoPredictCallbacks:
    """The callback hooks ``predict`` calls, doing nothing (no callbacks, verbose=0)."""

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass


_NO_PREDICT_CALLBACKS = _NoPredictCallbacks()


class Trainer:
    """The training half of :class:`~fundl.models.Model` (a mixin; see ``Model``).

    What runs per batch is a method a subclass may override, as in Keras 3:
    :meth:`train_step`, :meth:`test_step`, :meth:`predict_step` (and :meth:`compute_loss`
    inside them). When none is overridden, ``fit``/``evaluate`` run a built-in step on lists of
    arrays that skips the per-step conversions (the fast path the benchmarks measure).
    Model kinds differ only in the few methods ``_n_inputs``, ``_expected_input_shapes`` and
    ``_needs_sample_call``, which ``Model`` and ``Sequential`` override.
    """

    optimizer = None
    compiled = False
    stop_training = False
    history = None
    _loss_tracker = None

    # -- compile ----------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None,
                run_eagerly=None, steps_per_execution=1, jit_compile="auto", **kwargs):
        """Configure training.

        Args:
            optimizer: a name (``"sgd"``, ``"adam"``, ...) or an optimizer object.
            loss: a name, a function ``(y_true, y_pred)``, or a loss object; for several
                outputs, a list (in output order) or a dict by output name. None for a model
                whose losses come from ``add_loss`` or from its own ``train_step``.
            metrics: a list of names (``["accuracy"]``, ``"auc"``, ...), functions or
                :class:`~fundl.metrics.Metric` objects, or a list/dict per output. They are
                logged under the name given (``"acc"`` as ``"acc"``) or the object's ``name``.
            loss_weights: a list or dict of floats weighting each output's loss.
            run_eagerly: True runs every step eagerly (it wins over ``jit_compile``).
            steps_per_execution: accepted for Keras compatibility; only 1.
            jit_compile: True runs the built-in training step's forward pass, loss and
                backward through graph mode (:func:`fundl.function`): traced once per batch
                shape, then replayed without per-op Python dispatch, with the same numbers as
                eager mode; the optimizer update is unchanged. A step that cannot be traced
                runs eagerly after one warning. ``"auto"`` (Keras's default) and False: eager.

        As in Keras, the weights that are trainable now are the ones training updates until
        the next ``compile``: freeze layers (``layer.trainable = False``) before compiling.

        Padded sequences: an output that carries a mask (from ``Embedding(mask_zero=True)`` or
        ``Masking``, passed on by the layers in between) counts only its real steps, in the
        loss (Keras 3's masked mean, so padded steps get no gradient) and in the metrics.

        Example:
            >>> model.compile(loss="categorical_crossentropy", optimizer="sgd",
            ...               metrics=["accuracy"])
        """
        if kwargs:
            _unknown_kwargs("compile", kwargs, ["optimizer", "loss", "metrics", "loss_weights",
                                                "run_eagerly", "steps_per_execution",
                                                "jit_compile"])
        if run_eagerly is not None:
            _bool_arg("compile", "run_eagerly", run_eagerly)
        if steps_per_execution != 1:
            raise ValueError(f"compile: steps_per_execution={steps_per_execution!r} is not "
                             "supported; fundl runs one step per call (leave it at 1).")
        if jit_compile not in (True, False, "auto"):
            raise ValueError(f"compile: jit_compile must be True, False or 'auto', got "
                             f"{jit_compile!r}.")
        self._check_compile_specs(loss, metrics, loss_weights)
        self._graph_step = None
        if jit_compile is True and not run_eagerly:
            from ..graph_mode import model_step
            self._graph_step = model_step(self)  # None (after a warning) for a custom train_step
        self.optimizer = optimizers_module.get(optimizer)
        self._loss_spec, self._metric_spec, self._loss_weight_spec = loss, metrics, loss_weights
        self._compiled_for = None
        # As in Keras, compile() fixes which weights train: layer.trainable changes made later
        # take effect at the next compile (this is what lets a GAN freeze its discriminator
        # inside the combined model while the discriminator alone still trains).
        self._compiled_trainable = self.trainable_weights if self.built else None
        self._compiled_weights = None  # (all weights, ids of the trainable ones), see below
        self._warned_trainable = False
        self._loss_tracker = metrics_module.Mean(name="loss")
        self.compiled = True

    @staticmethod
    def _check_compile_specs(loss, metrics, loss_weights):
        """Type checks of compile's loss/metrics/loss_weights, before anything is stored."""
        def loss_ok(spec):
            return spec is None or isinstance(spec, str) or callable(spec)

        specs = (list(loss.values()) if isinstance(loss, dict) else
                 list(loss) if isinstance(loss, (list, tuple)) else [loss])
        for spec in specs:
            if not loss_ok(spec):
                raise TypeError(f"compile: loss must be a name, a function (y_true, y_pred), a "
                                f"fundl.losses.Loss, or a list/dict of them per output, got "
                                f"{type(spec).__name__} {spec!r}.")
            if isinstance(spec, str):
                losses_module.get(spec)  # an unknown name fails here, not at the first fit
        if metrics is not None:
            flat = []
            for m in (metrics.values() if isinstance(metrics, dict) else
                      metrics if isinstance(metrics, (list, tuple)) else [metrics]):
                flat.extend(m if isinstance(m, (list, tuple)) else [] if m is None else [m])
            for m in flat:
                metrics_module.get(m)  # raises for unknown names and wrong types
        if loss_weights is not None:
            values = (list(loss_weights.values()) if isinstance(loss_weights, dict) else
                      list(loss_weights) if isinstance(loss_weights, (list, tuple))
                      else [loss_weights])
            for w in values:
                if w is not None and (isinstance(w, bool) or not isinstance(
                        w, (int, float, numpy.number)) or not math.isfinite(w)):
                    raise TypeError(f"compile: loss_weights must be numbers (a list or a dict "
                                    f"per output), got {w!r}.")

    def _output_names(self):
        names = getattr(self, "output_names", None)
        if names and getattr(self, "_output_structure", "single") == "list":
            return list(names)
        return [self.name if not names else names[0]]

    def _per_output(self, spec, what, default=None):
        """``spec`` (one value, a list in output order, or a dict by output name) per output."""
        names = self._output_names()
        if isinstance(spec, dict):
            unknown = set(spec) - set(names)
            if unknown:
                raise ValueError(f"compile: {what} given for unknown output(s) {sorted(unknown)}; "
                                 f"the outputs are {names}.")
            return [spec.get(n, default) for n in names]
        if isinstance(spec, (list, tuple)):
            if len(spec) != len(names):
                raise ValueError(f"compile: {len(spec)} {what} given for {len(names)} output(s) "
                                 f"{names}.")
            return list(spec)
        return [default if spec is None else spec] * len(names)

    def _metrics_per_output(self):
        """Metrics as one list per output: a flat list applies to every output (as Keras)."""
        spec = self._metric_spec
        names = self._output_names()
        if spec is None:
            return [[] for _ in names]
        if isinstance(spec, dict):
            return [_as_list(m) or [] for m in self._per_output(spec, "metrics")]
        spec = list(spec) if isinstance(spec, (list, tuple)) else [spec]
        if len(names) > 1 and len(spec) == len(names) and all(
                isinstance(m, (list, tuple)) or m is None for m in spec):
            return [list(m or []) for m in spec]
        return [spec for _ in names]

    def _prepare_compiled(self):
        """Resolve losses, weights and metrics per output (once, after the model is built).

        ``self._metrics`` holds, per output, ``(name, fn, stateful)``: a per-sample function
        (averaged over the epoch by ``fit``), or a :class:`~fundl.metrics.Metric` that keeps its
        own state. ``self._metric_objects`` are the Metric objects ``model.metrics`` lists
        (functions wrapped in a :class:`~fundl.metrics.MeanMetricWrapper`).
        """
        if self._compiled_for is not None:
            return
        names = self._output_names()
        loss_specs = self._per_output(self._loss_spec, "losses")
        self._losses = []
        for name, spec in zip(names, loss_specs):
            if spec is None:
                self._losses.append(None)
            else:
                fn = losses_module.get(spec)
                if not callable(fn):
                    raise TypeError(f"compile: the loss for output '{name}' must be a name, a "
                                    f"function or a Loss, got {type(spec).__name__}.")
                self._losses.append((_loss_name(spec), fn,
                                     isinstance(fn, losses_module.Loss)))
        weights = self._per_output(self._loss_weight_spec, "loss_weights", default=1.0)
        self._loss_weights = [1.0 if w is None else float(w) for w in weights]
        self._metrics, self._metric_objects = [], []
        prefix_all = len(names) > 1
        for name, specs in zip(names, self._metrics_per_output()):
            resolved = []
            for spec in specs:
                metric_name, fn = metrics_module.get(spec)
                stateful = isinstance(fn, metrics_module.Metric)
                if prefix_all:
                    metric_name = f"{name}_{metric_name}"
                    if stateful:  # one state per output: a copy of the object given
                        import copy

                        fn = copy.deepcopy(fn)
                        fn.name = metric_name
                resolved.append((metric_name, fn, stateful))
                self._metric_objects.append(fn if stateful else metrics_module.MeanMetricWrapper(
                    fn, name=metric_name))
            self._metrics.append(resolved)
        self._stateful_names = {n for out in self._metrics for n, _, s in out if s}
        self._compiled_for = names

    def _has_compiled_loss(self):
        return any(loss is not None for loss in self._losses)

    # -- metrics -------------------------------------------------------------------------------
    @property
    def metrics(self) -> list:
        """The model's Metric objects, as Keras 3: the ``"loss"`` tracker first, then the
        compiled metrics, then Metric attributes of the model and its layers (a custom
        ``train_step``'s trackers). ``fit`` resets them at the start of every epoch.

        Example:
            >>> [m.name for m in model.metrics]
            ['loss', 'accuracy']
        """
        found = []
        if self.compiled:
            found.append(self._loss_tracker)
            if self._compiled_for is None and self.built:
                try:
                    self._prepare_compiled()
                except (ValueError, TypeError):
                    pass  # reported by fit, with context
            if self._compiled_for is not None:
                found.extend(self._metric_objects)
        seen = {id(m) for m in found}
        layers = [self] + self._sublayer_list()
        metric_type = metrics_module.Metric
        for layer in layers:
            for key, value in vars(layer).items():
                # (cheapest test first: this runs at every train_on_batch, through
                # reset_metrics, over every attribute of every layer)
                if key[:1] == "_":
                    continue  # the compile settings and other internals are not trackers
                if isinstance(value, metric_type):
                    items = (value,)
                elif isinstance(value, (list, tuple)):
                    items = value
                else:
                    continue
                for m in items:
                    if isinstance(m, metrics_module.Metric) and id(m) not in seen:
                        seen.add(id(m))
                        found.append(m)
        return found

    @property
    def metrics_names(self) -> list:
        """The names of :attr:`metrics` (``["loss", "accuracy"]``)."""
        return [m.name for m in self.metrics]

    def reset_metrics(self) -> None:
        """``reset_state()`` of every metric in :attr:`metrics`."""
        for m in self.metrics:
            m.reset_state()

    def get_metrics_result(self) -> dict:
        """``{name: result}`` of every metric in :attr:`metrics` (Keras 3)."""
        return {m.name: _log_value("get_metrics_result", m.name, m) for m in self.metrics}

    def compute_metrics(self, x, y, y_pred, sample_weight=None) -> dict:
        """Update the compiled metrics with one batch; returns :meth:`get_metrics_result`.

        Args:
            x: the inputs (unused, as in Keras; kept for overriding).
            y: the targets (an array/Tensor, or a list/dict per output).
            y_pred: the outputs, likewise.
            sample_weight: not applied to the metrics (Keras's ``metrics=`` ignore it).

        Example:
            >>> logs = self.compute_metrics(x, y, y_pred)      # in a custom train_step
        """
        if self.compiled and y is not None:
            self._prepare_compiled()
            ys, outs = self._per_output_values(y, "y"), self._per_output_values(y_pred, "y_pred")
            for t, out, metrics in zip(ys, outs, self._metrics):
                for k, (name, fn, stateful) in enumerate(metrics):
                    obj = fn if stateful else self._wrapper(name)
                    obj.update_state(t, out)
        return self.get_metrics_result()

    def _wrapper(self, name):
        return next(m for m in self._metric_objects if m.name == name)

    def _per_output_values(self, values, what):
        """``values`` (one, a list, or a dict by output name) as a list in output order."""
        names = self._output_names()
        if isinstance(values, dict):
            missing = [n for n in names if n not in values]
            if missing:
                if len(names) == 1 and len(values) == 1:
                    return list(values.values())
                raise ValueError(f"Model '{self.name}': {what} has no entry for output(s) "
                                 f"{missing}; the outputs are {names}.")
            return [values[n] for n in names]
        if len(names) > 1:
            if not isinstance(values, (list, tuple)) or len(values) != len(names):
                raise ValueError(f"Model '{self.name}': {what} must be a list of {len(names)} "
                                 f"(one per output {names}), got {type(values).__name__}.")
            return list(values)
        if isinstance(values, (list, tuple)) and len(values) == 1:
            return [values[0]]
        return [values]

    def _sync_trackers(self, logs, count):
        """Set the loss tracker and the metric wrappers to the built-in path's averages.

        The built-in step averages plain floats; this gives ``model.metrics`` the same epoch
        values (as totals over ``count`` samples) once per epoch instead of once per step.
        """
        if self._loss_tracker is not None and "loss" in logs:
            self._loss_tracker.total = logs["loss"] * count
            self._loss_tracker.count = float(count)
        for m in self._metric_objects:
            if isinstance(m, metrics_module.MeanMetricWrapper) and type(m) is \
                    metrics_module.MeanMetricWrapper and m.name in logs:
                m.total, m.count = logs[m.name] * count, float(count)

    # -- the loss -------------------------------------------------------------------------------
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The total loss of a batch: the compiled loss(es) plus the layers' losses (Keras 3).

        Args:
            x: the inputs (unused here; kept for overriding, as in Keras).
            y: the targets (array/Tensor, or list/dict per output); may be None without a
                compiled loss.
            y_pred: the model's outputs for ``x``.
            sample_weight: None or per-sample weights ``(batch,)``.
            training: whether this is a training step.

        Returns:
            A 0-d Tensor: each output's compiled loss (weighted by ``loss_weights``) plus
            ``self.losses`` (``add_loss`` terms and regularization penalties); 0 when there is
            none.

        Example:
            >>> loss = self.compute_loss(y=y, y_pred=self(x, training=True))
        """
        total = None
        if self.compiled:
            self._prepare_compiled()
            if self._has_compiled_loss():
                if y is None:
                    raise ValueError(f"Model '{self.name}': compute_loss needs targets y for the "
                                     "loss given to compile().")
                ys = self._per_output_values(y, "y")
                outs = self._per_output_values(y_pred, "y_pred")
                sw = None if sample_weight is None else backend.to_numpy(
                    sample_weight.data if isinstance(sample_weight, Tensor) else sample_weight)
                total, _ = self._compute_loss(ys, outs, sw, penalties=False)
        for extra in self.losses:
            total = extra if total is None else total + extra
        if total is None:
            return Tensor(0.0)
        return total

    def _compute_loss(self, ys, outs, sample_weight, penalties=True):
        """The total loss Tensor and each output's loss Tensor.

        Per-sample losses are averaged over the batch (weighted by ``sample_weight``); a
        :class:`~fundl.losses.Loss` object reduces them itself, with its own ``reduction``.
        An output carrying a sequence mask (``Embedding(mask_zero=True)``, ``Masking``) whose
        losses have the mask's shape (batch, timesteps) counts only its real steps, as Keras 3:
        ``sum(loss * mask * sample_weight) / sum(mask)`` (see :func:`_mask_weights`).
        ``penalties`` adds the layers' losses (regularization, ``add_loss``; False when none
        exist). The total is None when there is no loss at all.
        """
        total = None
        parts = []
        if ys is None:  # no targets: only add_loss terms and penalties (checked by _prepare)
            ys = [None] * len(outs)
        for y, out, loss, lw in zip(ys, outs, self._losses, self._loss_weights):
            if loss is None:
                parts.append(None)
                continue
            value = _loss_value(loss[1], loss[2], y, out, sample_weight)
            parts.append(value)
            term = value if lw == 1.0 else value * lw
            total = term if total is None else total + term
        if penalties:
            for extra in self.losses:
                total = extra if total is None else total + extra
        return total, parts

    # -- what differs between model kinds (overridden by Model and Sequential) ----------------
    def _n_inputs(self):
        """How many inputs the model takes (None: unknown, as for a subclassed model)."""
        return None

    def _expected_input_shapes(self):
        """``(names, batch shapes)`` of the inputs when the model knows them, else None."""
        return None

    def _needs_sample_call(self):
        """Whether some weights exist only after data flows through (a subclassed model)."""
        return True

    # -- data handling -------------------------------------------------------------------------
    def _standardize_x(self, x, what="fit"):
        if x is None:
            raise ValueError(f"{what}: inputs x are required.")
        if is_dataset(x):
            raise TypeError(f"{what}: x is a {type(x).__name__} (a generator or dataset) where "
                            "arrays are expected here; give arrays, or pass the generator to "
                            "fit/evaluate/predict, which take generators and PyDatasets.")
        if isinstance(x, dict):
            names = getattr(self, "input_names", None) or []
            if not names:
                raise ValueError(f"{what}: x is a dict ({sorted(map(str, x))}) but model "
                                 f"'{self.name}' has no named inputs ({type(self).__name__} takes "
                                 "one array); pass the array itself, or build a functional Model "
                                 "with Input(name=...) for inputs by name.")
            missing = [n for n in names if n not in x]
            if missing:
                raise ValueError(f"{what}: inputs {missing} are missing from the dict; the model's "
                                 f"inputs are {names}.")
            unknown = sorted(set(x) - set(names))
            if unknown:
                raise ValueError(f"{what}: the dict has entries {unknown} that are not inputs of "
                                 f"the model; its inputs are {names}.")
            return [_to_array(x[n]) for n in names]
        if isinstance(x, (list, tuple)):
            n_in = self._n_inputs()
            arrays = all(hasattr(a, "shape") and hasattr(a, "dtype") or isinstance(a, Tensor)
                         for a in x)
            # A list is several inputs when the model has several, or when it holds arrays for
            # a model of unknown arity; otherwise it is one input as nested Python lists.
            if (n_in is not None and n_in > 1) or (n_in is None and arrays and len(x) > 1):
                xs = [_to_array(a) for a in x]
                if n_in is not None and len(xs) != n_in:
                    raise ValueError(f"{what}: the model has {n_in} inputs "
                                     f"{getattr(self, 'input_names', '')} but {len(xs)} input "
                                     "arrays were given.")
                return xs
            if arrays and len(x) == 1:
                return [_to_array(x[0])]
            return [_to_array(x)]
        if not (hasattr(x, "shape") or isinstance(x, (Tensor, int, float, numpy.number))):
            raise TypeError(f"{what}: x must be an array (or a list/dict of arrays), a generator "
                            f"or a PyDataset, got {type(x).__name__}.")
        xs = [_to_array(x)]
        n_in = self._n_inputs()
        if n_in is not None and n_in > 1:
            raise ValueError(f"{what}: the model has {n_in} inputs {self.input_names}; pass a list "
                             "or a dict of arrays, one per input.")
        return xs

    def _check_inputs(self, xs, what):
        """Each input's per-sample shape against the model's (when the model knows it)."""
        expected = self._expected_input_shapes()
        if expected is None:
            return
        for name, shape, a in zip(*expected, xs):
            if a.ndim != len(shape) or any(e is not None and e != g
                                           for e, g in zip(shape[1:], a.shape[1:])):
                raise ValueError(f"{what}: model '{self.name}' expects {name!r} of shape "
                                 f"{shape} (batch axis first), got an array of shape "
                                 f"{a.shape}.")

    def _standardize_y(self, y, what="fit"):
        names = self._output_names()
        if y is None:
            return None
        if is_dataset(y):
            raise TypeError(f"{what}: y is a {type(y).__name__} (a generator or dataset); give "
                            "arrays, or pass one generator as x that yields (x, y) batches.")
        if isinstance(y, dict):
            missing = [n for n in names if n not in y]
            if missing:
                raise ValueError(f"{what}: targets for outputs {missing} are missing; the outputs "
                                 f"are {names}.")
            return [_to_array(y[n]) for n in names]
        if len(names) == 1:
            single = isinstance(y, (list, tuple)) and len(y) == 1 and hasattr(y[0], "shape")
            ys = [_to_array(y[0] if single else y)]
        else:
            if not isinstance(y, (list, tuple)):
                raise ValueError(f"{what}: the model has {len(names)} outputs {names}; pass y as a "
                                 "list or a dict of arrays, one per output.")
            ys = [_to_array(a) for a in y]
        if len(ys) != len(names):
            raise ValueError(f"{what}: the model has {len(names)} output(s) {names} but {len(ys)} "
                             "target array(s) were given.")
        return ys

    def _ensure_built(self, xs):
        if self.built:
            return
        if len(xs) == 1:
            self._maybe_build((None,) + tuple(xs[0].shape[1:]))
        else:
            self._maybe_build([(None,) + tuple(a.shape[1:]) for a in xs])
        # A subclassed model (or a stack with a layer that cannot predict its output shape)
        # creates some weights only when data flows through: run one sample, without a graph,
        # so every weight exists before training registers them with the optimizer.
        if self._needs_sample_call():
            with no_grad():
                sample = [a[:1] for a in xs]
                self(sample if len(sample) > 1 else sample[0], training=False)

    def _check_targets(self, xs, ys, what="fit"):
        """Check target shapes against the outputs and losses before any training."""
        try:
            in_shape = ((None,) + tuple(xs[0].shape[1:]) if len(xs) == 1
                        else [(None,) + tuple(a.shape[1:]) for a in xs])
            out_shapes = self.compute_output_shape(in_shape)
        except NotImplementedError:
            return ys
        if not isinstance(out_shapes, list):
            out_shapes = [out_shapes]
        checked = []
        for name, y, shape, loss in zip(self._output_names(), ys, out_shapes, self._losses):
            if loss is None or not _is_builtin_loss(loss[1]):
                checked.append(y)  # a loss of the user's own may take targets of any shape
                continue
            loss_name = loss[0]
            want = tuple(shape[1:])
            got = tuple(y.shape[1:])
            labels_shape = _fits(got, want[:-1]) or _fits(got, want[:-1] + (1,))
            if loss_name in _SPARSE:
                if not labels_shape:
                    raise ValueError(
                        f"{what}: loss '{loss_name}' expects integer class labels of shape "
                        f"{(None,) + want[:-1]} for output '{name}' of shape {(None,) + want}, "
                        f"got targets of shape {y.shape}. For one-hot targets use "
                        "loss='categorical_crossentropy'.")
            elif not _fits(got, want):
                if loss_name in _SAME_SHAPE and labels_shape and want and (want[-1] or 2) > 1:
                    raise ValueError(
                        f"{what}: loss '{loss_name}' expects one-hot targets of shape "
                        f"(n, {', '.join(map(str, want))}) for output '{name}', got targets of "
                        f"shape {y.shape}. "
                        "Use loss='sparse_categorical_crossentropy' for integer labels, or "
                        "one-hot encode them.")
                if got == want[:-1] and want[-1:] == (1,):
                    y = y.reshape(y.shape + (1,))  # (n,) targets for (n, 1) outputs, as Keras
                else:
                    raise ValueError(
                        f"{what}: targets of shape {y.shape} do not match output '{name}' of "
                        f"shape {(None,) + want} for loss '{loss_name}'.")
            checked.append(y)
        return checked

    def _check_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"{what}: the model must be compiled first: "
                               "model.compile(optimizer=..., loss=...).")

    def _prepare(self, x, y, what, need_y=True):
        """Inputs and targets as lists of arrays, checked against the model (built, compiled)."""
        self._check_compiled(what)
        xs = self._standardize_x(x, what)
        ys = self._standardize_y(y, what)
        if ys is None and need_y:
            raise ValueError(f"{what}: targets y are required (compile() was given a loss). "
                             "Pass y, or yield (x, y) batches from a generator.")
        for a in xs + (ys or []):
            if a.ndim == 0:
                raise ValueError(f"{what}: inputs and targets need a batch axis, got a 0-d array.")
        n = _num_samples(xs, "input")
        if ys is not None:
            m = _num_samples(ys, "target")
            if n != m:
                raise ValueError(f"{what}: x has {n} samples but y has {m}; they must match. "
                                 "Pass one target per input sample.")
        if n == 0:
            raise ValueError(f"{what}: x has no samples.")
        self._check_inputs(xs, what)
        self._ensure_built(xs)
        self._prepare_compiled()
        if ys is not None:
            ys = self._check_targets(xs, ys, what)
        return xs, ys, n

    def _sample_weights(self, ys, sample_weight, class_weight, n=None, what="fit"):
        """Per-sample loss weights (n,) from ``sample_weight`` times ``class_weight``, or None."""
        if sample_weight is None and class_weight is None:
            return None
        n = len(ys[0]) if n is None else n
        sw = numpy.ones(n, dtype=numpy.float32)
        if sample_weight is not None:
            given = numpy.asarray(_to_array(sample_weight), dtype=numpy.float32)
            if given.shape not in ((n,), (n, 1)):
                raise ValueError(f"{what}: sample_weight must have shape ({n},), one weight per "
                                 f"sample, got {given.shape}.")
            sw = sw * given.reshape(n)
        if class_weight is not None:
            if not isinstance(class_weight, dict):
                raise TypeError(f"{what}: class_weight must be a dict {{class index: weight}}, "
                                f"got {type(class_weight).__name__}.")
            if ys is None or len(ys) != 1:
                raise ValueError(f"{what}: class_weight needs exactly one target array (got "
                                 f"{0 if ys is None else len(ys)}); for several outputs use "
                                 "sample_weight.")
            y = ys[0]
            if y.ndim > 1 and y.shape[-1] > 1:
                labels = y.reshape(n, -1, y.shape[-1]).argmax(axis=-1)[:, 0]
            else:
                labels = numpy.rint(y.reshape(n, -1)[:, 0]).astype(numpy.int64)
            # A lookup table turns the labels into weights in one gather, not a Python loop.
            top = int(max(labels.max(initial=0), max(class_weight, default=0))) + 1
            table = numpy.ones(top, dtype=numpy.float32)
            for c, w in class_weight.items():
                table[int(c)] = w
            sw = sw * table[labels]
        return sw

    # -- the built-in steps (lists of arrays in, floats out) ---------------------------------
    def _logs(self, total, parts, ys, outs):
        logs = {"loss": float(total.item())}
        if len(parts) > 1:
            for name, part in zip(self._output_names(), parts):
                if part is not None:
                    logs[f"{name}_loss"] = float(part.item())
        for y, out, metrics in zip(ys or (), outs, self._metrics):  # no targets: no metrics
            if metrics:
                pred = backend.to_numpy(out.data)
                mask = get_mask(out) if _MASKS else None
                for name, fn, stateful in metrics:
                    if stateful:  # its own running state over the epoch
                        fn.update_state(y, pred, sample_weight=None if mask is None else
                                        backend.to_numpy(mask).astype(numpy.float32))
                        logs[name] = _log_value("fit", name, fn)
                        continue
                    values = fn(y, pred)  # sum / size: numpy.mean's Python wrapper costs more
                    if mask is not None and values.shape == tuple(mask.shape):
                        values = values[backend.to_numpy(mask)]  # the real steps only
                    logs[name] = float(values.sum()) / max(values.size, 1)
        if layers_base._METRIC_LAYERS:  # some layer used add_metric: its latest values
            logs.update(self._added_metric_values())
        return logs

    def _no_loss_error(self, what):
        return RuntimeError(f"{what}: model '{self.name}' has no loss: compile() was given no "
                            "loss= and no layer added one with add_loss(). Pass a loss to "
                            "compile(), or override train_step / compute_loss.")

    def _train_step(self, xs, ys, sample_weight, step_weights, penalties=True):
        trainable, flips = step_weights
        for w in trainable:
            w.grad = None
        for w in flips:  # weights whose trainable state changed since compile()
            w.requires_grad = not w.requires_grad
        try:
            # compile(jit_compile=True): the same forward and loss, replayed as a traced plan
            total, parts, outs = (self._graph_step or self._forward_loss)(
                xs, ys, sample_weight, penalties)
            if not total.requires_grad:
                raise RuntimeError(f"fit: the loss of model '{self.name}' does not depend on any "
                                   "trainable weight.")
            total.backward()
        finally:
            for w in flips:
                w.requires_grad = not w.requires_grad
        weights = [w for w in trainable if w.grad is not None]
        self.optimizer.apply([w.grad for w in weights], weights)
        return self._logs(total, parts, ys, outs)

    _graph_step = None

    def _forward_loss(self, xs, ys, sample_weight, penalties, training=True):
        """A step's outputs and losses: ``(total, parts, outs)`` (the training step's, or with
        ``training=False`` the evaluation step's)."""
        outs = self(xs if len(xs) > 1 else xs[0], training=training)
        outs = list(outs.values()) if isinstance(outs, dict) else _as_list(outs)
        total, parts = self._compute_loss(ys, outs, sample_weight, penalties)
        if total is None and not penalties and self._has_losses():
            # add_loss() in call shows itself only once data flows: the first step
            total, parts = self._compute_loss(ys, outs, sample_weight, True)
        if total is None:
            raise self._no_loss_error("fit" if training else "evaluate")
        return total, parts, outs

    def _test_step(self, xs, ys, sample_weight, penalties=True):
        with no_grad():
            total, parts, outs = self._forward_loss(xs, ys, sample_weight, penalties,
                                                    training=False)
            return self._logs(total, parts, ys, outs)

    def _trainable_for_step(self):
        """``(weights to train, weights whose requires_grad must flip during a step)``.

        The weights to train are those trainable at ``compile()`` (or at the first training
        step, for a model built lazily). They are registered with the optimizer in this order
        up front (not only those that got a gradient in the first step), so the optimizer
        state's weight indices follow it: that is how ``save``/``load_model`` match the state
        to the weights.
        """
        if self._compiled_trainable is None:
            self._compiled_trainable = self.trainable_weights
        trainable = self._compiled_trainable
        if not trainable:
            raise RuntimeError(f"fit: model '{self.name}' had no trainable weights when it was "
                               "compiled (all layers frozen?); nothing to train.")
        # The model's weights are fixed once it trains; walking the layers for them at every
        # step cost ~50 us (LeNet-5). Their requires_grad flags are read afresh every step.
        if self._compiled_weights is None:
            self._compiled_weights = (self.weights, {id(w) for w in trainable})
        weights, ids = self._compiled_weights
        flips = [w for w in weights if w.requires_grad != (id(w) in ids)]
        if flips and not self._warned_trainable:
            self._warned_trainable = True
            warnings.warn(f"Model '{self.name}': the trainable weights differ from those at "
                          "compile(); as in Keras, training uses the ones fixed at compile(). "
                          "Call compile() again for layer.trainable changes to take effect.",
                          stacklevel=3)
        self.optimizer.build(trainable)
        return trainable, flips

    # -- the overridable steps (Keras 3) -----------------------------------------------------
    def train_step(self, data):
        """One training step on one batch; override it to train your own way (Keras 3).

        ``fit`` calls it with each batch as the data gives it: ``x``, ``(x, y)`` or
        ``(x, y, sample_weight)``, arrays as Tensors. It returns a dict of logs; Metric values
        are logged as their ``result()``, Tensors as floats. ``fit`` resets ``model.metrics``
        at the start of every epoch and logs an epoch's last values (the trackers' means).

        The default runs the model, :meth:`compute_loss`, the gradients and the optimizer,
        then :meth:`compute_metrics`.

        Args:
            data: one batch.

        Returns:
            A dict ``{name: value}``.

        Example:
            >>> class MyModel(fl.Model):
            ...     def train_step(self, data):
            ...         x, y = data
            ...         with fl.GradientTape() as tape:
            ...             y_pred = self(x, training=True)
            ...             loss = self.compute_loss(y=y, y_pred=y_pred)
            ...         grads = tape.gradient(loss, self.trainable_weights)
            ...         self.optimizer.apply(grads, self.trainable_weights)
            ...         self.loss_tracker.update_state(loss)
            ...         return {"loss": self.loss_tracker.result()}
        """
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        if not self.built:
            self._ensure_built(_flat_arrays(x))
        trainable, flips = self._trainable_for_step()
        for w in flips:
            w.requires_grad = not w.requires_grad
        try:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight, training=True)
            if not loss.requires_grad:
                raise RuntimeError(f"fit: the loss of model '{self.name}' does not depend on any "
                                   "trainable weight (no loss given to compile() or added?).")
            grads = gradients_of([loss], [backend.get_array_module(loss.data).ones_like(
                loss.data)], trainable)
        finally:
            for w in flips:
                w.requires_grad = not w.requires_grad
        pairs = [(g, w) for g, w in zip(grads, trainable) if g is not None]
        self.optimizer.apply([g for g, _ in pairs], [w for _, w in pairs])
        self._loss_tracker.update_state(float(loss.item()), sample_weight=_batch_len(x))
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def test_step(self, data):
        """One evaluation step on one batch (no update); override it as :meth:`train_step`.

        Args:
            data: one batch, ``x``, ``(x, y)`` or ``(x, y, sample_weight)``.

        Returns:
            A dict ``{name: value}``.
        """
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        with no_grad():
            y_pred = self(x, training=False)
            loss = self.compute_loss(x, y, y_pred, sample_weight, training=False)
        self._loss_tracker.update_state(float(loss.item()), sample_weight=_batch_len(x))
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def predict_step(self, data):
        """The model's outputs for one batch (``predict`` runs it without a graph).

        Args:
            data: one batch; its ``x`` (the first element of a tuple) is used.

        Returns:
            The outputs (Tensors, or lists/dicts of them); ``predict`` joins them into arrays.
        """
        x, _, _ = unpack_x_y_sample_weight(data)
        return self(x, training=False)

    def _overrides(self, step):
        """Whether ``fit``/``evaluate``/``predict`` must call the (overridden) Keras-style step."""
        cls = type(self)
        if step == "predict_step":
            return cls.predict_step is not Trainer.predict_step
        return (getattr(cls, step) is not getattr(Trainer, step)
                or cls.compute_loss is not Trainer.compute_loss
                or cls.compute_metrics is not Trainer.compute_metrics)

    def _own_step(self, step):
        """Whether the user replaced ``step`` itself (then fit leaves data and building to it)."""
        return getattr(type(self), step) is not getattr(Trainer, step)

    def _run_step(self, step, data, device):
        """Call ``train_step``/``test_step`` on one batch and turn its logs into floats."""
        logs = getattr(self, step)(_to_step_data(data, device))
        who = f"{type(self).__name__}.{step}"
        if not isinstance(logs, collections.abc.Mapping):
            hint = (" (did it forget to `return`?)" if logs is None
                    else f": {str(logs)[:80]}")
            raise TypeError(f"{who} must return a dict of logs such as {{'loss': loss}}, got "
                            f"{type(logs).__name__}{hint}.")
        return {str(k): _log_value(who, k, v) for k, v in logs.items()}

    def zero_grad(self, set_to_none=True) -> None:
        """Clear ``.grad`` of every weight (None, or zeros with ``set_to_none=False``).

        Example:
            >>> model.zero_grad(); loss.backward()   # a PyTorch-style custom step
        """
        for w in self.weights:
            if set_to_none or w.grad is None:
                w.grad = None
            else:
                w.grad = backend.get_array_module(w.data).zeros_like(w.data)

    # -- single batches ----------------------------------------------------------------------
    @_runs_the_model
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict=False):
        """One gradient step on one batch; returns the loss (and metrics) of that batch.

        Args:
            x, y: one batch of inputs and targets (arrays, or lists/dicts of them).
            sample_weight, class_weight: as in :meth:`fit`.
            return_dict: return ``{"loss": ..., "accuracy": ...}`` instead of a list.

        Returns:
            The loss as a float without metrics, else ``[loss, metric, ...]``, computed
            before the update (as Keras). An overridden :meth:`train_step` gives its logs.

        Example:
            >>> d_loss = discriminator.train_on_batch(images, labels)   # a GAN step
        """
        _bool_arg("train_on_batch", "return_dict", return_dict)
        class_weight = _check_class_weight(class_weight)
        if self._overrides("train_step"):
            self._check_compiled("train_on_batch")
            data = x if y is None and sample_weight is None else (
                (x, y) if sample_weight is None else (x, y, sample_weight))
            return self._format_result(self._run_step("train_step", data, self._device()),
                                       return_dict)
        xs, ys, _ = self._prepare(x, y, "train_on_batch", need_y=self._needs_y())
        sw = self._sample_weights(ys, sample_weight, class_weight, len(xs[0]), "train_on_batch")
        self.reset_metrics()  # a stateful metric reports this batch, as the averaged ones do
        logs = self._train_step(xs, ys, sw, self._trainable_for_step(), self._has_losses())
        return self._format_result(logs, return_dict)

    @_runs_the_model
    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """The loss (and metrics) of one batch in inference mode, without updating anything.

        Returns:
            As :meth:`train_on_batch`.

        Example:
            >>> loss, acc = model.test_on_batch(x_batch, y_batch)
        """
        _bool_arg("test_on_batch", "return_dict", return_dict)
        if self._overrides("test_step"):
            self._check_compiled("test_on_batch")
            data = x if y is None and sample_weight is None else (
                (x, y) if sample_weight is None else (x, y, sample_weight))
            return self._format_result(self._run_step("test_step", data, self._device()),
                                       return_dict)
        xs, ys, _ = self._prepare(x, y, "test_on_batch", need_y=self._needs_y())
        sw = self._sample_weights(ys, sample_weight, None, len(xs[0]), "test_on_batch")
        self.reset_metrics()
        return self._format_result(self._test_step(xs, ys, sw, self._has_losses()), return_dict)

    def predict_on_batch(self, x):
        """The model's outputs for one batch, as NumPy arrays (``predict`` without batching)."""
        return self.predict(x, batch_size=_batch_len(x) or None, verbose=0)

    @staticmethod
    def _format_result(logs, return_dict):
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def _needs_y(self):
        self._prepare_compiled()
        return self._has_compiled_loss()

    # -- fit --------------------------------------------------------------------------------------
    @_runs_the_model
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1, strategy=None, **kwargs):
        """Train for ``epochs`` passes over the data.

        Args:
            x: inputs: a NumPy array, or a list/dict of arrays for several inputs; or a
                generator / iterable / ``PyDataset`` yielding batches ``(x, y)``,
                ``(x, y, sample_weight)`` or ``x`` (then ``y`` is not given).
            y: targets, likewise for several outputs (None with a generator, or when the
                model's ``train_step`` or ``add_loss`` needs none).
            batch_size: samples per gradient step (32 by default; not with a generator).
            epochs: the epoch to stop at (counting from 0, after ``initial_epoch``). As in
                Keras, ``epochs <= initial_epoch`` trains nothing: a warning says so and the
                History is empty.
            verbose: 0 silent, 1 progress bar, 2 one line per epoch; "auto" is 1.
            callbacks: a list of :mod:`fundl.callbacks` objects.
            validation_split: the fraction in [0, 1) of the data (taken from the end, before
                shuffling) held out for validation (arrays only).
            validation_data: ``(x_val, y_val)``, ``(x_val, y_val, sample_weight)``, or a
                generator / PyDataset of such batches.
            shuffle: reshuffle the training data every epoch (True/False, or ``"batch"`` to
                shuffle the order of whole batches).
            class_weight: a dict ``{class index: weight}`` scaling the loss of each class.
            sample_weight: per-sample loss weights, shape ``(n,)``.
            initial_epoch: the epoch to start from (to resume training).
            steps_per_epoch: batches per epoch (a generator's epoch length; with arrays, more
                than one pass wraps around).
            validation_steps: validation batches per epoch (for a generator).
            validation_batch_size: the batch size of validation (``batch_size`` by default).
            validation_freq: validate after every ``validation_freq``-th epoch.
            strategy: a :mod:`fundl.distributed` strategy; when given, training runs through
                ``strategy.fit(model, x, y, ...)`` (after the arguments are checked here).

        Returns:
            A ``History`` whose ``.history`` maps "loss", metric names and "val_..." to lists.

        Raises:
            TypeError / ValueError: an argument of the wrong type or value (the message names
                it, what was given and what is allowed).

        A loss that becomes NaN or infinite triggers one warning per ``fit``, naming the
        epoch and step and whether the inputs of that batch or the weights are non-finite
        (use the ``TerminateOnNaN`` callback to stop).

        Example:
            >>> history = model.fit(x_train, y_train, epochs=5, batch_size=32,
            ...                     validation_data=(x_val, y_val))
        """
        if kwargs:
            _unknown_kwargs("fit", kwargs, _FIT_ARGS)
        dataset = is_dataset(x)
        batch_size, verbose, shuffle, class_weight = self._check_fit_args(
            dataset, y, batch_size, epochs, verbose, callbacks, validation_split,
            validation_data, shuffle,
            class_weight, sample_weight, initial_epoch, steps_per_epoch, validation_steps,
            validation_batch_size, validation_freq)
        if strategy is not None:
            if not callable(getattr(strategy, "fit", None)):
                raise TypeError(f"fit: strategy must be a fundl.distributed strategy (an object "
                                f"with a fit method), got {type(strategy).__name__}.")
            return strategy.fit(self, x, y, batch_size=batch_size, epochs=epochs,
                                verbose=verbose, callbacks=callbacks,
                                validation_split=validation_split,
                                validation_data=validation_data, shuffle=shuffle,
                                initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch,
                                class_weight=class_weight, sample_weight=sample_weight,
                                validation_batch_size=validation_batch_size,
                                validation_freq=validation_freq)
        self._check_compiled("fit")
        custom = self._overrides("train_step")
        if dataset:
            train = DatasetBatches(x, steps_per_epoch, "fit: x")
            val = None
        else:
            train, val = self._array_batches(x, y, batch_size or 32, shuffle, class_weight,
                                             sample_weight, steps_per_epoch, validation_split,
                                             self._own_step("train_step"))
        if (validation_data is not None or validation_split) and self._own_step("train_step") \
                and not self._overrides("test_step") and not self._needs_y():
            raise ValueError(f"fit: validation needs a test step: model '{self.name}' trains "
                             "with its own train_step and compile() has no loss, so the built-in "
                             "evaluation has nothing to compute. Override test_step(data) as "
                             "well (returning a dict of logs), or drop validation_data.")
        if validation_data is not None:
            val = self._validation_batches(validation_data, validation_steps,
                                           validation_batch_size or batch_size or 32,
                                           self._own_step("train_step"))
        cbs = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                           verbose=verbose, epochs=epochs, steps=train.steps)
        if epochs <= initial_epoch:
            warnings.warn(f"fit: epochs={epochs} is not above initial_epoch={initial_epoch}: "
                          "nothing is trained and the History is empty (epochs is the epoch to "
                          "stop at, counted from 0).", stacklevel=2)
        self._fit_epochs(train, val, cbs, epochs, initial_epoch, validation_freq, custom,
                         class_weight)
        self.history = cbs.history
        return cbs.history

    def _check_fit_args(self, dataset, y, batch_size, epochs, verbose, callbacks,
                        validation_split,
                        validation_data, shuffle, class_weight, sample_weight, initial_epoch,
                        steps_per_epoch, validation_steps, validation_batch_size,
                        validation_freq):
        """Every argument of ``fit`` checked at once; returns the normalised ones."""
        batch_size = _int_arg("fit", "batch_size", batch_size, 1)
        _int_arg("fit", "epochs", epochs, 0, allow_none=False)
        _check_callbacks("fit", callbacks)
        verbose = _verbose_arg("fit", verbose)
        if isinstance(validation_split, bool) or not isinstance(
                validation_split, (int, float, numpy.number)):
            raise TypeError(f"fit: validation_split must be a number in [0, 1), got "
                            f"{validation_split!r} ({type(validation_split).__name__}).")
        if not 0 <= validation_split < 1:
            raise ValueError(f"fit: validation_split must be in [0, 1) (the fraction held out), "
                             f"got {validation_split}.")
        shuffle = _bool_arg("fit", "shuffle", shuffle, extra=("batch",))
        class_weight = _check_class_weight(class_weight)
        _int_arg("fit", "initial_epoch", initial_epoch, 0, allow_none=False)
        _int_arg("fit", "steps_per_epoch", steps_per_epoch, 1)
        _int_arg("fit", "validation_steps", validation_steps, 1)
        _int_arg("fit", "validation_batch_size", validation_batch_size, 1)
        _int_arg("fit", "validation_freq", validation_freq, 1, allow_none=False)
        if validation_data is not None and not is_dataset(validation_data) and not (
                isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3)):
            raise TypeError(f"fit: validation_data must be (x_val, y_val), (x_val, y_val, "
                            f"sample_weight) or a generator/PyDataset of batches, got "
                            f"{type(validation_data).__name__}"
                            f"{' of length %d' % len(validation_data) if isinstance(validation_data, (tuple, list)) else ''}.")
        if dataset:
            given = [name for name, value in (("y", y), ("sample_weight", sample_weight),
                                              ("batch_size", batch_size)) if value is not None]
            if validation_split:
                given.append("validation_split")
            if given:
                raise ValueError(f"fit: x is a generator or dataset, which gives whole batches: "
                                 f"{', '.join(given)} cannot be given with it. Yield (x, y) or "
                                 "(x, y, sample_weight) batches of the size you want instead"
                                 + (", and pass validation_data." if validation_split else "."))
        return batch_size, verbose, shuffle, class_weight

    def _array_batches(self, x, y, batch_size, shuffle, class_weight, sample_weight, steps,
                       validation_split, own_step):
        """The training batches of in-memory arrays (and the held-out split, if any).

        For a ``train_step`` of the user's own, the arrays are only standardised: building the
        model and matching targets to outputs is up to that step (a GAN has no ``call``).
        """
        keys = (None, None)
        if own_step:
            xs, ys, keys = self._own_step_arrays(x, y, "fit")
            n = len(xs[0])
        else:
            xs, ys, n = self._prepare(x, y, "fit", need_y=self._needs_y())
        sw = self._sample_weights(ys, sample_weight, class_weight, n)
        val = None
        if validation_split:
            split = int(n * (1 - validation_split))
            if split == 0 or split == n:
                raise ValueError(f"fit: validation_split={validation_split} leaves no training or "
                                 f"no validation samples out of {n}.")
            cut = (lambda arrays, a, b: None if arrays is None else [v[a:b] for v in arrays])
            val = ArrayBatches(cut(xs, split, n), cut(ys, split, n),
                               None if sw is None else sw[split:], batch_size, keys=keys)
            xs, ys = cut(xs, 0, split), cut(ys, 0, split)
            sw = None if sw is None else sw[:split]
        return ArrayBatches(xs, ys, sw, batch_size, shuffle, steps, get_rng(), keys), val

    def _own_step_arrays(self, x, y, what):
        """Arrays for a ``train_step``/``test_step`` of the user's own: standardised only.

        Dicts stay dicts (their keys are returned, so the step gets a dict back, as in Keras),
        whatever the model's input names: the step decides what they mean.
        """
        self._check_compiled(what)
        x_keys = list(x) if isinstance(x, dict) else None
        y_keys = list(y) if isinstance(y, dict) else None
        xs = [_to_array(x[k]) for k in x_keys] if x_keys else self._standardize_x(x, what)
        ys = [_to_array(y[k]) for k in y_keys] if y_keys else self._standardize_y(y, what)
        if not xs:
            raise ValueError(f"{what}: x is an empty dict.")
        n = _num_samples(xs, "input")
        if ys is not None and _num_samples(ys, "target") != n:
            raise ValueError(f"{what}: x has {n} samples but y has "
                             f"{_num_samples(ys, 'target')}; they must match.")
        if n == 0:
            raise ValueError(f"{what}: x has no samples.")
        return xs, ys, (x_keys, y_keys)

    def _validation_batches(self, data, steps, batch_size, own_step):
        if is_dataset(data):
            return DatasetBatches(data, steps, "fit: validation_data")
        data = tuple(data)
        what = "fit (validation_data)"
        keys = (None, None)
        if own_step or self._own_step("test_step"):
            vxs, vys, keys = self._own_step_arrays(data[0], data[1], what)
        else:
            vxs, vys, _ = self._prepare(data[0], data[1], what, need_y=self._needs_y())
        sw = None if len(data) == 2 or data[2] is None else self._sample_weights(
            vys, data[2], None, len(vxs[0]), what)
        return ArrayBatches(vxs, vys, sw, batch_size, steps=steps, keys=keys)

    def _fit_epochs(self, train, val, cbs, epochs, initial_epoch=0, validation_freq=1,
                    custom=False, class_weight=None):
        """The epoch loop: callbacks, metric resets, validation, ``stop_training``.

        Args:
            train: the training batches (:class:`ArrayBatches` or :class:`DatasetBatches`).
            val: the validation batches, or None.
            cbs: the :class:`~fundl.callbacks.CallbackList`.
            epochs, initial_epoch, validation_freq: as in :meth:`fit`.
            custom: run the overridden ``train_step`` instead of the built-in step.
            class_weight: applied to the batches of a generator (arrays have it already).

        Returns:
            The last epoch's logs (also given to ``on_train_end``).
        """
        self.stop_training = False
        state = {"warned": False, "class_weight": class_weight}
        if not custom:
            # A model fed by a generator may be built by its first batch (_builtin_epoch).
            state["weights"] = self._trainable_for_step() if self.built else None
            # Decided once per fit, not per step: whether any layer adds a penalty.
            state["penalties"] = self._has_losses()
        run_epoch = self._custom_epoch if custom else self._builtin_epoch
        final = None
        cbs.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            cbs.on_epoch_begin(epoch)
            logs = run_epoch(train, cbs, epoch, state)
            train.on_epoch_end()
            if getattr(train, "exhausted", False):
                train.out_of_data("training stops")
            if logs is None:
                break
            if val is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._evaluate_batches(val, cbs, self._overrides("test_step"),
                                                  state.get("penalties", True))
                logs.update({f"val_{k}": v for k, v in (val_logs or {}).items()})
            cbs.on_epoch_end(epoch, logs)
            final = logs
            if self.stop_training or getattr(train, "exhausted", False):
                break
        cbs.on_train_end(final)
        return final

    def _builtin_epoch(self, train, cbs, epoch, state):
        """One epoch of the built-in step; the logs are means over the epoch's samples."""
        step_weights, penalties = state["weights"], state["penalties"]
        arrays = isinstance(train, ArrayBatches)
        totals, seen, logs = {}, 0, None
        for step, batch in enumerate(train.epoch()):
            cbs.on_train_batch_begin(step)
            if arrays:
                bx, by, bsw, count = batch
            else:
                bx, by, bsw, count = self._unpack_batch(batch, "fit", state["class_weight"])
                if step_weights is None:
                    state["weights"] = step_weights = self._trainable_for_step()
            logs = self._train_step(bx, by, bsw, step_weights, penalties)
            if not state["warned"] and not math.isfinite(logs["loss"]):
                state["warned"] = True  # once per fit: cheap, since the loss is a float anyway
                self._warn_non_finite(epoch, step, bx, logs["loss"])
            seen += count
            for k, v in logs.items():
                totals[k] = totals.get(k, 0.0) + v * count
            cbs.on_train_batch_end(step, self._running_logs(totals, seen, logs))
            if not penalties and not state.get("rechecked"):
                # A layer that calls add_loss() shows it only once data has flowed through.
                state["rechecked"] = True
                state["penalties"] = penalties = self._has_losses()
            if self.stop_training:
                break
        if logs is None:
            return None
        epoch_logs = self._running_logs(totals, seen, logs)
        self._sync_trackers(epoch_logs, seen)
        return epoch_logs

    def _running_logs(self, totals, seen, last):
        logs = {k: v / seen for k, v in totals.items()}
        if self._stateful_names:  # these keep their own running state: their latest result
            for k in self._stateful_names:
                logs[k] = last[k]
        return logs

    def _custom_epoch(self, train, cbs, epoch, state):
        """One epoch of an overridden ``train_step``; the logs are its last ones (Keras 3)."""
        device = self._device()
        batches = train.as_tuples() if isinstance(train, ArrayBatches) else train.epoch()
        logs = None
        for step, data in enumerate(batches):
            cbs.on_train_batch_begin(step)
            logs = self._run_step("train_step", data, device)
            loss = logs.get("loss")
            if not state["warned"] and isinstance(loss, float) and not math.isfinite(loss):
                state["warned"] = True
                x = unpack_x_y_sample_weight(data)[0]
                self._warn_non_finite(epoch, step, _flat_arrays(x), loss)
            cbs.on_train_batch_end(step, dict(logs))
            if self.stop_training:
                break
        return None if logs is None else dict(logs)

    def _unpack_batch(self, batch, what, class_weight=None):
        """A generator's batch as the built-in step's ``(xs, ys, sample_weight, count)``."""
        x, y, sw = unpack_x_y_sample_weight(batch)
        xs = self._standardize_x(x, what)
        ys = self._standardize_y(y, what)
        if ys is None and self._needs_y():
            raise ValueError(f"{what}: a batch from the generator has no targets; yield (x, y) "
                             "or (x, y, sample_weight) batches (the compiled loss needs y).")
        n = _num_samples(xs, "input")
        if ys is not None and _num_samples(ys, "target") != n:
            raise ValueError(f"{what}: a batch has {n} input samples but "
                             f"{_num_samples(ys, 'target')} targets.")
        self._check_inputs(xs, what)
        self._ensure_built(xs)
        self._prepare_compiled()
        if ys is not None:
            ys = self._check_targets(xs, ys, what)
        return xs, ys, self._sample_weights(ys, sw, class_weight, n, what), n

    def _warn_non_finite(self, epoch, step, arrays, loss):
        """The one warning of a fit whose loss went NaN/inf: inputs or weights to blame?"""
        bad_inputs = [i for i, a in enumerate(arrays) if isinstance(a, numpy.ndarray)
                      and a.dtype.kind in "fc" and not numpy.isfinite(a).all()]
        values = [backend.to_numpy(w.data) for w in self.weights]
        bad_weights = [getattr(w, "name", None) or f"#{i}" for i, (w, v) in
                       enumerate(zip(self.weights, values)) if not numpy.isfinite(v).all()]
        largest = max((float(numpy.abs(v).max()) for v in values if v.size), default=0.0)
        if bad_inputs:
            cause = (f"the inputs of this batch contain NaN or inf (input(s) {bad_inputs}); "
                     "clean the data, e.g. x = numpy.nan_to_num(x)")
        elif bad_weights:
            cause = (f"the weights went non-finite ({len(bad_weights)} of them, e.g. "
                     f"{bad_weights[:3]}): training diverged; lower the learning rate or clip "
                     "gradients (clipnorm=1.0)")
        else:
            cause = (f"the inputs and the weights are finite (the largest |weight| is "
                     f"{largest:.3g}) but the loss overflowed: if the weights grew large, training "
                     "is diverging (lower the learning rate or clip gradients); otherwise check "
                     "the loss and the output activation (e.g. log of 0)")
        warnings.warn(f"fit: model '{self.name}': the loss is {loss} at epoch {epoch}, step "
                      f"{step}; {cause}. This warning is given once per fit; the "
                      "TerminateOnNaN callback stops training instead.", RuntimeWarning,
                      stacklevel=4)

    # -- evaluate / predict ----------------------------------------------------------------------
    def _evaluate_batches(self, data, cbs, custom, penalties=True):
        """Run ``data`` through the test step, firing the ``on_test_*`` hooks; the logs."""
        self.reset_metrics()
        cbs.on_test_begin()
        totals, seen, logs = {}, 0, None
        device = self._device() if custom else None
        arrays = isinstance(data, ArrayBatches)
        batches = (data.as_tuples() if arrays else data.epoch()) if custom else data.epoch()
        for step, batch in enumerate(batches):
            cbs.on_test_batch_begin(step)
            if custom:
                logs = self._run_step("test_step", batch, device)
                cbs.on_test_batch_end(step, dict(logs))
                continue
            bx, by, bsw, count = batch if arrays else self._unpack_batch(batch, "evaluate")
            logs = self._test_step(bx, by, bsw, penalties)
            seen += count
            for k, v in logs.items():
                totals[k] = totals.get(k, 0.0) + v * count
            cbs.on_test_batch_end(step, self._running_logs(totals, seen, logs))
        if getattr(data, "exhausted", False):
            data.out_of_data("the evaluation covers the batches it got")
        if logs is not None and not custom:
            logs = self._running_logs(totals, seen, logs)
            self._sync_trackers(logs, seen)
        cbs.on_test_end(logs)
        return logs

    @_runs_the_model
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False, **kwargs):
        """The loss (and metrics) over a dataset, in batches, without training.

        Args:
            x, y: as in :meth:`fit` (arrays, or a generator/PyDataset of ``(x, y)`` batches).
            batch_size: samples per batch (32; not with a generator).
            verbose: 0, 1, 2 or "auto".
            sample_weight: per-sample weights ``(n,)``.
            steps: batches to evaluate (a generator's length).
            callbacks: callbacks whose ``on_test_*`` hooks run.
            return_dict: return ``{"loss": ..., ...}``.

        Returns:
            The loss as a float when there are no metrics, else ``[loss, metric, ...]`` (or a dict
            with ``return_dict=True``).

        Example:
            >>> loss, acc = model.evaluate(x_test, y_test, batch_size=128)
        """
        if kwargs:
            _unknown_kwargs("evaluate", kwargs, ["x", "y", "batch_size", "verbose",
                                                 "sample_weight", "steps", "callbacks",
                                                 "return_dict"])
        batch_size = _int_arg("evaluate", "batch_size", batch_size, 1)
        verbose = _verbose_arg("evaluate", verbose)
        steps = _int_arg("evaluate", "steps", steps, 1)
        _bool_arg("evaluate", "return_dict", return_dict)
        _check_callbacks("evaluate", callbacks)
        self._check_compiled("evaluate")
        custom = self._overrides("test_step")
        if is_dataset(x):
            given = [k for k, v in (("y", y), ("sample_weight", sample_weight),
                                    ("batch_size", batch_size)) if v is not None]
            if given:
                raise ValueError(f"evaluate: x is a generator or dataset, which gives whole "
                                 f"batches: {', '.join(given)} cannot be given with it.")
            data = DatasetBatches(x, steps, "evaluate: x")
        elif self._own_step("test_step"):
            xs, ys, keys = self._own_step_arrays(x, y, "evaluate")
            sw = self._sample_weights(ys, sample_weight, None, len(xs[0]), "evaluate")
            data = ArrayBatches(xs, ys, sw, batch_size or 32, steps=steps, keys=keys)
        else:
            xs, ys, n = self._prepare(x, y, "evaluate", need_y=self._needs_y())
            sw = self._sample_weights(ys, sample_weight, None, n, "evaluate")
            data = ArrayBatches(xs, ys, sw, batch_size or 32,
                                steps=None if steps is None else min(
                                    steps, math.ceil(n / (batch_size or 32))))
        cbs = CallbackList(callbacks, add_history=False, add_progbar=verbose != 0, model=self,
                           verbose=verbose, epochs=1, steps=data.steps)
        logs = self._evaluate_batches(data, cbs, custom, self._has_losses())
        if logs is None:
            raise ValueError("evaluate: the data gave no batch to evaluate.")
        return self._format_result(logs, return_dict)

    @_runs_the_model
    def predict(self, x, batch_size=None, verbose=0, steps=None, callbacks=None, **kwargs):
        """The model's outputs for ``x`` as NumPy arrays, computed in batches without a graph.

        Args:
            x: inputs (arrays, or a generator/PyDataset of ``x`` or ``(x, ...)`` batches).
            batch_size: samples per batch (32; not with a generator).
            verbose: 0, 1, 2 or "auto".
            steps: batches to predict (a generator's length).
            callbacks: callbacks whose ``on_predict_*`` hooks run (``on_predict_batch_end``
                gets ``{"outputs": ...}``).

        Returns:
            An array of shape ``(n, ...)``, or a list of arrays for several outputs (an
            overridden ``predict_step``: its outputs' structure, joined along axis 0).

        Example:
            >>> probs = model.predict(x_test)
        """
        if kwargs:
            _unknown_kwargs("predict", kwargs, ["x", "batch_size", "verbose", "steps",
                                                "callbacks"])
        batch_size = _int_arg("predict", "batch_size", batch_size, 1)
        verbose = _verbose_arg("predict", verbose)
        steps = _int_arg("predict", "steps", steps, 1)
        _check_callbacks("predict", callbacks)
        custom = self._overrides("predict_step")
        if is_dataset(x):
            if batch_size is not None:
                raise ValueError("predict: x is a generator or dataset, which gives whole "
                                 "batches: batch_size cannot be given with it.")
            data = DatasetBatches(x, steps, "predict: x")
        else:
            xs = self._standardize_x(x, "predict")
            n = _num_samples(xs, "input")
            if n == 0:
                raise ValueError("predict: x has no samples.")
            self._check_inputs(xs, "predict")
            if not custom:
                self._ensure_built(xs)
            size = batch_size or 32
            data = ArrayBatches(xs, None, None, size, steps=None if steps is None else min(
                steps, math.ceil(n / size)))
        # No callbacks and no progress bar: nobody to call (building the list cost ~15 us a
        # call, which a one-batch predict of a small network notices).
        cbs = _NO_PREDICT_CALLBACKS if callbacks is None and verbose == 0 else CallbackList(
            callbacks, add_history=False, add_progbar=verbose != 0, model=self,
            verbose=verbose, epochs=1, steps=data.steps)
        device = self._device()
        chunks = []
        cbs.on_predict_begin()
        with no_grad():
            for step, batch in enumerate(data.epoch()):
                cbs.on_predict_batch_begin(step)
                if isinstance(data, ArrayBatches):
                    part = batch[0]
                    batch = part if len(part) > 1 else part[0]
                if custom:
                    out = _concat_outputs([self.predict_step(_to_step_data(batch, device))],
                                          "predict")
                else:
                    if not isinstance(data, ArrayBatches):
                        part = self._standardize_x(unpack_x_y_sample_weight(batch)[0], "predict")
                        self._check_inputs(part, "predict")
                        self._ensure_built(part)
                        batch = part if len(part) > 1 else part[0]
                    out = self(batch, training=False)
                    out = list(out.values()) if isinstance(out, dict) else out
                    out = [backend.to_numpy(o.data) for o in _as_list(out)]
                chunks.append(out)
                cbs.on_predict_batch_end(step, {"outputs": out})
        if getattr(data, "exhausted", False):
            data.out_of_data("the predictions cover the batches it got")
        if not chunks:
            raise ValueError("predict: x has no samples (the data gave no batch).")
        cbs.on_predict_end()
        if custom:
            return _concat_outputs(chunks, "predict")
        outs = [numpy.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]
        return outs[0] if len(outs) == 1 else outs

    def _device(self):
        if backend._cupy is None:  # CuPy never loaded: everything lives on the CPU
            return "cpu"
        weights = self.weights
        return backend.device_of(weights[0].data) if weights else backend.get_device()

    def __call__(self, inputs, *args, training=None, **kwargs):
        if isinstance(inputs, dict):
            names = getattr(self, "input_names", None) or []
            missing = [k for k in names if k not in inputs]
            if missing or not names:
                raise ValueError(f"Model '{self.name}': inputs {missing} are missing from the "
                                 f"dict; the model's inputs are {names}.")
            inputs = [inputs[k] for k in names]
            if len(inputs) == 1:
                inputs = inputs[0]
        if isinstance(inputs, (list, tuple)) and self._n_inputs() == 1 and not all(
                isinstance(a, (Tensor, numpy.ndarray)) for a in inputs):
            inputs = _to_array(inputs)  # nested Python lists: one input, not several
        if isinstance(inputs, (list, tuple, numpy.ndarray)):
            device = self._device()
            dtype = backend.get_default_dtype()

            def convert(a):
                if isinstance(a, numpy.ndarray):
                    if a.dtype == numpy.float64 and dtype != numpy.float64:
                        a = a.astype(dtype)
                    return Tensor._wrap(backend.to_device(a, device))
                return a

            inputs = [convert(a) for a in inputs] if isinstance(inputs, (list, tuple)) \
                else convert(inputs)
        return super().__call__(inputs, *args, training=training, **kwargs)
