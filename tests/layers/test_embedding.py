"""Embedding, Masking, the mask side-channel (attach_mask/get_mask), mask propagation through
layers (supports_masking) and masked_loss.

The loss side of masking: tests/models/test_masking.py.
"""
import gc

import numpy as np
import pytest

import fundl as fl
from fundl.layers import (
    Activation, Add, BatchNormalization, Concatenate, Conv1D, Dense, Dropout, Flatten,
    GaussianNoise, GlobalAveragePooling1D, Input, Lambda, Layer, LayerNormalization, Multiply,
    Reshape,
)
from fundl.layers.embedding import Embedding, Masking, attach_mask, get_mask, masked_loss
from fundl.layers.recurrent import GRU, LSTM, Bidirectional, TimeDistributed
from fundl.models import Model, Sequential, load_model
from fundl.testing import assert_error
from fundl.testing.layer_case import check_layer

IDS = np.array([[3, 1, 4, 1, 0, 0], [5, 9, 2, 0, 0, 0], [6, 5, 3, 5, 8, 9]])
LENGTHS = [4, 3, 6]


# -- Embedding ---------------------------------------------------------------------------------
def test_embedding_harness():
    # gradients flow to the table only (indices are integers): the gradcheck is below
    check_layer(Embedding, {"input_dim": 10, "output_dim": 3}, input_shape=IDS.shape,
                inputs=IDS, expected_output_shape=(3, 6, 3),
                expected_weights={"embeddings": (10, 3)}, check_gradients=False)


def test_embedding_looks_up_rows_of_the_table():
    layer = Embedding(10, 4)
    y = layer(IDS).numpy()
    np.testing.assert_array_equal(y, layer.embeddings.numpy()[IDS])


def test_embedding_gradient_adds_up_repeated_indices():
    layer = Embedding(10, 2, dtype="float64")
    layer(IDS)
    assert fl.gradcheck(lambda w: layer(IDS), [layer.embeddings])
    layer.embeddings.grad = None
    layer(IDS).sum().backward()
    counts = np.bincount(IDS.ravel(), minlength=10)
    np.testing.assert_array_equal(layer.embeddings.grad, np.repeat(counts[:, None], 2, axis=1))


def test_embedding_default_initializer_is_keras_uniform():
    layer = Embedding(500, 8)
    layer.build((None, 3))
    w = layer.embeddings.numpy()
    assert w.dtype == np.float32 and np.abs(w).max() <= 0.05 and w.std() > 0.02


def test_mask_zero_attaches_the_padding_mask():
    y = Embedding(10, 2, mask_zero=True)(IDS)
    np.testing.assert_array_equal(get_mask(y), IDS != 0)
    assert get_mask(Embedding(10, 2)(IDS)) is None


def test_float_indices_from_fit_are_accepted():
    layer = Embedding(10, 2)
    np.testing.assert_array_equal(layer(IDS.astype(np.float32)).numpy(), layer(IDS).numpy())


def test_out_of_range_index_is_a_clear_error():
    assert_error(ValueError, Embedding(5, 2), np.array([[1, 5]]),
                 contains=["Embedding 'embedding'", "[0, 5)", "5"])
    assert_error(ValueError, Embedding(5, 2), np.array([[-1, 2]]), contains=["-1"])


def test_non_numeric_indices_are_a_type_error():
    assert_error(TypeError, Embedding(5, 2), fl.tensor(np.array([[1 + 2j]])),
                 contains=["integer indices", "complex"])


@pytest.mark.parametrize("kwargs", [{"input_dim": 0, "output_dim": 2},
                                    {"input_dim": 3, "output_dim": 2.5}])
def test_bad_sizes_are_rejected(kwargs):
    assert_error(ValueError, Embedding, **kwargs, contains=["positive integer"])


def test_embedding_config_round_trip():
    layer = Embedding(7, 3, mask_zero=True, embeddings_regularizer="l2", name="tok")
    config = layer.get_config()
    assert Embedding.from_config(config).get_config() == config
    assert config["mask_zero"] is True and config["input_dim"] == 7


# -- masks flowing into recurrent layers ---------------------------------------------------------
def _model(mask_zero):
    fl.manual_seed(0)
    # input_shape=(None,): sequences of any length
    return Sequential([Embedding(10, 4, mask_zero=mask_zero, input_shape=(None,)), LSTM(3),
                       Dense(1)])


