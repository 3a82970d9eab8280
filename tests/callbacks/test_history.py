from fundl.callbacks import History


def test_history_records_per_epoch_lists(model, fake_fit, losses_to_logs):
    cbs = fake_fit(model, [], losses_to_logs([(0.9, 1.0), (0.5, 0.7), (0.3, 0.6)]))
    history = cbs.history
    assert history.history == {"loss": [0.9, 0.5, 0.3], "val_loss": [1.0, 0.7, 0.6]}
    assert history.epoch == [0, 1, 2]
    assert model.history is history


def test_history_stops_with_training(model, fake_fit):
    def stop_at_first_batch(epoch, step):
        if epoch == 1:
            model.stop_training = True
        return {"loss": 1.0}

    cbs = fake_fit(model, [], [{"loss": 1.0}] * 4, batch_logs=stop_at_first_batch)
    assert cbs.history.epoch == [0, 1]
    assert len(cbs.history.history["loss"]) == 2


def test_user_history_keeps_growing_across_fits_but_epochs_restart(model, fake_fit):
    history = History()
    fake_fit(model, [history], [{"loss": 1.0}, {"loss": 0.5}])
    fake_fit(model, [history], [{"loss": 0.4}])
    assert history.history["loss"] == [1.0, 0.5, 0.4]
    assert history.epoch == [0]
