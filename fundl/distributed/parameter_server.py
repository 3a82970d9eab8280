"""The parameter server of the lecture, on Ray actors.

::

    server actor: the weights, the optimizer and its state; a version = updates applied
    worker i:     loop { version, w = server.pull(); g = grad(loss(w, next batch of shard i));
                         server.push(g, version) }

``mode="async"``: the server applies each push the moment it arrives (Hogwild-style), so a
gradient may have been computed on weights that are already ``staleness = version_now -
version_pulled`` updates old. With ``max_staleness=s`` the server refuses a push staler than
``s``; the worker then pulls the fresh weights and recomputes the same batch (up to
``_RETRIES`` times, after which the batch is skipped and counted in
``strategy.stats["dropped"]``), so no sample is silently lost to staleness.

``mode="sync"``: each step every worker computes on its part of the step's ``batch_size``
samples; the server waits for one push per worker and applies their sample-weighted mean
(one update per step, like :class:`DataParallelStrategy`, but with the weights and the
optimizer living in the server actor).

Fault tolerance: workers are Ray actors with ``max_restarts``; the call that was running on a
dead worker is retried on its new process (Ray's ``max_task_retries``), which pulls the
server's current weights, so nothing is lost but the update in flight. Each push carries a tag
(epoch, step, worker) and the server ignores a tag it has seen, so a retried call never
applies a gradient twice.
"""
from __future__ import annotations

import math
import uuid

import numpy

from . import _runtime
from ._replica import (Replica, Timer, model_to_bytes, optimizer_state_by_key,
                       set_optimizer_state_by_key, weight_keys, weighted_mean)
from .base import RunningLogs, Strategy, WorkerMixin, _check_count

_RETRIES = 3  # recomputations of a batch whose push was too stale (async, max_staleness)


class _ParameterServer:
    """The weights, the optimizer (from the compiled model's config) and its state."""

    def __init__(self, spec, mode, max_staleness, worker_args=None):
        # What the workers need to (re)build themselves: boxed refs of the worker model file,
        # the data and each shard. Workers ask for them in __init__ (so a restarted worker
        # gets them again) instead of taking refs as constructor arguments, which Ray warns
        # about for restartable actors; the server, never restarted, can hold them.
        self.worker_args = worker_args or []
        self.replica = Replica(spec)
        self.optimizer = self.replica.model.optimizer
        self.optimizer.build(self.replica.trainable)
        self.mode, self.max_staleness = mode, max_staleness
        self.version = 0
        self.applied = set()
        self.pending = {}
        self.dropped = 0
        self.staleness_sum = 0
        self.pushes = 0
        self.update_s = 0.0
        self.busy_s = 0.0
        self._published = (None, None)

    def pull(self):
        """``(version, [ref])``: the weights ``{key: array}`` of this version in Ray's store.

        The weights are put into the store once per version and every worker pulling that
        version reads the same object (zero-copy on the same node); the ref is boxed so
        that Ray passes it on rather than fetching it here.
        """
        start = Timer.now()
        if self._published[0] != self.version:
            ray = _runtime.import_ray()
            self._published = (self.version, [ray.put(
                {k: w.data for k, w in self.replica.entries.items()})])
        self.busy_s += Timer.now() - start
        return self._published

    def _apply(self, grads, state):
        start = Timer.now()
        self.optimizer.apply([grads[k] for k in self.replica.trainable_keys],
                             self.replica.trainable)
        if state:
            self.replica.set_weights(state)
        self.version += 1
        self.update_s += Timer.now() - start

    def push(self, grads, count, version, tag, state, expected):
        """Take one worker's gradients computed on weights of ``version``.

        Returns:
            True when the push was applied (or is a repeat of an applied one), False when
            it was too stale (async with ``max_staleness``).
        """
        start = Timer.now()
        try:
            return self._push(grads, count, version, tag, state, expected)
        finally:
            self.busy_s += Timer.now() - start

    def _push(self, grads, count, version, tag, state, expected):
        if tag in self.applied:
            return True
        if self.mode == "async":
            staleness = self.version - version
            if self.max_staleness is not None and staleness > self.max_staleness:
                return False
            self.applied.add(tag)
            self.staleness_sum += staleness
            self.pushes += 1
            self._apply(grads, state)
            return True
        self.applied.add(tag)
        waiting = self.pending.setdefault(version, [])
        waiting.append((grads, count, state))
        if len(waiting) == expected:
            del self.pending[version]
            counts = [c for _, c, _ in waiting]
            mean_state = weighted_mean([s for _, _, s in waiting], counts) if state else None
            self._apply(weighted_mean([g for g, _, _ in waiting], counts), mean_state)
            self.pushes += 1
        return True

    def worker_setup(self, index):
        """``(model file, data, shard)`` of worker ``index``, each a boxed ref."""
        return self.worker_args[index]

    def skipped(self):
        self.dropped += 1

    def begin_epoch(self):
        self.applied.clear()

    def set_learning_rate(self, lr):
        self.optimizer.learning_rate = lr

    def state(self):
        """Weights, optimizer state by key, and counters."""
        return ({k: w.data for k, w in self.replica.entries.items()},
                optimizer_state_by_key(self.optimizer, self.replica.trainable_keys),
                {"version": self.version, "dropped": self.dropped, "update_s": self.update_s,
                 "busy_s": self.busy_s,
                 "mean_staleness": self.staleness_sum / max(self.pushes, 1)})


