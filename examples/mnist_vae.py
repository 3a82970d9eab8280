"""A variational autoencoder on MNIST with a custom ``train_step``, as in the Keras guide.

    python examples/mnist_vae.py [--epochs 5] [--train 10000] [--latent 2] [--plots DIR]

The program a Keras user writes, with only the imports changed: an encoder maps a digit to the
mean and log-variance of a Gaussian in a small latent space, a ``Sampling`` layer draws
``z = mean + exp(log_var / 2) * eps`` (the reparameterisation trick), a decoder maps ``z``
back to pixels. The ``VAE`` model overrides ``train_step``: under a ``fl.GradientTape`` it
computes the reconstruction loss (binary cross-entropy summed over the 784 pixels) and the KL
divergence to N(0, I), takes the gradients of their sum, applies them, and reports three
``fl.metrics.Mean`` trackers, which ``fit`` resets at every epoch and logs in the History.
After training it reports the test negative ELBO (reconstruction + KL per digit, in nats; an
upper bound on -log p(x)). With ``--plots DIR`` it writes test digits beside their
reconstructions, digits decoded from samples of the prior z ~ N(0, I) (the generative
model at work), and a grid of digits decoded from a regular grid of latent points
(``--latent 2``). ``fundl.zoo.variational_autoencoder`` builds the same model in one call.
"""
import argparse
import os
import time

import numpy as np

import fundl as fl
from fundl import functional as F
from fundl import losses, metrics
from fundl.layers import Dense, Input, Layer
from fundl.models import Model


class Sampling(Layer):
    """Draws z from N(z_mean, exp(z_log_var)) in a differentiable way."""

    def __init__(self, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.rng = np.random.default_rng(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        eps = fl.tensor(self.rng.standard_normal(z_mean.shape).astype(z_mean.dtype))
        return z_mean + F.exp(z_log_var * 0.5) * eps

    def compute_output_shape(self, input_shape):
        return input_shape[0]


def build_encoder(latent):
    x = Input(shape=(784,))
    h = Dense(256, activation="relu")(x)
    z_mean = Dense(latent, name="z_mean")(h)
    z_log_var = Dense(latent, name="z_log_var")(h)
    z = Sampling()([z_mean, z_log_var])
    return Model(x, [z_mean, z_log_var, z], name="encoder")


def build_decoder(latent):
    z = Input(shape=(latent,))
    h = Dense(256, activation="relu")(z)
    return Model(z, Dense(784, activation="sigmoid")(h), name="decoder")


class VAE(Model):
    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.total_loss_tracker = metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def call(self, x):
        return self.decoder(self.encoder(x)[0])   # the mean: a deterministic reconstruction

    def train_step(self, data):
        with fl.GradientTape() as tape:
            z_mean, z_log_var, z = self.encoder(data)
            reconstruction = self.decoder(z)
            # binary_crossentropy averages over the pixels; the ELBO sums them
            reconstruction_loss = (losses.binary_crossentropy(data, reconstruction) * 784).mean()
            kl = -0.5 * (1 + z_log_var - z_mean * z_mean - F.exp(z_log_var))
            kl_loss = kl.sum(axis=1).mean()
            total_loss = reconstruction_loss + kl_loss
        grads = tape.gradient(total_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.total_loss_tracker.update_state(total_loss)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        return {"loss": self.total_loss_tracker.result(),
                "reconstruction_loss": self.reconstruction_loss_tracker.result(),
                "kl_loss": self.kl_loss_tracker.result()}


def load(n_train, n_test):
    from fundl.datasets import mnist

    (x, _), (xt, yt) = mnist.load_data()
    x = x[:n_train].reshape(-1, 784).astype("float32") / 255
    xt = xt[:n_test].reshape(-1, 784).astype("float32") / 255
    return x, xt, yt[:n_test]


def test_elbo(vae, x):
    """The negative ELBO per digit on ``x``, and its two terms: (total, reconstruction, KL).

    One posterior sample per digit (the reparameterised z), as in training.
    """
    z_mean, z_log_var, z = (t.numpy() if hasattr(t, "numpy") else t
                            for t in vae.encoder.predict(x, verbose=0))
    p = np.clip(vae.decoder.predict(z, verbose=0), 1e-7, 1 - 1e-7)
    rec = float(-(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(1).mean())
    kl = float((-0.5 * (1 + z_log_var - z_mean ** 2 - np.exp(z_log_var))).sum(1).mean())
    return rec + kl, rec, kl


def plot(vae, x_test, latent, directory):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(directory, exist_ok=True)
    recon = vae.predict(x_test[:10])
    fig, axes = plt.subplots(2, 10, figsize=(10, 2.2))
    for i in range(10):
        for row, img in ((0, x_test[i]), (1, recon[i])):
            axes[row, i].imshow(img.reshape(28, 28), cmap="gray")
            axes[row, i].axis("off")
    fig.suptitle("test digits (top) and their reconstructions (bottom)")
    path = os.path.join(directory, "vae_reconstructions.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    paths = [path]
    z = np.random.default_rng(0).standard_normal((100, latent)).astype("float32")
    samples = vae.decoder.predict(z, verbose=0).reshape(10, 10, 28, 28)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(samples.transpose(0, 2, 1, 3).reshape(280, 280), cmap="gray")
    ax.set_title("digits decoded from z ~ N(0, I)")
    ax.axis("off")
    path = os.path.join(directory, "vae_prior_samples.png")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    paths.append(path)
    if latent == 2:
        n = 15
        grid = np.linspace(-2, 2, n)
        z = np.array([[a, b] for b in grid[::-1] for a in grid], dtype="float32")
        digits = vae.decoder.predict(z).reshape(n, n, 28, 28)
        fig, ax = plt.subplots(figsize=(6, 6))
        ax.imshow(digits.transpose(0, 2, 1, 3).reshape(n * 28, n * 28), cmap="gray")
        ax.set_title("digits decoded from a grid of latent points")
        ax.axis("off")
        path = os.path.join(directory, "vae_latent_grid.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train", type=int, default=10000, help="training digits")
    parser.add_argument("--test", type=int, default=1000, help="test digits")
    parser.add_argument("--latent", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots", default=None, help="write PNGs to this directory")
    args = parser.parse_args(argv)

    fl.manual_seed(args.seed)
    x, x_test, _ = load(args.train, args.test)
    vae = VAE(build_encoder(args.latent), build_decoder(args.latent))
    vae.compile(optimizer=fl.optimizers.Adam(1e-3))
    start = time.perf_counter()
    history = vae.fit(x, epochs=args.epochs, batch_size=args.batch_size, verbose=2)
    seconds = time.perf_counter() - start
    recon = vae.predict(x_test)
    bce = float(losses.binary_crossentropy(x_test, recon).numpy().mean() * 784)
    elbo, elbo_rec, elbo_kl = test_elbo(vae, x_test)
    print(f"test reconstruction loss (BCE summed over pixels): {bce:.1f} "
          f"({args.epochs} epochs, {seconds:.0f} s)")
    print(f"test negative ELBO {elbo:.1f} nats per digit (reconstruction {elbo_rec:.1f} + KL "
          f"{elbo_kl:.1f})")
    if args.plots:
        for path in plot(vae, x_test, args.latent, args.plots):
            print("wrote", path)
    return {"history": history.history, "test_reconstruction_loss": bce, "test_elbo": elbo}


if __name__ == "__main__":
    main()
