"""Autoencoders: dense, convolutional, stacked (greedy layer-wise pre-training), variational,
and the channel autoencoder of the learned physical layer.

Every builder returns an ordinary model made of public layers. The deterministic ones are
functional models ``x -> decoder(encoder(x))`` whose two halves are nested models named
``"encoder"`` and ``"decoder"`` (Keras's idiom), so that ``ae.get_layer("encoder")`` gives the
code of an input and ``ae.get_layer("decoder")`` maps codes back:

    >>> ae = fundl.zoo.dense_autoencoder(784, 30, hidden=(256, 64))
    >>> ae.compile(optimizer="adam", loss="mse")
    >>> ae.fit(x, x, epochs=5)
    >>> codes = ae.get_layer("encoder").predict(x)

The variants of the lecture are arguments: a sparse autoencoder is
``code_regularizer=fundl.regularizers.KLSparsity(rho, beta)`` with a sigmoid code, a denoising
one is ``input_noise=0.5`` (Gaussian corruption in training only) or any noise layer,
a stacked one is :func:`stacked_autoencoder` followed by :func:`pretrain_greedy`.
"""
from __future__ import annotations

import numbers

import numpy

from .. import functional as F
from .. import losses, metrics
from ..layers import (
    AWGN, Conv2D, Conv2DTranspose, Dense, EnergyNormalization, Flatten, GaussianNoise, Input,
    Layer, Reshape,
)
from ..models import Model
from ..tape import GradientTape
from ._common import positive_int as _positive_int


def _sizes(who, name, values):
    if isinstance(values, numbers.Integral) and not isinstance(values, bool):
        values = (values,)
    if not isinstance(values, (tuple, list)):
        raise TypeError(f"fundl.zoo.{who}: {name} must be a tuple of positive ints, got "
                        f"{values!r}.")
    return tuple(_positive_int(who, name, v) for v in values)


def _noise_layer(who, input_noise):
    """None, a Gaussian stddev (a number) or a layer used as the corruption of the input."""
    if input_noise is None or isinstance(input_noise, Layer):
        return input_noise
    if isinstance(input_noise, bool) or not isinstance(input_noise, numbers.Real) \
            or not input_noise >= 0:
        raise ValueError(f"fundl.zoo.{who}: input_noise must be None, a stddev >= 0 or a noise "
                         f"layer (GaussianNoise, GaussianDropout, Dropout), got {input_noise!r}.")
    return GaussianNoise(float(input_noise), name="corruption")


def _join(name, encoder, decoder, input_shape, noise):
    inputs = Input(shape=input_shape, name="input")
    x = noise(inputs) if noise is not None else inputs
    return Model(inputs, decoder(encoder(x)), name=name)


