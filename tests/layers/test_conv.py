"""Conv1D/2D/3D, Conv2DTranspose, ZeroPadding1D/2D/3D, UpSampling2D.

The shared checks (build, output shape, weights, config, save/load, a training step, float64
gradcheck) run through ``fundl.testing.layer_case.check_layer``; the rest pins what Keras and
PyTorch users rely on: Keras kernel layouts, output lengths, channels-first inputs, agreement
with ``torch.nn.Conv1d/2d/3d`` and ``ConvTranspose2d`` (those tests import torch themselves
and skip without it), and errors at model-definition time.
"""
import inspect

import numpy as np
import pytest

import fundl as fl
from fundl.layers import Input, Layer
from fundl.layers.conv import (
    Conv1D, Conv2D, Conv2DTranspose, Conv3D, UpSampling2D, ZeroPadding1D, ZeroPadding2D,
    ZeroPadding3D,
)
from fundl.models import Model, Sequential
from fundl.testing import assert_error
from fundl.testing.layer_case import check_against_torch, check_layer


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _np_conv2d(x, kernel, bias, stride, pads):
    """Direct NumPy convolution, channels-last, one output pixel at a time (float64)."""
    x = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    kh, kw = kernel.shape[:2]
    oh, ow = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    y = np.zeros((x.shape[0], oh, ow, kernel.shape[-1]))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            y[:, i, j, :] = np.tensordot(patch, kernel, axes=([1, 2, 3], [0, 1, 2]))
    return y + bias


# -- the shared harness ----------------------------------------------------------------------------

def test_conv1d_harness():
    check_layer(Conv1D, {"filters": 4, "kernel_size": 3}, input_shape=(2, 7, 3),
                expected_output_shape=(2, 5, 4), expected_weights={"kernel": (3, 3, 4),
                                                                   "bias": (4,)})


def test_conv1d_harness_causal_dilated():
    check_layer(Conv1D, {"filters": 2, "kernel_size": 3, "padding": "causal",
                         "dilation_rate": 2}, input_shape=(2, 6, 3),
                expected_output_shape=(2, 6, 2), expected_weights={"kernel": (3, 3, 2),
                                                                   "bias": (2,)})


def test_conv2d_harness():
    check_layer(Conv2D, {"filters": 4, "kernel_size": 3, "activation": "tanh"},
                input_shape=(2, 5, 6, 3), expected_output_shape=(2, 3, 4, 4),
                expected_weights={"kernel": (3, 3, 3, 4), "bias": (4,)})


def test_conv2d_harness_strided_same_without_bias():
    check_layer(Conv2D, {"filters": 3, "kernel_size": (3, 2), "strides": 2, "padding": "same",
                         "use_bias": False}, input_shape=(2, 5, 6, 2),
                expected_output_shape=(2, 3, 3, 3), expected_weights={"kernel": (3, 2, 2, 3)})


def test_conv2d_harness_grouped_dilated():
    check_layer(Conv2D, {"filters": 4, "kernel_size": 2, "groups": 2, "dilation_rate": 2},
                input_shape=(2, 5, 5, 4), expected_output_shape=(2, 3, 3, 4),
                expected_weights={"kernel": (2, 2, 2, 4), "bias": (4,)})


def test_conv2d_harness_channels_first_explicit_padding():
    check_layer(Conv2D, {"filters": 3, "kernel_size": 3, "padding": 1, "strides": 2,
                         "data_format": "channels_first"}, input_shape=(2, 2, 5, 4),
                expected_output_shape=(2, 3, 3, 2),
                expected_weights={"kernel": (3, 3, 2, 3), "bias": (3,)})


def test_conv3d_harness():
    check_layer(Conv3D, {"filters": 2, "kernel_size": 2, "padding": "same"},
                input_shape=(1, 3, 3, 4, 2), expected_output_shape=(1, 3, 3, 4, 2),
                expected_weights={"kernel": (2, 2, 2, 2, 2), "bias": (2,)})


