import json
import math

import numpy as np
import pytest

import fundl as fl
from fundl import losses
from fundl.testing import assert_error, check_op, gradcheck

EPS = 1e-7


def _rng(seed=0):
    return np.random.default_rng(seed)


def _probs(rng, shape):
    e = np.exp(rng.standard_normal(shape))
    return e / e.sum(axis=-1, keepdims=True)


def _one_hot(labels, n):
    return np.eye(n)[labels]


def _np_softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _torch():
    return pytest.importorskip("torch")


# -- each loss: forward vs NumPy, float64 gradcheck, shapes (check_op), and vs PyTorch -------

def _regression_data(seed=0):
    rng = _rng(seed)
    return [rng.standard_normal((4, 3)), rng.standard_normal((4, 3))]


def _binary_data(seed=0):
    rng = _rng(seed)
    return [rng.integers(0, 2, (4, 3)).astype(np.float64), rng.uniform(0.05, 0.95, (4, 3))]


def _signed_data(seed=0):
    rng = _rng(seed)
    return [rng.choice([-1.0, 1.0], (4, 3)), rng.standard_normal((4, 3))]


def test_mean_squared_error():
    check_op(losses.mean_squared_error, None, _regression_data(), constant=(0,),
             reference=lambda t, p: ((t - p) ** 2).mean(axis=-1))


def test_mean_squared_error_matches_torch():
    torch = _torch()
    check_op(losses.mean_squared_error,
             lambda t, p: torch.nn.functional.mse_loss(p, t, reduction="none").mean(-1),
             _regression_data(1), constant=(0,))


def test_sum_squared_error_is_half_the_summed_squares():
    check_op(losses.sum_squared_error, None, _regression_data(), constant=(0,),
             reference=lambda t, p: 0.5 * ((t - p) ** 2).sum(axis=-1))


def test_sum_squared_error_gradient_is_the_error():
    t, p = _regression_data()
    y_pred = fl.tensor(p, requires_grad=True)
    losses.sum_squared_error(t, y_pred).sum().backward()
    np.testing.assert_allclose(y_pred.grad, p - t, rtol=1e-12)


def test_mean_absolute_error():
    check_op(losses.mean_absolute_error, None, _regression_data(), constant=(0,),
             reference=lambda t, p: np.abs(t - p).mean(axis=-1))


def test_mean_absolute_error_matches_torch():
    torch = _torch()
    check_op(losses.mean_absolute_error,
             lambda t, p: torch.nn.functional.l1_loss(p, t, reduction="none").mean(-1),
             _regression_data(1), constant=(0,))


def test_binary_crossentropy():
    check_op(losses.binary_crossentropy, None, _binary_data(), constant=(0,),
             reference=lambda t, p: -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(axis=-1))


def test_binary_crossentropy_matches_torch():
    torch = _torch()
    check_op(losses.binary_crossentropy,
             lambda t, p: torch.nn.functional.binary_cross_entropy(p, t, reduction="none").mean(-1),
             _binary_data(1), constant=(0,))


def test_binary_crossentropy_from_logits_matches_torch():
    torch = _torch()
    t, _ = _binary_data(2)
    z = _rng(3).standard_normal(t.shape) * 3
    check_op(lambda t, z: losses.binary_crossentropy(t, z, from_logits=True),
             lambda t, z: torch.nn.functional.binary_cross_entropy_with_logits(
                 z, t, reduction="none").mean(-1),
             [t, z], constant=(0,),
             reference=lambda t, z: -(t * np.log(1 / (1 + np.exp(-z)))
                                      + (1 - t) * np.log(1 - 1 / (1 + np.exp(-z)))).mean(-1))


def test_categorical_crossentropy():
    rng = _rng()
    t, p = _one_hot(rng.integers(0, 5, 4), 5), _probs(rng, (4, 5))
    check_op(losses.categorical_crossentropy, None, [t, p], constant=(0,),
             reference=lambda t, p: -(t * np.log(p)).sum(axis=-1))


