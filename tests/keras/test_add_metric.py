"""tf.keras's add_metric: a value computed in call appears in fit's and evaluate's logs."""
import numpy as np
import pytest

import fundl as fl
from fundl.layers import Dense, Layer


class MeanProbe(Layer):
    def call(self, x):
        self.add_metric(x.mean(), name="mean_activation")
        return x


def _model():
    fl.manual_seed(0)
    model = fl.Sequential([fl.Input(shape=(3,)), Dense(4, activation="relu"), MeanProbe(),
                           Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_add_metric_is_logged_and_averaged_over_the_epoch():
    model = _model()
    x = np.random.default_rng(0).random((32, 3)).astype("float32")
    y = np.zeros((32, 1), "float32")
    history = model.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
    assert "mean_activation" in history.history
    # one batch per epoch: the logged value is the probe's activation mean of that batch,
    # before that epoch's update
    hidden = model.layers[0]
    logs = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    with fl.no_grad():
        expected = float(hidden(x).numpy().mean())
    np.testing.assert_allclose(logs["mean_activation"], expected, rtol=1e-5)


def test_add_metric_errors_name_the_layer():
    probe = MeanProbe(name="probe")
    with pytest.raises(ValueError, match="probe.*name="):
        probe.add_metric(1.0)
    with pytest.raises(ValueError, match="aggregation"):
        probe.add_metric(1.0, name="m", aggregation="sum")
    with pytest.raises(TypeError, match="scalar Tensor or a number"):
        probe.add_metric("high", name="m")