def test_conv2d_transpose_harness():
    check_layer(Conv2DTranspose, {"filters": 3, "kernel_size": 3}, input_shape=(2, 3, 4, 2),
                expected_output_shape=(2, 5, 6, 3),
                expected_weights={"kernel": (3, 3, 3, 2), "bias": (3,)})


def test_conv2d_transpose_harness_strided_same_output_padding_channels_first():
    check_layer(Conv2DTranspose, {"filters": 2, "kernel_size": 3, "strides": 2,
                                  "padding": "same", "output_padding": 1,
                                  "data_format": "channels_first"},
                input_shape=(2, 3, 3, 2), expected_output_shape=(2, 2, 6, 4),
                expected_weights={"kernel": (3, 3, 2, 3), "bias": (2,)})


@pytest.mark.parametrize("cls, kwargs, input_shape, output_shape", [
    (ZeroPadding1D, {"padding": (2, 1)}, (2, 4, 3), (2, 7, 3)),
    (ZeroPadding2D, {}, (2, 3, 4, 2), (2, 5, 6, 2)),
    (ZeroPadding2D, {"padding": ((1, 0), (0, 2)), "data_format": "channels_first"},
     (2, 2, 3, 3), (2, 2, 4, 5)),
    (ZeroPadding3D, {"padding": (1, 0, 2)}, (1, 2, 2, 2, 2), (1, 4, 2, 6, 2)),
    (UpSampling2D, {"size": (2, 3)}, (2, 2, 3, 2), (2, 4, 9, 2)),
    (UpSampling2D, {"interpolation": "bilinear"}, (2, 3, 2, 2), (2, 6, 4, 2)),
])
def test_weightless_layers_harness(cls, kwargs, input_shape, output_shape):
    check_layer(cls, kwargs, input_shape=input_shape, expected_output_shape=output_shape,
                expected_weights={})


# -- layouts and values ----------------------------------------------------------------------------

def test_conv2d_keras_kernel_loads_as_it_is():
    # a Keras Conv2D kernel is (kh, kw, in, out): set_weights takes it without any transpose
    kernel, bias = _x((3, 2, 3, 4), 1), _x((4,), 2)
    x = _x((2, 6, 5, 3), 3)
    layer = Conv2D(4, (3, 2), strides=2, padding="same", dtype="float64")
    layer(fl.tensor(x))
    layer.set_weights([kernel, bias])
    # "same" with stride 2 on 6x5 and a 3x2 kernel: total pads 1 and 1, the odd one at the end
    want = _np_conv2d(x, kernel, bias, 2, ((0, 1), (0, 1)))
    np.testing.assert_allclose(layer(fl.tensor(x)).numpy(), want, rtol=1e-12, atol=1e-12)


def test_conv2d_channels_first_matches_channels_last():
    x = _x((2, 5, 6, 3)).astype(np.float32)
    last = Conv2D(4, 3, strides=2, padding="same")
    first = Conv2D(4, 3, strides=2, padding="same", data_format="channels_first")
    y_last = last(fl.tensor(x)).numpy()
    first(fl.tensor(x.transpose(0, 3, 1, 2)))
    first.set_weights(last.get_weights())
    y_first = first(fl.tensor(x.transpose(0, 3, 1, 2))).numpy()
    np.testing.assert_allclose(y_first, y_last.transpose(0, 3, 1, 2), rtol=1e-5, atol=1e-6)


def test_conv1d_causal_output_ignores_the_future():
    layer = Conv1D(2, 3, padding="causal", dilation_rate=2, dtype="float64")
    x = _x((1, 8, 3))
    y = layer(fl.tensor(x)).numpy()
    x2 = x.copy()
    x2[:, 5:] += 10.0  # change steps 5..7 only
    y2 = layer(fl.tensor(x2)).numpy()
    np.testing.assert_array_equal(y[:, :5], y2[:, :5])
    assert not np.allclose(y[:, 5:], y2[:, 5:])


