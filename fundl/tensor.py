"""The Tensor: an array that remembers how it was made.

A :class:`Tensor` wraps an array of the current back-end (``data``). When it was
produced by a differentiable operation while gradients are being recorded, it
points to that operation (``creator``), which points to its inputs: following
those links backwards is the computational graph, and :meth:`Tensor.backward`
walks it to fill ``.grad`` of every leaf that ``requires_grad``.

Arithmetic operators and most methods (``+``, ``@``, ``.sum()``, ``.relu()``, ...)
are attached by :mod:`fundl.functional`, which defines them as ops; this file
holds only what a tensor *is*.

Example:
    >>> x = fl.tensor([[1.0, 2.0]], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    array([[2., 4.]], dtype=float32)
"""
from __future__ import annotations

import numpy

from . import backend

_rng = numpy.random.default_rng()
_gpu_rng = None  # CuPy's generator for GPU draws, seeded from _rng when first needed
# Graph mode (fundl.graph_mode) sets this while it traces a function, to learn when Python code
# reads a Tensor's value (an `if` on it would be frozen into the traced plan); None otherwise.
_trace_hook = None


def manual_seed(seed: int) -> None:
    """Seed fundl's random generators (``fl.rand``/``fl.randn``, initializers, and the dropout
    masks and noise drawn on the CPU or on the GPU)."""
    global _rng, _gpu_rng
    _rng = numpy.random.default_rng(seed)
    _gpu_rng = None


def get_rng() -> numpy.random.Generator:
    """fundl's random generator; seed it with :func:`manual_seed`."""
    return _rng


def get_gpu_rng():
    """fundl's generator for draws made on the GPU (dropout masks, Gaussian noise): a
    ``cupy.random.RandomState`` seeded from :func:`get_rng`, so that :func:`manual_seed` makes
    GPU runs repeatable too (CuPy's own global generator is not seeded by it)."""
    global _gpu_rng
    if _gpu_rng is None:
        cupy = backend.device_module("gpu")
        _gpu_rng = cupy.random.RandomState(int(_rng.integers(2 ** 63 - 1)))
    return _gpu_rng


def _to_array(data, dtype=None, device=None):
    """Convert ``data`` to an array on ``device``; Python floats become the default dtype.

    Without a ``device``, Tensors and CuPy arrays stay where they are and host data (lists,
    NumPy arrays) goes to the default device, as PyTorch's ``torch.tensor`` does under
    ``set_default_device``.
    """
    if isinstance(data, Tensor):
        data, device = data.data, device or backend.device_of(data.data)
    if hasattr(data, "dtype") and hasattr(data, "shape"):  # an array (or NumPy scalar): keep dtype
        if backend.device_of(data) == "cpu":
            data = numpy.asarray(data)
            arr = backend.to_device(data, device or backend.get_device())
        else:
            arr = backend.to_device(data, device or "gpu")
    else:
        arr = numpy.asarray(data)
        if dtype is None and arr.dtype == numpy.float64:  # Python floats: the default dtype
            arr = arr.astype(backend.get_default_dtype())
        arr = backend.to_device(arr, device or backend.get_device())
    if dtype is not None and arr.dtype != dtype:
        arr = arr.astype(dtype)
    return arr


