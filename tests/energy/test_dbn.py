"""fundl.energy.DBN: greedy pre-training and the Sequential it unrolls into."""
import numpy
import pytest

from fundl.cluster import NotFittedError
from fundl.energy import DBN, RBM


def _data(n=120, d=16, seed=0):
    rng = numpy.random.default_rng(seed)
    protos = (rng.random((3, d)) > 0.5).astype(numpy.float32)
    y = rng.integers(0, 3, n)
    X = numpy.abs(protos[y] - (rng.random((n, d)) < 0.05)).astype(numpy.float32)
    return X, y


def test_greedy_layers_and_transform():
    X, _ = _data()
    dbn = DBN((12, 6), n_iter=3, random_state=0).fit(X)
    assert [r.n_components for r in dbn.rbms_] == [12, 6]
    assert dbn.rbms_[1].components_.shape == (6, 12)
    # each layer was trained on the previous layer's hidden probabilities
    manual = dbn.rbms_[1].transform(dbn.rbms_[0].transform(X))
    numpy.testing.assert_allclose(dbn.transform(X), manual)
    again = DBN((12, 6), n_iter=3, random_state=0).fit(X)
    numpy.testing.assert_array_equal(again.rbms_[1].components_, dbn.rbms_[1].components_)


def test_first_layer_equals_an_rbm_with_its_seed():
    X, _ = _data()
    dbn = DBN((8,), n_iter=2, learning_rate=0.05, random_state=3).fit(X)
    seed = int(numpy.random.default_rng(3).integers(2**31))
    rbm = RBM(8, n_iter=2, learning_rate=0.05, random_state=seed).fit(X)
    numpy.testing.assert_array_equal(dbn.rbms_[0].components_, rbm.components_)


def test_to_model_starts_from_the_rbms_and_fine_tunes():
    X, y = _data()
    dbn = DBN((12, 6), n_iter=3, random_state=0).fit(X)
    model = dbn.to_model(3)
    dense = model.layers
    assert len(dense) == 3
    numpy.testing.assert_allclose(dense[0].get_weights()[0], dbn.rbms_[0].components_.T)
    numpy.testing.assert_allclose(dense[1].get_weights()[1], dbn.rbms_[1].intercept_hidden_)
    probs = model.predict(X)
    assert probs.shape == (len(X), 3)
    numpy.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(X, y, epochs=5, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_errors():
    with pytest.raises(NotFittedError, match="DBN.*fit"):
        DBN((4,)).transform(numpy.zeros((2, 3)))
    with pytest.raises(NotFittedError, match="DBN"):
        DBN((4,)).to_model(2)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        DBN((4, 0)).fit(numpy.zeros((2, 3)))
    dbn = DBN((4,), n_iter=1).fit(numpy.zeros((5, 3)))
    with pytest.raises(ValueError, match="3 features"):
        dbn.transform(numpy.zeros((2, 5)))
