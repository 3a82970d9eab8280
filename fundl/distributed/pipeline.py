"""Pipeline model parallelism (GPipe): consecutive layer groups on different Ray actors.

A batch is cut into ``micro_batches`` parts. The driver submits, without waiting, every
micro-batch's forward through the stages (stage s+1 gets stage s's output as a Ray object
reference, so stage s works on micro-batch m+1 while stage s+1 works on micro-batch m), the
last stage's loss and backward, and every micro-batch's backward through the stages in
reverse; each stage accumulates its weights' gradients over the micro-batches; then every
stage applies one optimizer step. Ray runs an actor's calls in the order they were
submitted, which is what makes this schedule correct.

Micro-batch m of size n_m contributes ``(n_m / n) * loss_m``, so the accumulated gradient is
the gradient of the batch mean: the same update as one process (tested to 1e-5 with SGD).

Stages: ``stages=[2, 4]`` (split points: layers[0:2], layers[2:4], layers[4:]) or
``stages=[[0, 1], [2, 3], [4, 5]]`` (the layer indices of each stage; together they must be
0..L-1 in order). Sequential models only. A stage holds state (its weights), so a stage that
dies is not restarted behind the driver's back: ``fit`` fails, and ``checkpoint=`` files are
the way to resume.
"""
from __future__ import annotations

import numpy

from . import _runtime
from ._replica import (Replica, Timer, model_to_bytes, optimizer_state_by_key,
                       set_optimizer_state_by_key, weight_keys)
from .base import RunningLogs, Strategy, WorkerMixin, _check_count


class _Stage(WorkerMixin):
    """A Sequential of consecutive layers of the model, with its own optimizer."""

    def __init__(self, spec, first, last, seed=None):
        from ..tensor import Tensor

        self._mark(seed)
        self._tensor = Tensor
        self.replica = Replica(spec)
        self.model = self.replica.model
        self.optimizer = self.model.optimizer
        self.optimizer.build(self.replica.trainable)
        self.first, self.last = first, last
        self.saved = {}
        self.compute_s = 0.0

    def _forward(self, micro, x):
        inp = self._tensor(numpy.array(x), requires_grad=not self.first)
        out = self.model(inp, training=True)
        self.saved[micro] = (inp, out)
        return out

    def forward(self, micro, x):
        """The stage's output for micro-batch ``micro`` (the graph is kept for backward)."""
        start = Timer.now()
        out = self._forward(micro, x)
        data = numpy.array(out.data)
        self.compute_s += Timer.now() - start
        return data

    def loss_backward(self, micro, x, ys, weight):
        """Last stage: forward, the loss times ``weight``, backward.

        Returns:
            ``(logs of the micro-batch, gradient with respect to the stage's input)``.
        """
        start = Timer.now()
        out = self._forward(micro, x)
        total, parts = self.model._compute_loss(ys, [out], None, self.replica.penalties)
        (total * weight).backward()
        inp, _ = self.saved.pop(micro)
        logs = self.model._logs(total, parts, ys, [out])
        gx = None if self.first else numpy.array(inp.grad)
        self.compute_s += Timer.now() - start
        return logs, gx

    def backward(self, micro, gy):
        """Back-propagate ``gy`` through micro-batch ``micro``; the gradient of its input."""
        start = Timer.now()
        inp, out = self.saved.pop(micro)
        out.backward(numpy.asarray(gy, dtype=out.dtype))
        gx = None if self.first else numpy.array(inp.grad)
        self.compute_s += Timer.now() - start
        return gx

    def apply(self):
        """One optimizer step with the gradients accumulated over the micro-batches."""
        start = Timer.now()
        if not self.last and self.replica.penalties:
            # Weight penalties of this stage's layers, once per batch (the last stage adds
            # its own inside the loss).
            penalty = None
            for extra in self.model.losses:
                penalty = extra if penalty is None else penalty + extra
            if penalty is not None:
                penalty.backward()
        trainable = self.replica.trainable
        self.optimizer.apply([w.grad if w.grad is not None else numpy.zeros(w.shape, w.dtype)
                              for w in trainable], trainable)
        for w in trainable:
            w.grad = None
        elapsed, self.compute_s = self.compute_s + Timer.now() - start, 0.0
        return elapsed, self.incarnation

    def set_learning_rate(self, lr):
        self.optimizer.learning_rate = lr

    def state(self):
        return ({k: w.data for k, w in self.replica.entries.items()},
                optimizer_state_by_key(self.optimizer, self.replica.trainable_keys))


