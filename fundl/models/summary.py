"""``model.summary()``: Keras 3's table of layers, output shapes and parameter counts.

    Model: "mlp"
    ┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
    ┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
    ┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
    │ hidden (Dense)                  │ (None, 64)             │         6,464 │
    ├─────────────────────────────────┼────────────────────────┼───────────────┤
    │ out (Dense)                     │ (None, 10)             │           650 │
    └─────────────────────────────────┴────────────────────────┴───────────────┘
     Total params: 7,114 (27.79 KB)
     Trainable params: 7,114 (27.79 KB)
     Non-trainable params: 0 (0.00 B)

The memory sizes are those of the weights in their own dtypes. Models that are not a plain
chain of layers (branches, several inputs, shared layers) get Keras's "Connected to" column
(``layer[node index][output index]``).
"""
from __future__ import annotations

import textwrap


def _fmt_shape(shape):
    if isinstance(shape, list):
        return "[" + ", ".join(_fmt_shape(s) for s in shape) + "]"
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + ")" \
        if len(shape) != 1 else "(" + ("None" if shape[0] is None else str(shape[0])) + ",)"


def readable_memory_size(size: float) -> str:
    """Bytes as Keras prints them: ``27.79 KB``, ``0.00 B`` (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size / 1024 < 1:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} PB"


def _optimizer_params(model):
    """(count, bytes) of a built optimizer's state, as Keras 3 counts it: the slots (momenta,
    second moments, ...) plus the iteration counter (int64) and, unless it is a schedule, the
    learning rate (float32); (0, 0) before the optimizer has state."""
    optimizer = getattr(model, "optimizer", None)
    slots = getattr(optimizer, "_slots", None)
    if not slots:
        return 0, 0
    arrays = [a for entry in slots for a in entry.values()]
    count = sum(int(a.size) for a in arrays) + 1
    size = sum(int(a.size) * a.dtype.itemsize for a in arrays) + 8
    if not callable(getattr(optimizer, "_learning_rate", None)):
        count, size = count + 1, size + 4
    return count, size


def _first_output_shape(layer):
    nodes = layer.__dict__.get("_inbound_nodes") or []
    if not nodes:
        return None
    shapes = [o.shape for o in nodes[0].outputs]
    return shapes[0] if len(shapes) == 1 else shapes


def _is_chain(model):
    """Keras's "sequential-like": one input, each node fed by the previous one, no sharing."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return False
    previous = model.inputs[0]
    seen = set()
    for node in model._nodes:
        if len(node.inputs) != 1 or node.inputs[0] is not previous or id(node.layer) in seen \
                or len(node.outputs) != 1:
            return False
        seen.add(id(node.layer))
        previous = node.outputs[0]
    return previous is model.outputs[0]


def _rows(model, expand_nested, depth=0):
    """(layer, output shape text, connected-to lines, depth, counts params) per row, and
    whether the table needs the "Connected to" column."""
    from .functional import Model
    from .sequential import Sequential

    rows = []
    connected = False
    if isinstance(model, Sequential):
        shape = model.input_shape
        for layer in model.layers:
            try:
                shape = layer._output_shape_for(shape) if shape is not None else None
            except (NotImplementedError, ValueError, TypeError):
                shape = None
            rows.append([layer, "?" if shape is None else _fmt_shape(shape), [], depth])
    elif isinstance(model, Model) and model._graph:
        connected = not _is_chain(model)
        # Keras's "Connected to" notation: layer[node index][output index], where the node
        # index counts that layer's calls within this model.
        node_index, counts = {}, {}
        for node in [t.node for t in model.inputs] + model._nodes:
            node_index[id(node)] = counts.get(id(node.layer), 0)
            counts[id(node.layer)] = node_index[id(node)] + 1
        for t in model.inputs:
            rows.append([t.node.layer, _fmt_shape(t.shape), ["-"], depth])
        for node in model._nodes:
            shapes = [o.shape for o in node.outputs]
            links = [f"{t.node.layer.name}[{node_index.get(id(t.node), 0)}][{t.index}]"
                     for t in node.inputs]
            rows.append([node.layer, _fmt_shape(shapes if len(shapes) > 1 else shapes[0]),
                         links or ["-"], depth])
    else:
        for layer in model.layers:
            shape = _first_output_shape(layer)
            rows.append([layer, "?" if shape is None else _fmt_shape(shape), [], depth])
    if not expand_nested:
        return rows, connected
    expanded = []
    for row in rows:
        expanded.append(row)
        layer = row[0]
        if isinstance(layer, Model) and layer.layers and not any(
                r[0] is layer for r in expanded[:-1]):
            inner, _ = _rows(layer, True, depth + 1)
            expanded.extend(inner)
    return expanded, connected


def _wrap(text, width):
    lines = []
    for part in str(text).split("\n"):
        lines.extend(textwrap.wrap(part, width, break_long_words=True,
                                   break_on_hyphens=False) or [""])
    return lines


