"""Reverse-mode automatic differentiation: the Function base class and the backward walk.

Every differentiable operation is a :class:`Function` with ``forward`` and ``backward``
side by side, both on raw arrays (NumPy or CuPy), never on Tensors::

    class Exp(Function):
        def forward(self, x):
            y = xp(x).exp(x)
            self.save(y)            # d exp(x)/dx = exp(x): keep the output
            return y

        def backward(self, gy):
            (y,) = self.saved
            return gy * y

``Exp().apply(t)`` runs ``forward`` on ``t.data`` and, while gradients are recorded
(see :class:`no_grad`) and some input requires them, links the output tensor to the
function and the function to its inputs. :func:`backward` later visits the functions
from the output back to the leaves, so that each one runs only after every
gradient flowing into its outputs has been summed (reverse topological order).
"""
from __future__ import annotations

import functools
import math
import numbers
import threading
from heapq import heappop, heappush

import numpy

from . import backend
from .tensor import Tensor

# Grad mode is per thread, as in PyTorch: a no_grad() block in one thread (a data loader, a
# web request) must not stop another thread's training step from recording its graph.
_mode = threading.local()


def is_grad_enabled() -> bool:
    """True unless inside :class:`no_grad` (in this thread)."""
    return getattr(_mode, "enabled", True)


class _GradMode:
    __slots__ = ("_prev",)
    _mode = True

    def __new__(cls, fn=None):
        # `@fl.no_grad` (no parentheses) hands the function straight to the class.
        self = object.__new__(cls)
        return self if fn is None else self(fn)

    def __enter__(self):
        self._prev = getattr(_mode, "enabled", True)
        _mode.enabled = self._mode

    def __exit__(self, *exc):
        _mode.enabled = self._prev
        return False

    def __call__(self, fn):
        mode = type(self)

        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with mode():
                return fn(*args, **kwargs)

        return wrapped


class no_grad(_GradMode):
    """Context manager (and decorator) inside which no graph is recorded.

    The previous mode comes back on exit, also when an exception leaves the block.

    Example:
        >>> with fl.no_grad():
        ...     z = x * 2          # z.requires_grad is False
        >>> @fl.no_grad            # or @fl.no_grad()
        ... def predict(x): ...
    """

    __slots__ = ()
    _mode = False


class enable_grad(_GradMode):
    """Context manager (and decorator) that turns recording back on inside ``no_grad``."""

    __slots__ = ()
    _mode = True


def _convert_plain(inputs, arrays):
    """Turn the numbers, lists and foreign-device arrays among an op's inputs into arrays.

    Python numbers take the kind of the first Tensor input (``x * 2`` stays float32, as in
    PyTorch); arrays from the other device are moved to the Tensors' device.
    """
    ref = next((x.data for x in inputs if isinstance(x, Tensor)), None)
    if ref is None:
        ref = next((a for a in arrays if hasattr(a, "dtype") and hasattr(a, "shape")), None)
    device = backend.device_of(ref) if ref is not None else backend.get_device()
    for i, a in enumerate(arrays):
        if isinstance(inputs[i], Tensor):
            continue
        if hasattr(a, "dtype") and hasattr(a, "shape"):  # an array or a NumPy scalar
            if backend.get_array_module(a) is numpy:
                a = numpy.asarray(a)
            arrays[i] = backend.to_device(a, device)
        elif ref is not None and isinstance(a, numbers.Number) and not isinstance(a, bool) and (
                ref.dtype.kind == "f" or (ref.dtype.kind in "iu" and isinstance(a, numbers.Integral))):
            arrays[i] = backend.device_module(device).asarray(a, dtype=ref.dtype)
        else:
            arrays[i] = Tensor(a, device=device).data


class _NoGrad(tuple):
    """needs_grad of an unrecorded call: False for any input index."""

    def __getitem__(self, i):
        return False


_NO_GRAD = _NoGrad()

# Graph mode (fundl.graph_mode, ``fl.function``) sets this to its tracer while it records the ops
# a function applies; None otherwise, so eager mode pays one comparison per op.
_tracer = None


