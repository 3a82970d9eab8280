"""Saving and loading: round trips, resumed training, damaged files, atomic writes, no pickle."""
import ast
import io
import json
import os
import tokenize
import zipfile
from pathlib import Path

import numpy as np
import pytest

import fundl as fl
from fundl.callbacks import ModelCheckpoint
from fundl.layers import Dense, Dropout, Input
from fundl.models import Model, Sequential, load_model
from fundl.optimizers import SGD, Adam, RMSprop
from fundl.saving import CorruptFileError
from fundl.testing import assert_error

PACKAGE = Path(fl.__file__).parent


def _data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype("float32")
    return x, np.eye(3, dtype="float32")[rng.integers(0, 3, n)]


def _model(optimizer="adam", seed=0):
    fl.manual_seed(seed)
    model = Sequential([Dense(8, activation="relu", input_dim=4, name="hidden"), Dropout(0.1),
                        Dense(3, activation="softmax", name="out")], name="clf")
    model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    return model


def _trained(tmp_path, optimizer="adam"):
    x, y = _data()
    model = _model(optimizer)
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    path = tmp_path / "model.fundl"
    model.save(path)
    return model, path


def _same_weights(a, b):
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)


# -- round trips -----------------------------------------------------------------------------

def test_save_and_load_model_predicts_identically(tmp_path):
    model, path = _trained(tmp_path)
    loaded = load_model(path)
    x, _ = _data(seed=1)
    assert type(loaded) is Sequential and loaded.name == "clf"
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_loaded_model_keeps_compile_settings(tmp_path):
    _, path = _trained(tmp_path)
    loaded = load_model(path)
    x, y = _data()
    assert loaded.compiled and type(loaded.optimizer).__name__ == "Adam"
    assert set(loaded.evaluate(x, y, verbose=0, return_dict=True)) == {"loss", "accuracy"}


def test_load_model_without_compile(tmp_path):
    _, path = _trained(tmp_path)
    assert not load_model(path, compile=False).compiled


@pytest.mark.parametrize("optimizer", [lambda: Adam(0.01), lambda: RMSprop(0.01, momentum=0.9),
                                       lambda: SGD(0.1, momentum=0.9, nesterov=True)],
                         ids=["adam", "rmsprop", "sgd-nesterov"])
def test_training_after_reload_continues_exactly(tmp_path, optimizer):
    x, y = _data()
    model = _model(optimizer())
    for i in range(3):
        model.train_on_batch(x[4 * i:4 * i + 4], y[4 * i:4 * i + 4])
    model.save(tmp_path / "m.fundl")
    loaded = load_model(tmp_path / "m.fundl")
    assert loaded.optimizer.iterations == model.optimizer.iterations == 3
    fl.manual_seed(42)  # the same dropout mask in both steps
    loss_a = model.train_on_batch(x[12:], y[12:])
    fl.manual_seed(42)
    loss_b = loaded.train_on_batch(x[12:], y[12:])
    assert loss_a == loss_b
    _same_weights(model, loaded)


def test_functional_multi_output_model_round_trips(tmp_path):
    fl.manual_seed(0)
    a = Input(shape=(4,), name="a")
    h = Dense(5, activation="relu")(a)
    model = Model(a, [Dense(3, activation="softmax", name="cls")(h), Dense(1, name="reg")(h)])
    model.compile(optimizer="adam", loss={"cls": "categorical_crossentropy", "reg": "mse"},
                  loss_weights={"cls": 1.0, "reg": 0.3}, metrics={"cls": ["accuracy"]})
    x, y = _data()
    model.fit(x, [y, x[:, :1]], epochs=1, verbose=0)
    model.save(tmp_path / "f.fundl")
    loaded = load_model(tmp_path / "f.fundl")
    for p, q in zip(loaded.predict(x), model.predict(x)):
        np.testing.assert_array_equal(p, q)
    assert list(loaded.evaluate(x, [y, x[:, :1]], verbose=0, return_dict=True)) == [
        "loss", "cls_loss", "reg_loss", "cls_accuracy"]


def test_frozen_layers_stay_frozen_after_reload(tmp_path):
    model = _model()
    model.get_layer("hidden").trainable = False
    model.save(tmp_path / "m.fundl")
    loaded = load_model(tmp_path / "m.fundl")
    assert not loaded.get_layer("hidden").trainable
    assert len(loaded.trainable_weights) == 2


def test_file_is_a_zip_of_json_and_npz(tmp_path):
    _, path = _trained(tmp_path)
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == ["config.json", "metadata.json", "optimizer.npz",
                                        "weights.npz"]
        meta = json.loads(z.read("metadata.json"))
        config = json.loads(z.read("config.json"))
        weights = np.load(io.BytesIO(z.read("weights.npz")), allow_pickle=False)
        assert meta["format"] == "fundl" and meta["fundl_version"] == fl.__version__
        assert config["class_name"] == "Sequential"
        assert sorted(weights.files) == ["hidden.bias", "hidden.kernel", "out.bias",
                                         "out.kernel"]


def test_saving_an_unbuilt_model_explains(tmp_path):
    model = Sequential([Dense(2)])
    assert_error(ValueError, model.save, tmp_path / "m.fundl", contains=["not built"])


