import pytest

from fundl.callbacks import CallbackList, LambdaCallback


def test_given_hooks_fire_with_their_arguments(model, fake_fit):
    events = []
    cb = LambdaCallback(
        on_train_begin=lambda logs: events.append("train_begin"),
        on_epoch_begin=lambda epoch, logs: events.append(("epoch_begin", epoch)),
        on_train_batch_begin=lambda batch, logs: events.append(("batch_begin", batch)),
        on_train_batch_end=lambda batch, logs: events.append(("batch_end", batch, logs["loss"])),
        on_epoch_end=lambda epoch, logs: events.append(("epoch_end", epoch, logs["loss"])),
        on_train_end=lambda logs: events.append("train_end"),
    )
    fake_fit(model, [cb], [{"loss": 0.5}, {"loss": 0.25}], steps=1)
    assert events == [
        "train_begin",
        ("epoch_begin", 0), ("batch_begin", 0), ("batch_end", 0, 0.5), ("epoch_end", 0, 0.5),
        ("epoch_begin", 1), ("batch_begin", 0), ("batch_end", 0, 0.25), ("epoch_end", 1, 0.25),
        "train_end",
    ]


def test_other_hooks_by_keyword(model):
    events = []
    cb = LambdaCallback(on_test_begin=lambda logs: events.append("test_begin"),
                        on_predict_batch_end=lambda batch, logs: events.append(batch))
    cbs = CallbackList([cb], model=model, verbose=0)
    cbs.on_test_begin()
    cbs.on_predict_batch_end(4)
    assert events == ["test_begin", 4]


def test_only_given_hooks_are_dispatched(model):
    cb = LambdaCallback(on_epoch_end=lambda epoch, logs: None)
    cbs = CallbackList([cb], model=model, verbose=0)
    assert cbs._on_train_batch_end == ()
    assert cb.on_epoch_end in cbs._on_epoch_end


def test_unknown_hook_name_raises():
    with pytest.raises(TypeError, match=r"unknown hook 'on_epoch_finish'"):
        LambdaCallback(on_epoch_finish=print)


def test_non_callable_hook_raises():
    with pytest.raises(TypeError, match=r"on_epoch_end must be a function, got int"):
        LambdaCallback(on_epoch_end=3)