@pytest.mark.parametrize("kwargs, n, want", [
    ({"kernel_size": 3}, 7, 5),
    ({"kernel_size": 3, "padding": "same"}, 7, 7),
    ({"kernel_size": 3, "strides": 2}, 7, 3),
    ({"kernel_size": 3, "strides": 2, "padding": "same"}, 7, 4),
    ({"kernel_size": 3, "dilation_rate": 2}, 7, 3),
    ({"kernel_size": 4, "strides": 3, "padding": (2, 1)}, 7, 3),
    ({"kernel_size": 5, "padding": "causal"}, 7, 7),
])
def test_conv1d_output_length_symbolic_and_real_agree(kwargs, n, want):
    layer = Conv1D(2, **kwargs)
    assert layer(Input(shape=(n, 3))).shape == (None, want, 2)
    assert layer(fl.zeros(1, n, 3)).shape == (1, want, 2)


@pytest.mark.parametrize("kwargs, n, want", [
    ({"kernel_size": 3}, 4, 6),
    ({"kernel_size": 3, "strides": 2}, 4, 9),
    ({"kernel_size": 2, "strides": 3}, 4, 12),       # k < s: n*s, as Keras
    ({"kernel_size": 3, "strides": 2, "padding": "same"}, 4, 8),
    ({"kernel_size": 3, "strides": 2, "padding": "same", "output_padding": 1}, 4, 8),
    ({"kernel_size": 3, "strides": 2, "output_padding": 1}, 4, 10),
    ({"kernel_size": 3, "dilation_rate": 2}, 4, 8),
])
def test_conv2d_transpose_output_length_symbolic_and_real_agree(kwargs, n, want):
    layer = Conv2DTranspose(2, **kwargs)
    assert layer(Input(shape=(n, n, 3))).shape == (None, want, want, 2)
    assert layer(fl.zeros(1, n, n, 3)).shape == (1, want, want, 2)


def test_conv2d_transpose_is_the_adjoint_of_conv2d():
    # <conv(x), y> == <x, conv_transpose(y)> with the same kernel (a Keras transposed kernel
    # (kh, kw, out, in) reads as a conv kernel (kh, kw, in, out) with in/out swapped)
    kernel = _x((3, 3, 2, 4), 1)
    conv = Conv2D(4, 3, strides=2, padding="same", use_bias=False, dtype="float64")
    tconv = Conv2DTranspose(2, 3, strides=2, padding="same", use_bias=False, dtype="float64")
    x, y = _x((2, 6, 6, 2), 2), _x((2, 3, 3, 4), 3)
    conv(fl.tensor(x))
    tconv(fl.tensor(y))
    conv.set_weights([kernel])
    tconv.set_weights([kernel])
    lhs = np.sum(conv(fl.tensor(x)).numpy() * y)
    rhs = np.sum(x * tconv(fl.tensor(y)).numpy())
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)


def test_zero_padding_values():
    x = np.arange(6, dtype=np.float32).reshape(1, 2, 3, 1)
    y = ZeroPadding2D(((1, 0), (0, 2)))(fl.tensor(x)).numpy()
    np.testing.assert_array_equal(y, np.pad(x, ((0, 0), (1, 0), (0, 2), (0, 0))))


@pytest.mark.parametrize("cls, padding, pads", [
    (ZeroPadding1D, 2, ((2, 2),)),
    (ZeroPadding1D, (1, 3), ((1, 3),)),              # one (left, right) pair, as Keras
    (ZeroPadding2D, 1, ((1, 1), (1, 1))),
    (ZeroPadding2D, (1, 2), ((1, 1), (2, 2))),       # symmetric height, width
    (ZeroPadding2D, ((0, 1), (2, 3)), ((0, 1), (2, 3))),
    (ZeroPadding3D, 1, ((1, 1),) * 3),
    (ZeroPadding3D, (1, 2, 3), ((1, 1), (2, 2), (3, 3))),
])
def test_zero_padding_accepts_keras_forms(cls, padding, pads):
    layer = cls(padding)
    assert layer.pads == pads
    assert cls.from_config(layer.get_config()).pads == pads


