"""Recurrent layers as fused sequence ops: SimpleRNN, LSTM and GRU over a whole sequence.

Back-propagation through time is the backward walk over the unrolled graph: one copy of the
cell per time step, all sharing the same weights. These ops compute exactly that graph (the
tests compare them with the step-by-step graph of :class:`~fundl.layers.RNN` and with
PyTorch), but organise the work the way the hardware likes it:

- one GEMM projects the inputs of *all* steps at once: ``[x_t, 1] @ [W; b]`` (bias included);
- one GEMM per step for the recurrence ``h_{t-1} @ U`` (skipped at t = 0 when h0 = 0), and
  one per step in the backward sweep, ``dz_t @ U^T``; the LSTM's compiled loops instead take
  ONE product per step, ``[h_{t-1}, x_t, 1] @ [U; W; b]``, written straight into the step's
  gate buffer (no (T, B, 4H) projection that leaves the cache; see
  :func:`fundl.kernels.recurrent._lstm_forward_sweep`);
- the gate math between them in one compiled pass per step (:mod:`fundl.kernels.recurrent`);
- after the backward sweep, one GEMM for the gradients of all weights, summed over all steps
  and samples (``[h_{t-1}, x_t, 1]^T @ dz``; the GRU needs two), and one for the inputs
  (one of each per batch part, below);
- on the CPU, the LSTM's and GRU's whole time loops run compiled, one part of the batch per
  thread (samples never interact, so each part is the same op over fewer rows; only the
  weight gradients are summed over the parts).

Arrays are time-major inside (``(T, B, ...)``, one contiguous block per step); inputs and
outputs are batch-major ``(B, T, ...)`` as in Keras. Gate blocks follow Keras' weight layout:
LSTM ``[i, f, c, o]``, GRU ``[z, r, h]``; ``kernel`` is ``(features, gates * units)``,
``recurrent_kernel`` ``(units, gates * units)``. The big per-sequence buffers are recycled
from call to call once nothing refers to them any more (see
:class:`fundl.runtime.Workspace`).

Masks: ``mask`` (B, T) booleans; at a step where it is False the state is carried over
unchanged (the step neither updates the state nor receives gradient through its gates), as
in Keras. Recurrent dropout: ``recurrent_dropout_mask`` (B, units) multiplies the previous
state where it enters the recurrent product (Keras' recurrent dropout), never elsewhere.
"""
from __future__ import annotations

import dataclasses
import weakref

import numpy

from .. import runtime
from ..autograd import _NO_GRAD, Function
from ..backend import get_array_module
from ..kernels import gemm_function, map_compiled, regions, threads
from ..kernels import fused
from ..kernels import gemm as own_gemm
from ..kernels._parallel import Backoff, run_backing_off
from ..kernels.convolution import small_b0_nt, small_gemms
from ..kernels import recurrent as kernels
from ..tensor import Tensor

ACTIVATIONS = tuple(kernels.ACTIVATIONS)
"""Activation names the fused ops support (others run as the step-by-step graph)."""


WHOLE = [slice(None)]
"""One batch part, the whole batch (the ops' Python loops)."""

_SERIAL_MACS_PER_SECOND = 8e10
"""One core's rate for the compiled loops' products, a low estimate: OpenBLAS's AVX-512 small
kernels ran a forward step's 32 x 160 @ 160 x 512 in ~26 us (1e11 multiply-adds a second) on
the 2-core AMD EPYC (Zen 5); half that rate on an AVX2-only CPU still lets a region that runs
in time (half the serial time) pass."""
_BACKOFF = Backoff(_SERIAL_MACS_PER_SECOND)
"""The recurrent loops' regions back off to one thread while they stall (the other core
busy elsewhere): a 2-part LSTM backward region of a row-MNIST step (1.8 ms in time) took
~9 ms on average while another process kept a core busy, against ~3.3 ms for both parts
one after the other here (see :class:`fundl.kernels._parallel.Backoff`; its keys are
(driver, dtype) pairs)."""


def _run_parts(loop, n_parts, dtype, macs, blas, *args):
    """The compiled ``loop`` over ``n_parts`` batch parts of ``dtype``
    (:func:`fundl.kernels.map_compiled`), backing off to one thread (the same parts one after
    the other, the same results) while its regions stall
    (:func:`fundl.kernels._parallel.run_backing_off`); ``macs``: the multiply-adds of its
    products, ``blas``: whether the loop calls the threaded BLAS library (without OpenBLAS's
    small kernels), which must then run single-threaded inside the region."""
    if n_parts < 2 or not regions():
        return map_compiled(loop, n_parts, *args)  # one thread, or Python threads
    return run_backing_off(_BACKOFF, loop, n_parts, macs, (loop, numpy.dtype(dtype)), *args,
                           blas=blas)


LSTM_ALIGN = 32
"""The LSTM's compiled loops take ``[U; W; b; 0]`` with H + D [+ 1] rows padded with zero rows
to a multiple of this (see :attr:`LSTMSequence.ALIGN`)."""


_BLOCKS = {}
"""id(recurrent kernel array) -> (weak references to it, the kernel and the bias (or None),
and the block) for the LSTM weights :func:`share_lstm_block` laid out in one block."""


