"""Recurrent layers: cells, the RNN that unfolds a cell over time, SimpleRNN/LSTM/GRU,
Bidirectional and TimeDistributed (Keras names, arguments and weight layouts).

A *cell* computes one time step: ``output, new_states = cell(x_t, states)``. The
:class:`RNN` layer *unfolds* it over a sequence: it calls the cell once per step, feeding each
step's states to the next, and the recorded graph is then that chain of cells sharing the
same weights. Back-propagation through time is simply ``backward()`` on it. This is the
general path, used for any cell you write::

    class MinimalRNNCell(Layer):
        state_size = 32
        def build(self, input_shape):
            self.kernel = self.add_weight("kernel", (input_shape[-1], 32))
            self.recurrent_kernel = self.add_weight("recurrent_kernel", (32, 32), "orthogonal")
        def call(self, inputs, states, training=False):
            h = fl.tanh(inputs @ self.kernel + states[0] @ self.recurrent_kernel)
            return h, [h]

    layer = RNN(MinimalRNNCell(), return_sequences=True)

:class:`SimpleRNN`, :class:`LSTM` and :class:`GRU` are RNNs over the built-in cells. With
activations the fused ops know (``tanh``, ``sigmoid``, ``relu``, ``linear``) they run the
whole sequence as one op (:mod:`fundl.ops.recurrent`: one GEMM for all the input
projections, one per step for the recurrence, compiled gate math, one GEMM for the weight
gradients), which computes the same numbers as the unfolded cells; any other activation
unfolds the cell.

Weights follow Keras (``kernel (features, gates * units)``, ``recurrent_kernel
(units, gates * units)``, ``bias``; LSTM gates ``[i, f, c, o]``, GRU ``[z, r, h]``), so
``layer.set_weights(keras_layer.get_weights())`` works as it is.

Masks: a boolean (batch, timesteps) mask, given as ``mask=`` or attached to the input by
``Embedding(mask_zero=True)`` / ``Masking`` (see :mod:`fundl.layers.embedding`); at masked
steps the state is carried over unchanged, as in Keras.
"""
from __future__ import annotations

import numpy

from .. import activations, backend, constraints, initializers, regularizers
from .. import functional as F
from ..ops import recurrent as rnn_ops
from ..tensor import Tensor, get_rng
from ._weights import add_weight_with_constraint as _add_weight
from .base import Layer, _snake, deserialize_object, get_registered, serialize_object
from .embedding import attach_mask, get_mask


def _activation_name(fn):
    """The registered name of a built-in activation, or None for a custom function."""
    try:
        return activations.serialize(fn)
    except ValueError:
        return None


def _dropout_mask(shape, rate, like):
    """An inverted-dropout multiplier (0 or 1 / (1 - rate)) of ``shape``, like ``like``'s array."""
    keep = 1.0 - rate
    dtype = like.dtype
    m = (get_rng().random(shape) < keep).astype(dtype) * dtype.type(1.0 / keep)
    return backend.to_device(m, backend.device_of(like))


def _check_units(layer, units):
    if isinstance(units, bool) or not isinstance(units, (int, numpy.integer)) or units <= 0:
        raise ValueError(f"{layer}: units must be a positive integer, got {units!r}.")
    return int(units)


def _check_rate(layer, name, rate):
    if not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"{layer}: {name} must be in [0, 1), got {rate!r}.")
    return float(rate)


