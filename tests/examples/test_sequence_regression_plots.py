"""The sequence-regression example: --plots writes curves and forecasts; without, a text chart."""
import pytest


def drawn(path):
    """True when the PNG at ``path`` is a real picture: not tiny, not one flat colour."""
    image = pytest.importorskip("matplotlib.image").imread(str(path))
    return min(image.shape[:2]) > 50 and float(image[..., :3].std()) > 0.02


def test_sequence_regression_plots(tmp_path, capsys, load_example):
    pytest.importorskip("matplotlib")
    mse = load_example("sequence_regression").main(
        ["--epochs", "2", "--train", "500", "--units", "16", "--plots", str(tmp_path)])
    # the clean signal's variance is about 0.58: a forecast that learned nothing is near it
    assert mse < 0.3
    for name in ["history", "forecast"]:
        assert drawn(tmp_path / f"sequence_regression_{name}.png"), name
    assert "wrote" in capsys.readouterr().out


def test_sequence_regression_without_plots_writes_nothing(tmp_path, monkeypatch, capsys,
                                                          load_example):
    monkeypatch.chdir(tmp_path)
    load_example("sequence_regression").main(["--epochs", "1", "--train", "200", "--units", "8"])
    assert list(tmp_path.iterdir()) == []  # no PNG unless asked for
    assert "'-' truth" in capsys.readouterr().out  # the text chart instead
