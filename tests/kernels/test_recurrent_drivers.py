"""The compiled LSTM/GRU drivers (whole time loops over batch parts) against their
plain-NumPy references in fundl.kernels.recurrent (independent Python loops, not py_func)."""
import numpy as np
import pytest

from fundl import kernels
from fundl.kernels import blas
from fundl.kernels import convolution
from fundl.kernels import gemm
from fundl.kernels import recurrent as R

T, D, H = 5, 3, 4


def _inputs(cell, dtype, batch, los, masked, dropout, from_state, bias, seed):
    rng = np.random.default_rng(seed)
    g = 4 if cell == "lstm" else 3
    parts = list(zip(los, list(los[1:]) + [batch]))
    x = rng.standard_normal((T, batch, D)).astype(dtype)
    ones = 1 if bias else 0
    hx1s = []
    for lo, hi in parts:
        hx1 = np.zeros((T, hi - lo, H + D + ones), dtype)
        hx1[..., H:H + D] = x[:, lo:hi]
        if bias:
            hx1[..., -1] = 1
        hx1s.append(hx1)
    wb = (rng.standard_normal((D + ones, g * H)) * 0.5).astype(dtype)
    u = (rng.standard_normal((H, g * H)) * 0.5).astype(dtype)
    hs = np.zeros((T + 1, batch, H), dtype)
    cs = np.zeros((T + 1, batch, H), dtype)
    if from_state:
        hs[0] = rng.standard_normal((batch, H))
        cs[0] = rng.standard_normal((batch, H))
    mask = (rng.random((T, batch)) > 0.3).astype(np.uint8) if masked else \
        np.zeros((0, 0), np.uint8)
    rm = (rng.random((batch, H)) > 0.2).astype(dtype) / 0.8 if dropout else \
        np.zeros((0, 0), dtype)
    rbias = rng.standard_normal(g * H).astype(dtype)
    gy = rng.standard_normal((batch, T, H)).astype(dtype)
    return dict(hx1s=hx1s, wb=wb, u=u, hs=hs, cs=cs, mask=mask, rm=rm, rbias=rbias, gy=gy,
                g=g, parts=parts, rng=rng, x=x)


CASES = [  # (batch, part starts, masked, dropout, from_state, bias)
    (6, (0,), False, False, False, True),
    (7, (0, 3), True, False, True, True),
    (9, (0, 2, 6), True, True, False, False),
    (8, (0, 4), False, True, True, True),
]


def _driver_gemms(name, dtype, small):
    """(cblas GEMM, small_gemms triple) for a driver test of kernel ``name``: the small
    kernels with ``small`` (skipped where this CPU or NumPy's OpenBLAS has none), else
    stand-ins never called; skipped without Numba or a reachable GEMM."""
    if R.compiled(name) is None:
        pytest.skip("Numba is not installed")
    fn = blas.gemm_function(dtype)
    if fn is None:
        pytest.skip("no reachable GEMM here")
    gemms = convolution.small_gemms(dtype)
    if small and not gemms[2]:
        pytest.skip("OpenBLAS's AVX-512 small kernels are not usable here")
    if not small:
        gemms = convolution.small_gemms(np.float64)  # the stand-ins, never called
    assert gemms[2] == small
    return fn, gemms


@pytest.mark.parametrize("dtype", [  # float64 compiles every driver once more (~minutes)
    np.float32, pytest.param(np.float64, marks=pytest.mark.slow)], ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"B{c[0]}-parts{len(c[1])}"
                         f"{'-mask' if c[2] else ''}{'-dropout' if c[3] else ''}"
                         f"{'-h0' if c[4] else ''}{'-bias' if c[5] else ''}")
