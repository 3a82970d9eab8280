"""Graph mode: ``fl.function`` traces a Python function of Tensors once and replays it.

The lecture's TensorFlow idea (``tf.function``): the computational graph is *built once and run
many times*. Eager fundl builds a fresh graph at every call: each op goes through
``Function.apply`` (Tensor wrapping, the conversion of plain inputs, rank bookkeeping). Here the
first call of a function for a given input *signature* runs it eagerly while a tracer writes
down every op applied (which op object, where each input came from, where its outputs go): the
**plan**. Later calls with the same signature replay the plan: one loop calling each op's
``forward`` on raw arrays, no Tensor per intermediate, no Python code of the function itself.

Where an input of a recorded op comes from (a *slot*):

* an argument of the function (a Tensor, or an array, which is wrapped as a Tensor);
* a **captured** Tensor, e.g. a layer's weight: the plan keeps the Tensor and reads its
  ``.data`` at every replay, so weights updated by an optimizer between calls are seen;
* an earlier op's output;
* a constant (a Python number or an array that existed before the call, frozen as traced).

The replay is differentiable: it is **one** autograd :class:`~fundl.autograd.Function` (a
super-op) whose inputs are the arguments and the captured Tensors, and whose ``backward`` walks
the recorded ops in reverse, calling their ``backward`` and summing gradients into the slots
(broadcast gradients summed back to their input's shape as the engine does). So
``loss = f(x, y); loss.backward()`` and GradientTape work unchanged.

What cannot be traced (the plan would freeze a value that must change) is detected while
tracing and the function then runs eagerly for that signature, after one warning saying why:

* Python control flow on a Tensor's value (``if t > 0``, ``t.item()``, ``float(t)``,
  ``t.numpy()``, ``numpy.asarray(t)`` on an argument or an intermediate);
* random numbers drawn outside an op with fundl's generator (a mask drawn in Python and
  multiplied in would be replayed with the traced mask); draws made *inside* an op, such as
  :func:`random_op` below, are fine: the op runs again at every replay;
* model state changed outside an op (a layer updating a non-trainable weight with Python
  arithmetic) where graph mode knows the state (``model.compile(..., jit_compile=True)``
  checks the model's non-trainable weights). BatchNormalization is traced: while tracing, its
  batch statistics are outputs of its op and its moving averages are updated by a
  :func:`state_update` op, replayed with each step.

Buffers are reused between calls: an element-wise step's result of 32 KB or more is written
into the array the same step produced at the last call, when nothing else refers to it any
more (:func:`_recycling`), so a replay does not fault fresh pages in for every intermediate.

Element-wise fusion (``fl.function(..., fuse=...)``): chains of cheap element-wise ops whose
intermediates feed one op each and are not outputs run as one :class:`FusedElementwise` op, a
program of the compiled interpreter of :mod:`fundl.kernels.elementwise`; its backward
recomputes the chain with the original ops. By default (``"auto"``) only where it pays: chains
that need no gradient, of :data:`AUTO_FUSE_MIN_SIZE` elements or more.

Example:
    >>> @fl.function
    ... def loss_fn(x, y):
    ...     return ((model(x) - y) ** 2).mean()
    >>> loss = loss_fn(x, y)        # traces: runs eagerly, records the plan
    >>> loss = loss_fn(x2, y2)      # same shapes and dtypes: replays the plan
    >>> loss.backward()             # gradients reach the model's weights as in eager mode
"""
from __future__ import annotations

import copy
import functools
import os
import sys
import threading
import warnings
import weakref
from collections import OrderedDict

import numpy

from . import autograd, backend
from .autograd import Function, is_grad_enabled, unbroadcast
from .tensor import Tensor, Variable

# (`fundl.tensor` the attribute is the function fl.tensor: take the module itself)
tensor_module = sys.modules[Tensor.__module__]

__all__ = ["function", "GraphFunction", "random_op", "state_update"]

_TRACE_LOCK = threading.RLock()  # one trace at a time: the hooks it sets are process-wide
_MAX_PLANS = 16        # signatures kept per function (least recently used dropped first)
_RETRACE_WARNING = 8   # warn once when a function has traced this many times
_FUNDL_DIR = os.path.dirname(os.path.abspath(__file__))
_ORIGINAL_WRAP = Tensor.__dict__["_wrap"].__func__  # (restored after every trace)


# -- the trace ------------------------------------------------------------------------------
class _Untraceable(Exception):
    """Raised inside graph mode only; never reaches the user."""


class _Step:
    """One recorded op: the op object, where its inputs come from, where its outputs go."""

    __slots__ = ("op", "sources", "out_slots", "n_outputs", "needs_grad", "any_grad", "release",
                 "recycle")

    def __init__(self, op, sources, out_slots, n_outputs):
        self.op = op
        self.sources = sources      # per input: an int slot, or ("const", value)
        self.out_slots = out_slots  # per output: its slot
        self.n_outputs = n_outputs
        self.needs_grad = op.needs_grad
        self.any_grad = op.needs_grad is not autograd._NO_GRAD
        self.release = ()           # slots the replay drops after this step (set by _Plan)
        self.recycle = None         # how its output goes into a recycled buffer (_recycling)


