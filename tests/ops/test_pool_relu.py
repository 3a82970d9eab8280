"""Max pooling after a ReLU fused into a convolution: the pool's backward drops the windows
whose maximum is not positive and the convolution's ReLU gradient then hands the gradient on
unchanged (fundl.kernels.activation.mark_relu_applied). Same gradients as the unfused ops,
bit for bit, as PyTorch's, and as finite differences; the normal pass wherever the shortcut
would not be exact (a second consumer of the ReLU output, another array, no ReLU)."""
import numpy as np
import pytest

import fundl as fl
from fundl.kernels import activation as ka
from fundl.ops.activation import relu
from fundl.ops.conv import conv
from fundl.ops.pool import max_pool2d
from fundl.testing import gradcheck


def _inputs(dtype, seed=0, shape=(3, 8, 8, 2), filters=4):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape).astype(dtype),
            rng.standard_normal((3, 3, shape[-1], filters)).astype(dtype),
            rng.standard_normal(filters).astype(dtype) * 0.1)


def _grads(x, k, b, fused, extra=None, padding="same", pool=2, strides=None):
    tx, tk, tb = (fl.Tensor(a, requires_grad=True) for a in (x, k, b))
    if fused:
        h = conv(tx, tk, tb, padding=padding, activation="relu")
    else:
        h = relu(conv(tx, tk, tb, padding=padding))
    y = max_pool2d(h, pool, strides)
    loss = (y * fl.Tensor(np.linspace(-1, 1, y.size).reshape(y.shape).astype(x.dtype))).sum()
    if extra is not None:
        loss = loss + extra(h)
    loss.backward()
    return y.numpy(), [np.asarray(t.grad) for t in (tx, tk, tb)]


@pytest.fixture
def shortcut_taken(monkeypatch):
    """Counts the ReLU gradients handed on unchanged."""
    taken = []
    original = ka._relu_applied

    def spy(kind, gy, y):
        result = original(kind, gy, y)
        taken.append(result)
        return result

    monkeypatch.setattr(ka, "_relu_applied", spy)
    return taken


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool,strides", [(2, None), (3, 2), ((2, 3), None)], ids=str)
def test_fused_relu_max_pool_equals_the_unfused_ops(dtype, pool, strides, shortcut_taken):
    x, k, b = _inputs(dtype)
    y_ref, g_ref = _grads(x, k, b, fused=False, pool=pool, strides=strides)
    y, g = _grads(x, k, b, fused=True, pool=pool, strides=strides)
    assert any(shortcut_taken)
    np.testing.assert_array_equal(y, y_ref)
    for got, want in zip(g, g_ref):
        np.testing.assert_array_equal(got, want)


