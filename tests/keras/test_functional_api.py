"""Patterns from the Keras functional API guide: custom layers without compute_output_shape,
shared layers, layer.output / model.input for feature extraction, models as layers, the
architecture as JSON."""
import numpy as np
import pytest

import fundl as fl
from fundl import functional as F
from fundl.layers import (
    Concatenate, Conv2D, Dense, Embedding, Flatten, GlobalAveragePooling2D, Input, Layer, LSTM,
    MaxPooling2D,
)
from fundl.models import Model, Sequential, model_from_json
from fundl.testing import assert_error


class Antirectifier(Layer):
    """The Keras example's layer: no compute_output_shape, the output has twice the features."""

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(2 * input_shape[-1], 3),
                                      initializer="he_normal", name="kernel")

    def call(self, inputs):
        centred = inputs - F.mean(inputs, axis=-1, keepdims=True)
        x = F.concatenate([F.relu(centred), F.relu(-centred)], axis=-1)
        return x @ self.kernel


class SplitHalves(Layer):
    """Two outputs, no compute_output_shape."""

    def call(self, x):
        half = x.shape[-1] // 2
        return [x[..., :half], x[..., half:] * 2]


class TimeMean(Layer):
    """Removes the (unknown) time axis; integer inputs stay integer."""

    def call(self, x):
        return F.mean(x, axis=1)


class Counts(Layer):
    def call(self, ids):
        return ids + 1


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


# -- shape inference -----------------------------------------------------------------------------

def test_custom_layer_without_compute_output_shape_in_a_functional_model():
    inputs = Input(shape=(5,))
    h = Antirectifier(name="anti")(inputs)
    assert h.shape == (None, 3)
    outputs = Dense(1)(h)
    model = Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse")
    x = _x((16, 5))
    model.fit(x, x[:, :1], epochs=1, verbose=0)
    assert model.predict(x, verbose=0).shape == (16, 1)


def test_inferred_shapes_keep_unknown_axes_unknown():
    seq = Input(shape=(None, 6))
    assert TimeMean()(seq).shape == (None, 6)
    fixed = Input(shape=(7, 6), batch_size=4)
    assert TimeMean()(fixed).shape == (4, 6)
    a, b = SplitHalves()(Input(shape=(None, 4)))
    assert a.shape == (None, None, 2) and b.shape == (None, None, 2)


def test_inferred_dtypes_follow_the_computation():
    ids = Input(shape=(3,), dtype="int64")
    out = Counts()(ids)
    assert out.dtype == np.int64 and out.shape == (None, 3)


def test_inference_runs_without_a_graph_and_is_cached():
    calls = []

    class Counting(Layer):
        def call(self, x):
            calls.append(x.requires_grad)
            return x

    layer = Counting()
    layer(Input(shape=(2,)))
    layer(Input(shape=(2,)))
    assert calls == [False, False]  # two batch sizes tell the batch axis apart, then the cache
    assert layer._inbound_nodes and len(layer._inbound_nodes) == 2


def test_inference_failure_is_a_clear_error():
    class Broken(Layer):
        def call(self, x):
            return x.reshape(-1, 7)

    assert_error(ValueError, Broken(name="broken"), Input(shape=(None, 3)),
                 contains=["Broken 'broken'", "(None, None, 3)", "(2, 8, 3)",
                           "compute_output_shape"])


def test_layer_returning_a_dict_is_rejected_in_the_functional_api():
    class Dicty(Layer):
        def call(self, x):
            return {"a": x}

    assert_error(TypeError, Dicty(name="dicty"), Input(shape=(2,)),
                 contains=["Dicty 'dicty'", "dict"])


def test_sequential_with_a_custom_layer_builds_when_added():
    model = Sequential([Dense(4, input_dim=3), Antirectifier(), Dense(2)])
    assert model.output_shape == (None, 2)
    assert [w.shape for w in model.layers[1].weights] == [(8, 3)]


# -- shared layers, nesting ---------------------------------------------------------------------

