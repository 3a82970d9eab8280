"""fl.GradientTape (TensorFlow's API) and fl.grad (torch.autograd.grad's), checked against
fundl's own backward and against PyTorch."""
import numpy as np
import pytest

import fundl as fl
from fundl import functional as F
from fundl.autograd import gradients_of
from fundl.tape import GradientTape, grad
from fundl.testing import assert_error


def _leaves(seed=0):
    rng = np.random.default_rng(seed)
    x = fl.tensor(rng.standard_normal((3, 4)), dtype="float64", requires_grad=True)
    w = fl.tensor(rng.standard_normal((4, 2)), dtype="float64", requires_grad=True)
    b = fl.tensor(rng.standard_normal(2), dtype="float64", requires_grad=True)
    return x, w, b


def _f(x, w, b):
    h = F.tanh(x @ w + b)
    return (h * h).sum() + (x * x).mean()


def test_tape_gradient_equals_backward_and_leaves_grad_alone():
    x, w, b = _leaves()
    with GradientTape() as tape:
        loss = _f(x, w, b)
    gx, gw, gb = tape.gradient(loss, [x, w, b])
    assert x.grad is None and w.grad is None and b.grad is None
    _f(x, w, b).backward()
    for g, t in ((gx, x), (gw, w), (gb, b)):
        assert isinstance(g, fl.Tensor) and not g.requires_grad
        np.testing.assert_allclose(g.numpy(), t.grad, rtol=1e-12, atol=1e-14)


def test_tape_gradient_matches_pytorch():
    torch = pytest.importorskip("torch")
    x, w, b = _leaves(1)
    with GradientTape() as tape:
        loss = _f(x, w, b)
    grads = tape.gradient(loss, {"x": x, "params": [w, b]})
    tx, tw, tb = (torch.tensor(t.numpy(), requires_grad=True) for t in (x, w, b))
    h = torch.tanh(tx @ tw + tb)
    tl = (h * h).sum() + (tx * tx).mean()
    ex, ew, eb = torch.autograd.grad(tl, [tx, tw, tb])
    np.testing.assert_allclose(grads["x"].numpy(), ex.numpy(), rtol=1e-10)
    np.testing.assert_allclose(grads["params"][0].numpy(), ew.numpy(), rtol=1e-10)
    np.testing.assert_allclose(grads["params"][1].numpy(), eb.numpy(), rtol=1e-10)


def test_tape_does_not_disturb_existing_grad_accumulation():
    x, w, b = _leaves(2)
    _f(x, w, b).backward()
    before = w.grad.copy()
    with GradientTape() as tape:
        loss = _f(x, w, b)
    tape.gradient(loss, w)
    np.testing.assert_array_equal(w.grad, before)
    _f(x, w, b).backward()                       # accumulation goes on as before
    np.testing.assert_allclose(w.grad, 2 * before)


def test_watch_plain_tensor_and_unconnected_sources():
    x = fl.tensor([1.0, 2.0, 3.0])
    other = fl.tensor([1.0], requires_grad=True)
    with GradientTape() as tape:
        tape.watch(x)
        y = (x * x * x).sum()
    gx, gother = tape.gradient(y, [x, other])
    np.testing.assert_allclose(gx.numpy(), [3.0, 12.0, 27.0])
    assert gother is None
    assert not x.requires_grad             # watching lasts while the tape records
    assert tape.watched_variables() == [x]


def test_unconnected_gradients_zero():
    a = fl.tensor([1.0, 2.0], requires_grad=True)
    c = fl.tensor([5.0], requires_grad=True)
    with GradientTape() as tape:
        y = (a * 2).sum()
    ga, gc = tape.gradient(y, [a, c], unconnected_gradients="zero")
    np.testing.assert_array_equal(gc.numpy(), [0.0])
    np.testing.assert_array_equal(ga.numpy(), [2.0, 2.0])


def test_non_persistent_tape_allows_one_call_persistent_several():
    x, w, b = _leaves(3)
    with GradientTape() as tape:
        loss = _f(x, w, b)
    tape.gradient(loss, w)
    assert_error(RuntimeError, tape.gradient, loss, w,
                 contains=["non-persistent", "persistent=True"])
    with GradientTape(persistent=True) as tape:
        h = x @ w
        l1 = (h * h).sum()
        l2 = h.sum()
    g1 = tape.gradient(l1, w)
    g2 = tape.gradient(l2, w)
    g1_again = tape.gradient(l1, w)
    np.testing.assert_allclose(g1.numpy(), g1_again.numpy())
    np.testing.assert_allclose(g2.numpy(), x.numpy().sum(0)[:, None] * np.ones((1, 2)))


def test_two_tapes_share_one_forward_pass_as_in_a_gan():
    # The generator's and the discriminator's losses share the graph through the fake
    # samples: the first gradient call must not free what the second needs.
    rng = np.random.default_rng(4)
    g_w = fl.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    d_w = fl.tensor(rng.standard_normal((3, 1)), requires_grad=True)
    z = fl.tensor(rng.standard_normal((5, 2)))
    with GradientTape() as g_tape, GradientTape() as d_tape:
        fake = z @ g_w
        score = F.sigmoid(fake @ d_w)
        g_loss = -(score.log()).mean()
        d_loss = -((1 - score).log()).mean()
    gg = g_tape.gradient(g_loss, g_w)
    dg = d_tape.gradient(d_loss, d_w)
    assert gg.shape == (2, 3) and dg.shape == (3, 1)
    g_loss.backward(retain_graph=True)
    np.testing.assert_allclose(gg.numpy(), g_w.grad, rtol=1e-5)


