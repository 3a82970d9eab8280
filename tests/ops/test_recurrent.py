"""The fused sequence ops simple_rnn, lstm, gru: NumPy step references, gradcheck, PyTorch, errors.

Sizes are tiny so that the finite-difference checks (two forward passes per input element)
stay fast; the layers' tests compare with PyTorch at realistic settings.
"""
import numpy as np
import pytest

import fundl as fl
from fundl import runtime
from fundl.kernels import recurrent as kernels
from fundl.ops.recurrent import gru, lstm, simple_rnn
from fundl.testing import assert_error, gradcheck

B, T, D, H = 2, 3, 2, 2


def sig(v):
    return 1 / (1 + np.exp(-v))


# -- plain NumPy references, one step at a time (Keras' formulas) ----------------------------------
def ref_simple(x, w, u, b, h, mask=None, backwards=False):
    outs = []
    steps = range(x.shape[1] - 1, -1, -1) if backwards else range(x.shape[1])
    for t in steps:
        new = np.tanh(x[:, t] @ w + b + h @ u)
        h = new if mask is None else np.where(mask[:, t:t + 1], new, h)
        outs.append(h)
    return np.stack(outs, 1), h


def ref_lstm(x, w, u, b, h, c, mask=None, backwards=False):
    n = u.shape[0]
    outs = []
    steps = range(x.shape[1] - 1, -1, -1) if backwards else range(x.shape[1])
    for t in steps:
        z = x[:, t] @ w + b + h @ u
        i, f = sig(z[:, :n]), sig(z[:, n:2 * n])
        g, o = np.tanh(z[:, 2 * n:3 * n]), sig(z[:, 3 * n:])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        if mask is not None:
            m = mask[:, t:t + 1]
            h_new, c_new = np.where(m, h_new, h), np.where(m, c_new, c)
        h, c = h_new, c_new
        outs.append(h)
    return np.stack(outs, 1), h, c


def ref_gru(x, w, u, b, h, reset_after=True):
    n = u.shape[0]
    outs = []
    for t in range(x.shape[1]):
        if reset_after:
            xz, hz = x[:, t] @ w + b[0], h @ u + b[1]
            z, r = sig(xz[:, :n] + hz[:, :n]), sig(xz[:, n:2 * n] + hz[:, n:2 * n])
            cand = np.tanh(xz[:, 2 * n:] + r * hz[:, 2 * n:])
        else:
            xz = x[:, t] @ w + b
            z = sig(xz[:, :n] + h @ u[:, :n])
            r = sig(xz[:, n:2 * n] + h @ u[:, n:2 * n])
            cand = np.tanh(xz[:, 2 * n:] + (r * h) @ u[:, 2 * n:])
        h = z * h + (1 - z) * cand
        outs.append(h)
    return np.stack(outs, 1), h


def arrays(gates, bias_shape, seed=0, batch=B, steps=T):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, steps, D))
    w = rng.standard_normal((D, gates * H)) * 0.7
    u = rng.standard_normal((H, gates * H)) * 0.7
    b = rng.standard_normal(bias_shape) * 0.5
    h = rng.standard_normal((batch, H)) * 0.5
    c = rng.standard_normal((batch, H)) * 0.5
    return x, w, u, b, h, c


MASK = np.array([[True, True, False], [True, False, False]])


# -- forward against the references --------------------------------------------------------------
@pytest.mark.parametrize("backwards", [False, True])
@pytest.mark.parametrize("mask", [None, MASK])
def test_simple_rnn_forward_matches_numpy_steps(mask, backwards):
    x, w, u, b, h, _ = arrays(1, (H,))
    y, hT = simple_rnn(fl.tensor(x), fl.tensor(w), fl.tensor(u), fl.tensor(b), fl.tensor(h),
                       mask=mask, go_backwards=backwards)
    ry, rh = ref_simple(x, w, u, b, h, mask, backwards)
    np.testing.assert_allclose(y.numpy(), ry, rtol=1e-12)
    np.testing.assert_allclose(hT.numpy(), rh, rtol=1e-12)


@pytest.mark.parametrize("backwards", [False, True])
@pytest.mark.parametrize("mask", [None, MASK])
def test_lstm_forward_matches_numpy_steps(mask, backwards):
    x, w, u, b, h, c = arrays(4, (4 * H,))
    y, hT, cT = lstm(fl.tensor(x), fl.tensor(w), fl.tensor(u), fl.tensor(b),
                     [fl.tensor(h), fl.tensor(c)], mask=mask, go_backwards=backwards)
    ry, rh, rc = ref_lstm(x, w, u, b, h, c, mask, backwards)
    np.testing.assert_allclose(y.numpy(), ry, rtol=1e-12)
    np.testing.assert_allclose(hT.numpy(), rh, rtol=1e-12)
    np.testing.assert_allclose(cT.numpy(), rc, rtol=1e-12)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_forward_matches_numpy_steps(reset_after):
    x, w, u, b, h, _ = arrays(3, (2, 3 * H) if reset_after else (3 * H,))
    y, hT = gru(fl.tensor(x), fl.tensor(w), fl.tensor(u), fl.tensor(b), fl.tensor(h),
                reset_after=reset_after)
    ry, rh = ref_gru(x, w, u, b, h, reset_after)
    np.testing.assert_allclose(y.numpy(), ry, rtol=1e-12)
    np.testing.assert_allclose(hT.numpy(), rh, rtol=1e-12)


