"""Graph mode (fl.function): traced plans give eager mode's numbers, replay fresh random draws,
see updated weights, retrace on new signatures and fall back to eager with one warning."""
import warnings

import numpy as np
import pytest

import fundl as fl
from fundl import graph_mode
from fundl.testing import gradcheck


def _tensor(rng, shape, dtype="float64", requires_grad=False):
    return fl.Tensor(rng.standard_normal(shape).astype(dtype), requires_grad=requires_grad)


def _quiet(fn, *args):
    """Call ``fn`` and fail the test on any warning (graph mode must not fall back)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args)


def _chain(w, b):
    def f(x, y):
        h = fl.functional.tanh(x @ w + b)
        return ((h * y - 0.5 * h.exp()) ** 2).mean() + fl.functional.sigmoid(h).sum()
    return f


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 1e-6)])
def test_forward_and_gradients_equal_eager(dtype, tol):
    rng = np.random.default_rng(0)
    w, b = _tensor(rng, (4, 3), dtype, True), _tensor(rng, (3,), dtype, True)
    eager = _chain(w, b)
    traced = fl.function(eager)
    for step in range(4):  # trace, verify, then two pure replays
        x = _tensor(rng, (5, 4), dtype, True)
        y = _tensor(rng, (5, 3), dtype)
        got = _quiet(traced, x, y)
        got.backward()
        g = [w.grad, b.grad, x.grad]
        w.grad = b.grad = x.grad = None
        want = eager(x, y)
        want.backward()
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=tol, atol=tol)
        for a, e in zip(g, [w.grad, b.grad, x.grad]):
            assert a.dtype == e.dtype and a.shape == e.shape
            np.testing.assert_allclose(a, e, rtol=tol, atol=tol)
        w.grad = b.grad = x.grad = None
    assert traced.trace_count == 1 and traced.plans == 1
    assert type(got.creator).__name__ == "_Replay"  # a replay, not an eager graph


def test_replay_gradcheck_float64():
    rng = np.random.default_rng(1)
    w = _tensor(rng, (3, 2), requires_grad=True)
    b = _tensor(rng, (2,), requires_grad=True)
    traced = fl.function(_chain(w, b))
    x, y = _tensor(rng, (4, 3), requires_grad=True), _tensor(rng, (4, 2))
    traced(x, y)
    traced(x, y)  # the plan is in use from here on
    assert gradcheck(lambda x_, w_, b_: fl.function(_chain(w_, b_))(x_, y), [x, w, b])
    assert gradcheck(lambda x_: traced(x_, y), [x])


def test_broadcast_gradients_summed_to_input_shape():
    rng = np.random.default_rng(2)
    b = _tensor(rng, (1, 3), requires_grad=True)
    traced = fl.function(lambda x: (x * b + b).sum())
    for _ in range(3):
        x = _tensor(rng, (4, 3), requires_grad=True)
        traced(x).backward()
        np.testing.assert_allclose(b.grad, x.numpy().sum(0, keepdims=True) + 4, rtol=1e-12)
        b.grad = None


def test_captured_weights_updated_between_calls_are_seen():
    rng = np.random.default_rng(3)
    w = _tensor(rng, (3, 3), requires_grad=True)
    traced = fl.function(lambda x: (x @ w).sum())
    x = _tensor(rng, (2, 3))
    for _ in range(4):
        got = traced(x)
        np.testing.assert_allclose(got.numpy(), (x.numpy() @ w.numpy()).sum(), rtol=1e-12)
        w.data -= 0.1            # in place, as optimizers do
    w.data = w.data * 2.0        # or a new array
    np.testing.assert_allclose(traced(x).numpy(), (x.numpy() @ w.numpy()).sum(), rtol=1e-12)


def test_retrace_on_new_shape_dtype_or_python_value():
    traced = fl.function(lambda x, k: x * k)
    rng = np.random.default_rng(4)
    traced(_tensor(rng, (2, 3)), 2.0)
    traced(_tensor(rng, (2, 3)), 2.0)
    assert traced.trace_count == 1
    out = traced(_tensor(rng, (5, 3)), 2.0)
    assert out.shape == (5, 3) and traced.trace_count == 2
    traced(_tensor(rng, (2, 3), "float32"), 2.0)
    assert traced.trace_count == 3
    x = _tensor(rng, (2, 3))
    np.testing.assert_allclose(traced(x, 3.0).numpy(), x.numpy() * 3)
    assert traced.trace_count == 4 and traced.plans == 4


def test_plan_cache_is_bounded():
    traced = graph_mode.GraphFunction(lambda x: x * 2, max_plans=3, warn=False)
    for n in range(1, 7):
        traced(fl.ones(n))
    assert traced.plans == 3


def test_grad_mode_is_part_of_the_signature_and_inference_replays():
    rng = np.random.default_rng(5)
    w = _tensor(rng, (3, 2), requires_grad=True)
    traced = fl.function(lambda x: fl.functional.relu(x @ w))
    x = _tensor(rng, (4, 3))
    with fl.no_grad():
        for _ in range(3):
            y = traced(x)
            assert not y.requires_grad
    np.testing.assert_allclose(y.numpy(), np.maximum(x.numpy() @ w.numpy(), 0), rtol=1e-12)
    y = traced(x)
    assert y.requires_grad and traced.trace_count == 2


def test_array_and_structured_arguments_and_outputs():
    rng = np.random.default_rng(6)
    w = _tensor(rng, (3,), requires_grad=True)

    def f(inputs, scale=1.0):
        a, b = inputs["a"], inputs["b"]
        return {"sum": (a * w).sum() * scale, "pair": (a + b, b * 2), "none": None}

    traced = fl.function(f)
    for _ in range(3):
        a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
        out = traced({"a": a, "b": b}, scale=2.0)
        assert out["none"] is None
        np.testing.assert_allclose(out["sum"].numpy(), 2 * (a * w.numpy()).sum(), rtol=1e-12)
        np.testing.assert_allclose(out["pair"][0].numpy(), a + b)
        np.testing.assert_allclose(out["pair"][1].numpy(), b * 2)
    assert traced.trace_count == 1


def test_same_tensor_passed_twice_gets_its_gradient_once():
    traced = fl.function(lambda a, b: (a * b).sum())
    x = fl.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    for _ in range(3):
        x.grad = None
        traced(x, x).backward()
        np.testing.assert_allclose(x.grad, [2.0, 4.0])


def test_two_calls_then_two_backwards():
    """A replay whose backward has not run keeps its own copies of the ops' saved arrays."""
    rng = np.random.default_rng(7)
    w = _tensor(rng, (3, 3), requires_grad=True)
    traced = fl.function(lambda x: (fl.functional.tanh(x @ w) ** 2).sum())
    traced(_tensor(rng, (2, 3)))
    traced(_tensor(rng, (2, 3)))
    x1, x2 = _tensor(rng, (2, 3)), _tensor(rng, (2, 3))
    l1, l2 = traced(x1), traced(x2)
    l2.backward()
    g2 = w.grad
    w.grad = None
    l1.backward()
    g1 = w.grad
    for x, g in ((x1, g1), (x2, g2)):
        w.grad = None
        (fl.functional.tanh(x @ w) ** 2).sum().backward()
        np.testing.assert_allclose(g, w.grad, rtol=1e-12)


