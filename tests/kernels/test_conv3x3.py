"""The im2col-free 3x3 stride-1 "same" convolution path (fundl.kernels.conv3x3).

It runs where OpenBLAS's AVX-512 small kernels do (float32, fundl.kernels.convolution
.small_gemms); the tests compare it with the plain-NumPy reference in float64
(conv_forward_reference / conv_backward_reference), with the im2col region path it replaces,
and with PyTorch, through the op (fundl.ops.conv.conv2d) and through the drivers directly.
Elsewhere (float64, narrow images, strides, few channels) the plan does not offer it.
"""
import numpy as np
import pytest

import fundl as fl
from fundl import kernels
from fundl.kernels import conv3x3, convolution
from fundl.ops.conv import Conv, conv, conv2d

ON = bool(convolution.small_gemms(np.float32)[2] and convolution.small_nn_beta() is not None)
needs_kernels = pytest.mark.skipif(not ON, reason="no AVX-512 OpenBLAS small kernels here")
PADS = ((0, 0), (1, 1), (1, 1))


def _plan(x_shape, k_shape, strides=1, padding="same", dtype=np.float32, bias=False):
    op = Conv(2, strides, padding, 1, 1, "channels_last")
    x = np.zeros(x_shape, dtype)
    op.check(x, np.zeros(k_shape, dtype), np.zeros(k_shape[-1], dtype) if bias else None)
    return op.plan


def _data(n, h, w, c, co, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    k = (rng.standard_normal((3, 3, c, co)) * 0.2).astype(np.float32)
    b = rng.standard_normal(co).astype(np.float32)
    gy = rng.standard_normal((n, h, w, co)).astype(np.float32)
    return x, k, b, gy


def _reference(x, k, b, gy):
    """float64 NumPy reference: (y, gx, gk, gb)."""
    x5, k5, gy5 = (a.astype(np.float64) for a in (x[:, None], k[None], gy[:, None]))
    y = convolution.conv_forward_reference(x5, k5, b.astype(np.float64), (1, 1, 1), PADS,
                                           (1, 1, 1), 1)
    gx, gk, gb = convolution.conv_backward_reference(x5, k5, gy5, (1, 1, 1), PADS, (1, 1, 1), 1)
    return y[:, 0], gx[:, 0], gk[0], gb


def _close(a, b, scale=1.0):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4 * scale)


def test_plan_offers_it_only_for_its_geometry():
    assert _plan((4, 16, 16, 16), (3, 3, 16, 16)).images is not None
    assert _plan((4, 8, 16, 8), (3, 3, 8, 16), bias=True).images is not None
    assert _plan((4, 16, 16, 16), (3, 3, 16, 4)).images is None  # output-blocked instead
    assert _plan((4, 16, 16, 16), (3, 3, 16, 16), dtype=np.float64).images is None
    assert _plan((4, 16, 16, 16), (3, 3, 16, 16), strides=2).images is None
    assert _plan((4, 16, 16, 16), (3, 3, 16, 16), padding="valid").images is None
    assert _plan((4, 8, 8, 64), (3, 3, 64, 64)).images is not None
    assert _plan((4, 8, 4, 64), (3, 3, 64, 64)).images is None  # narrow: im2col pays
    assert _plan((4, 32, 32, 3), (3, 3, 3, 16)).images is None  # few channels
    assert _plan((4, 16, 16, 16), (5, 5, 16, 16)).images is None


@needs_kernels
def test_agree_check_passes_here():
    assert conv3x3.agree()


@needs_kernels
@pytest.mark.parametrize("n,h,w,c,co,bias", [
    (3, 16, 16, 16, 16, False),   # ResNet-20's first stage, an odd batch over 2 threads
    (2, 5, 17, 8, 24, True),      # odd sizes, more outputs than inputs, a bias
    (1, 16, 16, 32, 16, True),    # one image (one thread), fewer outputs
])
def test_op_matches_reference_and_im2col(n, h, w, c, co, bias, monkeypatch):
    x, k, b, gy = _data(n, h, w, c, co)
    b = b if bias else None
    ry, rgx, rgk, rgb = _reference(x, k, b if bias else np.zeros(co, np.float32), gy)
    results = []
    for on in (True, False):  # the 3x3 path, then the im2col region path it replaces
        monkeypatch.setattr(convolution, "_three_by_three_on", lambda on=on: on)
        tx, tk = fl.tensor(x, requires_grad=True), fl.tensor(k, requires_grad=True)
        tb = fl.tensor(b, requires_grad=True) if bias else None
        y = conv2d(tx, tk, tb, padding="same")
        y.backward(gy)
        results.append((y.numpy(), tx.grad, tk.grad, tb.grad if bias else None))
    for y, gx, gk, gb in results:
        _close(y, ry)
        _close(gx, rgx)
        _close(gk, rgk, scale=np.abs(rgk).max())
        if bias:
            _close(gb, rgb, scale=np.abs(rgb).max())