def test_padded_steps_do_not_change_the_lstm_output():
    model = _model(mask_zero=True)
    y = model.predict(IDS)
    for i, n in enumerate(LENGTHS):
        alone = model.predict(IDS[i:i + 1, :n])
        np.testing.assert_allclose(y[i:i + 1], alone, atol=1e-6)


def test_without_mask_zero_padding_does_change_the_output():
    model = _model(mask_zero=False)
    y = model.predict(IDS)
    alone = model.predict(IDS[:1, :LENGTHS[0]])
    assert not np.allclose(y[:1], alone, atol=1e-4)


def test_padding_row_gets_no_gradient_through_a_masked_lstm():
    model = _model(mask_zero=True)
    model.compile(optimizer="sgd", loss="mse")
    out = model(IDS, training=True)
    out.sum().backward()
    table_grad = model.layers[0].embeddings.grad
    assert not table_grad[0].any() and table_grad[1].any()


def test_mask_flows_through_bidirectional_and_time_distributed():
    fl.manual_seed(0)
    model = Sequential([Embedding(10, 4, mask_zero=True),
                        Bidirectional(GRU(3, return_sequences=True)),
                        TimeDistributed(Dense(2))])
    y = model(IDS)
    np.testing.assert_array_equal(get_mask(y), IDS != 0)
    alone = model(IDS[1:2, :3]).numpy()
    np.testing.assert_allclose(y.numpy()[1:2, :3], alone, atol=1e-6)


def test_masked_loss_ignores_padded_steps():
    fl.manual_seed(0)
    model = Sequential([Embedding(10, 4, mask_zero=True), LSTM(3, return_sequences=True),
                        TimeDistributed(Dense(2))])
    rng = np.random.default_rng(0)
    y1 = rng.standard_normal((3, 6, 2)).astype(np.float32)
    y2 = y1.copy()
    y2[IDS == 0] = 100.0  # different targets at padded steps only
    loss = masked_loss("mse")
    out = model(IDS, training=True)
    a, b = loss(y1, out), loss(y2, out)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
    # and the value is the mean over real steps only
    per_step = ((out.numpy() - y1) ** 2).mean(-1)
    expected = [(per_step[i] * (IDS[i] != 0)).sum() / n for i, n in enumerate(LENGTHS)]
    np.testing.assert_allclose(a.numpy(), expected, rtol=1e-5)


def test_masked_loss_trains_a_model_through_compile():
    fl.manual_seed(0)
    model = Sequential([Embedding(10, 4, mask_zero=True), LSTM(3, return_sequences=True),
                        TimeDistributed(Dense(2))])
    model.compile(optimizer=fl.optimizers.Adam(0.05), loss=masked_loss("mse"))
    y = np.random.default_rng(0).standard_normal((3, 6, 2)).astype(np.float32)
    first = model.train_on_batch(IDS, y)
    for _ in range(20):
        last = model.train_on_batch(IDS, y)
    assert last < first


def test_model_with_masking_layers_saves_and_loads(tmp_path):
    model = _model(mask_zero=True)
    model.compile(optimizer="adam", loss="mse")
    path = str(tmp_path / "emb.fundl")
    model.save(path)
    np.testing.assert_array_equal(load_model(path).predict(IDS), model.predict(IDS))


# -- Masking -------------------------------------------------------------------------------------
def test_masking_harness():
    check_layer(Masking, {"mask_value": 0.5}, input_shape=(2, 3, 4),
                expected_output_shape=(2, 3, 4), expected_weights={})


def test_masking_zeroes_and_masks_padded_steps():
    x = np.random.default_rng(0).standard_normal((2, 4, 3)).astype(np.float32)
    x[0, 2:] = -1.0
    y = Masking(-1.0)(x)
    np.testing.assert_array_equal(get_mask(y), [[1, 1, 0, 0], [1, 1, 1, 1]])
    assert not y.numpy()[0, 2:].any()
    np.testing.assert_array_equal(y.numpy()[1], x[1])


def test_masking_then_lstm_ignores_the_padding():
    fl.manual_seed(0)
    x = np.random.default_rng(1).standard_normal((2, 5, 3)).astype(np.float32)
    x[1, 3:] = 0.0
    model = Sequential([Masking(0.0, input_shape=(None, 3)), LSTM(4)])
    y = model.predict(x)
    np.testing.assert_allclose(y[1:], model.predict(x[1:, :3]), atol=1e-6)


