import numpy as np
import pytest

import fundl as fl
from fundl import activations
from fundl.testing import assert_error, check_op


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# name -> NumPy reference with the default arguments a layer gets from activations.get(name)
REFERENCES = {
    "linear": lambda x: x,
    "step": lambda x: (x > 0).astype(x.dtype),
    "sigmoid": _sigmoid,
    "logistic": _sigmoid,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "gaussian": lambda x: np.exp(-x * x),
    "softmax": _softmax,
    "log_softmax": lambda x: np.log(_softmax(x)),
    "softplus": lambda x: np.log1p(np.exp(x)),
}


def _x(seed=0, shape=(3, 4)):
    return np.random.default_rng(seed).standard_normal(shape) * 2


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_named_activation_matches_reference(name):
    x = _x()
    y = activations.get(name)(fl.tensor(x))
    np.testing.assert_allclose(y.numpy(), REFERENCES[name](x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(set(REFERENCES) - {"linear", "step"}))
def test_named_activation_gradient(name):
    check_op(activations.get(name), None, [_x(1)], reference=REFERENCES[name])


@pytest.mark.parametrize("name", [
    "sigmoid", "tanh", "relu", "elu", "softplus", "softmax", "log_softmax", "leaky_relu"])
def test_named_activation_matches_torch(name):
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    torch_fns = {
        "sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
        "elu": functional.elu, "softplus": functional.softplus,
        "softmax": lambda t: torch.softmax(t, dim=-1),
        "log_softmax": lambda t: torch.log_softmax(t, dim=-1),
        "leaky_relu": lambda t: functional.leaky_relu(t, 0.2),
    }
    check_op(activations.get(name), torch_fns[name], [_x(2)])


def test_linear_returns_its_input_unchanged():
    x = fl.tensor(_x(), requires_grad=True)
    assert activations.linear(x) is x


def test_step_has_zero_gradient():
    x = fl.tensor(_x(), requires_grad=True)
    activations.step(x).sum().backward()
    np.testing.assert_array_equal(x.grad, np.zeros(x.shape))


def test_leaky_relu_default_slope_is_keras_0_2():
    y = activations.leaky_relu(fl.tensor([-1.0, 3.0]))
    np.testing.assert_allclose(y.numpy(), [-0.2, 3.0], rtol=1e-6)


def test_gaussian_sigma():
    x = _x()
    y = activations.gaussian(fl.tensor(x), sigma=2.0)
    np.testing.assert_allclose(y.numpy(), np.exp(-x ** 2 / 4.0), rtol=1e-12)


def test_softmax_axis_argument():
    x = _x()
    y = activations.softmax(fl.tensor(x), axis=0)
    np.testing.assert_allclose(y.numpy(), _softmax(x.T).T, rtol=1e-12)


def test_logistic_is_sigmoid():
    assert activations.logistic is activations.sigmoid


def test_get_none_is_linear():
    assert activations.get(None) is activations.linear


def test_get_returns_the_op_functions():
    assert activations.get("relu") is fl.relu
    assert activations.get("softmax") is fl.softmax


def test_get_passes_callables_through():
    def custom(x):
        return x * 2

    assert activations.get(custom) is custom


def test_get_unknown_name_lists_valid_names():
    assert_error(ValueError, activations.get, "relu7", contains=["relu7", "'relu'", "'tanh'"])


def test_get_rejects_other_types():
    assert_error(TypeError, activations.get, 3, contains=["activations.get", "int"])


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_serialize_round_trips_through_get(name):
    fn = activations.get(name)
    assert activations.get(activations.serialize(fn)) is fn


def test_serialize_gives_canonical_names():
    assert activations.serialize(activations.logistic) == "sigmoid"
    assert activations.serialize(fl.relu) == "relu"
    assert activations.serialize(None) == "linear"


def test_serialize_rejects_custom_functions():
    def swish(x):
        return x * fl.sigmoid(x)

    assert_error(ValueError, activations.serialize, swish, contains=["swish", "'relu'"])
