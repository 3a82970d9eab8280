"""batch_norm's fused epilogue (``residual=``, ``activation="relu"``): relu(bn(x) + r).

Checked against a NumPy reference, a float64 finite-difference gradcheck, PyTorch (the same
three ops, unfused), and bit for bit against fundl's own ops one after the other, on both the
compiled kernels (channels last) and the plain-xp path (another channel axis).
"""
import numpy as np
import pytest

import fundl as fl
from fundl.ops.norm import batch_norm
from fundl.testing import assert_error, check_op

CASES = [((6, 3), -1), ((2, 5, 4, 3), -1), ((2, 3, 4, 4), 1), ((64, 9, 8), -1)]


def _np_bn(x, gamma, beta, mean=None, var=None, axis=-1, eps=1e-3):
    axis = axis % x.ndim
    red = tuple(i for i in range(x.ndim) if i != axis)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    if mean is None:
        mean, var = x.mean(axis=red), x.var(axis=red)
    return ((x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * gamma.reshape(shape)
            + beta.reshape(shape))


def _torch_fused(axis, eps, training, residual):
    def fn(x, gamma, beta, *rest):
        import torch.nn.functional as F

        r = rest[0] if residual else None
        stats = rest[1:] if residual else rest
        mean, var = stats if stats else (None, None)
        y = F.batch_norm(x.movedim(axis, 1), mean, var, gamma, beta, training=training,
                         eps=eps).movedim(1, axis)
        return F.relu(y + r if residual else y)

    return fn


def _inputs(rng, shape, axis):
    c = shape[axis]
    # Values near zero after normalisation exercise the ReLU's mask on both sides.
    x = rng.standard_normal(shape) * 2 + 1
    return x, rng.uniform(0.5, 1.5, c), rng.standard_normal(c) * 0.5


@pytest.mark.parametrize("shape,axis", CASES, ids=str)
@pytest.mark.parametrize("residual", [False, True], ids=["relu", "add_relu"])
def test_training_fused(shape, axis, residual):
    rng = np.random.default_rng(0)
    x, gamma, beta = _inputs(rng, shape, axis)
    inputs = [x, gamma, beta] + ([rng.standard_normal(shape)] if residual else [])

    def fn(x, g, b, *r):
        return batch_norm(x, g, b, axis=axis, residual=r[0] if r else None, activation="relu")

    def ref(x, g, b, *r):
        return np.maximum(_np_bn(x, g, b, axis=axis) + (r[0] if r else 0), 0)

    check_op(fn, _torch_fused(axis, 1e-3, True, residual), inputs, reference=ref)


@pytest.mark.parametrize("shape,axis", CASES[:3], ids=str)
@pytest.mark.parametrize("residual", [False, True], ids=["relu", "add_relu"])
def test_inference_fused(shape, axis, residual):
    rng = np.random.default_rng(1)
    x, gamma, beta = _inputs(rng, shape, axis)
    c = shape[axis]
    mean, var = rng.standard_normal(c) * 0.3, rng.uniform(0.5, 2.0, c)
    r = [rng.standard_normal(shape)] if residual else []

    def fn(x, g, b, *rest):
        *r, m, v = rest
        return batch_norm(x, g, b, m, v, axis=axis, epsilon=1e-5,
                          residual=r[0] if r else None, activation="relu")

    def ref(x, g, b, *rest):
        *r, m, v = rest
        return np.maximum(_np_bn(x, g, b, m, v, axis=axis, eps=1e-5) + (r[0] if r else 0), 0)

    k = 3 + residual  # torch has no gradient for the running statistics: constant there
    check_op(fn, _torch_fused(axis, 1e-5, False, residual), [x, gamma, beta] + r + [mean, var],
             constant=(k, k + 1), reference=ref)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_fused_equals_the_ops_one_after_the_other(dtype, axis, residual, training):
    """The same values and gradients as batch_norm, then + r, then relu, as separate ops."""
    rng = np.random.default_rng(2)
    shape = (16, 6, 5, 8)
    c = shape[axis]
    arrays = [rng.standard_normal(shape) * 2 + 0.5, rng.uniform(0.5, 1.5, c),
              rng.standard_normal(c), rng.standard_normal(shape)]
    stats = [rng.standard_normal(c) * 0.3, rng.uniform(0.5, 2.0, c)] if not training else []
    gy = rng.standard_normal(shape).astype(dtype)
    results = []
    for fused in (True, False):
        x, g, b, r = (fl.tensor(a.astype(dtype), requires_grad=True) for a in arrays)
        st = [fl.tensor(a.astype(dtype), requires_grad=True) for a in stats]
        if fused:
            y = batch_norm(x, g, b, *st, axis=axis, residual=r if residual else None,
                           activation="relu")
        else:
            y = batch_norm(x, g, b, *st, axis=axis)
            y = fl.relu(y + r if residual else y)
        y.backward(gy)
        grads = [t.grad for t in [x, g, b] + st + ([r] if residual else [])]
        results.append([y.numpy()] + grads)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(results[0][0], results[1][0])  # the same float ops
    for a, b in zip(results[0][1:], results[1][1:]):
        np.testing.assert_allclose(a, b, **tol)


def test_masked_positions_get_no_gradient():
    rng = np.random.default_rng(3)
    x = fl.tensor(rng.standard_normal((32, 4, 4, 8)).astype("float32"), requires_grad=True)
    r = fl.tensor(rng.standard_normal((32, 4, 4, 8)).astype("float32"), requires_grad=True)
    g, b = fl.ones(8), fl.zeros(8)
    y = batch_norm(x, g, b, residual=r, activation="relu")
    y.backward(np.ones(y.shape, "float32"))
    np.testing.assert_array_equal(r.grad, (y.numpy() > 0).astype("float32"))


def test_no_grad_keeps_nothing():
    x = fl.tensor(np.random.default_rng(4).standard_normal((8, 3)))
    with fl.no_grad():
        y = batch_norm(x, fl.ones(3), fl.zeros(3), activation="relu")
    assert y.creator is None and (y.numpy() >= 0).all()


def test_errors():
    x = fl.tensor(np.zeros((4, 3)))
    g, b = fl.ones(3), fl.zeros(3)
    assert_error(ValueError, batch_norm, x, g, b, activation="tanh",
                 contains=["activation", "'relu'", "'tanh'"])
    assert_error(ValueError, batch_norm, x, g, b, residual=fl.tensor(np.zeros((4, 2))),
                 contains=["BatchNorm", "(4, 3)", "(4, 2)"])