def _stage_groups(stages, n_layers, who):
    """The layer indices of each stage, checked to cover 0..n_layers-1 in order exactly."""
    if isinstance(stages, int) and not isinstance(stages, bool):
        raise TypeError(f"{who}: stages must be a list of split points ([2, 4]) or of layer "
                        f"index groups ([[0, 1], [2, 3], [4]]), got the int {stages}. For an "
                        "even split into k stages pass the split points.")
    if not isinstance(stages, (list, tuple)) or not stages:
        raise TypeError(f"{who}: stages must be a non-empty list of split points or of layer "
                        f"index groups, got {stages!r}.")
    if all(isinstance(s, (int, numpy.integer)) and not isinstance(s, bool) for s in stages):
        points = [int(s) for s in stages]
        if any(b <= a for a, b in zip(points, points[1:])) or points[0] <= 0 \
                or points[-1] >= n_layers:
            raise ValueError(f"{who}: split points must be strictly increasing and inside "
                             f"(0, {n_layers}) for a model of {n_layers} layers, got {points}.")
        bounds = [0] + points + [n_layers]
        return [list(range(a, b)) for a, b in zip(bounds, bounds[1:])]
    groups = []
    for g in stages:
        if not isinstance(g, (list, tuple, range)) or not all(
                isinstance(i, (int, numpy.integer)) and not isinstance(i, bool) for i in g):
            raise TypeError(f"{who}: each stage must be a list of layer indices, got {g!r} in "
                            f"{stages!r} (or pass split points: a list of ints).")
        groups.append([int(i) for i in g])
    flat = [i for g in groups for i in g]
    if any(not g for g in groups) or flat != list(range(n_layers)):
        raise ValueError(f"{who}: the stages {[list(g) for g in groups]} do not cover the "
                         f"model's {n_layers} layers exactly once in order; they must be "
                         f"consecutive groups of 0..{n_layers - 1}, e.g. "
                         f"{[list(range(0, n_layers // 2)), list(range(n_layers // 2, n_layers))]}.")
    return groups


