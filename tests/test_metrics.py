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
    ("accuracy", "accuracy", metrics.accuracy), ("acc", "acc", metrics.accuracy),
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
    assert_error(ValueError, metrics.get, "precison", contains=["precison", "'accuracy'",
                                                                 "'precision'"])


def test_get_rejects_other_types():
    assert_error(TypeError, metrics.get, 3, contains=["metrics.get", "int"])


def test_get_names_of_stateful_metrics_give_new_objects():
    name, m = metrics.get("auc")
    assert name == "auc" and isinstance(m, metrics.AUC)
    assert metrics.get("auc")[1] is not m
    p = metrics.Precision(name="p")
    assert metrics.get(p) == ("p", p)
    assert isinstance(metrics.get(metrics.Recall)[1], metrics.Recall)


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


# -- Metric objects ---------------------------------------------------------------------------

def test_mean_update_state_result_reset_state_and_old_names():
    m = metrics.Mean(name="loss")
    m.update_state(np.array([1.0, 3.0]))
    m.update_state(fl.tensor(5.0), sample_weight=2)
    assert m.result() == pytest.approx((1 + 3 + 10) / 4)
    assert [float(v) for v in m.variables] == [14.0, 4.0]
    m.reset_state()
    assert m.result() == 0.0 and m.name == "loss"


def test_sum_metric():
    s = metrics.Sum()
    s.update_state(np.array([1.0, 2.0]), sample_weight=np.array([1.0, 3.0]))
    s.update_state(4.0)
    assert s.result() == 11.0
    s.reset_state()
    assert s.result() == 0.0


@pytest.mark.parametrize("cls, fn, kwargs, make", [
    (metrics.CategoricalAccuracy, metrics.categorical_accuracy, {}, "onehot"),
    (metrics.SparseCategoricalAccuracy, metrics.sparse_categorical_accuracy, {}, "labels"),
    (metrics.BinaryAccuracy, metrics.binary_accuracy, {}, "binary"),
    (metrics.TopKCategoricalAccuracy, metrics.top_k_categorical_accuracy, {"k": 2}, "onehot"),
    (metrics.SparseTopKCategoricalAccuracy, metrics.sparse_top_k_categorical_accuracy,
     {"k": 2}, "labels"),
    (metrics.MeanAbsoluteError, metrics.mae, {}, "regression"),
    (metrics.MeanSquaredError, metrics.mse, {}, "regression"),
    (metrics.MeanAbsolutePercentageError, metrics.mape, {}, "regression"),
])
def test_wrapper_classes_average_their_function_over_batches(cls, fn, kwargs, make):
    rng = _rng(1)
    n = 23
    if make == "binary":
        y, p = rng.integers(0, 2, (n, 1)), rng.random((n, 1))
    elif make == "regression":
        y, p = rng.standard_normal((n, 3)), rng.standard_normal((n, 3))
    else:
        labels, p = rng.integers(0, 4, n), rng.random((n, 4))
        y = np.eye(4)[labels] if make == "onehot" else labels
    m = cls(**kwargs)
    for a, b in ((0, 10), (10, 20), (20, n)):  # a short last batch counts by its samples
        m.update_state(y[a:b], p[a:b])
    assert m.result() == pytest.approx(fn(y, p, **kwargs).mean(), rel=1e-12)
    m.reset_state()
    assert m.result() == 0.0


def test_mape_matches_its_formula():
    t, p = np.array([[2.0, 4.0], [0.0, 1.0]]), np.array([[1.0, 5.0], [1.0, 1.0]])
    expected = 100 * np.mean(np.abs(t - p) / np.maximum(np.abs(t), 1e-7), axis=-1)
    np.testing.assert_allclose(metrics.mape(t, p), expected)


def test_accuracy_class_is_exact_equality():
    assert metrics.Accuracy()(np.array([1, 2, 3, 4]), np.array([1, 2, 4, 4])) == 0.75


def test_root_mean_squared_error_takes_the_root_last():
    rng = _rng(2)
    y, p = rng.standard_normal((20, 2)), rng.standard_normal((20, 2))
    m = metrics.RootMeanSquaredError()
    m.update_state(y[:7], p[:7])
    m.update_state(y[7:], p[7:])
    assert m.result() == pytest.approx(np.sqrt(np.mean((y - p) ** 2)))
    w = rng.random(20)
    m.reset_state()
    m.update_state(y, p, sample_weight=w)
    assert m.result() == pytest.approx(np.sqrt(np.sum(w[:, None] * (y - p) ** 2) / (2 * w.sum())))


def _binary_data(n=1500, seed=3):
    rng = _rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(rng.random(n) * 0.7 + y * 0.25, 0, 1)
    return y, p


