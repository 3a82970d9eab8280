"""``model.summary()``: a table of layers, output shapes and parameter counts."""
from __future__ import annotations


def _fmt_shape(shape):
    if isinstance(shape, list):
        return ", ".join(_fmt_shape(s) for s in shape)
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + ")"


def _rows(model):
    """(name (type), output shape, params, connected-to) for each layer of the model."""
    from .functional import Model
    from .sequential import Sequential

    rows = []
    if isinstance(model, Sequential):
        shape = model.input_shape
        for layer in model.layers:
            try:
                shape = layer.compute_output_shape(shape) if shape is not None else None
            except NotImplementedError:
                shape = None
            rows.append((layer, "?" if shape is None else _fmt_shape(shape), ""))
        return rows
    if isinstance(model, Model) and model._graph:
        # Keras's "Connected to" notation: layer[node index][output index], where the node
        # index counts that layer's calls within this model.
        node_index, counts = {}, {}
        for node in [t.node for t in model.inputs] + model._nodes:
            node_index[id(node)] = counts.get(id(node.layer), 0)
            counts[id(node.layer)] = node_index[id(node)] + 1
        for t in model.inputs:
            rows.append((t.node.layer, _fmt_shape(t.shape), ""))
        for node in model._nodes:
            shapes = [o.shape for o in node.outputs]
            links = ", ".join(f"{t.node.layer.name}[{node_index.get(id(t.node), 0)}][{t.index}]"
                              for t in node.inputs)
            rows.append((node.layer, _fmt_shape(shapes if len(shapes) > 1 else shapes[0]), links))
        return rows
    return [(layer, "?", "") for layer in model.layers]


def summary(model, line_length=None, print_fn=None) -> None:
    """Print the model's layers with their output shapes and parameter counts.

    Args:
        model: a model (an unbuilt one shows "?" shapes and a note).
        line_length: total width of the table.
        print_fn: where to send each line (``print`` by default).

    Shared layers count their weights once (in the row of their first use), and the totals
    split trainable from non-trainable (frozen layers, batch-norm statistics) parameters.

    Example:
        >>> model.summary()                          # doctest: +SKIP
        >>> lines = []
        >>> model.summary(print_fn=lines.append)     # the table as a list of strings
    """
    print_fn = print_fn or print
    rows = _rows(model)
    functional = any(r[2] for r in rows)
    headers = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if functional else [])
    table = []
    seen = set()
    for layer, shape, links in rows:
        params = layer.count_params() if layer.built else 0
        if id(layer) in seen:
            params = 0  # a shared layer's weights are counted once
        seen.add(id(layer))
        row = [f"{layer.name} ({type(layer).__name__})", shape, f"{params:,}"]
        table.append(row + ([links] if functional else []))
    widths = [max(len(h), *(len(r[i]) for r in table)) + 2 if table else len(h) + 2
              for i, h in enumerate(headers)]
    if line_length:
        widths[0] = max(widths[0], line_length - sum(widths[1:]))
    total = sum(widths)
    print_fn(f'Model: "{model.name}"')
    print_fn("=" * total)
    print_fn("".join(h.ljust(w) for h, w in zip(headers, widths)))
    print_fn("=" * total)
    for i, row in enumerate(table):
        print_fn("".join(c.ljust(w) for c, w in zip(row, widths)))
        print_fn(("=" if i == len(table) - 1 else "-") * total)
    if not table:
        print_fn("=" * total)
    trainable = sum(w.size for w in model.trainable_weights)
    non_trainable = sum(w.size for w in model.non_trainable_weights)
    print_fn(f"Total params: {trainable + non_trainable:,}")
    print_fn(f"Trainable params: {trainable:,}")
    print_fn(f"Non-trainable params: {non_trainable:,}")
    if not model.built:
        print_fn("The model is not built yet: give the first layer input_shape=... (or start "
                 "with an Input), or call fit/predict, to see shapes and parameter counts.")