def test_zero_initial_state_is_the_default():
    x, w, u, b, _, _ = arrays(4, (4 * H,))
    zeros = np.zeros((B, H))
    y1 = lstm(fl.tensor(x), fl.tensor(w), fl.tensor(u), fl.tensor(b))[0]
    y2 = lstm(fl.tensor(x), fl.tensor(w), fl.tensor(u), fl.tensor(b),
              [fl.tensor(zeros), fl.tensor(zeros)])[0]
    np.testing.assert_array_equal(y1.numpy(), y2.numpy())


def test_return_sequences_false_gives_the_last_state_first():
    x, w, u, b, h, _ = arrays(3, (2, 3 * H))
    out, hT = gru(fl.tensor(x), fl.tensor(w), fl.tensor(u), fl.tensor(b), return_sequences=False)
    assert out is hT and out.shape == (B, H)
    full = gru(fl.tensor(x), fl.tensor(w), fl.tensor(u), fl.tensor(b))[0]
    np.testing.assert_array_equal(out.numpy(), full.numpy()[:, -1])


def test_masked_steps_keep_the_state_and_pass_no_gradient_to_their_inputs():
    x, w, u, b, h, c = arrays(4, (4 * H,))
    xt = fl.tensor(x, requires_grad=True)
    y, hT, cT = lstm(xt, fl.tensor(w), fl.tensor(u), fl.tensor(b), mask=MASK)
    np.testing.assert_array_equal(y.numpy()[1, 1], y.numpy()[1, 0])  # carried over
    (hT.sum() + cT.sum()).backward()
    assert np.all(xt.grad[~MASK] == 0) and np.all(xt.grad[MASK] != 0)


# -- gradients: finite differences in float64 ----------------------------------------------------
OPTIONS = [
    {},
    {"mask": MASK},
    {"go_backwards": True, "mask": MASK},
    {"return_sequences": False},
    {"recurrent_dropout_mask": np.array([[2.0, 0.0], [0.0, 2.0]])},
]


def _check(fn, inputs):
    assert gradcheck(fn, [fl.tensor(a, requires_grad=True) for a in inputs])


@pytest.mark.parametrize("opts", OPTIONS, ids=str)
def test_simple_rnn_gradcheck(opts):
    x, w, u, b, h, _ = arrays(1, (H,))
    _check(lambda *a: simple_rnn(*a[:4], a[4], **opts), [x, w, u, b, h])


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "linear"])
def test_simple_rnn_gradcheck_other_activations(activation):
    x, w, u, b, h, _ = arrays(1, (H,), seed=3)
    _check(lambda *a: simple_rnn(*a, activation=activation), [x, w, u, b, h])


@pytest.mark.parametrize("opts", OPTIONS, ids=str)
def test_lstm_gradcheck(opts):
    x, w, u, b, h, c = arrays(4, (4 * H,))
    _check(lambda *a: lstm(*a[:4], list(a[4:]), **opts), [x, w, u, b, h, c])


def test_lstm_gradcheck_without_bias_or_state():
    x, w, u, _, _, _ = arrays(4, (4 * H,))
    _check(lambda *a: lstm(*a), [x, w, u])


def test_lstm_gradcheck_other_activations():
    x, w, u, b, h, c = arrays(4, (4 * H,), seed=2)
    _check(lambda *a: lstm(*a[:4], list(a[4:]), activation="linear",
                           recurrent_activation="sigmoid"), [x, w, u, b, h, c])


@pytest.mark.parametrize("opts", OPTIONS, ids=str)
@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_gradcheck(opts, reset_after):
    x, w, u, b, h, _ = arrays(3, (2, 3 * H) if reset_after else (3 * H,))
    _check(lambda *a: gru(*a[:4], a[4], reset_after=reset_after, **opts), [x, w, u, b, h])


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_gradcheck_without_bias_or_state(reset_after):
    x, w, u, _, _, _ = arrays(3, (3 * H,))
    _check(lambda *a: gru(*a, reset_after=reset_after), [x, w, u])


