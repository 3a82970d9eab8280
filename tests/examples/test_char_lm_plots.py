"""The character-level LM example's --plots: loss and perplexity per epoch."""
import pytest


def drawn(path):
    """True when the PNG at ``path`` is a real picture: not tiny, not one flat colour."""
    image = pytest.importorskip("matplotlib.image").imread(str(path))
    return min(image.shape[:2]) > 50 and float(image[..., :3].std()) > 0.02


def test_char_lm_plots(tmp_path, capsys, load_example):
    pytest.importorskip("matplotlib")
    curves = load_example("char_lm").main(
        ["--epochs", "4", "--windows", "128", "--seq-length", "24", "--units", "32",
         "--length", "20", "--temperature", "1.0", "--plots", str(tmp_path)])
    assert curves["loss"][-1] < curves["loss"][0]  # the loss falls
    assert drawn(tmp_path / "char_lm_history.png")
    assert "temperature 1.0" in capsys.readouterr().out
