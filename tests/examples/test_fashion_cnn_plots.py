"""The Fashion CNN example's --plots: curves, filters, feature maps, named confusion matrix."""
import shutil

import pytest


def drawn(path):
    """True when the PNG at ``path`` is a real picture: not tiny, not one flat colour."""
    image = pytest.importorskip("matplotlib.image").imread(str(path))
    return min(image.shape[:2]) > 50 and float(image[..., :3].std()) > 0.02


@pytest.mark.slow
def test_fashion_cnn_plots(tmp_path, load_example, need_data):
    need_data("fashion-mnist")
    pytest.importorskip("matplotlib")
    accuracy = load_example("fashion_cnn").main(
        ["--epochs", "1", "--limit", "300", "--width", "8", "--plots", str(tmp_path)])
    assert accuracy > 0.2  # chance is 0.1
    for name in ["history", "filters", "feature_maps_block1", "feature_maps_block2",
                 "confusion"]:
        assert drawn(tmp_path / f"fashion_cnn_{name}.png"), name
    if shutil.which("dot"):
        assert drawn(tmp_path / "fashion_cnn_model.png")
    else:
        assert "digraph" in (tmp_path / "fashion_cnn_model.dot").read_text()