class Tensor:
    """A multi-dimensional array with automatic differentiation.

    Args:
        data: array-like (nested lists, scalars, NumPy/CuPy arrays or a Tensor).
        requires_grad: record operations on this tensor so ``backward`` can compute ``.grad``.
        dtype: NumPy dtype; default: that of ``data`` when it is an array, else float32 for
            floats (see :func:`fundl.set_default_dtype`), int64 for ints.
        device: ``"cpu"`` or ``"gpu"``; default: a Tensor's or CuPy array's own, else (lists,
            NumPy arrays) :func:`fundl.get_device`.
        name: an optional label (shown by :func:`fundl.graph_dot`).

    Attributes:
        data: the underlying NumPy or CuPy array.
        grad: the accumulated gradient (an array of ``data``'s shape) or None.
        creator: the :class:`~fundl.autograd.Function` that produced this tensor, or None for leaves.

    Example:
        >>> w = fl.Tensor([[0.5], [-1.0]], requires_grad=True)
        >>> w.shape
        (2, 1)
    """

    __slots__ = ("data", "grad", "requires_grad", "creator", "out_index", "name", "_keras_mask",
                 "__weakref__")
    # NumPy must hand `ndarray <op> Tensor` to the Tensor's reflected operator.
    __array_ufunc__ = None
    __array_priority__ = 1000.0

    def __init__(self, data, requires_grad=False, dtype=None, device=None, name=None):
        self.data = _to_array(data, dtype, device)
        self.grad = None
        self.creator = None
        self.out_index = 0
        self.name = name
        self._keras_mask = None  # a sequence mask (fundl.layers._masking), as Keras's
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, data, creator=None, out_index=0):
        """Wrap an array without any conversion (the fast path used by ops)."""
        t = object.__new__(cls)
        t.data = data
        t.grad = None
        t.creator = creator
        t.out_index = out_index
        t.name = None
        t._keras_mask = None
        t.requires_grad = creator is not None
        return t

    # -- what it is ------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self.creator is None

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __repr__(self) -> str:
        body = repr(backend.to_numpy(self.data)).replace("array(", "tensor(", 1)
        extra = []
        if self.device != "cpu":
            extra.append(f"device={self.device!r}")
        if self.creator is not None:
            extra.append(f"creator={type(self.creator).__name__}")
        elif self.requires_grad:
            extra.append("requires_grad=True")
        if extra:
            body = body[:-1] + ", " + ", ".join(extra) + ")"
        return body

    def __bool__(self) -> bool:
        if _trace_hook is not None:
            _trace_hook(self, "bool")
        return bool(self.data)

    def __float__(self) -> float:
        if _trace_hook is not None:
            _trace_hook(self, "float")
        return float(self.data)

    def __int__(self) -> int:
        if _trace_hook is not None:
            _trace_hook(self, "int")
        return int(self.data)

    def __index__(self) -> int:
        if _trace_hook is not None:
            _trace_hook(self, "index")
        return int(self.data)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    # -- conversions -----------------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        # numpy.asarray(t), and lists of Tensors in fl.tensor([...]), see the values, not objects.
        if _trace_hook is not None:
            _trace_hook(self, "array")
        a = backend.to_numpy(self.data)
        if dtype is not None and a.dtype != dtype:
            return a.astype(dtype)
        return a.copy() if copy else a

    def numpy(self) -> numpy.ndarray:
        """The data as a NumPy array (copied from the GPU if needed; shares memory on the CPU)."""
        if _trace_hook is not None:
            _trace_hook(self, "numpy")
        return backend.to_numpy(self.data)

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item(): expected a tensor with one element, got shape {self.shape}.")
        if _trace_hook is not None:
            _trace_hook(self, "item")
        return self.data.item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self) -> "Tensor":
        """A new leaf tensor sharing ``data``, cut off from the graph (no gradient flows back)."""
        return Tensor._wrap(self.data)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        """Switch gradient recording on or off for this (leaf) tensor, in place."""
        if requires_grad and self.data.dtype.kind not in "fc":
            raise TypeError(
                f"Tensor: only floating-point tensors can require gradients, got dtype {self.dtype}. "
                "Create it with dtype='float32' (or float64)."
            )
        if not requires_grad and self.creator is not None:
            raise RuntimeError("Tensor: requires_grad can only be switched off on a leaf; use detach().")
        self.requires_grad = bool(requires_grad)
        return self

    def zero_grad(self) -> None:
        """Forget the accumulated gradient (``grad`` becomes None)."""
        self.grad = None

    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        """Back-propagate from this tensor, accumulating ``.grad`` in every leaf that requires it.

        Args:
            gradient: d(something)/d(self), shape of ``self``; may be omitted for one-element tensors.
            retain_graph: keep the graph so ``backward`` can run through it again.
        """
        _engine.backward(self, gradient, retain_graph)

    # -- operators and methods: the ops of fundl.functional, imported on first use ---------
    # (fundl.ops builds on Tensor, so this floor cannot import it at module level; `_op`
    # fetches the ops once, then each call is one attribute lookup away from the op)
    def __add__(self, other):
        return _op.add(self, other)

    def __radd__(self, other):
        return _op.add(other, self)

    def __sub__(self, other):
        return _op.sub(self, other)

    def __rsub__(self, other):
        return _op.sub(other, self)

    def __mul__(self, other):
        return _op.mul(self, other)

    def __rmul__(self, other):
        return _op.mul(other, self)

    def __truediv__(self, other):
        return _op.div(self, other)

    def __rtruediv__(self, other):
        return _op.div(other, self)

    def __pow__(self, other):
        return _op.pow(self, other)

    def __rpow__(self, other):
        return _op.pow(other, self)

    def __matmul__(self, other):
        return _op.matmul(self, other)

    def __rmatmul__(self, other):
        return _op.matmul(other, self)

    def __neg__(self):
        return _op.neg(self)

    def __abs__(self):
        return _op.abs(self)

    def __getitem__(self, index):
        return _op.getitem(self, index)

    def __lt__(self, other):
        return _op.less(self, other)

    def __le__(self, other):
        return _op.less_equal(self, other)

    def __gt__(self, other):
        return _op.greater(self, other)

    def __ge__(self, other):
        return _op.greater_equal(self, other)

    def __eq__(self, other):
        return _op.equal(self, other)

    def __ne__(self, other):
        return _op.not_equal(self, other)

    __hash__ = object.__hash__  # (defining __eq__ would otherwise remove it)

    @property
    def T(self) -> "Tensor":
        """The tensor with its axes reversed."""
        return _op.transpose(self)

    # methods: fl.<name>(tensor, ...) (see each function for its arguments)
    def exp(self):
        return _op.exp(self)

    def log(self):
        return _op.log(self)

    def sqrt(self):
        return _op.sqrt(self)

    def abs(self):
        return _op.abs(self)

    def sum(self, *args, **kwargs):
        return _op.sum(self, *args, **kwargs)

    def mean(self, *args, **kwargs):
        return _op.mean(self, *args, **kwargs)

    def max(self, *args, **kwargs):
        return _op.max(self, *args, **kwargs)

    def min(self, *args, **kwargs):
        return _op.min(self, *args, **kwargs)

    def var(self, *args, **kwargs):
        return _op.var(self, *args, **kwargs)

    def logsumexp(self, *args, **kwargs):
        return _op.logsumexp(self, *args, **kwargs)

    def reshape(self, *args, **kwargs):
        return _op.reshape(self, *args, **kwargs)

    def transpose(self, *args, **kwargs):
        return _op.transpose(self, *args, **kwargs)

    def expand_dims(self, *args, **kwargs):
        return _op.expand_dims(self, *args, **kwargs)

    def squeeze(self, *args, **kwargs):
        return _op.squeeze(self, *args, **kwargs)

    def broadcast_to(self, *args, **kwargs):
        return _op.broadcast_to(self, *args, **kwargs)

    def clip(self, *args, **kwargs):
        return _op.clip(self, *args, **kwargs)

    def matmul(self, other):
        return _op.matmul(self, other)

    def relu(self):
        return _op.relu(self)

    def leaky_relu(self, *args, **kwargs):
        return _op.leaky_relu(self, *args, **kwargs)

    def elu(self, *args, **kwargs):
        return _op.elu(self, *args, **kwargs)

    def sigmoid(self):
        return _op.sigmoid(self)

    def tanh(self):
        return _op.tanh(self)

    def softplus(self, *args, **kwargs):
        return _op.softplus(self, *args, **kwargs)

    def softmax(self, *args, **kwargs):
        return _op.softmax(self, *args, **kwargs)

    def log_softmax(self, *args, **kwargs):
        return _op.log_softmax(self, *args, **kwargs)

    def maximum(self, other):
        return _op.maximum(self, other)

    def minimum(self, other):
        return _op.minimum(self, other)

    def to(self, *args, **kwargs):
        return _op.to(self, *args, **kwargs)

    def pad(self, *args, **kwargs):
        return _op.pad(self, *args, **kwargs)

    # -- weights as variables (Keras) ----------------------------------------------------------
    # A layer's weight is a Tensor updated in place; Keras code reads and writes it through
    # these (``w.assign(new)``, ``w.assign_add(delta)``, ``w.value``).
    constraint = None  # a Variable's projection after optimizer updates (None for Tensors)

    @property
    def value(self) -> "Tensor":
        """The tensor itself, as Keras's ``variable.value`` (use it in computations).

        Example:
            >>> y = x @ layer.kernel.value
        """
        return self

    def _assign_array(self, value, what):
        if self.creator is not None:
            raise RuntimeError(f"Tensor.{what}: only leaf tensors (weights) can be assigned in "
                               "place; this tensor was computed by an operation.")
        if isinstance(value, Tensor):
            value = value.data
        xp = backend.get_array_module(self.data)
        if hasattr(value, "shape") and backend.device_of(value) != backend.device_of(self.data):
            value = backend.to_device(value, backend.device_of(self.data))
        arr = xp.asarray(value)
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"Tensor.{what}: cannot assign values of dtype {arr.dtype} to a "
                            f"tensor of dtype {self.dtype}.")
        if tuple(arr.shape) != tuple(self.data.shape):
            label = f" '{self.name}'" if self.name else ""
            raise ValueError(f"Tensor{label}.{what}: the value has shape {tuple(arr.shape)}, but "
                             f"the tensor has shape {self.shape}; shapes must match exactly.")
        return arr

    def assign(self, value) -> "Tensor":
        """Overwrite the values in place (no gradient is recorded); returns the tensor.

        Args:
            value: an array, Tensor or Python number of exactly this tensor's shape (cast to
                its dtype, moved to its device).

        Raises:
            ValueError: a different shape. TypeError: a non-numeric value.
            RuntimeError: the tensor is not a leaf (it was computed by an operation).

        Example:
            >>> layer.kernel.assign(np.zeros(layer.kernel.shape))
        """
        arr = self._assign_array(value, "assign")
        self.data[...] = arr.astype(self.data.dtype, copy=False)
        return self

    def assign_add(self, value) -> "Tensor":
        """Add ``value`` (same shape) in place, as Keras's ``variable.assign_add``."""
        arr = self._assign_array(value, "assign_add")
        self.data += arr.astype(self.data.dtype, copy=False)
        return self

    def assign_sub(self, value) -> "Tensor":
        """Subtract ``value`` (same shape) in place, as Keras's ``variable.assign_sub``."""
        arr = self._assign_array(value, "assign_sub")
        self.data -= arr.astype(self.data.dtype, copy=False)
        return self


