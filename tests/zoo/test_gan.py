"""fundl.zoo GANs: the two-player train_step, MLP and DCGAN players, sample_quality."""
import math

import numpy as np
import pytest

import fundl as fl
from fundl.layers import BatchNormalization, Conv2DTranspose, LeakyReLU
from fundl.zoo import GAN, dcgan, dcgan_discriminator, dcgan_generator, mlp_gan, sample_quality


def _compiled(gan, lr=1e-3):
    gan.compile(d_optimizer=fl.optimizers.Adam(lr, beta_1=0.5),
                g_optimizer=fl.optimizers.Adam(lr, beta_1=0.5))
    return gan


def test_mlp_gan_players_and_logs():
    gan = mlp_gan(4, 10, hidden=(8, 6), dropout=0.0)
    assert isinstance(gan, GAN)
    assert gan.generator.outputs[0].shape == (None, 10)
    assert gan.discriminator.outputs[0].shape == (None, 1)
    x = np.tanh(np.random.default_rng(0).normal(size=(64, 10))).astype("float32")
    h = _compiled(gan).fit(x, epochs=2, batch_size=16, verbose=0).history
    assert set(h) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert all(np.isfinite(v).all() for v in h.values())


def test_each_player_updates_only_its_own_weights():
    gan = _compiled(mlp_gan(3, 6, hidden=(5,), dropout=0.0))
    x = np.random.default_rng(1).uniform(-1, 1, (16, 6)).astype("float32")
    g0 = [w.numpy().copy() for w in gan.generator.trainable_weights]
    d0 = [w.numpy().copy() for w in gan.discriminator.trainable_weights]
    gan.train_on_batch(x)
    assert all(not np.array_equal(a, w.numpy())
               for a, w in zip(g0, gan.generator.trainable_weights))
    assert all(not np.array_equal(a, w.numpy())
               for a, w in zip(d0, gan.discriminator.trainable_weights))
    # the discriminator's step alone: with a zero generator learning rate G stays put
    gan.compile(d_optimizer=fl.optimizers.SGD(0.1), g_optimizer=fl.optimizers.SGD(0.0))
    g1 = [w.numpy().copy() for w in gan.generator.trainable_weights]
    gan.train_on_batch(x)
    for a, w in zip(g1, gan.generator.trainable_weights):
        np.testing.assert_array_equal(a, w.numpy())


def test_the_discriminator_learns_to_separate_on_its_losses():
    # real data far from what an untrained generator makes: D must win quickly and d_loss fall
    fl.manual_seed(0)
    gan = _compiled(mlp_gan(2, 4, hidden=(8,), dropout=0.0), lr=5e-3)
    gan.compile(d_optimizer=fl.optimizers.Adam(1e-2), g_optimizer=fl.optimizers.SGD(0.0))
    x = np.full((128, 4), 0.9, "float32")
    h = gan.fit(x, epochs=20, batch_size=32, verbose=0).history
    assert h["d_loss"][-1] < 0.5 * h["d_loss"][0]
    assert h["d_real"][-1] > 0.8 and h["d_fake"][-1] < 0.3   # epoch means


def test_the_generator_moves_towards_the_data():
    # 1-D data at 0.8; the non-saturating generator loss pulls G's mean there
    fl.manual_seed(0)
    gan = _compiled(mlp_gan(2, 1, hidden=(16,), dropout=0.0), lr=2e-3)
    x = np.full((256, 1), 0.8, "float32") + np.random.default_rng(0).normal(
        0, 0.05, (256, 1)).astype("float32")
    start = abs(gan.sample(512, seed=0).mean() - 0.8)
    gan.fit(x, epochs=10, batch_size=32, verbose=0)
    assert abs(gan.sample(512, seed=0).mean() - 0.8) < 0.5 * start


def test_dcgan_players_follow_radford():
    g = dcgan_generator(16, (28, 28, 1), filters=8)
    d = dcgan_discriminator((28, 28, 1), filters=8)
    assert g.outputs[0].shape == (None, 28, 28, 1) and d.outputs[0].shape == (None, 1)
    assert sum(isinstance(l, Conv2DTranspose) for l in g.layers) == 2
    assert sum(isinstance(l, BatchNormalization) for l in g.layers) == 2
    assert [l.strides for l in d.layers if type(l).__name__ == "Conv2D"] == [(2, 2), (2, 2)]
    assert all(l.negative_slope == 0.2 if hasattr(l, "negative_slope") else True
               for l in d.layers if isinstance(l, LeakyReLU))
    w = g.get_layer("deconv_1").kernel.numpy()
    assert abs(w.std() - 0.02) < 0.003      # N(0, 0.02) initialisation
    with pytest.raises(ValueError, match="divisible by 4"):
        dcgan_generator(16, (30, 30, 1))


@pytest.mark.slow
def test_dcgan_trains_a_few_steps():
    gan = _compiled(dcgan(8, (8, 8, 1), filters=4), lr=2e-4)
    x = np.random.default_rng(0).uniform(-1, 1, (32, 8, 8, 1)).astype("float32")
    h = gan.fit(x, epochs=2, batch_size=8, verbose=0).history
    assert all(np.isfinite(v).all() for v in h.values())
    assert gan.sample(3).shape == (3, 8, 8, 1)


def test_sample_quality_on_known_distributions():
    eye = np.eye(10)
    perfect = sample_quality(np.repeat(eye, 20, axis=0))
    assert perfect["confident_share"] == 1.0
    assert math.isclose(perfect["class_spread"], 10.0)
    assert math.isclose(perfect["inception_score"], 10.0, rel_tol=1e-6)
    collapsed = sample_quality(np.tile(eye[3], (50, 1)))
    assert math.isclose(collapsed["class_spread"], 1.0)
    assert math.isclose(collapsed["inception_score"], 1.0, rel_tol=1e-6)
    unsure = sample_quality(np.full((30, 10), 0.1))
    assert unsure["confident_share"] == 0.0
    assert math.isclose(unsure["inception_score"], 1.0, rel_tol=1e-6)
    half = sample_quality(np.array([[0.95, 0.05], [0.6, 0.4]]))
    assert half["confident_share"] == 0.5 and half["class_spread"] == 1.0


def test_sample_quality_and_gan_bad_input():
    with pytest.raises(ValueError, match="sample_quality: expected"):
        sample_quality(np.ones(10))
    with pytest.raises(ValueError, match="not logits"):
        sample_quality(np.array([[2.0, -1.0]]))
    with pytest.raises(ValueError, match="latent_dim"):
        mlp_gan(0)
    with pytest.raises(ValueError, match="label_smoothing"):
        mlp_gan(2, 4, label_smoothing=0.7)


def test_gan_weights_save_and_load(tmp_path):
    gan = _compiled(mlp_gan(3, 6, hidden=(5,), dropout=0.0))
    gan.fit(np.zeros((8, 6), "float32"), epochs=1, verbose=0)
    gan.save_weights(tmp_path / "gan.weights.npz")
    other = mlp_gan(3, 6, hidden=(5,), dropout=0.0)
    other.load_weights(tmp_path / "gan.weights.npz")
    z = np.ones((2, 3), "float32")
    np.testing.assert_array_equal(other.generator.predict(z, verbose=0),
                                  gan.generator.predict(z, verbose=0))
