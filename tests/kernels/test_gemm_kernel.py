"""fundl's own float32 GEMM micro-kernel (fundl.kernels.gemm) and the dense layer's forward
product through it (fundl.kernels.fused: OWN_NN tasks, the sum over k split by threads)."""
import numpy as np
import pytest

from fundl.kernels import fused, gemm
from fundl.kernels._parallel import Backoff

needs_kernel = pytest.mark.skipif(not gemm.usable(), reason="no AVX-512 (or no Numba) here")


def _operands(rng, m, k, n):
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    return a, b


def _close(got, want, depth):
    tol = 1e-5 * np.sqrt(max(depth, 1))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@needs_kernel
@pytest.mark.parametrize("m", [1, 3, 4, 5, 8, 13, 14, 15, 22, 26, 29, 64, 128])
@pytest.mark.parametrize("n", [1, 16, 31, 32, 33, 70, 256])
def test_matmul_matches_float64_numpy_at_every_edge(m, n):
    """Every row count (blocks of 1 to 14 rows, each size its own kernel) and column count
    (blocks of 32, a padded last one) against float64 NumPy, plain and with A transposed."""
    rng = np.random.default_rng(m * 1000 + n)
    for k in (1, 7, 300):
        a, b = _operands(rng, m, k, n)
        want = a.astype(np.float64) @ b
        got = gemm.matmul(a, b)
        assert got.shape == (m, n) and got.dtype == np.float32
        _close(got, want, k)
        _close(gemm.matmul(np.ascontiguousarray(a.T), b, trans_a=True), want, k)


