"""Gradients as values: TensorFlow's ``GradientTape`` and PyTorch's ``autograd.grad``.

fundl records a graph whenever a tensor that requires a gradient takes part in an operation
(PyTorch's way), so a tape does not record anything itself: it marks which plain tensors to
watch, and :meth:`GradientTape.gradient` walks the recorded graph back from the target to the
sources, returning the gradients instead of storing them in ``.grad``
(:func:`fundl.autograd.gradients_of`). The weights' ``.grad`` is never touched, so a tape can
sit beside ``loss.backward()`` code without disturbing its accumulation.

Example (a custom training step, as in the Keras and TensorFlow guides)::

    with fl.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_weights)
    optimizer.apply_gradients(zip(grads, model.trainable_weights))

Differences from TensorFlow, on purpose or by construction:
- operations run after the ``with`` block on tensors that require a gradient are recorded
  too (fundl has one graph, not one per tape), so ``tape.gradient`` sees them;
- gradients are first order (no tape inside a tape for second derivatives).
"""
from __future__ import annotations

from . import backend
from .autograd import gradients_of, no_grad
from .tensor import Tensor

__all__ = ["GradientTape", "grad"]


def _flatten(structure, what):
    """The Tensors of a Tensor / list / tuple / dict (nested), and a function to rebuild it."""
    if isinstance(structure, dict):
        keys = list(structure)
        parts = [_flatten(structure[k], what) for k in keys]
        flat = [t for p in parts for t in p[0]]

        def rebuild(values):
            out, i = {}, 0
            for k, (f, r) in zip(keys, parts):
                out[k] = r(values[i:i + len(f)])
                i += len(f)
            return type(structure)(out) if type(structure) is not dict else out
        return flat, rebuild
    if isinstance(structure, (list, tuple)):
        parts = [_flatten(s, what) for s in structure]
        flat = [t for p in parts for t in p[0]]

        def rebuild(values):
            out, i = [], 0
            for f, r in parts:
                out.append(r(values[i:i + len(f)]))
                i += len(f)
            return out if isinstance(structure, list) else tuple(out)
        return flat, rebuild
    tensor = _as_tensor(structure, what)
    return [tensor], lambda values: values[0]


def _as_tensor(x, what):
    if isinstance(x, Tensor):
        return x
    value = getattr(x, "value", None)  # a variable-like wrapper around a Tensor
    if isinstance(value, Tensor):
        return value
    raise TypeError(f"{what} must be Tensors (or lists/tuples/dicts of them), got "
                    f"{type(x).__name__}. Wrap arrays with fl.tensor(array) and tape.watch() "
                    "them before computing with them.")


