"""Recurrent layers: SimpleRNN, LSTM, GRU, their cells, RNN(cell), Bidirectional, TimeDistributed.

Three kinds of evidence: the layer harness (shapes, config, save/load, a training step,
float64 gradcheck); agreement with PyTorch's nn.RNN/nn.LSTM/nn.GRU in float32 (outputs, final
states, input and weight gradients, with and without masks); and agreement of the fused
sequence ops with the step-by-step graph of the unfolded cells.
"""
import numpy as np
import pytest

import fundl as fl
from fundl.layers import Dense, Input
from fundl.layers.embedding import attach_mask, get_mask
from fundl.layers.recurrent import (
    GRU, LSTM, RNN, Bidirectional, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell, TimeDistributed,
)
from fundl.models import Model, Sequential, load_model
from fundl.testing import assert_error
from fundl.testing.layer_case import check_layer

B, T, D, H = 4, 6, 5, 3
# right-padded sequences of lengths 6, 4, 1, 3 (PyTorch's packed sequences need right padding)
LENGTHS = np.array([6, 4, 1, 3])
MASK = np.arange(T)[None, :] < LENGTHS[:, None]


def _x(dtype="float32", seed=0, shape=(B, T, D)):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _randomize(layer, seed=1, scale=0.5):
    """Give a built layer random weights (zero biases would hide bias bugs)."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.standard_normal(w.shape) * scale for w in layer.get_weights()])


# -- the harness --------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,kwargs,weights", [
    (SimpleRNN, {"units": 2}, {"cell.kernel": (3, 2), "cell.recurrent_kernel": (2, 2),
                               "cell.bias": (2,)}),
    (LSTM, {"units": 2, "return_sequences": True},
     {"cell.kernel": (3, 8), "cell.recurrent_kernel": (2, 8), "cell.bias": (8,)}),
    (GRU, {"units": 2}, {"cell.kernel": (3, 6), "cell.recurrent_kernel": (2, 6),
                         "cell.bias": (2, 6)}),
    (GRU, {"units": 2, "reset_after": False, "go_backwards": True},
     {"cell.kernel": (3, 6), "cell.recurrent_kernel": (2, 6), "cell.bias": (6,)}),
    (LSTM, {"units": 2, "use_bias": False, "activation": "relu"},
     {"cell.kernel": (3, 8), "cell.recurrent_kernel": (2, 8)}),
], ids=["simple_rnn", "lstm_sequences", "gru", "gru_reset_before_backwards", "lstm_relu_no_bias"])
def test_recurrent_layer_harness(cls, kwargs, weights):
    rs = kwargs.get("return_sequences", False)
    check_layer(cls, kwargs, input_shape=(2, 4, 3),
                expected_output_shape=(2, 4, 2) if rs else (2, 2), expected_weights=weights)


def test_lstm_with_return_state_harness():
    check_layer(LSTM, {"units": 2, "return_state": True}, input_shape=(2, 3, 3),
                expected_output_shape=[(2, 2), (2, 2), (2, 2)])


def test_rnn_with_a_cell_harness():
    # the harness passes the same cell instance to every RNN it makes, so its float64
    # gradcheck would see float32 weights: the next test does that check
    check_layer(RNN, {"cell": GRUCell(2, reset_after=False), "return_sequences": True},
                input_shape=(2, 3, 3), expected_output_shape=(2, 3, 2),
                expected_weights={"cell.kernel": (3, 6), "cell.recurrent_kernel": (2, 6),
                                  "cell.bias": (6,)}, check_gradients=False)


@pytest.mark.parametrize("cell_cls", [SimpleRNNCell, LSTMCell, GRUCell])
def test_unfolded_cells_gradcheck(cell_cls):
    layer = RNN(cell_cls(2, dtype="float64"), return_sequences=True)
    x = fl.tensor(_x("float64", shape=(2, 3, 2)), requires_grad=True)
    layer(x, mask=np.array([[1, 1, 0], [1, 1, 1]], bool))
    _randomize(layer)
    assert fl.gradcheck(lambda *a: layer(a[0], mask=np.array([[1, 1, 0], [1, 1, 1]], bool)),
                        [x] + layer.weights)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
def test_bidirectional_harness(merge_mode):
    check_layer(Bidirectional, {"layer": LSTM(2, return_sequences=True), "merge_mode": merge_mode},
                input_shape=(2, 3, 3),
                expected_output_shape=(2, 3, 4 if merge_mode == "concat" else 2))


def test_time_distributed_harness():
    # the wrapped instance is shared by every layer the harness makes (float32): gradcheck below
    check_layer(TimeDistributed, {"layer": Dense(2)}, input_shape=(2, 3, 4),
                expected_output_shape=(2, 3, 2),
                expected_weights={"layer.kernel": (4, 2), "layer.bias": (2,)},
                check_gradients=False)


def test_time_distributed_gradcheck():
    layer = TimeDistributed(LSTM(2, dtype="float64", return_sequences=True))
    x = fl.tensor(_x("float64", shape=(2, 3, 2, 2)), requires_grad=True)
    layer(x)
    assert fl.gradcheck(lambda x, *weights: layer(x), [x] + layer.weights)


def test_recurrent_dropout_harness_gradcheck_in_training_mode():
    check_layer(GRU, {"units": 2, "dropout": 0.3, "recurrent_dropout": 0.3},
                input_shape=(2, 3, 3), expected_output_shape=(2, 2), gradcheck_training=True,
                check_training=False)  # the training check's loss moves with the random masks


# -- PyTorch: forward, final states, input and weight gradients, float32 ---------------------------
def _torch_params(kind, cell, suffix=""):
    """fundl's Keras layout as PyTorch parameters (weight_ih, weight_hh, bias_ih, bias_hh)."""
    w, u = cell.kernel.numpy(), cell.recurrent_kernel.numpy()
    b = cell.bias.numpy()
    if kind == "GRU":  # Keras z, r, h -> PyTorch r, z, n
        order = np.r_[H:2 * H, 0:H, 2 * H:3 * H]
        w, u, b = w[:, order], u[:, order], b[:, order]
        bih, bhh = b[0], b[1]
    else:
        bih, bhh = b, np.zeros_like(b)
    return {f"weight_ih_l0{suffix}": w.T, f"weight_hh_l0{suffix}": u.T,
            f"bias_ih_l0{suffix}": bih, f"bias_hh_l0{suffix}": bhh}


