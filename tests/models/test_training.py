"""compile / fit / evaluate / predict / train_on_batch / test_on_batch."""
import warnings

import numpy as np
import pytest

import fundl as fl
from fundl import losses
from fundl.callbacks import Callback, EarlyStopping, ModelCheckpoint
from fundl.datasets import synthetic
from fundl.layers import Concatenate, Dense, Dropout, Input, Layer
from fundl.models import Model, Sequential, load_model
from fundl.optimizers import SGD
from fundl.regularizers import L2
from fundl.testing import assert_error


def _data(n=30, d=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype("float32")
    labels = rng.integers(0, classes, n)
    return x, np.eye(classes, dtype="float32")[labels], labels


def _classifier(d=4, classes=3, seed=0, **compile_kwargs):
    fl.manual_seed(seed)
    model = Sequential([Dense(8, activation="relu", input_dim=d),
                        Dense(classes, activation="softmax")])
    settings = {"loss": "categorical_crossentropy", "optimizer": SGD(0.1),
                "metrics": ["accuracy"]}
    settings.update(compile_kwargs)
    model.compile(**settings)
    return model


def _frozen_sgd_model(**compile_kwargs):
    """A classifier with learning rate 0: fit's logged loss is then the loss of fixed weights."""
    return _classifier(optimizer=SGD(0.0), **compile_kwargs)


def _per_sample_cce(model, x, y):
    p = model.predict(x)
    return -(y * np.log(np.clip(p, 1e-7, 1 - 1e-7))).sum(axis=1)


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.batches, self.epochs = 0, []

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


class FirstRow(Layer):
    """Records the first feature of every batch it sees in training (to observe batching)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = []
        self.grad_enabled = []

    def call(self, x, training=False):
        if training:
            self.seen.append(x.numpy()[:, 0].copy())
        self.grad_enabled.append(fl.is_grad_enabled())
        return x

    def compute_output_shape(self, input_shape):
        return input_shape


# -- fit inputs ------------------------------------------------------------------------------

def test_fit_with_numpy_arrays_returns_history_with_loss_and_metrics():
    x, y, _ = _data()
    model = _classifier()
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}
    assert len(history.history["loss"]) == 3 and history.epoch == [0, 1, 2]
    assert model.history is history


def test_fit_with_python_lists():
    model = _classifier(d=2, classes=2)
    x = [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]
    y = [[0, 1], [1, 0], [1, 0], [0, 1]]
    history = model.fit(x, y, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


def test_fit_with_a_list_and_a_dict_of_inputs_gives_the_same_result():
    def build():
        fl.manual_seed(0)
        a, b = Input(shape=(2,), name="a"), Input(shape=(3,), name="b")
        out = Dense(1)(Concatenate()([a, b]))
        model = Model([a, b], out)
        model.compile(loss="mse", optimizer=SGD(0.1))
        return model

    rng = np.random.default_rng(0)
    xa, xb = rng.standard_normal((10, 2)), rng.standard_normal((10, 3))
    y = rng.standard_normal((10, 1))
    m1, m2 = build(), build()
    h1 = m1.fit([xa, xb], y, epochs=2, shuffle=False, verbose=0)
    h2 = m2.fit({"b": xb, "a": xa}, y, epochs=2, shuffle=False, verbose=0)
    assert h1.history["loss"] == h2.history["loss"]


def test_fit_dict_with_unknown_input_names_it():
    a = Input(shape=(2,), name="a")
    model = Model(a, Dense(1)(a))
    model.compile(loss="mse", optimizer="sgd")
    assert_error(ValueError, model.fit, {"a": np.ones((2, 2)), "z": np.ones((2, 2))},
                 np.ones((2, 1)), contains=["'z'", "['a']"])


def test_multi_input_model_given_one_array_explains():
    a, b = Input(shape=(2,)), Input(shape=(2,))
    model = Model([a, b], Dense(1)(Concatenate()([a, b])))
    model.compile(loss="mse", optimizer="sgd")
    assert_error(ValueError, model.fit, np.ones((3, 2)), np.ones((3, 1)),
                 contains=["2 inputs", "list or a dict"])


# -- validation -------------------------------------------------------------------------------

def test_validation_data_adds_val_metrics():
    x, y, _ = _data()
    history = _classifier().fit(x, y, epochs=2, validation_data=(x[:10], y[:10]), verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["val_loss"]) == 2


def test_validation_split_holds_out_the_last_samples():
    x, y, _ = _data(n=40)
    model = _classifier()
    rec = Recorder()
    history = model.fit(x, y, epochs=1, batch_size=10, validation_split=0.25, callbacks=[rec],
                        verbose=0)
    assert rec.batches == 3  # 30 training samples in batches of 10
    np.testing.assert_allclose(history.history["val_loss"][0],
                               model.evaluate(x[30:], y[30:], verbose=0)[0], rtol=1e-5)


@pytest.mark.parametrize("split", [1.0, -0.1, 0.999])
def test_invalid_validation_split_is_rejected(split):
    x, y, _ = _data(n=10)
    assert_error(ValueError, _classifier().fit, x, y, validation_split=split, verbose=0,
                 contains=["validation_split"])


def test_validation_data_of_wrong_shape_is_rejected_before_training():
    x, y, _ = _data()
    model = _classifier()
    before = model.get_weights()
    assert_error(ValueError, model.fit, x, y, validation_data=(x[:5], y[:4]), verbose=0,
                 contains=["5", "4"])
    np.testing.assert_array_equal(before[0], model.get_weights()[0])


# -- batching, shuffling, epochs ---------------------------------------------------------------

def _recording_model():
    rec = FirstRow()
    model = Sequential([rec, Dense(1)])
    model.compile(loss="mse", optimizer=SGD(0.0))
    return model, rec


def test_shuffle_false_feeds_batches_in_order():
    model, rec = _recording_model()
    x = np.arange(10, dtype="float32").reshape(10, 1)
    model.fit(x, np.zeros((10, 1)), batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert [b.tolist() for b in rec.seen] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_shuffle_true_reshuffles_every_epoch_and_covers_all_samples():
    fl.manual_seed(0)
    model, rec = _recording_model()
    x = np.arange(10, dtype="float32").reshape(10, 1)
    model.fit(x, np.zeros((10, 1)), batch_size=4, epochs=2, shuffle=True, verbose=0)
    first, second = np.concatenate(rec.seen[:3]), np.concatenate(rec.seen[3:])
    assert sorted(first.tolist()) == list(range(10)) == sorted(second.tolist())
    assert first.tolist() != list(range(10)) and first.tolist() != second.tolist()


def test_initial_epoch_resumes_the_epoch_count():
    x, y, _ = _data(n=10)
    rec = Recorder()
    history = _classifier().fit(x, y, epochs=3, initial_epoch=1, callbacks=[rec], verbose=0)
    assert rec.epochs == [1, 2] and history.epoch == [1, 2]
    assert len(history.history["loss"]) == 2


def test_short_last_batch_is_weighted_by_its_size():
    x, y, _ = _data(n=10)
    model = _frozen_sgd_model()
    history = model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"][0], _per_sample_cce(model, x, y).mean(),
                               rtol=1e-5)


# -- verbosity ----------------------------------------------------------------------------------

def test_verbose_0_prints_nothing(capsys):
    x, y, _ = _data(n=10)
    _classifier().fit(x, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


def test_verbose_1_shows_a_progress_bar_with_the_loss(capsys):
    x, y, _ = _data(n=10)
    _classifier().fit(x, y, epochs=2, batch_size=5, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "2/2" in out and "loss:" in out and "accuracy:" in out


def test_verbose_2_prints_one_line_per_epoch(capsys):
    x, y, _ = _data(n=10)
    _classifier().fit(x, y, epochs=2, batch_size=5, verbose=2)
    lines = [line for line in capsys.readouterr().out.splitlines() if "loss:" in line]
    assert len(lines) == 2


# -- weights: sample_weight and class_weight ----------------------------------------------------

def test_sample_weight_weights_each_sample_loss():
    x, y, _ = _data(n=12)
    model = _frozen_sgd_model()
    sw = np.linspace(0, 2, 12).astype("float32")
    history = model.fit(x, y, sample_weight=sw, batch_size=12, epochs=1, verbose=0)
    expected = (_per_sample_cce(model, x, y) * sw).mean()
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-5)


def test_class_weight_weights_each_class():
    x, y, labels = _data(n=12)
    model = _frozen_sgd_model()
    class_weight = {0: 1.0, 1: 0.0, 2: 3.0}
    history = model.fit(x, y, class_weight=class_weight, batch_size=12, epochs=1, verbose=0)
    w = np.array([class_weight[c] for c in labels])
    np.testing.assert_allclose(history.history["loss"][0],
                               (_per_sample_cce(model, x, y) * w).mean(), rtol=1e-5)


def test_class_weight_with_integer_labels():
    x, _, labels = _data(n=12)
    model = _frozen_sgd_model(loss="sparse_categorical_crossentropy")
    history = model.fit(x, labels, class_weight={0: 2.0}, batch_size=12, epochs=1, verbose=0)
    w = np.where(labels == 0, 2.0, 1.0)
    y = np.eye(3)[labels]
    np.testing.assert_allclose(history.history["loss"][0],
                               (_per_sample_cce(model, x, y) * w).mean(), rtol=1e-5)


def test_sample_weight_and_class_weight_multiply():
    x, y, labels = _data(n=12)
    model = _frozen_sgd_model()
    sw = np.full(12, 0.5, dtype="float32")
    history = model.fit(x, y, sample_weight=sw, class_weight={2: 4.0}, batch_size=12, epochs=1,
                        verbose=0)
    w = 0.5 * np.where(labels == 2, 4.0, 1.0)
    np.testing.assert_allclose(history.history["loss"][0],
                               (_per_sample_cce(model, x, y) * w).mean(), rtol=1e-5)


def test_sample_weight_of_wrong_length_is_rejected():
    x, y, _ = _data(n=12)
    assert_error(ValueError, _classifier().fit, x, y, sample_weight=np.ones(5), verbose=0,
                 contains=["sample_weight", "(12,)", "(5,)"])


def test_loss_object_receives_sample_weights():
    x, y, _ = _data(n=12)
    model = _frozen_sgd_model(loss=losses.CategoricalCrossentropy())
    sw = np.linspace(0, 1, 12).astype("float32")
    history = model.fit(x, y, sample_weight=sw, batch_size=12, epochs=1, verbose=0)
    np.testing.assert_allclose(history.history["loss"][0],
                               (_per_sample_cce(model, x, y) * sw).mean(), rtol=1e-5)


# -- calling, train_on_batch, test_on_batch --------------------------------------------------------

def test_model_called_in_training_mode_returns_a_tensor():
    model = _classifier()
    out = model(fl.tensor(_data(n=5)[0]), training=True)
    assert isinstance(out, fl.Tensor) and out.shape == (5, 3) and out.requires_grad


def test_model_called_on_nested_lists_treats_them_as_one_input():
    model = _classifier(d=2)
    out = model([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]])
    assert out.shape == (3, 3)


def test_train_on_batch_returns_loss_and_metrics_and_updates_weights():
    x, y, _ = _data(n=8)
    model = _classifier()
    before = model.get_weights()[0]
    result = model.train_on_batch(x, y)
    assert isinstance(result, list) and len(result) == 2
    assert all(isinstance(v, float) for v in result)
    assert not np.array_equal(before, model.get_weights()[0])


def test_train_on_batch_without_metrics_returns_a_float():
    x, y, _ = _data(n=8)
    assert isinstance(_classifier(metrics=None).train_on_batch(x, y), float)


def test_train_on_batch_return_dict():
    x, y, _ = _data(n=8)
    assert set(_classifier().train_on_batch(x, y, return_dict=True)) == {"loss", "accuracy"}


def test_test_on_batch_does_not_change_weights_and_matches_evaluate():
    x, y, _ = _data(n=8)
    model = _classifier()
    before = model.get_weights()
    loss, acc = model.test_on_batch(x, y)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose([loss, acc], model.evaluate(x, y, batch_size=8, verbose=0),
                               rtol=1e-6)


def test_train_on_batch_loss_matches_torch_sgd_step():
    torch = pytest.importorskip("torch")
    x, y, labels = _data(n=8)
    fl.manual_seed(0)
    model = Sequential([Dense(3, activation="softmax", input_dim=4)])
    model.compile(loss="categorical_crossentropy", optimizer=SGD(0.5))
    kernel, bias = model.get_weights()
    linear = torch.nn.Linear(4, 3)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(kernel.T))
        linear.bias.copy_(torch.tensor(bias))
    loss = torch.nn.functional.cross_entropy(linear(torch.tensor(x)), torch.tensor(labels))
    loss.backward()
    ours = model.train_on_batch(x, y)
    np.testing.assert_allclose(ours, loss.item(), rtol=1e-5)
    with torch.no_grad():
        for p in linear.parameters():
            p -= 0.5 * p.grad
    np.testing.assert_allclose(model.get_weights()[0], linear.weight.detach().numpy().T,
                               atol=1e-6)
    np.testing.assert_allclose(model.get_weights()[1], linear.bias.detach().numpy(), atol=1e-6)


# -- evaluate / predict ----------------------------------------------------------------------------

def test_evaluate_returns_a_float_without_metrics():
    x, y, _ = _data()
    result = _classifier(metrics=None).evaluate(x, y, verbose=0)
    assert isinstance(result, float)


def test_evaluate_returns_loss_and_accuracy_over_all_batches():
    x, y, _ = _data(n=25)
    model = _classifier()
    loss, acc = model.evaluate(x, y, batch_size=7, verbose=0)
    p = model.predict(x)
    np.testing.assert_allclose(loss, _per_sample_cce(model, x, y).mean(), rtol=1e-5)
    np.testing.assert_allclose(acc, (p.argmax(1) == y.argmax(1)).mean(), rtol=1e-6)


def test_evaluate_return_dict():
    x, y, _ = _data()
    assert set(_classifier().evaluate(x, y, verbose=0, return_dict=True)) == {"loss", "accuracy"}


def test_predict_returns_numpy_independent_of_batch_size():
    x, _, _ = _data(n=10)
    model = _classifier()
    a = model.predict(x, batch_size=3)
    b = model.predict(x, batch_size=100)
    assert isinstance(a, np.ndarray) and a.shape == (10, 3)
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_predict_runs_without_recording_a_graph():
    model, rec = _recording_model()
    model.predict(np.ones((5, 1), "float32"), batch_size=2)
    assert rec.grad_enabled == [False, False, False]


def test_predict_does_not_need_compile():
    model = Sequential([Dense(2, input_dim=3)])
    assert model.predict(np.ones((4, 3))).shape == (4, 2)


def test_predict_with_wrong_feature_size_names_both_shapes():
    assert_error(ValueError, _classifier().predict, np.ones((2, 5)),
                 contains=["(None, 4)", "(2, 5)"])


def test_dropout_is_active_in_fit_and_off_in_predict():
    fl.manual_seed(0)
    model = Sequential([Dropout(0.5, input_shape=(100,))])
    x = np.ones((4, 100), "float32")
    np.testing.assert_array_equal(model.predict(x), x)
    assert (model(x, training=True).numpy() == 0).any()


# -- up-front checks ------------------------------------------------------------------------------

def test_fit_before_compile_explains():
    model = Sequential([Dense(1, input_dim=2)])
    assert_error(RuntimeError, model.fit, np.ones((2, 2)), np.ones((2, 1)), contains=["compile"])


def test_compile_without_loss_then_fit_explains():
    # Keras 3 allows compile() without a loss (add_loss / a custom train_step supply one);
    # fit of a model that has none says so.
    x, y, _ = _data(n=10)
    model = Sequential([Dense(3, input_dim=4)])
    model.compile(optimizer="sgd")
    assert_error(RuntimeError, model.fit, x, y, verbose=0,
                 contains=["no loss", "compile()", "add_loss", "train_step"])


def test_mismatched_x_and_y_lengths_fail_before_training():
    x, y, _ = _data(n=10)
    model = _classifier()
    before = model.get_weights()[0]
    assert_error(ValueError, model.fit, x, y[:9], verbose=0,
                 contains=["10 samples", "9", "match"])
    np.testing.assert_array_equal(before, model.get_weights()[0])


def test_categorical_crossentropy_with_integer_labels_names_the_fix():
    x, _, labels = _data(n=10)
    model = _classifier()
    before = model.get_weights()[0]
    assert_error(ValueError, model.fit, x, labels, verbose=0,
                 contains=["categorical_crossentropy", "one-hot", "(n, 3)", "(10,)",
                           "sparse_categorical_crossentropy"])
    np.testing.assert_array_equal(before, model.get_weights()[0])


def test_sparse_loss_with_one_hot_targets_names_the_fix():
    x, y, _ = _data(n=10)
    model = _classifier(loss="sparse_categorical_crossentropy")
    assert_error(ValueError, model.fit, x, y, verbose=0,
                 contains=["sparse_categorical_crossentropy", "(10, 3)",
                           "loss='categorical_crossentropy'"])


def test_targets_of_wrong_width_are_rejected():
    x, _, _ = _data(n=10)
    model = _classifier(loss="mse")
    assert_error(ValueError, model.fit, x, np.ones((10, 2)), verbose=0,
                 contains=["(10, 2)", "(None, 3)", "mse"])


def test_sequence_outputs_take_sparse_labels_per_step():
    model = Sequential([Dense(5, activation="softmax", input_shape=(7, 3))])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    labels = np.random.default_rng(0).integers(0, 5, (4, 7))
    assert isinstance(model.train_on_batch(np.ones((4, 7, 3), "float32"), labels), float)
    assert_error(ValueError, model.fit, np.ones((4, 7, 3), "float32"), np.ones((4, 7, 5)),
                 verbose=0, contains=["(None, 7)", "(4, 7, 5)"])


def test_a_custom_loss_may_take_targets_of_another_shape():
    def mean_of_target_scalar(y_true, y_pred):
        return ((y_pred - y_true) ** 2).mean(axis=-1)  # y_true (n, 1) broadcast over 3 units

    model = Sequential([Dense(3, input_dim=4)])
    model.compile(loss=mean_of_target_scalar, optimizer="sgd")
    assert isinstance(model.train_on_batch(np.ones((2, 4)), np.ones((2, 1))), float)


def test_vector_targets_for_a_single_unit_output_are_accepted():
    x, _, labels = _data(n=10)
    model = Sequential([Dense(1, activation="sigmoid", input_dim=4)])
    model.compile(loss="binary_crossentropy", optimizer="sgd", metrics=["accuracy"])
    history = model.fit(x, (labels > 0).astype("float32"), epochs=1, verbose=0)
    assert "accuracy" in history.history


def test_input_of_wrong_feature_size_fails_before_training():
    model = _classifier()
    assert_error(ValueError, model.fit, np.ones((6, 5)), np.ones((6, 3)), verbose=0,
                 contains=["(None, 4)", "(6, 5)"])


def test_bad_batch_size_is_rejected():
    x, y, _ = _data(n=10)
    assert_error(ValueError, _classifier().fit, x, y, batch_size=-1, verbose=0,
                 contains=["batch_size"])


# -- regularization --------------------------------------------------------------------------------

def test_kernel_regularizer_adds_its_penalty_to_the_loss():
    x, y, _ = _data(n=12)
    fl.manual_seed(0)
    model = Sequential([Dense(3, activation="softmax", input_dim=4, kernel_regularizer=L2(0.1))])
    model.compile(loss="categorical_crossentropy", optimizer=SGD(0.0))
    assert len(model.losses) == 1
    history = model.fit(x, y, batch_size=12, epochs=1, verbose=0)
    penalty = 0.1 * (model.layers[0].kernel.numpy() ** 2).sum()
    data_loss = _per_sample_cce(model, x, y).mean()
    np.testing.assert_allclose(history.history["loss"][0], data_loss + penalty, rtol=1e-5)
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), data_loss + penalty, rtol=1e-5)


def test_regularizer_shrinks_weights_during_training():
    x, y, _ = _data(n=12)

    def kernel_norm(reg):
        fl.manual_seed(0)
        model = Sequential([Dense(3, activation="softmax", input_dim=4, kernel_regularizer=reg)])
        model.compile(loss="categorical_crossentropy", optimizer=SGD(0.1))
        model.fit(x, y, epochs=20, verbose=0)
        return np.abs(model.layers[0].kernel.numpy()).sum()

    assert kernel_norm(L2(0.5)) < 0.8 * kernel_norm(None)


def test_activity_regularizer_adds_to_the_loss():
    x = np.ones((4, 2), "float32")
    model = Sequential([Dense(1, input_dim=2, kernel_initializer="ones",
                              activity_regularizer=L2(0.5))])
    model.compile(loss="mse", optimizer=SGD(0.0))
    loss = model.test_on_batch(x, np.full((4, 1), 2.0, "float32"))
    # outputs are 2 everywhere: the data loss is 0, the penalty 0.5 * sum(2**2) / batch = 2
    np.testing.assert_allclose(loss, 2.0, rtol=1e-6)


# -- freezing --------------------------------------------------------------------------------------

def test_frozen_layer_is_unchanged_by_fit_while_others_train():
    x, y, _ = _data()
    fl.manual_seed(0)
    model = Sequential([Dense(8, activation="relu", input_dim=4, name="base"),
                        Dense(3, activation="softmax", name="head")])
    model.get_layer("base").trainable = False
    model.compile(loss="categorical_crossentropy", optimizer=SGD(0.1))
    base_before = model.get_layer("base").get_weights()
    head_before = model.get_layer("head").get_weights()
    model.fit(x, y, epochs=2, verbose=0)
    for a, b in zip(base_before, model.get_layer("base").get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(head_before[0], model.get_layer("head").get_weights()[0])
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == 2


def test_trainable_changes_take_effect_at_compile_as_in_keras():
    x, y, _ = _data()
    model = _classifier()
    model.layers[0].trainable = False  # after compile: warned about, applied at recompile
    before = model.layers[0].get_weights()[0]
    with pytest.warns(UserWarning, match="compile"):
        model.fit(x, y, epochs=1, verbose=0)
    assert not np.array_equal(before, model.layers[0].get_weights()[0])
    model.compile(loss="categorical_crossentropy", optimizer=SGD(0.1))
    frozen = model.layers[0].get_weights()[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(frozen, model.layers[0].get_weights()[0])


def test_gan_pattern_discriminator_frozen_only_inside_the_combined_model():
    fl.manual_seed(0)
    generator = Sequential([Dense(4, input_dim=2)], name="generator")
    discriminator = Sequential([Dense(1, activation="sigmoid", input_dim=4)], name="discriminator")
    discriminator.compile(loss="binary_crossentropy", optimizer=SGD(0.1))
    discriminator.trainable = False
    gan = Sequential([generator, discriminator])
    gan.compile(loss="binary_crossentropy", optimizer=SGD(0.1))
    z = np.random.default_rng(0).standard_normal((8, 2)).astype("float32")
    ones = np.ones((8, 1), "float32")
    d_before, g_before = discriminator.get_weights()[0], generator.get_weights()[0]
    gan.train_on_batch(z, ones)
    np.testing.assert_array_equal(d_before, discriminator.get_weights()[0])
    assert not np.array_equal(g_before, generator.get_weights()[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the Keras "trainable changed since compile" warning
        discriminator.train_on_batch(np.ones((8, 4), "float32"), ones)
    assert not np.array_equal(d_before, discriminator.get_weights()[0])
    assert not discriminator.layers[0].kernel.requires_grad  # still frozen afterwards


def test_model_frozen_at_compile_has_nothing_to_train():
    model = Sequential([Dense(1, input_dim=2, trainable=False)])
    model.compile(loss="mse", optimizer="sgd")
    assert_error(RuntimeError, model.fit, np.ones((2, 2)), np.ones((2, 1)), verbose=0,
                 contains=["no trainable weights"])


# -- callbacks -------------------------------------------------------------------------------------

def test_early_stopping_ends_fit():
    x, y, _ = _data()
    stop = EarlyStopping(monitor="loss", min_delta=10.0, patience=1)
    history = _classifier().fit(x, y, epochs=20, callbacks=[stop], verbose=0)
    assert len(history.history["loss"]) == 2


def test_model_checkpoint_writes_loadable_fundl_files(tmp_path):
    x, y, _ = _data()
    model = _classifier()
    ckpt = ModelCheckpoint(str(tmp_path / "ckpt-{epoch:02d}.fundl"), monitor="loss")
    model.fit(x, y, epochs=2, callbacks=[ckpt], verbose=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-01.fundl", "ckpt-02.fundl"]
    loaded = load_model(tmp_path / "ckpt-02.fundl")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_callbacks_see_batch_and_epoch_logs():
    x, y, _ = _data(n=20)
    seen = {}

    class Spy(Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen["batch"] = dict(logs)

        def on_epoch_end(self, epoch, logs=None):
            seen["epoch"] = dict(logs)

    _classifier().fit(x, y, epochs=1, batch_size=5, validation_data=(x, y), callbacks=[Spy()],
                      verbose=0)
    assert set(seen["batch"]) == {"loss", "accuracy"}
    assert set(seen["epoch"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}


# -- multi-output training -------------------------------------------------------------------------

def _two_outputs():
    fl.manual_seed(0)
    x = Input(shape=(4,))
    h = Dense(6, activation="relu")(x)
    return Model(x, [Dense(3, activation="softmax", name="cls")(h), Dense(1, name="reg")(h)])


def _two_output_targets(n=16):
    x, y, _ = _data(n=n)
    return x, [y, x[:, :1] * 2]


def test_multi_output_history_names_follow_keras():
    x, ys = _two_output_targets()
    model = _two_outputs()
    model.compile(optimizer="adam", loss=["categorical_crossentropy", "mse"],
                  metrics={"cls": ["accuracy"]})
    history = model.fit(x, ys, epochs=1, validation_data=(x, ys), verbose=0)
    assert set(history.history) == {"loss", "cls_loss", "reg_loss", "cls_accuracy", "val_loss",
                                    "val_cls_loss", "val_reg_loss", "val_cls_accuracy"}


def test_multi_output_losses_as_dict_with_loss_weights():
    x, ys = _two_output_targets()
    model = _two_outputs()
    model.compile(optimizer=SGD(0.0), loss={"cls": "categorical_crossentropy", "reg": "mse"},
                  loss_weights={"cls": 1.0, "reg": 0.5})
    history = model.fit(x, {"cls": ys[0], "reg": ys[1]}, batch_size=16, epochs=1, verbose=0)
    h = {k: v[0] for k, v in history.history.items()}
    np.testing.assert_allclose(h["loss"], h["cls_loss"] + 0.5 * h["reg_loss"], rtol=1e-5)


def test_multi_output_loss_list_of_wrong_length_is_rejected():
    model = _two_outputs()
    model.compile(optimizer="sgd", loss=["mse"])
    x, ys = _two_output_targets()
    assert_error(ValueError, model.fit, x, ys, verbose=0, contains=["1 losses", "2 output"])


def test_multi_output_loss_dict_with_unknown_output_is_rejected():
    model = _two_outputs()
    model.compile(optimizer="sgd", loss={"cls": "mse", "oops": "mse"})
    x, ys = _two_output_targets()
    assert_error(ValueError, model.fit, x, ys, verbose=0, contains=["oops", "cls", "reg"])


def test_multi_output_evaluate_lists_total_and_per_output_values():
    x, ys = _two_output_targets()
    model = _two_outputs()
    model.compile(optimizer="sgd", loss=["categorical_crossentropy", "mse"],
                  metrics=[["accuracy"], []])
    result = model.evaluate(x, ys, verbose=0, return_dict=True)
    assert list(result) == ["loss", "cls_loss", "reg_loss", "cls_accuracy"]


# -- learning and agreement with PyTorch -----------------------------------------------------------

def test_xor_is_learned():
    fl.manual_seed(0)
    x, y = synthetic.xor(400, noise=0.0, seed=0, margin=0.1)
    model = Sequential([Dense(16, activation="tanh", input_dim=2),
                        Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer=fl.optimizers.Adam(0.03),
                  metrics=["accuracy"])
    model.fit(x, y.astype("float32"), epochs=40, batch_size=32, verbose=0)
    assert model.evaluate(x, y.astype("float32"), verbose=0)[1] > 0.97


def test_separable_gaussians_are_learned_with_sparse_labels():
    fl.manual_seed(0)
    x, y = synthetic.gaussians(300, noise=0.2, seed=0, centers=3)
    model = Sequential([Dense(3, activation="softmax", input_dim=2)])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=fl.optimizers.Adam(0.1),
                  metrics=["accuracy"])
    model.fit(x, y, epochs=20, batch_size=32, verbose=0)
    assert model.evaluate(x, y, verbose=0)[1] > 0.95


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "sparse_categorical_crossentropy",
                                  "binary_crossentropy", "mse"])
def test_model_loss_matches_torch_on_a_fixed_batch(loss):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 4)).astype("float32")
    labels = rng.integers(0, 3, 8)
    fl.manual_seed(0)
    units, activation = {"binary_crossentropy": (1, "sigmoid"), "mse": (2, None)}.get(
        loss, (3, "softmax"))
    model = Sequential([Dense(units, activation=activation, input_dim=4)])
    model.compile(loss=loss, optimizer="sgd")
    kernel, bias = model.get_weights()
    z = torch.tensor(x) @ torch.tensor(kernel) + torch.tensor(bias)
    if loss == "categorical_crossentropy":
        y = np.eye(3, dtype="float32")[labels]
        expected = F.cross_entropy(z, torch.tensor(labels))
    elif loss == "sparse_categorical_crossentropy":
        y = labels
        expected = F.cross_entropy(z, torch.tensor(labels))
    elif loss == "binary_crossentropy":
        y = (labels[:, None] > 0).astype("float32")
        expected = F.binary_cross_entropy_with_logits(z, torch.tensor(y))
    else:
        y = rng.standard_normal((8, 2)).astype("float32")
        expected = F.mse_loss(z, torch.tensor(y))
    np.testing.assert_allclose(model.test_on_batch(x, y), expected.item(), rtol=1e-5)


def test_fit_with_a_strategy_hands_the_call_over_to_strategy_fit():
    model = _classifier()
    x, y, _ = _data()

    class FakeStrategy:
        def fit(self, model_, x_, y_, **kwargs):
            self.call = (model_, x_, y_, kwargs)
            return "history"

    s = FakeStrategy()
    assert model.fit(x, y, batch_size=8, epochs=2, verbose=0, strategy=s) == "history"
    assert s.call[0] is model and s.call[1] is x and s.call[2] is y
    assert s.call[3]["batch_size"] == 8 and s.call[3]["epochs"] == 2
    # every fit argument reaches the strategy (one it cannot honour must say so, not vanish)
    assert set(s.call[3]) == {"batch_size", "epochs", "verbose", "callbacks", "validation_split",
                              "validation_data", "shuffle", "initial_epoch", "steps_per_epoch",
                              "class_weight", "sample_weight", "validation_batch_size",
                              "validation_freq"}
    assert_error(TypeError, model.fit, x, y, strategy=object(),
                 contains=["strategy", "object"])


def test_multi_output_stateful_metrics_get_one_state_per_output():
    x, ys = _two_output_targets(24)
    model = _two_outputs()
    mae = fl.metrics.MeanAbsoluteError(name="mae")
    model.compile(optimizer=SGD(0.0), loss=["categorical_crossentropy", "mse"],
                  metrics=[mae])
    h = model.fit(x, ys, epochs=1, batch_size=8, verbose=0).history
    assert {"cls_mae", "reg_mae"} <= set(h)
    p_cls, p_reg = model.predict(x)
    assert h["cls_mae"][0] == pytest.approx(np.abs(p_cls - ys[0]).mean(), rel=1e-5)
    assert h["reg_mae"][0] == pytest.approx(np.abs(p_reg - ys[1]).mean(), rel=1e-5)
    assert mae.name == "mae"        # the object given is copied per output, not renamed
    assert model.metrics_names == ["loss", "cls_mae", "reg_mae"]


def test_model_metrics_hold_the_epoch_values_of_the_built_in_path():
    x, y, _ = _data(n=30)
    model = _classifier()
    h = model.fit(x, y, epochs=2, batch_size=8, verbose=0).history
    loss_tracker, acc = model.metrics
    assert (loss_tracker.name, acc.name) == ("loss", "accuracy")
    assert loss_tracker.result() == pytest.approx(h["loss"][-1])
    assert acc.result() == pytest.approx(h["accuracy"][-1])


def test_save_and_load_keep_metric_objects_and_a_compile_without_loss(tmp_path):
    x, y, _ = _data(n=30)
    model = _classifier(metrics=["acc", fl.metrics.AUC(num_thresholds=50), "precision"])
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.fundl")
    again = load_model(tmp_path / "m.fundl")
    assert again.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx(
        model.evaluate(x, y, verbose=0, return_dict=True))
    bare = Sequential([Dense(2, input_dim=4)])
    bare.compile(optimizer="sgd")
    bare.save(tmp_path / "bare.fundl")
    assert load_model(tmp_path / "bare.fundl").compiled
