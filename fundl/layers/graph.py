"""Graph layers: GraphConv, Kipf & Welling's graph convolution (GCN, ICLR 2017)."""
from __future__ import annotations

import numpy

from .. import activations, initializers, regularizers
from .. import functional as F
from ..ops.graph import SparseMatrix
from .base import Layer, deserialize_object, serialize_object


class GraphConv(Layer):
    """A graph convolution: ``activation(A @ x @ kernel + bias)`` for a sparse propagation A.

    With ``A = fl.normalized_adjacency(edges, N)`` (``D^-1/2 (A + I) D^-1/2``) this is the GCN
    layer of Kipf & Welling (2017). The graph is one batch of N nodes, with no batch axis
    (Spektral's "single mode"): call the layer as ``layer([x, adjacency])`` with x a Tensor
    (N, features) and the adjacency a :class:`~fundl.functional.SparseMatrix` (N, N), a
    constant. The two products run in the cheaper order: ``A @ (x @ kernel)`` when
    ``units <= features`` (the sparse product then moves the narrower matrix), else
    ``(A @ x) @ kernel``.

    Args:
        units: the output size per node.
        activation: a name (``"relu"``, ...) or a function; None for linear.
        use_bias: add a bias vector.
        kernel_initializer, bias_initializer: names or initializer objects.
        kernel_regularizer, bias_regularizer, activity_regularizer: optional penalties.

    Input ``[x (N, F), adjacency (N, N)]`` -> output (N, units); weights ``kernel (F, units)``
    and ``bias (units,)``.

    Example:
        >>> a = fl.normalized_adjacency(graph.edges, graph.x.shape[0])
        >>> h = GraphConv(16, activation="relu")([fl.tensor(graph.x), a])   # (N, 16)
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, numpy.integer)) or units <= 0:
            raise ValueError(f"GraphConv: units must be a positive integer, got {units!r}.")
        self.units = int(units)
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = deserialize_object(initializers, kernel_initializer)
        self.bias_initializer = deserialize_object(initializers, bias_initializer)
        self.kernel_regularizer = deserialize_object(regularizers, kernel_regularizer)
        self.bias_regularizer = deserialize_object(regularizers, bias_regularizer)
        self.activity_regularizer = deserialize_object(regularizers, activity_regularizer)

    def __call__(self, inputs, training=None, **kwargs):
        """Run on ``[x, adjacency]``; the adjacency travels to :meth:`call` as a keyword."""
        if (not isinstance(inputs, (list, tuple)) or len(inputs) != 2
                or not isinstance(inputs[1], SparseMatrix)):
            got = ([type(t).__name__ for t in inputs] if isinstance(inputs, (list, tuple))
                   else type(inputs).__name__)
            raise TypeError(f"GraphConv '{self.name}': expected [x, adjacency] with x of shape "
                            "(nodes, features) and adjacency a SparseMatrix (from "
                            f"fl.normalized_adjacency), got {got}.")
        return super().__call__(inputs[0], training=training, adjacency=inputs[1], **kwargs)

    def build(self, input_shape):
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(f"GraphConv '{self.name}': expected node features of shape (nodes, "
                             f"features) with a known feature size, got {input_shape}.")
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units),
                                      self.kernel_initializer, regularizer=self.kernel_regularizer)
        self.bias = (self.add_weight("bias", (self.units,), self.bias_initializer,
                                     regularizer=self.bias_regularizer) if self.use_bias else None)

    def call(self, x, training=False, adjacency=None):
        if x.ndim != 2 or x.shape[-1] != self.kernel.shape[0]:
            raise ValueError(
                f"GraphConv '{self.name}': expected node features of shape (nodes, "
                f"{self.kernel.shape[0]}) (set when the layer was built), got {x.shape}.")
        if self.units <= self.kernel.shape[0]:
            y = F.sparse_matmul(adjacency, F.matmul(x, self.kernel))
            if self.bias is not None:
                y = y + self.bias
        else:
            y = F.linear(F.sparse_matmul(adjacency, x), self.kernel, self.bias)
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        if self.built and input_shape[-1] != self.kernel.shape[0]:
            raise ValueError(f"expected node features of size {self.kernel.shape[0]}, got "
                             f"{input_shape}.")
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": serialize_object(self.kernel_initializer),
                "bias_initializer": serialize_object(self.bias_initializer),
                "kernel_regularizer": serialize_object(self.kernel_regularizer),
                "bias_regularizer": serialize_object(self.bias_regularizer),
                "activity_regularizer": serialize_object(self.activity_regularizer)}
