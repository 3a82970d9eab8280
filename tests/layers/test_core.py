"""Core layers: Dense, Activation, Flatten, Reshape, Dropout, GaussianNoise, Lambda, Input."""
import numpy as np
import pytest

import fundl as fl
from fundl.layers import (
    Activation, Dense, Dropout, Flatten, GaussianNoise, Input, Lambda, Reshape,
    register_serializable,
)
from fundl.models import Model, Sequential, load_model
from fundl.testing import assert_error
from fundl.testing.layer_case import check_against_torch, check_layer


@register_serializable
def _scaled_square(x, scale=1.0):
    """A named, registered function for Lambda layers (it survives save/load)."""
    return x * x * scale


def _unregistered_double(x):
    return x * 2


# -- the layer harness on every core layer ------------------------------------------------

def test_dense_harness_2d():
    check_layer(Dense, {"units": 3}, input_shape=(2, 4), expected_output_shape=(2, 3),
                expected_weights={"kernel": (4, 3), "bias": (3,)})


def test_dense_harness_3d_input_with_activation():
    check_layer(Dense, {"units": 3, "activation": "tanh"}, input_shape=(2, 5, 4),
                expected_output_shape=(2, 5, 3),
                expected_weights={"kernel": (4, 3), "bias": (3,)})


def test_dense_harness_without_bias_and_with_regularizer():
    check_layer(Dense, {"units": 2, "use_bias": False, "kernel_regularizer": "l2",
                        "kernel_initializer": "he_normal"},
                input_shape=(3, 4), expected_output_shape=(3, 2),
                expected_weights={"kernel": (4, 2)})


def test_activation_harness():
    check_layer(Activation, {"activation": "softmax"}, input_shape=(2, 4),
                expected_output_shape=(2, 4), expected_weights={})


def test_flatten_harness():
    check_layer(Flatten, {}, input_shape=(2, 3, 4), expected_output_shape=(2, 12),
                expected_weights={})


def test_reshape_harness():
    check_layer(Reshape, {"target_shape": (4, -1)}, input_shape=(2, 3, 4),
                expected_output_shape=(2, 4, 3), expected_weights={})


def test_dropout_harness_gradcheck_in_training_mode():
    check_layer(Dropout, {"rate": 0.3}, input_shape=(3, 4), expected_output_shape=(3, 4),
                expected_weights={}, gradcheck_training=True)


def test_gaussian_noise_harness_gradcheck_in_training_mode():
    check_layer(GaussianNoise, {"stddev": 0.3}, input_shape=(3, 4),
                expected_output_shape=(3, 4), expected_weights={}, gradcheck_training=True)


def test_lambda_harness_with_registered_function():
    check_layer(Lambda, {"function": _scaled_square, "arguments": {"scale": 0.5}},
                input_shape=(2, 3), expected_output_shape=(2, 3), expected_weights={})


# -- Dense ------------------------------------------------------------------------------

def test_dense_matches_torch_linear_forward_and_gradients():
    torch = pytest.importorskip("torch")
    fl.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((5, 4))
    check_against_torch(Dense(3, dtype="float64"), torch.nn.Linear(4, 3),
                        lambda w: {"weight": w["kernel"].T, "bias": w["bias"]}, x)


def test_dense_with_activation_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).standard_normal((6, 4))
    check_against_torch(Dense(3, activation="sigmoid", dtype="float64"),
                        torch.nn.Linear(4, 3),
                        lambda w: {"weight": w["kernel"].T, "bias": w["bias"]}, x,
                        torch_forward=lambda m, t: torch.sigmoid(m(t)))


def test_dense_kernel_uses_keras_layout():
    layer = Dense(5)
    layer(np.zeros((2, 3), dtype="float32"))
    assert [w.shape for w in layer.get_weights()] == [(3, 5), (5,)]


def test_dense_called_with_wrong_feature_size_names_layer_and_shapes():
    layer = Dense(4, name="fc2")
    layer(np.zeros((32, 128), dtype="float32"))
    e = assert_error(ValueError, layer, np.zeros((32, 170), dtype="float32"),
                     contains=["Dense 'fc2'", "128", "(32, 170)"])
    assert "previous layer" in str(e)


def test_dense_rejects_bad_units():
    assert_error(ValueError, Dense, 0, contains=["Dense", "units", "0"])
    assert_error(ValueError, Dense, True, contains=["units"])


