import math

import pytest

from fundl.callbacks import TerminateOnNaN


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_stops_right_after_the_bad_batch(model, fake_fit, bad):
    def batch_logs(epoch, step):
        return {"loss": bad if (epoch, step) == (1, 1) else 0.5}

    cbs = fake_fit(model, [TerminateOnNaN()], [{"loss": 0.5}] * 3, steps=3,
                   batch_logs=batch_logs)
    assert model.stop_training
    assert model.batches_run[-1] == (1, 1)
    assert cbs.history.epoch == [0, 1]


def test_finite_losses_run_to_the_end(model, fake_fit):
    fake_fit(model, [TerminateOnNaN()], [{"loss": 0.5}] * 2, steps=2)
    assert not model.stop_training
    assert len(model.batches_run) == 4


def test_prints_which_batch(model, fake_fit, capsys):
    fake_fit(model, [TerminateOnNaN()], [{"loss": 0.5}], steps=3,
             batch_logs=lambda e, s: {"loss": math.nan if s == 2 else 0.5})
    assert "Batch 2: Invalid loss, terminating training" in capsys.readouterr().out
