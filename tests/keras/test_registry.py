"""The registry that loading resolves names through: packages ("my_pkg>Name"), redefinitions,
user classes named like fundl's, and custom initializers/regularizers/constraints."""
import warnings

import numpy as np
import pytest

import fundl as fl
from fundl import initializers, regularizers
from fundl.layers import Dense, Layer, register_serializable
from fundl.layers.base import _REGISTRY, deserialize_object, get_registered, registered_name
from fundl.models import Sequential, model_from_json
from fundl.testing import assert_error


class HalfInit(initializers.Initializer):
    """A user initializer with a config."""

    def __init__(self, value=0.5):
        self.value = value

    def __call__(self, shape, dtype=None):
        return np.full(shape, self.value, dtype=dtype or "float32")

    def get_config(self):
        return {"value": self.value}


class L1Half(regularizers.Regularizer):
    def __init__(self, factor=0.5):
        self.factor = factor

    def __call__(self, w):
        return fl.sum(fl.abs(w)) * self.factor

    def get_config(self):
        return {"factor": self.factor}


def test_package_key_and_registered_name():
    @register_serializable(package="my_pkg")
    class Shifted(Layer):
        def call(self, x):
            return x + 1

    assert registered_name(Shifted) == "my_pkg>Shifted"
    assert get_registered("my_pkg>Shifted") is Shifted
    assert "Shifted" not in _REGISTRY or _REGISTRY["Shifted"] is not Shifted
    model = Sequential([Dense(2, input_dim=2), Shifted()])
    assert model.get_config()["layers"][1]["class_name"] == "my_pkg>Shifted"
    clone = model_from_json(model.to_json())
    assert type(clone.layers[1]) is Shifted


def test_two_packages_keep_two_classes_of_one_name():
    def make(package, offset):
        class Offset(Layer):
            def call(self, x):
                return x + offset

        return register_serializable(Offset, package=package)

    a, b = make("pkg_a", 1), make("pkg_b", 2)
    assert get_registered("pkg_a>Offset") is a and get_registered("pkg_b>Offset") is b


def test_custom_objects_win_over_the_registry_and_match_without_package():
    class Other(Layer):
        pass

    assert get_registered("Dense", {"Dense": Other}) is Other
    assert get_registered("my_pkg>Thing", {"Thing": Other}) is Other


def _module_class(name, module):
    """A Layer subclass as if defined at the top of ``module`` (what a class statement makes)."""
    return type(name, (Layer,), {"__module__": module, "__qualname__": name})


def test_redefinition_replaces_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _module_class("Redefined", "notebook")
        again = _module_class("Redefined", "notebook")  # the cell run a second time
    assert get_registered("Redefined") is again


def test_a_different_class_of_the_same_name_warns_and_replaces():
    _module_class("Clash", "lib_one")
    with pytest.warns(UserWarning, match="lib_one.Clash.*lib_two.Clash.*package"):
        second = _module_class("Clash", "lib_two")
    assert get_registered("Clash") is second


def test_user_class_named_like_a_builtin_does_not_replace_it():
    user_dense = _module_class("Dense", "user_code")
    assert get_registered("Dense") is Dense
    assert registered_name(user_dense) == "Custom>Dense"
    assert get_registered("Custom>Dense") is user_dense


def test_register_serializable_checks_its_arguments():
    assert_error(ValueError, register_serializable, package="a>b", contains=["package", "'>'"])
    assert_error(ValueError, register_serializable, name="", contains=["name"])
    assert_error(TypeError, get_registered, 3, contains=["string"])


def test_custom_initializer_and_regularizer_round_trip_through_custom_objects():
    layer = Dense(2, kernel_initializer=HalfInit(0.25), kernel_regularizer=L1Half(0.1),
                  name="d")
    model = Sequential([layer], name="m")
    model.build((None, 3))
    np.testing.assert_array_equal(layer.kernel.numpy(), np.full((3, 2), 0.25, "float32"))
    text = model.to_json()
    assert_error(ValueError, model_from_json, text, contains=["HalfInit"])
    clone = model_from_json(text, custom_objects={"HalfInit": HalfInit, "L1Half": L1Half})
    clone.build((None, 3))
    inner = clone.get_layer("d")
    assert isinstance(inner.kernel_initializer, HalfInit)
    assert inner.kernel_initializer.value == 0.25
    np.testing.assert_array_equal(inner.kernel.numpy(), np.full((3, 2), 0.25, "float32"))
    assert isinstance(inner.kernel_regularizer, L1Half) and inner.kernel_regularizer.factor == 0.1


def test_registered_custom_initializer_needs_no_custom_objects():
    @register_serializable(package="inits")
    class Threes(initializers.Initializer):
        def __call__(self, shape, dtype=None):
            return np.full(shape, 3.0, dtype=dtype or "float32")

    obj = deserialize_object(initializers, {"class_name": "inits>Threes", "config": {}})
    assert isinstance(obj, Threes)
    layer = Dense(1, kernel_initializer=Threes())
    assert layer.get_config()["kernel_initializer"]["class_name"] == "inits>Threes"
    clone = Dense.from_config(layer.get_config())
    assert isinstance(clone.kernel_initializer, Threes)


def test_unknown_custom_object_is_still_a_clear_error():
    assert_error(ValueError, deserialize_object, initializers,
                 {"class_name": "Nowhere", "config": {}}, contains=["Nowhere"])
