"""Saving what users write themselves: subclassed models and layers, custom initializers,
regularizers and constraints, through save() and load_model(custom_objects=...)."""
import json
import zipfile

import numpy as np
import pytest

import fundl as fl
from fundl.layers import Dense, Layer
from fundl.models import load_model
from fundl.saving import CorruptFileError


class ScaledRelu(Layer):
    def __init__(self, units=4, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.scale = units, scale

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform",
                                 name="w")

    def call(self, x):
        return fl.relu(x @ self.w) * self.scale


class TwoBlocks(fl.Model):
    def __init__(self, hidden=8, classes=3, **kwargs):
        super().__init__(**kwargs)
        self.block = ScaledRelu(hidden, scale=2.0)
        self.head = Dense(classes, activation="softmax")

    def call(self, x, training=None):
        return self.head(self.block(x))


class HalfInit:
    def __init__(self, value=0.5):
        self.value = value

    def __call__(self, shape, dtype=None):
        return np.full(shape, self.value, dtype=dtype or "float32")

    def get_config(self):
        return {"value": self.value}


class SumSquares:
    def __init__(self, l=0.1):
        self.l = l

    def __call__(self, w):
        return self.l * (w * w).sum()

    def get_config(self):
        return {"l": self.l}


class ClipTo:
    def __init__(self, limit=0.2):
        self.limit = limit

    def __call__(self, w):
        return np.clip(w, -self.limit, self.limit)

    def get_config(self):
        return {"limit": self.limit}


X = np.random.default_rng(0).random((12, 5)).astype("float32")
Y = np.arange(12) % 3
CUSTOM = {"TwoBlocks": TwoBlocks, "ScaledRelu": ScaledRelu, "HalfInit": HalfInit,
          "SumSquares": SumSquares, "ClipTo": ClipTo}


def test_a_subclassed_model_saves_and_reloads_with_its_optimizer(tmp_path):
    fl.manual_seed(0)
    model = TwoBlocks(hidden=6)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(X, Y, epochs=2, batch_size=4, verbose=0)
    model.save(tmp_path / "m.fundl")
    loaded = load_model(tmp_path / "m.fundl", custom_objects=CUSTOM)
    assert type(loaded) is TwoBlocks and loaded.block.units == 6 and loaded.block.scale == 2.0
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.optimizer.iterations == model.optimizer.iterations
    # training resumes exactly where it stopped
    model.fit(X, Y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    loaded.fit(X, Y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-6)


def test_a_sequential_holding_a_custom_layer_reloads(tmp_path):
    model = fl.Sequential([fl.Input(shape=(5,)), ScaledRelu(7, scale=0.5), Dense(2)])
    model.save(tmp_path / "s.fundl")
    loaded = load_model(tmp_path / "s.fundl", custom_objects={"ScaledRelu": ScaledRelu})
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_custom_initializer_regularizer_and_constraint_round_trip(tmp_path):
    model = fl.Sequential([fl.Input(shape=(5,)),
                           Dense(3, kernel_initializer=HalfInit(0.25),
                                 kernel_regularizer=SumSquares(0.3),
                                 kernel_constraint=ClipTo(0.1))])
    model.compile(optimizer="sgd", loss="mse")
    model.save(tmp_path / "c.fundl")
    layer = load_model(tmp_path / "c.fundl", custom_objects=CUSTOM).layers[0]
    assert isinstance(layer.kernel_initializer, HalfInit) and layer.kernel_initializer.value == 0.25
    assert isinstance(layer.kernel_regularizer, SumSquares) and layer.kernel_regularizer.l == 0.3
    assert isinstance(layer.kernel_constraint, ClipTo) and layer.kernel_constraint.limit == 0.1


def test_a_missing_custom_class_names_it_and_the_fix(tmp_path):
    model = fl.Sequential([fl.Input(shape=(5,)), ScaledRelu(3)])
    path = tmp_path / "s.fundl"
    model.save(path)
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    # As if the file came from a program whose class this process has never seen.
    members["config.json"] = members["config.json"].replace(b'"ScaledRelu"', b'"NeverDefined"')
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(ValueError, match="NeverDefined.*custom_objects"):
        load_model(path)
    loaded = load_model(path, custom_objects={"NeverDefined": ScaledRelu})
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


@pytest.mark.parametrize("build", [{"input_shape": [None, 10 ** 9]},
                                   {"input_shape": "x"}, {"input_shape": [None, -3]},
                                   {"input_shape": [[None, 5], [None, True]]}])
def test_a_hostile_build_config_is_refused_before_any_forward_pass(tmp_path, build):
    fl.manual_seed(0)
    model = TwoBlocks()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(X, Y, epochs=1, batch_size=4, verbose=0)
    path = tmp_path / "m.fundl"
    model.save(path)
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    config = json.loads(members["config.json"])
    config["build_config"] = build
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(CorruptFileError, match="build_config"):
        load_model(path, custom_objects=CUSTOM)
