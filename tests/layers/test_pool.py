"""The pooling layers: MaxPooling1D/2D/3D, AveragePooling1D/2D/3D and the global ones.

The shared checks run through ``fundl.testing.layer_case.check_layer`` (the pooling layers have
no weights, so its training check trains a Dense in front of them, through them); the rest
pins Keras's output lengths and "same" padding, channels-first inputs, agreement with PyTorch's
MaxPool/AvgPool/AdaptiveAvgPool (those tests import torch themselves and skip without it), and
errors at model-definition time.
"""
import inspect

import numpy as np
import pytest

import fundl as fl
from fundl.layers import Input, Layer
from fundl.layers.pool import (
    AveragePooling1D, AveragePooling2D, AveragePooling3D, GlobalAveragePooling1D,
    GlobalAveragePooling2D, GlobalAveragePooling3D, GlobalMaxPooling1D, GlobalMaxPooling2D,
    GlobalMaxPooling3D, MaxPooling1D, MaxPooling2D, MaxPooling3D,
)
from fundl.models import Sequential
from fundl.testing import assert_error
from fundl.testing.layer_case import check_against_torch, check_layer

WINDOWED = [MaxPooling1D, MaxPooling2D, MaxPooling3D, AveragePooling1D, AveragePooling2D,
            AveragePooling3D]
GLOBAL = [GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalAveragePooling3D,
          GlobalMaxPooling1D, GlobalMaxPooling2D, GlobalMaxPooling3D]


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _rank(cls):
    return int(cls.__name__[-2])


# -- the shared harness ----------------------------------------------------------------------------

@pytest.mark.parametrize("cls", WINDOWED)
def test_windowed_pooling_harness_defaults(cls):
    n = _rank(cls)
    check_layer(cls, {}, input_shape=(2,) + (4,) * n + (3,),
                expected_output_shape=(2,) + (2,) * n + (3,), expected_weights={})


@pytest.mark.parametrize("cls", [MaxPooling2D, AveragePooling2D])
def test_pooling_harness_same_padding_overlapping_windows(cls):
    check_layer(cls, {"pool_size": 3, "strides": 2, "padding": "same"},
                input_shape=(2, 5, 6, 2), expected_output_shape=(2, 3, 3, 2),
                expected_weights={})


@pytest.mark.parametrize("cls", [MaxPooling1D, AveragePooling1D])
def test_pooling_harness_channels_first(cls):
    check_layer(cls, {"pool_size": 2, "strides": 1, "data_format": "channels_first"},
                input_shape=(2, 3, 5), expected_output_shape=(2, 3, 4), expected_weights={})


@pytest.mark.parametrize("cls", GLOBAL)
def test_global_pooling_harness(cls):
    n = _rank(cls)
    check_layer(cls, {}, input_shape=(2,) + (3,) * n + (4,), expected_output_shape=(2, 4),
                expected_weights={})


@pytest.mark.parametrize("cls", [GlobalAveragePooling2D, GlobalMaxPooling2D])
def test_global_pooling_harness_keepdims_channels_first(cls):
    check_layer(cls, {"keepdims": True, "data_format": "channels_first"},
                input_shape=(2, 4, 3, 3), expected_output_shape=(2, 4, 1, 1),
                expected_weights={})


# -- values and shapes -----------------------------------------------------------------------------

def test_max_pooling_values():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    y = MaxPooling2D()(fl.tensor(x)).numpy()
    np.testing.assert_array_equal(y[0, :, :, 0], [[5, 7], [13, 15]])


def test_average_pooling_same_padding_counts_only_real_elements():
    x = np.ones((1, 3, 3, 1), dtype=np.float32)
    y = AveragePooling2D(2, padding="same")(fl.tensor(x)).numpy()
    np.testing.assert_array_equal(y, np.ones((1, 2, 2, 1)))  # padded zeros are not averaged