def test_watch_accessed_variables_false_gives_only_watched():
    w = fl.tensor([1.0, 2.0], requires_grad=True)
    v = fl.tensor([3.0, 4.0], requires_grad=True)
    with GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(v)
        y = (w * v).sum()
    gw, gv = tape.gradient(y, [w, v])
    assert gw is None
    np.testing.assert_allclose(gv.numpy(), [1.0, 2.0])


def test_stop_recording_leaves_operations_out():
    w = fl.tensor([2.0], requires_grad=True)
    with GradientTape() as tape:
        y = w * w
        with tape.stop_recording():
            z = w * 10.0
        total = y + z
    np.testing.assert_allclose(tape.gradient(total, w).numpy(), [4.0])


def test_list_of_targets_adds_up_and_output_gradients():
    w = fl.tensor([1.0, 2.0], requires_grad=True)
    with GradientTape(persistent=True) as tape:
        a = w * 3.0
        c = w * w
    np.testing.assert_allclose(tape.gradient([a, c], w).numpy(), [5.0, 7.0])
    np.testing.assert_allclose(
        tape.gradient(a, w, output_gradients=np.array([1.0, 10.0])).numpy(), [3.0, 30.0])
    assert_error(ValueError, tape.gradient, a, w, output_gradients=np.ones(3),
                 contains=["(3,)", "(2,)"])


def test_tape_errors_name_what_is_wrong():
    with GradientTape() as tape:
        assert_error(TypeError, tape.watch, np.ones(2), contains=["watch", "ndarray"])
        assert_error(TypeError, tape.watch, fl.tensor([1, 2]), contains=["floating", "int"])
        w = fl.tensor([1.0], requires_grad=True)
        y = w * 2
    assert_error(TypeError, tape.gradient, y, [np.ones(1)], contains=["sources", "ndarray"])
    assert_error(ValueError, GradientTape(persistent=True).gradient, y, w,
                 unconnected_gradients="zeros", contains=["unconnected_gradients"])
    assert_error(TypeError, GradientTape, persistent=1, contains=["persistent"])
    assert_error(RuntimeError, GradientTape().watch, fl.tensor([1.0]),
                 contains=["inside the `with"])


def test_grad_like_torch_autograd_grad():
    torch = pytest.importorskip("torch")
    x, w, b = _leaves(5)
    h = x @ w + b                                # an intermediate input, as torch allows
    out = (F.tanh(h) ** 2).sum()
    gh, gw = grad(out, [h, w], retain_graph=True)
    tx, tw, tb = (torch.tensor(t.numpy(), requires_grad=True) for t in (x, w, b))
    th = tx @ tw + tb
    eh, ew = torch.autograd.grad((torch.tanh(th) ** 2).sum(), [th, tw])
    np.testing.assert_allclose(gh.numpy(), eh.numpy(), rtol=1e-10)
    np.testing.assert_allclose(gw.numpy(), ew.numpy(), rtol=1e-10)
    assert w.grad is None
    (gb,) = grad(out, b)                        # retained above: a second walk works
    assert gb.shape == (2,)
    assert_error(RuntimeError, grad, out, b, contains=["freed"])


def test_grad_errors_and_allow_unused():
    x = fl.tensor([1.0, 2.0], requires_grad=True)
    unused = fl.tensor([1.0], requires_grad=True)
    y = x * x
    assert_error(RuntimeError, grad, y, x, retain_graph=True,
                 contains=["implicitly", "(2,)", "grad_outputs"])
    (g,) = grad(y, x, grad_outputs=np.array([1.0, 0.5]), retain_graph=True)
    np.testing.assert_allclose(g.numpy(), [2.0, 2.0])
    assert_error(RuntimeError, grad, y.sum(), [x, unused], retain_graph=True,
                 contains=["inputs[1]", "allow_unused=True"])
    gx, gu = grad(y.sum(), [x, unused], allow_unused=True)
    assert gu is None
    assert_error(RuntimeError, grad, fl.tensor([1.0]), x, contains=["outputs[0]",
                                                                    "requires_grad"])
    assert_error(TypeError, grad, y.sum(), [np.ones(2)], contains=["inputs", "ndarray"])


def test_results_never_share_memory():
    # Add's backward hands the same array to both inputs; each result gets its own.
    a = fl.tensor([1.0, 2.0], requires_grad=True)
    b = fl.tensor([3.0, 4.0], requires_grad=True)
    seed = np.array([1.0, 1.0], dtype="float32")
    ga, gb = gradients_of([a + b], [seed], [a, b])
    assert not np.shares_memory(ga, gb)
    assert not np.shares_memory(ga, seed) and not np.shares_memory(gb, seed)


def test_top_level_names():
    assert fl.GradientTape is GradientTape
    assert fl.grad is grad
