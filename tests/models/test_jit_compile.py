"""compile(jit_compile=True): the built-in training step through graph mode gives eager mode's
numbers over the zoo and every optimizer, and falls back to eager with one warning."""
import warnings

import numpy as np
import pytest

import fundl as fl
from fundl import zoo

L = fl.layers


def _data(shape, n=24, classes=4, regression=None, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n,) + shape).astype(fl.get_default_dtype())
    if regression == "self":
        return x, x
    if regression is not None:
        return x, rng.standard_normal((n, regression)).astype(x.dtype)
    return x, rng.integers(0, classes, n)


def _train(make, jit, x, y, loss, optimizer="adam", epochs=2, batch_size=10, metrics=None):
    """Train a fresh model; returns (history, final weights, model)."""
    fl.manual_seed(0)
    model = make()
    opt = optimizer() if callable(optimizer) else optimizer
    model.compile(optimizer=opt, loss=loss, metrics=metrics, jit_compile=jit)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hist = model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=False)
    model._caught = [str(w.message) for w in caught if "fl.function" in str(w.message)]
    return hist.history, [w.numpy().copy() for w in model.weights], model


def _assert_same(eager, graph, tol):
    (h1, w1, _), (h2, w2, _) = eager, graph
    assert h1.keys() == h2.keys()
    for k in h1:
        np.testing.assert_allclose(h2[k], h1[k], rtol=tol, atol=tol)
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol)


def _mlp():
    return fl.Sequential([L.Input((12,)), L.Dense(16, activation="relu"), L.Dropout(0.2),
                          L.Dense(8, activation="tanh"), L.Dense(4, activation="softmax")])


ZOO = {
    "mlp": (_mlp, (12,), None, "sparse_categorical_crossentropy"),
    "lenet5": (lambda: zoo.lenet5(input_shape=(32, 32, 1), classes=4), (32, 32, 1), None,
               "sparse_categorical_crossentropy"),
    "lstm": (lambda: fl.Sequential([L.Input((5, 6)), L.LSTM(8), L.Dense(4, activation="softmax")]),
             (5, 6), None, "sparse_categorical_crossentropy"),
    "gru": (lambda: fl.Sequential([L.Input((5, 6)), L.GRU(8, return_sequences=True),
                                   L.GRU(6), L.Dense(4, activation="softmax")]),
            (5, 6), None, "sparse_categorical_crossentropy"),
    "autoencoder": (lambda: zoo.dense_autoencoder(12, 3, hidden=(8,)), (12,), "self", "mse"),
    "dqn": (lambda: zoo.mlp_q_network(12, 4), (12,), 4, "huber"),
}


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_models_train_as_in_eager_mode(name):
    make, shape, regression, loss = ZOO[name]
    x, y = _data(shape, regression=regression)
    eager = _train(make, False, x, y, loss)
    graph = _train(make, True, x, y, loss)
    model = graph[2]
    assert model._caught == []  # traced, no fallback
    assert model._graph_step.plans == 2  # the full batches and the last, partial one
    _assert_same(eager, graph, 1e-5)


def test_float64_matches_eager_to_1e12():
    fl.set_default_dtype("float64")
    try:
        x, y = _data((12,))
        _assert_same(_train(_mlp, False, x, y, "sparse_categorical_crossentropy"),
                     _train(_mlp, True, x, y, "sparse_categorical_crossentropy"), 1e-12)
    finally:
        fl.set_default_dtype("float32")