def test_upsampling_nearest_repeats_pixels():
    x = np.arange(4, dtype=np.float32).reshape(1, 2, 2, 1)
    y = UpSampling2D((2, 3))(fl.tensor(x)).numpy()
    np.testing.assert_array_equal(y[0, :, :, 0], np.repeat(np.repeat(x[0, :, :, 0], 2, 0), 3, 1))


# -- configs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls, args", [
    (Conv1D, (2, 3)), (Conv2D, (2, 3)), (Conv3D, (2, 3)), (Conv2DTranspose, (2, 3)),
    (ZeroPadding1D, ()), (ZeroPadding2D, ()), (ZeroPadding3D, ()), (UpSampling2D, ()),
])
def test_config_keys_are_the_constructor_arguments(cls, args):
    own = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
    base = set(Layer().get_config())
    assert set(cls(*args).get_config()) == own | base


def test_conv2d_config_values_are_keras_like():
    config = Conv2D(8, 3, strides=(2, 1), padding="SAME", activation="relu").get_config()
    assert (config["kernel_size"], config["strides"], config["padding"], config["data_format"],
            config["dilation_rate"], config["groups"], config["activation"]) == (
        [3, 3], [2, 1], "same", "channels_last", [1, 1], 1, "relu")
    assert Conv2D.from_config(config).get_config() == config


def test_conv2d_explicit_padding_config_round_trip():
    config = Conv2D(2, 3, padding=((1, 0), 2)).get_config()
    assert config["padding"] == [[1, 0], [2, 2]]
    assert Conv2D.from_config(config).get_config() == config


def test_conv1d_explicit_padding_config_round_trip():
    layer = Conv1D(2, 3, padding=(2, 0))
    assert layer.padding == ((2, 0),)
    assert Conv1D.from_config(layer.get_config()).padding == ((2, 0),)


def test_conv2d_regularizers_add_losses():
    layer = Conv2D(2, 3, kernel_regularizer="l2", bias_regularizer="l1",
                   activity_regularizer="l2")
    layer(fl.tensor(_x((2, 4, 4, 1)).astype(np.float32)))
    assert len(layer.losses) == 3


def test_conv2d_in_sequential_summary_counts_parameters():
    model = Sequential([Conv2D(6, 5, input_shape=(32, 32, 1)), Conv2D(16, 5, groups=2)])
    assert model.output_shape == (None, 24, 24, 16)
    assert model.count_params() == (5 * 5 * 1 * 6 + 6) + (5 * 5 * 3 * 16 + 16)


# -- errors ----------------------------------------------------------------------------------------

def test_conv2d_error_wrong_rank():
    assert_error(ValueError, Conv2D(4, 3, name="c1"), fl.zeros(2, 8, 3),
                 contains=["Conv2D 'c1'", "rank 4", "(batch, height, width, channels)",
                           "(2, 8, 3)"])


def test_conv1d_error_wrong_rank_names_the_layout():
    assert_error(ValueError, Conv1D(4, 3, data_format="channels_first"), fl.zeros(2, 3, 8, 8),
                 contains=["Conv1D", "rank 3", "(batch, channels, steps)", "(2, 3, 8, 8)"])


def test_conv2d_error_channel_change_after_build():
    layer = Conv2D(4, 3, name="c2")
    layer(fl.zeros(1, 5, 5, 3))
    assert_error(ValueError, layer, fl.zeros(1, 5, 5, 2),
                 contains=["Conv2D 'c2'", "3 channels", "(1, 5, 5, 2)", "data_format"])