def dense_autoencoder(input_dim, code_dim, hidden=(), activation="relu", code_activation=None,
                      output_activation="sigmoid", code_regularizer=None, input_noise=None,
                      kernel_regularizer=None, name="dense_autoencoder"):
    """A fully connected autoencoder: ``input_dim -> *hidden -> code_dim -> *reversed(hidden)
    -> input_dim``.

    With ``hidden=()`` it is the one-hidden-layer autoencoder of the lecture; with
    ``hidden=(1000, 500, 250)``, ``code_dim=30`` and a linear code it is the deep autoencoder
    of Hinton & Salakhutdinov (2006) (trained here end to end with Adam, not from RBMs).

    Args:
        input_dim: the size of a (flattened) input.
        code_dim: the size of the code (bottleneck).
        hidden: the encoder's hidden sizes; the decoder mirrors them.
        activation: the hidden layers' activation.
        code_activation: the code layer's activation (None: linear; "sigmoid" for a sparse
            autoencoder, whose KL penalty needs activations in (0, 1)).
        output_activation: "sigmoid" for inputs in [0, 1] (pixels), None for real values.
        code_regularizer: an ``activity_regularizer`` of the code layer, e.g.
            ``fundl.regularizers.KLSparsity(0.05, 3.0)`` (a sparse autoencoder).
        input_noise: None, a number (the stddev of ``GaussianNoise`` added in training only:
            a denoising autoencoder) or a noise layer such as ``GaussianDropout(0.3)``.
        kernel_regularizer: a weight penalty for every Dense kernel (e.g.
            ``fundl.regularizers.L2(1.5e-3)``, the weight decay of Ng's sparse autoencoder).
        name: the model's name.

    Returns:
        A built, uncompiled :class:`~fundl.models.Model` ``(batch, input_dim) ->
        (batch, input_dim)`` with nested models ``"encoder"`` ``(batch, input_dim) ->
        (batch, code_dim)`` and ``"decoder"``. The code layer is named ``"code"``.

    Example:
        >>> ae = fundl.zoo.dense_autoencoder(784, 64, code_activation="sigmoid",
        ...                                  code_regularizer=KLSparsity(0.05, 3.0))
        >>> ae.compile(optimizer="adam", loss="mse")
    """
    who = "dense_autoencoder"
    input_dim = _positive_int(who, "input_dim", input_dim)
    code_dim = _positive_int(who, "code_dim", code_dim)
    hidden = _sizes(who, "hidden", hidden)
    noise = _noise_layer(who, input_noise)

    x = Input(shape=(input_dim,), name="encoder_input")
    h = x
    reg = kernel_regularizer
    for i, units in enumerate(hidden, 1):
        h = Dense(units, activation=activation, kernel_regularizer=reg, name=f"encoder_{i}")(h)
    code = Dense(code_dim, activation=code_activation, activity_regularizer=code_regularizer,
                 kernel_regularizer=reg, name="code")(h)
    encoder = Model(x, code, name="encoder")

    z = Input(shape=(code_dim,), name="decoder_input")
    h = z
    for i, units in enumerate(reversed(hidden), 1):
        h = Dense(units, activation=activation, kernel_regularizer=reg, name=f"decoder_{i}")(h)
    out = Dense(input_dim, activation=output_activation, kernel_regularizer=reg,
                name="reconstruction")(h)
    decoder = Model(z, out, name="decoder")
    return _join(name, encoder, decoder, (input_dim,), noise)