class _ParameterServerWorker(WorkerMixin):
    """A replica with one shard of the data; pulls, computes, pushes."""

    def __init__(self, server_name, worker_index, mode, seed=None):
        self._mark(seed)
        ray = _runtime.import_ray()
        # The server by name, not a handle argument: Ray counts a handle among the
        # constructor arguments it warns about for restartable actors.
        server = ray.get_actor(server_name)
        spec, data, shard = ray.get(server.worker_setup.remote(worker_index))
        self.replica = Replica(spec, self._resolve(data))
        self.shard = numpy.asarray(self._resolve(shard))
        self.server = server
        self.worker_index = worker_index
        self.mode = mode
        self._order = (None, None)

    def _epoch_order(self, epoch, seed, shuffle):
        if self._order[0] != (epoch, seed):
            # The same order after a restart (seeded by epoch), so a retried step takes the
            # batch the dead process was working on.
            order = (numpy.random.default_rng([seed, self.worker_index]).permutation(self.shard)
                     if shuffle else self.shard)
            self._order = ((epoch, seed), order)
        return self._order[1]

    def step(self, epoch, step, batch_size, shuffle, seed, expected):
        """One pull-compute-push round on the ``step``-th batch of this worker's shard."""
        ray = _runtime.import_ray()
        order = self._epoch_order(epoch, seed, shuffle)
        start = (step * batch_size) % len(order)
        index = numpy.sort(order[start:start + batch_size])
        xs, ys = self.replica.batch(index)
        compute = comm = 0.0
        tag = (epoch, step, self.worker_index)
        for _ in range(_RETRIES + 1):
            t0 = Timer.now()
            version, box = ray.get(self.server.pull.remote())
            weights = ray.get(box[0])
            t1 = Timer.now()
            self.replica.set_weights(weights)
            grads, logs = self.replica.gradients(xs, ys)
            state = self.replica.state()
            t2 = Timer.now()
            accepted = ray.get(self.server.push.remote(grads, len(index), version, tag, state,
                                                       expected))
            t3 = Timer.now()
            compute += t2 - t1
            comm += (t1 - t0) + (t3 - t2)
            if accepted:
                break
        else:
            ray.get(self.server.skipped.remote())
        return logs, len(index), compute, comm, self.incarnation


