"""plot_model / model_to_dot / plot_graph: the DOT text, the Graphviz picture, the fallback."""
import re
import shutil

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import fundl as fl  # noqa: E402
from fundl import viz  # noqa: E402
from fundl.layers import Add, Conv2D, Dense, Flatten, Input  # noqa: E402
from fundl.models import Model, Sequential  # noqa: E402
from fundl.viz import model_graph  # noqa: E402

needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz's dot is not installed (apt-get install graphviz)")


def edges(dot):
    return re.findall(r"^\s*(\w+) -> (\w+);", dot, flags=re.M)


def labels(dot):
    return dict(re.findall(r'^\s*(\w+) \[label="(.*?)"', dot, flags=re.M))


@pytest.fixture
def sequential():
    return Sequential([Input(shape=(8, 8, 1)), Conv2D(2, 3, activation="relu", name="conv"),
                       Flatten(name="flat"), Dense(3, activation="softmax", name="out")])


@pytest.fixture
def functional():
    inputs = Input(shape=(4,), name="x")
    a = Dense(3, name="a")(inputs)
    b = Dense(3, name="b", activation="tanh")(inputs)
    outputs = Add(name="sum")([a, b])
    return Model(inputs=inputs, outputs=outputs, name="two_branches")


def test_sequential_is_a_chain_with_shapes(sequential):
    dot = viz.model_to_dot(sequential)
    names = labels(dot)
    assert len(names) == 4  # the input and three layers
    assert edges(dot) == [("l0", "l1"), ("l1", "l2"), ("l2", "l3")]
    assert names["l1"] == "conv (Conv2D)\\ninput: (None, 8, 8, 1)\\noutput: (None, 6, 6, 2)"
    assert names["l3"].endswith("output: (None, 3)")
    bare = labels(viz.model_to_dot(sequential, show_shapes=False, show_layer_names=False))
    assert bare["l1"] == "Conv2D"


def test_functional_branches_and_merge(functional):
    dot = viz.model_to_dot(functional, show_layer_activations=True, rankdir="LR")
    names = labels(dot)
    by_name = {label.split(" ")[0]: node for node, label in names.items()}
    assert sorted(edges(dot)) == sorted([(by_name["x"], by_name["a"]),
                                         (by_name["x"], by_name["b"]),
                                         (by_name["a"], by_name["sum"]),
                                         (by_name["b"], by_name["sum"])])
    assert "activation: tanh" in names[by_name["b"]]
    assert "input: (None, 3), (None, 3)" in names[by_name["sum"]]
    assert "rankdir=LR;" in dot and dot.startswith('digraph "two_branches" {')


def test_model_to_dot_errors(sequential):
    with pytest.raises(TypeError, match="plot_graph"):
        viz.model_to_dot(fl.tensor([1.0]))
    with pytest.raises(ValueError, match="rankdir"):
        viz.model_to_dot(sequential, rankdir="UP")


@needs_dot
def test_plot_model_writes_graphviz_png(sequential, functional, tmp_path):
    from matplotlib.image import imread

    for model in (sequential, functional):
        path = tmp_path / f"{model.name}.png"
        fig = viz.plot_model(model, to_file=path)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = imread(str(path))
        height, width = image.shape[:2]
        assert height > 100 and width > 80
        assert image[..., :3].std() > 0.05  # boxes and text, not a blank page
        # The figure shows that picture at its own size.
        assert fig.get_size_inches() * fig.dpi == pytest.approx([width, height])
        assert len(fig.axes) == 1 and fig.axes[0].images
        assert fig.png == path.read_bytes()
    # A chain of 4 boxes is taller than wide; laid out left to right, wider than tall.
    wide = viz.plot_model(sequential, rankdir="LR")
    w, h = wide.get_size_inches()
    assert w > h


@needs_dot
def test_plot_graph_draws_the_autograd_graph(tmp_path):
    x = fl.tensor([1.0, 2.0], requires_grad=True, name="x")
    y = (x * x).sum()
    path = tmp_path / "graph.png"
    fig = viz.plot_graph(y, to_file=path)
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert "Mul" in fig.dot_source and "Sum" in fig.dot_source
    fig.canvas.draw()
    assert np.asarray(fig.canvas.buffer_rgba())[..., :3].std() > 5


def test_without_graphviz_the_dot_text_comes_back_with_a_warning(sequential, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setattr(model_graph, "_dot_binary", lambda: None)
    with pytest.warns(UserWarning, match="apt-get install graphviz") as record:
        result = viz.plot_model(sequential, to_file=tmp_path / "model.png")
    assert isinstance(result, str) and result == viz.model_to_dot(sequential)
    assert "model.dot" in str(record[0].message)
    assert (tmp_path / "model.dot").read_text().strip() == result
    assert not (tmp_path / "model.png").exists()
    x = fl.tensor([1.0], requires_grad=True)
    with pytest.warns(UserWarning, match="Graphviz"):
        assert viz.plot_graph(x * 2).startswith('digraph "fundl"')


def test_plot_graph_rejects_a_model(sequential):
    with pytest.raises(TypeError, match="plot_model"):
        viz.plot_graph(sequential)


@needs_dot
def test_dot_failure_is_a_clear_error():
    with pytest.raises(RuntimeError, match="could not draw"):
        viz.render_dot("digraph { this is not dot")


@needs_dot
def test_missing_matplotlib_names_the_extra(sequential, monkeypatch):
    import sys

    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg",
                 "matplotlib.image"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"pip install 'fundl\[viz\]'"):
        viz.plot_model(sequential)
    assert viz.model_to_dot(sequential).startswith("digraph")  # the text needs no matplotlib


def test_subclassed_model_lists_its_layers():
    class Net(Model):
        def __init__(self):
            super().__init__(name="net")
            self.first = Dense(4, name="first")
            self.second = Dense(2, name="second")

        def call(self, x, training=False):
            return self.second(self.first(x))

    dot = viz.model_to_dot(Net())
    assert [label.split(" ")[0] for label in labels(dot).values()] == ["first", "second"]
    assert not edges(dot) and "does not record its connections" in dot