def test_a_pending_replay_survives_later_calls_and_backwards():
    rng = np.random.default_rng(12)
    w = _tensor(rng, (3,), requires_grad=True)
    traced = fl.function(lambda x: (fl.functional.tanh(x * w) * x).sum())
    x = _tensor(rng, (3,))
    for _ in range(2):
        traced(x).backward()
    pending = traced(x)  # uses the recorded ops; its backward comes last
    for _ in range(3):
        traced(x)  # discarded
        w.grad = None
        traced(x).backward()
    want = w.grad.copy()
    w.grad = None
    pending.backward()
    np.testing.assert_allclose(w.grad, want, rtol=1e-12)


def test_retain_graph_and_gradient_tape():
    rng = np.random.default_rng(8)
    w = _tensor(rng, (3, 2), requires_grad=True)
    traced = fl.function(lambda x: (x @ w).exp().sum())
    x = _tensor(rng, (4, 3))
    traced(x)
    traced(x)
    loss = traced(x)
    loss.backward(retain_graph=True)
    first = w.grad.copy()
    loss.backward()
    np.testing.assert_allclose(w.grad, 2 * first, rtol=1e-12)
    with fl.GradientTape() as tape:
        loss = traced(x)
    (gw,) = tape.gradient(loss, [w])
    np.testing.assert_allclose(gw, first, rtol=1e-12)


