"""The recurrent steps' own small GEMM (fundl.kernels.recurrent.matmul_nt) against its NumPy
reference, and the LSTM/GRU ops with it against BLAS, the Python loop, PyTorch and finite
differences; where the GEMM library comes from (FUNDL_BLAS, MKL only on Intel CPUs)."""
import numpy as np
import pytest

import fundl as fl
from fundl import runtime
from fundl.kernels import blas
from fundl.kernels import recurrent as R
from fundl.testing import gradcheck


def _needs_numba():
    if R.compiled("lstm_forward_parts") is None:
        pytest.skip("Numba is not installed")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (3, 5, 2), (4, 4, 7), (9, 13, 6), (8, 12, 1),
                                   (32, 512, 128), (33, 130, 17)])
def test_matmul_nt_matches_its_reference(m, n, k, dtype):
    """Blocked part and every edge (rows and columns past the last multiple of 4)."""
    _needs_numba()
    rng = np.random.default_rng(m * 100 + n)
    a = rng.standard_normal((m, k)).astype(dtype)
    bt = rng.standard_normal((n, k)).astype(dtype)
    got = np.full((m, n), np.nan, dtype)
    want = np.empty((m, n), dtype)
    R.matmul_nt(a, bt, got)
    R.matmul_nt_reference(a, bt, want)
    tol = 2e-5 * np.sqrt(k) if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    np.testing.assert_allclose(want, a.astype(np.float64) @ bt.T.astype(np.float64),
                               rtol=tol, atol=tol)


def test_matmul_nt_on_row_slices_of_bigger_arrays():
    """The loops pass a part's rows of the whole batch's states (C-contiguous row blocks)."""
    _needs_numba()
    rng = np.random.default_rng(3)
    hs = rng.standard_normal((3, 10, 8)).astype(np.float32)
    bt = rng.standard_normal((12, 8)).astype(np.float32)
    out = np.zeros((4, 12), np.float32)
    R.matmul_nt(hs[1, 5:9], bt, out)
    np.testing.assert_allclose(out, hs[1, 5:9] @ bt.T, rtol=1e-5, atol=1e-5)


def test_matmul_nt_keeps_nans():
    """Only reassociation is allowed in the kernel: a NaN in the input stays a NaN."""
    _needs_numba()
    a = np.ones((4, 8), np.float32)
    a[2, 3] = np.nan
    out = np.zeros((4, 4), np.float32)
    R.matmul_nt(a, np.ones((4, 8), np.float32), out)
    assert np.isnan(out[2]).all() and np.isfinite(np.delete(out, 2, axis=0)).all()


# -- the choice ---------------------------------------------------------------------------------
@pytest.fixture
def fresh_choice(monkeypatch):
    """A clean GEMM cache and plan cache before and after (the choice is cached per dtype)."""
    monkeypatch.setattr(runtime.state(), "gemm", {})
    R._sweep_plan.cache_clear()
    yield monkeypatch
    R._sweep_plan.cache_clear()


def test_recurrent_products_default_to_fundls_kernel_unless_fundl_blas_names_a_library(
        fresh_choice):
    fresh_choice.delenv("FUNDL_BLAS", raising=False)
    assert blas.recurrent_products() == "fundl"
    fresh_choice.setenv("FUNDL_BLAS", "numpy")
    assert blas.recurrent_products() == "numpy"
    fresh_choice.setenv("FUNDL_BLAS", "mkl")
    assert blas.recurrent_products() == "mkl"
    fresh_choice.setenv("FUNDL_BLAS", "bogus")
    with pytest.raises(ValueError, match="FUNDL_BLAS must be"):
        blas.recurrent_products()


def test_the_plan_says_which_gemm_the_steps_use(fresh_choice):
    _needs_numba()
    if blas.gemm_function(np.float32) is None:
        pytest.skip("no reachable GEMM here")
    x = np.zeros((64, 5, 3), np.float32)
    fresh_choice.delenv("FUNDL_BLAS", raising=False)
    assert R.sweep_plan("lstm", x, (), threads=2).own_gemm
    fresh_choice.setenv("FUNDL_BLAS", "numpy")
    assert not R.sweep_plan("lstm", x, (), threads=2).own_gemm


