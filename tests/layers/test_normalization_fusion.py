"""A model's BatchNormalization -> [Add ->] ReLU chains run fused, with the same results.

fundl.layers.normalization_fusion plans the chains of a functional graph; Model.call runs them
through batch_norm's fused epilogue. The model itself (layers, config, summary) is unchanged,
and its numbers are the unfused ones bit for bit (the same float operations).
"""
import numpy as np
import pytest

import fundl as fl
from fundl import layers as L
from fundl.layers import normalization_fusion as nf


def _chains(model):
    model(np.zeros((1,) + tuple(model.inputs[0].shape[1:]), "float32"))
    steps = model.__dict__["_fused_steps"]
    runners = [s for s in steps.values() if s is not nf.SKIP]
    return len(runners), sum(r.add is not None for r in runners)


def _train(model, x, y, steps=3):
    model.compile(optimizer=fl.optimizers.SGD(0.05, momentum=0.9),
                  loss="sparse_categorical_crossentropy")
    losses = [model.train_on_batch(x, y) for _ in range(steps)]
    return losses, [w.numpy().copy() for w in model.weights], model.predict(x, verbose=0)


def _both(build, x, y):
    """(fused, unfused) training results of two identically seeded copies of a model."""
    out = []
    for fuse in (True, False):
        fl.manual_seed(0)
        model = build()
        if not fuse:
            model.__dict__["_fused_steps"] = {}  # plan nothing: every layer on its own
        out.append(_train(model, x, y))
    return out


def _assert_same(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    for wa, wb in zip(a[1], b[1]):
        np.testing.assert_array_equal(wa, wb)
    np.testing.assert_array_equal(a[2], b[2])


def test_resnet20_chains():
    model = fl.zoo.resnet_cifar(20)
    assert _chains(model) == (19, 9)  # every ReLU; the 9 blocks' with their Add


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_resnet_fused_equals_unfused(shortcut):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 4, 16)
    fused, unfused = _both(lambda: fl.zoo.resnet_cifar(8, input_shape=(8, 8, 3), classes=4,
                                                       shortcut=shortcut), x, y)
    _assert_same(fused, unfused)


def test_resnet_training_is_the_same_with_and_without_recycled_buffers():
    """Batch norm, the convolutions and Add take their big arrays from the runtime's
    Workspace; with the pool off (a zero cap: every array fresh) the same steps give the same
    numbers bit for bit, the unfused Add path included."""
    import fundl.runtime

    ws = fundl.runtime.state().workspace
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 8, 8, 3)).astype("float32")  # Add's sums: 256 KB, pooled
    y = rng.integers(0, 4, 64)
    build = lambda: fl.zoo.resnet_cifar(8, input_shape=(8, 8, 3), classes=4)  # noqa: E731
    saved_cap = ws.max_bytes
    try:
        runs = []
        for cap in (saved_cap, 0):
            ws.clear()
            ws.max_bytes = cap
            for fuse in (True, False):
                fl.manual_seed(0)
                model = build()
                if not fuse:
                    model.__dict__["_fused_steps"] = {}
                runs.append(_train(model, x, y, steps=4))
            if cap:
                assert ws.nbytes > 0  # the pooled run did pool
    finally:
        ws.max_bytes = saved_cap
        ws.clear()
    _assert_same(runs[0], runs[2])
    _assert_same(runs[1], runs[3])


def _block(relu_layer=lambda: L.Activation("relu"), share=False, reg=None, out_bn=False):
    inp = fl.Input((6, 6, 4))
    h = L.Conv2D(4, 3, padding="same", use_bias=False)(inp)
    bn = L.BatchNormalization()(h)
    y = relu_layer()(bn)
    y = L.Conv2D(4, 3, padding="same", use_bias=False)(y)
    bn2 = L.BatchNormalization()(y)
    s = L.Add()([h, bn2])
    z = L.Activation("relu", activity_regularizer=reg)(s)
    if share:  # bn's output read twice: not fusable
        z = L.Add()([z, bn])
    z = L.GlobalAveragePooling2D()(z)
    out = L.Dense(3, activation="softmax")(z)
    return fl.Model(inp, [out, bn2] if out_bn else out)