def test_detach_inside_stops_the_gradient():
    rng = np.random.default_rng(9)
    w = _tensor(rng, (3,), requires_grad=True)
    traced = fl.function(lambda x: (x * w * (x * w).detach()).sum())
    x = _tensor(rng, (3,))
    for _ in range(3):
        w.grad = None
        traced(x).backward()
        np.testing.assert_allclose(w.grad, x.numpy() ** 2 * w.numpy(), rtol=1e-12)


def test_nested_function_and_method():
    inner = fl.function(lambda x: x * 3)

    class Scaler:
        def __init__(self):
            self.w = fl.Tensor(np.array([2.0]), requires_grad=True)

        @fl.function
        def __call__(self, x):
            return inner(x) * self.w

    s = Scaler()
    for _ in range(3):
        out = _quiet(s, fl.Tensor(np.ones(2)))
    np.testing.assert_allclose(out.numpy(), [6.0, 6.0])
    assert "function" in repr(Scaler.__call__)


def test_decorator_with_options_and_python_function():
    @fl.function(reduce_retracing=True, name="double")
    def double(x):
        return x * 2

    assert double.python_function(fl.ones(2)).numpy().tolist() == [2.0, 2.0]
    assert double(fl.ones(2)).numpy().tolist() == [2.0, 2.0]
    assert "double" in repr(double)
    with pytest.raises(TypeError, match="fl.function: expected a callable"):
        fl.function(3)


# -- fallbacks ----------------------------------------------------------------------------------
def _branchy(x):
    if x.sum() > 0:
        return x * 2
    return x * 3


def _item(x):
    return x * x.sum().item()


def _to_float(x):
    return x * float(x.mean())


def _numpy(x):
    return x * fl.Tensor(x.numpy().max())


def _comparison_mask(x):
    return x * (x > 0)


def _frozen_data(x):
    return x * fl.Tensor(x.data.max())  # arithmetic on .data: only the first replay can tell


