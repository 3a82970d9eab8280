"""fundl: deep learning from first principles, fast enough to use.

    >>> import fundl as fl
    >>> x = fl.tensor([[1.0, 2.0]], requires_grad=True)
    >>> y = (x @ fl.randn(2, 3)).relu().sum()
    >>> y.backward()
"""
__version__ = "0.1.0"

from .backend import (
    get_default_dtype, get_device, gpu_available, set_default_dtype, set_device,
)
from .tensor import (
    Tensor, arange, full, get_rng, manual_seed, ones, ones_like, rand, randn, tensor, zeros,
    zeros_like,
)
from .autograd import Function, enable_grad, is_grad_enabled, no_grad
from .functional import *  # noqa: F401,F403 - the op functions are fl.exp, fl.sum, ...
from . import functional
from .testing.gradcheck import gradcheck
from .viz.graph import graph_dot
from . import (  # noqa: E402 - the subpackages build on the names above
    activations, callbacks, datasets, initializers, layers, losses, metrics, models, optimizers,
    regularizers, saving, zoo,
)