OPTIMIZERS = {
    "sgd": lambda: fl.optimizers.SGD(0.05),
    "momentum": lambda: fl.optimizers.SGD(0.05, momentum=0.9),
    "nesterov": lambda: fl.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "adam": lambda: fl.optimizers.Adam(0.01),
    "adamw": lambda: fl.optimizers.AdamW(0.01),
    "rmsprop": lambda: fl.optimizers.RMSprop(0.01),
    "adagrad": lambda: fl.optimizers.Adagrad(0.05),
    "adadelta": lambda: fl.optimizers.Adadelta(1.0),
    "adamax": lambda: fl.optimizers.Adamax(0.01),
    "nadam": lambda: fl.optimizers.Nadam(0.01),
    "ftrl": lambda: fl.optimizers.Ftrl(0.05),
    "lion": lambda: fl.optimizers.Lion(0.001),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_trains_as_in_eager_mode(name):
    fl.set_default_dtype("float64")
    try:
        x, y = _data((12,), n=30)
        make = lambda: fl.Sequential([L.Input((12,)), L.Dense(8, activation="relu"),  # noqa: E731
                                      L.Dense(4, activation="softmax")])
        eager = _train(make, False, x, y, "sparse_categorical_crossentropy", OPTIMIZERS[name],
                       epochs=3, metrics=["accuracy"])
        graph = _train(make, True, x, y, "sparse_categorical_crossentropy", OPTIMIZERS[name],
                       epochs=3, metrics=["accuracy"])
        assert graph[2]._caught == []
        _assert_same(eager, graph, 1e-12)
    finally:
        fl.set_default_dtype("float32")


def test_sample_weights_and_validation():
    x, y = _data((12,))
    sw = np.linspace(0.5, 2.0, len(x))
    runs = []
    for jit in (False, True):
        fl.manual_seed(0)
        model = _mlp()
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", jit_compile=jit)
        h = model.fit(x, y, sample_weight=sw, epochs=2, batch_size=8, verbose=0, shuffle=False,
                      validation_data=(x, y))
        runs.append(h.history)
    for k in runs[0]:
        np.testing.assert_allclose(runs[1][k], runs[0][k], rtol=1e-5)


@pytest.mark.parametrize("dtype, tol", [("float32", 1e-5), ("float64", 1e-12)])
def test_resnet_with_batch_norm_is_traced_and_trains_as_in_eager_mode(dtype, tol):
    """BatchNormalization's moving averages are updated by a state_update op of the plan (its
    batch statistics are op outputs while tracing), including the fused BN(+Add)+ReLU path."""
    from fundl import graph_mode
    from fundl.ops.norm import BatchNorm

    fl.set_default_dtype(dtype)
    try:
        make = lambda: zoo.resnet_cifar(depth=8, input_shape=(8, 8, 3), classes=4)  # noqa: E731
        x, y = _data((8, 8, 3), n=12)
        eager = _train(make, False, x, y, "sparse_categorical_crossentropy", batch_size=6,
                       epochs=3)
        graph = _train(make, True, x, y, "sparse_categorical_crossentropy", batch_size=6,
                       epochs=3)
    finally:
        fl.set_default_dtype("float32")
    model = graph[2]
    assert model._caught == []  # traced, no fallback
    (plan,) = [p for p in model._graph_step._plans.values() if isinstance(p, graph_mode._Plan)]
    ops = [st.op for st in plan.steps]
    bns = [op for op in ops if type(op) is BatchNorm]
    assert len(bns) == 7 and all(op.stats_out for op in bns)
    assert any(op.relu and op.residual for op in bns) and any(op.relu and not op.residual
                                                              for op in bns)
    assert sum(isinstance(op, graph_mode.StateUpdate) for op in ops) == 7
    # the moving averages (among the weights) moved, and as in eager mode
    moving = [w for w in model.weights if "moving_mean" in w.name]
    assert moving and all(np.abs(w.numpy()).max() > 0 for w in moving)
    _assert_same(eager, graph, tol)
    # inference after training: the moving averages give the same predictions
    e_model, g_model = eager[2], graph[2]
    np.testing.assert_allclose(g_model.predict(x, verbose=0), e_model.predict(x, verbose=0),
                               rtol=tol, atol=tol)


def test_state_changed_outside_an_op_falls_back_with_one_warning_and_same_numbers():
    """A layer updating a non-trainable weight in Python (not through state_update) cannot be
    replayed: graph mode notices and runs the step eagerly."""
    class Counter(L.Layer):
        def build(self, input_shape):
            self.seen = self.add_weight("seen", (1,), "zeros", trainable=False)

        def call(self, x, training=None):
            if training:
                self.seen.data += 1.0  # Python arithmetic on the state, outside any op
            return x

    make = lambda: fl.Sequential([L.Input((12,)), Counter(),  # noqa: E731
                                  L.Dense(4, activation="softmax")])
    x, y = _data((12,))
    eager = _train(make, False, x, y, "sparse_categorical_crossentropy")
    graph = _train(make, True, x, y, "sparse_categorical_crossentropy")
    assert len(graph[2]._caught) == 1
    assert "updates state outside an op" in graph[2]._caught[0]
    assert "running it eagerly" in graph[2]._caught[0]
    _assert_same(eager, graph, 0)


def test_sequence_masks_fall_back_with_one_warning():
    make = lambda: fl.Sequential([L.Input((6,), dtype="int64"),  # noqa: E731
                                  L.Embedding(10, 4, mask_zero=True), L.SimpleRNN(5),
                                  L.Dense(3, activation="softmax")])
    rng = np.random.default_rng(0)
    x = rng.integers(1, 10, (20, 6))
    x[::3, 4:] = 0  # padding
    y = rng.integers(0, 3, 20)
    eager = _train(make, False, x, y, "sparse_categorical_crossentropy", batch_size=8)
    graph = _train(make, True, x, y, "sparse_categorical_crossentropy", batch_size=8)
    assert len(graph[2]._caught) == 1 and "sequence mask" in graph[2]._caught[0]
    _assert_same(eager, graph, 0)


def test_regularizers_are_part_of_the_plan():
    make = lambda: fl.Sequential([  # noqa: E731
        L.Input((12,)), L.Dense(8, activation="relu", kernel_regularizer="l2",
                                activity_regularizer="l1"),
        L.Dense(4, activation="softmax", bias_regularizer="l2")])
    x, y = _data((12,))
    eager = _train(make, False, x, y, "sparse_categorical_crossentropy")
    graph = _train(make, True, x, y, "sparse_categorical_crossentropy")
    assert graph[2]._caught == []
    _assert_same(eager, graph, 1e-6)


def test_custom_train_step_runs_eagerly_with_a_warning():
    class Custom(fl.Model):
        def train_step(self, data):
            return super().train_step(data)

    inputs = L.Input((12,))
    model = Custom(inputs, L.Dense(4, activation="softmax")(inputs))
    with pytest.warns(UserWarning, match="overrides train_step.*runs eagerly"):
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", jit_compile=True)
    x, y = _data((12,))
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)


def test_jit_compile_argument_checks_and_run_eagerly_wins():
    model = _mlp()
    with pytest.raises(ValueError, match="jit_compile must be True, False or 'auto'"):
        model.compile(optimizer="sgd", loss="mse", jit_compile="yes")
    model.compile(optimizer="sgd", loss="mse", jit_compile=True, run_eagerly=True)
    assert model._graph_step is None
    model.compile(optimizer="sgd", loss="mse", jit_compile="auto")
    assert model._graph_step is None
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    assert model._graph_step is not None


def test_weights_changed_between_steps_are_seen():
    x, y = _data((12,))
    fl.manual_seed(0)
    model = _mlp()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", jit_compile=True)
    for _ in range(3):
        model.train_on_batch(x[:8], y[:8])
    model.set_weights([w * 0 for w in model.get_weights()])
    loss = model.train_on_batch(x[:8], y[:8])
    np.testing.assert_allclose(loss, np.log(4), rtol=1e-6)  # all-zero weights: uniform output