@pytest.mark.parametrize("fn, why", [
    (_branchy, "`if`/`while`/`and`/`or` on a Tensor's value at test_graph_mode.py"),
    (_item, "Tensor.item()"),
    (_to_float, "float() of a Tensor"),
    (_numpy, "Tensor.numpy()"),
    (_comparison_mask, "a Tensor made outside an op"),
    (_frozen_data, "differs from eager mode on new inputs"),
])
def test_untraceable_functions_fall_back_to_eager_with_one_warning(fn, why):
    traced = fl.function(fn)
    rng = np.random.default_rng(10)
    xs = [fl.Tensor(rng.standard_normal(4) * s) for s in (1, -1, 2, -3, 1)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outs = [traced(x) for x in xs]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    assert messages[0].startswith(f"fl.function({fn.__name__}): ")
    assert why in messages[0] and "running it eagerly" in messages[0]
    for x, out in zip(xs, outs):
        np.testing.assert_allclose(out.numpy(), fn(x).numpy(), rtol=1e-12)


def test_random_draw_outside_an_op_falls_back():
    def noisy(x):
        return x + fl.Tensor(fl.get_rng().standard_normal(x.shape))

    traced = fl.function(noisy)
    with pytest.warns(UserWarning, match=r"a random draw outside an op \(generator"):
        outs = [traced(fl.zeros(3, dtype="float64")).numpy() for _ in range(4)]
    assert not np.allclose(outs[2], outs[3])  # fresh noise every call


def test_random_op_draws_fresh_values_at_every_replay():
    def noisy(x):
        return x + graph_mode.random_op(lambda: fl.get_rng().standard_normal(x.shape))

    traced = fl.function(noisy)
    fl.manual_seed(0)
    outs = [_quiet(traced, fl.zeros(3, dtype="float64")).numpy() for _ in range(4)]
    assert traced.trace_count == 1
    fl.manual_seed(0)
    eager = [noisy(fl.zeros(3, dtype="float64")).numpy() for _ in range(4)]
    np.testing.assert_allclose(outs, eager)  # the same draws, in the same order
    assert not np.allclose(outs[2], outs[3])


def test_dropout_masks_are_fresh_per_replay_and_match_eager():
    layer = fl.layers.Dropout(0.25)
    traced = fl.function(lambda x: layer(x, training=True))
    x = fl.ones(200, 50, dtype="float64")
    fl.manual_seed(3)
    got = [_quiet(traced, x).numpy() for _ in range(4)]
    fl.manual_seed(3)
    want = [layer(x, training=True).numpy() for _ in range(4)]
    np.testing.assert_allclose(got, want)
    assert not np.array_equal(got[2], got[3])
    kept = np.mean([g != 0 for g in got])
    assert abs(kept - 0.75) < 0.02
    np.testing.assert_allclose(got[3][got[3] != 0], 1 / 0.75)


def test_state_update_replays():
    state = fl.Tensor(np.zeros(3))

    def step(x):
        y = x * 2
        graph_mode.state_update((state,), lambda a: state.data.__iadd__(a), y)
        return y.sum()

    traced = fl.function(step)
    for i in range(4):
        _quiet(traced, fl.Tensor(np.full(3, float(i))))
    np.testing.assert_allclose(state.numpy(), 2 * (0 + 1 + 2 + 3))
    assert traced.trace_count == 1


def test_error_inside_a_replay_names_the_op():
    class Picky(fl.autograd.Function):
        def forward(self, x):
            if x.sum() < 0:
                raise ValueError("negative sum")
            return x * 2

    traced = fl.function(lambda x: Picky().apply(x * 1.0))
    x = fl.tensor(np.ones((4, 3)))
    traced(x)
    traced(x)
    with pytest.raises(ValueError, match=r"fl.function\(.*<lambda>\): op Picky \(step 1 of "
                                         r"the traced plan\) failed during replay: negative sum "
                                         r"\(input shapes \(4, 3\)\)"):
        traced(-x)


def test_captured_tensor_of_a_new_shape_retraces():
    rng = np.random.default_rng(11)
    w = _tensor(rng, (3, 2))
    traced = fl.function(lambda x: x @ w)
    x = _tensor(rng, (4, 3))
    traced(x)
    traced(x)
    w.data = rng.standard_normal((3, 5))  # a weight rebuilt with another shape
    np.testing.assert_allclose(traced(x).data, x.data @ w.data, rtol=1e-12)
    assert traced.trace_count == 2
    w.data = rng.standard_normal((5, 2))  # no longer fits x: the op's own error, as eagerly
    with pytest.raises(ValueError, match=r"MatMul: inner dimensions differ: \(4, 3\) @ \(5, 2\)"):
        traced(x)


def test_retracing_often_warns_once():
    traced = fl.function(lambda x: x + 1)
    with pytest.warns(UserWarning, match="has been traced 8 times"):
        for n in range(1, 10):
            traced(fl.ones(n))


def test_eager_mode_is_untouched_after_tracing():
    """The tracer's hooks are gone after a trace, also one that raised."""
    from fundl import autograd
    tensor_module = graph_mode.tensor_module

    def bad(x):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fl.function(bad)(fl.ones(2))
    assert autograd._tracer is None and tensor_module._trace_hook is None
    assert type(tensor_module._rng).__name__ == "Generator"
    assert fl.Tensor._wrap.__func__ is graph_mode._ORIGINAL_WRAP


def test_ops_of_other_threads_are_not_recorded():
    import threading

    started, release = threading.Event(), threading.Event()
    other = {}

    def worker():
        started.wait()
        other["y"] = fl.ones(3) * 5  # eager, in another thread, while the trace runs
        release.set()

    def f(x):
        started.set()
        release.wait(5)
        return x * 2

    thread = threading.Thread(target=worker)
    thread.start()
    traced = fl.function(f)
    traced(fl.ones(3))
    thread.join()
    plan = next(iter(traced._plans.values()))
    assert [s.op.name for s in plan.steps] == ["Mul"]
    np.testing.assert_allclose(other["y"].numpy(), 5)


def test_memory_of_a_replay_is_freed_by_backward():
    w = fl.Tensor(np.ones((3, 3)), requires_grad=True)
    traced = fl.function(lambda x: fl.functional.tanh(x @ w).sum())
    for _ in range(3):
        traced(fl.Tensor(np.ones((2, 3)))).backward()
    plan = next(iter(traced._plans.values()))
    assert all(not s.op.saved for s in plan.steps)  # nothing kept between steps


def test_a_model_itself_can_be_traced():
    fl.manual_seed(0)
    model = fl.Sequential([fl.layers.Input((5,)), fl.layers.Dense(4, activation="relu"),
                           fl.layers.Dense(2)])
    traced = fl.function(model)
    x = fl.Tensor(np.random.default_rng(0).standard_normal((3, 5)).astype("float32"))
    for _ in range(3):
        got = _quiet(traced, x)
    np.testing.assert_allclose(got.numpy(), model(x).numpy(), rtol=1e-6)
    assert traced.trace_count == 1 and not hasattr(traced, "layers")


def test_a_layer_built_during_the_first_trace():
    layer = fl.layers.Dense(3, activation="tanh")  # weights made (and drawn) in the trace
    traced = fl.function(lambda x: layer(x).sum())
    x = fl.Tensor(np.random.default_rng(13).standard_normal((2, 4)).astype("float32"))
    for _ in range(4):
        got = _quiet(traced, x)
    np.testing.assert_allclose(got.numpy(), layer(x).sum().numpy(), rtol=1e-6)
    assert traced.trace_count == 2  # retraced once: the first trace drew the initial weights
    got.backward()
    assert layer.kernel.grad is not None


# -- element-wise fusion (graph_mode._fuse_chains, kernels.elementwise) ------------------------
def _plan(fn):
    (plan,) = [p for p in fn._plans.values() if isinstance(p, graph_mode._Plan)]
    return plan


def _fused_names(fn):
    return [st.op.name for st in _plan(fn).steps if isinstance(st.op, graph_mode.FusedElementwise)]


def _huber_like(x, b, y):
    h = fl.functional.tanh(x + b) * 0.5          # a bias row and a scalar
    e = abs(h - y)
    q = fl.minimum(e, 1.0)
    return (0.5 * q * q + fl.maximum(e - 1.0, 0.0)).mean()


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 2e-6)])
def test_fused_unfused_and_eager_give_the_same_values_and_gradients(dtype, tol):
    rng = np.random.default_rng(3)
    b = _tensor(rng, (6,), dtype, True)
    fused, plain = fl.function(_huber_like, fuse=True), fl.function(_huber_like)
    for step in range(4):
        x, y = _tensor(rng, (7, 6), dtype, True), _tensor(rng, (7, 6), dtype)
        results = []
        for fn in (_huber_like, fused, plain):
            x.grad = b.grad = None
            loss = _quiet(fn, x, b, y)
            loss.backward()
            results.append((loss.numpy(), x.grad.copy(), b.grad.copy()))
        for other in results[1:]:
            for a, c in zip(results[0], other):
                np.testing.assert_allclose(c, a, rtol=tol, atol=tol)
    assert _plan(fused).fused == 2 and _plan(plain).fused == 0
    # (tanh is not fused: NumPy's is faster; |e| and q feed two ops each: |e| ends the first
    # chain, q stays alone; the second chain is the rest but the mean)
    assert _fused_names(fused) == ["FusedElementwise[Mul,Sub,Abs]",
                                   "FusedElementwise[Mul,Mul,Sub,Maximum,Add]"]