class _Tracer:
    """Records the ops applied while a function runs (``autograd._tracer`` points here)."""

    def __init__(self, name):
        self.name = name
        self.thread = threading.get_ident()
        self.n_slots = 0
        self.by_tensor = {}    # id(Tensor) -> slot (arguments, op outputs, captured Tensors)
        self.by_array = {}     # id(array) -> slot (the data of the above, for raw-array inputs)
        self.keep = []         # the Tensors/arrays behind the ids, alive until the trace ends
        self.captured = []     # (slot, Tensor) read by reference at replay
        self.traced = set()    # ids of Tensors whose *values* the plan does not freeze
        self.steps = []
        self.problem = None    # why the function cannot be replayed, or None
        self.random_draws = 0
        self.born = {}         # id -> Tensor wrapped while tracing (ops' outputs and others)
        self.updated = set()   # ids of Tensors that state_update ops change (replayed)
        self.other_problem = False  # a problem other than random draws
        self.meta = {}         # slot -> (shape, dtype, array type) of its value when traced

    def new_slot(self, t):
        slot = self.n_slots
        self.n_slots += 1
        self.by_tensor[id(t)] = slot
        self.keep.append(t)
        if isinstance(t, Tensor):
            self.by_array.setdefault(id(t.data), slot)
            self.keep.append(t.data)
            d = t.data
            self.meta[slot] = (tuple(getattr(d, "shape", ())), getattr(d, "dtype", None), type(d))
        return slot

    def argument(self, t):
        slot = self.new_slot(t)
        self.traced.add(id(t))
        return slot

    def fail(self, reason, random=False):
        """Note why the plan cannot be replayed (the first non-random reason wins)."""
        if random:
            if self.problem is None:
                self.problem = reason
        elif not self.other_problem:
            self.other_problem = True
            self.problem = reason

    def in_this_thread(self):
        """Whether the op being applied belongs to the trace (other threads run eagerly)."""
        return threading.get_ident() == self.thread

    # called by Function.apply (autograd) for every op while tracing
    def record(self, op, inputs):
        sources = []
        call_inputs = list(inputs)
        plain = [i for i, x in enumerate(inputs) if not isinstance(x, Tensor)]
        if plain:  # convert numbers/arrays exactly as apply() would, so replay gets the same
            arrays = [x.data if isinstance(x, Tensor) else x for x in inputs]
            autograd._convert_plain(inputs, arrays)
            for i in plain:
                call_inputs[i] = arrays[i]
        for x in call_inputs:
            if isinstance(x, Tensor):
                slot = self.by_tensor.get(id(x))
                if slot is None:
                    slot = self.by_array.get(id(x.data))
                    if slot is not None and x.requires_grad:
                        # a new leaf around traced data: its gradient would go to the wrong place
                        self.fail(f"a new Tensor that requires grad wraps a traced value (input "
                                  f"of {op.name} at {_user_line()})")
                    # else t.detach() of a traced value: the value flows, no gradient (the op's
                    # needs_grad is False for it)
                if slot is None:
                    # made while tracing but by no op (a comparison `x > 0`, a Tensor wrapped
                    # around computed data): its value would be frozen. (A new weight, made by
                    # a lazy build, is state: read by reference like any captured Tensor.)
                    if id(x) in self.born and not isinstance(x, Variable):
                        self.fail(f"a Tensor made outside an op (e.g. by a comparison such as "
                                  f"`x > 0`) is an input of {op.name} at {_user_line()}; its "
                                  "value would be frozen into the plan")
                    slot = self.new_slot(x)  # a Tensor from outside: read by reference
                    self.captured.append((slot, x))
                sources.append(slot)
            else:
                slot = self.by_array.get(id(x))
                if slot is None and getattr(x, "base", None) is not None:
                    base = self.by_array.get(id(x.base))
                    if base is not None:
                        self.fail(f"a view of a traced value's array (op {op.name}) is used as a "
                                  "constant")
                sources.append(slot if slot is not None else ("const", x))
        tracer, autograd._tracer = autograd._tracer, None  # the op's own inner applies: eager
        try:
            out = op.apply(*call_inputs)
        finally:
            autograd._tracer = tracer
        outs = out if type(out) is tuple else (out,)
        out_slots = []
        for t in outs:
            out_slots.append(self.new_slot(t))
            self.traced.add(id(t))
        self.steps.append(_Step(op, sources, out_slots, len(outs)))
        return out


# What a Tensor's value read during a trace means, for the warning.
_VALUE_READS = {
    "bool": "`if`/`while`/`and`/`or` on a Tensor's value",
    "float": "float() of a Tensor",
    "int": "int() of a Tensor",
    "index": "a Tensor used as a Python index",
    "item": "Tensor.item()",
    "numpy": "Tensor.numpy() or .tolist()",
    "array": "numpy.asarray() of a Tensor",
}


def _user_line():
    """``file:line`` of the innermost frame outside fundl (where the user's code did it), and
    the innermost layer whose ``call`` was running, if any."""
    frame = sys._getframe(1)
    layer = None
    while frame is not None:
        if layer is None and frame.f_code.co_name == "call":
            owner = frame.f_locals.get("self")
            if owner is not None and hasattr(owner, "built"):
                layer = f" (in {type(owner).__name__} '{getattr(owner, 'name', '?')}')"
        path = os.path.abspath(frame.f_code.co_filename)
        if not path.startswith(_FUNDL_DIR):
            return f"{os.path.basename(path)}:{frame.f_lineno}{layer or ''}"
        frame = frame.f_back
    return "?" + (layer or "")


def _stacklevel():
    """The ``stacklevel`` that points a warning at the first caller outside fundl (the user's
    ``model.fit(...)`` or call of the traced function)."""
    frame, level = sys._getframe(1), 1  # level 1: the function calling warnings.warn
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_FUNDL_DIR):
        frame, level = frame.f_back, level + 1
    return level


def _value_read(t, what):
    """Hook of tensor.py: a traced Tensor's value is read by Python code (not by an op)."""
    tracer = autograd._tracer
    if tracer is not None and (id(t) in tracer.traced or id(t) in tracer.born) and \
            tracer.in_this_thread():
        tracer.fail(f"{_VALUE_READS.get(what, what)} at {_user_line()} cannot be traced (its "
                    "result would be frozen into the plan)")


def _recording_wrap(wrap, tracer):
    """Tensor._wrap while tracing: remembers the Tensors created (see _Tracer.record)."""
    born = tracer.born

    def recording(cls, data, creator=None, out_index=0):
        t = wrap(cls, data, creator, out_index)
        born[id(t)] = t
        return t

    return recording


class _RecordingGenerator:
    """Stands for fundl's random generator while tracing: counts draws made outside ops."""

    def __init__(self, real, tracer):
        self._real = real
        self._tracer = tracer

    def __getattr__(self, name):
        attr = getattr(self._real, name)
        if callable(attr):
            tracer = self._tracer

            def draw(*args, **kwargs):
                if autograd._tracer is tracer and tracer.in_this_thread():  # (not in an op)
                    tracer.random_draws += 1
                    tracer.fail(f"a random draw outside an op (generator.{name}() at "
                                f"{_user_line()}) would be frozen into the plan", random=True)
                return attr(*args, **kwargs)

            return draw
        return attr


