"""The part every strategy shares: checking the inputs, Ray's session, the epoch loop.

A strategy's ``fit`` is ``model.fit``'s bookkeeping (validation data, callbacks, History,
progress bar, ``initial_epoch``, ``stop_training``) around a different inner loop: the
subclass starts its Ray actors (:meth:`Strategy._start`), runs one epoch of updates on them
(:meth:`Strategy._run_epoch`), and copies the trained weights and optimizer state back into
the driver's model (:meth:`Strategy._pull`) at the end of every epoch, so that validation,
callbacks, ``checkpoint=`` files and the model after ``fit`` see the distributed result.
"""
from __future__ import annotations

import math
import uuid

import numpy

from . import _runtime


def _check_count(value, name, who):
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)):
        raise TypeError(f"{who}: {name} must be an int, got {value!r} of type "
                        f"{type(value).__name__}.")
    if value < 1:
        raise ValueError(f"{who}: {name} must be >= 1, got {value}.")
    return int(value)


class WorkerMixin:
    """What every fundl actor answers: its incarnation (a new one after each restart)."""

    def _mark(self, seed=None):
        # A restarted actor re-runs __init__ and so gets a new incarnation: the driver counts
        # restarts by seeing a worker's incarnation change.
        self.incarnation = uuid.uuid4().hex
        if seed is not None:
            # Each worker its own stream (dropout masks, noise): a fresh process would
            # otherwise start every worker from the same default seed.
            from ..tensor import manual_seed

            manual_seed(seed)

    @staticmethod
    def _resolve(boxed):
        """The value of ``[ref]``. Large constructor arguments (data, model file, shard
        indices) are put in the object store by the driver and passed boxed: Ray warns (rightly)
        about top-level constructor arguments in the object store of restartable actors; the
        driver holds the references for the whole fit, so a restarted actor reads them again."""
        from . import _runtime

        return _runtime.import_ray().get(boxed[0])

    def ping(self):
        """``(incarnation, process id, Ray node id)`` of this actor."""
        import os

        from . import _runtime

        node = _runtime.import_ray().get_runtime_context().get_node_id()
        return self.incarnation, os.getpid(), node