def test_masking_needs_a_time_axis():
    assert_error(ValueError, Masking(), fl.zeros(2, 3), contains=["(batch, timesteps, features)",
                                                                 "(2, 3)"])


def test_masking_config_round_trip():
    config = Masking(-1.0).get_config()
    assert Masking.from_config(config).get_config() == config


# -- the side-channel itself ----------------------------------------------------------------------
def test_attach_mask_checks_the_shape():
    assert_error(ValueError, attach_mask, fl.zeros(2, 3, 4), np.ones((2, 4), bool),
                 contains=["(2, 3)", "(2, 4)"])


def test_attach_none_removes_the_mask():
    t = attach_mask(fl.zeros(2, 3, 1), np.ones((2, 3), bool))
    assert get_mask(attach_mask(t, None)) is None


def test_masks_go_away_with_their_tensors():
    from fundl.layers import _masking

    before = len(_masking._MASKS)
    t = attach_mask(fl.zeros(2, 3, 1), np.ones((2, 3), bool))
    assert len(_masking._MASKS) == before + 1
    del t
    gc.collect()
    assert len(_masking._MASKS) == before


def test_the_registry_lives_in_one_place_and_is_re_exported():
    from fundl.layers import _masking, base, embedding, recurrent

    assert _masking._MASKS is base._MASKS
    assert embedding.attach_mask is _masking.attach_mask is recurrent.attach_mask
    assert embedding.get_mask is _masking.get_mask is recurrent.get_mask


def test_a_new_tensor_never_inherits_a_dead_tensors_mask():
    t = attach_mask(fl.zeros(2, 3, 1), np.ones((2, 3), bool))
    del t
    fresh = [fl.zeros(2, 3, 1) for _ in range(50)]  # ids get reused
    assert all(get_mask(f) is None for f in fresh)


# -- propagation through layers that support masking ----------------------------------------------
MASK = IDS != 0


def _masked_input():
    """A (3, 6, 4) tensor carrying the padding mask of IDS."""
    x = np.random.default_rng(0).standard_normal((3, 6, 4)).astype(np.float32)
    return attach_mask(fl.tensor(x), MASK)


@pytest.mark.parametrize("layer", [
    Dense(5), Dense(2, activation="softmax"), Activation("relu"), LayerNormalization(),
    BatchNormalization(), Dropout(0.5), GaussianNoise(0.1),
], ids=lambda layer: type(layer).__name__)
@pytest.mark.parametrize("training", [False, True])
def test_per_step_layers_pass_the_mask_on(layer, training):
    y = layer(_masked_input(), training=training)
    np.testing.assert_array_equal(get_mask(y), MASK)


def test_the_mask_flows_through_a_sequential_stack_to_the_output():
    fl.manual_seed(0)
    model = Sequential([Embedding(10, 4, mask_zero=True, input_shape=(None,)),
                        LSTM(3, return_sequences=True), Dropout(0.2), LayerNormalization(),
                        Dense(4, activation="relu"), Activation("tanh"),
                        Dense(2, activation="softmax")])
    for training in (False, True):
        np.testing.assert_array_equal(get_mask(model(IDS, training=training)), MASK)


def test_the_mask_flows_through_a_functional_model():
    fl.manual_seed(0)
    inputs = Input(shape=(None,), dtype="int64")
    h = Embedding(10, 4, mask_zero=True)(inputs)
    h = LSTM(3, return_sequences=True)(h)
    skip = Dense(3)(h)
    h = LayerNormalization()(Add()([h, skip]))
    outputs = Dense(2, activation="softmax")(Dropout(0.1)(h))
    model = Model(inputs, outputs)
    np.testing.assert_array_equal(get_mask(model(IDS, training=True)), MASK)


@pytest.mark.parametrize("make", [
    lambda: LSTM(6),                 # the last step only: output (3, 6), the mask's shape
    lambda: Flatten(),
    lambda: GlobalAveragePooling1D(),
    lambda: Reshape((24,)),
    lambda: Conv1D(2, 3, padding="same"),   # mixes neighbouring steps: no masking in Keras
    lambda: Lambda(fl.tanh),
], ids=["LSTM", "Flatten", "GlobalAveragePooling1D", "Reshape", "Conv1D", "Lambda"])
def test_layers_without_mask_support_end_the_chain(make):
    y = make()(_masked_input())
    assert get_mask(y) is None
    assert get_mask(Dense(6)(y)) is None  # and nothing downstream picks one up


