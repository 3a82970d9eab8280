"""Weight constraints: formulas (Keras's), config round-trip, errors, and use by layers."""
import json

import numpy as np
import pytest

import fundl as fl
from fundl import constraints as C
from fundl.testing import assert_error


def _w(seed=0, shape=(4, 3)):
    return np.random.default_rng(seed).standard_normal(shape)


def test_max_norm_rescales_only_columns_over_the_limit():
    w = np.array([[3.0, 0.3], [4.0, 0.4]])          # column norms 5 and 0.5
    out = C.MaxNorm(1.0)(w)
    np.testing.assert_allclose(out[:, 0], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(out[:, 1], [0.3, 0.4], rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=0), [1.0, 0.5], rtol=1e-6)


def test_max_norm_keras_formula_on_several_axes():
    w = _w(1, (3, 3, 2, 4))
    norms = np.sqrt((w ** 2).sum(axis=(0, 1, 2), keepdims=True))
    want = w * np.clip(norms, 0, 2.0) / (1e-7 + norms)
    np.testing.assert_allclose(C.MaxNorm(2.0, axis=[0, 1, 2])(w), want, rtol=1e-12)


def test_non_neg_zeroes_negatives_and_keeps_dtype():
    w = _w(2).astype(np.float32)
    out = C.NonNeg()(w)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.where(w >= 0, w, 0))


def test_unit_norm_gives_unit_columns_and_rows():
    w = _w(3)
    np.testing.assert_allclose(np.linalg.norm(C.UnitNorm()(w), axis=0), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(C.UnitNorm(axis=1)(w), axis=1), 1.0, rtol=1e-6)


def test_min_max_norm_with_rate():
    w = np.array([[0.3, 30.0], [0.4, 40.0]])       # norms 0.5 and 50
    np.testing.assert_allclose(np.linalg.norm(C.MinMaxNorm(1.0, 2.0)(w), axis=0), [1.0, 2.0],
                               rtol=1e-6)
    half = C.MinMaxNorm(1.0, 2.0, rate=0.5)(w)     # halfway: 0.75 and 26
    np.testing.assert_allclose(np.linalg.norm(half, axis=0), [0.75, 26.0], rtol=1e-6)


def test_zero_slice_stays_zero():
    w = np.zeros((3, 2))
    for c in (C.MaxNorm(), C.UnitNorm(), C.MinMaxNorm(1.0, 2.0)):
        out = c(w)
        assert np.isfinite(out).all() and not out.any()


def test_tensor_in_tensor_out():
    t = fl.tensor(_w(4))
    out = C.NonNeg()(t)
    assert isinstance(out, fl.Tensor)
    np.testing.assert_array_equal(out.numpy(), np.maximum(_w(4), 0))


@pytest.mark.parametrize("c", [C.MaxNorm(3.0, axis=[0, 1]), C.NonNeg(), C.UnitNorm(axis=1),
                               C.MinMaxNorm(0.5, 2.0, 0.3, axis=-1)],
                         ids=lambda c: type(c).__name__)
def test_serialize_round_trip(c):
    config = json.loads(json.dumps(C.serialize(c)))
    clone = C.get(config)
    assert type(clone) is type(c) and clone.get_config() == c.get_config()
    w = _w(5, (3, 4))
    np.testing.assert_array_equal(clone(w), c(w))


def test_get_names_aliases_and_passthrough():
    assert isinstance(C.get("max_norm"), C.MaxNorm) and isinstance(C.get("NonNeg"), C.NonNeg)
    assert C.max_norm is C.MaxNorm and C.unit_norm is C.UnitNorm
    assert C.get(None) is None
    fn = lambda w: w  # noqa: E731 - any callable is accepted as it is
    assert C.get(fn) is fn
    assert C.MaxNorm().get_config() == {"max_value": 2.0, "axis": 0}


def test_errors():
    assert_error(ValueError, lambda: C.get("maxnorm"), contains=("max_norm",))
    assert_error(TypeError, lambda: C.get(3), contains=("constraints.get",))
    assert_error(ValueError, lambda: C.MaxNorm(-1.0), contains=("MaxNorm", "max_value"))
    assert_error(TypeError, lambda: C.MaxNorm("big"), contains=("MaxNorm", "max_value"))
    assert_error(ValueError, lambda: C.MinMaxNorm(2.0, 1.0),
                 contains=("MinMaxNorm", "min_value"))
    assert_error(ValueError, lambda: C.MinMaxNorm(rate=2.0), contains=("MinMaxNorm", "rate"))
    assert_error(TypeError, lambda: C.UnitNorm(axis=1.5), contains=("UnitNorm", "axis"))
    assert_error(ValueError, lambda: C.UnitNorm(axis=3)(np.ones((2, 2))),
                 contains=("UnitNorm", "(2, 2)"))
    assert_error(ValueError, lambda: C.serialize(lambda w: w),
                 contains=("constraints.serialize",))


# -- on layers: carried by the weights, saved in configs, applied by the optimizers ---------------

