"""Softmax, log-softmax and the fused cross-entropies: values, gradients, stability, errors.

Every op goes through ``fundl.testing.check_op``; its PyTorch comparison runs only when torch
is installed, so torch is imported lazily inside the reference lambdas.
"""
import numpy as np
import pytest

import fundl as fl
from fundl.testing import assert_error, check_op


def _F():
    import torch.nn.functional

    return torch.nn.functional


def _np_log_softmax(x, axis=-1):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def _np_sce(z, t):
    """Cross-entropy from class indices or from a distribution of z's shape."""
    logp = _np_log_softmax(z)
    if t.shape == z.shape:
        return -(t * logp).sum(axis=-1)
    return -np.take_along_axis(logp, t[..., None], axis=-1)[..., 0]


def _torch_sce(z, t):
    """PyTorch's cross_entropy wants the class axis second."""
    if z.dim() == 1:
        return _F().cross_entropy(z[None], t[None], reduction="none")[0]
    return _F().cross_entropy(z.movedim(-1, 1), t.movedim(-1, 1) if t.shape == z.shape else t,
                              reduction="none")


def _soft_targets(rng, shape):
    t = rng.uniform(0.1, 1.0, shape)
    return t / t.sum(axis=-1, keepdims=True)


# -- softmax and log_softmax -----------------------------------------------------------------

SOFTMAX_CASES = [((3, 4), -1), ((3, 4), 0), ((3, 4), 1), ((2, 3, 4), -1), ((2, 3, 4), 1),
                 ((2, 3, 4), 0), ((5,), -1), ((5,), 0), ((4, 1), -1)]


@pytest.mark.parametrize("shape,axis", SOFTMAX_CASES, ids=str)
def test_softmax(shape, axis):
    x = np.random.default_rng(0).standard_normal(shape) * 2
    check_op(lambda t: fl.softmax(t, axis), lambda a: a.softmax(axis), [x],
             reference=lambda a: np.exp(_np_log_softmax(a, axis)))


@pytest.mark.parametrize("shape,axis", SOFTMAX_CASES, ids=str)
def test_log_softmax(shape, axis):
    x = np.random.default_rng(1).standard_normal(shape) * 2
    check_op(lambda t: fl.log_softmax(t, axis), lambda a: a.log_softmax(axis), [x],
             reference=lambda a: _np_log_softmax(a, axis))


def test_softmax_default_axis_is_last():
    x = fl.tensor(np.random.default_rng(2).standard_normal((2, 3)))
    np.testing.assert_allclose(fl.softmax(x).numpy().sum(axis=-1), [1.0, 1.0], rtol=1e-15)
    np.testing.assert_allclose(x.softmax().numpy(), fl.softmax(x, axis=1).numpy(), rtol=0)
    np.testing.assert_allclose(x.log_softmax().numpy(), fl.log_softmax(x, 1).numpy(), rtol=0)


def test_softmax_axis_out_of_range():
    assert_error(ValueError, fl.softmax, fl.ones(2, 3), 2, contains=["Softmax", "(2, 3)"])