def test_conv2d_error_at_definition_time_when_the_input_is_too_small():
    inputs = Input(shape=(4, 4, 3))
    assert_error(ValueError, Conv2D(8, 5, name="big"), inputs,
                 contains=["Conv2D 'big'", "4", "kernel 5", "padding='same'"])


def test_sequential_reports_a_too_small_feature_map_when_the_layer_is_added():
    model = Sequential([Conv2D(4, 3, input_shape=(6, 6, 1)), Conv2D(4, 3)])
    assert_error(ValueError, model.add, Conv2D(4, 3, name="third"),
                 contains=["Conv2D 'third'", "(None, 2, 2, 4)", "kernel 3"])


def test_conv2d_error_unknown_channels():
    assert_error(ValueError, Conv2D(2, 3), Input(shape=(8, 8, None)),
                 contains=["Conv2D", "channel axis", "known size"])


def test_conv2d_error_groups_do_not_divide_the_input_channels():
    assert_error(ValueError, Conv2D(4, 3, groups=2), fl.zeros(1, 5, 5, 3),
                 contains=["Conv2D", "3 channels", "groups=2"])


def test_conv_error_arguments():
    assert_error(ValueError, Conv2D, 0, 3, contains=["Conv2D", "filters", "0"])
    assert_error(ValueError, Conv2D, 6, 3, groups=4, contains=["Conv2D", "groups", "6"])
    assert_error(TypeError, Conv2D, 4, (3, 3, 3), contains=["Conv2D", "kernel_size",
                                                            "(3, 3, 3)"])
    assert_error(ValueError, Conv2D, 4, 3, strides=0, contains=["Conv2D", "strides", ">= 1"])
    assert_error(ValueError, Conv2D, 4, 3, padding="full", contains=["Conv2D", "padding",
                                                                     "'full'"])
    assert_error(ValueError, Conv2D, 4, 3, padding="causal", contains=["Conv2D", "'causal'"])
    assert_error(ValueError, Conv2D, 4, 3, data_format="NHWC", contains=["Conv2D", "data_format",
                                                                         "'NHWC'"])
    assert_error(ValueError, Conv2D, 4, 3, activation="nope", contains=["nope"])


def test_conv2d_transpose_error_arguments():
    assert_error(ValueError, Conv2DTranspose, 4, 3, strides=2, output_padding=2,
                 contains=["Conv2DTranspose", "output_padding", "strides"])
    assert_error(ValueError, Conv2DTranspose, 4, 3, padding="causal",
                 contains=["Conv2DTranspose", "padding", "'causal'"])


def test_zero_padding_error_arguments_and_rank():
    assert_error(ValueError, ZeroPadding2D, ((1, 2, 3), (1, 1)),
                 contains=["ZeroPadding2D", "padding", "(before, after)"])
    assert_error(ValueError, ZeroPadding1D, -1, contains=["ZeroPadding1D", "padding", "-1"])
    assert_error(ValueError, ZeroPadding2D(), fl.zeros(2, 3, 3),
                 contains=["ZeroPadding2D", "rank 4", "(2, 3, 3)"])


def test_upsampling_error_arguments():
    assert_error(ValueError, UpSampling2D, interpolation="bicubic",
                 contains=["UpSampling2D", "interpolation", "'bicubic'"])
    assert_error(ValueError, UpSampling2D, size=0, contains=["UpSampling2D", "size"])


# -- PyTorch ---------------------------------------------------------------------------------------

def _torch_cl(module, x):
    """A channels-first torch module on channels-last data."""
    return module(x.movedim(-1, 1)).movedim(1, -1)


def _torch_kernel(w, key="kernel"):
    """Keras (k..., in, out) -> torch (out, in, k...)."""
    k = w[key]
    return k.transpose(k.ndim - 1, k.ndim - 2, *range(k.ndim - 2))