@pytest.mark.parametrize("vendor,want", [("GenuineIntel", "mkl"), ("AuthenticAMD", "numpy"),
                                         ("", "numpy")])
def test_auto_takes_mkl_only_on_intel_cpus(vendor, want, fresh_choice):
    """MKL was measured slower than OpenBLAS on an AMD EPYC: 'auto' keeps NumPy's there."""
    if blas._checked(blas._mkl, np.dtype(np.float32)) is None:
        pytest.skip("MKL is not installed (pip install 'fundl[mkl]')")
    fresh_choice.delenv("FUNDL_BLAS", raising=False)
    fresh_choice.setattr(blas, "cpu_vendor", lambda: vendor)
    assert blas.library() == want
    fresh_choice.setattr(runtime.state(), "gemm", {})
    fresh_choice.setenv("FUNDL_BLAS", "mkl")  # asked for: on any CPU
    assert blas.library() == "mkl"


def test_cpu_vendor_is_a_string():
    assert isinstance(blas.cpu_vendor(), str)


# -- the ops with the kernel ----------------------------------------------------------------------
def _problem(cell, dtype, batch=37, steps=6, features=5, units=9, seed=0):
    rng = np.random.default_rng(seed)
    g = 4 if cell == "lstm" else 3
    x = rng.standard_normal((batch, steps, features)).astype(dtype)
    w = (rng.standard_normal((features, g * units)) * 0.4).astype(dtype)
    u = (rng.standard_normal((units, g * units)) * 0.4).astype(dtype)
    b = (rng.standard_normal((g * units,) if cell == "lstm" else (2, g * units)) * 0.1
         ).astype(dtype)
    states = [rng.standard_normal((batch, units)).astype(dtype)
              for _ in range(2 if cell == "lstm" else 1)]
    mask = rng.random((batch, steps)) > 0.25
    rm = ((rng.random((batch, units)) > 0.2) / 0.8).astype(dtype)
    v = rng.standard_normal((batch, steps, units)).astype(dtype)
    return x, w, u, b, states, mask, rm, v


def _run(cell, arrays, masked, with_state):
    """Outputs and gradients of every input of one op call (the loss: a fixed projection of
    the sequence plus the final states' sums)."""
    x, w, u, b, states, mask, rm, v = arrays
    ts = [fl.tensor(a, requires_grad=True) for a in (x, w, u, b, *states)]
    op = fl.lstm if cell == "lstm" else fl.gru
    init = ts[4:] if with_state else None
    out = op(*ts[:4], init, mask=mask if masked else None,
             recurrent_dropout_mask=rm if masked else None)
    loss = (out[0] * fl.tensor(v)).sum()
    for s in out[1:]:
        loss = loss + s.sum()
    loss.backward()
    used = ts if with_state else ts[:4]
    return [o.numpy() for o in out] + [t.grad for t in used]


