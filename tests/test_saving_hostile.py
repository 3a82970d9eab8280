"""Hostile and careless files: bombs, truncations, traversal names, pickles, absurd shapes,
deep JSON, fuzzed bytes; and what saving leaves on disk (umask, killed saves).

Loading must refuse what is not what it claims quickly and with little memory, never run code,
and leave the model untouched; saving must behave like any other file writer.
"""
import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile
import zlib

import numpy as np
import pytest

import fundl as fl
from fundl.layers import Dense
from fundl.models import Sequential, load_model
from fundl.saving import CorruptFileError


def _model(seed=0):
    fl.manual_seed(seed)
    model = Sequential([Dense(8, activation="relu", input_dim=4, name="hidden"),
                        Dense(3, activation="softmax", name="out")], name="clf")
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    return model


@pytest.fixture
def saved(tmp_path):
    model = _model()
    x = np.random.default_rng(0).standard_normal((8, 4)).astype("float32")
    model.fit(x, np.eye(3, dtype="float32")[[0, 1, 2, 0, 1, 2, 0, 1]], epochs=1, verbose=0)
    path = tmp_path / "model.fundl"
    model.save(path)
    return model, path


def _members(path):
    with zipfile.ZipFile(path) as z:
        return {info.filename: z.read(info.filename) for info in z.infolist()}


def _write(path, members, compress=None):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data, compress_type=compress or zipfile.ZIP_STORED)