def test_shared_embedding_and_lstm_on_two_inputs():
    fl.manual_seed(0)
    a, b = Input(shape=(None,), dtype="int64"), Input(shape=(None,), dtype="int64")
    embed = Embedding(20, 4)
    encoder = LSTM(5)
    merged = Concatenate()([encoder(embed(a)), encoder(embed(b))])
    model = Model([a, b], Dense(1, activation="sigmoid")(merged))
    assert len(model.trainable_weights) == 1 + 3 + 2
    ids = np.random.default_rng(0).integers(0, 20, (6, 7))
    out = model.predict([ids, ids], verbose=0)
    assert out.shape == (6, 1)
    assert embed.output.shape == (None, None, 4)   # the first call's output


def test_layer_input_output_and_feature_extraction_from_a_sequential():
    model = Sequential([Input(shape=(8, 8, 1)), Conv2D(2, 3, activation="relu"),
                        MaxPooling2D(), Flatten(), Dense(3)])
    assert model.inputs[0].shape == (None, 8, 8, 1)
    assert model.layers[0].output.shape == (None, 6, 6, 2)
    assert model.layers[1].input is model.layers[0].output
    extractor = Model(inputs=model.inputs, outputs=[layer.output for layer in model.layers])
    x = _x((2, 8, 8, 1))
    features = extractor.predict(x, verbose=0)
    assert [f.shape for f in features] == [(2, 6, 6, 2), (2, 3, 3, 2), (2, 18), (2, 3)]
    np.testing.assert_allclose(features[-1], model.predict(x, verbose=0), rtol=1e-5)
    pooled = Model(model.input, model.get_layer("max_pooling2d").output)
    assert pooled.output.shape == (None, 3, 3, 2)


def test_model_input_and_output_follow_the_structure_given():
    a, b = Input(shape=(2,), name="a"), Input(shape=(3,), name="b")
    out = Dense(1)(Concatenate()([a, b]))
    model = Model({"a": a, "b": b}, out)
    assert model.input == {"a": a, "b": b} and model.output is out
    assert model.inputs == [a, b] and model.outputs == [out]


def test_layer_output_before_any_symbolic_call_explains():
    assert_error(AttributeError, lambda: Dense(2, name="lonely").output,
                 contains=["Dense 'lonely'", "never been called"])
    assert_error(AttributeError, lambda: Sequential([Dense(2)]).inputs,
                 contains=["input_shape"])


def test_subclassed_model_has_no_symbolic_input():
    class Sub(fl.Model):
        def call(self, x):
            return x

    assert_error(AttributeError, lambda: Sub().input, contains=["subclassed"])


def test_model_as_a_layer_in_another_model():
    inner_in = Input(shape=(4,))
    encoder = Model(inner_in, Dense(2, name="code")(inner_in), name="encoder")
    outer_in = Input(shape=(4,))
    outer = Model(outer_in, Dense(4)(encoder(outer_in)))
    assert encoder.output.shape == (None, 2)
    assert outer.predict(_x((3, 4)), verbose=0).shape == (3, 4)


def test_global_pooling_head_on_a_cnn():
    inputs = Input(shape=(None, None, 3))
    h = Conv2D(4, 3, padding="same")(inputs)
    out = Dense(2)(GlobalAveragePooling2D()(h))
    model = Model(inputs, out)
    assert model.predict(_x((2, 5, 7, 3)), verbose=0).shape == (2, 2)


# -- JSON ----------------------------------------------------------------------------------------

def test_to_json_and_model_from_json_functional():
    inputs = Input(shape=(5,))
    h = Antirectifier()(inputs)
    model = Model(inputs, Dense(2, activation="softmax")(h), name="net")
    text = model.to_json()
    clone = model_from_json(text, custom_objects={"Antirectifier": Antirectifier})
    assert clone.name == "net" and [type(layer) for layer in clone.layers] == [
        type(layer) for layer in model.layers]
    clone.set_weights(model.get_weights())
    x = _x((3, 5))
    np.testing.assert_allclose(clone.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)


def test_to_json_sequential_registered_custom_layer_needs_no_custom_objects():
    model = Sequential([Dense(3, input_dim=4), Antirectifier()])
    clone = model_from_json(model.to_json(indent=2))
    assert isinstance(clone, Sequential) and clone.output_shape == (None, 3)