class ParameterServerStrategy(Strategy):
    """Train with a parameter-server actor and ``num_workers`` worker actors on Ray.

    The server holds the weights and the optimizer (built from the compiled model's
    optimizer config, with its state); each worker holds a model replica and a shard of the
    data, pulls the weights, computes the gradient of a batch of its shard and pushes it.

    Args:
        num_workers: worker actors (>= 1).
        mode: ``"async"`` (each push is applied at once; ``batch_size`` samples per push) or
            ``"sync"`` (each step the workers split ``batch_size`` samples and the server
            applies the mean of one push per worker).
        max_staleness: async only: the most updates a pushed gradient may lag behind the
            server's weights; a staler push is refused and recomputed on fresh weights (see
            the module notes). None: no bound.
        address, resources_per_worker, checkpoint, max_restarts, num_cpus,
            object_store_memory, log_to_driver: as :class:`fundl.distributed.Strategy`.

    An epoch is one pass of every worker over its shard (``steps_per_epoch``, when given,
    counts the updates of an epoch). After ``fit`` the model holds the server's weights and
    optimizer state; ``stats`` adds ``mean_staleness`` and ``dropped``.

    Example:
        >>> strategy = fl.distributed.ParameterServerStrategy(num_workers=2, mode="async")
        >>> model.fit(x, y, batch_size=64, epochs=3, strategy=strategy)
        >>> strategy.restarts
        0
    """

    name = "ParameterServerStrategy"

    def __init__(self, num_workers=2, mode="async", max_staleness=None, address=None,
                 resources_per_worker=None, checkpoint=None, max_restarts=3, num_cpus=None,
                 object_store_memory=None, log_to_driver=False):
        self.num_workers = _check_count(num_workers, "num_workers", self.name)
        if mode not in ("async", "sync"):
            raise ValueError(f"{self.name}: mode must be 'async' or 'sync', got {mode!r}.")
        self.mode = mode
        if max_staleness is not None:
            if isinstance(max_staleness, bool) or not isinstance(max_staleness, int) \
                    or max_staleness < 0:
                raise ValueError(f"{self.name}: max_staleness must be None or an int >= 0, "
                                 f"got {max_staleness!r}.")
            if mode == "sync":
                raise ValueError(f"{self.name}: max_staleness applies to mode='async' only; "
                                 "synchronous updates are never stale.")
        self.max_staleness = max_staleness
        super().__init__(address, resources_per_worker, checkpoint, max_restarts, num_cpus,
                         object_store_memory, log_to_driver)

    def _check_fit(self, model, n, batch_size):
        if n < self.num_workers:
            raise ValueError(f"{self.name}.fit: {n} training samples cannot be shared by "
                             f"{self.num_workers} workers; use fewer workers.")

    def _local_batch(self):
        if self.mode == "async":
            return self._batch_size
        return math.ceil(self._batch_size / self.num_workers)

    def _steps(self, n, batch_size, steps_per_epoch):
        shard = math.ceil(n / self.num_workers)
        per_worker = math.ceil(shard / self._local_batch())
        if self.mode == "async":
            if steps_per_epoch:
                per_worker = math.ceil(steps_per_epoch / self.num_workers)
            self._per_worker = per_worker
            return per_worker * self.num_workers
        self._per_worker = steps_per_epoch or per_worker
        return self._per_worker

    def _start(self, model, data_ref, n, batch_size):
        from ..tensor import get_rng

        ray = _runtime.import_ray()
        spec = self._box(model_to_bytes(model, include_optimizer=True, who=self.name))
        worker_spec = self._box(model_to_bytes(model, include_optimizer=False, who=self.name))
        shards = numpy.array_split(get_rng().permutation(n), self.num_workers)
        worker_args = [(worker_spec, [data_ref], self._box(shard)) for shard in shards]
        # The server is not restarted: it is the state; a checkpoint= file is its backup.
        name = f"fundl-parameter-server-{uuid.uuid4().hex}"
        self.server = ray.remote(_ParameterServer).options(max_restarts=0, name=name).remote(
            spec, self.mode, self.max_staleness, worker_args)
        actor = self._actor(_ParameterServerWorker, scheduling_strategy="SPREAD")
        self.workers = [actor.remote(name, i, self.mode, self._worker_seed(i))
                        for i in range(self.num_workers)]
        self._all_actors = [self.server] + list(self.workers)
        self._server_update_s = 0.0

    def _learning_rate_changed(self, model, lr):
        _runtime.import_ray().get(self.server.set_learning_rate.remote(lr))

    def _record(self, running, result, worker_index):
        logs, count, compute, comm, incarnation = result
        self._note(worker_index, incarnation)
        running.add(logs, count)
        self.stats["compute_s"] += compute
        self.stats["comm_s"] += comm
        self.stats["samples"] += count

    def _run_epoch(self, model, epoch, cbs, shuffle, steps):
        from ..tensor import get_rng

        ray = _runtime.import_ray()
        seed = int(get_rng().integers(2 ** 31))
        ray.get(self.server.begin_epoch.remote())
        running = RunningLogs()
        batch = self._local_batch()
        k = self.num_workers
        if self.mode == "sync":
            for step in range(self._per_worker):
                cbs.on_train_batch_begin(step)
                results = ray.get([w.step.remote(epoch, step, batch, shuffle, seed, k)
                                   for w in self.workers])
                for i, r in enumerate(results):
                    self._record(running, r, i)
                cbs.on_train_batch_end(step, running.means())
                if model.stop_training:
                    break
            return running.means()
        # async: each worker runs at its own pace; the driver only hands out step numbers and
        # collects results as they come (ray.wait), so callbacks see every push.
        pending = {}
        for i, w in enumerate(self.workers):
            pending[w.step.remote(epoch, 0, batch, shuffle, seed, 1)] = (i, 0)
        done = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            i, step = pending.pop(ready[0])
            cbs.on_train_batch_begin(done)
            self._record(running, ray.get(ready[0]), i)
            cbs.on_train_batch_end(done, running.means())
            done += 1
            if step + 1 < self._per_worker and not model.stop_training:
                pending[self.workers[i].step.remote(epoch, step + 1, batch, shuffle, seed,
                                                    1)] = (i, step + 1)
        return running.means()

    def _pull(self, model):
        ray = _runtime.import_ray()
        weights, opt_state, counters = ray.get(self.server.state.remote())
        entries, keys = weight_keys(model)
        for key, value in weights.items():
            entries[key].data[...] = value
        model._trainable_for_step()  # registers the weights with the optimizer, in order
        set_optimizer_state_by_key(model.optimizer, opt_state, entries, keys)
        self.stats["steps"] = counters["version"]
        self.stats["update_s"] = counters["update_s"]
        self.stats["server_busy_s"] = counters["busy_s"]
        self.stats["dropped"] = counters["dropped"]
        self.stats["mean_staleness"] = counters["mean_staleness"]
