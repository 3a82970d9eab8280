"""Pictures the examples share beyond fundl.viz: grouped bar charts, line and scatter plots.

Not an example itself: the examples load it by its path (beside them), so that it is found both
when an example runs as ``python examples/<name>.py`` and when a test loads the example file.
Figures come from fundl.viz's figure helper: their own Agg canvas, no pyplot, no change of
matplotlib's global backend.
"""
import os

import numpy as np

from fundl.viz._figure import new_figure, save


def path(folder, name):
    """``folder/name``, the folder created if missing (what ``--plots DIR`` writes into)."""
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, name)


def grouped_bars(groups, series, title="", ylabel="test accuracy", xlabel="", errors=None,
                 ylim=None, to_file=None, figsize=(6.4, 4.2)):
    """A bar per series in each group, the value written on top of each bar.

    Args:
        groups: the group names along the x axis, e.g. ``["100 labels", "1000 labels"]``.
        series: ``{name: [value per group]}``, one colour per name (legend).
        title, ylabel, xlabel: the axes' texts.
        errors: optional ``{name: [error per group]}`` drawn as error bars (e.g. the std).
        ylim: ``(low, high)`` of the y axis (default: from 0, or just below the smallest bar
            when all bars are high, so that differences stay visible).
        to_file: a path; the figure is written there as a PNG.
        figsize: ``(width, height)`` in inches.

    Returns:
        matplotlib.figure.Figure with one axes.
    """
    fig = new_figure(figsize)
    ax = fig.add_subplot(1, 1, 1)
    names = list(series)
    width = 0.8 / len(names)
    x = np.arange(len(groups))
    low = min(min(v) for v in series.values())
    for k, name in enumerate(names):
        values = np.asarray(series[name], dtype=np.float64)
        err = None if errors is None else errors.get(name)
        bars = ax.bar(x + (k - (len(names) - 1) / 2) * width, values, width, label=name,
                      yerr=err, capsize=3 if err is not None else 0)
        tops = values + (0 if err is None else np.asarray(err, dtype=np.float64))
        for bar, value, top in zip(bars, values, tops):  # above the error bar, if any
            ax.annotate(f"{value:.3f}", (bar.get_x() + bar.get_width() / 2, top),
                        xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                        fontsize=7)
    ax.set_xticks(x)
    ax.set_xticklabels(groups)
    if ylim is None:
        ylim = (0.0, 1.05) if low < 0.6 else (max(0.0, low - 0.1), 1.02)
    ax.set_ylim(*ylim)
    ax.set_ylabel(ylabel)
    if xlabel:
        ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    # below the axes: inside, it would hide the bars' tops
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12 if not xlabel else -0.2),
              ncol=1 if max(len(n) for n in names) > 30 else len(names), frameon=False)
    fig.tight_layout()
    return save(fig, to_file)


def figure(figsize):
    """An empty Figure on its own Agg canvas (fundl.viz's helper)."""
    return new_figure(figsize)


def save_figure(fig, to_file):
    """Write ``fig`` as a PNG; returns ``fig``."""
    return save(fig, to_file)


def scatter_classes(points, labels, title="", to_file=None, figsize=(6.4, 5.4), names=None,
                    clip=0.5):
    """2-D points coloured by class, with a legend (e.g. a PCA view of hidden features).

    Args:
        points: ``(n, 2)``.
        labels: ``(n,)`` integer classes.
        title: the axes' title.
        to_file: a path; the figure is written there as a PNG.
        figsize: ``(width, height)`` in inches.
        names: optional class names for the legend.
        clip: the axes show the points between the ``clip`` and ``100 - clip`` percentiles
            of each coordinate (a few far outliers would squeeze the rest into a corner);
            0 shows every point.

    Returns:
        matplotlib.figure.Figure with one axes.
    """
    fig = new_figure(figsize)
    ax = fig.add_subplot(1, 1, 1)
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
              "#7f7f7f", "#bcbd22", "#17becf"]
    for k in np.unique(labels):
        mine = labels == k
        label = names[k] if names is not None else f"class {k}"
        ax.scatter(points[mine, 0], points[mine, 1], s=5, alpha=0.7,
                   color=colors[int(k) % len(colors)], label=label)
    if clip:
        lo, hi = np.percentile(points, [clip, 100 - clip], axis=0)
        margin = 0.05 * (hi - lo)
        ax.set_xlim(lo[0] - margin[0], hi[0] + margin[0])
        ax.set_ylim(lo[1] - margin[1], hi[1] + margin[1])
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, markerscale=2, loc="best")
    fig.tight_layout()
    return save(fig, to_file)

