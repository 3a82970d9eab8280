"""Sequence masks in compile/fit/evaluate: padded steps count in neither the loss, its gradient
nor the metrics (Keras 3's masked mean); unmasked models compute exactly what they did before."""
import contextlib

import numpy as np
import pytest

import fundl as fl
from fundl import losses
from fundl.initializers import RandomNormal
from fundl.layers import LSTM, Dense, Dropout, Embedding, Input, LayerNormalization, Masking
from fundl.layers.embedding import attach_mask, get_mask
from fundl.models import Model, Sequential
from fundl.optimizers import SGD

X = np.array([[1, 2, 3, 0, 0], [4, 5, 0, 0, 0]])
MASK = X != 0
Y = np.zeros((2, 5), int)
Y2 = Y.copy()
Y2[0, 4] = 1  # the two targets differ at padded steps only
Y2[1, 3] = 1


def _tagger(seed=0, loss="sparse_categorical_crossentropy", optimizer=None, **compile_kwargs):
    fl.manual_seed(seed)
    # a wide embedding init: predictions far from 0.5, so padded targets would show
    model = Sequential([Embedding(10, 4, mask_zero=True, input_shape=(None,),
                                  embeddings_initializer=RandomNormal(stddev=2.0)),
                        LSTM(3, return_sequences=True), Dense(2, activation="softmax")])
    model.compile(loss=loss, optimizer=optimizer or SGD(0.5), **compile_kwargs)
    return model


def _per_step_ce(model, x, y):
    """Cross-entropy of every step, from the model's predictions (float64)."""
    p = model.predict(x).astype(np.float64)
    return -np.log(np.take_along_axis(p, y[..., None], axis=-1)[..., 0])


# -- the loss -------------------------------------------------------------------------------------
def test_padded_targets_do_not_change_the_loss():
    model = _tagger()
    assert model.evaluate(X, Y, verbose=0) == model.evaluate(X, Y2, verbose=0)


def test_the_loss_is_the_mean_over_real_steps():
    model = _tagger()
    expected = _per_step_ce(model, X, Y)[MASK].mean()
    np.testing.assert_allclose(model.evaluate(X, Y, verbose=0), expected, rtol=1e-6)
    assert not np.isclose(_per_step_ce(model, X, Y).mean(), expected, rtol=0.05)


def test_padded_targets_get_no_gradient():
    model = _tagger()
    start = model.get_weights()
    grads = []
    for y in (Y, Y2):
        model.set_weights(start)
        model.train_on_batch(X, y)  # leaves each weight's gradient of this batch in .grad
        grads.append([w.grad.copy() for w in model.trainable_weights])
    assert len(grads[0]) == 6 and all(g.any() for g in grads[0])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)
    assert not grads[0][0][0].any()  # the padding row of the embedding table learns nothing


def test_sample_weight_combines_with_the_mask():
    # Keras 3: sum(loss * mask * sw) / sum(mask)
    model = _tagger()
    sw = np.array([0.25, 2.0], np.float32)
    ce = _per_step_ce(model, X, Y)
    expected = (ce * MASK * sw[:, None]).sum() / MASK.sum()
    np.testing.assert_allclose(model.evaluate(X, Y, sample_weight=sw, verbose=0), expected,
                               rtol=1e-6)
    assert model.evaluate(X, Y2, sample_weight=sw, verbose=0) == model.evaluate(
        X, Y, sample_weight=sw, verbose=0)


@pytest.mark.parametrize("reduction, expected", [
    ("sum_over_batch_size", lambda ce, w: (ce * w).sum() / MASK.sum()),
    ("sum", lambda ce, w: (ce * w).sum()),
    ("mean_with_sample_weight", lambda ce, w: (ce * w).sum() / w.sum()),
])
@pytest.mark.parametrize("weighted", [False, True])
def test_a_loss_object_is_masked_with_its_own_reduction(reduction, expected, weighted):
    loss = losses.SparseCategoricalCrossentropy(reduction=reduction)
    model = _tagger(loss=loss)
    sw = np.array([0.25, 2.0], np.float32) if weighted else None
    w = MASK * (np.ones(2) if sw is None else sw)[:, None]
    value = model.evaluate(X, Y, sample_weight=sw, verbose=0)
    np.testing.assert_allclose(value, expected(_per_step_ce(model, X, Y), w), rtol=1e-6)
    assert model.evaluate(X, Y2, sample_weight=sw, verbose=0) == value


def test_a_functional_model_masks_its_loss():
    fl.manual_seed(0)
    inputs = Input(shape=(None,), dtype="int64")
    h = LSTM(3, return_sequences=True)(Embedding(10, 4, mask_zero=True)(inputs))
    outputs = Dense(2, activation="softmax")(LayerNormalization()(Dropout(0.1)(h)))
    model = Model(inputs, outputs)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    expected = _per_step_ce(model, X, Y)[MASK].mean()
    np.testing.assert_allclose(model.evaluate(X, Y, verbose=0), expected, rtol=1e-6)
    assert model.evaluate(X, Y2, verbose=0) == model.evaluate(X, Y, verbose=0)


def test_masking_layer_masks_a_regression_loss():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 2)).astype(np.float32)
    x[0, 3:] = 0.0
    x[1, 1:] = 0.0
    real = x.any(-1)
    fl.manual_seed(0)
    model = Sequential([Masking(0.0, input_shape=(None, 2)), LSTM(3, return_sequences=True),
                        Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    y = rng.standard_normal((3, 4, 1)).astype(np.float32)
    y2 = np.where(real[..., None], y, 50.0).astype(np.float32)
    expected = ((model.predict(x) - y)[..., 0] ** 2)[real].mean()
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), expected, rtol=1e-5)
    assert model.evaluate(x, y2, verbose=0) == model.evaluate(x, y, verbose=0)