def test_global_average_pooling_values():
    x = _x((2, 3, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(GlobalAveragePooling2D()(fl.tensor(x)).numpy(),
                               x.mean(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(GlobalMaxPooling2D()(fl.tensor(x)).numpy(), x.max(axis=(1, 2)))


@pytest.mark.parametrize("kwargs, n, want", [
    ({"pool_size": 2}, 7, 3),
    ({"pool_size": 2, "padding": "same"}, 7, 4),
    ({"pool_size": 3, "strides": 2}, 7, 3),
    ({"pool_size": 3, "strides": 1, "padding": "same"}, 7, 7),
    ({"pool_size": 3, "strides": 2, "padding": "same"}, 112, 56),
])
def test_pooling_output_length_symbolic_and_real_agree(kwargs, n, want):
    layer = MaxPooling2D(**kwargs)
    assert layer(Input(shape=(n, n, 1))).shape == (None, want, want, 1)
    assert layer(fl.zeros(1, n, n, 1)).shape == (1, want, want, 1)


def test_pooling_keeps_unknown_spatial_sizes_unknown():
    assert MaxPooling2D()(Input(shape=(None, 8, 3))).shape == (None, None, 4, 3)
    assert GlobalAveragePooling2D()(Input(shape=(None, None, 3))).shape == (None, 3)


def test_strides_default_to_pool_size():
    layer = MaxPooling2D((3, 2))
    assert layer.strides == (3, 2)
    assert layer.get_config()["strides"] == [3, 2]


@pytest.mark.parametrize("cls", WINDOWED + GLOBAL)
def test_config_keys_are_the_constructor_arguments(cls):
    own = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
    base = set(Layer().get_config())
    layer = cls()
    assert set(layer.get_config()) == own | base
    assert cls.from_config(layer.get_config()).get_config() == layer.get_config()


def test_keras_defaults():
    assert MaxPooling1D().pool_size == (2,)
    assert MaxPooling2D().pool_size == (2, 2)
    assert AveragePooling3D().pool_size == (2, 2, 2)
    config = MaxPooling2D().get_config()
    assert (config["padding"], config["data_format"]) == ("valid", "channels_last")
    assert GlobalMaxPooling2D().get_config()["keepdims"] is False


# -- errors ----------------------------------------------------------------------------------------

def test_pooling_error_wrong_rank():
    assert_error(ValueError, MaxPooling2D(name="p1"), fl.zeros(2, 8, 3),
                 contains=["MaxPooling2D 'p1'", "rank 4", "(batch, height, width, channels)",
                           "(2, 8, 3)"])
    assert_error(ValueError, GlobalAveragePooling1D(), fl.zeros(2, 4, 4, 3),
                 contains=["GlobalAveragePooling1D", "rank 3", "(2, 4, 4, 3)"])


def test_pooling_error_at_definition_time_when_the_input_is_too_small():
    model = Sequential([MaxPooling2D(input_shape=(4, 4, 1)), MaxPooling2D()])
    assert model.output_shape == (None, 1, 1, 1)
    assert_error(ValueError, model.add, MaxPooling2D(name="p3"),
                 contains=["MaxPooling2D 'p3'", "(None, 1, 1, 1)", "pool_size 2",
                           "padding='same'"])


def test_pooling_error_arguments():
    assert_error(ValueError, MaxPooling2D, 0, contains=["MaxPooling2D", "pool_size"])
    assert_error(TypeError, MaxPooling2D, (2, 2, 2), contains=["MaxPooling2D", "pool_size",
                                                               "(2, 2, 2)"])
    assert_error(ValueError, AveragePooling1D, padding="causal",
                 contains=["AveragePooling1D", "padding", "'causal'"])
    assert_error(ValueError, MaxPooling3D, data_format="NDHWC",
                 contains=["MaxPooling3D", "data_format", "'NDHWC'"])
    assert_error(TypeError, GlobalMaxPooling2D, keepdims="yes",
                 contains=["GlobalMaxPooling2D", "keepdims"])


# -- PyTorch ---------------------------------------------------------------------------------------

def _torch_cl(module, x):
    return module(x.movedim(-1, 1)).movedim(1, -1)


def _no_weights(w):
    return {}


@pytest.mark.parametrize("cls, kwargs, torch_name, torch_kwargs, shape", [
    (MaxPooling1D, {"pool_size": 3, "strides": 2}, "MaxPool1d", {"kernel_size": 3, "stride": 2},
     (2, 9, 3)),
    (MaxPooling2D, {}, "MaxPool2d", {"kernel_size": 2}, (2, 6, 5, 3)),
    # "same" on 7 with pool 3, stride 2: one pad before and after, as torch's padding=1
    (MaxPooling2D, {"pool_size": 3, "strides": 2, "padding": "same"}, "MaxPool2d",
     {"kernel_size": 3, "stride": 2, "padding": 1}, (2, 7, 7, 3)),
    (MaxPooling3D, {"pool_size": 2, "strides": 1}, "MaxPool3d", {"kernel_size": 2, "stride": 1},
     (1, 3, 4, 3, 2)),
    (AveragePooling1D, {"pool_size": 2}, "AvgPool1d", {"kernel_size": 2}, (2, 9, 3)),
    (AveragePooling2D, {"pool_size": 3, "strides": 2}, "AvgPool2d",
     {"kernel_size": 3, "stride": 2}, (2, 7, 6, 3)),
    (AveragePooling2D, {"pool_size": 3, "strides": 1, "padding": "same"}, "AvgPool2d",
     {"kernel_size": 3, "stride": 1, "padding": 1, "count_include_pad": False}, (2, 5, 4, 3)),
    (AveragePooling3D, {}, "AvgPool3d", {"kernel_size": 2}, (1, 4, 4, 5, 2)),
])
def test_pooling_matches_torch(cls, kwargs, torch_name, torch_kwargs, shape):
    torch = pytest.importorskip("torch")
    check_against_torch(cls(dtype="float64", **kwargs),
                        getattr(torch.nn, torch_name)(**torch_kwargs), _no_weights,
                        _x(shape, 3), torch_forward=_torch_cl, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("cls, torch_name", [
    (GlobalAveragePooling2D, "AdaptiveAvgPool2d"), (GlobalMaxPooling2D, "AdaptiveMaxPool2d"),
])
def test_global_pooling_matches_torch_adaptive_pooling(cls, torch_name):
    torch = pytest.importorskip("torch")
    check_against_torch(cls(dtype="float64"), getattr(torch.nn, torch_name)(1), _no_weights,
                        _x((2, 5, 4, 3), 4), torch_forward=lambda m, x: m(x.movedim(-1, 1))
                        .flatten(1), atol=1e-12, rtol=1e-12)


def test_average_pooling_channels_first_matches_torch_without_permutes():
    torch = pytest.importorskip("torch")
    check_against_torch(AveragePooling2D(2, data_format="channels_first", dtype="float64"),
                        torch.nn.AvgPool2d(2), _no_weights, _x((2, 3, 6, 4), 5), atol=1e-12,
                        rtol=1e-12)