def _write_zero_bomb(z, name, size, chunk=1 << 20):
    """A deflated member of ``size`` zero bytes (a few hundred KB on disk)."""
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with z.open(info, "w", force_zip64=True) as f:
        zeros = bytes(chunk)
        for _ in range(size // chunk):
            f.write(zeros)


def _bomb_file(path, saved_path, member, size):
    members = _members(saved_path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            if name != member:
                z.writestr(name, data)
        _write_zero_bomb(z, member, size)


def _untouched_load_fails(path, model, error=CorruptFileError, contains=()):
    before = model.get_weights()
    with pytest.raises(error) as info:
        model.load_weights(path)
    for part in contains:
        assert part in str(info.value)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    return info.value


# -- decompression bombs -----------------------------------------------------------------------

def test_a_weights_bomb_is_refused_from_its_declared_size(saved, tmp_path):
    model, path = saved
    bomb = tmp_path / "bomb.fundl"
    _bomb_file(bomb, path, "weights.npz", 256 << 20)
    assert bomb.stat().st_size < 2 << 20
    _untouched_load_fails(bomb, model, contains=["declares", "refusing"])
    with pytest.raises(CorruptFileError, match="refusing"):
        load_model(bomb)


def test_a_bomb_inside_the_npz_is_refused(saved, tmp_path):
    model, path = saved
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", compression=zipfile.ZIP_DEFLATED) as z:
        _write_zero_bomb(z, "hidden.kernel.npy", 128 << 20)
    members = _members(path)
    members["weights.npz"] = inner.getvalue()
    bomb = tmp_path / "inner.fundl"
    _write(bomb, members)
    _untouched_load_fails(bomb, model, contains=["refusing"])


def test_an_unknown_huge_member_is_never_read(saved, tmp_path):
    model, path = saved
    members = _members(path)
    odd = tmp_path / "extra.fundl"
    with zipfile.ZipFile(odd, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with zipfile.ZipFile(odd, "a", compression=zipfile.ZIP_DEFLATED) as z:
        _write_zero_bomb(z, "../../evil.bin", 64 << 20)
    loaded = load_model(odd)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not (tmp_path.parent / "evil.bin").exists()


BOMB_PROBE = textwrap.dedent("""
    import resource, sys, time
    import numpy as np
    import fundl as fl
    from fundl.layers import Dense
    from fundl.models import Sequential, load_model
    from fundl.saving import CorruptFileError
    model = Sequential([Dense(8, input_dim=4), Dense(3)])
    model.build((None, 4))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    for load in (lambda: load_model(sys.argv[1]), lambda: model.load_weights(sys.argv[1])):
        try:
            load()
        except CorruptFileError:
            pass
        else:
            raise SystemExit("the bomb loaded")
    elapsed = time.perf_counter() - start
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(f"{elapsed:.3f} {grown}")
""")


def test_refusing_a_bomb_costs_little_memory_and_time(saved, tmp_path):
    """Measured in a process of its own: peak memory (ru_maxrss, KiB) and wall time."""
    _, path = saved
    bomb = tmp_path / "bomb.fundl"
    _bomb_file(bomb, path, "weights.npz", 1 << 30)   # 1 GiB of zeros, ~1 MB on disk
    out = subprocess.run([sys.executable, "-c", BOMB_PROBE, str(bomb)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    elapsed, grown_kib = out.stdout.split()
    # Generous bounds (a loaded CI machine): reading the bomb would take 1 GiB and seconds.
    assert int(grown_kib) < 64 * 1024, f"peak memory grew by {grown_kib} KiB"
    assert float(elapsed) < 5.0, f"refusing took {elapsed} s"


# -- lies in headers ---------------------------------------------------------------------------

def _npz_with_header(key, shape, data=b""):
    """An npz whose one .npy entry claims ``shape`` but holds ``data``."""
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    text = repr(header).encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64
    npy = b"\x93NUMPY\x01\x00" + (len(text) + pad + 1).to_bytes(2, "little") + text \
        + b" " * pad + b"\n" + data
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(key + ".npy", npy)
    return buf.getvalue()


@pytest.mark.parametrize("shape", [(10 ** 12,), (4, 8, 10 ** 6), (8, 4)])
def test_a_header_with_another_shape_is_refused_before_reading(saved, tmp_path, shape):
    model, path = saved
    members = _members(path)
    members["weights.npz"] = _npz_with_header("hidden.kernel", shape, b"\0" * 128)
    bad = tmp_path / "shape.fundl"
    _write(bad, members)
    err = _untouched_load_fails(bad, model, error=ValueError)
    assert "hidden.kernel" in str(err)


def test_a_header_that_lies_about_its_data_length_is_refused(saved, tmp_path):
    model, path = saved
    members = _members(path)
    members["weights.npz"] = _npz_with_header("hidden.kernel", (4, 8), b"\0" * 16)
    bad = tmp_path / "short.fundl"
    _write(bad, members)
    _untouched_load_fails(bad, model, contains=["hidden.kernel"])


# -- truncation, pickles, traversal, deep JSON ---------------------------------------------------

def test_every_truncation_fails_cleanly(saved, tmp_path):
    model, path = saved
    data = path.read_bytes()
    cut = tmp_path / "cut.fundl"
    for n in sorted({0, 1, 22, len(data) // 3, len(data) // 2, len(data) - 200, len(data) - 1}):
        cut.write_bytes(data[:n])
        _untouched_load_fails(cut, model)
        with pytest.raises(CorruptFileError):
            load_model(cut)


def test_a_foreign_pickle_is_never_unpickled(saved, tmp_path, monkeypatch):
    import pickle

    model, path = saved
    members = _members(path)
    members["weights.npz"] = pickle.dumps({"hidden.kernel": np.zeros((4, 8))})
    bad = tmp_path / "pickle.fundl"
    _write(bad, members)
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    _untouched_load_fails(bad, model)


def test_deeply_nested_json_is_refused(saved, tmp_path):
    _, path = saved
    members = _members(path)
    members["config.json"] = b"[" * 200_000 + b"]" * 200_000
    bad = tmp_path / "deep.fundl"
    _write(bad, members)
    with pytest.raises(CorruptFileError):
        load_model(bad)


def test_a_duplicated_member_is_refused(saved, tmp_path):
    model, path = saved
    members = _members(path)
    bad = tmp_path / "dup.fundl"
    with pytest.warns(UserWarning):  # zipfile itself warns about the duplicate name
        with zipfile.ZipFile(bad, "w") as z:
            for name, data in members.items():
                z.writestr(name, data)
            z.writestr("weights.npz", members["weights.npz"])
    _untouched_load_fails(bad, model, contains=["twice"])


def test_fuzzed_files_fail_with_a_clear_error_or_load(saved, tmp_path):
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import HealthCheck, given, settings, strategies as st

    model, path = saved
    data = path.read_bytes()
    target = tmp_path / "fuzz.fundl"

    @settings(max_examples=80, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)),
                    min_size=1, max_size=8),
           st.integers(1, len(data)))
    def check(flips, length):
        mutated = bytearray(data[:length])
        for at, value in flips:
            if at < len(mutated):
                mutated[at] = value
        target.write_bytes(bytes(mutated))
        before = model.get_weights()
        try:
            model.load_weights(target)
        except (ValueError, TypeError):   # CorruptFileError is a ValueError
            for a, b in zip(before, model.get_weights()):
                np.testing.assert_array_equal(a, b)
        try:
            load_model(target)
        except (ValueError, TypeError):
            pass

    assert hypothesis
    check()


# -- what saving leaves on disk -----------------------------------------------------------------

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_files_follow_the_umask(tmp_path, umask, mode):
    model = _model()
    model.build((None, 4))
    old = os.umask(umask)
    try:
        model.save(tmp_path / "m.fundl")
        model.save_weights(tmp_path / "w.fundl")
    finally:
        os.umask(old)
    assert (tmp_path / "m.fundl").stat().st_mode & 0o777 == mode
    assert (tmp_path / "w.fundl").stat().st_mode & 0o777 == mode


def test_replacing_a_file_keeps_its_mode(tmp_path):
    model = _model()
    model.build((None, 4))
    path = tmp_path / "m.fundl"
    model.save(path)
    os.chmod(path, 0o640)
    model.save(path)
    assert path.stat().st_mode & 0o777 == 0o640


def test_partial_files_of_killed_saves_are_cleaned_up(tmp_path):
    model = _model()
    model.build((None, 4))
    dead = tmp_path / ".m.fundl.999999999-0123abcd.partial-save"
    alive = tmp_path / f".m.fundl.{os.getpid()}-89abcdef.partial-save"
    other = tmp_path / ".x.fundl.999999999-0123abcd.partial-save"
    for p in (dead, alive, other):
        p.write_bytes(b"half a model")
    model.save(tmp_path / "m.fundl")
    assert not dead.exists()          # its process is gone: a crash left it
    assert alive.exists()             # a save in progress (this process): left alone
    assert other.exists()             # belongs to another target
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [alive.name, other.name, "m.fundl"])


def test_a_save_killed_mid_write_leaves_the_old_file_and_a_named_partial(tmp_path):
    path = tmp_path / "m.fundl"
    model = _model()
    model.build((None, 4))
    model.save(path)
    original = path.read_bytes()
    script = textwrap.dedent(f"""
        import os, signal, zipfile
        import fundl as fl
        from fundl.layers import Dense
        from fundl.models import Sequential
        model = Sequential([Dense(8, input_dim=4), Dense(3)])
        model.build((None, 4))
        real = zipfile.ZipFile.writestr
        def die(self, name, data, *a, **k):
            if name == "weights.npz":
                os.kill(os.getpid(), signal.SIGKILL)
            return real(self, name, data, *a, **k)
        zipfile.ZipFile.writestr = die
        model.save({str(path)!r})
    """)
    subprocess.run([sys.executable, "-c", script], timeout=120)
    assert path.read_bytes() == original
    partials = [p for p in tmp_path.iterdir() if p.name.endswith(".partial-save")]
    assert len(partials) == 1 and partials[0].name.startswith(".m.fundl.")
    model.save(path)                  # the next save cleans up after the crash
    assert [p.name for p in tmp_path.iterdir()] == ["m.fundl"]
