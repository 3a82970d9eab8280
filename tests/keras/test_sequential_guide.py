"""Patterns from the Keras guide "The Sequential model", in fundl: building incrementally,
input shapes in advance, the add() + summary() debugging loop, feature extraction and
transfer learning through ``model.inputs`` / ``layer.output``."""
import numpy as np

import fundl as fl
from fundl import layers
from fundl.testing import assert_error


def test_layers_have_no_weights_until_built_and_then_they_do():
    layer = layers.Dense(3)
    assert layer.weights == []
    layer(np.ones((1, 4), "float32"))
    assert [w.shape for w in layer.weights] == [(4, 3), (3,)]
    model = fl.Sequential([layers.Dense(2, activation="relu"), layers.Dense(3),
                           layers.Dense(4)])
    assert model.weights == [] and not model.built
    model(np.ones((1, 4), "float32"))
    assert len(model.weights) == 6


def test_input_first_gives_a_built_model_with_a_summary():
    model = fl.Sequential()
    model.add(fl.Input(shape=(4,)))
    model.add(layers.Dense(2, activation="relu"))
    assert model.built and model.output_shape == (None, 2)
    assert model.layers[0].name == "dense"   # the Input is not a layer of the stack
    lines = []
    model.summary(print_fn=lines.append)
    assert lines[0] == 'Model: "sequential"' and " Total params: 10 (40.00 B)" in lines


def test_add_and_summary_debugging_loop_with_convolutions():
    model = fl.Sequential()
    model.add(fl.Input(shape=(20, 20, 3)))
    model.add(layers.Conv2D(4, 5, strides=2, activation="relu"))
    model.add(layers.Conv2D(4, 3, activation="relu"))
    model.add(layers.MaxPooling2D(2))
    assert model.output_shape == (None, 3, 3, 4)
    model.add(layers.GlobalMaxPooling2D())
    model.add(layers.Dense(3))
    lines = []
    model.summary(print_fn=lines.append)
    assert any("│ global_max_pooling2d" in line for line in lines)
    assert model.predict(np.zeros((2, 20, 20, 3), "float32"), verbose=0).shape == (2, 3)


def test_feature_extraction_from_an_intermediate_layer():
    initial = fl.Sequential([fl.Input(shape=(16, 16, 3)),
                             layers.Conv2D(4, 5, strides=2, activation="relu"),
                             layers.Conv2D(4, 3, activation="relu", name="my_intermediate_layer"),
                             layers.Conv2D(4, 3, activation="relu")])
    extractor = fl.Model(inputs=initial.inputs,
                         outputs=initial.get_layer(name="my_intermediate_layer").output)
    x = np.ones((1, 16, 16, 3), "float32")
    features = extractor(x)
    assert features.shape == (1, 4, 4, 4)
    every = fl.Model(inputs=initial.inputs, outputs=[layer.output for layer in initial.layers])
    assert [f.shape for f in every(x)] == [(1, 6, 6, 4), (1, 4, 4, 4), (1, 2, 2, 4)]


def test_transfer_learning_freezes_all_but_the_last_layer():
    fl.manual_seed(0)
    model = fl.Sequential([fl.Input(shape=(6,)), layers.Dense(8, activation="relu"),
                           layers.Dense(8, activation="relu"), layers.Dense(1)])
    for layer in model.layers[:-1]:
        layer.trainable = False
    frozen = [w.numpy().copy() for layer in model.layers[:-1] for w in layer.weights]
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).standard_normal((32, 6)).astype("float32")
    model.fit(x, x[:, :1], epochs=2, verbose=0)
    after = [w.numpy() for layer in model.layers[:-1] for w in layer.weights]
    assert all(np.array_equal(a, b) for a, b in zip(frozen, after))
    assert len(model.trainable_weights) == 2


def test_reusing_a_trained_stack_in_a_new_sequential():
    base = fl.Sequential([fl.Input(shape=(5,)), layers.Dense(4), layers.Dense(3)])
    head = fl.Sequential([fl.Input(shape=(5,))])
    for layer in base.layers[:-1]:
        head.add(layer)
    head.add(layers.Dense(2, name="new_head"))
    assert head.output_shape == (None, 2)
    assert head.layers[0] is base.layers[0]
    assert base.layers[0].output.shape == (None, 4)   # the first call's graph, as Keras


def test_pop_and_add_keep_the_symbolic_graph_consistent():
    model = fl.Sequential([fl.Input(shape=(3,)), layers.Dense(4), layers.Dense(2)])
    model.pop()
    assert model.output is model.layers[-1].output
    model.add(layers.Dense(7))
    assert model.output.shape == (None, 7)
    assert_error(AttributeError, lambda: fl.Sequential().output, contains=["input_shape"])