def _from_torch_grads(kind, grads):
    """PyTorch's gradients back in fundl's layout: [kernel, recurrent_kernel, bias]."""
    w, u = grads["weight_ih"].T, grads["weight_hh"].T
    if kind == "GRU":
        back = np.r_[H:2 * H, 0:H, 2 * H:3 * H]  # the permutation is its own inverse
        return [w[:, back], u[:, back], np.stack([grads["bias_ih"][back], grads["bias_hh"][back]])]
    return [w, u, grads["bias_ih"]]  # bias_ih and bias_hh get the same gradient


def _compare_with_torch(kind, layer, mask, bidirectional=False, initial_state=False):
    torch = pytest.importorskip("torch")
    torch_cls = {"SimpleRNN": torch.nn.RNN, "LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}[kind]
    x = _x()
    n_states = 2 if kind == "LSTM" else 1
    dirs = 2 if bidirectional else 1
    rng = np.random.default_rng(3)
    h0 = [rng.standard_normal((dirs, B, H)).astype("float32") for _ in range(n_states)]
    module = torch_cls(D, H, batch_first=True, bidirectional=bidirectional)
    halves = [layer.forward_layer, layer.backward_layer] if bidirectional else [layer]
    with torch.no_grad():
        params = dict(module.named_parameters())
        for half, suffix in zip(halves, ["", "_reverse"]):
            for name, value in _torch_params(kind, half.cell, suffix).items():
                params[name].copy_(torch.from_numpy(np.ascontiguousarray(value)))
    # fundl
    fx = fl.tensor(x, requires_grad=True)
    states = None
    if initial_state:
        states = [fl.tensor(s[d]) for d in range(dirs) for s in h0]
    outs = layer(fx, mask=mask, initial_state=states)
    y, f_states = outs[0], outs[1:]
    # torch
    tx = torch.tensor(x, requires_grad=True)
    t_init = None
    if initial_state:
        t_init = tuple(torch.tensor(s) for s in h0)
        t_init = t_init if kind == "LSTM" else t_init[0]
    if mask is not None:
        packed = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(mask.sum(1)),
                                                         batch_first=True, enforce_sorted=False)
        t_out, t_last = module(packed, t_init)
        ty = torch.nn.utils.rnn.pad_packed_sequence(t_out, batch_first=True, total_length=T)[0]
    else:
        ty, t_last = module(tx, t_init)
    t_last = t_last if isinstance(t_last, tuple) else (t_last,)
    # states in fundl's order: [h, c] per direction
    t_states = [s[d] for d in range(dirs) for s in t_last]
    valid = np.ones((B, T), bool) if mask is None else mask
    np.testing.assert_allclose(y.numpy()[valid], ty.detach().numpy()[valid], atol=1e-5, rtol=1e-5)
    for a, b in zip(f_states, t_states):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), atol=1e-5, rtol=1e-5)
    # gradients of a random linear function of the valid outputs and the final states
    v = rng.standard_normal(y.shape).astype("float32") * valid[..., None]
    vs = [rng.standard_normal(s.shape).astype("float32") for s in f_states]
    for w in layer.weights:
        w.grad = None
    loss = (y * v).sum()
    for s, vv in zip(f_states, vs):
        loss = loss + (s * vv).sum()
    loss.backward()
    t_loss = (ty * torch.tensor(v)).sum()
    for s, vv in zip(t_states, vs):
        t_loss = t_loss + (s * torch.tensor(vv)).sum()
    t_loss.backward()
    np.testing.assert_allclose(fx.grad, tx.grad.numpy(), atol=1e-5, rtol=1e-5)
    for half, suffix in zip(halves, ["", "_reverse"]):
        grads = {k: params[k + "_l0" + suffix].grad.numpy()
                 for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        want = _from_torch_grads(kind, grads)
        got = [w.grad for w in half.cell.weights]
        for g, e in zip(got, want):
            np.testing.assert_allclose(g, e, atol=1e-5, rtol=1e-5)


def _layer(kind, **kwargs):
    cls = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}[kind]
    layer = cls(H, return_sequences=True, return_state=True, **kwargs)
    layer.build((None, T, D))
    _randomize(layer)
    return layer


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_layer_matches_torch(kind, masked):
    _compare_with_torch(kind, _layer(kind), MASK if masked else None)


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_layer_with_initial_state_matches_torch(kind):
    _compare_with_torch(kind, _layer(kind), None, initial_state=True)


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_bidirectional_matches_torch(kind, masked):
    cls = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}[kind]
    layer = Bidirectional(cls(H, return_sequences=True, return_state=True))
    layer.build((None, T, D))
    _randomize(layer)
    _compare_with_torch(kind, layer, MASK if masked else None, bidirectional=True,
                        initial_state=not masked)


