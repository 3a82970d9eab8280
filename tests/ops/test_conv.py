"""conv / conv1d / conv2d / conv3d, conv2d_transpose and zero_pad: values, gradients, errors.

Every op goes through ``fundl.testing.check_op`` (float64 gradcheck, float32 gradient shapes, a
NumPy reference written here, and PyTorch when installed: torch is imported lazily inside the
reference lambdas, so the rest runs without it). Layouts: ours are Keras's (channels-last
inputs, kernels (k..., in, out)); the PyTorch lambdas permute to NCHW and (out, in, k...).
"""
import numpy as np
import pytest

import fundl as fl
from fundl.ops.conv import Conv, conv, conv1d, conv2d, conv2d_transpose, conv3d, zero_pad
from fundl.testing import assert_error, check_op


def _F():
    import torch.nn.functional

    return torch.nn.functional


def _np_conv(x, kernel, bias, strides, pads, dilation, groups):
    """Direct NumPy convolution, channels-last, one tap at a time (independent of im2col)."""
    dims = kernel.ndim - 2
    x = np.pad(x, ((0, 0),) + tuple(pads) + ((0, 0),))
    spatial = x.shape[1:-1]
    out = [(n - d * (k - 1) - 1) // s + 1
           for n, k, s, d in zip(spatial, kernel.shape[:dims], strides, dilation)]
    cg, og = kernel.shape[-2], kernel.shape[-1] // groups
    y = np.zeros((x.shape[0],) + tuple(out) + (kernel.shape[-1],))
    for tap in np.ndindex(*kernel.shape[:dims]):
        index = (slice(None),) + tuple(slice(t * d, t * d + s * (o - 1) + 1, s)
                                       for t, d, s, o in zip(tap, dilation, strides, out))
        window = x[index]
        for g in range(groups):
            y[..., g * og:(g + 1) * og] += (window[..., g * cg:(g + 1) * cg]
                                           @ kernel[tap][:, g * og:(g + 1) * og])
    return y if bias is None else y + bias


def _torch_conv(x, kernel, bias, strides, pads, dilation, groups, channels_first=False):
    """PyTorch's conv on our layouts; explicit (possibly uneven) pads go through F.pad."""
    F = _F()
    dims = kernel.dim() - 2
    if not channels_first:
        x = x.movedim(-1, 1)
    flat = [p for pair in reversed(pads) for p in pair]  # F.pad wants the last axis first
    x = F.pad(x, flat)
    w = kernel.permute(dims + 1, dims, *range(dims)).contiguous()
    y = getattr(F, f"conv{dims}d")(x, w, bias, stride=strides, dilation=dilation, groups=groups)
    return y if channels_first else y.movedim(1, -1)


CONV2D_CASES = [
    # x shape, kernel shape, strides, padding, resolved pads, dilation, groups
    ((2, 5, 6, 3), (3, 3, 3, 4), (1, 1), "valid", ((0, 0), (0, 0)), (1, 1), 1),
    ((2, 5, 6, 3), (3, 3, 3, 4), (1, 1), "same", ((1, 1), (1, 1)), (1, 1), 1),
    ((2, 6, 5, 2), (2, 2, 2, 3), (1, 1), "same", ((0, 1), (0, 1)), (1, 1), 1),  # extra pad at end
    ((2, 7, 6, 2), (3, 2, 2, 3), (2, 3), "same", ((1, 1), (0, 1)), (1, 1), 1),
    ((1, 7, 7, 2), (3, 3, 2, 2), (2, 2), "valid", ((0, 0), (0, 0)), (1, 1), 1),
    ((1, 7, 8, 2), (2, 3, 2, 3), (1, 1), "valid", ((0, 0), (0, 0)), (2, 2), 1),  # dilation
    ((1, 6, 6, 2), (3, 3, 2, 2), (1, 1), "same", ((2, 2), (2, 2)), (2, 2), 1),
    ((2, 5, 5, 4), (3, 3, 2, 6), (1, 1), 1, ((1, 1), (1, 1)), (1, 1), 2),  # groups, int padding
    ((1, 5, 5, 3), (3, 3, 1, 3), (1, 1), "same", ((1, 1), (1, 1)), (1, 1), 3),  # depthwise
    ((1, 5, 4, 2), (2, 2, 2, 2), (1, 2), ((1, 2), 0), ((1, 2), (0, 0)), (1, 1), 1),  # explicit
    ((1, 4, 4, 1), (4, 4, 1, 2), (1, 1), "valid", ((0, 0), (0, 0)), (1, 1), 1),  # 1x1 output
    # x is its own cols matrix (no im2col): 1x1 kernels at stride 1, a kernel as large as x
    ((2, 4, 5, 3), (1, 1, 3, 5), (1, 1), "valid", ((0, 0), (0, 0)), (1, 1), 1),
    ((2, 4, 5, 3), (1, 1, 3, 2), (1, 1), "same", ((0, 0), (0, 0)), (1, 1), 1),
    ((2, 3, 4, 3), (3, 4, 3, 7), (1, 1), "valid", ((0, 0), (0, 0)), (1, 1), 1),
    ((2, 4, 5, 3), (1, 1, 3, 5), (2, 2), "valid", ((0, 0), (0, 0)), (1, 1), 1),  # strided: im2col
    ((2, 4, 5, 4), (1, 1, 2, 6), (1, 1), "valid", ((0, 0), (0, 0)), (1, 1), 2),  # grouped: im2col
    # few output channels are computed in blocks along the width: one whose last block
    # overhangs the output (width 7, blocks of 3), one with strides, one wide enough for none
    ((2, 5, 9, 2), (3, 3, 2, 8), (1, 1), "valid", ((0, 0), (0, 0)), (1, 1), 1),
    ((1, 6, 11, 2), (3, 2, 2, 5), (2, 3), "same", ((0, 1), (0, 0)), (1, 1), 1),
    ((1, 5, 5, 2), (3, 3, 2, 24), (1, 1), "same", ((1, 1), (1, 1)), (1, 1), 1),
]


