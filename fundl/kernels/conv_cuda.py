"""im2col and col2im as one CUDA kernel each (CuPy), for CuPy arrays.

Same layouts, arguments and results as :func:`fundl.kernels.conv.im2col_reference` and
:func:`~fundl.kernels.conv.col2im_reference` (see that module for the index formulas). The
references loop over the kernel's taps in Python, two or three CuPy launches per tap; on the
GPU, where a small network's step is bound by launches rather than arithmetic, that was a
third of a ResNet-20 step. Here every output element is one thread:

- ``im2col``: a gather, each entry of cols reads the one input element it copies (or is the 1
  of the bias column);
- ``col2im``: also a gather (no atomics), each input element sums the cols entries of the taps
  that read it: for tap (a, b, e) the output position must satisfy ``o * s + t * d = x``.

The index arithmetic (a dozen divisions per element) runs in 32-bit integers when every
index fits, 64-bit otherwise: GPUs have no 64-bit integer divider, and emulating one made the
kernels several times slower.
"""
from __future__ import annotations

from .conv import _out_shape

_GEOMETRY = ("int32 N, int32 D, int32 H, int32 W, int32 C, int32 Do, int32 Ho, int32 Wo, "
             "int32 kd, int32 kh, int32 kw, int32 sd, int32 sh, int32 sw, int32 dd, int32 dh, "
             "int32 dw, int32 cg, int32 width")

_IM2COL = """
    const IDX M = (IDX)N * Do * Ho * Wo;
    const IDX ii = (IDX)i;
    const IDX k = ii % width, rest = ii / width;
    const IDX m = rest % M, g = rest / M;
    if (k >= (IDX)kd * kh * kw * cg) {
        cols = T(1);
    } else {
        const int c = k % cg;
        IDX t = k / cg;
        const int e = t % kw; t /= kw;
        const int b = t % kh, a = t / kh;
        IDX r = m;
        const int ow = r % Wo; r /= Wo;
        const int oh = r % Ho; r /= Ho;
        const int od = r % Do;
        const IDX n = r / Do;
        cols = x[(((n * D + od * sd + a * dd) * H + oh * sh + b * dh) * W + ow * sw + e * dw)
                 * C + g * cg + c];
    }
"""

_COL2IM = """
    const IDX M = (IDX)N * Do * Ho * Wo;
    const int ch = (IDX)i % C;
    IDX r = (IDX)i / C;
    const int xw = r % W; r /= W;
    const int xh = r % H; r /= H;
    const int xd = r % D;
    const IDX n = r / D;
    const int g = ch / cg, c = ch % cg;
    T acc = 0;
    for (int a = 0; a < kd; ++a) {
        const int zd = xd - a * dd;
        if (zd < 0 || zd % sd || zd / sd >= Do) continue;
        for (int b = 0; b < kh; ++b) {
            const int zh = xh - b * dh;
            if (zh < 0 || zh % sh || zh / sh >= Ho) continue;
            for (int e = 0; e < kw; ++e) {
                const int zw = xw - e * dw;
                if (zw < 0 || zw % sw || zw / sw >= Wo) continue;
                const IDX m = ((n * Do + zd / sd) * Ho + zh / sh) * Wo + zw / sw;
                acc += cols[(g * M + m) * width + ((a * kh + b) * kw + e) * cg + c];
            }
        }
    }
    gx = acc;
"""

_kernels = {}


def _kernel(name, wide):
    """The kernel ``name`` ("im2col", "col2im") with 64-bit (``wide``) or 32-bit indices."""
    k = _kernels.get((name, wide))
    if k is None:
        import cupy

        body = (_IM2COL if name == "im2col" else _COL2IM).replace(
            "IDX", "long long" if wide else "int")
        params = ("raw T x, " if name == "im2col" else "raw T cols, ") + _GEOMETRY
        out = "T cols" if name == "im2col" else "T gx"
        k = cupy.ElementwiseKernel(params, out, body, f"fundl_{name}_{64 if wide else 32}")
        _kernels[(name, wide)] = k
    return k


def _wide(*arrays):
    return max(a.size for a in arrays) >= 2 ** 31


def _geometry(x_shape, ksize, strides, dilation, groups, width):
    out = _out_shape(x_shape, ksize, strides, dilation)
    return (*x_shape, *out, *ksize, *strides, *dilation, x_shape[4] // groups, width)


def im2col(x, ksize, strides, dilation, groups, ones=False):
    """:func:`fundl.kernels.conv.im2col_reference` as one kernel (CuPy arrays)."""
    import cupy

    x = cupy.ascontiguousarray(x)
    n, c = x.shape[0], x.shape[4]
    out = _out_shape(x.shape, ksize, strides, dilation)
    width = ksize[0] * ksize[1] * ksize[2] * (c // groups) + (1 if ones else 0)
    cols = cupy.empty((groups, n * out[0] * out[1] * out[2], width), dtype=x.dtype)
    _kernel("im2col", _wide(x, cols))(x, *_geometry(x.shape, ksize, strides, dilation, groups,
                                                     width), cols)
    return cols


def col2im(cols, x_shape, ksize, strides, dilation, groups):
    """:func:`fundl.kernels.conv.col2im_reference` as one kernel (CuPy arrays)."""
    import cupy

    cols = cupy.ascontiguousarray(cols)
    gx = cupy.empty(tuple(x_shape), dtype=cols.dtype)
    _kernel("col2im", _wide(cols, gx))(cols, *_geometry(tuple(x_shape), ksize, strides,
                                                        dilation, groups, cols.shape[2]), gx)
    return gx