def _gru_reset_before_torch(torch, x, w, u, b, mask):
    """Keras' GRU(reset_after=False), step by step in PyTorch (nn.GRU has no such mode)."""
    h = torch.zeros(x.shape[0], H, dtype=x.dtype)
    outs = []
    for t in range(x.shape[1]):
        xz = x[:, t] @ w + b
        z = torch.sigmoid(xz[:, :H] + h @ u[:, :H])
        r = torch.sigmoid(xz[:, H:2 * H] + h @ u[:, H:2 * H])
        cand = torch.tanh(xz[:, 2 * H:] + (r * h) @ u[:, 2 * H:])
        new = z * h + (1 - z) * cand
        m = torch.tensor(mask[:, t:t + 1])
        h = torch.where(m, new, h)
        outs.append(h)
    return torch.stack(outs, 1), h


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_gru_reset_before_matches_a_torch_loop(masked):
    torch = pytest.importorskip("torch")
    mask = MASK if masked else np.ones((B, T), bool)
    layer = _layer("GRU", reset_after=False)
    x = _x()
    fx = fl.tensor(x, requires_grad=True)
    y, h = layer(fx, mask=mask if masked else None)
    tx = torch.tensor(x, requires_grad=True)
    tw = [torch.tensor(w.numpy(), requires_grad=True) for w in layer.cell.weights]
    ty, th = _gru_reset_before_torch(torch, tx, *tw, mask)
    np.testing.assert_allclose(y.numpy()[mask], ty.detach().numpy()[mask], atol=1e-5)
    np.testing.assert_allclose(h.numpy(), th.detach().numpy(), atol=1e-5)
    v = np.random.default_rng(0).standard_normal(y.shape).astype("float32") * mask[..., None]
    ((y * v).sum() + h.sum()).backward()
    ((ty * torch.tensor(v)).sum() + th.sum()).backward()
    np.testing.assert_allclose(fx.grad, tx.grad.numpy(), atol=1e-5, rtol=1e-5)
    for w, t in zip(layer.cell.weights, tw):
        np.testing.assert_allclose(w.grad, t.grad.numpy(), atol=1e-5, rtol=1e-5)


