"""Generative adversarial networks: the two-player model, MLP players, DCGAN players, a score.

:class:`GAN` is a subclassed Model whose ``train_step`` plays one round of the lecture's
minimax game ``min_G max_D E[log D(x)] + E[log(1 - D(G(z)))]`` with the non-saturating
generator loss of Goodfellow et al. (2014): the discriminator takes a step on
``-log D(x) - log(1 - D(G(z)))``, then the generator one on ``-log D(G(z))`` (instead of
minimising ``log(1 - D(G(z)))``, whose gradient vanishes while D wins). Discriminators output
logits; the losses are sigmoid cross-entropies computed from them.

    >>> gan = fundl.zoo.dcgan(latent_dim=100, image_shape=(28, 28, 1))
    >>> gan.compile(d_optimizer=fl.optimizers.Adam(2e-4, beta_1=0.5),
    ...             g_optimizer=fl.optimizers.Adam(2e-4, beta_1=0.5))
    >>> gan.fit(x_scaled_to_minus1_1, epochs=5, batch_size=128)
    >>> images = gan.sample(64)

:func:`sample_quality` judges samples with a classifier trained on the real data.
"""
from __future__ import annotations

import math
import numbers

import numpy

from .. import functional as F
from .. import initializers, metrics
from ..autograd import no_grad
from ..layers import (
    BatchNormalization, Conv2D, Conv2DTranspose, Dense, Dropout, Flatten, Input, LeakyReLU,
    ReLU, Reshape,
)
from ..models import Model
from ..tape import GradientTape
from ._common import positive_int as _positive_int


def _bce_logits(logits, target):
    """Mean sigmoid cross-entropy of ``logits`` against the constant label ``target``.

    ``softplus(-l)`` is ``-log sigmoid(l)`` and ``softplus(l)`` is ``-log(1 - sigmoid(l))``,
    both stable for large |l|.
    """
    if target == 1.0:
        return F.softplus(-logits).mean()
    if target == 0.0:
        return F.softplus(logits).mean()
    return (F.softplus(-logits) * float(target) + F.softplus(logits) * (1.0 - target)).mean()


