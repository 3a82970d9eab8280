"""fundl.zoo.googlenet: torchvision's build (default) and the paper's, auxiliary classifiers."""
import numpy as np
import pytest

import fundl as fl
from fundl.layers import BatchNormalization, Concatenate, LocalResponseNormalization


def _conv(k, c_in, c_out, bias):
    return k * k * c_in * c_out + (c_out if bias else 0)


def test_googlenet_trainable_count_equals_torchvision(cheap_weights, helpers):
    model = fl.zoo.googlenet()
    assert helpers.trainable_count(model) == 6_624_904
    # plus the batch-norm moving mean and variance, which Keras counts too
    bn_channels = sum(layer.moving_mean.size for layer in model.layers
                      if isinstance(layer, BatchNormalization))
    assert model.count_params() == 6_624_904 + 2 * bn_channels
    assert model.outputs[0].shape == (None, 1000)


def test_googlenet_with_aux_logits_count_equals_torchvision(cheap_weights, helpers):
    model = fl.zoo.googlenet(aux_logits=True)
    assert helpers.trainable_count(model) == 13_004_888
    assert [t.shape for t in model.outputs] == [(None, 1000)] * 3


def test_googlenet_original_count_by_hand(cheap_weights):
    # the paper's build: convolutions with biases, 5x5 kernels, no batch norm
    table = [(192, 64, 96, 128, 16, 32, 32), (256, 128, 128, 192, 32, 96, 64),
             (480, 192, 96, 208, 16, 48, 64), (512, 160, 112, 224, 24, 64, 64),
             (512, 128, 128, 256, 24, 64, 64), (512, 112, 144, 288, 32, 64, 64),
             (528, 256, 160, 320, 32, 128, 128), (832, 256, 160, 320, 32, 128, 128),
             (832, 384, 192, 384, 48, 128, 128)]
    modules = sum(_conv(1, c, n1, True) + _conv(1, c, r3, True) + _conv(3, r3, n3, True)
                  + _conv(1, c, r5, True) + _conv(5, r5, n5, True) + _conv(1, c, p, True)
                  for c, n1, r3, n3, r5, n5, p in table)
    stem = _conv(7, 3, 64, True) + _conv(1, 64, 64, True) + _conv(3, 64, 192, True)
    expected = stem + modules + 1024 * 1000 + 1000
    model = fl.zoo.googlenet(original=True)
    assert model.count_params() == expected == 6_998_552
    assert not any(isinstance(layer, BatchNormalization) for layer in model.layers)
    assert sum(isinstance(layer, LocalResponseNormalization) for layer in model.layers) == 2


def test_googlenet_torchvision_build_uses_3x3_in_the_5x5_branch(cheap_weights):
    model = fl.zoo.googlenet(include_top=False)
    assert model.get_layer("inception3a_5x5").kernel_size == (3, 3)
    assert fl.zoo.googlenet(original=True).get_layer("inception3a_5x5").kernel_size == (5, 5)
    assert not model.get_layer("inception3a_5x5").use_bias


def test_googlenet_without_top_and_module_widths(cheap_weights):
    model = fl.zoo.googlenet(include_top=False)
    assert model.outputs[0].shape == (None, 7, 7, 1024)
    assert sum(isinstance(layer, Concatenate) for layer in model.layers) == 9
    # each module's output width, read from the input channels of the next one's 1x1 branch
    keys = ["3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"]
    widths = [model.get_layer(f"inception{k}_1x1").kernel.shape[2] for k in keys[1:]]
    assert widths == [256, 480, 512, 512, 512, 528, 832, 832]


def test_googlenet_aux_logits_needs_the_top():
    with pytest.raises(ValueError, match=r"googlenet: aux_logits=True needs include_top"):
        fl.zoo.googlenet(include_top=False, aux_logits=True)


def test_googlenet_trains_and_reloads(helpers, tmp_path):
    """Batch 16, no dropout, small steps: on 32x32 inputs the last stages' maps are 1x1, and
    over a batch of 4 their batch norm made the loss jump (1.84, 1.67, 1.24, 2.15) so that a
    change of float rounding anywhere (a GEMM's summation order) decided whether it fell."""
    model = fl.zoo.googlenet(input_shape=(32, 32, 3), classes=3)
    model.get_layer("dropout").rate = 0.0
    helpers.trains_and_reloads(model, (32, 32, 3), 3, tmp_path, batch=16,
                               optimizer=fl.optimizers.SGD(1e-4))


@pytest.mark.slow
def test_googlenet_with_aux_logits_trains_with_loss_weights():
    model = fl.zoo.googlenet(input_shape=(80, 80, 3), classes=3, aux_logits=True,
                             original=True)
    model.compile(optimizer=fl.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy",
                  loss_weights=[1.0, 0.3, 0.3])
    x = np.random.default_rng(0).standard_normal((4, 80, 80, 3)).astype(np.float32)
    y = np.arange(4) % 3
    losses = [model.train_on_batch(x, [y, y, y])[0] for _ in range(5)]
    # dropout (0.4 and 0.7) stays on: the loss falls over the steps, not at every step
    assert losses[-1] < losses[0], losses