@pytest.mark.parametrize("xs,ks,strides,padding,pads,dilation,groups", CONV2D_CASES, ids=str)
def test_conv2d(xs, ks, strides, padding, pads, dilation, groups):
    rng = np.random.default_rng(0)
    x, k, b = rng.standard_normal(xs), rng.standard_normal(ks), rng.standard_normal(ks[-1])
    args = dict(strides=strides, padding=padding, dilation_rate=dilation, groups=groups)
    check_op(lambda a, w, c: conv2d(a, w, c, **args),
             lambda a, w, c: _torch_conv(a, w, c, strides, pads, dilation, groups),
             [x, k, b],
             reference=lambda a, w, c: _np_conv(a, w, c, strides, pads, dilation, groups))


def test_conv2d_without_bias():
    rng = np.random.default_rng(1)
    x, k = rng.standard_normal((2, 5, 5, 2)), rng.standard_normal((3, 3, 2, 3))
    pads = ((1, 1), (1, 1))
    check_op(lambda a, w: conv2d(a, w, padding="same"),
             lambda a, w: _torch_conv(a, w, None, (1, 1), pads, (1, 1), 1),
             [x, k], reference=lambda a, w: _np_conv(a, w, None, (1, 1), pads, (1, 1), 1))


@pytest.mark.parametrize("keep", [True, False], ids=["kept cols", "recomputed cols"])
def test_conv2d_in_batch_chunks(monkeypatch, keep):
    # one image per chunk; the kernel gradient from kept cols, or from cols recomputed in the
    # backward (what large inputs get)
    import fundl.kernels.convolution as module

    _set_size(monkeypatch, module, "CHUNK_BYTES", 1)
    _set_size(monkeypatch, module, "CHUNK_BYTES_REGION", 1)
    _set_size(monkeypatch, module, "KEEP_BYTES", 1 << 30 if keep else 0)
    rng = np.random.default_rng(12)
    x, k = rng.standard_normal((3, 5, 6, 2)), rng.standard_normal((3, 3, 2, 4))
    b = rng.standard_normal(4)
    pads = ((1, 1), (1, 1))
    check_op(lambda a, w, c: conv2d(a, w, c, padding="same"),
             lambda a, w, c: _torch_conv(a, w, c, (1, 1), pads, (1, 1), 1),
             [x, k, b], reference=lambda a, w, c: _np_conv(a, w, c, (1, 1), pads, (1, 1), 1))


@pytest.mark.parametrize("constant", [(0,), (1,), (0, 2)], ids=str)
def test_conv2d_some_inputs_constant(constant):
    rng = np.random.default_rng(2)
    x, k = rng.standard_normal((2, 6, 6, 2)), rng.standard_normal((3, 3, 2, 3))
    b = rng.standard_normal(3)
    # "same" with stride 2 on 6 pads (0, 1), not the stride-1 (1, 1)
    check_op(lambda a, w, c: conv2d(a, w, c, strides=2, padding="same"),
             lambda a, w, c: _torch_conv(a, w, c, (2, 2), ((0, 1), (0, 1)), (1, 1), 1),
             [x, k, b], constant=constant,
             reference=lambda a, w, c: _np_conv(a, w, c, (2, 2), ((0, 1), (0, 1)), (1, 1), 1))


def test_conv2d_channels_first():
    rng = np.random.default_rng(3)
    x, k = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((3, 3, 3, 4))
    b = rng.standard_normal(4)
    pads = ((1, 1), (1, 1))
    check_op(lambda a, w, c: conv2d(a, w, c, padding="same", data_format="channels_first"),
             lambda a, w, c: _torch_conv(a, w, c, (1, 1), pads, (1, 1), 1, channels_first=True),
             [x, k, b], reference=lambda a, w, c: np.moveaxis(
                 _np_conv(np.moveaxis(a, 1, -1), w, c, (1, 1), pads, (1, 1), 1), -1, 1))


