"""GraphConv: shapes, weights, the dense GCN formula, gradients, config, errors."""
import json

import numpy as np
import pytest

import fundl as fl
from fundl.layers import GraphConv
from fundl.optimizers import SGD, Adam

N, F_IN = 7, 5
EDGES = np.array([[0, 1, 1, 2, 2, 3, 4, 5], [1, 0, 2, 1, 3, 2, 5, 4]])  # node 6 isolated


def _graph(dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, F_IN)).astype(dtype), fl.normalized_adjacency(EDGES, N)


@pytest.mark.parametrize("units", [3, 8])  # fewer and more units than features: both orders
@pytest.mark.parametrize("use_bias", [True, False])
def test_matches_dense_formula(units, use_bias):
    x, a = _graph()
    fl.manual_seed(0)
    layer = GraphConv(units, activation="relu", use_bias=use_bias,
                      bias_initializer="random_normal")
    y = layer([fl.tensor(x), a])
    assert y.shape == (N, units) and y.dtype == np.float32
    w = layer.kernel.numpy().astype(np.float64)
    want = a.to_dense().astype(np.float64) @ x.astype(np.float64) @ w
    if use_bias:
        want = want + layer.bias.numpy()
    np.testing.assert_allclose(y.numpy(), np.maximum(want, 0), rtol=1e-5, atol=1e-5)


def test_weights_and_output_shape():
    x, a = _graph()
    layer = GraphConv(4)
    assert not layer.built
    layer([fl.tensor(x), a])
    assert {k: v.shape for k, v in layer.state_dict().items()} == {"kernel": (F_IN, 4),
                                                                    "bias": (4,)}
    assert len(layer.trainable_weights) == 2 and layer.count_params() == F_IN * 4 + 4
    assert layer.compute_output_shape((None, F_IN)) == (None, 4)


@pytest.mark.parametrize("units", [2, 9])
def test_gradcheck_input_kernel_bias(units):
    x, a = _graph(np.float64)
    fl.manual_seed(1)
    layer = GraphConv(units, activation="tanh", bias_initializer="random_normal",
                      dtype="float64")
    xt = fl.tensor(x, requires_grad=True)
    layer([xt, a])
    fl.gradcheck(lambda t, *_: layer([t, a]), [xt, layer.kernel, layer.bias])
    assert layer.kernel.grad.shape == (F_IN, units) and layer.bias.grad.shape == (units,)
    assert np.any(layer.kernel.grad != 0) and np.any(layer.bias.grad != 0)


def test_one_sgd_step_lowers_the_loss():
    x, a = _graph()
    target = np.random.default_rng(5).standard_normal((N, 3)).astype(np.float32)
    fl.manual_seed(2)
    layer = GraphConv(3)
    opt = SGD(0.1)

    def loss():
        return ((layer([fl.tensor(x), a]) - target) ** 2).mean()

    before = loss()
    before.backward()
    opt.apply([w.grad for w in layer.trainable_weights], layer.trainable_weights)
    assert float(loss().item()) < float(before.item())


def test_config_round_trip():
    x, a = _graph()
    layer = GraphConv(4, activation="relu", use_bias=False, kernel_regularizer="l2",
                      name="gc1")
    y = layer([fl.tensor(x), a])
    config = json.loads(json.dumps(layer.get_config()))
    assert config["units"] == 4 and config["activation"] == "relu" and not config["use_bias"]
    clone = GraphConv.from_config(config)
    assert json.loads(json.dumps(clone.get_config())) == config
    clone([fl.tensor(x), a])
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone([fl.tensor(x), a]).numpy(), y.numpy())
    assert len(clone.losses) == 1  # the kernel regularizer came back too


def test_errors_name_the_layer_and_shapes():
    x, a = _graph()
    layer = GraphConv(4, name="gc")
    with pytest.raises(TypeError, match="GraphConv 'gc'.*SparseMatrix"):
        layer(fl.tensor(x))
    with pytest.raises(TypeError, match="GraphConv 'gc'.*ndarray"):
        layer([fl.tensor(x), a.to_dense()])
    layer([fl.tensor(x), a])
    with pytest.raises(ValueError, match=r"GraphConv 'gc'.*\(7, 6\)"):
        layer([fl.tensor(np.ones((N, F_IN + 1), np.float32)), a])
    with pytest.raises(ValueError, match=r"sparse_matmul.*\(7, 7\).*\(6, 4\)"):
        layer([fl.tensor(np.ones((N - 1, F_IN), np.float32)), a])
    with pytest.raises(ValueError, match="units must be a positive integer"):
        GraphConv(0)