def test_model_from_json_rejects_bad_text_and_unknown_classes():
    assert_error(ValueError, model_from_json, "{not json", contains=["model_from_json", "JSON"])
    assert_error(ValueError, model_from_json, "[1, 2]", contains=["class_name"])
    assert_error(ValueError, model_from_json,
                 '{"class_name": "os.system", "config": {}}', contains=["os.system", "registered"])
    assert_error(ValueError, model_from_json, '{"class_name": "relu_fn", "config": {}}',
                 contains=["relu_fn"])


def test_model_from_config_of_a_subclass_config_explains():
    assert_error(ValueError, Model.from_config, {"name": "x"}, contains=["subclassed"])


def test_auto_named_layers_keep_their_weight_keys_across_sessions(tmp_path):
    def build():
        return Sequential([Dense(3, input_dim=2), Dense(1)])

    first = build()
    path = str(tmp_path / "w.fundl")
    first.save_weights(path)
    second = build()          # dense_2, dense_3 in this session
    assert [layer.name for layer in second.layers] != [layer.name for layer in first.layers]
    second.load_weights(path)
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_saved_model_with_auto_names_reloads(tmp_path):
    model = Sequential([Dense(3, input_dim=2), Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    Dense(5)  # move the session's counters on
    path = str(tmp_path / "m.fundl")
    model.save(path)
    loaded = fl.models.load_model(path)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    x = _x((2, 2))
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    again = Sequential([loaded, Dense(1)])
    assert len(again.weights) == 6


@pytest.mark.parametrize("layer, name", [
    (lambda: Conv2D(2, 3), "conv2d"), (lambda: MaxPooling2D(), "max_pooling2d"),
    (lambda: fl.layers.Conv2DTranspose(2, 3), "conv2d_transpose"),
    (lambda: GlobalAveragePooling2D(), "global_average_pooling2d"),
    (lambda: fl.layers.BatchNormalization(), "batch_normalization"),
    (lambda: LSTM(2), "lstm"), (lambda: fl.layers.SimpleRNN(2), "simple_rnn"),
])
def test_keras_layer_names(layer, name):
    assert layer().name == name


class CrossMix(Layer):
    """``call(query, value, key=None, scale=1.0)``: several inputs, one by keyword, and the
    shape hooks taking one shape each (Keras 3's ``build(query_shape, value_shape)``)."""

    def build(self, query_shape, value_shape, key_shape=None):
        self.seen = (query_shape, value_shape, key_shape)
        self.w = self.add_weight(shape=(value_shape[-1], query_shape[-1]), name="w")

    def call(self, query, value, key=None, scale=1.0):
        mixed = (value if key is None else value + key) @ self.w
        return query + scale * F.mean(mixed, axis=1, keepdims=True)

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        return query_shape


def test_several_inputs_by_position_and_keyword_in_a_graph():
    q, v, k = Input(shape=(3, 4), name="q"), Input(shape=(5, 2), name="v"), \
        Input(shape=(5, 2), name="k")
    layer = CrossMix(name="mix")
    out = layer(q, v, key=k, scale=0.5)
    assert out.shape == (None, 3, 4)
    assert layer.seen == ((None, 3, 4), (None, 5, 2), (None, 5, 2))
    model = Model([q, v, k], out)
    xq, xv, xk = _x((2, 3, 4)), _x((2, 5, 2), 1), _x((2, 5, 2), 2)
    expected = layer(xq, xv, key=xk, scale=0.5).numpy()
    np.testing.assert_allclose(model.predict([xq, xv, xk], verbose=0), expected, rtol=1e-5)
    config = model.get_config()
    mix = next(n for n in config["nodes"] if n["layer"] == "mix")
    assert mix["tensor_kwargs"] == ["key"] and mix["kwargs"] == {"scale": 0.5}
    clone = Model.from_config(config, custom_objects={"CrossMix": CrossMix})
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.predict([xq, xv, xk], verbose=0), expected, rtol=1e-5)


def test_keyword_input_with_inferred_shape():
    class AddKey(Layer):
        def call(self, x, key=None):
            return x + key

    x, k = Input(shape=(3,)), Input(shape=(3,))
    out = AddKey()(x, key=k)
    assert out.shape == (None, 3)
    model = Model([x, k], out)
    np.testing.assert_allclose(model.predict([np.ones((2, 3)), np.ones((2, 3))], verbose=0), 2.0)


def test_names_are_unique_in_the_session_and_reset():
    from fundl.layers.base import reset_name_counters

    assert [Dense(1).name for _ in range(3)] == ["dense", "dense_1", "dense_2"]
    assert [Sequential().name, Sequential().name] == ["sequential", "sequential_1"]
    x = Input(shape=(2,))
    assert Model(x, Dense(1)(x)).name == "functional"

    class MyModel(Model):
        def call(self, inputs):
            return inputs

    assert [MyModel().name, MyModel().name] == ["my_model", "my_model_1"]
    assert Dense(1, name="dense").name == "dense"  # a given name is kept as it is
    reset_name_counters()
    assert Dense(1).name == "dense"


def test_get_layer_by_keras_name():
    model = Sequential([Input(shape=(6, 6, 1)), Conv2D(2, 3), MaxPooling2D(), Flatten(),
                        Dense(2)])
    assert type(model.get_layer("conv2d")) is Conv2D
    assert model.get_layer("max_pooling2d").output.shape == (None, 2, 2, 2)


class CustomDense(Layer):
    """The functional guide's layer: its get_config holds "units" only (no name)."""

    def __init__(self, units=32):
        super().__init__()
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                 initializer="random_normal", trainable=True)
        self.b = self.add_weight(shape=(self.units,), initializer="random_normal",
                                 trainable=True)

    def call(self, inputs):
        return inputs @ self.w + self.b

    def get_config(self):
        return {"units": self.units}