@needs_kernel
def test_matmul_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    a, b = _operands(rng, 128, 784, 256)
    want = (torch.from_numpy(a) @ torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(gemm.matmul(a, b), want, rtol=1e-4, atol=1e-4)


@needs_kernel
def test_empty_inner_dimension_gives_zeros():
    c = gemm.matmul(np.ones((5, 0), np.float32), np.ones((0, 40), np.float32))
    np.testing.assert_array_equal(c, np.zeros((5, 40), np.float32))


@needs_kernel
def test_leading_dimensions_and_nothing_written_outside_c():
    """B and C inside wider matrices (ldb, ldc larger than n): C's other columns untouched."""
    rng = np.random.default_rng(2)
    m, k, n = 29, 45, 40
    a = rng.standard_normal((m, k)).astype(np.float32)
    b_wide = rng.standard_normal((k, n + 9)).astype(np.float32)
    c_wide = np.full((m, n + 5), 7.0, np.float32)
    gemm.gemm_numba(a.ctypes.data, k, 1, b_wide.ctypes.data, n + 9, c_wide.ctypes.data,
                    n + 5, m, n, k)
    _close(c_wide[:, :n], a.astype(np.float64) @ b_wide[:, :n], k)
    assert (c_wide[:, n:] == 7.0).all()


def test_matmul_rejects_what_it_does_not_take():
    with pytest.raises(TypeError, match="b must be a C-contiguous float32"):
        gemm.matmul(np.ones((2, 3), np.float32), np.ones((3, 2)))
    with pytest.raises(TypeError, match="a must be a C-contiguous float32"):
        gemm.matmul(np.ones((3, 2), np.float32).T, np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match=r"a is \(2, 3\) but b is \(4, 2\)"):
        gemm.matmul(np.ones((2, 3), np.float32), np.ones((4, 2), np.float32))


@pytest.fixture
def two_threads(monkeypatch):
    from fundl import runtime
    from fundl.kernels import _parallel

    monkeypatch.setattr(runtime.state(), "parallel", (2, [], None))
    if not _parallel.regions():
        pytest.skip("no thread-safe Numba threading layer: no parallel regions here")
    # (no back-off: a region slowed by a busy machine must not send the next to one thread)
    monkeypatch.setattr(fused, "_BACKOFF", Backoff(fused._SERIAL_MACS_PER_SECOND,
                                                   stall_seconds=1e3))


@needs_kernel
@pytest.mark.parametrize("m,k,n", [(128, 784, 256), (60, 1100, 64), (7, 300, 300)])
def test_dense_forward_through_the_kernel_on_two_threads(two_threads, monkeypatch, m, k, n):
    """A weight of 65,536 elements or more: each thread sums over its share of w's rows into a
    block of its own and the blocks are added; the result agrees with float64 NumPy, with
    one thread's and with OpenBLAS's kernel."""
    if fused._dense_kernels(np.ones((1, 1), np.float32), np.ones((1, 1), np.float32)) is None:
        pytest.skip("no AVX-512 small kernels here: the dense layer's region does not run")
    monkeypatch.setattr(fused, "OWN_FORWARD", True)
    monkeypatch.setattr(fused, "_REGION_MACS", 1)  # a region even for the small product
    monkeypatch.setattr(fused, "_SPLIT_MACS", 1)
    tables = []
    real_region = fused.dense_gemms_numba
    monkeypatch.setattr(fused, "dense_gemms_numba",
                        lambda *a: tables.append(a[1].copy()) or real_region(*a))
    rng = np.random.default_rng(m + k + n)
    x, w = _operands(rng, m, k, n)
    want = x.astype(np.float64) @ w
    y = fused.dense_forward(x, w)
    assert y.shape == (m, n) and y.dtype == np.float32 and y.flags.c_contiguous
    _close(y, want, k)
    kind, axis, parts = tables[-1][0, 0], tables[-1][0, 10], tables[-1][0, 11]
    assert (kind, axis, parts) == (fused.OWN_NN, 2, 2)  # the sum over k in two shares
    from fundl import runtime

    monkeypatch.setattr(runtime.state(), "parallel", (1, [], None))
    _close(fused.dense_forward(x, w), y, k)  # one thread: the whole sum in one block
    monkeypatch.setattr(fused, "OWN_FORWARD", False)
    _close(fused.dense_forward(x, w), y, k)  # OpenBLAS's kernel


@needs_kernel
def test_dense_forward_gives_the_same_bits_while_its_region_backs_off(two_threads, monkeypatch):
    """Backing off (the other core busy) runs the same slices on this thread: the sum over k
    in shares is added as in the region, bit for bit (a reloaded AlexNet's predictions once
    differed from the original's in the last bit when one of the two backed off)."""
    if fused._dense_kernels(np.ones((1, 1), np.float32), np.ones((1, 1), np.float32)) is None:
        pytest.skip("no AVX-512 small kernels here: the dense layer's region does not run")
    monkeypatch.setattr(fused, "OWN_FORWARD", True)
    rng = np.random.default_rng(4)
    x, w = _operands(rng, 128, 784, 256)
    b = rng.standard_normal(256).astype(np.float32)
    regions = []
    real_region = fused.dense_gemms_numba
    monkeypatch.setattr(fused, "dense_gemms_numba",
                        lambda *a: regions.append(a[1].copy()) or real_region(*a))
    together = fused.dense_forward(x, w, b).copy()
    assert len(regions) == 1 and tuple(regions[0][0, [10, 11]]) == (2, 2)
    monkeypatch.setattr(fused._BACKOFF, "skip", 1)  # the next call backs off
    alone = fused.dense_forward(x, w, b)
    assert len(regions) == 1  # no region: this thread did both shares
    np.testing.assert_array_equal(alone, together)


@needs_kernel
def test_a_small_weight_splits_the_rows_of_y(two_threads, monkeypatch):
    """Under 65,536 weights the forward product is cut along y's rows, as before."""
    if fused._dense_kernels(np.ones((1, 1), np.float32), np.ones((1, 1), np.float32)) is None:
        pytest.skip("no AVX-512 small kernels here: the dense layer's region does not run")
    monkeypatch.setattr(fused, "OWN_FORWARD", True)
    tables = []
    real_region = fused.dense_gemms_numba
    monkeypatch.setattr(fused, "dense_gemms_numba",
                        lambda *a: tables.append(a[1].copy()) or real_region(*a))
    rng = np.random.default_rng(9)
    x, w = _operands(rng, 128, 256, 128)
    _close(fused.dense_forward(x, w), x.astype(np.float64) @ w, 256)
    assert tuple(tables[-1][0, [0, 10, 11]]) == (fused.OWN_NN, 1, 2)


def test_openblas_task_split_over_k(two_threads):
    """The task runner's sum over k in shares (axis 2) for OpenBLAS's NN kernel too."""
    if fused._dense_kernels(np.ones((1, 1), np.float32), np.ones((1, 1), np.float32)) is None:
        pytest.skip("no AVX-512 small kernels here")
    rng = np.random.default_rng(10)
    m, k, n = 40, 301, 24
    x, w = _operands(rng, m, k, n)
    blocks = np.full((2 * m, n), np.nan, np.float32)
    tasks = [(fused.NN, n, m, k, 1, n, 0, k, 2, n, 2, 2)]
    fused.gemm_tasks_numba(fused._kernel_addresses(), np.array(tasks, np.int64), (
        x, w, blocks, fused._PAD, fused._PAD), 0, 1, fused._NO_SUMS, False)
    _close(blocks[:m] + blocks[m:], x.astype(np.float64) @ w, k)
    _close(blocks[:m], x[:, :k // 2].astype(np.float64) @ w[:k // 2], k)


def test_own_forward_by_default_wherever_avx512(monkeypatch):
    monkeypatch.setattr(fused, "OWN_FORWARD", None)
    monkeypatch.setattr(gemm, "usable", lambda: False)
    assert not fused._own_forward()
    monkeypatch.setattr(gemm, "usable", lambda: True)
    assert fused._own_forward()
    monkeypatch.setattr(fused, "OWN_FORWARD", False)
    assert not fused._own_forward()
    monkeypatch.setattr(gemm, "usable", lambda: False)
    monkeypatch.setattr(fused, "OWN_FORWARD", True)
    assert not fused._own_forward()  # asked for, but not this CPU's


def test_a_kernel_modules_cache_stamp_covers_the_code_it_calls(tmp_path):
    """Numba compiles the kernels a module calls from another module into its own code: the
    cache entries of fused.py must go stale when gemm.py changes."""
    from fundl.kernels import _jit

    if _jit.numba is None:
        pytest.skip("no Numba")
    for name, deps in (("fused.py", ("fused.py", "gemm.py")), ("gemm.py", ("gemm.py",))):
        src = tmp_path / name
        for dep in deps:
            (tmp_path / dep).write_text(f"# {dep}\n")
        locator = _jit._SharedLocator(test_a_kernel_modules_cache_stamp_covers_the_code_it_calls,
                                      str(src), tmp_path)
        before = locator.get_source_stamp()
        (tmp_path / deps[-1]).write_text(f"# {deps[-1]}, changed\n")
        assert locator.get_source_stamp() != before


@needs_kernel
def test_fused_bias_relu_after_the_split_sum_equals_the_unfused_op(two_threads, monkeypatch):
    """fl.linear(..., activation="relu") with a large float32 weight: the blocks' sum, bias
    and ReLU in one pass give exactly what the product, ``+ b`` and ReLU give one by one."""
    import fundl as fl

    monkeypatch.setattr(fused, "OWN_FORWARD", True)
    rng = np.random.default_rng(11)
    x, w = _operands(rng, 128, 784, 256)
    b = rng.standard_normal(256).astype(np.float32)
    with fl.no_grad():
        fused_y = fl.linear(fl.tensor(x), fl.tensor(w), fl.tensor(b), activation="relu").numpy()
        plain = fl.linear(fl.tensor(x), fl.tensor(w)).numpy()
    np.testing.assert_array_equal(fused_y, np.maximum(plain + b, 0))
    _close(fused_y, np.maximum(x.astype(np.float64) @ w + b, 0), 784)


@needs_kernel
@pytest.mark.parametrize("m,k,n,k0", [(512, 160, 32, 0), (512, 160, 32, 128), (50, 29, 7, 3),
                                      (14, 5, 33, 0), (15, 1, 40, 0)])
def test_packed_panels_match_float64_numpy(m, k, n, k0):
    """A packed once into panels (stored transposed, as a recurrent layer's [U; W; b]), then
    products over its columns k0: on, as the LSTM's inference sweep runs them."""
    rng = np.random.default_rng(m + k + n + k0)
    at = rng.standard_normal((k, m)).astype(np.float32)  # A (m, k) stored as A^T
    b = rng.standard_normal((k, n)).astype(np.float32)
    panels = np.full(gemm.panels_size(m, k), np.nan, np.float32)
    gemm.pack_numba(at.ctypes.data, 1, m, m, k, panels)
    assert not np.isnan(panels).any()  # every element written, the padding zeros
    c = np.full((m, n), np.nan, np.float32)
    gemm.gemm_packed_numba(panels, k, k0, b[k0].ctypes.data, n, c.ctypes.data, n, m, n, k - k0)
    _close(c, at[k0:].T.astype(np.float64) @ b[k0:], k)


@needs_kernel
@pytest.mark.parametrize("m,k,n", [(160, 128, 512), (29, 50, 40), (3, 1, 33), (15, 7, 32)])
def test_accumulating_product_adds_to_c(m, k, n):
    """C += A^T-stored A @ B (a weight gradient summed over blocks of steps): C's old values
    are the sums' start, in full tiles and in the padded last columns alike."""
    rng = np.random.default_rng(m * k + n)
    at = rng.standard_normal((k, m)).astype(np.float32)  # A (m, k) stored as A^T (k, m)
    b = rng.standard_normal((k, n)).astype(np.float32)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    c = c0.copy()
    gemm.gemm_acc_numba(at.ctypes.data, 1, m, b.ctypes.data, n, c.ctypes.data, n, m, n, k)
    _close(c, c0 + at.T.astype(np.float64) @ b, k)
    gemm.gemm_acc_numba(at.ctypes.data, 1, m, b.ctypes.data, n, c.ctypes.data, n, m, n, 0)
    _close(c, c0 + at.T.astype(np.float64) @ b, k)  # an empty product adds nothing
