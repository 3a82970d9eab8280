import re

import pytest

import fundl.callbacks.progbar as progbar_module
from fundl.callbacks import CallbackList, Progbar


_REAL_IS_INTERACTIVE = progbar_module._is_interactive


class FakeClock:
    """Deterministic time for the progress bar (times chosen to be exact in binary)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(progbar_module, "_clock", fake)
    monkeypatch.delenv("NO_COLOR", raising=False)
    # pytest's captured stdout is not a terminal; these tests look at the redrawn line, so
    # they pretend it is one (the tests with a FakeStream below check the real detection).
    monkeypatch.setattr(progbar_module, "_is_interactive", lambda: True)
    return fake


@pytest.fixture
def piped(monkeypatch):
    """Call it (in the test: pytest's capture resets sys.stdout after fixtures) to make stdout
    a plain stream (a file, a CI log) under the real terminal detection; returns the stream."""
    def install():
        monkeypatch.setattr(progbar_module, "_is_interactive", _REAL_IS_INTERACTIVE)
        monkeypatch.delitem(__import__("sys").modules, "ipykernel", raising=False)
        out = FakeStream(tty=False)
        monkeypatch.setattr("sys.stdout", out)
        return out
    return install


def last_line(out):
    """The text of the last redraw (after the last carriage return)."""
    return out.rstrip("\n").split("\r")[-1].rstrip()


def test_verbose1_shows_count_bar_time_and_averaged_metrics(clock, capsys):
    bar = Progbar(target=4, width=8)
    for step, loss in enumerate([1.0, 0.5, 0.25, 0.25]):
        clock.now = 0.125 * (step + 1)
        bar.update(step + 1, [("loss", loss)], finalize=False)
    line = last_line(capsys.readouterr().out)
    # Average of the four batch losses; the ETA is 0s at step 4 of 4.
    assert line == "4/4 ━━━━━━━━ 0s 125ms/step - loss: 0.5000"


def test_verbose1_running_line_has_eta_and_partial_bar(clock, capsys):
    bar = Progbar(target=100, width=10)
    clock.now = 10.0
    bar.update(1, {"loss": 0.123456})
    # 10 s per step from the start, 99 steps left.
    assert last_line(capsys.readouterr().out) == (
        "  1/100 ────────── 16:30 10s/step - loss: 0.1235")
    clock.now = 15.0
    bar.update(51, {"loss": 0.123456})
    # The first step is left out of the estimate: 5 s / 50 steps.
    assert last_line(capsys.readouterr().out) == (
        " 51/100 ━━━━━───── 4s 100ms/step - loss: 0.1235")


def test_finalize_shows_given_values_elapsed_time_and_newline(clock, capsys):
    bar = Progbar(target=2, width=4)
    clock.now = 1.0
    bar.update(1, [("loss", 9.0)])
    clock.now = 3.0
    bar.update(2, [("loss", 0.3), ("val_loss", 0.00001)])
    out = capsys.readouterr().out
    assert out.endswith("\n")
    assert last_line(out) == "2/2 ━━━━ 3s 2s/step - loss: 0.3000 - val_loss: 1.0000e-05"


def test_stateful_metrics_are_not_averaged(clock, capsys):
    bar = Progbar(target=10, stateful_metrics=["lr"])
    for step, lr in enumerate([0.5, 0.25]):
        clock.now += 1.0
        bar.update(step + 1, [("lr", lr), ("loss", float(step))])
    line = last_line(capsys.readouterr().out)
    assert "- lr: 0.2500" in line and "- loss: 0.5000" in line


def test_metric_average_is_weighted_by_steps(clock, capsys):
    bar = Progbar(target=10)
    clock.now = 1.0
    bar.update(1, [("loss", 1.0)])
    clock.now = 2.0
    bar.update(4, [("loss", 0.0)])  # covers 3 steps
    assert "- loss: 0.2500" in last_line(capsys.readouterr().out)


def test_redraws_are_throttled(clock, capsys):
    bar = Progbar(target=40, interval=0.5)
    for step in range(1, 41):
        clock.now = 0.125 * step
        bar.update(step, [("loss", 1.0)])
    out = capsys.readouterr().out
    # Drawn at steps 1, 5, 9, ..., 37 (every 0.5 s) and at the final step 40.
    assert out.count("\r") == 11
    assert out.count("\n") == 1


def test_shorter_redraw_blanks_the_longer_previous_line(clock, capsys):
    bar = Progbar(target=10, stateful_metrics=["x"])
    clock.now = 1.0
    bar.update(1, [("x", 123456.0)])
    first = capsys.readouterr().out
    clock.now = 2.0
    bar.update(2, [("x", 1.0)])
    second = capsys.readouterr().out
    assert "x: 1.0000" in second
    assert len(second) == len(first) and second.endswith(" ")


class FakeStream:
    def __init__(self, encoding="utf-8", tty=False):
        self.encoding = encoding
        self.tty = tty
        self.text = ""

    def isatty(self):
        return self.tty

    def write(self, s):
        s.encode(self.encoding)  # a real stream of this encoding would fail here
        self.text += s

    def flush(self):
        pass


def test_terminal_gets_keras_colours(clock, monkeypatch):
    out = FakeStream(tty=True)
    monkeypatch.setattr("sys.stdout", out)
    bar = Progbar(target=4, width=4)
    bar.update(2)
    assert "\x1b[32m━━\x1b[0m\x1b[37m━━\x1b[0m" in out.text


def test_no_color_env_disables_colours(clock, monkeypatch):
    out = FakeStream(tty=True)
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setenv("NO_COLOR", "1")
    Progbar(target=4, width=4).update(2)
    assert "\x1b" not in out.text and "2/4 ━━──" in out.text


def test_verbose2_prints_one_line_when_done(clock, capsys):
    bar = Progbar(target=3, verbose=2)
    for step in range(1, 4):
        clock.now = float(step)
        bar.update(step, [("loss", 0.5), ("accuracy", 0.75)])
    out = capsys.readouterr().out
    assert out == "3/3 - 3s - 1s/step - loss: 0.5000 - accuracy: 0.7500\n"


def test_verbose0_is_silent(clock, capsys):
    bar = Progbar(target=3, verbose=0)
    for step in range(1, 4):
        bar.update(step, [("loss", 0.5)])
    assert capsys.readouterr().out == ""


def test_unknown_target(clock, capsys):
    bar = Progbar(target=None)
    clock.now = 1.0
    bar.update(12, [("loss", 0.5)])
    assert last_line(capsys.readouterr().out) == "     12/Unknown 1s 83ms/step - loss: 0.5000"


def test_add_advances_relative(clock, capsys):
    bar = Progbar(target=4, width=4)
    bar.add(2)
    bar.add(2)
    assert last_line(capsys.readouterr().out).startswith("4/4 ━━━━")


def test_ascii_fallback_when_stdout_cannot_encode(clock, monkeypatch):
    out = FakeStream(encoding="ascii")
    monkeypatch.setattr("sys.stdout", out)
    Progbar(target=4, width=4).update(2)
    assert "2/4 ==.." in out.text


@pytest.mark.parametrize("kwargs, match", [({"verbose": 3}, "verbose"),
                                           ({"target": -1}, "target")])
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Progbar(**{"target": 10, **kwargs})


# ---------------------------------------------------------------- ProgbarLogger in a fit


def test_logger_verbose1_headers_steps_and_epoch_values(model, fake_fit, clock, capsys):
    logs = [{"loss": 0.5, "val_loss": 0.75}, {"loss": 0.25, "val_loss": 0.625}]
    fake_fit(model, [], logs, steps=3, verbose=1)
    out = capsys.readouterr().out
    lines = [last_line(chunk) for chunk in out.split("\n") if chunk]
    assert lines[0] == "Epoch 1/2"
    assert re.fullmatch(r"3/3 ━{30} 0s 0s/step - loss: 0\.5000 - val_loss: 0\.7500", lines[1])
    assert lines[2] == "Epoch 2/2"
    assert lines[3].endswith("- loss: 0.2500 - val_loss: 0.6250")
    assert len(lines) == 4


def test_logger_verbose2_one_line_per_epoch(model, fake_fit, clock, capsys):
    fake_fit(model, [], [{"loss": 0.5}, {"loss": 0.25}], steps=3, verbose=2)
    out = capsys.readouterr().out
    assert "\r" not in out
    assert out.splitlines() == ["Epoch 1/2", "3/3 - 0s - 0s/step - loss: 0.5000",
                                "Epoch 2/2", "3/3 - 0s - 0s/step - loss: 0.2500"]


def test_logger_single_epoch_has_no_header(model, fake_fit, clock, capsys):
    fake_fit(model, [], [{"loss": 0.5}], steps=2, verbose=1)
    assert "Epoch" not in capsys.readouterr().out


def test_logger_shows_running_batch_logs_as_given(model, fake_fit, clock, capsys):
    # fit passes running means over the epoch (Keras 3), so the bar must not average again.
    def batch_logs(epoch, step):
        clock.now += 1.0  # every batch is past the redraw interval
        return {"loss": [1.0, 0.25, 0.5][step]}

    fake_fit(model, [], [{"loss": 0.5}], steps=3, verbose=1, batch_logs=batch_logs)
    draws = [last_line(d) for d in capsys.readouterr().out.split("\r") if d]
    assert draws[1].startswith("2/3") and draws[1].endswith("- loss: 0.2500")


@pytest.mark.parametrize("verbose", [1, 2])
def test_logger_unknown_steps_ends_with_count_seen(model, clock, capsys, verbose):
    cbs = CallbackList([], model=model, verbose=verbose, epochs=1, steps=None)
    cbs.on_train_begin()
    cbs.on_epoch_begin(0)
    for batch in range(3):
        clock.now += 1.0
        cbs.on_train_batch_end(batch, {"loss": 0.5})
    if verbose == 1:
        assert last_line(capsys.readouterr().out).startswith("      3/Unknown 3s")
    cbs.on_epoch_end(0, {"loss": 0.5})
    assert last_line(capsys.readouterr().out) == (
        "3/3 ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━ 3s 1s/step - loss: 0.5000" if verbose == 1
        else "3/3 - 3s - 1s/step - loss: 0.5000")


def test_logger_is_silent_during_validation_in_fit(model, clock, capsys):
    cbs = CallbackList([], model=model, verbose=1, epochs=1, steps=2)
    cbs.on_train_begin()
    cbs.on_epoch_begin(0)
    capsys.readouterr()
    cbs.on_test_begin()
    cbs.on_test_batch_end(0, {"loss": 0.5})
    cbs.on_test_end({"loss": 0.5})
    assert capsys.readouterr().out == ""


def test_logger_shows_evaluate_bar(model, clock, capsys):
    cbs = CallbackList([], add_history=False, model=model, verbose=1, epochs=1, steps=2)
    cbs.on_test_begin()
    cbs.on_test_batch_end(0, {"loss": 0.5})
    cbs.on_test_batch_end(1, {"loss": 0.25})
    cbs.on_test_end({"loss": 0.375})
    out = capsys.readouterr().out
    assert last_line(out).startswith("2/2 ") and last_line(out).endswith("- loss: 0.3750")


# ---------------------------------------------------------------- stdout that is not a terminal


def test_piped_verbose1_prints_only_the_finished_line(clock, piped):
    piped = piped()
    bar = Progbar(target=40, width=4, interval=0.0)
    for step in range(1, 41):
        clock.now = 0.125 * step
        bar.update(step, [("loss", 1.0)])
    # No redraw codes, no colours, one line: a log file is not flooded every interval.
    assert piped.text == "40/40 ━━━━ 5s 125ms/step - loss: 1.0000\n"


def test_piped_running_bar_writes_nothing_until_done(clock, piped):
    piped = piped()
    bar = Progbar(target=10)
    for step in range(1, 10):
        clock.now += 1.0
        bar.update(step, [("loss", 0.5)])
    assert piped.text == ""


def test_piped_fit_prints_one_line_per_epoch(model, fake_fit, clock, piped):
    piped = piped()
    logs = [{"loss": 0.5, "val_loss": 0.75}, {"loss": 0.25, "val_loss": 0.625}]

    def batch_logs(epoch, step):
        clock.now += 1.0  # every batch is past the redraw interval: a terminal would redraw
        return {"loss": 0.5}

    fake_fit(model, [], logs, steps=3, verbose=1, batch_logs=batch_logs)
    assert "\r" not in piped.text and "\x1b" not in piped.text
    lines = piped.text.splitlines()
    assert len(lines) == 4
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    assert re.fullmatch(r"3/3 ━{30} 3s 1s/step - loss: 0\.5000 - val_loss: 0\.7500", lines[1])
    assert lines[3].endswith("- loss: 0.2500 - val_loss: 0.6250")


def test_piped_verbose2_unchanged(model, fake_fit, clock, piped):
    piped = piped()
    fake_fit(model, [], [{"loss": 0.5}, {"loss": 0.25}], steps=3, verbose=2)
    assert piped.text.splitlines() == ["Epoch 1/2", "3/3 - 0s - 0s/step - loss: 0.5000",
                                       "Epoch 2/2", "3/3 - 0s - 0s/step - loss: 0.2500"]


def test_terminal_still_redraws(clock, monkeypatch):
    monkeypatch.setattr(progbar_module, "_is_interactive", _REAL_IS_INTERACTIVE)
    out = FakeStream(tty=True)
    monkeypatch.setattr("sys.stdout", out)
    bar = Progbar(target=3, width=3)
    for step in range(1, 4):
        clock.now += 1.0
        bar.update(step)
    assert out.text.count("\r") == 3 and out.text.endswith("\n")


def test_real_fit_piped_prints_one_line_per_epoch(piped):
    piped = piped()
    import numpy as np

    from fundl.layers import Dense
    from fundl.models import Sequential

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = (x[:, :1] > 0).astype(np.float32)
    model = Sequential([Dense(1, activation="sigmoid", input_dim=3)])
    model.compile(loss="binary_crossentropy", optimizer="sgd")
    model.fit(x, y, epochs=3, batch_size=4, verbose=1)
    lines = piped.text.splitlines()
    assert "\r" not in piped.text
    assert len(lines) == 6 and lines[0::2] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    assert all(line.startswith("16/16 ") and "- loss: " in line for line in lines[1::2])
