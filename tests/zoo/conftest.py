"""Zoo test helpers: cheap weights for parameter counts, a few training steps, save/load."""
import os
import types

import numpy as np
import pytest

import fundl as fl
import fundl.layers.base as layer_base


@pytest.fixture(autouse=True)
def seeded():
    """Weights drawn from the same seed in every test, whatever ran before."""
    fl.manual_seed(0)


@pytest.fixture
def cheap_weights(monkeypatch):
    """Every new weight starts as ``numpy.zeros`` (pages are only reserved, never written).

    Counting the parameters of VGG-19 (143.7M) at 224x224 would otherwise spend seconds
    drawing random numbers; the shapes, and so the counts, do not depend on the values.
    """
    real = layer_base.deserialize_object

    def zeros_for_initializers(module, identifier):
        if module is fl.initializers:
            return lambda shape, dtype=None: np.zeros(shape, dtype=dtype)
        return real(module, identifier)

    monkeypatch.setattr(layer_base, "deserialize_object", zeros_for_initializers)


def trainable_count(model):
    """The number of trainable parameters (torchvision's count: no batch-norm statistics)."""
    return int(sum(w.size for w in model.trainable_weights))


def train_steps(model, input_shape, classes, optimizer=None, steps=4, batch=4, seed=0):
    """``steps`` optimizer steps (plain SGD at 1e-3 by default) on one fixed random batch.

    Small steps of plain gradient descent lower a deterministic loss: the models with batch
    normalisation see the same batch (so the same statistics) each time; dropout is turned off
    where a test looks at the losses.

    Returns:
        (x, y, losses): the batch and the loss of each step (before its update).
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch,) + tuple(input_shape)).astype(np.float32)
    y = np.arange(batch) % classes
    model.compile(optimizer=optimizer or fl.optimizers.SGD(1e-3),
                  loss="sparse_categorical_crossentropy")
    losses = [float(model.train_on_batch(x, y)) for _ in range(steps)]
    return x, y, losses


def assert_trains_and_reloads(model, input_shape, classes, tmp_path, reload=True, **kwargs):
    """The loss falls over the steps; saved and loaded again, the model predicts the same.

    Over the steps, not at every step: the deep models normalise their last stages over a
    batch of 4 values per channel, which makes single steps jumpy (a float64 run of ResNet-50
    from the same weights went 1.81, 2.00, 1.28, 1.31).
    """
    x, _, losses = train_steps(model, input_shape, classes, **kwargs)
    assert all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0], f"the loss did not fall: {losses}"
    if reload:
        path = os.path.join(tmp_path, f"{model.name}.fundl")
        model.save(path)
        loaded = fl.models.load_model(path)
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    return losses


@pytest.fixture
def helpers():
    """The helper functions above (a conftest module is not importable from the tests under
    --import-mode=importlib, so they come as a fixture)."""
    return types.SimpleNamespace(trainable_count=trainable_count, train_steps=train_steps,
                                 trains_and_reloads=assert_trains_and_reloads)
