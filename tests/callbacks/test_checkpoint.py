import os

import pytest

from fundl.callbacks import ModelCheckpoint


def val_logs(values, key="val_loss"):
    return [{"loss": 1.0, key: v} for v in values]


def test_formats_epoch_and_metrics_into_file_names(model, fake_fit, tmp_path):
    path = str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.2f}.fundl")
    fake_fit(model, [ModelCheckpoint(path)], val_logs([0.9, 0.456, 0.7]))
    assert sorted(os.listdir(tmp_path)) == [
        "ckpt-01-0.90.fundl", "ckpt-02-0.46.fundl", "ckpt-03-0.70.fundl"]
    assert [kind for kind, _ in model.saved] == ["save"] * 3


def test_save_weights_only_calls_save_weights(model, fake_fit, tmp_path):
    path = tmp_path / "w-{epoch}.npz"  # os.PathLike is accepted
    fake_fit(model, [ModelCheckpoint(path, save_weights_only=True)], val_logs([0.9, 0.8]))
    assert model.saved == [("save_weights", str(tmp_path / "w-1.npz")),
                           ("save_weights", str(tmp_path / "w-2.npz"))]


def test_save_best_only_overwrites_fixed_path_only_on_improvement(model, fake_fit, tmp_path):
    path = str(tmp_path / "best.fundl")
    ckpt = ModelCheckpoint(path, save_best_only=True)
    fake_fit(model, [ckpt], val_logs([0.9, 1.0, 0.5, 0.6, 0.4]))
    # Saves at epochs 0, 2 and 4 only.
    assert model.saved == [("save", path)] * 3
    assert ckpt.best == 0.4
    assert os.listdir(tmp_path) == ["best.fundl"]


def test_save_best_only_with_formatted_names(model, fake_fit, tmp_path):
    path = str(tmp_path / "m{epoch}.fundl")
    fake_fit(model, [ModelCheckpoint(path, save_best_only=True)], val_logs([0.9, 1.0, 0.5]))
    assert sorted(os.listdir(tmp_path)) == ["m1.fundl", "m3.fundl"]


def test_auto_mode_maximizes_accuracy(model, fake_fit, tmp_path):
    path = str(tmp_path / "m{epoch}.fundl")
    ckpt = ModelCheckpoint(path, monitor="val_accuracy", save_best_only=True)
    fake_fit(model, [ckpt], val_logs([0.5, 0.4, 0.8], key="val_accuracy"))
    assert sorted(os.listdir(tmp_path)) == ["m1.fundl", "m3.fundl"]


def test_initial_value_threshold_must_be_beaten(model, fake_fit, tmp_path):
    path = str(tmp_path / "m{epoch}.fundl")
    ckpt = ModelCheckpoint(path, save_best_only=True, initial_value_threshold=0.6)
    fake_fit(model, [ckpt], val_logs([0.9, 0.7, 0.5]))
    assert os.listdir(tmp_path) == ["m3.fundl"]


def test_integer_save_freq_saves_every_n_batches(model, fake_fit, tmp_path):
    path = str(tmp_path / "e{epoch}-b{batch}.fundl")
    fake_fit(model, [ModelCheckpoint(path, save_freq=2)], val_logs([0.9, 0.8]), steps=3)
    # 6 batches in all, counted across epochs: saves after the 2nd, 4th and 6th.
    assert sorted(os.listdir(tmp_path)) == ["e1-b2.fundl", "e2-b1.fundl", "e2-b3.fundl"]


def test_creates_missing_directories(model, fake_fit, tmp_path):
    path = str(tmp_path / "a" / "b" / "m.fundl")
    fake_fit(model, [ModelCheckpoint(path)], val_logs([0.9]))
    assert os.path.isfile(path)


def test_unknown_field_in_filepath_raises_key_error(model, fake_fit, tmp_path):
    path = str(tmp_path / "{val_acc:.2f}.fundl")
    with pytest.raises(KeyError, match=r"val_acc.*epoch"):
        fake_fit(model, [ModelCheckpoint(path)], val_logs([0.9]))


def test_missing_monitor_warns_and_saves(model, fake_fit, tmp_path):
    path = str(tmp_path / "m.fundl")
    with pytest.warns(UserWarning, match=r"'val_auc'.*loss, val_loss"):
        fake_fit(model, [ModelCheckpoint(path, monitor="val_auc", save_best_only=True)],
                 val_logs([0.9]))
    assert os.path.isfile(path)


def test_verbose_messages(model, fake_fit, tmp_path, capsys):
    path = str(tmp_path / "m.fundl")
    fake_fit(model, [ModelCheckpoint(path, save_best_only=True, verbose=1)], val_logs([0.9, 1.0]))
    out = capsys.readouterr().out
    assert "Epoch 1: val_loss improved from inf to 0.90000" in out
    assert "Epoch 2: val_loss did not improve from 0.90000" in out


@pytest.mark.parametrize("save_freq", ["batch", 0, 1.5, True])
def test_invalid_save_freq_raises(tmp_path, save_freq):
    with pytest.raises(ValueError, match="save_freq"):
        ModelCheckpoint(str(tmp_path / "m.fundl"), save_freq=save_freq)
