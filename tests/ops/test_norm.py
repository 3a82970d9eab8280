"""batch_norm, layer_norm and local_response_norm: values, gradients, PyTorch, errors.

Every op goes through ``fundl.testing.check_op`` (NumPy reference, float64 gradcheck, float32
gradient shapes, and PyTorch when installed); torch is imported lazily inside the references,
so everything but the PyTorch comparison runs without it.
"""
import numpy as np
import pytest

import fundl as fl
from fundl.ops.norm import batch_norm, layer_norm, local_response_norm
from fundl.testing import assert_error, check_op, gradcheck


def _F():
    import torch.nn.functional

    return torch.nn.functional


# -- NumPy references ---------------------------------------------------------------------------

def _np_batch_norm(x, gamma, beta, mean=None, var=None, axis=-1, eps=1e-3):
    axis = axis % x.ndim
    red = tuple(i for i in range(x.ndim) if i != axis)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    if mean is None:
        mean, var = x.mean(axis=red), x.var(axis=red)
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    if gamma is not None:
        y = y * gamma.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return y


def _np_layer_norm(x, gamma, beta, axis=-1, eps=1e-3):
    axes = tuple(sorted(a % x.ndim for a in (axis if isinstance(axis, tuple) else (axis,))))
    pshape = [x.shape[i] if i in axes else 1 for i in range(x.ndim)]
    y = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    if gamma is not None:
        y = y * gamma.reshape(pshape)
    if beta is not None:
        y = y + beta.reshape(pshape)
    return y


def _np_lrn(x, r, bias, alpha, beta):
    c = x.shape[-1]
    sq = x * x
    s = np.stack([sq[..., max(0, i - r):i + r + 1].sum(axis=-1) for i in range(c)], axis=-1)
    return x / (bias + alpha * s) ** beta


# -- PyTorch equivalents (channels moved to axis 1 / normalised axes moved last) ---------------

def _torch_batch_norm(axis, eps, training):
    def fn(x, gamma, beta, mean=None, var=None):
        t = x.movedim(axis, 1)
        y = _F().batch_norm(t, mean, var, gamma, beta, training=training, eps=eps)
        return y.movedim(1, axis)

    return fn


def _torch_layer_norm(axes, eps):
    def fn(x, gamma, beta):
        nd = x.dim()
        ax = sorted(a % nd for a in axes)
        rest = [i for i in range(nd) if i not in ax]
        t = x.permute(*rest, *ax)
        y = _F().layer_norm(t, tuple(x.shape[a] for a in ax), gamma, beta, eps)
        inverse = [0] * nd
        for pos, i in enumerate(rest + ax):
            inverse[i] = pos
        return y.permute(*inverse)

    return fn


def _torch_lrn(r, bias, alpha, beta):
    size = 2 * r + 1

    def fn(x):
        t = x.movedim(-1, 1)
        flat = t.dim() == 2  # torch wants at least (N, C, L)
        if flat:
            t = t[..., None]
        y = _F().local_response_norm(t, size, alpha=alpha * size, beta=beta, k=bias)
        if flat:
            y = y[..., 0]
        return y.movedim(1, -1)

    return fn


# -- batch_norm -----------------------------------------------------------------------------------

BN_CASES = [((6, 3), -1), ((6, 3), 1), ((3, 4, 5), 1), ((2, 3, 3, 4), -1), ((2, 4, 3, 3), 1),
            ((2, 3, 2, 3), 0)]


def _bn_params(rng, c):
    return rng.uniform(0.5, 1.5, c), rng.standard_normal(c)


@pytest.mark.parametrize("shape,axis", BN_CASES, ids=str)
def test_batch_norm_training(shape, axis):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape) * 2 + 1
    gamma, beta = _bn_params(rng, shape[axis])
    check_op(lambda x, g, b: batch_norm(x, g, b, axis=axis, epsilon=1e-3),
             _torch_batch_norm(axis, 1e-3, True), [x, gamma, beta],
             reference=lambda x, g, b: _np_batch_norm(x, g, b, axis=axis, eps=1e-3))


@pytest.mark.parametrize("shape,axis", BN_CASES[:4], ids=str)
def test_batch_norm_inference(shape, axis):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    c = shape[axis]
    gamma, beta = _bn_params(rng, c)
    mean, var = rng.standard_normal(c) * 0.3, rng.uniform(0.5, 2.0, c)
    # torch.batch_norm has no gradient for the running statistics: compare with them constant
    check_op(lambda x, g, b, m, v: batch_norm(x, g, b, m, v, axis=axis, epsilon=1e-5),
             _torch_batch_norm(axis, 1e-5, False), [x, gamma, beta, mean, var], constant=(3, 4),
             reference=lambda x, g, b, m, v: _np_batch_norm(x, g, b, m, v, axis=axis, eps=1e-5))


