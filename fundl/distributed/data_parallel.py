"""Synchronous data parallelism: every step, each worker takes a part of the global batch.

One step::

    driver:  weights --ray.put--> object store            (one copy, read by every worker)
    worker i: gradient of the mean loss over its n_i samples of the batch
    driver:  g = sum_i (n_i / n) g_i ;  optimizer.apply(g)   (the all-reduce, through the driver)

Because the loss is a mean over samples, ``sum_i (n_i / n) g_i`` is exactly the gradient of
the mean over the whole batch, so the weights follow the same path as one process training
with the global batch (up to float rounding): tested to 1e-5 with plain SGD. The optimizer
and its state stay in the driver's model.
"""
from __future__ import annotations

import numpy

from . import _runtime
from ._replica import Replica, Timer, model_to_bytes, weight_keys, weighted_mean
from .base import RunningLogs, Strategy, WorkerMixin, _check_count


class _DataParallelWorker(WorkerMixin):
    """A model replica next to the whole data set (shared, read-only, in the object store)."""

    def __init__(self, seed=None):
        self._mark(seed)
        self.replica = None

    def step(self, weights, index, setup):
        """Gradients of the batch ``index`` with ``weights``.

        ``setup`` is ``([model file ref], [data ref])``: every call carries these two
        references (a few bytes), and the first call of a process rebuilds the replica from
        them. So a restarted worker rebuilds itself on its retried call, and no object-store
        reference is a constructor argument (which Ray warns about for restartable actors).

        Returns:
            ``(grads, state, logs, count, compute seconds, incarnation)``.
        """
        if self.replica is None:
            spec, data = setup
            self.replica = Replica(spec, self._resolve(data))
        start = Timer.now()
        self.replica.set_weights(weights)
        xs, ys = self.replica.batch(index)
        grads, logs = self.replica.gradients(xs, ys)
        return (grads, self.replica.state(), logs, len(index), Timer.now() - start,
                self.incarnation)


class DataParallelStrategy(Strategy):
    """Synchronous data parallelism: the global batch split over ``num_workers`` Ray workers.

    Each step the driver puts the weights into Ray's object store once, every worker computes
    the gradient of its part of the batch, and the driver averages them weighted by sample
    counts and applies the model's own optimizer. With any optimizer the result is that of
    one process training with the same global batch (tested to 1e-5 with SGD).

    Args:
        num_workers: the number of worker actors (>= 1).
        address, resources_per_worker, checkpoint, max_restarts, num_cpus,
            object_store_memory, log_to_driver: as :class:`fundl.distributed.Strategy`.

    Batches follow ``fit``'s order exactly (the same permutation from ``fundl.manual_seed``),
    so a seeded run is reproducible. Layers with moving statistics (BatchNormalization) get
    the sample-weighted mean of the workers' statistics after each step.

    Example:
        >>> model.fit(x, y, batch_size=128, epochs=3,
        ...           strategy=fl.distributed.DataParallelStrategy(num_workers=2))
    """

    name = "DataParallelStrategy"

    def __init__(self, num_workers=2, address=None, resources_per_worker=None, checkpoint=None,
                 max_restarts=3, num_cpus=None, object_store_memory=None, log_to_driver=False):
        self.num_workers = _check_count(num_workers, "num_workers", self.name)
        super().__init__(address, resources_per_worker, checkpoint, max_restarts, num_cpus,
                         object_store_memory, log_to_driver)

    def _start(self, model, data_ref, n, batch_size):
        spec = self._box(model_to_bytes(model, include_optimizer=False, who=self.name))
        self._setup = (spec, [data_ref])
        actor = self._actor(_DataParallelWorker, scheduling_strategy="SPREAD")
        self.workers = [actor.remote(self._worker_seed(i)) for i in range(self.num_workers)]
        self._all_actors = list(self.workers)
        self._entries, self._keys = weight_keys(model)
        self._trainable = model._trainable_for_step()[0]  # also builds the optimizer's slots

    def _run_epoch(self, model, epoch, cbs, shuffle, steps):
        from ..tensor import get_rng

        ray = _runtime.import_ray()
        n, batch_size = self._n, self._batch_size
        order = get_rng().permutation(n) if shuffle else None  # as fit: same seed, same batches
        running = RunningLogs()
        stats = self.stats
        for step in range(steps):
            start = (step * batch_size) % n
            stop = min(start + batch_size, n)
            if order is None:
                index = numpy.arange(start, stop)
            else:
                index = numpy.sort(order[start:stop])
            cbs.on_train_batch_begin(step)
            t0 = Timer.now()
            weights = ray.put({k: w.data for k, w in self._entries.items()})
            parts = [p for p in numpy.array_split(index, self.num_workers) if len(p)]
            results = ray.get([w.step.remote(weights, p, self._setup)
                               for w, p in zip(self.workers, parts)])
            t1 = Timer.now()
            counts = [r[3] for r in results]
            grads = weighted_mean([r[0] for r in results], counts)
            model.optimizer.apply([grads[k] for k in self._keys], self._trainable)
            if results[0][1]:
                for key, value in weighted_mean([r[1] for r in results], counts).items():
                    self._entries[key].data[...] = value
            t2 = Timer.now()
            compute = max(r[4] for r in results)  # the slowest worker is the critical path
            stats["compute_s"] += compute
            stats["comm_s"] += max(t1 - t0 - compute, 0.0)
            stats["update_s"] += t2 - t1
            stats["steps"] += 1
            stats["samples"] += len(index)
            for i, r in enumerate(results):
                self._note(i, r[5])
            batch_logs = {}
            for logs, count in zip((r[2] for r in results), counts):
                for k, v in logs.items():
                    batch_logs[k] = batch_logs.get(k, 0.0) + v * count / len(index)
            running.add(batch_logs, len(index))
            cbs.on_train_batch_end(step, running.means())
            if model.stop_training:
                break
        return running.means()
