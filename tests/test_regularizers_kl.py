"""KLSparsity: a value by hand, gradcheck, its scaling through a layer's activity_regularizer,
config round-trip, bad input."""
import json
import math

import numpy as np
import pytest

import fundl as fl
from fundl import regularizers
from fundl.testing import assert_error, gradcheck


def _kl(rho, r):
    return rho * math.log(rho / r) + (1 - rho) * math.log((1 - rho) / (1 - r))


def test_value_by_hand():
    h = np.array([[0.1, 0.9, 0.5],
                  [0.3, 0.7, 0.5]])
    reg = regularizers.KLSparsity(rho=0.2, beta=2.0)
    expected = 2.0 * (_kl(0.2, 0.2) + _kl(0.2, 0.8) + _kl(0.2, 0.5))
    # _kl(0.2, 0.8) = 0.2 ln(0.25) + 0.8 ln(4) = 0.6 ln 4
    assert abs(_kl(0.2, 0.8) - 0.6 * math.log(4)) < 1e-12
    got = reg.penalty(fl.tensor(h, dtype="float64"))
    assert got.ndim == 0
    assert abs(float(got.numpy()) - expected) < 1e-12
    # calling it gives the penalty times the batch size, which the layer divides back out
    assert abs(float(reg(fl.tensor(h, dtype="float64")).numpy()) - 2 * expected) < 1e-12


def test_zero_at_target_and_gradient_matches_finite_differences():
    reg = regularizers.KLSparsity(rho=0.05, beta=3.0)
    assert float(reg.penalty(fl.tensor(np.full((4, 3), 0.05), dtype="float64")).numpy()) \
        == pytest.approx(0.0, abs=1e-15)
    h = np.random.default_rng(0).uniform(0.05, 0.95, (5, 4))
    assert gradcheck(lambda t: reg(t), [fl.tensor(h, dtype="float64", requires_grad=True)])
    h4 = np.random.default_rng(1).uniform(0.05, 0.95, (2, 3, 3, 4))  # images: per channel
    assert gradcheck(lambda t: reg.penalty(t),
                     [fl.tensor(h4, dtype="float64", requires_grad=True)])


def test_gradient_by_hand():
    # d/dh_ij of beta * KL(rho || mean_i h_ij) = beta / n * (-rho / r + (1 - rho) / (1 - r))
    h = np.random.default_rng(2).uniform(0.1, 0.9, (6, 3))
    t = fl.tensor(h, dtype="float64", requires_grad=True)
    regularizers.KLSparsity(rho=0.1, beta=0.5).penalty(t).backward()
    r = h.mean(axis=0)
    expected = np.broadcast_to(0.5 / 6 * (-0.1 / r + 0.9 / (1 - r)), h.shape)
    np.testing.assert_allclose(t.grad, expected, rtol=1e-12)


@pytest.mark.parametrize("batch", [4, 16])
def test_layer_adds_exactly_the_penalty_whatever_the_batch_size(batch):
    reg = regularizers.KLSparsity(rho=0.1, beta=3.0)
    layer = fl.layers.Dense(5, activation="sigmoid", activity_regularizer=reg)
    x = np.random.default_rng(3).standard_normal((batch, 4)).astype(np.float32)
    out = layer(fl.tensor(x))
    losses = layer.losses
    assert len(losses) == 1
    np.testing.assert_allclose(float(losses[0].numpy()), float(reg.penalty(out).numpy()),
                               rtol=1e-5)


def test_sparse_autoencoder_training_drives_mean_activation_toward_rho():
    fl.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (64, 8)).astype(np.float32)
    code = fl.layers.Dense(6, activation="sigmoid",
                           activity_regularizer=regularizers.KLSparsity(rho=0.05, beta=3.0))
    model = fl.models.Sequential([fl.Input(shape=(8,)), code, fl.layers.Dense(8)])
    model.compile(optimizer=fl.optimizers.Adam(0.05), loss="mse")
    before = float(code(fl.tensor(x)).numpy().mean())
    model.fit(x, x, epochs=30, batch_size=64, verbose=0)
    after = float(code(fl.tensor(x)).numpy().mean())
    assert abs(after - 0.05) < abs(before - 0.05) and after < 0.15


def test_config_round_trip_and_names():
    reg = regularizers.KLSparsity(rho=0.1, beta=2.5)
    config = json.loads(json.dumps(regularizers.serialize(reg)))
    assert config == {"class_name": "KLSparsity", "config": {"rho": 0.1, "beta": 2.5}}
    clone = regularizers.get(config)
    assert isinstance(clone, regularizers.KLSparsity) and clone.get_config() == reg.get_config()
    assert isinstance(regularizers.get("kl_sparsity"), regularizers.KLSparsity)
    layer = fl.layers.Dense(3, activation="sigmoid", activity_regularizer=reg)
    again = fl.layers.Dense.from_config(layer.get_config())
    assert again.activity_regularizer.get_config() == reg.get_config()


def test_bad_input_is_named():
    assert_error(ValueError, regularizers.KLSparsity, rho=1.0, contains=["KLSparsity", "rho"])
    assert_error(ValueError, regularizers.KLSparsity, beta=-1.0, contains=["KLSparsity", "beta"])
    assert_error(ValueError, regularizers.KLSparsity().penalty, fl.tensor([[2.0, 3.0]]),
                 contains=["KLSparsity", "[0, 1]", "(1, 2)", "sigmoid"])