def test_one_step_sequence_gradcheck():
    x, w, u, b = arrays(4, (4 * H,), steps=1)[:4]
    _check(lambda *a: lstm(*a), [x, w, u, b])


# -- the compiled kernels change nothing but speed -----------------------------------------------
@pytest.mark.parametrize("fn,gates,bias", [(lstm, 4, (4 * H,)), (gru, 3, (2, 3 * H))])
def test_compiled_and_reference_paths_agree_in_float32(fn, gates, bias):
    pytest.importorskip("numba")
    x, w, u, b, h, _ = arrays(gates, bias, seed=5, batch=4, steps=5)
    results = []
    for compiled in (True, False):
        old = kernels.use_compiled(compiled)
        try:
            ts = [fl.tensor(a.astype(np.float32), requires_grad=True) for a in (x, w, u, b)]
            y = fn(*ts, mask=np.array([[1, 1, 1, 0, 0]] * 2 + [[1] * 5] * 2, bool))[0]
            (y * np.float32(0.5)).sum().backward()
        finally:
            kernels.use_compiled(old)
        results.append([y.numpy()] + [t.grad for t in ts])
    for a, b_ in zip(*results):
        np.testing.assert_allclose(a, b_, rtol=1e-5, atol=1e-6)


PART_OPTIONS = [
    {},
    {"state": True},
    {"state": True, "bias": False, "return_sequences": False},
    {"mask": True, "go_backwards": True},
    {"mask": True, "dropout": True, "state": True},
]


@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize("opts", PART_OPTIONS, ids=str)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_parallel_compiled_loops_match_the_python_loop(cell, parts, opts, monkeypatch):
    """The compiled LSTM/GRU loops over batch parts on threads (37 rows: parts of 12-19 rows)
    give the Python loop's outputs and gradients, for every input and option."""
    _compare_parts_with_python_loop(cell, parts, opts, monkeypatch)


