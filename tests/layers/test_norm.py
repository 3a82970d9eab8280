"""BatchNormalization, LayerNormalization, LocalResponseNormalization.

The shared checks (build, config, save/load, a training step, gradcheck) run through
``fundl.testing.layer_case``; the rest pins the behaviour Keras users rely on: training vs
inference, the moving averages, frozen layers, weight order, and agreement with PyTorch
(those tests import torch themselves and skip without it).
"""
import inspect
import os

import numpy as np
import pytest

import fundl as fl
from fundl.layers.norm import BatchNormalization, LayerNormalization, LocalResponseNormalization
from fundl.testing import assert_error
from fundl.testing.layer_case import check_against_torch, check_layer

BN_WEIGHTS = {"gamma": (3,), "beta": (3,), "moving_mean": (3,), "moving_variance": (3,)}
BN_MOVING = ("moving_mean", "moving_variance")


def _x(shape, seed=0, loc=0.0, scale=1.0):
    return (loc + scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def _np_bn(x, mean, var, gamma, beta, eps, axis=-1):
    shape = [1] * x.ndim
    shape[axis] = -1
    return ((x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * gamma.reshape(shape)
            + beta.reshape(shape))


# -- BatchNormalization: the shared harness ------------------------------------------------------

def test_batch_norm_layer_harness_channels_last():
    check_layer(BatchNormalization, {}, input_shape=(4, 3, 2, 3),
                expected_output_shape=(4, 3, 2, 3), expected_weights=BN_WEIGHTS, expected_non_trainable=BN_MOVING)


def test_batch_norm_layer_harness_axis_1_without_gamma_and_beta():
    # no training check: with nothing of its own to train, the harness trains a Dense in front
    # through the batch statistics and then evaluates through the (unchanged) moving ones
    check_layer(BatchNormalization, {"axis": 1, "center": False, "scale": False},
                input_shape=(4, 3, 5), expected_output_shape=(4, 3, 5),
                expected_weights={"moving_mean": (3,), "moving_variance": (3,)},
                expected_non_trainable=BN_MOVING, check_training=False)


def test_batch_norm_layer_gradients_in_training_mode():
    # the training check is off: with momentum 0.5 the moving averages (used by the evaluation
    # after the step) jump, so "the loss went down" says nothing about this layer
    check_layer(BatchNormalization, {"momentum": 0.5}, input_shape=(5, 3),
                gradcheck_training=True, check_training=False, check_saving=False)


# -- BatchNormalization: behaviour ---------------------------------------------------------------

def test_batch_norm_weights_in_keras_order():
    layer = BatchNormalization()
    layer(fl.tensor(_x((4, 3))))
    assert [w.name for w in layer.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [w.name for w in layer.trainable_weights] == ["gamma", "beta"]
    layer.trainable = False
    assert [w.name for w in layer.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert layer.trainable_weights == []


def test_batch_norm_keras_weights_load_as_they_are():
    # Keras's get_weights() order: gamma, beta, moving_mean, moving_variance
    gamma, beta = np.array([1.5, 0.5, 2.0]), np.array([0.1, -0.2, 0.3])
    mean, var = np.array([0.5, -1.0, 2.0]), np.array([4.0, 0.25, 1.0])
    layer = BatchNormalization(epsilon=1e-3)
    x = _x((2, 4, 3), seed=1)
    layer(fl.tensor(x))
    layer.set_weights([gamma, beta, mean, var])
    np.testing.assert_allclose(layer(fl.tensor(x)).numpy(), _np_bn(x, mean, var, gamma, beta, 1e-3),
                               rtol=1e-5, atol=1e-6)


def test_batch_norm_training_uses_batch_statistics():
    x = _x((16, 3), seed=2, loc=5.0, scale=3.0)
    y = BatchNormalization(epsilon=1e-6)(fl.tensor(x), training=True).numpy()
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=0), 1.0, rtol=1e-4)


def test_batch_norm_inference_uses_moving_statistics():
    x = _x((16, 3), seed=3, loc=5.0, scale=3.0)
    layer = BatchNormalization()
    y = layer(fl.tensor(x)).numpy()  # training=False by default: moving stats are 0 and 1
    np.testing.assert_allclose(y, x / np.sqrt(1.0 + 1e-3), rtol=1e-6)


def test_batch_norm_moving_averages_after_a_few_steps():
    layer = BatchNormalization(momentum=0.9)
    mean, var = np.zeros(3), np.ones(3)
    for step in range(3):
        x = _x((6, 2, 3), seed=10 + step, loc=step, scale=step + 1.0)
        layer(fl.tensor(x), training=True)
        # Keras: biased batch variance, moving = moving * momentum + batch * (1 - momentum)
        mean = mean * 0.9 + x.mean(axis=(0, 1), dtype=np.float64) * 0.1
        var = var * 0.9 + x.var(axis=(0, 1), dtype=np.float64) * 0.1
    np.testing.assert_allclose(layer.moving_mean.numpy(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.numpy(), var, rtol=1e-5)


def test_batch_norm_inference_leaves_moving_averages_alone():
    layer = BatchNormalization()
    layer(fl.tensor(_x((6, 3), loc=4.0)), training=False)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), np.zeros(3))
    np.testing.assert_array_equal(layer.moving_variance.numpy(), np.ones(3))


def test_batch_norm_moving_average_update_records_no_graph():
    layer = BatchNormalization()
    x = fl.tensor(_x((6, 3), loc=2.0), requires_grad=True)
    layer(fl.tensor(_x((6, 3))))  # built
    moving = layer.moving_mean
    y = layer(x, training=True)
    y.sum().backward()
    assert moving is layer.moving_mean  # updated in place: the same Tensor, still tracked
    assert not moving.requires_grad and moving.creator is None and moving.grad is None
    assert not np.allclose(moving.numpy(), 0.0)


def test_batch_norm_updates_moving_averages_under_no_grad():
    layer = BatchNormalization(momentum=0.5)
    with fl.no_grad():
        layer(fl.tensor(np.full((4, 3), 2.0, dtype=np.float32)), training=True)
    np.testing.assert_allclose(layer.moving_mean.numpy(), [1.0, 1.0, 1.0])


@pytest.mark.parametrize("freeze", ["attribute", "constructor"])
def test_frozen_batch_norm_runs_in_inference_mode(freeze):
    x = _x((8, 3), seed=4, loc=3.0, scale=2.0)
    if freeze == "constructor":
        layer = BatchNormalization(trainable=False)
    else:
        layer = BatchNormalization()
        layer(fl.tensor(x), training=True)  # moves the averages away from (0, 1) first
        layer.trainable = False
    layer(fl.tensor(x))  # built
    mean_before = layer.moving_mean.numpy().copy()
    var_before = layer.moving_variance.numpy().copy()
    t = fl.tensor(x, requires_grad=True)
    y = layer(t, training=True)
    expected = _np_bn(x, mean_before, var_before, np.ones(3), np.zeros(3), 1e-3)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), mean_before)
    np.testing.assert_array_equal(layer.moving_variance.numpy(), var_before)
    y.sum().backward()  # the gradient still flows to the input, not to the frozen weights
    np.testing.assert_allclose(t.grad, np.broadcast_to(1 / np.sqrt(var_before + 1e-3), x.shape),
                               rtol=1e-6)
    assert layer.gamma.grad is None and layer.beta.grad is None


