"""The public lower-case API of differentiable operations (``fundl.functional`` and ``fl.*``).

Each function builds one op (a :class:`~fundl.autograd.Function`) and applies it; the ops
live in :mod:`fundl.ops`, one family per module. Importing this module also gives
:class:`~fundl.tensor.Tensor` its operators and methods (``x + y``, ``x.sum()``, ...).
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
from .tensor import Tensor

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


def _reflected(fn):
    def method(self, other):
        return fn(other, self)

    return method


def _install_tensor_methods():
    """Attach the operators and methods to Tensor (the ops are defined above the tensor floor)."""
    operators = {
        "__add__": add, "__radd__": _reflected(add), "__sub__": sub, "__rsub__": _reflected(sub),
        "__mul__": mul, "__rmul__": _reflected(mul), "__truediv__": div,
        "__rtruediv__": _reflected(div), "__pow__": pow, "__rpow__": _reflected(pow),
        "__matmul__": matmul, "__rmatmul__": _reflected(matmul), "__neg__": neg, "__abs__": abs,
        "__getitem__": getitem, "__lt__": less, "__le__": less_equal, "__gt__": greater,
        "__ge__": greater_equal, "__eq__": equal, "__ne__": not_equal,
    }
    methods = [exp, log, sqrt, abs, sum, mean, max, min, var, logsumexp, reshape, transpose,
               expand_dims, squeeze, broadcast_to, clip, matmul, relu, leaky_relu, elu, sigmoid,
               tanh, softplus, softmax, log_softmax, maximum, minimum, to, pad]
    for name, fn in operators.items():
        setattr(Tensor, name, fn)
    for fn in methods:
        setattr(Tensor, fn.__name__, fn)
    Tensor.T = property(lambda self: transpose(self), doc="The tensor with its axes reversed.")


_install_tensor_methods()
