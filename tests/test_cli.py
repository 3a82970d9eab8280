"""The ``fundl`` command: --help, --version, and ``fundl demo`` with and without MNIST."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fundl
from fundl.cli import main
from fundl.models import load_model


def test_help_lists_the_demo_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: fundl" in out and "demo" in out


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "usage: fundl" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"fundl {fundl.__version__}"


def test_demo_help_documents_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = capsys.readouterr().out
    for option in ("--epochs", "--output", "--limit", "--seed", "--verbose"):
        assert option in out


def test_demo_rejects_a_tiny_limit(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--limit", "3"])
    assert exit_info.value.code == 2
    assert "--limit" in capsys.readouterr().err


def test_module_entry_point_runs_in_a_subprocess():
    result = subprocess.run([sys.executable, "-m", "fundl.cli", "--version"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"fundl {fundl.__version__}"


def _offline_env(monkeypatch, tmp_path):
    """No MNIST anywhere and no network: an empty cache and an unreachable mirror."""
    monkeypatch.delenv("FUNDL_DATA_DIR", raising=False)
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("FUNDL_CACHE_DIR", str(cache))
    monkeypatch.setenv("FUNDL_DATASETS_URL", "http://127.0.0.1:9")
    return cache


def test_demo_without_mnist_falls_back_to_synthetic_data_and_says_so(monkeypatch, tmp_path,
                                                                     capsys):
    cache = _offline_env(monkeypatch, tmp_path)
    output = tmp_path / "demo.fundl"
    assert main(["demo", "--epochs", "2", "--output", str(output), "--verbose", "0"]) == 0
    out = capsys.readouterr().out
    assert "MNIST is not available" in out and "synthetic" in out
    assert "FUNDL_DATA_DIR" in out  # says how to get the real thing
    assert "test accuracy" in out and "saved to" in out
    model = load_model(output)
    assert model.predict(np.zeros((1, 2), "float32")).shape == (1, 3)
    assert not any(cache.rglob("*.gz"))  # nothing was downloaded


def _mnist_dir():
    root = os.environ.get("FUNDL_DATA_DIR")
    if not root:
        pytest.skip("FUNDL_DATA_DIR is not set (CI sets it to ../shared/data)")
    if not (Path(root) / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"{root}/mnist/ lacks the MNIST files")
    return root


@pytest.mark.slow
def test_demo_on_mnist_trains_reports_and_saves(tmp_path, capsys):
    _mnist_dir()
    output = tmp_path / "mnist.fundl"
    assert main(["demo", "--epochs", "1", "--limit", "3000", "--output", str(output),
                 "--verbose", "2"]) == 0
    out = capsys.readouterr().out
    assert "on MNIST (3000 training, 3000 test samples)" in out
    assert "Total params: 235,146" in out and "val_accuracy" in out
    accuracy = float(out.split("test accuracy ")[1].split()[0])
    assert accuracy > 0.6  # one epoch on 2,700 images already beats chance (0.1) by far
    model = load_model(output)
    assert model.predict(np.zeros((2, 784), "float32")).shape == (2, 10)


def test_zoo_lists_every_model(capsys):
    from fundl.cli import main
    from fundl.zoo import list_models

    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    for name in list_models():
        assert name in out
    assert "61,706" in out  # LeNet-5's parameter count is part of its description


# -- fundl bench ---------------------------------------------------------------------------------
def test_bench_lists_the_benchmark_scripts(capsys):
    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("cnn", "rnn", "dispatch", "mlp_fit"):
        assert name in out


def test_bench_rejects_an_unknown_benchmark(capsys):
    assert main(["bench", "nope"]) == 2
    assert "unknown benchmark nope; choose from" in capsys.readouterr().err


def test_bench_without_a_source_tree_says_what_to_do(monkeypatch, capsys):
    from fundl import cli

    monkeypatch.setattr(cli, "_BENCH_DIR", "no_such_folder")
    assert main(["bench"]) == 1
    assert "Clone the repository" in capsys.readouterr().err


def test_bench_passes_options_after_the_separator(monkeypatch):
    import subprocess

    from fundl import cli

    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, cwd: calls.append(cmd) or
                        subprocess.CompletedProcess(cmd, 0))
    assert main(["bench", "cnn", "--", "--rounds", "2", "--skip-resnet"]) == 0
    assert calls[0][1].endswith("bench_cnn.py") and calls[0][2:] == ["--rounds", "2",
                                                                     "--skip-resnet"]
    assert cli._benchmarks()  # this checkout has them


def test_separator_is_only_for_bench(capsys):
    with pytest.raises(SystemExit):
        main(["zoo", "--", "x"])
    assert "only for `fundl bench`" in capsys.readouterr().err


def _corrupt_mnist_dir(tmp_path):
    """A FUNDL_DATA_DIR whose MNIST files exist but are not MNIST (wrong checksums)."""
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (folder / name).write_bytes(b"not mnist")
    return folder.parent


def test_demo_with_a_corrupt_data_file_prints_the_whole_message_without_a_traceback(
        monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("FUNDL_DATA_DIR", str(_corrupt_mnist_dir(tmp_path)))
    assert main(["demo", "--epochs", "1", "--output", str(tmp_path / "d.fundl")]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert captured.err.startswith("fundl demo: cannot load MNIST:")
    assert "md5" in captured.err or "checksum" in captured.err.lower()
    assert not (tmp_path / "d.fundl").exists()


def test_demo_with_a_corrupt_data_file_exits_non_zero_in_a_process(tmp_path):
    env = dict(os.environ, FUNDL_DATA_DIR=str(_corrupt_mnist_dir(tmp_path)))
    result = subprocess.run([sys.executable, "-m", "fundl.cli", "demo", "--epochs", "1",
                             "--output", str(tmp_path / "d.fundl")],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "cannot load MNIST" in result.stderr


def test_demo_offline_prints_the_library_message_in_full(monkeypatch, tmp_path, capsys):
    _offline_env(monkeypatch, tmp_path)
    assert main(["demo", "--epochs", "1", "--output", str(tmp_path / "d.fundl"),
                 "--verbose", "0"]) == 0
    out = capsys.readouterr().out
    # The library's own message names the missing files and where to put them, in full.
    message = out.split("MNIST is not available:\n", 1)[1].split("Training on a synthetic")[0]
    assert len(message.strip().splitlines()) > 1
    assert "train-images-idx3-ubyte.gz" in message


def test_demo_does_not_suggest_fundl_data_dir_when_it_is_set(monkeypatch, tmp_path, capsys):
    _offline_env(monkeypatch, tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("FUNDL_DATA_DIR", str(empty))
    assert main(["demo", "--epochs", "1", "--output", str(tmp_path / "d.fundl"),
                 "--verbose", "0"]) == 0
    out = capsys.readouterr().out
    tail = out.split("Training on a synthetic", 1)[1].splitlines()[0]
    assert "FUNDL_DATA_DIR" not in tail


def test_first_run_announces_kernel_compilation(monkeypatch, capsys):
    import fundl.cli as cli
    import fundl.kernels._jit as jit

    monkeypatch.setattr(jit, "cached_kernel_modules", lambda: set())
    cli._announce_compilation(["conv"])
    assert "compiling CPU kernels, once" in capsys.readouterr().out
    monkeypatch.setattr(jit, "cached_kernel_modules", lambda: {"conv", "pool"})
    cli._announce_compilation(["conv"])
    assert capsys.readouterr().out == ""
