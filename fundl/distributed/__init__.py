"""Distributed training on Ray: a parameter server, data parallelism, pipeline parallelism.

``model.fit(x, y, ..., strategy=S)`` trains across Ray worker processes (on this machine or a
cluster) with one of

- :class:`ParameterServerStrategy` (the lecture's parameter server: workers pull weights,
  compute gradients on their shard, push them; ``mode="async"`` applies each push at once,
  ``mode="sync"`` averages one push per worker per step),
- :class:`DataParallelStrategy` (synchronous gradient averaging: the result of one process
  with the global batch),
- :class:`PipelineStrategy` (model parallelism: consecutive layer groups on different
  workers, micro-batches in flight, GPipe-style).

Ray is an optional dependency (``pip install 'fundl[distributed]'``), imported only when a
strategy trains. Workers rebuild the model from its saved config (no pickled fundl objects);
weights and gradients move as dicts of NumPy arrays through Ray's object store. A worker that
dies is restarted by Ray and training goes on from the current weights. docs/distributed.md
describes the design and the measured scaling.

Example:
    >>> import fundl as fl
    >>> model.fit(x, y, epochs=3, batch_size=64,
    ...           strategy=fl.distributed.ParameterServerStrategy(num_workers=2))
"""
from ._runtime import connect, disconnect
from .base import Strategy
from .cluster import LocalCluster
from .data_parallel import DataParallelStrategy
from .parameter_server import ParameterServerStrategy
from .pipeline import PipelineStrategy

__all__ = ["ParameterServerStrategy", "DataParallelStrategy", "PipelineStrategy", "Strategy",
           "LocalCluster", "connect", "disconnect"]