def test_frozen_batch_norm_in_a_model_keeps_its_statistics_during_fit():
    model = fl.models.Sequential([fl.layers.Dense(3, input_shape=(4,)), BatchNormalization(),
                                  fl.layers.Dense(1)])
    bn = model.layers[1]
    bn.trainable = False
    model.compile(optimizer="sgd", loss="mse")
    model.fit(_x((16, 4)), _x((16, 1), seed=1), epochs=1, batch_size=8, verbose=0)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), np.zeros(3))
    np.testing.assert_array_equal(bn.moving_variance.numpy(), np.ones(3))


def test_batch_norm_regularizers_add_losses():
    layer = BatchNormalization(gamma_regularizer=fl.regularizers.L2(0.5),
                               beta_regularizer="l1")
    layer(fl.tensor(_x((4, 3))))
    assert len(layer.losses) == 2
    np.testing.assert_allclose(sum(float(l.numpy()) for l in layer.losses), 0.5 * 3, rtol=1e-6)


def test_batch_norm_sequential_save_load_keeps_moving_statistics(tmp_path):
    model = fl.models.Sequential([fl.layers.Dense(4, input_shape=(3,)),
                                  BatchNormalization(momentum=0.5), fl.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(_x((32, 3), loc=1.0), _x((32, 2), seed=1), epochs=2, batch_size=8, verbose=0)
    bn = model.layers[1]
    assert not np.allclose(bn.moving_mean.numpy(), 0.0)  # the statistics really moved
    path = os.path.join(tmp_path, "bn.fundl")
    model.save(path)
    loaded = fl.models.load_model(path)
    x = _x((5, 3), seed=2)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    np.testing.assert_array_equal(loaded.layers[1].moving_variance.numpy(),
                                  bn.moving_variance.numpy())
    assert loaded.layers[1].get_config() == bn.get_config()


@pytest.mark.parametrize("cls", [BatchNormalization, LayerNormalization,
                                 LocalResponseNormalization])
def test_config_keys_are_the_constructor_arguments(cls):
    own = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
    base = set(fl.layers.Layer().get_config())
    assert set(cls().get_config()) == own | base


def test_batch_norm_config_values():
    config = BatchNormalization(axis=1, momentum=0.9, epsilon=1e-5, center=False).get_config()
    assert (config["axis"], config["momentum"], config["epsilon"], config["center"],
            config["scale"]) == (1, 0.9, 1e-5, False, True)
    assert config["moving_variance_initializer"]["class_name"] == "Ones"
    assert BatchNormalization.from_config(config).get_config() == config


# -- BatchNormalization: errors --------------------------------------------------------------------

def test_batch_norm_error_channel_change():
    layer = BatchNormalization(name="bn1")
    layer(fl.tensor(_x((4, 3))))
    assert_error(ValueError, layer, fl.tensor(_x((4, 5))),
                 contains=["BatchNormalization 'bn1'", "3 channels", "(4, 5)"])


def test_batch_norm_error_axis_out_of_range():
    assert_error(ValueError, BatchNormalization(axis=3, name="bn2"), fl.tensor(_x((4, 3))),
                 contains=["BatchNormalization 'bn2'", "axis 3", "rank 2"])


def test_batch_norm_error_unknown_channel_size():
    inputs = fl.layers.Input(shape=(None, 3))
    assert_error(ValueError, BatchNormalization(axis=1), inputs,
                 contains=["BatchNormalization", "axis 1", "known size"])


def test_batch_norm_error_arguments():
    assert_error(TypeError, BatchNormalization, axis=[1, 2],
                 contains=["BatchNormalization", "axis"])
    assert_error(ValueError, BatchNormalization, momentum=1.5,
                 contains=["BatchNormalization", "momentum", "1.5"])
    assert_error(TypeError, BatchNormalization, epsilon="small",
                 contains=["BatchNormalization", "epsilon", "small"])


# -- BatchNormalization vs PyTorch -----------------------------------------------------------------

def _torch_channels_last(module, x):
    return module(x.movedim(-1, 1)).movedim(1, -1)


def test_batch_norm_matches_torch_in_training_mode():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(5).standard_normal((4, 3, 3, 3)) * 2 + 1
    layer = BatchNormalization(epsilon=1e-3, dtype="float64")
    layer(fl.tensor(x))
    layer.set_weights([np.array([1.5, 0.5, 2.0]), np.array([0.1, -0.2, 0.3]), np.zeros(3),
                       np.ones(3)])
    check_against_torch(layer, torch.nn.BatchNorm2d(3, eps=1e-3),
                        lambda w: {"weight": w["gamma"], "bias": w["beta"]}, x,
                        torch_forward=_torch_channels_last, training=True)


def test_batch_norm_moving_statistics_match_torch_running_statistics():
    torch = pytest.importorskip("torch")
    layer = BatchNormalization(momentum=0.9, dtype="float64")
    module = torch.nn.BatchNorm2d(3, momentum=0.1).double()  # torch momentum = 1 - Keras's
    n = 4 * 2 * 2  # values per channel
    for step in range(3):
        x = np.random.default_rng(20 + step).standard_normal((4, 2, 2, 3)) * (step + 1) + step
        mv_before = layer.moving_variance.numpy().copy() if layer.built else np.ones(3)
        rv_before = module.running_var.numpy().copy()
        layer(fl.tensor(x), training=True)
        module.train()(torch.tensor(x).movedim(-1, 1))
        np.testing.assert_allclose(layer.moving_mean.numpy(), module.running_mean.numpy(),
                                   rtol=1e-12, atol=1e-14)
        # torch averages the unbiased variance: its step is n / (n - 1) times Keras's step
        ours = layer.moving_variance.numpy() - 0.9 * mv_before
        theirs = module.running_var.numpy() - 0.9 * rv_before
        np.testing.assert_allclose(ours * n / (n - 1), theirs, rtol=1e-12)


def test_batch_norm_matches_torch_in_inference_mode():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(6).standard_normal((3, 2, 2, 3))
    layer = BatchNormalization(epsilon=1e-3, dtype="float64")
    layer(fl.tensor(x))
    mean, var = np.array([0.3, -0.5, 1.0]), np.array([2.0, 0.5, 1.5])
    layer.set_weights([np.array([1.5, 0.5, 2.0]), np.array([0.1, -0.2, 0.3]), mean, var])
    module = torch.nn.BatchNorm2d(3, eps=1e-3).double()
    module.running_mean.copy_(torch.tensor(mean))
    module.running_var.copy_(torch.tensor(var))
    check_against_torch(layer, module, lambda w: {"weight": w["gamma"], "bias": w["beta"]}, x,
                        torch_forward=_torch_channels_last, training=False)


# -- LayerNormalization --------------------------------------------------------------------------

def test_layer_norm_layer_harness():
    check_layer(LayerNormalization, {}, input_shape=(2, 5, 4), expected_output_shape=(2, 5, 4),
                expected_weights={"gamma": (4,), "beta": (4,)})


def test_layer_norm_layer_harness_several_axes():
    check_layer(LayerNormalization, {"axis": [1, -1], "center": False}, input_shape=(2, 3, 2, 4),
                expected_weights={"gamma": (3, 4)})


def test_layer_norm_normalises_each_sample():
    x = _x((3, 8), seed=7, loc=2.0, scale=5.0)
    y = LayerNormalization(epsilon=1e-6)(fl.tensor(x), training=True).numpy()
    np.testing.assert_allclose(y.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=1), 1.0, rtol=1e-4)


def test_layer_norm_config_keeps_a_list_axis():
    layer = LayerNormalization(axis=(1, 2), epsilon=1e-5)
    config = layer.get_config()
    assert config["axis"] == [1, 2] and config["epsilon"] == 1e-5
    assert LayerNormalization.from_config(config).get_config() == config


def test_layer_norm_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(8).standard_normal((2, 3, 5))
    layer = LayerNormalization(epsilon=1e-3, dtype="float64")
    layer(fl.tensor(x))
    layer.set_weights([np.linspace(0.5, 1.5, 5), np.linspace(-0.2, 0.2, 5)])
    check_against_torch(layer, torch.nn.LayerNorm(5, eps=1e-3),
                        lambda w: {"weight": w["gamma"], "bias": w["beta"]}, x)


def test_layer_norm_error_size_change():
    layer = LayerNormalization(name="ln1")
    layer(fl.tensor(_x((2, 4))))
    assert_error(ValueError, layer, fl.tensor(_x((2, 6))),
                 contains=["LayerNormalization 'ln1'", "axis 1: 4", "(2, 6)"])


def test_layer_norm_error_arguments():
    assert_error(TypeError, LayerNormalization, axis="last",
                 contains=["LayerNormalization", "axis"])
    assert_error(ValueError, LayerNormalization, axis=[], contains=["LayerNormalization", "axis"])
    assert_error(ValueError, LayerNormalization(axis=[1, -1], name="ln2"), fl.tensor(_x((2, 3))),
                 contains=["LayerNormalization 'ln2'", "repeated"])


# -- LocalResponseNormalization --------------------------------------------------------------------

def test_local_response_norm_layer_harness():
    check_layer(LocalResponseNormalization, {"depth_radius": 1, "bias": 2.0, "alpha": 0.5,
                                             "beta": 0.75},
                input_shape=(2, 3, 3, 4), expected_output_shape=(2, 3, 3, 4), expected_weights={})


def test_local_response_norm_layer_formula():
    x = _x((2, 2, 2, 5), seed=9)
    y = LocalResponseNormalization(depth_radius=1, bias=2.0, alpha=0.5, beta=0.75)(fl.tensor(x))
    sq = np.pad(x.astype(np.float64) ** 2, [(0, 0)] * 3 + [(1, 1)])
    window = sq[..., :-2] + sq[..., 1:-1] + sq[..., 2:]
    np.testing.assert_allclose(y.numpy(), x / (2.0 + 0.5 * window) ** 0.75, rtol=1e-5)


def test_local_response_norm_layer_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(10).standard_normal((2, 3, 3, 7))
    layer = LocalResponseNormalization(depth_radius=2, bias=2.0, alpha=1e-2, beta=0.75,
                                       dtype="float64")
    # torch averages the window (size 2r+1) where TensorFlow sums it: alpha_torch = alpha * size
    check_against_torch(layer, torch.nn.LocalResponseNorm(5, alpha=5e-2, beta=0.75, k=2.0),
                        lambda w: {}, x, torch_forward=_torch_channels_last)


def test_local_response_norm_layer_defaults_and_config():
    config = LocalResponseNormalization().get_config()
    values = (config["depth_radius"], config["bias"], config["alpha"], config["beta"])
    assert values == (5, 1.0, 1.0, 0.5)
    assert LocalResponseNormalization.from_config(config).get_config() == config


def test_local_response_norm_layer_error_arguments():
    assert_error(ValueError, LocalResponseNormalization, depth_radius=-2,
                 contains=["LocalResponseNormalization", "depth_radius", "-2"])
    assert_error(TypeError, LocalResponseNormalization, alpha=None,
                 contains=["LocalResponseNormalization", "alpha", "None"])


# -- masks: the statistics count the real steps only (Keras 3) ---------------------------------
def _masked_input(dtype="float32"):
    from fundl.layers._masking import attach_mask

    x = _x((3, 5, 4), seed=7, loc=2.0, scale=3.0).astype(dtype)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], bool)
    t = fl.tensor(x, requires_grad=True)
    attach_mask(t, mask)
    return x, mask, t


