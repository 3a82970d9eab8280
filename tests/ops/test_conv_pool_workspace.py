"""Convolutions and pooling take their big arrays from the runtime's Workspace (recycled
memory): recycling never changes a result, nor an array someone still holds."""
import numpy as np
import pytest

import fundl as fl
from fundl import runtime
from fundl.layers import AveragePooling2D, Conv2D, Dense, Flatten, MaxPooling2D


@pytest.fixture
def workspace_off():
    """Run a block with the workspace keeping nothing (every array fresh, as NumPy gives)."""
    ws = runtime.state().workspace
    saved = ws.max_bytes

    def off():
        ws.clear()
        ws.max_bytes = 0

    yield off
    ws.max_bytes = saved


def _data(seed, shape=(6, 12, 12, 3)):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("op", ["conv", "conv_relu", "max_pool", "avg_pool"])
def test_outputs_and_gradients_kept_from_one_call_survive_the_next_calls(op):
    k = fl.tensor(_data(9, (3, 3, 3, 5)), requires_grad=True)

    def run(x):
        xt = fl.tensor(x, requires_grad=True)
        if op.startswith("conv"):
            y = fl.conv2d(xt, k, padding="same") if op == "conv" else \
                fl.conv(xt, k, padding="same", activation="relu")
        elif op == "max_pool":
            y = fl.max_pool(xt, 2)
        else:
            y = fl.avg_pool(xt, 2)
        (y * y).sum().backward()
        return y, xt.grad

    y1, g1 = run(_data(0))
    kept = (y1.numpy().copy(), g1.copy())
    for seed in range(1, 4):  # same shapes, other values: would reuse the buffers if free
        run(_data(seed))
    np.testing.assert_array_equal(y1.numpy(), kept[0])
    np.testing.assert_array_equal(g1, kept[1])


def _lenet(pool, activation):
    fl.manual_seed(0)
    model = fl.Sequential([
        fl.Input((12, 12, 1)), Conv2D(4, 3, padding="same", activation=activation), pool(2),
        Conv2D(6, 3, activation=activation), pool(2), Flatten(), Dense(10, activation="softmax")])
    model.compile(optimizer=fl.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("pool,activation", [(MaxPooling2D, "relu"),
                                             (AveragePooling2D, "tanh")])
def test_training_steps_equal_those_without_the_workspace(workspace_off, pool, activation):
    x = _data(0, (16, 12, 12, 1))
    y = np.random.default_rng(1).integers(0, 10, 16)
    model = _lenet(pool, activation)
    losses = [model.train_on_batch(x, y) for _ in range(4)]
    out = model.predict(x, batch_size=16)
    assert runtime.state().workspace.nbytes > 0  # the steps did recycle buffers
    workspace_off()
    plain = _lenet(pool, activation)
    assert [plain.train_on_batch(x, y) for _ in range(4)] == losses
    np.testing.assert_array_equal(plain.predict(x, batch_size=16), out)
    assert runtime.state().workspace.nbytes == 0
