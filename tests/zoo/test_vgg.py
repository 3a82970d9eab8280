"""fundl.zoo.vgg: every configuration of the paper's Table 1, and vgg11/13/16/19."""
import pytest

import fundl as fl
from fundl.layers import Conv2D, LocalResponseNormalization, MaxPooling2D


def _conv(k, c_in, c_out):
    return k * k * c_in * c_out + c_out


# The fully connected layers at 224x224 (7x7x512 -> 4096 -> 4096 -> 1000)
_FC = (7 * 7 * 512 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)


@pytest.mark.parametrize("config, expected", [
    ("A", 132_863_336), ("A-LRN", 132_863_336), ("B", 133_047_848),
    # C: D with the third convolution of blocks 3-5 as 1x1, counted here by hand
    ("C", 138_357_544 - (_conv(3, 256, 256) - _conv(1, 256, 256))
     - 2 * (_conv(3, 512, 512) - _conv(1, 512, 512))),
    ("D", 138_357_544), ("E", 143_667_240),
])
def test_vgg_counts_equal_the_reference_builds(cheap_weights, config, expected):
    assert fl.zoo.vgg(config).count_params() == expected


def test_vgg_a_count_by_hand():
    convs = [(3, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512), (512, 512),
             (512, 512)]
    assert sum(_conv(3, a, b) for a, b in convs) + _FC == 132_863_336


@pytest.mark.parametrize("fn, config", [("vgg11", "A"), ("vgg13", "B"), ("vgg16", "D"),
                                        ("vgg19", "E")])
def test_named_vggs_are_the_configurations(cheap_weights, fn, config):
    model, reference = getattr(fl.zoo, fn)(), fl.zoo.vgg(config)
    assert model.count_params() == reference.count_params()
    assert [type(layer) for layer in model.layers] == [type(layer) for layer in reference.layers]


def test_vgg_c_has_1x1_convolutions_and_a_lrn_has_lrn(cheap_weights):
    c = fl.zoo.vgg("C", include_top=False)
    sizes = [layer.kernel_size for layer in c.layers if isinstance(layer, Conv2D)]
    assert sizes.count((1, 1)) == 3 and sizes.count((3, 3)) == 10
    a_lrn = fl.zoo.vgg("A-LRN", include_top=False)
    assert [type(layer) for layer in a_lrn.layers[1:4]] == [Conv2D, LocalResponseNormalization,
                                                             MaxPooling2D]


def test_vgg16_names_follow_keras(cheap_weights):
    names = [layer.name for layer in fl.zoo.vgg16().layers]
    assert names[1:4] == ["block1_conv1", "block1_conv2", "block1_pool"]
    assert names[-6:] == ["flatten", "fc1", "drop1", "fc2", "drop2", "predictions"]


def test_vgg16_without_top_ends_with_block5_pool(cheap_weights):
    model = fl.zoo.vgg16(include_top=False)
    assert model.outputs[0].shape == (None, 7, 7, 512)
    assert model.count_params() == 14_714_688  # Keras's VGG16(include_top=False)


def test_vgg_unknown_config():
    with pytest.raises(ValueError, match=r"fundl\.zoo\.vgg: config must be one of.*'F'"):
        fl.zoo.vgg("F")


def test_vgg_input_too_small_fails_at_definition():
    with pytest.raises(ValueError, match=r"fundl\.zoo\.vgg\('A'\).*\(16, 16, 3\).*block5_pool"):
        fl.zoo.vgg("A", input_shape=(16, 16, 3))


# Training runs the three kinds of column (LRN, 1x1 convolutions, plain 3x3); A, B and E are
# the same code with other repeat counts, checked layer by layer by the counts above.
@pytest.mark.slow
@pytest.mark.parametrize("config", ["A-LRN", "C", "D"])
def test_vgg_trains(helpers, tmp_path, config):
    # without dropout, so that every step's loss is comparable; Adam, because the first steps
    # of plain SGD barely move a VGG without batch normalisation
    model = fl.zoo.vgg(config, input_shape=(32, 32, 3), classes=3, dropout=0.0)
    helpers.trains_and_reloads(model, (32, 32, 3), 3, tmp_path, reload=config == "D",
                               optimizer=fl.optimizers.Adam(1e-4))
