"""Activations: forward, gradients, method forms, dtypes, |x| = 1000, step's zero gradient.

Every op goes through ``fundl.testing.check_op``. The PyTorch side is only called when torch
is installed (check_op skips it otherwise), so the module imports torch lazily.
"""
import numpy as np
import pytest

import fundl as fl
from fundl.testing import assert_error, check_op


def _F():
    import torch.nn.functional

    return torch.nn.functional


def _signed(rng, shape, lo=0.1, hi=2.0):
    """|v| in [lo, hi] with random signs: never within 0.1 of the kink at 0."""
    return np.asarray(rng.uniform(lo, hi, shape) * rng.choice([-1.0, 1.0], shape))


def _np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


ACTIVATIONS = {  # name: (fundl function, PyTorch function, NumPy reference)
    "relu": (fl.relu, lambda a: a.relu(), lambda x: np.maximum(x, 0.0)),
    "leaky_relu(default 0.2)": (fl.leaky_relu, lambda a: _F().leaky_relu(a, 0.2),
                                lambda x: np.where(x > 0, x, 0.2 * x)),
    "leaky_relu(0.01)": (lambda t: fl.leaky_relu(t, 0.01), lambda a: _F().leaky_relu(a, 0.01),
                         lambda x: np.where(x > 0, x, 0.01 * x)),
    "leaky_relu(0)": (lambda t: fl.leaky_relu(t, 0.0), lambda a: _F().leaky_relu(a, 0.0),
                      lambda x: np.maximum(x, 0.0)),
    "leaky_relu(1.5)": (lambda t: fl.leaky_relu(t, 1.5), lambda a: _F().leaky_relu(a, 1.5),
                        lambda x: np.where(x > 0, x, 1.5 * x)),
    "leaky_relu(-0.5)": (lambda t: fl.leaky_relu(t, -0.5), lambda a: _F().leaky_relu(a, -0.5),
                         lambda x: np.where(x > 0, x, -0.5 * x)),
    "elu": (fl.elu, lambda a: _F().elu(a), lambda x: np.where(x > 0, x, np.exp(x) - 1)),
    "elu(0.5)": (lambda t: fl.elu(t, 0.5), lambda a: _F().elu(a, 0.5),
                 lambda x: np.where(x > 0, x, 0.5 * (np.exp(x) - 1))),
    "elu(2)": (lambda t: fl.elu(t, 2.0), lambda a: _F().elu(a, 2.0),
               lambda x: np.where(x > 0, x, 2.0 * (np.exp(x) - 1))),
    "sigmoid": (fl.sigmoid, lambda a: a.sigmoid(), _np_sigmoid),
    "tanh": (fl.tanh, lambda a: a.tanh(), np.tanh),
    "gaussian": (fl.gaussian, lambda a: (-(a * a)).exp(), lambda x: np.exp(-x * x)),
    "gaussian(0.5)": (lambda t: fl.gaussian(t, 0.5), lambda a: (-(a * a) / 0.25).exp(),
                      lambda x: np.exp(-x * x / 0.25)),
    "gaussian(-2)": (lambda t: fl.gaussian(t, sigma=-2.0), lambda a: (-(a * a) / 4.0).exp(),
                     lambda x: np.exp(-x * x / 4.0)),
    "softplus": (fl.softplus, lambda a: _F().softplus(a), lambda x: np.log1p(np.exp(x))),
    # the Tensor method forms
    "x.relu()": (lambda t: t.relu(), lambda a: a.relu(), lambda x: np.maximum(x, 0.0)),
    "x.leaky_relu()": (lambda t: t.leaky_relu(), lambda a: _F().leaky_relu(a, 0.2),
                       lambda x: np.where(x > 0, x, 0.2 * x)),
    "x.elu()": (lambda t: t.elu(), lambda a: _F().elu(a),
                lambda x: np.where(x > 0, x, np.expm1(x))),
    "x.sigmoid()": (lambda t: t.sigmoid(), lambda a: a.sigmoid(), _np_sigmoid),
    "x.tanh()": (lambda t: t.tanh(), lambda a: a.tanh(), np.tanh),
    "x.softplus()": (lambda t: t.softplus(), lambda a: _F().softplus(a),
                     lambda x: np.log1p(np.exp(x))),
}


@pytest.mark.parametrize("shape", [(3, 4), (), (2, 3, 4)], ids=str)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation(name, shape):
    fn, torch_fn, ref = ACTIVATIONS[name]
    x = _signed(np.random.default_rng(0), shape)
    check_op(fn, torch_fn, [x], reference=ref)


@pytest.mark.parametrize("name", ["relu", "leaky_relu(default 0.2)", "elu", "sigmoid", "tanh",
                                  "gaussian", "softplus"])
