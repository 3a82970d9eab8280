import pytest

from fundl.callbacks import LambdaCallback, LearningRateScheduler, ReduceLROnPlateau


def lr_recorder(model):
    """A callback recording the learning rate in force during each epoch's first batch."""
    seen = []
    cb = LambdaCallback(on_train_batch_begin=lambda batch, logs: seen.append(
        model.optimizer.learning_rate) if batch == 0 else None)
    return cb, seen


def test_scheduler_sets_rate_at_each_epoch_begin(model, fake_fit):
    rec, seen = lr_recorder(model)
    sched = LearningRateScheduler(lambda epoch, lr: lr if epoch < 2 else lr * 0.5)
    cbs = fake_fit(model, [sched, rec], [{"loss": 1.0}] * 4)
    assert seen == pytest.approx([0.1, 0.1, 0.05, 0.025])
    assert cbs.history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    assert model.optimizer.learning_rate == pytest.approx(0.025)


def test_scheduler_accepts_epoch_only_function(model, fake_fit):
    rec, seen = lr_recorder(model)
    fake_fit(model, [LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1)), rec],
             [{"loss": 1.0}] * 3)
    assert seen == pytest.approx([0.01, 0.02, 0.03])


def test_scheduler_rejects_non_number_result(model, fake_fit):
    sched = LearningRateScheduler(lambda epoch, lr: "fast")
    with pytest.raises(TypeError, match=r"LearningRateScheduler.*str 'fast'"):
        fake_fit(model, [sched], [{"loss": 1.0}])


def test_scheduler_rejects_non_callable():
    with pytest.raises(TypeError, match="schedule must be a function"):
        LearningRateScheduler(0.1)


def test_scheduler_verbose_message(model, fake_fit, capsys):
    fake_fit(model, [LearningRateScheduler(lambda e, lr: 0.5, verbose=1)], [{"loss": 1.0}])
    assert "Epoch 1: LearningRateScheduler setting learning rate to 0.5." in capsys.readouterr().out


def plateau_rates(model, fake_fit, n_epochs, **kwargs):
    rec, seen = lr_recorder(model)
    cbs = fake_fit(model, [ReduceLROnPlateau(**kwargs), rec],
                   [{"loss": 1.0, "val_loss": 1.0}] * n_epochs)
    return seen, cbs


def test_plateau_reduces_after_patience(model, fake_fit):
    seen, cbs = plateau_rates(model, fake_fit, 7, factor=0.5, patience=2)
    # Flat val_loss: epoch 0 sets the best, reductions at the ends of epochs 2, 4 and 6.
    assert seen == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    assert model.optimizer.learning_rate == pytest.approx(0.0125)
    # The logged rate is the one used during the epoch.
    assert cbs.history.history["learning_rate"] == pytest.approx(seen)


def test_plateau_cooldown_delays_next_wait(model, fake_fit):
    seen, _ = plateau_rates(model, fake_fit, 7, factor=0.5, patience=2, cooldown=2)
    # After the reduction at epoch 2, epochs 3 and 4 are cooldown; next reduction at epoch 5.
    assert seen == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025])


def test_plateau_respects_min_lr(model, fake_fit):
    seen, _ = plateau_rates(model, fake_fit, 5, factor=0.1, patience=1, min_lr=0.005)
    assert seen == pytest.approx([0.1, 0.1, 0.01, 0.005, 0.005])
    assert model.optimizer.learning_rate == pytest.approx(0.005)


def test_plateau_improvement_resets_wait(model, fake_fit):
    rec, seen = lr_recorder(model)
    logs = [{"val_loss": v} for v in [1.0, 1.0, 0.5, 0.5, 0.5]]
    fake_fit(model, [ReduceLROnPlateau(factor=0.5, patience=2), rec], logs)
    assert seen == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.1])
    assert model.optimizer.learning_rate == pytest.approx(0.05)


def test_plateau_min_delta(model, fake_fit):
    rec, seen = lr_recorder(model)
    logs = [{"val_loss": v} for v in [1.0, 0.99, 0.98]]
    fake_fit(model, [ReduceLROnPlateau(factor=0.5, patience=2, min_delta=0.05), rec], logs)
    assert model.optimizer.learning_rate == pytest.approx(0.05)


def test_plateau_max_mode_for_accuracy(model, fake_fit):
    logs = [{"val_accuracy": v} for v in [0.5, 0.6, 0.7]]
    fake_fit(model, [ReduceLROnPlateau(monitor="val_accuracy", patience=1)], logs)
    assert model.optimizer.learning_rate == pytest.approx(0.1)


def test_plateau_missing_monitor_warns(model, fake_fit):
    with pytest.warns(UserWarning, match=r"ReduceLROnPlateau.*'val_loss'.*Available keys: loss"):
        fake_fit(model, [ReduceLROnPlateau(patience=0)], [{"loss": 1.0}] * 2)
    assert model.optimizer.learning_rate == 0.1


def test_plateau_verbose_message(model, fake_fit, capsys):
    plateau_rates(model, fake_fit, 2, factor=0.5, patience=1, verbose=1)
    assert "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.05." in capsys.readouterr().out


@pytest.mark.parametrize("kwargs, match", [({"factor": 1.0}, "factor"),
                                           ({"patience": -1}, "patience"),
                                           ({"mode": "up"}, "mode")])
def test_plateau_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ReduceLROnPlateau(**kwargs)


def test_schedule_object_learning_rate_gives_clear_error(model, fake_fit):
    model.optimizer.learning_rate = object()
    with pytest.raises(TypeError, match=r"ReduceLROnPlateau.*learning_rate must be a number"):
        fake_fit(model, [ReduceLROnPlateau()], [{"val_loss": 1.0}])
