import numpy as np
import pytest

import fundl as fl
from fundl import metrics
from fundl.testing import assert_error


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_binary_accuracy_thresholds_at_one_half():
    y = metrics.binary_accuracy(np.array([[1], [0], [1], [0]]),
                                np.array([[0.7], [0.6], [0.2], [0.5]]))
    np.testing.assert_array_equal(y, [1.0, 0.0, 0.0, 1.0])


def test_binary_accuracy_custom_threshold():
    y = metrics.binary_accuracy(np.array([1, 1]), np.array([0.7, 0.9]), threshold=0.8)
    np.testing.assert_array_equal(y, [0.0, 1.0])


def test_binary_accuracy_labels_without_the_unit_axis():
    # (batch,) labels with (batch, 1) outputs: one value per sample, no (batch, batch) broadcast
    y = metrics.binary_accuracy(np.array([1, 0, 1]), np.array([[0.9], [0.1], [0.1]]))
    np.testing.assert_array_equal(y, [1.0, 1.0, 0.0])


def test_binary_accuracy_averages_over_the_last_axis():
    y = metrics.binary_accuracy(np.array([[1, 0], [1, 1]]), np.array([[0.9, 0.9], [0.9, 0.9]]))
    np.testing.assert_array_equal(y, [0.5, 1.0])


def test_categorical_accuracy():
    y = metrics.categorical_accuracy(np.eye(3)[[0, 2, 1]],
                                     np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]]))
    np.testing.assert_array_equal(y, [1.0, 1.0, 0.0])


def test_sparse_categorical_accuracy():
    p = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]])
    np.testing.assert_array_equal(metrics.sparse_categorical_accuracy(np.array([0, 2, 1]), p),
                                  [1.0, 1.0, 0.0])


def test_sparse_categorical_accuracy_labels_with_a_unit_axis():
    rng = _rng()
    labels, p = rng.integers(0, 4, 10), rng.random((10, 4))
    np.testing.assert_array_equal(metrics.sparse_categorical_accuracy(labels[:, None], p),
                                  metrics.sparse_categorical_accuracy(labels, p))


def _top_k_reference(labels, p, k):
    """In the top k when fewer than k classes score strictly higher than the true one."""
    true_score = p[np.arange(len(labels)), labels]
    return ((p > true_score[:, None]).sum(axis=1) < k).astype(np.float32)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_sparse_top_k_matches_reference_with_ties(k):
    rng = _rng(k)
    labels, p = rng.integers(0, 6, 50), rng.integers(0, 4, (50, 6)).astype(float)  # many ties
    np.testing.assert_array_equal(metrics.sparse_top_k_categorical_accuracy(labels, p, k=k),
                                  _top_k_reference(labels, p, k))


def test_top_k_default_is_five():
    rng = _rng(4)
    labels, p = rng.integers(0, 10, 30), rng.random((30, 10))
    np.testing.assert_array_equal(metrics.top_k_categorical_accuracy(np.eye(10)[labels], p),
                                  _top_k_reference(labels, p, 5))


def test_top_k_with_k_at_least_the_class_count_is_always_right():
    y = metrics.sparse_top_k_categorical_accuracy(np.array([0, 1]), _rng().random((2, 3)), k=3)
    np.testing.assert_array_equal(y, [1.0, 1.0])


def test_top_k_rejects_non_positive_k():
    assert_error(ValueError, metrics.sparse_top_k_categorical_accuracy, np.array([0]),
                 np.ones((1, 3)), k=0, contains=["k must be a positive integer", "0"])


def test_accuracy_picks_binary_for_one_output():
    t, p = np.array([[1], [0]]), np.array([[0.8], [0.7]])
    np.testing.assert_array_equal(metrics.accuracy(t, p), metrics.binary_accuracy(t, p))


def test_accuracy_picks_binary_for_1d_outputs():
    np.testing.assert_array_equal(metrics.accuracy(np.array([1, 0, 0]), np.array([0.8, 0.7, 0.1])),
                                  [1.0, 0.0, 1.0])


def test_accuracy_picks_sparse_for_integer_labels():
    p = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]])
    np.testing.assert_array_equal(metrics.accuracy(np.array([1, 2]), p), [1.0, 0.0])
    np.testing.assert_array_equal(metrics.accuracy(np.array([[1], [2]]), p), [1.0, 0.0])


def test_accuracy_picks_categorical_for_one_hot_labels():
    p = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]])
    np.testing.assert_array_equal(metrics.accuracy(np.eye(3)[[1, 2]], p), [1.0, 0.0])