@needs_kernels
def test_path_is_taken_and_keeps_what_the_backward_needs():
    x, k, b, gy = _data(2, 4, 16, 8, 16)
    plan = _plan(x.shape, k.shape, bias=True)
    for need_x, need_k in ((True, True), (True, False), (False, True)):
        y5, saved = kernels.conv_forward(plan, x[:, None], k, b, need_x, need_k)
        assert saved.three_by_three and saved.cols is None
        assert (saved.x5 is not None) == need_k and (saved.w is not None) == need_x
        gx, gk, gb = kernels.conv_backward(plan, saved, gy[:, None], need_x, need_k, True)
        ry, rgx, rgk, rgb = _reference(x, k, b, gy)
        _close(y5[:, 0], ry)
        assert (gx is None) != need_x and (gk is None) != need_k
        if need_x:
            _close(gx[:, 0], rgx)
        if need_k:
            _close(gk, rgk, scale=np.abs(rgk).max())
        _close(gb, rgb, scale=np.abs(rgb).max())


@needs_kernels
def test_fused_relu_and_channels_first():
    x, k, b, gy = _data(2, 16, 16, 16, 16, seed=3)
    ry, *_ = _reference(x, k, b, gy)
    y = conv(fl.tensor(x), fl.tensor(k), fl.tensor(b), padding="same", activation="relu")
    _close(y.numpy(), np.maximum(ry, 0))
    xc = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    tx = fl.tensor(xc, requires_grad=True)
    y = conv2d(tx, fl.tensor(k), fl.tensor(b), padding="same", data_format="channels_first")
    _close(y.numpy(), ry.transpose(0, 3, 1, 2))
    y.backward(np.ascontiguousarray(gy.transpose(0, 3, 1, 2)))
    _close(tx.grad, _reference(x, k, b, gy)[1].transpose(0, 3, 1, 2))


@needs_kernels
def test_drivers_python_source_matches_compiled():
    """The drivers' Python source (what one thread runs) and the compiled region agree."""
    x, k, b, gy = _data(3, 16, 16, 8, 16, seed=5)
    nn0, nt, _ = convolution.small_gemms(np.float32)
    y, gx, gk, gb = conv3x3._run_both(nn0, convolution.small_nn_beta(), nt, x, k, b, gy)
    ry, rgx, rgk, rgb = _reference(x, k, b, gy)
    _close(y, ry)
    _close(gx, rgx)
    _close(gk, rgk, scale=np.abs(rgk).max())
    _close(gb, rgb, scale=np.abs(rgb).max())


@needs_kernels
def test_matches_pytorch():
    torch = pytest.importorskip("torch")
    x, k, b, gy = _data(4, 16, 16, 16, 32, seed=7)
    tx, tk, tb = (fl.tensor(a, requires_grad=True) for a in (x, k, b))
    y = conv2d(tx, tk, tb, padding="same")
    y.backward(gy)
    px = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    pk = torch.tensor(k.transpose(3, 2, 0, 1), requires_grad=True)
    pb = torch.tensor(b, requires_grad=True)
    py = torch.nn.functional.conv2d(px, pk, pb, padding=1)
    py.backward(torch.tensor(gy.transpose(0, 3, 1, 2)))
    _close(y.numpy(), py.detach().numpy().transpose(0, 2, 3, 1))
    _close(tx.grad, px.grad.numpy().transpose(0, 2, 3, 1))
    gk = pk.grad.numpy().transpose(2, 3, 1, 0)
    _close(tk.grad, gk, scale=np.abs(gk).max())
    _close(tb.grad, pb.grad.numpy(), scale=np.abs(pb.grad.numpy()).max())


def test_switched_off_kernels_fall_back_to_im2col(monkeypatch):
    """A plan made while the kernels were on still runs (the region path) once they are off."""
    x, k, b, gy = _data(2, 16, 16, 16, 16, seed=9)
    monkeypatch.setattr(convolution, "_three_by_three_on", lambda: False)
    tx, tk = fl.tensor(x, requires_grad=True), fl.tensor(k, requires_grad=True)
    y = conv2d(tx, tk, fl.tensor(b), padding="same")
    y.backward(gy)
    ry, rgx, rgk, _ = _reference(x, k, b, gy)
    _close(y.numpy(), ry)
    _close(tx.grad, rgx)
    _close(tk.grad, rgk, scale=np.abs(rgk).max())


@needs_kernels
def test_empty_batch():
    x = fl.tensor(np.ones((0, 16, 16, 8), np.float32), requires_grad=True)
    k = fl.tensor(np.ones((3, 3, 8, 16), np.float32), requires_grad=True)
    y = conv2d(x, k, None, padding="same")
    y.backward(np.ones(y.shape, np.float32))
    assert y.shape == (0, 16, 16, 16) and x.grad.shape == (0, 16, 16, 8)
    assert np.all(k.grad == 0)