# -- the functional API: node features as an Input, the graph as a constant ---------------------
def _functional_gcn(a):
    from fundl.layers import Input
    from fundl.models import Model

    fl.manual_seed(0)
    inputs = Input(shape=(F_IN,))
    hidden = GraphConv(4, activation="relu")([inputs, a])
    return Model(inputs, GraphConv(3, activation="softmax")([hidden, a]))


def test_functional_model_computes_what_the_layers_compute():
    x, a = _graph()
    model = _functional_gcn(a)
    first, second = model.layers[1], model.layers[2]
    expected = second([first([fl.tensor(x), a]), a]).numpy()
    np.testing.assert_allclose(model.predict(x, batch_size=N, verbose=0), expected, rtol=1e-6)
    assert model(fl.tensor(x)).shape == (N, 3)


def test_functional_model_trains_on_labelled_nodes_only():
    x, a = _graph()
    y = np.array([0, 1, 2, 0, 1, 2, 0])
    labelled = np.array([1, 1, 1, 0, 0, 0, 0], "float32")  # semi-supervised: 3 labels
    model = _functional_gcn(a)
    model.compile(optimizer=Adam(0.05), loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, batch_size=N, shuffle=False, epochs=40, sample_weight=labelled,
                        verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]


def test_functional_model_saves_weights_but_not_whole(tmp_path):
    x, a = _graph()
    model = _functional_gcn(a)
    path = tmp_path / "gcn.fundl"
    with pytest.raises(ValueError, match="constant arguments.*adjacency.*save_weights"):
        model.save(str(path))
    assert not path.exists()  # nothing written
    weights = tmp_path / "gcn.weights.fundl"
    model.save_weights(str(weights))
    rebuilt = _functional_gcn(a)
    for w in rebuilt.weights:
        w.data[...] = 0
    rebuilt.load_weights(str(weights))
    np.testing.assert_array_equal(rebuilt.predict(x, batch_size=N, verbose=0),
                                  model.predict(x, batch_size=N, verbose=0))


# -- the lecture's node-wise form: own weight W0, neighbours' weight W1 -------------------------

def test_self_kernel_is_the_node_wise_update_rule():
    """h_i' = relu(h_i W0 + sum_{j in N(i)} h_j W1 / sqrt(d_i d_j)), node by node."""
    x, _ = _graph(np.float64)
    neighbours = fl.normalized_adjacency(EDGES, N, self_loops=False)
    fl.manual_seed(2)
    layer = GraphConv(3, self_kernel=True, activation="relu", use_bias=False, dtype="float64")
    y = layer([fl.tensor(x), neighbours]).numpy()
    w0, w1 = layer.self_weight.numpy(), layer.kernel.numpy()
    degree = np.bincount(EDGES[0], minlength=N)
    for i in range(N):
        total = x[i] @ w0
        for j in EDGES[1][EDGES[0] == i]:
            total = total + x[j] @ w1 / np.sqrt(degree[i] * degree[j])
        np.testing.assert_allclose(y[i], np.maximum(total, 0), rtol=1e-6, atol=1e-7)  # A is float32
    assert sorted(layer.state_dict()) == ["kernel", "self_kernel"]


def test_self_kernel_gradcheck_and_config():
    x, _ = _graph(np.float64)
    a = fl.normalized_adjacency(EDGES, N, self_loops=False)
    layer = GraphConv(2, self_kernel=True, activation="tanh", dtype="float64",
                      bias_initializer="random_normal")
    xt = fl.tensor(x, requires_grad=True)
    layer([xt, a])
    fl.gradcheck(lambda t, *_: layer([t, a]), [xt, layer.kernel, layer.self_weight, layer.bias])
    config = json.loads(json.dumps(layer.get_config()))
    assert config["self_kernel"] is True
    clone = GraphConv.from_config(config)
    clone([fl.tensor(x), a])
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone([fl.tensor(x), a]).numpy(), layer([fl.tensor(x), a]).numpy())
    with pytest.raises(TypeError, match="self_kernel"):
        GraphConv(2, self_kernel="yes")
