"""Keras-guide patterns that use this surface end to end, with only the imports changed:
the VAE guide's Sampling layer (fundl.random + SeedGenerator + ops), the GAN guide's label
noise, and the IMDB pipeline (datasets.imdb -> pad_sequences -> Embedding -> fit with a Keras
optimizer name and a new activation)."""
import hashlib

import numpy as np
import pytest

import fundl as fl
from fundl import layers
from fundl.datasets import imdb
from fundl.preprocessing.sequence import pad_sequences


class Sampling(layers.Layer):
    """The VAE guide's layer: z = z_mean + exp(0.5 * z_log_var) * epsilon."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = fl.random.SeedGenerator(1337)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        batch = fl.shape(z_mean)[0]
        dim = fl.shape(z_mean)[1]
        epsilon = fl.random.normal(shape=(batch, dim), seed=self.seed_generator)
        return z_mean + fl.exp(0.5 * z_log_var) * epsilon


def test_vae_sampling_layer_is_reparameterised_and_seeded():
    z_mean = fl.tensor(np.zeros((4, 2)), dtype="float32", requires_grad=True)
    z_log_var = fl.tensor(np.zeros((4, 2)), dtype="float32", requires_grad=True)
    layer = Sampling()
    z = layer([z_mean, z_log_var])
    assert z.shape == (4, 2)
    fl.square(z).sum().backward()
    eps = z.numpy()  # mean 0, log-variance 0: z is epsilon itself
    np.testing.assert_allclose(z_mean.grad, 2 * eps, rtol=1e-6)
    np.testing.assert_allclose(z_log_var.grad, eps * eps, rtol=1e-5)  # d/dlv = 0.5 eps * 2z
    again = Sampling()([z_mean, z_log_var]).numpy()  # a fresh generator replays the draws
    np.testing.assert_array_equal(again, eps)
    assert not np.array_equal(layer([z_mean, z_log_var]).numpy(), eps)  # and it advances


def test_gan_guide_label_noise_ops():
    gen = fl.random.SeedGenerator(1337)
    batch = 6
    labels = fl.concatenate([fl.ones((batch, 1)), fl.zeros((batch, 1))], axis=0)
    labels = labels + 0.05 * fl.random.uniform(fl.shape(labels), seed=gen)
    values = labels.numpy()
    assert values.shape == (12, 1)
    assert (values[:6] >= 1).all() and (values[:6] < 1.05).all() and (values[6:] < 0.05).all()


def test_imdb_pipeline_trains(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    # reviews whose label is whether word 7 occurs: learnable from the embeddings
    def reviews(n):
        xs, ys = [], []
        for _ in range(n):
            words = list(rng.integers(8, 40, rng.integers(3, 15)))
            label = int(rng.integers(0, 2))
            if label:
                words.insert(int(rng.integers(0, len(words))), 7)
            xs.append([int(w) for w in words])
            ys.append(label)
        out = np.empty(n, dtype=object)
        for i, w in enumerate(xs):
            out[i] = w
        return out, np.array(ys)

    x_train, y_train = reviews(96)
    x_test, y_test = reviews(32)
    folder = tmp_path / "imdb"
    folder.mkdir()
    path = folder / "imdb.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    monkeypatch.setenv("FUNDL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FUNDL_DATASETS_URL", "http://127.0.0.1:9")
    monkeypatch.setitem(imdb.FILES, "imdb.npz", hashlib.md5(path.read_bytes()).hexdigest())

    (x_train, y_train), (x_test, y_test) = imdb.load_data(num_words=50, progress=False)
    x_train = pad_sequences(x_train, maxlen=16)
    x_test = pad_sequences(x_test, maxlen=16)
    fl.utils.set_random_seed(0)
    model = fl.Sequential([
        fl.Input(shape=(16,), dtype="int32"),
        layers.Embedding(50, 8),
        layers.Flatten(),
        layers.Dense(8, activation="gelu"),
        layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="nadam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, epochs=15, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
