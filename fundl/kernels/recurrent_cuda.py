"""The LSTM and GRU gate math as one CUDA kernel per step (CuPy), for the default activations.

On the GPU a recurrent step is launch-bound, not arithmetic-bound: the plain-``xp`` references
of :mod:`fundl.kernels.recurrent` launch a dozen or more element-wise kernels per step (about
25 ms per LSTM training step of 28 steps x 64 x 128 on an H100, nearly all of it launches).
Here each step's gate math is one ``cupy.ElementwiseKernel`` over the (batch, units) grid,
with the same signatures and results as the references (the tests compare them on a GPU).

Every array is C-contiguous; ``i`` is the flat (batch, unit) index, ``H`` the number of units,
and the gate blocks of a row are ``H`` apart (Keras layout: LSTM ``[i, f, c, o]``, GRU
``[z, r, h]``; the GRU's kept gates ``[z, r, n, hn]``). ``sigmoid(x) = 0.5 tanh(0.5 x) + 0.5``
as on the CPU (it never overflows).
"""
from __future__ import annotations

_PREAMBLE = """
template <typename U> __device__ U fundl_sigmoid(U x) { return U(0.5) * tanh(U(0.5) * x) + U(0.5); }
"""

_SOURCES = {
    "lstm_forward": (
        "raw T xz, raw T hz, T c_prev, int32 H", "raw T gates, T c, T h",
        """
        const ptrdiff_t row = (i / H) * 4 * H + i % H;
        const T ig = fundl_sigmoid(xz[row] + hz[row]);
        const T fg = fundl_sigmoid(xz[row + H] + hz[row + H]);
        const T gg = tanh(xz[row + 2 * H] + hz[row + 2 * H]);
        const T og = fundl_sigmoid(xz[row + 3 * H] + hz[row + 3 * H]);
        gates[row] = ig; gates[row + H] = fg; gates[row + 2 * H] = gg; gates[row + 3 * H] = og;
        const T cn = fg * c_prev + ig * gg;
        c = cn;
        h = og * tanh(cn);
        """),
    "lstm_backward": (
        "T dh, T dc, raw T gates, T c_prev, T c, int32 H", "raw T dz, T dc_prev",
        """
        const ptrdiff_t row = (i / H) * 4 * H + i % H;
        const T ig = gates[row], fg = gates[row + H], gg = gates[row + 2 * H];
        const T og = gates[row + 3 * H];
        const T tc = tanh(c);
        const T dct = dc + dh * og * (T(1) - tc * tc);
        dz[row] = dct * gg * ig * (T(1) - ig);
        dz[row + H] = dct * c_prev * fg * (T(1) - fg);
        dz[row + 2 * H] = dct * ig * (T(1) - gg * gg);
        dz[row + 3 * H] = dh * tc * og * (T(1) - og);
        dc_prev = dct * fg;
        """),
    "gru_forward": (
        "raw T xz, raw T hz, raw T recurrent_bias, T h_prev, int32 H", "raw T gates, T h",
        """
        const ptrdiff_t b = i / H, j = i % H, r3 = b * 3 * H + j, r4 = b * 4 * H + j;
        const T z = fundl_sigmoid(xz[r3] + hz[r3] + recurrent_bias[j]);
        const T r = fundl_sigmoid(xz[r3 + H] + hz[r3 + H] + recurrent_bias[H + j]);
        const T hn = hz[r3 + 2 * H] + recurrent_bias[2 * H + j];
        const T cand = tanh(xz[r3 + 2 * H] + r * hn);
        gates[r4] = z; gates[r4 + H] = r; gates[r4 + 2 * H] = cand; gates[r4 + 3 * H] = hn;
        h = z * h_prev + (T(1) - z) * cand;
        """),
    "gru_backward": (
        "T dh, raw T gates, T h_prev, int32 H", "raw T dxz, raw T dhz, T dh_prev",
        """
        const ptrdiff_t b = i / H, j = i % H, r3 = b * 3 * H + j, r4 = b * 4 * H + j;
        const T z = gates[r4], r = gates[r4 + H], cand = gates[r4 + 2 * H];
        const T hn = gates[r4 + 3 * H];
        const T dan = dh * (T(1) - z) * (T(1) - cand * cand);
        const T dzz = dh * (h_prev - cand) * z * (T(1) - z);
        const T dzr = dan * hn * r * (T(1) - r);
        dxz[r3] = dzz; dxz[r3 + H] = dzr; dxz[r3 + 2 * H] = dan;
        dhz[r3] = dzz; dhz[r3 + H] = dzr; dhz[r3 + 2 * H] = dan * r;
        dh_prev = dh * z;
        """),
}

_kernels = {}


def _kernel(name):
    """The CuPy kernel ``name`` (created on first use; CuPy compiles it at its first call)."""
    k = _kernels.get(name)
    if k is None:
        import cupy

        in_params, out_params, body = _SOURCES[name]
        k = cupy.ElementwiseKernel(in_params, out_params, body, f"fundl_{name}",
                                   preamble=_PREAMBLE)
        _kernels[name] = k
    return k


def lstm_forward(xz, hz, c_prev, gates, c, h):
    """:func:`fundl.kernels.recurrent.lstm_forward_step_reference`, default activations."""
    _kernel("lstm_forward")(xz, hz, c_prev, c.shape[1], gates, c, h)


def lstm_backward(dh, dc, gates, c_prev, c, dz, dc_prev):
    """:func:`fundl.kernels.recurrent.lstm_backward_step_reference`, default activations."""
    _kernel("lstm_backward")(dh, dc, gates, c_prev, c, c.shape[1], dz, dc_prev)


def gru_forward(xz, hz, recurrent_bias, h_prev, gates, h):
    """:func:`fundl.kernels.recurrent.gru_forward_step_reference`, default activations."""
    _kernel("gru_forward")(xz, hz, recurrent_bias, h_prev, h.shape[1], gates, h)


def gru_backward(dh, gates, h_prev, dxz, dhz, dh_prev):
    """:func:`fundl.kernels.recurrent.gru_backward_step_reference`, default activations."""
    _kernel("gru_backward")(dh, gates, h_prev, dh.shape[1], dxz, dhz, dh_prev)


KERNELS = {"lstm_forward": lstm_forward, "lstm_backward": lstm_backward,
           "gru_forward": gru_forward, "gru_backward": gru_backward}
"""Name -> function with the signature of the matching ``*_step_reference``."""
