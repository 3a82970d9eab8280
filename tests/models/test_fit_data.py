"""fit / evaluate / predict from generators, iterables and PyDatasets; the callback hooks of
validation and predict; the NaN warning."""
import warnings

import numpy as np
import pytest

import fundl as fl
from fundl.callbacks import Callback
from fundl.layers import Dense
from fundl.models import Sequential
from fundl.models.data_adapter import DatasetBatches, is_dataset, unpack_x_y_sample_weight
from fundl.optimizers import SGD
from fundl.testing import assert_error


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype("float32")
    return x, (x[:, 0] > 0).astype("int64")


def _model(lr=0.1, seed=0):
    fl.manual_seed(seed)
    m = Sequential([Dense(8, activation="tanh", input_dim=4), Dense(2, activation="softmax")])
    m.compile(optimizer=SGD(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def _endless(x, y, size=8):
    while True:
        for i in range(0, len(x), size):
            yield x[i:i + size], y[i:i + size]


class Batches(fl.utils.PyDataset if hasattr(fl, "utils") else object):
    def __init__(self, x, y, size=8):
        self.x, self.y, self.size = x, y, size
        self.epochs_ended = 0

    def __len__(self):
        return -(-len(self.x) // self.size)

    def __getitem__(self, i):
        s = slice(i * self.size, (i + 1) * self.size)
        return self.x[s], self.y[s]

    def on_epoch_end(self):
        self.epochs_ended += 1


def test_fit_from_a_generator_equals_fit_from_the_arrays():
    x, y = _data()
    a, b = _model(), _model()
    h_arrays = a.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history
    h_gen = b.fit(_endless(x, y), steps_per_epoch=4, epochs=3, verbose=0).history
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(h_arrays[key], h_gen[key], rtol=1e-6)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6)


def test_fit_from_a_pydataset_calls_on_epoch_end_and_uses_its_length():
    x, y = _data()
    ds = Batches(x, y)
    m = _model()
    seen = []

    class Count(Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(batch)

    h = m.fit(ds, epochs=2, verbose=0, callbacks=[Count()])
    assert ds.epochs_ended == 2
    assert seen == [0, 1, 2, 3] * 2
    assert len(h.history["loss"]) == 2


def test_fit_from_a_reiterable_object_and_a_list_of_batches_iterated_each_epoch():
    x, y = _data()

    class Loader:
        def __iter__(self):
            return ((x[i:i + 16], y[i:i + 16]) for i in range(0, 32, 16))

    m = _model()
    assert len(m.fit(Loader(), epochs=3, verbose=0).history["loss"]) == 3


def test_a_finite_generator_runs_out_and_fit_stops_with_a_warning():
    x, y = _data()
    gen = ((x[i:i + 8], y[i:i + 8]) for i in range(0, 32, 8))   # 4 batches in all
    m = _model()
    with pytest.warns(UserWarning, match="ran out of data"):
        h = m.fit(gen, steps_per_epoch=3, epochs=4, verbose=0)
    assert len(h.history["loss"]) == 2            # 3 batches, then 1: that epoch counts, stop


def test_validation_data_as_a_generator_with_validation_steps():
    x, y = _data()
    m = _model()
    h = m.fit(x, y, epochs=2, verbose=0, validation_data=_endless(x, y),
              validation_steps=4).history
    m2 = _model()
    h2 = m2.fit(x, y, epochs=2, verbose=0, validation_data=(x, y), batch_size=32).history
    np.testing.assert_allclose(h["val_loss"], h2["val_loss"], rtol=1e-5)


def test_evaluate_and_predict_from_generators():
    x, y = _data()
    m = _model()
    m.fit(x, y, epochs=1, verbose=0)
    loss, acc = m.evaluate(x, y, batch_size=8, verbose=0)
    loss_g, acc_g = m.evaluate(_endless(x, y), steps=4, verbose=0)
    assert loss_g == pytest.approx(loss, rel=1e-6) and acc_g == pytest.approx(acc)
    np.testing.assert_allclose(m.predict(_endless(x, y), steps=4), m.predict(x), rtol=1e-6)
    only_x = (x[i:i + 8] for i in range(0, 32, 8))           # x alone, run to the end
    np.testing.assert_allclose(m.predict(only_x), m.predict(x), rtol=1e-6)


def test_generator_with_sample_weights_and_class_weight():
    x, y = _data()
    w = np.where(y == 1, 2.0, 1.0).astype("float32")
    a, b, c = _model(), _model(), _model()
    h = a.fit(x, y, batch_size=8, shuffle=False, epochs=1, verbose=0, sample_weight=w)
    gen = ((x[i:i + 8], y[i:i + 8], w[i:i + 8]) for i in range(0, 32, 8))
    hg = b.fit(gen, epochs=1, verbose=0)
    hc = c.fit(_endless(x, y), steps_per_epoch=4, epochs=1, verbose=0,
               class_weight={0: 1.0, 1: 2.0})
    assert hg.history["loss"] == pytest.approx(h.history["loss"], rel=1e-6)
    assert hc.history["loss"] == pytest.approx(h.history["loss"], rel=1e-6)


def test_generator_misuse_is_explained():
    x, y = _data()
    m = _model()
    assert_error(ValueError, m.fit, _endless(x, y), y, verbose=0,
                 contains=["generator", "y cannot be given"])
    assert_error(ValueError, m.fit, _endless(x, y), batch_size=8, steps_per_epoch=2,
                 verbose=0, contains=["batch_size"])
    assert_error(ValueError, m.fit, _endless(x, y), validation_split=0.2, steps_per_epoch=2,
                 verbose=0, contains=["validation_split", "validation_data"])
    only_x = (x[i:i + 8] for i in range(0, 32, 8))
    assert_error(ValueError, m.fit, only_x, verbose=0, contains=["no targets", "(x, y)"])
    assert_error(TypeError, m.train_on_batch, _endless(x, y), y,
                 contains=["generator", "fit/evaluate/predict"])
    assert_error(TypeError, m.fit, x, _endless(x, y), verbose=0, contains=["y is a generator"])


def test_unpack_and_is_dataset():
    a = np.ones(2)
    assert unpack_x_y_sample_weight(a)[0] is a
    assert unpack_x_y_sample_weight((a,)) == (a, None, None)
    assert unpack_x_y_sample_weight([a, a])[1] is a
    assert_error(ValueError, unpack_x_y_sample_weight, (a, a, a, a), contains=["4 elements"])
    assert is_dataset(iter([])) and is_dataset(Batches(a, a)) and is_dataset(range(3))
    assert not any(is_dataset(v) for v in (a, [a], (a, a), {"a": a}, "text", fl.tensor(a)))
    assert_error(ValueError, DatasetBatches, Batches(a[:0], a[:0]), None, "fit: x",
                 contains=["empty"])


# -- callback hooks ---------------------------------------------------------------------------

class Recorder(Callback):
    """Records every hook call, in order, with its arguments."""

    def __init__(self):
        super().__init__()
        self.events = []


def _recording_hook(name):
    def hook(self, *args):
        self.events.append((name,) + args)
    return hook


for _hook in ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
              "on_train_batch_begin", "on_train_batch_end", "on_test_begin", "on_test_end",
              "on_test_batch_begin", "on_test_batch_end", "on_predict_begin", "on_predict_end",
              "on_predict_batch_begin", "on_predict_batch_end"):
    setattr(Recorder, _hook, _recording_hook(_hook))


def _names(events):
    return [e[0] for e in events]


def test_validation_inside_fit_fires_the_test_hooks_and_train_end_gets_final_logs():
    x, y = _data()
    m = _model()
    rec = Recorder()
    m.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_data=(x, y),
          validation_batch_size=16, callbacks=[rec])
    names = _names(rec.events)
    epoch = ["on_epoch_begin", "on_train_batch_begin", "on_train_batch_end",
             "on_train_batch_begin", "on_train_batch_end", "on_test_begin",
             "on_test_batch_begin", "on_test_batch_end", "on_test_batch_begin",
             "on_test_batch_end", "on_test_end", "on_epoch_end"]
    assert names == ["on_train_begin"] + epoch * 2 + ["on_train_end"]
    final = rec.events[-1][1]
    assert set(final) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert final["val_loss"] == pytest.approx(m.history.history["val_loss"][-1])


def test_predict_fires_the_predict_hooks_with_outputs():
    x, _ = _data(20)
    m = _model()
    rec = Recorder()
    out = m.predict(x, batch_size=8, callbacks=[rec])
    names = _names(rec.events)
    assert names == ["on_predict_begin"] + ["on_predict_batch_begin",
                                            "on_predict_batch_end"] * 3 + ["on_predict_end"]
    batch_logs = [e[2] for e in rec.events if e[0] == "on_predict_batch_end"]
    np.testing.assert_allclose(np.concatenate([b["outputs"][0] for b in batch_logs]), out)


def test_evaluate_fires_test_hooks_with_the_final_logs():
    x, y = _data()
    m = _model()
    rec = Recorder()
    logs = m.evaluate(x, y, batch_size=16, verbose=0, callbacks=[rec], return_dict=True)
    assert _names(rec.events)[0] == "on_test_begin"
    assert rec.events[-1] == ("on_test_end", logs)


# -- NaN ---------------------------------------------------------------------------------------

def _fit_warnings(m, x, y, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m.fit(x, y, verbose=0, **kwargs)
    return [str(w.message) for w in caught if "the loss is" in str(w.message)]


def test_nan_in_the_inputs_warns_once_naming_the_batch_and_the_inputs():
    x, y = _data()
    x[13, 2] = np.nan
    msgs = _fit_warnings(_model(), x, y, batch_size=8, epochs=3, shuffle=False)
    assert len(msgs) == 1
    assert "epoch 0, step 1" in msgs[0] and "inputs of this batch" in msgs[0]


def test_a_diverging_loss_warns_that_the_weights_went_non_finite():
    x, _ = _data()
    fl.manual_seed(0)
    m = Sequential([Dense(1, input_dim=4)])
    m.compile(optimizer=SGD(50.0), loss="mse")       # far too large a step: it diverges
    msgs = _fit_warnings(m, x * 100, x[:, :1] * 100, batch_size=8, epochs=10, shuffle=False)
    assert len(msgs) == 1 and "learning rate" in msgs[0]
    assert "weights went non-finite" in msgs[0] or "training is diverging" in msgs[0]


def test_finite_training_gives_no_warning():
    x, y = _data()
    assert _fit_warnings(_model(), x, y, batch_size=8, epochs=2) == []
