import numpy as np
import pytest

from fundl.callbacks import (
    Callback, CallbackList, EarlyStopping, History, ProgbarLogger, TerminateOnNaN,
)


class Recorder(Callback):
    """Overrides every hook and records (hook, args)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin",))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end",))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, dict(logs)))

    def on_train_batch_begin(self, batch, logs=None):
        self.calls.append(("batch_begin", batch))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch, dict(logs)))

    def on_test_begin(self, logs=None):
        self.calls.append(("test_begin",))

    def on_test_batch_end(self, batch, logs=None):
        self.calls.append(("test_batch_end", batch))

    def on_predict_batch_begin(self, batch, logs=None):
        self.calls.append(("predict_batch_begin", batch))


def test_hooks_are_called_in_order_with_arguments(model, fake_fit):
    rec = Recorder()
    fake_fit(model, [rec], [{"loss": 0.5}, {"loss": 0.25}], steps=2)
    assert rec.calls == [
        ("train_begin",),
        ("epoch_begin", 0), ("batch_begin", 0), ("batch_end", 0, {"loss": 0.5}),
        ("batch_begin", 1), ("batch_end", 1, {"loss": 0.5}), ("epoch_end", 0, {"loss": 0.5}),
        ("epoch_begin", 1), ("batch_begin", 0), ("batch_end", 0, {"loss": 0.25}),
        ("batch_begin", 1), ("batch_end", 1, {"loss": 0.25}), ("epoch_end", 1, {"loss": 0.25}),
        ("train_end",),
    ]


def test_test_and_predict_hooks_dispatch(model):
    rec = Recorder()
    cbs = CallbackList([rec], model=model, verbose=0, epochs=1, steps=2)
    cbs.on_test_begin()
    cbs.on_test_batch_end(0, {"loss": 1.0})
    cbs.on_predict_batch_begin(3)
    assert rec.calls == [("test_begin",), ("test_batch_end", 0), ("predict_batch_begin", 3)]


def test_model_and_params_reach_every_callback(model):
    rec = Recorder()
    cbs = CallbackList([rec], model=model, verbose=0, epochs=4, steps=7)
    assert rec.model is model
    assert rec.params == {"verbose": 0, "epochs": 4, "steps": 7}
    assert cbs.history.model is model


def test_history_is_added_exposed_and_set_on_model(model):
    cbs = CallbackList([], model=model, verbose=0, epochs=1, steps=1)
    assert isinstance(cbs.history, History)
    assert model.history is cbs.history
    assert sum(isinstance(cb, History) for cb in cbs.callbacks) == 1


def test_user_history_is_not_duplicated(model):
    mine = History()
    cbs = CallbackList([mine], model=model, verbose=0, epochs=1, steps=1)
    assert cbs.history is mine
    assert sum(isinstance(cb, History) for cb in cbs.callbacks) == 1


@pytest.mark.parametrize("verbose, add_progbar, expected", [(0, True, 0), (1, True, 1),
                                                            (2, True, 1), (1, False, 0)])
def test_progbar_added_only_when_verbose(model, verbose, add_progbar, expected):
    cbs = CallbackList([], add_progbar=add_progbar, model=model, verbose=verbose, epochs=1,
                       steps=1)
    assert sum(isinstance(cb, ProgbarLogger) for cb in cbs.callbacks) == expected


def test_defaults_go_after_user_callbacks(model):
    stop = EarlyStopping()
    cbs = CallbackList([stop], model=model, verbose=1, epochs=1, steps=1)
    assert cbs.callbacks[0] is stop
    assert isinstance(cbs.callbacks[1], History)
    assert isinstance(cbs.callbacks[2], ProgbarLogger)


def test_batch_hooks_skip_callbacks_that_do_not_override_them(model):
    # fit's per-step cost: epoch-level callbacks must not be on the per-batch path.
    cbs = CallbackList([EarlyStopping(), History()], model=model, verbose=0, epochs=1, steps=1)
    assert cbs._on_train_batch_begin == ()
    assert cbs._on_train_batch_end == ()
    assert len(cbs._on_epoch_end) == 2


def test_batch_hook_dispatch_keeps_overriding_callbacks(model):
    nan = TerminateOnNaN()
    cbs = CallbackList([EarlyStopping(), nan], model=model, verbose=0, epochs=1, steps=1)
    assert [fn.__self__ for fn in cbs._on_train_batch_end] == [nan]


def test_legacy_on_batch_end_override_is_called(model, fake_fit):
    class Legacy(Callback):
        def __init__(self):
            super().__init__()
            self.batches = []

        def on_batch_end(self, batch, logs=None):
            self.batches.append(batch)

    cb = Legacy()
    fake_fit(model, [cb], [{"loss": 1.0}], steps=3)
    assert cb.batches == [0, 1, 2]


def test_non_callback_entry_raises_type_error(model):
    with pytest.raises(TypeError, match=r"callbacks\[1\].*function"):
        CallbackList([History(), lambda: None], model=model, verbose=0)


def test_epoch_end_logs_become_python_floats(model, fake_fit):
    cbs = fake_fit(model, [], [{"loss": np.float32(0.5), "val_loss": np.array(0.25)}])
    values = cbs.history.history["loss"] + cbs.history.history["val_loss"]
    assert values == [0.5, 0.25]
    assert all(type(v) is float for v in values)


def test_append_gives_model_and_params_and_dispatches(model):
    rec = Recorder()
    cbs = CallbackList([], model=model, verbose=0, epochs=2, steps=1)
    cbs.append(rec)
    cbs.on_epoch_begin(1)
    assert rec.model is model and rec.params["epochs"] == 2
    assert rec.calls == [("epoch_begin", 1)]