def test_dense_needs_a_feature_axis():
    assert_error(ValueError, Dense(2), np.zeros(3, dtype="float32"), contains=["Dense", "(3,)"])


def test_dense_unknown_activation_names_it():
    assert_error(ValueError, Dense, 3, activation="relux", contains=["relux"])


# -- Flatten / Reshape -----------------------------------------------------------------------

def test_reshape_mismatch_fails_at_definition_time():
    x = Input(shape=(12,))
    assert_error(ValueError, Reshape((5, -1), name="r"), x,
                 contains=["Reshape 'r'", "(None, 12)", "(5, -1)"])


def test_reshape_size_mismatch_without_minus_one_fails_at_definition_time():
    assert_error(ValueError, Reshape((5, 2)), Input(shape=(3, 4)), contains=["12", "(5, 2)"])


@pytest.mark.parametrize("target", [(-1, -1), (0, 3), (2, None), "abc"])
def test_reshape_rejects_invalid_target_shapes(target):
    assert_error(ValueError, Reshape, target, contains=["target_shape"])


def test_flatten_then_dense_built_for_other_size_fails_at_definition_time():
    dense = Dense(3, name="head")
    dense(np.zeros((1, 784), dtype="float32"))
    flat = Flatten()(Input(shape=(27, 27)))
    assert_error(ValueError, dense, flat, contains=["Dense 'head'", "784", "729"])


def test_sequential_with_incompatible_reshape_fails_when_added():
    model = Sequential([Dense(6, input_dim=4)])
    assert_error(ValueError, model.add, Reshape((4, 2)), contains=["Reshape", "(None, 6)"])
    assert len(model.layers) == 1


def test_flatten_keeps_batch_and_unknown_sizes():
    assert Flatten().compute_output_shape((None, 3, None)) == (None, None)
    out = Flatten()(Input(shape=(2, 3, 4)))
    assert out.shape == (None, 24)


def test_reshape_values_follow_numpy_order():
    x = np.arange(24, dtype="float32").reshape(2, 12)
    y = Reshape((3, 4))(x).numpy()
    np.testing.assert_array_equal(y, x.reshape(2, 3, 4))


# -- Dropout ------------------------------------------------------------------------------------

def test_dropout_is_identity_in_inference():
    x = np.random.default_rng(0).standard_normal((4, 5)).astype("float32")
    np.testing.assert_array_equal(Dropout(0.5)(x).numpy(), x)
    np.testing.assert_array_equal(Dropout(0.5)(x, training=False).numpy(), x)


def test_dropout_rate_zero_is_identity_in_training():
    x = np.ones((4, 5), dtype="float32")
    np.testing.assert_array_equal(Dropout(0.0)(x, training=True).numpy(), x)


def test_dropout_drops_about_rate_and_scales_survivors():
    fl.manual_seed(0)
    x = np.ones((200, 100), dtype="float32")
    y = Dropout(0.3)(x, training=True).numpy()
    dropped = (y == 0).mean()
    assert abs(dropped - 0.3) < 0.02
    np.testing.assert_allclose(y[y != 0], 1 / 0.7, rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.03  # the expected value is kept (inverted dropout)


def test_dropout_gradient_is_the_mask():
    fl.manual_seed(1)
    x = fl.tensor(np.ones((10, 10)), requires_grad=True)
    y = Dropout(0.5)(x, training=True)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, y.numpy())


def test_dropout_noise_shape_drops_whole_slices():
    fl.manual_seed(2)
    x = np.ones((8, 5, 6), dtype="float32")
    y = Dropout(0.5, noise_shape=(None, 1, 6))(x, training=True).numpy()
    assert (y == y[:, :1, :]).all()  # the same mask for every step of axis 1
    assert 0 < (y == 0).mean() < 1


def test_dropout_noise_shape_of_wrong_rank_names_both_shapes():
    assert_error(ValueError, Dropout(0.5, noise_shape=(None, 6)), np.ones((8, 5, 6), "float32"),
                 training=True, contains=["noise_shape", "(None, 6)", "(8, 5, 6)"])


