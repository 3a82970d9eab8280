"""Adam and AdamW: golden values from Keras 3's formula, and PyTorch's Adam/AdamW."""
import numpy as np
import pytest

import fundl as fl
import fundl.optimizers as optim
from fundl.testing import assert_error

SHAPES = [(3, 4), (4,)]


def _problem(steps=5, seed=4):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]
    return init, grads


def _run(opt, init, grads, dtype=np.float64):
    ws = [fl.Tensor(a.astype(dtype)) for a in init]
    for gs in grads:
        opt.apply([g.astype(dtype) for g in gs], ws)
    return [w.numpy() for w in ws]


def _keras_adam(w, gs, lr, b1, b2, eps, amsgrad=False, wd=0.0):
    w, m, v, vhat = w.copy(), np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(gs, start=1):
        w = w - w * wd * lr
        alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        if amsgrad:
            vhat = np.maximum(vhat, v)
        w = w - alpha * m / (np.sqrt(vhat if amsgrad else v) + eps)
    return w


def _torch_run(make, init, grads):
    torch = pytest.importorskip("torch")
    ps = [torch.tensor(a, requires_grad=True) for a in init]
    opt = make(ps)
    for gs in grads:
        for p, g in zip(ps, gs):
            p.grad = torch.tensor(g)
        opt.step()
    return [p.detach().numpy() for p in ps]


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_matches_keras_formula(amsgrad):
    init, grads = _problem()
    got = _run(optim.Adam(0.01, beta_1=0.8, beta_2=0.95, epsilon=1e-3, amsgrad=amsgrad),
               init, grads)
    for k, w in enumerate(init):
        ref = _keras_adam(w, [gs[k] for gs in grads], 0.01, 0.8, 0.95, 1e-3, amsgrad)
        np.testing.assert_allclose(got[k], ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_matches_torch(amsgrad):
    torch = pytest.importorskip("torch")
    init, grads = _problem()
    # Keras's epsilon is "epsilon hat" (PyTorch's eps times sqrt(1 - beta_2**t)); 0 in both
    # makes the rules identical.
    got = _run(optim.Adam(0.01, beta_1=0.8, beta_2=0.95, epsilon=0.0, amsgrad=amsgrad),
               init, grads)
    ref = _torch_run(lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.95), eps=0.0,
                                                 amsgrad=amsgrad), init, grads)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_adam_float32_close_to_float64_reference():
    init, grads = _problem()
    got = _run(optim.Adam(0.01), init, grads, dtype=np.float32)
    for k, w in enumerate(init):
        assert got[k].dtype == np.float32
        ref = _keras_adam(w, [gs[k] for gs in grads], 0.01, 0.9, 0.999, 1e-7)
        np.testing.assert_allclose(got[k], ref, rtol=1e-5, atol=1e-6)


def test_adamw_matches_keras_formula():
    init, grads = _problem()
    got = _run(optim.AdamW(0.01, weight_decay=0.1, epsilon=1e-3), init, grads)
    for k, w in enumerate(init):
        ref = _keras_adam(w, [gs[k] for gs in grads], 0.01, 0.9, 0.999, 1e-3, wd=0.1)
        np.testing.assert_allclose(got[k], ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adamw_matches_torch(amsgrad):
    torch = pytest.importorskip("torch")
    init, grads = _problem()
    got = _run(optim.AdamW(0.01, weight_decay=0.1, epsilon=0.0, amsgrad=amsgrad), init, grads)
    ref = _torch_run(lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1, eps=0.0,
                                                  amsgrad=amsgrad), init, grads)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_adam_with_weight_decay_equals_adamw():
    init, grads = _problem()
    a = _run(optim.Adam(0.01, weight_decay=0.05), init, grads)
    b = _run(optim.AdamW(0.01, weight_decay=0.05), init, grads)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_adam_amsgrad_adds_velocity_hat_slot():
    w = fl.Tensor(np.ones(2))
    opt = optim.Adam(amsgrad=True)
    opt.build([w])
    assert sorted(opt.slots(w)) == ["momentum", "velocity", "velocity_hat"]


def test_adam_keras_defaults():
    opt = optim.Adam()
    assert (opt.learning_rate, opt.beta_1, opt.beta_2, opt.epsilon, opt.amsgrad, opt.name) == \
        (0.001, 0.9, 0.999, 1e-7, False, "adam")


def test_adamw_keras_defaults():
    opt = optim.AdamW()
    assert (opt.learning_rate, opt.weight_decay, opt.name) == (0.001, 0.004, "adamw")


def test_adamw_requires_weight_decay():
    assert_error(ValueError, optim.AdamW, weight_decay=None, contains=["AdamW", "weight_decay"])
