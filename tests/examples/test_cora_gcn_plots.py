"""The GCN example's --plots: loss/accuracy per epoch and a PCA view of the hidden features."""
import pytest


def drawn(path):
    """True when the PNG at ``path`` is a real picture: not tiny, not one flat colour."""
    image = pytest.importorskip("matplotlib.image").imread(str(path))
    return min(image.shape[:2]) > 50 and float(image[..., :3].std()) > 0.02


def test_cora_gcn_plots(tmp_path, capsys, load_example, need_data):
    need_data("planetoid")
    pytest.importorskip("matplotlib")
    tests = load_example("cora_gcn").main(
        ["--dataset", "cora", "--epochs", "15", "--seeds", "2", "--plots", str(tmp_path)])
    assert min(tests) > 0.3  # 15 epochs: far above chance (1/7)
    for name in ["history", "hidden_pca"]:
        assert drawn(tmp_path / f"cora_gcn_cora_{name}.png"), name
    out = capsys.readouterr().out
    assert out.count("wrote") == 2  # the first seed's pictures only