# -- the replay -----------------------------------------------------------------------------
class _Plan:
    """A traced function for one signature: steps, slots, the structure of its outputs."""

    def __init__(self, name, tracer, arg_slots, out_slots, rebuild, fuse=False):
        self.name = name
        self.steps = tracer.steps
        # The recorded op objects belong to the traced call's eager graph, which the caller may
        # still hold for a backward after later calls: the plan replays copies of its own, or
        # a replay would overwrite (and its backward free) what that graph's ops saved.
        for step in self.steps:
            step.op = _own_copy(step.op)
        # constants get slots of their own, filled once: every source is then a slot index
        self.template = [None] * tracer.n_slots
        for step in self.steps:
            for i, src in enumerate(step.sources):
                if type(src) is not int:
                    step.sources[i] = len(self.template)
                    self.template.append(src[1])
        self.n_slots = len(self.template)
        self.fused = 0              # chains of element-wise ops replaced by one op
        if fuse:
            self.steps, self.fused = _fuse_chains(self.steps, tracer.meta, self.template,
                                                  set(out_slots), tracer.n_slots, fuse == "auto")
        # A value no later step reads is dropped as the replay goes, as eager mode drops an
        # intermediate Tensor nobody refers to (what an op needs for its backward it keeps
        # itself): without this a replay held every intermediate until its backward, and was
        # slower than eager mode on large tensors. Arguments, captured Tensors, outputs and
        # constants stay.
        keep = set(out_slots) | set(arg_slots) | {s for s, _ in tracer.captured}
        last = {}
        for k, st in enumerate(self.steps):
            for src in st.sources:
                last[src] = k
        placeholder = {}  # slot -> its _Released, made once (the replay only swaps it in)
        for k, st in enumerate(self.steps):
            dead = ({s for s in st.sources if last[s] == k and s < tracer.n_slots}
                    | {s for s in st.out_slots if s not in last}) - keep
            st.release = tuple((s, placeholder.setdefault(s, _Released(tracer.meta.get(s))))
                               for s in sorted(dead))
        # buffers reused between calls: see _recycling
        self.arena = []
        self.arena_thread = threading.get_ident()
        if _REFCOUNTS:
            _recycling(self.steps, tracer.meta, self.template, keep, self.arena)
        # an op's outputs have consecutive slots (new_slot numbers them in order)
        self.forward_program = [_instruction(st.op, st) for st in self.steps]
        # ops that need no gradient: what their forward saved is dropped after each replay (no
        # backward reads it; it would keep arrays, and the buffers above, alive between calls)
        self.no_grad_steps = [k for k, st in enumerate(self.steps)
                              if not st.any_grad and st.recycle is None]
        # per step that needs a gradient: (index, first output slot, outputs, (input index,
        # input slot) of each input that needs one)
        self.backward_steps = [(k, st.out_slots[0], st.n_outputs,
                                tuple((i, src) for i, (src, need) in
                                      enumerate(zip(st.sources, st.needs_grad)) if need))
                               for k, st in reversed(list(enumerate(self.steps))) if st.any_grad]
        self.arg_slots = arg_slots
        self.captured = [t for _, t in tracer.captured]
        self.capture_slots = [s for s, _ in tracer.captured]
        self.capture_grad = [t.requires_grad for t in self.captured]
        self.capture_shape = [tuple(getattr(t.data, "shape", ())) for t in self.captured]
        self.out_slots = out_slots
        self.single_out = out_slots[0] if len(out_slots) == 1 else None
        self.rebuild = rebuild      # outputs' Tensors -> the function's return structure
        self.owner = None           # weakref to the replay whose backward still needs the ops
        self.in_slots = arg_slots + self.capture_slots
        # a Tensor passed twice has one slot: its gradient goes out once
        self.first_use = [s not in self.in_slots[:i] for i, s in enumerate(self.in_slots)]
        self.verified = False       # compared once with an eager run on new inputs

    def still_valid(self):
        for t, rg, shape in zip(self.captured, self.capture_grad, self.capture_shape):
            if t.requires_grad is not rg or t.data.shape != shape:  # (a weight rebuilt)
                return False
        return True

    def program(self):
        """``(op, input slots, output slot)`` per step, with the recorded op objects, or copies
        of them when a replay whose backward has not run yet still holds what they saved (two
        calls, then two backwards)."""
        owner = self.owner() if self.owner is not None else None
        if owner is None or owner.inputs is None:
            return self.forward_program
        copies = []
        for s in self.steps:
            c = copy.copy(s.op)  # hyper-parameters (in __dict__ or slots); forward saves anew
            c.needs_grad = s.needs_grad
            copies.append(_instruction(c, s))
        return copies


def _own_copy(op):
    """A copy of a recorded op for a plan: its hyper-parameters, none of the eager graph's
    links or saved arrays (its forward saves anew at every replay)."""
    c = copy.copy(op)
    c.saved = ()
    c.inputs = None
    c._gys = None
    return c


def _instruction(op, step):
    """``(op, input slots, first output slot, arity, slot of input 0, slot of input 1, slots
    to release after it)``: the replay calls one- and two-input ops (most of them) without
    building an argument list."""
    src = tuple(step.sources)
    return (op, src, step.out_slots[0], len(src), src[0] if src else -1,
            src[1] if len(src) > 1 else -1, step.release, step.recycle)


# -- buffers reused between calls ------------------------------------------------------------
RECYCLE_MIN_BYTES = 1 << 15
"""Element-wise results at least this big are written into buffers kept from the last call."""



def _free_refcount():
    """What ``sys.getrefcount(buf)`` says in :func:`_into` when only the arena and ``buf``
    refer to the buffer, or None where reference counts cannot tell (not CPython, no GIL, or
    an interpreter that does not count a local or an extra reference)."""
    if sys.implementation.name != "cpython" or not getattr(sys, "_is_gil_enabled",
                                                           lambda: True)():
        return None
    arena = [numpy.empty(1)]
    buf = arena[0]
    free = sys.getrefcount(buf)
    other = buf  # noqa: F841 - one more reference must show
    return free if sys.getrefcount(buf) == free + 1 else None


# CPython's reference counts tell when nothing but the plan holds a buffer (see _into)
_FREE_REFS = _free_refcount()
_REFCOUNTS = _FREE_REFS is not None
_NONE, _SAVE_INPUTS, _SAVE_OUTPUT, _SAVE_DIV = 0, 1, 2, 3


def _recyclers():
    """Op class -> (ufunc, what its forward saves): exactly what the op's ``forward`` computes
    and saves, with the result written into a given buffer (exact classes only)."""
    from .ops import activation as A
    from .ops import elementwise as O

    return {O.Add: (numpy.add, _NONE), O.Sub: (numpy.subtract, _NONE),
            O.Mul: (numpy.multiply, _SAVE_INPUTS), O.Div: (numpy.divide, _SAVE_DIV),
            O.Neg: (numpy.negative, _NONE), O.Abs: (numpy.abs, _SAVE_INPUTS),
            O.Maximum: (numpy.maximum, _SAVE_INPUTS), O.Minimum: (numpy.minimum, _SAVE_INPUTS),
            O.Exp: (numpy.exp, _SAVE_OUTPUT), O.Sqrt: (numpy.sqrt, _SAVE_OUTPUT),
            A.Tanh: (numpy.tanh, _SAVE_OUTPUT), A.ReLU: (numpy.maximum, _SAVE_OUTPUT)}


def _recycling(steps, meta, template, keep, arena):
    """Mark the steps whose result goes into a buffer reused from one call to the next.

    Why: eager mode (and a plain replay) gets a fresh array from the allocator for every
    intermediate; for arrays of tens of kilobytes and more the C library hands that memory back
    to the OS when it is freed, and every page of the next call's array faults again (on the
    2-core AMD EPYC, a 9-op chain on 400 KB arrays spent about a third of its time in page
    faults). A plan knows each value's shape and dtype, so an element-wise step (NumPy arrays,
    one float dtype, inputs and result) writes into the buffer it used last call, when nothing
    else refers to that buffer any more (see :func:`_into`). Plan outputs are not recycled
    (the caller keeps them).
    """
    from .kernels import activation as KA
    from .ops import activation as A

    table = _recyclers()

    def info(slot):
        if slot in meta:
            return meta[slot]
        v = template[slot]
        return tuple(getattr(v, "shape", ())), getattr(v, "dtype", None), type(v)

    for st in steps:
        if type(st.op) is FusedElementwise and st.out_slots[0] not in keep and \
                int(numpy.prod(st.op.shape)) * numpy.dtype(st.op.dtype).itemsize >= \
                RECYCLE_MIN_BYTES:
            arena.append(None)  # its compiled kernel's output buffer (FusedElementwise.forward)
            st.op.arena = (arena, len(arena) - 1, threading.get_ident())
            continue
        rec = table.get(type(st.op))
        if rec is None or st.n_outputs != 1 or st.out_slots[0] in keep:
            continue
        shape, dtype, kind = info(st.out_slots[0])
        if kind is not numpy.ndarray or dtype not in (numpy.float32, numpy.float64):
            continue
        nbytes = int(numpy.prod(shape, dtype=numpy.int64)) * dtype.itemsize
        if nbytes < RECYCLE_MIN_BYTES:
            continue
        relu = type(st.op) is A.ReLU
        if relu and nbytes >= KA.MIN_REGION_BYTES:
            continue  # kernels.relu runs a parallel region there, not numpy.maximum(x, 0)
        if len(st.sources) != rec[0].nin - relu or \
                any(info(s)[1] != dtype or info(s)[2] is not numpy.ndarray for s in st.sources):
            continue  # mixed dtypes: NumPy's promotion would pick the result's dtype
        arena.append(None)
        # (a step that needs no gradient saves nothing: no backward will read it, and a saved
        # array would keep its buffer from being reused at the next call)
        st.recycle = (rec[0], rec[1] if st.any_grad else _NONE, arena, len(arena) - 1, shape,
                      dtype, 0 if relu else rec[0].nin)