class GradientTape:
    """Records what gradients to take, as TensorFlow's ``tf.GradientTape``.

    Args:
        persistent: allow several :meth:`gradient` calls (a non-persistent tape allows one).
        watch_accessed_variables: when True (default), every tensor that requires a gradient
            (the weights) is watched automatically; when False, only tensors passed to
            :meth:`watch` get gradients, the others get None.

    Example:
        >>> x = fl.tensor([1.0, 2.0])              # a plain tensor: watch it
        >>> with fl.GradientTape() as tape:
        ...     tape.watch(x)
        ...     y = (x * x).sum()
        >>> tape.gradient(y, x).numpy()
        array([2., 4.], dtype=float32)
    """

    def __init__(self, persistent=False, watch_accessed_variables=True):
        if not isinstance(persistent, bool):
            raise TypeError(f"GradientTape: persistent must be True or False, got "
                            f"{persistent!r}.")
        if not isinstance(watch_accessed_variables, bool):
            raise TypeError(f"GradientTape: watch_accessed_variables must be True or False, got "
                            f"{watch_accessed_variables!r}.")
        self.persistent = persistent
        self.watch_accessed_variables = watch_accessed_variables
        self._watched = {}      # id -> Tensor
        self._switched = []     # leaves whose requires_grad watch() turned on, turned off on exit
        self._recording = False
        self._used = False

    def __enter__(self):
        if self._recording:
            raise RuntimeError("GradientTape: this tape is already recording; a tape can be "
                               "entered once at a time.")
        self._recording = True
        return self

    def __exit__(self, *exc):
        self._recording = False
        for t in self._switched:
            t.requires_grad = False  # the graph recorded meanwhile keeps its links
        self._switched = []
        return False

    def watch(self, tensor) -> None:
        """Watch ``tensor`` (a Tensor or nested list/dict of them): it gets a gradient.

        A leaf that does not require a gradient is made to require one until the ``with``
        block ends, so that the operations on it are recorded.

        Raises:
            TypeError: not a Tensor, or not floating-point.
        """
        for t in _flatten(tensor, "GradientTape.watch: the watched values")[0]:
            if t.data.dtype.kind not in "fc":
                raise TypeError(f"GradientTape.watch: only floating-point tensors have "
                                f"gradients, got dtype {t.data.dtype}. Cast it first, e.g. "
                                "x.astype('float32').")
            if not t.requires_grad:
                if not self._recording:
                    raise RuntimeError("GradientTape.watch: call watch() inside the `with "
                                       "GradientTape() as tape:` block, before using the "
                                       "tensor.")
                t.requires_grad = True
                self._switched.append(t)
            self._watched[id(t)] = t

    def watched_variables(self) -> list:
        """The tensors watched explicitly with :meth:`watch`."""
        return list(self._watched.values())

    def stop_recording(self):
        """A context inside which nothing is recorded (``with tape.stop_recording(): ...``)."""
        return no_grad()

    def reset(self) -> None:
        """Forget the watched tensors (and the one-call limit of a non-persistent tape)."""
        self._watched = {}
        self._used = False

    def gradient(self, target, sources, output_gradients=None, unconnected_gradients="none"):
        """d(target)/d(sources), in the structure of ``sources``.

        Args:
            target: a Tensor (or a list of them: their gradients add up); a target of several
                elements is treated as its sum, unless ``output_gradients`` are given.
            sources: a Tensor, or a list/tuple/dict (nested) of Tensors (the weights).
            output_gradients: the gradient flowing into ``target`` (its shape), or one per target.
            unconnected_gradients: ``"none"`` (None for a source the target does not depend
                on) or ``"zero"`` (zeros of its shape).

        Returns:
            Tensors (or None) in the structure of ``sources``.

        Raises:
            RuntimeError: a second call on a non-persistent tape.
            TypeError: a source or target that is not a Tensor.

        Example:
            >>> grads = tape.gradient(loss, model.trainable_weights)   # doctest: +SKIP
        """
        if self._used and not self.persistent:
            raise RuntimeError("GradientTape.gradient: a non-persistent tape can compute "
                               "gradients only once; create it with "
                               "GradientTape(persistent=True) to call gradient() several times.")
        if unconnected_gradients not in ("none", "zero"):
            raise ValueError(f"GradientTape.gradient: unconnected_gradients must be 'none' or "
                             f"'zero', got {unconnected_gradients!r}.")
        self._used = True
        flat_sources, rebuild = _flatten(sources, "GradientTape.gradient: sources")
        targets = _flatten(target, "GradientTape.gradient: target")[0]
        seeds = _seeds("GradientTape.gradient", targets, output_gradients, implicit_any=True)
        live = [(t, s) for t, s in zip(targets, seeds) if t.requires_grad]
        # The graph is kept: two tapes often share one forward pass (a GAN's generator and
        # discriminator losses); it goes when the tensors go.
        arrays = (gradients_of([t for t, _ in live], [s for _, s in live], flat_sources,
                               retain_graph=True) if live else [None] * len(flat_sources))
        out = []
        for src, g in zip(flat_sources, arrays):
            if g is not None and not self.watch_accessed_variables and \
                    id(src) not in self._watched:
                g = None
            if g is None and unconnected_gradients == "zero":
                g = backend.get_array_module(src.data).zeros_like(src.data)
            out.append(None if g is None else Tensor._wrap(g))
        return rebuild(out)