def test_pointwise_conv2d_channels_first():
    # the im2col-free path with channels-first data (a moveaxis view in, one out)
    rng = np.random.default_rng(4)
    x, k, b = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((1, 1, 3, 2)), np.ones(2)
    no_pads = ((0, 0), (0, 0))
    check_op(lambda a, w, c: conv2d(a, w, c, data_format="channels_first"),
             lambda a, w, c: _torch_conv(a, w, c, (1, 1), no_pads, (1, 1), 1,
                                         channels_first=True),
             [x, k, b], reference=lambda a, w, c: np.moveaxis(
                 _np_conv(np.moveaxis(a, 1, -1), w, c, (1, 1), no_pads, (1, 1), 1), -1, 1))


CONV1D_CASES = [
    ((2, 9, 3), (3, 3, 4), 1, "valid", ((0, 0),), 1, 1),
    ((2, 9, 3), (4, 3, 2), 2, "same", ((1, 2),), 1, 1),
    ((2, 9, 4), (3, 2, 4), 1, "same", ((2, 2),), 2, 2),
]


@pytest.mark.parametrize("xs,ks,strides,padding,pads,dilation,groups", CONV1D_CASES, ids=str)
def test_conv1d(xs, ks, strides, padding, pads, dilation, groups):
    rng = np.random.default_rng(4)
    x, k, b = rng.standard_normal(xs), rng.standard_normal(ks), rng.standard_normal(ks[-1])
    args = dict(strides=strides, padding=padding, dilation_rate=dilation, groups=groups)
    check_op(lambda a, w, c: conv1d(a, w, c, **args),
             lambda a, w, c: _torch_conv(a, w, c, (strides,), pads, (dilation,), groups),
             [x, k, b],
             reference=lambda a, w, c: _np_conv(a, w, c, (strides,), pads, (dilation,), groups))


CONV3D_CASES = [
    ((1, 4, 5, 4, 2), (2, 3, 2, 2, 3), (1, 1, 1), "valid", ((0, 0),) * 3, (1, 1, 1), 1),
    ((2, 4, 4, 5, 2), (3, 3, 3, 1, 2), (2, 1, 2), "same", ((0, 1), (1, 1), (1, 1)), (1, 1, 1), 2),
]


@pytest.mark.parametrize("xs,ks,strides,padding,pads,dilation,groups", CONV3D_CASES, ids=str)
def test_conv3d(xs, ks, strides, padding, pads, dilation, groups):
    rng = np.random.default_rng(5)
    x, k, b = rng.standard_normal(xs), rng.standard_normal(ks), rng.standard_normal(ks[-1])
    args = dict(strides=strides, padding=padding, dilation_rate=dilation, groups=groups)
    check_op(lambda a, w, c: conv3d(a, w, c, **args),
             lambda a, w, c: _torch_conv(a, w, c, strides, pads, dilation, groups),
             [x, k, b],
             reference=lambda a, w, c: _np_conv(a, w, c, strides, pads, dilation, groups))


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_conv_takes_its_rank_from_the_kernel(dims):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2,) + (5,) * dims + (2,))
    k = rng.standard_normal((3,) * dims + (2, 3))
    named = (conv1d, conv2d, conv3d)[dims - 1]
    np.testing.assert_array_equal(conv(x, k, padding="same").numpy(),
                                  named(x, k, padding="same").numpy())


def test_conv2d_float32_matches_float64():
    rng = np.random.default_rng(7)
    x, k = rng.standard_normal((2, 8, 8, 3)), rng.standard_normal((3, 3, 3, 5))
    y32 = conv2d(x.astype(np.float32), k.astype(np.float32), padding="same")
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32.numpy(), conv2d(x, k, padding="same").numpy(), rtol=1e-5,
                               atol=1e-5)


def test_conv2d_under_no_grad_keeps_no_graph():
    x = fl.tensor(np.ones((1, 4, 4, 1), np.float32), requires_grad=True)
    k = fl.tensor(np.ones((3, 3, 1, 2), np.float32), requires_grad=True)
    with fl.no_grad():
        y = conv2d(x, k, padding="same")
    assert y.creator is None and not y.requires_grad
    np.testing.assert_array_equal(y.numpy()[0, :, :, 0], [[4, 6, 6, 4], [6, 9, 9, 6],
                                                          [6, 9, 9, 6], [4, 6, 6, 4]])


# -- errors -------------------------------------------------------------------------------------
def test_conv2d_channel_mismatch_names_both_shapes():
    assert_error(ValueError, conv2d, fl.ones(2, 5, 5, 3), fl.ones(3, 3, 4, 8),
                 contains=["conv2d", "(2, 5, 5, 3)", "(3, 3, 4, 8)", "data_format"])


def test_conv2d_rejects_a_kernel_of_another_rank():
    assert_error(ValueError, conv2d, fl.ones(2, 5, 5, 3), fl.ones(3, 3, 3, 3, 8),
                 contains=["conv2d", "rank 4", "(3, 3, 3, 3, 8)"])


def test_conv_rejects_an_input_of_the_wrong_rank():
    assert_error(ValueError, conv, fl.ones(5, 5, 3), fl.ones(3, 3, 3, 8),
                 contains=["conv2d", "rank 4", "(5, 5, 3)"])


def test_conv_rejects_a_kernel_of_rank_six():
    assert_error(ValueError, conv, fl.ones(1, 2, 2, 2, 2, 1), fl.ones(1, 1, 1, 1, 1, 1),
                 contains=["conv", "rank 3, 4 or 5"])


