"""im2col / col2im: the Numba kernels against their plain-NumPy references, and the dispatcher.

The references (:mod:`fundl.kernels.conv`) are what the GPU runs; every geometry the ops use
(contiguous kernel rows, per-tap runs under groups or width dilation, strides, 3-D windows,
the bias column of ones) is compared in float32 and float64.
"""
import subprocess
import sys

import numpy as np
import pytest

import fundl as fl
from fundl import kernels
from fundl.kernels import conv as kc

GEOMETRIES = [
    # x shape (N, D, H, W, C), ksize, strides, dilation, groups
    ((2, 1, 7, 8, 1), (1, 3, 3), (1, 1, 1), (1, 1, 1), 1),   # one channel: short runs
    ((2, 1, 6, 7, 9), (1, 2, 3), (1, 2, 1), (1, 1, 1), 1),   # many channels
    ((1, 1, 9, 9, 4), (1, 3, 2), (1, 2, 3), (1, 2, 1), 1),   # height dilation keeps rows whole
    ((1, 1, 7, 9, 2), (1, 2, 3), (1, 1, 1), (1, 1, 2), 1),   # width dilation splits them
    ((2, 1, 5, 6, 6), (1, 3, 3), (1, 1, 1), (1, 1, 1), 3),   # groups split them too
    ((2, 5, 6, 7, 4), (2, 3, 2), (2, 1, 3), (2, 1, 1), 2),   # 3-D, everything at once
    ((3, 1, 1, 9, 2), (1, 1, 4), (1, 1, 2), (1, 1, 1), 1),   # 1-D
]



@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("run", [1, 5, 11, 15, 16, 17, 30, 32, 33])
@pytest.mark.parametrize("ones", [False, True])
def test_im2col_block_copies_of_every_run_length(run, ones, dtype):
    """Whole kernel rows are copied in blocks of 16 values that run past each run into what
    is written next; near the end of x or of cols the exact copy takes over. Every value of
    cols must still be the reference's, whatever the buffer held before (pooled buffers are
    reused: here a NaN-filled one)."""
    c = 1 if run < 8 else run // 5 if run % 5 == 0 else run
    kw = run // c
    x = np.random.default_rng(run).standard_normal((3, 1, kw + 2, kw + 3, c)).astype(dtype)
    geometry = ((1, 2, kw), (1, 1, 1), (1, 1, 1))
    want = kc.im2col_reference(x, *geometry, 1, ones)
    cols = np.full((1,) + want.shape[1:], np.nan, dtype)
    lo, out = (0, 0, 0), kc._out_shape(x.shape, *geometry)
    kc._im2col_kernel(x, cols, out, *geometry, lo)
    np.testing.assert_array_equal(cols, want)
    got = kc.im2col_numba(x, *geometry, 1, ones, pads=((0, 0), (1, 0), (0, 2)))
    np.testing.assert_array_equal(got, kc.im2col_reference(
        kc.pad_5d(x, ((0, 0), (1, 0), (0, 2))), *geometry, 1, ones))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ones", [False, True])
@pytest.mark.parametrize("shape,ksize,strides,dilation,groups", GEOMETRIES, ids=str)
def test_im2col_numba_matches_reference(dtype, ones, shape, ksize, strides, dilation, groups):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    got = kc.im2col_numba(x, ksize, strides, dilation, groups, ones)
    expected = kc.im2col_reference(x, ksize, strides, dilation, groups, ones)
    assert got.dtype == dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,ksize,strides,dilation,groups", GEOMETRIES, ids=str)