# -- the fused ops compute the unfolded graph --------------------------------------------------
FUSED_CASES = [
    ("SimpleRNN", {}), ("SimpleRNN", {"activation": "relu"}), ("LSTM", {}),
    ("LSTM", {"recurrent_activation": "linear"}), ("GRU", {}), ("GRU", {"reset_after": False}),
]


@pytest.mark.parametrize("options", [
    {}, {"go_backwards": True}, {"mask": True}, {"mask": True, "go_backwards": True},
    {"mask": True, "state": True}, {"mask": True, "zero_output_for_mask": True},
    {"return_sequences": False, "mask": True, "state": True},
], ids=str)
@pytest.mark.parametrize("kind,kwargs", FUSED_CASES, ids=str)
def test_fused_op_equals_the_unfolded_cells(kind, kwargs, options):
    fl.set_default_dtype("float64")
    try:
        options = dict(options)
        mask = MASK if options.pop("mask", False) else None
        state = options.pop("state", False)
        rs = options.pop("return_sequences", True)
        cls = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}[kind]
        layer = cls(H, return_sequences=rs, return_state=True, **kwargs, **options)
        layer.build((None, T, D))
        _randomize(layer)
        unfolded = RNN(layer.cell, return_sequences=rs, return_state=True, **options)
        init = ([fl.tensor(_x("float64", 9, (B, H))) for _ in layer.state_size]
                if state else None)
        results = []
        for model in (layer, unfolded):
            x = fl.tensor(_x("float64"), requires_grad=True)
            for w in layer.weights:
                w.grad = None
            outs = model(x, mask=mask, initial_state=init)
            sum((o * np.cos(np.arange(o.size)).reshape(o.shape)).sum() for o in outs).backward()
            results.append([o.numpy() for o in outs] + [x.grad] + [w.grad for w in layer.weights])
        for a, b in zip(*results):
            np.testing.assert_allclose(a, b, atol=1e-12, rtol=1e-10)
    finally:
        fl.set_default_dtype("float32")


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_dropout_in_the_fused_op_drops_what_the_cells_drop(kind):
    cls = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}[kind]
    layer = cls(H, dropout=0.4, recurrent_dropout=0.3, return_sequences=True)
    layer.build((None, T, D))
    _randomize(layer)
    unfolded = RNN(layer.cell, return_sequences=True)
    outs = []
    for model in (layer, unfolded):
        fl.manual_seed(5)
        outs.append(model(fl.tensor(_x()), training=True).numpy())
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-6)


def test_dropout_only_acts_in_training():
    layer = LSTM(H, dropout=0.5, recurrent_dropout=0.5)
    x = fl.tensor(_x())
    a, b = layer(x).numpy(), layer(x).numpy()
    np.testing.assert_array_equal(a, b)
    fl.manual_seed(0)
    c = layer(x, training=True).numpy()
    assert not np.allclose(a, c)


def test_a_subclassed_cell_with_new_math_is_unfolded():
    class ScaledLSTMCell(LSTMCell):
        def call(self, inputs, states, training=False):
            h, new = super().call(inputs, states, training)
            return h * 2, new

    layer = RNN(ScaledLSTMCell(H))
    plain = RNN(LSTMCell(H))
    x = fl.tensor(_x())
    plain(x)
    layer(x)
    layer.set_weights(plain.get_weights())
    np.testing.assert_allclose(layer(x).numpy(), 2 * plain(x).numpy(), rtol=1e-6)