@pytest.mark.parametrize("kwargs,chains", [
    ({}, (2, 1)),
    ({"relu_layer": L.ReLU}, (2, 1)),
    ({"relu_layer": lambda: L.ReLU(max_value=6.0)}, (1, 1)),   # not a plain ReLU
    ({"share": True}, (1, 1)),
    ({"out_bn": True}, (1, 0)),                                  # bn2's output is a model output
], ids=["activation", "relu_layer", "relu6", "shared_output", "model_output"])
def test_which_chains_fuse(kwargs, chains):
    assert _chains(_block(**kwargs)) == chains


@pytest.mark.parametrize("kwargs", [{}, {"share": True}, {"reg": "l2"}],
                         ids=["plain", "shared_output", "activity_regularizer"])
def test_small_graph_fused_equals_unfused(kwargs):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 6, 6, 4)).astype("float32")
    y = rng.integers(0, 3, 8)
    fused, unfused = _both(lambda: _block(**kwargs), x, y)
    _assert_same(fused, unfused)


def test_submodel_sees_the_raw_normalised_output():
    """A model built on an intermediate output shares the layers; its BatchNormalization
    output is not ReLU-ed although the full model fuses that chain."""
    model = _block()
    bn_out = model.layers[2].output
    sub = fl.Model(model.inputs[0], bn_out)
    x = np.random.default_rng(2).standard_normal((4, 6, 6, 4)).astype("float32")
    model(x)  # the full model runs its chains fused
    y = sub(x).numpy()
    assert (y < 0).any()
    h = model.layers[1](fl.tensor(x))
    np.testing.assert_array_equal(y, model.layers[2](h).numpy())


def test_model_unchanged_by_fusion(tmp_path):
    model = _block()
    config, names = model.get_config(), [layer.name for layer in model.layers]
    x = np.random.default_rng(3).standard_normal((2, 6, 6, 4)).astype("float32")
    before = model.predict(x, verbose=0)
    assert model.get_config() == config and [layer.name for layer in model.layers] == names
    path = tmp_path / "m.zip"
    model.save(path)
    np.testing.assert_array_equal(fl.saving.load_model(path).predict(x, verbose=0), before)


def test_masks_fall_back():
    """Sequence masks alive: the chain runs layer by layer (BatchNormalization's masked
    statistics) with the same results as without fusion."""
    inp = fl.Input((5,), dtype="int32")
    e = L.Embedding(10, 4, mask_zero=True)(inp)
    h = L.BatchNormalization()(e)
    h = L.Activation("relu")(h)
    out = L.Dense(2)(L.GlobalAveragePooling1D()(h))
    model = fl.Model(inp, out)
    x = np.array([[1, 2, 3, 0, 0], [4, 5, 0, 0, 0]])
    got = model(x, training=True).numpy()
    model.__dict__["_fused_steps"] = {}
    np.testing.assert_array_equal(got, model(x, training=True).numpy())


def _sequential():
    return fl.Sequential([
        L.Input((6, 6, 3)), L.Conv2D(4, 3, use_bias=False), L.BatchNormalization(),
        L.Activation("relu"), L.Conv2D(4, 3), L.BatchNormalization(), L.ReLU(),
        L.Flatten(), L.Dense(3, activation="softmax")])


def test_sequential_fused_equals_unfused(monkeypatch):
    from fundl.ops.norm import BatchNorm

    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 6, 6, 3)).astype("float32")
    y = rng.integers(0, 3, 8)
    relus = []
    forward = BatchNorm.forward
    monkeypatch.setattr(BatchNorm, "forward",
                        lambda self, *a: relus.append(self.relu) or forward(self, *a))
    out = []
    for fuse in (True, False):
        if not fuse:
            monkeypatch.setattr(nf, "_is_relu", lambda layer: False)
        fl.manual_seed(0)
        relus.clear()
        out.append(_train(_sequential(), x, y))
        assert relus and all(r == fuse for r in relus)  # both pairs fused, or none
    _assert_same(*out)
