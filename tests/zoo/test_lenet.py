"""fundl.zoo.lenet5: the paper's layer shapes and parameter count, training, saving."""
import pytest

import fundl as fl
from fundl.layers import AveragePooling2D, Conv2D, Dense


def test_lenet5_has_the_papers_61706_parameters_on_32x32():
    model = fl.zoo.lenet5()
    assert model.count_params() == 61706
    assert model.outputs[0].shape == (None, 10)


def test_lenet5_layer_shapes_are_the_classic_ones_on_32x32_and_28x28():
    for shape, padding in [((32, 32, 1), "valid"), ((28, 28, 1), "same")]:
        model = fl.zoo.lenet5(input_shape=shape)
        c1 = model.get_layer("c1")
        assert c1.padding == padding
        assert c1.compute_output_shape((None,) + shape) == (None, 28, 28, 6)
        assert model.count_params() == 61706


def test_lenet5_layers():
    model = fl.zoo.lenet5()
    kinds = [(type(layer), layer.name) for layer in model.layers[1:]]
    assert kinds == [(Conv2D, "c1"), (AveragePooling2D, "s2"), (Conv2D, "c3"),
                     (AveragePooling2D, "s4"), (Conv2D, "c5"), (fl.layers.Flatten, "flatten"),
                     (Dense, "f6"), (Dense, "predictions")]


def test_lenet5_without_top_returns_c5():
    model = fl.zoo.lenet5(input_shape=(28, 28, 1), include_top=False)
    assert model.outputs[0].shape == (None, 1, 1, 120)


def test_lenet5_logits_and_classes():
    model = fl.zoo.lenet5(classes=3, classifier_activation=None)
    assert model.get_layer("predictions").get_config()["activation"] == "linear"
    assert model.outputs[0].shape == (None, 3)


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_lenet5_trains_and_reloads(helpers, tmp_path, shape):
    helpers.trains_and_reloads(fl.zoo.lenet5(input_shape=shape, classes=3), shape, 3, tmp_path,
                               optimizer=fl.optimizers.SGD(1e-2))