class Function:
    """Base class of every differentiable operation.

    Subclasses implement ``forward(*arrays) -> array | tuple`` and
    ``backward(*grads_of_outputs) -> gradient | tuple`` (one gradient or None per input,
    in input order; the engine sums broadcast gradients back to the input's shape).
    A function with several outputs gets one argument per output in ``backward``, None for
    an output that no gradient reached (treat it as zeros).
    They may override ``check(*arrays)`` to validate arguments before any math.
    Hyper-parameters (``axis``, ...) are passed to ``__init__`` and kept as attributes.

    Attributes set by :meth:`apply`:
        inputs: the inputs as given to ``apply``, kept while the graph is recorded.
        needs_grad: one bool per input: does that input need a gradient? (all False, or
            absent, when nothing is recorded)
        saved: what ``forward`` kept for ``backward`` via :meth:`save`.
    """

    # Slots make the per-op bookkeeping cheaper; subclasses still get a __dict__ for their
    # hyper-parameters. apply() sets every slot the engine reads on a recorded function.
    __slots__ = ("inputs", "needs_grad", "saved", "rank", "n_outputs", "_gys", "__dict__",
                 "__weakref__")

    def save(self, *arrays) -> None:
        """Keep arrays for ``backward`` (read them back from ``self.saved``)."""
        self.saved = arrays

    def check(self, *arrays) -> None:
        """Validate the inputs before ``forward`` runs (raise ValueError/TypeError naming the op)."""

    def forward(self, *arrays):  # pragma: no cover - the abstract method
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, *grad_outputs):  # pragma: no cover - the abstract method
        raise NotImplementedError(f"{type(self).__name__} is not differentiable")

    @property
    def name(self) -> str:
        return type(self).__name__

    def apply(self, *inputs):
        """Run the op on Tensors, arrays or numbers; returns a Tensor (or a tuple of them)."""
        # graph mode (fl.function) is tracing in this thread: it records the call, then runs it
        if _tracer is not None and _tracer.in_this_thread():
            return _tracer.record(self, inputs)
        arrays = []
        needs = []
        record = False
        plain = False
        rank = 0
        for x in inputs:
            if isinstance(x, Tensor):
                arrays.append(x.data)
                if x.requires_grad:
                    record = True
                    needs.append(True)
                    c = x.creator
                    if c is not None and c.rank >= rank:
                        rank = c.rank + 1
                else:
                    needs.append(False)
            else:
                arrays.append(x)
                needs.append(False)
                plain = True
        if plain:
            _convert_plain(inputs, arrays)
        if record and getattr(_mode, "enabled", True):
            self.needs_grad = needs
        else:
            record = False
            self.needs_grad = _NO_GRAD
        self.check(*arrays)
        try:
            y = self.forward(*arrays)
        except (ValueError, TypeError) as e:
            if str(e).startswith(self.name):
                raise
            devices = [backend.device_of(a) for a in arrays if hasattr(a, "shape")]
            if len(set(devices)) > 1:  # CuPy's own message would not say so
                raise type(e)(f"{self.name}: its inputs are on different devices ({devices}); "
                              "move them to one first, e.g. tensor.to('gpu') or "
                              "model.to('gpu')") from e
            shapes = ", ".join(str(getattr(a, "shape", type(a).__name__)) for a in arrays)
            raise type(e)(f"{self.name}: {e} (input shapes {shapes})") from e
        if not record:
            if type(y) is tuple:
                return tuple(Tensor._wrap(a) for a in y)
            return Tensor._wrap(y)
        self.inputs = inputs  # entries whose needs_grad is False are never followed
        self._gys = None
        self.rank = rank
        if type(y) is tuple:
            self.n_outputs = len(y)
            return tuple(Tensor._wrap(a, self, i) for i, a in enumerate(y))
        self.n_outputs = 1
        return Tensor._wrap(y, self)