def test_mae_and_mse_per_sample():
    t, p = np.array([[0.0, 1.0], [2.0, 2.0]]), np.array([[1.0, 3.0], [2.0, 1.0]])
    np.testing.assert_allclose(metrics.mae(t, p), [1.5, 0.5])
    np.testing.assert_allclose(metrics.mse(t, p), [2.5, 0.5])


def test_mae_of_unsigned_labels_does_not_wrap_around():
    np.testing.assert_allclose(metrics.mae(np.array([[0]], np.uint8), np.array([[2]], np.uint8)),
                               [2.0])


def test_metrics_take_tensors_and_return_numpy():
    y = metrics.accuracy(fl.tensor([0, 1]), fl.tensor([[0.9, 0.1], [0.8, 0.2]], requires_grad=True))
    assert type(y) is np.ndarray
    np.testing.assert_array_equal(y, [1.0, 0.0])


def test_shape_mismatch_raises_naming_both():
    assert_error(ValueError, metrics.mse, np.zeros((4, 2)), np.zeros((4, 3)),
                 contains=["mean_squared_error", "(4, 2)", "(4, 3)"])


def test_categorical_accuracy_with_integer_labels_suggests_sparse():
    assert_error(ValueError, metrics.categorical_accuracy, np.array([0, 1]), np.ones((2, 3)),
                 contains=["(2,)", "(2, 3)", "sparse_categorical_accuracy"])


def test_sparse_accuracy_rejects_fractional_labels():
    assert_error(ValueError, metrics.sparse_categorical_accuracy, np.array([0.5, 1.0]),
                 np.ones((2, 3)), contains=["sparse_categorical_accuracy", "integer"])


def test_sparse_accuracy_rejects_out_of_range_labels():
    assert_error(ValueError, metrics.sparse_categorical_accuracy, np.array([0, 3]),
                 np.ones((2, 3)), contains=["[0, 3)", "[0, 3]"])


# -- get ----------------------------------------------------------------------------------

@pytest.mark.parametrize("identifier, name, fn", [
    ("accuracy", "accuracy", metrics.accuracy), ("acc", "accuracy", metrics.accuracy),
    ("mae", "mae", metrics.mae), ("mean_squared_error", "mean_squared_error", metrics.mse),
    ("top_k_categorical_accuracy", "top_k_categorical_accuracy",
     metrics.top_k_categorical_accuracy),
    ("sparse_categorical_accuracy", "sparse_categorical_accuracy",
     metrics.sparse_categorical_accuracy)])
def test_get_names(identifier, name, fn):
    assert metrics.get(identifier) == (name, fn)


def test_get_callable_uses_its_name():
    def hit_rate(t, p):
        return (t == p).astype(float)

    assert metrics.get(hit_rate) == ("hit_rate", hit_rate)


def test_get_unknown_name_lists_valid_names():
    assert_error(ValueError, metrics.get, "precision", contains=["precision", "'accuracy'"])


def test_get_rejects_other_types():
    assert_error(TypeError, metrics.get, 3, contains=["metrics.get", "int"])


# -- Mean ---------------------------------------------------------------------------------

def test_mean_of_batch_means_weighted_by_batch_size_is_exact():
    values = _rng(5).random(10)
    m = metrics.Mean()
    for batch in (values[:4], values[4:8], values[8:]):  # sizes 4, 4, 2
        m.update(batch.mean(), sample_weight=len(batch))
    assert m.result() == pytest.approx(values.mean(), rel=1e-12)


def test_mean_of_per_sample_values():
    m = metrics.Mean()
    m.update(np.array([1.0, 2.0]))
    m.update(fl.tensor([6.0]))
    assert m.result() == pytest.approx(3.0)


def test_mean_per_sample_weights_broadcast_over_trailing_axes():
    m = metrics.Mean()
    m.update(np.array([[1.0, 3.0], [10.0, 10.0]]), sample_weight=np.array([1.0, 0.0]))
    assert m.result() == pytest.approx(2.0)


def test_mean_reset_and_empty_result():
    m = metrics.Mean()
    assert m.result() == 0.0
    m.update(5.0)
    m.reset()
    m.update(1.0)
    assert m.result() == 1.0


def test_mean_rejects_mismatched_weights():
    assert_error(ValueError, metrics.Mean().update, np.ones(4), sample_weight=np.ones(3),
                 contains=["Mean.update", "(3,)", "(4,)"])
