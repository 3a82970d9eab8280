"""``fundl train``: options, training on real and stand-in data, saving, and every error path."""
import argparse
import os
from pathlib import Path

import numpy as np
import pytest

import fundl.datasets
from fundl import _cli_train
from fundl.cli import main
from fundl.models import load_model
from fundl.zoo import list_models

QUICK = ["--epochs", "1", "--verbose", "0"]


def _real_data(subdir, fname):
    """$FUNDL_DATA_DIR when it holds ``subdir/fname``; skips otherwise (nothing is downloaded)."""
    root = os.environ.get("FUNDL_DATA_DIR")
    if not root:
        pytest.skip("FUNDL_DATA_DIR is not set (CI sets it to ../shared/data)")
    if not (Path(root) / subdir / fname).is_file():
        pytest.skip(f"{root}/{subdir}/ lacks {fname}")
    return root


def _offline(monkeypatch, tmp_path):
    """No dataset anywhere and no network: empty data folder and cache, an unreachable mirror."""
    monkeypatch.delenv("FUNDL_DATA_DIR", raising=False)
    monkeypatch.setenv("FUNDL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FUNDL_DATASETS_URL", "http://127.0.0.1:9")
    empty = tmp_path / "empty"
    empty.mkdir()
    return empty


def _stand_in(monkeypatch, dataset, n_train=240, n_test=60):
    """Replace ``fundl.datasets.<dataset>.load_data`` with random uint8 data of the real shapes
    and dtypes (CIFAR-10's labels are a column, (n, 1), like Keras's)."""
    rng = np.random.default_rng(0)
    image = (32, 32, 3) if dataset == "cifar10" else (28, 28)
    label = (1,) if dataset == "cifar10" else ()

    def load_data(progress=True):
        return tuple((rng.integers(0, 256, (n, *image), dtype=np.uint8),
                      rng.integers(0, 10, (n, *label), dtype=np.uint8))
                     for n in (n_train, n_test))

    monkeypatch.setattr(getattr(fundl.datasets, dataset), "load_data", load_data)


def _accuracy(out):
    return float(out.split("test accuracy ")[1].split()[0])


def test_help_lists_the_options_and_the_models(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--dataset", "--epochs", "--batch-size", "--optimizer", "--learning-rate",
                   "--validation-split", "--limit", "--seed", "--output", "--verbose",
                   "--data-dir", "--depth", "--config", "--growth-rate", "cifar10"):
        assert option in out, option
    for name in list_models():
        assert name in out, name


def test_fundl_help_lists_train(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "train" in capsys.readouterr().out


def test_dataset_is_required(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "lenet5"])
    assert exit_info.value.code == 2
    assert "--dataset" in capsys.readouterr().err


def test_lenet5_on_mnist_trains_reports_and_saves_a_reloadable_model(tmp_path, capsys):
    root = _real_data("mnist", "train-images-idx3-ubyte.gz")
    output = tmp_path / "lenet5.fundl"
    assert main(["train", "lenet5", "--dataset", "mnist", "--limit", "300", *QUICK,
                 "--data-dir", root, "--output", str(output)]) == 0
    out = capsys.readouterr().out
    assert "lenet5 (61,706 parameters) on MNIST (300 training, 300 test samples)" in out
    assert f"saved to {output}" in out
    accuracy = _accuracy(out)
    assert accuracy > 0.2  # one epoch of 270 images is already well above chance (0.1)
    # The file holds the trained model: it scores the printed accuracy on the same images.
    (_, _), (x_test, y_test) = fundl.datasets.mnist.load_data(progress=False)
    x_test = x_test[:300, :, :, None].astype(np.float32) / 255
    model = load_model(output)
    _, reloaded = model.evaluate(x_test, y_test[:300].astype(np.int64), verbose=0)
    assert round(reloaded, 4) == accuracy


@pytest.mark.slow
def test_resnet_cifar_on_cifar10(tmp_path, capsys):
    root = _real_data("cifar10", "cifar-10-binary.tar.gz")
    output = tmp_path / "resnet.fundl"
    assert main(["train", "resnet_cifar", "--depth", "8", "--dataset", "cifar10",
                 "--limit", "200", *QUICK, "--data-dir", root, "--output", str(output)]) == 0
    out = capsys.readouterr().out
    assert "resnet8_cifar" in out and "on CIFAR-10 (200 training, 200 test samples)" in out
    assert 0 <= _accuracy(out) <= 1
    assert load_model(output).predict(np.zeros((1, 32, 32, 3), "float32")).shape == (1, 10)