EXTREME_LOGITS = np.array([[1000.0, 0.0, -1000.0], [-1000.0, -1000.0, 1000.0],
                           [1000.0, 1000.0, -1000.0], [-1000.0, 0.0, 0.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_extreme_logits_finite(name, dtype):
    x = fl.tensor(EXTREME_LOGITS.astype(dtype), requires_grad=True)
    y = getattr(fl, name)(x)
    y.backward(np.linspace(-1, 1, x.size).reshape(x.shape).astype(dtype))
    assert y.dtype == dtype and x.grad.dtype == dtype
    assert np.isfinite(y.numpy()).all() and np.isfinite(x.grad).all()
    expected = np.exp(_np_log_softmax(EXTREME_LOGITS)) if name == "softmax" else \
        _np_log_softmax(EXTREME_LOGITS)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_extreme_logits_match_torch(name, dtype):
    torch = pytest.importorskip("torch")
    x = fl.tensor(EXTREME_LOGITS.astype(dtype), requires_grad=True)
    tx = torch.tensor(EXTREME_LOGITS.astype(dtype), requires_grad=True)
    g = np.linspace(-1, 1, x.size).reshape(x.shape).astype(dtype)
    y, ty = getattr(fl, name)(x), getattr(torch, name)(tx, -1)
    y.backward(g)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-6, atol=1e-6)


# -- softmax_cross_entropy -------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4), (5,), (1, 3)], ids=str)
def test_sce_class_indices(shape):
    rng = np.random.default_rng(3)
    z = rng.standard_normal(shape) * 2
    t = np.asarray(rng.integers(0, shape[-1], shape[:-1]))
    check_op(fl.softmax_cross_entropy, _torch_sce, [z, t], reference=_np_sce)


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.int64])
def test_sce_integer_dtypes(dtype):
    z = np.random.default_rng(4).standard_normal((3, 4))
    t = np.array([0, 3, 2], dtype=dtype)
    check_op(fl.softmax_cross_entropy, None, [z, t],
             reference=lambda a, b: _np_sce(a, b.astype(np.int64)))


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4), (5,)], ids=str)
def test_sce_one_hot(shape):
    rng = np.random.default_rng(5)
    z = rng.standard_normal(shape) * 2
    t = np.eye(shape[-1])[rng.integers(0, shape[-1], shape[:-1])]
    check_op(fl.softmax_cross_entropy, _torch_sce, [z, t], reference=_np_sce, constant=(1,))


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4)], ids=str)
def test_sce_soft_targets_with_target_gradient(shape):
    rng = np.random.default_rng(6)
    z = rng.standard_normal(shape) * 2
    check_op(fl.softmax_cross_entropy, _torch_sce, [z, _soft_targets(rng, shape)],
             reference=_np_sce)


def test_sce_unnormalised_targets():
    """Targets that do not sum to 1 still give -sum(t log softmax(z)) and its exact gradient."""
    rng = np.random.default_rng(7)
    z, t = rng.standard_normal((3, 4)), rng.uniform(0.0, 2.0, (3, 4))
    check_op(fl.softmax_cross_entropy, _torch_sce, [z, t], reference=_np_sce)


def test_sce_integer_one_hot_equals_class_indices():
    z = fl.tensor(np.random.default_rng(8).standard_normal((3, 4)), requires_grad=True)
    idx = np.array([1, 0, 3])
    a = fl.softmax_cross_entropy(z, idx)
    b = fl.softmax_cross_entropy(z, np.eye(4, dtype=np.int64)[idx])
    assert b.dtype == np.float64
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-14)
    a.sum().backward()
    ga = z.grad
    z.grad = None
    b.sum().backward()
    np.testing.assert_allclose(z.grad, ga, rtol=1e-14, atol=1e-16)


