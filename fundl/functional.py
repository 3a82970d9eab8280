"""The public lower-case API of differentiable operations (``fundl.functional`` and ``fl.*``).

Each function builds one op (a :class:`~fundl.autograd.Function`) and applies it; the ops
live in :mod:`fundl.ops`, one family per module. The operators and methods of
:class:`~fundl.tensor.Tensor` (``x + y``, ``x.sum()``, ...) are defined on the class and call
these functions.
"""
from __future__ import annotations

from .ops.activation import elu, gaussian, leaky_relu, relu, sigmoid, softplus, step, tanh
from .ops.conv import conv, conv1d, conv2d, conv2d_transpose, conv3d, zero_pad
from .ops.device import to
from .ops.graph import SparseMatrix, normalized_adjacency, sparse_matmul
from .ops.elementwise import (
    abs, add, clip, div, equal, exp, greater, greater_equal, less, less_equal, log, maximum,
    minimum, mul, neg, not_equal, pow, sqrt, sub, where,
)
from .ops.keras_ops import (
    argmax, argmin, cast, convert_to_numpy, convert_to_tensor, divide, erf, expm1, log1p,
    multiply, negative, norm, one_hot, power, shape, sign, square, std, subtract,
)
from .ops.linalg import linear, matmul
from .ops.modern_activation import (
    gelu, hard_sigmoid, hard_silu, hard_swish, mish, relu6, selu, silu, softsign, swish,
)
from .ops.nn import log_softmax, sigmoid_binary_cross_entropy, softmax, softmax_cross_entropy
from .ops.norm import batch_norm, layer_norm, local_response_norm
from .ops.pool import (
    avg_pool, avg_pool1d, avg_pool2d, avg_pool3d, global_avg_pool, global_max_pool, max_pool,
    max_pool1d, max_pool2d, max_pool3d, upsample2d,
)
from .ops.recurrent import gru, lstm, simple_rnn
from .ops.reduce import logsumexp, max, mean, min, sum, var
from .ops.shape import (
    broadcast_to, concatenate, expand_dims, getitem, pad, reshape, squeeze, stack, transpose,
)

__all__ = [
    "abs", "add", "broadcast_to", "clip", "concatenate", "div", "elu", "equal", "exp",
    "expand_dims", "gaussian", "getitem", "greater", "greater_equal", "leaky_relu", "less",
    "less_equal", "linear", "log", "log_softmax", "logsumexp", "matmul", "max", "maximum", "mean",
    "min", "minimum", "mul", "neg", "not_equal", "pad", "pow", "relu", "reshape", "sigmoid",
    "sigmoid_binary_cross_entropy", "softmax", "softmax_cross_entropy", "softplus", "sqrt",
    "squeeze", "stack", "step", "sub", "sum", "tanh", "to", "transpose", "var", "where",
    "batch_norm", "layer_norm", "local_response_norm",
    "gru", "lstm", "simple_rnn",
    "avg_pool", "avg_pool1d", "avg_pool2d", "avg_pool3d", "conv", "conv1d", "conv2d",
    "conv2d_transpose", "conv3d", "global_avg_pool", "global_max_pool", "max_pool",
    "max_pool1d", "max_pool2d", "max_pool3d", "upsample2d", "zero_pad",
    "SparseMatrix", "normalized_adjacency", "sparse_matmul",
    "gelu", "hard_sigmoid", "hard_silu", "hard_swish", "mish", "relu6", "selu", "silu",
    "softsign", "swish",
    "argmax", "argmin", "cast", "convert_to_numpy", "convert_to_tensor", "divide", "expm1",
    "log1p", "multiply", "negative", "norm", "one_hot", "power", "shape", "sign", "square",
    "subtract", "erf", "std",
]
