"""Keras-style progress bar: the reusable :class:`Progbar` and the :class:`ProgbarLogger` callback.

With ``verbose=1`` one line is redrawn in place (``\\r``), at most every
``interval`` seconds so that printing never slows training down::

    Epoch 3/5
    12/469 ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━ 3s 7ms/step - accuracy: 0.9012 - loss: 0.3401

While running it shows the estimated time left; when done, the elapsed time and
the time per step. ``verbose=2`` prints one line per epoch instead. When stdout is not a
terminal (piped to a file, a CI log), ``verbose=1`` prints only the finished line of each
bar, as Keras does: a log gets one line per epoch, not a redraw every 50 ms.

Example:
    >>> bar = Progbar(target=100)
    >>> for step in range(100):
    ...     bar.update(step + 1, [("loss", 0.5)])
"""
from __future__ import annotations

import os
import sys
import time

from .base import Callback

# Module level so that tests can install a fake clock.
_clock = time.perf_counter

_BOLD, _GREEN, _WHITE, _RESET = "\x1b[1m", "\x1b[32m", "\x1b[37m", "\x1b[0m"


def _write(text):
    # sys.stdout is looked up at each write so redirection (and pytest's capture) works.
    stream = sys.stdout
    stream.write(text)
    stream.flush()


def _tty_or_notebook():
    isatty = getattr(sys.stdout, "isatty", None)
    try:
        tty = bool(isatty and isatty())
    except ValueError:  # a closed stream
        tty = False
    return tty or "ipykernel" in sys.modules


def _is_interactive():
    """Whether stdout redraws a line in place: a terminal or a notebook."""
    return _tty_or_notebook()


def _use_color():
    """ANSI colours on terminals and notebooks, never when NO_COLOR is set."""
    if os.environ.get("NO_COLOR"):
        return False
    return _tty_or_notebook()