# -- cells by hand: the unfolding made visible -------------------------------------------------
def test_a_hand_written_loop_over_the_cell_equals_the_layer():
    layer = LSTM(H, return_sequences=True)
    x = _x()
    y = layer(fl.tensor(x)).numpy()
    cell = layer.cell
    states = cell.get_initial_state(B)
    for t in range(T):
        h, states = cell(fl.tensor(x[:, t]), states)
        np.testing.assert_allclose(h.numpy(), y[:, t], atol=1e-6)


def test_lstm_weights_live_in_one_block_through_training_and_set_weights():
    """An LSTM layer's recurrent kernel, kernel and bias are views of one [U; W; b; 0] block
    (the compiled loops read it in place); optimizer updates and set_weights keep them
    there, and the layer still trains (its loss falls)."""
    from fundl.ops import recurrent as rnn_ops

    model = Sequential([LSTM(8, input_shape=(6, 3)), Dense(2)])
    model.compile(loss="mse", optimizer="adam")
    cell = model.layers[0].cell

    def in_block():
        return rnn_ops._shared_block(cell.kernel.data, cell.recurrent_kernel.data,
                                     cell.bias.data, cell.kernel.dtype, 32) is not None

    assert in_block()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 6, 3)).astype(np.float32)
    y = rng.standard_normal((16, 2)).astype(np.float32)
    losses = [float(model.train_on_batch(x, y)) for _ in range(30)]
    assert losses[-1] < losses[0] and in_block()
    weights = [w * 0.5 for w in model.get_weights()]
    model.set_weights(weights)
    assert in_block()
    for got, want in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("cell_cls", [SimpleRNNCell, LSTMCell, GRUCell])
def test_cells_return_output_and_new_states(cell_cls):
    cell = cell_cls(H)
    states = cell.get_initial_state(B)
    out, new = cell(fl.tensor(_x()[:, 0]), states)
    assert out.shape == (B, H) and len(new) == len(states)
    assert all(s.shape == (B, H) for s in new)


def test_cell_called_without_states_says_how():
    assert_error(TypeError, LSTMCell(2), fl.zeros(2, 3), contains=["cell(inputs, states)",
                                                                    "get_initial_state"])


def test_user_written_cell_runs_in_rnn_and_learns():
    class MinimalRNNCell(fl.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.state_size = units

        def build(self, input_shape):
            self.kernel = self.add_weight("kernel", (input_shape[-1], self.units))
            self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, self.units),
                                                    "orthogonal")

        def call(self, inputs, states, training=False):
            h = fl.tanh(inputs @ self.kernel + states[0] @ self.recurrent_kernel)
            return h, [h]

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    fl.manual_seed(0)
    model = Sequential([RNN(MinimalRNNCell(8), input_shape=(T, D)), Dense(1)])
    model.compile(optimizer=fl.optimizers.Adam(0.01), loss="mse")
    x = _x()
    y = x.sum(axis=(1, 2))[:, None] / 10
    first = model.train_on_batch(x, y)
    for _ in range(30):
        last = model.train_on_batch(x, y)
    assert last < first / 2


# -- shapes, states, masks --------------------------------------------------------------------
def test_return_state_gives_final_states_of_the_sequence():
    layer = LSTM(H, return_sequences=True, return_state=True)
    y, h, c = layer(fl.tensor(_x()))
    np.testing.assert_array_equal(y.numpy()[:, -1], h.numpy())
    assert c.shape == (B, H)


def test_initial_state_in_the_functional_api_via_an_input_list():
    x_in, h_in, c_in = Input(shape=(T, D)), Input(shape=(H,)), Input(shape=(H,))
    layer = LSTM(H)
    model = Model([x_in, h_in, c_in], layer([x_in, h_in, c_in]))
    x, h0, c0 = _x(), _x(seed=1, shape=(B, H)), _x(seed=2, shape=(B, H))
    want = layer(fl.tensor(x), initial_state=[fl.tensor(h0), fl.tensor(c0)]).numpy()
    np.testing.assert_allclose(model.predict([x, h0, c0]), want, rtol=1e-6)


