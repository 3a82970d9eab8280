"""Whole models on the GPU: training, inference, saving, the default device (CuPy needed).

Every op and layer test already compares its GPU run with its CPU run where a GPU is (the
harnesses' ``compare_with_gpu``/``compare_layer_with_gpu``); these tests put the pieces
together: a model moved with ``model.to("gpu")`` trains step for step like its CPU twin,
its optimizer state and weights stay on the GPU, it saves and reloads, and
``fl.set_device("gpu")`` makes new tensors and layers there. Skipped without a GPU.
"""
import os
import tempfile

import numpy as np
import pytest

import fundl as fl
from fundl import backend
from fundl.layers import (GRU, LSTM, BatchNormalization, Conv2D, Dense, Dropout, Embedding,
                          Flatten, GlobalAveragePooling2D, GraphConv, Input, MaxPooling2D)
from fundl.models import Model, Sequential, load_model
from fundl.optimizers import SGD, Adam

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not fl.gpu_available(), reason="needs CuPy and an NVIDIA GPU")]


def _cnn():
    return Sequential([
        Input(shape=(12, 12, 3)),
        Conv2D(8, 3, padding="same", activation="relu"),
        BatchNormalization(),
        MaxPooling2D(2),
        Conv2D(6, 3, strides=2, dilation_rate=1, groups=2),
        Dropout(0.0),
        Flatten(),
        Dense(5, activation="softmax"),
    ])


def _rnn(kind):
    return Sequential([Input(shape=(7,), dtype="int64"), Embedding(20, 6, mask_zero=True),
                       kind(8, return_sequences=True), kind(5), Dense(3, activation="softmax")])


def _twins(build, optimizer, loss="sparse_categorical_crossentropy"):
    """The same model twice, with the same weights: one on the CPU, one moved to the GPU."""
    fl.manual_seed(0)
    cpu = build()
    gpu = build()
    gpu.set_weights(cpu.get_weights())
    gpu.to("gpu")
    for m in (cpu, gpu):
        m.compile(optimizer=optimizer(), loss=loss, metrics=["accuracy"])
    return cpu, gpu


def _assert_on_gpu(model):
    for w in model.weights:
        assert backend.device_of(w.data) == "gpu", w.name


def _train_side_by_side(cpu, gpu, x, y, steps=3):
    for _ in range(steps):
        a = cpu.train_on_batch(x, y)
        b = gpu.train_on_batch(x, y)
        np.testing.assert_allclose(b, a, rtol=2e-4, atol=1e-5)
    _assert_on_gpu(gpu)
    for w_cpu, w_gpu in zip(cpu.weights, gpu.weights):
        np.testing.assert_allclose(backend.to_numpy(w_gpu.data), w_cpu.data, rtol=1e-3,
                                   atol=2e-5, err_msg=w_cpu.name)


def test_cnn_trains_on_the_gpu_step_for_step_like_on_the_cpu():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 12, 12, 3)).astype("float32")
    y = rng.integers(0, 5, 16)
    cpu, gpu = _twins(_cnn, lambda: SGD(0.05, momentum=0.9))
    _train_side_by_side(cpu, gpu, x, y)
    slots = gpu.optimizer.slots(gpu.trainable_weights[0])
    assert all(backend.device_of(s) == "gpu" for s in slots.values())
    p = gpu.predict(x, verbose=0)
    assert isinstance(p, np.ndarray)  # predictions come back as NumPy arrays
    np.testing.assert_allclose(p, cpu.predict(x, verbose=0), rtol=1e-4, atol=1e-6)
    # CuPy arrays are taken like NumPy ones
    xp = backend.device_module("gpu")
    np.testing.assert_allclose(gpu.test_on_batch(xp.asarray(x), xp.asarray(y)),
                               cpu.test_on_batch(x, y), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", [LSTM, GRU])
def test_masked_recurrent_model_trains_on_the_gpu_like_on_the_cpu(kind):
    rng = np.random.default_rng(1)
    x = rng.integers(1, 20, (6, 7))
    x[:3, 4:] = 0  # padding, masked by the Embedding
    y = rng.integers(0, 3, 6)
    cpu, gpu = _twins(lambda: _rnn(kind), lambda: Adam(0.01))
    _train_side_by_side(cpu, gpu, x, y)


@pytest.fixture
def float64():
    fl.set_default_dtype("float64")
    yield
    fl.set_default_dtype("float32")


def test_resnet20_step_on_the_gpu_matches_the_cpu(float64):
    # in float64: in float32, two steps of batch norm and momentum turn summation-order
    # differences into 1e-4 relative weight differences, which would hide nothing but noise
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 32, 32, 3))
    y = rng.integers(0, 10, 8)
    cpu, gpu = _twins(lambda: fl.zoo.resnet_cifar(20), lambda: SGD(0.1, momentum=0.9))
    _train_side_by_side(cpu, gpu, x, y, steps=2)