def share_lstm_block(kernel, recurrent_kernel, bias=None, align=LSTM_ALIGN):
    """Make an LSTM's weights (Tensors: kernel (D, 4H), recurrent kernel (H, 4H), bias (4H,)
    or None) views of ONE block ``[U; W; b; 0]`` (rows padded with zeros to a multiple of
    ``align``, on 64 bytes), their values unchanged: the compiled loops then read the block as
    it is instead of stacking the weights anew at every call (~40 us of a row-MNIST training
    step's CPU, cold caches, ~0.6 MB moved). Optimizer updates and ``set_weights`` write in
    place, so the views stay; where a weight's array is replaced, the op stacks them again
    (:func:`_stacked` looks the arrays up). Only for NumPy weights of one dtype; others are
    left as they are. Returns the block, or None.

    Example:
        >>> block = share_lstm_block(cell.kernel, cell.recurrent_kernel, cell.bias)
    """
    arrays = [t.data for t in (recurrent_kernel, kernel, bias) if t is not None]
    if any(type(a) is not numpy.ndarray or a.dtype != arrays[0].dtype for a in arrays):
        return None
    n, d, g = recurrent_kernel.shape[0], kernel.shape[0], recurrent_kernel.shape[1]
    used = n + d + (bias is not None)
    block = runtime.aligned_empty((-(-used // align) * align, g), arrays[0].dtype)
    block[:n] = arrays[0]
    block[n:n + d] = arrays[1]
    if bias is not None:
        block[n + d] = arrays[2]
    block[used:] = 0  # (no weight covers these rows: nothing writes them later)
    recurrent_kernel.data, kernel.data = block[:n], block[n:n + d]
    if bias is not None:
        bias.data = block[n + d]
    key = id(recurrent_kernel.data)
    _BLOCKS[key] = (weakref.ref(recurrent_kernel.data, lambda _: _BLOCKS.pop(key, None)),
                    weakref.ref(kernel.data),
                    None if bias is None else weakref.ref(bias.data), block)
    return block


def _shared_block(w, u, bias, dtype, rows):
    """The first ``rows`` rows of the block ``[U; W; b; 0]`` whose views the weights still
    are (:func:`share_lstm_block`; ``rows`` from H + D [+ 1] to the block's), else None:
    a lookup by identity, no pointer arithmetic (each ``.ctypes`` costs microseconds)."""
    entry = _BLOCKS.get(id(u))
    if entry is None or entry[0]() is not u or entry[1]() is not w or \
            (None if entry[2] is None else entry[2]()) is not bias:
        return None
    block = entry[3]
    if block.dtype != dtype or rows > block.shape[0] or \
            rows < u.shape[0] + w.shape[0] + (bias is not None):
        return None
    return block if rows == block.shape[0] else block[:rows]


def _stacked(xp, w, u, bias, dtype, align=1):
    """The recurrent ops' stacked weights in a pooled C-contiguous buffer (the compiled loops
    read raw rows, whatever the weights' order), refilled on every call (the weights may have
    changed): ``[U; W; b; 0]`` (K, G), K = H + D [+ 1] rounded up to a multiple of ``align``
    with zero rows, or without ``u`` (None) ``[W; b]`` (D [+ 1], G). With ``u``, weights that
    already lie that way (:func:`share_lstm_block`) are used as they are, without a copy."""
    lead = 0 if u is None else u.shape[0]
    d = w.shape[0]
    used = lead + d + (bias is not None)
    if u is not None and xp is numpy:
        block = _shared_block(w, u, bias, dtype, -(-used // align) * align)
        if block is not None:
            return block
    out = runtime.pooled_empty(xp, (-(-used // align) * align, w.shape[1]), dtype)
    if u is not None:
        out[:lead] = u
    out[lead:lead + d] = w
    if bias is not None:
        out[lead + d] = bias
    out[used:] = 0
    return out


@dataclasses.dataclass(eq=False)
class _Saved:
    """What the LSTM's and GRU's forward keeps for the backward, the same on every path.

    ``inputs``: per batch part, the time-major ``[h_{t-1}, x_t, 1]`` rows (the Python GRU
    loop: ``[x_t, 1]``, the whole batch); ``wb``: ``[W; input bias]``; ``u``: the recurrent
    kernel; ``hs``, ``cs``: the states (T + 1, B, H) (``cs`` None for the GRU); ``gates``:
    the activated gates of every step; ``mf``: the float mask (T, B, 1) or None; ``plan``:
    the :class:`~fundl.kernels.recurrent.SweepPlan`; ``masks``: the drivers' (mask, recurrent
    dropout mask) arrays, or None on the Python loop; ``rbias``: the GRU's recurrent bias;
    ``ut``: ``U^T`` as the LSTM's compiled forward wrote it for the backward, or None.
    """

    inputs: list
    wb: object
    u: object
    hs: object
    gates: object
    mf: object
    plan: object
    masks: object = None
    cs: object = None
    rbias: object = None
    ut: object = None


class _Sweep(Function):
    """What the recurrent ops share: argument checks and the time-major buffers.

    Inputs, in order: ``x (B, T, D)``, ``kernel (D, G*H)``, ``recurrent_kernel (H, G*H)``,
    then ``bias`` if ``has_bias``, then the initial states if ``has_state``.
    """

    gates = 1            # gate blocks per unit (G)
    n_states = 1         # state tensors (LSTM: h and c)
    bias_rows = 1        # GRU with reset_after keeps (2, 3H): input and recurrent bias

    def __init__(self, has_bias, has_state, mask=None, go_backwards=False, return_sequences=True,
                 recurrent_dropout_mask=None, activation="tanh", recurrent_activation="sigmoid"):
        self.has_bias = has_bias
        self.has_state = has_state
        self.mask = mask
        self.go_backwards = go_backwards
        self.return_sequences = return_sequences
        self.rec_mask = recurrent_dropout_mask
        self.activation = activation
        self.recurrent_activation = recurrent_activation

    def check(self, x, w, u, *rest):
        op = self.name
        if x.ndim != 3:
            raise ValueError(f"{op}: expected inputs of shape (batch, timesteps, features), got "
                             f"shape {x.shape}.")
        if x.dtype.kind != "f":
            raise TypeError(f"{op}: inputs must be floating point, got dtype {x.dtype}.")
        if u.ndim != 2 or u.shape[1] != self.gates * u.shape[0]:
            raise ValueError(f"{op}: recurrent_kernel must have shape (units, {self.gates} * "
                             f"units), got {u.shape}.")
        units = u.shape[0]
        if w.shape != (x.shape[2], self.gates * units):
            raise ValueError(f"{op}: kernel must have shape (features, {self.gates} * units) = "
                             f"{(x.shape[2], self.gates * units)} for inputs {x.shape} and "
                             f"recurrent_kernel {u.shape}, got {w.shape}.")
        k = 0
        if self.has_bias:
            b = rest[0]
            want = (self.gates * units,) if self.bias_rows == 1 else (2, self.gates * units)
            if b.shape != want:
                raise ValueError(f"{op}: bias must have shape {want}, got {b.shape}.")
            k = 1
        for s in rest[k:]:
            if s.shape != (x.shape[0], units):
                raise ValueError(f"{op}: initial states must have shape (batch, units) = "
                                 f"{(x.shape[0], units)}, got {s.shape}.")
        if self.mask is not None and tuple(self.mask.shape) != x.shape[:2]:
            raise ValueError(f"{op}: mask must have shape (batch, timesteps) = {x.shape[:2]}, got "
                             f"{tuple(self.mask.shape)}.")
        if self.rec_mask is not None and tuple(self.rec_mask.shape) != (x.shape[0], units):
            raise ValueError(f"{op}: recurrent_dropout_mask must have shape (batch, units) = "
                             f"{(x.shape[0], units)}, got {tuple(self.rec_mask.shape)}.")
        if self.activation not in ACTIVATIONS or self.recurrent_activation not in ACTIVATIONS:
            raise ValueError(f"{op}: activations must be among {ACTIVATIONS}, got "
                             f"{self.activation!r} and {self.recurrent_activation!r}.")

    # -- shared pieces -----------------------------------------------------------------------
    def _split_inputs(self, rest):
        bias = rest[0] if self.has_bias else None
        states = rest[1 if self.has_bias else 0:] if self.has_state else ()
        return bias, states

    def _inputs_time_major(self, x, ones, lead=0, width=0):
        """(T, B, lead + D [+1]): x in processing order after ``lead`` free columns, then a
        column of ones for the bias (then zeros up to ``width`` columns, if larger).

        The free columns later receive h_{t-1}, so that ``[h_{t-1}, x_t, 1]^T @ dz`` gives the
        gradients of U, W and b in one GEMM (faster than three).
        """
        xp = get_array_module(x)
        b, t, d = x.shape
        used = lead + d + ones
        x1 = runtime.pooled_empty(xp, (t, b, max(width, used)), x.dtype)
        xt = x.transpose(1, 0, 2)
        x1[..., lead:lead + d] = xt[::-1] if self.go_backwards else xt
        if ones:
            x1[..., lead + d] = 1
        if width > used:
            x1[..., used:] = 0
        return x1

    def _mask_time_major(self, xp, dtype):
        """(T, B, 1) float mask and (T, B, 1) boolean mask in processing order, or (None, None)."""
        if self.mask is None:
            return None, None
        m = xp.asarray(self.mask).astype(bool).T
        if self.go_backwards:
            m = m[::-1]
        m = xp.ascontiguousarray(m)[..., None]
        return m.astype(dtype), m

    # -- the compiled loops over batch parts (LSTM, GRU) ----------------------------------
    cell = None  # "lstm" or "gru": the compiled drivers of kernels.recurrent.sweep_plan
    MIN_PART_ROWS = 16
    """Batch rows below which a part is not worth a thread (thinner GEMMs lose efficiency)."""
    MAX_PARTS = 64
    """Parts at most: the compiled loops take one array per part in a tuple, and a Numba
    parallel region takes tuples of at most 100 items."""

    def _plan(self, x, *weights):
        """The op's :class:`fundl.kernels.recurrent.SweepPlan` (cached per geometry): the
        compiled drivers over batch parts, or the Python loop over the whole batch."""
        return kernels.sweep_plan(self.cell, x, weights, self.activation,
                                  self.recurrent_activation, threads(), self.MIN_PART_ROWS,
                                  self.MAX_PARTS)

    def _compiled_masks(self, dtype):
        """The sequence mask as (T, B) uint8 in processing order and the recurrent dropout
        mask as C-contiguous (B, H), each an empty (0, 0) array when absent (one compiled
        signature for all cases)."""
        mask = numpy.zeros((0, 0), numpy.uint8)
        if self.mask is not None:
            mask = numpy.asarray(self.mask).astype(bool).T
            mask = numpy.ascontiguousarray(mask[::-1] if self.go_backwards else mask, numpy.uint8)
        rm = numpy.zeros((0, 0), dtype) if self.rec_mask is None else \
            numpy.ascontiguousarray(self.rec_mask, dtype)
        return mask, rm

    def _forward_parts(self, plan, hx1s, wb, u, shared, masks, from_state):
        """Run the compiled forward loop of every batch part on the threads (the GRU's; the
        LSTM calls its own, one product per step); ``shared`` are the whole-batch arrays the
        loop writes (its rows of them) after its own scratch."""
        u = numpy.ascontiguousarray(u)
        g = u.shape[1]
        gemms = small_gemms(u.dtype)
        # U^T for the steps' products in kernels.recurrent.matmul_nt (or (0, 0): BLAS's, or
        # with gemms[2] OpenBLAS's AVX-512 small kernel on u itself)
        ut = self._transposed(numpy, u) if plan.own_gemm and not gemms[2] else \
            numpy.zeros((0, 0), u.dtype)
        # scratch from the workspace here, before the threads
        xzs = tuple(runtime.pooled_empty(numpy, (hx1.shape[0], hx1.shape[1], g), u.dtype)
                    for hx1 in hx1s)
        hzs = tuple(numpy.empty((hx1.shape[1], g), u.dtype) for hx1 in hx1s)
        _run_parts(plan.forward, len(plan.parts), u.dtype, self._macs(hx1s, g),
                   self._calls_blas(plan, gemms), gemm_function(u.dtype), *gemms, tuple(hx1s),
                   wb, u, ut, xzs, hzs, *shared, plan.starts, *masks, from_state)

    def _backward_parts(self, plan, hx1s, u, *args, ut=None):
        """Run the compiled backward loop of every batch part on the threads: each step's
        ``dz @ U^T`` in BLAS on ``U^T`` or in :func:`fundl.kernels.recurrent.matmul_nt` on
        ``u`` itself (``plan.own_gemm``; with OpenBLAS's small kernels, the LSTM's in
        them on ``ut``, the forward's ``U^T``, if given; on a CPU with AVX-512, the
        GRU's in fundl's micro-kernel on a ``U^T`` made here)."""
        n, g = u.shape
        gemms = small_gemms(u.dtype)
        if plan.own_gemm:
            if ut is None and gemms[2] and kernels._OWN_STEPS:
                ut = self._transposed(numpy, u)  # (the GRU's: fundl's micro-kernel takes it)
            ut = ut if ut is not None and gemms[2] else numpy.zeros((0, 0), u.dtype)
            u = numpy.ascontiguousarray(u)
        else:
            ut, u = self._transposed(numpy, u), numpy.zeros((0, 0), u.dtype)
        # (each step's dz @ U^T, then [h, x, 1]^T @ dz)
        _run_parts(plan.backward, len(plan.parts), u.dtype, self._macs(hx1s, g, n),
                   self._calls_blas(plan, gemms), gemm_function(u.dtype), *gemms, hx1s, ut,
                   u, *args)

    @staticmethod
    def _macs(hx1s, g, extra=0):
        """Multiply-adds of the parts' products: ``[h, x, 1] @ [U; W; b]`` (G columns) of
        every step and row, plus ``extra`` per output column (the backward's ``dz @ U^T``)."""
        return sum(a.shape[0] * a.shape[1] * (a.shape[2] + extra) * g for a in hx1s)

    @staticmethod
    def _calls_blas(plan, gemms):
        """Whether the compiled loops call the threaded BLAS library: not when every product
        runs in OpenBLAS's small kernels or fundl's own (``plan.own_gemm``)."""
        return not (gemms[2] and plan.own_gemm)

    def _transposed(self, xp, u):
        """``u.T`` as a C-contiguous workspace array: BLAS runs ~25 % faster on it than on
        the view."""
        ut = runtime.pooled_empty(xp, u.shape[::-1], u.dtype)
        ut[...] = u.T
        return ut

    def _seq_grad(self, grads, dtype):
        """The output sequence's gradient (B, T, H) for the compiled loops, (0, 0, 0) if none."""
        if self.return_sequences and grads[0] is not None:
            return grads[0]
        return numpy.zeros((0, 0, 0), dtype)

    def _outputs(self, hs, states):
        """The op's outputs: the sequence (B, T, H) if asked for, then the final states."""
        if self.return_sequences:
            return (hs[1:].transpose(1, 0, 2),) + states
        return states

    def _grads_in(self, grads):
        """(gradient of the sequence (T, B, H) view or None, gradients of the final states)."""
        if self.return_sequences:
            gy = grads[0]
            return (None if gy is None else gy.transpose(1, 0, 2)), grads[1:]
        return None, grads

    def _project(self, xp, x1, wb):
        """The input projection of every step, ``[x_t, 1] @ [W; b]``: one GEMM, (T, B, G*H)."""
        t, b = x1.shape[:2]
        xz = runtime.pooled_empty(xp, (t, b, wb.shape[1]), x1.dtype)
        xp.matmul(x1.reshape(t * b, -1), wb, out=xz.reshape(t * b, -1))
        return xz

    def _gate_buffer(self, xp, t, b, width, dtype):
        """Activated gates of every step for the backward; one step's worth (reused at every
        step, so it stays in cache) when no graph is recorded."""
        recording = any(self.needs_grad)
        return runtime.pooled_empty(xp, (t if recording else 1, b, width), dtype)

    def _begin_shared(self, x, w, u, rest, parts, with_u=False, align=1, fill=True):
        """The start of a forward whose input and recurrent products share dz (SimpleRNN, LSTM).

        ``parts`` are slices of the batch, each with buffers of its own (one slice, the whole
        batch, except in the LSTM's parallel loops). Returns ``(xp, states, hx1s, wb, hs)``:
        the initial states given, one (T, Bp, H + D [+1]) buffer of
        :meth:`_inputs_time_major` with ``lead=H`` per part (the forward writes h_{t-1} into
        its first H columns, :meth:`_shared_grads` reads them back), the stacked ``[W; b]``
        (C-contiguous; ``[U; W; b]`` with ``with_u``, the matrix of the LSTM's one product per
        step ``[h_{t-1}, x_t, 1] @ [U; W; b]``) and the states (T + 1, B, H) with ``h0`` in
        place. ``align``: with ``with_u``, the rows' width H + D [+1] is rounded up to a
        multiple of it, zero columns in the inputs and zero rows in ``[U; W; b; 0]``.
        ``fill=False``: the inputs' buffers are left unwritten (the LSTM's compiled loops
        fill them, each part on its own thread).
        """
        xp = get_array_module(x)
        bias, states = self._split_inputs(rest)
        b, t, _ = x.shape
        n = u.shape[0]
        wb = _stacked(xp, w, u, bias, x.dtype, align) if with_u else \
            _stacked(xp, w, None, bias, x.dtype)
        if fill:
            hx1s = [self._inputs_time_major(x[s], bias is not None, lead=n,
                                            width=wb.shape[0] if with_u else 0) for s in parts]
        else:
            hx1s = [runtime.pooled_empty(xp, (t, len(range(*s.indices(b))), wb.shape[0]),
                                         x.dtype) for s in parts]
        hs = runtime.pooled_empty(xp, (t + 1, b, n), x.dtype)
        hs[0] = states[0] if states else 0
        return xp, states, hx1s, wb, hs

    def _recurrent_input(self, xp, hx1, hs, k):
        """h_{k-1} (times the recurrent dropout mask) into the first H columns of ``hx1[k]``,
        where the weight gradient reads it; returns that (B, H) view, the GEMM's input."""
        hp = hx1[k, :, :hs.shape[2]]
        if self.rec_mask is None:
            hp[...] = hs[k]
        else:
            xp.multiply(hs[k], self.rec_mask, out=hp)
        return hp

    def _shared_grads(self, xp, hx1s, wb, dzs, parts, dh0, dc0=None, dall=None, d=None):
        """Gradients when the input and recurrent products get the same dz (SimpleRNN, LSTM).

        Per batch part, ``hx1s`` holds ``[h_{t-1}, x_t, 1]`` (T, Bp, H + D [+1]) and ``dzs``
        the gate-input gradients (T, Bp, G*H); one GEMM per part gives [dU; dW; db], summed
        over the parts, unless ``dall`` (that sum) was computed already. ``d``: the input
        features (default: the width of ``hx1s`` less H and the ones column, i.e. no padding).
        """
        n = dh0.shape[1]
        if dall is None:
            for hx1, dz in zip(hx1s, dzs):
                part = hx1.reshape(-1, hx1.shape[2]).T @ dz.reshape(-1, dz.shape[2])
                dall = part if dall is None else dall + part
        if d is None:
            d = hx1s[0].shape[2] - n - (1 if self.has_bias else 0)
        gx = self._dx(xp, dzs, parts, wb[:d]) if self.needs_grad[0] else None
        out = [gx, dall[n:n + d], dall[:n]]
        if self.has_bias:
            out.append(dall[n + d])
        if self.has_state:
            out.extend([dh0, dc0][:self.n_states])
        return tuple(out)

    def _dx(self, xp, dzs, parts, w):
        """Gradient of x (B, T, D) from the gate-input gradients of all steps, one GEMM per
        batch part (``dzs``: (T, Bp, G*H) per slice of ``parts``)."""
        t = dzs[0].shape[0]
        dxs = []
        for dz in dzs:
            # float32 on AVX-512: OpenBLAS's small kernel (one core, 1792 x 512 @ 512 x 28:
            # 0.42-0.52 ms against NumPy's 0.69-0.76, loaded machine); else NumPy
            dx = fused.dense_input_grad(dz.reshape(-1, dz.shape[2]), w)
            if dx is not None:
                dx = dx.reshape(t, dz.shape[1], w.shape[0])
            else:
                dx = runtime.pooled_empty(xp, (t, dz.shape[1], w.shape[0]), dz.dtype)
                xp.matmul(dz.reshape(-1, dz.shape[2]), w.T, out=dx.reshape(-1, w.shape[0]))
            dxs.append((dx[::-1] if self.go_backwards else dx).transpose(1, 0, 2))
        if len(dxs) == 1:
            return dxs[0]
        out = xp.empty((parts[-1].stop, t, w.shape[0]), dtype=dzs[0].dtype)
        for s, dx in zip(parts, dxs):
            out[s] = dx
        return out


def _add_seq_grad(dh, gyt, t):
    if gyt is not None:
        dh += gyt[t]


class SimpleRNNSequence(_Sweep):
    """``h_t = activation(x_t @ W + b + h_{t-1} @ U)`` over a sequence (Keras ``SimpleRNN``).

    Outputs: the states of all steps (B, T, H) when ``return_sequences``, then ``h_T`` (B, H).
    Backward: ``da_t = dh_t * activation'(h_t)``, ``dh_{t-1} = da_t @ U^T``; weight gradients
    summed over steps after the sweep.
    """

    def forward(self, x, w, u, *rest):
        xp, states, hx1s, wb, hs = self._begin_shared(x, w, u, rest, WHOLE)
        hx1 = hx1s[0]
        xz = self._project(xp, hx1[..., u.shape[0]:], wb)
        t = xz.shape[0]
        mf, mb = self._mask_time_major(xp, x.dtype)
        act = kernels.ACTIVATIONS[self.activation][0]
        for k in range(t):
            a = xz[k]
            hp = self._recurrent_input(xp, hx1, hs, k)
            if k or states:
                a = a + hp @ u
            hs[k + 1] = act(xp, a)
            if mb is not None:
                hs[k + 1] = xp.where(mb[k], hs[k + 1], hs[k])
        self.save(hx1, wb, u, hs, mf)
        return self._outputs(hs, (hs[t],))

    def backward(self, *grads):
        hx1, wb, u, hs, mf = self.saved
        xp = get_array_module(hs)
        gyt, (gh,) = self._grads_in(grads)
        t, b, n = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
        rm = self.rec_mask
        dact = kernels.ACTIVATIONS[self.activation][1]
        dh = xp.zeros((b, n), hs.dtype) if gh is None else gh.copy()
        da = runtime.pooled_empty(xp, (t, b, n), hs.dtype)
        ut = xp.ascontiguousarray(u.T)
        for k in range(t - 1, -1, -1):
            _add_seq_grad(dh, gyt, k)
            carry = None
            if mf is not None:
                carry = dh * (1 - mf[k])
                dh = dh * mf[k]
            da[k] = dh * dact(hs[k + 1])
            dh = da[k] @ ut
            if rm is not None:
                dh *= rm
            if carry is not None:
                dh += carry
        return self._shared_grads(xp, [hx1], wb, [da], WHOLE, dh)


class LSTMSequence(_Sweep):
    """An LSTM over a sequence (Keras ``LSTM``, PyTorch ``nn.LSTM``; gates ``[i, f, c, o]``).

    ``z = x_t @ W + b + h_{t-1} @ U``; ``i, f, o = ra(z_i, z_f, z_o)``, ``g = a(z_c)``;
    ``c_t = f * c_{t-1} + i * g``; ``h_t = o * a(c_t)``.

    Inputs: x, kernel, recurrent_kernel[, bias][, h0, c0]. Outputs: the states of all steps
    (B, T, H) when ``return_sequences``, then ``h_T`` and ``c_T`` (B, H).

    On the CPU (NumPy float32, default activations) the time loops run compiled
    (:func:`fundl.kernels.recurrent.sweep_plan`: GEMM and gate math of every step in one
    call that holds no lock), and the batch is cut into parts that run their loops on
    parallel threads: samples never interact, so each part is the whole LSTM over its own
    samples, and only the weight gradients are summed over the parts at the end. Why: one
    part per core beats both cores on each step's small GEMM (row-MNIST's 28 steps of
    64 x 128 -> 512, forward: 2.08 ms as one Python loop, ~1.5 ms as two compiled 32-row
    loops side by side). Elsewhere (CuPy, float64, other activations) the loop runs in
    Python over the whole batch, a step dispatcher call per step.
    """

    gates = 4
    n_states = 2
    cell = "lstm"
    ALIGN = LSTM_ALIGN
    """The compiled loops' product ``[h_{t-1}, x_t, 1] @ [U; W; b]`` has its inner dimension
    H + D + 1 padded with zeros to a multiple of this: OpenBLAS's AVX-512 small kernel ran
    28 steps of 32 x K @ K x 512 at 226 GFLOP/s for K = 160 against 179 for K = 157 and 177
    for K = 144 (one core of the AMD EPYC, Zen 5; 2 % more arithmetic, 20 % less time)."""

    def forward(self, x, w, u, *rest):
        plan = self._plan(x, w, u, *rest[:int(self.has_bias)])
        if self.needs_grad is _NO_GRAD and plan.compiled and self.mask is None and \
                self.rec_mask is None and small_gemms(x.dtype)[2]:
            return self._infer(plan, x, w, u, rest)
        self.features = x.shape[2]
        xp, states, hx1s, uwb, hs = self._begin_shared(
            x, w, u, rest, plan.parts, with_u=True, align=self.ALIGN if plan.compiled else 1,
            fill=not plan.compiled)
        t, b, n = x.shape[1], x.shape[0], u.shape[0]
        u, wb = uwb[:n], uwb[n:]  # C-contiguous views of [U; W; b]
        cs = runtime.pooled_empty(xp, (t + 1, b, n), x.dtype)
        cs[0] = states[1] if states else 0
        gates = self._gate_buffer(xp, t, b, 4 * n, x.dtype)
        mf, mb = self._mask_time_major(xp, x.dtype)
        masks = None
        if plan.compiled:
            masks = self._compiled_masks(x.dtype)
            small = small_gemms(x.dtype)
            # [U; W; b]^T for the steps' products in kernels.recurrent.matmul_nt, or (0, 0):
            # BLAS's (or OpenBLAS's AVX-512 small kernel) on [U; W; b] itself
            uwbt = self._transposed(numpy, uwb) if plan.own_gemm and not small[2] else \
                numpy.zeros((0, 0), x.dtype)
            # U^T for the backward's products in the small kernel, written by the parts
            ut = runtime.pooled_empty(numpy, (4 * n, n), x.dtype) if plan.own_gemm and \
                small[2] else numpy.zeros((0, 0), x.dtype)
            _run_parts(plan.forward, len(plan.parts), x.dtype, self._macs(hx1s, 4 * n),
                       self._calls_blas(plan, small), gemm_function(x.dtype), *small,
                       numpy.ascontiguousarray(x), self.go_backwards, self.has_bias,
                       tuple(hx1s), uwb, uwbt, hs, cs, gates, plan.starts, *masks,
                       bool(states), ut)
        else:
            ut = None
            self._forward_loop(xp, hx1s[0], wb, u, hs, cs, gates, mb, bool(states))
        self.save(_Saved(hx1s, wb, u, hs, gates, mf, plan, masks, cs=cs,
                         ut=ut if ut is not None and ut.shape[0] else None))
        return self._outputs(hs, (hs[t], cs[t]))

    def _infer(self, plan, x, w, u, rest):
        """The forward without a graph (inference): :func:`fundl.kernels.recurrent.
        _lstm_infer_parts`, the steps' products transposed (OpenBLAS's AVX-512 small kernel
        runs them faster that way), nothing kept for a backward. Only where that kernel is
        available, without a mask or recurrent dropout (the training loops do those)."""
        bias, states = self._split_inputs(rest)
        b, t, _ = x.shape
        n = u.shape[0]
        # [U; W; b; 0] (K, 4H), as the training loops take it (the kernel reads it
        # transposed: a transposed copy here took ~95 us)
        uwb = _stacked(numpy, w, u, bias, x.dtype, self.ALIGN)
        x = numpy.ascontiguousarray(x)
        none2 = numpy.zeros((0, 0), x.dtype)
        # (states of another dtype are cast: the kernel takes one dtype, no new specialisation)
        h0, c0 = ((numpy.ascontiguousarray(states[0], x.dtype),
                   numpy.ascontiguousarray(states[1], x.dtype)) if states else (none2, none2))
        seq = numpy.empty((b, t, n), x.dtype) if self.return_sequences else \
            numpy.zeros((0, 0, 0), x.dtype)
        h_last, c_last = numpy.empty((b, n), x.dtype), numpy.empty((b, n), x.dtype)
        small, b0 = small_gemms(x.dtype), small_b0_nt(x.dtype)
        # each part's scratch for [U; W; b]^T packed for fundl's micro-kernel, recycled (its
        # size from the compiled function's Python source: no compilation on this thread)
        packed = kernels.INFER_PACKED and small[2] and b0[1]
        panels = runtime.pooled_empty(numpy, (len(plan.parts), own_gemm.panels_size.py_func(
            uwb.shape[1], uwb.shape[0]) if packed else 0), numpy.float32)
        # (only with the small kernels: no threaded BLAS inside)
        _run_parts(kernels.compiled("lstm_infer_parts"), len(plan.parts), x.dtype,
                   t * b * uwb.shape[0] * uwb.shape[1], False, gemm_function(x.dtype), *small,
                   x, uwb, seq, h_last, c_last, h0, c0, plan.starts,
                   tuple(s.stop for s in plan.parts), self.go_backwards, *b0, panels)
        return (seq, h_last, c_last) if self.return_sequences else (h_last, c_last)

    def _forward_loop(self, xp, hx1, wb, u, hs, cs, gates, mb, from_state):
        n = u.shape[0]
        xz = self._project(xp, hx1[..., n:], wb)
        hz = xp.zeros((hs.shape[1], 4 * n), dtype=hs.dtype)
        acts = (self.activation, self.recurrent_activation)
        for k in range(xz.shape[0]):
            hp = self._recurrent_input(xp, hx1, hs, k)
            if k or from_state:
                xp.matmul(hp, u, out=hz)
            kernels.lstm_forward_step(xz[k], hz, cs[k], gates[k % len(gates)], cs[k + 1],
                                      hs[k + 1], *acts)
            if mb is not None:
                hs[k + 1] = xp.where(mb[k], hs[k + 1], hs[k])
                cs[k + 1] = xp.where(mb[k], cs[k + 1], cs[k])

    def backward(self, *grads):
        (kept,) = self.saved
        hx1s, hs, cs, gates, plan = kept.inputs, kept.hs, kept.cs, kept.gates, kept.plan
        xp = get_array_module(hs)
        gyt, (gh, gc) = self._grads_in(grads)
        t, b, n = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
        dh = xp.zeros((b, n), hs.dtype) if gh is None else xp.array(gh, copy=True, order="C")
        dc = xp.zeros((b, n), hs.dtype) if gc is None else xp.array(gc, copy=True, order="C")
        dc_prev = xp.empty_like(dc)
        dzs = [runtime.pooled_empty(xp, (t, hx1.shape[1], 4 * n), hs.dtype) for hx1 in hx1s]
        if not plan.compiled:
            dc = self._backward_loop(xp, self._transposed(xp, kept.u), hs, cs, gates, dzs[0],
                                     gyt, dh, dc, dc_prev, kept.mf)
            return self._shared_grads(xp, hx1s, kept.wb, dzs, plan.parts, dh, dc,
                                      d=self.features)
        gy = self._seq_grad(grads, hs.dtype)
        # not from the workspace: views of these become the weights' gradients
        dalls = tuple(numpy.empty((hx1.shape[2], 4 * n), hs.dtype) for hx1 in hx1s)
        self._backward_parts(plan, tuple(hx1s), kept.u, cs, gates, tuple(dzs), gy, dh, dc,
                             dc_prev, plan.starts, *kept.masks, self.has_state, dalls,
                             ut=kept.ut)
        dall = dalls[0]
        for d in dalls[1:]:
            dall += d
        # every step swaps the roles of dc and dc_prev: dc_0 ends in dc after an even count
        dc0 = dc if t % 2 == 0 else dc_prev
        return self._shared_grads(xp, hx1s, kept.wb, dzs, plan.parts, dh, dc0, dall,
                                  d=self.features)

    def _backward_loop(self, xp, ut, hs, cs, gates, dz, gyt, dh, dc, dc_prev, mf):
        """The backward sweep in Python; returns the gradient of c_0 (dh becomes that of h_0)."""
        rm = self.rec_mask
        acts = (self.activation, self.recurrent_activation)
        for k in range(dz.shape[0] - 1, -1, -1):
            _add_seq_grad(dh, gyt, k)
            if mf is not None:
                keep = mf[k]
                carry_h, carry_c = dh * (1 - keep), dc * (1 - keep)
                dh *= keep
                dc *= keep
            kernels.lstm_backward_step(dh, dc, gates[k], cs[k], cs[k + 1], dz[k], dc_prev, *acts)
            if k or self.has_state:
                xp.matmul(dz[k], ut, out=dh)
                if rm is not None:
                    dh *= rm
            if mf is not None:
                dh += carry_h
                dc_prev += carry_c
            dc, dc_prev = dc_prev, dc
        return dc


class GRUSequence(_Sweep):
    """A GRU over a sequence with the reset gate after the recurrent product (Keras
    ``GRU(reset_after=True)``, the default, and PyTorch ``nn.GRU``; gates ``[z, r, h]``).

    ``z, r = ra(x W_zr + b_zr + h U_zr + rb_zr)``, ``n = a(x W_h + b_h + r * (h U_h + rb_h))``,
    ``h_t = z * h_{t-1} + (1 - z) * n``. The bias is ``(2, 3H)``: input bias, recurrent bias.

    Inputs: x, kernel, recurrent_kernel[, bias][, h0]. Outputs: the states of all steps
    (B, T, H) when ``return_sequences``, then ``h_T`` (B, H).

    On the CPU the time loops run compiled over batch parts on parallel threads, as the
    LSTM's (:class:`LSTMSequence`); elsewhere in Python over the whole batch.
    """

    gates = 3
    n_states = 1
    bias_rows = 2
    cell = "gru"

    def forward(self, x, w, u, *rest):
        xp = get_array_module(x)
        bias, states = self._split_inputs(rest)
        b, t, d = x.shape
        n = u.shape[0]
        plan = self._plan(x, w, u, bias)
        # C order whatever w's (the compiled loops read rows of wb as raw memory)
        wb = xp.ascontiguousarray(xp.concatenate([w, bias[:1]]) if bias is not None else w)
        rbias = bias[1] if bias is not None else xp.zeros(3 * n, dtype=x.dtype)
        rbias = xp.ascontiguousarray(rbias)
        hs = runtime.pooled_empty(xp, (t + 1, b, n), x.dtype)
        hs[0] = states[0] if states else 0
        gates = self._gate_buffer(xp, t, b, 4 * n, x.dtype)
        mf, mb = self._mask_time_major(xp, x.dtype)
        masks = None
        if plan.compiled:
            masks = self._compiled_masks(x.dtype)
            # [h_{t-1}, x_t, 1] per part: h_{t-1} is written by the loop for dU's GEMM
            inputs = [self._inputs_time_major(x[s], bias is not None, lead=n)
                      for s in plan.parts]
            self._forward_parts(plan, inputs, wb, u, (rbias, hs, gates), masks, bool(states))
        else:
            inputs = [self._inputs_time_major(x, bias is not None)]
            self._forward_loop(xp, inputs[0], wb, u, rbias, hs, gates, mb, bool(states))
        self.save(_Saved(inputs, wb, u, hs, gates, mf, plan, masks, rbias=rbias))
        return self._outputs(hs, (hs[t],))

    def _forward_loop(self, xp, x1, wb, u, rbias, hs, gates, mb, from_state):
        xz = self._project(xp, x1, wb)
        hz = xp.zeros((hs.shape[1], 3 * u.shape[0]), dtype=hs.dtype)
        rm = self.rec_mask
        acts = (self.activation, self.recurrent_activation)
        for k in range(xz.shape[0]):
            if k or from_state:
                xp.matmul(hs[k] if rm is None else hs[k] * rm, u, out=hz)
            kernels.gru_forward_step(xz[k], hz, rbias, hs[k], gates[k % len(gates)], hs[k + 1],
                                     *acts)
            if mb is not None:
                hs[k + 1] = xp.where(mb[k], hs[k + 1], hs[k])

    def backward(self, *grads):
        (kept,) = self.saved
        x1s, wb, u, hs, gates, plan = kept.inputs, kept.wb, kept.u, kept.hs, kept.gates, kept.plan
        xp = get_array_module(hs)
        gyt, (gh,) = self._grads_in(grads)
        t, b, n = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
        dh = xp.zeros((b, n), hs.dtype) if gh is None else xp.array(gh, copy=True, order="C")
        dh_direct = xp.empty_like(dh)
        dxzs = [runtime.pooled_empty(xp, (t, s.shape[1], 3 * n), hs.dtype) for s in x1s]
        dhzs = [runtime.pooled_empty(xp, a.shape, hs.dtype) for a in dxzs]
        if not plan.compiled:
            self._backward_loop(xp, self._transposed(xp, u), hs, gates, dxzs[0], dhzs[0], gyt,
                                dh, dh_direct, kept.mf)
            return self._grads(xp, x1s[0], wb, u, hs, dxzs[0], dhzs[0], dh)
        gy = self._seq_grad(grads, hs.dtype)
        # not from the workspace: views of these become the weights' gradients
        sums = [(numpy.empty((x1.shape[2] - n, 3 * n), hs.dtype),
                 numpy.empty((n, 3 * n), hs.dtype), numpy.empty(3 * n, hs.dtype)) for x1 in x1s]
        self._backward_parts(plan, tuple(x1s), u, hs, gates, tuple(dxzs), tuple(dhzs), gy, dh,
                             dh_direct, plan.starts, *kept.masks,
                     self.has_state, *zip(*sums))
        dwb, du, drb = sums[0]
        for more in sums[1:]:
            for total, part in zip(sums[0], more):
                total += part
        return self._assemble(xp, dxzs, plan.parts, wb, dwb, du, drb, dh)

    def _backward_loop(self, xp, ut, hs, gates, dxz, dhz, gyt, dh, dh_direct, mf):
        """The backward sweep in Python (dh becomes the gradient of h_0)."""
        rm = self.rec_mask
        acts = (self.activation, self.recurrent_activation)
        for k in range(dxz.shape[0] - 1, -1, -1):
            _add_seq_grad(dh, gyt, k)
            if mf is not None:
                carry = dh * (1 - mf[k])
                dh *= mf[k]
            kernels.gru_backward_step(dh, gates[k], hs[k], dxz[k], dhz[k], dh_direct, *acts)
            if k or self.has_state:
                xp.matmul(dhz[k], ut, out=dh)
                if rm is not None:
                    dh *= rm
                dh += dh_direct
            else:
                dh[...] = dh_direct
            if mf is not None:
                dh += carry

    def _grads(self, xp, x1, wb, u, hs, dxz, dhz, dh0):
        """Weight, input and initial-state gradients after the Python loop: dxz feeds W and
        the input bias, dhz (which differs in the candidate block, by the factor r) U and the
        recurrent bias."""
        t, b, g = dxz.shape
        n = u.shape[0]
        dwb = x1.reshape(t * b, -1).T @ dxz.reshape(t * b, g)
        # h0 = 0 contributes nothing to dU: skip step 0 then
        k0 = 0 if self.has_state else 1
        hp = hs[k0:t] if self.rec_mask is None else hs[k0:t] * self.rec_mask
        du = hp.reshape(-1, n).T @ dhz[k0:].reshape(-1, g) if t > k0 else xp.zeros_like(u)
        drb = xp.ones(t * b, dtype=dhz.dtype) @ dhz.reshape(t * b, g) if self.has_bias else None
        return self._assemble(xp, [dxz], WHOLE, wb, dwb, du, drb, dh0)

    def _assemble(self, xp, dxzs, parts, wb, dwb, du, drb, dh0):
        """The op's gradients from the sums over steps and samples: ``dwb`` of ``[W; input
        bias]``, ``du`` of U, ``drb`` of the recurrent bias."""
        d = wb.shape[0] - (1 if self.has_bias else 0)
        gx = self._dx(xp, dxzs, parts, wb[:d]) if self.needs_grad[0] else None
        out = [gx, dwb[:d], du]
        if self.has_bias:
            out.append(xp.stack([dwb[d], drb]))
        if self.has_state:
            out.append(dh0)
        return tuple(out)


class GRUResetBeforeSequence(_Sweep):
    """A GRU over a sequence with the reset gate applied before the recurrent product (Keras
    ``GRU(reset_after=False)``, the original 2014 formulation; bias ``(3H,)``).

    ``z, r = ra(x W_zr + b_zr + h U_zr)``, ``n = a(x W_h + b_h + (r * h) U_h)``,
    ``h_t = z * h_{t-1} + (1 - z) * n``. Two recurrent GEMMs per step; gate math in ``xp``.
    """

    gates = 3

    def forward(self, x, w, u, *rest):
        xp = get_array_module(x)
        bias, states = self._split_inputs(rest)
        b, t, d = x.shape
        n = u.shape[0]
        x1 = self._inputs_time_major(x, bias is not None)
        wb = xp.concatenate([w, bias[None]]) if bias is not None else w
        xz = self._project(xp, x1, wb)
        u_zr, u_h = u[:, :2 * n], u[:, 2 * n:]
        hs = runtime.pooled_empty(xp, (t + 1, b, n), x.dtype)
        hs[0] = states[0] if states else 0
        zr = runtime.pooled_empty(xp, (t, b, 2 * n), x.dtype)    # activated z, r
        cand = runtime.pooled_empty(xp, (t, b, n), x.dtype)
        rh = runtime.pooled_empty(xp, (t, b, n), x.dtype)        # r * h_{t-1} (dropped-out h)
        mf, mb = self._mask_time_major(xp, x.dtype)
        rm = self.rec_mask
        ract, act = (kernels.ACTIVATIONS[self.recurrent_activation][0],
                     kernels.ACTIVATIONS[self.activation][0])
        for k in range(t):
            hp = hs[k] if rm is None else hs[k] * rm
            zr[k] = ract(xp, xz[k, :, :2 * n] + hp @ u_zr)
            z, r = zr[k, :, :n], zr[k, :, n:]
            rh[k] = r * hp
            cand[k] = act(xp, xz[k, :, 2 * n:] + rh[k] @ u_h)
            hs[k + 1] = z * hs[k] + (1 - z) * cand[k]
            if mb is not None:
                hs[k + 1] = xp.where(mb[k], hs[k + 1], hs[k])
        self.save(x1, wb, u, hs, zr, cand, rh, mf)
        return self._outputs(hs, (hs[t],))

    def backward(self, *grads):
        x1, wb, u, hs, zr, cand, rh, mf = self.saved
        xp = get_array_module(hs)
        gyt, (gh,) = self._grads_in(grads)
        t, b, n = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
        u_zr, u_h = u[:, :2 * n], u[:, 2 * n:]
        rm = self.rec_mask
        dract = kernels.ACTIVATIONS[self.recurrent_activation][1]
        dact = kernels.ACTIVATIONS[self.activation][1]
        dh = xp.zeros((b, n), hs.dtype) if gh is None else gh.copy()
        dxz = runtime.pooled_empty(xp, (t, b, 3 * n), hs.dtype)
        for k in range(t - 1, -1, -1):
            _add_seq_grad(dh, gyt, k)
            carry = None
            if mf is not None:
                carry = dh * (1 - mf[k])
                dh = dh * mf[k]
            z, r = zr[k, :, :n], zr[k, :, n:]
            hp = hs[k] if rm is None else hs[k] * rm
            dah = dh * (1 - z) * dact(cand[k])
            drh = dah @ u_h.T
            dxz[k, :, 2 * n:] = dah
            dxz[k, :, :n] = dh * (hs[k] - cand[k]) * dract(z)
            dxz[k, :, n:2 * n] = drh * hp * dract(r)
            dhp = drh * r + dxz[k, :, :2 * n] @ u_zr.T
            if rm is not None:
                dhp *= rm
            dh = dh * z + dhp
            if carry is not None:
                dh += carry
        d2 = dxz.reshape(t * b, 3 * n)
        dwb = x1.reshape(t * b, -1).T @ d2
        hp_all = hs[:t] if rm is None else hs[:t] * rm
        du = xp.concatenate([hp_all.reshape(t * b, n).T @ d2[:, :2 * n],
                             rh.reshape(t * b, n).T @ d2[:, 2 * n:]], axis=1)
        d = x1.shape[2] - (1 if self.has_bias else 0)
        gx = self._dx(xp, [dxz], WHOLE, wb[:d]) if self.needs_grad[0] else None
        out = [gx, dwb[:d], du]
        if self.has_bias:
            out.append(dwb[d])
        if self.has_state:
            out.append(dh)
        return tuple(out)


# -- public wrappers ------------------------------------------------------------------------------
def _run(op_cls, x, kernel, recurrent_kernel, bias, initial_state, n_states, **attrs):
    if initial_state is not None:
        initial_state = list(initial_state) if isinstance(initial_state, (list, tuple)) \
            else [initial_state]
        if len(initial_state) != n_states:
            raise ValueError(f"{op_cls.__name__}: expected {n_states} initial state(s), got "
                             f"{len(initial_state)}.")
    op = op_cls(bias is not None, initial_state is not None, **attrs)
    inputs = [x, kernel, recurrent_kernel]
    if bias is not None:
        inputs.append(bias)
    if initial_state is not None:
        inputs.extend(initial_state)
    out = op.apply(*inputs)
    if not attrs.get("return_sequences", True):
        out = (out[0],) + tuple(out)
    return out


def _mask_array(mask):
    if mask is None:
        return None
    return mask.data if isinstance(mask, Tensor) else mask


def simple_rnn(x, kernel, recurrent_kernel, bias=None, initial_state=None, activation="tanh",
               mask=None, go_backwards=False, return_sequences=True, recurrent_dropout_mask=None):
    """A simple (Elman) RNN over a whole sequence: ``h_t = activation(x_t W + b + h_{t-1} U)``.

    Args:
        x: (B, T, D) inputs.
        kernel: (D, H); recurrent_kernel: (H, H); bias: (H,) or None (Keras layout).
        initial_state: h0 (B, H) (or a one-element list), None for zeros.
        activation: one of ``"tanh"``, ``"sigmoid"``, ``"relu"``, ``"linear"``.
        mask: (B, T) booleans (array or Tensor); False steps keep the previous state.
        go_backwards: process the sequence from the last step to the first (outputs come in
            processing order, as in Keras).
        return_sequences: compute the (B, T, H) sequence of states; if False, the first
            output is ``h_T``.
        recurrent_dropout_mask: (B, H) multiplier of h_{t-1} inside the recurrent product.

    Returns:
        ``(outputs, h_T)``: outputs (B, T, H) (or h_T itself), h_T (B, H).

    Example:
        >>> y, h = fl.simple_rnn(fl.randn(2, 5, 3), fl.randn(3, 4), fl.randn(4, 4))
        >>> y.shape, h.shape
        ((2, 5, 4), (2, 4))
    """
    return _run(SimpleRNNSequence, x, kernel, recurrent_kernel, bias, initial_state, 1,
                mask=_mask_array(mask), go_backwards=go_backwards,
                return_sequences=return_sequences, recurrent_dropout_mask=recurrent_dropout_mask,
                activation=activation)


def lstm(x, kernel, recurrent_kernel, bias=None, initial_state=None, activation="tanh",
         recurrent_activation="sigmoid", mask=None, go_backwards=False, return_sequences=True,
         recurrent_dropout_mask=None):
    """An LSTM over a whole sequence, as one op (gates ``[i, f, c, o]``, Keras layout).

    ``c_t = f * c_{t-1} + i * g``, ``h_t = o * activation(c_t)`` with
    ``[i, f, g, o] = [ra, ra, a, ra](x_t W + b + h_{t-1} U)``.

    Args:
        x: (B, T, D) inputs.
        kernel: (D, 4H); recurrent_kernel: (H, 4H); bias: (4H,) or None.
        initial_state: ``[h0, c0]``, each (B, H), or None for zeros.
        activation, recurrent_activation: names among ``"tanh"``, ``"sigmoid"``, ``"relu"``,
            ``"linear"`` (tanh/sigmoid run a compiled kernel on the CPU).
        mask, go_backwards, return_sequences, recurrent_dropout_mask: as in :func:`simple_rnn`.

    Returns:
        ``(outputs, h_T, c_T)``: outputs (B, T, H) (or h_T itself), h_T and c_T (B, H).

    Example:
        >>> y, h, c = fl.lstm(fl.randn(2, 5, 3), fl.randn(3, 16), fl.randn(4, 16), fl.zeros(16))
        >>> y.shape
        (2, 5, 4)
    """
    return _run(LSTMSequence, x, kernel, recurrent_kernel, bias, initial_state, 2,
                mask=_mask_array(mask), go_backwards=go_backwards,
                return_sequences=return_sequences, recurrent_dropout_mask=recurrent_dropout_mask,
                activation=activation, recurrent_activation=recurrent_activation)


def gru(x, kernel, recurrent_kernel, bias=None, initial_state=None, activation="tanh",
        recurrent_activation="sigmoid", reset_after=True, mask=None, go_backwards=False,
        return_sequences=True, recurrent_dropout_mask=None):
    """A GRU over a whole sequence, as one op (gates ``[z, r, h]``, Keras layout).

    ``h_t = z * h_{t-1} + (1 - z) * n``; with ``reset_after=True`` (Keras' default, PyTorch's
    GRU) ``n = a(x W_h + b_h + r * (h_{t-1} U_h + rb_h))`` and the bias is ``(2, 3H)``
    (input bias, recurrent bias); with ``reset_after=False``
    ``n = a(x W_h + b_h + (r * h_{t-1}) U_h)`` and the bias is ``(3H,)``.

    Args:
        x: (B, T, D) inputs.
        kernel: (D, 3H); recurrent_kernel: (H, 3H); bias: see above, or None.
        initial_state: h0 (B, H) (or a one-element list), None for zeros.
        activation, recurrent_activation, mask, go_backwards, return_sequences,
        recurrent_dropout_mask: as in :func:`lstm`.

    Returns:
        ``(outputs, h_T)``: outputs (B, T, H) (or h_T itself), h_T (B, H).

    Example:
        >>> y, h = fl.gru(fl.randn(2, 5, 3), fl.randn(3, 12), fl.randn(4, 12), fl.zeros((2, 12)))
        >>> h.shape
        (2, 4)
    """
    cls = GRUSequence if reset_after else GRUResetBeforeSequence
    return _run(cls, x, kernel, recurrent_kernel, bias, initial_state, 1,
                mask=_mask_array(mask), go_backwards=go_backwards,
                return_sequences=return_sequences, recurrent_dropout_mask=recurrent_dropout_mask,
                activation=activation, recurrent_activation=recurrent_activation)