def test_fused_chain_gradcheck_float64():
    rng = np.random.default_rng(4)
    x, b = _tensor(rng, (3, 4), requires_grad=True), _tensor(rng, (4,), requires_grad=True)
    s = fl.Tensor(np.array(1.3), requires_grad=True)   # a scalar that needs its gradient

    @fl.function(fuse=True)
    def f(x, b, s):
        return (fl.maximum(x * s + b, 0.1) / s).sqrt() ** 2 - fl.relu(-x) * fl.minimum(x, b)

    f(x, b, s)
    assert _fused_names(f) == ["FusedElementwise[Mul,Add,Maximum,Div,Sqrt,Pow,Neg,ReLU,"
                               "Minimum,Mul,Sub]"]
    gradcheck(f, [x, b, s])


@pytest.mark.parametrize("fuse", [True, False])
def test_fused_chain_does_not_move_a_read_past_a_state_update(fuse):
    """``a = x - w`` reads w before the update changes it in place; fusing ``a`` with the
    later ``a * 2`` must not delay that read (every call gives -2)."""
    w = fl.Tensor(np.ones(4))

    @fl.function(fuse=fuse)
    def f(x):
        a = x - w
        graph_mode.state_update((w,), lambda v: w.data.__iadd__(v), x + 10.0)
        return a * 2.0

    with fl.no_grad():
        for _ in range(4):
            w.data[...] = 1.0
            np.testing.assert_array_equal(_quiet(f, fl.Tensor(np.zeros(4))).numpy(), -2.0)


