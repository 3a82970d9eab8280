"""The compiled one-pass softmax cross-entropy (fundl.kernels.fused.softmax_xent_numba, run by
fl.softmax_cross_entropy) against its NumPy reference path, PyTorch and finite differences."""
import numpy as np
import pytest

import fundl as fl
from fundl.kernels import fused
from fundl.ops import nn as ops_nn
from fundl.testing import check_op

pytestmark = pytest.mark.skipif(fused._numba is None, reason="needs Numba")


def _loss_and_grad(z, t, enabled, monkeypatch, gy=None):
    monkeypatch.setattr(fused, "_ENABLED", enabled)
    zt = fl.tensor(z, requires_grad=True)
    loss = fl.softmax_cross_entropy(zt, t)
    weights = np.ones(loss.shape, z.dtype) if gy is None else gy
    (loss * fl.tensor(weights)).sum().backward()
    return loss.numpy(), zt.grad


def _targets(kind, shape, dtype, rng):
    classes = shape[-1]
    labels = rng.integers(0, classes, shape[:-1])
    if kind == "sparse":
        return labels
    if kind == "onehot":
        return np.eye(classes, dtype=dtype)[labels]
    if kind == "onehot-int":
        return np.eye(classes, dtype=np.int64)[labels]
    soft = rng.random(shape).astype(dtype)  # soft targets, not normalised (sum(t) != 1)
    return soft


@pytest.mark.parametrize("kind", ["sparse", "onehot", "onehot-int", "soft"])
@pytest.mark.parametrize("shape", [(128, 10), (3, 5, 7), (4,)], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_matches_reference(kind, shape, dtype, monkeypatch):
    rng = np.random.default_rng(0)
    z = (rng.standard_normal(shape) * 4).astype(dtype)
    z.flat[0] = 80.0  # a large logit: the shift must keep exp finite
    t = _targets(kind, shape, dtype, rng)
    gy = rng.standard_normal(shape[:-1]).astype(dtype)
    fast = _loss_and_grad(z, t, True, monkeypatch, gy)
    ref = _loss_and_grad(z, t, False, monkeypatch, gy)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    for a, b in zip(fast, ref):
        assert a.dtype == dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_compiled_path_is_taken():
    z = np.zeros((4, 3), np.float32)
    assert ops_nn._fused_xent(z, np.zeros(4, np.int64), True, [True, False])
    assert ops_nn._fused_xent(z, z, False, [True, False])
    assert not ops_nn._fused_xent(z, z, False, [True, True])  # the targets need a gradient
    assert not ops_nn._fused_xent(np.zeros((3, 4), np.float32).T, z, False, [True, False])
    assert not ops_nn._fused_xent(z, np.zeros(4, np.float32), True, [True, False])


@pytest.mark.parametrize("sparse", [True, False])
def test_gradcheck_and_torch(sparse):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((6, 5))
    labels = rng.integers(0, 5, 6)
    t = labels if sparse else np.eye(5)[labels] * 0.7 + 0.06

    def torch_fn(a, target=t):
        import torch

        tt = torch.tensor(target)
        return torch.nn.functional.cross_entropy(a, tt, reduction="none")

    def reference(a, target=t):
        s = a - a.max(-1, keepdims=True)
        logp = s - np.log(np.exp(s).sum(-1, keepdims=True))
        if sparse:
            return -logp[np.arange(len(a)), target]
        return -(target * logp).sum(-1)

    check_op(lambda a: fl.softmax_cross_entropy(a, t), torch_fn, [z], reference=reference)


def test_targets_that_need_a_gradient_take_the_reference():
    rng = np.random.default_rng(2)
    z = fl.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    t = fl.tensor(np.full((4, 3), 1 / 3), requires_grad=True)
    fl.softmax_cross_entropy(z, t).sum().backward()
    assert t.grad is not None and z.grad is not None


def test_no_grad_keeps_nothing():
    z = fl.tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    op = ops_nn.SoftmaxCrossEntropy()
    with fl.no_grad():
        loss = op.apply(z, np.array([0, 2]))
    np.testing.assert_allclose(loss.numpy(), np.log(3.0), rtol=1e-6)
    assert op.gz is None and loss.creator is None


def test_bad_index_raises_before_or_inside_the_kernel():
    with pytest.raises(ValueError, match="SoftmaxCrossEntropy"):
        fl.softmax_cross_entropy(fl.tensor(np.zeros((2, 3))), np.array([0, 3]))
    z = np.zeros((2, 3))
    with pytest.raises(IndexError, match="class index"):
        fused.softmax_xent_numba(z, z, np.array([0, 3]), True, np.empty(2), np.empty_like(z))


def test_nan_logits_give_nan_loss(monkeypatch):
    z = np.array([[0.0, np.nan, 1.0], [0.0, 1.0, 2.0]])
    loss, grad = _loss_and_grad(z, np.array([0, 1]), True, monkeypatch)
    assert np.isnan(loss[0]) and np.isfinite(loss[1]) and np.isnan(grad[0]).all()


def test_read_only_targets_compile_no_new_signature(monkeypatch):
    """Read-only targets (a memory-mapped dataset) are copied, so the kernel keeps its one
    signature per dtype (a new one would compile in the middle of training)."""
    rng = np.random.default_rng(3)
    z = rng.standard_normal((8, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 8)
    onehot = np.eye(4, dtype=np.float32)[labels]
    for t in (labels, onehot):
        t.setflags(write=False)
    got = [_loss_and_grad(z, t, True, monkeypatch) for t in (labels, onehot)]
    signatures = [str(s) for s in fused.softmax_xent_numba.signatures]
    assert signatures and not any("readonly" in s for s in signatures), signatures
    ref = [_loss_and_grad(z, t, False, monkeypatch) for t in (labels, onehot)]
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a[0], b[0], rtol=2e-6)
