"""Render the recorded computational graph as Graphviz DOT text."""
from __future__ import annotations

from ..tensor import Tensor


def _tensor_label(t: Tensor) -> str:
    # A user's name may hold quotes or backslashes; escaped, they cannot end the DOT string early.
    name = str(t.name).replace("\\", "\\\\").replace('"', '\\"') + "\\n" if t.name else ""
    return f"{name}{tuple(t.shape)} {t.dtype}"


def graph_dot(output: Tensor, name: str = "fundl") -> str:
    """The graph that produced ``output`` as DOT text (render with ``dot -Tpng``).

    Tensors are ellipses (leaves that require a gradient are filled), operations are boxes;
    edges follow the forward direction, input -> op -> output. Call it before ``backward()``,
    which frees the graph (unless ``retain_graph=True``): afterwards only the last op shows.

    Args:
        output: a Tensor computed while gradients were recorded.
        name: the graph's name in the DOT text.

    Returns:
        str: a ``digraph`` in the DOT language.

    Example:
        >>> x = fl.tensor([1.0, 2.0], requires_grad=True)
        >>> print(fl.graph_dot((x * x).sum()))      # digraph "fundl" { ... Mul ... Sum ... }
    """
    # Quoted, any name is a valid DOT ID (even one with spaces, or a keyword such as "graph").
    name = '"' + str(name).replace("\\", "\\\\").replace('"', '\\"') + '"'
    lines = [f"digraph {name} {{", "  rankdir=LR;", '  node [fontname="Helvetica"];']
    ids = {}

    def tensor_node(t):
        key = id(t)
        if key not in ids:
            ids[key] = f"t{len(ids)}"
            style = ', style=filled, fillcolor="lightblue"' if t.requires_grad and t.creator is None else ""
            lines.append(f'  {ids[key]} [label="{_tensor_label(t)}", shape=ellipse{style}];')
        return ids[key]

    seen_fns = set()
    stack = [output]
    tensor_node(output)
    while stack:
        t = stack.pop()
        fn = t.creator
        if fn is None:
            continue
        fid = f"f{id(fn)}"
        if fid not in seen_fns:
            seen_fns.add(fid)
            lines.append(f'  {fid} [label="{fn.name}", shape=box];')
            for x in fn.inputs or ():
                if isinstance(x, Tensor):
                    new = id(x) not in ids
                    lines.append(f"  {tensor_node(x)} -> {fid};")
                    if new:
                        stack.append(x)
        lines.append(f"  {fid} -> {tensor_node(t)};")
    lines.append("}")
    return "\n".join(lines)
