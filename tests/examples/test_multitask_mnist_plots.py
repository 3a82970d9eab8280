"""The multitask example's --plots: the joint network's curves and the accuracy bar chart."""
import pytest


def drawn(path):
    """True when the PNG at ``path`` is a real picture: not tiny, not one flat colour."""
    image = pytest.importorskip("matplotlib.image").imread(str(path))
    return min(image.shape[:2]) > 50 and float(image[..., :3].std()) > 0.02


@pytest.mark.slow
def test_multitask_mnist_plots(tmp_path, load_example, need_data):
    need_data("mnist")
    pytest.importorskip("matplotlib")
    results = load_example("multitask_mnist").main(
        ["--train", "600", "--epochs", "1", "--plots", str(tmp_path)])
    assert results["multitask (one trunk, two heads)"][0] > 0.5  # digits above chance
    for name in ["history", "accuracy"]:
        assert drawn(tmp_path / f"multitask_mnist_{name}.png"), name