@pytest.mark.parametrize("own_gemm,small", [(True, False), (False, False), (True, True)],
                         ids=["matmul_nt", "blas", "matmul_nt-small"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_driver_matches_its_numpy_reference(cell, case, dtype, own_gemm, small):
    """``small``: the input projections and weight gradients in OpenBLAS's AVX-512 small
    kernels (convolution.small_gemms, float32 on AVX-512 CPUs only), else in cblas."""
    fn, gemms = _driver_gemms(f"{cell}_forward_parts", dtype, small)
    batch, los, masked, dropout, from_state, bias = case
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == np.float64 else dict(rtol=3e-4, atol=3e-4)
    results = []
    empty = np.zeros((0, 0), dtype)
    for compiled in (True, False):
        a = _inputs(cell, dtype, batch, los, masked, dropout, from_state, bias, seed=1)
        g, parts, rng = a["g"], a["parts"], a["rng"]
        gates = np.zeros((T, batch, 4 * H), dtype)
        xzs = tuple(np.zeros((T, hi - lo, g * H), dtype) for lo, hi in parts)
        hzs = tuple(np.zeros((hi - lo, g * H), dtype) for lo, hi in parts)
        hx1s = tuple(a["hx1s"])
        ut = np.ascontiguousarray(a["u"].T)
        # the steps' products: kernels.recurrent.matmul_nt on U^T / U, or BLAS on U / U^T
        fwd_bt, bwd_bt = (ut, a["u"]) if own_gemm else (empty, empty)
        name = f"{cell}_forward_parts"
        if cell == "lstm":  # one product per step: [h, x, 1] @ [U; W; b] (or its transpose)
            uwb = np.concatenate([a["u"], a["wb"]])
            uwbt = np.ascontiguousarray(uwb.T) if own_gemm else empty
            # the driver writes every column of [h, x, 1] itself (NaN: none left out), from
            # the batch-major inputs, last step first with backwards (x reversed: the same rows)
            backwards = len(parts) == 2
            xb = np.ascontiguousarray(a["x"].transpose(1, 0, 2)[:, ::-1 if backwards else 1])
            hx1s = tuple(np.full_like(h, np.nan) for h in hx1s)
            # U^T for the backward, each part writing a share of it (NaN: none left out)
            ut_fwd = np.full((4 * H, H), np.nan, dtype)
            args = (fn, *gemms, xb, backwards, bias, hx1s, uwb, uwbt, a["hs"], a["cs"], gates,
                    los, a["mask"], a["rm"], from_state, ut_fwd)
        else:
            args = (fn, *gemms, hx1s, a["wb"], a["u"], fwd_bt, xzs, hzs, a["rbias"], a["hs"],
                    gates, los, a["mask"], a["rm"], from_state)
        if compiled:
            kernels.map_compiled(R.compiled(name), len(parts), *args)
        else:
            R.REFERENCES[name](*args)
        for filled, built in zip(hx1s, a["hx1s"]):  # x, the ones, as _inputs built them
            np.testing.assert_array_equal(filled[..., H:], built[..., H:])
        if cell == "lstm":
            np.testing.assert_array_equal(ut_fwd, ut)
            if small:  # the backward's products on the forward's U^T, or with 3 parts on
                # each part's own transpose (ut (0, 0))
                ut = empty if len(parts) == 3 else ut_fwd
        dh = rng.standard_normal((batch, H)).astype(dtype)
        name = f"{cell}_backward_parts"
        if cell == "lstm":
            dc = rng.standard_normal((batch, H)).astype(dtype)
            dc_prev = np.zeros_like(dc)
            dzs = tuple(np.zeros((T, hi - lo, 4 * H), dtype) for lo, hi in parts)
            # NaN: the GEMMs must overwrite them (OpenBLAS's small nt kernel reads c)
            dalls = tuple(np.full((H + D + bias, 4 * H), np.nan, dtype) for _ in parts)
            args = (fn, *gemms, hx1s, ut, bwd_bt, a["cs"], gates, dzs, a["gy"], dh, dc, dc_prev,
                    los, a["mask"], a["rm"], True, dalls)
            outs = [dzs, dh, dc, dc_prev, dalls]
        else:
            dh_direct = np.zeros_like(dh)
            dxzs = tuple(np.zeros((T, hi - lo, 3 * H), dtype) for lo, hi in parts)
            dhzs = tuple(np.zeros((T, hi - lo, 3 * H), dtype) for lo, hi in parts)
            dwbs = tuple(np.full((D + bias, 3 * H), np.nan, dtype) for _ in parts)
            dus = tuple(np.full((H, 3 * H), np.nan, dtype) for _ in parts)
            drbs = tuple(np.zeros(3 * H, dtype) for _ in parts)
            args = (fn, *gemms, hx1s, ut, bwd_bt, a["hs"], gates, dxzs, dhzs, a["gy"], dh,
                    dh_direct, los, a["mask"], a["rm"], True, dwbs, dus, drbs)
            outs = [dxzs, dhzs, dh, dwbs, dus, drbs]
        if compiled:
            kernels.map_compiled(R.compiled(name), len(parts), *args)
        else:
            R.REFERENCES[name](*args)
        results.append([hx1s, a["hs"], a["cs"], gates] + outs)
    got, want = results

    def flat(v):
        return list(v) if isinstance(v, (tuple, list)) else [v]

    for g_, w_ in zip(got, want):
        for x, y in zip(flat(g_), flat(w_)):
            np.testing.assert_allclose(x, y, **tol)


def test_references_agree_with_the_step_references_on_one_part():
    """The driver reference over one part is the textbook LSTM: h_1 of a single step."""
    dtype = np.float64
    a = _inputs("lstm", dtype, 3, (0,), False, False, False, True, seed=4)
    gates = np.zeros((T, 3, 4 * H), dtype)
    R.lstm_forward_parts_reference(None, None, None, False, a["x"].transpose(1, 0, 2), False,
                                   True, a["hx1s"], np.concatenate([a["u"], a["wb"]]), None,
                                   a["hs"], a["cs"], gates, (0,), a["mask"], a["rm"], False,
                                   np.zeros((0, 0), dtype))
    x0 = a["hx1s"][0][0, :, H:]
    z = x0 @ a["wb"]
    sig = 1 / (1 + np.exp(-z))
    c1 = sig[:, :H] * np.tanh(z[:, 2 * H:3 * H])
    np.testing.assert_allclose(a["cs"][1], c1, rtol=1e-12)
    np.testing.assert_allclose(a["hs"][1], sig[:, 3 * H:] * np.tanh(c1), rtol=1e-12)


INFER_CASES = [  # (batch, part starts, from_state, bias, backwards, sequence, features)
    (6, (0,), False, True, False, True, D),
    (7, (0, 3), True, True, True, True, D),
    (9, (0, 2, 6), False, False, False, False, D),
    (33, (0, 17), True, True, False, True, 29),  # K = H + D + 1 = 34 rows, padded to 64
]


@pytest.mark.parametrize("dtype", [
    np.float32, pytest.param(np.float64, marks=pytest.mark.slow)], ids=["float32", "float64"])
@pytest.mark.parametrize("case", INFER_CASES, ids=lambda c: f"B{c[0]}-parts{len(c[1])}"
                         f"{'-h0' if c[2] else ''}{'-bias' if c[3] else ''}"
                         f"{'-backwards' if c[4] else ''}{'-seq' if c[5] else ''}-D{c[6]}")
@pytest.mark.parametrize("small", [False, True], ids=["blas", "small"])
def test_lstm_infer_driver_matches_its_numpy_reference(case, dtype, small):
    """The inference loop (the steps' products transposed, the batch along the columns)
    against its plain-NumPy reference: the sequence and both final states; the rows of
    [U; W; b; 0] past the bias are zero padding, as the op builds it."""
    fn, gemms = _driver_gemms("lstm_infer_parts", dtype, small)
    batch, los, from_state, bias, backwards, sequence, d = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal((batch, T, d)).astype(dtype)
    used = H + d + bias
    uwb = np.zeros((-(-used // 32) * 32, 4 * H), dtype)
    uwb[:used] = rng.standard_normal((used, 4 * H)) * 0.5
    h0, c0 = (rng.standard_normal((2, batch, H)).astype(dtype) if from_state else
              (np.zeros((0, 0), dtype),) * 2)
    his = tuple(los[1:]) + (batch,)
    nt0, b0 = convolution.small_b0_nt(dtype if small else np.float64)  # (stand-in without)
    results = []
    # the compiled loop (with the small kernels: through the beta-0 "nt" kernel, then the
    # "nt" kernel on a zeroed block, as without it; where fundl's micro-kernel runs, first
    # on the packed panels), then the reference
    no_panels = np.zeros((len(los), 0), np.float32)
    panels = np.full((len(los), gemm.panels_size(4 * H, len(uwb))), np.nan, np.float32)
    variants = ([(kernels.map_compiled, True, panels)] if b0 and R._OWN_STEPS else []) + \
        [(kernels.map_compiled, b0, no_panels)] + \
        ([(kernels.map_compiled, False, no_panels)] if b0 else [])
    for run, use_b0, scratch in variants + [(None, False, no_panels)]:
        seq = np.full((batch, T, H), np.nan, dtype) if sequence else np.zeros((0, 0, 0), dtype)
        h_last, c_last = np.full((2, batch, H), np.nan, dtype)
        args = (fn, *gemms, x, uwb, seq, h_last, c_last, h0, c0, los, his, backwards, nt0,
                use_b0, scratch)
        if run is None:
            R.REFERENCES["lstm_infer_parts"](*args)
        else:
            run(R.compiled("lstm_infer_parts"), len(los), *args)
        results.append((seq, h_last, c_last))
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == np.float64 else dict(rtol=3e-5, atol=3e-5)
    for got, want in zip(results[0], results[-1]):
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, want, **tol)
    if b0:  # the beta-0 kernel's products are the zeroed "nt" kernel's, bit for bit
        for got, want in zip(results[-3], results[-2]):
            np.testing.assert_array_equal(got, want)
    if sequence:  # the last state of the sequence is h_last
        np.testing.assert_array_equal(results[0][0][:, -1], results[0][1])
