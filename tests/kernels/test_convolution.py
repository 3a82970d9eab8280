"""fundl.kernels.convolution: the convolution's entry points, on every path, against the
plain-NumPy references (a direct sum over the kernel's taps, no im2col, no chunks)."""
import numpy as np
import pytest

from fundl import kernels
from fundl.kernels import convolution
from fundl.ops import conv as conv_ops
from fundl.ops.conv import Conv, _as_5d

# (x shape, kernel shape, strides, padding as pairs per axis, dilation, groups)
GEOMETRIES = [
    ((3, 9, 9, 2), (3, 3, 2, 4), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),     # blocked, padded
    ((2, 8, 7, 1), (5, 5, 1, 6), (1, 1), ((2, 2), (2, 2)), (1, 1), 1),     # LeNet's C1
    ((2, 9, 9, 4), (3, 3, 2, 6), (2, 2), ((0, 1), (1, 0)), (1, 1), 2),     # grouped, strided
    ((2, 10, 10, 3), (3, 3, 3, 5), (1, 1), ((2, 2), (2, 2)), (2, 2), 1),   # dilated
    ((2, 11, 3), (3, 3, 4), (2,), ((1, 1),), (1,), 1),                     # 1-D
    ((1, 5, 5, 5, 2), (2, 3, 2, 2, 3), (1, 2, 1), ((1, 0), (0, 1), (1, 1)), (1, 1, 1), 1),
    ((3, 5, 5, 6), (1, 1, 6, 4), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),     # direct: 1x1
    ((3, 5, 5, 2), (5, 5, 2, 7), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),     # direct: whole
]


def _plan(x, k, b, strides, pads, dilation, groups, path, monkeypatch):
    if path == "chunks":  # (one fundl thread runs the region drivers too: off as well)
        monkeypatch.setattr(kernels, "regions", lambda: False)
        monkeypatch.setattr(conv_ops, "_compiled_chunks", lambda: False)
    fn = Conv(None, strides, pads, dilation, groups, "channels_last")
    fn.check(x, k, b)
    return fn.plan


def _reference_args(k, strides, pads, dilation):
    lead = 3 - len(strides)
    return (k.reshape((1,) * lead + k.shape), (1,) * lead + tuple(strides),
            ((0, 0),) * lead + tuple(pads), (1,) * lead + tuple(dilation))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no bias"])
@pytest.mark.parametrize("path", ["chunks", "region"])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"x{g[0]}-k{g[1]}-g{g[5]}")
def test_every_path_matches_the_reference(geometry, path, bias, dtype, monkeypatch):
    if path == "region" and not (kernels.regions() and kernels.gemm_function(dtype)):
        pytest.skip("no Numba parallel regions or no reachable GEMM here")
    xs, ks, strides, pads, dilation, groups = geometry
    rng = np.random.default_rng(len(xs) * 7 + ks[-1])
    x = rng.standard_normal(xs).astype(dtype)
    k = rng.standard_normal(ks).astype(dtype)
    b = rng.standard_normal(ks[-1]).astype(dtype) if bias else None
    plan = _plan(x, k, b, strides, pads, dilation, groups, path, monkeypatch)
    if plan.path != "direct":
        assert plan.path == path
    x5 = _as_5d(x)
    k5, s3, p3, d3 = _reference_args(k, strides, pads, dilation)
    want = convolution.conv_forward_reference(x5, k5, b, s3, p3, d3, groups)
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-4)
    for need in ((True, True), (True, False), (False, True)):
        y5, saved = kernels.conv_forward(plan, x5, k, b, *need)
        np.testing.assert_allclose(y5, want, **tol)
        gy5 = rng.standard_normal(y5.shape).astype(dtype)
        gx5, gk, gb = kernels.conv_backward(plan, saved, gy5, *need, bias)
        wx, wk, wb = convolution.conv_backward_reference(x5, k5, gy5, s3, p3, d3, groups)
        if need[0]:
            np.testing.assert_allclose(gx5, wx, **tol)
        else:
            assert gx5 is None
        if need[1]:
            np.testing.assert_allclose(gk, wk.reshape(k.shape), **tol)
        else:
            assert gk is None
        if bias:
            np.testing.assert_allclose(gb, wb, **tol)
        else:
            assert gb is None