@pytest.mark.parametrize("runner", ["python threads", "serial"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_compiled_loops_without_a_parallel_region(cell, runner, monkeypatch):
    """Where Numba's parallel regions are unsafe (no thread-safe threading layer, a forked
    child) the parts run on Python threads; with one thread, one after another: same results."""
    from fundl.kernels import _parallel

    _parallel.threads()  # set up first, then override
    if runner == "python threads":
        monkeypatch.setattr(runtime.state(), "regions_ok", False)
    else:
        monkeypatch.setattr(runtime.state(), "parallel", (1, [], None))
    _compare_parts_with_python_loop(cell, 3, PART_OPTIONS[-1], monkeypatch)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_recurrent_regions_back_off_while_they_stall(cell, monkeypatch):
    """While the recurrent loops' Backoff says no, the parts run one after the other on this
    thread (the compiled loop on one thread) and give the region's results bitwise; each
    region's time is reported to it, and a stall sends the next calls to one thread."""
    pytest.importorskip("numba")
    import fundl.ops.recurrent as rec
    from fundl.kernels import _parallel

    _parallel.threads()  # set up first, then override
    monkeypatch.setattr(runtime.state(), "parallel", (2, [], None))
    if not _parallel.regions():
        pytest.skip("no thread-safe Numba threading layer: no parallel regions here")
    if kernels.sweeps(cell, np.zeros(1, np.float32)) is None:
        pytest.skip("NumPy's BLAS GEMM is not reachable from compiled code here")
    monkeypatch.setattr(rec, "threads", lambda: 2)
    monkeypatch.setattr(rec._Sweep, "MIN_PART_ROWS", 8)
    calls = []  # the regions run on every thread (those on this thread alone not counted)
    region = _parallel.run_region
    monkeypatch.setattr(_parallel, "run_region", lambda loop, n, *args, threads=None, **kw:
                        (threads is None and calls.append(n)) or
                        region(loop, n, *args, threads=threads, **kw))
    n, g = 6, (4 if cell == "lstm" else 3)
    rng = np.random.default_rng(13)
    x = rng.standard_normal((19, 5, 4)).astype(np.float32)
    w, u = (rng.standard_normal(s).astype(np.float32) * 0.5 for s in ((4, g * n), (n, g * n)))
    b = rng.standard_normal((g * n,) if cell == "lstm" else (2, g * n)).astype(np.float32)
    fn = lstm if cell == "lstm" else gru

    def step():
        ts = [fl.tensor(a, requires_grad=True) for a in (x, w, u, b)]
        out = fn(*ts)
        (out[0] * out[0]).sum().backward()
        return [out[0].numpy()] + [t.grad for t in ts]

    step()  # the drivers compiled (or loaded) out of the back-off's sight
    backoff = _parallel.Backoff(rec._SERIAL_MACS_PER_SECOND, stall_seconds=1e3)  # no stalls
    monkeypatch.setattr(rec, "_BACKOFF", backoff)
    calls.clear()
    want = step()  # forward and backward regions (a driver's first timed region not counted)
    assert calls == [2, 2] and backoff.skip == 0
    backoff.stall_seconds = -1.0  # every region counts as a stall from now on
    got = step()  # the forward's region stalls: the backward runs serially
    assert calls == [2, 2, 2] and backoff.skip == 15
    again = step()  # both serially
    assert calls == [2, 2, 2] and backoff.skip == 13
    for a, b_, c in zip(want, got, again):
        np.testing.assert_array_equal(b_, a)
        np.testing.assert_array_equal(c, a)


def _compare_parts_with_python_loop(cell, parts, opts, monkeypatch):
    pytest.importorskip("numba")
    import fundl.ops.recurrent as rec

    if kernels.sweeps(cell, np.zeros(1, np.float32)) is None:
        pytest.skip("NumPy's BLAS GEMM is not reachable from compiled code here")
    monkeypatch.setattr(rec, "threads", lambda: parts)
    monkeypatch.setattr(rec._Sweep, "MIN_PART_ROWS", 12)
    n, batch, steps = 6, 37, 7
    g, n_states = (4, 2) if cell == "lstm" else (3, 1)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((batch, steps, 5)).astype(np.float32)
    w, u = (rng.standard_normal(s).astype(np.float32) * 0.5 for s in ((5, g * n), (n, g * n)))
    b = rng.standard_normal((g * n,) if cell == "lstm" else (2, g * n)).astype(np.float32)
    h0 = [rng.standard_normal((batch, n)).astype(np.float32) for _ in range(n_states)]
    kwargs = {"return_sequences": opts.get("return_sequences", True), "go_backwards":
              opts.get("go_backwards", False)}
    if opts.get("mask"):
        kwargs["mask"] = rng.random((batch, steps)) > 0.3
    if opts.get("dropout"):
        kwargs["recurrent_dropout_mask"] = (rng.random((batch, n)) > 0.5).astype(np.float32) * 2
    fn = lstm if cell == "lstm" else gru
    results = []
    for compiled in (True, False):
        old = kernels.use_compiled(compiled)
        try:
            inputs = [x, w, u] + ([b] if opts.get("bias", True) else [])
            ts = [fl.tensor(a, requires_grad=True) for a in inputs]
            states = [fl.tensor(a, requires_grad=True) for a in h0]
            out = fn(*ts[:3], ts[3] if len(ts) > 3 else None,
                     states if opts.get("state") else None, **kwargs)
            v = np.linspace(-1, 1, out[0].size, dtype=np.float32).reshape(out[0].shape)
            loss = (out[0] * v).sum() + (out[1] * out[1]).sum()
            if cell == "lstm":
                loss = loss + (out[2] * np.float32(0.3)).sum()
            loss.backward()
        finally:
            kernels.use_compiled(old)
        grads = [t.grad for t in ts] + ([t.grad for t in states] if opts.get("state") else [])
        results.append([o.numpy() for o in out] + grads)
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_transposed_or_other_dtype_weights_give_the_python_loops_results(cell):
    """Weights as F-ordered views (PyTorch's (4H, D) transposed) or in float64 next to
    float32 inputs: the compiled loops read weights as raw float32 rows, so they must get
    C-ordered copies or leave the work to the Python loop."""
    g = 4 if cell == "lstm" else 3
    fn = lstm if cell == "lstm" else gru
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 4, 3)).astype(np.float32)
    w_t = rng.standard_normal((g * 5, 3)).astype(np.float32)      # PyTorch's layout
    u = rng.standard_normal((5, g * 5)).astype(np.float32) * 0.5
    b = rng.standard_normal((g * 5,) if cell == "lstm" else (2, g * 5)).astype(np.float32)
    old = kernels.use_compiled(False)
    try:
        want = fn(x, w_t.T.copy(), u, b)[1].numpy()
    finally:
        kernels.use_compiled(old)
    for args in ((x, w_t.T, u, b), (x, w_t.T.copy(), u.astype(np.float64), b),
                 (x, w_t.T.astype(np.float64), u, b.astype(np.float64))):
        np.testing.assert_allclose(fn(*args)[1].numpy(), want, rtol=1e-5, atol=1e-5)


def test_lstm_inference_runs_the_compiled_loops_on_one_gate_buffer():
    pytest.importorskip("numba")
    x, w, u, b, h, c = (a.astype(np.float32) for a in arrays(4, (4 * H,), batch=40, steps=6))
    with fl.no_grad():
        y, hT, cT = lstm(x, w, u, b, [h, c])
    want = ref_lstm(x.astype(np.float64), w, u, b, h, c)
    for got, ref in zip((y, hT, cT), want):
        np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("features,bias", [(15, True), (16, False), (16, True), (40, True)],
                         ids=["width-32", "width-32-no-bias", "width-33", "width-57"])