def test_fit_on_the_gpu_learns_and_evaluates():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((256, 10)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int64")
    fl.manual_seed(0)
    model = Sequential([Input(shape=(10,)), Dense(16, activation="relu"),
                        Dense(2, activation="softmax")]).to("gpu")
    model.compile(optimizer=Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=8, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert accuracy > 0.9
    _assert_on_gpu(model)


def test_a_gpu_model_saves_and_reloads():
    fl.manual_seed(0)
    model = _cnn().to("gpu")
    model.compile(optimizer=Adam(0.01), loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(4).standard_normal((4, 12, 12, 3)).astype("float32")
    model.train_on_batch(x, np.arange(4))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "m.fundl")
        model.save(path)
        loaded = load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    loaded.to("gpu")
    loaded.train_on_batch(x, np.arange(4))  # the optimizer state follows the weights
    _assert_on_gpu(loaded)


def test_set_device_gpu_puts_new_tensors_and_layers_on_the_gpu():
    fl.set_device("gpu")
    try:
        assert fl.randn(3, 4).device == "gpu"
        assert fl.zeros(2).device == "gpu"
        layer = Dense(3)
        y = layer(fl.ones((2, 4)))
        assert y.device == "gpu" and backend.device_of(layer.kernel.data) == "gpu"
        model = Sequential([Input(shape=(4,)), Dense(2)])
        _assert_on_gpu(model)
    finally:
        fl.set_device("cpu")


def test_graph_conv_on_the_gpu_matches_the_cpu():
    rng = np.random.default_rng(5)
    edges = rng.integers(0, 30, (2, 90))
    adjacency = fl.normalized_adjacency(edges, 30)
    x = rng.standard_normal((30, 7))
    results = []
    for device in ("cpu", "gpu"):
        fl.manual_seed(0)
        layer = GraphConv(4, activation="relu", dtype="float64")
        layer([fl.tensor(x), adjacency])
        layer.to(device)
        xt = fl.tensor(x, requires_grad=True).to(device)
        out = layer([xt, adjacency.to(device)])
        (out * out).sum().backward()
        results.append([backend.to_numpy(out.data), backend.to_numpy(layer.kernel.grad)])
    for got, want in zip(*results[::-1]):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def _frozen_base_head():
    # transfer learning's usual head: a frozen base, global pooling, a new Dense
    inputs = Input(shape=(10, 10, 3))
    base = Conv2D(4, 3, activation="relu")
    base.trainable = False
    return Model(inputs, Dense(2)(GlobalAveragePooling2D()(base(inputs))))


def test_global_pooling_head_on_the_gpu_matches_the_cpu():
    cpu, gpu = _twins(_frozen_base_head, lambda: SGD(0.1), loss="mse")
    x = np.random.default_rng(6).standard_normal((5, 10, 10, 3)).astype("float32")
    y = np.ones((5, 2), "float32")
    _train_side_by_side(cpu, gpu, x, y, steps=2)
    np.testing.assert_array_equal(backend.to_numpy(gpu.layers[1].kernel.data),
                                  cpu.layers[1].kernel.data)  # the frozen base did not move


def test_inputs_on_two_devices_get_a_clear_error():
    layer = Dense(3)
    layer(fl.ones((2, 4)))
    layer.to("gpu")
    with pytest.raises(TypeError, match="different devices"):
        layer(fl.tensor(np.ones((2, 4), "float32")))


def test_manual_seed_makes_gpu_dropout_repeatable():
    x = fl.ones((4, 50)).to("gpu")
    masks = []
    for _ in range(2):
        fl.manual_seed(3)
        masks.append(backend.to_numpy(Dropout(0.5)(x, training=True).data))
    np.testing.assert_array_equal(masks[0], masks[1])
    assert 0 < (masks[0] == 0).mean() < 1
