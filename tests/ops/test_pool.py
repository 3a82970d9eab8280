"""max_pool / avg_pool (1-D to 3-D), global pooling and upsample2d: values, gradients, errors.

Every op goes through ``fundl.testing.check_op`` (float64 gradcheck, float32 gradient shapes,
a NumPy reference written here, PyTorch when installed: torch is imported lazily inside the
reference lambdas). Max-pooling inputs are distinct values far apart, so that the finite
differences never cross a tie.
"""
import numpy as np
import pytest

import fundl as fl
from fundl.ops.pool import (
    avg_pool, avg_pool1d, avg_pool2d, avg_pool3d, global_avg_pool, global_max_pool, max_pool,
    max_pool1d, max_pool2d, max_pool3d, upsample2d,
)
from fundl.testing import assert_error, check_op


def _F():
    import torch.nn.functional

    return torch.nn.functional


def _distinct(shape, seed=0):
    """Values 0.1 apart in random order: no ties, and no gradcheck step crosses one."""
    rng = np.random.default_rng(seed)
    values = rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1
    return values + rng.uniform(-0.01, 0.01, shape)


def _np_pool(x, pool, strides, pads, kind):
    """Channels-last pooling, one output position at a time, padding excluded from the window."""
    spatial = x.shape[1:-1]
    out = [(n + b + a - p) // s + 1 for n, (b, a), p, s in zip(spatial, pads, pool, strides)]
    y = np.empty((x.shape[0],) + tuple(out) + (x.shape[-1],))
    for o in np.ndindex(*out):
        index = (slice(None),) + tuple(
            slice(max(i * s - b, 0), min(i * s - b + p, n))
            for i, s, (b, _), p, n in zip(o, strides, pads, pool, spatial)) + (slice(None),)
        window = x[index].reshape(x.shape[0], -1, x.shape[-1])
        y[(slice(None),) + o] = window.max(axis=1) if kind == "max" else window.mean(axis=1)
    return y


def _torch_pool(x, pool, strides, pads, kind):
    """PyTorch's pooling on channels-last inputs; uneven pads via F.pad (-inf for max)."""
    F = _F()
    dims = len(pool)
    x = x.movedim(-1, 1)
    if kind == "max":
        flat = [p for pair in reversed(pads) for p in pair]
        y = getattr(F, f"max_pool{dims}d")(F.pad(x, flat, value=-np.inf), pool, strides)
    else:  # symmetric pads only, which is what count_include_pad=False supports
        y = getattr(F, f"avg_pool{dims}d")(x, pool, strides, padding=[b for b, _ in pads],
                                           count_include_pad=False)
    return y.movedim(1, -1)


POOL_CASES = [
    # x shape, pool, strides, padding, resolved pads
    ((2, 6, 6, 3), (2, 2), None, "valid", ((0, 0), (0, 0))),
    ((2, 7, 5, 2), (2, 2), None, "valid", ((0, 0), (0, 0))),   # odd sizes drop the remainder
    ((2, 7, 7, 2), (3, 3), (2, 2), "same", ((1, 1), (1, 1))),
    ((1, 7, 6, 2), (3, 2), (1, 2), "valid", ((0, 0), (0, 0))),   # overlapping windows
    ((1, 5, 7, 2), (3, 3), (1, 1), "same", ((1, 1), (1, 1))),
]


@pytest.mark.parametrize("xs,pool,strides,padding,pads", POOL_CASES, ids=str)
def test_max_pool2d(xs, pool, strides, padding, pads):
    s = strides or pool
    check_op(lambda a: max_pool2d(a, pool, strides, padding),
             lambda a: _torch_pool(a, pool, s, pads, "max"),
             [_distinct(xs)], reference=lambda a: _np_pool(a, pool, s, pads, "max"))


@pytest.mark.parametrize("xs,pool,strides,padding,pads", POOL_CASES, ids=str)
def test_avg_pool2d(xs, pool, strides, padding, pads):
    s = strides or pool
    x = np.random.default_rng(1).standard_normal(xs)
    check_op(lambda a: avg_pool2d(a, pool, strides, padding),
             lambda a: _torch_pool(a, pool, s, pads, "avg"),
             [x], reference=lambda a: _np_pool(a, pool, s, pads, "avg"))


@pytest.mark.parametrize("xs,pool,strides,pads", [
    ((1, 8, 8, 2), (2, 2), (2, 2), ((0, 0), (0, 0))),   # "same" that needs no pad
    ((1, 8, 7, 2), (3, 3), (2, 2), ((0, 1), (1, 1))),   # uneven pad: the extra one at the end
    ((1, 6, 6, 1), (4, 4), (3, 3), ((0, 1), (0, 1))),
], ids=str)
def test_pools_same_padding_uneven(xs, pool, strides, pads):
    x = _distinct(xs, seed=2)
    check_op(lambda a: max_pool2d(a, pool, strides, "same"),
             lambda a: _torch_pool(a, pool, strides, pads, "max"),
             [x], reference=lambda a: _np_pool(a, pool, strides, pads, "max"))
    check_op(lambda a: avg_pool2d(a, pool, strides, "same"), None,
             [x], reference=lambda a: _np_pool(a, pool, strides, pads, "avg"))


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("xs,pool,strides,padding,pads", [
    ((2, 9, 3), (2,), None, "valid", ((0, 0),)),
    ((2, 9, 3), (3,), (2,), "same", ((1, 1),)),
], ids=str)
def test_pool1d(kind, xs, pool, strides, padding, pads):
    s = strides or pool
    fn = max_pool1d if kind == "max" else avg_pool1d
    check_op(lambda a: fn(a, pool, strides, padding), lambda a: _torch_pool(a, pool, s, pads, kind),
             [_distinct(xs, 3)], reference=lambda a: _np_pool(a, pool, s, pads, kind))


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("xs,pool,strides,padding,pads", [
    ((1, 4, 4, 4, 2), (2, 2, 2), None, "valid", ((0, 0),) * 3),
    ((1, 5, 4, 5, 2), (3, 2, 3), (2, 2, 2), "same", ((1, 1), (0, 0), (1, 1))),
], ids=str)
def test_pool3d(kind, xs, pool, strides, padding, pads):
    s = strides or pool
    fn = max_pool3d if kind == "max" else avg_pool3d
    check_op(lambda a: fn(a, pool, strides, padding), lambda a: _torch_pool(a, pool, s, pads, kind),
             [_distinct(xs, 4)], reference=lambda a: _np_pool(a, pool, s, pads, kind))


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_pools_take_their_rank_from_the_input(dims):
    x = _distinct((2,) + (4,) * dims + (3,), seed=5)
    named_max = (max_pool1d, max_pool2d, max_pool3d)[dims - 1]
    named_avg = (avg_pool1d, avg_pool2d, avg_pool3d)[dims - 1]
    np.testing.assert_array_equal(max_pool(x, 2).numpy(), named_max(x).numpy())
    np.testing.assert_array_equal(avg_pool(x, 2).numpy(), named_avg(x).numpy())


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_channels_first(kind):
    x = _distinct((2, 3, 7, 6), seed=6)
    fn = max_pool2d if kind == "max" else avg_pool2d
    pads = ((1, 1), (0, 1))  # uneven: PyTorch's avg_pool cannot, so only max goes to PyTorch

    def torch_fn(a):
        return _torch_pool(a.movedim(1, -1), (3, 3), (2, 2), pads, kind).movedim(-1, 1)

    check_op(lambda a: fn(a, 3, 2, "same", data_format="channels_first"),
             torch_fn if kind == "max" else None,
             [x], reference=lambda a: np.moveaxis(
                 _np_pool(np.moveaxis(a, 1, -1), (3, 3), (2, 2), pads, kind), -1, 1))


def test_max_pool_ties_send_the_gradient_to_the_first_maximum():
    x = fl.tensor(np.array([[[[1.0], [1.0]], [[1.0], [0.0]]]]), requires_grad=True)  # (1, 2, 2, 1)
    max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad[0, :, :, 0], [[1.0, 0.0], [0.0, 0.0]])


