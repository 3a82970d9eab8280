"""Quick runs of the reinforcement-learning examples with tiny budgets."""
import os

import pytest

pytest.importorskip("gymnasium")


def test_qlearning_example(load_example, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = load_example("rl_qlearning").main([
        "--frozen-episodes", "1500", "--lr", "0.1", "--taxi-episodes", "200",
        "--eval-episodes", "100",
        "--plots", str(tmp_path)])
    success, best = out["frozenlake"]
    assert best == pytest.approx(0.744, abs=0.01)  # value iteration on the known model
    assert success > 0.3  # far above a random walk (~0.015) after 1,500 episodes
    assert out["taxi"] > -200  # a random policy scores about -770 on Taxi
    assert os.path.getsize(tmp_path / "rl_frozenlake_policy.png") > 0
    assert "greedy success rate" in capsys.readouterr().out


def test_cartpole_example(load_example, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    results = load_example("rl_cartpole_dqn").main([
        "--steps", "1200", "--learning-starts", "400", "--train-freq", "64",
        "--gradient-steps", "16", "--hidden", "32", "--eval-every", "600",
        "--eval-episodes", "3", "--verbose", "0", "--lr-decay", "cosine",
        "--plots", str(tmp_path)])
    r = results[0]
    assert r["ends"][-1] <= 1200 and len(r["returns"]) == len(r["ends"])
    assert [step for step, _, _ in r["evaluations"]] == [600, 1200]
    assert 8 <= r["final"][0] <= 500 and 8 <= r["best"][0] <= 500
    assert os.path.getsize(tmp_path / "rl_cartpole_dqn.png") > 0
    assert "solved (mean >= 475" in capsys.readouterr().out


def test_behaviour_cloning_example(load_example, capsys):
    results = load_example("rl_behaviour_cloning").main([
        "--expert-steps", "1300", "--demos", "2", "--epochs", "3", "--eval-episodes", "3"])
    assert set(results) == {"expert", 2}
    assert 8 <= results[2][0] <= 500
    assert "behaviour cloning from   2 expert episodes" in capsys.readouterr().out