def test_lstm_compiled_product_width_padding(features, bias):
    """The compiled LSTM's one product per step, [h, x, 1] @ [U; W; b], pads its inner
    dimension H + D [+1] with zeros to a multiple of LSTMSequence.ALIGN (none when it is one
    already): outputs and every gradient match the float64 Python loop."""
    pytest.importorskip("numba")
    import fundl.ops.recurrent as rec

    n, batch, steps = 16, 36, 5
    x32 = np.float32
    if kernels.sweep_plan("lstm", np.zeros((batch, steps, features), x32), ()).compiled is False:
        pytest.skip("the compiled LSTM loops do not run here")
    assert rec.LSTMSequence.ALIGN == 32
    rng = np.random.default_rng(5)
    arrays64 = [rng.standard_normal((batch, steps, features)),
                rng.standard_normal((features, 4 * n)) * 0.3, rng.standard_normal((n, 4 * n)) * 0.3]
    if bias:
        arrays64.append(rng.standard_normal(4 * n) * 0.3)
    results = []
    for dtype, compiled in ((x32, True), (np.float64, False)):
        old = kernels.use_compiled(compiled)
        try:
            ts = [fl.tensor(a.astype(dtype), requires_grad=True) for a in arrays64]
            y, h_t, c_t = lstm(ts[0], ts[1], ts[2], ts[3] if bias else None)
            v = np.linspace(-1, 1, y.size).reshape(y.shape).astype(dtype)
            ((y * v).sum() + (c_t * c_t).sum()).backward()
        finally:
            kernels.use_compiled(old)
        results.append([y.numpy(), c_t.numpy()] + [np.asarray(t.grad) for t in ts])
    for got, want in zip(*results):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("training", [True, False])
