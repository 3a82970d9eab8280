import numpy as np
import pytest

from fundl.callbacks import EarlyStopping

STEPS = 3  # fake_fit adds 1 to every weight per batch: after epoch e weights are (e+1)*STEPS


def val_logs(values, key="val_loss"):
    return [{"loss": 1.0, key: v} for v in values]


def test_stops_when_patience_runs_out(model, fake_fit):
    stop = EarlyStopping(patience=2)
    cbs = fake_fit(model, [stop], val_logs([1.0, 0.8, 0.9, 0.85, 0.7, 0.6]), steps=STEPS)
    # Best at epoch 1; epochs 2 and 3 do not improve -> stop at the end of epoch 3.
    assert cbs.history.epoch == [0, 1, 2, 3]
    assert stop.stopped_epoch == 3
    assert stop.best == 0.8 and stop.best_epoch == 1


def test_patience_zero_stops_at_first_non_improvement(model, fake_fit):
    stop = EarlyStopping(monitor="loss", patience=0)
    logs = [{"loss": v} for v in [1.0, 0.9, 0.95, 0.5]]
    cbs = fake_fit(model, [stop], logs)
    assert cbs.history.epoch == [0, 1, 2]


def test_runs_all_epochs_while_improving(model, fake_fit):
    stop = EarlyStopping(patience=1)
    cbs = fake_fit(model, [stop], val_logs([1.0, 0.9, 0.8, 0.7]))
    assert cbs.history.epoch == [0, 1, 2, 3]
    assert stop.stopped_epoch == 0 and not model.stop_training


def test_restore_best_weights_after_stop(model, fake_fit):
    stop = EarlyStopping(patience=2, restore_best_weights=True)
    fake_fit(model, [stop], val_logs([1.0, 0.5, 0.9, 0.85, 0.1]), steps=STEPS)
    # Stopped after epoch 3; the best epoch is 1, whose weights were 2 * STEPS (copied, not
    # the live arrays that kept changing).
    for w in model.weights:
        np.testing.assert_array_equal(w, np.full_like(w, 2 * STEPS))


def test_restore_best_weights_without_early_stop(model, fake_fit):
    stop = EarlyStopping(patience=5, restore_best_weights=True)
    fake_fit(model, [stop], val_logs([1.0, 0.5, 0.9]), steps=STEPS)
    assert stop.stopped_epoch == 0
    np.testing.assert_array_equal(model.weights[0], np.full(3, 2.0 * STEPS))


def test_weights_left_alone_without_restore(model, fake_fit):
    fake_fit(model, [EarlyStopping(patience=5)], val_logs([1.0, 2.0, 3.0]), steps=STEPS)
    np.testing.assert_array_equal(model.weights[0], np.full(3, 3.0 * STEPS))


def test_auto_mode_maximizes_accuracy(model, fake_fit):
    stop = EarlyStopping(monitor="val_accuracy", patience=1)
    cbs = fake_fit(model, [stop], val_logs([0.5, 0.6, 0.7, 0.65, 0.8], key="val_accuracy"))
    assert cbs.history.epoch == [0, 1, 2, 3]
    assert stop.best == 0.7


def test_max_mode_explicit(model, fake_fit):
    stop = EarlyStopping(monitor="score", mode="max", patience=0)
    cbs = fake_fit(model, [stop], val_logs([1.0, 2.0, 1.5, 3.0], key="score"))
    assert cbs.history.epoch == [0, 1, 2]


def test_min_delta_ignores_small_improvements(model, fake_fit):
    stop = EarlyStopping(patience=1, min_delta=0.1)
    cbs = fake_fit(model, [stop], val_logs([1.0, 0.95, 0.5]))
    assert cbs.history.epoch == [0, 1]


@pytest.mark.parametrize("baseline, epochs_run", [(None, 3), (0.5, 2), (2.0, 3)])
def test_baseline_not_beaten_counts_towards_patience(model, fake_fit, baseline, epochs_run):
    stop = EarlyStopping(patience=2, baseline=baseline)
    cbs = fake_fit(model, [stop], val_logs([1.0, 1.0, 1.0, 1.0, 1.0]))
    # Epoch 0 beats the initial best; unless it also beats the baseline, its epoch already
    # counts as waiting, so training stops one epoch sooner.
    assert cbs.history.epoch == list(range(epochs_run))


def test_start_from_epoch_delays_monitoring(model, fake_fit):
    stop = EarlyStopping(patience=0, start_from_epoch=3)
    cbs = fake_fit(model, [stop], val_logs([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
    # Epochs 0-2 are warm-up; epoch 3 sets the best, epoch 4 does not improve.
    assert cbs.history.epoch == [0, 1, 2, 3, 4]


def test_reuse_across_fits_resets_state(model, fake_fit):
    stop = EarlyStopping(patience=0)
    fake_fit(model, [stop], val_logs([0.1, 0.2]))
    cbs = fake_fit(model, [stop], val_logs([1.0, 0.9, 0.8]))
    assert cbs.history.epoch == [0, 1, 2]


def test_missing_monitor_warns_with_available_keys(model, fake_fit):
    stop = EarlyStopping(monitor="val_acc", patience=0)
    with pytest.warns(UserWarning, match=r"'val_acc'.*loss, val_loss"):
        cbs = fake_fit(model, [stop], val_logs([1.0, 2.0, 3.0]))
    assert cbs.history.epoch == [0, 1, 2]


def test_verbose_reports_stop_and_restore(model, fake_fit, capsys):
    stop = EarlyStopping(patience=0, verbose=1, restore_best_weights=True)
    fake_fit(model, [stop], val_logs([1.0, 2.0]))
    out = capsys.readouterr().out
    assert "Epoch 2: early stopping" in out
    assert "best epoch: 1" in out


def test_unknown_mode_raises():
    with pytest.raises(ValueError, match=r"EarlyStopping.*'maximum'"):
        EarlyStopping(mode="maximum")