class Variable(Tensor):
    """A layer's weight: a Tensor that also carries its ``constraint`` (Keras's Variable).

    ``Layer.add_weight`` makes them; everything a Tensor does, a Variable does (ops return
    plain Tensors). Read and write it as Keras code does: ``w.value``, ``w.assign(new)``,
    ``w.assign_add(delta)``, ``w.numpy()``.

    Attributes:
        constraint: None, or a function ``array -> array`` the optimizer applies to the
            weight after each update (see :mod:`fundl.constraints`).
        trainable: the weight's own flag, as created (``add_weight(trainable=...)``); a frozen
            layer's weights keep it, but stop requiring gradients.

    Example:
        >>> w = layer.add_weight(shape=(3,), initializer="zeros", name="w")
        >>> w.assign_add(np.ones(3)); w.numpy()
        array([1., 1., 1.], dtype=float32)
    """

    __slots__ = ("constraint", "trainable")

    def __init__(self, data, requires_grad=False, dtype=None, device=None, name=None,
                 constraint=None, trainable=True):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype, device=device, name=name)
        self.constraint = constraint
        self.trainable = bool(trainable)

    @classmethod
    def _from_array(cls, data, name=None, constraint=None, trainable=True):
        """Wrap an array of the back-end without conversion (what ``add_weight`` uses)."""
        v = cls._wrap(data)
        v.name = name
        v.constraint = constraint
        v.trainable = bool(trainable)
        return v

    @classmethod
    def _wrap(cls, data, creator=None, out_index=0):
        v = super()._wrap.__func__(cls, data, creator, out_index)
        v.constraint = None
        v.trainable = True
        return v