def test_lenet_sized_relu_max_pool_against_torch():
    """28x28 "same" 5x5 convolution to 6 channels, ReLU, 2x2 max pooling (the Keras-tutorial
    LeNet's first stage), float32: outputs and all three gradients as PyTorch's."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 28, 28, 1)).astype(np.float32)
    k = (rng.standard_normal((5, 5, 1, 6)) * 0.2).astype(np.float32)
    b = (rng.standard_normal(6) * 0.1).astype(np.float32)
    w = rng.standard_normal((8, 14, 14, 6)).astype(np.float32)
    tx, tk, tb = (fl.Tensor(a, requires_grad=True) for a in (x, k, b))
    y = max_pool2d(conv(tx, tk, tb, padding="same", activation="relu"), 2)
    (y * fl.Tensor(w)).sum().backward()
    px, pk, pb = (torch.from_numpy(a).requires_grad_() for a in
                  (x.transpose(0, 3, 1, 2).copy(), k.transpose(3, 2, 0, 1).copy(), b))
    F = torch.nn.functional
    py = F.max_pool2d(F.relu(F.conv2d(px, pk, pb, padding=2)), 2)
    (py * torch.from_numpy(w.transpose(0, 3, 1, 2).copy())).sum().backward()
    np.testing.assert_allclose(y.numpy(), py.detach().numpy().transpose(0, 2, 3, 1),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(tx.grad), px.grad.numpy().transpose(0, 2, 3, 1),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(tk.grad), pk.grad.numpy().transpose(2, 3, 1, 0),
                               rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(np.asarray(tb.grad), pb.grad.numpy(), rtol=1e-4, atol=1e-3)


def test_fused_relu_max_pool_gradcheck():
    x, k, b = _inputs(np.float64, seed=2, shape=(2, 6, 6, 2), filters=3)
    gradcheck(lambda a, c, d: max_pool2d(conv(a, c, d, padding="same", activation="relu"), 2),
              [fl.Tensor(a, requires_grad=True) for a in (x, k, b)])


def test_a_second_consumer_of_the_relu_output_takes_the_normal_pass(shortcut_taken):
    """The pool's gradient is summed with another branch's: a new array, so the convolution
    does the whole ReLU gradient (and still gets the right answer)."""
    x, k, b = _inputs(np.float64, seed=3)
    extra = lambda h: (h * h).sum() * 0.5  # noqa: E731
    _, g_ref = _grads(x, k, b, fused=False, extra=extra)
    _, g = _grads(x, k, b, fused=True, extra=extra)
    assert not any(shortcut_taken)
    for got, want in zip(g, g_ref):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_no_relu_no_dropping():
    """After a tanh (or nothing) negative maxima keep their gradient."""
    x = -np.abs(np.random.default_rng(4).standard_normal((1, 4, 4, 1)))  # all negative
    t = fl.Tensor(x, requires_grad=True)
    max_pool2d(t, 2).sum().backward()
    assert np.count_nonzero(np.asarray(t.grad)) == 4


def test_backward_twice_with_retain_graph():
    x, k, b = _inputs(np.float64, seed=5)
    tx = fl.Tensor(x, requires_grad=True)
    y = max_pool2d(conv(tx, fl.Tensor(k), fl.Tensor(b), padding="same", activation="relu"), 2)
    y.sum().backward(retain_graph=True)
    first = np.asarray(tx.grad).copy()
    tx.grad = None
    y.sum().backward()
    np.testing.assert_array_equal(np.asarray(tx.grad), first)


def test_mark_relu_applied_matches_by_identity_only():
    rng = np.random.default_rng(6)
    y = np.maximum(rng.standard_normal((64, 80)), 0)
    g = np.where(y > 0, rng.standard_normal(y.shape), 0)
    ka.mark_relu_applied(g, y)
    assert ka.activation_grad_reference("relu", g, y) is g
    assert ka.activation_grad_numba("relu", g, y) is g
    assert ka.activation_grad_reference("tanh", g, y) is not g  # ReLU's only
    other = g.copy()  # equal values, another object: the normal pass
    assert ka.activation_grad_numba("relu", other, y) is not other
    np.testing.assert_array_equal(ka.activation_grad_numba("relu", g, y.copy()), g)
    key = id(g)
    del g
    assert key not in ka._RELU_DONE  # the record goes with the gradient


def test_keras_way_lenet_steps_equal_in_graph_mode():
    """Conv2D(relu) -> MaxPooling2D twice (the Keras-tutorial LeNet, small): training steps
    in graph mode (compile(jit_compile=True)) give eager mode's losses and weights."""
    from fundl.layers import Conv2D, Dense, Flatten, Input, MaxPooling2D

    def run(jit):
        fl.manual_seed(0)
        model = fl.Sequential([
            Input((12, 12, 1)), Conv2D(3, 3, padding="same", activation="relu"), MaxPooling2D(2),
            Conv2D(4, 3, activation="relu"), MaxPooling2D(2), Flatten(), Dense(5)])
        model.compile(optimizer=fl.optimizers.SGD(0.1), jit_compile=jit,
                      loss=fl.losses.SparseCategoricalCrossentropy(from_logits=True))
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((8, 12, 12, 1)), rng.integers(0, 5, 8)
        return [model.train_on_batch(x, y) for _ in range(3)], model.get_weights()

    (eager, w_eager), (graph, w_graph) = run(False), run(True)
    np.testing.assert_array_equal(eager, graph)
    for a, b in zip(w_eager, w_graph):
        np.testing.assert_array_equal(a, b)
