"""Add's big outputs come from the runtime's Workspace: same values as ``x + y``, a buffer
handed out again only once released, small, broadcast and mixed-dtype sums untouched."""
import numpy as np
import pytest

import fundl as fl
import fundl.runtime
from fundl.ops import elementwise

SHAPE = (4, 16, 16, 64)  # 256 KB of float32: pooled


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pooled_sum_equals_numpy_and_is_recycled_only_when_released(dtype):
    ws = fundl.runtime.state().workspace
    ws.clear()
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(SHAPE).astype(dtype) for _ in range(2))
    assert a.nbytes >= elementwise._POOLED_BYTES
    s1 = (fl.Tensor(a) + fl.Tensor(b)).numpy()
    np.testing.assert_array_equal(s1, a + b)
    assert any(x is s1 for x in ws.arrays)
    s2 = (fl.Tensor(b) + fl.Tensor(b)).numpy()
    assert s2 is not s1  # s1 is still referenced: never handed out twice
    np.testing.assert_array_equal(s1, a + b)
    np.testing.assert_array_equal(s2, b + b)
    address = s1.ctypes.data
    del s1
    s3 = (fl.Tensor(a) + fl.Tensor(a)).numpy()
    assert s3.ctypes.data == address
    np.testing.assert_array_equal(s3, a + a)


def test_gradients_of_a_pooled_sum():
    rng = np.random.default_rng(1)
    x = fl.Tensor(rng.standard_normal(SHAPE).astype(np.float32), requires_grad=True)
    y = fl.Tensor(rng.standard_normal(SHAPE).astype(np.float32), requires_grad=True)
    gy = rng.standard_normal(SHAPE).astype(np.float32)
    (x + y).backward(gy)
    np.testing.assert_array_equal(np.asarray(x.grad), gy)
    np.testing.assert_array_equal(np.asarray(y.grad), gy)


@pytest.mark.parametrize("other", [
    np.ones((16, 64), np.float32),          # broadcast
    np.ones(SHAPE, np.float64),             # mixed dtypes promote as NumPy does
    np.ones(SHAPE, np.float32)[..., ::2].repeat(2, axis=-1),  # same shape, another array
])
def test_other_sums_are_numpys(other):
    a = np.random.default_rng(2).standard_normal(SHAPE).astype(np.float32)
    got = (fl.Tensor(a) + fl.Tensor(other)).numpy()
    want = a + other
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_small_sums_are_not_pooled():
    ws = fundl.runtime.state().workspace
    ws.clear()
    s = (fl.Tensor(np.ones((8, 8), np.float32)) + fl.Tensor(np.ones((8, 8), np.float32))).numpy()
    assert not any(x is s for x in ws.arrays)
    np.testing.assert_array_equal(s, 2)