def test_shared_intermediates_and_outputs_are_not_fused_across():
    rng = np.random.default_rng(5)
    x = _tensor(rng, (4, 5), requires_grad=True)

    @fl.function(fuse=True)
    def f(x):
        h = abs(x * 2.0)       # h feeds two ops: it ends a chain
        u = h.sqrt() + 1.0     # an output: ends its chain
        return u, (h * 3.0 - u).sum()

    eager = [t.numpy() for t in f.python_function(x)]
    got = [t.numpy() for t in f(x)]
    got = [t.numpy() for t in f(x)]
    for a, c in zip(eager, got):
        np.testing.assert_allclose(c, a, rtol=1e-12, atol=1e-12)
    names = _fused_names(f)
    assert names == ["FusedElementwise[Mul,Abs]", "FusedElementwise[Sqrt,Add]",
                     "FusedElementwise[Mul,Sub]"]
    plan = _plan(f)
    made = {st.out_slots[0] for st in plan.steps}
    assert set(plan.out_slots) <= made  # every output is still computed by a step of its own


def test_fused_chain_memory_is_freed_and_reference_path_equals_kernel(monkeypatch):
    rng = np.random.default_rng(6)
    x = _tensor(rng, (9, 70), "float32", True)
    b = _tensor(rng, (70,), "float32", True)
    f = fl.function(lambda x, b: fl.relu(x + b) * 0.5 - abs(x), fuse=True)
    f(x, b), f(x, b)  # trace, verify
    y1 = f(x, b)      # a replay
    op = next(st.op for st in _plan(f).steps if isinstance(st.op, graph_mode.FusedElementwise))
    assert len(op.saved) == 2  # its inputs only, no intermediate
    x.grad = None
    y1.sum().backward()
    g1 = x.grad.copy()
    # the recomputed intermediates went with the backward, and the inputs with the graph
    assert all(getattr(m[0], "saved", ()) == () for m in op.members) and op.saved == ()
    from fundl.kernels import elementwise
    monkeypatch.setattr(elementwise, "ready", lambda group, dtype: False)  # the NumPy reference
    x.grad = None
    y2 = f(x, b)
    y2.sum().backward()
    assert y2.creator is not None and "fl.function" in y2.creator.name  # (replayed)
    np.testing.assert_allclose(y2.numpy(), y1.numpy(), rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(x.grad, g1, rtol=2e-6, atol=2e-6)


def test_no_fusion_of_column_broadcasts_mixed_dtypes_or_single_ops():
    rng = np.random.default_rng(7)
    x = _tensor(rng, (4, 5), requires_grad=True)
    col = _tensor(rng, (4, 1), requires_grad=True)
    x32 = _tensor(rng, (4, 5), "float32")

    @fl.function(fuse=True)
    def f(x, col, x32):
        a = abs(x + col)             # a column broadcast: Add stays, Abs alone
        c = (x32 * 2.0).sum() + 0.0  # a single float32 op, then a reduction
        return a.sum() + c

    f(x, col, x32)
    f(x, col, x32)
    assert _fused_names(f) == []


def test_a_replay_drops_intermediates_nothing_reads_later():
    """Like eager mode, a replay keeps no intermediate value that no later step reads (ops
    keep what their backward needs themselves); gradients are unchanged."""
    rng = np.random.default_rng(6)
    x = _tensor(rng, (64, 32), requires_grad=True)
    w = _tensor(rng, (32, 16), requires_grad=True)

    @fl.function
    def f(x):
        h = (x @ w) * 2.0       # the product's output is read by the Mul only
        return (h.tanh() + 1.0).sum()

    for _ in range(3):          # trace, verify against eager, replay
        loss = _quiet(f, x)
    plan = _plan(f)
    replay = loss.creator
    assert isinstance(replay, graph_mode._Replay)
    values, _ = replay.saved
    dropped = [s for s, v in enumerate(values) if isinstance(v, graph_mode._Released)]
    assert dropped and all(values[s].shape for s in dropped)
    assert not set(dropped) & (set(plan.out_slots) | set(plan.in_slots))
    loss.backward()
    gx, gw = x.grad.copy(), w.grad.copy()
    x.grad = w.grad = None
    f.python_function(x).backward()
    np.testing.assert_allclose(gx, x.grad, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gw, w.grad, rtol=1e-12, atol=1e-12)


# -- buffers reused between calls -------------------------------------------------------------
def _big_chain(w):
    def f(x, y):
        e = abs((x - y) * w)
        q = fl.minimum(e, 1.0)
        r = fl.maximum(-e + 0.5, 0.1) / (q + 2.0)
        h = fl.functional.relu(r - 0.3) + (q * 0.5).exp() + fl.functional.tanh(r)
        return (h.sqrt() * q).mean()
    return f


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_recycled_buffers_give_exactly_eager_numbers(dtype):
    """Element-wise steps of >= 32 KB write into the buffers of the plan's last call: the same
    ufuncs, so the values are eager mode's bit for bit (and the gradients equal)."""
    rng = np.random.default_rng(7)
    shape = (64, 128)  # 32 KB in float32
    w = _tensor(rng, shape[1:], dtype, True)
    eager = _big_chain(w)
    traced = fl.function(eager)
    seen = []
    for _ in range(5):
        x, y = _tensor(rng, shape, dtype, True), _tensor(rng, shape, dtype)
        got = _quiet(traced, x, y)
        got.backward()
        g = [w.grad, x.grad]
        w.grad = x.grad = None
        want = eager(x, y)
        want.backward()
        np.testing.assert_array_equal(got.numpy(), want.numpy())
        tol = 1e-12 if dtype == "float64" else 1e-6  # (sums of several uses, in another order)
        for a, e in zip(g, [w.grad, x.grad]):
            assert a.dtype == e.dtype
            np.testing.assert_allclose(a, e, rtol=tol, atol=tol)
        w.grad = x.grad = None
        seen.append([id(b) for b in _plan(traced).arena])
    plan = _plan(traced)
    recycled = [type(s.op).__name__ for s in plan.steps if s.recycle is not None]
    assert {"Sub", "Abs", "Mul", "Minimum", "Maximum", "Neg", "Add", "Div", "ReLU", "Exp",
            "Tanh", "Sqrt"} <= set(recycled)
    assert seen[-1] == seen[-2] == seen[-3]  # the same buffers, call after call


def test_recycling_never_overwrites_what_is_still_held():
    """A buffer is reused only when nothing but the plan refers to it: a returned view of an
    intermediate, and the saved arrays of a replay whose backward has not run, stay intact."""
    rng = np.random.default_rng(8)
    w = _tensor(rng, (64, 128), requires_grad=True)

    @fl.function
    def f(x):
        h = (x * w).tanh()        # recycled intermediates
        return (h * 2.0).reshape(-1), (h * h).sum()

    outs, losses, copies, xs = [], [], [], []
    for _ in range(4):
        xs.append(_tensor(rng, (64, 128)))
        view, loss = _quiet(f, xs[-1])
        outs.append(view)
        losses.append(loss)
        copies.append(view.numpy().copy())
    for o, c in zip(outs, copies):  # every call's returned view kept its values
        np.testing.assert_array_equal(o.numpy(), c)
    for loss, x in zip(losses, xs):  # backwards in call order, after all the forwards
        w.grad = None
        loss.backward()             # (the first: the traced call's own eager graph)
        got = w.grad.copy()
        w.grad = None
        f.python_function(x)[1].backward()
        np.testing.assert_allclose(got, w.grad, rtol=1e-12, atol=1e-12)
    x = _tensor(rng, (64, 128))
    for _ in range(2):
        w.grad = None
        f(x)[1].backward()
    got = w.grad.copy()
    w.grad = None
    f.python_function(x)[1].backward()
    np.testing.assert_allclose(got, w.grad, rtol=1e-12, atol=1e-12)


def test_replay_step_peak_memory_not_above_eager():
    """A replay drops intermediates after their last reader and its backward frees each
    recorded op's saved arrays as it passes it, as the engine frees an eager graph: a step's
    peak (tracemalloc, NumPy's allocations) is not above eager mode's."""
    import tracemalloc

    rng = np.random.default_rng(9)
    p = _tensor(rng, (100_000,), "float32", True)
    t = _tensor(rng, (100_000,), "float32")

    def chain(p, t):
        e = abs(p - t)
        q = fl.minimum(e, 1.0)
        return (0.5 * q * q + 1.0 * fl.maximum(e - q, 0.0)).mean()

    peaks = {}
    for name, fn in (("eager", chain), ("replay", fl.function(chain))):
        for _ in range(3):
            p.grad = None
            fn(p, t).backward()
        p.grad = None
        tracemalloc.start()
        try:
            fn(p, t).backward()
            peaks[name] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peaks["replay"] <= peaks["eager"], peaks


def test_retain_graph_keeps_the_recorded_ops_saved_arrays():
    rng = np.random.default_rng(10)
    w = _tensor(rng, (64, 128), requires_grad=True)
    traced = fl.function(lambda x: ((x * w).exp() * w).sum())
    x = _tensor(rng, (64, 128))
    for _ in range(3):
        loss = traced(x)
    loss.backward(retain_graph=True)
    first = w.grad.copy()
    assert any(s[0].saved for s in loss.creator.saved[1])  # kept for the second backward
    loss.backward()
    np.testing.assert_allclose(w.grad, 2 * first, rtol=1e-12)


def test_another_thread_replays_without_the_tracing_threads_buffers():
    import threading

    rng = np.random.default_rng(11)
    w = _tensor(rng, (64, 128))
    traced = fl.function(lambda x: ((x * w) + 1.0).tanh() * 3.0)
    x = _tensor(rng, (64, 128))
    for _ in range(3):
        traced(x)
    arena = list(_plan(traced).arena)
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("y", traced(x).numpy().copy()))
    thread.start()
    thread.join()
    assert [id(a) for a in _plan(traced).arena] == [id(a) for a in arena]
    np.testing.assert_array_equal(result["y"], traced.python_function(x).numpy())


