"""Data and picture helpers the image examples share (MNIST-style digits in [0, 1]).

Not an example itself: the examples load it by its path (beside them), like ``_plots.py``, so
that it is found both when an example runs as ``python examples/<name>.py`` and when a test
loads the example file.
"""
import os

import numpy as np


def load_flat(n_train, n_test, name="mnist"):
    """The first ``n_train`` training and ``n_test`` test images of ``fundl.datasets.<name>``
    as float32 ``(N, 784)`` rows scaled to [0, 1] (labels dropped)."""
    from fundl import datasets

    (x, _), (xt, _) = getattr(datasets, name).load_data()
    return (x[:n_train].reshape(-1, 784).astype("float32") / 255,
            xt[:n_test].reshape(-1, 784).astype("float32") / 255)


def psnr(a, b):
    """Peak signal-to-noise ratio in dB of images in [0, 1]."""
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def pca_baseline(x, x_test, k):
    """PCA with ``k`` components fitted on ``x``: the test images' reconstructions (flattened)
    and their mean squared error per pixel, the linear baseline of the autoencoders."""
    from fundl.decomposition import PCA

    pca = PCA(n_components=k).fit(x.reshape(len(x), -1))
    flat = x_test.reshape(len(x_test), -1)
    rec = pca.inverse_transform(pca.transform(flat))
    return rec, float(np.mean((rec - flat) ** 2))


def tile(images, nrow):
    """(N, H, W) images in [0, 1] as one (rows*H, nrow*W) picture with 1-pixel gaps."""
    n, h, w = images.shape
    rows = -(-n // nrow)
    out = np.ones((rows * (h + 1) - 1, nrow * (w + 1) - 1), dtype="float32")
    for i, img in enumerate(images):
        r, c = divmod(i, nrow)
        out[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = img
    return out


def save_picture(array, path, scale=2):
    """A 2-D array in [0, 1] as a grayscale PNG, each pixel ``scale`` x ``scale``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.imsave(path, np.kron(array, np.ones((scale, scale))), cmap="gray", vmin=0, vmax=1)
    return path


def picture(rows, path, scale=2):
    """Rows of 28x28 images (a list of (10, 784) arrays) as one grayscale PNG."""
    grid = np.ones((len(rows) * 29 - 1, 10 * 29 - 1), dtype="float32")
    for r, images in enumerate(rows):
        for c, img in enumerate(images[:10]):
            grid[r * 29:r * 29 + 28, c * 29:c * 29 + 28] = np.clip(img.reshape(28, 28), 0, 1)
    return save_picture(grid, path, scale)


def judge_classifier(cache_dir, x, y, name, epochs=3, seed=0):
    """An MLP classifier of the real images (784-256-10) that judges a GAN's samples, loaded
    from ``cache_dir/<name>_classifier.zip`` if there (and saved there when trained)."""
    import fundl as fl
    from fundl.layers import Dense

    path = os.path.join(cache_dir, f"{name}_classifier.zip") if cache_dir else None
    if path and os.path.exists(path):
        return fl.models.load_model(path)
    flat = x.reshape(len(x), -1)
    fl.manual_seed(seed)
    model = fl.Sequential([Dense(256, activation="relu", input_shape=(flat.shape[1],)),
                           Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(flat, y, epochs=epochs, batch_size=128, verbose=0)
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        model.save(path)
    return model
