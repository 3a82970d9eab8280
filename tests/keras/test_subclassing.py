"""Patterns from the Keras guides ("Making new layers and models via subclassing", "The
Sequential model"): layers with build/add_weight/get_config, weights as variables, building by
hand, subclassed models that compile/fit/evaluate/predict/save, and their configs."""
import numpy as np
import pytest

import fundl as fl
from fundl.layers import Dense, Dropout, Input, Layer
from fundl.tensor import Variable
from fundl.testing import assert_error


def _data(n=32, d=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype("float32")
    y = (x @ rng.standard_normal((d, 1))).astype("float32")
    return x, y


class Linear(Layer):
    """The guide's first layer: weights from add_weight in Keras 3's order, names omitted."""

    def __init__(self, units=32, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                 initializer="random_normal", trainable=True)
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", trainable=True)

    def call(self, inputs):
        return inputs @ self.w + self.b

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class ComputeSum(Layer):
    """A non-trainable weight updated in call, as the guide's running sum."""

    def build(self, input_shape):
        self.total = self.add_weight(shape=(input_shape[-1],), initializer="zeros",
                                     trainable=False, name="total")

    def call(self, inputs):
        self.total.assign_add(fl.sum(inputs, axis=0))
        return inputs


class MLPBlock(Layer):
    """Layers nested in a layer: their weights are the block's."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.linear_1 = Linear(8)
        self.linear_2 = Linear(4)
        self.linear_3 = Linear(1)

    def call(self, inputs):
        x = fl.relu(self.linear_1(inputs))
        x = fl.relu(self.linear_2(x))
        return self.linear_3(x)


class Regressor(fl.Model):
    """A subclassed model as in the guides: layers in __init__, call(inputs, training=None)."""

    def __init__(self, hidden=8, rate=0.1, **kwargs):
        super().__init__(**kwargs)
        self.hidden = hidden
        self.rate = rate
        self.block = MLPBlock()
        self.dense = Dense(hidden, activation="relu")
        self.dropout = Dropout(rate)
        self.out = Dense(1)

    def call(self, inputs, training=None):
        x = self.dropout(self.dense(inputs), training=training)
        return self.out(x) + self.block(inputs)


# -- add_weight and variables ----------------------------------------------------------------

def test_add_weight_in_keras_3_order_with_automatic_names():
    layer = Linear(3)
    layer(np.ones((2, 5), "float32"))
    assert [w.name for w in layer.weights] == ["variable", "variable_1"]
    assert [w.shape for w in layer.weights] == [(5, 3), (3,)]
    assert all(isinstance(w, Variable) for w in layer.weights)
    assert len(layer.trainable_weights) == 2


def test_add_weight_positional_keras_3_and_old_forms():
    class Both(Layer):
        def build(self, input_shape):
            self.a = self.add_weight((2, 3), "ones", name="a")
            self.b = self.add_weight("b", (4,), "zeros", False)
            self.c = self.add_weight()

    layer = Both()
    layer.build((None, 1))
    assert layer.a.shape == (2, 3) and float(layer.a.numpy().sum()) == 6
    assert layer.b.shape == (4,) and layer.b in layer.non_trainable_weights
    assert layer.c.shape == () and layer.c.name == "variable"


def test_add_weight_errors_name_the_layer():
    layer = Layer(name="host")
    assert_error(TypeError, layer.add_weight, (2,), shape=(3,), contains=["host", "shape"])
    assert_error(ValueError, layer.add_weight, shape=(None, 2), contains=["host", "(None, 2)"])
    assert_error(TypeError, layer.add_weight, shape=(2,), dtype="int32",
                 contains=["host", "int32", "trainable=False"])
    layer.add_weight(shape=(1,), name="w")
    assert_error(ValueError, layer.add_weight, shape=(1,), name="w",
                 contains=["host", "'w'", "exists already"])
    counter = layer.add_weight(shape=(), dtype="int64", trainable=False, name="steps")
    assert counter.dtype == np.int64 and float(counter.numpy()) == 0


def test_variable_assign_family():
    layer = Linear(2)
    layer.build((None, 3))
    w = layer.w
    w.assign(np.ones((3, 2)))
    np.testing.assert_array_equal(w.numpy(), np.ones((3, 2), "float32"))
    w.assign_add(fl.ones(3, 2))
    w.assign_sub(np.full((3, 2), 0.5))
    np.testing.assert_array_equal(w.value.numpy(), np.full((3, 2), 1.5, "float32"))
    assert w.value is w and w.dtype == np.float32
    layer.b.assign(0.0 * np.ones(2))
    scalar = Layer().add_weight(shape=(), initializer="zeros")
    scalar.assign(3)
    assert float(scalar.numpy()) == 3.0


def test_variable_assign_errors():
    layer = Linear(2, name="lin")
    layer.build((None, 3))
    assert_error(ValueError, layer.w.assign, np.ones((2, 3)),
                 contains=["assign", "(2, 3)", "(3, 2)"])
    assert_error(ValueError, layer.w.assign_add, 1.0, contains=["assign_add", "()", "(3, 2)"])
    assert_error(TypeError, layer.w.assign, np.array([["a"] * 2] * 3), contains=["dtype"])
    computed = layer.w * 2
    assert_error(RuntimeError, computed.assign, np.ones((3, 2)), contains=["leaf"])


def test_assign_leaves_the_gradient_graph_alone():
    layer = Linear(1)
    x = np.ones((2, 3), "float32")
    y = layer(x).sum()
    y.backward()
    layer.w.assign(np.zeros((3, 1)))
    assert layer.w.grad.shape == (3, 1) and layer.w.requires_grad


def test_non_trainable_weight_updated_in_call():
    layer = ComputeSum()
    layer(np.ones((2, 2), "float32"))
    layer(np.ones((2, 2), "float32"))
    np.testing.assert_array_equal(layer.total.numpy(), [4.0, 4.0])
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 1


def test_constraint_rides_on_the_variable():
    pytest.importorskip("fundl.constraints")
    layer = Layer()
    w = layer.add_weight(shape=(2,), constraint="non_neg", name="w")
    assert w.constraint is not None
    np.testing.assert_array_equal(w.constraint(np.array([-1.0, 2.0])), [0.0, 2.0])
    assert fl.ones(2).constraint is None


# -- building ------------------------------------------------------------------------------

def test_build_by_hand_then_call_builds_once():
    layer = Dense(3)
    layer.build((None, 4))
    assert layer.built
    layer.set_weights([np.ones((4, 3)), np.zeros(3)])
    out = layer(np.ones((2, 4), "float32"))
    np.testing.assert_array_equal(out.numpy(), np.full((2, 3), 4.0, "float32"))
    assert len(layer.weights) == 2


def test_build_by_hand_of_a_custom_layer_that_does_not_set_built():
    layer = Linear(2)
    layer.build((None, 3))
    assert layer.built and layer.input_spec_shape == (None, 3)
    layer(np.ones((1, 3), "float32"))
    assert len(layer.weights) == 2


def test_failing_build_leaves_the_layer_unbuilt():
    class Picky(Layer):
        def build(self, input_shape):
            if input_shape[-1] != 2:
                raise ValueError("needs 2 features")
            self.w = self.add_weight(shape=(2,), name="w")

        def call(self, x):
            return x * self.w

    layer = Picky()
    with pytest.raises(ValueError, match="2 features"):
        layer.build((None, 3))
    assert not layer.built
    layer(np.ones((1, 2), "float32"))
    assert layer.built


# -- nested layers and models ------------------------------------------------------------------

def test_nested_blocks_track_their_weights():
    block = MLPBlock()
    block(np.ones((2, 5), "float32"))
    assert len(block.weights) == 6
    assert list(block.state_dict())[:2] == ["linear_1.variable", "linear_1.variable_1"]


def test_subclassed_model_compile_fit_evaluate_predict_save_load(tmp_path):
    fl.manual_seed(0)
    x, y = _data()
    model = Regressor(hidden=8)
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    history = model.fit(x, y, epochs=8, batch_size=8, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    loss, mae = model.evaluate(x, y, verbose=0)
    assert np.isfinite(loss) and np.isfinite(mae)
    pred = model.predict(x, verbose=0)
    assert pred.shape == (32, 1)
    path = str(tmp_path / "regressor.weights.fundl")
    model.save_weights(path)
    other = Regressor(hidden=8)
    other(x[:1])
    other.load_weights(path)
    np.testing.assert_allclose(other.predict(x, verbose=0), pred, rtol=1e-5, atol=1e-6)


def test_subclassed_model_config_round_trip():
    model = Regressor(hidden=6, rate=0.2, name="reg")
    config = model.get_config()
    assert config == {"hidden": 6, "rate": 0.2, "name": "reg", "trainable": True,
                      "dtype": "float32"}
    clone = Regressor.from_config(config)
    assert isinstance(clone, Regressor) and clone.hidden == 6 and clone.rate == 0.2
    assert clone.name == "reg"


def test_subclassed_model_without_kwargs_gets_only_its_own_arguments():
    class Fixed(fl.Model):
        def __init__(self, width):
            super().__init__()
            self.layer = Dense(width)

        def call(self, x):
            return self.layer(x)

    config = Fixed(5).get_config()
    assert config == {"width": 5}
    assert Fixed.from_config(config).layer.units == 5


def test_unrecordable_constructor_arguments_ask_for_get_config():
    class Wraps(Layer):
        def __init__(self, inner, **kwargs):
            super().__init__(**kwargs)
            self.inner = inner

        def call(self, x):
            return self.inner(x)

    layer = Wraps(Dense(2), name="wrap")
    assert_error(NotImplementedError, layer.get_config,
                 contains=["Wraps 'wrap'", "JSON", "get_config"])


def test_config_that_does_not_fit_the_constructor_explains():
    assert_error(TypeError, Linear.from_config, {"units": 2, "colour": "red"},
                 contains=["Linear.from_config", "colour", "get_config"])


def test_subclassed_model_in_the_functional_api_has_its_shape_inferred():
    inner = Regressor(hidden=4)
    inputs = Input(shape=(4,))
    outputs = Dense(2)(inner(inputs))
    assert outputs.shape == (None, 2)
    model = fl.Model(inputs, outputs)
    assert model.predict(_data(3)[0], verbose=0).shape == (3, 2)


def test_top_level_names_resolve():
    assert fl.Sequential is fl.models.Sequential
    assert fl.Model is fl.models.Model
    assert fl.Input is fl.layers.Input
    assert isinstance(fl.Sequential([Dense(1, input_dim=2)]), fl.Model)
    assert "Model" in dir(fl)


# -- add_loss and activity_regularizer -------------------------------------------------------------

class ActivityPenalty(Layer):
    """The guide's layer that adds a loss term in call."""

    def __init__(self, rate=0.01, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate

    def call(self, inputs):
        self.add_loss(self.rate * fl.sum(inputs * inputs))
        return inputs


def test_add_loss_terms_are_those_of_the_latest_forward_pass():
    class Outer(Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.penalty = ActivityPenalty(1.0)

        def call(self, x):
            return self.penalty(self.penalty(x))  # a shared layer: two terms in one pass

    layer = Outer()
    layer(np.ones((2, 2), "float32"))
    assert [float(t.item()) for t in layer.losses] == [4.0, 4.0]
    layer(np.full((1, 1), 3.0, "float32"))
    assert [float(t.item()) for t in layer.losses] == [9.0, 9.0]
    assert layer._has_losses() and not Dense(2)._has_losses()


def test_add_loss_term_carries_a_gradient_and_accepts_numbers():
    layer = Linear(1)
    x = np.ones((2, 3), "float32")
    out = layer(x)
    layer.add_loss(fl.sum(layer.w * layer.w))
    layer.add_loss(2)
    layer.add_loss(fl.ones(3))         # a vector is summed, as Keras
    assert [t.shape for t in layer.losses] == [(), (), ()]
    assert float(layer.losses[2].item()) == 3.0
    (out.sum() + layer.losses[0]).backward()
    assert layer.w.grad is not None
    assert_error(TypeError, layer.add_loss, "big", contains=["add_loss", "str"])


def test_add_loss_in_a_functional_model_is_not_kept_from_shape_inference():
    inputs = Input(shape=(2,))
    model = fl.Model(inputs, ActivityPenalty(0.5)(inputs))
    assert model.losses == []
    model(np.ones((1, 2), "float32"))
    assert [float(t.item()) for t in model.losses] == [1.0]


def test_activity_regularizer_on_any_layer():
    class Identity(Layer):
        def call(self, x):
            return x

    layer = Identity(activity_regularizer="l2")
    assert layer.get_config()["activity_regularizer"]["class_name"] == "L2"
    layer(np.ones((2, 3), "float32"))
    assert len(layer.losses) == 1 and float(layer.losses[0].item()) > 0
    clone = Identity.from_config(layer.get_config())
    assert clone.activity_regularizer is not None
    assert "activity_regularizer" not in Identity().get_config()


def test_build_config_rebuilds_a_subclassed_model_for_set_weights():
    fl.manual_seed(0)
    x, _ = _data(4)
    model = Regressor(hidden=5)
    assert model.get_build_config() is None
    expected = model.predict(x, verbose=0)
    build_config = model.get_build_config()
    assert build_config == {"input_shape": [None, 4]}
    clone = Regressor.from_config(model.get_config())
    clone.build_from_config(build_config)
    assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.predict(x, verbose=0), expected, rtol=1e-6)


def test_build_config_of_a_layer_with_its_own_build():
    layer = Linear(3)
    layer(np.ones((2, 4), "float32"))
    clone = Linear.from_config(layer.get_config())
    clone.build_from_config(layer.get_build_config())
    assert [w.shape for w in clone.weights] == [(4, 3), (3,)]
    assert_error(ValueError, clone.build_from_config, {"shape": [1]}, contains=["input_shape"])


def test_build_by_hand_of_a_subclassed_model_creates_its_weights():
    model = Regressor(hidden=3)
    model.build((None, 4))
    assert model.built and model.count_params() == (4 * 3 + 3) + (3 + 1) + (
        4 * 8 + 8 + 8 * 4 + 4 + 4 + 1) == 100
    lines = []
    model.summary(print_fn=lines.append)
    assert " Total params: 100 (400.00 B)" in lines
    x, _ = _data(2)
    assert model(x).shape == (2, 1)


def test_build_by_hand_that_fails_leaves_the_model_unbuilt():
    class NeedsThree(fl.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = Dense(2)

        def call(self, x):
            if x.shape[-1] != 3:
                raise ValueError("three features please")
            return self.dense(x)

    model = NeedsThree()
    with pytest.raises(ValueError, match="three features"):
        model.build((None, 5))
    assert not model.built
    model.build((None, 3))
    assert model.built and len(model.weights) == 2


def test_keras_variable_and_dtype_attributes():
    layer = ComputeSum()
    layer(np.ones((1, 2), "float32"))
    assert layer.total.trainable is False
    dense = Dense(2)
    dense(np.ones((1, 2), "float32"))
    dense.trainable = False
    assert all(w.trainable for w in dense.weights)           # the variable's own flag
    assert dense.non_trainable_variables == dense.weights    # the layer is frozen
    assert dense.compute_dtype == dense.variable_dtype == "float32"
