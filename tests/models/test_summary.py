"""model.summary(): layers, output shapes, parameter counts (trainable and not)."""
from fundl.layers import Concatenate, Dense, Dropout, Input, Layer
from fundl.models import Model, Sequential


def _lines(model, **kwargs):
    lines = []
    model.summary(print_fn=lines.append, **kwargs)
    return lines


def _cells(line):
    return [c.strip() for c in line.strip("│┃").split("│")]


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