def test_col2im_numba_matches_reference(dtype, shape, ksize, strides, dilation, groups):
    rng = np.random.default_rng(1)
    width = ksize[0] * ksize[1] * ksize[2] * shape[4] // groups
    rows = shape[0] * int(np.prod(kc._out_shape(shape, ksize, strides, dilation)))
    cols = rng.standard_normal((groups, rows, width)).astype(dtype)
    got = kc.col2im_numba(cols, shape, ksize, strides, dilation, groups)
    expected = kc.col2im_reference(cols, shape, ksize, strides, dilation, groups)
    assert got.dtype == dtype and got.shape == shape
    np.testing.assert_allclose(got, expected, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("shape,ksize,strides,dilation,groups", GEOMETRIES, ids=str)
def test_col2im_is_the_adjoint_of_im2col(shape, ksize, strides, dilation, groups):
    # <im2col(x), c> == <x, col2im(c)>: the conv's input gradient is exactly transposed
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    cols = kc.im2col_numba(x, ksize, strides, dilation, groups)
    c = rng.standard_normal(cols.shape)
    back = kc.col2im_numba(c, shape, ksize, strides, dilation, groups)
    np.testing.assert_allclose((cols * c).sum(), (x * back).sum(), rtol=1e-12)


def test_im2col_rows_are_receptive_fields():
    x = np.arange(12.0).reshape(1, 1, 3, 4, 1)
    cols = kc.im2col_numba(x, (1, 2, 2), (1, 1, 2), (1, 1, 1), 1, ones=True)
    np.testing.assert_array_equal(cols[0], [[0, 1, 4, 5, 1], [2, 3, 6, 7, 1],
                                            [4, 5, 8, 9, 1], [6, 7, 10, 11, 1]])


def test_col2im_sums_overlapping_windows():
    cols = np.ones((1, 3, 2))  # a 1-D window of 2 sliding over 4 positions
    gx = kc.col2im_numba(cols, (1, 1, 1, 4, 1), (1, 1, 2), (1, 1, 1), (1, 1, 1), 1)
    np.testing.assert_array_equal(gx.ravel(), [1, 2, 2, 1])


def test_im2col_accepts_non_contiguous_inputs():
    x = np.random.default_rng(3).standard_normal((2, 1, 6, 6, 3))
    view = x[:, :, :, ::-1]
    np.testing.assert_array_equal(kc.im2col_numba(view, (1, 2, 2), (1, 1, 1), (1, 1, 1), 1),
                                  kc.im2col_reference(view, (1, 2, 2), (1, 1, 1), (1, 1, 1), 1))


def test_dispatcher_compiles_for_numpy_arrays():
    pytest.importorskip("numba")
    assert kernels.compiled(np.zeros(3))


class _Marked(np.ndarray):
    """Not exactly numpy.ndarray, so the dispatcher must take the reference path."""


def test_dispatcher_sends_other_arrays_to_the_reference(monkeypatch):
    x = np.random.default_rng(4).standard_normal((1, 1, 4, 4, 2)).view(_Marked)
    assert not kernels.compiled(x)
    calls = []
    original = kc.im2col_reference

    def reference(*args):
        calls.append(args)
        return original(*args)

    monkeypatch.setattr(kc, "im2col_reference", reference)
    kernels.im2col(x, (1, 2, 2), (1, 1, 1), (1, 1, 1), 1)
    assert len(calls) == 1


_FALLBACK = """
import sys, warnings
sys.modules["numba"] = None  # makes `import numba` raise ImportError
import numpy as np
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import fundl.kernels as k
    x = np.arange(16.0).reshape(1, 1, 4, 4, 1)
    cols = k.im2col(x, (1, 2, 2), (1, 2, 2), (1, 1, 1), 1)
    k.max_pool(x, (1, 2, 2), (1, 2, 2))
numba_warnings = [w for w in caught if "Numba" in str(w.message)]
assert len(numba_warnings) == 1, [str(w.message) for w in caught]
assert issubclass(numba_warnings[0].category, RuntimeWarning)
assert not k.compiled(x)
assert cols.tolist() == [[[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]]
print("ok")
"""


def test_without_numba_the_references_run_after_one_warning():
    result = subprocess.run([sys.executable, "-c", _FALLBACK], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not fl.gpu_available(), reason="needs CuPy and an NVIDIA GPU")
@pytest.mark.parametrize("wide", [False, True])  # 32- or 64-bit index arithmetic
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,ksize,strides,dilation,groups", GEOMETRIES, ids=str)
def test_cuda_kernels_match_the_references(monkeypatch, wide, dtype, shape, ksize, strides,
                                           dilation, groups):
    import cupy

    from fundl.kernels import conv_cuda

    monkeypatch.setattr(conv_cuda, "_wide", lambda *arrays: wide)
    rng = np.random.default_rng(5)
    x = cupy.asarray(rng.standard_normal(shape).astype(dtype))
    for ones in (False, True):
        got = conv_cuda.im2col(x, ksize, strides, dilation, groups, ones)
        want = kc.im2col_reference(x, ksize, strides, dilation, groups, ones)
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_array_equal(got.get(), want.get())
    cols = cupy.asarray(rng.standard_normal(got[..., :-1].shape).astype(dtype))
    got = conv_cuda.col2im(cols, shape, ksize, strides, dilation, groups)
    want = kc.col2im_reference(cols, shape, ksize, strides, dilation, groups)
    assert got.dtype == dtype and got.shape == shape
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got.get(), want.get(), rtol=tol, atol=tol)
    # the dispatcher takes them for CuPy arrays
    np.testing.assert_array_equal(kernels.im2col(x, ksize, strides, dilation, groups).get(),
                                  kc.im2col_reference(x, ksize, strides, dilation, groups).get())


