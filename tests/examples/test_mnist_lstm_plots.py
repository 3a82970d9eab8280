"""The MNIST LSTM example's --plots: training curves and the test confusion matrix."""
import pytest


def drawn(path):
    """True when the PNG at ``path`` is a real picture: not tiny, not one flat colour."""
    image = pytest.importorskip("matplotlib.image").imread(str(path))
    return min(image.shape[:2]) > 50 and float(image[..., :3].std()) > 0.02


def test_mnist_lstm_plots(tmp_path, load_example, need_data):
    need_data("mnist")
    pytest.importorskip("matplotlib")
    accuracy = load_example("mnist_lstm").main(
        ["--epochs", "5", "--limit", "256", "--units", "32", "--batch-size", "16", "--plots",
         str(tmp_path)])
    assert accuracy > 0.15  # 80 steps on 256 images: above chance (0.1)
    for name in ["history", "confusion"]:
        assert drawn(tmp_path / f"mnist_lstm_{name}.png"), name