def test_precision_and_recall_match_scikit_learn_over_batches():
    sk = pytest.importorskip("sklearn.metrics")
    y, p = _binary_data()
    for threshold in (0.3, 0.5, 0.8):
        prec = metrics.Precision(thresholds=threshold)
        rec = metrics.Recall(thresholds=threshold)
        for a in range(0, len(y), 400):
            prec.update_state(y[a:a + 400], p[a:a + 400])
            rec.update_state(y[a:a + 400, None], p[a:a + 400, None])
        assert prec.result() == pytest.approx(sk.precision_score(y, p > threshold), abs=1e-12)
        assert rec.result() == pytest.approx(sk.recall_score(y, p > threshold), abs=1e-12)


def test_precision_with_sample_weights_matches_scikit_learn():
    sk = pytest.importorskip("sklearn.metrics")
    y, p = _binary_data(300)
    w = _rng(4).random(300)
    m = metrics.Precision()
    m.update_state(y, p, sample_weight=w)
    assert m.result() == pytest.approx(sk.precision_score(y, p > 0.5, sample_weight=w))


def test_precision_several_thresholds_give_an_array_and_class_id_top_k():
    y, p = _binary_data(200)
    m = metrics.Precision(thresholds=[0.3, 0.5])
    m.update_state(y, p)
    assert m.result().shape == (2,)
    labels = np.array([0, 1, 2, 1])
    scores = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.3, 0.6], [0.55, 0.4, 0.05]])
    r = metrics.Recall(class_id=1)
    r.update_state(np.eye(3)[labels], scores)
    assert r.result() == 0.5     # class 1: one of its two samples is predicted
    pk = metrics.Precision(top_k=1)
    pk.update_state(np.eye(3)[labels], scores)
    assert pk.result() == 0.75   # the top score of each row, right in 3 rows of 4


def test_precision_of_no_positive_prediction_is_zero_not_nan():
    m = metrics.Precision()
    m.update_state(np.array([1, 0]), np.array([0.1, 0.2]))
    assert m.result() == 0.0


def test_auc_is_close_to_scikit_learn_and_exact_at_every_score():
    # Keras's AUC buckets scores into num_thresholds=200 thresholds and integrates the ROC
    # curve through those points (trapezoids): the error is of the order of 1/200 at most and
    # much less for scores spread over [0, 1]. With a threshold at every distinct score the
    # points are the exact ROC curve's, so the area equals roc_auc_score.
    sk = pytest.importorskip("sklearn.metrics")
    y, p = _binary_data()
    exact = sk.roc_auc_score(y, p)
    auc = metrics.AUC()
    for a in range(0, len(y), 500):
        auc.update_state(y[a:a + 500], p[a:a + 500])
    assert auc.result() == pytest.approx(exact, abs=2e-3)
    every = metrics.AUC(thresholds=np.unique(p))
    every.update_state(y, p)
    assert every.result() == pytest.approx(exact, abs=1e-9)
    pr = metrics.AUC(curve="PR")
    pr.update_state(y, p)
    assert pr.result() == pytest.approx(sk.average_precision_score(y, p), abs=1e-2)


def test_auc_from_logits_and_weights():
    sk = pytest.importorskip("sklearn.metrics")
    y, p = _binary_data(400)
    w = _rng(5).random(400)
    logits = np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))
    m = metrics.AUC(from_logits=True, num_thresholds=1000)
    m.update_state(y, logits, sample_weight=w)
    assert m.result() == pytest.approx(sk.roc_auc_score(y, p, sample_weight=w), abs=2e-3)


def test_metric_errors_name_the_class_and_argument():
    assert_error(ValueError, metrics.AUC, curve="roc", contains=["AUC", "curve", "'roc'"])
    assert_error(ValueError, metrics.AUC, num_thresholds=1, contains=["num_thresholds"])
    assert_error(ValueError, metrics.AUC, multi_label=True, contains=["multi_label"])
    assert_error(ValueError, metrics.Precision, thresholds=[], contains=["Precision",
                                                                        "thresholds"])
    assert_error(ValueError, metrics.Recall, top_k=0, contains=["Recall", "top_k"])
    assert_error(ValueError, metrics.Precision().update_state, np.ones(3), np.ones(4),
                 contains=["(3,)", "(4,)"])
    assert_error(ValueError, metrics.Precision(class_id=5).update_state, np.ones((2, 3)),
                 np.ones((2, 3)), contains=["class_id=5", "(2, 3)"])
    assert_error(TypeError, metrics.Mean, name=3, contains=["Mean", "name"])


def test_custom_metric_subclass_and_config_round_trip():
    class Count(metrics.Metric):
        def __init__(self, name="count", dtype=None):
            super().__init__(name=name, dtype=dtype)
            self.n = self.add_variable((), name="n")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.n += len(y_true)

        def result(self):
            return float(self.n)

    c = Count()
    assert c(np.ones(3), np.ones(3)) == 3.0
    c.reset_state()
    assert c.result() == 0.0
    for m in (metrics.AUC(num_thresholds=50, curve="PR"), metrics.Precision(thresholds=0.3),
              metrics.BinaryAccuracy(threshold=0.2), metrics.TopKCategoricalAccuracy(k=3)):
        again = type(m).from_config(m.get_config())
        assert again.get_config() == m.get_config()
