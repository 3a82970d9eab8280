"""rl_atari_dqn's --plots: the 4 stacked frames the network sees, the returns of the run."""
import numpy as np
import pytest

pytest.importorskip("gymnasium")


@pytest.mark.slow
def test_atari_example_plots(tmp_path, load_example, capsys):
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    agent = load_example("rl_atari_dqn").main([
        "--steps", "60", "--learning-starts", "40", "--buffer", "500", "--batch-size", "4",
        "--verbose", "0", "--plots", str(tmp_path)])
    assert agent.num_timesteps == 60 and np.isfinite(agent.losses_).all()
    for name in ["observation", "returns"]:
        png = tmp_path / f"rl_atari_dqn_{name}.png"
        assert png.is_file(), f"{png.name} was not written"
        assert imread(png).std() > 0.02, f"{png.name} is blank"
    assert "rl_atari_dqn_returns.png" in capsys.readouterr().out


def test_running_returns_restart_at_each_episode(load_example):
    # the returns picture's data: the callback sums rewards within an episode, 0 after its end
    from types import SimpleNamespace

    import fundl as fl

    marks = load_example("rl_atari_dqn").throughput_callback(fl, record_returns=True)
    marks.set_model(SimpleNamespace(learning_starts=100))  # learn() sets the real agent
    marks.on_step(0, {"reward": 1.0})
    marks.on_step(1, {"reward": -1.0})
    marks.on_step(2, {"reward": 1.0})
    marks.on_episode_end(0, {"return": 1.0})
    marks.on_step(3, {"reward": -1.0})
    assert list(marks.running) == [1.0, 0.0, 1.0, -1.0]
    assert load_example("rl_atari_dqn").throughput_callback(fl).running is None
