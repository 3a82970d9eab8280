"""fundl.zoo autoencoders: dense, conv, stacked + pretrain_greedy, VAE, channel autoencoder."""
import numpy as np
import pytest

import fundl as fl
from fundl.layers import AWGN, Dense, GaussianDropout, GaussianNoise
from fundl.regularizers import KLSparsity
from fundl.zoo import (
    VariationalAutoencoder, channel_autoencoder, conv_autoencoder, dense_autoencoder,
    pretrain_greedy, stacked_autoencoder, variational_autoencoder,
)


def _data(shape, n=64, seed=0):
    return np.random.default_rng(seed).random((n,) + shape).astype("float32")


def _fit_losses(model, x, y, epochs=4, batch_size=16, lr=3e-3):
    model.compile(optimizer=fl.optimizers.Adam(lr), loss="mse")
    return model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0,
                     shuffle=False).history["loss"]


def test_dense_autoencoder_structure_trains_and_reloads(tmp_path):
    ae = dense_autoencoder(12, 3, hidden=(8, 5))
    enc, dec = ae.get_layer("encoder"), ae.get_layer("decoder")
    assert [l.name for l in enc.layers[1:]] == ["encoder_1", "encoder_2", "code"]
    assert [l.units for l in dec.layers[1:]] == [5, 8, 12]
    assert enc.outputs[0].shape == (None, 3) and ae.outputs[0].shape == (None, 12)
    x = _data((12,))
    losses = _fit_losses(ae, x, x)
    assert losses[-1] < losses[0]
    ae.save(tmp_path / "ae.fundl")
    loaded = fl.models.load_model(tmp_path / "ae.fundl")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), ae.predict(x, verbose=0))
    np.testing.assert_allclose(loaded.get_layer("encoder").predict(x, verbose=0),
                               enc.predict(x, verbose=0))


def test_sparse_autoencoder_penalty_counts_in_the_loss():
    x = _data((10,))
    ae = dense_autoencoder(10, 6, code_activation="sigmoid",
                           code_regularizer=KLSparsity(0.05, 3.0))
    plain = dense_autoencoder(10, 6, code_activation="sigmoid")
    plain.set_weights(ae.get_weights())
    for m in (ae, plain):
        m.compile(optimizer="sgd", loss="mse")
    # same weights, same reconstruction: the difference is the KL penalty on the code
    codes = ae.get_layer("encoder").predict(x, verbose=0)
    rho_hat = codes.mean(axis=0)
    kl = (0.05 * np.log(0.05 / rho_hat) + 0.95 * np.log(0.95 / (1 - rho_hat))).sum()
    diff = ae.evaluate(x, x, batch_size=64, verbose=0) - plain.evaluate(x, x, batch_size=64,
                                                                       verbose=0)
    # the loss a layer adds is beta * sum_j KL(rho || rho_hat_j), whatever the batch size
    np.testing.assert_allclose(diff, 3.0 * kl, rtol=1e-4)


def test_denoising_input_noise_acts_in_training_only():
    ae = dense_autoencoder(6, 2, input_noise=0.5)
    assert isinstance(ae.get_layer("corruption"), GaussianNoise)
    x = _data((6,), n=4)
    np.testing.assert_array_equal(ae.predict(x, verbose=0), ae.predict(x, verbose=0))
    a = ae(x, training=True).numpy()
    assert not np.allclose(a, ae.predict(x, verbose=0))
    gd = dense_autoencoder(6, 2, input_noise=GaussianDropout(0.3))
    assert any(isinstance(l, GaussianDropout) for l in gd.layers)


def test_conv_autoencoder_shapes():
    ae = conv_autoencoder((8, 8, 1), filters=(4, 6))
    assert ae.get_layer("encoder").outputs[0].shape == (None, 2, 2, 6)
    assert ae.outputs[0].shape == (None, 8, 8, 1)
    coded = conv_autoencoder((8, 8, 2), filters=(4,), code_dim=5)
    assert coded.get_layer("encoder").outputs[0].shape == (None, 5)
    assert coded.outputs[0].shape == (None, 8, 8, 2)


@pytest.mark.slow
def test_conv_autoencoder_trains():
    ae = conv_autoencoder((8, 8, 1), filters=(4, 6))
    x = _data((8, 8, 1), n=32)
    losses = _fit_losses(ae, x, x, epochs=5, batch_size=8, lr=1e-2)
    assert losses[-1] < losses[0]


def test_stacked_autoencoder_greedy_pretraining_uses_the_stack_weights():
    x = _data((12,), n=128)
    sae = stacked_autoencoder(12, (8, 4))
    enc = sae.get_layer("encoder")
    before = [w.copy() for w in sae.get_weights()]
    histories = pretrain_greedy(sae, x, epochs=[3, 3], batch_size=16,
                                optimizer=lambda: fl.optimizers.Adam(1e-2))
    assert len(histories) == 2
    for h in histories:
        assert h["loss"][-1] < h["loss"][0]
    after = sae.get_weights()
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))  # every layer trained
    # level 2 reconstructed the codes of level 1: its loss is that of the stack's own layers
    h1 = fl.models.Model(enc.inputs, enc.get_layer("encoder_1").output).predict(x, verbose=0)
    assert h1.shape == (128, 8)
    # fine-tuning as a classifier reuses the pre-trained encoder
    clf = fl.Sequential([enc, Dense(2, activation="softmax")])
    clf.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    clf.fit(x, (x[:, 0] > 0.5).astype("int64"), epochs=1, verbose=0)