def test_max_pool_overlapping_windows_add_gradients():
    x = fl.tensor(np.array([[[0.0], [5.0], [1.0]]]), requires_grad=True)  # (1, 3, 1)
    y = max_pool1d(x, 2, strides=1)  # both windows pick the 5
    y.sum().backward()
    np.testing.assert_array_equal(x.grad[0, :, 0], [0.0, 2.0, 0.0])


def test_max_pool_propagates_nan():
    x = np.arange(8.0).reshape(1, 2, 4, 1)
    x[0, 1, 2, 0] = np.nan
    y = max_pool2d(x, 2).numpy()
    assert y[0, 0, 0, 0] == 5.0 and np.isnan(y[0, 0, 1, 0])


def test_max_pool_same_padding_never_wins():
    x = -np.ones((1, 3, 3, 1))  # all negative: a zero pad would win
    np.testing.assert_array_equal(max_pool2d(x, 2, padding="same").numpy(), -np.ones((1, 2, 2, 1)))


# -- global pooling -------------------------------------------------------------------------------
@pytest.mark.parametrize("xs", [(2, 5, 3), (2, 4, 5, 3), (1, 2, 3, 4, 2)], ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_avg_pool(xs, keepdims):
    axes = tuple(range(1, len(xs) - 1))
    x = np.random.default_rng(7).standard_normal(xs)
    check_op(lambda a: global_avg_pool(a, keepdims=keepdims),
             lambda a: a.mean(dim=axes, keepdim=keepdims),
             [x], reference=lambda a: a.mean(axis=axes, keepdims=keepdims))


@pytest.mark.parametrize("xs", [(2, 5, 3), (2, 4, 5, 3), (1, 2, 3, 4, 2)], ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_max_pool(xs, keepdims):
    axes = tuple(range(1, len(xs) - 1))
    check_op(lambda a: global_max_pool(a, keepdims=keepdims),
             lambda a: a.amax(dim=axes, keepdim=keepdims),
             [_distinct(xs, 8)], reference=lambda a: a.max(axis=axes, keepdims=keepdims))


@pytest.mark.parametrize("kind", ["avg", "max"])
def test_global_pool_channels_first(kind):
    fn = global_avg_pool if kind == "avg" else global_max_pool
    x = _distinct((2, 3, 4, 5), seed=9)
    check_op(lambda a: fn(a, keepdims=True, data_format="channels_first"),
             lambda a: a.mean(dim=(2, 3), keepdim=True) if kind == "avg"
             else a.amax(dim=(2, 3), keepdim=True),
             [x], reference=lambda a: a.mean(axis=(2, 3), keepdims=True) if kind == "avg"
             else a.max(axis=(2, 3), keepdims=True))


def test_global_max_pool_ties_send_the_gradient_to_the_first_maximum():
    x = fl.tensor(np.array([[[[2.0], [1.0]], [[2.0], [2.0]]]]), requires_grad=True)
    global_max_pool(x).sum().backward()
    np.testing.assert_array_equal(x.grad[0, :, :, 0], [[1.0, 0.0], [0.0, 0.0]])


# -- upsample2d -----------------------------------------------------------------------------------
def _np_bilinear(x, fh, fw):
    """Half-pixel-centre bilinear resize, one output pixel at a time (TF/PyTorch rule)."""
    n, h, w, c = x.shape
    y = np.empty((n, h * fh, w * fw, c))
    for i, j in np.ndindex(h * fh, w * fw):
        u, v = max((i + 0.5) / fh - 0.5, 0.0), max((j + 0.5) / fw - 0.5, 0.0)
        i0, j0 = int(u), int(v)
        i1, j1 = min(i0 + 1, h - 1), min(j0 + 1, w - 1)
        a, b = u - i0, v - j0
        y[:, i, j] = ((1 - a) * (1 - b) * x[:, i0, j0] + (1 - a) * b * x[:, i0, j1]
                      + a * (1 - b) * x[:, i1, j0] + a * b * x[:, i1, j1])
    return y


@pytest.mark.parametrize("size", [2, (2, 3), (1, 2)], ids=str)
def test_upsample2d_nearest(size):
    fh, fw = (size, size) if isinstance(size, int) else size
    x = np.random.default_rng(10).standard_normal((2, 3, 4, 2))
    check_op(lambda a: upsample2d(a, size),
             lambda a: _F().interpolate(a.movedim(-1, 1), scale_factor=(fh, fw), mode="nearest")
             .movedim(1, -1),
             [x], reference=lambda a: a.repeat(fh, axis=1).repeat(fw, axis=2))


@pytest.mark.parametrize("size", [2, (3, 2), (1, 4)], ids=str)
def test_upsample2d_bilinear(size):
    fh, fw = (size, size) if isinstance(size, int) else size
    x = np.random.default_rng(11).standard_normal((2, 3, 4, 2))
    check_op(lambda a: upsample2d(a, size, interpolation="bilinear"),
             lambda a: _F().interpolate(a.movedim(-1, 1), scale_factor=(fh, fw), mode="bilinear",
                                        align_corners=False).movedim(1, -1),
             [x], reference=lambda a: _np_bilinear(a, fh, fw))


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_upsample2d_channels_first(interpolation):
    x = np.random.default_rng(12).standard_normal((1, 2, 3, 3))
    corners = {"align_corners": False} if interpolation == "bilinear" else {}
    check_op(lambda a: upsample2d(a, 2, interpolation, data_format="channels_first"),
             lambda a: _F().interpolate(a, scale_factor=2, mode=interpolation, **corners),
             [x], reference=lambda a: np.moveaxis(
                 upsample2d(np.moveaxis(a, 1, -1), 2, interpolation).numpy(), -1, 1))


# -- errors -------------------------------------------------------------------------------------
def test_max_pool2d_wrong_rank_names_the_shape():
    assert_error(ValueError, max_pool2d, fl.ones(4, 4, 3), 2,
                 contains=["max_pool2d", "rank 4", "(4, 4, 3)"])


def test_max_pool_rejects_inputs_without_spatial_axes():
    assert_error(ValueError, max_pool, fl.ones(4, 3), 2, contains=["max_pool", "rank 3, 4 or 5"])


def test_avg_pool_larger_than_the_input():
    assert_error(ValueError, avg_pool2d, fl.ones(1, 2, 5, 1), 3,
                 contains=["avg_pool2d", "(2, 5)", "(3, 3)", "same"])


def test_pool_padding_is_valid_or_same():
    assert_error(ValueError, max_pool2d, fl.ones(1, 4, 4, 1), 2, padding=1,
                 contains=["max_pool2d", "'valid' or 'same'"])


@pytest.mark.parametrize("name,value,exc", [("pool_size", (2, 2, 2), ValueError),
                                            ("strides", 0, ValueError),
                                            ("pool_size", 2.0, TypeError),
                                            ("data_format", "NCHW", ValueError)])
def test_pool_bad_hyper_parameters(name, value, exc):
    kwargs = {"pool_size": 2, name: value}
    assert_error(exc, max_pool2d, fl.ones(1, 4, 4, 1), **kwargs, contains=["max_pool2d", name])


def test_pool_rejects_integer_inputs():
    assert_error(TypeError, avg_pool2d, np.ones((1, 4, 4, 1), np.int32), 2,
                 contains=["avg_pool2d", "int32"])


def test_global_pool_needs_a_spatial_axis():
    assert_error(ValueError, global_avg_pool, fl.ones(4, 3),
                 contains=["global_avg_pool", "(4, 3)"])


def test_upsample2d_bad_interpolation():
    assert_error(ValueError, upsample2d, fl.ones(1, 2, 2, 1), 2, interpolation="bicubic",
                 contains=["upsample2d", "bicubic"])


def test_upsample2d_wrong_rank():
    assert_error(ValueError, upsample2d, fl.ones(2, 2, 1), contains=["upsample2d", "(2, 2, 1)"])


def test_public_names():
    names = ["max_pool", "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool", "avg_pool1d",
             "avg_pool2d", "avg_pool3d", "global_avg_pool", "global_max_pool", "upsample2d"]
    import fundl.ops.pool as module

    for name in names:
        assert getattr(fl, name) is getattr(module, name) and name in fl.functional.__all__


@pytest.mark.parametrize("fn,shape,contains", [
    (max_pool1d, (2, 4, 4, 3), ["max_pool1d", "rank 3", "(2, 4, 4, 3)"]),
    (avg_pool3d, (2, 4, 4, 3), ["avg_pool3d", "rank 5", "(2, 4, 4, 3)"]),
    (global_max_pool, (4,), ["global_max_pool", "(4,)"]),
], ids=["max_pool1d", "avg_pool3d", "global_max_pool"])
def test_pool_rank_errors(fn, shape, contains):
    assert_error(ValueError, fn, fl.ones(*shape), contains=contains)
