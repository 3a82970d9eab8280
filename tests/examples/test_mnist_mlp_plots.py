"""The MNIST MLP example's --plots: training curves, first-layer weights, confusion matrix."""
import pytest


def drawn(path):
    """True when the PNG at ``path`` is a real picture: not tiny, not one flat colour."""
    image = pytest.importorskip("matplotlib.image").imread(str(path))
    return min(image.shape[:2]) > 50 and float(image[..., :3].std()) > 0.02


def test_mnist_mlp_plots(tmp_path, capsys, load_example, need_data):
    need_data("mnist")
    pytest.importorskip("matplotlib")
    accuracy = load_example("mnist_mlp").main(
        ["--epochs", "1", "--limit", "300", "--plots", str(tmp_path)])
    assert accuracy > 0.3  # one epoch on 300 digits: far above chance (0.1)
    names = ["history", "weights", "confusion"]
    for name in names:
        assert drawn(tmp_path / f"mnist_mlp_{name}.png"), name
    assert "test digits on the diagonal" in capsys.readouterr().out
