"""Every argument of compile / fit / evaluate / predict is checked, and the message names the
argument, what was given and what is allowed (issue 13, point 4)."""
import warnings

import numpy as np
import pytest

import fundl as fl
from fundl.layers import Dense
from fundl.models import Sequential
from fundl.optimizers import SGD
from fundl.testing import assert_error


def _setup():
    fl.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 4)).astype("float32")
    y = rng.integers(0, 3, 20)
    m = Sequential([Dense(3, activation="softmax", input_dim=4)])
    m.compile(optimizer=SGD(0.1), loss="sparse_categorical_crossentropy", metrics=["acc"])
    return m, x, y


@pytest.mark.parametrize("kwargs, exc, contains", [
    ({"batch_size": 0}, ValueError, ["batch_size", ">= 1", "0"]),
    ({"batch_size": -1}, ValueError, ["batch_size", "-1"]),
    ({"batch_size": 2.5}, TypeError, ["batch_size", "integer", "2.5", "float"]),
    ({"batch_size": True}, TypeError, ["batch_size", "True"]),
    ({"epochs": -1}, ValueError, ["epochs", ">= 0", "-1"]),
    ({"epochs": 1.5}, TypeError, ["epochs", "integer", "1.5"]),
    ({"epochs": None}, TypeError, ["epochs", "None"]),
    ({"verbose": 3}, ValueError, ["verbose", "'auto', 0", "3"]),
    ({"verbose": "loud"}, ValueError, ["verbose", "'loud'"]),
    ({"validation_split": 1.0}, ValueError, ["validation_split", "[0, 1)", "1.0"]),
    ({"validation_split": -0.1}, ValueError, ["validation_split", "-0.1"]),
    ({"validation_split": "0.2"}, TypeError, ["validation_split", "'0.2'", "str"]),
    ({"shuffle": "yes"}, TypeError, ["shuffle", "True or False", "'yes'"]),
    ({"shuffle": 1}, TypeError, ["shuffle", "1", "int"]),
    ({"steps_per_epoch": 0}, ValueError, ["steps_per_epoch", "0"]),
    ({"steps_per_epoch": 1.5}, TypeError, ["steps_per_epoch", "1.5"]),
    ({"validation_steps": -2}, ValueError, ["validation_steps", "-2"]),
    ({"validation_freq": 0}, ValueError, ["validation_freq", "0"]),
    ({"validation_batch_size": 0}, ValueError, ["validation_batch_size"]),
    ({"initial_epoch": -1}, ValueError, ["initial_epoch", "-1"]),
    ({"class_weight": [1.0, 2.0]}, TypeError, ["class_weight", "dict", "list"]),
    ({"class_weight": {"a": 1.0}}, ValueError, ["class_weight", "'a'", "class indices"]),
    ({"class_weight": {0: -1.0}}, ValueError, ["class_weight[0]", "-1.0"]),
    ({"class_weight": {0: float("nan")}}, ValueError, ["class_weight[0]", "nan"]),
    ({"validation_data": np.ones((2, 4))}, TypeError, ["validation_data", "(x_val, y_val)",
                                                       "ndarray"]),
    ({"validation_data": (1, 2, 3, 4)}, TypeError, ["validation_data", "length 4"]),
    ({"sample_weight": np.ones(3)}, ValueError, ["sample_weight", "(20,)", "(3,)"]),
    ({"callbacks": [print]}, TypeError, ["callbacks[0]", "Callback"]),
    ({"epoch": 3}, TypeError, ["'epoch'", "did you mean 'epochs'"]),
    ({"batchsize": 3}, TypeError, ["'batchsize'", "did you mean 'batch_size'"]),
])
def test_fit_rejects_bad_arguments_before_training(kwargs, exc, contains):
    m, x, y = _setup()
    before = m.get_weights()
    assert_error(exc, m.fit, x, y, **kwargs, contains=["fit"] + contains)
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_fit_with_valid_edge_values():
    m, x, y = _setup()
    h = m.fit(x, y, batch_size=np.int64(7), epochs=np.int32(2), verbose=False,
              shuffle=np.bool_(True), validation_split=0.0, class_weight={np.int64(0): 2})
    assert len(h.history["loss"]) == 2
    h = m.fit(x, y, epochs=1, shuffle="batch", verbose=0, batch_size=8)
    assert len(h.history["loss"]) == 1


