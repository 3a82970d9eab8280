"""fundl.zoo.resnet18 ... resnet152 (torchvision's builds) and resnet_cifar (He et al. 2016)."""
import numpy as np
import pytest

import fundl as fl
from fundl.layers import BatchNormalization, Conv2D


@pytest.mark.parametrize("name, expected", [
    ("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032),
    ("resnet101", 44_549_160), ("resnet152", 60_192_808),
])
def test_resnet_trainable_counts_equal_torchvision(cheap_weights, helpers, name, expected):
    model = getattr(fl.zoo, name)()
    assert helpers.trainable_count(model) == expected
    assert model.outputs[0].shape == (None, 1000)


def test_resnet_convolutions_have_no_bias_and_are_followed_by_batch_norm(cheap_weights):
    model = fl.zoo.resnet50()
    convs = [layer for layer in model.layers if isinstance(layer, Conv2D)]
    assert len(convs) == 53  # 1 + 16 blocks x 3 + 4 projections, as torchvision's
    assert not any(conv.use_bias for conv in convs)
    bns = [layer for layer in model.layers if isinstance(layer, BatchNormalization)]
    assert len(bns) == 53 and all((bn.epsilon, bn.momentum) == (1e-5, 0.9) for bn in bns)
    # count_params adds the moving statistics (non-trainable), as Keras counts them
    assert model.count_params() == 25_557_032 + 2 * sum(bn.moving_mean.size for bn in bns)


def test_resnet50_stride_is_on_the_3x3_convolution_and_padding_is_symmetric(cheap_weights):
    model = fl.zoo.resnet50()
    assert model.get_layer("conv3_block1_1_conv").strides == (1, 1)
    assert model.get_layer("conv3_block1_2_conv").strides == (2, 2)
    assert model.get_layer("conv3_block1_2_conv").padding == ((1, 1), (1, 1))
    assert model.get_layer("conv1_conv").padding == ((3, 3), (3, 3))


@pytest.mark.parametrize("name, channels", [("resnet18", 512), ("resnet50", 2048)])
def test_resnet_without_top(cheap_weights, name, channels):
    assert getattr(fl.zoo, name)(include_top=False).outputs[0].shape == (None, 7, 7, channels)


def test_resnet_unknown_depth():
    with pytest.raises(ValueError, match=r"depth must be one of \[18, 34, 50, 101, 152\].*"
                                         r"resnet_cifar"):
        fl.zoo.resnet(20)


def test_resnet18_trains(helpers, tmp_path):
    # (saving and loading: resnet50 in the slow tests, resnet_cifar here)
    helpers.trains_and_reloads(fl.zoo.resnet18(input_shape=(32, 32, 3), classes=3),
                               (32, 32, 3), 3, tmp_path, reload=False)


# resnet34 and resnet101/152 are resnet18's and resnet50's code with more blocks (their counts
# above check every layer's shape); training them here would only cost minutes.
@pytest.mark.slow
def test_resnet50_trains_and_reloads(helpers, tmp_path):
    # 64x64: at 32x32 the last stage is 1x1, and batch norm over 4 values per channel made the
    # loss too jumpy to compare steps
    model = fl.zoo.resnet50(input_shape=(64, 64, 3), classes=3)
    helpers.trains_and_reloads(model, (64, 64, 3), 3, tmp_path)


# -- CIFAR ResNets ---------------------------------------------------------------------------------

@pytest.mark.parametrize("depth, expected", [
    # the widely used PyTorch CIFAR ResNets (option A): the paper's 0.27M ... 1.7M
    (20, 269_722), (32, 464_154), (44, 658_586), (56, 853_018), (110, 1_727_962),
])
def test_resnet_cifar_option_a_counts(helpers, depth, expected):
    model = fl.zoo.resnet_cifar(depth)
    assert helpers.trainable_count(model) == expected
    assert model.outputs[0].shape == (None, 10)


def test_resnet_cifar_option_b_adds_two_projections(helpers):
    model = fl.zoo.resnet_cifar(20, shortcut="B")
    # 1x1 convolutions 16 -> 32 and 32 -> 64 with their batch norm scale and offset
    assert helpers.trainable_count(model) == 269_722 + (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)


def test_resnet_cifar_stages_and_depth():
    model = fl.zoo.resnet_cifar(20, include_top=False)
    assert model.outputs[0].shape == (None, 8, 8, 64)
    convs = [layer for layer in model.layers if isinstance(layer, Conv2D)]
    assert len(convs) == 19  # + the classifier = 20 weighted layers


def test_resnet_cifar_option_a_shortcut_subsamples_and_pads_channels_with_zeros():
    model = fl.zoo.resnet_cifar(8)
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 16)).astype(np.float32)
    y = fl.tensor(x)
    for suffix in ("subsample", "split", "pad", "merge"):
        y = model.get_layer(f"conv3_block1_0_{suffix}")(y)
    expected = np.pad(x[:, ::2, ::2, :], ((0, 0), (0, 0), (0, 0), (8, 8)))
    np.testing.assert_array_equal(y.numpy(), expected)


def test_resnet_cifar_errors():
    with pytest.raises(ValueError, match=r"resnet_cifar: depth must be 6n \+ 2.*21"):
        fl.zoo.resnet_cifar(21)
    with pytest.raises(ValueError, match=r"resnet_cifar: shortcut must be 'A'.*'C'"):
        fl.zoo.resnet_cifar(20, shortcut="C")
    with pytest.raises(ValueError, match=r"resnet_cifar: shortcut 'A' needs known height"):
        fl.zoo.resnet_cifar(20, input_shape=(None, None, 3))


def test_resnet20_cifar_trains_and_reloads(helpers, tmp_path):
    model = fl.zoo.resnet_cifar(20, classes=3)
    helpers.trains_and_reloads(model, (32, 32, 3), 3, tmp_path,
                               optimizer=fl.optimizers.SGD(1e-2))


def test_resnet_cifar_option_b_trains_and_reloads(helpers, tmp_path):
    model = fl.zoo.resnet_cifar(8, input_shape=(16, 16, 3), classes=3, shortcut="B")
    helpers.trains_and_reloads(model, (16, 16, 3), 3, tmp_path,
                               optimizer=fl.optimizers.SGD(1e-2))


def test_resnet_cifar_b_accepts_any_image_size():
    model = fl.zoo.resnet_cifar(8, input_shape=(None, None, 3), shortcut="B")
    assert model.predict(np.zeros((1, 12, 20, 3), np.float32), verbose=0).shape == (1, 10)