def test_stacked_autoencoder_with_noise_and_bad_inputs():
    sae = stacked_autoencoder(6, (4,), input_noise=0.2)
    pretrain_greedy(sae, _data((6,)), epochs=1)
    with pytest.raises(ValueError, match=r"pretrain_greedy: expected x of shape \(samples, 6\)"):
        pretrain_greedy(sae, _data((5,)))
    with pytest.raises(ValueError, match="stacked_autoencoder"):
        pretrain_greedy(dense_autoencoder(6, 2), _data((6,)))
    with pytest.raises(ValueError, match="2 epoch counts for 1 levels"):
        pretrain_greedy(sae, _data((6,)), epochs=[1, 1])


def test_vae_trains_evaluates_and_samples():
    fl.manual_seed(0)
    x = (_data((16,), n=128) > 0.5).astype("float32")
    vae = variational_autoencoder(16, latent_dim=2, hidden=(12,))
    assert isinstance(vae, VariationalAutoencoder)
    vae.compile(optimizer=fl.optimizers.Adam(3e-3))
    h = vae.fit(x, epochs=4, batch_size=32, verbose=0).history
    assert set(h) == {"loss", "reconstruction_loss", "kl_loss"}
    assert h["loss"][-1] < h["loss"][0]
    np.testing.assert_allclose(h["loss"], np.add(h["reconstruction_loss"], h["kl_loss"]),
                               rtol=1e-5)
    ev = vae.evaluate(x, verbose=0, return_dict=True)
    assert ev["loss"] > 0 and ev["kl_loss"] >= 0
    s = vae.sample(5, seed=1)
    assert s.shape == (5, 16) and np.all((s > 0) & (s < 1))
    np.testing.assert_array_equal(s, vae.sample(5, seed=1))
    # the reconstruction of a deterministic call uses the posterior mean
    np.testing.assert_array_equal(vae.predict(x[:3], verbose=0), vae.predict(x[:3], verbose=0))


def test_vae_kl_term_is_the_closed_form():
    vae = variational_autoencoder(4, latent_dim=3, hidden=(5,))
    x = _data((4,), n=8)
    enc = vae.encoder
    mean, log_var, _ = enc.predict(x, verbose=0)
    expected = (-0.5 * (1 + log_var - mean ** 2 - np.exp(log_var))).sum(1).mean()
    vae.compile(optimizer="sgd")
    ev = vae.evaluate(x, batch_size=8, verbose=0, return_dict=True)
    np.testing.assert_allclose(ev["kl_loss"], expected, rtol=1e-5)


def test_channel_autoencoder_learns_a_code_with_unit_energy():
    fl.manual_seed(0)
    ae = channel_autoencoder(2, 2, ebn0_db=8.0)
    assert isinstance(ae.get_layer("channel"), AWGN)
    np.testing.assert_allclose(ae.get_layer("channel").stddev, AWGN.stddev_for(8.0, 2, 2))
    s = np.random.default_rng(0).integers(0, 4, 2048)
    ae.compile(optimizer=fl.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    h = ae.fit(np.eye(4, dtype="float32")[s], s, epochs=6, batch_size=64, verbose=0).history
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    codewords = ae.get_layer("transmitter").predict(np.eye(4, dtype="float32"), verbose=0)
    np.testing.assert_allclose((codewords ** 2).sum(1), 2.0, rtol=1e-4)


@pytest.mark.parametrize("call, match", [
    (lambda: dense_autoencoder(0, 2), "input_dim must be a positive int"),
    (lambda: dense_autoencoder(4, 2, hidden="big"), "hidden must be a tuple"),
    (lambda: dense_autoencoder(4, 2, input_noise=-1), "input_noise must be None"),
    (lambda: conv_autoencoder((10, 10, 1), filters=(4, 4)), "divisible by 2\\*\\*len"),
    (lambda: conv_autoencoder((28, 28)), "input_shape must be"),
    (lambda: variational_autoencoder(784, latent_dim=0), "latent_dim"),
    (lambda: channel_autoencoder(7, 20, 3.0), "k <= 16"),
])
def test_bad_arguments(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_vae_weights_save_and_load(tmp_path):
    vae = variational_autoencoder(6, latent_dim=2, hidden=(4,))
    vae.compile(optimizer="adam")
    x = _data((6,), n=8)
    vae.fit(x, epochs=1, verbose=0)
    vae.save_weights(tmp_path / "vae.weights.npz")
    other = variational_autoencoder(6, latent_dim=2, hidden=(4,))
    other.load_weights(tmp_path / "vae.weights.npz")
    np.testing.assert_array_equal(other.predict(x, verbose=0), vae.predict(x, verbose=0))