def _into(recycle, op, a, b):
    """Run a recycled element-wise step: its op's forward, written into the arena's buffer for
    it when nothing else holds that buffer (else into a new one, which the arena keeps)."""
    ufunc, saves, arena, k, shape, dtype, n = recycle
    buf = arena[k]
    # _FREE_REFS (3 on CPython 3.11: the arena's list, `buf`, getrefcount's argument). Any
    # other (the caller kept a result, an op saved it for a backward not run yet, a view) and
    # it is left alone.
    if buf is None or sys.getrefcount(buf) != _FREE_REFS:
        buf = arena[k] = numpy.empty(shape, dtype)
    if n == 2:
        y = ufunc(a, b, out=buf)
    elif n == 0:  # ReLU: kernels.relu's numpy.maximum(x, 0)
        y = ufunc(a, 0, out=buf)
    else:
        y = ufunc(a, out=buf)
    if saves == _SAVE_INPUTS:
        op.save(a, b) if n == 2 else op.save(a)
    elif saves == _SAVE_OUTPUT:
        op.save(y)
    elif saves == _SAVE_DIV:
        op.save(b, y)
    return y



class _Released:
    """What a replay keeps of a value it dropped: its shape and dtype, all that the backward
    needs of it (to bring a gradient to its input's shape, :func:`_fit`). One per slot, made
    when the plan is built from the shape and dtype the trace saw (the signature fixes them)."""

    __slots__ = ("shape", "dtype")

    def __init__(self, meta):
        self.shape, self.dtype = (meta[0], meta[1]) if meta is not None else ((), None)


class _Replay(Function):
    """One replay of a plan as a single autograd op (the super-op)."""

    def __init__(self, plan, program=None):
        self.plan = plan
        self.program = program  # None: the plan's
        self._state = ()

    # What forward saves, (values, program); when the engine frees it after backward, the ops'
    # own saved arrays go too, so memory between steps is what eager mode keeps.
    @property
    def saved(self):
        return self._state

    @saved.setter
    def saved(self, value):
        if not value and self._state:
            for step in self._state[1]:
                step[0].saved = ()
        self._state = value

    @property
    def name(self):
        return f"fl.function({self.plan.name})"

    def forward(self, *arrays):
        plan = self.plan
        program = self.program or plan.program()
        values = plan.template.copy()
        # (one thread at a time reuses the plan's buffers: the one that traced it)
        recycling = plan.arena and threading.get_ident() == plan.arena_thread
        for slot, a in zip(plan.in_slots, arrays):
            values[slot] = a
        op = None
        try:
            for op, sources, out, n, i, j, release, recycle in program:  # one loop
                if recycle is not None and recycling:
                    y = _into(recycle, op, values[i], values[j])  # (j = -1: unused)
                elif n == 1:
                    y = op.forward(values[i])
                elif n == 2:
                    y = op.forward(values[i], values[j])
                else:
                    y = op.forward(*[values[s] for s in sources])
                if type(y) is tuple:  # several outputs (or a one-element tuple): next slots
                    values[out:out + len(y)] = y
                else:
                    values[out] = y
                for s, placeholder in release:
                    values[s] = placeholder
        except Exception as e:
            k = next(i for i, step in enumerate(program) if step[0] is op)
            raise _replay_error(self.name, k, op, [values[s] for s in program[k][1]], e) from e
        for k in plan.no_grad_steps:
            program[k][0].saved = ()
        if self.needs_grad is not autograd._NO_GRAD:
            self._state = (values, program)  # (what self.save does, without the property)
        if plan.single_out is not None:
            return values[plan.single_out]
        return tuple([values[s] for s in plan.out_slots])

    def backward(self, *gys):
        plan = self.plan
        values, program = self._state
        # Each recorded op's saved arrays go as soon as its backward has run (as the engine
        # frees an eager graph op by op), unless the graph is retained for another backward:
        # freeing them only at the end kept every saved array alive beside the gradients.
        free = not getattr(autograd._mode, "retain_graph", False)
        grads = [None] * plan.n_slots
        for slot, g in zip(plan.out_slots, gys):
            if g is not None:
                grads[slot] = g if grads[slot] is None else grads[slot] + g
        for k, out, n_outputs, targets in plan.backward_steps:  # in reverse order
            op = program[k][0]
            if n_outputs == 1:
                g = grads[out]
                if g is None:  # no gradient reached this op
                    continue
                grads[out] = None
                gxs = op.backward(g)
            else:
                gs = grads[out:out + n_outputs]
                if all(g is None for g in gs):
                    continue
                grads[out:out + n_outputs] = [None] * n_outputs
                gxs = op.backward(*gs)
                del gs
            if free:
                op.saved = ()
            if type(gxs) is not tuple:
                gxs = (gxs,)
            for i, src in targets:  # (constants never need one)
                g = gxs[i]
                if g is None:
                    continue
                x = values[src]
                if g.shape != x.shape or g.dtype != x.dtype:
                    g = _fit(op, x, g)
                old = grads[src]
                grads[src] = g if old is None else old + g
        return tuple([grads[s] if first else None
                      for s, first in zip(plan.in_slots, plan.first_use)])


# -- element-wise fusion --------------------------------------------------------------------
FUSE_MIN_SIZE = 0
"""With ``fuse=True``: chains whose result has fewer elements than this stay op by op."""

AUTO_FUSE_MIN_SIZE = 1 << 16
"""With ``fuse="auto"`` (the default): only chains that need no gradient (inference, no_grad)
and whose result has at least this many elements are fused. Measured on the 2-core AMD EPYC
(a 9-op chain, float32, forward under no_grad, fused / op-by-op replay): in one process 8192
elements 0.96, 16384 0.88, 32768 0.86, 65536 0.79, 100000 0.80; each in its own process
(bench_graph_mode.py --case inference) 32768 1.03, 100000 0.82; 64 elements 2.5 (the fused
op's fixed cost). With gradients a fused chain loses (its backward recomputes the chain with
fresh arrays): 1.8x at 32768, 1.25x at 100000 in one process, 4x in its own."""


def _opcodes():
    """Op class -> opcode of :mod:`fundl.kernels.elementwise` (exact classes only: a subclass
    may compute something else)."""
    from .kernels import elementwise as E
    from .ops import activation as A
    from .ops import elementwise as O

    return {O.Add: E.ADD, O.Sub: E.SUB, O.Mul: E.MUL, O.Div: E.DIV, O.Maximum: E.MAXIMUM,
            O.Minimum: E.MINIMUM, O.Pow: E.POW, O.Neg: E.NEG, O.Sqrt: E.SQRT, O.Abs: E.ABS,
            A.ReLU: E.RELU}
    # Not exp, log, tanh, sigmoid (nor ** but ** 2): NumPy runs them with SIMD code 10-100x
    # faster than the scalar libm calls of a Numba loop (measured: tanh of 32K float32, NumPy
    # 6 us, Numba 0.9-1.2 ms), so a chain is cut there; the interpreter still has them.


