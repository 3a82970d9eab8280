"""dbn_mnist's --plots: the first RBM's filters, the fine-tuning curves, the accuracy bars."""
import pytest


def _drawn(path):
    from matplotlib.image import imread

    assert path.is_file(), f"{path.name} was not written"
    assert imread(path).std() > 0.02, f"{path.name} is blank"


def test_dbn_example_plots(tmp_path, load_example, need_data):
    need_data("mnist")
    pytest.importorskip("matplotlib")
    out = load_example("dbn_mnist").main(["--unlabelled", "500", "--labelled", "200",
                                          "--test", "300", "--hidden", "32", "16",
                                          "--pretrain-epochs", "2", "--epochs", "3",
                                          "--plots", str(tmp_path)])
    assert 0 <= out["dbn_accuracy"] <= 1
    for name in ["filters", "finetuning", "accuracy"]:
        _drawn(tmp_path / f"dbn_mnist_{name}.png")