def unbroadcast(g, shape):
    """Sum ``g`` over the axes along which an input of ``shape`` was broadcast; None if impossible."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    if lead < 0:
        return None
    axes = list(range(lead))
    for i, n in enumerate(shape):
        m = g.shape[lead + i]
        if n == 1 and m != 1:
            axes.append(lead + i)
        elif n != m:
            return None
    if len(axes) == lead and g.dtype.kind == "f" and g.flags.c_contiguous:
        # Only leading axes to sum (a bias broadcast over the batch): a GEMV with a ones vector
        # is 2-7x faster than NumPy's reduction over axis 0.
        rows = g.reshape(math.prod(g.shape[:lead]), math.prod(shape))
        xp = backend.get_array_module(g)
        return (backend.ones_vector(rows.shape[0], g.dtype, xp) @ rows).reshape(shape)
    return g.sum(axis=tuple(axes)).reshape(shape)


def _freed(fn):
    raise RuntimeError(
        f"backward: the graph through {fn.name} was already freed by an earlier backward(). "
        "Call backward(retain_graph=True) the first time to go through it twice."
    )


def _fit_gradient(fn, x, g):
    """Bring op ``fn``'s gradient ``g`` for input ``x`` to x's shape and dtype, or blame the op."""
    data = x.data
    i = next(k for k, inp in enumerate(fn.inputs) if inp is x)
    if g.shape != data.shape:
        g2 = unbroadcast(g, data.shape)
        if g2 is None:
            raise ValueError(
                f"{fn.name}.backward returned a gradient of shape {g.shape} for input {i} of shape "
                f"{data.shape}; they do not broadcast. This is a bug in the op {fn.name}."
            )
        g = g2
    if g.dtype != data.dtype:
        if g.dtype.kind != "f" or data.dtype.kind != "f":
            raise TypeError(
                f"{fn.name}.backward returned a gradient of dtype {g.dtype} for input {i} of dtype "
                f"{data.dtype}. This is a bug in the op {fn.name}."
            )
        g = g.astype(data.dtype)  # mixed float precisions: the gradient takes the input's dtype
    return g


def backward(tensor: Tensor, gradient=None, retain_graph: bool = False) -> None:
    """Accumulate d(tensor)/d(leaf) into ``leaf.grad`` for every leaf that requires a gradient.

    Args:
        tensor: where back-propagation starts.
        gradient: the gradient flowing into ``tensor`` (its shape); ones for a one-element tensor.
        retain_graph: keep the graph (saved arrays and links) for another backward.

    Raises:
        RuntimeError: ``tensor`` has no graph, needs an explicit ``gradient`` (more than one
            element), or its graph was freed by an earlier backward.
        ValueError / TypeError: ``gradient`` has the wrong shape, or an op's backward returned a
            gradient of the wrong shape or dtype (the message names the op).

    Every leaf's ``.grad`` is its own array (never shared with another leaf or with
    ``gradient``), so it may be updated in place. If an op raises mid-way, leaves reached so far
    keep their partial gradients; the graph itself stays consistent.

    Example:
        >>> x = fl.tensor([1.0, 2.0], requires_grad=True)
        >>> fl.autograd.backward((x * x).sum())      # same as (x * x).sum().backward()
        >>> x.grad
        array([2., 4.], dtype=float32)
    """
    gradient = _seed(tensor, gradient)
    accumulate = _leaf_gradients(gradient)
    if tensor.creator is None:  # a leaf: d(t)/d(t) is the identity
        accumulate(tensor, gradient)
        return
    pending = _Pending()
    pending.send(tensor.creator, tensor.out_index, gradient)
    _walk(pending, accumulate, retain_graph)


def _walk(pending, reached, retain_graph, every_tensor=False):
    """The backward walk: run each pending function's backward, highest rank first, and send
    the gradient of each of its inputs on, to ``reached(input, g)`` (leaves only, unless
    ``every_tensor``) and to the function that computed the input.

    Why highest rank first: a function's rank exceeds that of every function that made one of
    its inputs, so when it is popped all the gradients flowing into it have arrived.
    """
    heap, send = pending.heap, pending.send  # (locals: this loop runs once per op and edge)
    # graph mode's replayed plan (one op standing for many) frees its recorded ops' saved
    # arrays as its backward passes them, unless the graph is retained: it reads this flag
    retained, _mode.retain_graph = getattr(_mode, "retain_graph", False), retain_graph
    try:
        while heap:
            fn = heappop(heap)[2]
            gys, fn._gys = fn._gys, None
            gxs = fn.backward(gys) if fn.n_outputs == 1 else fn.backward(*gys)
            if type(gxs) is not tuple:
                gxs = (gxs,)
            for x, need, g in zip(fn.inputs, fn.needs_grad, gxs):
                if not need or g is None:
                    continue
                if g.shape != x.data.shape or g.dtype != x.data.dtype:
                    g = _fit_gradient(fn, x, g)
                c = x.creator
                if c is None or every_tensor:
                    reached(x, g)
                if c is not None:
                    send(c, x.out_index, g)
            if not retain_graph:  # free the saved arrays and the links as we go
                fn.inputs = None
                fn.saved = ()
    except BaseException:
        pending.drop()
        raise
    finally:
        _mode.retain_graph = retained


class _Pending:
    """Functions waiting for their backward: a heap on (-rank, arrival). A single-output
    function keeps its incoming gradient in ``_gys`` itself; a multi-output one keeps a list
    with one entry per output (None where no gradient arrived)."""

    __slots__ = ("heap", "count")

    def __init__(self):
        self.heap = []
        self.count = 0  # ties broken by arrival, never by comparing functions

    def send(self, fn, index, g):
        """Add gradient ``g`` of output ``index`` of ``fn``, scheduling ``fn`` on its first."""
        gys = fn._gys
        if gys is None:  # the first gradient to reach fn
            if fn.inputs is None:
                _freed(fn)
            heappush(self.heap, (-fn.rank, self.count, fn))
            self.count += 1
            if fn.n_outputs == 1:
                fn._gys = g
                return
            fn._gys = gys = [None] * fn.n_outputs
        if fn.n_outputs == 1:
            fn._gys = gys + g
        else:
            gys[index] = g if gys[index] is None else gys[index] + g

    def drop(self):
        """After an error: functions still waiting hold partial gradients in ``_gys``; a
        later backward would take them for "already scheduled" and add to them."""
        for entry in self.heap:
            entry[2]._gys = None


def _owner(a):
    """The id of the memory owner of array ``a`` (itself, or the array it is a view of)."""
    base = a.base
    return id(a) if base is None else id(base)


def _leaf_gradients(seed):
    """A function ``(leaf, g)`` that accumulates ``g`` into ``leaf.grad`` so that no two
    ``.grad`` arrays, nor the caller's ``seed``, share memory: updating one in place (clipping,
    an optimizer) cannot change another. Fresh arrays and views of unshared temporaries are
    kept as they are."""
    handed = {_owner(seed)}  # owners already stored in some .grad, and the seed's

    def accumulate(x, g):
        if x.grad is not None:
            x.grad = x.grad + g
            return
        owner = _owner(g)
        if owner in handed:
            g = g.copy()
        else:
            handed.add(owner)
        x.grad = g

    return accumulate


def _seed(tensor, gradient):
    """The gradient backward starts from, checked (ones for a one-element tensor)."""
    if not tensor.requires_grad:
        raise RuntimeError(
            "backward: this tensor does not require a gradient and has no graph. Create the inputs "
            "with requires_grad=True, and do not compute it inside fl.no_grad()."
        )
    data = tensor.data
    if gradient is None:
        if data.size != 1:
            raise RuntimeError(
                f"backward: a gradient can be created implicitly only for one-element tensors, got "
                f"shape {data.shape}. Pass backward(gradient) with that shape, or reduce first (.sum())."
            )
        # asarray(1) + reshape: two C calls, where ones() is a slower Python-level helper
        return backend.get_array_module(data).asarray(1, dtype=data.dtype).reshape(data.shape)
    xp = backend.get_array_module(data)
    if isinstance(gradient, Tensor):
        gradient = gradient.data
    gradient = xp.asarray(gradient, dtype=data.dtype)
    if gradient.shape != data.shape:
        raise ValueError(f"backward: gradient of shape {gradient.shape} given for a tensor of "
                         f"shape {data.shape}; they must be equal.")
    return gradient


def gradients_of(outputs, seeds, targets, retain_graph: bool = False) -> list:
    """d(outputs)/d(targets) as arrays, without touching any ``.grad`` (for ``fl.grad``/tapes).

    The same reverse walk as :func:`backward` (:func:`_walk`), but the gradient reaching each
    tensor of ``targets`` (leaf or intermediate) is summed and returned instead of stored in
    ``.grad``, so existing ``.grad`` accumulation is left exactly as it was.

    Args:
        outputs: Tensors that require a gradient, where back-propagation starts.
        seeds: one array per output, of its shape and dtype (the incoming gradient).
        targets: Tensors to return gradients for.
        retain_graph: keep the graph for another walk.

    Returns:
        One array per target (each its own memory), or None where no gradient reached it.
    """
    wanted = {id(t): i for i, t in enumerate(targets)}
    found = [None] * len(targets)
    # The caller's seeds count as handed out: a result that is a seed (or a view of one) is copied.
    handed = {_owner(s) for s in seeds}

    def collect(x, g):
        i = wanted.get(id(x))
        if i is None:
            return
        if found[i] is not None:
            found[i] = found[i] + g
            return
        owner = _owner(g)
        found[i] = g.copy() if owner in handed else g  # no two results share memory
        handed.add(owner)

    pending = _Pending()
    for t, seed in zip(outputs, seeds):
        collect(t, seed)
        if t.creator is not None:
            pending.send(t.creator, t.out_index, seed)
    _walk(pending, collect, retain_graph, every_tensor=True)
    return found
