"""model.summary(): layers, output shapes, parameter counts (trainable and not)."""
from fundl.layers import Concatenate, Dense, Dropout, Input, Layer
from fundl.models import Model, Sequential


def _lines(model, **kwargs):
    lines = []
    model.summary(print_fn=lines.append, **kwargs)
    return lines


def _cells(line):
    bar = "┃" if line.startswith("┃") else "│"
    return [c.strip() for c in line.strip(bar).split(bar)]


def _row(lines, name):
    return next(line for line in lines if line.startswith("│ " + name + " "))


def _total(lines, what):
    """The "Total params: 7,114 (27.79 KB)" line's count, as text."""
    line = next(line for line in lines if line.startswith(f" {what} params: "))
    return line.split(": ", 1)[1].split(" (")[0]


def _mlp():
    return Sequential([Dense(64, activation="relu", input_dim=100, name="hidden"),
                       Dropout(0.5, name="drop"), Dense(10, activation="softmax", name="out")],
                      name="mlp")


def test_sequential_summary_lists_layers_shapes_and_params():
    lines = _lines(_mlp())
    assert lines[0] == 'Model: "mlp"'
    hidden = _row(lines, "hidden (Dense)")
    assert "(None, 64)" in hidden and "6,464" in hidden
    assert "(None, 64)" in _row(lines, "drop (Dropout)")
    assert "650" in _row(lines, "out (Dense)")
    assert _total(lines, "Total") == "7,114"
    assert _total(lines, "Trainable") == "7,114"
    assert _total(lines, "Non-trainable") == "0"


def test_frozen_layer_counts_as_non_trainable():
    model = _mlp()
    model.get_layer("hidden").trainable = False
    lines = _lines(model)
    assert _total(lines, "Total") == "7,114"
    assert _total(lines, "Trainable") == "650"
    assert _total(lines, "Non-trainable") == "6,464"


class Stateful(Layer):
    def build(self, input_shape):
        self.add_weight("scale", (input_shape[-1],), "ones")
        self.add_weight("running", (input_shape[-1],), "zeros", trainable=False)

    def call(self, x, training=False):
        return x

    def compute_output_shape(self, input_shape):
        return input_shape


def test_non_trainable_state_is_counted_apart():
    model = Sequential([Dense(4, input_dim=2), Stateful(name="state")])
    lines = _lines(model)
    assert "8" in _row(lines, "state (Stateful)")
    assert _total(lines, "Trainable") == "16" and _total(lines, "Non-trainable") == "4"


def test_functional_summary_shows_connections():
    a, b = Input(shape=(3,), name="a"), Input(shape=(2,), name="b")
    merged = Concatenate(name="merge")([a, b])
    model = Model([a, b], Dense(1, name="out")(merged), name="fn")
    lines = _lines(model)
    assert "Connected to" in lines[2]
    assert _cells(_row(lines, "a (InputLayer)"))[3] == "-"
    row = lines.index(_row(lines, "merge (Concatenate)"))
    assert _cells(lines[row])[3] == "a[0][0]" and _cells(lines[row + 1])[3] == "b[0][0]"
    assert "(None, 5)" in _row(lines, "merge (Concatenate)")
    assert "out[0][0]" not in "\n".join(lines)
    assert _total(lines, "Total") == "6"


def test_shared_layer_appears_per_call_but_counts_once():
    x = Input(shape=(3,), name="x")
    shared = Dense(3, name="shared")
    model = Model(x, shared(shared(x)))
    rows = [line for line in _lines(model) if line.startswith("│ shared (Dense)")]
    assert len(rows) == 2
    assert "12" in rows[0] and "shared[0][0]" in rows[1]
    assert _total(_lines(model), "Total") == "12"


def test_nested_model_is_one_row_with_all_its_params():
    inner = Sequential([Dense(4, input_dim=3), Dense(2)], name="inner")
    outer = Sequential([inner, Dense(1, name="head")])
    lines = _lines(outer)
    row = _row(lines, "inner (Sequential)")
    assert "(None, 2)" in row and "26" in row
    assert _total(lines, "Total") == "29"


def test_unbuilt_model_shows_unknown_shapes_and_a_note():
    lines = _lines(Sequential([Dense(2, name="d")]))
    assert _cells(_row(lines, "d (Dense)"))[1:3] == ["?", "0 (unbuilt)"]
    assert any("not built" in line for line in lines)