def test_categorical_crossentropy_normalises_like_keras_and_torch():
    # Keras divides y_pred by its sum; torch's cross_entropy on log(p) does the same.
    torch = _torch()
    rng = _rng(1)
    t, p = _probs(rng, (4, 5)), rng.uniform(0.1, 1.0, (4, 5))
    check_op(losses.categorical_crossentropy,
             lambda t, p: torch.nn.functional.cross_entropy(torch.log(p), t, reduction="none"),
             [t, p], constant=(0,),
             reference=lambda t, p: -(t * np.log(p / p.sum(-1, keepdims=True))).sum(-1))


def test_categorical_crossentropy_from_logits_matches_torch():
    torch = _torch()
    rng = _rng(2)
    t, z = _probs(rng, (4, 5)), rng.standard_normal((4, 5)) * 3
    check_op(lambda t, z: losses.categorical_crossentropy(t, z, from_logits=True),
             lambda t, z: torch.nn.functional.cross_entropy(z, t, reduction="none"),
             [t, z], constant=(0,))


def test_sparse_categorical_crossentropy():
    rng = _rng()
    labels, p = rng.integers(0, 5, 4), _probs(rng, (4, 5))
    check_op(losses.sparse_categorical_crossentropy, None, [labels, p],
             reference=lambda t, p: -np.log(p[np.arange(4), t]))


def test_sparse_categorical_crossentropy_matches_torch():
    torch = _torch()
    rng = _rng(1)
    labels, p = rng.integers(0, 5, 6), rng.uniform(0.1, 1.0, (6, 5))
    check_op(losses.sparse_categorical_crossentropy,
             lambda t, p: torch.nn.functional.cross_entropy(torch.log(p), t, reduction="none"),
             [labels, p])


def test_sparse_categorical_crossentropy_from_logits_matches_torch():
    torch = _torch()
    rng = _rng(2)
    labels, z = rng.integers(0, 5, 6), rng.standard_normal((6, 5)) * 3
    check_op(lambda t, z: losses.sparse_categorical_crossentropy(t, z, from_logits=True),
             lambda t, z: torch.nn.functional.cross_entropy(z, t, reduction="none"),
             [labels, z])


def test_hinge():
    check_op(losses.hinge, None, _signed_data(), constant=(0,),
             reference=lambda t, p: np.maximum(1 - t * p, 0).mean(axis=-1))


def test_exponential():
    check_op(losses.exponential, None, _signed_data(), constant=(0,),
             reference=lambda t, p: np.exp(-t * p).mean(axis=-1))


def test_logistic():
    check_op(losses.logistic, None, _signed_data(), constant=(0,),
             reference=lambda t, p: np.log2(1 + np.exp(-t * p)).mean(axis=-1))


def test_logistic_matches_torch_soft_margin():
    torch = _torch()
    check_op(losses.logistic,
             lambda t, p: torch.nn.functional.soft_margin_loss(p, t, reduction="none").mean(-1)
             / math.log(2),
             _signed_data(1), constant=(0,))


def test_kl_divergence():
    rng = _rng()
    t, p = _probs(rng, (4, 5)), _probs(rng, (4, 5))
    check_op(losses.kl_divergence, None, [t, p], constant=(0,),
             reference=lambda t, p: (t * np.log(t / p)).sum(axis=-1))


def test_kl_divergence_matches_torch():
    torch = _torch()
    rng = _rng(1)
    t, p = _probs(rng, (4, 5)), _probs(rng, (4, 5))
    check_op(losses.kl_divergence,
             lambda t, p: torch.nn.functional.kl_div(torch.log(p), t, reduction="none").sum(-1),
             [t, p], constant=(0,))


def test_kl_divergence_differentiates_a_target_that_requires_grad():
    rng = _rng(2)
    t = fl.tensor(_probs(rng, (3, 4)), requires_grad=True)
    p = fl.tensor(_probs(rng, (3, 4)), requires_grad=True)
    assert gradcheck(losses.kl_divergence, [t, p])


# -- the fused softmax / sigmoid path -----------------------------------------------------

