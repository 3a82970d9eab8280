"""The training-protocols example's --plots: the grouped bar chart of the three protocols."""
import pytest


def drawn(path):
    """True when the PNG at ``path`` is a real picture: not tiny, not one flat colour."""
    image = pytest.importorskip("matplotlib.image").imread(str(path))
    return min(image.shape[:2]) > 50 and float(image[..., :3].std()) > 0.02


@pytest.mark.slow
def test_training_protocols_plots(tmp_path, load_example, need_data):
    need_data("mnist")
    pytest.importorskip("matplotlib")
    table = load_example("training_protocols").main(
        ["--labels", "50", "100", "--unlabelled", "1000", "--pretrain-epochs", "1", "--steps",
         "10", "--seeds", "2", "--plots", str(tmp_path)])
    assert set(table) == {50, 100}
    assert all(acc > 0.15 for row in table.values() for acc in row.values()), table
    assert drawn(tmp_path / "training_protocols.png")