def tensor(data, requires_grad=False, dtype=None, device=None, name=None) -> Tensor:
    """Create a tensor from array-like ``data`` (float32 for Python floats).

    Args:
        data: nested lists, numbers, NumPy/CuPy arrays (their dtype is kept; memory is shared
            when no conversion or move is needed) or Tensors.
        requires_grad: record operations for ``backward`` (floating-point dtypes only).
        dtype: force a dtype; default: the array's, float32 for Python floats, int64 for ints.
        device: ``"cpu"`` or ``"gpu"``; default: a Tensor's or CuPy array's own, else (lists,
            NumPy arrays) :func:`fundl.get_device`.
        name: an optional label (shown by :func:`fundl.graph_dot`).

    Returns:
        Tensor: of ``data``'s shape.

    Example:
        >>> fl.tensor([[1.0, 2.0]], requires_grad=True).shape
        (1, 2)
    """
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device, name=name)


def _shape_args(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


def _factory(array, requires_grad, device) -> Tensor:
    t = Tensor._wrap(backend.to_device(array, device or backend.get_device()))
    if requires_grad:
        t.requires_grad_(True)
    return t


def _dims_or_shape(who, dims, shape) -> tuple:
    """``fl.zeros(2, 3)``, ``fl.zeros((2, 3))`` and Keras's ``zeros(shape=(2, 3))`` alike."""
    if shape is None:
        return _shape_args(dims)
    if dims:
        raise TypeError(f"fl.{who}: give the shape either positionally or as shape=, not both "
                        f"(got {dims} and shape={shape!r}).")
    return _shape_args((shape,) if isinstance(shape, (tuple, list)) else (shape,))


def zeros(*dims, shape=None, dtype=None, requires_grad=False, device=None) -> Tensor:
    """A tensor of zeros: ``fl.zeros(2, 3)``, ``fl.zeros((2, 3))`` or ``fl.zeros(shape=(2, 3))``."""
    dtype = dtype or backend.get_default_dtype()
    return _factory(numpy.zeros(_dims_or_shape("zeros", dims, shape), dtype=dtype),
                    requires_grad, device)


def ones(*dims, shape=None, dtype=None, requires_grad=False, device=None) -> Tensor:
    """A tensor of ones: ``fl.ones(2, 3)``, ``fl.ones((2, 3))`` or ``fl.ones(shape=(2, 3))``."""
    dtype = dtype or backend.get_default_dtype()
    return _factory(numpy.ones(_dims_or_shape("ones", dims, shape), dtype=dtype),
                    requires_grad, device)


def full(shape, fill_value, dtype=None, requires_grad=False, device=None) -> Tensor:
    """A tensor of ``shape`` filled with ``fill_value``."""
    dtype = dtype or backend.get_default_dtype()
    return _factory(numpy.full(_shape_args((shape,)), fill_value, dtype=dtype), requires_grad, device)


def arange(start, stop=None, step=1, dtype=None, requires_grad=False, device=None) -> Tensor:
    """Evenly spaced values in ``[start, stop)``, like ``numpy.arange`` (floats become float32)."""
    a = numpy.arange(start, stop, step)  # stop=None means [0, start), with the step kept
    if dtype is not None:
        a = a.astype(dtype)
    elif a.dtype == numpy.float64:
        a = a.astype(backend.get_default_dtype())
    return _factory(a, requires_grad, device)


def rand(*shape, dtype=None, requires_grad=False, device=None) -> Tensor:
    """Uniform samples in [0, 1): ``fl.rand(2, 3)``."""
    dtype = dtype or backend.get_default_dtype()
    a = _rng.random(_shape_args(shape)).astype(dtype)
    return _factory(a, requires_grad, device)


def randn(*shape, dtype=None, requires_grad=False, device=None) -> Tensor:
    """Standard normal samples: ``fl.randn(2, 3, requires_grad=True)``."""
    dtype = dtype or backend.get_default_dtype()
    a = _rng.standard_normal(_shape_args(shape)).astype(dtype)
    return _factory(a, requires_grad, device)


def zeros_like(t, dtype=None, requires_grad=False) -> Tensor:
    """Zeros with the shape, dtype and device of ``t``."""
    data = t.data if isinstance(t, Tensor) else t
    xp = backend.get_array_module(data)
    return _factory(xp.zeros(data.shape, dtype=dtype or data.dtype), requires_grad,
                    backend.device_of(data))


def ones_like(t, dtype=None, requires_grad=False) -> Tensor:
    """Ones with the shape, dtype and device of ``t``."""
    data = t.data if isinstance(t, Tensor) else t
    xp = backend.get_array_module(data)
    return _factory(xp.ones(data.shape, dtype=dtype or data.dtype), requires_grad,
                    backend.device_of(data))


class _Ops:
    """The ops behind Tensor's operators and methods (:mod:`fundl.functional`), fetched on
    first use: they build on Tensor, so this module cannot import them when it loads. The
    first attribute asked for copies them all onto this object; later lookups are plain
    attribute hits."""

    def __getattr__(self, name):
        from . import functional

        self.__dict__.update((k, v) for k, v in vars(functional).items()
                             if not k.startswith("_"))
        try:
            return self.__dict__[name]
        except KeyError:
            raise AttributeError(name) from None


_op = _Ops()

# The engine builds on Tensor; it is imported last so that Tensor exists when it loads.
from . import autograd as _engine  # noqa: E402