class Strategy:
    """Base of the distributed strategies (see :class:`ParameterServerStrategy`).

    Args:
        address: None (a local Ray that fundl starts and stops), ``"auto"``,
            ``"host:port"`` or ``"ray://host:port"`` (join a running cluster).
        resources_per_worker: Ray resources each worker actor claims, e.g. ``{"CPU": 1}``
            (default: none beyond Ray's default, so any number of workers fit on a node).
        checkpoint: a file path; after every epoch the driver's model (with the trained
            weights and optimizer state) is saved there with ``model.save``, so a killed
            driver resumes with ``load_model(path)`` and ``fit(..., initial_epoch=k)``.
        max_restarts: how often Ray restarts a dead worker (its unfinished calls are retried
            on the new process).
        num_cpus, object_store_memory: sizes of a local Ray (``address=None`` only).
        log_to_driver: show the workers' output in this process.

    Attributes:
        workers: the worker actors' Ray handles (during and after ``fit``; dead after it).
        restarts: worker restarts seen during the last ``fit``.
        stats: time spent in the last ``fit``: ``compute_s`` (forward and backward),
            ``comm_s`` (moving weights and gradients: ``ray.get``/``ray.put``, actor calls),
            ``update_s`` (optimizer steps), ``steps`` (updates applied), ``samples``.
    """

    name = "Strategy"

    def __init__(self, address=None, resources_per_worker=None, checkpoint=None, max_restarts=3,
                 num_cpus=None, object_store_memory=None, log_to_driver=False):
        _runtime._check_address(address)
        self.address = address
        self._actor_options = _runtime.actor_options(resources_per_worker, self.name)
        self.resources_per_worker = resources_per_worker
        self.checkpoint = checkpoint
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) \
                or max_restarts < -1:
            raise ValueError(f"{self.name}: max_restarts must be an int >= 0 (or -1: "
                             f"unlimited), got {max_restarts!r}.")
        self.max_restarts = max_restarts
        self.num_cpus = num_cpus
        self.object_store_memory = object_store_memory
        self.log_to_driver = log_to_driver
        self.workers = []
        self.restarts = 0
        self.stats = {}
        self._incarnations = {}

    # -- checks ------------------------------------------------------------------------------
    def _check_model(self, model):
        if not (hasattr(model, "fit") and hasattr(model, "_prepare")):
            raise TypeError(f"{self.name}.fit: expected a fundl model (Sequential or Model), got "
                            f"{type(model).__name__}.")
        if not getattr(model, "compiled", False):
            raise ValueError(f"{self.name}.fit: model '{model.name}' is not compiled; call "
                             "model.compile(optimizer=..., loss=...) before training it on "
                             "workers.")

    def _check_fit(self, model, n, batch_size):
        """Strategy-specific checks after the data is known, before Ray starts."""

    # -- the Ray parts, per strategy ------------------------------------------------------------
    def _start(self, model, data_ref, n, batch_size):
        raise NotImplementedError

    def _run_epoch(self, model, epoch, cbs, shuffle, steps):
        raise NotImplementedError

    def _pull(self, model):
        """Copy the trained weights (and optimizer state) into the driver's model."""

    def _steps(self, n, batch_size, steps_per_epoch):
        return steps_per_epoch or math.ceil(n / batch_size)

    def _learning_rate_changed(self, model, lr):
        """Called when a callback changed ``model.optimizer.learning_rate`` between epochs."""

    def _worker_seed(self, index):
        """A seed for worker ``index``, derived from fundl's generator without drawing from
        it (drawing would change the batches that ``fit`` would have drawn)."""
        from ..tensor import get_rng

        state = get_rng().bit_generator.state.get("state", {})
        base = state.get("state", 0) if isinstance(state, dict) else 0
        return int((int(base) + 7919 * (index + 1)) % (2 ** 32))

    def _box(self, value):
        """``[ref]`` of ``value`` in Ray's store, kept alive until the fit ends."""
        ref = _runtime.import_ray().put(value)
        self._refs.append(ref)
        return [ref]

    def _actor(self, cls, **extra):
        """A Ray actor class for ``cls`` with the strategy's restart policy and resources."""
        ray = _runtime.import_ray()
        options = dict(self._actor_options)
        options.update(max_restarts=self.max_restarts,
                       max_task_retries=-1 if self.max_restarts else 0)
        options.update(extra)
        return ray.remote(cls).options(**options)

    def _note(self, worker_index, incarnation):
        """Count a restart when a worker answers from a new incarnation (a new process)."""
        seen = self._incarnations.setdefault(worker_index, incarnation)
        if seen != incarnation:
            self._incarnations[worker_index] = incarnation
            self.restarts += 1

    def _stop(self):
        ray = _runtime.import_ray()
        for handle in getattr(self, "_all_actors", []):
            try:
                ray.kill(handle, no_restart=True)
            except Exception:  # noqa: BLE001 - an actor already gone is what we want
                pass
        self._all_actors = []
        self._refs = []

    # -- fit ------------------------------------------------------------------------------------
    def fit(self, model, x=None, y=None, batch_size=None, epochs=1, verbose="auto",
            callbacks=None, validation_split=0.0, validation_data=None, shuffle=True,
            initial_epoch=0, steps_per_epoch=None, class_weight=None, sample_weight=None,
            validation_batch_size=None, validation_freq=1):
        """Train ``model`` on Ray workers; the arguments and result are ``model.fit``'s.

        ``model.fit(x, y, ..., strategy=S)`` calls this. ``batch_size`` is the number of
        samples behind each weight update (split among the workers by the synchronous
        strategies; each push of an asynchronous worker uses that many).

        Returns:
            A ``History``, as ``model.fit``; the model holds the trained weights afterwards.

        Raises:
            ValueError: the model is not compiled, or bad arguments; checked before Ray starts.
            NotImplementedError: ``class_weight`` or ``sample_weight`` (not supported here).

        Example:
            >>> history = strategy.fit(model, x, y, batch_size=64, epochs=2)
        """
        from ..callbacks import CallbackList

        self._check_model(model)
        if class_weight is not None or sample_weight is not None:
            raise NotImplementedError(f"{self.name}.fit: class_weight and sample_weight are not "
                                      "supported by distributed training; weight the loss "
                                      "with a Loss of your own or resample the data.")
        xs, ys, n = model._prepare(x, y, "fit")
        batch_size = int(batch_size or 32)
        if batch_size <= 0:
            raise ValueError(f"{self.name}.fit: batch_size must be positive, got {batch_size}.")
        if initial_epoch < 0:
            raise ValueError(f"{self.name}.fit: initial_epoch must be >= 0, got "
                             f"{initial_epoch}.")
        if steps_per_epoch is not None:
            steps_per_epoch = _check_count(steps_per_epoch, "steps_per_epoch", self.name)
        verbose = 1 if verbose == "auto" else int(verbose)
        val = None
        if validation_data is not None:
            val = tuple(validation_data)
            if len(val) != 2:
                raise ValueError(f"{self.name}.fit: validation_data must be (x_val, y_val).")
            vxs, vys, _ = model._prepare(val[0], val[1], "fit (validation_data)")
            val = (vxs, vys)
        elif validation_split:
            if not 0 < validation_split < 1:
                raise ValueError(f"{self.name}.fit: validation_split must be in (0, 1), got "
                                 f"{validation_split}.")
            split = int(n * (1 - validation_split))
            if split in (0, n):
                raise ValueError(f"{self.name}.fit: validation_split={validation_split} leaves "
                                 f"no training or no validation samples out of {n}.")
            val = ([a[split:] for a in xs], [a[split:] for a in ys])
            xs, ys, n = [a[:split] for a in xs], [a[:split] for a in ys], split
        self._check_fit(model, n, batch_size)
        self._n, self._batch_size = n, batch_size

        ray = _runtime.import_ray()
        self.restarts, self._incarnations, self.workers = 0, {}, []
        self.stats = {"compute_s": 0.0, "comm_s": 0.0, "update_s": 0.0, "steps": 0,
                      "samples": 0}
        started = _runtime.connect(self.address, self.num_cpus, self.object_store_memory,
                                   self.log_to_driver)
        try:
            # Put once: every worker on this node reads the same memory (zero-copy), a worker
            # on another node gets one copy.
            data_ref = ray.put((xs, ys))
            self._refs = [data_ref]
            self._start(model, data_ref, n, batch_size)
            steps = self._steps(n, batch_size, steps_per_epoch)
            cbs = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0,
                               model=model, verbose=verbose, epochs=epochs, steps=steps)
            model.stop_training = False
            lr = _float_lr(model)
            cbs.on_train_begin()
            for epoch in range(initial_epoch, epochs):
                cbs.on_epoch_begin(epoch)
                if _float_lr(model) != lr:  # ReduceLROnPlateau, LearningRateScheduler, ...
                    lr = _float_lr(model)
                    self._learning_rate_changed(model, lr)
                logs = self._run_epoch(model, epoch, cbs, shuffle, steps)
                self._pull(model)
                if val is not None and (epoch + 1) % validation_freq == 0:
                    val_logs = model.evaluate(_one(val[0]), _one(val[1]), verbose=0,
                                              batch_size=validation_batch_size or batch_size,
                                              return_dict=True)
                    logs.update({f"val_{k}": v for k, v in val_logs.items()})
                if self.checkpoint is not None:
                    model.save(self.checkpoint)
                cbs.on_epoch_end(epoch, logs)
                if model.stop_training:
                    break
            cbs.on_train_end()
        finally:
            self._stop()
            _runtime.disconnect(started)
        model.history = cbs.history
        return cbs.history


def _one(arrays):
    return arrays[0] if len(arrays) == 1 else arrays


def _float_lr(model):
    try:
        return model.optimizer.learning_rate
    except Exception:  # noqa: BLE001 - a schedule that fails here fails in training too
        return None


class RunningLogs:
    """Sample-weighted running means of the per-batch logs (as ``fit`` reports them)."""

    def __init__(self):
        self.totals, self.seen = {}, 0

    def add(self, logs, count):
        self.seen += count
        for k, v in logs.items():
            self.totals[k] = self.totals.get(k, 0.0) + v * count

    def means(self):
        return {k: v / max(self.seen, 1) for k, v in self.totals.items()}