class _Cell(Layer):
    """Shared by the built-in cells: Keras-style dropout masks and ``cell(x, states)`` calls.

    The dropout masks are drawn once per sequence (the same units are dropped at every step,
    as Keras does) and forgotten by :meth:`reset_dropout_mask` when the sequence ends.
    """

    def __init__(self, units, dropout=0.0, recurrent_dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.units = _check_units(type(self).__name__, units)
        self.dropout = _check_rate(type(self).__name__, "dropout", dropout)
        self.recurrent_dropout = _check_rate(type(self).__name__, "recurrent_dropout",
                                             recurrent_dropout)
        self._dropout_mask = None
        self._recurrent_dropout_mask = None

    @property
    def output_size(self):
        return self.units

    def __call__(self, inputs, states=None, training=None, **kwargs):
        """One step: ``output, new_states = cell(x_t, states, training=...)``."""
        if states is None:
            raise TypeError(f"{type(self).__name__} '{self.name}': a cell is called as "
                            "cell(inputs, states); get zero states from "
                            "cell.get_initial_state(batch_size).")
        if isinstance(states, Tensor):
            states = [states]
        return super().__call__(inputs, training=training, states=list(states), **kwargs)

    def get_dropout_mask(self, inputs):
        """The input dropout multiplier (batch, features) for this sequence, or None."""
        if self.dropout == 0:
            return None
        if self._dropout_mask is None:
            data = inputs.data if isinstance(inputs, Tensor) else inputs
            self._dropout_mask = _dropout_mask(data.shape, self.dropout, data)
        return self._dropout_mask

    def get_recurrent_dropout_mask(self, state):
        """The recurrent dropout multiplier (batch, units) for this sequence, or None."""
        if self.recurrent_dropout == 0:
            return None
        if self._recurrent_dropout_mask is None:
            data = state.data if isinstance(state, Tensor) else state
            self._recurrent_dropout_mask = _dropout_mask(data.shape, self.recurrent_dropout, data)
        return self._recurrent_dropout_mask

    def reset_dropout_mask(self):
        """Forget the dropout masks (the RNN calls it after each sequence)."""
        self._dropout_mask = None
        self._recurrent_dropout_mask = None

    def get_initial_state(self, batch_size, like=None):
        """Zero states: a list of (batch_size, size) Tensors, one per entry of ``state_size``."""
        sizes = self.state_size if isinstance(self.state_size, (list, tuple)) else [self.state_size]
        return _zeros_states(sizes, batch_size, like, self.dtype)

    def _check_input(self, x):
        d = self.kernel.shape[0]
        if x.ndim != 2 or x.shape[-1] != d:
            raise ValueError(f"{type(self).__name__} '{self.name}': expected step inputs of shape "
                             f"(batch, {d}), got {x.shape}.")

    def _cell_config(self):
        return {"units": self.units, "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout}


def _zeros_states(sizes, batch_size, like, dtype):
    if like is not None:
        data = like.data if isinstance(like, Tensor) else like
        xp = backend.get_array_module(data)
        return [Tensor._wrap(xp.zeros((batch_size, n), dtype=data.dtype)) for n in sizes]
    return [Tensor(numpy.zeros((batch_size, n), dtype=dtype)) for n in sizes]


class SimpleRNNCell(_Cell):
    """One step of a fully connected RNN: ``h_t = activation(x_t @ kernel + bias + h_{t-1} @ U)``.

    Args:
        units: the state size.
        activation: default ``"tanh"``.
        use_bias: add a bias.
        kernel_initializer, recurrent_initializer, bias_initializer: defaults
            ``"glorot_uniform"``, ``"orthogonal"``, ``"zeros"``.
        kernel_regularizer, recurrent_regularizer, bias_regularizer: optional penalties.
        dropout: fraction of the inputs dropped (the same units at every step).
        recurrent_dropout: fraction of the previous state dropped inside the recurrent product.
        kernel_constraint, recurrent_constraint, bias_constraint: optional constraints applied
            after each optimizer update (:mod:`fundl.constraints`); keywords of every cell and
            of SimpleRNN, LSTM and GRU.

    Call: ``output, [h] = cell(x_t, [h_prev], training=False)`` with x_t (batch, features).

    Example:
        >>> cell = SimpleRNNCell(8)
        >>> h, states = cell(np.ones((2, 3), np.float32), cell.get_initial_state(2))
        >>> h.shape
        (2, 8)
    """

    def __init__(self, units, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, dropout=0.0, recurrent_dropout=0.0, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(units, dropout, recurrent_dropout, **kwargs)
        self.kernel_constraint = deserialize_object(constraints, kernel_constraint)
        self.recurrent_constraint = deserialize_object(constraints, recurrent_constraint)
        self.bias_constraint = deserialize_object(constraints, bias_constraint)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = deserialize_object(initializers, kernel_initializer)
        self.recurrent_initializer = deserialize_object(initializers, recurrent_initializer)
        self.bias_initializer = deserialize_object(initializers, bias_initializer)
        self.kernel_regularizer = deserialize_object(regularizers, kernel_regularizer)
        self.recurrent_regularizer = deserialize_object(regularizers, recurrent_regularizer)
        self.bias_regularizer = deserialize_object(regularizers, bias_regularizer)

    gates = 1

    @property
    def state_size(self):
        return self.units

    def build(self, input_shape):
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(f"{type(self).__name__} '{self.name}': expected step inputs of shape "
                             f"(batch, features) with a known feature size, got {input_shape}.")
        g = self.gates * self.units
        self.kernel = _add_weight(self, "kernel", (input_shape[-1], g), self.kernel_initializer,
                                  self.kernel_regularizer, self.kernel_constraint)
        self.recurrent_kernel = _add_weight(self, "recurrent_kernel", (self.units, g),
                                            self.recurrent_initializer,
                                            self.recurrent_regularizer,
                                            self.recurrent_constraint)
        self.bias = (_add_weight(self, "bias", self._bias_shape(), self._bias_init(),
                                 self.bias_regularizer, self.bias_constraint)
                     if self.use_bias else None)

    def _bias_shape(self):
        return (self.gates * self.units,)

    def _bias_init(self):
        return self.bias_initializer

    def _inputs_and_state(self, inputs, states, training):
        """Inputs with dropout applied, and h_{t-1} as it enters the recurrent product."""
        self._check_input(inputs)
        h = states[0]
        if training:
            dp = self.get_dropout_mask(inputs)
            if dp is not None:
                inputs = inputs * dp
            rdp = self.get_recurrent_dropout_mask(h)
            if rdp is not None:
                h = h * rdp
        return inputs, h

    def call(self, inputs, states, training=False):
        x, h = self._inputs_and_state(inputs, states, training)
        out = self.activation(F.linear(x, self.kernel, self.bias) + h @ self.recurrent_kernel)
        return out, [out]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        return {**super().get_config(), **self._cell_config(),
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": serialize_object(self.kernel_initializer),
                "recurrent_initializer": serialize_object(self.recurrent_initializer),
                "bias_initializer": serialize_object(self.bias_initializer),
                "kernel_regularizer": serialize_object(self.kernel_regularizer),
                "recurrent_regularizer": serialize_object(self.recurrent_regularizer),
                "bias_regularizer": serialize_object(self.bias_regularizer),
                "kernel_constraint": serialize_object(self.kernel_constraint),
                "recurrent_constraint": serialize_object(self.recurrent_constraint),
                "bias_constraint": serialize_object(self.bias_constraint)}


class LSTMCell(SimpleRNNCell):
    """One step of a long short-term memory (Hochreiter & Schmidhuber 1997; Keras' LSTMCell).

    ``[i, f, g, o] = [ra, ra, a, ra](x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)``,
    ``c_t = f * c_{t-1} + i * g``, ``h_t = o * a(c_t)``; ``a`` = activation (tanh),
    ``ra`` = recurrent_activation (sigmoid). Weights: kernel (features, 4 units),
    recurrent_kernel (units, 4 units), bias (4 units,), gate blocks in the order i, f, c, o.

    Args:
        units, activation, use_bias, initializers, regularizers, dropout, recurrent_dropout:
            as :class:`SimpleRNNCell`.
        recurrent_activation: default ``"sigmoid"``.
        unit_forget_bias: initialise the forget gate's bias to 1 (Jozefowicz et al. 2015), as Keras.

    Call: ``h, [h, c] = cell(x_t, [h_prev, c_prev], training=False)``.

    Example:
        >>> cell = LSTMCell(16)
        >>> states = cell.get_initial_state(batch_size=4)
        >>> for t in range(x.shape[1]):                   # the unfolding, by hand
        ...     h, states = cell(x[:, t], states)
    """

    gates = 4

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, dropout=0.0,
                 recurrent_dropout=0.0, **kwargs):
        super().__init__(units, activation, use_bias, kernel_initializer, recurrent_initializer,
                         bias_initializer, kernel_regularizer, recurrent_regularizer,
                         bias_regularizer, dropout, recurrent_dropout, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)

    @property
    def state_size(self):
        return [self.units, self.units]

    def build(self, input_shape):
        super().build(input_shape)
        rnn_ops.share_lstm_block(self.kernel, self.recurrent_kernel, self.bias)

    def _bias_init(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        init, n = self.bias_initializer, self.units

        def bias_init(shape, dtype=None):
            b = numpy.asarray(init((4 * n,), dtype=dtype))
            b[n:2 * n] = 1
            return b

        return bias_init

    def call(self, inputs, states, training=False):
        x, h = self._inputs_and_state(inputs, states, training)
        n = self.units
        z = F.linear(x, self.kernel, self.bias) + h @ self.recurrent_kernel
        ra, a = self.recurrent_activation, self.activation
        i, f, g, o = ra(z[:, :n]), ra(z[:, n:2 * n]), a(z[:, 2 * n:3 * n]), ra(z[:, 3 * n:])
        c = f * states[1] + i * g
        h = o * a(c)
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(),
                "recurrent_activation": activations.serialize(self.recurrent_activation),
                "unit_forget_bias": self.unit_forget_bias}


class GRUCell(SimpleRNNCell):
    """One step of a gated recurrent unit (Cho et al. 2014; Keras' GRUCell).

    ``z, r = ra(x W_zr + b_zr + h U_zr [+ rb_zr])``; the candidate
    ``n = a(x W_h + b_h + r * (h U_h + rb_h))`` with ``reset_after=True`` (default, PyTorch's GRU,
    bias of shape (2, 3 units): input and recurrent bias) or ``n = a(x W_h + b_h + (r * h) U_h)``
    with ``reset_after=False`` (bias (3 units,)); ``h_t = z * h_{t-1} + (1 - z) * n``.
    Gate blocks in the order z, r, h.

    Args:
        units, activation, recurrent_activation, use_bias, initializers, regularizers, dropout,
            recurrent_dropout: as :class:`LSTMCell`.
        reset_after: where the reset gate applies (see above).

    Call: ``h, [h] = cell(x_t, [h_prev], training=False)``.

    Example:
        >>> cell = GRUCell(8, reset_after=False)
        >>> h, _ = cell(np.ones((2, 3), np.float32), cell.get_initial_state(2))
    """

    gates = 3

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, dropout=0.0, recurrent_dropout=0.0, reset_after=True,
                 **kwargs):
        super().__init__(units, activation, use_bias, kernel_initializer, recurrent_initializer,
                         bias_initializer, kernel_regularizer, recurrent_regularizer,
                         bias_regularizer, dropout, recurrent_dropout, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.reset_after = bool(reset_after)

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def call(self, inputs, states, training=False):
        x, hd = self._inputs_and_state(inputs, states, training)
        h_prev, n = states[0], self.units
        ra, a, u = self.recurrent_activation, self.activation, self.recurrent_kernel
        bias = self.bias
        if self.reset_after:
            xz = F.linear(x, self.kernel, None if bias is None else bias[0])
            hz = hd @ u if bias is None else F.linear(hd, u, bias[1])
            z, r = ra(xz[:, :n] + hz[:, :n]), ra(xz[:, n:2 * n] + hz[:, n:2 * n])
            cand = a(xz[:, 2 * n:] + r * hz[:, 2 * n:])
        else:
            xz = F.linear(x, self.kernel, bias)
            hz = hd @ u[:, :2 * n]
            z, r = ra(xz[:, :n] + hz[:, :n]), ra(xz[:, n:2 * n] + hz[:, n:])
            cand = a(xz[:, 2 * n:] + (r * hd) @ u[:, 2 * n:])
        h = z * h_prev + (1 - z) * cand
        return h, [h]

    def get_config(self):
        return {**super().get_config(),
                "recurrent_activation": activations.serialize(self.recurrent_activation),
                "reset_after": self.reset_after}


# -- the unfolding ---------------------------------------------------------------------------------
def _as_states(states):
    if states is None:
        return None
    if isinstance(states, (list, tuple)):
        return [s if isinstance(s, Tensor) else Tensor(s) for s in states]
    return [states if isinstance(states, Tensor) else Tensor(states)]


def _mask_data(mask):
    if mask is None:
        return None
    return mask.data if isinstance(mask, Tensor) else mask


class RNN(Layer):
    """Unfolds a cell over the time axis: the base of the recurrent layers, and the way to run
    a cell you wrote yourself.

    Args:
        cell: a layer with ``state_size`` (an int or a list of ints), optionally ``output_size``,
            and ``call(inputs, states, training=False) -> (output, new_states)``.
        return_sequences: return the outputs of all steps (batch, timesteps, units) instead of
            the last one (batch, units).
        return_state: also return the final states: ``[output, *states]``.
        go_backwards: process the sequence from the end (outputs come in that order, as Keras).
        zero_output_for_mask: output zeros at masked steps instead of repeating the last
            output (Bidirectional sets it when returning sequences, as Keras).

    Call: ``layer(x, training=False, mask=None, initial_state=None)`` with x of shape
    (batch, timesteps, features); initial states may also come as ``layer([x, *states])``
    (the form to use in the functional API). The mask (batch, timesteps) may also be attached
    to ``x`` by ``Embedding(mask_zero=True)`` or ``Masking``.

    Example:
        >>> layer = RNN(LSTMCell(32), return_sequences=True)
        >>> layer(np.zeros((4, 10, 8), np.float32)).shape
        (4, 10, 32)
    """

    uses_parallel_regions = True  # see Layer.uses_parallel_regions

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False,
                 zero_output_for_mask=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(cell, Layer) or not hasattr(cell, "state_size"):
            raise TypeError(f"{type(self).__name__}: cell must be a Layer with a state_size "
                            f"attribute and call(inputs, states), got {type(cell).__name__}.")
        self.cell = cell
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.zero_output_for_mask = bool(zero_output_for_mask)

    @property
    def state_size(self) -> list:
        s = self.cell.state_size
        return list(s) if isinstance(s, (list, tuple)) else [s]

    @property
    def units(self) -> int:
        return getattr(self.cell, "output_size", None) or self.state_size[0]

    def _who(self):
        return f"{type(self).__name__} '{self.name}'"

    def _check_shape(self, shape):
        if len(shape) != 3:
            raise ValueError(f"{self._who()}: expected inputs of shape (batch, timesteps, "
                             f"features), got shape {tuple(shape)}. For one sequence add a batch "
                             "axis; for images use (batch, rows, columns).")
        if shape[-1] is None:
            raise ValueError(f"{self._who()}: the feature size (last axis) must be known, got "
                             f"{tuple(shape)}.")

    def build(self, input_shape):
        if isinstance(input_shape, list):
            input_shape = input_shape[0]
        self._check_shape(input_shape)
        self.cell._maybe_build((None, input_shape[-1]))

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, list):
            input_shape = input_shape[0]
        self._check_shape(input_shape)
        self._check_features(input_shape)
        b = input_shape[0]
        out = (b, input_shape[1], self.units) if self.return_sequences else (b, self.units)
        if self.return_state:
            return [out] + [(b, n) for n in self.state_size]
        return out

    def compute_mask(self, inputs, mask=None):
        """The output's mask: the input mask when returning sequences, else None."""
        return mask if self.return_sequences else None

    def _check_features(self, shape):
        kernel = getattr(self.cell, "kernel", None)
        if kernel is not None and shape[-1] != kernel.shape[0]:
            raise ValueError(f"{self._who()}: expected inputs with {kernel.shape[0]} features (set "
                             f"when the layer was built), got shape {tuple(shape)}. Did the "
                             "previous layer change size?")

    def call(self, inputs, training=False, mask=None, initial_state=None):
        if isinstance(inputs, (list, tuple)):
            if initial_state is not None:
                raise ValueError(f"{self._who()}: initial states were given both in the input "
                                 "list and as initial_state=.")
            inputs, initial_state = inputs[0], list(inputs[1:]) or None
        x = inputs
        self._check_shape(x.shape)
        self._check_features(x.shape)
        if x.dtype.kind != "f":
            raise TypeError(f"{self._who()}: expected floating-point inputs, got dtype {x.dtype}. "
                            "Integer token ids go through an Embedding layer first.")
        b = x.shape[0]
        mask = _mask_data(mask) if mask is not None else get_mask(x)
        if mask is not None and tuple(mask.shape) != x.shape[:2]:
            raise ValueError(f"{self._who()}: mask must have shape (batch, timesteps) = "
                             f"{x.shape[:2]}, got {tuple(mask.shape)}.")
        given = _as_states(initial_state)
        if given is not None:
            want = [(b, n) for n in self.state_size]
            if [tuple(s.shape) for s in given] != want:
                raise ValueError(f"{self._who()}: expected {len(want)} initial state(s) of shape "
                                 f"{want}, got {[tuple(s.shape) for s in given]}.")
        cell = self.cell
        # Zero initial states are made only where something reads them (the unfolded cells,
        # the recurrent dropout mask's shape): the fused op starts from zeros by itself, and
        # two (batch, units) arrays made and dropped cost ~10 us of every inference call.
        states = given
        # Draw the dropout masks before either path runs, in the same order (inputs, then
        # state), so the fused op and the unfolded cells drop the same units.
        if training and isinstance(cell, _Cell):
            cell.get_dropout_mask(x.data[:, 0])
            if cell.recurrent_dropout:
                if states is None:
                    states = _zeros_states(self.state_size, b, x, self.dtype)
                cell.get_recurrent_dropout_mask(states[0])
        try:
            result = self._fused(x, states, given, mask, training)
            if result is None:
                if states is None:
                    states = _zeros_states(self.state_size, b, x, self.dtype)
                result = self._unfold(x, states, mask, training)
        finally:
            if isinstance(cell, _Cell):
                cell.reset_dropout_mask()
        output, new_states = result
        if mask is not None and self.return_sequences:
            attach_mask(output, mask)
        if self.return_state:
            return [output] + list(new_states)
        return output

    def _unfold(self, x, states, mask, training):
        """The step-by-step graph: one cell call per time step (Keras' ``backend.rnn``)."""
        t_steps = x.shape[1]
        order = range(t_steps - 1, -1, -1) if self.go_backwards else range(t_steps)
        outputs, prev, zeros = [], None, None
        for t in order:
            out, new_states = self.cell(x[:, t], states=states, training=training)
            new_states = list(new_states) if isinstance(new_states, (list, tuple)) else [new_states]
            if mask is not None:
                m = mask[:, t:t + 1]
                new_states = [F.where(m, n, s) for n, s in zip(new_states, states)]
                if zeros is None:
                    zeros = Tensor._wrap(backend.get_array_module(out.data).zeros_like(out.data))
                    prev = zeros
                out = F.where(m, out, zeros if self.zero_output_for_mask else prev)
                prev = out
            states = new_states
            outputs.append(out)
        output = F.stack(outputs, axis=1) if self.return_sequences else outputs[-1]
        return output, states

    def _fused(self, x, states, given, mask, training):
        """The whole sequence as one op, when the layer has one (subclasses); else None."""
        return None

    def get_config(self):
        return {**super().get_config(),
                "cell": {"class_name": type(self.cell).__name__, "config": self.cell.get_config()},
                **self._rnn_config()}

    def _rnn_config(self):
        return {"return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards,
                "zero_output_for_mask": self.zero_output_for_mask}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        spec = config.pop("cell")
        config["cell"] = _layer_from_spec(spec, custom_objects)
        return super().from_config.__func__(cls, config, custom_objects)


class _FusedRNN(RNN):
    """An RNN over a built-in cell, run as one fused sequence op when the activations allow."""

    _cell_class = None
    _op = None

    def __init__(self, units, return_sequences=False, return_state=False, go_backwards=False,
                 zero_output_for_mask=False, activity_regularizer=None, name=None,
                 trainable=True, dtype=None, input_shape=None, input_dim=None, batch_size=None,
                 **cell_kwargs):
        # the cell checks these too, but the user called this class: name it in the message
        _check_units(type(self).__name__, units)
        for rate in ("dropout", "recurrent_dropout"):
            _check_rate(type(self).__name__, rate, cell_kwargs.get(rate, 0.0))
        cell = self._cell_class(units, name=_snake(self._cell_class.__name__),
                                trainable=trainable, dtype=dtype, **cell_kwargs)
        super().__init__(cell, return_sequences, return_state, go_backwards, zero_output_for_mask,
                         name=name, trainable=trainable, dtype=dtype, input_shape=input_shape,
                         input_dim=input_dim, batch_size=batch_size)
        self.activity_regularizer = deserialize_object(regularizers, activity_regularizer)

    def __getattr__(self, name):
        # units, activation, dropout, ... live on the cell (as in Keras: lstm.units)
        if name.startswith("_") or "_sublayers" not in self.__dict__:
            raise AttributeError(name)
        cell = self.__dict__["_sublayers"].get("cell")
        if cell is None or not hasattr(cell, name):
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        return getattr(cell, name)

    def _fused_extra(self):
        return {}

    def _fused(self, x, states, given, mask, training):
        cell = self.cell
        if type(cell).call is not self._cell_class.call:
            return None  # a subclassed cell with its own math: unfold it
        names = {"activation": _activation_name(cell.activation)}
        if hasattr(cell, "recurrent_activation"):
            names["recurrent_activation"] = _activation_name(cell.recurrent_activation)
        if any(v not in rnn_ops.ACTIVATIONS for v in names.values()):
            return None
        if training:
            dp = cell.get_dropout_mask(x.data[:, 0])
            if dp is not None:
                x = x * dp[:, None, :]
            # (drawn by call already when there is recurrent dropout, else None: no states read)
            rdp = cell.get_recurrent_dropout_mask(None if states is None else states[0])
        else:
            rdp = None
        out = type(self)._op(x, cell.kernel, cell.recurrent_kernel, cell.bias, initial_state=given,
                             mask=mask, go_backwards=self.go_backwards,
                             return_sequences=self.return_sequences, recurrent_dropout_mask=rdp,
                             **names, **self._fused_extra())
        output, states = out[0], list(out[1:])
        if mask is not None:
            output = self._mask_output(output, mask, given is not None)
        return output, states

    def _mask_output(self, output, mask, has_state):
        """Keras' output convention at masked steps, on top of the op's carried states.

        The op outputs the state at every step; Keras outputs zeros at masked steps
        (``zero_output_for_mask``) or repeats the previous *output*, which starts at zero, so
        with a given initial state the leading masked steps output zeros.
        """
        xp = backend.get_array_module(output.data)
        m = xp.asarray(mask).astype(bool)
        if self.go_backwards:
            m = m[:, ::-1]
        if self.zero_output_for_mask:
            factor = m
        elif has_state:
            factor = xp.logical_or.accumulate(m, axis=1) if xp is numpy else xp.cumsum(m, 1) > 0
        else:
            return output
        factor = factor.astype(output.dtype)
        if self.return_sequences:
            return output * factor[:, :, None]
        return output * factor[:, -1:]

    def get_config(self):
        config = self.cell.get_config()
        for key in ("name", "trainable", "dtype"):
            config.pop(key, None)
        base = Layer.get_config(self)
        return {**base, **config, **self._rnn_config(),
                "activity_regularizer": serialize_object(self.activity_regularizer)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return Layer.from_config.__func__(cls, config, custom_objects)


class SimpleRNN(_FusedRNN):
    """A fully connected RNN whose output is fed back: ``h_t = tanh(x_t W + b + h_{t-1} U)``.

    Args:
        units: the state (and output) size.
        activation: default ``"tanh"``.
        use_bias, kernel_initializer, recurrent_initializer (default ``"orthogonal"``),
            bias_initializer, kernel_regularizer, recurrent_regularizer, bias_regularizer,
            dropout, recurrent_dropout: as :class:`SimpleRNNCell`.
        return_sequences, return_state, go_backwards, zero_output_for_mask: as :class:`RNN`.
        activity_regularizer: an optional penalty on the output.

    Input (batch, timesteps, features) -> (batch, units), or (batch, timesteps, units) with
    ``return_sequences``; with ``return_state``, ``[output, h]``. Weights ``kernel``,
    ``recurrent_kernel``, ``bias`` (on ``layer.cell``), in Keras' layout.

    Example:
        >>> model = Sequential([SimpleRNN(32, input_shape=(10, 8)), Dense(1)])
    """

    _cell_class = SimpleRNNCell
    _op = staticmethod(rnn_ops.simple_rnn)

    def __init__(self, units, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, dropout=0.0,
                 recurrent_dropout=0.0, return_sequences=False, return_state=False,
                 go_backwards=False, zero_output_for_mask=False, **kwargs):
        super().__init__(units, return_sequences, return_state, go_backwards, zero_output_for_mask,
                         activity_regularizer, activation=activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer,
                         bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                         recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, **kwargs)


class LSTM(_FusedRNN):
    """Long short-term memory layer (Hochreiter & Schmidhuber 1997), Keras' ``LSTM``.

    Args:
        units: the state (and output) size.
        activation: default ``"tanh"``; recurrent_activation: default ``"sigmoid"``.
        use_bias, kernel_initializer, recurrent_initializer (default ``"orthogonal"``),
            bias_initializer, unit_forget_bias (default True), kernel_regularizer,
            recurrent_regularizer, bias_regularizer, dropout, recurrent_dropout:
            as :class:`LSTMCell`.
        return_sequences, return_state, go_backwards, zero_output_for_mask: as :class:`RNN`.
        activity_regularizer: an optional penalty on the output.

    Input (batch, timesteps, features) -> (batch, units), or (batch, timesteps, units) with
    ``return_sequences``; with ``return_state``, ``[output, h, c]``. Initial states:
    ``layer(x, initial_state=[h0, c0])`` or ``layer([x, h0, c0])``. Weights (on
    ``layer.cell``): kernel (features, 4 units), recurrent_kernel (units, 4 units), bias
    (4 units,), gates i, f, c, o: Keras weights load as they are; for PyTorch's ``nn.LSTM``,
    ``weight_ih = kernel.T``, ``weight_hh = recurrent_kernel.T``, ``bias_ih + bias_hh = bias``.

    Example:
        >>> model = Sequential([LSTM(128, input_shape=(28, 28)), Dense(10, activation="softmax")])
    """

    _cell_class = LSTMCell
    _op = staticmethod(rnn_ops.lstm)

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 dropout=0.0, recurrent_dropout=0.0, return_sequences=False, return_state=False,
                 go_backwards=False, zero_output_for_mask=False, **kwargs):
        super().__init__(units, return_sequences, return_state, go_backwards, zero_output_for_mask,
                         activity_regularizer, activation=activation,
                         recurrent_activation=recurrent_activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer,
                         bias_initializer=bias_initializer, unit_forget_bias=unit_forget_bias,
                         kernel_regularizer=kernel_regularizer,
                         recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, **kwargs)


class GRU(_FusedRNN):
    """Gated recurrent unit layer (Cho et al. 2014), Keras' ``GRU``.

    Args:
        units: the state (and output) size.
        activation: default ``"tanh"``; recurrent_activation: default ``"sigmoid"``.
        reset_after: True (default, as Keras 3 and PyTorch): the reset gate multiplies the
            recurrent product, bias (2, 3 units) = [input bias, recurrent bias]; False: it
            multiplies the state before the product, bias (3 units,).
        use_bias, initializers, regularizers, dropout, recurrent_dropout: as :class:`GRUCell`.
        return_sequences, return_state, go_backwards, zero_output_for_mask: as :class:`RNN`.
        activity_regularizer: an optional penalty on the output.

    Input (batch, timesteps, features) -> (batch, units), or (batch, timesteps, units) with
    ``return_sequences``; with ``return_state``, ``[output, h]``. Weights (on ``layer.cell``):
    kernel (features, 3 units), recurrent_kernel (units, 3 units), bias; gates z, r, h. For
    PyTorch's ``nn.GRU`` (gates r, z, n) reorder the blocks: ``weight_ih = kernel[:, [r, z, h]].T``,
    ``bias_ih = bias[0]``, ``bias_hh = bias[1]`` (reordered the same way).

    Example:
        >>> model = Sequential([GRU(64, input_shape=(28, 28)), Dense(10, activation="softmax")])
    """

    _cell_class = GRUCell
    _op = staticmethod(rnn_ops.gru)

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, dropout=0.0,
                 recurrent_dropout=0.0, return_sequences=False, return_state=False,
                 go_backwards=False, zero_output_for_mask=False, reset_after=True, **kwargs):
        super().__init__(units, return_sequences, return_state, go_backwards, zero_output_for_mask,
                         activity_regularizer, activation=activation,
                         recurrent_activation=recurrent_activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer,
                         bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                         recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, reset_after=reset_after, **kwargs)

    def _fused_extra(self):
        return {"reset_after": self.cell.reset_after}