def _conv_map(w):
    out = {"weight": _torch_kernel(w)}
    if "bias" in w:
        out["bias"] = w["bias"]
    return out


@pytest.mark.parametrize("dims, kwargs, torch_kwargs, shape", [
    (1, {"kernel_size": 3, "strides": 2}, {"kernel_size": 3, "stride": 2}, (2, 9, 4)),
    (1, {"kernel_size": 3, "dilation_rate": 2, "groups": 2},
     {"kernel_size": 3, "dilation": 2, "groups": 2}, (2, 9, 4)),
    (2, {"kernel_size": 3}, {"kernel_size": 3}, (2, 6, 5, 4)),
    (2, {"kernel_size": 3, "padding": "same"}, {"kernel_size": 3, "padding": "same"},
     (2, 6, 5, 4)),
    (2, {"kernel_size": (3, 2), "strides": (2, 1), "padding": 1, "use_bias": False},
     {"kernel_size": (3, 2), "stride": (2, 1), "padding": 1, "bias": False}, (2, 7, 5, 4)),
    (2, {"kernel_size": 3, "groups": 4, "dilation_rate": 2},
     {"kernel_size": 3, "groups": 4, "dilation": 2}, (2, 7, 7, 4)),
    (3, {"kernel_size": 2, "strides": 2}, {"kernel_size": 2, "stride": 2}, (1, 4, 5, 4, 4)),
])
def test_conv_matches_torch(dims, kwargs, torch_kwargs, shape):
    torch = pytest.importorskip("torch")
    cls = {1: Conv1D, 2: Conv2D, 3: Conv3D}[dims]
    module = getattr(torch.nn, f"Conv{dims}d")(4, 4, **torch_kwargs)
    layer = cls(4, dtype="float64", **kwargs)
    check_against_torch(layer, module, _conv_map, _x(shape, 7), torch_forward=_torch_cl,
                        atol=1e-9, rtol=1e-9)


def test_conv2d_strided_same_matches_torch_with_the_extra_pad_at_the_end():
    torch = pytest.importorskip("torch")
    module = torch.nn.Conv2d(3, 2, 3, stride=2)

    def forward(m, x):  # Keras/TF "same" on 6 with stride 2: one pad, after
        return m(torch.nn.functional.pad(x.movedim(-1, 1), (0, 1, 0, 1))).movedim(1, -1)

    check_against_torch(Conv2D(2, 3, strides=2, padding="same", dtype="float64"), module,
                        _conv_map, _x((2, 6, 6, 3), 8), torch_forward=forward, atol=1e-9,
                        rtol=1e-9)


def test_conv2d_channels_first_matches_torch_without_permutes():
    torch = pytest.importorskip("torch")
    check_against_torch(Conv2D(3, 3, padding="same", data_format="channels_first",
                               dtype="float64"),
                        torch.nn.Conv2d(2, 3, 3, padding=1), _conv_map, _x((2, 2, 5, 6), 9),
                        atol=1e-9, rtol=1e-9)


def _tconv_map(w):
    # Keras (kh, kw, out, in) -> torch ConvTranspose2d (in, out, kh, kw)
    return {"weight": w["kernel"].transpose(3, 2, 0, 1), "bias": w["bias"]}


