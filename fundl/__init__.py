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

# The second half of the course and the Keras conveniences are imported on first use, so that
# `import fundl` stays quick and optional dependencies (Ray, gymnasium, matplotlib) are only
# touched by those who use them: `fl.cluster`, `fl.rl`, `fl.Sequential`, ...
_LAZY_MODULES = {
    "config", "runtime",
    "applications", "classic", "cluster", "constraints", "decomposition", "distributed",
    "energy", "preprocessing", "random", "rl", "utils", "viz",
}
_LAZY_NAMES = {
    "Sequential": ("models", "Sequential"),
    "Model": ("models", "Model"),
    "Input": ("layers", "Input"),
    "Variable": ("tensor", "Variable"),
    "GradientTape": ("tape", "GradientTape"),
    "grad": ("tape", "grad"),
    "function": ("graph_mode", "function"),
}


def __getattr__(name):
    import importlib

    if name in _LAZY_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    if name in _LAZY_NAMES:
        module_name, attr = _LAZY_NAMES[name]
        value = getattr(importlib.import_module(f"{__name__}.{module_name}"), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fundl' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _LAZY_MODULES | set(_LAZY_NAMES))
