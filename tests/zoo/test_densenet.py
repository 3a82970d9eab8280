"""fundl.zoo.densenet121/169/201 (torchvision's builds) and densenet_bc_cifar."""
import pytest

import fundl as fl
from fundl.layers import BatchNormalization, Concatenate, Conv2D


@pytest.mark.parametrize("name, expected, total", [
    # total: with the batch-norm moving statistics, Keras's DenseNet121/169/201 counts
    ("densenet121", 7_978_856, 8_062_504), ("densenet169", 14_149_480, 14_307_880),
    ("densenet201", 20_013_928, 20_242_984),
])
def test_densenet_counts_equal_torchvision_and_keras(cheap_weights, helpers, name, expected,
                                                     total):
    model = getattr(fl.zoo, name)()
    assert helpers.trainable_count(model) == expected
    assert model.count_params() == total
    assert model.outputs[0].shape == (None, 1000)


def test_densenet121_structure(cheap_weights):
    model = fl.zoo.densenet121(include_top=False)
    assert model.outputs[0].shape == (None, 7, 7, 1024)
    assert sum(isinstance(layer, Concatenate) for layer in model.layers) == 58  # 6+12+24+16
    # the transitions halve the channels: 256 -> 128, 512 -> 256, 1024 -> 512
    assert [model.get_layer(f"pool{i}_conv").filters for i in (2, 3, 4)] == [128, 256, 512]
    assert not any(layer.use_bias for layer in model.layers if isinstance(layer, Conv2D))


def test_densenet_bc_100_12_count(helpers):
    model = fl.zoo.densenet_bc_cifar(100, growth_rate=12)
    assert helpers.trainable_count(model) == 769_162  # the paper's 0.8M
    assert model.outputs[0].shape == (None, 10)
    assert sum(isinstance(layer, Concatenate) for layer in model.layers) == 48


def test_densenet_bc_cifar_without_top():
    model = fl.zoo.densenet_bc_cifar(16, growth_rate=4, include_top=False)
    # 2k + 2 layers x k, halved, + 2k, halved, + 2k: 8 + 8 = 16 -> 8 + 8 = 16 -> 8 + 8 = 16
    assert model.outputs[0].shape == (None, 8, 8, 16)
    assert isinstance(model.layers[-2], BatchNormalization)


def test_densenet_errors():
    with pytest.raises(ValueError, match=r"densenet: depth must be one of \[121, 169, 201\]"):
        fl.zoo.densenet(100)
    with pytest.raises(ValueError, match=r"densenet_bc_cifar: depth must be 6n \+ 4.*99"):
        fl.zoo.densenet_bc_cifar(99)
    with pytest.raises(ValueError, match=r"densenet_bc_cifar: growth_rate must be a positive"):
        fl.zoo.densenet_bc_cifar(40, growth_rate=0)


def test_densenet_bc_cifar_trains_and_reloads(helpers, tmp_path):
    model = fl.zoo.densenet_bc_cifar(16, growth_rate=6, input_shape=(16, 16, 3), classes=3)
    helpers.trains_and_reloads(model, (16, 16, 3), 3, tmp_path,
                               optimizer=fl.optimizers.SGD(1e-2))


# densenet169/201 and DenseNet-BC-100 are the same code with more layers per block (the counts
# above check them); training one ImageNet DenseNet is enough.
@pytest.mark.slow
def test_densenet121_trains_and_reloads(helpers, tmp_path):
    # 64x64, as ResNet-50's test: at 32x32 the last block is 1x1 and its batch norms see 4
    # values per channel, which makes the loss jump between steps
    model = fl.zoo.densenet121(input_shape=(64, 64, 3), classes=3)
    helpers.trains_and_reloads(model, (64, 64, 3), 3, tmp_path)