def test_conv2d_input_smaller_than_kernel():
    assert_error(ValueError, conv2d, fl.ones(1, 3, 3, 1), fl.ones(5, 5, 1, 1),
                 contains=["conv2d", "(3, 3)", "(5, 5)", "same"])


def test_conv2d_dilated_kernel_too_large():
    assert_error(ValueError, conv2d, fl.ones(1, 5, 5, 1), fl.ones(3, 3, 1, 1), dilation_rate=3,
                 contains=["conv2d", "(7, 7)"])


def test_conv2d_bias_shape():
    assert_error(ValueError, conv2d, fl.ones(1, 5, 5, 2), fl.ones(3, 3, 2, 4), fl.ones(3),
                 contains=["conv2d", "(4,)", "(3,)"])


def test_conv2d_groups_must_divide_the_channels():
    assert_error(ValueError, conv2d, fl.ones(1, 5, 5, 4), fl.ones(3, 3, 2, 3), groups=2,
                 contains=["conv2d", "groups=2", "(3, 3, 2, 3)"])


@pytest.mark.parametrize("padding", ["full", ((1, 1),), -1, ((1, 2, 3), (0, 0)), 1.5])
def test_conv2d_bad_padding(padding):
    assert_error(ValueError, conv2d, fl.ones(1, 5, 5, 1), fl.ones(3, 3, 1, 1), padding=padding,
                 contains=["conv2d", "padding", "'same'"])


@pytest.mark.parametrize("name,value,exc", [("strides", (1, 1, 1), ValueError),
                                            ("strides", 0, ValueError),
                                            ("dilation_rate", 1.5, TypeError),
                                            ("data_format", "NHWC", ValueError)])
def test_conv2d_bad_hyper_parameters(name, value, exc):
    assert_error(exc, conv2d, fl.ones(1, 5, 5, 1), fl.ones(3, 3, 1, 1), **{name: value},
                 contains=["conv2d", name])


def test_conv2d_rejects_integer_inputs():
    assert_error(TypeError, conv2d, np.ones((1, 5, 5, 1), np.int64), fl.ones(3, 3, 1, 1),
                 contains=["conv2d", "int64"])


