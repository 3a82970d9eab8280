"""Kernels split over threads by batch slices give the same results as one serial call."""
import numpy as np
import pytest

from fundl import kernels
from fundl.kernels import _threads


@pytest.fixture
def split_everything(monkeypatch):
    """Every kernel call split into 3 slices, however small its data."""
    monkeypatch.setattr(_threads, "MIN_BYTES_PER_THREAD", 1)
    monkeypatch.setattr(_threads, "THREADS", 3)


def test_batch_slices(monkeypatch):
    monkeypatch.setattr(_threads, "MIN_BYTES_PER_THREAD", 1 << 19)
    assert _threads.batch_slices(10, 1 << 30, threads=3) == [slice(0, 3), slice(3, 6),
                                                              slice(6, 10)]
    assert _threads.batch_slices(2, 1 << 30, threads=4) == [slice(0, 1), slice(1, 2)]
    assert _threads.batch_slices(100, 10, threads=4) == [slice(0, 100)]  # too small to split
    assert _threads.batch_slices(0, 0, threads=2) == [slice(0, 0)]


def test_run_reraises_after_every_call_finished():
    done = []

    def work(i):
        if i == 1:
            raise ValueError("slice 1 failed")
        done.append(i)

    with pytest.raises(ValueError, match="slice 1 failed"):
        _threads.run(work, [(0,), (1,), (2,)])
    assert sorted(done) == [0, 2]


def _serial_and_split(monkeypatch, fn):
    monkeypatch.setattr(_threads, "THREADS", 1)
    serial = fn()
    monkeypatch.setattr(_threads, "MIN_BYTES_PER_THREAD", 1)
    monkeypatch.setattr(_threads, "THREADS", 3)
    return serial, fn()


def test_split_kernels_match_serial(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 1, 9, 9, 4)).astype(np.float32)
    geometry = ((1, 3, 3), (1, 2, 1), (1, 1, 1))
    cases = {
        "im2col": lambda: kernels.im2col(x, *geometry, 1, ones=True),
        "col2im": lambda: kernels.col2im(np.ones((1, 5 * 4 * 7, 36), np.float32), x.shape,
                                         *geometry, 1),
        "max_pool": lambda: kernels.max_pool(x, (1, 2, 2), (1, 1, 1))[0],
        "max_pool_grad": lambda: kernels.max_pool_grad(
            np.ones((5, 1, 8, 8, 4), np.float32), *kernels.max_pool(x, (1, 2, 2), (1, 1, 1))[1:],
            x.shape, (1, 2, 2), (1, 1, 1)),
        "avg_pool": lambda: kernels.avg_pool(x, (1, 3, 3), (1, 2, 2), np.full((1, 4, 4), 0.5)),
        "avg_pool_grad": lambda: kernels.avg_pool_grad(np.ones((5, 1, 4, 4, 4), np.float32),
                                                       x.shape, (1, 3, 3), (1, 2, 2),
                                                       np.full((1, 4, 4), 0.5)),
        "tanh_grad": lambda: kernels.activation_grad("tanh", x, np.tanh(x)),
    }
    for name, fn in cases.items():
        serial, split = _serial_and_split(monkeypatch, fn)
        np.testing.assert_array_equal(split, serial, err_msg=name)


def test_grouped_im2col_is_not_split(split_everything):
    x = np.arange(2 * 1 * 4 * 4 * 4, dtype=np.float64).reshape(2, 1, 4, 4, 4)
    got = kernels.im2col(x, (1, 2, 2), (1, 1, 1), (1, 1, 1), 2)
    want = kernels.conv.im2col_reference(x, (1, 2, 2), (1, 1, 1), (1, 1, 1), 2)
    np.testing.assert_array_equal(got, want)


def test_thread_count_from_environment(monkeypatch):
    monkeypatch.setenv("FUNDL_NUM_THREADS", "3")
    assert _threads._count_from_environment() == 3
    monkeypatch.delenv("FUNDL_NUM_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert _threads._count_from_environment() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "two")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS must be a positive integer"):
        _threads._count_from_environment()


def test_apply_ufunc_split_matches_numpy(split_everything):
    x = np.linspace(-3, 3, 35, dtype=np.float32).reshape(5, 7)
    for ufunc, scalars in [(np.tanh, ()), (np.maximum, (0,)), (np.multiply, (2.5,))]:
        got = kernels.apply_ufunc(ufunc, x, *scalars)
        want = ufunc(x, *scalars)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    x64 = x.T.astype(np.float64)  # not contiguous: one call, as NumPy
    np.testing.assert_array_equal(kernels.apply_ufunc(np.tanh, x64), np.tanh(x64))