# -- weights only ---------------------------------------------------------------------------------

def test_save_and_load_weights(tmp_path):
    model, _ = _trained(tmp_path)
    model.save_weights(tmp_path / "w.fundl")
    other = _model(seed=5)
    other.load_weights(tmp_path / "w.fundl")
    _same_weights(model, other)


def test_load_weights_from_a_full_model_file(tmp_path):
    model, path = _trained(tmp_path)
    other = _model(seed=5)
    other.load_weights(path)
    _same_weights(model, other)


def test_load_model_of_a_weights_file_explains(tmp_path):
    model, _ = _trained(tmp_path)
    model.save_weights(tmp_path / "w.fundl")
    assert_error(ValueError, load_model, tmp_path / "w.fundl", contains=["load_weights"])


def test_load_weights_into_another_architecture_fails_and_changes_nothing(tmp_path):
    model, _ = _trained(tmp_path)
    model.save_weights(tmp_path / "w.fundl")
    other = Sequential([Dense(5, input_dim=4, name="hidden"), Dense(3, name="out")])
    before = other.get_weights()
    assert_error(ValueError, other.load_weights, tmp_path / "w.fundl",
                 contains=["hidden.kernel", "(4, 5)", "(4, 8)"])
    for a, b in zip(before, other.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_load_weights_skip_mismatch_loads_what_fits(tmp_path):
    model, _ = _trained(tmp_path)
    model.save_weights(tmp_path / "w.fundl")
    other = Sequential([Dense(8, input_dim=4, name="hidden"), Dense(2, name="out")])
    other.load_weights(tmp_path / "w.fundl", skip_mismatch=True)
    np.testing.assert_array_equal(other.get_layer("hidden").kernel.numpy(),
                                  model.get_layer("hidden").kernel.numpy())


def test_model_checkpoint_saves_weights_only_files(tmp_path):
    x, y = _data()
    model = _model()
    ckpt = ModelCheckpoint(str(tmp_path / "w-{epoch}.fundl"), monitor="loss",
                           save_weights_only=True)
    model.fit(x, y, epochs=1, callbacks=[ckpt], verbose=0)
    other = _model(seed=3)
    other.load_weights(tmp_path / "w-1.fundl")
    _same_weights(model, other)


# -- damaged and hostile files -------------------------------------------------------------------

def _assert_load_fails_and_model_untouched(path, *contains):
    model = _model(seed=7)
    before = model.get_weights()
    e = assert_error(ValueError, model.load_weights, path, contains=contains)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert_error(ValueError, load_model, path)
    return e


def test_truncated_file_raises_a_clear_error(tmp_path):
    _, path = _trained(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    e = _assert_load_fails_and_model_untouched(path, str(path), "truncated")
    assert isinstance(e, CorruptFileError)


def test_corrupt_weight_byte_is_caught_by_the_checksum(tmp_path):
    _, path = _trained(tmp_path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("weights.npz")
    at = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.file_size // 2
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    _assert_load_fails_and_model_untouched(path, "weights.npz")


def test_any_flipped_byte_either_loads_identically_or_raises_value_error(tmp_path):
    model, path = _trained(tmp_path)
    original = path.read_bytes()
    positions = np.random.default_rng(0).choice(len(original), 150, replace=False)
    bad = tmp_path / "bad.fundl"
    for at in positions:
        data = bytearray(original)
        data[at] ^= 0x5A
        bad.write_bytes(bytes(data))
        try:
            loaded = load_model(bad)
        except ValueError:
            continue  # CorruptFileError, or an unknown class/mismatch: clear, and a ValueError
        _same_weights(model, loaded)


def test_a_file_that_is_not_a_zip_raises_a_clear_error(tmp_path):
    path = tmp_path / "notes.fundl"
    path.write_text("this is not a model\n")
    _assert_load_fails_and_model_untouched(path, "not a readable fundl file")


def test_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nope.fundl")


def _rewrite(path, drop=(), replace=None):
    """Rewrite the archive at ``path`` without the members in ``drop``, with ``replace``d ones."""
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist() if n not in drop}
    members.update(replace or {})
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


@pytest.mark.parametrize("member", ["weights.npz", "config.json", "metadata.json"])
def test_a_zip_with_a_missing_member_names_it(tmp_path, member):
    _, path = _trained(tmp_path)
    _rewrite(path, drop=[member])
    assert_error(CorruptFileError, load_model, path, contains=[member])


def test_a_zip_from_another_program_is_rejected(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", json.dumps({"format": "keras"}))
    assert_error(CorruptFileError, load_model, path, contains=["not a fundl file"])


def test_a_config_naming_an_unknown_class_is_rejected(tmp_path):
    model, path = _trained(tmp_path)
    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
    config["config"]["layers"][0]["class_name"] = "os.system"
    _rewrite(path, replace={"config.json": json.dumps(config)})
    assert_error(ValueError, load_model, path,
                 contains=["'os.system'", "register_serializable"])


def test_a_config_naming_a_function_instead_of_a_model_is_rejected(tmp_path):
    _, path = _trained(tmp_path)
    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
    config["class_name"] = "Dense"
    _rewrite(path, replace={"config.json": json.dumps(config)})
    assert_error(ValueError, load_model, path, contains=["'Dense'", "not a model"])


def test_an_object_array_is_refused_without_unpickling(tmp_path, monkeypatch):
    _, path = _trained(tmp_path)
    buf = io.BytesIO()
    np.savez(buf, **{"hidden.kernel": np.array([object()] * 3, dtype=object)})
    _rewrite(path, replace={"weights.npz": buf.getvalue()})
    import pickle

    unpickled = []

    def spy(*args, **kwargs):
        unpickled.append(args)
        raise AssertionError("loading called pickle")

    # The loader parses each .npy header itself and refuses object dtypes before reading data:
    # neither pickle nor numpy's reader (which could unpickle) is ever reached.
    monkeypatch.setattr(pickle, "loads", spy)
    monkeypatch.setattr(pickle, "load", spy)
    monkeypatch.setattr(np.lib.format, "read_array", spy)
    _assert_load_fails_and_model_untouched(path, "weights.npz", "cannot be read safely")
    assert unpickled == []


def test_a_string_array_is_refused(tmp_path):
    _, path = _trained(tmp_path)
    buf = io.BytesIO()
    np.savez(buf, **{"hidden.kernel": np.array(["a", "b"])})
    _rewrite(path, replace={"weights.npz": buf.getvalue()})
    _assert_load_fails_and_model_untouched(path, "hidden.kernel", "numeric")


def test_invalid_json_is_a_corrupt_file(tmp_path):
    _, path = _trained(tmp_path)
    _rewrite(path, replace={"config.json": b"{not json"})
    assert_error(CorruptFileError, load_model, path, contains=["config.json", "JSON"])


def test_a_newer_format_version_asks_to_upgrade(tmp_path):
    _, path = _trained(tmp_path)
    meta = {"format": "fundl", "format_version": 99, "kind": "model"}
    _rewrite(path, replace={"metadata.json": json.dumps(meta)})
    assert_error(CorruptFileError, load_model, path, contains=["newer", "upgrade"])


def test_optimizer_state_for_other_weights_is_rejected(tmp_path):
    _, path = _trained(tmp_path)
    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
    config["optimizer_weights"] = ["nope.kernel"]
    _rewrite(path, replace={"config.json": json.dumps(config)})
    assert_error(CorruptFileError, load_model, path, contains=["optimizer state"])


# -- atomic saving ------------------------------------------------------------------------------

def _crash(*args, **kwargs):
    raise OSError("disk full (simulated)")


@pytest.mark.parametrize("target", ["writestr", "savez"])
def test_a_crash_mid_save_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, monkeypatch,
                                                                     target):
    model, path = _trained(tmp_path)
    old = path.read_bytes()
    model.train_on_batch(*_data(n=4))
    if target == "writestr":
        monkeypatch.setattr(zipfile.ZipFile, "writestr", _crash)
    else:
        monkeypatch.setattr(np, "savez", _crash)
    with pytest.raises(OSError, match="simulated"):
        model.save(path)
    with pytest.raises(OSError, match="simulated"):
        model.save_weights(path)
    assert path.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["model.fundl"]
    monkeypatch.undo()
    np.testing.assert_array_equal(load_model(path).predict(_data()[0]).shape, (16, 3))


def test_saving_replaces_an_existing_file(tmp_path):
    model, path = _trained(tmp_path)
    model.train_on_batch(*_data(n=4))
    model.save(path)
    _same_weights(model, load_model(path))
    assert sorted(os.listdir(tmp_path)) == ["model.fundl"]


# -- no code from files ----------------------------------------------------------------------------

FORBIDDEN_NAMES = {"pickle", "cPickle", "marshal", "shelve", "dill", "eval", "exec"}


def _code_tokens(path):
    with open(path, "rb") as f:
        return list(tokenize.tokenize(f.readline))


def test_package_code_never_uses_pickle_marshal_eval_or_exec():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tokens = _code_tokens(path)
        for i, tok in enumerate(tokens):
            if tok.type == tokenize.NAME and tok.string in FORBIDDEN_NAMES:
                offenders.append(f"{path.relative_to(PACKAGE)}:{tok.start[0]}: {tok.string}")
            if tok.type == tokenize.NAME and tok.string == "allow_pickle":
                value = [t.string for t in tokens[i + 1:i + 3]]
                if value != ["=", "False"]:
                    offenders.append(f"{path.relative_to(PACKAGE)}:{tok.start[0]}: "
                                     f"allow_pickle{''.join(value)}")
    assert offenders == []


def test_every_numpy_load_in_the_package_passes_allow_pickle_false():
    calls = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "load" and isinstance(node.func.value, ast.Name) \
                    and node.func.value.id in ("numpy", "np"):
                flags = [k.value for k in node.keywords if k.arg == "allow_pickle"]
                calls.append((f"{path.relative_to(PACKAGE)}:{node.lineno}",
                              [getattr(f, "value", f) for f in flags]))
    assert [c for c, flags in calls if flags != [False]] == []