def summary(model, line_length=None, positions=None, print_fn=None, expand_nested=False,
            show_trainable=False, layer_range=None) -> None:
    """Print the model's layers with their output shapes and parameter counts (Keras 3's table).

    Args:
        model: a model (an unbuilt one shows "?" shapes, "0 (unbuilt)" counts and a note).
        line_length: total width of the table (default: Keras's 88, 108 with "Connected to",
            12 more with ``show_trainable``).
        positions: the columns' right ends, as fractions of ``line_length`` (or absolute).
        print_fn: where to send each line (``print`` by default).
        expand_nested: list the layers of nested models too, indented under them.
        show_trainable: add a "Trainable" column: Y, N, or - for a layer without weights.
        layer_range: ``(first, last)`` layer names: print only the rows from first to last.

    Shared layers count their weights once (in the row of their first use), and the totals
    split trainable from non-trainable (frozen layers, batch-norm statistics) parameters.

    Raises:
        ValueError: a ``layer_range`` naming layers that are not rows of the table, or
            ``positions`` that do not fit the columns.

    Example:
        >>> model.summary()                          # doctest: +SKIP
        >>> lines = []
        >>> model.summary(print_fn=lines.append)     # the table as a list of strings
    """
    print_fn = print_fn or print
    rows, connected = _rows(model, expand_nested)
    headers = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if connected
                                                              else [])
    align = ["left", "left", "right"] + (["left"] if connected else [])
    default_positions = [0.3, 0.56, 0.74, 1.0] if connected else [0.45, 0.80, 1.0]
    default_length = 108 if connected else 88
    if show_trainable:
        headers.append("Trainable")
        align.append("center")
        default_positions = [p * 0.9 for p in default_positions] + [1.0]
        default_length += 12
    line_length = int(line_length or default_length)
    positions = list(positions or default_positions)
    if len(positions) != len(headers):
        raise ValueError(f"summary: positions needs {len(headers)} column ends "
                         f"({headers}), got {positions}.")
    if positions[-1] <= 1:
        positions = [int(line_length * p) for p in positions]
    # Each column takes its share of the line: a border and two spaces of padding included.
    ends = [0] + positions
    widths = [max(ends[i + 1] - ends[i] - 3, 3) for i in range(len(headers))]
    widths[-1] += line_length - (sum(w + 3 for w in widths) + 1)  # exactly line_length wide
    for i, header in enumerate(headers):  # a header is never broken: widen, taking from the
        short = len(header) - widths[i]    # widest column
        if short > 0:
            widest = max(range(len(widths)), key=lambda k: widths[k])
            widths[i] += short
            widths[widest] -= short
    if min(widths) < 3:
        raise ValueError(f"summary: line_length={line_length} is too narrow for the columns.")

    table = []
    counted = set()
    for layer, shape, links, depth in rows:
        if not layer.built:
            params = "0 (unbuilt)"
        elif id(layer) in counted:
            params = "0"  # a shared layer's weights are counted once
        else:
            params = f"{layer.count_params():,}"
        counted.add(id(layer))
        name = "   " * depth + f"{layer.name} ({type(layer).__name__})"
        cells = [name, shape, params] + (["\n".join(links)] if connected else [])
        if show_trainable:
            cells.append(("Y" if layer.trainable else "N") if layer.weights else "-")
        table.append((layer, cells))
    if layer_range is not None:
        names = [layer.name for layer, _ in table]
        first, last = layer_range
        if first not in names or last not in names:
            raise ValueError(f"summary: layer_range {layer_range} must name two layers of the "
                             f"table; they are {names}.")
        i, j = names.index(first), len(names) - 1 - names[::-1].index(last)
        table = table[i:j + 1]

    def line(left, fill, mid, right):
        return left + mid.join(fill * (w + 2) for w in widths) + right

    def render(cells, bar):
        wrapped = [_wrap(c, w) for c, w in zip(cells, widths)]
        height = max(len(c) for c in wrapped)
        out = []
        for k in range(height):
            parts = []
            for c, w, a in zip(wrapped, widths, align):
                text = c[k] if k < len(c) else ""
                text = text.rjust(w) if a == "right" else text.center(w) if a == "center" \
                    else text.ljust(w)
                parts.append(f" {text} ")
            out.append(bar + bar.join(parts) + bar)
        return out

    print_fn(f'Model: "{model.name}"')
    print_fn(line("┏", "━", "┳", "┓"))
    for text in render(headers, "┃"):
        print_fn(text)
    print_fn(line("┡", "━", "╇", "┩"))
    for k, (_, cells) in enumerate(table):
        for text in render(cells, "│"):
            print_fn(text)
        if k < len(table) - 1:
            print_fn(line("├", "─", "┼", "┤"))
    print_fn(line("└", "─", "┴", "┘"))
    trainable = model.trainable_weights
    non_trainable = model.non_trainable_weights
    n_train = sum(w.size for w in trainable)
    n_fixed = sum(w.size for w in non_trainable)
    size_train = sum(w.size * w.dtype.itemsize for w in trainable)
    size_fixed = sum(w.size * w.dtype.itemsize for w in non_trainable)
    n_opt, size_opt = _optimizer_params(model)
    print_fn(f" Total params: {n_train + n_fixed + n_opt:,} "
             f"({readable_memory_size(size_train + size_fixed + size_opt)})")
    print_fn(f" Trainable params: {n_train:,} ({readable_memory_size(size_train)})")
    print_fn(f" Non-trainable params: {n_fixed:,} ({readable_memory_size(size_fixed)})")
    if n_opt:
        print_fn(f" Optimizer params: {n_opt:,} ({readable_memory_size(size_opt)})")
    if not model.built:
        print_fn(" The model is not built yet: give the first layer input_shape=... (or start "
                 "with an Input), or call fit/predict, to see shapes and parameter counts.")
