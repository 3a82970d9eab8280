"""A fake model and a fake training loop that drive a CallbackList exactly as fit does."""
import numpy as np
import pytest

from fundl.callbacks import CallbackList


class FakeOptimizer:
    def __init__(self, learning_rate):
        self.learning_rate = learning_rate


class FakeModel:
    """Provides only what callbacks may rely on: stop_training, optimizer.learning_rate,
    save/save_weights, get_weights/set_weights, history."""

    def __init__(self, learning_rate=0.1):
        self.stop_training = False
        self.optimizer = FakeOptimizer(learning_rate)
        self.weights = [np.zeros(3), np.zeros((2, 2))]
        self.history = None
        self.saved = []  # (method, path) in call order

    def get_weights(self):
        # Live arrays, as a model with an in-place optimizer might return.
        return self.weights

    def set_weights(self, weights):
        self.weights = [np.array(w) for w in weights]

    def save(self, filepath):
        self.saved.append(("save", filepath))
        with open(filepath, "w") as f:
            f.write("model")

    def save_weights(self, filepath):
        self.saved.append(("save_weights", filepath))
        with open(filepath, "w") as f:
            f.write("weights")


def _fake_fit(model, callbacks, epoch_logs, steps=3, verbose=0, batch_logs=None):
    """Run len(epoch_logs) epochs of `steps` batches; each batch adds 1 to every weight in place.

    epoch_logs[e] is the dict given to on_epoch_end; batch_logs(epoch, step) gives the batch
    logs (default: the epoch's loss). Returns the CallbackList. Records the batches run in
    model.batches_run.
    """
    cbs = CallbackList(callbacks, model=model, verbose=verbose, epochs=len(epoch_logs),
                       steps=steps)
    model.stop_training = False
    model.batches_run = []
    cbs.on_train_begin()
    logs = None
    for epoch, elogs in enumerate(epoch_logs):
        cbs.on_epoch_begin(epoch)
        for step in range(steps):
            cbs.on_train_batch_begin(step)
            for w in model.weights:
                w += 1.0
            model.batches_run.append((epoch, step))
            blogs = batch_logs(epoch, step) if batch_logs else {"loss": elogs.get("loss", 0.0)}
            cbs.on_train_batch_end(step, blogs)
            if model.stop_training:
                break
        logs = dict(elogs)
        cbs.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    cbs.on_train_end(logs)
    return cbs


@pytest.fixture
def model():
    return FakeModel()


@pytest.fixture
def fake_fit():
    return _fake_fit


@pytest.fixture
def losses_to_logs():
    """[(loss, val_loss), ...] -> list of epoch log dicts."""
    def convert(pairs):
        return [{"loss": a, "val_loss": b} for a, b in pairs]
    return convert