def test_padded_steps_change_nothing():
    layer = GRU(H, return_sequences=False)
    x = _x()
    padded = x.copy()
    padded[~MASK] = 99.0  # garbage in the padding
    y_masked = layer(fl.tensor(padded), mask=MASK).numpy()
    for i, n in enumerate(LENGTHS):
        alone = layer(fl.tensor(x[i:i + 1, :n])).numpy()
        np.testing.assert_allclose(y_masked[i:i + 1], alone, atol=1e-6)


def test_mask_attached_to_the_input_is_used_and_passed_on():
    layer = LSTM(H, return_sequences=True)
    x = fl.tensor(_x())
    y_explicit = layer(x, mask=MASK)
    y_attached = layer(attach_mask(fl.tensor(_x()), MASK))
    np.testing.assert_array_equal(y_explicit.numpy(), y_attached.numpy())
    np.testing.assert_array_equal(get_mask(y_attached), MASK)
    assert get_mask(LSTM(H)(attach_mask(fl.tensor(_x()), MASK))) is None  # last step only


def test_masked_steps_repeat_the_previous_output_or_give_zeros():
    x = fl.tensor(_x())
    carried = SimpleRNN(H, return_sequences=True)
    y = carried(x, mask=MASK).numpy()
    np.testing.assert_array_equal(y[1, 4:], np.repeat(y[1, 3:4], 2, axis=0))
    zeroed = SimpleRNN(H, return_sequences=True, zero_output_for_mask=True)
    zeroed.build((None, T, D))
    zeroed.set_weights(carried.get_weights())
    z = zeroed(x, mask=MASK).numpy()
    assert np.all(z[~MASK] == 0)
    np.testing.assert_array_equal(z[MASK], y[MASK])


def test_go_backwards_reads_the_sequence_from_the_end():
    fwd = LSTM(H, return_sequences=True)
    x = _x()
    y = fwd(fl.tensor(x[:, ::-1].copy())).numpy()
    bwd = LSTM(H, return_sequences=True, go_backwards=True)
    bwd.build((None, T, D))
    bwd.set_weights(fwd.get_weights())
    np.testing.assert_allclose(bwd(fl.tensor(x)).numpy(), y, atol=1e-6)


@pytest.mark.parametrize("merge_mode", ["sum", "mul", "ave", None])
def test_bidirectional_merge_modes_combine_the_two_halves(merge_mode):
    layer = Bidirectional(GRU(H, return_sequences=True), merge_mode=merge_mode)
    x = fl.tensor(_x())
    out = layer(x)
    f = layer.forward_layer(x).numpy()
    b = layer.backward_layer(x).numpy()[:, ::-1]
    expected = {"sum": f + b, "mul": f * b, "ave": (f + b) / 2, None: None}[merge_mode]
    if merge_mode is None:
        np.testing.assert_allclose(out[0].numpy(), f, rtol=1e-6)
        np.testing.assert_allclose(out[1].numpy(), b, rtol=1e-6)
    else:
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)


def test_bidirectional_weights_are_forward_then_backward_in_keras_order():
    layer = Bidirectional(LSTM(H), input_shape=(T, D))
    model = Sequential([layer])
    assert [w.shape for w in model.get_weights()] == [(D, 4 * H), (H, 4 * H), (4 * H,)] * 2
    assert layer.forward_layer.name == "forward_lstm"
    assert layer.backward_layer.name == "backward_lstm"
    assert layer.backward_layer.go_backwards and not layer.forward_layer.go_backwards


