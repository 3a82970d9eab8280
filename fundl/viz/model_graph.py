"""Pictures of graphs: a model's layers (``plot_model``, as Keras) and a Tensor's autograd graph.

The graph is written in Graphviz's DOT language and laid out by Graphviz's ``dot`` program
(Debian/Ubuntu: ``apt-get install graphviz``; macOS: ``brew install graphviz``; conda:
``conda install graphviz``). Where ``dot`` is not on PATH the functions warn and give the DOT
text instead, which any Graphviz viewer (or https://dreampuf.github.io/GraphvizOnline) draws.

Example:
    >>> fl.viz.plot_model(model, to_file="model.png", show_shapes=True)
    >>> fl.viz.plot_graph((x * w).sum(), to_file="graph.png")
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import warnings

from ._figure import new_figure, require_matplotlib

_GRAPHVIZ_HINT = ("install Graphviz for the picture (Debian/Ubuntu: apt-get install graphviz; "
                  "macOS: brew install graphviz; conda: conda install graphviz)")


def _quote(text):
    """``text`` as a DOT string literal (quotes and backslashes escaped)."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _shape_text(shape):
    if isinstance(shape, list):
        return ", ".join(_shape_text(s) for s in shape)
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + ")"


def _layer_label(layer, in_shape, out_shape, show_shapes, show_layer_names, show_dtype,
                 show_layer_activations, show_trainable):
    head = type(layer).__name__
    if show_layer_names:
        head = f"{layer.name} ({head})"
    lines = [head]
    activation = getattr(layer, "activation", None)
    if show_layer_activations and activation is not None:
        lines.append("activation: " + getattr(activation, "__name__", str(activation)))
    if show_shapes:
        if in_shape is not None:
            lines.append("input: " + _shape_text(in_shape))
        lines.append("output: " + ("?" if out_shape is None else _shape_text(out_shape)))
    if show_dtype and getattr(layer, "dtype", None) is not None:
        lines.append(f"dtype: {layer.dtype}")
    if show_trainable:
        lines.append("trainable" if layer.trainable else "frozen")
    return "\\n".join(_quote(line)[1:-1] for line in lines)


def model_to_dot(model, show_shapes=True, show_layer_names=True, show_dtype=False,
                 show_layer_activations=False, show_trainable=False, rankdir="TB",
                 dpi=96) -> str:
    """The layer graph of ``model`` as DOT text (what :func:`plot_model` draws).

    A ``Sequential`` model is a chain (with its input first when its shape is known); a
    functional ``Model`` has one box per layer and an arrow per connection (shared layers
    once, with every arrow); a subclassed model lists its layers in order, without arrows
    (its connections live in Python code that is not recorded).

    Args:
        model: a fundl model.
        show_shapes: write each layer's input and output shapes.
        show_layer_names: write the layer names, not only their types.
        show_dtype: write each layer's dtype.
        show_layer_activations: write the activation of layers that have one.
        show_trainable: mark frozen layers.
        rankdir: ``"TB"`` (top to bottom) or ``"LR"`` (left to right), as Graphviz.
        dpi: the resolution Graphviz renders at.

    Returns:
        str: a ``digraph`` in the DOT language.

    Raises:
        TypeError: ``model`` is not a fundl model.
        ValueError: ``rankdir`` is not one of Graphviz's four.

    Example:
        >>> print(model_to_dot(model))      # digraph "sequential" { ... }
    """
    from ..models import Model, Sequential

    if not isinstance(model, Model):
        raise TypeError(f"model_to_dot: expected a fundl model (Sequential or Model), got "
                        f"{type(model).__name__}; for a Tensor's autograd graph use "
                        f"fl.graph_dot or fundl.viz.plot_graph.")
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(f"model_to_dot: rankdir must be 'TB', 'LR', 'BT' or 'RL', got "
                         f"{rankdir!r}.")
    options = (show_shapes, show_layer_names, show_dtype, show_layer_activations, show_trainable)
    lines = [f"digraph {_quote(model.name)} {{", f"  rankdir={rankdir};", f"  dpi={int(dpi)};",
             '  node [shape=box, fontname="Helvetica", fontsize=11, style="rounded,filled", '
             'fillcolor="#eef2fb"];', '  edge [fontname="Helvetica"];']
    ids = {}

    def node(layer, in_shape, out_shape):
        if id(layer) not in ids:
            ids[id(layer)] = f"l{len(ids)}"
            label = _layer_label(layer, in_shape, out_shape, *options)
            lines.append(f'  {ids[id(layer)]} [label="{label}"];')
        return ids[id(layer)]

    if isinstance(model, Sequential):
        shape = model.input_shape
        previous = None
        if shape is not None:
            previous = f"l{len(ids)}"
            ids["input"] = previous
            label = "input" + (f"\\noutput: {_shape_text(shape)}" if show_shapes else "")
            lines.append(f'  {previous} [label="{label}", fillcolor="#ffffff"];')
        for layer in model.layers:
            try:
                out = layer.compute_output_shape(shape) if shape is not None else None
            except (NotImplementedError, ValueError, TypeError):
                out = None
            current = node(layer, shape, out)
            if previous is not None:
                lines.append(f"  {previous} -> {current};")
            previous, shape = current, out
    elif getattr(model, "_graph", False):
        for t in model.inputs:
            node(t.node.layer, None, t.shape)
        for n in model._nodes:
            in_shapes = [t.shape for t in n.inputs]
            out_shapes = [t.shape for t in n.outputs]
            current = node(n.layer, in_shapes if len(in_shapes) > 1 else in_shapes[0],
                           out_shapes if len(out_shapes) > 1 else out_shapes[0])
            for t in n.inputs:
                lines.append(f"  {ids[id(t.node.layer)]} -> {current};")
    else:
        for layer in model.layers:
            node(layer, None, None)
        note = (f"{type(model).__name__}: layers in order; a subclassed model does not "
                "record its connections")
        lines.append(f"  label={_quote(note)};")
    lines.append("}")
    return "\n".join(lines)