PADS = [((0, 0), (1, 1), (1, 1)), ((1, 0), (0, 2), (2, 1)), ((0, 0), (3, 0), (0, 3))]
LONG_RUNS = [  # 16 or more values per run: padded implicitly (shorter runs get a padded copy)
    ((2, 1, 6, 7, 16), (1, 3, 3), (1, 1, 1), (1, 1, 1), 1),  # whole kernel rows
    ((1, 3, 5, 6, 16), (2, 3, 2), (1, 2, 2), (2, 1, 1), 1),  # 3-D, strides, depth dilation
    ((2, 1, 6, 7, 32), (1, 3, 3), (1, 2, 1), (1, 1, 2), 2),  # groups + width dilation: by tap
]


@pytest.mark.parametrize("pads", PADS, ids=str)
@pytest.mark.parametrize("shape,ksize,strides,dilation,groups", GEOMETRIES + LONG_RUNS, ids=str)
def test_implicit_padding_matches_a_padded_copy(shape, ksize, strides, dilation, groups, pads):
    # the Numba kernels pad implicitly where runs are long (border windows kernel row by kernel
    # row, or tap by tap under groups / width dilation); the references get a padded copy
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape)
    padded = np.pad(x, ((0, 0),) + pads + ((0, 0),))
    got = kc.im2col_numba(x, ksize, strides, dilation, groups, True, pads)
    np.testing.assert_array_equal(got, kc.im2col_reference(padded, ksize, strides, dilation,
                                                           groups, True))
    cols = rng.standard_normal(got[..., :-1].shape)
    inner = (slice(None),) + tuple(slice(b, b + n) for n, (b, _) in zip(shape[1:4], pads))
    want = kc.col2im_reference(cols, padded.shape, ksize, strides, dilation, groups)[inner]
    np.testing.assert_allclose(kc.col2im_numba(cols, shape, ksize, strides, dilation, groups,
                                               pads), want, rtol=1e-12, atol=1e-12)
    out = np.full(shape, np.nan)  # written over, not added to
    kernels.col2im(cols, shape, ksize, strides, dilation, groups, pads=pads, out=out)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)
    strided = np.full(shape[:4] + (2 * shape[4],), np.nan)[..., ::2]  # not C-contiguous
    kernels.col2im(cols, shape, ksize, strides, dilation, groups, pads=pads, out=strided)
    np.testing.assert_allclose(strided, want, rtol=1e-12, atol=1e-12)


def test_the_reference_path_pads_too(monkeypatch):
    monkeypatch.setattr(kernels, "_NUMBA", False)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 1, 5, 6, 3))
    pads = ((0, 0), (1, 1), (2, 0))
    padded = np.pad(x, ((0, 0),) + pads + ((0, 0),))
    geometry = ((1, 3, 3), (1, 1, 2), (1, 1, 1))
    np.testing.assert_array_equal(kernels.im2col(x, *geometry, 1, pads=pads),
                                  kc.im2col_reference(padded, *geometry, 1))
    cols = rng.standard_normal(kc.im2col_reference(padded, *geometry, 1).shape)
    out = np.empty(x.shape)
    kernels.col2im(cols, x.shape, *geometry, 1, pads=pads, out=out)
    np.testing.assert_allclose(out, kc.col2im_reference(cols, padded.shape, *geometry, 1)[
        :, :, 1:6, 2:8], rtol=1e-12)