def test_the_references_are_the_textbook_sum():
    """The reference itself, against the definition written out with loops."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 1, 5, 6, 4))
    k = rng.standard_normal((1, 3, 2, 2, 6))   # groups=2: 2 input channels per group
    want = np.zeros((2, 1, 2, 5, 6))
    for n in range(2):
        for i in range(2):
            for j in range(5):
                for o in range(6):
                    g = o // 3
                    for a in range(3):
                        for e in range(2):
                            want[n, 0, i, j, o] += x[n, 0, 2 * i + a, j + e, 2 * g:2 * g + 2] @ \
                                k[0, a, e, :, o]
    got = convolution.conv_forward_reference(x, k, None, (1, 2, 1), ((0, 0),) * 3, (1, 1, 1), 2)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # the backward reference is the adjoint: <conv(x), gy> = <x, gx> and = <k, gk>
    gy = rng.standard_normal(want.shape)
    gx, gk, gb = convolution.conv_backward_reference(x, k, gy, (1, 2, 1), ((0, 0),) * 3,
                                                     (1, 1, 1), 2)
    inner = (got * gy).sum()
    np.testing.assert_allclose((gx * x).sum(), inner, rtol=1e-10)
    np.testing.assert_allclose((gk * k).sum(), inner, rtol=1e-10)
    np.testing.assert_allclose(gb, gy.sum(axis=(0, 1, 2, 3)), rtol=1e-12)


def test_plans_are_cached_per_geometry():
    x, k = np.ones((2, 6, 6, 3), np.float32), np.ones((3, 3, 3, 4), np.float32)
    plans = []
    for _ in range(2):
        fn = Conv(None, 1, "same", 1, 1, "channels_last")
        fn.check(x, k)
        plans.append(fn.plan)
    assert plans[0] is plans[1]
    fn = Conv(None, 1, "same", 1, 1, "channels_last")
    fn.check(np.ones((3, 6, 6, 3), np.float32), k)   # another batch size: another plan
    assert fn.plan is not plans[0] and fn.plan.x5_shape[0] == 3


def test_what_the_forward_keeps_is_freed_by_the_backward():
    """The op keeps its ConvSaved through Function.save, so backward() frees it (the cols of a
    large layer are megabytes), as every op's saved arrays."""
    import fundl as fl

    x = fl.tensor(np.ones((2, 6, 6, 3), np.float32), requires_grad=True)
    k = fl.tensor(np.ones((3, 3, 3, 4), np.float32), requires_grad=True)
    y = fl.conv2d(x, k, padding="same")
    assert isinstance(y.creator.saved[0], convolution.ConvSaved)
    y.sum().backward()
    assert y.creator.saved == ()


def test_one_thread_runs_the_region_drivers_serially(monkeypatch):
    """With one fundl thread the plan takes the region path, and its driver's Python loop runs
    the compiled chunks one after another, with the reference's results."""
    monkeypatch.setattr(kernels, "threads", lambda: 1)
    monkeypatch.setattr(kernels, "regions", lambda: False)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 9, 9, 16)).astype(np.float32)
    k = rng.standard_normal((3, 3, 16, 16)).astype(np.float32)
    plan = _plan(x, k, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1, "region", monkeypatch)
    if kernels.gemm_function(np.float32) is None or not kernels.compiled(x):
        pytest.skip("no reachable GEMM or no Numba here")
    assert plan.path == "region"
    x5 = _as_5d(x)
    k5, s3, p3, d3 = _reference_args(k, (1, 1), ((1, 1), (1, 1)), (1, 1))
    y5, saved = kernels.conv_forward(plan, x5, k, None, True, True)
    np.testing.assert_allclose(
        y5, convolution.conv_forward_reference(x5, k5, None, s3, p3, d3, 1), rtol=2e-4, atol=2e-4)
    gy5 = rng.standard_normal(y5.shape).astype(np.float32)
    gx5, gk, _ = kernels.conv_backward(plan, saved, gy5, True, True, False)
    wx, wk, _ = convolution.conv_backward_reference(x5, k5, gy5, s3, p3, d3, 1)
    np.testing.assert_allclose(gx5, wx, rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(gk.reshape(wk.shape), wk, rtol=2e-4, atol=2e-3)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no bias"])
@pytest.mark.parametrize("geometry", [
    ((2, 28, 28, 1), (5, 5, 1, 6), 1, "same"),      # LeNet's C1: block 7
    ((2, 9, 11, 2), (3, 3, 2, 4), 1, "same"),       # an overhanging last block
    ((2, 13, 17, 3), (3, 3, 3, 5), 2, "valid"),     # strided: the copies shift by 2
    ((2, 20, 3), (7, 3, 4), 1, "same"),             # 1-D, a 7-wide kernel
], ids=lambda g: f"x{g[0]}-k{g[1]}-s{g[2]}")
def test_blocked_weights_gather_and_fold_match_widen(geometry, bias):
    """Blocked plans build their GEMM weights by one gather over cached indices and fold the
    weights' gradient back by one bincount: the same as :func:`convolution.widen` with the
    bias row, and as :func:`convolution.fold` (its adjoint) with the bias summed per block."""
    xs, ks, strides, padding = geometry
    rng = np.random.default_rng(len(xs) + ks[-1])
    x = rng.standard_normal(xs)
    k = rng.standard_normal(ks)
    b = rng.standard_normal(ks[-1]) if bias else None
    fn = Conv(None, strides, padding, 1, 1, "channels_last")
    fn.check(x, k, b)
    plan = fn.plan
    assert plan.block > 1
    wide = convolution.widen(plan, k).reshape(-1, plan.c_out)
    want = np.concatenate([wide, np.tile(b, plan.block)[None]]) if bias else wide
    np.testing.assert_array_equal(convolution.gemm_weights(plan, k, b)[0], want)
    # fold: <gemm_weights(k, b), G> = <k, gk> + <b, gb> for any G (the adjoint of the gather)
    x5 = _as_5d(x)
    y5, saved = kernels.conv_forward(plan, x5, k, b, False, True)
    gy5 = rng.standard_normal(y5.shape)
    _, gk, gb = kernels.conv_backward(plan, saved, gy5, False, True, bias)
    dims = len(xs) - 2
    pads = conv_ops._paddings(padding, xs[1:-1], ks[:-2], (strides,) * dims, "conv")
    k5, s3, p3, d3 = _reference_args(k, (strides,) * dims, pads, (1,) * dims)
    _, wk, wb = convolution.conv_backward_reference(x5, k5, gy5, s3, p3, d3, 1)
    np.testing.assert_allclose(gk, wk.reshape(k.shape), rtol=1e-10, atol=1e-10)
    if bias:
        np.testing.assert_allclose(gb, wb, rtol=1e-10, atol=1e-10)
    else:
        assert gb is None
