"""No surprises for the host process: importing fundl and training leave the environment,
the allocator and OpenMP as they were; ``fl.config.tune_process()`` changes them on request."""
import json
import subprocess
import sys
import textwrap

import pytest

_PROBE = textwrap.dedent("""
    import json, os, sys
    before = dict(os.environ)
    import numpy as np
    import fundl as fl
    from fundl.layers import Conv2D, Dense, Flatten, LSTM, MaxPooling2D
    from fundl.models import Sequential
    if sys.argv[1] == "tune":
        fl.config.tune_process()
    fl.manual_seed(0)
    cnn = Sequential([Conv2D(4, 3, activation="relu", input_shape=(12, 12, 1)), MaxPooling2D(),
                      Flatten(), Dense(3, activation="softmax")])
    cnn.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    x = np.random.rand(64, 12, 12, 1).astype("float32")
    cnn.fit(x, np.arange(64) % 3, epochs=1, batch_size=32, verbose=0)
    rnn = Sequential([LSTM(8, input_shape=(5, 3)), Dense(1)])
    rnn.compile(loss="mse", optimizer="sgd")
    rnn.fit(np.random.rand(64, 5, 3).astype("float32"), np.zeros((64, 1), "float32"),
            epochs=1, batch_size=32, verbose=0)
    after = dict(os.environ)
    changed = {k: (before.get(k), after.get(k)) for k in set(before) | set(after)
               if before.get(k) != after.get(k)}
    print(json.dumps({"changed": changed, "malloc": fl.backend.MALLOC_TUNED,
                      "tuning": fl.config.process_tuning()}))
""")


def _probe(mode):
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_import_and_training_leave_the_process_settings_alone():
    result = _probe("plain")
    assert result["changed"] == {}
    assert result["malloc"] is False
    assert result["tuning"] == {"malloc": False, "openmp": False}


@pytest.mark.slow
def test_tune_process_applies_and_reports_its_settings():
    result = _probe("tune")
    assert result["changed"].get("GOMP_SPINCOUNT", [None, None])[1] in (None, "20000")
    if sys.platform.startswith("linux"):
        assert result["malloc"] is True


def test_import_alone_changes_no_environment_variable():
    code = ("import os; before = dict(os.environ); import fundl, fundl.kernels._parallel as p; "
            "p._setup(); print(dict(os.environ) == before)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == "True", out.stderr


def test_user_settings_win(monkeypatch):
    import fundl.config as config

    monkeypatch.setenv("GOMP_SPINCOUNT", "5")
    monkeypatch.setitem(config._applied, "openmp", False)
    assert config.tune_process(malloc=False)["openmp"] is False
    import os

    assert os.environ["GOMP_SPINCOUNT"] == "5"