def _bar_chars(color):
    """(done, to-do) characters: Keras's heavy line, or ASCII where stdout cannot encode it."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "━─".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "=", "."
    # With colours the to-do part is the same line in grey, as in Keras; without them a
    # thinner line keeps the progress visible.
    return ("━", "━") if color else ("━", "─")


def _format_time(seconds_per_unit, unit_name):
    """'7ms/step'-style duration of one unit."""
    if seconds_per_unit >= 1 or seconds_per_unit == 0:
        return f"{seconds_per_unit:.0f}s/{unit_name}"
    if seconds_per_unit >= 1e-3:
        return f"{seconds_per_unit * 1e3:.0f}ms/{unit_name}"
    return f"{seconds_per_unit * 1e6:.0f}us/{unit_name}"


def _format_eta(seconds):
    """'1:02:03', '2:05' or '7s'."""
    if seconds > 3600:
        return "%d:%02d:%02d" % (seconds // 3600, (seconds % 3600) // 60, seconds % 60)
    if seconds > 60:
        return "%d:%02d" % (seconds // 60, seconds % 60)
    return "%ds" % seconds


class _AllNames:
    """A stand-in for "every metric name" in ``stateful_metrics``."""

    def __contains__(self, name):
        return True


def _format_value(value):
    # Four decimals, switching to scientific notation for tiny values as Keras does.
    if isinstance(value, str):
        return value
    if abs(value) > 1e-3:
        return f"{value:.4f}"
    return f"{value:.4e}"


class Progbar:
    """A text progress bar with ETA, time per step and averaged metrics.

    Args:
        target: total number of steps, or ``None`` if unknown.
        width: number of characters of the bar itself.
        verbose: 0 silent, 1 one line redrawn in place (on a stream that is not a terminal,
            only the finished line), 2 one summary line when finished.
        stateful_metrics: names whose values are shown as given; all others are
            averaged over the steps seen (weighted by steps per update).
        unit_name: the unit in the per-unit time ("step" gives "7ms/step").
        interval: least number of seconds between two redraws with ``verbose=1``.

    Returns:
        A bar driven by :meth:`update` (absolute step) or :meth:`add` (relative).

    Raises:
        ValueError: ``verbose`` is not 0, 1 or 2, or ``target``/``width`` is negative.

    Example:
        >>> bar = Progbar(target=3)
        >>> for step, loss in enumerate([0.9, 0.7, 0.5]):
        ...     bar.update(step + 1, [("loss", loss)])
        3/3 ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━ 0s 2us/step - loss: 0.7000
    """

    def __init__(self, target, width=30, verbose=1, stateful_metrics=None, unit_name="step",
                 interval=0.05):
        if verbose not in (0, 1, 2):
            raise ValueError(f"Progbar: verbose must be 0, 1 or 2, got {verbose!r}.")
        if target is not None and target < 0:
            raise ValueError(
                f"Progbar: target must be a number of steps >= 0 or None, got {target}."
            )
        if width < 0:
            raise ValueError(f"Progbar: width must be >= 0, got {width}.")
        self.target = target
        self.width = width
        self.verbose = verbose
        self.unit_name = unit_name
        self.interval = interval
        if isinstance(stateful_metrics, _AllNames):
            self.stateful_metrics = stateful_metrics
        else:
            self.stateful_metrics = frozenset(stateful_metrics or ())
        # name -> [weighted sum, total weight]; insertion order is display order.
        self._values = {}
        self._seen_so_far = 0
        self._start = _clock()
        self._last_update = float("-inf")  # so the first update draws
        self._first_step = None  # (step, time) of the first update: ETA leaves out warm-up
        self._prev_width = 0
        self._color = _use_color()
        # A file or a CI log cannot redraw: "\r" lines would pile up, one per interval.
        self._dynamic = _is_interactive()
        self._done_char, self._todo_char = _bar_chars(self._color)

    def update(self, current, values=None, finalize=None):
        """Move the bar to step ``current`` and record metric values.

        Args:
            current: number of steps done so far (1 after the first step).
            values: ``(name, value)`` pairs or a dict of this step's values.
            finalize: whether this is the last update; by default, when
                ``current >= target``. The final values are shown as given (they
                are expected to be the epoch's own values).
        """
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        if values:
            if isinstance(values, dict):
                values = values.items()
            store = self._values
            stateful = self.stateful_metrics
            weight = current - self._seen_so_far
            if weight < 1:
                weight = 1
            for key, value in values:
                if finalize or key in stateful:
                    store[key] = [value, 1]
                else:
                    entry = store.get(key)
                    if entry is None:
                        store[key] = [value * weight, weight]
                    else:
                        entry[0] += value * weight
                        entry[1] += weight
        self._seen_so_far = current
        if self.verbose == 0:
            return
        now = _clock()
        if self._first_step is None and current > 0:
            self._first_step = (current, now)
        if self.verbose == 1:
            if not finalize and (not self._dynamic or now - self._last_update < self.interval):
                return
            self._draw(current, now, finalize)
        elif finalize:
            self._print_summary(current, now)
        self._last_update = now

    def add(self, n, values=None):
        """Advance the bar by ``n`` steps (see :meth:`update`)."""
        self.update(self._seen_so_far + n, values)

    def _time_per_unit(self, current, now):
        if current <= 0 or self._first_step is None:
            return 0.0
        first, t_first = self._first_step
        if current > first:
            return (now - t_first) / (current - first)
        return (now - self._start) / current

    def _metrics_text(self):
        return "".join(
            f" - {key}: {_format_value(total / count)}"
            for key, (total, count) in self._values.items()
        )

    def _count_text(self, current):
        digits = len(str(self.target))
        return f"{current:{digits}d}/{self.target}"

    def _draw(self, current, now, finalize):
        color = self._color
        time_per_unit = self._time_per_unit(current, now)
        if self.target:
            count = self._count_text(current)
            done = min(int(self.width * current / self.target), self.width)
            done_bar = self._done_char * done
            todo_bar = self._todo_char * (self.width - done)
            if color:
                bar = f"{_BOLD}{count}{_RESET} "
                if done:
                    bar += f"{_GREEN}{done_bar}{_RESET}"
                bar += f"{_WHITE}{todo_bar}{_RESET}"
            else:
                bar = f"{count} {done_bar}{todo_bar}"
            visible = len(count) + 1 + self.width
        else:
            bar = f"{current:7d}/Unknown"
            visible = len(bar)
        if self.target and not finalize:
            clock_text = _format_eta(time_per_unit * (self.target - current))
        else:
            clock_text = f"{now - self._start:.0f}s"
        info = f" {clock_text} {_format_time(time_per_unit, self.unit_name)}{self._metrics_text()}"
        visible += len(info)
        if color:
            info = f" {_BOLD}{clock_text}{_RESET}" + info[len(clock_text) + 1:]
        # Blank out what a longer previous line left behind.
        pad = " " * (self._prev_width - visible) if self._prev_width > visible else ""
        if not self._dynamic:  # only the finished line, written once: no redraw codes
            _write(bar + info + "\n")
            return
        _write("\r" + bar + info + pad + ("\n" if finalize else ""))
        self._prev_width = 0 if finalize else visible

    def _print_summary(self, current, now):
        count = self._count_text(current) if self.target else f"{current}/{current}"
        per_unit = _format_time(self._time_per_unit(current, now), self.unit_name)
        _write(f"{count} - {now - self._start:.0f}s - {per_unit}{self._metrics_text()}\n")


class ProgbarLogger(Callback):
    """Callback that prints the ``Epoch i/n`` header and a :class:`Progbar` per epoch.

    ``fit`` adds one by itself when ``verbose`` is non-zero; its settings come
    from ``params`` (``verbose``, ``epochs``, ``steps``). The batch logs are
    shown as given: as in Keras 3, the loop passes the running means over the
    epoch so far, so averaging again would be wrong. The epoch-end values
    (validation included) finish the line.
    Inside ``fit`` the validation pass is silent; ``evaluate`` and ``predict``
    get a bar of their own.

    Example:
        >>> model.fit(x, y, epochs=5, verbose=1)   # adds a ProgbarLogger
        Epoch 1/5
        469/469 ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━ 3s 7ms/step - loss: 0.3401 - val_loss: 0.2950
    """

    def __init__(self):
        super().__init__()
        self.seen = 0
        self.progbar = None
        self.target = None
        self.verbose = 1
        self.epochs = 1
        self._called_in_fit = False

    def set_params(self, params):
        """Read ``verbose`` ("auto" means 1), ``epochs`` and ``steps``."""
        super().set_params(params)
        verbose = params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else verbose
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps")

    def on_train_begin(self, logs=None):
        """Silence the validation pass that runs inside ``fit``."""
        self._called_in_fit = True

    def on_train_end(self, logs=None):
        """Let a later ``evaluate`` with the same logger show its bar."""
        self._called_in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        """Start a new bar; print ``Epoch i/n`` when there is more than one epoch."""
        self._reset()
        if self.verbose and self.epochs > 1:
            _write(f"Epoch {epoch + 1}/{self.epochs}\n")

    def on_epoch_end(self, epoch, logs=None):
        """Finish the bar with the epoch's logs."""
        self._finalize(logs)

    def on_train_batch_end(self, batch, logs=None):
        """Advance the bar (redrawn only with ``verbose=1``, and throttled)."""
        self._update(batch, logs)

    def on_test_begin(self, logs=None):
        """Start a bar for ``evaluate`` (not for validation inside ``fit``)."""
        if not self._called_in_fit:
            self._reset()

    def on_test_batch_end(self, batch, logs=None):
        """Advance the ``evaluate`` bar."""
        if not self._called_in_fit:
            self._update(batch, logs)

    def on_test_end(self, logs=None):
        """Finish the ``evaluate`` bar with the final logs."""
        if not self._called_in_fit:
            self._finalize(logs)

    def on_predict_begin(self, logs=None):
        """Start a bar for ``predict``."""
        self._reset()

    def on_predict_batch_end(self, batch, logs=None):
        """Advance the ``predict`` bar (predictions are not displayed)."""
        self._update(batch, None)

    def on_predict_end(self, logs=None):
        """Finish the ``predict`` bar."""
        self._finalize(None)

    def _reset(self):
        self.seen = 0
        self.progbar = Progbar(target=self.target, verbose=self.verbose,
                               stateful_metrics=_AllNames())

    def _update(self, batch, logs):
        self.seen = batch + 1
        if self.verbose == 1:
            if self.progbar is None:
                self._reset()
            self.progbar.update(self.seen, logs, finalize=False)

    def _finalize(self, logs):
        if self.progbar is None:
            self._reset()
        target = self.target if self.target is not None else self.seen
        self.progbar.target = target
        self.progbar.update(target, logs, finalize=True)