def _fused_and_plain(loss, y_true, z, activation):
    """Loss and d/dz through the fused path, and through the clipped formula (z float64)."""
    results = []
    for fused in (True, False):
        zt = fl.tensor(z, requires_grad=True)
        y_pred = activation(zt)
        if not fused:
            y_pred = y_pred * 1.0  # no longer made by softmax/sigmoid: the plain formula runs
        value = loss(y_true, y_pred)
        value.sum().backward()
        results.append((value.numpy(), zt.grad))
    return results


def test_categorical_fused_path_agrees_with_the_formula():
    rng = _rng(4)
    z, t = rng.standard_normal((6, 5)) * 3, _probs(rng, (6, 5))
    (v1, g1), (v2, g2) = _fused_and_plain(losses.categorical_crossentropy, t, z, fl.softmax)
    np.testing.assert_allclose(v1, v2, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(g1, g2, rtol=1e-6, atol=1e-6)


def test_sparse_categorical_fused_path_agrees_with_the_formula():
    rng = _rng(5)
    z, labels = rng.standard_normal((6, 5)) * 3, rng.integers(0, 5, 6)
    (v1, g1), (v2, g2) = _fused_and_plain(losses.sparse_categorical_crossentropy, labels, z,
                                          fl.softmax)
    np.testing.assert_allclose(v1, v2, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(g1, g2, rtol=1e-6, atol=1e-6)


def test_binary_fused_path_agrees_with_the_formula():
    rng = _rng(6)
    z, t = rng.standard_normal((6, 3)) * 3, rng.integers(0, 2, (6, 3)).astype(np.float64)
    (v1, g1), (v2, g2) = _fused_and_plain(losses.binary_crossentropy, t, z, fl.sigmoid)
    np.testing.assert_allclose(v1, v2, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(g1, g2, rtol=1e-6, atol=1e-6)


def test_categorical_fused_path_is_exact_for_saturated_logits():
    z = fl.tensor([[1000.0, 0.0, -1000.0]], requires_grad=True)
    loss = losses.categorical_crossentropy(np.array([[0.0, 1.0, 0.0]]), fl.softmax(z))
    loss.sum().backward()
    np.testing.assert_allclose(loss.numpy(), [1000.0], rtol=1e-6)
    np.testing.assert_allclose(z.grad, [[1.0, -1.0, 0.0]], atol=1e-6)


def test_sparse_categorical_fused_path_is_exact_for_saturated_logits():
    z = fl.tensor([[1000.0, 0.0], [0.0, 1000.0]], requires_grad=True)
    loss = losses.sparse_categorical_crossentropy(np.array([1, 1]), fl.softmax(z))
    loss.sum().backward()
    np.testing.assert_allclose(loss.numpy(), [1000.0, 0.0], atol=1e-4)
    assert np.isfinite(z.grad).all()


def test_binary_fused_path_is_exact_for_saturated_logits():
    z = fl.tensor([[-200.0], [200.0]], requires_grad=True)
    loss = losses.binary_crossentropy(np.array([1.0, 1.0]), fl.sigmoid(z))
    loss.sum().backward()
    np.testing.assert_allclose(loss.numpy(), [200.0, 0.0], atol=1e-4)
    np.testing.assert_allclose(z.grad, [[-1.0], [0.0]], atol=1e-6)


def test_softmax_over_another_axis_uses_the_formula():
    rng = _rng(7)
    z, t = rng.standard_normal((3, 4)), _one_hot(rng.integers(0, 4, 3), 4)
    p = _np_softmax(z.T).T  # normalised over the batch axis, not over classes
    loss = losses.categorical_crossentropy(t, fl.softmax(fl.tensor(z, requires_grad=True), axis=0))
    q = np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS)
    np.testing.assert_allclose(loss.numpy(), -(t * np.log(q)).sum(-1), rtol=1e-12)


# -- clipping, label conventions and shapes -----------------------------------------------

def test_binary_crossentropy_clips_probabilities_as_keras():
    loss = losses.binary_crossentropy(np.array([[1.0], [0.0]]), fl.tensor([[0.0], [1.0]],
                                                                            dtype="float64"))
    np.testing.assert_allclose(loss.numpy(), [-np.log(EPS)] * 2, rtol=1e-6)


def test_categorical_crossentropy_clips_zero_probabilities():
    loss = losses.categorical_crossentropy([[0.0, 1.0]], fl.tensor([[1.0, 0.0]], dtype="float64"))
    np.testing.assert_allclose(loss.numpy(), [-np.log(EPS)], rtol=1e-6)


@pytest.mark.parametrize("fn", [losses.hinge, losses.exponential, losses.logistic])
def test_margin_losses_convert_zero_one_labels(fn):
    rng = _rng(8)
    labels, scores = rng.integers(0, 2, (5, 2)), rng.standard_normal((5, 2))
    converted = fn(2.0 * labels - 1.0, fl.tensor(scores))
    np.testing.assert_allclose(fn(labels.astype(float), fl.tensor(scores)).numpy(),
                               converted.numpy(), rtol=1e-12)


def test_logistic_is_stable_for_large_margins():
    loss = losses.logistic(np.array([[1.0], [1.0]]), fl.tensor([[-1000.0], [1000.0]]))
    np.testing.assert_allclose(loss.numpy(), [1000.0 / math.log(2), 0.0], rtol=1e-6)


def test_targets_without_the_trailing_unit_axis():
    # (batch,) targets against (batch, 1) outputs must not broadcast to (batch, batch)
    rng = _rng(9)
    t, p = rng.standard_normal(5), fl.tensor(rng.standard_normal((5, 1)))
    loss = losses.mean_squared_error(t, p)
    assert loss.shape == (5,)
    np.testing.assert_allclose(loss.numpy(), (t - p.numpy()[:, 0]) ** 2, rtol=1e-12)


def test_targets_with_an_extra_unit_axis():
    rng = _rng(10)
    t, p = rng.standard_normal((5, 1)), rng.standard_normal(5)
    np.testing.assert_allclose(losses.mean_absolute_error(t, fl.tensor(p)).numpy(),
                               np.abs(t[:, 0] - p).mean(), rtol=1e-12)


def test_losses_accept_tensor_targets_and_keep_the_prediction_dtype():
    t, p = fl.tensor([[1.0, 0.0]], dtype="float64"), fl.tensor([[0.5, 0.5]])
    loss = losses.mean_squared_error(t, p)
    assert loss.dtype == np.float32
    np.testing.assert_allclose(loss.numpy(), [0.25])


def test_mismatched_shapes_raise_naming_both():
    assert_error(ValueError, losses.mean_squared_error, np.zeros((4, 1)), fl.zeros(4, 10),
                 contains=["mean_squared_error", "(4, 1)", "(4, 10)"])


def test_categorical_with_integer_labels_suggests_sparse():
    assert_error(ValueError, losses.categorical_crossentropy, np.array([0, 2]), fl.ones(2, 3),
                 contains=["(2,)", "(2, 3)", "sparse_categorical_crossentropy"])


def test_sparse_labels_with_a_trailing_unit_axis():
    rng = _rng(11)
    labels, p = rng.integers(0, 3, 4), fl.tensor(_probs(rng, (4, 3)))
    np.testing.assert_allclose(
        losses.sparse_categorical_crossentropy(labels[:, None], p).numpy(),
        losses.sparse_categorical_crossentropy(labels, p).numpy(), rtol=1e-12)


def test_sparse_accepts_whole_number_float_labels():
    p = fl.tensor([[0.2, 0.8], [0.6, 0.4]], dtype="float64")
    np.testing.assert_allclose(
        losses.sparse_categorical_crossentropy(np.array([1.0, 0.0]), p).numpy(),
        -np.log([0.8, 0.6]), rtol=1e-12)


def test_sparse_rejects_fractional_labels():
    assert_error(ValueError, losses.sparse_categorical_crossentropy, np.array([0.5, 1.0]),
                 fl.ones(2, 3), contains=["sparse_categorical_crossentropy", "integer"])


def test_sparse_rejects_out_of_range_labels():
    assert_error(ValueError, losses.sparse_categorical_crossentropy, np.array([0, 3]),
                 fl.ones(2, 3), contains=["[0, 3)", "[0, 3]"])


def test_sparse_rejects_one_hot_labels():
    assert_error(ValueError, losses.sparse_categorical_crossentropy, np.eye(3), fl.ones(3, 3),
                 contains=["(3,)", "(3, 3)", "categorical_crossentropy"])


def test_integer_predictions_raise_type_error():
    assert_error(TypeError, losses.mean_squared_error, np.zeros((2, 1)), np.zeros((2, 1), int),
                 contains=["mean_squared_error", "int64"])


def test_scalar_predictions_raise():
    assert_error(ValueError, losses.mean_squared_error, 0.0, fl.tensor(1.0),
                 contains=["mean_squared_error", "0-d"])


# -- loss classes and reduction -----------------------------------------------------------

def test_class_reduces_to_the_mean():
    t, p = _regression_data()
    value = losses.MeanSquaredError()(t, fl.tensor(p))
    assert value.shape == ()
    np.testing.assert_allclose(value.numpy(), ((t - p) ** 2).mean(), rtol=1e-12)


def test_sample_weight_sum_over_batch_size():
    t, p = _regression_data()
    w = np.array([1.0, 0.0, 2.0, 0.5])
    value = losses.MeanSquaredError()(t, fl.tensor(p), sample_weight=w)
    np.testing.assert_allclose(value.numpy(), (((t - p) ** 2).mean(-1) * w).sum() / 4, rtol=1e-12)


def test_sample_weight_with_a_trailing_unit_axis():
    t, p = _regression_data()
    w = np.array([1.0, 0.0, 2.0, 0.5])
    loss = losses.MeanSquaredError()
    np.testing.assert_allclose(loss(t, fl.tensor(p), sample_weight=w[:, None]).numpy(),
                               loss(t, fl.tensor(p), sample_weight=w).numpy(), rtol=1e-12)


def test_reduction_sum_and_none():
    t, p = _regression_data()
    per_sample = ((t - p) ** 2).mean(-1)
    np.testing.assert_allclose(losses.MeanSquaredError(reduction="sum")(t, fl.tensor(p)).numpy(),
                               per_sample.sum(), rtol=1e-12)
    np.testing.assert_allclose(losses.MeanSquaredError(reduction="none")(t, fl.tensor(p)).numpy(),
                               per_sample, rtol=1e-12)


def test_reduction_mean_with_sample_weight():
    t, p = _regression_data()
    w = np.array([1.0, 0.0, 2.0, 0.5])
    value = losses.MeanSquaredError(reduction="mean_with_sample_weight")(t, fl.tensor(p), w)
    np.testing.assert_allclose(value.numpy(), (((t - p) ** 2).mean(-1) * w).sum() / w.sum(),
                               rtol=1e-12)


def test_class_loss_is_differentiable():
    t, p = _regression_data()
    weights = np.array([1.0, 2.0, 0.0, 1.0])
    assert gradcheck(lambda y: losses.MeanSquaredError()(t, y, weights),
                     [fl.tensor(p, requires_grad=True)])


def test_bad_sample_weight_shape_raises():
    assert_error(ValueError, losses.MeanSquaredError(), np.zeros((4, 2)), fl.zeros(4, 2),
                 sample_weight=np.ones(3), contains=["sample_weight", "(3,)", "(4,)"])


def test_sample_weight_with_1d_predictions_explains_the_fix():
    assert_error(ValueError, losses.MeanSquaredError(), np.zeros(4), fl.zeros(4),
                 sample_weight=np.ones(4), contains=["sample_weight", "(4,)", "(batch, 1)"])


def test_unknown_reduction_raises():
    assert_error(ValueError, losses.MeanSquaredError, reduction="avg",
                 contains=["'avg'", "sum_over_batch_size"])


def test_from_logits_class_matches_the_function():
    rng = _rng(12)
    labels, z = rng.integers(0, 4, 5), rng.standard_normal((5, 4))
    value = losses.SparseCategoricalCrossentropy(from_logits=True)(labels, fl.tensor(z))
    expected = losses.sparse_categorical_crossentropy(labels, fl.tensor(z), from_logits=True)
    np.testing.assert_allclose(value.numpy(), expected.numpy().mean(), rtol=1e-12)


CLASSES = [
    losses.MeanSquaredError(), losses.SumSquaredError(), losses.MeanAbsoluteError(),
    losses.BinaryCrossentropy(from_logits=True), losses.CategoricalCrossentropy(),
    losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum"), losses.Hinge(),
    losses.Exponential(), losses.Logistic(), losses.KLDivergence(name="kl"),
]


@pytest.mark.parametrize("loss", CLASSES, ids=lambda loss: type(loss).__name__)
def test_config_round_trip(loss):
    config = json.loads(json.dumps(loss.get_config()))
    clone = type(loss).from_config(config)
    assert type(clone) is type(loss) and clone.get_config() == loss.get_config()


@pytest.mark.parametrize("loss", CLASSES, ids=lambda loss: type(loss).__name__)
def test_serialize_round_trip(loss):
    clone = losses.get(json.loads(json.dumps(losses.serialize(loss))))
    assert type(clone) is type(loss) and clone.get_config() == loss.get_config()


def test_wrapper_around_a_builtin_function_round_trips():
    loss = losses.LossFunctionWrapper(losses.binary_crossentropy, from_logits=True)
    clone = losses.get(losses.serialize(loss))
    assert clone.fn is losses.binary_crossentropy and clone.fn_kwargs == {"from_logits": True}


def test_wrapper_passes_its_keyword_arguments():
    loss = losses.LossFunctionWrapper(losses.categorical_crossentropy, from_logits=True)
    z = fl.tensor([[1000.0, 0.0]])
    np.testing.assert_allclose(loss(np.array([[0.0, 1.0]]), z).numpy(), 1000.0, rtol=1e-6)


def test_wrapper_of_a_custom_function_cannot_be_serialized():
    def cubic(t, p):
        return (fl.abs(p - t) ** 3).mean(axis=-1)

    loss = losses.LossFunctionWrapper(cubic)
    np.testing.assert_allclose(loss(np.zeros((2, 1)), fl.ones(2, 1)).numpy(), 1.0)
    assert_error(ValueError, loss.get_config, contains=["cubic", "never code"])


# -- lookup by name -----------------------------------------------------------------------

@pytest.mark.parametrize("name, fn", [
    ("mse", losses.mean_squared_error), ("mean_squared_error", losses.mean_squared_error),
    ("mae", losses.mean_absolute_error), ("kld", losses.kl_divergence),
    ("kullback_leibler_divergence", losses.kl_divergence),
    ("sum_squared_error", losses.sum_squared_error),
    ("binary_crossentropy", losses.binary_crossentropy),
    ("categorical_crossentropy", losses.categorical_crossentropy),
    ("sparse_categorical_crossentropy", losses.sparse_categorical_crossentropy),
    ("hinge", losses.hinge), ("exponential", losses.exponential),
    ("logistic", losses.logistic)])
def test_get_function_names(name, fn):
    assert losses.get(name) is fn


def test_serialize_function_gives_canonical_name():
    assert losses.serialize(losses.mse) == "mean_squared_error"


def test_get_class_name_gives_an_instance():
    assert isinstance(losses.get("CategoricalCrossentropy"), losses.CategoricalCrossentropy)


def test_get_class_gives_an_instance():
    assert isinstance(losses.get(losses.Hinge), losses.Hinge)


def test_get_passes_instances_and_callables_through():
    loss = losses.BinaryCrossentropy(from_logits=True)

    def custom(t, p):
        return p.mean(axis=-1)

    assert losses.get(loss) is loss and losses.get(custom) is custom and losses.get(None) is None


def test_get_unknown_name_lists_valid_names():
    assert_error(ValueError, losses.get, "cross_entropy",
                 contains=["cross_entropy", "'mse'", "'categorical_crossentropy'"])


def test_get_bad_config_dict_raises():
    assert_error(ValueError, losses.get, {"class_name": "os.system", "config": {}},
                 contains=["class_name", "MeanSquaredError"])


def test_get_rejects_other_types():
    assert_error(TypeError, losses.get, 3, contains=["losses.get", "int"])