class GAN(Model):
    """The two players of a GAN, trained by its own ``train_step`` (the Keras guide's shape).

    Args:
        generator: a model ``z (batch, latent_dim) -> sample``.
        discriminator: a model ``sample -> logit (batch, 1)``.
        latent_dim: the size of ``z`` (drawn from N(0, I)).
        label_smoothing: the discriminator's target for real samples is
            ``1 - label_smoothing`` (one-sided smoothing, Salimans et al. 2016; 0: none).

    ``compile(d_optimizer=..., g_optimizer=...)`` takes one optimizer per player. ``fit(x)``
    takes the real samples only (labels, if given, are ignored). Logged per epoch:
    ``d_loss``, ``g_loss`` and ``d_real`` / ``d_fake``, the discriminator's mean
    probabilities on real and generated batches (0.5 / 0.5 at the game's equilibrium).

    Example:
        >>> gan = fundl.zoo.mlp_gan(latent_dim=64)
        >>> gan.compile(d_optimizer="adam", g_optimizer="adam")
        >>> gan.fit(x, epochs=1, batch_size=64)
    """

    def __init__(self, generator, discriminator, latent_dim, label_smoothing=0.0, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = _positive_int("GAN", "latent_dim", latent_dim)
        if not 0.0 <= float(label_smoothing) < 0.5:
            raise ValueError(f"GAN: label_smoothing must be in [0, 0.5), got "
                             f"{label_smoothing!r}.")
        self.label_smoothing = float(label_smoothing)
        self.d_loss_tracker = metrics.Mean(name="d_loss")
        self.g_loss_tracker = metrics.Mean(name="g_loss")
        self.d_real_tracker = metrics.Mean(name="d_real")
        self.d_fake_tracker = metrics.Mean(name="d_fake")
        # the players are built models, so this one has its weights (save_weights works) even
        # though fit never calls it: train_step calls the players
        self.built = True

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker, self.d_real_tracker,
                self.d_fake_tracker]

    def compile(self, d_optimizer="adam", g_optimizer="adam", **kwargs):
        """Set one optimizer per player (names or optimizer objects).

        Args:
            d_optimizer: the discriminator's optimizer.
            g_optimizer: the generator's optimizer.
            **kwargs: passed to :meth:`Model.compile` (no loss: ``train_step`` has its own).
        """
        from .. import optimizers

        super().compile(optimizer=g_optimizer, **kwargs)
        self.d_optimizer = optimizers.get(d_optimizer)
        self.g_optimizer = self.optimizer

    def call(self, z, training=None):
        return self.generator(z, training=training)

    def _z(self, n):
        from .. import random

        return random.normal((n, self.latent_dim))

    def train_step(self, data):
        real = data[0] if isinstance(data, (tuple, list)) else data
        n = real.shape[0]
        # 1. the discriminator: real -> 1 (or 1 - smoothing), generated -> 0
        with no_grad():
            fake = self.generator(self._z(n), training=True)
        with GradientTape() as tape:
            real_logits = self.discriminator(real, training=True)
            fake_logits = self.discriminator(fake, training=True)
            d_loss = (_bce_logits(real_logits, 1.0 - self.label_smoothing)
                      + _bce_logits(fake_logits, 0.0))
        d_weights = self.discriminator.trainable_weights
        grads = tape.gradient(d_loss, d_weights)
        self.d_optimizer.apply_gradients(zip(grads, d_weights))
        # 2. the generator, non-saturating: maximise log D(G(z))
        with GradientTape() as tape:
            logits = self.discriminator(self.generator(self._z(n), training=True),
                                        training=True)
            g_loss = _bce_logits(logits, 1.0)
        g_weights = self.generator.trainable_weights
        grads = tape.gradient(g_loss, g_weights)
        self.g_optimizer.apply_gradients(zip(grads, g_weights))

        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        self.d_real_tracker.update_state(F.sigmoid(real_logits).mean())
        self.d_fake_tracker.update_state(F.sigmoid(fake_logits).mean())
        return {m.name: m.result() for m in self.metrics}

    def sample(self, n, seed=None, batch_size=256):
        """``n`` generated samples (inference mode) as a NumPy array.

        Args:
            n: how many.
            seed: None (fundl's generator) or an int.
            batch_size: the generator's batch size.

        Returns:
            ``(n, *generator output shape)``.
        """
        from .. import random

        n = _positive_int("GAN.sample", "n", n)
        z = random.normal((n, self.latent_dim), seed=seed).numpy()
        return self.generator.predict(z, batch_size=batch_size, verbose=0)


def _check_image_shape(who, image_shape, divisor):
    shape = tuple(image_shape) if isinstance(image_shape, (tuple, list)) else None
    if shape is None or len(shape) != 3 or not all(
            isinstance(s, numbers.Integral) and s > 0 for s in shape):
        raise ValueError(f"fundl.zoo.{who}: image_shape must be (height, width, channels) of "
                         f"positive ints, got {image_shape!r}.")
    if shape[0] % divisor or shape[1] % divisor:
        raise ValueError(f"fundl.zoo.{who}: height and width must be divisible by {divisor} "
                         f"(two stride-2 stages), got image_shape {shape}; pad to 32x32 or "
                         "28x28.")
    return shape


def _dcgan_init():
    # Radford et al.: all weights from N(0, 0.02)
    return initializers.RandomNormal(mean=0.0, stddev=0.02)


