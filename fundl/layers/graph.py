"""Graph layers: GraphConv, Kipf & Welling's graph convolution (GCN, ICLR 2017)."""
from __future__ import annotations

from .. import functional as F
from ..ops.graph import SparseMatrix
from ._weights import add_weight_with_constraint as _add_weight
from .core import Dense


class GraphConv(Dense):
    """A graph convolution: ``activation(A @ x @ kernel + bias)`` for a sparse propagation A.

    With ``A = fl.normalized_adjacency(edges, N)`` (``D^-1/2 (A + I) D^-1/2``) this is the GCN
    layer of Kipf & Welling (2017). The graph is one batch of N nodes, with no batch axis
    (Spektral's "single mode"): call the layer as ``layer([x, adjacency])`` with x a Tensor
    (N, features) and the adjacency a :class:`~fundl.functional.SparseMatrix` (N, N), a
    constant. The two products run in the cheaper order: ``A @ (x @ kernel)`` when
    ``units <= features`` (the sparse product then moves the narrower matrix), else
    ``(A @ x) @ kernel``.

    Its constructor arguments, weights, configuration and output shape are :class:`Dense`'s
    (a graph convolution is a Dense layer whose input is first propagated along the graph),
    plus ``self_kernel``.

    The lecture's node-wise form, ``h_i' = act(h_i W0 + sum_{j in N(i)} h_j W1 / c_ij)``, is
    ``GraphConv(units, self_kernel=True)`` with the neighbours-only propagation
    ``fl.normalized_adjacency(edges, N, self_loops=False)`` (``c_ij = sqrt(d_i d_j)``): a node's
    own features then get a weight ``self_kernel`` (W0) of their own, apart from its
    neighbours' ``kernel`` (W1). Kipf & Welling's form ties the two (one kernel, self-loops in
    the propagation).

    Args:
        units: the output size per node.
        self_kernel: give each node's own features a separate weight W0 (the node-wise form).
        activation: a name (``"relu"``, ...) or a function; None for linear.
        use_bias: add a bias vector.
        kernel_initializer, bias_initializer: names or initializer objects.
        kernel_regularizer, bias_regularizer, activity_regularizer: optional penalties.

    Input ``[x (N, F), adjacency (N, N)]`` -> output (N, units); weights ``kernel (F, units)``
    and ``bias (units,)``.

    In the functional API the node features are an ``Input(shape=(features,))`` and the graph
    is a constant: train with ``fit(x, y, batch_size=N, shuffle=False)`` (every batch the whole
    graph) and ``sample_weight`` marking the labelled nodes. Such a model cannot be saved whole
    (its config cannot hold the graph): ``save_weights``, rebuild it in code, ``load_weights``.

    Example:
        >>> a = fl.normalized_adjacency(graph.edges, graph.x.shape[0])
        >>> h = GraphConv(16, activation="relu")([fl.tensor(graph.x), a])   # (N, 16)
        >>> inputs = Input(shape=(graph.x.shape[1],))                       # functional
        >>> model = Model(inputs, GraphConv(7, activation="softmax")([inputs, a]))
    """

    supports_masking = False  # nodes are not time steps

    def __init__(self, units, self_kernel=False, **kwargs):
        super().__init__(units, **kwargs)
        if not isinstance(self_kernel, bool):
            raise TypeError(f"GraphConv '{self.name}': self_kernel must be True or False, got "
                            f"{self_kernel!r}.")
        self.self_kernel = self_kernel

    def get_config(self):
        return {**super().get_config(), "self_kernel": self.self_kernel}

    def __call__(self, inputs, training=None, **kwargs):
        """Run on ``[x, adjacency]``; the adjacency travels to :meth:`call` as a keyword.

        ``x`` may be symbolic (an ``Input`` of shape ``(features,)``): the functional graph then
        keeps the adjacency as a constant of this call and replays it as
        ``layer(x, adjacency=...)``, which is accepted too.
        """
        if isinstance(kwargs.get("adjacency"), SparseMatrix) and not isinstance(inputs,
                                                                                 (list, tuple)):
            return super().__call__(inputs, training=training, **kwargs)
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
        self.kernel = _add_weight(self, "kernel", (input_shape[-1], self.units),
                                  self.kernel_initializer, self.kernel_regularizer,
                                  self.kernel_constraint)
        self.bias = (_add_weight(self, "bias", (self.units,), self.bias_initializer,
                                 self.bias_regularizer, self.bias_constraint)
                     if self.use_bias else None)
        self.self_weight = (_add_weight(self, "self_kernel", (input_shape[-1], self.units),
                                        self.kernel_initializer, self.kernel_regularizer,
                                        self.kernel_constraint)
                            if self.self_kernel else None)

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
        if self.self_weight is not None:
            y = y + F.matmul(x, self.self_weight)
        return self.activation(y)