def test_lstm_weights_in_one_block_are_read_in_place(bias, training):
    """Weights made views of one [U; W; b; 0] block (share_lstm_block, as the LSTM layer
    builds them) keep their values and are read in place (no stacked copy), with the same
    outputs and gradients as separate arrays; other arrays, or a weight whose array was
    replaced, are stacked again as before."""
    import fundl.ops.recurrent as rec

    n, d, batch, steps = 8, 5, 20, 4
    rng = np.random.default_rng(21)
    x = rng.standard_normal((batch, steps, d)).astype(np.float32)
    w, u = (rng.standard_normal(s).astype(np.float32) * 0.4 for s in ((d, 4 * n), (n, 4 * n)))
    b = rng.standard_normal(4 * n).astype(np.float32) if bias else None

    def run(kernel, recurrent, b_):
        ts = [fl.tensor(x), kernel, recurrent] + ([b_] if bias else [None])
        if not training:
            with fl.no_grad():
                return [o.numpy().copy() for o in lstm(*ts)]
        y, h_t, c_t = lstm(*ts)
        ((y * y).sum() + c_t.sum()).backward()
        return [y.numpy().copy(), c_t.numpy().copy()] + \
            [t.grad.copy() for t in ts[1:] if t is not None]

    plain = [fl.tensor(a, requires_grad=training) if a is not None else None for a in (w, u, b)]
    want = run(*plain)
    shared = [fl.tensor(a.copy(), requires_grad=training) if a is not None else None
              for a in (w, u, b)]
    block = rec.share_lstm_block(*shared)
    rows = -(-(n + d + bias) // rec.LSTM_ALIGN) * rec.LSTM_ALIGN
    assert block.shape == (rows, 4 * n) and block.ctypes.data % 64 == 0
    for t, a in zip(shared, (w, u, b)):
        if t is not None:
            np.testing.assert_array_equal(t.numpy(), a)
            assert np.shares_memory(t.data, block)
    stacked = rec._stacked(np, *(t.data if t is not None else None for t in shared),
                           np.float32, rec.LSTM_ALIGN)
    assert stacked.ctypes.data == block.ctypes.data and stacked.shape == block.shape
    for got, w_ in zip(run(*shared), want):
        np.testing.assert_allclose(got, w_, rtol=1e-5, atol=1e-5)
    used = n + d + bias  # the Python loops take the block without padding rows
    short = rec._stacked(np, *(t.data if t is not None else None for t in shared), np.float32)
    assert short.shape == (used, 4 * n) and short.ctypes.data == block.ctypes.data
    # other arrays of the same values, or of another dtype: stacked as before
    assert rec._shared_block(w, u, b, np.float32, rows) is None
    assert rec._shared_block(shared[0].data, shared[1].data, shared[2].data if bias else None,
                             np.float64, rows) is None
    shared[0].data = shared[0].data.copy()  # replaced: no longer the block's, stacked again
    assert rec._shared_block(shared[0].data, shared[1].data, shared[2].data if bias else None,
                             np.float32, rows) is None
    for t in shared:
        if t is not None:
            t.grad = None
    for got, w_ in zip(run(*shared), want):
        np.testing.assert_allclose(got, w_, rtol=1e-5, atol=1e-5)


def test_float32_gradients_have_input_shapes_and_dtypes():
    x, w, u, b, h, c = (a.astype(np.float32) for a in arrays(4, (4 * H,)))
    ts = [fl.tensor(a, requires_grad=True) for a in (x, w, u, b, h, c)]
    y, hT, cT = lstm(*ts[:4], ts[4:])
    (y.sum() + cT.sum()).backward()
    for t in ts:
        assert t.grad.shape == t.shape and t.grad.dtype == np.float32


def test_lstm_matches_torch():
    torch = pytest.importorskip("torch")
    x, w, u, b, h, c = arrays(4, (4 * H,), seed=7)
    ts = [fl.tensor(a, requires_grad=True) for a in (x, w, u, b, h, c)]
    y, hT, cT = lstm(*ts[:4], ts[4:])
    m = torch.nn.LSTM(D, H, batch_first=True).double()
    with torch.no_grad():
        m.weight_ih_l0.copy_(torch.tensor(w.T))
        m.weight_hh_l0.copy_(torch.tensor(u.T))
        m.bias_ih_l0.copy_(torch.tensor(b))
        m.bias_hh_l0.zero_()
    tx, th, tc = (torch.tensor(a, requires_grad=True) for a in (x, h[None], c[None]))
    ty, (thT, tcT) = m(tx, (th, tc))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), atol=1e-12)
    v = np.random.default_rng(0).standard_normal(y.shape)
    (y * v).sum().backward()
    (ty * torch.tensor(v)).sum().backward()
    np.testing.assert_allclose(ts[0].grad, tx.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(ts[1].grad, m.weight_ih_l0.grad.numpy().T, atol=1e-12)
    np.testing.assert_allclose(ts[2].grad, m.weight_hh_l0.grad.numpy().T, atol=1e-12)
    np.testing.assert_allclose(ts[4].grad, th.grad.numpy()[0], atol=1e-12)
    np.testing.assert_allclose(ts[5].grad, tc.grad.numpy()[0], atol=1e-12)


# -- errors --------------------------------------------------------------------------------------
def test_rank_two_input_is_rejected_with_its_shape():
    _, w, u, b, _, _ = arrays(4, (4 * H,))
    assert_error(ValueError, lstm, fl.zeros(2, 3), fl.tensor(w), fl.tensor(u),
                 contains=["LSTMSequence", "(batch, timesteps, features)", "(2, 3)"])


def test_kernel_of_wrong_feature_size_names_both_shapes():
    _, w, u, _, _, _ = arrays(3, (3 * H,))
    assert_error(ValueError, gru, fl.zeros(2, 3, D + 1), fl.tensor(w), fl.tensor(u),
                 contains=["GRUSequence", str(w.shape), "(2, 3, 3)"])


def test_recurrent_kernel_must_hold_all_gates():
    x, w, _, _, _, _ = arrays(4, (4 * H,))
    assert_error(ValueError, lstm, fl.tensor(x), fl.tensor(w), fl.zeros(H, 3 * H),
                 contains=["recurrent_kernel", "(units, 4 * units)", str((H, 3 * H))])


def test_gru_bias_shape_depends_on_reset_after():
    x, w, u, _, _, _ = arrays(3, (3 * H,))
    assert_error(ValueError, gru, fl.tensor(x), fl.tensor(w), fl.tensor(u), fl.zeros(3 * H),
                 contains=["bias", str((2, 3 * H))])


def test_mask_of_wrong_shape_is_rejected():
    x, w, u, b, _, _ = arrays(1, (H,))
    assert_error(ValueError, simple_rnn, fl.tensor(x), fl.tensor(w), fl.tensor(u), fl.tensor(b),
                 mask=np.ones((B, T + 1), bool), contains=["mask", str((B, T)), str((B, T + 1))])


def test_initial_state_count_and_shape_are_checked():
    x, w, u, b, h, _ = arrays(4, (4 * H,))
    assert_error(ValueError, lstm, fl.tensor(x), fl.tensor(w), fl.tensor(u), fl.tensor(b),
                 [fl.tensor(h)], contains=["2 initial state", "got 1"])
    assert_error(ValueError, lstm, fl.tensor(x), fl.tensor(w), fl.tensor(u), fl.tensor(b),
                 [fl.zeros(B, H + 1), fl.zeros(B, H + 1)], contains=["initial states",
                                                                     str((B, H + 1))])


def test_unknown_activation_is_rejected():
    x, w, u, b, _, _ = arrays(1, (H,))
    assert_error(ValueError, simple_rnn, fl.tensor(x), fl.tensor(w), fl.tensor(u), fl.tensor(b),
                 activation="elu", contains=["'elu'", "tanh"])


def test_integer_inputs_are_rejected():
    _, w, u, _, _, _ = arrays(1, (H,))
    assert_error(TypeError, simple_rnn, fl.tensor(np.zeros((B, T, D), np.int64)), fl.tensor(w),
                 fl.tensor(u), contains=["floating point", "int64"])


# -- recycled buffers (the op's workspace) never change a result ----------------------------------
def test_outputs_kept_from_one_call_survive_the_next_calls():
    x, w, u, b, h, c = (a.astype(np.float32) for a in arrays(4, (4 * H,), batch=3, steps=4))
    y1, h1, c1 = lstm(fl.tensor(x), fl.tensor(w), fl.tensor(u), fl.tensor(b))
    kept = [y1.numpy().copy(), h1.numpy().copy(), c1.numpy().copy()]
    for seed in range(3):  # same shapes, other values: would reuse the buffers if they were free
        lstm(fl.tensor(np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32)),
             fl.tensor(w), fl.tensor(u), fl.tensor(b))
    for a, k in zip((y1, h1, c1), kept):
        np.testing.assert_array_equal(a.numpy(), k)