def test_batch_norm_inference_statistics_are_differentiable():
    rng = np.random.default_rng(2)
    x = fl.tensor(rng.standard_normal((5, 3)))
    g, b = (fl.tensor(a, requires_grad=True) for a in _bn_params(rng, 3))
    m = fl.tensor(rng.standard_normal(3), requires_grad=True)
    v = fl.tensor(rng.uniform(0.5, 2.0, 3), requires_grad=True)
    assert gradcheck(lambda *a: batch_norm(*a), [x, g, b, m, v])


@pytest.mark.parametrize("use_gamma,use_beta", [(False, True), (True, False), (False, False)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_without_gamma_or_beta(use_gamma, use_beta, training):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 2, 3))
    gamma, beta = _bn_params(rng, 3)
    stats = [] if training else [rng.standard_normal(3), rng.uniform(0.5, 2.0, 3)]
    args = [x] + ([gamma] if use_gamma else []) + ([beta] if use_beta else []) + stats

    def split(a):
        a = list(a)
        x = a.pop(0)
        g = a.pop(0) if use_gamma else None
        b = a.pop(0) if use_beta else None
        return x, g, b, a

    def fn(*a):
        x, g, b, st = split(a)
        return batch_norm(x, g, b, *st)

    def ref(*a):
        x, g, b, st = split(a)
        return _np_batch_norm(x, g, b, *st)

    check_op(fn, None, args, reference=ref)


def test_batch_norm_return_stats_are_the_batch_mean_and_biased_variance():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4, 5, 2))
    t = fl.tensor(x, requires_grad=True)
    y, m, v = batch_norm(t, fl.ones(2, dtype="float64"), fl.zeros(2, dtype="float64"),
                         return_stats=True)
    np.testing.assert_allclose(m.numpy(), x.mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(v.numpy(), x.var(axis=(0, 1, 2)), rtol=1e-12)
    assert y.requires_grad and not m.requires_grad and not v.requires_grad


def test_batch_norm_return_stats_in_inference_gives_copies_of_the_inputs():
    mean, var = np.array([0.5, -1.0]), np.array([2.0, 3.0])
    _, m, v = batch_norm(fl.ones(4, 2, dtype="float64"), None, None, mean, var, return_stats=True)
    mean[0] = 9.0  # the caller mutating its array afterwards must not change the result
    np.testing.assert_array_equal(m.numpy(), [0.5, -1.0])
    np.testing.assert_array_equal(v.numpy(), [2.0, 3.0])


def test_batch_norm_float32_is_stable_with_a_large_mean():
    # E[x^2] - E[x]^2 would lose every digit here in float32; the two-pass form must not
    x = (1000.0 + np.random.default_rng(5).standard_normal((64, 8))).astype(np.float32)
    y = batch_norm(fl.tensor(x), None, None).numpy()
    expected = _np_batch_norm(x.astype(np.float64), None, None)
    np.testing.assert_allclose(y, expected, atol=2e-3)


def test_batch_norm_float32_stays_float32():
    x = fl.randn(4, 3, requires_grad=True)
    g, b = fl.ones(3, requires_grad=True), fl.zeros(3, requires_grad=True)
    y = batch_norm(x, g, b)
    (y * y).sum().backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32 and g.grad.dtype == np.float32


def test_batch_norm_error_parameter_shape():
    x = fl.zeros(4, 5, 3)
    assert_error(ValueError, batch_norm, x, fl.ones(5), fl.zeros(3),
                 contains=["BatchNorm", "gamma", "(3,)", "(5,)", "(4, 5, 3)"])


def test_batch_norm_error_axis_out_of_range():
    assert_error(ValueError, batch_norm, fl.zeros(4, 3), fl.ones(3), fl.zeros(3), axis=2,
                 contains=["BatchNorm", "axis 2", "rank 2"])


def test_batch_norm_error_tuple_axis():
    assert_error(TypeError, batch_norm, fl.zeros(4, 3), None, None, axis=(0, 1),
                 contains=["BatchNorm", "axis", "int"])


def test_batch_norm_error_mean_without_var():
    assert_error(ValueError, batch_norm, fl.zeros(4, 3), None, None, mean=fl.zeros(3),
                 contains=["BatchNorm", "mean", "var"])


def test_batch_norm_error_integer_input():
    assert_error(TypeError, batch_norm, fl.tensor(np.zeros((4, 3), dtype=np.int64)), None, None,
                 contains=["BatchNorm", "int64"])


def test_batch_norm_error_epsilon():
    assert_error(TypeError, batch_norm, fl.zeros(4, 3), None, None, epsilon="1e-3",
                 contains=["BatchNorm", "epsilon"])
    assert_error(ValueError, batch_norm, fl.zeros(4, 3), None, None, epsilon=-1.0,
                 contains=["BatchNorm", "epsilon", "-1.0"])


def test_batch_norm_error_empty_batch_in_training():
    assert_error(ValueError, batch_norm, fl.zeros(0, 3), None, None,
                 contains=["BatchNorm", "empty", "(0, 3)"])


# -- layer_norm -----------------------------------------------------------------------------------

LN_CASES = [((4, 6), -1), ((2, 3, 4), -1), ((2, 3, 4), (1, 2)), ((2, 3, 4), 1),
            ((2, 3, 2, 3), (1, 3)), ((2, 3, 4), (-1, 0)), ((5,), 0)]


@pytest.mark.parametrize("shape,axis", LN_CASES, ids=str)
def test_layer_norm(shape, axis):
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape) * 2 + 0.5
    axes = axis if isinstance(axis, tuple) else (axis,)
    pshape = tuple(shape[a % len(shape)] for a in sorted(a % len(shape) for a in axes))
    gamma, beta = rng.uniform(0.5, 1.5, pshape), rng.standard_normal(pshape)
    check_op(lambda x, g, b: layer_norm(x, g, b, axis=axis, epsilon=1e-3),
             _torch_layer_norm(axes, 1e-3), [x, gamma, beta],
             reference=lambda x, g, b: _np_layer_norm(x, g, b, axis=axis, eps=1e-3))


