"""fundl.layers.RBF: the layer harness, the distance formula, k-means centres, training."""
import numpy
import pytest

from fundl.cluster import KMeans
from fundl.datasets.synthetic import moons
from fundl.layers import RBF, Dense
from fundl.models import Sequential
from fundl.optimizers import Adam
from fundl.tensor import Tensor
from fundl.testing.layer_case import check_layer


def test_layer_harness_fixed_widths():
    check_layer(RBF, {"units": 3, "gamma": 0.7}, input_shape=(4, 2), expected_output_shape=(4, 3),
                expected_weights={"centers": (3, 2), "log_gamma": (3,)},
                expected_non_trainable=("log_gamma",))


def test_layer_harness_trainable_widths():
    check_layer(RBF, {"units": 3, "gamma": [0.5, 1.0, 2.0], "trainable_gamma": True},
                input_shape=(4, 2), expected_output_shape=(4, 3),
                expected_weights={"centers": (3, 2), "log_gamma": (3,)})


def test_forward_matches_direct_formula_and_stays_float32():
    rng = numpy.random.default_rng(0)
    x = rng.normal(size=(5, 3)).astype("float32") * 10 + 50  # a large offset: no negative d²
    centers = x[:4] + 0.01
    layer = RBF(4, gamma=[0.1, 0.2, 0.3, 0.4]).set_centers(centers)
    y = layer(Tensor(x)).data
    d2 = ((x[:, None, :].astype(float) - centers[None].astype(float)) ** 2).sum(-1)
    expected = numpy.exp(-numpy.array([0.1, 0.2, 0.3, 0.4]) * d2)
    assert y.dtype == numpy.float32
    numpy.testing.assert_allclose(y, expected, atol=2e-3)
    assert numpy.all((y >= 0) & (y <= 1))


def test_from_kmeans_and_end_to_end_training_on_moons():
    x, y = moons(300, noise=0.1, seed=0)
    km = KMeans(12, n_init=2, random_state=0).fit(x)
    rbf = RBF.from_kmeans(km, trainable_gamma=True)
    numpy.testing.assert_allclose(rbf.centers.numpy(), km.cluster_centers_, rtol=1e-6)
    assert rbf.get_config()["gamma"] == pytest.approx(RBF.spacing_gamma(km.cluster_centers_))
    model = Sequential([rbf, Dense(2, activation="softmax")])
    model.compile(optimizer=Adam(learning_rate=0.05), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert (model.predict(x).argmax(axis=1) == y).mean() > 0.9


def test_errors():
    with pytest.raises(ValueError, match="units"):
        RBF(0)
    with pytest.raises(ValueError, match="gamma"):
        RBF(3, gamma=-1.0)
    with pytest.raises(ValueError, match="one per unit"):
        RBF(3, gamma=[1.0, 2.0])
    layer = RBF(2)
    layer(Tensor(numpy.zeros((1, 3), "float32")))
    with pytest.raises(ValueError, match="size 3"):
        layer(Tensor(numpy.zeros((1, 4), "float32")))
    with pytest.raises(ValueError, match=r"\(2, features\)"):
        layer.set_centers(numpy.zeros((3, 3)))
    with pytest.raises(ValueError, match="not fitted"):
        RBF.from_kmeans(KMeans(2))