def test_a_retained_graph_still_backpropagates_after_other_calls():
    x, w, u, b, h, c = (a.astype(np.float32) for a in arrays(4, (4 * H,), batch=3, steps=4))
    wt = fl.tensor(w, requires_grad=True)
    y = lstm(fl.tensor(x), wt, fl.tensor(u), fl.tensor(b))[0]
    y.sum().backward(retain_graph=True)
    first = wt.grad.copy()
    wt.grad = None
    z = lstm(fl.tensor(x[::-1].copy()), wt, fl.tensor(u), fl.tensor(b))[0]
    z.sum().backward()
    wt.grad = None
    y.sum().backward()
    np.testing.assert_array_equal(wt.grad, first)


def test_training_steps_recycle_the_same_buffers():
    from fundl import runtime

    _workspace = runtime.state().workspace

    x, w, u, b, h, c = (a.astype(np.float32) for a in arrays(4, (4 * H,), batch=5, steps=7))
    wt = fl.tensor(w, requires_grad=True)

    def step():
        y = lstm(fl.tensor(x), wt, fl.tensor(u), fl.tensor(b), return_sequences=False)[0]
        y.sum().backward()
        return y.numpy().copy()

    first = step()
    pooled = [id(a) for a in _workspace.arrays]
    assert any(a.shape[:2] == (7, 5) for a in _workspace.arrays)  # this op's buffers are pooled
    for _ in range(3):
        np.testing.assert_array_equal(step(), first)
    assert [id(a) for a in _workspace.arrays] == pooled


@pytest.mark.parametrize("fn,gates,bias", [(lstm, 4, (4 * H,)), (gru, 3, (2, 3 * H))])
def test_inference_without_a_graph_gives_the_same_outputs(fn, gates, bias):
    x, w, u, b, h, _ = (a.astype(np.float32) for a in arrays(gates, bias, batch=3, steps=5))
    ts = [fl.tensor(a, requires_grad=True) for a in (x, w, u, b)]
    recorded = [o.numpy() for o in fn(*ts, mask=np.array([[1, 1, 1, 0, 0]] * 3, bool))]
    with fl.no_grad():
        plain = [o.numpy() for o in fn(*ts, mask=np.array([[1, 1, 1, 0, 0]] * 3, bool))]
    for a, b_ in zip(recorded, plain):
        np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("state,backwards,sequences", [
    (False, False, False), (True, True, True), (True, False, False), (False, True, True)])