def test_a_loss_already_reduced_over_time_is_not_masked_again():
    def sequence_ce(y_true, y_pred):  # (batch,): cannot be masked per step
        return losses.sparse_categorical_crossentropy(y_true, y_pred).mean(axis=-1)

    model = _tagger(loss=sequence_ce)
    np.testing.assert_allclose(model.evaluate(X, Y, verbose=0),
                               _per_step_ce(model, X, Y).mean(), rtol=1e-6)


def test_a_fully_padded_batch_has_zero_loss():
    model = _tagger()
    x = np.zeros((2, 3), int)
    assert model.evaluate(x, np.zeros((2, 3), int), verbose=0) == 0.0


# -- metrics --------------------------------------------------------------------------------------
def test_metrics_count_real_steps_only():
    model = _tagger(metrics=["accuracy"])
    p = model.predict(X)
    hits = p.argmax(-1) == Y
    _, acc = model.evaluate(X, Y, verbose=0)
    np.testing.assert_allclose(acc, hits[MASK].mean(), rtol=1e-6)
    _, acc2 = model.evaluate(X, Y2, verbose=0)
    assert acc2 == acc


# -- training -------------------------------------------------------------------------------------
def _tagging_data(n=64, t=7, seed=0):
    """Tokens 1..9 padded with 0s; the tag of a token is its parity; padded tags are noise."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 10, (n, t))
    lengths = rng.integers(2, t + 1, n)
    x[np.arange(t)[None] >= lengths[:, None]] = 0
    y = x % 2
    noise = rng.integers(0, 2, (n, t))
    y_noisy = np.where(x == 0, noise, y)
    return x, y, y_noisy


def test_fit_trains_a_masked_tagger_that_ignores_padded_targets():
    x, y, y_noisy = _tagging_data()
    histories, weights = [], []
    for targets in (y, y_noisy):
        model = _tagger(optimizer=fl.optimizers.Adam(0.05), metrics=["accuracy"])
        histories.append(model.fit(x, targets, epochs=12, batch_size=16, shuffle=False,
                                   verbose=0).history)
        weights.append(model.get_weights())
    assert histories[0] == histories[1]  # padded targets changed nothing, to the bit
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
    loss, acc = histories[0]["loss"], histories[0]["accuracy"]
    assert loss[-1] < 0.5 * loss[0] and acc[-1] > 0.95


# -- models without masks -------------------------------------------------------------------------
def _unmasked(seed=0):
    fl.manual_seed(seed)
    model = Sequential([Embedding(10, 4, input_shape=(None,)), LSTM(3, return_sequences=True),
                        Dense(2, activation="softmax")])
    return model


def _unmasked_formula(model, sw, grad):
    """The unmasked loss op for op: the mean of the (weighted) per-step losses. Under no_grad
    (as evaluate runs) the softmax output has no creator, so the cross-entropy is not fused."""
    with contextlib.nullcontext() if grad else fl.no_grad():
        out = model(X)
    assert get_mask(out) is None
    ce = losses.sparse_categorical_crossentropy(Y, out)
    if sw is not None:
        ce = ce * sw[:, None]
    return float(ce.mean().item())


@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy",
                                  losses.SparseCategoricalCrossentropy()],
                         ids=["function", "Loss"])
@pytest.mark.parametrize("weighted", [False, True])
def test_unmasked_models_are_unaffected_to_the_bit(loss, weighted):
    sw = np.array([0.25, 2.0], np.float32) if weighted else None
    model = _unmasked()
    model.compile(loss=loss, optimizer=SGD(0.0))
    keep = None
    for _ in range(2):  # the second time, a masked tensor elsewhere keeps the registry non-empty
        assert model.evaluate(X, Y, sample_weight=sw, verbose=0) == _unmasked_formula(
            model, sw, grad=False)
        assert model.train_on_batch(X, Y, sample_weight=sw) == _unmasked_formula(
            model, sw, grad=True)
        keep = attach_mask(fl.zeros(2, 5, 1), MASK)
    assert get_mask(keep) is not None


def test_the_mask_lives_on_the_tensor_and_the_liveness_registry_empties():
    """Masks are an attribute of the Tensor (as Keras's ``_keras_mask``); the module keeps
    only weak references to know whether any masked tensor is alive."""
    import gc

    from fundl.layers import _masking

    before = len(_masking._MASKS)
    t = fl.zeros(2, 3, 1)
    m = np.array([[1, 1, 0], [1, 0, 0]], bool)
    _masking.attach_mask(t, m)
    _masking.attach_mask(t, m)               # attaching again counts it once
    assert t._keras_mask is not None and (t._keras_mask == m).all()
    assert len(_masking._MASKS) == before + 1
    _masking.attach_mask(t, None)
    assert t._keras_mask is None and len(_masking._MASKS) == before
    _masking.attach_mask(t, m)
    del t
    gc.collect()
    assert len(_masking._MASKS) == before


def test_masks_do_not_leak_between_threads_or_objects():
    import threading

    from fundl.layers import _masking

    seen = {}

    def work(i):
        t = _masking.attach_mask(fl.zeros(2, 3, 1), np.full((2, 3), i % 2 == 0))
        seen[i] = bool(_masking.get_mask(t).all()) == (i % 2 == 0)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(seen.values()) and len(seen) == 8
    assert _masking.get_mask(np.zeros((2, 3))) is None     # a plain array carries none
    with pytest.raises(TypeError, match="attach_mask"):
        _masking.attach_mask(np.zeros((2, 3, 1)), np.ones((2, 3), bool))
