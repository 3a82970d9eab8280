"""fit's shuffled batches gathered on every thread (fundl.kernels.fused.gather_rows): the same
rows as NumPy's indexing, bit for bit, and NumPy's indexing wherever it does not apply."""
import numpy as np
import pytest

import fundl as fl
from fundl.kernels import _parallel, fused
from fundl.models.data_adapter import ArrayBatches

needs_regions = pytest.mark.skipif(fused._numba is None or not _parallel.regions(),
                                   reason="needs Numba and more than one thread")


@needs_regions
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3000, 784), (500, 28, 28, 1), (700, 33)])
def test_gathered_rows_are_numpys(dtype, shape):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape).astype(dtype)
    index = np.sort(rng.permutation(shape[0])[:257])
    if 257 * a.strides[0] < fused.GATHER_MIN_BYTES:
        index = np.sort(rng.integers(0, shape[0], 3000))  # repeated rows too
    got = fused.gather_rows(a, index)
    assert got is not None and got.shape == (len(index),) + shape[1:] and got.dtype == dtype
    np.testing.assert_array_equal(got, a[index])


@needs_regions
def test_the_same_rows_while_the_regions_back_off(monkeypatch):
    """Backing off runs the same compiled loop on this thread alone."""
    monkeypatch.setattr(fused._GATHER_BACKOFF, "skip", 3)
    a = np.arange(200 * 300, dtype=np.float32).reshape(200, 300)
    index = np.arange(199, -1, -2, dtype=np.int64)
    np.testing.assert_array_equal(fused.gather_rows(a, index), a[index])


@pytest.mark.parametrize("case", ["small", "int", "strided", "index32", "index2d", "list"])
def test_numpys_indexing_where_the_gather_does_not_apply(case):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((4000, 100)).astype(np.float32)
    index = np.sort(rng.permutation(4000)[:1000])
    if case == "small":
        index = index[:10]
    elif case == "int":
        a = (a * 100).astype(np.int64)
    elif case == "strided":
        a = a[:, ::2]
    elif case == "index32":
        index = index.astype(np.int32)
    elif case == "index2d":
        index = index.reshape(20, 50)
    elif case == "list":
        index = list(index)
    assert fused.gather_rows(a, index) is None


@needs_regions
def test_fit_batches_are_the_shuffled_rows_of_the_data():
    """Every epoch's batches hold each sample exactly once, with its own label, whether a
    batch was gathered on the threads (x) or by NumPy (the small y)."""
    n = 1000
    x = np.repeat(np.arange(n, dtype=np.float32)[:, None], 200, axis=1)
    y = np.arange(n, dtype=np.float32)[:, None]
    batches = ArrayBatches([x], [y], None, batch_size=128, shuffle=True,
                           rng=np.random.default_rng(3))
    seen = []
    for bx, by, _, count in batches.epoch():
        assert 128 * 200 * 4 >= fused.GATHER_MIN_BYTES and len(bx[0]) == count
        np.testing.assert_array_equal(bx[0], np.repeat(by[0], 200, axis=1))
        seen.extend(by[0][:, 0].tolist())
    assert sorted(seen) == list(range(n)) and seen != list(range(n))


def test_fit_trains_the_same_with_and_without_the_threaded_gather(monkeypatch):
    """The gather changes where the copies run, not what the model sees: the same weights."""
    def train():
        fl.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((600, 300)).astype(np.float32)
        y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 600)]
        model = fl.models.Sequential([fl.layers.Input((300,)), fl.layers.Dense(16, "relu"),
                                      fl.layers.Dense(3, "softmax")])
        model.compile(optimizer="sgd", loss="categorical_crossentropy")
        model.fit(x, y, batch_size=100, epochs=2, verbose=0)
        return [w.copy() for w in model.get_weights()]

    threaded = train()
    monkeypatch.setattr(fused, "GATHER_MIN_BYTES", 1 << 62)
    for a, b in zip(threaded, train()):
        np.testing.assert_array_equal(a, b)
