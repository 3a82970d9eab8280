"""SGD: golden values from a NumPy transcription of Keras 3's rule, and PyTorch's SGD."""
import numpy as np
import pytest

import fundl as fl
import fundl.optimizers as optim
from fundl.testing import assert_error

SHAPES = [(3, 4), (4,)]


def _problem(steps=4, seed=0):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]
    return init, grads


def _run(opt, init, grads, dtype=np.float64):
    ws = [fl.Tensor(a.astype(dtype)) for a in init]
    for gs in grads:
        opt.apply([g.astype(dtype) for g in gs], ws)
    return [w.numpy() for w in ws]


def _keras_sgd(w, gs, lr, momentum=0.0, nesterov=False):
    w, m = w.copy(), np.zeros_like(w)
    for g in gs:
        if momentum == 0:
            w = w - lr * g
            continue
        m = momentum * m - lr * g
        w = w + (momentum * m - lr * g if nesterov else m)
    return w


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_matches_keras_formula(momentum, nesterov):
    init, grads = _problem()
    got = _run(optim.SGD(0.05, momentum=momentum, nesterov=nesterov), init, grads)
    for k, w in enumerate(init):
        ref = _keras_sgd(w, [gs[k] for gs in grads], 0.05, momentum, nesterov)
        np.testing.assert_allclose(got[k], ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_matches_torch(nesterov):
    torch = pytest.importorskip("torch")
    init, grads = _problem()
    got = _run(optim.SGD(0.05, momentum=0.8, nesterov=nesterov), init, grads)
    ps = [torch.tensor(a, requires_grad=True) for a in init]
    opt = torch.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=nesterov)
    for gs in grads:
        for p, g in zip(ps, gs):
            p.grad = torch.tensor(g)
        opt.step()
    for a, p in zip(got, ps):
        np.testing.assert_allclose(a, p.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_sgd_float32_stays_float32_and_close():
    init, grads = _problem()
    got = _run(optim.SGD(0.05, momentum=0.9), init, grads, dtype=np.float32)
    assert all(a.dtype == np.float32 for a in got)
    for k, w in enumerate(init):
        ref = _keras_sgd(w, [gs[k] for gs in grads], 0.05, 0.9)
        np.testing.assert_allclose(got[k], ref, rtol=1e-5, atol=1e-6)


def test_sgd_slots_only_with_momentum():
    w = fl.Tensor(np.ones(3))
    plain, heavy = optim.SGD(), optim.SGD(momentum=0.5)
    plain.build([w])
    heavy.build([w])
    assert sorted(plain.get_state()) == ["iterations"]
    assert sorted(heavy.get_state()) == ["0.momentum", "iterations"]


def test_sgd_keras_defaults():
    opt = optim.SGD()
    assert (opt.learning_rate, opt.momentum, opt.nesterov, opt.name) == (0.01, 0.0, False, "SGD")


def test_sgd_rejects_momentum_outside_unit_interval():
    assert_error(ValueError, optim.SGD, momentum=1.5, contains=["SGD", "momentum", "1.5"])