# -- conv2d_transpose -------------------------------------------------------------------------
def _np_conv_transpose(x, kernel, bias, strides, padding, output_padding, dilation):
    """Scatter every input pixel times the kernel into the full output, then crop as Keras."""
    n, h, w, _ = x.shape
    kh, kw, cout, _ = kernel.shape
    (sh, sw), (dh, dw) = strides, dilation
    full = np.zeros((n, (h - 1) * sh + dh * (kh - 1) + 1, (w - 1) * sw + dw * (kw - 1) + 1, cout))
    for i, j, a, b in np.ndindex(h, w, kh, kw):
        full[:, i * sh + a * dh, j * sw + b * dw] += x[:, i, j] @ kernel[a, b].T
    out, before = [], []
    for length, k, s, d, p in zip((h, w), (kh, kw), strides, dilation, output_padding):
        k = d * (k - 1) + 1
        if p is None:
            m = length * s + max(k - s, 0) if padding == "valid" else length * s
        else:
            m = (length - 1) * s + k - 2 * (k // 2 if padding == "same" else 0) + p
        out.append(m)
        before.append(0 if padding == "valid" else max((length - 1) * s + k - m, 0) // 2)
    big = np.zeros((n, before[0] + out[0] + full.shape[1], before[1] + out[1] + full.shape[2],
                    cout))
    big[:, :full.shape[1], :full.shape[2]] = full
    y = big[:, before[0]:before[0] + out[0], before[1]:before[1] + out[1]]
    return y if bias is None else y + bias


def _torch_conv_transpose(x, kernel, bias, out_shape, before, strides, dilation):
    """PyTorch's conv_transpose2d without padding, cropped / zero-extended to out_shape."""
    F = _F()
    full = F.conv_transpose2d(x.movedim(-1, 1), kernel.permute(3, 2, 0, 1).contiguous(),
                              stride=strides, dilation=dilation)
    extra = [max(b + o - f, 0) for b, o, f in zip(before, out_shape, full.shape[2:4])]
    full = F.pad(full, (0, extra[1], 0, extra[0]))
    y = full[:, :, before[0]:before[0] + out_shape[0], before[1]:before[1] + out_shape[1]]
    return y.movedim(1, -1) + bias


TRANSPOSE_CASES = [
    # x shape, kernel shape, strides, padding, output_padding, dilation
    ((2, 3, 4, 2), (3, 3, 4, 2), (1, 1), "valid", None, (1, 1)),
    ((2, 3, 4, 2), (3, 3, 3, 2), (2, 2), "same", None, (1, 1)),
    ((1, 3, 3, 2), (4, 4, 2, 2), (2, 2), "same", None, (1, 1)),
    ((1, 3, 3, 2), (2, 3, 2, 2), (3, 2), "valid", None, (1, 1)),   # kernel shorter than stride
    ((1, 3, 3, 2), (3, 3, 2, 2), (2, 2), "valid", (1, 0), (1, 1)),
    ((1, 3, 4, 2), (3, 3, 2, 2), (2, 3), "same", (1, 2), (1, 1)),
    ((1, 3, 3, 1), (2, 2, 2, 1), (1, 1), "same", None, (2, 2)),
]


@pytest.mark.parametrize("xs,ks,strides,padding,output_padding,dilation", TRANSPOSE_CASES, ids=str)
def test_conv2d_transpose(xs, ks, strides, padding, output_padding, dilation):
    rng = np.random.default_rng(8)
    x, k, b = rng.standard_normal(xs), rng.standard_normal(ks), rng.standard_normal(ks[2])
    op = output_padding if output_padding is not None else (None, None)

    def reference(a, w, c):
        return _np_conv_transpose(a, w, c, strides, padding, op, dilation)

    expected = reference(x, k, b)
    out_shape = expected.shape[1:3]
    before = []
    for length, kk, s, d, m in zip(xs[1:3], ks[:2], strides, dilation, out_shape):
        window = d * (kk - 1) + 1
        before.append(0 if padding == "valid" else max((length - 1) * s + window - m, 0) // 2)
    check_op(lambda a, w, c: conv2d_transpose(a, w, c, strides=strides, padding=padding,
                                              output_padding=output_padding,
                                              dilation_rate=dilation),
             lambda a, w, c: _torch_conv_transpose(a, w, c, out_shape, before, strides, dilation),
             [x, k, b], reference=reference)


@pytest.mark.parametrize("xs,ks,strides,padding,out_shape", [
    ((2, 7, 7, 8), (3, 3, 4, 8), 2, "same", (14, 14)),
    ((2, 7, 7, 8), (3, 3, 4, 8), 2, "valid", (15, 15)),
    ((2, 7, 7, 8), (2, 2, 4, 8), 2, "valid", (14, 14)),
    ((2, 7, 7, 8), (5, 5, 4, 8), 1, "same", (7, 7)),
], ids=str)
def test_conv2d_transpose_output_shapes_follow_keras(xs, ks, strides, padding, out_shape):
    y = conv2d_transpose(np.zeros(xs, np.float32), np.zeros(ks, np.float32), strides=strides,
                         padding=padding)
    assert y.shape == (xs[0],) + out_shape + (ks[2],)


def test_conv2d_transpose_is_the_adjoint_of_conv2d():
    # <conv2d(x, k), y> == <x, conv2d_transpose(y, k)> for the same strides and padding
    rng = np.random.default_rng(9)
    x, k = rng.standard_normal((2, 8, 8, 3)), rng.standard_normal((3, 3, 3, 5))
    y = conv2d(x, k, strides=2, padding="same").numpy()
    v = rng.standard_normal(y.shape)
    back = conv2d_transpose(v, k, strides=2, padding="same").numpy()
    assert back.shape == x.shape
    np.testing.assert_allclose((y * v).sum(), (x * back).sum(), rtol=1e-10)


def test_conv2d_transpose_in_channel_mismatch():
    assert_error(ValueError, conv2d_transpose, fl.ones(1, 4, 4, 3), fl.ones(3, 3, 8, 4),
                 contains=["conv2d_transpose", "(1, 4, 4, 3)", "(3, 3, 8, 4)"])


def test_conv2d_transpose_output_padding_below_strides():
    assert_error(ValueError, conv2d_transpose, fl.ones(1, 4, 4, 3), fl.ones(3, 3, 8, 3),
                 strides=2, output_padding=2, contains=["conv2d_transpose", "output_padding"])


def test_conv2d_transpose_padding_modes():
    assert_error(ValueError, conv2d_transpose, fl.ones(1, 4, 4, 3), fl.ones(3, 3, 8, 3),
                 padding=1, contains=["conv2d_transpose", "'valid' or 'same'"])


# -- zero_pad ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,padding,pairs", [
    ((2, 5, 3), 2, ((2, 2),)),
    ((2, 4, 5, 3), 1, ((1, 1), (1, 1))),
    ((2, 4, 5, 3), (1, 2), ((1, 1), (2, 2))),
    ((2, 4, 5, 3), ((1, 0), (0, 2)), ((1, 0), (0, 2))),
    ((1, 2, 3, 4, 2), ((1, 0), 1, (0, 2)), ((1, 0), (1, 1), (0, 2))),
], ids=str)
def test_zero_pad(shape, padding, pairs):
    x = np.random.default_rng(10).standard_normal(shape)
    width = ((0, 0),) + pairs + ((0, 0),)
    flat = [p for pair in reversed(pairs) for p in pair]
    check_op(lambda a: zero_pad(a, padding),
             lambda a: _F().pad(a.movedim(-1, 1), flat).movedim(1, -1),
             [x], reference=lambda a: np.pad(a, width))


def test_zero_pad_channels_first():
    x = np.random.default_rng(11).standard_normal((2, 3, 4, 5))
    check_op(lambda a: zero_pad(a, ((1, 2), (0, 1)), data_format="channels_first"),
             lambda a: _F().pad(a, (0, 1, 1, 2)),
             [x], reference=lambda a: np.pad(a, ((0, 0), (0, 0), (1, 2), (0, 1))))


@pytest.mark.parametrize("padding", ["same", (1, 2, 3), -1])
def test_zero_pad_bad_padding(padding):
    assert_error(ValueError, zero_pad, fl.ones(1, 4, 4, 1), padding,
                 contains=["zero_pad", "padding", "pairs"])


def test_public_names():
    assert (fl.conv, fl.conv1d, fl.conv2d, fl.conv3d, fl.conv2d_transpose, fl.zero_pad) == (
        conv, conv1d, conv2d, conv3d, conv2d_transpose, zero_pad)
    assert fl.functional.conv2d is conv2d and "conv2d" in fl.functional.__all__


@pytest.mark.parametrize("fn,x_shape,k_shape,contains", [
    (conv1d, (2, 8, 3), (3, 3, 3, 4), ["conv1d", "rank 3", "(3, 3, 3, 4)"]),
    (conv3d, (2, 4, 4, 3), (2, 2, 2, 3, 4), ["conv3d", "rank 5", "(2, 4, 4, 3)"]),
], ids=["conv1d kernel", "conv3d input"])
def test_conv_nd_rank_errors(fn, x_shape, k_shape, contains):
    assert_error(ValueError, fn, fl.ones(*x_shape), fl.ones(*k_shape), contains=contains)


@pytest.mark.parametrize("ks", [(3, 3, 3, 4), (1, 1, 3, 4), (6, 6, 3, 2)])
def test_conv2d_of_an_empty_batch(ks):
    # im2col path, 1x1 path and whole-input kernel path: (0, ...) in, (0, ...) out, zero grads
    x = fl.tensor(np.zeros((0, 6, 6, 3), np.float32), requires_grad=True)
    k = fl.tensor(np.ones(ks, np.float32), requires_grad=True)
    y = conv2d(x, k, padding="valid")
    assert y.shape[0] == 0 and y.shape[-1] == ks[-1]
    y.sum().backward()
    assert x.grad.shape == x.shape
    np.testing.assert_array_equal(k.grad, np.zeros(ks, np.float32))


# -- the fused activation: the same values as a separate activation op, one node fewer ----------
FUSED_CASES = [
    # x shape, kernel shape, kwargs
    ((2, 9, 9, 1), (3, 3, 1, 6), {"padding": "same"}),                 # output blocking
    ((2, 5, 5, 4), (1, 1, 4, 3), {}),                                  # im2col-free (1x1)
    ((2, 7, 7, 4), (3, 3, 2, 4), {"groups": 2, "strides": 2}),
    ((2, 4, 6, 6), (3, 3, 4, 5), {"data_format": "channels_first", "padding": "same"}),
]


@pytest.mark.parametrize("kind", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("xs, ks, kwargs", FUSED_CASES, ids=str)
def test_fused_activation_equals_the_separate_op(kind, xs, ks, kwargs):
    rng = np.random.default_rng(11)
    x0, k0, b0 = rng.standard_normal(xs), rng.standard_normal(ks), rng.standard_normal(ks[-1])
    runs = []
    for fused in (True, False):
        x, k, b = (fl.tensor(a, requires_grad=True) for a in (x0, k0, b0))
        if fused:
            y = fl.conv(x, k, b, activation=kind, **kwargs)
        else:
            y = getattr(fl, kind)(fl.conv(x, k, b, **kwargs))
        y.backward(np.cos(np.arange(y.size)).reshape(y.shape))
        runs.append([y.numpy(), x.grad, k.grad, b.grad])
    np.testing.assert_array_equal(runs[0][0], runs[1][0])  # the same arithmetic
    for got, want in zip(runs[0][1:], runs[1][1:]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_fused_relu_inside_the_region_equals_the_separate_op(dtype):
    """A region plan applies a fused ReLU to each chunk's rows inside the region (no pass
    after it): bitwise the values of fl.relu after the convolution, NaN kept, in both dtypes
    and on LeNet-5's shapes (several chunks, blocked and not)."""
    rng = np.random.default_rng(13)
    for xs, ks, padding in (((5, 28, 28, 1), (5, 5, 1, 6), "same"),
                            ((5, 14, 14, 6), (5, 5, 6, 16), "valid")):
        x0 = rng.standard_normal(xs).astype(dtype)
        x0[1, 3, 4, 0] = np.nan
        k0, b0 = rng.standard_normal(ks).astype(dtype), rng.standard_normal(ks[-1]).astype(dtype)
        fn = Conv(None, 1, padding, 1, 1, "channels_last", activation="relu")
        fn.check(x0, k0, b0)
        if fn.plan.path != "region":
            pytest.skip("no Numba parallel regions or no reachable GEMM here")
        fused = fl.conv(fl.tensor(x0), fl.tensor(k0), fl.tensor(b0), padding=padding,
                        activation="relu").numpy()
        separate = fl.relu(fl.conv(fl.tensor(x0), fl.tensor(k0), fl.tensor(b0),
                                   padding=padding)).numpy()
        assert np.isnan(fused).any() and (fused == 0).any()
        np.testing.assert_array_equal(fused, separate)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("kind", ["relu", "tanh", "sigmoid"])
def test_activation_gradient_inside_the_region_equals_the_separate_pass(kind, dtype,
                                                                        monkeypatch):
    """A region plan takes the gradient through its fused activation chunk by chunk inside
    the backward region: bitwise the gradients of the separate pass before it, with and
    without the input's gradient, on LeNet-5's shapes (blocked C1, C3 in several chunks)."""
    from fundl.kernels import convolution

    rng = np.random.default_rng(14)
    for xs, ks, padding in (((5, 28, 28, 1), (5, 5, 1, 6), "same"),
                            ((5, 14, 14, 6), (5, 5, 6, 16), "valid")):
        x0 = rng.standard_normal(xs).astype(dtype)
        k0, b0 = rng.standard_normal(ks).astype(dtype), rng.standard_normal(ks[-1]).astype(dtype)
        fn = Conv(None, 1, padding, 1, 1, "channels_last", activation=kind)
        fn.check(x0, k0, b0)
        if fn.plan.path != "region":
            pytest.skip("no Numba parallel regions or no reachable GEMM here")
        for x_grad in (False, True):
            runs = []
            for fused in (True, False):
                if not fused:
                    monkeypatch.setattr(convolution, "fusable_grad", lambda *a: False)
                x = fl.tensor(x0, requires_grad=x_grad)
                k, b = fl.tensor(k0, requires_grad=True), fl.tensor(b0, requires_grad=True)
                y = fl.conv(x, k, b, padding=padding, activation=kind)
                if fused:
                    assert convolution.fusable_grad(fn.plan, kind, y.numpy(), y.numpy(), True)
                y.backward(np.cos(np.arange(y.size)).reshape(y.shape).astype(dtype))
                runs.append([k.grad, b.grad] + ([x.grad] if x_grad else []))
                monkeypatch.undo()
            for got, want in zip(*runs):
                np.testing.assert_array_equal(got, want)


def test_a_stalled_convolution_region_sends_the_next_calls_to_one_thread(monkeypatch):
    """A convolution region far slower than one core would be (another process holding the
    second core) backs off: the next calls run the same compiled loop on this thread alone
    (the same results, bit for bit), for a period that doubles when it happens again."""
    from fundl.kernels import _parallel
    import fundl.kernels.convolution as module

    rng = np.random.default_rng(15)
    x0 = rng.standard_normal((8, 14, 14, 6)).astype(np.float32)
    k0, b0 = rng.standard_normal((5, 5, 6, 16)).astype(np.float32), np.zeros(16, np.float32)
    fn = Conv(None, 1, "valid", 1, 1, "channels_last")
    fn.check(x0, k0, b0)
    if fn.plan.path != "region" or len(fn.plan.first) < 3:
        pytest.skip("no Numba parallel regions of two threads here")

    def step():
        x, k = fl.tensor(x0, requires_grad=True), fl.tensor(k0, requires_grad=True)
        y = fl.conv(x, k, fl.tensor(b0), padding="valid")
        y.backward(np.cos(np.arange(y.size)).reshape(y.shape).astype(np.float32))
        return [y.numpy(), x.grad, k.grad]

    want = step()  # compiled (or loaded) first, out of the back-off's sight
    backoff = _parallel.Backoff(2e10, stall_seconds=-1.0)  # every region counts as stalled
    backoff.period = 2
    monkeypatch.setattr(module, "_BACKOFF", backoff)
    used = []
    real_run = _parallel.run_region
    monkeypatch.setattr(_parallel, "run_region", lambda loop, n, *a, threads=None, **kw:
                        used.append(threads is None) or real_run(loop, n, *a, threads=threads,
                                                                 **kw))
    ran = []
    for _ in range(4):  # a forward and a backward region each
        before = len(used)
        for got, expected in zip(step(), want):
            np.testing.assert_array_equal(got, expected)
        ran.append(used[before:])
    # first regions of each driver untimed; then: region (stall, skip 2), 2 on one thread,
    # region (stall, skip 4), one thread ...
    assert ran == [[True, True], [True, False], [False, True], [False, False]]


@pytest.mark.parametrize("kind", ["relu", "tanh", "sigmoid"])
def test_fused_activation_gradcheck(kind):
    rng = np.random.default_rng(12)
    inputs = [fl.tensor(rng.standard_normal(s), requires_grad=True)
              for s in ((2, 6, 6, 2), (3, 3, 2, 3), (3,))]
    assert fl.gradcheck(lambda x, k, b: fl.conv(x, k, b, padding="same", activation=kind),
                        inputs)


def test_fused_activation_rejects_others():
    assert_error(ValueError, fl.conv, fl.randn(1, 4, 4, 1), fl.randn(2, 2, 1, 1),
                 activation="softmax", contains=["activation", "relu", "softmax"])


def test_conv_layer_fuses_its_activation():
    from fundl.layers import Conv2D

    y = Conv2D(3, 3, activation="tanh")(fl.tensor(np.ones((1, 5, 5, 2)), requires_grad=True))
    assert type(y.creator).__name__ == "Conv"  # no separate Tanh node
    z = Conv2D(3, 3, activation="elu")(fl.tensor(np.ones((1, 5, 5, 2))))
    assert type(z.creator).__name__ != "Conv"  # others still run as their own op


REGION_CASES = [  # (x shape, kernel shape, conv kwargs)
    ((5, 7, 6, 3), (3, 3, 3, 4), {"padding": "same"}),
    ((5, 9, 9, 1), (5, 5, 1, 6), {"padding": "same"}),            # short runs: padded first
    ((4, 9, 9, 1), (3, 3, 1, 6), {"padding": "same"}),            # output blocking
    ((5, 7, 7, 4), (3, 3, 2, 4), {"groups": 2, "strides": 2}),
    ((3, 8, 8, 2), (3, 3, 2, 3), {"dilation_rate": 2, "padding": "same"}),
    ((3, 4, 6, 6), (3, 3, 4, 5), {"data_format": "channels_first", "padding": "same"}),
    ((4, 9, 3), (3, 3, 2), {"padding": "same"}),                   # 1-D
    ((3, 4, 5, 5, 2), (3, 3, 3, 2, 2), {"strides": 2}),          # 3-D
]


@pytest.mark.parametrize("keep", [True, False], ids=["kept cols", "recomputed cols"])
@pytest.mark.parametrize("constant", [(), (0,), (1,), (2,)], ids=str)
@pytest.mark.parametrize("xs, ks, kwargs", REGION_CASES, ids=str)
def test_compiled_region_matches_the_python_chunks(xs, ks, kwargs, constant, keep,
                                                   monkeypatch):
    """The CPU's chunks in one compiled parallel region (im2col, GEMMs, col2im per chunk)
    give what the Python chunks give, for every geometry, with either input constant."""
    from fundl import kernels
    from fundl.kernels import _parallel
    import fundl.kernels.convolution as module

    if not kernels.regions() or kernels.gemm_function(np.float64) is None:
        pytest.skip("no Numba parallel regions or no reachable GEMM here")
    _set_size(monkeypatch, module, "CHUNK_BYTES", 1)  # a chunk per sample
    _set_size(monkeypatch, module, "CHUNK_BYTES_REGION", 1)
    _set_size(monkeypatch, module, "KEEP_BYTES", 1 << 30 if keep else 0)
    # (a region stalled by a busy machine earlier in the run must not send this one to one
    # thread: the test is about the region)
    monkeypatch.setattr(module, "_BACKOFF", _parallel.Backoff(2e10, stall_seconds=1e3))
    regions = []
    real_run = _parallel.run_region
    monkeypatch.setattr(_parallel, "run_region",
                        lambda *a, **kw: regions.append(1) or real_run(*a, **kw))
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal(xs), rng.standard_normal(ks), rng.standard_normal(ks[-1])]
    runs = []
    for compiled in (True, False):
        if not compiled:
            monkeypatch.setattr(kernels, "regions", lambda: False)
        ts = [fl.tensor(a, requires_grad=i not in constant) for i, a in enumerate(arrays)]
        y = conv(*ts, **kwargs)
        y.backward(np.cos(np.arange(y.size)).reshape(y.shape))
        runs.append([y.numpy()] + [t.grad for t in ts])
    assert regions  # the first run did use the region
    for got, want in zip(*runs):
        if want is None:
            assert got is None
        else:
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_compiled_region_with_more_chunks_than_a_region_takes_in_a_tuple(monkeypatch):
    """130 chunks (a chunk per sample): the chunk bounds reach the region as arrays, since a
    Numba parallel region refuses tuples of more than 100 items."""
    from fundl import kernels
    import fundl.kernels.convolution as module

    if not kernels.regions() or kernels.gemm_function(np.float32) is None:
        pytest.skip("no Numba parallel regions or no reachable GEMM here")
    _set_size(monkeypatch, module, "CHUNK_BYTES_REGION", 1)
    rng = np.random.default_rng(9)
    x = fl.tensor(rng.standard_normal((130, 5, 5, 2)).astype(np.float32), requires_grad=True)
    k = fl.tensor(rng.standard_normal((3, 3, 2, 3)).astype(np.float32), requires_grad=True)
    y = conv2d(x, k, padding="same")
    y.sum().backward()
    want = _np_conv(x.numpy().astype(np.float64), k.numpy().astype(np.float64), None, (1, 1),
                    ((1, 1), (1, 1)), (1, 1), 1)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-4, atol=1e-4)
    monkeypatch.setattr(kernels, "regions", lambda: False)
    x2 = fl.tensor(x.numpy(), requires_grad=True)
    k2 = fl.tensor(k.numpy(), requires_grad=True)
    y2 = conv2d(x2, k2, padding="same")
    y2.sum().backward()
    np.testing.assert_allclose(y.numpy(), y2.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(k.grad, k2.grad, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(x.grad, x2.grad, rtol=1e-5, atol=1e-5)


def _set_size(monkeypatch, module, name, value):
    """Change a size of fundl.kernels.convolution for this test; plans are cached per
    geometry, so meanwhile the ops plan afresh on every call (nothing stale stays cached)."""
    from fundl import kernels

    monkeypatch.setattr(module, name, value)
    monkeypatch.setattr(kernels, "conv_plan", module.conv_plan.__wrapped__)