def _fuse_chains(steps, meta, template, outputs, n_traced, auto=False):
    """Replace each chain (more precisely: tree) of two or more element-wise steps by one
    :class:`FusedElementwise` step; returns ``(new steps, number of chains fused)``.

    A step joins its consumer's chain when both are element-wise ops of one float dtype and
    output shape (inputs: that shape, a row of its last axis, or one element), its output
    feeds that one step only and is not an output of the plan, and the chain then reads at
    most :data:`fundl.kernels.elementwise.MAX_INPUTS` arrays. The chain runs where its last
    step ran: its other steps' inputs are ready by then, and their outputs feed nothing else;
    a chain never spans a state update (which may change in place what an earlier member
    reads: moving the read past it would change the value). ``auto``: only steps that need no gradient, chains of :data:`AUTO_FUSE_MIN_SIZE` elements
    or more (where fusing was measured to pay).
    """
    from .kernels import elementwise as E

    min_size = AUTO_FUSE_MIN_SIZE if auto else FUSE_MIN_SIZE

    codes = _opcodes()

    def shape_dtype(slot):
        if slot in meta:
            return meta[slot][0], meta[slot][1], meta[slot][2]
        v = template[slot]
        return tuple(getattr(v, "shape", ())), getattr(v, "dtype", None), type(v)

    def is_const_scalar(slot):
        return slot >= n_traced and getattr(template[slot], "size", 2) == 1

    producer, consumers = {}, {}
    for k, st in enumerate(steps):
        for s in st.out_slots:
            producer[s] = k
        for s in st.sources:
            consumers.setdefault(s, set()).add(k)
    fusable = {}
    for k, st in enumerate(steps):
        code = codes.get(type(st.op))
        if code is None or st.n_outputs != 1 or not st.sources or (auto and st.any_grad):
            continue
        shape, dtype, kind = shape_dtype(st.out_slots[0])
        if dtype not in (numpy.float32, numpy.float64) or kind is not numpy.ndarray or \
                len(shape) == 0:
            continue
        ok = True
        n_regs = 0
        for s in st.sources:
            sh, dt, _ = shape_dtype(s)
            if dt != dtype:
                ok = False
            elif sh == shape:
                n_regs += 1
            elif is_const_scalar(s):
                pass
            elif E.modes_of([numpy.empty(sh, dtype=bool)], shape) is None:
                ok = False
            else:
                n_regs += 1
        if code == E.POW and not (is_const_scalar(st.sources[1]) and
                                  float(numpy.asarray(template[st.sources[1]])) == 2.0):
            ok = False
        if ok and n_regs:
            fusable[k] = (shape, dtype)
    into = {}
    members = {k: [k] for k in fusable}
    updates = [i for i, st in enumerate(steps) if isinstance(st.op, StateUpdate)]

    def externals(group):
        made = {steps[k].out_slots[0] for k in group}
        ext = []
        for k in group:
            for s in steps[k].sources:
                if s not in made and s not in ext and not is_const_scalar(s):
                    ext.append(s)
        return ext

    for k in sorted(fusable):
        out = steps[k].out_slots[0]
        users = consumers.get(out, ())
        if out in outputs or len(users) != 1:
            continue
        (j,) = users
        if j not in fusable or fusable[j] != fusable[k]:
            continue
        merged = members[j] + members[k]
        if len(externals(merged)) > E.MAX_INPUTS or any(min(merged) < i < j for i in updates):
            continue
        into[k] = j
        members[j] = merged
    new_steps, count = [], 0
    for k, st in enumerate(steps):
        if k in into:
            continue  # runs inside its consumer's chain
        group = sorted(members.get(k, [k]))
        if len(group) < 2 or numpy.prod(fusable[k][0]) < min_size:
            new_steps += [steps[i] for i in group]  # (in their recorded order)
            continue
        new_steps.append(_fused_step([steps[i] for i in group], externals(group),
                                     fusable[k], template, is_const_scalar, codes))
        count += 1
    return new_steps, count


def _fused_step(group, ext, shape_dtype, template, is_const_scalar, codes):
    """The :class:`_Step` of one fused chain (``group``: its steps in recorded order)."""
    from .kernels import elementwise as E

    local = {s: i for i, s in enumerate(ext)}   # external slot -> input index / register
    consts, const_index = [], {}
    prog = [[E.LOAD, i, i, 0, 0] for i in range(len(ext))]
    members = []
    any_grad = False
    needs_out = [False] * len(ext)
    for st in group:
        srcs = []
        operands = []
        for s in st.sources:
            if s in local:
                srcs.append(local[s])
                operands.append((local[s], False))
            else:  # a scalar constant
                if s not in const_index:
                    const_index[s] = len(consts)
                    consts.append(float(numpy.asarray(template[s]).reshape(())))
                srcs.append(("const", template[s]))
                operands.append((const_index[s], True))
        reg = len(local)
        local[st.out_slots[0]] = reg
        code = codes[type(st.op)]
        if code in E.UNARY:
            prog.append([code, reg, operands[0][0], 0, 0])
        else:
            (a, ca), (b, cb) = operands
            prog.append([code, reg, a, b, (1 if ca else 0) | (2 if cb else 0)])
        members.append((st.op, srcs, reg, st.needs_grad, st.any_grad))
        any_grad = any_grad or st.any_grad
        for s, need in zip(st.sources, st.needs_grad if st.any_grad else ()):
            if need and s in local and local[s] < len(ext):
                needs_out[local[s]] = True
    op = FusedElementwise(numpy.array(prog, numpy.int64), numpy.array(consts, numpy.float64),
                          members, len(ext), shape_dtype)
    op.needs_grad = tuple(needs_out) if any_grad else autograd._NO_GRAD
    return _Step(op, list(ext), [group[-1].out_slots[0]], 1)


