"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate."""
import numpy as np
import pytest

from fundl.layers import (
    Add, Average, Concatenate, Dense, Input, Maximum, Minimum, Multiply, Subtract,
)
from fundl.models import Model
from fundl.testing import assert_error
from fundl.testing.layer_case import check_layer

ELEMENTWISE = [
    (Add, lambda a, b: a + b),
    (Subtract, lambda a, b: a - b),
    (Multiply, lambda a, b: a * b),
    (Average, lambda a, b: (a + b) / 2),
    (Maximum, np.maximum),
    (Minimum, np.minimum),
]


def _pair(shape=(3, 4), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype("float32") for _ in range(2)]


@pytest.mark.parametrize("cls", [c for c, _ in ELEMENTWISE], ids=lambda c: c.__name__)
def test_elementwise_merge_harness(cls):
    check_layer(cls, {}, input_shape=[(2, 3), (2, 3)], expected_output_shape=(2, 3),
                expected_weights={})


def test_concatenate_harness():
    check_layer(Concatenate, {}, input_shape=[(2, 3), (2, 4)], expected_output_shape=(2, 7),
                expected_weights={})


def test_concatenate_harness_on_middle_axis():
    check_layer(Concatenate, {"axis": 1}, input_shape=[(2, 3, 4), (2, 1, 4)],
                expected_output_shape=(2, 4, 4), expected_weights={})


@pytest.mark.parametrize("cls, reference", ELEMENTWISE, ids=lambda v: getattr(v, "__name__", ""))
def test_elementwise_merge_values(cls, reference):
    a, b = _pair()
    np.testing.assert_allclose(cls()([a, b]).numpy(), reference(a, b), rtol=1e-6)


@pytest.mark.parametrize("cls, reference", [
    (Add, lambda xs: xs[0] + xs[1] + xs[2]),
    (Multiply, lambda xs: xs[0] * xs[1] * xs[2]),
    (Average, lambda xs: (xs[0] + xs[1] + xs[2]) / 3),
    (Maximum, lambda xs: np.maximum(np.maximum(xs[0], xs[1]), xs[2])),
    (Minimum, lambda xs: np.minimum(np.minimum(xs[0], xs[1]), xs[2])),
], ids=lambda v: getattr(v, "__name__", ""))
def test_merge_of_three_inputs(cls, reference):
    xs = _pair() + _pair(seed=1)[:1]
    np.testing.assert_allclose(cls()(xs).numpy(), reference(xs), rtol=1e-6)


def test_concatenate_values_along_last_and_middle_axis():
    a, b = _pair((2, 3, 4))
    np.testing.assert_array_equal(Concatenate()([a, b]).numpy(), np.concatenate([a, b], -1))
    np.testing.assert_array_equal(Concatenate(axis=1)([a, b]).numpy(),
                                  np.concatenate([a, b], 1))


def test_add_broadcasts_size_one_axes():
    a = np.ones((3, 1), dtype="float32")
    b = np.arange(12, dtype="float32").reshape(3, 4)
    np.testing.assert_array_equal(Add()([a, b]).numpy(), a + b)
    assert Add()([Input(shape=(1,)), Input(shape=(4,))]).shape == (None, 4)


def test_merge_gradients_reach_every_input():
    a = Input(shape=(3,))
    b = Input(shape=(3,))
    model = Model([a, b], Multiply()([Dense(3)(a), Dense(3)(b)]))
    out = model(_pair((2, 3)), training=True)
    out.sum().backward()
    assert len(model.trainable_weights) == 4
    assert all(w.grad is not None and np.abs(w.grad).sum() > 0 for w in model.trainable_weights)


@pytest.mark.parametrize("cls", [c for c, _ in ELEMENTWISE] + [Concatenate],
                         ids=lambda c: c.__name__)
def test_merge_of_a_single_tensor_names_layer_and_fix(cls):
    layer = cls(name="m")
    assert_error(ValueError, layer, np.ones((2, 3), "float32"),
                 contains=[f"{cls.__name__} 'm'", "list of at least 2", "(2, 3)"])


@pytest.mark.parametrize("cls", [Add, Concatenate], ids=lambda c: c.__name__)
def test_merge_of_a_one_element_list_is_rejected_at_definition_time(cls):
    assert_error(ValueError, cls(), [Input(shape=(3,))], contains=["list of at least 2"])


def test_subtract_needs_exactly_two_inputs():
    xs = _pair() + _pair(seed=1)[:1]
    assert_error(ValueError, Subtract(name="s"), xs, contains=["Subtract 's'", "exactly 2"])


def test_add_of_mismatched_shapes_fails_at_definition_time():
    assert_error(ValueError, Add(name="res"), [Input(shape=(3,)), Input(shape=(4,))],
                 contains=["Add 'res'", "(None, 3)", "(None, 4)"])


def test_add_of_different_ranks_fails_at_definition_time():
    assert_error(ValueError, Add(), [Input(shape=(3,)), Input(shape=(2, 3))],
                 contains=["same rank"])


def test_concatenate_of_mismatched_other_axes_fails_at_definition_time():
    assert_error(ValueError, Concatenate(name="cat"), [Input(shape=(2, 3)), Input(shape=(4, 5))],
                 contains=["Concatenate 'cat'", "(None, 2, 3)", "(None, 4, 5)", "axis -1"])


def test_concatenate_cannot_join_the_batch_axis():
    assert_error(ValueError, Concatenate(axis=0), [Input(shape=(3,)), Input(shape=(3,))],
                 contains=["batch axis"])


def test_concatenate_with_unknown_size_gives_unknown():
    out = Concatenate()([Input(shape=(None,)), Input(shape=(3,))])
    assert out.shape == (None, None)


def test_concatenate_config_round_trip_keeps_axis():
    layer = Concatenate(axis=1, name="c")
    assert Concatenate.from_config(layer.get_config()).axis == 1


# -- Keras's functional forms (fundl.layers.add([...]), ...) --------------------------------------

@pytest.mark.parametrize("name, cls, fn", [
    ("add", "Add", lambda a, b: a + b), ("subtract", "Subtract", lambda a, b: a - b),
    ("multiply", "Multiply", lambda a, b: a * b), ("average", "Average", lambda a, b: (a + b) / 2),
    ("maximum", "Maximum", np.maximum), ("minimum", "Minimum", np.minimum),
])
def test_functional_merges_build_the_layer_and_call_it(name, cls, fn):
    import fundl.layers as L
    merge = getattr(L, name)
    a = Input(shape=(3,))
    b = Input(shape=(3,))
    out = merge([a, b], name=f"my_{name}")
    model = Model([a, b], out)
    layer = model.get_layer(f"my_{name}")
    assert type(layer).__name__ == cls
    rng = np.random.default_rng(0)
    xa, xb = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    np.testing.assert_allclose(model.predict([xa, xb], verbose=0), fn(xa, xb), atol=1e-6)
    np.testing.assert_allclose(merge([xa.astype("float32"), xb.astype("float32")]).numpy(),
                               fn(xa, xb), atol=1e-6)  # eager too


def test_functional_concatenate_axis():
    from fundl.layers import concatenate
    a = Input(shape=(2, 3))
    b = Input(shape=(2, 5))
    assert concatenate([a, b]).shape == (None, 2, 8)
    assert concatenate([a, a], axis=1).shape == (None, 4, 3)
    assert_error(ValueError, lambda: concatenate([a, b], axis=1), contains=("Concatenate",))
