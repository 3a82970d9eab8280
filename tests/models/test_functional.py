"""The functional Model: multi-input/-output, shared layers, nesting, errors, subclassing."""
import numpy as np

import fundl as fl
from fundl.layers import Add, Concatenate, Dense, Input, Layer
from fundl.models import Model, Sequential, load_model
from fundl import functional as F
from fundl.testing import assert_error


def _rng(seed=0):
    return np.random.default_rng(seed)


def _two_output_model():
    """Inputs a (4,) and b (3,); outputs "cls" (2-way softmax) and "reg" (1 unit)."""
    fl.manual_seed(0)
    a, b = Input(shape=(4,), name="a"), Input(shape=(3,), name="b")
    h = Concatenate()([Dense(5, activation="relu")(a), Dense(5, activation="relu")(b)])
    cls = Dense(2, activation="softmax", name="cls")(h)
    reg = Dense(1, name="reg")(h)
    return Model(inputs=[a, b], outputs=[cls, reg])


def _two_output_data(n=40, seed=0):
    rng = _rng(seed)
    xa = rng.standard_normal((n, 4)).astype("float32")
    xb = rng.standard_normal((n, 3)).astype("float32")
    y_cls = np.eye(2, dtype="float32")[rng.integers(0, 2, n)]
    y_reg = rng.standard_normal((n, 1)).astype("float32")
    return [xa, xb], [y_cls, y_reg]


# -- structure ----------------------------------------------------------------------------------

def test_layers_are_listed_inputs_first_then_in_graph_order():
    model = _two_output_model()
    names = [layer.name for layer in model.layers]
    assert names[:2] == ["a", "b"] and names[-2:] == ["cls", "reg"]
    assert model.input_names == ["a", "b"] and model.output_names == ["cls", "reg"]


def test_auto_named_layers_are_numbered_in_creation_order():
    x = Input(shape=(2,))
    first = Dense(3)
    second = Dense(3)
    model = Model(x, second(first(x)))
    assert (first.name, second.name) == ("dense", "dense_1")
    assert model.get_layer("dense") is first