def test_custom_layer_whose_config_has_no_name_round_trips():
    inputs = Input((4,))
    outputs = CustomDense(10)(CustomDense(6)(inputs))
    model = Model(inputs, outputs)
    config = model.get_config()
    new_model = Model.from_config(config, custom_objects={"CustomDense": CustomDense})
    assert [layer.name for layer in new_model.layers] == [layer.name for layer in model.layers]
    new_model.set_weights(model.get_weights())
    x = _x((2, 4))
    np.testing.assert_allclose(new_model.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)
    stack = Sequential([Input((4,)), CustomDense(3)])
    clone = Sequential.from_config(stack.get_config(), custom_objects={"CustomDense": CustomDense})
    assert clone.layers[0].name == stack.layers[0].name


def test_custom_layer_needing_a_static_batch_size():
    class StatefulSum(Layer):
        """Makes a state of the static batch size, as the guide's CustomRNN."""

        def call(self, x):
            state = fl.zeros(x.shape[0], x.shape[-1])
            for t in range(x.shape[1]):
                state = state + x[:, t, :]
            return state

    inputs = Input(shape=(5, 3), batch_size=4)
    outputs = StatefulSum()(inputs)
    assert outputs.shape == (4, 3)
    model = Model(inputs, outputs)
    x = _x((4, 5, 3))
    np.testing.assert_allclose(model.predict(x, verbose=0), x.sum(axis=1), rtol=1e-5)


class Weighted(Layer):
    """Takes a dict of inputs, as Keras layers may."""

    def build(self, input_shape):
        self.seen = input_shape
        self.scale = self.add_weight(shape=(input_shape["a"][-1],), initializer="ones",
                                     name="scale")

    def call(self, inputs):
        return inputs["a"] * self.scale + inputs["b"]


def test_dict_input_reaches_call_as_a_dict():
    layer = Weighted()
    a, b = _x((2, 3), 1), _x((2, 3), 2)
    out = layer({"a": a, "b": b})
    assert layer.seen == {"a": (None, 3), "b": (None, 3)}
    np.testing.assert_allclose(out.numpy(), a + b, rtol=1e-6)


def test_dict_input_in_a_functional_graph_and_its_config():
    a, b = Input(shape=(3,), name="a"), Input(shape=(3,), name="b")
    out = Weighted(name="w")({"a": a, "b": b})
    assert out.shape == (None, 3)
    model = Model([a, b], out)
    xa, xb = _x((2, 3), 1), _x((2, 3), 2)
    np.testing.assert_allclose(model.predict([xa, xb], verbose=0), xa + xb, rtol=1e-6)
    clone = Model.from_config(model.get_config(), custom_objects={"Weighted": Weighted})
    np.testing.assert_allclose(clone.predict([xa, xb], verbose=0), xa + xb, rtol=1e-6)