def test_sce_one_hot_gradient_is_softmax_minus_target():
    z = np.random.default_rng(9).standard_normal((3, 4))
    t = np.eye(4)[[2, 0, 1]]
    zt = fl.tensor(z, requires_grad=True)
    fl.softmax_cross_entropy(zt, t).sum().backward()
    np.testing.assert_allclose(zt.grad, np.exp(_np_log_softmax(z)) - t, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sce_keeps_logits_dtype(dtype):
    z = fl.tensor(np.zeros((2, 3), dtype=dtype), requires_grad=True)
    for t in (np.array([0, 2]), np.eye(3, dtype=dtype)[[0, 2]]):
        z.grad = None
        loss = fl.softmax_cross_entropy(z, t)
        assert loss.dtype == dtype and loss.shape == (2,)
        np.testing.assert_allclose(loss.numpy(), np.log(3.0), rtol=1e-6)
        loss.sum().backward()
        assert z.grad.dtype == dtype


def test_sce_backward_twice_with_retained_graph():
    """The backward does not modify what it saved: a second pass gives the same gradient."""
    z = fl.tensor(np.random.default_rng(10).standard_normal((3, 4)), requires_grad=True)
    loss = fl.softmax_cross_entropy(z, np.array([0, 1, 3])).sum()
    loss.backward(retain_graph=True)
    first = z.grad.copy()
    loss.backward()
    np.testing.assert_allclose(z.grad, 2 * first, rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("targets", ["indices", "one-hot"])
def test_sce_extreme_logits(targets, dtype):
    torch = pytest.importorskip("torch")
    idx = np.array([1, 2, 2, 0])
    t = idx if targets == "indices" else np.eye(3, dtype=dtype)[idx]
    z = fl.tensor(EXTREME_LOGITS.astype(dtype), requires_grad=True)
    loss = fl.softmax_cross_entropy(z, t)
    loss.sum().backward()
    assert loss.dtype == dtype and z.grad.dtype == dtype
    assert np.isfinite(loss.numpy()).all() and np.isfinite(z.grad).all()
    log2 = np.log(2.0)
    np.testing.assert_allclose(loss.numpy(), [1000.0, 0.0, 2000.0 + log2, 1000.0 + log2], rtol=1e-6)
    tz = torch.tensor(EXTREME_LOGITS.astype(dtype), requires_grad=True)
    tl = _F().cross_entropy(tz, torch.tensor(t), reduction="none")
    tl.sum().backward()
    np.testing.assert_allclose(loss.numpy(), tl.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(z.grad, tz.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_sce_extreme_logits_finite_without_torch():
    z = fl.tensor(EXTREME_LOGITS.astype(np.float32), requires_grad=True)
    loss = fl.softmax_cross_entropy(z, np.array([2, 0, 1, 1]))
    loss.sum().backward()
    np.testing.assert_allclose(loss.numpy(), [2000.0, 2000.0, np.log(2.0), np.log(2.0)], rtol=1e-6)
    expected = np.exp(_np_log_softmax(EXTREME_LOGITS)) - np.eye(3)[[2, 0, 1, 1]]
    np.testing.assert_allclose(z.grad, expected, atol=1e-6)


@pytest.mark.parametrize("target_shape", [(5,), (4, 1), (4, 5), (2, 4)], ids=str)
def test_sce_wrong_integer_target_shape(target_shape):
    e = assert_error(ValueError, fl.softmax_cross_entropy, fl.ones(4, 3),
                     np.zeros(target_shape, dtype=np.int64),
                     contains=["SoftmaxCrossEntropy", "(4, 3)", str(target_shape)])
    assert "(4,)" in str(e)  # the shape it expected


def test_sce_wrong_distribution_shape():
    assert_error(ValueError, fl.softmax_cross_entropy, fl.ones(4, 3), np.full((4, 2), 0.5),
                 contains=["SoftmaxCrossEntropy", "(4, 3)", "(4, 2)"])


def test_sce_float_class_indices_are_rejected():
    """Float labels of shape (N,) are ambiguous: the message says to use integers or one-hot."""
    assert_error(ValueError, fl.softmax_cross_entropy, fl.ones(4, 3), np.array([0.0, 1, 2, 1]),
                 contains=["SoftmaxCrossEntropy", "(4,)", "(4, 3)", "integer"])


@pytest.mark.parametrize("bad", [3, -1, 10])
def test_sce_class_index_out_of_range(bad):
    assert_error(ValueError, fl.softmax_cross_entropy, fl.ones(4, 3), np.array([0, 1, bad, 2]),
                 contains=["SoftmaxCrossEntropy", "[0, 3)", str(bad)])


def test_sce_needs_a_class_axis():
    assert_error(ValueError, fl.softmax_cross_entropy, fl.tensor(1.0), np.array(0),
                 contains=["SoftmaxCrossEntropy", "0-d"])


# -- sigmoid_binary_cross_entropy ------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4, 3), (5,), (), (2, 3, 2)], ids=str)
def test_sbce_soft_targets_with_target_gradient(shape):
    rng = np.random.default_rng(11)
    z, t = np.asarray(rng.standard_normal(shape) * 3), np.asarray(rng.uniform(0.0, 1.0, shape))
    check_op(fl.sigmoid_binary_cross_entropy,
             lambda a, b: _F().binary_cross_entropy_with_logits(a, b, reduction="none"), [z, t],
             reference=lambda a, b: -(b * np.log(1 / (1 + np.exp(-a)))
                                      + (1 - b) * np.log(1 - 1 / (1 + np.exp(-a)))))


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.bool_])
def test_sbce_label_targets(dtype):
    rng = np.random.default_rng(12)
    z, t = rng.standard_normal((4, 3)) * 3, (rng.random((4, 3)) < 0.5).astype(dtype)
    check_op(fl.sigmoid_binary_cross_entropy,
             lambda a, b: _F().binary_cross_entropy_with_logits(a, b.double(), reduction="none"),
             [z, t], reference=lambda a, b: np.logaddexp(0, a) - a * b, constant=(1,))


def test_sbce_gradient_is_sigmoid_minus_target():
    z = np.array([-2.0, 0.0, 3.0])
    t = np.array([1.0, 0.5, 0.0])
    zt = fl.tensor(z, requires_grad=True)
    fl.sigmoid_binary_cross_entropy(zt, t).sum().backward()
    np.testing.assert_allclose(zt.grad, 1 / (1 + np.exp(-z)) - t, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sbce_extreme_logits(dtype):
    z = np.array([-1000.0, -1000.0, 1000.0, 1000.0, 0.0])
    t = np.array([0.0, 1.0, 0.0, 1.0, 1.0])
    zt = fl.tensor(z.astype(dtype), requires_grad=True)
    loss = fl.sigmoid_binary_cross_entropy(zt, t.astype(dtype))
    loss.sum().backward()
    assert loss.dtype == dtype and zt.grad.dtype == dtype
    np.testing.assert_allclose(loss.numpy(), [0.0, 1000.0, 1000.0, 0.0, np.log(2.0)], rtol=1e-6)
    np.testing.assert_allclose(zt.grad, [0.0, -1.0, 1.0, 0.0, -0.5], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sbce_extreme_logits_match_torch(dtype):
    torch = pytest.importorskip("torch")
    z = np.array([-1000.0, -1000.0, 1000.0, 1000.0, -30.0, 30.0, 0.5]).astype(dtype)
    t = np.array([0.0, 1.0, 0.0, 1.0, 0.3, 0.7, 0.5]).astype(dtype)
    zt = fl.tensor(z, requires_grad=True)
    tt = fl.tensor(t, requires_grad=True)
    tz, ttt = torch.tensor(z, requires_grad=True), torch.tensor(t, requires_grad=True)
    g = np.linspace(-1, 1, z.size).astype(dtype)
    fl.sigmoid_binary_cross_entropy(zt, tt).backward(g)
    tl = _F().binary_cross_entropy_with_logits(tz, ttt, reduction="none")
    tl.backward(torch.tensor(g))
    np.testing.assert_allclose(fl.sigmoid_binary_cross_entropy(zt, tt).numpy(),
                               tl.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(zt.grad, tz.grad.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(tt.grad, ttt.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_sbce_float32_logits_with_float64_targets():
    z = fl.tensor(np.array([0.5, -0.5], dtype=np.float32), requires_grad=True)
    loss = fl.sigmoid_binary_cross_entropy(z, np.array([1.0, 0.0]))
    assert loss.dtype == np.float64
    loss.sum().backward()
    assert z.grad.dtype == np.float32


@pytest.mark.parametrize("target_shape", [(4,), (4, 1), (3, 4)], ids=str)
def test_sbce_shape_mismatch(target_shape):
    assert_error(ValueError, fl.sigmoid_binary_cross_entropy, fl.ones(4, 3),
                 np.zeros(target_shape), contains=["SigmoidBinaryCrossEntropy", "(4, 3)",
                                                   str(target_shape)])