def test_keeps_float32(name):
    fn = ACTIVATIONS[name][0]
    x = fl.tensor(np.array([-1.5, 0.5, 2.0], dtype=np.float32), requires_grad=True)
    y = fn(x)
    assert y.dtype == np.float32 and y.shape == (3,)
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_relu_gradient_is_zero_at_and_below_zero():
    x = fl.tensor(np.array([-1.0, 0.0, 2.0]), requires_grad=True)
    fl.relu(x).backward(np.array([5.0, 5.0, 5.0]))
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 5.0])


@pytest.mark.parametrize("slope", [0.2, 1.5])
def test_leaky_relu_gradient_is_slope_at_and_below_zero(slope):
    x = fl.tensor(np.array([-1.0, 0.0, 2.0]), requires_grad=True)
    y = fl.leaky_relu(x, slope)
    np.testing.assert_array_equal(y.numpy(), [-slope, 0.0, 2.0])
    y.backward(np.ones(3))
    np.testing.assert_array_equal(x.grad, [slope, slope, 1.0])


def test_elu_gradient_is_alpha_at_zero():
    x = fl.tensor(np.array([0.0]), requires_grad=True)
    fl.elu(x, 0.7).backward(np.ones(1))
    np.testing.assert_allclose(x.grad, [0.7], rtol=1e-15)


def test_step_forward_is_heaviside_with_zero_at_zero():
    x = fl.tensor(np.array([-2.0, -1e-30, 0.0, 1e-30, 3.0], dtype=np.float32))
    y = fl.step(x)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.numpy(), [0.0, 0.0, 0.0, 1.0, 1.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_step_gradient_is_exactly_zero(dtype):
    x = fl.tensor(np.array([[-2.0, 0.0, 3.0], [1.0, -1.0, 0.5]], dtype=dtype), requires_grad=True)
    y = fl.step(x)
    assert y.requires_grad
    y.backward(np.full((2, 3), 7.0, dtype=dtype))
    assert x.grad.dtype == dtype and x.grad.shape == (2, 3)
    np.testing.assert_array_equal(x.grad, np.zeros((2, 3)))


def test_step_checked_away_from_zero():
    x = _signed(np.random.default_rng(1), (3, 4))
    check_op(fl.step, None, [x], reference=lambda a: (a > 0).astype(a.dtype))


def test_gaussian_needs_nonzero_sigma():
    assert_error(ValueError, fl.gaussian, fl.ones(3), 0.0, contains=["gaussian", "sigma"])


# -- |x| = 1000: finite values and gradients --------------------------------------------------

EXTREME = np.array([-1000.0, -30.0, -1.0, 0.0, 1.0, 30.0, 1000.0])
LIMITS = {  # name: (values at -1000 and 1000, gradients there)
    "sigmoid": ((0.0, 1.0), (0.0, 0.0)),
    "softplus": ((0.0, 1000.0), (0.0, 1.0)),
    "tanh": ((-1.0, 1.0), (0.0, 0.0)),
    "elu": ((-1.0, 1000.0), (0.0, 1.0)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", LIMITS)
def test_extreme_inputs_finite(name, dtype):
    x = fl.tensor(EXTREME.astype(dtype), requires_grad=True)
    y = getattr(fl, name)(x)
    y.sum().backward()
    assert y.dtype == dtype and x.grad.dtype == dtype
    assert np.isfinite(y.numpy()).all() and np.isfinite(x.grad).all()
    (lo, hi), (glo, ghi) = LIMITS[name]
    np.testing.assert_array_equal(y.numpy()[[0, -1]], np.array([lo, hi], dtype=dtype))
    np.testing.assert_array_equal(x.grad[[0, -1]], np.array([glo, ghi], dtype=dtype))


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "elu", "sigmoid", "tanh", "softplus"])
def test_infinite_inputs_give_no_nan(name):
    x = fl.tensor(np.array([-np.inf, -1.0, 1.0, np.inf], dtype=np.float32), requires_grad=True)
    y = getattr(fl, name)(x)
    y.backward(np.ones(4, dtype=np.float32))
    assert not np.isnan(y.numpy()).any()
    assert np.isfinite(x.grad).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["sigmoid", "softplus", "tanh", "elu"])
def test_extreme_inputs_match_torch(name, dtype):
    torch = pytest.importorskip("torch")
    torch_fn = {"sigmoid": torch.sigmoid, "softplus": torch.nn.functional.softplus,
                "tanh": torch.tanh, "elu": torch.nn.functional.elu}[name]
    x = fl.tensor(EXTREME.astype(dtype), requires_grad=True)
    tx = torch.tensor(EXTREME.astype(dtype), requires_grad=True)
    g = np.linspace(-1.0, 1.0, EXTREME.size).astype(dtype)
    y, ty = getattr(fl, name)(x), torch_fn(tx)
    y.backward(g)
    ty.backward(torch.tensor(g))
    rtol = 1e-6 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), atol=1e-6, rtol=rtol)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), atol=1e-6, rtol=rtol)