def dcgan_generator(latent_dim=100, image_shape=(28, 28, 1), filters=64):
    """DCGAN's generator (Radford et al. 2016), sized for small images.

    ``z -> Dense(h/4 * w/4 * 2f) -> BN -> ReLU -> reshape -> Conv2DTranspose(f, 4, stride 2)
    -> BN -> ReLU -> Conv2DTranspose(channels, 4, stride 2) -> tanh``: fractionally strided
    convolutions instead of upsampling, batch norm everywhere but the output, ReLU inside and
    tanh at the output, weights from N(0, 0.02), no biases before batch norm.

    Args:
        latent_dim: the size of ``z``.
        image_shape: ``(height, width, channels)``, height and width divisible by 4.
        filters: ``f``, the width of the last hidden stage (the first has ``2f``).

    Returns:
        A built Model ``(batch, latent_dim) -> (batch, *image_shape)`` in [-1, 1].

    Example:
        >>> g = fundl.zoo.dcgan_generator(100, (28, 28, 1), filters=32)
    """
    who = "dcgan_generator"
    latent_dim = _positive_int(who, "latent_dim", latent_dim)
    filters = _positive_int(who, "filters", filters)
    h, w, c = _check_image_shape(who, image_shape, 4)
    init = _dcgan_init
    z = Input(shape=(latent_dim,), name="z")
    x = Dense((h // 4) * (w // 4) * 2 * filters, use_bias=False, kernel_initializer=init(),
              name="project")(z)
    x = ReLU(name="relu_0")(BatchNormalization(name="bn_0")(x))
    x = Reshape((h // 4, w // 4, 2 * filters), name="reshape")(x)
    x = Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False,
                        kernel_initializer=init(), name="deconv_1")(x)
    x = ReLU(name="relu_1")(BatchNormalization(name="bn_1")(x))
    x = Conv2DTranspose(c, 4, strides=2, padding="same", activation="tanh",
                        kernel_initializer=init(), name="deconv_2")(x)
    return Model(z, x, name="generator")


def dcgan_discriminator(image_shape=(28, 28, 1), filters=64):
    """DCGAN's discriminator (Radford et al. 2016), sized for small images.

    ``x -> Conv2D(f, 4, stride 2) -> LeakyReLU(0.2) -> Conv2D(2f, 4, stride 2) -> BN ->
    LeakyReLU(0.2) -> Flatten -> Dense(1)``: strided convolutions instead of pooling, no batch
    norm on the input layer, LeakyReLU with slope 0.2, weights from N(0, 0.02). It returns a
    logit (the sigmoid is in the loss).

    Args:
        image_shape: ``(height, width, channels)``, height and width divisible by 4.
        filters: the first stage's filters ``f``.

    Returns:
        A built Model ``(batch, *image_shape) -> (batch, 1)`` logits.

    Example:
        >>> d = fundl.zoo.dcgan_discriminator((28, 28, 1), filters=32)
    """
    who = "dcgan_discriminator"
    filters = _positive_int(who, "filters", filters)
    shape = _check_image_shape(who, image_shape, 4)
    init = _dcgan_init
    x_in = Input(shape=shape, name="image")
    x = Conv2D(filters, 4, strides=2, padding="same", kernel_initializer=init(),
               name="conv_1")(x_in)
    x = LeakyReLU(0.2, name="lrelu_1")(x)
    x = Conv2D(2 * filters, 4, strides=2, padding="same", use_bias=False,
               kernel_initializer=init(), name="conv_2")(x)
    x = LeakyReLU(0.2, name="lrelu_2")(BatchNormalization(name="bn_2")(x))
    x = Dense(1, kernel_initializer=init(), name="logit")(Flatten(name="flatten")(x))
    return Model(x_in, x, name="discriminator")


def dcgan(latent_dim=100, image_shape=(28, 28, 1), filters=64, label_smoothing=0.0):
    """A :class:`GAN` of :func:`dcgan_generator` and :func:`dcgan_discriminator`.

    Compile it as the paper: ``Adam(2e-4, beta_1=0.5)`` for both players; feed images
    scaled to [-1, 1].

    Args:
        latent_dim: the size of ``z``.
        image_shape: ``(height, width, channels)``, divisible by 4.
        filters: the width ``f`` of both players.
        label_smoothing: see :class:`GAN`.

    Returns:
        An uncompiled :class:`GAN`.

    Example:
        >>> gan = fundl.zoo.dcgan(100, (28, 28, 1), filters=32)
    """
    return GAN(dcgan_generator(latent_dim, image_shape, filters),
               dcgan_discriminator(image_shape, filters), latent_dim,
               label_smoothing=label_smoothing, name="dcgan")


def mlp_gan(latent_dim=100, data_dim=784, hidden=(256, 512), dropout=0.3, label_smoothing=0.0):
    """A GAN of multilayer perceptrons (Goodfellow et al. 2014's MNIST setting, modernised).

    Generator: ``z -> Dense(h_1) -> ... -> Dense(h_L)`` with LeakyReLU(0.2), then
    ``Dense(data_dim, tanh)``; discriminator: the mirror, ``Dense(h_L) -> ... -> Dense(h_1)``
    with LeakyReLU(0.2) and dropout, then a logit. Feed data scaled to [-1, 1].

    Args:
        latent_dim: the size of ``z``.
        data_dim: the size of a (flattened) sample.
        hidden: the generator's hidden sizes (the discriminator's, reversed).
        dropout: the discriminator's dropout rate (0: none).
        label_smoothing: see :class:`GAN`.

    Returns:
        An uncompiled :class:`GAN` with ``generator`` ``(batch, latent_dim) ->
        (batch, data_dim)`` and ``discriminator`` ``(batch, data_dim) -> (batch, 1)``.

    Example:
        >>> gan = fundl.zoo.mlp_gan(64, 784, hidden=(128, 256))
    """
    who = "mlp_gan"
    latent_dim = _positive_int(who, "latent_dim", latent_dim)
    data_dim = _positive_int(who, "data_dim", data_dim)
    if isinstance(hidden, numbers.Integral):
        hidden = (hidden,)
    hidden = tuple(_positive_int(who, "hidden", h) for h in hidden)
    z = Input(shape=(latent_dim,), name="z")
    x = z
    for i, units in enumerate(hidden, 1):
        x = LeakyReLU(0.2, name=f"lrelu_{i}")(Dense(units, name=f"dense_{i}")(x))
    generator = Model(z, Dense(data_dim, activation="tanh", name="sample")(x), name="generator")
    s = Input(shape=(data_dim,), name="sample")
    x = s
    for i, units in enumerate(reversed(hidden), 1):
        x = LeakyReLU(0.2, name=f"lrelu_{i}")(Dense(units, name=f"dense_{i}")(x))
        if dropout:
            x = Dropout(dropout, name=f"dropout_{i}")(x)
    discriminator = Model(s, Dense(1, name="logit")(x), name="discriminator")
    return GAN(generator, discriminator, latent_dim, label_smoothing=label_smoothing,
               name="mlp_gan")


def sample_quality(probabilities, threshold=0.9):
    """Judge generated samples by a classifier trained on the real data (our own score).

    Args:
        probabilities: ``(samples, classes)`` class probabilities the classifier gives the
            generated samples (``classifier.predict(samples)``).
        threshold: the confidence a sample must reach to count as recognisable.

    Returns:
        dict with
        ``confident_share``: the share of samples whose top probability exceeds
        ``threshold`` (recognisable samples);
        ``class_entropy``: the entropy (nats) of the histogram of predicted classes, at most
        ``log(classes)`` when every class is generated equally often (mode coverage);
        ``class_spread``: ``exp(class_entropy)``, the effective number of classes generated
        (``classes`` at best, 1 for a collapsed generator);
        ``inception_score``: ``exp(E_x KL(p(y|x) || p(y)))`` of Salimans et al. (2016)
        computed with this classifier (between 1 and ``classes``; high when samples are both
        confident and diverse). Not comparable with Inception-network scores in papers.

    Raises:
        ValueError: not a 2-D array of probabilities.

    Example:
        >>> q = sample_quality(classifier.predict(gan.sample(1000)))
        >>> q["confident_share"], q["class_spread"]
    """
    p = numpy.asarray(probabilities, dtype="float64")
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] < 2 or not numpy.all(numpy.isfinite(p)):
        raise ValueError(f"fundl.zoo.sample_quality: expected (samples, classes) class "
                         f"probabilities with >= 2 classes, got shape {p.shape}.")
    if numpy.any(p < -1e-6) or not numpy.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("fundl.zoo.sample_quality: rows must be probabilities (>= 0, summing "
                         "to 1): pass the classifier's softmax outputs, not logits.")
    p = numpy.clip(p, 1e-12, 1.0)
    classes = p.shape[1]
    hist = numpy.bincount(p.argmax(axis=1), minlength=classes) / p.shape[0]
    nz = hist[hist > 0]
    entropy = float(-(nz * numpy.log(nz)).sum())
    marginal = p.mean(axis=0)
    kl = (p * (numpy.log(p) - numpy.log(marginal))).sum(axis=1)
    return {"confident_share": float((p.max(axis=1) > threshold).mean()),
            "class_entropy": entropy, "class_spread": math.exp(entropy),
            "inception_score": float(math.exp(kl.mean()))}