class _FirstTwoSteps(Layer):
    """Supports masking but attaches a mask of its own: the base class must not replace it."""

    supports_masking = True

    def call(self, x, training=False):
        mask = np.zeros(x.shape[:2], bool)
        mask[:, :2] = True
        return attach_mask(x * 1.0, mask)

    def compute_output_shape(self, input_shape):
        return input_shape


def test_a_layer_that_attaches_its_own_mask_keeps_it():
    y = _FirstTwoSteps()(_masked_input())
    np.testing.assert_array_equal(get_mask(y), np.arange(6)[None].repeat(3, 0) < 2)


def test_masking_makes_its_mask_from_the_data_alone():
    x = _masked_input().numpy()
    x[:, 1] = 0.0
    y = Masking(0.0)(attach_mask(fl.tensor(x), MASK))  # as Keras: the incoming mask is ignored
    expected = np.ones((3, 6), bool)
    expected[:, 1] = False
    np.testing.assert_array_equal(get_mask(y), expected)


def test_compute_mask_follows_supports_masking():
    assert Dense(2).compute_mask(None, MASK) is MASK
    assert Flatten().compute_mask(None, MASK) is None
    assert Dense.supports_masking and not Flatten.supports_masking and not LSTM.supports_masking


# -- merge layers: the AND of the masks -----------------------------------------------------------
def _second_input(mask):
    x = np.random.default_rng(1).standard_normal((3, 6, 4)).astype(np.float32)
    return attach_mask(fl.tensor(x), mask)


OTHER = np.array([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]], bool)


@pytest.mark.parametrize("layer", [Add(), Multiply(), Concatenate()],
                         ids=lambda layer: type(layer).__name__)
def test_merge_layers_and_the_masks(layer):
    y = layer([_masked_input(), _second_input(OTHER)])
    np.testing.assert_array_equal(get_mask(y), MASK & OTHER)
    same = layer([_masked_input(), _second_input(MASK)])
    np.testing.assert_array_equal(get_mask(same), MASK)


@pytest.mark.parametrize("layer", [Add(), Concatenate()], ids=lambda layer: type(layer).__name__)
def test_an_unmasked_merge_input_counts_as_all_real_steps(layer):
    x = np.ones((3, 6, 4), np.float32)
    np.testing.assert_array_equal(get_mask(layer([_masked_input(), x])), MASK)
    np.testing.assert_array_equal(get_mask(layer([x, _masked_input()])), MASK)
    assert get_mask(layer([x, x])) is None


def test_concatenating_in_time_joins_the_masks():
    unmasked = fl.tensor(np.ones((3, 2, 4), np.float32))
    y = Concatenate(axis=1)([_masked_input(), unmasked, _second_input(OTHER)])
    assert y.shape == (3, 14, 4)
    np.testing.assert_array_equal(get_mask(y), np.concatenate(
        [MASK, np.ones((3, 2), bool), OTHER], axis=1))


# -- masked_loss against compile's automatic masking ----------------------------------------------
def test_masked_loss_averages_per_sequence_compile_per_step():
    fl.manual_seed(0)
    model = Sequential([Embedding(10, 4, mask_zero=True, input_shape=(None,)),
                        LSTM(3, return_sequences=True), Dense(2)])
    y = np.random.default_rng(0).standard_normal((3, 6, 2)).astype(np.float32)
    per_step = ((model.predict(IDS) - y) ** 2).mean(-1)
    model.compile(optimizer="sgd", loss=masked_loss("mse"))
    by_sequence = np.mean([per_step[i][MASK[i]].mean() for i in range(3)])
    np.testing.assert_allclose(model.evaluate(IDS, y, verbose=0), by_sequence, rtol=1e-6)
    model.compile(optimizer="sgd", loss="mse")
    np.testing.assert_allclose(model.evaluate(IDS, y, verbose=0), per_step[MASK].mean(),
                               rtol=1e-6)
    assert abs(by_sequence - per_step[MASK].mean()) > 1e-4 * by_sequence  # they do differ
    # with equal lengths the two weightings agree
    equal = np.array([[1, 2, 3, 0], [4, 5, 6, 0]])
    y_equal = y[:2, :4]
    per_step_loss = model.evaluate(equal, y_equal, verbose=0)
    model.compile(optimizer="sgd", loss=masked_loss("mse"))
    np.testing.assert_allclose(model.evaluate(equal, y_equal, verbose=0), per_step_loss,
                               rtol=1e-6)