def test_cifar_shaped_data_with_sgd_and_a_learning_rate(monkeypatch, tmp_path, capsys):
    _stand_in(monkeypatch, "cifar10")
    output = tmp_path / "resnet8.fundl"
    assert main(["train", "resnet_cifar", "--depth", "8", "--dataset", "cifar10", *QUICK,
                 "--limit", "200", "--optimizer", "sgd", "--learning-rate", "0.05",
                 "--batch-size", "64", "--output", str(output)]) == 0
    out = capsys.readouterr().out
    assert "resnet8_cifar" in out and "(200 training, 60 test samples)" in out
    assert "SGD with learning rate 0.05" in out
    model = load_model(output)
    assert model.optimizer.learning_rate == pytest.approx(0.05)  # saved with its compile
    assert model.predict(np.zeros((2, 32, 32, 3), "float32")).shape == (2, 10)


def test_default_output_name_is_model_and_dataset(monkeypatch, tmp_path, capsys):
    _stand_in(monkeypatch, "fashion_mnist", n_train=40, n_test=20)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "lenet5", "--dataset", "fashion_mnist", *QUICK,
                 "--validation-split", "0"]) == 0
    assert "saved to lenet5_fashion_mnist.fundl" in capsys.readouterr().out
    model = load_model(tmp_path / "lenet5_fashion_mnist.fundl")
    assert model.predict(np.zeros((1, 28, 28, 1), "float32")).shape == (1, 10)


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_images_are_scaled_to_float32_in_0_1_with_flat_int_labels(monkeypatch, dataset):
    _stand_in(monkeypatch, dataset)
    args = argparse.Namespace(dataset=dataset, limit=50, verbose=0, data_dir=None)
    (x, y), (xt, yt) = _cli_train._load(args)
    shape = _cli_train.DATASETS[dataset][0]
    assert x.shape == (50, *shape) and xt.shape == (50, *shape)
    assert x.dtype == xt.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert x.max() > 0.9  # 0..255 became 0..1, not 0..1/255
    assert y.shape == yt.shape == (50,) and y.dtype == yt.dtype == np.int64


def test_unknown_model_exits_2_naming_the_valid_models(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "lenet6", "--dataset", "mnist"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "lenet6" in err and "lenet5" in err and "resnet_cifar" in err


def test_missing_dataset_exits_1_with_the_loaders_message(monkeypatch, tmp_path, capsys):
    empty = _offline(monkeypatch, tmp_path)
    assert main(["train", "lenet5", "--dataset", "mnist", "--data-dir", str(empty),
                 *QUICK]) == 1
    captured = capsys.readouterr()
    assert "cannot load mnist" in captured.err
    assert "not found locally" in captured.err and f"currently {empty}" in captured.err
    assert "Traceback" not in captured.err and "test accuracy" not in captured.out
    assert not any((tmp_path / "cache").rglob("*.gz"))  # nothing was downloaded
    assert "FUNDL_DATA_DIR" not in os.environ  # --data-dir held for the run only


def test_too_small_input_exits_1_suggesting_small_models(monkeypatch, tmp_path, capsys):
    _offline(monkeypatch, tmp_path)  # the model is built, and fails, before any data is read
    assert main(["train", "alexnet", "--dataset", "mnist", *QUICK]) == 1
    err = capsys.readouterr().err
    assert "alexnet" in err and "(28, 28, 1)" in err and "lenet5" in err
    assert "not found locally" not in err


@pytest.mark.parametrize("argv, expected", [
    (["resnet_cifar", "--depth", "21"], "6n + 2"),
    (["lenet5", "--depth", "8"], "lenet5 has no depth"),
    (["vgg", "--config", "Z"], "config must be one of"),
    (["lenet5", "--optimizer", "adamq"], "unknown optimizer 'adamq'"),
    (["lenet5", "--output", "/nonexistent-folder/m.fundl"], "does not exist"),
])
def test_bad_options_exit_2_before_loading_data(monkeypatch, tmp_path, capsys, argv, expected):
    _offline(monkeypatch, tmp_path)
    assert main(["train", *argv, "--dataset", "mnist", *QUICK]) == 2
    err = capsys.readouterr().err
    assert expected in err and "not found locally" not in err


@pytest.mark.parametrize("option, value", [("--limit", "3"), ("--validation-split", "1"),
                                           ("--epochs", "0"), ("--verbose", "3"),
                                           ("--learning-rate", "-1"), ("--learning-rate", "nan")])
def test_out_of_range_values_are_argparse_errors(capsys, option, value):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "lenet5", "--dataset", "mnist", option, value])
    assert exit_info.value.code == 2
    assert option in capsys.readouterr().err
