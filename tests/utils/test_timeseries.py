"""timeseries_dataset_from_array: the examples of Keras's documentation, batching, errors."""
import numpy as np
import pytest

import fundl as fl
from fundl.utils import timeseries_dataset_from_array
from fundl.testing import assert_error


def test_keras_doc_example_strided_sampled_windows():
    ds = timeseries_dataset_from_array(np.arange(99), None, sequence_length=10,
                                       sampling_rate=2, sequence_stride=3, batch_size=None)
    windows = list(ds)
    np.testing.assert_array_equal(windows[0], np.arange(0, 20, 2))
    np.testing.assert_array_equal(windows[1], np.arange(3, 23, 2))
    np.testing.assert_array_equal(windows[-1], np.arange(78, 98, 2))
    assert len(windows) == 27


def test_keras_doc_example_targets_ten_steps_ahead():
    data = np.arange(100)
    ds = timeseries_dataset_from_array(data[:-10], data[10:], sequence_length=10,
                                       batch_size=16)
    x, y = ds[0]
    assert x.shape == (16, 10) and y.shape == (16,)
    np.testing.assert_array_equal(x[0], np.arange(10))
    assert y[0] == 10 and y[5] == 15
    assert sum(len(b[0]) for b in ds) == 81 and len(ds) == 6


def test_multivariate_shuffle_seed_and_indices():
    data = np.arange(200, dtype=np.float32).reshape(100, 2)
    a = timeseries_dataset_from_array(data, np.arange(100), 5, batch_size=8, shuffle=True,
                                      seed=3, start_index=10, end_index=60)
    b = timeseries_dataset_from_array(data, np.arange(100), 5, batch_size=8, shuffle=True,
                                      seed=3, start_index=10, end_index=60)
    xa, ya = a[0]
    np.testing.assert_array_equal(xa, b[0][0])
    assert xa.shape == (8, 5, 2)
    for window, target in zip(xa, ya):  # every window starts at its target's time
        np.testing.assert_array_equal(window[:, 0], data[target:target + 5, 0])
    starts = np.concatenate([y for _, y in a])
    assert sorted(starts.tolist()) == list(range(10, 56))


def test_fit_on_windows_if_fit_takes_a_py_dataset():
    t = np.linspace(0, 20, 300, dtype=np.float32)
    series = np.sin(t)[:, None]
    ds = timeseries_dataset_from_array(series[:-5], series[5:, 0], sequence_length=5,
                                       batch_size=32)
    model = fl.models.Sequential([fl.Input(shape=(5, 1)), fl.layers.Flatten(),
                                  fl.layers.Dense(1)])
    model.compile(optimizer=fl.optimizers.Adam(0.01), loss="mse")
    try:
        history = model.fit(ds, epochs=4, verbose=0)
    except (TypeError, ValueError) as e:
        pytest.skip(f"fit does not take a PyDataset yet: {e}")
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_errors_name_the_argument():
    assert_error(ValueError, timeseries_dataset_from_array, np.arange(10), None, 0,
                 contains=["sequence_length"])
    assert_error(ValueError, timeseries_dataset_from_array, np.arange(10), None, 3,
                 start_index=20, contains=["start_index"])
    assert_error(ValueError, timeseries_dataset_from_array, np.arange(10), None, 3,
                 end_index=0, contains=["end_index"])
    ds = timeseries_dataset_from_array(np.arange(10), None, 3, batch_size=4)
    with pytest.raises(IndexError):
        ds[5]
