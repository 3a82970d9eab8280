"""The transfer-learning example's --plots: pre-training curves, accuracy against labels."""
import pytest


def drawn(path):
    """True when the PNG at ``path`` is a real picture: not tiny, not one flat colour."""
    image = pytest.importorskip("matplotlib.image").imread(str(path))
    return min(image.shape[:2]) > 50 and float(image[..., :3].std()) > 0.02


@pytest.mark.slow
def test_transfer_learning_plots(tmp_path, load_example, need_data):
    need_data("mnist")
    pytest.importorskip("matplotlib")
    results = load_example("transfer_learning").main(
        ["--labels", "5", "10", "--draws", "1", "--pretrain-epochs", "1", "--steps", "10",
         "--limit", "600", "--plots", str(tmp_path)])
    assert [per_class for per_class, _, _ in results] == [5, 10]
    for name in ["pretraining", "accuracy"]:
        assert drawn(tmp_path / f"transfer_learning_{name}.png"), name
