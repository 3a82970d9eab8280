"""Sequential: add, list, input_dim/input_shape/Input first, pop, eager and lazy building."""
import numpy as np
import pytest

import fundl as fl
from fundl.layers import Dense, Dropout, Flatten, Input
from fundl.models import Sequential
from fundl.testing import assert_error


def _data(n=20, d=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype("float32")
    y = np.eye(classes, dtype="float32")[rng.integers(0, classes, n)]
    return x, y


def _summary_lines(model):
    lines = []
    model.summary(print_fn=lines.append)
    return lines


def test_add_with_input_dim_builds_at_once():
    model = Sequential()
    model.add(Dense(units=64, activation="relu", input_dim=100))
    model.add(Dense(units=10, activation="softmax"))
    assert model.built and all(layer.built for layer in model.layers)
    assert model.input_shape == (None, 100) and model.output_shape == (None, 10)
    assert model.count_params() == 100 * 64 + 64 + 64 * 10 + 10


def test_input_shape_argument_builds_at_once():
    model = Sequential([Flatten(input_shape=(28, 28)), Dense(10)])
    assert model.built and model.output_shape == (None, 10)
    assert model.layers[1].kernel.shape == (784, 10)


def test_input_first_sets_the_input_shape():
    model = Sequential([Input(shape=(5,)), Dense(3), Dense(2)])
    assert model.built and model.output_shape == (None, 2)
    assert len(model.layers) == 2  # the Input is not a layer of the stack


def test_input_added_later_is_rejected():
    model = Sequential([Dense(3)])
    assert_error(ValueError, model.add, Input(shape=(5,)), contains=["Input", "first"])


def test_summary_works_before_fit_when_the_input_shape_is_known():
    model = Sequential([Dense(4, input_dim=3), Dense(2)])
    text = "\n".join(_summary_lines(model))
    assert "(None, 4)" in text and "(None, 2)" in text
    assert "Total params: 26" in text


def test_without_input_shape_the_model_builds_on_first_data():
    model = Sequential([Dense(4), Dense(2)])
    assert not model.built and model.weights == []
    model.compile(loss="mse", optimizer="sgd")
    x = np.ones((6, 3), "float32")
    model.fit(x, np.zeros((6, 2), "float32"), epochs=1, verbose=0)
    assert model.built and model.input_shape == (None, 3)
    assert model.layers[0].kernel.shape == (3, 4)


def test_predict_builds_a_lazy_model_too():
    model = Sequential([Dense(2)])
    assert model.predict(np.ones((3, 7), "float32")).shape == (3, 2)
    assert model.built


def test_unbuilt_summary_says_how_to_build():
    text = "\n".join(_summary_lines(Sequential([Dense(2)])))
    assert "not built" in text and "input_shape" in text


def test_incompatible_layer_is_rejected_when_added_and_not_kept():
    model = Sequential([Dense(4, input_dim=3)])
    bad = Dense(2, name="bad")
    bad(np.ones((1, 9), "float32"))  # built for 9 features
    assert_error(ValueError, model.add, bad, contains=["Dense 'bad'", "9", "(None, 4)"])
    assert [layer.name for layer in model.layers] == ["dense"]


def test_add_rejects_non_layers():
    assert_error(TypeError, Sequential().add, "dense", contains=["Layer", "str"])


def test_constructor_rejects_a_single_layer_instead_of_a_list():
    assert_error(TypeError, Sequential, Dense(2), contains=["list"])


def test_adding_the_same_layer_twice_is_rejected():
    layer = Dense(2)
    model = Sequential([layer])
    assert_error(ValueError, model.add, layer, contains=["already"])


def test_pop_removes_the_last_layer():
    model = Sequential([Dense(4, input_dim=3), Dense(2), Dense(1)])
    last = model.pop()
    assert last.units == 1 and len(model.layers) == 2
    assert model.output_shape == (None, 2)


def test_pop_of_an_empty_model_explains():
    assert_error(ValueError, Sequential().pop, contains=["no layers"])


def test_pop_then_add_a_new_head():
    model = Sequential([Dense(4, input_dim=3), Dense(2)])
    model.pop()
    model.add(Dense(5, name="head"))
    assert model.output_shape == (None, 5) and model.get_layer("head").built


def test_auto_names_are_made_unique():
    model = Sequential([Dense(3, input_dim=2), Dense(3), Dropout(0.1), Dense(1)])
    names = [layer.name for layer in model.layers]
    assert len(set(names)) == 4 and names[0] == "dense"


def test_duplicate_explicit_names_are_rejected():
    model = Sequential([Dense(3, name="a")])
    assert_error(ValueError, model.add, Dense(3, name="a"), contains=["'a'", "unique"])


def test_get_layer_by_name_and_index():
    model = Sequential([Dense(3, input_dim=2, name="hidden"), Dense(1, name="out")])
    assert model.get_layer("out") is model.layers[1]
    assert model.get_layer(index=0).name == "hidden"
    assert_error(ValueError, model.get_layer, "missing", contains=["missing", "hidden", "out"])


def test_calling_on_a_tensor_in_training_mode_returns_a_tensor_with_a_graph():
    model = Sequential([Dense(3, input_dim=2, activation="relu"), Dropout(0.5), Dense(1)])
    out = model(fl.tensor(np.ones((4, 2), "float32")), training=True)
    assert isinstance(out, fl.Tensor) and out.requires_grad
    out.sum().backward()
    assert all(w.grad is not None for w in model.trainable_weights)


def test_call_with_wrong_feature_size_names_the_layer_and_shapes():
    model = Sequential([Dense(128, input_dim=10, name="fc1"), Dense(4, name="fc2")])
    model.layers[1]  # noqa: B018
    assert_error(ValueError, model, np.ones((32, 11), "float32"),
                 contains=["Dense 'fc1'", "10", "(32, 11)"])


def test_empty_sequential_cannot_be_called():
    assert_error(ValueError, Sequential(), np.ones((1, 2), "float32"), contains=["no layers"])


def test_sequential_inside_sequential():
    inner = Sequential([Dense(4, input_dim=3), Dense(2)], name="inner")
    outer = Sequential([inner, Dense(1)])
    assert outer.built and outer.output_shape == (None, 1)
    assert list(outer.state_dict())[:2] == ["inner.dense.kernel", "inner.dense.bias"]
    x, _ = _data(d=3)
    np.testing.assert_allclose(outer.predict(x), outer.layers[1](inner(x)).numpy(), rtol=1e-6)


def test_weights_follow_layer_order():
    model = Sequential([Dense(3, input_dim=2), Dense(1)])
    assert [w.shape for w in model.weights] == [(2, 3), (3,), (3, 1), (1,)]


def test_fit_on_lazy_model_learns_a_linear_map():
    fl.manual_seed(0)
    x, _ = _data(n=64)
    y = x @ np.array([[1.0], [-2.0], [0.5], [3.0]], dtype="float32")
    model = Sequential([Dense(1)])
    model.compile(loss="mse", optimizer=fl.optimizers.SGD(0.1))
    model.fit(x, y, epochs=60, batch_size=16, verbose=0)
    assert model.evaluate(x, y, verbose=0) < 1e-3


@pytest.mark.parametrize("layers", [[Dense(2, input_dim=3)], [Input(shape=(3,)), Dense(2)]])
def test_config_round_trip_rebuilds_the_same_stack(layers):
    model = Sequential(layers)
    clone = Sequential.from_config(model.get_config())
    assert clone.built and clone.input_shape == (None, 3)
    clone.set_weights(model.get_weights())
    x = np.ones((2, 3), "float32")
    np.testing.assert_array_equal(clone.predict(x), model.predict(x))