@pytest.mark.parametrize("kwargs, torch_kwargs, crop", [
    ({"kernel_size": 3}, {"kernel_size": 3}, None),
    ({"kernel_size": 3, "strides": 2}, {"kernel_size": 3, "stride": 2}, None),
    ({"kernel_size": 3, "strides": 2, "dilation_rate": 2},
     {"kernel_size": 3, "stride": 2, "dilation": 2}, None),
    # "same" (2n outputs): TF crops the uncropped (2n + 1)-long result at the end
    ({"kernel_size": 3, "strides": 2, "padding": "same"}, {"kernel_size": 3, "stride": 2},
     (0, 8)),
    # with output_padding: (n-1)*s + k - 2*(k//2) + 1 = 7 of the 10 uncropped, from 1 (TF's
    # split of the 3 cropped: 1 before, 2 after; torch's padding=2 would crop 2 before)
    ({"kernel_size": 4, "strides": 2, "padding": "same", "output_padding": 1},
     {"kernel_size": 4, "stride": 2}, (1, 8)),
])
def test_conv2d_transpose_matches_torch(kwargs, torch_kwargs, crop):
    torch = pytest.importorskip("torch")
    module = torch.nn.ConvTranspose2d(3, 2, **torch_kwargs)

    def forward(m, x):
        y = _torch_cl(m, x)
        return y if crop is None else y[:, crop[0]:crop[1], crop[0]:crop[1]]

    check_against_torch(Conv2DTranspose(2, dtype="float64", **kwargs), module, _tconv_map,
                        _x((2, 4, 4, 3), 10), torch_forward=forward, atol=1e-9, rtol=1e-9)


def test_upsampling_bilinear_matches_torch():
    torch = pytest.importorskip("torch")
    upsample = torch.nn.Upsample(scale_factor=(2, 3), mode="bilinear", align_corners=False)
    check_against_torch(UpSampling2D((2, 3), interpolation="bilinear", dtype="float64"),
                        upsample, lambda w: {}, _x((2, 3, 4, 2), 11), torch_forward=_torch_cl,
                        atol=1e-12, rtol=1e-12)


def test_zero_padding_matches_torch():
    torch = pytest.importorskip("torch")
    pad = torch.nn.ZeroPad2d((2, 0, 1, 3))  # torch: (left, right, top, bottom)
    check_against_torch(ZeroPadding2D(((1, 3), (2, 0)), dtype="float64"), pad, lambda w: {},
                        _x((2, 3, 3, 2), 12), torch_forward=_torch_cl, atol=0, rtol=0)


def test_conv_layers_in_a_model_train_like_torch():
    # three SGD steps of a tiny conv net, fundl vs PyTorch, same start weights
    torch = pytest.importorskip("torch")
    fl.manual_seed(0)
    inputs = Input(shape=(8, 8, 2))
    h = Conv2D(3, 3, strides=2, padding=1, activation="relu", dtype="float64")(inputs)
    h = Conv2DTranspose(2, 2, strides=2, dtype="float64")(h)
    model = Model(inputs, h)
    model.compile(optimizer=fl.optimizers.SGD(0.1), loss="mse")
    c, t = torch.nn.Conv2d(2, 3, 3, stride=2, padding=1).double(), \
        torch.nn.ConvTranspose2d(3, 2, 2, stride=2).double()
    k1, b1, k2, b2 = model.get_weights()
    with torch.no_grad():
        c.weight.copy_(torch.tensor(k1.transpose(3, 2, 0, 1)))
        c.bias.copy_(torch.tensor(b1))
        t.weight.copy_(torch.tensor(k2.transpose(3, 2, 0, 1)))
        t.bias.copy_(torch.tensor(b2))
    opt = torch.optim.SGD(list(c.parameters()) + list(t.parameters()), lr=0.1)
    x, y = _x((4, 8, 8, 2), 13), _x((4, 8, 8, 2), 14)
    for _ in range(3):
        loss = model.train_on_batch(x, y)
        opt.zero_grad()
        out = t(torch.relu(c(torch.tensor(x).movedim(-1, 1)))).movedim(1, -1)
        torch_loss = ((out - torch.tensor(y)) ** 2).mean()
        torch_loss.backward()
        opt.step()
        np.testing.assert_allclose(loss, torch_loss.item(), rtol=1e-6)
    np.testing.assert_allclose(model.get_weights()[0], c.weight.detach().numpy().transpose(
        2, 3, 1, 0), rtol=1e-6, atol=1e-9)
