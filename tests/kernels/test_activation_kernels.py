"""The one-pass activation gradients: Numba kernels against the plain-xp references."""
import numpy as np
import pytest

from fundl import kernels
from fundl.kernels import activation

KINDS = ["relu", "tanh", "sigmoid"]


def _output(kind, x):
    if kind == "relu":
        return np.maximum(x, 0)
    if kind == "tanh":
        return np.tanh(x)
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7,), (64, 28, 28, 6), (3, 0, 2), ()])
def test_kernel_matches_reference(kind, dtype, shape):
    rng = np.random.default_rng(0)
    y = _output(kind, rng.standard_normal(shape)).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    got = activation.activation_grad_numba(kind, gy, y)  # whatever the size
    want = activation.activation_grad_reference(kind, gy, y)
    np.testing.assert_allclose(kernels.activation_grad(kind, gy, y), want, rtol=1e-6)
    assert got.dtype == y.dtype and got.shape == y.shape
    np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-15)


def test_kernel_on_non_contiguous_inputs():
    rng = np.random.default_rng(1)
    y = np.tanh(rng.standard_normal((6, 8))).astype(np.float32).T
    gy = rng.standard_normal((8, 6)).astype(np.float32)
    np.testing.assert_allclose(activation.activation_grad_numba("tanh", gy, y),
                               gy * (1 - y * y), rtol=1e-6)


def test_relu_gradient_is_exactly_zero_where_inactive():
    # like PyTorch's threshold_backward: a NaN or inf upstream does not leak through a 0
    y = np.array([0.0, 2.0, 0.0], np.float32)
    gy = np.array([np.nan, np.inf, -np.inf], np.float32)
    for fn in (activation.activation_grad_numba, activation.activation_grad_reference):
        np.testing.assert_array_equal(fn("relu", gy, y), [0.0, np.inf, 0.0])


def test_mixed_dtypes_take_the_reference_path():
    y = np.tanh(np.linspace(-2, 2, 5)).astype(np.float32)
    gy = np.ones(5, np.float64)
    want = 1 - y.astype(np.float64) ** 2
    np.testing.assert_allclose(kernels.activation_grad("tanh", gy, y), want, rtol=1e-6)


def test_unknown_kind():
    with pytest.raises(ValueError, match="kind must be"):
        activation.activation_grad_reference("gelu", np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="kind must be one of"):
        kernels.activation_grad("gelu", np.ones(5000), np.ones(5000))


@pytest.mark.parametrize("kind", ["relu", "tanh", "sigmoid"])
def test_gradient_split_over_a_parallel_region_matches_one_pass(kind, monkeypatch):
    from fundl.kernels import _parallel
    from fundl.kernels import activation as module

    if not _parallel.regions():
        pytest.skip("no Numba parallel regions here")
    rng = np.random.default_rng(6)
    y = rng.uniform(-1, 1, (97, 1031)).astype(np.float32)   # above MIN_REGION_BYTES
    gy = rng.standard_normal(y.shape).astype(np.float32)
    assert y.nbytes >= module.MIN_REGION_BYTES
    split = module.activation_grad_numba(kind, gy, y)
    monkeypatch.setattr(_parallel, "regions", lambda: False)
    np.testing.assert_array_equal(split, module.activation_grad_numba(kind, gy, y))


def test_relu_split_over_a_parallel_region_is_numpys_maximum(monkeypatch):
    from fundl.kernels import _parallel
    from fundl.kernels import activation as module

    if not _parallel.regions():
        pytest.skip("no Numba parallel regions here")
    x = np.random.default_rng(7).standard_normal((301, 257)).astype(np.float32)
    x[0, :4] = [np.nan, -0.0, np.inf, -np.inf]
    calls = []
    real = module.relu_numba
    monkeypatch.setattr(module, "relu_numba", lambda a: calls.append(1) or real(a))
    y = kernels.relu(x)
    want = np.maximum(x, 0)
    np.testing.assert_array_equal(y, want)
    assert np.signbit(y[0, 1]) == np.signbit(want[0, 1])  # -0.0 as NumPy makes it
    assert calls == [1]  # it did take the region


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_in_place_is_numpys_maximum(dtype):
    from fundl.kernels import activation as module

    x = np.random.default_rng(8).standard_normal((37, 29)).astype(dtype)
    x[0, :5] = [np.nan, -0.0, np.inf, -np.inf, 0.0]
    want = np.maximum(x, 0)
    y = x.copy()
    assert module.relu_in_place_numba(y) is y
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(np.signbit(y), np.signbit(want))  # -0.0 as NumPy makes it


@pytest.mark.parametrize("contiguous", [True, False])
def test_fused_relu_of_an_op_is_numpys_maximum(contiguous, monkeypatch):
    """apply_in_place takes the one-array kernel for C-contiguous float arrays, NumPy's maximum
    for the rest; both give numpy.maximum's values."""
    from fundl.kernels import activation as module
    from fundl.ops.activation import apply_in_place

    calls = []
    real = module.relu_in_place_numba
    monkeypatch.setattr(module, "relu_in_place_numba", lambda a: calls.append(1) or real(a))
    base = np.random.default_rng(9).standard_normal((20, 30)).astype(np.float32)
    base[1, :3] = [np.nan, -0.0, -np.inf]
    y = base.copy() if contiguous else base.copy()[:, ::2]
    want = np.maximum(y, 0)
    apply_in_place("relu", y)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(np.signbit(y), np.signbit(want))
    assert calls == ([1] if contiguous and kernels.compiled(y, "activation") else [])
