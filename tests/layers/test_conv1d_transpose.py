"""Conv1DTranspose and UpSampling1D: harness, PyTorch agreement, Keras lengths, errors."""
import numpy as np
import pytest

import fundl as fl
from fundl.layers import Conv1D, Conv1DTranspose, Input, UpSampling1D
from fundl.models import Model
from fundl.testing import assert_error
from fundl.testing.layer_case import check_against_torch, check_layer


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("kwargs, out", [
    ({"filters": 2, "kernel_size": 3}, (2, 6, 2)),
    ({"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"}, (2, 8, 2)),
    ({"filters": 2, "kernel_size": 3, "strides": 2, "output_padding": 1, "activation": "tanh"},
     (2, 10, 2)),
    ({"filters": 2, "kernel_size": 2, "dilation_rate": 2, "data_format": "channels_first"},
     (2, 2, 6)),
])
def test_conv1d_transpose_harness(kwargs, out):
    shape = (2, 3, 4) if kwargs.get("data_format") == "channels_first" else (2, 4, 3)
    check_layer(Conv1DTranspose, kwargs, input_shape=shape, expected_output_shape=out,
                expected_weights={"kernel": (kwargs["kernel_size"], 2, 3), "bias": (2,)})


@pytest.mark.parametrize("strides, output_padding, dilation", [(1, None, 1), (2, 1, 1),
                                                               (3, 2, 2)])
def test_conv1d_transpose_matches_torch(strides, output_padding, dilation):
    torch = pytest.importorskip("torch")
    layer = Conv1DTranspose(4, 3, strides=strides, output_padding=output_padding,
                            dilation_rate=dilation, dtype="float64",
                            bias_initializer="random_normal")
    module = torch.nn.ConvTranspose1d(3, 4, 3, stride=strides, output_padding=output_padding or 0,
                                      dilation=dilation)
    check_against_torch(layer, module,
                        lambda w: {"weight": w["kernel"].transpose(2, 1, 0), "bias": w["bias"]},
                        _x((2, 5, 3)),
                        torch_forward=lambda m, t: m(t.permute(0, 2, 1)).permute(0, 2, 1))


def test_conv1d_transpose_is_the_adjoint_of_a_strided_conv1d():
    # <conv(x), y> == <x, conv_transpose(y)> with the same kernel and no bias
    fl.manual_seed(0)
    conv = Conv1D(3, 4, strides=2, use_bias=False, dtype="float64")
    x = _x((2, 10, 5))
    y = conv(x).numpy()
    tr = Conv1DTranspose(5, 4, strides=2, use_bias=False, dtype="float64")
    g = _x(y.shape, 1)
    tr(g)
    tr.set_weights([conv.get_weights()[0]])  # the same (k, 5, 3) array: Keras layouts
    back = tr(g).numpy()
    assert back.shape == x.shape
    np.testing.assert_allclose((y * g).sum(), (x * back).sum(), rtol=1e-10)


def test_upsampling1d_harness_and_values():
    check_layer(UpSampling1D, {"size": 3}, input_shape=(2, 4, 2), expected_output_shape=(2, 12, 2),
                expected_weights={})
    x = _x((2, 4, 3))
    np.testing.assert_array_equal(UpSampling1D(2, dtype="float64")(x).numpy(),
                                  np.repeat(x, 2, axis=1))


def test_timeseries_autoencoder_shapes():
    # Keras's "Timeseries anomaly detection using an Autoencoder", in miniature
    inputs = Input(shape=(16, 1))
    h = Conv1D(8, 7, padding="same", strides=2, activation="relu")(inputs)
    h = Conv1D(4, 7, padding="same", strides=2, activation="relu")(h)
    h = Conv1DTranspose(4, 7, padding="same", strides=2, activation="relu")(h)
    h = Conv1DTranspose(8, 7, padding="same", strides=2, activation="relu")(h)
    out = Conv1DTranspose(1, 7, padding="same")(h)
    assert out.shape == (None, 16, 1)
    model = Model(inputs, out)
    x = np.sin(np.linspace(0, 20, 16 * 8)).reshape(8, 16, 1).astype("float32")
    model.compile(optimizer=fl.optimizers.Adam(0.01), loss="mse")
    history = model.fit(x, x, epochs=5, batch_size=4, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_errors():
    assert_error(ValueError, lambda: Conv1DTranspose(2, 3, strides=2, output_padding=2),
                 contains=("Conv1DTranspose", "output_padding"))
    assert_error(ValueError, lambda: Conv1DTranspose(0, 3), contains=("Conv1DTranspose",
                                                                      "filters"))
    assert_error(ValueError, lambda: Conv1DTranspose(2, 3)(np.ones((2, 4), "float32")),
                 contains=("Conv1DTranspose", "rank 3"))
    assert_error(TypeError, lambda: UpSampling1D((2, 2)), contains=("UpSampling1D", "size"))
