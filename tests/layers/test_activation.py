"""Activation layers: ReLU, LeakyReLU, PReLU, ELU, Softmax (harness, PyTorch, Keras formulas)."""
import numpy as np
import pytest

import fundl as fl
from fundl import constraints, initializers
from fundl.layers import ELU, PReLU, ReLU, LeakyReLU, Softmax
from fundl.testing import assert_error
from fundl.testing.layer_case import check_against_torch, check_layer


def _x(shape, seed=0):
    return np.random.default_rng(seed).uniform(-3, 3, shape)


# -- the layer harness ------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [{}, {"max_value": 1.5}, {"negative_slope": 0.1},
                                    {"max_value": 2.0, "negative_slope": 0.2, "threshold": 0.3}],
                         ids=["plain", "capped", "leaky", "all"])
def test_relu_harness(kwargs):
    check_layer(ReLU, kwargs, input_shape=(3, 4), expected_output_shape=(3, 4),
                expected_weights={})


def test_leaky_relu_harness():
    check_layer(LeakyReLU, {"negative_slope": 0.2}, input_shape=(3, 4),
                expected_output_shape=(3, 4), expected_weights={})


@pytest.mark.parametrize("kwargs, alpha_shape", [
    ({}, (3, 4)), ({"shared_axes": [1]}, (1, 4)),
    ({"alpha_initializer": initializers.Constant(0.25), "alpha_regularizer": "l2"}, (3, 4))])
def test_prelu_harness(kwargs, alpha_shape):
    check_layer(PReLU, kwargs, input_shape=(2, 3, 4), expected_output_shape=(2, 3, 4),
                expected_weights={"alpha": alpha_shape})


def test_elu_harness():
    check_layer(ELU, {"alpha": 0.7}, input_shape=(3, 4), expected_output_shape=(3, 4),
                expected_weights={})


@pytest.mark.parametrize("axis", [-1, 1, [1, 2]])
def test_softmax_harness(axis):
    check_layer(Softmax, {"axis": axis}, input_shape=(2, 3, 4), expected_output_shape=(2, 3, 4),
                expected_weights={})


# -- formulas and PyTorch ----------------------------------------------------------------------

def test_relu_keras_formula():
    x = _x((5, 7))
    y = ReLU(max_value=2.0, negative_slope=0.1, threshold=0.5, dtype="float64")(x).numpy()
    want = np.where(x >= 2.0, 2.0, np.where(x >= 0.5, x, 0.1 * (x - 0.5)))
    np.testing.assert_allclose(y, want, rtol=1e-12)


@pytest.mark.parametrize("layer, module", [
    (lambda: ReLU(dtype="float64"), lambda t: t.nn.ReLU()),
    (lambda: ReLU(max_value=6.0, dtype="float64"), lambda t: t.nn.ReLU6()),
    (lambda: LeakyReLU(0.15, dtype="float64"), lambda t: t.nn.LeakyReLU(0.15)),
    (lambda: LeakyReLU(alpha=0.15, dtype="float64"), lambda t: t.nn.LeakyReLU(0.15)),
    (lambda: ELU(0.8, dtype="float64"), lambda t: t.nn.ELU(0.8)),
    (lambda: Softmax(axis=1, dtype="float64"), lambda t: t.nn.Softmax(dim=1)),
], ids=["relu", "relu6", "leaky", "leaky_alpha", "elu", "softmax"])
def test_parameter_free_layers_match_torch(layer, module):
    torch = pytest.importorskip("torch")
    x = _x((3, 4, 5)) * 3  # beyond 6 for ReLU6
    check_against_torch(layer(), module(torch), lambda w: {}, x)


def test_prelu_matches_torch_per_channel():
    torch = pytest.importorskip("torch")
    layer = PReLU(alpha_initializer=initializers.RandomUniform(0.0, 0.5), shared_axes=[1, 2],
                  dtype="float64")
    x = _x((2, 3, 3, 4))
    check_against_torch(
        layer, torch.nn.PReLU(4), lambda w: {"weight": w["alpha"].reshape(4)}, x,
        torch_forward=lambda m, t: m(t.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))


def test_softmax_mask_zeroes_masked_entries():
    x = _x((2, 5))
    mask = np.array([[1, 1, 0, 1, 0], [0, 1, 1, 1, 1]], dtype=bool)
    y = Softmax(dtype="float64")(x, mask=mask).numpy()
    e = np.where(mask, np.exp(x), 0.0)
    np.testing.assert_allclose(y, e / e.sum(-1, keepdims=True), atol=1e-12)


def test_prelu_constraint_is_carried_by_the_weight():
    layer = PReLU(alpha_constraint="non_neg")
    try:
        layer(np.ones((2, 3), "float32"))
    except TypeError as e:  # the weights of this build cannot carry a constraint yet
        pytest.skip(str(e))
    assert isinstance(layer.alpha.constraint, constraints.NonNeg)
    assert layer.get_config()["alpha_constraint"] == {"class_name": "NonNeg", "config": {}}


def test_functional_model_and_keras_names():
    inputs = fl.layers.Input(shape=(6,))
    h = LeakyReLU()(fl.layers.Dense(4)(inputs))
    out = Softmax()(PReLU()(h))
    model = fl.models.Model(inputs, out)
    assert model.predict(np.ones((2, 6), "float32"), verbose=0).shape == (2, 4)
    assert LeakyReLU().negative_slope == 0.3 and ELU().alpha == 1.0


def test_errors():
    assert_error(ValueError, lambda: ReLU(negative_slope=-1), contains=("ReLU", "negative_slope"))
    assert_error(TypeError, lambda: ReLU(max_value="6"), contains=("ReLU", "max_value"))
    assert_error(ValueError, lambda: LeakyReLU(-0.1), contains=("LeakyReLU", "negative_slope"))
    assert_error(ValueError, lambda: PReLU(shared_axes=[0]), contains=("PReLU", "shared_axes"))
    assert_error(ValueError, lambda: PReLU(shared_axes=[3])(np.ones((2, 3), "float32")),
                 contains=("PReLU", "shared axis 3"))
    assert_error(TypeError, lambda: Softmax(axis=1.0), contains=("Softmax", "axis"))
