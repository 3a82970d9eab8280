"""DepthwiseConv2D and SeparableConv2D: harness, PyTorch agreement, Keras layouts, errors."""
import numpy as np
import pytest

import fundl as fl
from fundl.layers import Conv2D, DepthwiseConv2D, Input, SeparableConv2D
from fundl.models import Model
from fundl.testing import assert_error
from fundl.testing.layer_case import check_against_torch, check_layer


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("kwargs, out", [
    ({"kernel_size": 3}, (1, 2, 3, 2)),
    ({"kernel_size": (2, 3), "depth_multiplier": 2, "padding": "same", "activation": "relu",
      "strides": 2, "use_bias": False}, (1, 2, 3, 4)),
])
def test_depthwise_harness(kwargs, out):
    m = kwargs.get("depth_multiplier", 1)
    weights = {"depthwise_kernel": tuple(np.broadcast_to(kwargs["kernel_size"], 2)) + (2, m)}
    if kwargs.get("use_bias", True):
        weights["bias"] = (2 * m,)
    check_layer(DepthwiseConv2D, kwargs, input_shape=(1, 4, 5, 2), expected_output_shape=out,
                expected_weights=weights)


def test_depthwise_channels_first_harness():
    check_layer(DepthwiseConv2D, {"kernel_size": 2, "data_format": "channels_first",
                                  "depth_multiplier": 2},
                input_shape=(1, 2, 3, 3), expected_output_shape=(1, 4, 2, 2),
                expected_weights={"depthwise_kernel": (2, 2, 2, 2), "bias": (4,)})


@pytest.mark.parametrize("kwargs, out", [
    ({"filters": 3, "kernel_size": 2}, (1, 3, 3, 3)),
    ({"filters": 3, "kernel_size": 2, "depth_multiplier": 2, "padding": "same",
      "activation": "tanh", "dilation_rate": 2}, (1, 4, 4, 3)),
])
def test_separable_harness(kwargs, out):
    m = kwargs.get("depth_multiplier", 1)
    check_layer(SeparableConv2D, kwargs, input_shape=(1, 4, 4, 2), expected_output_shape=out,
                expected_weights={"depthwise_kernel": (2, 2, 2, m),
                                  "pointwise_kernel": (1, 1, 2 * m, kwargs["filters"]),
                                  "bias": (kwargs["filters"],)})


def _torch_depthwise_weight(kernel):
    kh, kw, c, m = kernel.shape
    return kernel.reshape(kh, kw, 1, c * m).transpose(3, 2, 0, 1)


@pytest.mark.parametrize("strides, padding, dilation", [(1, "valid", 1), (2, "valid", 1),
                                                        (1, "same", 2)])
def test_depthwise_matches_torch_grouped_conv(strides, padding, dilation):
    torch = pytest.importorskip("torch")
    layer = DepthwiseConv2D(3, strides=strides, padding=padding, depth_multiplier=2,
                            dilation_rate=dilation, dtype="float64",
                            bias_initializer="random_normal")
    module = torch.nn.Conv2d(4, 8, 3, stride=strides, dilation=dilation, groups=4,
                             padding=padding)
    check_against_torch(
        layer, module,
        lambda w: {"weight": _torch_depthwise_weight(w["depthwise_kernel"]), "bias": w["bias"]},
        _x((2, 7, 7, 4)),
        torch_forward=lambda m, t: m(t.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))


def test_separable_matches_torch_depthwise_then_pointwise():
    torch = pytest.importorskip("torch")
    layer = SeparableConv2D(5, 3, padding="same", depth_multiplier=2, dtype="float64",
                            bias_initializer="random_normal")
    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, padding="same", groups=3, bias=False),
        torch.nn.Conv2d(6, 5, 1))
    check_against_torch(
        layer, module,
        lambda w: {"0.weight": _torch_depthwise_weight(w["depthwise_kernel"]),
                   "1.weight": w["pointwise_kernel"].transpose(3, 2, 0, 1),
                   "1.bias": w["bias"]},
        _x((2, 6, 6, 3)),
        torch_forward=lambda m, t: m(t.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))


def test_separable_equals_conv2d_with_the_product_kernel():
    # depthwise (kh, kw, C, 1) then pointwise (C, F) is a Conv2D with kernel[..., c, f] =
    # depthwise[..., c, 0] * pointwise[c, f]
    fl.manual_seed(0)
    sep = SeparableConv2D(4, 3, dtype="float64")
    x = _x((2, 6, 6, 3))
    y = sep(x).numpy()
    dw, pw, b = sep.get_weights()
    conv = Conv2D(4, 3, dtype="float64")
    conv(x)
    conv.set_weights([dw[..., 0][..., None] * pw[0, 0][None, None], b])
    np.testing.assert_allclose(conv(x).numpy(), y, rtol=1e-10, atol=1e-12)


def test_functional_model_and_parameter_count():
    inputs = Input(shape=(16, 16, 8))
    h = DepthwiseConv2D(3, padding="same", depth_multiplier=2)(inputs)
    out = SeparableConv2D(32, 3, strides=2, padding="same")(h)
    model = Model(inputs, out)
    assert out.shape == (None, 8, 8, 32)
    # depthwise 3*3*8*2 + 16 bias; separable 3*3*16 + 16*32 + 32
    assert model.count_params() == (144 + 16) + (144 + 512 + 32)


def test_errors():
    assert_error(ValueError, lambda: DepthwiseConv2D(3, depth_multiplier=0),
                 contains=("DepthwiseConv2D", "depth_multiplier"))
    assert_error(ValueError, lambda: SeparableConv2D(0, 3), contains=("SeparableConv2D",
                                                                      "filters"))
    assert_error(ValueError, lambda: DepthwiseConv2D(3, padding="causal"),
                 contains=("DepthwiseConv2D", "padding"))
    layer = DepthwiseConv2D(3)
    layer(np.ones((1, 5, 5, 2), "float32"))
    assert_error(ValueError, lambda: layer(np.ones((1, 5, 5, 3), "float32")),
                 contains=("DepthwiseConv2D", "2 channels", "(1, 5, 5, 3)"))
    assert_error(ValueError, lambda: SeparableConv2D(2, 5)(np.ones((1, 3, 3, 2), "float32")),
                 contains=("SeparableConv2D", "smaller than"))