@pytest.mark.parametrize("epochs, initial_epoch", [(0, 0), (2, 2), (1, 3)])
def test_epochs_not_above_initial_epoch_trains_nothing_and_says_so(epochs, initial_epoch):
    # Keras allows it (its loop simply does not run); fundl does the same, with a warning.
    m, x, y = _setup()
    before = m.get_weights()
    with pytest.warns(UserWarning, match="nothing is trained"):
        h = m.fit(x, y, epochs=epochs, initial_epoch=initial_epoch, verbose=0)
    assert h.history == {}
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_dict_given_to_a_sequential_is_explained():
    m, x, y = _setup()
    assert_error(ValueError, m.fit, {"features": x}, y, verbose=0,
                 contains=["dict", "'features'", "no named inputs", "Sequential",
                           "pass the array itself"])


def test_a_generator_where_arrays_are_expected_has_a_proper_path():
    m, x, y = _setup()

    def gen():
        while True:
            yield x[:5], y[:5]

    assert m.fit(gen(), steps_per_epoch=2, epochs=1, verbose=0).history["loss"]
    assert_error(TypeError, m.test_on_batch, gen(), y, contains=["generator", "arrays"])
    assert_error(TypeError, m.fit, object(), y, verbose=0,
                 contains=["x must be an array", "object"])


@pytest.mark.parametrize("kwargs, exc, contains", [
    ({"batch_size": 0}, ValueError, ["batch_size"]),
    ({"batch_size": 1.5}, TypeError, ["batch_size", "1.5"]),
    ({"verbose": -1}, ValueError, ["verbose", "-1"]),
    ({"steps": 0}, ValueError, ["steps", "0"]),
    ({"return_dict": "yes"}, TypeError, ["return_dict", "'yes'"]),
    ({"sample_weight": np.ones(2)}, ValueError, ["sample_weight", "(20,)"]),
    ({"callbacks": ["x"]}, TypeError, ["callbacks[0]"]),
    ({"batchsize": 3}, TypeError, ["'batchsize'", "did you mean 'batch_size'"]),
])
def test_evaluate_rejects_bad_arguments(kwargs, exc, contains):
    m, x, y = _setup()
    assert_error(exc, m.evaluate, x, y, **kwargs, contains=["evaluate"] + contains)


@pytest.mark.parametrize("kwargs, exc, contains", [
    ({"batch_size": 0}, ValueError, ["batch_size"]),
    ({"batch_size": "8"}, TypeError, ["batch_size", "'8'"]),
    ({"verbose": 5}, ValueError, ["verbose", "5"]),
    ({"steps": -1}, ValueError, ["steps", "-1"]),
    ({"callbacks": [1]}, TypeError, ["callbacks[0]"]),
    ({"verbos": 0}, TypeError, ["'verbos'", "did you mean 'verbose'"]),
])
def test_predict_rejects_bad_arguments(kwargs, exc, contains):
    m, x, _ = _setup()
    assert_error(exc, m.predict, x, **kwargs, contains=["predict"] + contains)


def test_predict_steps_limits_the_batches():
    m, x, _ = _setup()
    assert m.predict(x, batch_size=8, steps=2).shape == (16, 3)


@pytest.mark.parametrize("kwargs, exc, contains", [
    ({"loss": 3}, TypeError, ["loss", "3", "int"]),
    ({"loss": ["mse", 3]}, TypeError, ["loss", "int"]),
    ({"loss": "nonsense"}, ValueError, ["nonsense"]),
    ({"optimizer": "sgdd"}, ValueError, ["sgdd"]),
    ({"metrics": ["acc", "precison"]}, ValueError, ["precison", "'precision'"]),
    ({"metrics": [3]}, TypeError, ["metric", "int"]),
    ({"loss_weights": "big"}, TypeError, ["loss_weights", "'big'"]),
    ({"loss_weights": [float("inf")]}, TypeError, ["loss_weights", "inf"]),
    ({"run_eagerly": "yes"}, TypeError, ["run_eagerly", "'yes'"]),
    ({"steps_per_execution": 4}, ValueError, ["steps_per_execution", "4"]),
    ({"metric": ["acc"]}, TypeError, ["'metric'", "did you mean 'metrics'"]),
])
def test_compile_rejects_bad_arguments(kwargs, exc, contains):
    m = Sequential([Dense(3, input_dim=4)])
    settings = {"optimizer": "sgd", "loss": "mse"}
    settings.update(kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_error(exc, m.compile, **settings, contains=contains)
    assert not m.compiled


def test_compile_accepts_keras_only_switches():
    m = Sequential([Dense(3, input_dim=4)])
    m.compile(optimizer="sgd", loss="mse", run_eagerly=True, steps_per_execution=1)
    assert m.compiled


def test_fit_before_compile_explains():
    m = Sequential([Dense(3, input_dim=4)])
    assert_error(RuntimeError, m.fit, np.ones((2, 4)), np.ones((2, 3)), verbose=0,
                 contains=["compile"])