@pytest.mark.parametrize("masked,with_state", [(False, False), (True, True)],
                         ids=["plain", "mask-dropout-h0"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_ops_with_fundls_gemm_match_blas_and_the_python_loop(cell, masked, with_state,
                                                             fresh_choice):
    """float32, several batch parts: the compiled loops with matmul_nt, with BLAS's GEMM
    (FUNDL_BLAS=numpy) and the Python loop (NumPy's matmul, step references) agree."""
    _needs_numba()
    if blas.gemm_function(np.float32) is None:
        pytest.skip("no reachable GEMM here")
    arrays = _problem(cell, np.float32)
    x = arrays[0]
    fresh_choice.delenv("FUNDL_BLAS", raising=False)
    plan = R.sweep_plan(cell, x, (), threads=2, min_rows=8)
    assert plan.compiled and plan.own_gemm
    own = _run(cell, arrays, masked, with_state)
    fresh_choice.setenv("FUNDL_BLAS", "numpy")
    fresh_choice.setattr(runtime.state(), "gemm", {})
    assert not R.sweep_plan(cell, x, (), threads=2).own_gemm
    lib = _run(cell, arrays, masked, with_state)
    old = R.use_compiled(False)
    try:
        loop = _run(cell, arrays, masked, with_state)
    finally:
        R.use_compiled(old)
    for a, b_, c in zip(own, lib, loop):
        np.testing.assert_allclose(a, c, rtol=2e-4, atol=2e-4)
        np.testing.assert_allclose(b_, c, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_float32_compiled_ops_match_torch(cell, fresh_choice):
    """The default CPU path (float32, compiled loops, fundl's GEMM) against PyTorch's LSTM/GRU."""
    torch = pytest.importorskip("torch")
    _needs_numba()
    fresh_choice.delenv("FUNDL_BLAS", raising=False)
    x, w, u, b, states, _, _, v = _problem(cell, np.float32, batch=64, steps=7, units=16)
    n = u.shape[0]
    ts = [fl.tensor(a, requires_grad=True) for a in (x, w, u, b)]
    op = fl.lstm if cell == "lstm" else fl.gru
    y = op(*ts)[0]
    (y * fl.tensor(v)).sum().backward()
    m = getattr(torch.nn, cell.upper())(x.shape[2], n, batch_first=True)
    if cell == "lstm":  # gates i, f, c, o in both
        params = (w.T, u.T, b, np.zeros_like(b))
        grads = lambda: (m.weight_ih_l0.grad.numpy().T, m.weight_hh_l0.grad.numpy().T)  # noqa
    else:  # Keras z, r, h -> PyTorch r, z, n
        order = np.r_[n:2 * n, 0:n, 2 * n:3 * n]
        back = np.argsort(order)
        params = (w[:, order].T, u[:, order].T, b[0, order], b[1, order])
        grads = lambda: (m.weight_ih_l0.grad.numpy().T[:, back],  # noqa
                         m.weight_hh_l0.grad.numpy().T[:, back])
    with torch.no_grad():
        for p, a in zip((m.weight_ih_l0, m.weight_hh_l0, m.bias_ih_l0, m.bias_hh_l0), params):
            p.copy_(torch.from_numpy(np.ascontiguousarray(a)))
    tx = torch.from_numpy(x).requires_grad_()
    ty = m(tx)[0]
    (ty * torch.from_numpy(v)).sum().backward()
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ts[0].grad, tx.grad.numpy(), rtol=1e-3, atol=1e-4)
    for got, want in zip((ts[1].grad, ts[2].grad), grads()):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)


@pytest.mark.slow  # compiles the float64 drivers (a minute or more)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_compiled_loops_with_fundls_gemm_pass_a_float64_gradcheck(cell, fresh_choice):
    """The op's float64 calls normally take the Python loop; here the compiled loops (with
    matmul_nt) are forced on for float64 and checked against finite differences."""
    _needs_numba()
    if blas.gemm_function(np.float64) is None:
        pytest.skip("no reachable GEMM here")
    fresh_choice.delenv("FUNDL_BLAS", raising=False)
    fresh_choice.setattr(R, "_pick", lambda name, arrays, a, ra: R.compiled(name))
    x, w, u, b, states, mask, rm, v = _problem(cell, np.float64, batch=6, steps=4, features=3,
                                               units=3)
    assert R.sweep_plan(cell, x, (), threads=2, min_rows=2).own_gemm
    op = fl.lstm if cell == "lstm" else fl.gru

    def fn(x_, w_, u_, b_, *s):
        out = op(x_, w_, u_, b_, list(s), mask=mask, recurrent_dropout_mask=rm)
        total = (out[0] * fl.tensor(v[:, :, :3])).sum()
        for o in out[1:]:
            total = total + (o * o).sum()
        return total

    inputs = [fl.tensor(a, requires_grad=True) for a in (x, w, u, b, *states)]
    assert gradcheck(fn, inputs, atol=1e-6, rtol=1e-5)