class FusedElementwise(Function):
    """A chain of element-wise ops run as one program of the compiled interpreter
    (:func:`fundl.kernels.elementwise.run_program`); made by graph mode's fusion.

    Its backward recomputes the chain with the original ops (their forward, then their
    backward in reverse order), so no intermediate is kept between forward and backward and
    the gradients are those of eager mode.
    """

    def __init__(self, prog, consts, members, n_inputs, shape_dtype):
        self.prog = prog
        self.consts = consts
        self.members = members      # (op, sources: input index/register or ("const", v),
        self.n_inputs = n_inputs    #   register of its output, needs_grad, any_grad)
        self.shape, self.dtype = shape_dtype
        self.modes = None
        self.arena = None           # (list, index, thread): its output buffer, reused (_recycling)

    @property
    def name(self):
        return "FusedElementwise[" + ",".join(type(m[0]).__name__ for m in self.members) + "]"

    def forward(self, *arrays):
        if self.needs_grad is not autograd._NO_GRAD:
            self.save(*arrays)
        from .kernels import elementwise as E

        if self.modes is None:  # (the read modes: fixed by the plan's signature)
            self.modes = E.modes_of(arrays, self.shape)
            self.modes = numpy.array(self.modes + [0] * (E.MAX_INPUTS - len(self.modes)),
                                     numpy.int64) if self.modes is not None else False
        if self.modes is not False and E.ready("elementwise", self.dtype) and \
                all(type(a) is numpy.ndarray and a.flags.c_contiguous and
                    a.dtype == self.dtype for a in arrays):
            out = None
            if self.arena is not None and threading.get_ident() == self.arena[2]:
                arena, k, _ = self.arena
                out = arena[k]
                if out is None or sys.getrefcount(out) != _FREE_REFS:  # (see _into)
                    out = arena[k] = numpy.empty(self.shape, self.dtype)
            if out is None:
                out = numpy.empty(self.shape, self.dtype)
            flat = [a.reshape(-1) for a in arrays]
            flat += [flat[0]] * (E.MAX_INPUTS - len(flat))
            E.run_program_numba(self.prog, self.consts, flat[0], flat[1], flat[2], flat[3],
                                self.modes, self.shape[-1], out.reshape(-1))
            return out
        return E.run_program(self.prog, self.consts, arrays, self.shape, self.dtype)

    def backward(self, gy):
        values = list(self.saved) + [None] * len(self.members)
        for op, srcs, reg, needs, _ in self.members:  # recompute, letting each op save
            op.needs_grad = needs
            values[reg] = op.forward(*[values[s] if type(s) is int else s[1] for s in srcs])
        grads = [None] * len(values)
        grads[self.members[-1][2]] = gy
        try:
            for op, srcs, reg, needs, any_grad in reversed(self.members):
                g = grads[reg]
                if g is None or not any_grad:
                    continue
                gxs = op.backward(g)
                if type(gxs) is not tuple:
                    gxs = (gxs,)
                for s, need, gx in zip(srcs, needs, gxs):
                    if need and gx is not None and type(s) is int:
                        x = values[s]
                        if gx.shape != x.shape or gx.dtype != x.dtype:
                            gx = _fit(op, x, gx)
                        grads[s] = gx if grads[s] is None else grads[s] + gx
        finally:
            for op, *_ in self.members:
                op.saved = ()
        return tuple(grads[:self.n_inputs])


def _fit(op, x, g):
    """Bring a recorded op's gradient to its input's shape and dtype (as the engine does)."""
    if g.shape != x.shape:
        g2 = unbroadcast(g, x.shape)
        if g2 is None:
            raise ValueError(f"{op.name}.backward returned a gradient of shape {g.shape} for an "
                             f"input of shape {x.shape}; they do not broadcast. This is a bug in "
                             f"the op {op.name}.")
        g = g2
    if g.dtype != x.dtype:
        g = g.astype(x.dtype)
    return g


def _replay_error(name, k, op, ins, e):
    shapes = ", ".join(str(getattr(a, "shape", type(a).__name__)) for a in ins)
    msg = (f"{name}: op {op.name} (step {k} of the traced plan) failed during replay: {e} "
           f"(input shapes {shapes})")
    try:
        return type(e)(msg)
    except Exception:  # an exception class whose constructor wants other arguments
        return RuntimeError(msg)


# -- signatures -----------------------------------------------------------------------------
def _training_context():
    base = sys.modules.get("fundl.layers.base")
    return None if base is None else base._CALL_CONTEXT.training


def _is_array(value):
    return type(value) is numpy.ndarray or (
        hasattr(value, "shape") and hasattr(value, "dtype") and hasattr(value, "__array__"))


def _key(value, inputs):
    """A hashable key for an argument (shape, dtype and requires_grad of Tensors and arrays,
    the value of anything else), appending its Tensors (arrays wrapped) to ``inputs`` in the
    order :func:`_wrap_args` gives them slots."""
    t = type(value)
    if t is Tensor or isinstance(value, Tensor):
        d = value.data
        inputs.append(value)
        return (d.shape, d.dtype, value.requires_grad, type(d))
    if value is None or t is bool or t is int or t is float or t is str:
        return (t, value)
    if t is list or t is tuple:
        return (t,) + tuple([_key(v, inputs) for v in value])
    if t is dict:
        return (dict,) + tuple([(k, _key(v, inputs)) for k, v in value.items()])
    if _is_array(value):
        inputs.append(Tensor._wrap(value))
        return ("array", tuple(value.shape), value.dtype, t)
    if isinstance(value, (list, tuple)):  # a namedtuple
        return (t,) + tuple([_key(v, inputs) for v in value])
    if isinstance(value, dict):
        return (t,) + tuple([(k, _key(v, inputs)) for k, v in value.items()])
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))  # an unhashable object: by identity (a model, a layer...)
    return (t, value)


def _wrap_args(value, tracer):
    """Arguments with every Tensor/array registered as a traced slot (arrays become Tensors)."""
    if isinstance(value, Tensor):
        if id(value) in tracer.by_tensor:  # the same Tensor passed twice
            return value, [tracer.by_tensor[id(value)]]
        return value, [tracer.argument(value)]
    if _is_array(value):
        t = Tensor._wrap(value)
        return t, [tracer.argument(t)]
    if isinstance(value, (list, tuple)):
        items, slots = [], []
        for v in value:
            w, s = _wrap_args(v, tracer)
            items.append(w)
            slots += s
        return (type(value)(items) if type(value) in (list, tuple)
                else type(value)(*items)), slots  # (a namedtuple)
    if isinstance(value, dict):
        out, slots = {}, []
        for k in value:
            out[k], s = _wrap_args(value[k], tracer)
            slots += s
        return out, slots
    return value, []


def _as_tensors(value):
    """The arguments with arrays wrapped as Tensors (what a traced function receives)."""
    if isinstance(value, Tensor):
        return value
    if _is_array(value):
        return Tensor._wrap(value)
    if type(value) in (list, tuple):
        return type(value)(_as_tensors(v) for v in value)
    if isinstance(value, tuple):  # a namedtuple
        return type(value)(*[_as_tensors(v) for v in value])
    if isinstance(value, dict):
        return {k: _as_tensors(v) for k, v in value.items()}
    return value


def _flatten_outputs(result, tracer):
    """``(slots of the output Tensors, rebuild(tensors) -> the same structure)``."""
    slots = []

    def walk(v):
        if isinstance(v, Tensor):
            slot = tracer.by_tensor.get(id(v))
            if slot is None:  # a Tensor made without an op (fl.tensor(...)) or captured
                raise _Untraceable("it returns a Tensor that no op produced (a constant or a "
                                   "new Tensor); return op results, or run it eagerly")
            index = len(slots)
            slots.append(slot)
            return lambda ts: ts[index]
        if isinstance(v, (list, tuple)):
            parts = [walk(x) for x in v]
            kind = type(v)
            if kind in (list, tuple):
                return lambda ts: kind(p(ts) for p in parts)
            return lambda ts: kind(*(p(ts) for p in parts))  # a namedtuple
        if isinstance(v, dict):
            parts = {k: walk(x) for k, x in v.items()}
            return lambda ts: {k: p(ts) for k, p in parts.items()}
        if v is None or isinstance(v, (bool, int, float, str)):
            return lambda ts: v
        raise _Untraceable(f"it returns a {type(v).__name__}, not Tensors (or lists, tuples, "
                           "dicts of them)")

    rebuild = walk(result)
    return slots, rebuild


def _tensors_of(value, out):
    """The Tensors of a returned structure, in the order _flatten_outputs lists them."""
    if isinstance(value, Tensor):
        out.append(value)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _tensors_of(v, out)
    elif isinstance(value, dict):
        for v in value.values():
            _tensors_of(v, out)
    return out


