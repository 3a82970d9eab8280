"""The Layer base class: lazy build, tracking, freezing, weights, state dicts, errors; and the
layer harness itself (it must catch broken layers)."""
import numpy as np
import pytest

import fundl as fl
from fundl import functional as F
from fundl.autograd import Function
from fundl.layers import Dense, Input, Layer, SymbolicTensor, register_serializable
from fundl.layers.base import get_registered
from fundl.testing import assert_error
from fundl.testing.layer_case import check_layer


class Scale(Layer):
    """A per-feature scale, with a non-trainable running counter (like batch-norm state)."""

    def build(self, input_shape):
        self.seen_shape = input_shape
        self.scale = self.add_weight("scale", (input_shape[-1],), "ones")
        self.count = self.add_weight("count", (1,), "zeros", trainable=False)

    def call(self, x, training=False):
        return x * self.scale

    def compute_output_shape(self, input_shape):
        return input_shape


class Block(Layer):
    """Two Dense sub-layers assigned as attributes, and a list of sub-layers."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.first = Dense(3, name="first")
        self.second = Dense(2, name="second")
        self.extra = [Scale(name="s0"), Scale(name="s1")]

    def call(self, x, training=False):
        h = self.second(self.first(x))
        for layer in self.extra:
            h = layer(h)
        return h

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (2,)


def _x(shape=(4, 5), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


# -- building --------------------------------------------------------------------------------

def test_layer_is_built_lazily_on_first_call():
    layer = Scale()
    assert not layer.built and layer.weights == []
    layer(_x())
    assert layer.built
    assert layer.seen_shape == (None, 5)  # the batch axis is left open
    assert [w.shape for w in layer.weights] == [(5,), (1,)]


def test_symbolic_call_builds_and_returns_symbolic_output():
    out = Scale()(Input(shape=(7,)))
    assert isinstance(out, SymbolicTensor)
    assert out.shape == (None, 7)


def test_mixing_symbolic_and_real_inputs_is_a_type_error():
    layer = fl.layers.Add(name="add")
    assert_error(TypeError, layer, [Input(shape=(2,)), np.ones((1, 2), "float32")],
                 contains=["Add 'add'", "symbolic"])


def test_unknown_constructor_argument_is_a_type_error():
    assert_error(TypeError, Dense, 3, unit=4, contains=["Dense", "unit"])


def test_count_params_before_build_explains():
    assert_error(ValueError, Dense(3).count_params, contains=["Dense", "built", "input_shape"])


def test_duplicate_weight_names_in_one_layer_are_rejected():
    class Twice(Layer):
        def build(self, input_shape):
            self.add_weight("w", (1,))
            self.add_weight("w", (1,))

    assert_error(ValueError, Twice(name="t"), _x(), contains=["Twice 't'", "'w'"])


def test_default_names_are_snake_case_of_the_class():
    assert Dense(2).name == "dense"
    assert Scale().name == "scale"


# -- tracking -------------------------------------------------------------------------------

def test_sublayers_and_lists_of_sublayers_are_tracked():
    block = Block()
    block(_x())
    assert list(block.state_dict()) == [
        "first.kernel", "first.bias", "second.kernel", "second.bias",
        "extra.0.scale", "extra.0.count", "extra.1.scale", "extra.1.count"]


def test_reassigning_an_attribute_untracks_the_old_sublayer():
    block = Block()
    block.extra = None
    block.second = Dense(4, name="other")
    block.first(_x())
    block.second(np.ones((1, 3), "float32"))
    assert list(block.state_dict()) == ["first.kernel", "first.bias", "second.kernel",
                                        "second.bias"]


def test_weights_list_trainable_first_then_non_trainable():
    layer = Scale()
    layer(_x())
    assert [w.name for w in layer.trainable_weights] == ["scale"]
    assert [w.name for w in layer.non_trainable_weights] == ["count"]
    assert [w.name for w in layer.weights] == ["scale", "count"]


def test_non_trainable_weight_does_not_require_grad():
    layer = Scale()
    layer(_x())
    assert layer.scale.requires_grad and not layer.count.requires_grad


def test_weights_of_nested_layers_are_collected():
    block = Block()
    block(_x())
    assert len(block.weights) == 8
    assert len(block.trainable_weights) == 6
    assert len(block.non_trainable_weights) == 2


# -- freezing ----------------------------------------------------------------------------------

def test_freezing_stops_gradients_and_moves_weights_to_non_trainable():
    layer = Dense(3)
    layer(_x())
    layer.trainable = False
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 2
    x = fl.tensor(_x(), requires_grad=True)
    layer(x).sum().backward()
    assert layer.kernel.grad is None and layer.bias.grad is None
    assert x.grad is not None  # gradients still flow through a frozen layer


def test_freezing_a_parent_freezes_its_sublayers():
    block = Block()
    block(_x())
    block.trainable = False
    assert block.trainable_weights == []
    assert not block.first.trainable and not block.first.kernel.requires_grad


def test_unfreezing_restores_trainable_weights_but_not_state():
    layer = Scale()
    layer(_x())
    layer.trainable = False
    layer.trainable = True
    assert layer.scale.requires_grad and not layer.count.requires_grad


def test_freezing_before_build_applies_to_new_weights():
    layer = Dense(2, trainable=False)
    layer(_x())
    assert not layer.kernel.requires_grad and layer.trainable_weights == []


# -- get_weights / set_weights -------------------------------------------------------------------

def test_get_set_weights_round_trip_in_keras_layout():
    a, b = Dense(3), Dense(3)
    a(_x()), b(_x())
    b.set_weights(a.get_weights())
    np.testing.assert_array_equal(a(_x()).numpy(), b(_x()).numpy())
    assert [w.shape for w in a.get_weights()] == [(5, 3), (3,)]


def test_get_weights_returns_copies():
    layer = Dense(2)
    layer(_x())
    arrays = layer.get_weights()
    arrays[0][...] = 7
    assert not (layer.kernel.numpy() == 7).all()


def test_set_weights_wrong_count_names_expected_keys():
    layer = Dense(3, name="d")
    layer(_x())
    assert_error(ValueError, layer.set_weights, [np.zeros((5, 3))],
                 contains=["Dense 'd'", "expected 2", "got 1", "kernel", "bias"])


def test_set_weights_wrong_shape_names_layer_weight_and_both_shapes_and_writes_nothing():
    layer = Dense(3, name="d")
    layer(_x())
    before = layer.get_weights()
    assert_error(ValueError, layer.set_weights, [np.ones((5, 3)), np.ones((4,))],
                 contains=["Dense 'd'", "'bias'", "(3,)", "(4,)"])
    for a, b in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_set_weights_of_nested_layer_names_the_dotted_key():
    block = Block(name="blk")
    block(_x())
    arrays = block.get_weights()
    arrays[2] = np.zeros((9, 9))
    assert_error(ValueError, block.set_weights, arrays, contains=["second.kernel", "(9, 9)"])


def test_set_weights_casts_to_the_weight_dtype():
    layer = Dense(2)
    layer(_x())
    layer.set_weights([np.ones((5, 2), dtype=np.float64), np.zeros(2, dtype=np.int64)])
    assert layer.kernel.dtype == np.float32
    np.testing.assert_array_equal(layer.kernel.numpy(), 1.0)


# -- state_dict ------------------------------------------------------------------------------------

def test_state_dict_round_trip_between_two_instances():
    a, b = Block(), Block()
    a(_x()), b(_x(seed=1))
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(_x()).numpy(), b(_x()).numpy())


def test_load_state_dict_reports_missing_and_unexpected_keys():
    block = Block(name="blk")
    block(_x())
    state = block.state_dict()
    del state["first.bias"]
    state["third.kernel"] = np.zeros(1)
    e = assert_error(ValueError, block.load_state_dict, state,
                     contains=["Block 'blk'", "first.bias", "third.kernel"])
    assert "missing" in str(e) and "unexpected" in str(e)


def test_load_state_dict_shape_error_names_key_and_both_shapes_and_writes_nothing():
    block = Block()
    block(_x())
    before = block.state_dict()
    before = {k: v.copy() for k, v in before.items()}
    state = {k: v + 1 for k, v in before.items()}
    state["second.bias"] = np.zeros(5)
    assert_error(ValueError, block.load_state_dict, state,
                 contains=["second.bias", "(2,)", "(5,)"])
    for k, v in block.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_state_dict_non_strict_ignores_extra_and_missing_keys():
    layer = Dense(2)
    layer(_x())
    layer.load_state_dict({"kernel": np.ones((5, 2)), "other": np.zeros(1)}, strict=False)
    np.testing.assert_array_equal(layer.kernel.numpy(), 1.0)


def test_load_state_dict_rejects_non_numeric_arrays():
    layer = Dense(2)
    layer(_x())
    assert_error(TypeError, layer.load_state_dict,
                 {"kernel": np.array([["a", "b"]] * 5), "bias": np.zeros(2)},
                 contains=["kernel", "numeric"])


# -- errors inside layers ------------------------------------------------------------------------

class Picky(Layer):
    def call(self, x, training=False):
        raise ValueError("values must be positive")

    def compute_output_shape(self, input_shape):
        return input_shape


def test_error_in_call_gets_layer_name_and_input_shape_and_keeps_type_and_cause():
    e = assert_error(ValueError, Picky(name="p"), _x((2, 3)),
                     contains=["Picky 'p'", "(2, 3)", "values must be positive"])
    assert isinstance(e.__cause__, ValueError)


def test_error_in_nested_call_names_the_inner_layer():
    model = fl.models.Sequential([Dense(4, input_dim=3), Picky(name="inner")])
    assert_error(ValueError, model, _x((2, 3)), contains=["Picky 'inner'", "(2, 4)"])


def test_type_errors_keep_their_type():
    class Typed(Layer):
        def call(self, x, training=False):
            raise TypeError("wrong dtype")

    assert_error(TypeError, Typed(name="t"), _x((2, 3)), contains=["Typed 't'", "wrong dtype"])


# -- registry ------------------------------------------------------------------------------------

def test_layer_subclasses_are_registered_by_name():
    assert get_registered("Scale") is Scale
    assert get_registered("Dense") is Dense


def test_register_serializable_registers_functions_under_a_name():
    @register_serializable(name="my_fn_for_registry_test")
    def fn(x):
        return x

    assert get_registered("my_fn_for_registry_test") is fn


def test_unknown_registered_name_explains_the_fix():
    assert_error(ValueError, get_registered, "NoSuchLayer",
                 contains=["NoSuchLayer", "register_serializable", "custom_objects"])


# -- the harness catches broken layers -----------------------------------------------------------

class _WrongGrad(Function):
    def forward(self, x):
        return x * 2

    def backward(self, gy):
        return gy * 3  # wrong: should be 2


class BadGradient(Layer):
    def call(self, x, training=False):
        return _WrongGrad().apply(x)

    def compute_output_shape(self, input_shape):
        return input_shape


class BadShape(Layer):
    def call(self, x, training=False):
        return F.reshape(x, (x.shape[0], -1))

    def compute_output_shape(self, input_shape):
        return input_shape  # wrong for inputs of rank 3


class BadConfig(Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x, training=False):
        return x * self.factor

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):  # forgets "factor": a clone would compute something else
        return {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}


def test_harness_catches_a_wrong_gradient():
    with pytest.raises(AssertionError, match="gradcheck"):
        check_layer(BadGradient, {}, input_shape=(2, 3), check_saving=False,
                    check_training=False)


def test_harness_catches_a_wrong_compute_output_shape():
    with pytest.raises(AssertionError, match="compute_output_shape"):
        check_layer(BadShape, {}, input_shape=(2, 3, 4))


def test_harness_catches_a_config_that_loses_an_argument():
    with pytest.raises(AssertionError, match="clone"):
        check_layer(BadConfig, {"factor": 3.0}, input_shape=(2, 3))


def test_harness_catches_wrong_weight_shapes():
    with pytest.raises(AssertionError, match="weights"):
        check_layer(Dense, {"units": 3}, input_shape=(2, 4),
                    expected_weights={"kernel": (3, 4), "bias": (3,)})


def test_deleting_an_attribute_untracks_the_sublayer():
    block = Block()
    block(_x())
    del block.extra
    assert list(block.state_dict()) == ["first.kernel", "first.bias", "second.kernel",
                                        "second.bias"]


def test_sublayer_assigned_before_super_init_explains():
    class Early(Layer):
        def __init__(self):
            self.inner = Dense(2)
            super().__init__()

    assert_error(RuntimeError, Early, contains=["super().__init__()"])
