"""Adadelta: golden values from Keras 3's formula, and PyTorch's Adadelta (same formula)."""
import numpy as np
import pytest

import fundl as fl
import fundl.optimizers as optim

SHAPES = [(3, 4), (4,)]


def _problem(steps=4, seed=2):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]
    return init, grads


def _run(opt, init, grads, dtype=np.float64):
    ws = [fl.Tensor(a.astype(dtype)) for a in init]
    for gs in grads:
        opt.apply([g.astype(dtype) for g in gs], ws)
    return [w.numpy() for w in ws]


def _keras_adadelta(w, gs, lr, rho, eps):
    w, eg, ed = w.copy(), np.zeros_like(w), np.zeros_like(w)
    for g in gs:
        eg = rho * eg + (1 - rho) * g * g
        d = -np.sqrt(ed + eps) * g / np.sqrt(eg + eps)
        ed = rho * ed + (1 - rho) * d * d
        w = w + lr * d
    return w


@pytest.mark.parametrize("rho,eps", [(0.95, 1e-7), (0.8, 1e-3)])
def test_adadelta_matches_keras_formula(rho, eps):
    init, grads = _problem()
    got = _run(optim.Adadelta(1.0, rho=rho, epsilon=eps), init, grads)
    for k, w in enumerate(init):
        ref = _keras_adadelta(w, [gs[k] for gs in grads], 1.0, rho, eps)
        np.testing.assert_allclose(got[k], ref, rtol=1e-12, atol=1e-12)


def test_adadelta_matches_torch():
    torch = pytest.importorskip("torch")
    init, grads = _problem()
    got = _run(optim.Adadelta(0.5, rho=0.9, epsilon=1e-6), init, grads)
    ps = [torch.tensor(a, requires_grad=True) for a in init]
    opt = torch.optim.Adadelta(ps, lr=0.5, rho=0.9, eps=1e-6)
    for gs in grads:
        for p, g in zip(ps, gs):
            p.grad = torch.tensor(g)
        opt.step()
    for a, p in zip(got, ps):
        np.testing.assert_allclose(a, p.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_adadelta_float32_close_to_float64_reference():
    init, grads = _problem()
    got = _run(optim.Adadelta(1.0), init, grads, dtype=np.float32)
    for k, w in enumerate(init):
        assert got[k].dtype == np.float32
        ref = _keras_adadelta(w, [gs[k] for gs in grads], 1.0, 0.95, 1e-7)
        np.testing.assert_allclose(got[k], ref, rtol=1e-5, atol=1e-6)


def test_adadelta_keras_defaults():
    opt = optim.Adadelta()
    assert (opt.learning_rate, opt.rho, opt.epsilon, opt.name) == (0.001, 0.95, 1e-7, "adadelta")
