"""fundl.kernels.recurrent: the compiled LSTM/GRU gate kernels against their plain-xp references."""
import numpy as np
import pytest

import fundl as fl
from fundl.kernels import recurrent as K

B, H = 5, 7


def _inputs(dtype, scale=3.0, seed=0):
    rng = np.random.default_rng(seed)

    def r(*shape, s=scale):
        return (rng.standard_normal(shape) * s).astype(dtype)

    return r


def _run_pair(name, reference, args, outs_shapes, dtype):
    """Run the compiled kernel and the reference on the same inputs; return both outputs."""
    kernel = K.compiled(name)
    got = [np.full(s, np.nan, dtype) for s in outs_shapes]
    want = [np.full(s, np.nan, dtype) for s in outs_shapes]
    kernel(*args, *got)
    reference(*args, *want)
    return got, want


def _lstm_forward_args(dtype):
    r = _inputs(dtype)
    return [r(B, 4 * H), r(B, 4 * H), r(B, H)]


def _lstm_backward_args(dtype):
    r = _inputs(dtype, seed=1)
    gates = np.concatenate([1 / (1 + np.exp(-r(B, 2 * H))), np.tanh(r(B, H)),
                            1 / (1 + np.exp(-r(B, H)))], axis=1).astype(dtype)
    return [r(B, H), r(B, H), gates, r(B, H), r(B, H)]


def _gru_forward_args(dtype):
    r = _inputs(dtype, seed=2)
    return [r(B, 3 * H), r(B, 3 * H), r(3 * H, s=1.0), r(B, H, s=1.0)]


def _gru_backward_args(dtype):
    r = _inputs(dtype, seed=3)
    gates = np.concatenate([1 / (1 + np.exp(-r(B, 2 * H))), np.tanh(r(B, H)), r(B, H)],
                           axis=1).astype(dtype)
    return [r(B, H), gates, r(B, H)]


CASES = {
    "lstm_forward": (K.lstm_forward_step_reference, _lstm_forward_args,
                     [(B, 4 * H), (B, H), (B, H)]),
    "lstm_backward": (K.lstm_backward_step_reference, _lstm_backward_args,
                      [(B, 4 * H), (B, H)]),
    "gru_forward": (K.gru_forward_step_reference, _gru_forward_args, [(B, 4 * H), (B, H)]),
    "gru_backward": (K.gru_backward_step_reference, _gru_backward_args,
                     [(B, 3 * H), (B, 3 * H), (B, H)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_matches_reference_in_float64(name):
    pytest.importorskip("numba")
    reference, make_args, shapes = CASES[name]
    got, want = _run_pair(name, reference, make_args(np.float64), shapes, np.float64)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_matches_reference_in_float32(name):
    pytest.importorskip("numba")
    reference, make_args, shapes = CASES[name]
    got, want = _run_pair(name, reference, make_args(np.float32), shapes, np.float32)
    for g, w in zip(got, want):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, w, rtol=2e-6, atol=2e-6)


def test_float32_tanh_is_within_a_few_ulps_everywhere():
    numba = pytest.importorskip("numba")

    @numba.njit
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = K.tanh_(x[i])

    x = np.concatenate([np.linspace(-30, 30, 200001), [0.0, 1e-30, -1e-8, 7.9, 7.91, 100.0]])
    x = x.astype(np.float32)
    out = np.empty_like(x)
    apply(x, out)
    exact = np.tanh(x.astype(np.float64))
    assert np.abs(out - exact).max() < 5e-7
    assert np.all(np.abs(out) <= 1) and np.all(np.sign(out) == np.sign(exact))


@pytest.mark.parametrize("name", sorted(CASES))
def test_nan_inputs_give_nan_outputs(name):
    pytest.importorskip("numba")  # a clamp written with min/max would hide NaNs as +-1
    reference, make_args, shapes = CASES[name]
    args = make_args(np.float32)
    args[0][0, 0] = np.nan
    got, want = _run_pair(name, reference, args, shapes, np.float32)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
    assert np.isnan(got[-1][0]).any()


def test_float32_sigmoid_saturates_without_overflow():
    numba = pytest.importorskip("numba")

    @numba.njit
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = K.sigmoid_(x[i])

    x = np.array([-1e4, -50, -5, 0, 5, 50, 1e4], np.float32)
    out = np.empty_like(x)
    with np.errstate(all="raise"):
        apply(x, out)
    np.testing.assert_allclose(out, 0.5 * np.tanh(0.5 * x.astype(np.float64)) + 0.5, atol=3e-7)


def test_dispatcher_uses_the_reference_when_switched_off():
    args = _lstm_forward_args(np.float32)
    outs = [np.empty((B, 4 * H), np.float32), np.empty((B, H), np.float32),
            np.empty((B, H), np.float32)]
    ref = [np.empty_like(o) for o in outs]
    old = K.use_compiled(False)
    try:
        K.lstm_forward_step(*args, *outs)
    finally:
        K.use_compiled(old)
    K.lstm_forward_step_reference(*args, *ref)
    for a, b in zip(outs, ref):
        np.testing.assert_array_equal(a, b)


def test_dispatcher_handles_activations_the_kernel_does_not_have():
    # relu/linear are not compiled: the dispatcher must fall back to the reference
    args = _gru_forward_args(np.float32)
    outs = [np.empty((B, 4 * H), np.float32), np.empty((B, H), np.float32)]
    ref = [np.empty_like(o) for o in outs]
    K.gru_forward_step(*args, *outs, activation="relu", recurrent_activation="linear")
    K.gru_forward_step_reference(*args, *ref, activation="relu", recurrent_activation="linear")
    for a, b in zip(outs, ref):
        np.testing.assert_array_equal(a, b)
    cand = outs[0][:, 2 * H:3 * H]
    assert (cand >= 0).all()  # relu candidate


def test_reference_lstm_forward_is_the_textbook_formula():
    xz, hz, c_prev = _lstm_forward_args(np.float64)
    gates, c, h = np.empty((B, 4 * H)), np.empty((B, H)), np.empty((B, H))
    K.lstm_forward_step_reference(xz, hz, c_prev, gates, c, h)
    z = xz + hz
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    i, f, g, o = sig(z[:, :H]), sig(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), sig(z[:, 3 * H:])
    np.testing.assert_allclose(c, f * c_prev + i * g, rtol=1e-12)
    np.testing.assert_allclose(h, o * np.tanh(f * c_prev + i * g), rtol=1e-12)


@pytest.mark.gpu
@pytest.mark.skipif(not fl.gpu_available(), reason="needs CuPy and an NVIDIA GPU")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(CASES))
def test_cuda_kernel_matches_reference(name, dtype):
    import cupy

    from fundl.kernels import recurrent_cuda

    reference, make_args, shapes = CASES[name]
    args = [cupy.asarray(a) for a in make_args(dtype)]
    got = [cupy.full(s, np.nan, dtype) for s in shapes]
    want = [cupy.full(s, np.nan, dtype) for s in shapes]
    recurrent_cuda.KERNELS[name](*args, *got)
    reference(*args, *want)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    for g, w in zip(got, want):
        assert g.dtype == dtype
        np.testing.assert_allclose(g.get(), w.get(), rtol=tol, atol=tol)
