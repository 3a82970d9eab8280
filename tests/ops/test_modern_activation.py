"""GELU, SiLU, Mish, SELU, ReLU6, hard sigmoid / SiLU, softsign: NumPy references, gradcheck,
PyTorch forward and backward, names in fundl.activations, a layer config round-trip."""
import math

import numpy as np
import pytest

import fundl as fl
from fundl import activations
from fundl.ops import modern_activation as ma
from fundl.testing import check_op

_erf = np.vectorize(math.erf)


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


REFERENCES = {
    "gelu": lambda x: 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0))),
    "silu": lambda x: x * _sig(x),
    "swish": lambda x: x * _sig(x),
    "mish": lambda x: x * np.tanh(np.log1p(np.exp(x))),
    "selu": lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x)),
    "relu6": lambda x: np.clip(x, 0, 6),
    "hard_sigmoid": lambda x: np.clip(x + 3, 0, 6) / 6,
    "hard_silu": lambda x: x * np.clip(x + 3, 0, 6) / 6,
    "hard_swish": lambda x: x * np.clip(x + 3, 0, 6) / 6,
    "softsign": lambda x: x / (1 + np.abs(x)),
}


def _x(seed=0, shape=(4, 5), scale=3.0):
    x = np.random.default_rng(seed).standard_normal(shape) * scale
    # keep finite differences away from the kinks of the piecewise ones (0, 6, +-3)
    for kink in (0.0, 6.0, 3.0, -3.0):
        near = np.abs(x - kink) < 1e-3
        x[near] += 0.01
    return x


def _torch_fns():
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    return {
        "gelu": f.gelu, "silu": f.silu, "swish": f.silu, "mish": f.mish, "selu": f.selu,
        "relu6": f.relu6, "hard_sigmoid": f.hardsigmoid, "hard_silu": f.hardswish,
        "hard_swish": f.hardswish, "softsign": f.softsign,
    }


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_forward_and_gradcheck(name):
    check_op(activations.get(name), None, [_x(1)], reference=REFERENCES[name], atol=1e-12,
             rtol=1e-12)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_matches_torch(name):
    fns = _torch_fns()
    # PyTorch's hard sigmoid / swish kernels hold 1/6 as a float32 constant even in float64
    rtol = 1e-7 if name.startswith("hard") else 1e-10
    check_op(activations.get(name), fns[name], [_x(2)], atol=1e-12, rtol=rtol)


def test_gelu_tanh_approximation_matches_torch():
    torch = pytest.importorskip("torch")
    check_op(lambda t: fl.gelu(t, approximate=True),
             lambda t: torch.nn.functional.gelu(t, approximate="tanh"), [_x(3)],
             atol=1e-12, rtol=1e-10)


def test_gelu_default_is_exact_as_keras_3():
    x = fl.tensor([1.0], dtype="float64")
    assert abs(float(fl.gelu(x).numpy()[0]) - 0.8413447460685429) < 1e-15
    assert abs(float(fl.gelu(x, approximate=True).numpy()[0]) - 0.8411919906082768) < 1e-12


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_erf_matches_math_erf_exactly(dtype):
    x = np.linspace(-6, 6, 101).astype(dtype).reshape(1, 101, 1)[:, ::2]  # non-contiguous
    got = ma.erf(x)
    assert got.dtype == x.dtype and got.shape == x.shape
    np.testing.assert_allclose(got, _erf(x.astype(np.float64)), rtol=1e-6 if dtype == "float32"
                               else 1e-15, atol=1e-7 if dtype == "float32" else 1e-16)


@pytest.mark.parametrize("name", ["mish", "selu", "silu", "gelu", "softsign"])
def test_finite_for_extreme_inputs(name):
    x = fl.tensor([-1e4, -80.0, 80.0, 1e4], requires_grad=True)
    y = activations.get(name)(x)
    y.sum().backward()
    assert np.isfinite(y.numpy()).all() and np.isfinite(x.grad).all()


def test_float32_stays_float32():
    x = fl.tensor(_x(4).astype(np.float32), requires_grad=True)
    for name in REFERENCES:
        y = activations.get(name)(x)
        assert y.dtype == np.float32, name


@pytest.mark.parametrize("name,canonical", [
    ("gelu", "gelu"), ("swish", "silu"), ("silu", "silu"), ("selu", "selu"),
    ("relu6", "relu6"), ("hard_sigmoid", "hard_sigmoid"), ("hard_swish", "hard_silu"),
    ("softsign", "softsign"), ("mish", "mish")])
def test_names_resolve_and_serialize(name, canonical):
    fn = activations.get(name)
    assert activations.serialize(fn) == canonical
    assert activations.get(canonical) is fn
    assert getattr(fl, canonical) is fn


@pytest.mark.parametrize("name", ["gelu", "swish", "selu", "mish", "hard_sigmoid"])
def test_dense_layer_takes_the_name_and_round_trips_its_config(name):
    layer = fl.layers.Dense(3, activation=name)
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    y = layer(fl.tensor(x)).numpy()
    config = layer.get_config()
    clone = fl.layers.Dense.from_config(config)
    clone(fl.tensor(x))
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(fl.tensor(x)).numpy(), y, rtol=1e-6)
    expected = REFERENCES[name](x.astype(np.float64) @ layer.get_weights()[0].astype(np.float64)
                                + layer.get_weights()[1])
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)