def _seeds(who, outputs, given, implicit_any):
    """The gradient flowing into each output: ``given`` (one per output) or ones."""
    if given is None:
        seeds = []
        for t in outputs:
            data = t.data
            if not implicit_any and data.size != 1:
                raise RuntimeError(f"{who}: a gradient can be created implicitly only for "
                                   f"one-element outputs, got shape {data.shape}. Pass "
                                   "grad_outputs with that shape, or reduce first (.sum()).")
            seeds.append(backend.get_array_module(data).ones_like(data))
        return seeds
    given = list(given) if isinstance(given, (list, tuple)) else [given]
    if len(given) != len(outputs):
        raise ValueError(f"{who}: {len(given)} output gradients given for {len(outputs)} "
                         "outputs; give one per output.")
    seeds = []
    for i, (t, g) in enumerate(zip(outputs, given)):
        data = t.data
        if g is None:
            if data.size != 1:
                raise RuntimeError(f"{who}: output gradient {i} is None but output {i} has "
                                   f"shape {data.shape}; give its gradient.")
            seeds.append(backend.get_array_module(data).ones_like(data))
            continue
        xp = backend.get_array_module(data)
        g = xp.asarray(g.data if isinstance(g, Tensor) else g, dtype=data.dtype)
        if g.shape != data.shape:
            raise ValueError(f"{who}: output gradient {i} has shape {g.shape} but output {i} "
                             f"has shape {data.shape}; they must be equal.")
        seeds.append(g)
    return seeds


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, allow_unused=False):
    """The gradients of ``outputs`` with respect to ``inputs``, as ``torch.autograd.grad``.

    Nothing is stored in ``.grad``: existing accumulation is left as it was.

    Args:
        outputs: a Tensor or a sequence of Tensors (their gradients add up).
        inputs: a Tensor or a sequence of Tensors (leaves or intermediate results) that
            require a gradient.
        grad_outputs: the gradient flowing into each output; None means 1 for one-element
            outputs.
        retain_graph: keep the graph for another walk (default False: it is freed).
        allow_unused: return None for an input the outputs do not depend on, instead of
            raising.

    Returns:
        A tuple of Tensors (or None), one per input.

    Raises:
        RuntimeError: an output or input that does not require a gradient, an implicit
            gradient for a many-element output, an unused input without ``allow_unused``.

    Example:
        >>> x = fl.tensor([1.0, 2.0], requires_grad=True)
        >>> (gx,) = fl.grad((x ** 3).sum(), x)
        >>> gx.numpy()
        array([ 3., 12.], dtype=float32)
    """
    outs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    ins = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    for what, items in (("outputs", outs), ("inputs", ins)):
        for i, t in enumerate(items):
            if not isinstance(t, Tensor):
                raise TypeError(f"grad: {what} must be Tensors, got {type(t).__name__} at "
                                f"position {i}.")
            if not t.requires_grad:
                raise RuntimeError(f"grad: {what}[{i}] does not require a gradient and has no "
                                   "graph; create the inputs with requires_grad=True and do not "
                                   "compute inside fl.no_grad().")
    if grad_outputs is not None and not isinstance(grad_outputs, (list, tuple)):
        grad_outputs = [grad_outputs]
    seeds = _seeds("grad", outs, grad_outputs, implicit_any=False)
    arrays = gradients_of(outs, seeds, ins, retain_graph=bool(retain_graph))
    if not allow_unused:
        for i, g in enumerate(arrays):
            if g is None:
                raise RuntimeError(f"grad: inputs[{i}] was not used to compute the outputs; "
                                   "pass allow_unused=True to get None for it.")
    return tuple(None if g is None else Tensor._wrap(g) for g in arrays)