def _compare(eager, replayed):
    """None if the eager outputs equal the replayed arrays, else what differs."""
    if len(eager) != len(replayed):
        return "its outputs change structure between calls"
    for i, (t, a) in enumerate(zip(eager, replayed)):
        e = backend.to_numpy(t.data)
        a = backend.to_numpy(a)
        if e.shape != a.shape or e.dtype != a.dtype:
            return f"output {i} changes shape or dtype between eager mode and the plan"
        tol = 1e-12 if e.dtype == numpy.float64 else 1e-5
        if e.dtype.kind in "fc":
            if not numpy.allclose(e, a, rtol=tol, atol=tol, equal_nan=True):
                return f"output {i} of the plan differs from eager mode on new inputs"
        elif not numpy.array_equal(e, a):
            return f"output {i} of the plan differs from eager mode on new inputs"
    return None


# -- the public decorator ---------------------------------------------------------------------
class GraphFunction:
    """A Python function of Tensors traced into plans and replayed (made by :func:`function`).

    Attributes:
        python_function: the original function.
        trace_count: how many times it was traced (one per new signature).
        plans: the number of signatures currently cached.
    """

    def __init__(self, fn, name=None, max_plans=_MAX_PLANS, warn=True, watch=None,
                 fuse="auto"):
        functools.update_wrapper(self, fn, updated=())  # (not a model's __dict__)
        self.python_function = fn
        self._name = name or getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))
        self._plans = OrderedDict()   # signature -> _Plan, or a reason string (runs eagerly)
        self._max_plans = max_plans
        self._warn = warn
        self._watch = watch           # () -> Tensors that only ops may change (model state)
        self._fuse = fuse             # fuse chains of element-wise ops (see _fuse_chains)
        self.trace_count = 0
        self._retrace_warned = False
        self._redraws = set()         # signatures whose trace drew random numbers once
        self._warned = set()          # reasons already warned about (once each)

    def experimental_get_tracing_count(self) -> int:
        """How many times the function was traced (TensorFlow's name)."""
        return self.trace_count

    @property
    def plans(self) -> int:
        return sum(isinstance(p, _Plan) for p in self._plans.values())

    def __get__(self, instance, owner):
        if instance is None:
            return self
        # a method: one GraphFunction per instance, kept on the instance
        key = "_graph_fn_" + self.__name__
        try:
            return instance.__dict__[key]
        except (KeyError, AttributeError):
            bound = GraphFunction(self.python_function.__get__(instance, owner), self._name,
                                  self._max_plans, self._warn, fuse=self._fuse)
            try:
                instance.__dict__[key] = bound
            except AttributeError:
                pass
            return bound

    def __repr__(self):
        return f"<fl.function {self._name}: {self.plans} plan(s)>"

    def signature(self, args, kwargs, inputs):
        """The key of a call's plan; fills ``inputs`` with the call's Tensors (see _key)."""
        key = None
        if not kwargs:  # the usual call, Tensors only: _key(args) without its recursion
            parts = [tuple]
            for a in args:
                if type(a) is not Tensor:
                    del inputs[:]
                    break
                d = a.data
                inputs.append(a)
                parts.append((d.shape, d.dtype, a.requires_grad, type(d)))
            else:
                key = tuple(parts)
        if key is None:
            key = _key(args, inputs)
        return (key, _key(kwargs, inputs) if kwargs else None, getattr(
            autograd._mode, "enabled", True), _training_context(), backend._default_dtype)

    def __call__(self, *args, **kwargs):
        if autograd._tracer is not None:  # called inside another traced function: inline it
            return self.python_function(*args, **kwargs)
        inputs = []
        key = self.signature(args, kwargs, inputs)
        plan = self._plans.get(key)
        if plan is not None:
            if type(plan) is str:  # cannot be traced: eager (arrays as Tensors, as traced)
                args, kwargs = _as_tensors((args, kwargs))
                return self.python_function(*args, **kwargs)
            if plan.still_valid():
                self._plans.move_to_end(key)
                if not plan.verified:
                    return self._verify(key, plan, args, kwargs, inputs)
                return self._replay(plan, inputs)
        return self._trace(key, args, kwargs)

    def _replay(self, plan, inputs):
        inputs += plan.captured
        replay = _Replay(plan)
        out = replay.apply(*inputs)
        state = replay._state
        if state and state[1] is plan.forward_program:
            plan.owner = weakref.ref(replay)  # its backward needs the recorded ops' saved arrays
        outs = out if type(out) is tuple else (out,)
        return plan.rebuild(outs)

    def _verify(self, key, plan, args, kwargs, inputs):
        """The first replay of a plan: run the plan's ops and the function eagerly on the same
        inputs (the same random numbers), return the eager result and keep the plan only if
        both agree. A value computed in Python from the inputs and frozen into the plan (which
        the trace cannot see: arithmetic on ``.data``) shows up here as a difference."""
        rng = tensor_module._rng
        state = rng.bit_generator.state
        inputs = inputs + plan.captured
        # (state updates left out: the eager run below makes them, once)
        program = [(_NO_EFFECT,) + step[1:] if isinstance(step[0], StateUpdate) else step
                   for step in plan.program()]
        replay = _Replay(plan, program)
        replay.needs_grad = autograd._NO_GRAD
        try:
            replayed = replay.forward(*[t.data for t in inputs])
        except Exception as e:
            replayed = e
        rng.bit_generator.state = state
        args, kwargs = _as_tensors((args, kwargs))
        result = self.python_function(*args, **kwargs)
        if isinstance(replayed, Exception):
            problem = f"its traced plan fails on new inputs ({replayed})"
        else:
            replayed = replayed if len(plan.out_slots) != 1 else (replayed,)
            problem = _compare(_tensors_of(result, []), replayed)
        if problem is None:
            plan.verified = True
            return result
        self._store(key, problem)
        self._warn_once(f"fl.function({self._name}): {problem} (a value computed in Python "
                        "from the inputs, e.g. through `.data`, was frozen into the plan); "
                        "running it eagerly.")
        return result

    def _trace(self, key, args, kwargs):
        with _TRACE_LOCK:
            return self._trace_locked(key, args, kwargs)

    def _trace_locked(self, key, args, kwargs):
        self.trace_count += 1
        if self.trace_count == _RETRACE_WARNING and not self._retrace_warned and self._warn:
            self._retrace_warned = True
            warnings.warn(f"fl.function({self._name}) has been traced {self.trace_count} times: "
                          "each new input shape, dtype or Python argument value traces anew. "
                          "Keep shapes fixed (e.g. drop the last partial batch) or pass numbers "
                          "as Tensors.", stacklevel=_stacklevel())
        tracer = _Tracer(self._name)
        watched = [] if self._watch is None else [(t, backend.to_numpy(t.data).copy())
                                                  for t in self._watch()]
        (wargs, wkwargs), arg_slots = _wrap_args((args, kwargs), tracer)
        real_rng = tensor_module._rng
        tensor_module._rng = _RecordingGenerator(real_rng, tracer)
        previous_hook = tensor_module._trace_hook
        tensor_module._trace_hook = _value_read
        wrap = Tensor.__dict__["_wrap"]
        Tensor._wrap = classmethod(_recording_wrap(wrap.__func__, tracer))
        autograd._tracer = tracer
        try:
            result = self.python_function(*wargs, **wkwargs)
        finally:
            autograd._tracer = None
            Tensor._wrap = wrap
            tensor_module._trace_hook = previous_hook
            if tensor_module._rng is not None and isinstance(tensor_module._rng,
                                                              _RecordingGenerator):
                tensor_module._rng = real_rng  # (manual_seed inside the function replaced it)
        if any(getattr(t, "_keras_mask", None) is not None
               for t in list(tracer.born.values()) + list(tracer.keep)):
            tracer.fail("a sequence mask (Embedding(mask_zero=True), Masking) is computed in "
                        "Python from the data; it would be frozen into the plan")
        problem = tracer.problem
        changed = [t for t, before in watched if id(t) not in tracer.updated
                   and not numpy.array_equal(backend.to_numpy(t.data), before)]
        if problem is None and changed:
            names = list(dict.fromkeys(str(t.name) for t in changed))
            more = f" and {len(names) - 3} more" if len(names) > 3 else ""
            problem = (f"it updates state outside an op ({', '.join(names[:3])}{more}: e.g. "
                       "BatchNormalization's moving averages in training)")
        if problem is None:
            try:
                out_slots, rebuild = _flatten_outputs(result, tracer)
            except _Untraceable as e:
                problem = str(e)
        if problem is not None:
            if tracer.random_draws and key not in self._redraws and not tracer.other_problem:
                # the first call may build layers (their initial weights are random draws):
                # trace once more before giving up
                self._redraws.add(key)
                return result
            self._store(key, problem)
            self._warn_once(f"fl.function({self._name}): {problem}; running it eagerly.")
            return result
        self._store(key, _Plan(self._name, tracer, arg_slots, out_slots, rebuild, self._fuse))
        return result

    def _warn_once(self, message):
        """One warning per function (a new signature hitting the same problem stays quiet)."""
        if self._warn and not self._warned:
            self._warned.add(message)
            warnings.warn(message, stacklevel=_stacklevel())

    def _store(self, key, plan):
        self._plans[key] = plan
        self._plans.move_to_end(key)
        while len(self._plans) > self._max_plans:
            self._plans.popitem(last=False)


