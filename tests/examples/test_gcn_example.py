"""The GCN example: a few epochs on Cora and Citeseer, both forms, far above chance."""
import pytest



@pytest.mark.parametrize("argv", [
    pytest.param(["--dataset", "citeseer", "--epochs", "15"], marks=pytest.mark.slow),
    ["--dataset", "cora", "--epochs", "15", "--nodewise", "--seeds", "2"]])
def test_gcn_example_learns(argv, capsys, load_example, need_data):
    need_data("planetoid")
    tests = load_example("cora_gcn").main(argv)
    assert "test accuracy" in capsys.readouterr().out
    assert min(tests) > 0.3  # 15 epochs already far above chance (1/6 or 1/7)
