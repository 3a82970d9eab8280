"""The call context: what ``Layer.__call__`` passes to ``call`` (``training``, ``mask``, extra
positional inputs) and how ``training=None`` is inherited by nested layers, as in Keras 3."""
import threading

import numpy as np
import pytest

import fundl as fl
from fundl.layers import Dense, Dropout, Embedding, Input, Layer
from fundl.layers.base import _CALL_CONTEXT
from fundl.testing import assert_error


def _x(shape=(8, 4), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


class Recorder(Layer):
    """Passes its input through and remembers the ``training`` value of each call."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = []

    def call(self, x, training=None):
        self.seen.append(training)
        return x


class NoTraining(Layer):
    """A guide-style layer whose call takes no ``training``."""

    def call(self, inputs):
        return inputs * 2


class TwoInputs(Layer):
    """``call(a, b)``: the second positional argument is an input, not ``training``."""

    def call(self, a, b):
        return a - b


class DropBlock(Layer):
    """A custom block: Dense, Dropout and a recorder, each called without ``training``."""

    def __init__(self, units=16, rate=0.5, **kwargs):
        super().__init__(**kwargs)
        self.dense = Dense(units)
        self.dropout = Dropout(rate)
        self.recorder = Recorder()

    def call(self, x):
        return self.recorder(self.dropout(self.dense(x)))


class Net(fl.Model):
    """A subclassed model with the block inside, the Keras guides' way."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.block = DropBlock()
        self.head = Dense(1)

    def call(self, inputs, training=None):
        return self.head(self.block(inputs))


# -- what call receives ---------------------------------------------------------------------

def test_call_without_training_parameter_gets_no_training():
    layer = NoTraining()
    np.testing.assert_array_equal(layer(_x(), training=True).numpy(), _x() * 2)
    np.testing.assert_array_equal(layer(_x()).numpy(), _x() * 2)


def test_guide_style_layer_trains_with_fit():
    model = fl.Sequential([Dense(4, input_dim=4), NoTraining(), Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(_x(), _x((8, 1), 1), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


def test_second_positional_argument_is_an_input_not_training():
    a, b = _x(seed=1), _x(seed=2)
    out = TwoInputs()(a, b)
    np.testing.assert_allclose(out.numpy(), a - b)


def test_training_given_by_position_is_moved_to_the_keyword():
    layer = Recorder()
    layer(_x(), True)
    layer(_x(), False)
    assert layer.seen == [True, False]


def test_training_by_position_and_keyword_is_a_type_error():
    assert_error(TypeError, Recorder(name="rec"), _x(), True, training=False,
                 contains=["Recorder 'rec'", "training"])


def test_outermost_call_without_training_means_inference():
    layer = Recorder()
    layer(_x())
    assert layer.seen == [False]


def test_signature_default_applies_when_nobody_says():
    class TrainsByDefault(Recorder):
        def call(self, x, training=True):
            self.seen.append(training)
            return x

    layer = TrainsByDefault()
    layer(_x())
    layer(_x(), training=False)
    assert layer.seen == [True, False]


def test_training_reaches_call_through_kwargs():
    class Forwarding(Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.got = None

        def call(self, x, **kwargs):
            self.got = kwargs
            return x

    layer = Forwarding()
    layer(_x(), training=True)
    assert layer.got == {"training": True}


def test_mask_is_passed_only_to_calls_that_take_it():
    class Masked(Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.mask = "unset"

        def call(self, x, mask=None):
            self.mask = mask
            return x

    plain, masked = NoTraining(), Masked()
    np.testing.assert_array_equal(plain(_x(), mask=np.ones((8,), bool)).numpy(), _x() * 2)
    given = np.array([True, False] * 4)
    masked(_x(), mask=given)
    np.testing.assert_array_equal(masked.mask, given)


def test_mask_parameter_receives_the_input_mask():
    class SeesMask(Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.mask = "unset"

        def call(self, x, mask=None):
            self.mask = mask
            return x

    ids = np.array([[3, 1, 0], [2, 0, 0]])
    embedded = Embedding(5, 2, mask_zero=True)(ids)
    layer = SeesMask()
    layer(embedded)
    np.testing.assert_array_equal(layer.mask, ids != 0)
    layer(_x())  # no mask anywhere: None
    assert layer.mask is None


# -- inheritance through the call context ----------------------------------------------------

def test_nested_layers_inherit_training_from_the_enclosing_call():
    block = DropBlock()
    block(_x(), training=True)
    block(_x(), training=False)
    block(_x())
    assert block.recorder.seen == [True, False, False]


def test_explicit_training_of_a_nested_call_wins_for_it_and_below():
    class Freezes(Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = DropBlock()
            self.after = Recorder()

        def call(self, x, training=None):
            return self.after(self.inner(x, training=False))

    layer = Freezes()
    layer(_x(), training=True)
    assert layer.inner.recorder.seen == [False] and layer.after.seen == [True]


def test_dropout_in_a_nested_block_is_active_during_fit():
    fl.manual_seed(0)
    model = Net()
    model.compile(optimizer="sgd", loss="mse")
    model.fit(_x((16, 4)), _x((16, 1), 1), epochs=1, batch_size=8, verbose=0)
    recorder = model.block.recorder
    # _ensure_built's one inference pass, then two training steps.
    assert recorder.seen[-2:] == [True, True]
    x = _x((16, 4), 3)
    train_a = model(x, training=True).numpy()
    train_b = model(x, training=True).numpy()
    infer_a, infer_b = model(x).numpy(), model.predict(x, verbose=0)
    assert not np.allclose(train_a, train_b)          # dropout masks differ per call
    np.testing.assert_allclose(infer_a, infer_b, rtol=1e-6)   # inference is deterministic
    assert recorder.seen[-2:] == [False, False]


def test_context_is_reset_after_the_outermost_call_even_on_error():
    class Fails(Layer):
        def call(self, x, training=None):
            raise ValueError("broken")

    class Outer(Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = Fails()

        def call(self, x, training=None):
            return self.inner(x)

    with pytest.raises(ValueError, match="broken"):
        Outer()(_x(), training=True)
    assert _CALL_CONTEXT.training is None
    layer = Recorder()
    layer(_x())
    assert layer.seen == [False]


def test_context_is_per_thread():
    seen = []

    class Waits(Layer):
        def call(self, x, training=None):
            thread = threading.Thread(target=lambda: seen.append(_CALL_CONTEXT.training))
            thread.start()
            thread.join()
            seen.append(_CALL_CONTEXT.training)
            return x

    Waits()(_x(), training=True)
    assert seen == [None, True]


def test_explicit_training_in_a_functional_graph_is_kept():
    inputs = Input(shape=(4,))
    inner = Recorder(name="frozen_part")
    outputs = Recorder(name="head")(inner(inputs, training=False))
    model = fl.Model(inputs, outputs)
    model(_x(), training=True)
    assert inner.seen[-1] is False and model.get_layer("head").seen[-1] is True
    clone = fl.Model.from_config(model.get_config(),
                                 custom_objects={"Recorder": Recorder})
    clone(_x(), training=True)
    assert clone.get_layer("frozen_part").seen[-1] is False


def test_several_positional_inputs_in_a_functional_graph():
    a, b = Input(shape=(3,), name="a"), Input(shape=(3,), name="b")
    out = TwoInputs(name="diff")(a, b)
    assert out.shape == (None, 3)
    model = fl.Model([a, b], out)
    xa, xb = _x((2, 3), 1), _x((2, 3), 2)
    np.testing.assert_allclose(model([xa, xb]).numpy(), xa - xb, rtol=1e-6)
    clone = fl.Model.from_config(model.get_config(), custom_objects={"TwoInputs": TwoInputs})
    np.testing.assert_allclose(clone.predict([xa, xb], verbose=0), xa - xb, rtol=1e-6)
