"""Plots of training and of what a network learned: curves, filters, feature maps, images,
confusion matrices and decision regions (matplotlib, imported on first use).

Every function returns a ``matplotlib.figure.Figure`` drawn on its own Agg canvas (no pyplot,
no global backend change) and, given ``to_file=``, also writes it as a PNG. In a notebook,
show one with ``display(fig)``; in a script, ``to_file="loss.png"``.

Example:
    >>> history = model.fit(x, y, epochs=10, validation_split=0.1, verbose=0)
    >>> fl.viz.plot_history(history, to_file="history.png")
    >>> fl.viz.plot_filters(model.get_layer("conv2d"), to_file="filters.png")
"""
from __future__ import annotations

import numpy as np

from ._figure import grid_shape, image_panels, new_figure, rescale, save, to_numpy

# Class colours of the decision-region and scatter plots (the playground's palette).
_CLASS_COLORS = ["#eb7d28", "#286edc", "#3caa50", "#c83ca0", "#966e32", "#5a5a5a",
                 "#17becf", "#bcbd22", "#7f7f7f", "#9467bd"]


# --------------------------------------------------------------------------- history

def plot_history(history, metrics=None, to_file=None, figsize=None):
    """Training curves: one panel per metric, the training and the validation values per epoch.

    Args:
        history: the :class:`~fundl.callbacks.History` that ``fit`` returns, or its
            ``.history`` dict (``{"loss": [...], "val_loss": [...], ...}``).
        metrics: names of the panels, e.g. ``["loss", "accuracy"]``; ``"val_" + name`` joins
            its panel when logged. Default: every logged name that is not a ``val_`` one.
        to_file: a path; the figure is written there as a PNG.
        figsize: ``(width, height)`` in inches; default 4 inches wide per panel.

    Returns:
        matplotlib.figure.Figure: one axes per metric, epochs (from 1) on the x axis.

    Raises:
        TypeError: ``history`` is neither a History nor a dict.
        ValueError: the history is empty, or a metric was never logged.

    Example:
        >>> history = model.fit(x, y, epochs=5, validation_split=0.2, verbose=0)
        >>> fig = plot_history(history, metrics=["loss", "accuracy"])   # two panels
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict):
        raise TypeError(f"plot_history: history must be the History that fit returns or its "
                        f".history dict, got {type(history).__name__}.")
    logs = {key: [float(v) for v in values] for key, values in logs.items() if len(values)}
    if not logs:
        raise ValueError("plot_history: the history is empty; train with fit(...) first (it "
                         "logs one value per epoch).")
    if metrics is None:
        metrics = []
        for key in logs:
            name = key[4:] if key.startswith("val_") else key
            if name not in metrics:
                metrics.append(name)
    elif isinstance(metrics, str):
        metrics = [metrics]
    for name in metrics:
        if name not in logs and "val_" + name not in logs:
            raise ValueError(f"plot_history: {name!r} was not logged; the history has "
                             f"{sorted(logs)}.")
    n = len(metrics)
    if n == 0:
        raise ValueError("plot_history: metrics is empty; name at least one, e.g. ['loss'].")
    fig = new_figure(figsize or (4.0 * n, 3.2))
    from matplotlib.ticker import MaxNLocator
    for k, name in enumerate(metrics):
        ax = fig.add_subplot(1, n, k + 1)
        for key, label, style in ((name, "training", "-"), ("val_" + name, "validation", "--")):
            if key in logs:
                values = logs[key]
                ax.plot(np.arange(1, len(values) + 1), values, style, marker="o", markersize=3,
                        label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, to_file)


# --------------------------------------------------------------------------- filters

def _kernel_of(layer):
    """(kernel array, layer name or None) of a layer, or of a kernel given directly."""
    if hasattr(layer, "weights") and not isinstance(layer, np.ndarray) and not hasattr(
            layer, "numpy"):
        name = getattr(layer, "name", "")
        if getattr(layer, "built", True) is False:
            raise ValueError(f"plot_filters: layer {name!r} is not built yet, so it has no "
                             "kernel; call the model on data (or give input_shape) first.")
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            raise TypeError(f"plot_filters: {type(layer).__name__} {name!r} has no kernel; "
                            "pass a Conv or Dense layer, or a kernel array.")
        return to_numpy(kernel, "plot_filters", "the kernel"), name or None
    return to_numpy(layer, "plot_filters", "layer"), None


def plot_filters(layer, shape=None, channel=None, max_filters=64, ncols=None,
                 cmap="gray", to_file=None, figsize=None):
    """The filters a layer learned, one small image each.

    - A ``Conv2D`` kernel ``(kh, kw, in, filters)`` gives one ``kh × kw`` image per filter:
      in colour when the input has 3 channels (an RGB first layer), else the input channel
      ``channel`` (default: the mean over the input channels).
    - A ``Conv1D`` kernel ``(k, in, filters)`` gives one ``in × k`` image per filter.
    - A ``Dense`` kernel ``(in, units)`` gives one image per unit, its incoming weights
      reshaped to ``shape`` (e.g. ``(28, 28)`` for a first layer on MNIST; a square ``in`` is
      guessed).

    Each image is scaled to its own minimum and maximum, so weak filters stay visible.

    Args:
        layer: a built layer with a ``kernel`` (Conv1D/2D, Dense), or the kernel itself as an
            array or Tensor in the layouts above.
        shape: the image shape of a Dense unit's weights, ``(h, w)`` or ``(h, w, 3)``.
        channel: the input channel shown for a Conv2D kernel with other than 3 input channels.
        max_filters: the most filters drawn (the first ones).
        ncols: panels per row (default: a near-square grid).
        cmap: the colour map of one-channel images.
        to_file: a path; the figure is written there as a PNG.
        figsize: ``(width, height)`` in inches.

    Returns:
        matplotlib.figure.Figure: one axes per filter drawn.

    Raises:
        ValueError: the kernel's rank is not 2, 3 or 4, ``shape`` does not hold the
            unit's weights, or ``channel`` is out of range.

    Example:
        >>> fig = plot_filters(model.layers[0])                  # Conv2D(32, 3): 32 panels
        >>> fig = plot_filters(dense.kernel, shape=(28, 28))     # an MLP's first layer
    """
    kernel, name = _kernel_of(layer)
    kernel = kernel.astype(np.float64)
    who = "plot_filters"
    if kernel.ndim == 4:
        n_in = kernel.shape[2]
        if channel is not None:
            if not -n_in <= channel < n_in:
                raise ValueError(f"{who}: channel={channel} is out of range for a kernel with "
                                 f"{n_in} input channels {kernel.shape}.")
            images = [kernel[:, :, channel, f] for f in range(kernel.shape[3])]
        elif n_in == 3:
            images = [rescale(kernel[:, :, :, f]) for f in range(kernel.shape[3])]
        else:
            images = [kernel[:, :, :, f].mean(axis=2) for f in range(kernel.shape[3])]
    elif kernel.ndim == 3:
        images = [kernel[:, :, f].T for f in range(kernel.shape[2])]
    elif kernel.ndim == 2:
        n_in = kernel.shape[0]
        if shape is None:
            side = int(round(np.sqrt(n_in)))
            if side * side != n_in:
                raise ValueError(f"{who}: a Dense kernel of {n_in} inputs {kernel.shape} needs "
                                 f"shape=(h, w) with h*w = {n_in} to draw each unit's weights "
                                 f"as an image.")
            shape = (side, side)
        shape = tuple(int(s) for s in shape)
        if int(np.prod(shape)) != n_in:
            raise ValueError(f"{who}: shape={shape} holds {int(np.prod(shape))} values, but "
                             f"each unit of the kernel {kernel.shape} has {n_in} inputs.")
        images = [kernel[:, u].reshape(shape) for u in range(kernel.shape[1])]
        images = [rescale(im) if im.ndim == 3 else im for im in images]
    else:
        raise ValueError(f"{who}: expected a Conv2D kernel (kh, kw, in, filters), a Conv1D "
                         f"kernel (k, in, filters) or a Dense kernel (in, units), got shape "
                         f"{kernel.shape}.")
    if max_filters is not None:
        images = images[:max(1, int(max_filters))]
    rows, cols = grid_shape(len(images), ncols)
    fig = new_figure(figsize or (1.1 * cols + 0.3, 1.1 * rows + 0.5))
    image_panels(fig, images, cols, cmap)
    fig.suptitle(f"filters of {name}" if name else "filters", fontsize=10)
    return save(fig, to_file)


# --------------------------------------------------------------------------- images

def image_grid(images, nrow=8, titles=None, cmap="gray", to_file=None, figsize=None):
    """Images in a grid of ``nrow`` per row (torchvision's ``make_grid`` layout), one axes each.

    Args:
        images: ``(N, H, W)`` or ``(N, H, W, C)`` with C = 1, 3 or 4 (channels last, as
            Keras), an array or a Tensor. Integer images are read as 0..255; float images
            already in [0, 1] are shown as they are, others are scaled to [0, 1] together
            (so samples stay comparable).
        nrow: images per row.
        titles: an optional label per image (e.g. the predicted class).
        cmap: the colour map of one-channel images.
        to_file: a path; the figure is written there as a PNG.
        figsize: ``(width, height)`` in inches.

    Returns:
        matplotlib.figure.Figure: one axes per image.

    Raises:
        ValueError: ``images`` is not 3-D or 4-D with 1, 3 or 4 channels, is empty, or
            ``titles`` has another length.

    Example:
        >>> (x, y), _ = fl.datasets.mnist.load_data()
        >>> fig = image_grid(x[:32], nrow=8, titles=y[:32])
    """
    who = "image_grid"
    images = to_numpy(images, who, "images")
    if images.ndim == 4 and images.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{who}: images of shape {images.shape} have {images.shape[-1]} "
                         "channels; expected channels last with 1, 3 or 4 (N, H, W, C). For "
                         "channels-first arrays pass images.transpose(0, 2, 3, 1).")
    if images.ndim not in (3, 4):
        raise ValueError(f"{who}: expected images of shape (N, H, W) or (N, H, W, C), got "
                         f"{images.shape}; for one image pass image[None].")
    if len(images) == 0:
        raise ValueError(f"{who}: no images to draw (shape {images.shape}).")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"{who}: {len(titles)} titles for {len(images)} images; give one "
                         "per image.")
    if isinstance(nrow, bool) or not isinstance(nrow, (int, np.integer)) or nrow < 1:
        raise ValueError(f"{who}: nrow must be a positive integer (images per row), got "
                         f"{nrow!r}.")
    if np.issubdtype(images.dtype, np.integer) or images.dtype == np.bool_:
        images = images.astype(np.float64) / (1.0 if images.dtype == np.bool_ else 255.0)
    else:
        images = images.astype(np.float64)
        lo, hi = np.nanmin(images), np.nanmax(images)
        if lo < 0.0 or hi > 1.0:
            images = rescale(images)
    rows, cols = grid_shape(len(images), nrow)
    fig = new_figure(figsize or (1.2 * cols, 1.2 * rows + (0.25 * rows if titles is not None
                                                          else 0.0)))
    image_panels(fig, list(images), cols, cmap, titles=titles, scale=None)
    fig.tight_layout(pad=0.3)
    return save(fig, to_file)


# --------------------------------------------------------------------------- feature maps

def _activation_of(model, x, layer_name):
    """The output of layer ``layer_name`` when ``model`` runs on ``x`` (a batch)."""
    from ..autograd import no_grad
    from ..models import Model, Sequential
    from ..tensor import Tensor

    layer = model.get_layer(layer_name)  # a ValueError listing the names when unknown
    with no_grad():
        if isinstance(model, Sequential):
            h = x if isinstance(x, Tensor) else Tensor(x)
            for current in model.layers:
                h = current(h, training=False)
                if current is layer:
                    return h
        if isinstance(model, Model) and getattr(model, "_graph", False):
            for node in model._nodes + [t.node for t in model.inputs]:
                if node.layer is layer:
                    sub = Model(inputs=model.inputs if len(model.inputs) > 1 else model.inputs[0],
                                outputs=node.outputs[0], name=f"{model.name}_to_{layer.name}")
                    return sub(x, training=False)
        # A subclassed model: run it and catch what the layer returns (its first call).
        seen = []
        original = layer.call

        def capture(*args, **kwargs):
            out = original(*args, **kwargs)
            if not seen:
                seen.append(out)
            return out

        layer.call = capture
        try:
            model(x if isinstance(x, Tensor) else Tensor(x), training=False)
        finally:
            del layer.call  # the instance attribute goes; the class's method shows again
        if not seen:
            raise ValueError(f"plot_feature_maps: layer {layer_name!r} was not called when "
                             f"model '{model.name}' ran on the input.")
        return seen[0]


def _input_rank(model):
    shape = None
    if getattr(model, "_graph", False) and len(model.inputs) == 1:
        shape = model.inputs[0].shape
    elif getattr(model, "input_shape", None) is not None and not getattr(model, "_graph", False):
        shape = model.input_shape
    return None if shape is None else len(shape)


def plot_feature_maps(model, x, layer_name, max_maps=64, ncols=None, cmap="viridis",
                      to_file=None, figsize=None):
    """What one layer computes for one input: a heat map per channel (feature map).

    The model runs (without gradients, ``training=False``) up to the layer: a ``Sequential``
    runs its layers in order, a functional ``Model`` through a sub-model ending at the
    layer, a subclassed model whole while the layer's output is caught.

    Args:
        model: a fundl model (``Sequential``, functional ``Model`` or subclass).
        x: one input without the batch axis (``(28, 28, 1)``), or a batch of one.
        layer_name: the layer's name (see ``model.summary()``).
        max_maps: the most channels drawn (the first ones).
        ncols: panels per row (default: a near-square grid).
        cmap: the colour map.
        to_file: a path; the figure is written there as a PNG.
        figsize: ``(width, height)`` in inches.

    Returns:
        matplotlib.figure.Figure: for an output ``(1, H, W, C)`` one axes per channel; for
        ``(1, T, C)`` one axes (channels × time); for ``(1, units)`` one axes (a row).

    Raises:
        ValueError: no layer of that name, or ``x`` holds more than one sample.

    Example:
        >>> fig = plot_feature_maps(model, x_test[0], "conv2d_1")   # one panel per filter
    """
    who = "plot_feature_maps"
    if not isinstance(x, (list, tuple, dict)):
        x = to_numpy(x, who, "x")
        rank = _input_rank(model)
        if rank is not None and x.ndim == rank - 1:
            x = x[None]
        elif rank is None and (x.ndim < 2 or x.shape[0] != 1):
            x = x[None]
        if x.shape[0] != 1:
            raise ValueError(f"{who}: x must be one sample (or a batch of one), got a batch of "
                             f"{x.shape[0]} (shape {x.shape}); pass x[i].")
        if np.issubdtype(x.dtype, np.floating) and x.dtype != np.float32:
            x = x.astype(np.float32)
    out = to_numpy(_activation_of(model, x, layer_name), who, "the layer's output")
    if isinstance(out, np.ndarray) and out.dtype == object:
        raise ValueError(f"{who}: layer {layer_name!r} returns several tensors; pick a layer "
                         "with one output.")
    maps = out[0]
    if maps.ndim == 3:
        images = [maps[:, :, c] for c in range(maps.shape[-1])][:max(1, int(max_maps))]
        rows, cols = grid_shape(len(images), ncols)
        fig = new_figure(figsize or (1.3 * cols + 0.3, 1.3 * rows + 0.5))
        image_panels(fig, images, cols, cmap)
    elif maps.ndim in (1, 2):
        fig = new_figure(figsize or (6.0, 2.5))
        ax = fig.add_subplot(1, 1, 1)
        data = maps[None, :] if maps.ndim == 1 else maps.T
        im = ax.imshow(data, cmap=cmap, aspect="auto", interpolation="nearest")
        ax.set_xlabel("unit" if maps.ndim == 1 else "time step")
        ax.set_ylabel("" if maps.ndim == 1 else "channel")
        if maps.ndim == 1:
            ax.set_yticks([])
        fig.colorbar(im, ax=ax)
    else:
        raise ValueError(f"{who}: layer {layer_name!r} gives outputs of shape {out.shape}; "
                         "feature maps are drawn for (1, H, W, C), (1, T, C) and (1, units).")
    fig.suptitle(f"{layer_name}: output {tuple(out.shape[1:])}", fontsize=10)
    return save(fig, to_file)


# --------------------------------------------------------------------------- confusion matrix

def _labels_from(y, who, what):
    y = to_numpy(y, who, what)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1)  # one-hot labels or class probabilities
    if y.ndim == 2:
        y = y[:, 0]
        if np.issubdtype(y.dtype, np.floating) and ((y > 0) & (y < 1)).any():
            return (y > 0.5).astype(np.int64)  # a sigmoid output
    if y.ndim != 1:
        raise ValueError(f"{who}: {what} must be class labels (n,), one-hot labels or "
                         f"probabilities (n, classes), got shape {y.shape}.")
    return y


def confusion_matrix(y_true, y_pred, labels=None, normalize=None):
    """The confusion matrix ``C[i, j]`` = samples of class ``labels[i]`` predicted ``labels[j]``.

    The same numbers as scikit-learn's ``confusion_matrix``.

    Args:
        y_true: the true classes (n,), or one-hot labels (n, classes).
        y_pred: the predicted classes (n,), or probabilities / scores (n, classes) (argmax
            taken; a single sigmoid column is thresholded at 0.5).
        labels: the classes, in the order of the rows (default: every class seen, sorted).
        normalize: ``None`` (counts), ``"true"`` (rows sum to 1), ``"pred"`` (columns sum
            to 1) or ``"all"`` (everything sums to 1).

    Returns:
        ndarray (len(labels), len(labels)): int64 counts, or float64 when normalised.

    Raises:
        ValueError: the two have different lengths, or ``normalize`` is not one of the above.

    Example:
        >>> confusion_matrix([0, 1, 1], [0, 1, 0])
        array([[1, 0],
               [1, 1]])
    """
    who = "confusion_matrix"
    y_true = _labels_from(y_true, who, "y_true")
    y_pred = _labels_from(y_pred, who, "y_pred")
    if len(y_true) != len(y_pred):
        raise ValueError(f"{who}: y_true has {len(y_true)} samples but y_pred has "
                         f"{len(y_pred)}; they must match.")
    if normalize not in (None, "true", "pred", "all"):
        raise ValueError(f"{who}: normalize must be None, 'true', 'pred' or 'all', got "
                         f"{normalize!r}.")
    labels = np.unique(np.concatenate([y_true, y_pred])) if labels is None else np.asarray(labels)
    index = {label.item() if hasattr(label, "item") else label: k
             for k, label in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(y_true.tolist(), y_pred.tolist()):
        if t in index and p in index:
            cm[index[t], index[p]] += 1
    if normalize is None:
        return cm
    with np.errstate(invalid="ignore", divide="ignore"):
        if normalize == "true":
            out = cm / cm.sum(axis=1, keepdims=True)
        elif normalize == "pred":
            out = cm / cm.sum(axis=0, keepdims=True)
        else:
            out = cm / cm.sum()
    return np.nan_to_num(out)  # an empty row or column is 0, as scikit-learn gives


def plot_confusion_matrix(y_true, y_pred, labels=None, normalize=None, display_labels=None,
                          cmap="Blues", to_file=None, figsize=None):
    """The confusion matrix as a heat map with the number in each cell.

    Args:
        y_true, y_pred, labels, normalize: as in :func:`confusion_matrix`.
        display_labels: names shown for the classes (e.g. ``["T-shirt", "Trouser", ...]``).
        cmap: the colour map.
        to_file: a path; the figure is written there as a PNG.
        figsize: ``(width, height)`` in inches.

    Returns:
        matplotlib.figure.Figure: the matrix's axes (true class down, predicted across) and a
        colour bar; the matrix itself is ``fig.confusion_matrix``.

    Example:
        >>> fig = plot_confusion_matrix(y_test, model.predict(x_test), normalize="true")
    """
    cm = confusion_matrix(y_true, y_pred, labels=labels, normalize=normalize)
    n = cm.shape[0]
    if display_labels is None:
        shown = labels if labels is not None else np.unique(np.concatenate([
            _labels_from(y_true, "plot_confusion_matrix", "y_true"),
            _labels_from(y_pred, "plot_confusion_matrix", "y_pred")]))
        display_labels = [str(v) for v in shown]
    elif len(display_labels) != n:
        raise ValueError(f"plot_confusion_matrix: {len(display_labels)} display_labels for "
                         f"{n} classes; give one name per class.")
    side = max(3.5, 0.55 * n + 2.0)
    fig = new_figure(figsize or (side + 1.0, side))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(cm, cmap=cmap, interpolation="nearest")
    fig.colorbar(im, ax=ax)
    if n <= 30:  # numbers in cells stay readable up to about this many classes
        threshold = (cm.max() + cm.min()) / 2.0
        for i in range(n):
            for j in range(n):
                text = f"{cm[i, j]:.2f}" if normalize else f"{cm[i, j]:d}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > threshold else "black")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    slanted = n > 5 and max(len(str(v)) for v in display_labels) > 2  # long names collide
    ax.set_xticklabels(display_labels, rotation=45 if slanted else 0,
                       ha="right" if slanted else "center")
    ax.set_yticklabels(display_labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    fig.confusion_matrix = cm
    return save(fig, to_file)


# --------------------------------------------------------------------------- decision regions

def plot_decision_boundary(model, x, y, resolution=200, padding=0.1, to_file=None,
                           figsize=None):
    """The classes a model predicts over the plane, with the data points on top.

    Args:
        model: anything with ``predict(points)`` (a fundl model, a scikit-learn classifier) or a
            callable ``f(points)``, taking ``(m, 2)`` float32 points and returning class
            probabilities or scores ``(m, classes)``, one sigmoid column ``(m, 1)`` or class
            labels ``(m,)``.
        x: the points, ``(n, 2)``.
        y: their classes, ``(n,)`` (or one-hot).
        resolution: grid points per axis.
        padding: the margin around the data, as a fraction of its range.
        to_file: a path; the figure is written there as a PNG.
        figsize: ``(width, height)`` in inches.

    Returns:
        matplotlib.figure.Figure: one axes with the regions and the points;
        ``fig.regions`` holds the predicted class of each grid cell ``(resolution,
        resolution)`` (row 0 at the bottom, smallest y).

    Raises:
        ValueError: ``x`` is not ``(n, 2)``, or ``y`` has another length.
        TypeError: ``model`` has no ``predict`` and is not callable.

    Example:
        >>> x, y = fl.datasets.synthetic.spiral(300, noise=0.1)
        >>> fig = plot_decision_boundary(model, x, y, to_file="regions.png")
    """
    who = "plot_decision_boundary"
    x = to_numpy(x, who, "x").astype(np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"{who}: x must be 2-D points of shape (n, 2), got {x.shape}; for "
                         "more input features, plot two of them or a 2-D embedding.")
    y = _labels_from(y, who, "y")
    if len(y) != len(x):
        raise ValueError(f"{who}: x has {len(x)} points but y has {len(y)} labels.")
    if hasattr(model, "predict"):
        predict = model.predict
    elif callable(model):
        predict = model
    else:
        raise TypeError(f"{who}: model must have a predict method or be callable, got "
                        f"{type(model).__name__}.")
    resolution = int(resolution)
    if resolution < 2:
        raise ValueError(f"{who}: resolution must be at least 2, got {resolution}.")
    lo, hi = x.min(axis=0), x.max(axis=0)
    margin = np.maximum(hi - lo, 1e-6) * padding
    xs = np.linspace(lo[0] - margin[0], hi[0] + margin[0], resolution)
    ys = np.linspace(lo[1] - margin[1], hi[1] + margin[1], resolution)
    gx, gy = np.meshgrid(xs, ys)
    points = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    scores = to_numpy(predict(points), who, "the model's output")
    if scores.ndim == 2 and scores.shape[1] > 1:
        regions = scores.argmax(axis=1)
    else:
        scores = scores.reshape(len(points))
        if np.issubdtype(scores.dtype, np.floating) and not np.all(scores == np.round(scores)):
            regions = (scores > 0.5).astype(np.int64)
        else:
            regions = scores.astype(np.int64)
    regions = regions.reshape(resolution, resolution)

    classes = int(max(regions.max(), y.max())) + 1
    colors = [_CLASS_COLORS[k % len(_CLASS_COLORS)] for k in range(classes)]
    fig = new_figure(figsize or (5.0, 4.6))
    from matplotlib.colors import ListedColormap
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(regions, origin="lower", extent=(xs[0], xs[-1], ys[0], ys[-1]),
              cmap=ListedColormap(colors), vmin=-0.5, vmax=classes - 0.5, alpha=0.35,
              interpolation="nearest", aspect="auto")
    if classes > 1:
        ax.contour(gx, gy, regions, levels=np.arange(classes - 1) + 0.5, colors="k",
                   linewidths=0.8)
    for k in range(classes):
        mask = y == k
        if mask.any():
            ax.scatter(x[mask, 0], x[mask, 1], s=12, color=colors[k], edgecolors="white",
                       linewidths=0.4, label=f"class {k}")
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.regions = regions
    return save(fig, to_file)