def test_dropout_is_reproducible_with_manual_seed():
    x = np.ones((6, 7), dtype="float32")
    fl.manual_seed(3)
    a = Dropout(0.4)(x, training=True).numpy()
    fl.manual_seed(3)
    b = Dropout(0.4)(x, training=True).numpy()
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5])
def test_dropout_rejects_rates_outside_unit_interval(rate):
    assert_error(ValueError, Dropout, rate, contains=["rate", str(rate)])


# -- GaussianNoise ---------------------------------------------------------------------------

def test_gaussian_noise_is_identity_in_inference():
    x = np.random.default_rng(0).standard_normal((4, 5)).astype("float32")
    np.testing.assert_array_equal(GaussianNoise(1.0)(x).numpy(), x)


def test_gaussian_noise_has_the_requested_stddev_in_training():
    fl.manual_seed(0)
    x = np.zeros((200, 100), dtype="float32")
    y = GaussianNoise(0.5)(x, training=True).numpy()
    assert abs(y.mean()) < 0.01
    assert abs(y.std() - 0.5) < 0.01


def test_gaussian_noise_rejects_negative_stddev():
    assert_error(ValueError, GaussianNoise, -1.0, contains=["stddev", "-1.0"])


# -- Lambda ------------------------------------------------------------------------------------

def test_lambda_infers_output_shape_by_probing():
    out = Lambda(lambda t: t[:, :2] * 3)(Input(shape=(5,)))
    assert out.shape == (None, 2)


def test_lambda_uses_given_output_shape():
    layer = Lambda(lambda t: fl.reshape(t, (t.shape[0], 2, 3)), output_shape=(2, 3))
    assert layer(Input(shape=(6,))).shape == (None, 2, 3)


def test_lambda_passes_arguments():
    y = Lambda(_scaled_square, arguments={"scale": 3.0})(np.full((1, 2), 2.0, "float32"))
    np.testing.assert_array_equal(y.numpy(), [[12.0, 12.0]])


def test_lambda_rejects_non_callables():
    assert_error(TypeError, Lambda, 3, contains=["Lambda", "callable"])


def _lambda_model(fn):
    x = Input(shape=(3,))
    return Model(x, Dense(2)(Lambda(fn)(x)))


def test_saving_a_model_with_anonymous_lambda_fails_clearly(tmp_path):
    model = _lambda_model(lambda t: t * 2)
    e = assert_error(ValueError, model.save, tmp_path / "m.fundl",
                     contains=["Lambda", "register_serializable"])
    assert "anonymous" in str(e)
    assert not (tmp_path / "m.fundl").exists()


def test_model_with_registered_named_function_round_trips(tmp_path):
    model = _lambda_model(_scaled_square)
    x = np.random.default_rng(0).standard_normal((4, 3)).astype("float32")
    model.save(tmp_path / "m.fundl")
    loaded = load_model(tmp_path / "m.fundl")
    assert loaded.layers[1].function is _scaled_square
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_loading_an_unregistered_function_names_it_and_the_fix(tmp_path):
    model = _lambda_model(_unregistered_double)
    model.save(tmp_path / "m.fundl")
    assert_error(ValueError, load_model, tmp_path / "m.fundl",
                 contains=["_unregistered_double", "register_serializable", "custom_objects"])


def test_custom_objects_supply_an_unregistered_function(tmp_path):
    model = _lambda_model(_unregistered_double)
    model.save(tmp_path / "m.fundl")
    loaded = load_model(tmp_path / "m.fundl",
                        custom_objects={"_unregistered_double": _unregistered_double})
    x = np.ones((2, 3), dtype="float32")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


# -- Input -----------------------------------------------------------------------------------

def test_input_returns_symbolic_tensor_with_batch_axis():
    x = Input(shape=(28, 28, 1), name="image")
    assert x.shape == (None, 28, 28, 1)
    assert x.dtype == np.float32


def test_input_accepts_an_int_shape():
    assert Input(shape=784).shape == (None, 784)


@pytest.mark.parametrize("shape", [None, (3.5,), (-1, 2), "abc"])
def test_input_rejects_bad_shapes(shape):
    assert_error(ValueError, Input, shape, contains=["Input", "shape"])


def test_unnamed_inputs_get_unique_names_in_a_model():
    a, b = Input(shape=(2,)), Input(shape=(2,))
    model = Model([a, b], Dense(1)(fl.layers.Concatenate()([a, b])))
    assert len(set(model.input_names)) == 2