def _dot_binary():
    return shutil.which("dot")


def render_dot(dot_text, to_file=None, who="render_dot", dpi=96):
    """Lay out DOT text with Graphviz's ``dot`` and return a Figure showing the picture.

    Args:
        dot_text: a graph in the DOT language.
        to_file: a path; the PNG that ``dot`` made is written there.
        who: the name used in messages.
        dpi: the figure's resolution (the PNG keeps the resolution the DOT text asks for).

    Returns:
        matplotlib.figure.Figure showing the PNG at its own size, or — where ``dot`` is not
        on PATH — the DOT text itself (str), after a warning saying how to get the picture;
        ``to_file`` then gets the DOT text, with the suffix ``.dot``.

    Raises:
        RuntimeError: ``dot`` failed on the text (its message included).
    """
    binary = _dot_binary()
    if binary is not None:
        require_matplotlib()  # before running dot: a missing extra is named, not a bare import
    if binary is None:
        target = ""
        if to_file is not None:
            base, _ = os.path.splitext(os.fspath(to_file))
            target = base + ".dot"
            with open(target, "w", encoding="utf-8") as f:
                f.write(dot_text + "\n")
            target = f"; the DOT text is in {target}"
        warnings.warn(f"{who}: Graphviz's dot program is not on PATH, so the graph is returned "
                      f"as DOT text: {_GRAPHVIZ_HINT}{target}.", UserWarning, stacklevel=3)
        return dot_text
    try:
        done = subprocess.run([binary, "-Tpng"], input=dot_text.encode("utf-8"),
                              capture_output=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"{who}: running Graphviz's dot ({binary}) failed: {e}.") from e
    if done.returncode != 0 or not done.stdout.startswith(b"\x89PNG"):
        raise RuntimeError(f"{who}: Graphviz's dot ({binary}) could not draw the graph (exit "
                           f"{done.returncode}): {done.stderr.decode(errors='replace').strip()}")
    png = done.stdout
    if to_file is not None:
        path = os.fspath(to_file)
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        with open(path, "wb") as f:
            f.write(png)
    from matplotlib.image import imread

    image = imread(io.BytesIO(png), format="png")
    height, width = image.shape[:2]
    fig = new_figure((width / dpi, height / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(image, interpolation="nearest")
    ax.set_axis_off()
    fig.png = png
    fig.dot_source = dot_text
    return fig


def plot_model(model, to_file=None, show_shapes=True, show_layer_names=True, show_dtype=False,
               show_layer_activations=False, show_trainable=False, rankdir="TB", dpi=96):
    """A picture of the model's layers and their connections (Keras's ``plot_model``).

    Graphviz's ``dot`` lays the graph out (see :func:`model_to_dot` for what it shows).

    Args:
        model: a fundl model.
        to_file: a path; the PNG Graphviz made is written there (``model.png``).
        show_shapes, show_layer_names, show_dtype, show_layer_activations, show_trainable,
        rankdir: as in :func:`model_to_dot`.
        dpi: the resolution of the picture.

    Returns:
        matplotlib.figure.Figure showing the graph (``fig.png`` holds the PNG bytes,
        ``fig.dot_source`` the DOT text), or the DOT text (str) with a warning when Graphviz's
        ``dot`` is not installed (``to_file`` then gets the DOT text, suffix ``.dot``).

    Example:
        >>> fig = plot_model(model, to_file="model.png", show_shapes=True)
    """
    dot_text = model_to_dot(model, show_shapes=show_shapes, show_layer_names=show_layer_names,
                            show_dtype=show_dtype, show_layer_activations=show_layer_activations,
                            show_trainable=show_trainable, rankdir=rankdir, dpi=dpi)
    return render_dot(dot_text, to_file=to_file, who="plot_model", dpi=dpi)


def plot_graph(tensor, to_file=None, name="fundl", dpi=96):
    """A picture of the autograd graph that produced ``tensor`` (:func:`fl.graph_dot` drawn).

    Tensors are ellipses (leaves that require a gradient filled), operations boxes. Call it
    before ``backward()``, which frees the graph.

    Args:
        tensor: a Tensor computed while gradients were recorded.
        to_file: a path; the PNG Graphviz made is written there.
        name: the graph's name.
        dpi: the resolution of the picture.

    Returns:
        matplotlib.figure.Figure, or the DOT text (str) with a warning when Graphviz's ``dot``
        is not installed.

    Raises:
        TypeError: ``tensor`` is not a fundl Tensor.

    Example:
        >>> x = fl.tensor([1.0, 2.0], requires_grad=True)
        >>> fig = plot_graph((x * x).sum(), to_file="graph.png")
    """
    from ..tensor import Tensor
    from .graph import graph_dot

    if not isinstance(tensor, Tensor):
        raise TypeError(f"plot_graph: expected a fundl Tensor computed with gradients recorded, "
                        f"got {type(tensor).__name__}; for a model's layers use plot_model.")
    text = graph_dot(tensor, name=name)
    # graph_dot's text has no resolution; ask dot for the figure's.
    text = text.replace("  rankdir=LR;", f"  rankdir=LR;\n  dpi={int(dpi)};", 1)
    return render_dot(text, to_file=to_file, who="plot_graph", dpi=dpi)