def test_time_distributed_applies_the_layer_at_every_step_and_keeps_the_mask():
    dense = Dense(2)
    layer = TimeDistributed(dense)
    x = _x()
    y = layer(attach_mask(fl.tensor(x), MASK))
    for t in range(T):
        np.testing.assert_allclose(y.numpy()[:, t], dense(fl.tensor(x[:, t])).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(get_mask(y), MASK)


# -- Keras layout, config, saving -----------------------------------------------------------------
def test_weights_have_the_keras_names_order_and_shapes():
    layer = GRU(H, input_shape=(T, D))
    Sequential([layer])
    assert [w.name for w in layer.weights] == ["kernel", "recurrent_kernel", "bias"]
    assert [w.shape for w in layer.weights] == [(D, 3 * H), (H, 3 * H), (2, 3 * H)]


def test_lstm_forget_gate_bias_starts_at_one():
    layer = LSTM(H)
    layer.build((None, T, D))
    np.testing.assert_array_equal(layer.cell.bias.numpy(), np.r_[np.zeros(H), np.ones(H),
                                                                 np.zeros(2 * H)])
    plain = LSTM(H, unit_forget_bias=False)
    plain.build((None, T, D))
    assert not plain.cell.bias.numpy().any()


def test_recurrent_kernel_is_orthogonal_by_default():
    layer = SimpleRNN(8)
    layer.build((None, T, D))
    u = layer.cell.recurrent_kernel.numpy()
    np.testing.assert_allclose(u.T @ u, np.eye(8), atol=1e-5)


def test_config_keys_are_the_constructor_arguments():
    layer = LSTM(7, dropout=0.1, go_backwards=True, kernel_regularizer="l2", name="enc")
    config = layer.get_config()
    clone = LSTM.from_config(config)
    assert clone.get_config() == config
    assert clone.units == 7 and clone.go_backwards and clone.name == "enc"
    assert "cell" not in config and config["recurrent_activation"] == "sigmoid"


def test_sequential_with_recurrent_layers_saves_and_loads(tmp_path):
    fl.manual_seed(0)
    model = Sequential([Bidirectional(GRU(4, return_sequences=True), input_shape=(T, D)),
                        LSTM(3, return_sequences=True), TimeDistributed(Dense(2)),
                        SimpleRNN(2)])
    model.compile(optimizer="adam", loss="mse")
    x = _x()
    path = str(tmp_path / "rnn.fundl")
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


# -- errors --------------------------------------------------------------------------------------
def test_wrong_input_rank_is_a_clear_error():
    assert_error(ValueError, LSTM(2), fl.zeros(4, 5),
                 contains=["LSTM 'lstm'", "(batch, timesteps, features)", "(4, 5)"])


def test_wrong_feature_size_after_build_is_a_clear_error():
    layer = GRU(2)
    layer(fl.zeros(1, 3, 4))
    assert_error(ValueError, layer, fl.zeros(1, 3, 5),
                 contains=["GRU 'gru'", "4 features", "(1, 3, 5)"])


def test_wrong_rank_fails_when_the_model_is_defined():
    assert_error(ValueError, Sequential, [Dense(4, input_shape=(3,)), LSTM(2)],
                 contains=["LSTM", "(batch, timesteps, features)"])


def test_integer_inputs_point_to_embedding():
    assert_error(TypeError, SimpleRNN(2), fl.tensor(np.zeros((2, 3, 4), np.int64)),
                 contains=["Embedding"])


def test_initial_state_of_wrong_shape_is_a_clear_error():
    assert_error(ValueError, LSTM(2), fl.zeros(3, 4, 5), initial_state=[fl.zeros(3, 2)],
                 contains=["2 initial state", "(3, 2)"])


def test_mask_of_wrong_shape_is_a_clear_error():
    assert_error(ValueError, LSTM(2), fl.zeros(3, 4, 5), mask=np.ones((3, 5), bool),
                 contains=["mask", "(3, 4)", "(3, 5)"])


@pytest.mark.parametrize("kwargs,words", [
    ({"units": 0}, ["units", "positive"]),
    ({"units": 2, "dropout": 1.0}, ["dropout", "[0, 1)"]),
    ({"units": 2, "recurrent_dropout": -0.1}, ["recurrent_dropout"]),
])
def test_bad_hyper_parameters_are_rejected(kwargs, words):
    assert_error(ValueError, LSTM, **kwargs, contains=["LSTM:"] + words)


def test_bidirectional_needs_a_recurrent_layer_and_a_known_merge_mode():
    assert_error(TypeError, Bidirectional, Dense(2), contains=["recurrent layer", "Dense"])
    assert_error(ValueError, Bidirectional, LSTM(2), merge_mode="max", contains=["merge_mode",
                                                                                  "'max'"])


def test_bidirectional_halves_must_differ_in_direction():
    assert_error(ValueError, Bidirectional, LSTM(2), backward_layer=LSTM(2),
                 contains=["go_backwards"])