@pytest.mark.parametrize("use_gamma,use_beta", [(False, True), (True, False), (False, False)])
def test_layer_norm_without_gamma_or_beta(use_gamma, use_beta):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 5))
    gamma, beta = rng.uniform(0.5, 1.5, 5), rng.standard_normal(5)
    args = [x] + ([gamma] if use_gamma else []) + ([beta] if use_beta else [])

    def split(a):
        g = a[1] if use_gamma else None
        b = a[1 + use_gamma] if use_beta else None
        return a[0], g, b

    check_op(lambda *a: layer_norm(*split(a)), None, args,
             reference=lambda *a: _np_layer_norm(*split(a)))


def test_layer_norm_output_does_not_alias_saved_state():
    # with neither gamma nor beta the output must still be a fresh array (callers may mutate it)
    x = np.random.default_rng(8).standard_normal((2, 4))
    g = np.arange(8.0).reshape(2, 4)
    ref = fl.tensor(x, requires_grad=True)
    layer_norm(ref, None, None).backward(g)
    t = fl.tensor(x, requires_grad=True)
    y = layer_norm(t, None, None)
    y.data[...] = 0.0
    y.backward(g)
    np.testing.assert_allclose(t.grad, ref.grad, rtol=1e-12)


def test_layer_norm_error_parameter_shape():
    assert_error(ValueError, layer_norm, fl.zeros(2, 3, 4), fl.ones(4), fl.zeros(4), axis=(1, 2),
                 contains=["LayerNorm", "gamma", "(3, 4)", "(4,)", "(2, 3, 4)"])


def test_layer_norm_error_repeated_axis():
    assert_error(ValueError, layer_norm, fl.zeros(2, 3), None, None, axis=(1, -1),
                 contains=["LayerNorm", "repeated"])


def test_layer_norm_error_axis_type():
    assert_error(TypeError, layer_norm, fl.zeros(2, 3), None, None, axis=1.0,
                 contains=["LayerNorm", "axis", "1.0"])


def test_layer_norm_error_axis_out_of_range():
    assert_error(ValueError, layer_norm, fl.zeros(2, 3), None, None, axis=-3,
                 contains=["LayerNorm", "axis -3", "rank 2"])


# -- local_response_norm --------------------------------------------------------------------------

LRN_CASES = [((2, 3, 3, 7), 2, 2.0, 0.1, 0.75), ((2, 2, 2, 8), 5, 1.0, 1.0, 0.5),
             ((3, 4), 5, 1.0, 0.5, 0.5), ((2, 2, 5), 0, 0.5, 0.3, 1.0),
             ((2, 2, 6), 1, 1.0, 0.2, 0.0)]


@pytest.mark.parametrize("shape,r,bias,alpha,beta", LRN_CASES, ids=str)
def test_local_response_norm(shape, r, bias, alpha, beta):
    x = np.random.default_rng(9).standard_normal(shape)
    check_op(lambda x: local_response_norm(x, r, bias, alpha, beta),
             _torch_lrn(r, bias, alpha, beta), [x], reference=lambda x: _np_lrn(x, r, bias, alpha, beta))


def test_local_response_norm_defaults_are_tensorflows():
    # tf.nn.local_response_normalization: depth_radius=5, bias=1, alpha=1, beta=0.5
    x = np.random.default_rng(10).standard_normal((2, 3, 3, 12))
    np.testing.assert_allclose(local_response_norm(fl.tensor(x)).numpy(),
                               _np_lrn(x, 5, 1.0, 1.0, 0.5), rtol=1e-12)


def test_local_response_norm_error_radius():
    assert_error(ValueError, local_response_norm, fl.zeros(2, 3), -1,
                 contains=["LocalResponseNorm", "depth_radius", "-1"])
    assert_error(TypeError, local_response_norm, fl.zeros(2, 3), 2.5,
                 contains=["LocalResponseNorm", "depth_radius", "2.5"])


def test_local_response_norm_error_integer_input():
    assert_error(TypeError, local_response_norm, fl.tensor(np.ones((2, 3), dtype=np.int32)),
                 contains=["LocalResponseNorm", "int32"])


def test_local_response_norm_error_scalar_input():
    assert_error(ValueError, local_response_norm, fl.tensor(1.0),
                 contains=["LocalResponseNorm", "0-d"])