def conv_autoencoder(input_shape=(28, 28, 1), filters=(32, 64), code_dim=None,
                     activation="relu", output_activation="sigmoid", input_noise=None,
                     name="conv_autoencoder"):
    """A convolutional autoencoder: strided 3x3 convolutions down, transposed ones up.

    Each entry of ``filters`` halves the height and width (``Conv2D(f, 3, strides=2,
    padding="same")``); the decoder mirrors them with ``Conv2DTranspose(f, 3, strides=2)``
    and ends with a 3x3 convolution to the input's channels. With ``code_dim`` the feature
    map is flattened into a dense code of that size (and expanded back).

    Args:
        input_shape: ``(height, width, channels)``, height and width divisible by
            ``2 ** len(filters)``.
        filters: the encoder's filters per stage.
        code_dim: None (the last feature map is the code) or the size of a dense code.
        activation: the hidden activation.
        output_activation: "sigmoid" for pixels in [0, 1], None for real values.
        input_noise: None, a Gaussian stddev (denoising, training only) or a noise layer.
        name: the model's name.

    Returns:
        A built, uncompiled Model ``(batch, *input_shape) -> (batch, *input_shape)`` with
        nested ``"encoder"`` and ``"decoder"`` models.

    Example:
        >>> ae = fundl.zoo.conv_autoencoder((28, 28, 1), filters=(16, 32))
        >>> ae.get_layer("encoder").output_shape
        (None, 7, 7, 32)
    """
    who = "conv_autoencoder"
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    filters = _sizes(who, "filters", filters)
    if shape is None or len(shape) != 3 or not all(
            isinstance(s, numbers.Integral) and s > 0 for s in shape):
        raise ValueError(f"fundl.zoo.{who}: input_shape must be (height, width, channels) of "
                         f"positive ints, got {input_shape!r}.")
    step = 2 ** len(filters)
    if shape[0] % step or shape[1] % step:
        raise ValueError(f"fundl.zoo.{who}: height and width must be divisible by "
                         f"2**len(filters) = {step} (each stage halves them), got input_shape "
                         f"{shape}. Pad the images or use fewer stages.")
    if code_dim is not None:
        code_dim = _positive_int(who, "code_dim", code_dim)
    noise = _noise_layer(who, input_noise)

    x = Input(shape=shape, name="encoder_input")
    h = x
    for i, f in enumerate(filters, 1):
        h = Conv2D(f, 3, strides=2, padding="same", activation=activation,
                   name=f"encoder_conv_{i}")(h)
    small = (shape[0] // step, shape[1] // step, filters[-1])
    if code_dim is not None:
        h = Dense(code_dim, name="code")(Flatten(name="flatten")(h))
    encoder = Model(x, h, name="encoder")

    z = Input(shape=tuple(h.shape[1:]), name="decoder_input")
    h = z
    if code_dim is not None:
        h = Dense(int(numpy.prod(small)), activation=activation, name="expand")(h)
        h = Reshape(small, name="unflatten")(h)
    for i, f in enumerate(reversed(filters), 1):
        h = Conv2DTranspose(f, 3, strides=2, padding="same", activation=activation,
                            name=f"decoder_deconv_{i}")(h)
    out = Conv2D(shape[2], 3, padding="same", activation=output_activation,
                 name="reconstruction")(h)
    decoder = Model(z, out, name="decoder")
    return _join(name, encoder, decoder, shape, noise)


def stacked_autoencoder(input_dim, hidden=(256, 64), activation="sigmoid",
                        output_activation="sigmoid", input_noise=None,
                        name="stacked_autoencoder"):
    """A stack of autoencoders, ready for :func:`pretrain_greedy` and then fine-tuning.

    The encoder is ``Dense(hidden[0]) -> ... -> Dense(hidden[-1])`` (layers ``"encoder_1"``
    ... ``"encoder_L"``), the decoder mirrors it (``"decoder_L"`` ... ``"decoder_1"``, where
    ``decoder_i`` reconstructs the input of ``encoder_i``). :func:`pretrain_greedy` trains
    each pair ``(encoder_i, decoder_i)`` as a shallow autoencoder of the codes below it, as
    the lecture's stacked autoencoders (Bengio et al. 2007; Vincent et al. 2010 with
    ``input_noise``); afterwards the whole stack is fine-tuned, as an autoencoder
    (``fit(x, x)``) or, usually, as a classifier on the pre-trained encoder::

        sae = stacked_autoencoder(784, (256, 64))
        pretrain_greedy(sae, x_unlabelled, epochs=3)
        clf = Sequential([sae.get_layer("encoder"), Dense(10, activation="softmax")])
        clf.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        clf.fit(x_few, y_few)          # fine-tunes every layer of the stack

    Args:
        input_dim: the input size.
        hidden: the hidden sizes, bottom to top (at least one).
        activation: the hidden units' activation (sigmoid as the classic SAE; any works).
        output_activation: the reconstruction's activation ("sigmoid" for pixels in [0, 1]).
        input_noise: None, a stddev or a noise layer corrupting each layer's input during
            pre-training (a stacked *denoising* autoencoder) and the input of the full model.
        name: the model's name.

    Returns:
        A built, uncompiled Model ``(batch, input_dim) -> (batch, input_dim)`` with nested
        ``"encoder"`` and ``"decoder"`` models.

    Example:
        >>> sae = fundl.zoo.stacked_autoencoder(784, (256, 64))
        >>> [l.name for l in sae.get_layer("encoder").layers[1:]]
        ['encoder_1', 'encoder_2']
    """
    who = "stacked_autoencoder"
    input_dim = _positive_int(who, "input_dim", input_dim)
    hidden = _sizes(who, "hidden", hidden)
    noise = _noise_layer(who, input_noise)

    x = Input(shape=(input_dim,), name="encoder_input")
    h = x
    for i, units in enumerate(hidden, 1):
        h = Dense(units, activation=activation, name=f"encoder_{i}")(h)
    encoder = Model(x, h, name="encoder")
    z = Input(shape=(hidden[-1],), name="decoder_input")
    h = z
    sizes = (input_dim,) + hidden[:-1]
    for i in range(len(hidden), 0, -1):
        act = output_activation if i == 1 else activation
        h = Dense(sizes[i - 1], activation=act, name=f"decoder_{i}")(h)
    decoder = Model(z, h, name="decoder")
    return _join(name, encoder, decoder, (input_dim,), noise)


def pretrain_greedy(autoencoder, x, epochs=1, batch_size=128, optimizer="adam", loss="mse",
                    verbose=0, shuffle=True):
    """Greedy layer-wise pre-training of a :func:`stacked_autoencoder`, bottom layer first.

    For level ``i = 1 .. L`` it trains the shallow autoencoder
    ``h_{i-1} -> encoder_i -> decoder_i -> h_{i-1}`` on the codes ``h_{i-1}`` of the levels
    already trained (``h_0 = x``), with the stack's ``input_noise`` (if any) corrupting
    ``h_{i-1}``, then computes ``h_i = encoder_i(h_{i-1})`` for the next level. The weights
    are those of the stack itself (the layers are shared), so afterwards the stack is a deep
    autoencoder initialised level by level, to be fine-tuned as a whole.

    Args:
        autoencoder: a model from :func:`stacked_autoencoder`.
        x: the (unlabelled) training inputs, ``(samples, input_dim)``.
        epochs: epochs per level (an int, or a list with one per level).
        batch_size: the minibatch size.
        optimizer: an optimizer name (a fresh one per level) or a callable returning an
            optimizer (``lambda: fl.optimizers.Adam(1e-3)``).
        loss: the reconstruction loss of every level.
        verbose: passed to ``fit``.
        shuffle: passed to ``fit``.

    Returns:
        A list with each level's ``History.history`` dict, bottom level first.

    Raises:
        ValueError: ``autoencoder`` is not a stacked autoencoder, or ``x`` does not have its
            input size.

    Example:
        >>> sae = fundl.zoo.stacked_autoencoder(784, (256, 64))
        >>> histories = fundl.zoo.pretrain_greedy(sae, x, epochs=2)
        >>> histories[1]["loss"][-1] < histories[1]["loss"][0]
        True
    """
    who = "pretrain_greedy"
    try:
        encoder = autoencoder.get_layer("encoder")
        decoder = autoencoder.get_layer("decoder")
        enc_layers = [encoder.get_layer(f"encoder_{i}") for i in range(1, len(encoder.layers))]
        dec_layers = [decoder.get_layer(f"decoder_{i}") for i in range(1, len(enc_layers) + 1)]
    except (ValueError, AttributeError, KeyError, TypeError) as e:
        raise ValueError(f"fundl.zoo.{who}: expected a model made by "
                         f"fundl.zoo.stacked_autoencoder(...) (nested 'encoder' and 'decoder' "
                         f"models with layers encoder_i / decoder_i), got {autoencoder!r}: "
                         f"{e}") from e
    # the stack's input corruption (a layer between its input and the encoder), if any
    others = [l for l in autoencoder.layers if l is not encoder and l is not decoder
              and type(l).__name__ != "InputLayer"]
    noise = others[0] if others else None
    h = numpy.asarray(x, dtype="float32")
    n_in = enc_layers[0].kernel.shape[0]
    if h.ndim != 2 or h.shape[1] != n_in:
        raise ValueError(f"fundl.zoo.{who}: expected x of shape (samples, {n_in}), got "
                         f"{h.shape}.")
    levels = len(enc_layers)
    per_level = list(epochs) if isinstance(epochs, (list, tuple)) else [epochs] * levels
    if len(per_level) != levels:
        raise ValueError(f"fundl.zoo.{who}: {len(per_level)} epoch counts for {levels} levels; "
                         "give one int or one per level.")
    histories = []
    for i, (enc, dec) in enumerate(zip(enc_layers, dec_layers)):
        inputs = Input(shape=(h.shape[1],), name=f"level_{i + 1}_input")
        t = noise(inputs) if noise is not None else inputs
        shallow = Model(inputs, dec(enc(t)), name=f"level_{i + 1}")
        opt = optimizer() if callable(optimizer) else optimizer
        shallow.compile(optimizer=opt, loss=loss)
        hist = shallow.fit(h, h, epochs=per_level[i], batch_size=batch_size, verbose=verbose,
                           shuffle=shuffle)
        histories.append(hist.history)
        codes = Model(inputs, enc(inputs))
        h = codes.predict(h, batch_size=1024, verbose=0)
    return histories


class Sampling(Layer):
    """``z = mean + exp(log_var / 2) * eps`` with ``eps ~ N(0, I)``: the reparameterisation trick.

    Called on ``[z_mean, z_log_var]`` (both ``(batch, latent)``); returns ``(batch, latent)``.
    The draws come from fundl's generator (``fl.manual_seed``). No weights.

    Example:
        >>> z = Sampling()([z_mean, z_log_var])
    """

    def call(self, inputs, training=None):
        z_mean, z_log_var = inputs
        eps = _normal_like(z_mean)
        return z_mean + F.exp(z_log_var * 0.5) * eps

    def compute_output_shape(self, input_shape):
        return input_shape[0]


def _normal_like(t):
    from .. import random

    return random.normal(tuple(t.shape), dtype=str(t.dtype))


class VariationalAutoencoder(Model):
    """A VAE (Kingma & Welling 2014) as a subclassed Model with its own ``train_step``.

    The encoder gives ``[z_mean, z_log_var, z]`` (``z`` drawn with :class:`Sampling`), the
    decoder maps ``z`` to Bernoulli pixel probabilities. Training maximises the ELBO: the loss
    is the reconstruction term (binary cross-entropy summed over the input's components) plus
    ``beta`` times ``KL(q(z|x) || N(0, I)) = -1/2 sum(1 + log_var - mean^2 - exp(log_var))``,
    both averaged over the batch. ``fit(x)`` takes the inputs only; ``evaluate(x)`` reports the
    same three numbers on held-out data (``loss`` is then the negative ELBO per sample, an
    upper bound on ``-log p(x)`` for ``beta = 1``).

    Args:
        encoder: a model ``x -> [z_mean, z_log_var, z]``.
        decoder: a model ``z -> x_hat`` (probabilities in (0, 1)).
        beta: the KL weight (1: the ELBO; > 1: a beta-VAE).

    Calling the model reconstructs from the posterior mean (deterministic). :meth:`sample`
    draws new inputs from the prior.

    Example:
        >>> vae = fundl.zoo.variational_autoencoder(784, latent_dim=2)
        >>> vae.compile(optimizer=fl.optimizers.Adam(1e-3))
        >>> vae.fit(x, epochs=5, batch_size=128)
        >>> digits = vae.sample(16)            # (16, 784)
    """

    def __init__(self, encoder, decoder, beta=1.0, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.beta = float(beta)
        self.total_loss_tracker = metrics.Mean(name="loss")
        self.reconstruction_loss_tracker = metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = metrics.Mean(name="kl_loss")
        # the players are built models, so this one has its weights (save_weights works) even
        # though fit never calls it: train_step calls the players
        self.built = True

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def call(self, x, training=None):
        return self.decoder(self.encoder(x, training=training)[0], training=training)

    def _losses(self, x, training):
        z_mean, z_log_var, z = self.encoder(x, training=training)
        reconstruction = self.decoder(z, training=training)
        size = int(numpy.prod(x.shape[1:]))
        # binary_crossentropy averages over the last axis; the ELBO sums every component
        bce = losses.binary_crossentropy(x, reconstruction)
        reconstruction_loss = bce.reshape((bce.shape[0], -1)).mean(axis=1).mean() * float(
            size)
        kl = (1 + z_log_var - z_mean * z_mean - F.exp(z_log_var)) * -0.5
        kl_loss = kl.sum(axis=1).mean()
        return reconstruction_loss, kl_loss, reconstruction_loss + kl_loss * self.beta

    def _log(self, rec, kl, total):
        self.total_loss_tracker.update_state(total)
        self.reconstruction_loss_tracker.update_state(rec)
        self.kl_loss_tracker.update_state(kl)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        x = data[0] if isinstance(data, (tuple, list)) else data
        with GradientTape() as tape:
            rec, kl, total = self._losses(x, training=True)
        grads = tape.gradient(total, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        return self._log(rec, kl, total)

    def test_step(self, data):
        from ..autograd import no_grad

        x = data[0] if isinstance(data, (tuple, list)) else data
        with no_grad():
            rec, kl, total = self._losses(x, training=False)
        return self._log(rec, kl, total)

    def sample(self, n, seed=None):
        """``n`` new inputs decoded from ``z ~ N(0, I)`` (the prior), as a NumPy array.

        Args:
            n: how many.
            seed: None (fundl's generator) or an int.

        Returns:
            ``(n, *decoder output shape)`` probabilities (the Bernoulli means).
        """
        from .. import random

        n = _positive_int("VariationalAutoencoder.sample", "n", n)
        latent = int(self.decoder.inputs[0].shape[-1])
        z = random.normal((n, latent), seed=seed).numpy()
        return self.decoder.predict(z, verbose=0)


def variational_autoencoder(input_dim=784, latent_dim=2, hidden=(512,), activation="relu",
                            beta=1.0, name="vae"):
    """A dense VAE: ``input_dim -> *hidden -> (z_mean, z_log_var) -> z -> *hidden -> input_dim``.

    Args:
        input_dim: the input size (inputs in [0, 1], e.g. MNIST pixels / 255).
        latent_dim: the latent space's size.
        hidden: the encoder's hidden sizes (the decoder mirrors them).
        activation: the hidden activation.
        beta: the KL weight (see :class:`VariationalAutoencoder`).
        name: the model's name.

    Returns:
        An uncompiled :class:`VariationalAutoencoder`; compile it with an optimizer only.

    Example:
        >>> vae = fundl.zoo.variational_autoencoder(784, latent_dim=16)
        >>> vae.compile(optimizer="adam")
    """
    who = "variational_autoencoder"
    input_dim = _positive_int(who, "input_dim", input_dim)
    latent_dim = _positive_int(who, "latent_dim", latent_dim)
    hidden = _sizes(who, "hidden", hidden)
    x = Input(shape=(input_dim,), name="encoder_input")
    h = x
    for i, units in enumerate(hidden, 1):
        h = Dense(units, activation=activation, name=f"encoder_{i}")(h)
    z_mean = Dense(latent_dim, name="z_mean")(h)
    z_log_var = Dense(latent_dim, name="z_log_var")(h)
    z = Sampling(name="z")([z_mean, z_log_var])
    encoder = Model(x, [z_mean, z_log_var, z], name="encoder")
    zi = Input(shape=(latent_dim,), name="decoder_input")
    h = zi
    for i, units in enumerate(reversed(hidden), 1):
        h = Dense(units, activation=activation, name=f"decoder_{i}")(h)
    decoder = Model(zi, Dense(input_dim, activation="sigmoid", name="reconstruction")(h),
                    name="decoder")
    return VariationalAutoencoder(encoder, decoder, beta=beta, name=name)


def channel_autoencoder(n, k, ebn0_db, hidden=None, name="channel_autoencoder"):
    """The learned physical layer (O'Shea & Hoydis 2017): ``k`` bits over ``n`` real channel uses.

    A message ``s`` in ``{0 .. M-1}``, ``M = 2**k``, enters one-hot; the transmitter
    (``Dense(hidden, relu) -> Dense(n) -> EnergyNormalization()``: every block has energy
    ``n``) sends ``n`` real symbols through the AWGN channel at ``Eb/N0 = ebn0_db``; the
    receiver (``Dense(hidden, relu) -> Dense(M, softmax)``) estimates ``s``. Train it with
    ``sparse_categorical_crossentropy`` on random messages; evaluate at other Eb/N0 by setting
    ``model.get_layer("channel").stddev = AWGN.stddev_for(db, n, k)`` or by sending the
    transmitter's codewords through your own noise to the receiver.

    Args:
        n: real channel uses per message.
        k: bits per message.
        ebn0_db: the training Eb/N0 in dB.
        hidden: the hidden width of transmitter and receiver (default ``M``).
        name: the model's name.

    Returns:
        A built, uncompiled Model ``(batch, M) -> (batch, M)`` with nested models
        ``"transmitter"`` ``(batch, M) -> (batch, n)`` and ``"receiver"`` ``(batch, n) ->
        (batch, M)``, and the ``AWGN`` layer ``"channel"`` between them.

    Example:
        >>> ae = fundl.zoo.channel_autoencoder(7, 4, ebn0_db=7.0)
        >>> ae.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        >>> s = np.random.default_rng(0).integers(0, 16, 10000)
        >>> ae.fit(np.eye(16, dtype="float32")[s], s, epochs=10)
    """
    who = "channel_autoencoder"
    n = _positive_int(who, "n", n)
    k = _positive_int(who, "k", k)
    if k > 16:
        raise ValueError(f"fundl.zoo.{who}: k = {k} bits means 2**k one-hot inputs; keep k "
                         "<= 16.")
    m = 2 ** k
    width = m if hidden is None else _positive_int(who, "hidden", hidden)
    s = Input(shape=(m,), name="message")
    x = Dense(width, activation="relu", name="tx_hidden")(s)
    x = EnergyNormalization(name="energy_normalization")(Dense(n, name="tx_symbols")(x))
    transmitter = Model(s, x, name="transmitter")
    r = Input(shape=(n,), name="received")
    y = Dense(width, activation="relu", name="rx_hidden")(r)
    receiver = Model(r, Dense(m, activation="softmax", name="rx_probabilities")(y),
                     name="receiver")
    inputs = Input(shape=(m,), name="input")
    channel = AWGN(AWGN.stddev_for(float(ebn0_db), n, k), name="channel")
    return Model(inputs, receiver(channel(transmitter(inputs))), name=name)