class PipelineStrategy(Strategy):
    """Model parallelism: consecutive layer groups on different Ray actors, GPipe schedule.

    Args:
        stages: split points (``[2]``: layers 0-1 on one actor, the rest on another) or the
            layer indices of each stage (``[[0, 1], [2, 3, 4]]``); they must cover every
            layer of the model once, in order. Sequential models only.
        micro_batches: micro-batches per batch kept in flight (>= 1).
        address, resources_per_worker, checkpoint, num_cpus, object_store_memory,
            log_to_driver: as :class:`fundl.distributed.Strategy` (stages are not restarted:
            they hold the weights; resume from ``checkpoint=``).

    Each stage has its own copy of the optimizer; one update per batch, with gradients
    accumulated over the micro-batches, gives the same weights as one process (float
    rounding aside). Optimizers that couple weights across stages (``global_clipnorm``) are
    refused. After ``fit`` the model holds the stages' weights and optimizer state.

    Example:
        >>> model.fit(x, y, batch_size=64, epochs=2,
        ...           strategy=fl.distributed.PipelineStrategy(stages=[2], micro_batches=4))
    """

    name = "PipelineStrategy"

    def __init__(self, stages, micro_batches=4, address=None, resources_per_worker=None,
                 checkpoint=None, num_cpus=None, object_store_memory=None, log_to_driver=False):
        if isinstance(stages, (int, numpy.integer)) or not isinstance(stages, (list, tuple)):
            _stage_groups(stages, 0, self.name)  # raises the TypeError with the explanation
        self.stages = list(stages)
        self.micro_batches = _check_count(micro_batches, "micro_batches", self.name)
        super().__init__(address, resources_per_worker, checkpoint, 0, num_cpus,
                         object_store_memory, log_to_driver)

    def _check_model(self, model):
        super()._check_model(model)
        if not getattr(model, "_sequential", False):
            raise TypeError(f"{self.name}: only Sequential models can be split into stages; "
                            f"model '{model.name}' is a {type(model).__name__}. Rebuild a "
                            "chain of layers as fl.Sequential([...]), or use "
                            "DataParallelStrategy / ParameterServerStrategy.")
        if getattr(model.optimizer, "global_clipnorm", None) is not None:
            raise ValueError(f"{self.name}: global_clipnorm clips all weights together, across "
                             "stages; use clipnorm (per weight) or no clipping.")
        self._groups = _stage_groups(self.stages, len(model.layers), self.name)

    def _stage_specs(self, model):
        """One saved Sequential per stage (its layers' configs, weights and optimizer state),
        and for each stage the map from its weight keys to the full model's keys (a
        Sequential names its weights by position, so ``dense.kernel`` of stage 1 may be
        ``dense_2.kernel`` of the model)."""
        from .. import optimizers
        from ..models import Sequential
        from ..tensor import get_rng

        # Building the stages draws initial weights (overwritten at once) from fundl's
        # generator; put its state back so the batches are those fit would draw.
        rng = get_rng()
        rng_state = rng.bit_generator.state
        try:
            return self._build_stage_specs(model, optimizers, Sequential)
        finally:
            rng.bit_generator.state = rng_state

    def _build_stage_specs(self, model, optimizers, Sequential):
        config = model.get_config()
        full_entries, full_keys = weight_keys(model)
        key_of = {id(w): k for k, w in full_entries.items()}
        shape = tuple(model._input_shape)
        opt_state = None
        if model.optimizer.iterations > 0:
            model._trainable_for_step()
            opt_state = optimizer_state_by_key(model.optimizer, full_keys)
        specs, key_maps = [], []
        for s, group in enumerate(self._groups):
            sub_config = {"name": f"{model.name}_stage{s}", "trainable": config["trainable"],
                          "layers": [config["layers"][i] for i in group],
                          "input_shape": list(shape)}
            sub = Sequential.from_config(sub_config)
            sub_entries, _ = weight_keys(sub)
            sub_key_of = {id(w): k for k, w in sub_entries.items()}
            key_map = {}
            for i, sub_layer in zip(group, sub.layers):
                for w_full, w_sub in zip(model.layers[i].weights, sub_layer.weights):
                    key_map[sub_key_of[id(w_sub)]] = key_of[id(w_full)]
            sub.load_state_dict({k: full_entries[key_map[k]].numpy() for k in sub_entries})
            last = s == len(self._groups) - 1
            sub.compile(optimizer=optimizers.deserialize(optimizers.serialize(model.optimizer)),
                        loss=model._loss_spec,
                        metrics=model._metric_spec if last else None)
            if opt_state is not None:
                sub_entries, sub_keys = weight_keys(sub)
                sub._trainable_for_step()
                set_optimizer_state_by_key(sub.optimizer, {
                    "iterations": opt_state["iterations"],
                    "slots": {k: opt_state["slots"].get(key_map[k], {}) for k in sub_keys}},
                    sub_entries, sub_keys)
            specs.append(model_to_bytes(sub, include_optimizer=True, who=self.name))
            key_maps.append(key_map)
            shape = tuple(sub.compute_output_shape(shape))
        return specs, key_maps

    def _start(self, model, data_ref, n, batch_size):
        specs, self._key_maps = self._stage_specs(model)
        actor = self._actor(_Stage, scheduling_strategy="SPREAD")
        last = len(specs) - 1
        self.workers = [actor.remote(self._box(spec), s == 0, s == last, self._worker_seed(s))
                        for s, spec in enumerate(specs)]
        self._all_actors = list(self.workers)
        self._data = data_ref

    def _learning_rate_changed(self, model, lr):
        ray = _runtime.import_ray()
        ray.get([s.set_learning_rate.remote(lr) for s in self.workers])

    def _run_epoch(self, model, epoch, cbs, shuffle, steps):
        from ..tensor import get_rng

        ray = _runtime.import_ray()
        xs, ys = ray.get(self._data)
        n, batch_size = self._n, self._batch_size
        order = get_rng().permutation(n) if shuffle else None  # as fit: same seed, same batches
        running = RunningLogs()
        stages = self.workers
        for step in range(steps):
            start = (step * batch_size) % n
            stop = min(start + batch_size, n)
            index = numpy.arange(start, stop) if order is None else numpy.sort(order[start:stop])
            cbs.on_train_batch_begin(step)
            t0 = Timer.now()
            micro = [m for m in numpy.array_split(index, self.micro_batches) if len(m)]
            outs = []
            for m, part in enumerate(micro):  # all forwards (GPipe), in flight together
                ref = xs[0][part]
                for stage in stages[:-1]:
                    ref = stage.forward.remote(m, ref)
                outs.append(stages[-1].loss_backward.options(num_returns=2).remote(
                    m, ref, [a[part] for a in ys], len(part) / len(index)))
            for m in range(len(micro)):  # then all backwards
                grad = outs[m][1]
                for stage in reversed(stages[:-1]):
                    grad = stage.backward.remote(m, grad)
            applied = ray.get([stage.apply.remote() for stage in stages])
            logs = ray.get([o[0] for o in outs])
            elapsed = Timer.now() - t0
            busy = max(a[0] for a in applied)  # the busiest stage bounds the step
            self.stats["compute_s"] += busy
            self.stats["comm_s"] += max(elapsed - busy, 0.0)
            self.stats["steps"] += 1
            self.stats["samples"] += len(index)
            for i, a in enumerate(applied):
                self._note(i, a[1])
            batch_logs = {}
            for part, lg in zip(micro, logs):
                for k, v in lg.items():
                    batch_logs[k] = batch_logs.get(k, 0.0) + v * len(part) / len(index)
            running.add(batch_logs, len(index))
            cbs.on_train_batch_end(step, running.means())
            if model.stop_training:
                break
        return running.means()

    def _pull(self, model):
        ray = _runtime.import_ray()
        states = ray.get([s.state.remote() for s in self.workers])
        entries, keys = weight_keys(model)
        slots, iterations = {}, 0
        for (weights, opt_state), key_map in zip(states, self._key_maps):
            for key, value in weights.items():
                entries[key_map[key]].data[...] = value
            slots.update({key_map[k]: v for k, v in opt_state["slots"].items()})
            iterations = opt_state["iterations"]
        model._trainable_for_step()
        set_optimizer_state_by_key(model.optimizer, {"iterations": iterations, "slots": slots},
                                   entries, keys)
