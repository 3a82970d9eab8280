"""Adagrad: golden values from Keras 3's formula, and PyTorch's Adagrad (epsilon 0)."""
import numpy as np
import pytest

import fundl as fl
import fundl.optimizers as optim

SHAPES = [(3, 4), (4,)]


def _problem(steps=4, seed=1):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]
    return init, grads


def _run(opt, init, grads, dtype=np.float64):
    ws = [fl.Tensor(a.astype(dtype)) for a in init]
    for gs in grads:
        opt.apply([g.astype(dtype) for g in gs], ws)
    return [w.numpy() for w in ws]


def _keras_adagrad(w, gs, lr, init_acc, eps):
    w, acc = w.copy(), np.full_like(w, init_acc)
    for g in gs:
        acc = acc + g * g
        w = w - lr * g / np.sqrt(acc + eps)
    return w


@pytest.mark.parametrize("init_acc,eps", [(0.1, 1e-7), (0.5, 1e-3)])
def test_adagrad_matches_keras_formula(init_acc, eps):
    init, grads = _problem()
    opt = optim.Adagrad(0.1, initial_accumulator_value=init_acc, epsilon=eps)
    got = _run(opt, init, grads)
    for k, w in enumerate(init):
        ref = _keras_adagrad(w, [gs[k] for gs in grads], 0.1, init_acc, eps)
        np.testing.assert_allclose(got[k], ref, rtol=1e-12, atol=1e-12)


def test_adagrad_matches_torch():
    torch = pytest.importorskip("torch")
    init, grads = _problem()
    # PyTorch adds eps outside the square root, Keras inside: with eps = 0 they coincide.
    got = _run(optim.Adagrad(0.1, initial_accumulator_value=0.2, epsilon=0.0), init, grads)
    ps = [torch.tensor(a, requires_grad=True) for a in init]
    opt = torch.optim.Adagrad(ps, lr=0.1, initial_accumulator_value=0.2, eps=0.0)
    for gs in grads:
        for p, g in zip(ps, gs):
            p.grad = torch.tensor(g)
        opt.step()
    for a, p in zip(got, ps):
        np.testing.assert_allclose(a, p.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_adagrad_accumulator_starts_at_initial_value():
    w = fl.Tensor(np.zeros((2, 3), dtype=np.float32))
    opt = optim.Adagrad(initial_accumulator_value=0.3)
    opt.build([w])
    acc = opt.slots(w)["accumulator"]
    assert acc.dtype == np.float32
    np.testing.assert_array_equal(acc, np.full((2, 3), 0.3, dtype=np.float32))


def test_adagrad_keras_defaults():
    opt = optim.Adagrad()
    assert (opt.learning_rate, opt.initial_accumulator_value, opt.epsilon, opt.name) == \
        (0.001, 0.1, 1e-7, "adagrad")
