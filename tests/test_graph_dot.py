"""fl.graph_dot: the recorded graph as Graphviz DOT text (called before backward frees it)."""
import re

import numpy as np

import fundl as fl

NODE = re.compile(r'^\s*(\w+) \[label="((?:[^"\\]|\\.)*)", shape=(\w+)(.*)\];$')
EDGE = re.compile(r"^\s*(\w+) -> (\w+);$")


def _parse(dot):
    """Check DOT syntax line by line; return {id: (label, shape, rest)} and a list of edges."""
    lines = dot.splitlines()
    assert re.match(r'^digraph "(?:[^"\\]|\\.)*" \{$', lines[0]), lines[0]
    assert lines[-1] == "}"
    assert dot.count("{") == dot.count("}") == 1
    nodes, edges = {}, []
    for line in lines[1:-1]:
        if line.strip() in ("rankdir=LR;", 'node [fontname="Helvetica"];'):
            continue
        m = NODE.match(line)
        if m:
            assert m.group(1) not in nodes, f"node declared twice: {line}"
            nodes[m.group(1)] = (m.group(2), m.group(3), m.group(4))
            continue
        m = EDGE.match(line)
        assert m, f"not a node, an edge or a graph attribute: {line!r}"
        edges.append((m.group(1), m.group(2)))
    for a, b in edges:
        assert a in nodes and b in nodes, f"edge to an undeclared node: {a} -> {b}"
    return nodes, edges


def _labelled_edges(nodes, edges):
    return sorted((nodes[a][0], nodes[b][0]) for a, b in edges)


def test_graph_names_each_op_and_links_them():
    x = fl.tensor(np.ones((2, 3)), requires_grad=True, name="x")
    w = fl.tensor(np.ones((2, 3)), requires_grad=True, name="w")
    b = fl.tensor(np.ones(3), name="b")
    y = (x * w + b).sum()
    nodes, edges = _parse(fl.graph_dot(y))
    ops = sorted(label for label, shape, _ in nodes.values() if shape == "box")
    assert ops == ["Add", "Mul", "Sum"]
    assert _labelled_edges(nodes, edges) == sorted([
        ("x\\n(2, 3) float64", "Mul"), ("w\\n(2, 3) float64", "Mul"), ("Mul", "(2, 3) float64"),
        ("(2, 3) float64", "Add"), ("b\\n(3,) float64", "Add"), ("Add", "(2, 3) float64"),
        ("(2, 3) float64", "Sum"), ("Sum", "() float64"),
    ])


def test_leaves_that_require_grad_are_styled():
    x = fl.tensor([1.0], requires_grad=True, name="x")
    c = fl.tensor([2.0], name="c")
    nodes, _ = _parse(fl.graph_dot(x * c))
    by_label = {label.split("\\n")[0]: rest for label, _, rest in nodes.values()}
    assert "filled" in by_label["x"]
    assert "filled" not in by_label["c"]
    assert all("filled" not in rest for label, shape, rest in nodes.values() if "\\n" not in label)


def test_tensor_used_twice_has_one_node_and_two_edges():
    x = fl.tensor([1.0, 2.0], requires_grad=True)
    nodes, edges = _parse(fl.graph_dot((x * x).sum()))
    assert len(nodes) == 5  # x, Mul, x*x, Sum, output
    leaf = next(k for k, (_, _, rest) in nodes.items() if "filled" in rest)
    mul = next(k for k, (label, _, _) in nodes.items() if label == "Mul")
    assert edges.count((leaf, mul)) == 2


def test_diamond_graph_shares_the_middle_node():
    x = fl.tensor([1.0], requires_grad=True)
    a = fl.exp(x)
    nodes, edges = _parse(fl.graph_dot(a * 2 + a * 3))
    ops = sorted(label for label, shape, _ in nodes.values() if shape == "box")
    assert ops == ["Add", "Exp", "Mul", "Mul"]
    exp_out = next(b for a_, b in edges if nodes[a_][0] == "Exp")
    assert sum(1 for a_, _ in edges if a_ == exp_out) == 2


def test_constant_output_is_a_single_node():
    nodes, edges = _parse(fl.graph_dot(fl.tensor([1.0]) * 2))
    assert len(nodes) == 1 and edges == []


def test_graph_name_and_tensor_names_are_escaped():
    x = fl.tensor([1.0], requires_grad=True, name='a "quoted" \\ name')
    dot = fl.graph_dot((x * 2).sum(), name="my graph")
    assert dot.startswith('digraph "my graph" {')
    nodes, _ = _parse(dot)
    assert any(label.startswith('a \\"quoted\\" \\\\ name') for label, _, _ in nodes.values())


def test_graph_dot_before_backward_keeps_the_graph_usable():
    x = fl.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    fl.graph_dot(y)
    y.backward()
    np.testing.assert_allclose(x.grad, [2.0, 4.0])
