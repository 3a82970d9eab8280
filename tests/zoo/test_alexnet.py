"""fundl.zoo.alexnet: torchvision's single-tower build, LRN optional."""
import pytest

import fundl as fl
from fundl.layers import LocalResponseNormalization


def test_alexnet_count_equals_torchvision(cheap_weights, helpers):
    model = fl.zoo.alexnet()
    assert model.count_params() == helpers.trainable_count(model) == 61_100_840
    assert model.outputs[0].shape == (None, 1000)


def test_alexnet_feature_map_sizes_follow_torchvision(cheap_weights):
    model = fl.zoo.alexnet(include_top=False)
    assert model.outputs[0].shape == (None, 6, 6, 256)  # torchvision's features: 256 x 6 x 6
    # 11x11 / 4 with 2 pixels on each side: 55x55, as torchvision (Keras's "same": 56x56)
    assert model.get_layer("conv1").compute_output_shape((None, 224, 224, 3)) == (
        None, 55, 55, 64)


def test_alexnet_lrn_adds_two_parameter_free_layers(cheap_weights):
    model = fl.zoo.alexnet(lrn=True, include_top=False)
    lrn = [layer for layer in model.layers if isinstance(layer, LocalResponseNormalization)]
    assert [layer.name for layer in lrn] == ["lrn1", "lrn2"]
    assert (lrn[0].depth_radius, lrn[0].bias, lrn[0].alpha, lrn[0].beta) == (2, 2.0, 1e-4, 0.75)
    assert model.count_params() == fl.zoo.alexnet(include_top=False).count_params()


def test_alexnet_input_too_small_fails_at_definition():
    with pytest.raises(ValueError, match=r"fundl\.zoo\.alexnet.*\(62, 62, 3\).*pool5"):
        fl.zoo.alexnet(input_shape=(62, 62, 3))


@pytest.mark.slow
def test_alexnet_with_lrn_trains_and_reloads(helpers, tmp_path):
    # without dropout, so that every step's loss is comparable (the default keeps 0.5)
    model = fl.zoo.alexnet(input_shape=(63, 63, 3), classes=3, lrn=True, dropout=0.0)
    helpers.trains_and_reloads(model, (63, 63, 3), 3, tmp_path,
                               optimizer=fl.optimizers.Adam(1e-4))
