"""rl_behaviour_cloning's --plots: the clones' returns as bars, the expert's as a line."""
import pytest

pytest.importorskip("gymnasium")


def test_behaviour_cloning_example_plots(load_example, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    results = load_example("rl_behaviour_cloning").main([
        "--expert-steps", "1300", "--demos", "1", "2", "--epochs", "3", "--eval-episodes", "3",
        "--plots", str(tmp_path)])
    assert set(results) == {"expert", 1, 2}
    png = tmp_path / "rl_behaviour_cloning.png"
    assert png.is_file() and imread(png).std() > 0.02
    assert "rl_behaviour_cloning.png" in capsys.readouterr().out
