"""Huber, LogCosh, Poisson, CosineSimilarity, SquaredHinge, CategoricalHinge, MAPE, MSLE:
NumPy references (Keras 3's formulas), gradcheck, PyTorch where it has the loss, classes,
config round-trips and names."""
import json

import numpy as np
import pytest

import fundl as fl
from fundl import losses
from fundl.testing import assert_error, check_op

EPS = 1e-7


def _rng(seed=0):
    return np.random.default_rng(seed)


def _regression(seed=0, scale=2.0):
    rng = _rng(seed)
    return [rng.standard_normal((4, 3)) * scale, rng.standard_normal((4, 3)) * scale]


def _np_huber(t, p, delta=1.0):
    e = np.abs(p - t)
    return np.where(e <= delta, 0.5 * e * e, delta * (e - 0.5 * delta)).mean(axis=-1)


def _np_normalize(x):
    return x / np.maximum(np.sqrt((x * x).sum(axis=-1, keepdims=True)), EPS)


def _signed(t):
    return np.where(np.isin(t, [0, 1]).all(), 2 * t - 1, t)


REFERENCES = {
    "huber": _np_huber,
    "log_cosh": lambda t, p: np.log(np.cosh(p - t)).mean(axis=-1),
    "cosine_similarity": lambda t, p: -(_np_normalize(t) * _np_normalize(p)).sum(axis=-1),
    "mean_absolute_percentage_error":
        lambda t, p: 100 * (np.abs(t - p) / np.maximum(np.abs(t), EPS)).mean(axis=-1),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_regression_losses_forward_and_gradcheck(name):
    check_op(losses.get(name), None, _regression(), constant=(0,), reference=REFERENCES[name],
             atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("delta", [0.5, 1.0, 3.0])
def test_huber_matches_torch(delta):
    torch = pytest.importorskip("torch")
    check_op(lambda t, p: losses.huber(t, p, delta=delta),
             lambda t, p: torch.nn.functional.huber_loss(p, t, reduction="none",
                                                         delta=delta).mean(-1),
             _regression(1), constant=(0,), atol=1e-12, rtol=1e-10)


def test_cosine_similarity_matches_torch_with_keras_sign():
    torch = pytest.importorskip("torch")
    check_op(losses.cosine_similarity,
             lambda t, p: -torch.nn.functional.cosine_similarity(p, t, dim=-1),
             _regression(2), constant=(0,), atol=1e-12, rtol=1e-10)


def test_cosine_similarity_other_axis_and_zero_vector():
    t, p = _regression(3)
    got = losses.cosine_similarity(t, fl.tensor(p), axis=0).numpy()
    ref = -(t / np.linalg.norm(t, axis=0) * p / np.linalg.norm(p, axis=0)).sum(axis=0)
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    z = fl.tensor(np.zeros((1, 3)), requires_grad=True)
    loss = losses.cosine_similarity(np.ones((1, 3)), z)
    loss.sum().backward()
    assert float(loss.numpy()[0]) == 0.0 and np.isfinite(z.grad).all()


def test_log_cosh_is_finite_for_large_errors():
    p = fl.tensor([[1e4, -1e4]], dtype="float64", requires_grad=True)
    loss = losses.log_cosh(np.zeros((1, 2)), p)
    loss.sum().backward()
    np.testing.assert_allclose(loss.numpy(), [1e4 - np.log(2)], rtol=1e-12)
    np.testing.assert_allclose(p.grad, [[0.5, -0.5]])


def test_poisson_forward_gradcheck_and_torch():
    rng = _rng(4)
    data = [rng.poisson(2.0, (4, 3)).astype(np.float64), rng.uniform(0.2, 4.0, (4, 3))]
    check_op(losses.poisson, None, data, constant=(0,), atol=1e-12, rtol=1e-10,
             reference=lambda t, p: (p - t * np.log(p + EPS)).mean(axis=-1))
    torch = pytest.importorskip("torch")
    check_op(losses.poisson,
             lambda t, p: torch.nn.functional.poisson_nll_loss(
                 p, t, log_input=False, full=False, eps=EPS, reduction="none").mean(-1),
             data, constant=(0,), atol=1e-12, rtol=1e-10)


def test_squared_hinge_forward_gradcheck_and_01_labels():
    rng = _rng(5)
    t = rng.integers(0, 2, (4, 3)).astype(np.float64)
    p = rng.standard_normal((4, 3))
    ref = (np.maximum(1 - (2 * t - 1) * p, 0) ** 2).mean(axis=-1)
    check_op(losses.squared_hinge, None, [t, p], constant=(0,), reference=lambda *_: ref,
             atol=1e-12, rtol=1e-10)
    signed = losses.squared_hinge(2 * t - 1, fl.tensor(p)).numpy()
    np.testing.assert_allclose(signed, ref, rtol=1e-12)


def test_categorical_hinge_forward_and_gradcheck():
    rng = _rng(6)
    t = np.eye(4)[rng.integers(0, 4, 5)]
    p = rng.standard_normal((5, 4))
    pos = (t * p).sum(-1)
    neg = ((1 - t) * p).max(-1)
    check_op(losses.categorical_hinge, None, [t, p], constant=(0,),
             reference=lambda *_: np.maximum(neg - pos + 1, 0), atol=1e-12, rtol=1e-10)


def test_categorical_hinge_hand_values_keep_keras_zero_floor():
    # Keras takes neg = max((1 - t) * p): the true class's 0 enters the max, so with all wrong
    # scores negative neg is 0 (not the best wrong score, as in Crammer & Singer).
    got = losses.categorical_hinge([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]],
                                   fl.tensor([[0.3, 0.5, -0.2], [0.2, -1.0, -2.0]])).numpy()
    np.testing.assert_allclose(got, [0.3 - 0.5 + 1, 0 - 0.2 + 1], rtol=1e-6)


def test_msle_forward_gradcheck():
    rng = _rng(8)
    data = [rng.uniform(0, 3, (4, 3)), rng.uniform(0.1, 3, (4, 3))]
    check_op(losses.mean_squared_logarithmic_error, None, data, constant=(0,), atol=1e-12,
             rtol=1e-10, reference=lambda t, p: ((np.log1p(p) - np.log1p(t)) ** 2).mean(-1))


def test_huber_hand_values_and_bad_delta():
    got = losses.huber([[0.0, 0.0, 0.0]], fl.tensor([[0.5, 2.0, -3.0]]), delta=2.0).numpy()
    np.testing.assert_allclose(got, [(0.125 + 2.0 + 2.0 * (3.0 - 1.0)) / 3], rtol=1e-6)
    assert_error(ValueError, losses.Huber, delta=0.0, contains=["Huber", "delta", "0.0"])
    assert_error(ValueError, losses.huber, [[0.0]], fl.tensor([[1.0]]), delta=-1,
                 contains=["huber", "delta"])


CLASSES = [
    (losses.Huber, {"delta": 0.7}, "huber", "huber_loss"),
    (losses.LogCosh, {}, "log_cosh", "log_cosh"),
    (losses.Poisson, {}, "poisson", "poisson"),
    (losses.CosineSimilarity, {"axis": -1}, "cosine_similarity", "cosine_similarity"),
    (losses.SquaredHinge, {}, "squared_hinge", "squared_hinge"),
    (losses.CategoricalHinge, {}, "categorical_hinge", "categorical_hinge"),
    (losses.MeanAbsolutePercentageError, {}, "mape", "mean_absolute_percentage_error"),
    (losses.MeanSquaredLogarithmicError, {}, "msle", "mean_squared_logarithmic_error"),
]


@pytest.mark.parametrize("cls,kwargs,fn_name,default_name", CLASSES)
def test_class_reduces_the_function_and_round_trips(cls, kwargs, fn_name, default_name):
    rng = _rng(9)
    t, p = rng.uniform(0.1, 2, (5, 3)), rng.uniform(0.1, 2, (5, 3))
    if cls is losses.CategoricalHinge:
        t = np.eye(3)[rng.integers(0, 3, 5)]
    loss = cls(**kwargs)
    assert loss.name == default_name
    fn = losses.get(fn_name)
    per_sample = fn(t, fl.tensor(p), **kwargs).numpy()
    w = rng.uniform(0, 1, 5)
    np.testing.assert_allclose(loss(t, fl.tensor(p)).numpy(), per_sample.mean(), rtol=1e-6)
    np.testing.assert_allclose(loss(t, fl.tensor(p), sample_weight=w).numpy(),
                               (per_sample * w).mean(), rtol=1e-6)
    config = json.loads(json.dumps(losses.serialize(loss)))
    clone = losses.get(config)
    assert type(clone) is cls and clone.get_config() == loss.get_config()
    assert isinstance(losses.get(cls.__name__), cls)
    assert losses.serialize(fn) in losses._FUNCTIONS


def test_models_compile_with_the_new_loss_names():
    model = fl.models.Sequential([fl.layers.Dense(2, input_shape=(3,))])
    model.compile(optimizer="sgd", loss="huber")
    x = _rng(10).standard_normal((8, 3)).astype(np.float32)
    first = model.train_on_batch(x, x[:, :2] * 3)
    for _ in range(5):
        last = model.train_on_batch(x, x[:, :2] * 3)
    first = first[0] if isinstance(first, (list, tuple)) else first
    last = last[0] if isinstance(last, (list, tuple)) else last
    assert float(last) < float(first)


def test_shape_mismatch_names_both_shapes():
    assert_error(ValueError, losses.log_cosh, np.zeros((4, 2)), fl.zeros(4, 3),
                 contains=["log_cosh", "(4, 2)", "(4, 3)"])