def test_multi_input_model_computes_the_graph():
    model = _two_output_model()
    xs, _ = _two_output_data(n=3)
    cls, reg = model(xs)
    layers = {layer.name: layer for layer in model.layers}
    h = np.concatenate([np.maximum(xs[0] @ layers["dense"].kernel.numpy()
                                   + layers["dense"].bias.numpy(), 0),
                        np.maximum(xs[1] @ layers["dense_1"].kernel.numpy()
                                   + layers["dense_1"].bias.numpy(), 0)], axis=1)
    expected = h @ layers["reg"].kernel.numpy() + layers["reg"].bias.numpy()
    np.testing.assert_allclose(reg.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert cls.shape == (3, 2)


def test_graph_disconnected_is_an_error_at_definition():
    a, b = Input(shape=(2,)), Input(shape=(2,))
    assert_error(ValueError, Model, a, Add()([a, b]),
                 contains=["graph disconnected", "(None, 2)", "inputs"])


def test_duplicate_layer_names_are_an_error_at_definition():
    x = Input(shape=(2,))
    y = Dense(2, name="same")(Dense(2, name="same")(x))
    assert_error(ValueError, Model, x, y, contains=["'same'", "unique"])


def test_inputs_must_come_from_input():
    x = Input(shape=(2,))
    h = Dense(2)(x)
    assert_error(ValueError, Model, h, Dense(1)(h), contains=["Input"])


def test_outputs_must_be_symbolic():
    assert_error(TypeError, Model, Input(shape=(2,)), np.ones(2), contains=["outputs"])


def test_outputs_without_inputs_is_an_error():
    assert_error(ValueError, Model, None, Input(shape=(2,)), contains=["inputs="])


def test_call_with_wrong_input_shape_names_input_and_shapes():
    model = _two_output_model()
    assert_error(ValueError, model, [np.ones((2, 4), "float32"), np.ones((2, 5), "float32")],
                 contains=["'b'", "(None, 3)", "(2, 5)"])


def test_call_with_wrong_number_of_inputs():
    model = _two_output_model()
    assert_error(ValueError, model, [np.ones((2, 4), "float32")], contains=["2 input"])


# -- shared layers -------------------------------------------------------------------------------

def test_shared_layer_weights_are_counted_once():
    x = Input(shape=(3,))
    shared = Dense(3, name="shared")
    model = Model(x, shared(shared(x)))
    assert len(model.weights) == 2 and model.count_params() == 12
    assert len(shared._inbound_nodes) == 2


def test_shared_layer_gradient_sums_both_uses():
    x = Input(shape=(2,))
    shared = Dense(2, use_bias=False, kernel_initializer="identity", name="shared")
    model = Model(x, shared(shared(x)))
    data = np.array([[1.0, 2.0]], dtype="float32")
    model(data, training=True).sum().backward()
    # y = x W W; with W = I, d(sum y)/dW = x^T 1 W^T + (x W)^T 1 = 2 x^T 1
    np.testing.assert_allclose(shared.kernel.grad, 2 * data.T @ np.ones((1, 2)), rtol=1e-6)


def test_siamese_model_shares_weights_between_inputs():
    a, b = Input(shape=(4,)), Input(shape=(4,))
    encode = Dense(3, name="encoder")
    model = Model([a, b], fl.layers.Subtract()([encode(a), encode(b)]))
    x = _rng().standard_normal((5, 4)).astype("float32")
    np.testing.assert_allclose(model([x, x]).numpy(), 0.0, atol=1e-7)
    assert len(model.trainable_weights) == 2


# -- nesting ---------------------------------------------------------------------------------------

def _nested():
    fl.manual_seed(1)
    inner_in = Input(shape=(3,))
    inner = Model(inner_in, Dense(4, activation="tanh")(inner_in), name="encoder")
    x = Input(shape=(3,))
    return Model(x, Dense(1, name="head")(inner(x))), inner


def test_model_used_as_a_layer_contributes_its_weights_under_its_name():
    outer, inner = _nested()
    assert list(outer.state_dict()) == ["encoder.dense.kernel", "encoder.dense.bias",
                                        "head.kernel", "head.bias"]
    x = np.ones((2, 3), "float32")
    np.testing.assert_allclose(outer.predict(x), outer.get_layer("head")(inner(x)).numpy(),
                               rtol=1e-6)


def test_training_the_outer_model_updates_the_inner_one():
    outer, inner = _nested()
    before = inner.get_weights()
    outer.compile(loss="mse", optimizer="sgd")
    outer.fit(np.ones((8, 3), "float32"), np.full((8, 1), 3.0, "float32"), verbose=0)
    assert not np.array_equal(before[0], inner.get_weights()[0])


def test_nested_model_saves_and_loads(tmp_path):
    outer, _ = _nested()
    outer.save(tmp_path / "nested.fundl")
    loaded = load_model(tmp_path / "nested.fundl")
    x = _rng().standard_normal((3, 3)).astype("float32")
    np.testing.assert_array_equal(loaded.predict(x), outer.predict(x))


def test_unnamed_nested_models_get_unique_names():
    x = Input(shape=(2,))
    m1 = Sequential([Dense(2, input_dim=2)])
    m2 = Sequential([Dense(2, input_dim=2)])
    model = Model(x, Add()([m1(x), m2(x)]))
    assert m1.name != m2.name
    assert len(model.weights) == 4


def test_freezing_a_nested_model_freezes_its_layers():
    outer, inner = _nested()
    inner.trainable = False
    assert [w.name for w in outer.trainable_weights] == ["kernel", "bias"]
    assert len(outer.non_trainable_weights) == 2


# -- dict inputs and outputs -----------------------------------------------------------------------

def _dict_model():
    p, q = Input(shape=(2,), name="p"), Input(shape=(3,), name="q")
    out = Dense(1, name="out")(Concatenate()([p, q]))
    return Model(inputs={"p": p, "q": q}, outputs={"score": out})


def test_dict_inputs_and_outputs_in_call():
    model = _dict_model()
    out = model({"q": np.ones((4, 3), "float32"), "p": np.ones((4, 2), "float32")})
    assert set(out) == {"score"} and out["score"].shape == (4, 1)


def test_dict_input_missing_a_key_names_it():
    assert_error(ValueError, _dict_model(), {"p": np.ones((4, 2), "float32")}, contains=["q"])


def test_dict_inputs_in_fit_predict_evaluate():
    model = _dict_model()
    model.compile(loss={"score": "mse"}, optimizer="sgd")
    x = {"p": np.ones((6, 2), "float32"), "q": np.zeros((6, 3), "float32")}
    history = model.fit(x, {"score": np.ones((6, 1), "float32")}, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert model.predict(x).shape == (6, 1)
    assert isinstance(model.evaluate(x, {"score": np.ones((6, 1), "float32")}, verbose=0), float)


# -- outputs ---------------------------------------------------------------------------------------

def test_multi_output_call_returns_a_list_and_predict_a_list_of_arrays():
    model = _two_output_model()
    xs, _ = _two_output_data(n=5)
    outs = model(xs)
    assert isinstance(outs, list) and [o.shape for o in outs] == [(5, 2), (5, 1)]
    preds = model.predict(xs, batch_size=2)
    assert isinstance(preds, list) and all(isinstance(p, np.ndarray) for p in preds)
    for p, o in zip(preds, outs):
        np.testing.assert_allclose(p, o.numpy(), rtol=1e-6)


def test_config_round_trip_rebuilds_an_equivalent_graph():
    model = _two_output_model()
    clone = Model.from_config(model.get_config())
    assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]
    clone.set_weights(model.get_weights())
    xs, _ = _two_output_data(n=4)
    for a, b in zip(clone.predict(xs), model.predict(xs)):
        np.testing.assert_array_equal(a, b)


def test_config_round_trip_of_shared_layers_keeps_sharing():
    x = Input(shape=(3,))
    shared = Dense(3, name="shared")
    model = Model(x, shared(shared(x)))
    clone = Model.from_config(model.get_config())
    assert len(clone.weights) == 2
    clone.set_weights(model.get_weights())
    data = np.ones((2, 3), "float32")
    np.testing.assert_array_equal(clone.predict(data), model.predict(data))


# -- subclassing -----------------------------------------------------------------------------------

class TwoLayer(Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = Dense(8, activation="tanh")
        self.out = Dense(1)

    def call(self, x, training=False):
        return self.out(self.hidden(x))


def test_subclassed_model_tracks_layers_and_trains():
    fl.manual_seed(0)
    model = TwoLayer()
    x = _rng().standard_normal((32, 2)).astype("float32")
    y = (x[:, :1] * 2 - x[:, 1:]).astype("float32")
    model.compile(loss="mse", optimizer=fl.optimizers.Adam(0.05))
    history = model.fit(x, y, epochs=30, batch_size=8, verbose=0)
    assert model.layers == [model.hidden, model.out]
    assert list(model.state_dict()) == ["hidden.kernel", "hidden.bias", "out.kernel", "out.bias"]
    assert history.history["loss"][-1] < 0.1 * history.history["loss"][0]


def test_subclassed_model_without_call_explains():
    assert_error(NotImplementedError, Model(), np.ones((1, 2), "float32"), contains=["call"])


class NoShape(Layer):
    def call(self, x, training=False):
        return x * 2


def test_layer_without_compute_output_shape_has_its_shape_inferred():
    x = Input(shape=(None, 3))
    y = NoShape()(x)
    assert y.shape == (None, None, 3) and y.dtype == np.float32


class FailsOnZeros(Layer):
    def call(self, x, training=False):
        return F.reshape(x, (-1, 5))


def test_inference_that_fails_names_the_layer_and_the_shapes():
    assert_error(ValueError, FailsOnZeros(name="odd"), Input(shape=(3,)),
                 contains=["FailsOnZeros 'odd'", "(None, 3)", "(2, 3)", "compute_output_shape"])


def test_a_keyword_left_at_none_does_not_stop_saving(tmp_path):
    # layer(x, mask=None) records the keyword in the graph; None is the default, nothing lost
    from fundl.layers import LSTM

    inputs = Input(shape=(3, 2))
    model = Model(inputs, LSTM(4)(inputs, mask=None))
    model.save(str(tmp_path / "m.fundl"))
    x = np.random.default_rng(0).standard_normal((2, 3, 2)).astype("float32")
    np.testing.assert_array_equal(load_model(str(tmp_path / "m.fundl")).predict(x, verbose=0),
                                  model.predict(x, verbose=0))