def test_auto_fusion_only_without_gradients_and_for_big_chains():
    """fuse="auto" (the default) fuses where it was measured to pay: chains that need no
    gradient with AUTO_FUSE_MIN_SIZE elements or more; the values stay eager mode's."""
    rng = np.random.default_rng(12)

    def chain(x, y):
        e = abs(x - y)
        q = fl.minimum(e, 1.0)
        return 0.5 * q * q + 1.0 * fl.maximum(e - q, 0.0)

    x = _tensor(rng, (256, 256), "float32", True)
    y = _tensor(rng, (256, 256), "float32")
    xs, ys = _tensor(rng, (128, 128), "float32"), _tensor(rng, (128, 128), "float32")
    f = fl.function(chain)
    with fl.no_grad():
        for _ in range(3):
            got = _quiet(f, x, y)
            f(xs, ys)
        want = chain(x, y)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)
    assert sorted(p.fused for p in f._plans.values()) == [0, 2]  # the small one: op by op
    plan = next(p for p in f._plans.values() if p.fused)
    with fl.no_grad():
        kept = got.numpy().copy()
        ids = [id(b) for b in plan.arena]
        again = f(x, y)  # the fused op's output buffer comes back once nothing holds it
        assert [id(b) for b in plan.arena] == ids and any(b is not None for b in plan.arena)
        np.testing.assert_array_equal(got.numpy(), kept)  # (the result still held: untouched)
        np.testing.assert_array_equal(again.numpy(), kept)
    for _ in range(3):  # with gradients: op by op
        f(x, y).sum().backward()
    assert sorted(p.fused for p in f._plans.values()) == [0, 0, 2]
    with pytest.raises(ValueError, match="fuse must be True, False or 'auto'"):
        fl.function(chain, fuse="yes")
