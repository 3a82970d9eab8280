"""distributed_mnist's --plots: the History of the parameter-server fit as training curves."""
import importlib.util
import os
import pathlib

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("matplotlib")

import fundl as fl  # noqa: E402


@pytest.mark.slow
def test_distributed_mnist_example_plots(tmp_path, capsys):
    root = os.environ.get("FUNDL_DATA_DIR")
    if not root or not pathlib.Path(root, "mnist").is_dir():
        pytest.skip("FUNDL_DATA_DIR with mnist/ is not set (CI sets it)")
    from matplotlib.image import imread

    path = pathlib.Path(__file__).resolve().parents[2] / "examples" / "distributed_mnist.py"
    spec = importlib.util.spec_from_file_location("distributed_mnist", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    started = fl.distributed.connect(num_cpus=2)
    try:
        accuracy = example.main(["--epochs", "2", "--train-size", "3000", "--hidden", "32",
                                 "--batch-size", "64", "--plots", str(tmp_path)])
    finally:
        fl.distributed.disconnect(started)
    assert accuracy > 0.5
    png = tmp_path / "distributed_mnist_history.png"
    assert png.is_file() and imread(png).std() > 0.02
    assert "distributed_mnist_history.png" in capsys.readouterr().out