def test_lstm_lean_inference_path_matches_the_recorded_op_and_numpy(state, backwards, sequences,
                                                                    monkeypatch):
    """Without a graph (and without a mask or recurrent dropout) the LSTM runs its inference
    loop (LSTMSequence._infer) where OpenBLAS's AVX-512 small kernels exist: same outputs as
    the recorded op, and as the float64 NumPy steps."""
    pytest.importorskip("numba")
    import fundl.ops.recurrent as rec
    from fundl.kernels.convolution import small_gemms

    n, batch, steps, features = 16, 37, 6, 5
    x, w, u, b = (np.random.default_rng(9).standard_normal(s) * 0.5
                  for s in ((batch, steps, features), (features, 4 * n), (n, 4 * n), (4 * n,)))
    h, c = np.random.default_rng(10).standard_normal((2, batch, n)) * 0.5
    init = [h.astype(np.float32), c.astype(np.float32)] if state else None
    a32 = [a.astype(np.float32) for a in (x, w, u, b)]
    if not kernels.sweep_plan("lstm", a32[0], a32[1:]).compiled or \
            not small_gemms(np.float32)[2]:
        pytest.skip("the inference loop does not run here")
    runs = []
    real = rec.LSTMSequence._infer
    monkeypatch.setattr(rec.LSTMSequence, "_infer",
                        lambda self, *a: runs.append(1) or real(self, *a))
    with fl.no_grad():
        lean = [o.numpy() for o in lstm(*a32, init, go_backwards=backwards,
                                        return_sequences=sequences)]
    assert runs == [1]
    ts = [fl.tensor(a, requires_grad=True) for a in a32]
    recorded = [o.numpy() for o in lstm(*ts, init, go_backwards=backwards,
                                        return_sequences=sequences)]
    assert runs == [1]
    for got, want in zip(lean, recorded):
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    y, h_t, c_t = ref_lstm(x, w, u, b, h if state else np.zeros((batch, n)),
                           c if state else np.zeros((batch, n)), backwards=backwards)
    want = [y, h_t, c_t] if sequences else [h_t, h_t, c_t]
    for got, ref in zip(lean, want):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_lstm_lean_inference_matches_torch_in_float32():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    n, batch, steps, features = 24, 40, 7, 9
    x = rng.standard_normal((batch, steps, features)).astype(np.float32)
    w = (rng.standard_normal((features, 4 * n)) * 0.4).astype(np.float32)
    u = (rng.standard_normal((n, 4 * n)) * 0.4).astype(np.float32)
    b = (rng.standard_normal(4 * n) * 0.4).astype(np.float32)
    with fl.no_grad():
        y, h_t, c_t = lstm(x, w, u, b)
    m = torch.nn.LSTM(features, n, batch_first=True)
    with torch.no_grad():
        m.weight_ih_l0.copy_(torch.tensor(w.T))
        m.weight_hh_l0.copy_(torch.tensor(u.T))
        m.bias_ih_l0.copy_(torch.tensor(b))
        m.bias_hh_l0.zero_()
        ty, (th, tc) = m(torch.tensor(x))
    np.testing.assert_allclose(y.numpy(), ty.numpy(), rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(h_t.numpy(), th.numpy()[0], rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(c_t.numpy(), tc.numpy()[0], rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("runner", ["region", "python threads", "serial"])
def test_lstm_lean_inference_on_every_runner(runner, monkeypatch):
    """The inference loop over 3 batch parts (37 rows) in a parallel region, on Python threads
    (regions unsafe) or one after another (one thread): the Python loop's outputs."""
    pytest.importorskip("numba")
    import fundl.ops.recurrent as rec
    from fundl.kernels import _parallel

    if kernels.sweeps("lstm", np.zeros(1, np.float32)) is None:
        pytest.skip("NumPy's BLAS GEMM is not reachable from compiled code here")
    _parallel.threads()  # set up first, then override
    if runner == "python threads":
        monkeypatch.setattr(runtime.state(), "regions_ok", False)
    elif runner == "serial":
        monkeypatch.setattr(runtime.state(), "parallel", (1, [], None))
    monkeypatch.setattr(rec, "threads", lambda: 3)
    monkeypatch.setattr(rec._Sweep, "MIN_PART_ROWS", 12)
    rng = np.random.default_rng(12)
    n, batch, steps, features = 6, 37, 7, 5
    x = rng.standard_normal((batch, steps, features)).astype(np.float32)
    w, u = (rng.standard_normal(s).astype(np.float32) * 0.5
            for s in ((features, 4 * n), (n, 4 * n)))
    b = rng.standard_normal(4 * n).astype(np.float32)
    h0 = [rng.standard_normal((batch, n)).astype(np.float32) for _ in range(2)]
    results = []
    for compiled in (True, False):
        old = kernels.use_compiled(compiled)
        try:
            with fl.no_grad():
                results.append([o.numpy() for o in lstm(x, w, u, b, h0, go_backwards=True)])
        finally:
            kernels.use_compiled(old)
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


def test_lstm_lean_inference_casts_float64_initial_states():
    """float64 initial states beside float32 inputs and weights: float32 outputs, equal to
    the recorded op's with the states cast."""
    rng = np.random.default_rng(13)
    x = rng.standard_normal((40, 5, 3)).astype(np.float32)
    w, u = (rng.standard_normal(s).astype(np.float32) for s in ((3, 16), (4, 16)))
    h0, c0 = rng.standard_normal((2, 40, 4))
    with fl.no_grad():
        lean = lstm(x, w, u, None, [h0, c0])
    recorded = lstm(fl.tensor(x, requires_grad=True), w, u, None,
                    [h0.astype(np.float32), c0.astype(np.float32)])
    for a, b_ in zip(lean, recorded):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a.numpy(), b_.numpy(), rtol=1e-6, atol=1e-6)
