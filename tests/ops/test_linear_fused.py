"""linear(..., activation=...): the dense layer with its activation fused into the op.

Checked against the plain-NumPy formula, PyTorch, finite differences (float64) and the unfused
ops (bit for bit in float32 and float64: the fused op applies the same arithmetic), plus what
``no_grad`` keeps and the errors.
"""
import numpy as np
import pytest

import fundl as fl
from fundl.kernels._parallel import Backoff
from fundl.ops.linalg import Linear
from fundl.testing import assert_error, check_op

ACTS = {"relu": lambda a: np.maximum(a, 0), "tanh": np.tanh,
        "sigmoid": lambda a: 1 / (1 + np.exp(-a))}
UNFUSED = {"relu": fl.relu, "tanh": fl.tanh, "sigmoid": fl.sigmoid}


def _torch_act(kind):
    import torch

    return {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[kind]


def _torch_linear(kind):
    def fn(a, k, b=None):
        import torch.nn.functional as F

        return _torch_act(kind)(F.linear(a, k.T, b))
    return fn


@pytest.mark.parametrize("kind", sorted(ACTS))
@pytest.mark.parametrize("x_shape", [(6, 3), (2, 5, 3)], ids=str)
@pytest.mark.parametrize("bias", [True, False])
def test_fused_linear_against_numpy_torch_and_gradcheck(kind, x_shape, bias):
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal(x_shape), rng.standard_normal((3, 4))
    inputs = [x, w] + ([rng.standard_normal(4)] if bias else [])

    def reference(a, k, b=None):
        return ACTS[kind](a @ k + (0 if b is None else b))

    def fn(*t):
        return fl.linear(*t, activation=kind)

    check_op(fn, _torch_linear(kind), inputs, reference=reference)


@pytest.mark.parametrize("kind", sorted(ACTS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_linear_equals_unfused_exactly(kind, dtype):
    """Same forward values and gradients as activation(linear(...)), bit for bit, on sizes
    above the compiled activation-gradient kernels' threshold (4096 elements)."""
    rng = np.random.default_rng(8)
    arrays = [rng.standard_normal((64, 32)), rng.standard_normal((32, 96)) * 0.3,
              rng.standard_normal(96)]
    results = []
    for fused in (True, False):
        ts = [fl.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
        y = fl.linear(*ts, activation=kind) if fused else UNFUSED[kind](fl.linear(*ts))
        gy = np.random.default_rng(9).standard_normal(y.shape).astype(dtype)
        (y * fl.tensor(gy)).sum().backward()
        assert y.dtype == dtype and all(t.grad.dtype == dtype for t in ts)
        results.append([y.numpy()] + [t.grad for t in ts])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_fused_linear_float32_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((16, 20), (20, 8), (8,)))
    ts = [fl.tensor(a, requires_grad=True) for a in (x, w, b)]
    y = fl.linear(*ts, activation="relu")
    y.sum().backward()
    tt = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    ty = torch.relu(torch.nn.functional.linear(tt[0], tt[1].T, tt[2]))
    ty.sum().backward()
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    for t, u in zip(ts, tt):
        np.testing.assert_allclose(t.grad, u.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_fused_linear_under_no_grad_keeps_nothing():
    """Inference: the op neither records a graph nor keeps its inputs or output."""
    x = fl.tensor(np.ones((4, 3), np.float32))
    w = fl.tensor(np.ones((3, 2), np.float32), requires_grad=True)
    op = Linear("relu")
    with fl.no_grad():
        y = op.apply(x, w)
    assert y.creator is None and not y.requires_grad
    assert not hasattr(op, "saved") and "y" not in op.__dict__
    np.testing.assert_array_equal(y.numpy(), np.full((4, 2), 3, np.float32))


def test_fused_linear_first_layer_gets_no_input_gradient():
    rng = np.random.default_rng(11)
    x = fl.tensor(rng.standard_normal((5, 3)))
    w = fl.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    fl.linear(x, w, activation="tanh").sum().backward()
    assert x.grad is None and w.grad.shape == (3, 2)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_linear_on_an_empty_batch(bias, dtype):
    w = np.ones((4, 3), dtype)
    b = np.ones(3, dtype) if bias else None
    y = fl.linear(fl.Tensor(np.zeros((0, 4), dtype)), fl.Tensor(w),
                  None if b is None else fl.Tensor(b), activation="relu")
    assert y.shape == (0, 3) and y.dtype == dtype


def test_fused_linear_bad_activation():
    assert_error(ValueError, fl.linear, fl.ones(2, 3), fl.ones(3, 2), activation="softmax",
                 contains=["linear", "softmax", "relu"])


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "softmax", None])
def test_dense_fused_or_not_gives_the_same_layer(activation):
    """Dense fuses relu/tanh/sigmoid into its op; outputs and gradients equal the composition."""
    fl.manual_seed(0)
    layer = fl.layers.Dense(7, activation=activation)
    x = fl.tensor(np.random.default_rng(12).standard_normal((5, 4)).astype(np.float32))
    y = layer(x)
    act = fl.activations.get(activation)
    want = act(fl.linear(x, layer.kernel, layer.bias))
    np.testing.assert_array_equal(y.numpy(), want.numpy())
    fused = activation in ("relu", "tanh", "sigmoid")
    assert (y.creator.name == "Linear") == (fused or activation is None)
    y.sum().backward()
    grads = [layer.kernel.grad.copy(), layer.bias.grad.copy()]
    layer.kernel.grad = layer.bias.grad = None
    want.sum().backward()
    np.testing.assert_array_equal(grads[0], layer.kernel.grad)
    np.testing.assert_array_equal(grads[1], layer.bias.grad)


def test_dense_relu_runs_the_compiled_kernels():
    """Dense(relu) on NumPy float arrays goes through fused.bias_relu_numba and
    fused.relu_grad_numba (float32 here), and their values equal the NumPy path's."""
    from fundl.kernels import fused

    if fused._numba is None:
        pytest.skip("needs Numba")
    rng = np.random.default_rng(13)
    arrays = [rng.standard_normal((32, 16)).astype(np.float32),
              rng.standard_normal((16, 24)).astype(np.float32),
              rng.standard_normal(24).astype(np.float32)]
    results = []
    for enabled in (True, False):
        fused._ENABLED = enabled
        try:
            ts = [fl.tensor(a, requires_grad=True) for a in arrays]
            y = fl.linear(*ts, activation="relu")
            (y * fl.tensor(arrays[0][:, :1] + 0.5)).sum().backward()
            results.append([y.numpy()] + [t.grad for t in ts])
        finally:
            fused._ENABLED = True
    assert any("float32" in str(s) for s in fused.bias_relu_numba.signatures)
    assert any("float32" in str(s) for s in fused.relu_grad_numba.signatures)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("m,k,n", [(128, 784, 256), (1, 3, 1), (37, 19, 21), (5, 300, 7)])
def test_dense_small_gemms_match_numpy(m, k, n):
    """The dense layer's two big products through OpenBLAS's AVX-512 kernels (where this CPU
    and NumPy's OpenBLAS offer them) agree with numpy.matmul to float32 rounding."""
    from fundl.kernels import fused

    rng = np.random.default_rng(14)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((k, n)).astype(np.float32)
    g = rng.standard_normal((m, n)).astype(np.float32)
    y, gw = fused.dense_forward(x, w), fused.dense_weight_grad(x, g)
    gx = fused.dense_input_grad(g, w)
    if y is None:
        pytest.skip("no AVX-512 small kernels here")
    np.testing.assert_allclose(gx, g.astype(np.float64) @ w.T, rtol=1e-5 * np.sqrt(n),
                               atol=1e-5 * np.sqrt(n))
    tol = 1e-5 * np.sqrt(k)
    np.testing.assert_allclose(y, (x.astype(np.float64) @ w), rtol=tol, atol=tol)
    np.testing.assert_allclose(gw, (x.T.astype(np.float64) @ g), rtol=1e-5 * np.sqrt(m),
                               atol=1e-5 * np.sqrt(m))
    assert y.dtype == gw.dtype == np.float32 and y.flags.c_contiguous


def test_dense_small_gemms_refuse_what_they_do_not_cover(monkeypatch):
    from fundl.kernels import fused

    x = np.ones((4, 3), np.float32)
    assert fused.dense_forward(x.astype(np.float64), np.ones((3, 2))) is None  # float64
    assert fused.dense_forward(np.ones((3, 4), np.float32).T, np.ones((3, 2), np.float32)) \
        is None  # not C-contiguous
    monkeypatch.setattr(fused, "DENSE_SMALL_GEMMS", False)
    assert fused.dense_forward(x, np.ones((3, 2), np.float32)) is None
    assert fused.dense_weight_grad(x, np.ones((4, 2), np.float32)) is None
    assert fused.dense_input_grad(np.ones((4, 2), np.float32), np.ones((3, 2), np.float32)) \
        is None


@pytest.fixture
def two_threads(monkeypatch):
    """fundl on two threads (its thread pool faked in the runtime state), whatever the host's
    BLAS settings: the dense products may then run in a compiled parallel region."""
    from fundl import runtime
    from fundl.kernels import _parallel

    monkeypatch.setattr(runtime.state(), "parallel", (2, [], None))
    if not _parallel.regions():
        pytest.skip("no thread-safe Numba threading layer: no parallel regions here")


@pytest.mark.parametrize("m,k,n", [(128, 784, 256), (37, 19, 21), (1, 5, 3), (9, 2, 1)])
@pytest.mark.parametrize("split", [True, False])
def test_dense_products_in_a_region_match_numpy(two_threads, monkeypatch, m, k, n, split):
    """Forward, both gradient products and the bias sums, run in one compiled region on two
    threads (products cut in halves along C's rows or columns, or one product per thread),
    agree with float64 NumPy and with the serial path."""
    from fundl.kernels import fused

    monkeypatch.setattr(fused, "_SPLIT_MACS", 1 if split else 1 << 40)
    monkeypatch.setattr(fused, "_REGION_MACS", 1)  # a region even for tiny products
    # (no back-off here: a region slowed by the busy machine must not send the next to one
    # thread; the test is about the region's numbers)
    monkeypatch.setattr(fused, "_BACKOFF", Backoff(fused._SERIAL_MACS_PER_SECOND,
                                                   stall_seconds=1e3))
    calls = []
    real_region = fused.dense_gemms_numba
    monkeypatch.setattr(fused, "dense_gemms_numba", lambda *a: calls.append(a[3]) or
                        real_region(*a))
    rng = np.random.default_rng(3)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((k, n)).astype(np.float32)
    g = rng.standard_normal((m, n)).astype(np.float32)
    y = fused.dense_forward(x, w)
    if y is None:
        pytest.skip("no AVX-512 small kernels here")
    grads = fused.dense_backward(g, x, w, True, True, True)
    x64, w64, g64 = x.astype(np.float64), w.astype(np.float64), g.astype(np.float64)
    for got, want, depth in ((y, x64 @ w64, k), (grads[0], g64 @ w64.T, n),
                             (grads[1], x64.T @ g64, m), (grads[2], g64.sum(0), m)):
        tol = 1e-5 * np.sqrt(depth)
        assert got.dtype == np.float32 and got.flags.c_contiguous
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    assert calls and all(threads == 2 for threads in calls)  # the region did run, 2 threads
    # only some of the gradients, and the same numbers on one thread
    only_w = fused.dense_backward(g, x, None, False, True)
    only_x = fused.dense_backward(g, None, w, True, False, True)
    assert only_w[0] is None and only_w[2] is None and only_x[1] is None
    np.testing.assert_array_equal(only_w[1], grads[1])
    np.testing.assert_array_equal(only_x[0], grads[0])
    from fundl import runtime

    monkeypatch.setattr(runtime.state(), "parallel", (1, [], None))
    serial = fused.dense_backward(g, x, w, True, True, True)
    # (a slice of C may be tiled otherwise by the kernel than the whole: equal to rounding)
    for a, b in zip(serial + (fused.dense_forward(x, w),), grads + (y,)):
        np.testing.assert_allclose(a, b, rtol=1e-5 * np.sqrt(k), atol=1e-5 * np.sqrt(k))


def test_dense_layer_on_two_threads_matches_torch(two_threads, monkeypatch):
    """A float32 Dense + ReLU layer's outputs and gradients (region path) against PyTorch."""
    torch = pytest.importorskip("torch")
    from fundl.kernels import fused

    monkeypatch.setattr(fused, "_SPLIT_MACS", 1)
    monkeypatch.setattr(fused, "_REGION_MACS", 1)
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in ((64, 50), (50, 30), (30,))]
    ts = [fl.tensor(a, requires_grad=True) for a in arrays]
    gy = rng.standard_normal((64, 30)).astype(np.float32)
    y = fl.linear(*ts, activation="relu")
    (y * fl.tensor(gy)).sum().backward()
    tt = [torch.tensor(a, requires_grad=True) for a in arrays]
    ty = torch.relu(tt[0] @ tt[1] + tt[2])
    (ty * torch.tensor(gy)).sum().backward()
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    for t, u in zip(ts, tt):
        np.testing.assert_allclose(t.grad, u.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_region_backoff_while_it_stalls():
    """A region far slower than one core would be (the other core busy elsewhere) sends the
    next calls to one thread, for twice as many calls each time in a row, and regions come
    back once one runs in time (the dense layer's and batch norm's regions use this)."""
    backoff = Backoff(per_second=6e10)
    macs = 1 << 24
    fine = 2 * macs / backoff.per_second  # as slow as the serial estimate: fine
    backoff.took(fine, macs)
    assert backoff.allowed() and backoff.period == 16
    backoff.took(fine + 2 * backoff.stall_seconds, macs)  # a stall
    assert [backoff.allowed() for _ in range(17)] == [False] * 16 + [True]
    backoff.took(1.0, macs)  # stalled again: twice as long
    assert sum(not backoff.allowed() for _ in range(40)) == 32
    backoff.took(0.0, macs)  # in time: the next stall backs off 16 calls again
    assert backoff.period == 16


def test_a_keys_first_region_is_not_counted():
    """The first region of each key (a driver and dtype: it compiled or loaded the driver)
    does not count as a stall; later ones do."""
    backoff = Backoff(per_second=6e10)
    backoff.took(1.0, 1, key="float32")  # far too slow, but the first: not a stall
    assert backoff.allowed() and backoff.seen == {"float32"}
    backoff.took(1.0, 1, key="float32")
    assert not backoff.allowed()


def test_dense_region_takes_its_backoff(two_threads, monkeypatch):
    """While the dense layer's Backoff says no, the products run on this thread (no region);
    a region's time is reported to it."""
    from fundl.kernels import fused

    backoff = Backoff(fused._SERIAL_MACS_PER_SECOND)
    monkeypatch.setattr(fused, "_BACKOFF", backoff)
    monkeypatch.setattr(fused, "_REGION_MACS", 1)
    monkeypatch.setattr(fused, "_SPLIT_MACS", 1)  # the product in halves: a region's work
    calls = []
    real_region = fused.dense_gemms_numba
    monkeypatch.setattr(fused, "dense_gemms_numba", lambda *a: calls.append(1) or
                        real_region(*a))
    rng = np.random.default_rng(5)
    x = rng.standard_normal((64, 32)).astype(np.float32)
    w = rng.standard_normal((32, 16)).astype(np.float32)
    backoff.skip = 1
    y = fused.dense_forward(x, w)
    if y is None:
        pytest.skip("no AVX-512 small kernels here")
    assert not calls and backoff.skip == 0  # backed off: this call ran serially
    backoff.stall_seconds = -1.0  # every region counts as a stall from now on
    np.testing.assert_array_equal(fused.dense_forward(x, w), y)
    assert calls == [1] and backoff.skip == 16


def test_dense_products_while_the_kernels_compile(monkeypatch):
    """While the 'fused' group compiles in the background, the products still take OpenBLAS's
    small kernels, called through ctypes one after the other, and the bias sums NumPy's."""
    from fundl.kernels import fused

    rng = np.random.default_rng(5)
    x = rng.standard_normal((33, 40)).astype(np.float32)
    w = rng.standard_normal((40, 17)).astype(np.float32)
    g = rng.standard_normal((33, 17)).astype(np.float32)
    compiled = (fused.dense_forward(x, w), fused.dense_backward(g, x, w, True, True, True))
    if compiled[0] is None:
        pytest.skip("no AVX-512 small kernels here")
    monkeypatch.setattr(fused, "ready", lambda group, dtype: False)
    monkeypatch.setattr(fused, "gemm_tasks_numba", None)  # must not be called
    monkeypatch.setattr(fused, "dense_gemms_numba", None)
    y = fused.dense_forward(x, w)
    gx, gw, gb = fused.dense_backward(g, x, w, True, True, True)
    np.testing.assert_array_equal(y, compiled[0])  # the same kernel on the same matrices
    np.testing.assert_array_equal(gx, compiled[1][0])
    np.testing.assert_array_equal(gw, compiled[1][1])
    np.testing.assert_allclose(gb, compiled[1][2], rtol=1e-5, atol=1e-5)