# -- wrappers ------------------------------------------------------------------------------------
def _layer_spec(layer):
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def _layer_from_spec(spec, custom_objects=None):
    cls = get_registered(spec["class_name"], custom_objects)
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise ValueError(f"{spec['class_name']!r} is not a layer class.")
    return cls.from_config(spec["config"], custom_objects=custom_objects)


def _strip(name, prefix):
    return name[len(prefix):] if name.startswith(prefix) else name


_MERGE_MODES = ("concat", "sum", "mul", "ave", None)


class Bidirectional(Layer):
    """Runs a recurrent layer forwards and a copy of it backwards, and merges the two outputs.

    Args:
        layer: an RNN layer (LSTM, GRU, SimpleRNN, RNN(cell)); it is copied (from its config)
            into ``forward_layer``; the backward copy gets ``go_backwards`` flipped.
        merge_mode: ``"concat"`` (default), ``"sum"``, ``"mul"``, ``"ave"``, or None for the list
            ``[forward, backward]``.
        backward_layer: an explicit backward layer (its ``go_backwards`` must differ from
            ``layer``'s; return_sequences and return_state must match).

    The backward output is flipped back in time before merging, so step t of both halves
    refers to input step t. With ``return_state``: ``[output, *forward_states,
    *backward_states]``; initial states are given in the same order. Weights: the forward
    layer's, then the backward layer's (Keras' order). A ``dtype`` given to the wrapper
    applies to both copies.

    Example:
        >>> model = Sequential([Embedding(1000, 32, mask_zero=True),
        ...                     Bidirectional(LSTM(16)), Dense(1, activation="sigmoid")])
    """

    def __init__(self, layer, merge_mode="concat", backward_layer=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, RNN):
            raise TypeError(f"Bidirectional: layer must be a recurrent layer (an RNN, LSTM, GRU or "
                            f"SimpleRNN instance), got {type(layer).__name__}.")
        if backward_layer is not None and not isinstance(backward_layer, RNN):
            raise TypeError(f"Bidirectional: backward_layer must be a recurrent layer, got "
                            f"{type(backward_layer).__name__}.")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f"Bidirectional: merge_mode must be one of {_MERGE_MODES}, got "
                             f"{merge_mode!r}.")
        spec = _layer_spec(layer)
        if kwargs.get("dtype") is not None:  # the wrapper's dtype wins over the copied layer's
            spec["config"]["dtype"] = self.dtype
        spec["config"]["name"] = "forward_" + _strip(layer.name, "forward_")
        self.forward_layer = _layer_from_spec(spec)
        if backward_layer is None:
            spec["config"]["name"] = "backward_" + _strip(layer.name, "backward_")
            spec["config"]["go_backwards"] = not layer.go_backwards
            backward_layer = _layer_from_spec(spec)
        self.backward_layer = backward_layer
        if self.forward_layer.go_backwards == self.backward_layer.go_backwards:
            raise ValueError("Bidirectional: the forward and backward layers must have different "
                             f"go_backwards, got {self.forward_layer.go_backwards} for both.")
        for attr in ("return_sequences", "return_state"):
            if getattr(self.forward_layer, attr) != getattr(self.backward_layer, attr):
                raise ValueError(f"Bidirectional: forward and backward layers must have the same "
                                 f"{attr}, got {getattr(self.forward_layer, attr)} and "
                                 f"{getattr(self.backward_layer, attr)}.")
        for half in (self.forward_layer, self.backward_layer):
            half.zero_output_for_mask = half.return_sequences  # as Keras
        self.merge_mode = merge_mode
        self.return_sequences = self.forward_layer.return_sequences
        self.return_state = self.forward_layer.return_state

    def build(self, input_shape):
        for half in (self.forward_layer, self.backward_layer):
            half._maybe_build(input_shape)

    def call(self, inputs, training=False, mask=None, initial_state=None):
        if isinstance(inputs, (list, tuple)):
            inputs, initial_state = inputs[0], list(inputs[1:]) or None
        mask = _mask_data(mask) if mask is not None else get_mask(inputs)
        fwd_state = bwd_state = None
        if initial_state is not None:
            initial_state = list(initial_state)
            half = len(initial_state) // 2
            fwd_state, bwd_state = initial_state[:half], initial_state[half:]
        y = self.forward_layer(inputs, training=training, mask=mask, initial_state=fwd_state)
        y_rev = self.backward_layer(inputs, training=training, mask=mask, initial_state=bwd_state)
        states = []
        if self.return_state:
            states = list(y[1:]) + list(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = y_rev[:, ::-1]
        if self.merge_mode == "concat":
            out = F.concatenate([y, y_rev], axis=-1)
        elif self.merge_mode == "sum":
            out = y + y_rev
        elif self.merge_mode == "ave":
            out = (y + y_rev) * 0.5
        elif self.merge_mode == "mul":
            out = y * y_rev
        else:
            out = [y, y_rev]
        if mask is not None and self.return_sequences:
            for o in (out if isinstance(out, list) else [out]):
                attach_mask(o, mask)
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + states
        return out

    def compute_output_shape(self, input_shape):
        shape = self.forward_layer.compute_output_shape(input_shape)
        states = []
        if self.return_state:
            shape, states = shape[0], shape[1:]
        if self.merge_mode == "concat":
            out = [tuple(shape[:-1]) + (shape[-1] * 2,)]
        elif self.merge_mode is None:
            out = [tuple(shape), tuple(shape)]
        else:
            out = [tuple(shape)]
        if self.return_state:
            return out + list(states) + list(states)
        return out if self.merge_mode is None else out[0]

    def compute_mask(self, inputs, mask=None):
        """The input mask when returning sequences, else None."""
        return mask if self.return_sequences else None

    def get_config(self):
        return {**super().get_config(), "layer": _layer_spec(self.forward_layer),
                "merge_mode": self.merge_mode, "backward_layer": _layer_spec(self.backward_layer)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["layer"] = _layer_from_spec(config["layer"], custom_objects)
        if config.get("backward_layer") is not None:
            config["backward_layer"] = _layer_from_spec(config["backward_layer"], custom_objects)
        return super().from_config.__func__(cls, config, custom_objects)


class TimeDistributed(Layer):
    """Applies a layer to every time step: (batch, timesteps, ...) -> (batch, timesteps, ...).

    The steps are folded into the batch axis, so the wrapped layer runs once on
    (batch * timesteps, ...) and its weights are shared by all steps. A mask on the input is
    passed on to the output.

    Args:
        layer: the layer to apply (e.g. ``Dense(10)``).

    Example:
        >>> model = Sequential([LSTM(32, return_sequences=True, input_shape=(20, 8)),
        ...                     TimeDistributed(Dense(1))])
    """

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, Layer):
            raise TypeError(f"TimeDistributed: layer must be a Layer, got {type(layer).__name__}.")
        self.layer = layer

    def _check(self, shape):
        if len(shape) < 3:
            raise ValueError(f"TimeDistributed '{self.name}': expected inputs of shape (batch, "
                             f"timesteps, ...) with at least 3 axes, got {tuple(shape)}.")

    def build(self, input_shape):
        self._check(input_shape)
        self.layer._maybe_build((None,) + tuple(input_shape[2:]))

    def call(self, x, training=False, mask=None):
        self._check(x.shape)
        b, t = x.shape[:2]
        y = self.layer(F.reshape(x, (b * t,) + tuple(x.shape[2:])), training=training)
        y = F.reshape(y, (b, t) + tuple(y.shape[1:]))
        mask = _mask_data(mask) if mask is not None else get_mask(x)
        return attach_mask(y, mask) if mask is not None else y

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        inner = self.layer.compute_output_shape((None,) + tuple(input_shape[2:]))
        return tuple(input_shape[:2]) + tuple(inner[1:])

    def compute_mask(self, inputs, mask=None):
        """The input mask, unchanged."""
        return mask

    def get_config(self):
        return {**super().get_config(), "layer": _layer_spec(self.layer)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["layer"] = _layer_from_spec(config["layer"], custom_objects)
        return super().from_config.__func__(cls, config, custom_objects)