def model_step(model):
    """The traced forward + loss of ``model``'s built-in training step (``compile(...,
    jit_compile=True)``), or None, after a warning, when the model has its own train_step."""
    if model._overrides("train_step"):
        warnings.warn(f"compile(jit_compile=True): model '{model.name}' overrides train_step "
                      "(or compute_loss/compute_metrics); graph mode traces only the built-in "
                      "step, so it runs eagerly.", stacklevel=3)
        return None
    return GraphFunction(model._forward_loss, name=f"{model.name}.train_step",
                         watch=lambda: model.non_trainable_weights)


def function(func=None, *, reduce_retracing=False, jit_compile=None, name=None, fuse="auto"):
    """Trace a function of Tensors into a plan once per input signature, and replay it
    (TensorFlow's ``tf.function``).

    Args:
        func: the function (``@fl.function``), or None for ``@fl.function(...)``.
        reduce_retracing: accepted for TensorFlow compatibility (plans are per exact shape).
        jit_compile: accepted for TensorFlow compatibility.
        name: the name used in messages (default: the function's qualified name).
        fuse: replace each chain of element-wise ops (``+ - * /``, ``** 2``, neg, sqrt, abs,
            maximum, minimum, ReLU, on arrays of one shape, a bias row or scalars) by one op
            that evaluates it in one compiled pass (:mod:`fundl.kernels.elementwise`); its
            backward recomputes the chain, so no intermediate is kept between forward and
            backward. ``"auto"`` (the default): only chains that need no gradient (a function
            called under ``fl.no_grad()``, inference) with at least
            :data:`AUTO_FUSE_MIN_SIZE` elements, where it was measured to pay (about 0.8x the
            op-by-op replay on the 2-core AMD EPYC); True: every chain (with gradients it was
            slower, 1.25-4x, the backward recomputing the chain, but keeps no intermediate:
            a memory option); False: none.

    Returns:
        A :class:`GraphFunction`: call it like the function. Its first call for a signature
        (the shapes, dtypes and ``requires_grad`` of Tensor/array arguments, the values of
        other arguments, grad mode, the ``training`` flag of the layer-call context, the default
        dtype) runs the function eagerly and records a plan; later calls replay it, returning
        the same structure of Tensors, differentiable as in eager mode.

    A function that reads a Tensor's value in Python (``if``, ``.item()``, ``float()``,
    ``.numpy()``) or draws random numbers outside an op runs eagerly, after one warning.

    Example:
        >>> @fl.function
        ... def step(x, y):
        ...     return fl.losses.mean_squared_error(y, model(x)).mean()
        >>> loss = step(x, y); loss.backward()
    """
    if fuse not in (True, False, "auto"):
        raise ValueError(f"fl.function: fuse must be True, False or 'auto', got {fuse!r}.")

    def make(f):
        if not callable(f):
            raise TypeError(f"fl.function: expected a callable, got {type(f).__name__}.")
        if isinstance(f, GraphFunction):
            return f
        return GraphFunction(f, name=name, fuse=fuse)

    if func is None:
        return make
    return make(func)


# -- random numbers inside an op -------------------------------------------------------------
class RandomOp(Function):
    """A zero-input op whose forward calls ``draw()``: replayed plans draw afresh every time."""

    def __init__(self, draw):
        self.draw = draw

    @property
    def name(self):
        return "RandomOp"

    def forward(self):
        return self.draw()

    def backward(self, *gys):  # pragma: no cover - no inputs, nothing to return
        return ()


def random_op(draw):
    """Run ``draw()`` (a function returning a new array of random numbers) as an op, so that a
    traced plan draws fresh values at every replay instead of freezing the traced ones.

    Args:
        draw: a function of no arguments returning an array.

    Returns:
        A Tensor (no gradient) holding ``draw()``.

    Example:
        >>> noise = random_op(lambda: fl.get_rng().standard_normal(x.shape).astype(x.dtype))
    """
    return RandomOp(draw).apply()


class StateUpdate(Function):
    """An op whose forward updates state in place (``update(*arrays)``): replayed plans update
    it at every replay. Its output, an empty array, is not meant to be used."""

    def __init__(self, update):
        self.update = update

    def forward(self, *arrays):
        self.update(*arrays)
        return arrays[0][:0]

    def backward(self, gy):  # pragma: no cover - its output feeds nothing
        return (None,) * len(self.needs_grad)


def state_update(targets, update, *inputs):
    """Run ``update(*arrays of inputs)``, which changes the Tensors ``targets`` in place (a
    layer's moving averages), as an op: a traced plan (:func:`function`) then repeats the
    update at every replay, and graph mode knows the change of ``targets`` is replayed.

    Args:
        targets: the Tensors ``update`` changes (their ``.data`` in place).
        update: a function of the inputs' arrays.
        *inputs: Tensors (no gradient flows through the update).

    Example:
        >>> state_update((self.moving_mean,), lambda m: self.moving_mean.data.__imul__(0.9)
        ...              or None, batch_mean)
    """
    tracer = autograd._tracer
    if tracer is not None:
        tracer.updated.update(id(t) for t in targets)
    StateUpdate(update).apply(*[t.detach() if isinstance(t, Tensor) else t for t in inputs])


_NO_EFFECT = StateUpdate(lambda *arrays: None)