def _layers_with_constraints():
    from fundl import layers as L
    nn = C.NonNeg()
    return [
        (lambda: L.Dense(3, kernel_constraint=nn, bias_constraint="max_norm"), (2, 4),
         {"kernel": "NonNeg", "bias": "MaxNorm"}),
        (lambda: L.Conv2D(2, 2, kernel_constraint=C.MaxNorm(1.0, axis=[0, 1, 2])), (1, 3, 3, 2),
         {"kernel": "MaxNorm"}),
        (lambda: L.Conv1D(2, 2, bias_constraint=nn), (1, 4, 2), {"bias": "NonNeg"}),
        (lambda: L.Conv2DTranspose(2, 2, kernel_constraint=nn), (1, 3, 3, 2), {"kernel": "NonNeg"}),
        (lambda: L.Conv1DTranspose(2, 2, bias_constraint=nn), (1, 3, 2), {"bias": "NonNeg"}),
        (lambda: L.DepthwiseConv2D(2, depthwise_constraint=nn, bias_constraint=nn), (1, 3, 3, 2),
         {"depthwise_kernel": "NonNeg", "bias": "NonNeg"}),
        (lambda: L.SeparableConv2D(2, 2, pointwise_constraint="unit_norm"), (1, 3, 3, 2),
         {"pointwise_kernel": "UnitNorm"}),
        (lambda: L.Embedding(5, 3, embeddings_constraint=C.MaxNorm(1.0, axis=1)),
         "ints", {"embeddings": "MaxNorm"}),
        (lambda: L.BatchNormalization(gamma_constraint=nn, beta_constraint=nn), (4, 3),
         {"gamma": "NonNeg", "beta": "NonNeg"}),
        (lambda: L.LayerNormalization(gamma_constraint=nn), (4, 3), {"gamma": "NonNeg"}),
        (lambda: L.LSTM(2, kernel_constraint=nn, recurrent_constraint=C.MaxNorm(1.0),
                        bias_constraint=nn), (1, 3, 2),
         {"cell.kernel": "NonNeg", "cell.recurrent_kernel": "MaxNorm", "cell.bias": "NonNeg"}),
        (lambda: L.SimpleRNNCell(2, kernel_constraint=nn), None, {"kernel": "NonNeg"}),
        (lambda: L.PReLU(alpha_constraint=nn), (2, 3), {"alpha": "NonNeg"}),
    ]


@pytest.mark.parametrize("case", range(13))
def test_layer_weights_carry_their_constraints_and_configs_keep_them(case):
    make, shape, expected = _layers_with_constraints()[case]
    layer = make()
    if shape == "ints":
        layer(np.array([[0, 4, 2]]))
    elif shape is None:  # a cell: one step
        layer(np.ones((1, 3), "float32"), layer.get_initial_state(1))
    else:
        layer(np.ones(shape, "float32"))
    entries = {key: w for key, w, _ in layer._weight_entries()}
    for key, w in entries.items():
        want = expected.get(key)
        got = getattr(w, "constraint", None)
        assert (type(got).__name__ if got is not None else None) == want, key
    config = json.loads(json.dumps(layer.get_config()))
    clone = type(layer).from_config(config)
    assert json.loads(json.dumps(clone.get_config())) == config


def test_fit_keeps_a_non_negative_kernel_non_negative():
    from fundl.layers import Dense, Input
    from fundl.models import Model
    fl.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((32, 4)).astype("float32")
    y = -x.sum(axis=1, keepdims=True)  # the unconstrained optimum is all negative
    inputs = Input(shape=(4,))
    dense = Dense(1, kernel_constraint="non_neg", kernel_initializer="ones")
    model = Model(inputs, dense(inputs))
    model.compile(optimizer=fl.optimizers.SGD(0.1), loss="mse")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert (dense.kernel.numpy() >= 0).all()
    assert (dense.kernel.numpy() == 0).any()  # the projection was active


def test_max_norm_holds_after_adam_steps_and_survives_save_load(tmp_path):
    from fundl.layers import Dense, Input
    from fundl.models import Model, load_model
    fl.manual_seed(1)
    x = np.random.default_rng(1).standard_normal((32, 6)).astype("float32") * 10
    y = x[:, :2] * 5
    inputs = Input(shape=(6,))
    model = Model(inputs, Dense(2, kernel_constraint=C.MaxNorm(0.5))(inputs))
    model.compile(optimizer=fl.optimizers.Adam(0.5), loss="mse")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    kernel = model.layers[-1].kernel.numpy()
    assert (np.linalg.norm(kernel, axis=0) <= 0.5 + 1e-5).all()
    path = str(tmp_path / "m.fundl")
    model.save(path)
    loaded = load_model(path)
    restored = loaded.layers[-1].kernel.constraint
    assert isinstance(restored, C.MaxNorm) and restored.max_value == 0.5


def test_graph_conv_kernels_carry_the_kernel_constraint():
    from fundl.layers import GraphConv
    a = fl.normalized_adjacency(np.array([[0, 1], [1, 2]]), 3)
    layer = GraphConv(2, kernel_constraint="non_neg", self_kernel=True)
    layer([fl.tensor(np.ones((3, 4), "float32")), a])
    assert isinstance(layer.kernel.constraint, C.NonNeg)
    assert isinstance(layer.self_weight.constraint, C.NonNeg)