def test_batch_norm_statistics_leave_masked_steps_out():
    x, mask, t = _masked_input()
    layer = BatchNormalization(momentum=0.5, epsilon=1e-3)
    y = layer(t, training=True)
    real = x[mask]  # (real steps, channels)
    mean, var = real.mean(axis=0), real.var(axis=0)
    expected = (x - mean) / np.sqrt(var + 1e-3)  # every step normalised with them
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.5 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.5 + 0.5 * var, rtol=1e-5)
    from fundl.layers._masking import get_mask
    np.testing.assert_array_equal(get_mask(y), mask)  # and the mask passes on


def test_padded_values_do_not_change_the_real_steps():
    x, mask, t = _masked_input()
    layer = BatchNormalization()
    y1 = layer(t, training=True).numpy()
    x2 = x.copy()
    x2[~mask] = 1e3  # garbage in the padding
    _, _, t2 = _masked_input()
    t2.data[...] = x2
    y2 = BatchNormalization()(t2, training=True).numpy()
    np.testing.assert_allclose(y2[mask], y1[mask], rtol=1e-5, atol=1e-5)


def test_masked_batch_norm_gradcheck():
    from fundl.layers._masking import attach_mask

    x, mask, _ = _masked_input("float64")
    layer = BatchNormalization(dtype="float64")
    layer(fl.tensor(x))
    rng = np.random.default_rng(3)
    layer.gamma.data[...] = 1 + 0.1 * rng.standard_normal(4)
    layer.beta.data[...] = 0.1 * rng.standard_normal(4)

    def fn(t, gamma, beta):
        attach_mask(t, mask)
        return layer(t, training=True)

    assert fl.gradcheck(fn, [fl.tensor(x, requires_grad=True), layer.gamma, layer.beta])


def test_a_mask_is_ignored_in_inference():
    x, mask, t = _masked_input()
    layer = BatchNormalization()
    layer(t, training=True)
    y = layer(t, training=False)
    expected = (x - layer.moving_mean.numpy()) / np.sqrt(layer.moving_variance.numpy() + 1e-3)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_a_batch_of_padding_only_leaves_the_moving_averages():
    from fundl.layers._masking import attach_mask

    layer = BatchNormalization()
    t = fl.tensor(_x((2, 3, 4), seed=8, loc=5.0))
    attach_mask(t, np.zeros((2, 3), bool))
    y = layer(t, training=True)
    assert np.isfinite(y.numpy()).all()
    np.testing.assert_array_equal(layer.moving_mean.numpy(), np.zeros(4))
    np.testing.assert_array_equal(layer.moving_variance.numpy(), np.ones(4))
