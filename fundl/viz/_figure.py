"""Shared plumbing of the plots: matplotlib imported on first use, figures without pyplot.

Figures are ``matplotlib.figure.Figure`` objects with an Agg canvas of their own, so drawing
never touches pyplot's global state or the process-wide backend (``matplotlib.use`` is never
called): fundl's pictures work the same in a script, a test, a server or a notebook.
"""
from __future__ import annotations

import os

import numpy as np

_MISSING = ("fundl.viz needs matplotlib, which is not installed: pip install 'fundl[viz]' "
            "(or pip install matplotlib).")


def require_matplotlib():
    """Import matplotlib's Figure and Agg canvas, or raise an ImportError naming the extra."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(_MISSING) from e
    return Figure, FigureCanvasAgg


def new_figure(figsize, dpi=100):
    """A Figure with its own Agg canvas (``fig.canvas.draw()`` and ``savefig`` work at once)."""
    Figure, FigureCanvasAgg = require_matplotlib()
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save(fig, to_file, dpi=None):
    """Write ``fig`` as a PNG to ``to_file`` (a path) when given; returns ``fig``."""
    if to_file is not None:
        path = os.fspath(to_file)
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        fig.savefig(path, format="png", dpi=dpi)
    return fig


def to_numpy(value, who, what):
    """``value`` (a Tensor, an array or nested lists) as a NumPy array."""
    if hasattr(value, "numpy") and callable(value.numpy):
        value = value.numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{who}: {what} must be an array or a Tensor, got "
                        f"{type(value).__name__}.") from e


def grid_shape(n, ncols=None):
    """(rows, cols) of a near-square grid holding ``n`` panels (``ncols`` fixed if given)."""
    if ncols is None:
        ncols = int(np.ceil(np.sqrt(n)))
    ncols = max(1, min(int(ncols), n))
    return int(np.ceil(n / ncols)), ncols


def rescale(image):
    """``image`` min-max scaled to [0, 1] (a constant image becomes mid grey)."""
    image = np.asarray(image, dtype=np.float64)
    finite = np.isfinite(image)
    if not finite.any():
        return np.full(image.shape, 0.5)
    lo, hi = image[finite].min(), image[finite].max()
    if hi - lo < 1e-12:
        return np.full(image.shape, 0.5)
    return np.where(finite, (image - lo) / (hi - lo), 0.5)


def image_panels(fig, images, ncols, cmap, titles=None, scale="each"):
    """One axes per image (H×W, H×W×1 or H×W×3/4), without ticks; returns the axes."""
    rows, cols = grid_shape(len(images), ncols)
    axes = []
    for k, image in enumerate(images):
        ax = fig.add_subplot(rows, cols, k + 1)
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        if scale == "each":
            image = rescale(image)
        if image.ndim == 2:
            ax.imshow(image, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
        else:
            ax.imshow(np.clip(image, 0.0, 1.0), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(str(titles[k]), fontsize=8)
        axes.append(ax)
    return axes
