"""The two Keras listings of the course seed ("Keras models"), verbatim but for the imports,
on small random data.

Only the import lines differ from the seed (``keras`` -> ``fundl``); every other statement
is the listing's own. The data are random, so the checks are about the API working end to
end and returning what Keras returns, not about accuracy.
"""
import numpy as np

import fundl as fl


def _one_hot(labels, classes=10):
    return np.eye(classes, dtype="float32")[labels]


def test_sequential_listing():
    rng = np.random.default_rng(0)
    fl.manual_seed(0)
    x_train = rng.random((64, 100), dtype=np.float32)
    y_train = _one_hot(rng.integers(0, 10, 64))
    x_test = rng.random((20, 100), dtype=np.float32)
    y_test = _one_hot(rng.integers(0, 10, 20))

    # -- the listing, imports adapted ---------------------------------------------------
    from fundl.models import Sequential
    model = Sequential()
    from fundl.layers import Dense
    model.add(Dense(units=64, activation='relu', input_dim=100))
    model.add(Dense(units=10, activation='softmax'))
    model.compile(loss='categorical_crossentropy',
                  optimizer='sgd', metrics=['accuracy'])
    model.fit(x_train, y_train, epochs=5, batch_size=32)
    loss_and_metrics = model.evaluate(x_test, y_test,
                                      batch_size=128)
    classes = model.predict(x_test)
    # -------------------------------------------------------------------------------------

    loss, accuracy = loss_and_metrics
    assert isinstance(loss, float) and np.isfinite(loss) and 0.0 <= accuracy <= 1.0
    assert isinstance(classes, np.ndarray) and classes.shape == (20, 10)
    np.testing.assert_allclose(classes.sum(axis=1), 1.0, rtol=1e-5)
    assert len(model.history.history["loss"]) == 5


def test_functional_listing():
    rng = np.random.default_rng(1)
    fl.manual_seed(1)
    data = rng.random((48, 784), dtype=np.float32)
    labels = _one_hot(rng.integers(0, 10, 48))

    # -- the listing, imports adapted ---------------------------------------------------
    from fundl.layers import Input, Dense
    from fundl.models import Model
    inputs = Input(shape=(784,))
    x = Dense(64, activation='relu')(inputs)
    x = Dense(64, activation='relu')(x)
    predictions = Dense(10, activation='softmax')(x)
    model = Model(inputs=inputs, outputs=predictions)
    model.compile(optimizer='rmsprop',
                  loss='categorical_crossentropy', metrics=['accuracy'])
    model.fit(data, labels)
    # -------------------------------------------------------------------------------------

    history = model.history.history
    assert set(history) == {"loss", "accuracy"} and len(history["loss"]) == 1
    assert model.count_params() == 784 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10
    assert model.predict(data).shape == (48, 10)


def test_listing_models_learn_on_learnable_data():
    """The Sequential listing's model, on labels that depend on the inputs, does learn."""
    rng = np.random.default_rng(2)
    fl.manual_seed(2)
    x = rng.random((512, 100), dtype=np.float32)
    y = _one_hot((x[:, :10].argmax(axis=1)))
    from fundl.layers import Dense
    from fundl.models import Sequential
    model = Sequential()
    model.add(Dense(units=64, activation='relu', input_dim=100))
    model.add(Dense(units=10, activation='softmax'))
    model.compile(loss='categorical_crossentropy', optimizer='adam', metrics=['accuracy'])
    history = model.fit(x, y, epochs=40, batch_size=32, verbose=0)
    assert history.history["accuracy"][-1] > 0.6 > history.history["accuracy"][0]