def test_summary_prints_to_stdout_by_default(capsys):
    _mlp().summary()
    out = capsys.readouterr().out
    assert 'Model: "mlp"' in out and "Total params: 7,114" in out


def test_line_length_widens_the_table():
    narrow = _lines(_mlp())
    wide = _lines(_mlp(), line_length=120)
    assert len(wide[1]) == 120 > len(narrow[1])


# -- Keras 3's layout and options ---------------------------------------------------------------

def test_keras_3_box_layout_and_memory_sizes():
    lines = _lines(_mlp())
    assert lines[1].startswith("┏") and lines[1].endswith("┓")
    assert _cells(lines[2]) == ["Layer (type)", "Output Shape", "Param #"]
    assert lines[3].startswith("┡") and lines[-4].startswith("└")
    assert lines[5].startswith("├")  # a rule between rows
    assert " Total params: 7,114 (27.79 KB)" in lines
    assert " Non-trainable params: 0 (0.00 B)" in lines
    assert len({len(line) for line in lines[1:-3]}) == 1  # every table line equally wide
    assert len(lines[1]) == 88  # Keras's default width for a plain stack


def test_param_column_is_right_aligned():
    row = _row(_lines(_mlp()), "hidden (Dense)")
    assert row.endswith(" 6,464 │")


def test_show_trainable_adds_a_column():
    model = _mlp()
    model.get_layer("out").trainable = False
    lines = _lines(model, show_trainable=True)
    assert _cells(lines[2])[-1] == "Trainable"
    assert _cells(_row(lines, "hidden (Dense)"))[-1] == "Y"
    assert _cells(_row(lines, "drop (Dropout)"))[-1] == "-"
    assert _cells(_row(lines, "out (Dense)"))[-1] == "N"


def test_expand_nested_lists_the_inner_layers_indented():
    inner = Sequential([Dense(4, input_dim=3, name="in_a"), Dense(2, name="in_b")],
                       name="inner")
    outer = Sequential([inner, Dense(1, name="head")], name="outer")
    flat = _lines(outer)
    assert not any("in_a" in line for line in flat)
    nested = _lines(outer, expand_nested=True)
    names = [_cells(line)[0] for line in nested if line.startswith("│ ") and
             _cells(line)[0]]
    assert names == ["inner (Sequential)", "in_a (Dense)", "in_b (Dense)", "head (Dense)"]
    assert any(line.startswith("│    in_a (Dense)") for line in nested)
    assert _total(nested, "Total") == "29"  # the nested rows do not count twice


def test_layer_range_and_positions():
    lines = _lines(_mlp(), layer_range=("drop", "out"))
    assert not any("hidden" in line for line in lines)
    assert any("drop (Dropout)" in line for line in lines)
    wide = _lines(_mlp(), line_length=100, positions=[0.5, 0.8, 1.0])
    assert len(wide[1]) == 100
    assert_raises = __import__("pytest").raises
    with assert_raises(ValueError, match="layer_range"):
        _lines(_mlp(), layer_range=("nope", "out"))
    with assert_raises(ValueError, match="positions"):
        _lines(_mlp(), positions=[0.5, 1.0])


def test_functional_chain_has_no_connected_to_column():
    x = Input(shape=(3,), name="x")
    model = Model(x, Dense(2, name="d")(Dense(4, name="h")(x)))
    lines = _lines(model)
    assert _cells(lines[2]) == ["Layer (type)", "Output Shape", "Param #"]
    assert _cells(_row(lines, "x (InputLayer)"))[1] == "(None, 3)"


def test_long_cells_wrap_inside_their_column():
    model = Sequential([Dense(2, input_dim=2, name="a_really_long_layer_name_" * 3)])
    lines = _lines(model, line_length=60)
    assert {len(line) for line in lines[1:-3]} == {60}


def test_optimizer_params_are_listed_once_the_optimizer_has_state():
    import numpy as np

    model = _mlp()
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    assert not any("Optimizer params" in line for line in _lines(model))
    x = np.zeros((4, 100), "float32")
    y = np.eye(10, dtype="float32")[[0, 1, 2, 3]]
    model.fit(x, y, epochs=1, verbose=0)
    lines = _lines(model)
    # Adam: two moments per weight, plus the iteration counter and the learning rate (Keras).
    assert " Optimizer params: 14,230 (55.59 KB)" in lines
    assert _total(lines, "Total") == "21,344"
