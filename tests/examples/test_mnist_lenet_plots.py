"""The LeNet example's --plots: curves, C1 filters, feature maps, confusion matrix, graph."""
import shutil

import pytest


def drawn(path):
    """True when the PNG at ``path`` is a real picture: not tiny, not one flat colour."""
    image = pytest.importorskip("matplotlib.image").imread(str(path))
    return min(image.shape[:2]) > 50 and float(image[..., :3].std()) > 0.02


def test_mnist_lenet_plots(tmp_path, load_example, need_data):
    need_data("mnist")
    pytest.importorskip("matplotlib")
    accuracy = load_example("mnist_lenet").main(
        ["--epochs", "1", "--limit", "300", "--plots", str(tmp_path)])
    assert accuracy > 0.2  # chance is 0.1
    for name in ["history", "filters_c1", "feature_maps_c1", "feature_maps_c3", "confusion"]:
        assert drawn(tmp_path / f"mnist_lenet_{name}.png"), name
    if shutil.which("dot"):
        assert drawn(tmp_path / "mnist_lenet_model.png")
    else:  # the DOT text instead, with a warning
        assert "c1" in (tmp_path / "mnist_lenet_model.dot").read_text()
