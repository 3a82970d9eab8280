"""Training: ``compile``, ``fit``, ``evaluate``, ``predict`` and the per-batch steps.

One training step is the course's recipe, literally: take a batch, run it forward to the loss,
back-propagate, let the optimizer update the weights. Everything else here is bookkeeping:
matching losses and metrics to outputs, batching, shuffling, validation and callbacks, done
once per fit rather than once per step where possible, because per-step overhead is what
separates a framework from hand-written NumPy.
"""
from __future__ import annotations

import math
import warnings

import numpy

from .. import backend, losses as losses_module, metrics as metrics_module
from .. import optimizers as optimizers_module
from ..autograd import no_grad
from ..layers._masking import _MASKS, get_mask
from ..tensor import Tensor, get_rng


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


class Trainer:
    """The training half of :class:`~fundl.models.Model` (a mixin; see ``Model``)."""

    optimizer = None
    compiled = False
    stop_training = False
    history = None

    # -- compile ----------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, **kwargs):
        """Configure training.

        Args:
            optimizer: a name (``"sgd"``, ``"adam"``, ...) or an optimizer object.
            loss: a name, a function ``(y_true, y_pred)``, or a loss object; for several
                outputs, a list (in output order) or a dict by output name.
            metrics: a list of names/functions (``["accuracy"]``), or a list/dict per output.
            loss_weights: a list or dict of floats weighting each output's loss.

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
            raise TypeError(f"compile: unexpected keyword argument(s) {sorted(kwargs)}.")
        if loss is None:
            raise ValueError("compile: a loss is required, e.g. loss='categorical_crossentropy'.")
        self.optimizer = optimizers_module.get(optimizer)
        self._loss_spec, self._metric_spec, self._loss_weight_spec = loss, metrics, loss_weights
        self._compiled_for = None
        # As in Keras, compile() fixes which weights train: layer.trainable changes made later
        # take effect at the next compile (this is what lets a GAN freeze its discriminator
        # inside the combined model while the discriminator alone still trains).
        self._compiled_trainable = self.trainable_weights if self.built else None
        self._compiled_weights = None  # (all weights, ids of the trainable ones), see below
        self._warned_trainable = False
        self.compiled = True

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
        """Resolve losses, weights and metrics per output (once, after the model is built)."""
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
        if all(loss is None for loss in self._losses):
            raise ValueError(f"compile: no loss for any output of {names}.")
        self._metrics = []
        for name, specs in zip(names, self._metrics_per_output()):
            resolved = []
            for spec in specs:
                metric_name, fn = metrics_module.get(spec)
                prefix = f"{name}_" if len(names) > 1 else ""
                resolved.append((prefix + metric_name, fn))
            self._metrics.append(resolved)
        self._compiled_for = names

    # -- data handling -------------------------------------------------------------------------
    def _n_inputs(self):
        """How many inputs the model takes (None for a subclassed model: unknown)."""
        if getattr(self, "_graph", False):
            return len(self.inputs)
        if getattr(self, "_sequential", False):
            return 1
        return None

    def _standardize_x(self, x, what="fit"):
        if x is None:
            raise ValueError(f"{what}: inputs x are required.")
        if isinstance(x, dict):
            names = getattr(self, "input_names", None) or []
            missing = [n for n in names if n not in x]
            if missing or not names:
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
        xs = [_to_array(x)]
        n_in = self._n_inputs()
        if n_in is not None and n_in > 1:
            raise ValueError(f"{what}: the model has {n_in} inputs {self.input_names}; pass a list "
                             "or a dict of arrays, one per input.")
        return xs

    def _check_inputs(self, xs, what):
        """Each input's per-sample shape against the model's (when the model knows it)."""
        if getattr(self, "_graph", False):
            expected = [tuple(t.shape) for t in self.inputs]
            names = self.input_names
        elif getattr(self, "_sequential", False) and self._input_shape is not None:
            expected, names = [tuple(self._input_shape)], ["input"]
        else:
            return
        for name, shape, a in zip(names, expected, xs):
            if a.ndim != len(shape) or any(e is not None and e != g
                                           for e, g in zip(shape[1:], a.shape[1:])):
                raise ValueError(f"{what}: model '{self.name}' expects {name!r} of shape "
                                 f"{shape} (batch axis first), got an array of shape "
                                 f"{a.shape}.")

    def _standardize_y(self, y):
        names = self._output_names()
        if y is None:
            return None
        if isinstance(y, dict):
            missing = [n for n in names if n not in y]
            if missing:
                raise ValueError(f"fit: targets for outputs {missing} are missing; the outputs are "
                                 f"{names}.")
            return [_to_array(y[n]) for n in names]
        if len(names) == 1:
            single = isinstance(y, (list, tuple)) and len(y) == 1 and hasattr(y[0], "shape")
            ys = [_to_array(y[0] if single else y)]
        else:
            if not isinstance(y, (list, tuple)):
                raise ValueError(f"fit: the model has {len(names)} outputs {names}; pass y as a "
                                 "list or a dict of arrays, one per output.")
            ys = [_to_array(a) for a in y]
        if len(ys) != len(names):
            raise ValueError(f"fit: the model has {len(names)} output(s) {names} but {len(ys)} "
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
        if not getattr(self, "_graph", False) and not all(
                layer.built for _, layer in self._named_sublayers()) or not (
                getattr(self, "_graph", False) or getattr(self, "_sequential", False)):
            with no_grad():
                sample = [a[:1] for a in xs]
                self(sample if len(sample) > 1 else sample[0], training=False)

    def _check_targets(self, xs, ys):
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
                        f"fit: loss '{loss_name}' expects integer class labels of shape "
                        f"{(None,) + want[:-1]} for output '{name}' of shape {(None,) + want}, "
                        f"got targets of shape {y.shape}. For one-hot targets use "
                        "loss='categorical_crossentropy'.")
            elif not _fits(got, want):
                if loss_name in _SAME_SHAPE and labels_shape and want and (want[-1] or 2) > 1:
                    raise ValueError(
                        f"fit: loss '{loss_name}' expects one-hot targets of shape "
                        f"(n, {', '.join(map(str, want))}) for output '{name}', got targets of "
                        f"shape {y.shape}. "
                        "Use loss='sparse_categorical_crossentropy' for integer labels, or "
                        "one-hot encode them.")
                if got == want[:-1] and want[-1:] == (1,):
                    y = y.reshape(y.shape + (1,))  # (n,) targets for (n, 1) outputs, as Keras
                else:
                    raise ValueError(
                        f"fit: targets of shape {y.shape} do not match output '{name}' of shape "
                        f"{(None,) + want} for loss '{loss_name}'.")
            checked.append(y)
        return checked

    # -- one step ----------------------------------------------------------------------------
    def _compute_loss(self, ys, outs, sample_weight, penalties=True):
        """The total loss Tensor and each output's loss Tensor.

        Per-sample losses are averaged over the batch (weighted by ``sample_weight``); a
        :class:`~fundl.losses.Loss` object reduces them itself, with its own ``reduction``.
        An output carrying a sequence mask (``Embedding(mask_zero=True)``, ``Masking``) whose
        losses have the mask's shape (batch, timesteps) counts only its real steps, as Keras 3:
        ``sum(loss * mask * sample_weight) / sum(mask)`` (see :func:`_mask_weights`).
        ``penalties`` adds the layers' regularization losses (False when none exist).
        """
        total = None
        parts = []
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
                total = total + extra
        return total, parts

    def _logs(self, total, parts, ys, outs):
        logs = {"loss": float(total.item())}
        if len(parts) > 1:
            for name, part in zip(self._output_names(), parts):
                if part is not None:
                    logs[f"{name}_loss"] = float(part.item())
        for y, out, metrics in zip(ys, outs, self._metrics):
            if metrics:
                pred = backend.to_numpy(out.data)
                mask = get_mask(out) if _MASKS else None
                for name, fn in metrics:
                    values = fn(y, pred)  # sum / size: numpy.mean's Python wrapper costs more
                    if mask is not None and values.shape == tuple(mask.shape):
                        values = values[backend.to_numpy(mask)]  # the real steps only
                    logs[name] = float(values.sum()) / max(values.size, 1)
        return logs

    def _train_step(self, xs, ys, sample_weight, step_weights, penalties=True):
        trainable, flips = step_weights
        for w in trainable:
            w.grad = None
        for w in flips:  # weights whose trainable state changed since compile()
            w.requires_grad = not w.requires_grad
        try:
            outs = self(xs if len(xs) > 1 else xs[0], training=True)
            outs = list(outs.values()) if isinstance(outs, dict) else _as_list(outs)
            total, parts = self._compute_loss(ys, outs, sample_weight, penalties)
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

    def _test_step(self, xs, ys, sample_weight, penalties=True):
        with no_grad():
            outs = self(xs if len(xs) > 1 else xs[0], training=False)
            outs = list(outs.values()) if isinstance(outs, dict) else _as_list(outs)
            total, parts = self._compute_loss(ys, outs, sample_weight, penalties)
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

    def _check_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"{what}: the model must be compiled first: "
                               "model.compile(optimizer=..., loss=...).")

    def _prepare(self, x, y, what):
        self._check_compiled(what)
        xs = self._standardize_x(x, what)
        ys = self._standardize_y(y)
        if ys is None:
            raise ValueError(f"{what}: targets y are required.")
        for a in xs + ys:
            if a.ndim == 0:
                raise ValueError(f"{what}: inputs and targets need a batch axis, got a 0-d array.")
        n = _num_samples(xs, "input")
        m = _num_samples(ys, "target")
        if n != m:
            raise ValueError(f"{what}: x has {n} samples but y has {m}; they must match. Pass "
                             "one target per input sample.")
        if n == 0:
            raise ValueError(f"{what}: x has no samples.")
        self._check_inputs(xs, what)
        self._ensure_built(xs)
        self._prepare_compiled()
        ys = self._check_targets(xs, ys)
        return xs, ys, n

    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        """One gradient step on one batch; returns the loss (and metrics) of that batch.

        Args:
            x, y: one batch of inputs and targets (arrays, or lists/dicts of them).
            sample_weight, class_weight: as in :meth:`fit`.
            return_dict: return ``{"loss": ..., "accuracy": ...}`` instead of a list.

        Returns:
            The loss as a float without metrics, else ``[loss, metric, ...]``, computed
            before the update (as Keras).

        Example:
            >>> d_loss = discriminator.train_on_batch(images, labels)   # a GAN step
        """
        xs, ys, _ = self._prepare(x, y, "train_on_batch")
        sw = self._sample_weights(ys, sample_weight, class_weight)
        logs = self._train_step(xs, ys, sw, self._trainable_for_step(), self._has_losses())
        return self._format_result(logs, return_dict)

    def test_on_batch(self, x, y, sample_weight=None, return_dict=False):
        """The loss (and metrics) of one batch in inference mode, without updating anything.

        Returns:
            As :meth:`train_on_batch`.

        Example:
            >>> loss, acc = model.test_on_batch(x_batch, y_batch)
        """
        xs, ys, _ = self._prepare(x, y, "test_on_batch")
        sw = self._sample_weights(ys, sample_weight, None)
        return self._format_result(self._test_step(xs, ys, sw, self._has_losses()), return_dict)

    @staticmethod
    def _format_result(logs, return_dict):
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def _sample_weights(self, ys, sample_weight, class_weight):
        """Per-sample loss weights (n,) from ``sample_weight`` times ``class_weight``, or None."""
        if sample_weight is None and class_weight is None:
            return None
        n = len(ys[0])
        sw = numpy.ones(n, dtype=numpy.float32)
        if sample_weight is not None:
            given = numpy.asarray(sample_weight, dtype=numpy.float32)
            if given.shape not in ((n,), (n, 1)):
                raise ValueError(f"fit: sample_weight must have shape ({n},), one weight per "
                                 f"sample, got {given.shape}.")
            sw = sw * given.reshape(n)
        if class_weight is not None:
            if not isinstance(class_weight, dict):
                raise TypeError(f"fit: class_weight must be a dict {{class index: weight}}, got "
                                f"{type(class_weight).__name__}.")
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

    # -- fit ------------------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_batch_size=None,
            validation_freq=1, strategy=None):
        """Train for ``epochs`` passes over the data.

        Args:
            x: inputs: a NumPy array, or a list/dict of arrays for several inputs.
            y: targets, likewise for several outputs.
            batch_size: samples per gradient step (32 by default).
            epochs: the epoch to stop at (counting from 0, after ``initial_epoch``).
            verbose: 0 silent, 1 progress bar, 2 one line per epoch; "auto" is 1.
            callbacks: a list of :mod:`fundl.callbacks` objects.
            validation_split: the fraction of the data (taken from the end, before shuffling)
                held out for validation.
            validation_data: ``(x_val, y_val)`` or ``(x_val, y_val, sample_weight)``.
            shuffle: reshuffle the training data every epoch.
            class_weight: a dict ``{class: weight}`` scaling the loss of each class.
            sample_weight: per-sample loss weights, shape ``(n,)``.
            initial_epoch: the epoch to start from (to resume training).
            strategy: a :mod:`fundl.distributed` strategy; when given, training runs through
                ``strategy.fit(model, x, y, ...)`` (after the arguments are checked here).

        Returns:
            A ``History`` whose ``.history`` maps "loss", metric names and "val_..." to lists.

        Example:
            >>> history = model.fit(x_train, y_train, epochs=5, batch_size=32,
            ...                     validation_data=(x_val, y_val))
        """
        from ..callbacks import CallbackList

        if strategy is not None:
            if not callable(getattr(strategy, "fit", None)):
                raise TypeError(f"fit: strategy must be a fundl.distributed strategy (an object "
                                f"with a fit method), got {type(strategy).__name__}.")
            return strategy.fit(self, x, y, batch_size=batch_size, epochs=epochs,
                                verbose=verbose, callbacks=callbacks,
                                validation_split=validation_split,
                                validation_data=validation_data, shuffle=shuffle,
                                initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch)
        xs, ys, n = self._prepare(x, y, "fit")
        batch_size = int(batch_size or 32)
        if batch_size <= 0:
            raise ValueError(f"fit: batch_size must be positive, got {batch_size}.")
        if not 0 <= initial_epoch:
            raise ValueError(f"fit: initial_epoch must be >= 0, got {initial_epoch}.")
        verbose = 1 if verbose == "auto" else int(verbose)
        sw_all = self._sample_weights(ys, sample_weight, class_weight)
        val = None
        if validation_data is not None:
            val = tuple(validation_data)
            if len(val) not in (2, 3):
                raise ValueError("fit: validation_data must be (x_val, y_val) or "
                                 "(x_val, y_val, sample_weight).")
            vxs, vys, _ = self._prepare(val[0], val[1], "fit (validation_data)")
            val = (vxs, vys, None if len(val) == 2 else numpy.asarray(val[2], dtype=numpy.float32))
        elif validation_split:
            if not 0 < validation_split < 1:
                raise ValueError(f"fit: validation_split must be in (0, 1), got "
                                 f"{validation_split}.")
            split = int(n * (1 - validation_split))
            if split == 0 or split == n:
                raise ValueError(f"fit: validation_split={validation_split} leaves no training or "
                                 f"no validation samples out of {n}.")
            val = ([a[split:] for a in xs], [a[split:] for a in ys],
                   None if sw_all is None else sw_all[split:])
            xs, ys = [a[:split] for a in xs], [a[:split] for a in ys]
            sw_all = None if sw_all is None else sw_all[:split]
            n = split
        steps = steps_per_epoch or math.ceil(n / batch_size)
        cbs = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                           verbose=verbose, epochs=epochs, steps=steps)
        self.stop_training = False
        # Worked out once per fit, not per step: the weights to update and whether any layer
        # has a regularizer whose penalty must be added to the loss.
        trainable = self._trainable_for_step()
        penalties = self._has_losses()
        rng = get_rng()
        cbs.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            cbs.on_epoch_begin(epoch)
            order = rng.permutation(n) if shuffle else None
            totals, seen = {}, 0
            for step in range(steps):
                start = (step * batch_size) % n
                stop = min(start + batch_size, n)
                if order is None:
                    index = slice(start, stop)
                else:
                    index = order[start:stop]
                    index.sort()  # sorted gathers read memory in order: measurably faster
                cbs.on_train_batch_begin(step)
                bx = [a[index] for a in xs]
                by = [a[index] for a in ys]
                bsw = None if sw_all is None else sw_all[index]
                logs = self._train_step(bx, by, bsw, trainable, penalties)
                count = stop - start
                seen += count
                for k, v in logs.items():
                    totals[k] = totals.get(k, 0.0) + v * count
                cbs.on_train_batch_end(step, {k: v / seen for k, v in totals.items()})
                if self.stop_training:
                    break
            epoch_logs = {k: v / max(seen, 1) for k, v in totals.items()}
            if val is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._evaluate_arrays(val[0], val[1], val[2],
                                                 validation_batch_size or batch_size,
                                                 penalties=penalties)
                epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
            cbs.on_epoch_end(epoch, epoch_logs)
            if self.stop_training:
                break
        cbs.on_train_end()
        self.history = cbs.history
        return cbs.history

    # -- evaluate / predict ----------------------------------------------------------------------
    def _evaluate_arrays(self, xs, ys, sw, batch_size, cbs=None, penalties=True):
        n = len(xs[0])
        totals = {}
        for step, start in enumerate(range(0, n, batch_size)):
            index = slice(start, min(start + batch_size, n))
            if cbs is not None:
                cbs.on_test_batch_begin(step)
            logs = self._test_step([a[index] for a in xs], [a[index] for a in ys],
                                   None if sw is None else sw[index], penalties)
            count = index.stop - index.start
            for k, v in logs.items():
                totals[k] = totals.get(k, 0.0) + v * count
            if cbs is not None:
                cbs.on_test_batch_end(step, {k: v / index.stop for k, v in totals.items()})
        return {k: v / n for k, v in totals.items()}

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 return_dict=False, callbacks=None):
        """The loss (and metrics) over a dataset, in batches, without training.

        Returns:
            The loss as a float when there are no metrics, else ``[loss, metric, ...]`` (or a dict
            with ``return_dict=True``).

        Example:
            >>> loss, acc = model.evaluate(x_test, y_test, batch_size=128)
        """
        from ..callbacks import CallbackList

        xs, ys, n = self._prepare(x, y, "evaluate")
        batch_size = int(batch_size or 32)
        verbose = 1 if verbose == "auto" else int(verbose)
        sw = self._sample_weights(ys, sample_weight, None)
        cbs = CallbackList(callbacks, add_history=False, add_progbar=verbose != 0, model=self,
                           verbose=verbose, epochs=1, steps=math.ceil(n / batch_size))
        cbs.on_test_begin()
        logs = self._evaluate_arrays(xs, ys, sw, batch_size, cbs, penalties=self._has_losses())
        cbs.on_test_end(logs)
        return self._format_result(logs, return_dict)

    def predict(self, x, batch_size=None, verbose=0, callbacks=None):
        """The model's outputs for ``x`` as NumPy arrays, computed in batches without a graph.

        Returns:
            An array of shape ``(n, ...)``, or a list of arrays for several outputs.

        Example:
            >>> probs = model.predict(x_test)
        """
        xs = self._standardize_x(x, "predict")
        n = _num_samples(xs, "input")
        self._check_inputs(xs, "predict")
        self._ensure_built(xs)
        batch_size = int(batch_size or 32)
        if batch_size <= 0:
            raise ValueError(f"predict: batch_size must be positive, got {batch_size}.")
        chunks = []
        with no_grad():
            for start in range(0, n, batch_size):
                part = [a[start:start + batch_size] for a in xs]
                out = self(part if len(part) > 1 else part[0], training=False)
                out = list(out.values()) if isinstance(out, dict) else out
                chunks.append([backend.to_numpy(o.data) for o in _as_list(out)])
        if not chunks:
            raise ValueError("predict: x has no samples.")
        outs = [numpy.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]
        return outs[0] if len(outs) == 1 else outs

    def _device(self):
        if backend._cupy is None:  # CuPy never loaded: everything lives on the CPU
            return "cpu"
        weights = self.weights
        return backend.device_of(weights[0].data) if weights else backend.get_device()

    def __call__(self, inputs, training=None, **kwargs):
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
        return super().__call__(inputs, training=training, **kwargs)
