"""fundl.applications: Keras's parameter counts, arguments, names and errors."""
import numpy as np
import pytest

import fundl as fl
import fundl.layers.base as layer_base
from fundl import applications as A
from fundl.testing import assert_error


@pytest.fixture
def cheap_weights(monkeypatch):
    """New weights start as zeros (pages reserved, never written): counts do not depend on the
    values, and drawing VGG16's 138M random numbers would take seconds."""
    real = layer_base.deserialize_object

    def zeros_for_initializers(module, identifier):
        if module is fl.initializers:
            return lambda shape, dtype=None: np.zeros(shape, dtype=dtype)
        return real(module, identifier)

    monkeypatch.setattr(layer_base, "deserialize_object", zeros_for_initializers)


@pytest.mark.parametrize("fn,count", [
    (A.ResNet50, 25_636_712),      # Keras's published counts, 224x224x3, 1000 classes
    (A.DenseNet121, 8_062_504),
])
def test_keras_parameter_counts(fn, count, cheap_weights):
    assert fn().count_params() == count


def test_vgg16_count_without_and_with_top(cheap_weights):
    assert A.VGG16(include_top=False).count_params() == 14_714_688   # Keras's "notop" count
    assert A.VGG16().count_params() == 138_357_544


@pytest.mark.slow
@pytest.mark.parametrize("fn,count", [
    (A.VGG19, 143_667_240), (A.ResNet101, 44_707_176), (A.ResNet152, 60_419_944),
    (A.DenseNet169, 14_307_880), (A.DenseNet201, 20_242_984),
])
def test_keras_parameter_counts_of_the_large_ones(fn, count, cheap_weights):
    assert fn().count_params() == count


def test_resnet50_notop_count_and_inception_v1_count():
    assert A.ResNet50(include_top=False, pooling="avg").count_params() == 23_587_712
    # torchvision's GoogLeNet: 6,624,904 trainable + 2 x 7,280 batch-norm statistics
    assert A.InceptionV1().count_params() == 6_624_904 + 14_560
    assert A.GoogLeNet is A.InceptionV1


@pytest.mark.parametrize("fn", [A.VGG16, A.ResNet50, A.DenseNet121, A.InceptionV1])
def test_pretrained_weights_raise_a_clear_error(fn):
    assert_error(ValueError, fn, weights="imagenet",
                 contains=[fn.__name__, "not shipped", "weights=None", "load_weights"])


def test_keras_layer_names():
    resnet = A.ResNet50(input_shape=(32, 32, 3), classes=5)
    for name in ("conv1_conv", "conv1_bn", "conv2_block1_0_conv", "conv2_block3_3_bn",
                 "conv5_block3_out", "avg_pool", "predictions"):
        resnet.get_layer(name)
    assert resnet.get_layer("conv1_conv").use_bias
    dense = A.DenseNet121(input_shape=(32, 32, 3), classes=5)
    for name in ("conv1_conv", "conv2_block1_1_conv", "pool2_conv", "conv5_block16_2_conv",
                 "bn", "predictions"):
        dense.get_layer(name)
    vgg = A.VGG16(include_top=False, input_shape=(32, 32, 3))
    vgg.get_layer("block5_conv3")
    assert not any("drop" in layer.name for layer in vgg.layers)


def test_resnet50_without_top_any_size_and_pooling():
    model = A.ResNet50(include_top=False)
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
    assert model(fl.tensor(x)).shape == (2, 1, 1, 2048)
    assert model.outputs[0].shape == (None, None, None, 2048)
    for pooling in ("avg", "max"):
        pooled = A.ResNet50(include_top=False, pooling=pooling, input_shape=(32, 32, 3))
        assert pooled.outputs[0].shape == (None, 2048)
        assert pooled.layers[-1].name == f"{pooling}_pool"


def test_input_tensor_and_classifier_activation():
    inputs = fl.Input(shape=(32, 32, 3))
    model = A.InceptionV1(input_tensor=inputs, classes=3, classifier_activation=None)
    assert model.inputs[0] is inputs
    x = np.random.default_rng(1).standard_normal((2, 32, 32, 3)).astype(np.float32)
    logits = model(fl.tensor(x)).numpy()
    assert logits.shape == (2, 3)
    assert not np.allclose(logits.sum(axis=1), 1.0)  # logits, not probabilities
    probs = A.ResNet50(input_shape=(32, 32, 3), classes=3)(fl.tensor(x)).numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert_error(ValueError, A.VGG16, input_tensor=inputs, input_shape=(64, 64, 3),
                 contains=["input_shape", "input_tensor"])
    assert_error(TypeError, A.VGG16, input_tensor=np.zeros((1, 32, 32, 3)),
                 contains=["input_tensor", "symbolic"])


def test_input_tensor_from_an_earlier_layer_keeps_the_source_input():
    inputs = fl.Input(shape=(32, 32, 3))
    scaled = fl.layers.Activation("linear")(inputs)
    model = A.DenseNet121(include_top=False, input_tensor=scaled, pooling="avg")
    out = model(fl.tensor(np.zeros((1, 32, 32, 3), dtype=np.float32)))
    assert out.shape == (1, 1024)


def test_bad_arguments_are_named():
    assert_error(ValueError, A.ResNet50, pooling="sum", contains=["ResNet50", "pooling"])
    assert_error(ValueError, A.DenseNet121, classes=0, contains=["DenseNet121", "classes"])
    assert_error(ValueError, A.VGG16, input_shape=(16, 16, 3), contains=["VGG16", "32x32"])
    assert_error(ValueError, A.VGG16, input_shape=(None, None, 3),
                 contains=["include_top", "fixed"])
    assert_error(TypeError, A.VGG16, include_top="yes", contains=["include_top"])


@pytest.mark.slow
@pytest.mark.parametrize("fn", [A.ResNet50, A.DenseNet121, A.InceptionV1, A.VGG16])
def test_a_few_training_steps_lower_the_loss(fn):
    fl.manual_seed(0)
    model = fn(input_shape=(32, 32, 3), classes=3)
    model.compile(optimizer=fl.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    first = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=5, batch_size=8, verbose=0)
    last = model.evaluate(x, y, verbose=0)
    first = first[0] if isinstance(first, (list, tuple)) else first
    last = last[0] if isinstance(last, (list, tuple)) else last
    assert last < first
