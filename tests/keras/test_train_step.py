"""Custom training steps as the Keras guides write them (a VAE, a GAN, a step with a tape,
overridden compute_loss / test_step / predict_step), in our own words and tiny sizes."""
import warnings

import numpy as np
import pytest

import fundl as fl
from fundl import functional as F
from fundl import losses, metrics
from fundl.callbacks import LambdaCallback
from fundl.layers import Dense, Layer
from fundl.models import Model, Sequential
from fundl.optimizers import SGD, Adam
from fundl.testing import assert_error


def _blobs(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype("float32")
    y = (x[:, :1] + x[:, 1:2] > 0).astype("float32")
    return x, y


# -- a VAE (the "Variational AutoEncoder" guide) ---------------------------------------------

class Sampling(Layer):
    """z = mean + exp(log_var / 2) * eps, eps ~ N(0, 1) (the reparameterisation trick)."""

    def __init__(self, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.rng = np.random.default_rng(seed)

    def call(self, inputs, training=None):
        z_mean, z_log_var = inputs
        eps = fl.tensor(self.rng.standard_normal(z_mean.shape).astype("float32"))
        return z_mean + F.exp(z_log_var * 0.5) * eps

    def compute_output_shape(self, input_shape):
        return input_shape[0]


class Encoder(Layer):
    def __init__(self, latent=2, **kwargs):
        super().__init__(**kwargs)
        self.hidden = Dense(16, activation="relu")
        self.mean = Dense(latent)
        self.log_var = Dense(latent)
        self.sampling = Sampling()

    def call(self, x, training=None):
        h = self.hidden(x)
        z_mean, z_log_var = self.mean(h), self.log_var(h)
        return z_mean, z_log_var, self.sampling([z_mean, z_log_var])


class VAE(Model):
    def __init__(self, dim=8, **kwargs):
        super().__init__(**kwargs)
        self.encoder = Encoder()
        self.decoder = Sequential([Dense(16, activation="relu"), Dense(dim, activation="sigmoid")])
        self.total_loss_tracker = metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = metrics.Mean(name="kl_loss")
        self.batch_losses = []

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def call(self, x, training=None):
        return self.decoder(self.encoder(x)[2])

    def train_step(self, data):
        with fl.GradientTape() as tape:
            z_mean, z_log_var, z = self.encoder(data, training=True)
            reconstruction = self.decoder(z, training=True)
            reconstruction_loss = (losses.binary_crossentropy(data, reconstruction) * 8).mean()
            kl = -0.5 * (1 + z_log_var - z_mean * z_mean - F.exp(z_log_var))
            kl_loss = kl.sum(axis=1).mean()
            total = reconstruction_loss + kl_loss
        grads = tape.gradient(total, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.batch_losses.append(float(total.item()))
        self.total_loss_tracker.update_state(total)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        return {"loss": self.total_loss_tracker.result(),
                "reconstruction_loss": self.reconstruction_loss_tracker.result(),
                "kl_loss": self.kl_loss_tracker.result()}


def _binary_patterns(n=48, seed=1):
    rng = np.random.default_rng(seed)
    prototypes = np.array([[1, 1, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1]], "float32")
    return prototypes[rng.integers(0, 2, n)]


def test_vae_custom_train_step_trains_and_logs_its_trackers():
    fl.manual_seed(0)
    x = _binary_patterns()
    vae = VAE()
    vae.compile(optimizer=Adam(0.02))          # no loss: the train_step computes it
    history = vae.fit(x, epochs=6, batch_size=16, verbose=0)
    h = history.history
    assert set(h) == {"loss", "reconstruction_loss", "kl_loss"}
    assert len(h["loss"]) == 6
    assert h["reconstruction_loss"][-1] < 0.7 * h["reconstruction_loss"][0]
    assert h["loss"][-1] < h["loss"][0]
    assert vae.metrics_names == ["total_loss", "reconstruction_loss", "kl_loss"]
    # The trackers are reset at every epoch start: an epoch's value is the mean of its own
    # three batches, not of everything since the start.
    per_epoch = np.array(vae.batch_losses).reshape(6, 3).mean(axis=1)
    np.testing.assert_allclose(h["loss"], per_epoch, rtol=1e-6)


def test_tracker_values_seen_by_batch_callbacks_restart_each_epoch():
    fl.manual_seed(0)
    x = _binary_patterns(32)
    vae = VAE()
    vae.compile(optimizer=Adam(0.01))
    seen = []
    cb = LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(logs["loss"]))
    vae.fit(x, epochs=2, batch_size=16, verbose=0, callbacks=[cb])
    raw = vae.batch_losses
    assert seen[0] == pytest.approx(raw[0]) and seen[2] == pytest.approx(raw[2])  # resets
    assert seen[3] == pytest.approx((raw[2] + raw[3]) / 2)


# -- a GAN (the "customizing what happens in fit" guide) --------------------------------------

class GAN(Model):
    def __init__(self, discriminator, generator, latent_dim=2, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = latent_dim
        self.rng = np.random.default_rng(seed)
        self.d_loss_tracker = metrics.Mean(name="d_loss")
        self.g_loss_tracker = metrics.Mean(name="g_loss")

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn

    def _noise(self, n):
        return fl.tensor(self.rng.standard_normal((n, self.latent_dim)).astype("float32"))

    def train_step(self, real):
        n = real.shape[0]
        fake = self.generator(self._noise(n))
        both = F.concatenate([fake, real], axis=0)
        labels = np.concatenate([np.ones((n, 1)), np.zeros((n, 1))]).astype("float32")
        with fl.GradientTape() as tape:
            d_loss = self.loss_fn(labels, self.discriminator(both))
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))
        misleading = np.zeros((n, 1), dtype="float32")     # "all real"
        with fl.GradientTape() as tape:
            g_loss = self.loss_fn(misleading, self.discriminator(self.generator(self._noise(n))))
        grads = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {"d_loss": self.d_loss_tracker.result(), "g_loss": self.g_loss_tracker.result()}


def _gan(d_lr, g_lr):
    fl.manual_seed(0)
    disc = Sequential([Dense(8, activation="relu", input_dim=2), Dense(1, activation="sigmoid")])
    gen = Sequential([Dense(8, activation="relu", input_dim=2), Dense(2)])
    gan = GAN(disc, gen)
    gan.compile(SGD(d_lr), SGD(g_lr), losses.BinaryCrossentropy())
    real = (np.random.default_rng(2).standard_normal((64, 2)) * 0.3 + 3.0).astype("float32")
    return gan, real


def test_gan_discriminator_step_learns_when_the_generator_is_frozen():
    gan, real = _gan(d_lr=0.1, g_lr=0.0)
    g_before = [w.copy() for w in gan.generator.get_weights()]
    h = gan.fit(real, epochs=5, batch_size=16, verbose=0).history
    assert set(h) == {"d_loss", "g_loss"}
    assert h["d_loss"][-1] < 0.8 * h["d_loss"][0]
    assert h["g_loss"][-1] > h["g_loss"][0]    # a better discriminator is harder to fool
    for a, b in zip(g_before, gan.generator.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert all(w.grad is None for w in gan.weights)   # tapes never fill .grad


def test_gan_generator_step_learns_to_fool_a_fixed_discriminator():
    gan, real = _gan(d_lr=0.0, g_lr=0.05)
    d_before = [w.copy() for w in gan.discriminator.get_weights()]
    h = gan.fit(real, epochs=5, batch_size=16, verbose=0).history
    assert h["g_loss"][-1] < h["g_loss"][0]
    for a, b in zip(d_before, gan.discriminator.get_weights()):
        np.testing.assert_array_equal(a, b)


# -- the Keras 3 hooks: compute_loss, test_step, predict_step, metrics ----------------------

class StepNet(Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = Dense(8, activation="tanh")
        self.out = Dense(1, activation="sigmoid")

    def call(self, x, training=None):
        return self.out(self.hidden(x))


class StepNetWithOwnLoss(StepNet):
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        self.calls = getattr(self, "calls", 0) + 1
        return super().compute_loss(x, y, y_pred, sample_weight, training)


def test_overridden_compute_loss_runs_the_generic_step_with_the_same_result():
    x, y = _blobs()
    models = []
    for cls in (StepNet, StepNetWithOwnLoss):
        fl.manual_seed(3)
        m = cls()
        m.compile(optimizer=SGD(0.1), loss="binary_crossentropy", metrics=["accuracy"])
        h = m.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0).history
        models.append((m, h))
    (fast, h_fast), (generic, h_generic) = models
    assert generic.calls == 8                     # 2 epochs x 4 batches through compute_loss
    for a, b in zip(fast.get_weights(), generic.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(h_fast[key], h_generic[key], rtol=1e-5)
    assert [m.name for m in generic.metrics] == ["loss", "accuracy"]


def test_default_train_step_called_directly_and_model_metrics():
    x, y = _blobs(16)
    fl.manual_seed(0)
    m = StepNet()
    m.compile(optimizer=SGD(0.1), loss="binary_crossentropy",
              metrics=["acc", metrics.AUC(name="auc"), metrics.Precision()])
    logs = m.train_step((fl.tensor(x), fl.tensor(y)))
    assert list(logs) == ["loss", "acc", "auc", "precision"]
    assert m.metrics_names == ["loss", "acc", "auc", "precision"]
    assert logs["loss"].result() > 0 if isinstance(logs["loss"], metrics.Metric) else True
    m.reset_metrics()
    assert all(mt.result() == 0.0 for mt in m.metrics)


def test_history_logs_acc_under_acc_and_stateful_metrics_over_the_epoch():
    sk = pytest.importorskip("sklearn.metrics")
    x, y = _blobs(48)
    fl.manual_seed(0)
    m = Sequential([Dense(4, activation="tanh", input_dim=4), Dense(1, activation="sigmoid")])
    m.compile(optimizer=SGD(0.0), loss="binary_crossentropy",
              metrics=["acc", "accuracy", metrics.AUC(num_thresholds=2000), "precision"])
    h = m.fit(x, y, epochs=1, batch_size=16, verbose=0).history
    assert set(h) == {"loss", "acc", "accuracy", "auc", "precision"}
    p = m.predict(x)
    # learning rate 0: the epoch's AUC over its three batches is the AUC of the whole set
    assert h["auc"][0] == pytest.approx(sk.roc_auc_score(y, p), abs=2e-3)
    assert h["precision"][0] == pytest.approx(sk.precision_score(y, p > 0.5))
    assert h["acc"] == h["accuracy"]


class StepNetWithSteps(StepNet):
    def test_step(self, data):
        x, y = data
        err = float(np.abs(self(x).numpy() - y.numpy()).mean())
        return {"abs_err": err}

    def predict_step(self, data):
        out = self(data)
        return {"prob": out, "label": out.numpy() > 0.5}


def test_overridden_test_step_and_predict_step_are_called():
    x, y = _blobs(40)
    fl.manual_seed(0)
    m = StepNetWithSteps()
    m.compile(optimizer=SGD(0.1), loss="binary_crossentropy")
    h = m.fit(x, y, epochs=2, batch_size=16, validation_data=(x, y), verbose=0).history
    assert set(h) == {"loss", "val_abs_err"}
    assert m.evaluate(x, y, batch_size=40, verbose=0) == pytest.approx(
        float(np.abs(m.predict(x)["prob"] - y).mean()), rel=1e-5)
    out = m.predict(x, batch_size=16)
    assert set(out) == {"prob", "label"} and out["prob"].shape == (40, 1)
    np.testing.assert_array_equal(out["label"], out["prob"] > 0.5)


class BadStep(StepNet):
    def __init__(self, result, **kwargs):
        super().__init__(**kwargs)
        self.result = result

    def train_step(self, data):
        return self.result


@pytest.mark.parametrize("result, contains", [
    (None, ["BadStep.train_step", "dict of logs", "NoneType", "forget to `return`"]),
    (0.5, ["BadStep.train_step", "dict of logs", "float", "0.5"]),
    ({"loss": "high"}, ["BadStep.train_step", "'loss'", "str"]),
])
def test_train_step_returning_something_else_than_a_dict_explains(result, contains):
    x, y = _blobs(8)
    m = BadStep(result)
    m.compile(optimizer="sgd")
    assert_error(TypeError, m.fit, x, y, verbose=0, contains=contains)


def test_custom_train_step_with_backward_zero_grad_and_optimizer_apply():
    # The PyTorch-flavoured step of Keras 3's torch guide: zero_grad, backward, .grad.
    class TorchStyle(StepNet):
        def train_step(self, data):
            x, y = data
            self.zero_grad()
            loss = self.compute_loss(y=y, y_pred=self(x, training=True))
            loss.backward()
            weights = self.trainable_weights
            self.optimizer.apply([w.grad for w in weights], weights)
            return {"loss": loss}

    x, y = _blobs()
    fl.manual_seed(0)
    m = TorchStyle()
    m.compile(optimizer=SGD(0.5), loss="binary_crossentropy")
    h = m.fit(x, y, epochs=8, batch_size=16, verbose=0).history
    assert h["loss"][-1] < 0.8 * h["loss"][0]
    m.zero_grad(set_to_none=False)
    assert all(np.all(w.grad == 0) for w in m.weights)
    m.zero_grad()
    assert all(w.grad is None for w in m.weights)


def test_fit_without_y_when_train_step_needs_none_and_train_on_batch_uses_it():
    x = _binary_patterns(16)
    fl.manual_seed(0)
    vae = VAE()
    vae.compile(optimizer=Adam(0.01))
    logs = vae.train_on_batch(x, return_dict=True)
    assert set(logs) == {"loss", "reconstruction_loss", "kl_loss"}


def test_compile_without_loss_uses_add_loss():
    if not hasattr(Layer, "add_loss"):
        pytest.skip("Layer.add_loss is not there yet")

    class Penalised(Layer):
        def call(self, x, training=None):
            self.add_loss((x * x).mean())
            return x

        def compute_output_shape(self, input_shape):
            return input_shape

    x, _ = _blobs(32)
    fl.manual_seed(0)
    m = Sequential([Dense(4, input_dim=4), Penalised()])
    m.compile(optimizer=SGD(0.1))                       # the only loss is the added one
    h = m.fit(x, epochs=5, batch_size=8, verbose=0).history
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    assert len(m.losses) == 1                           # the last forward's, not accumulated


def test_non_finite_loss_in_a_custom_step_warns_once():
    class NaNStep(StepNet):
        def train_step(self, data):
            return {"loss": float("nan")}

    x, y = _blobs(32)
    m = NaNStep()
    m.compile(optimizer="sgd")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m.fit(x, y, epochs=2, batch_size=8, verbose=0)
    msgs = [str(w.message) for w in caught if "loss is nan" in str(w.message)]
    assert len(msgs) == 1 and "epoch 0, step 0" in msgs[0]


def test_add_loss_joins_the_compiled_loss_and_compute_loss():
    class Penalised(Layer):
        def call(self, x, training=None):
            self.add_loss(0.5 * (x * x).mean())
            return x

        def compute_output_shape(self, input_shape):
            return input_shape

    x, y = _blobs(16)
    fl.manual_seed(0)
    m = Sequential([Dense(1, input_dim=4), Penalised()])
    m.compile(optimizer=SGD(0.0), loss="mse")
    out = m.predict(x)
    mse = float(((out - y) ** 2).mean())
    penalty = 0.5 * float((out ** 2).mean())
    assert m.evaluate(x, y, batch_size=16, verbose=0) == pytest.approx(mse + penalty, rel=1e-5)
    y_pred = m(x)
    total = m.compute_loss(x, y, y_pred)
    assert float(total.item()) == pytest.approx(mse + penalty, rel=1e-5)
    h = m.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    assert h["loss"][0] == pytest.approx(mse + penalty, rel=1e-5)


def test_validation_with_an_own_train_step_and_no_loss_asks_for_a_test_step():
    x = _binary_patterns(16)
    vae = VAE()
    vae.compile(optimizer=Adam(0.01))
    assert_error(ValueError, vae.fit, x, epochs=1, verbose=0, validation_data=(x, x),
                 contains=["validation", "test_step", "no loss"])


def test_pydataset_without_len_runs_with_steps_per_epoch():
    x, y = _blobs(32)

    class Stream(fl.utils.PyDataset):
        def __getitem__(self, i):
            return x[(i % 4) * 8:(i % 4 + 1) * 8], y[(i % 4) * 8:(i % 4 + 1) * 8]

    fl.manual_seed(0)
    m = StepNet()
    m.compile(optimizer=SGD(0.1), loss="binary_crossentropy")
    assert len(m.fit(Stream(), steps_per_epoch=4, epochs=2, verbose=0).history["loss"]) == 2
    assert_error(TypeError, m.fit, Stream(), verbose=0, contains=["__len__", "steps_per_epoch"])


def test_an_own_train_step_gets_dict_inputs_as_dicts():
    class TwoInputs(Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.a = Dense(1)
            self.b = Dense(1)
            self.seen = []

        def call(self, left, right, training=None):
            return self.a(left) + self.b(right)

        def train_step(self, data):
            x, y = data
            self.seen.append((sorted(x), sorted(y)))
            with fl.GradientTape() as tape:
                pred = self(x["left"], x["right"], training=True)
                loss = F.mean(F.square(pred - y["target"]))
            grads = tape.gradient(loss, self.trainable_weights)
            self.optimizer.apply(grads, self.trainable_weights)
            return {"loss": loss}

        def test_step(self, data):
            x, y = data
            return {"loss": F.mean(F.square(self(x["left"], x["right"]) - y["target"]))}

    rng = np.random.default_rng(0)
    left, right = rng.standard_normal((32, 3)), rng.standard_normal((32, 2))
    target = left[:, :1] - right[:, 1:]
    fl.manual_seed(0)
    m = TwoInputs()
    m.compile(optimizer=SGD(0.1))
    h = m.fit({"left": left, "right": right}, {"target": target}, batch_size=8, epochs=5,
              verbose=0, validation_split=0.25).history
    assert m.seen[0] == (["left", "right"], ["target"])
    assert h["loss"][-1] < 0.5 * h["loss"][0] and "val_loss" in h
    assert m.evaluate({"left": left, "right": right}, {"target": target}, verbose=0) < \
        h["loss"][0]
