"""When the kernels compile (fundl.kernels._jit): the policy switch, the per-group readiness
gate, the background worker's protocol, and that the references run (with the same results)
while a group is not ready."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fundl as fl
from fundl import kernels
from fundl import _warmup
from fundl.kernels import _jit

pytestmark = pytest.mark.skipif(_jit.numba is None, reason="needs Numba")


@pytest.fixture
def fresh(monkeypatch):
    """A blank readiness table and worker state, restored afterwards."""
    monkeypatch.setattr(_jit, "_READY", {})
    monkeypatch.setattr(_jit, "_STATE", {"policy": None, "worker": None, "said": set()})
    yield


class FakeWorker:
    """Stands in for the compiler process: answers what the test says."""

    def __init__(self):
        self.asked, self.answers, self.error, self.done = [], {}, "", {}

    def ask(self, group, char):
        self.asked.append((group, char))

    def status(self, group, char):
        return self.answers.get((group, char), "running")


def test_policy_setting_and_environment(fresh, monkeypatch):
    monkeypatch.delenv("FUNDL_COMPILE", raising=False)
    assert _jit.compile_policy() == "background"
    monkeypatch.setenv("FUNDL_COMPILE", "Foreground")
    assert _jit.compile_policy() == "foreground"
    assert _jit.set_compile_policy("background") == "foreground"
    assert _jit.compile_policy() == "background"   # the setting wins over the environment
    assert _jit.set_compile_policy(None) == "background"
    monkeypatch.setenv("FUNDL_COMPILE", "later")
    with pytest.raises(ValueError, match=r"FUNDL_COMPILE must be one of .*got 'later'"):
        _jit.compile_policy()
    with pytest.raises(ValueError, match="set_compile_policy: policy must be one of"):
        _jit.set_compile_policy("eager")


def test_foreground_is_ready_at_once_and_says_so_once(fresh, monkeypatch, capsys):
    _jit.set_compile_policy("foreground")
    monkeypatch.setattr(_jit, "stamped", lambda g, c: False)
    monkeypatch.setattr(_jit, "_indexed", lambda g, c: False)
    assert _jit.ready("conv", np.float32) and _jit.ready("pool", np.dtype(np.float64))
    err = capsys.readouterr().err
    assert err.count("fundl: compiling CPU kernels on first use") == 1
    assert _jit._STATE["worker"] is None


def test_cached_groups_are_ready_without_a_worker(fresh, monkeypatch):
    _jit.set_compile_policy("background")
    monkeypatch.setattr(_jit, "stamped", lambda g, c: g == "conv")
    monkeypatch.setattr(_jit, "_indexed", lambda g, c: g == "pool")
    monkeypatch.setattr(_jit, "_Worker", lambda: pytest.fail("no worker for cached groups"))
    assert _jit.ready("conv", np.float32) and _jit.ready("pool", np.float32)
    assert _jit.ready("conv", np.int64)  # dtypes without kernels are never held back


def test_background_waits_for_the_worker_then_switches(fresh, monkeypatch, capsys):
    _jit.set_compile_policy("background")
    monkeypatch.setattr(_jit, "stamped", lambda g, c: False)
    monkeypatch.setattr(_jit, "_indexed", lambda g, c: False)
    worker = FakeWorker()
    monkeypatch.setattr(_jit, "_Worker", lambda: worker)
    assert not _jit.ready("conv", np.float32)
    assert not _jit.ready("pool", np.float32)
    assert not _jit.ready("conv", np.float32)
    assert worker.asked == [("conv", "f"), ("pool", "f")]   # each group asked once, in order
    assert "compiling CPU kernels in a background process" in capsys.readouterr().err
    x = np.ones((2, 1, 4, 4, 1), np.float32)
    assert not kernels.compiled(x) and not kernels.compiled(x, "pool")
    assert kernels.compiled(x, "norm") is False   # asked now: a third group
    worker.answers[("conv", "f")] = "done"
    assert kernels.compiled(x) and not kernels.compiled(x, "pool")
    worker.answers[("pool", "f")] = "failed"
    worker.error = "boom"
    assert _jit.ready("pool", np.float32)   # a failed worker: compile in this process
    assert "kernel compiler process failed (boom)" in capsys.readouterr().err
    _jit.set_compile_policy("foreground")   # stops waiting for what is still pending
    assert _jit.ready("norm", np.float32)


def test_forked_child_compiles_what_it_waited_for(fresh, monkeypatch):
    monkeypatch.setattr(_jit, "stamped", lambda g, c: False)
    monkeypatch.setattr(_jit, "_indexed", lambda g, c: False)
    _jit.set_compile_policy("background")
    monkeypatch.setattr(_jit, "_Worker", FakeWorker)
    assert not _jit.ready("conv", np.float32)
    _jit._after_fork()
    assert _jit._STATE["worker"] is None and _jit.ready("conv", np.float32)


def test_references_run_while_not_ready_with_the_same_results(fresh, monkeypatch):
    """A LeNet-like step with every group held back equals the compiled step to rounding."""
    rng = np.random.default_rng(0)
    x = rng.random((8, 12, 12, 1), dtype=np.float32)
    y = rng.integers(0, 3, 8)

    def step():
        fl.manual_seed(0)
        model = fl.Sequential([fl.layers.Conv2D(4, 3, padding="same", activation="relu",
                                                input_shape=(12, 12, 1)),
                               fl.layers.MaxPooling2D(2), fl.layers.BatchNormalization(),
                               fl.layers.Flatten(), fl.layers.Dense(3, activation="softmax")])
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        loss = model.train_on_batch(x, y)
        return loss, [w.numpy() for w in model.weights]

    _jit.set_compile_policy("foreground")
    compiled_loss, compiled_w = step()
    _jit.set_compile_policy("background")
    monkeypatch.setattr(_jit, "_READY", {})
    monkeypatch.setattr(_jit, "stamped", lambda g, c: False)
    monkeypatch.setattr(_jit, "_indexed", lambda g, c: False)
    worker = FakeWorker()
    monkeypatch.setattr(_jit, "_Worker", lambda: worker)
    ref_loss, ref_w = step()
    assert {g for g, _ in worker.asked} >= {"conv", "pool", "norm"}  # really held back
    np.testing.assert_allclose(ref_loss, compiled_loss, rtol=1e-5)
    for a, b in zip(ref_w, compiled_w):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_stamps_follow_the_sources(tmp_path, monkeypatch):
    monkeypatch.setattr(_jit, "_stamp_path", lambda g, c: tmp_path / f"{g}-{c}.txt")
    assert not _jit.stamped("pool", "f")
    _jit.write_stamp("pool", "f")
    assert _jit.stamped("pool", "f") and not _jit.stamped("pool", "d")
    (tmp_path / "pool-f.txt").write_text("another fundl\n")
    assert not _jit.stamped("pool", "f")


def test_every_group_has_a_warmup():
    assert set(_jit.GROUPS) == set(_warmup.WARMUPS)


@pytest.mark.parametrize("group", sorted(_warmup.WARMUPS))
def test_every_warmup_runs(group, monkeypatch):
    """Each group's warm-up runs through today's layers and ops (a broken one would leave
    the first run on references) and ends by stamping the group."""
    stamped = []
    monkeypatch.setattr(_jit, "write_stamp", lambda g, c: stamped.append((g, c)))
    _warmup.warm(group, "f")
    assert stamped == [(group, "f")]


@pytest.mark.slow
def test_worker_protocol(tmp_path):
    """The real worker process: a request line in, ``done`` out, the stamp in its cache."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), FUNDL_COMPILE="foreground")
    out = subprocess.run([sys.executable, "-m", "fundl._warmup"],
                         input="sparse f\nbad\nnewgroup f\n", capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "done sparse f"
    assert lines[1].startswith("failed newgroup f no warm-up")   # never left waiting
    assert len(lines) == 2
    assert list(tmp_path.rglob("fundl-compiled-sparse-f.txt"))
    bad = subprocess.run([sys.executable, "-m", "fundl._warmup", "nonsense"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "unknown kernel group" in bad.stderr


def test_config_sets_the_policy(fresh, monkeypatch):
    monkeypatch.delenv("FUNDL_COMPILE", raising=False)
    assert fl.config.compile_policy() == "background"
    assert fl.config.set_compile_policy("foreground") == "background"
    assert fl.config.compile_policy() == _jit.compile_policy() == "foreground"
    fl.config.set_compile_policy(None)


@pytest.mark.slow
def test_worker_finishes_after_its_parent_left(tmp_path):
    """A short run exits before the compiler answers: the worker still compiles every group
    it was asked for (the next run starts warm) instead of dying on the closed pipe."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), FUNDL_COMPILE="foreground")
    proc = subprocess.Popen([sys.executable, "-m", "fundl._warmup"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, text=True)
    proc.stdout.close()   # the parent is gone: nobody reads the answers
    proc.stdin.write("sparse f\nsparse d\n")
    proc.stdin.close()
    assert proc.wait(timeout=300) == 0
    assert {p.name for p in tmp_path.rglob("fundl-compiled-*")} == {
        "fundl-compiled-sparse-f.txt", "fundl-compiled-sparse-d.txt"}


@pytest.mark.slow
def test_real_worker_from_the_parent_side(tmp_path, monkeypatch):
    """_Worker starts the compiler on this fundl (whatever the working directory), hears its
    answer on its reader thread, and the group's stamp lands in the cache."""
    import time

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)   # -m must not depend on the working directory
    worker = _jit._Worker()
    worker.ask("sparse", "d")
    deadline = time.monotonic() + 300
    while worker.status("sparse", "d") == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert worker.status("sparse", "d") == "done", worker.error
    assert worker.done_at[("sparse", "d")] > 0
    assert list(tmp_path.rglob("fundl-compiled-sparse-d.txt"))
    worker.proc.stdin.close()
    assert worker.proc.wait(timeout=60) == 0


_ONE_KERNEL = """
import numpy as np
from fundl.kernels import activation
gy = np.ones(8, np.float32); y = np.linspace(-1, 1, 8).astype(np.float32); gx = np.empty_like(y)
activation._relu_grad_kernel(gy, y, gx)
stats = activation._relu_grad_kernel.stats
print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
"""


@pytest.mark.slow
def test_compiled_kernels_are_shared_by_two_installs(tmp_path):
    """Two copies of fundl (a reinstall, another virtualenv: new paths, new modification
    times) share one kernel cache: the second loads what the first compiled, and neither
    writes into its own ``__pycache__``."""
    import pathlib
    import shutil

    pytest.importorskip("numba")
    source = pathlib.Path(fl.__file__).resolve().parent
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "PYTHONPATH")}
    env.update(FUNDL_CACHE_DIR=str(tmp_path / "cache"), FUNDL_COMPILE="foreground")
    counts = []
    for name in ("first", "second"):
        shutil.copytree(source, tmp_path / name / "fundl", copy_function=shutil.copy,
                        ignore=shutil.ignore_patterns("__pycache__"))
        out = subprocess.run([sys.executable, "-c", _ONE_KERNEL], capture_output=True,
                             text=True, env=dict(env, PYTHONPATH=str(tmp_path / name)),
                             cwd=tmp_path, timeout=300)
        assert out.returncode == 0, out.stderr
        counts.append(tuple(int(n) for n in out.stdout.split()))
        assert not list((tmp_path / name).rglob("*.nbi"))
    assert counts == [(0, 1), (1, 0)]   # (cache hits, misses): compiled once, loaded once
    assert list((tmp_path / "cache").rglob("activation._relu_grad_kernel-*.nbi"))


def test_kernel_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    pytest.importorskip("numba")
    monkeypatch.setenv("FUNDL_CACHE_DIR", str(tmp_path))
    assert _jit.kernel_cache_dir() == tmp_path / f"kernels-{fl.__version__}"
    monkeypatch.delenv("FUNDL_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _jit.kernel_cache_dir() == tmp_path / "fundl" / f"kernels-{fl.__version__}"
    monkeypatch.setattr(_jit.numba.config, "CACHE_DIR", str(tmp_path))  # the user's choice
    assert _jit.kernel_cache_dir() is None
