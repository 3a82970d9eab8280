"""RMSprop: golden values from Keras 3's formula, and PyTorch's RMSprop (alpha=rho, eps 0)."""
import numpy as np
import pytest

import fundl as fl
import fundl.optimizers as optim

SHAPES = [(3, 4), (4,)]
VARIANTS = [(0.0, False), (0.0, True), (0.7, False), (0.7, True)]  # (momentum, centered)


def _problem(steps=4, seed=3):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]
    return init, grads


def _run(opt, init, grads, dtype=np.float64):
    ws = [fl.Tensor(a.astype(dtype)) for a in init]
    for gs in grads:
        opt.apply([g.astype(dtype) for g in gs], ws)
    return [w.numpy() for w in ws]


def _keras_rmsprop(w, gs, lr, rho, momentum, eps, centered):
    w, v, a, m = w.copy(), np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for g in gs:
        v = rho * v + (1 - rho) * g * g
        if centered:
            a = rho * a + (1 - rho) * g
            denom = v - a * a + eps
        else:
            denom = v + eps
        inc = lr * g / np.sqrt(denom)
        if momentum > 0:
            m = momentum * m + inc
            w = w - m
        else:
            w = w - inc
    return w


@pytest.mark.parametrize("momentum,centered", VARIANTS)
def test_rmsprop_matches_keras_formula(momentum, centered):
    init, grads = _problem()
    opt = optim.RMSprop(0.01, rho=0.8, momentum=momentum, epsilon=1e-4, centered=centered)
    got = _run(opt, init, grads)
    for k, w in enumerate(init):
        ref = _keras_rmsprop(w, [gs[k] for gs in grads], 0.01, 0.8, momentum, 1e-4, centered)
        np.testing.assert_allclose(got[k], ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("momentum,centered", VARIANTS)
def test_rmsprop_matches_torch(momentum, centered):
    torch = pytest.importorskip("torch")
    init, grads = _problem()
    # PyTorch adds eps outside the square root, Keras inside: with eps = 0 they coincide.
    opt = optim.RMSprop(0.01, rho=0.8, momentum=momentum, epsilon=0.0, centered=centered)
    got = _run(opt, init, grads)
    ps = [torch.tensor(a, requires_grad=True) for a in init]
    topt = torch.optim.RMSprop(ps, lr=0.01, alpha=0.8, eps=0.0, momentum=momentum,
                               centered=centered)
    for gs in grads:
        for p, g in zip(ps, gs):
            p.grad = torch.tensor(g)
        topt.step()
    for a, p in zip(got, ps):
        np.testing.assert_allclose(a, p.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_rmsprop_slots_follow_options():
    w = fl.Tensor(np.ones(2))
    opt = optim.RMSprop(momentum=0.5, centered=True)
    opt.build([w])
    assert sorted(opt.slots(w)) == ["average_gradient", "momentum", "velocity"]


def test_rmsprop_keras_defaults():
    opt = optim.RMSprop()
    assert (opt.learning_rate, opt.rho, opt.momentum, opt.epsilon, opt.centered, opt.name) == \
        (0.001, 0.9, 0.0, 1e-7, False, "rmsprop")
