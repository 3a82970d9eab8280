"""SGD, Adam and RMSprop's one-pass compiled updates (fundl.kernels.fused) against their NumPy references
(bit for bit, float32 and float64) and against PyTorch's optimizers."""
import numpy as np
import pytest

import fundl as fl
from fundl.kernels import fused

pytestmark = pytest.mark.skipif(fused._numba is None, reason="needs Numba")

# above and below SGD's kernel threshold, and one large enough for every thread to take a share
SHAPES = [(70, 80), (5000,), (3, 4), (300, 257)]


def _run(make, shape, dtype, steps, enabled, seed=0, monkeypatch=None):
    monkeypatch.setattr(fused, "_ENABLED", enabled)
    rng = np.random.default_rng(seed)
    w = fl.tensor(rng.standard_normal(shape).astype(dtype), requires_grad=True)
    opt = make()
    for k in range(steps):
        g = rng.standard_normal(shape).astype(dtype)
        if k == 1:
            g.flat[0] = 0.0  # a zero gradient and a large one
            g.flat[-1] = 1e3
        opt.apply([g], [w])
    slots = {name: a.copy() for name, a in opt.slots(w).items()}
    return w.numpy().copy(), slots


OPTIMIZERS = {
    "sgd": lambda: fl.optimizers.SGD(0.1),
    "momentum": lambda: fl.optimizers.SGD(0.05, momentum=0.9),
    "nesterov": lambda: fl.optimizers.SGD(0.05, momentum=0.8, nesterov=True),
    "adam": lambda: fl.optimizers.Adam(1e-2),
    "amsgrad": lambda: fl.optimizers.Adam(1e-2, amsgrad=True),
    "adamw": lambda: fl.optimizers.AdamW(1e-2, weight_decay=0.1),
    "rmsprop": lambda: fl.optimizers.RMSprop(1e-2),
    "rmsprop-momentum": lambda: fl.optimizers.RMSprop(1e-2, momentum=0.9),
    "rmsprop-centered": lambda: fl.optimizers.RMSprop(1e-2, momentum=0.5, centered=True),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_update_equals_reference_exactly(name, shape, dtype, monkeypatch):
    kernel = _run(OPTIMIZERS[name], shape, dtype, 4, True, monkeypatch=monkeypatch)
    reference = _run(OPTIMIZERS[name], shape, dtype, 4, False, monkeypatch=monkeypatch)
    np.testing.assert_array_equal(kernel[0], reference[0])
    assert kernel[0].dtype == dtype
    for slot in reference[1]:
        np.testing.assert_array_equal(kernel[1][slot], reference[1][slot])


def test_fused_kernels_run_where_expected():
    w = np.zeros((70, 80), np.float32)
    assert fused.usable(w, w.copy(), w.copy(), min_size=4096)
    assert not fused.usable(w, w.copy(), min_size=10 ** 6)          # too small
    assert not fused.usable(w, w.astype(np.float64))                 # mixed dtypes
    assert not fused.usable(w, np.zeros((80, 70), np.float32).T)     # not C-contiguous
    assert not fused.usable(w.astype(np.int32), w.astype(np.int32))  # not a float
    assert not fused.usable(w, w.copy(), np.zeros(3, np.float32))    # a slot of another shape
    frozen = w.copy()
    frozen.setflags(write=False)
    assert not fused.usable(w, frozen)                               # read-only: a new signature


def test_adam_amsgrad_keeps_nan():
    """maximum(vhat, v) propagates a NaN from either side, as NumPy's does."""
    w = np.ones(5, np.float32)
    g = np.array([1, np.nan, 1, 1, 1], np.float32)
    m, v, vhat = np.zeros(5, np.float32), np.zeros(5, np.float32), np.zeros(5, np.float32)
    vhat[2] = np.nan
    fused.adam_update_numba(w, g, m, v, vhat, 0.1, 0.9, 0.999, 1e-7, True)
    assert np.isnan(vhat[1]) and np.isnan(vhat[2]) and np.isnan(w[1]) and np.isnan(w[2])
    assert np.isfinite(w[[0, 3, 4]]).all()


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam", "amsgrad",
                                  "rmsprop", "rmsprop-centered"])
def test_fused_updates_against_torch(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal((64, 80))
    w = fl.tensor(w0.copy(), requires_grad=True)
    tw = torch.tensor(w0.copy(), requires_grad=True)
    # Keras's epsilon is added to sqrt(v) without bias correction; with eps=0 both agree
    ours, theirs = {
        "sgd": (fl.optimizers.SGD(0.1), torch.optim.SGD([tw], lr=0.1)),
        "momentum": (fl.optimizers.SGD(0.1, momentum=0.9),
                     torch.optim.SGD([tw], lr=0.1, momentum=0.9)),
        "nesterov": (fl.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
                     torch.optim.SGD([tw], lr=0.1, momentum=0.9, nesterov=True)),
        "adam": (fl.optimizers.Adam(1e-2, epsilon=0.0), torch.optim.Adam([tw], lr=1e-2, eps=0.0)),
        "amsgrad": (fl.optimizers.Adam(1e-2, epsilon=0.0, amsgrad=True),
                    torch.optim.Adam([tw], lr=1e-2, eps=0.0, amsgrad=True)),
        # Keras adds epsilon inside the square root, PyTorch outside: with eps=0 both agree
        "rmsprop": (fl.optimizers.RMSprop(1e-2, rho=0.9, epsilon=0.0),
                    torch.optim.RMSprop([tw], lr=1e-2, alpha=0.9, eps=0.0)),
        "rmsprop-centered": (fl.optimizers.RMSprop(1e-2, rho=0.9, momentum=0.5, epsilon=0.0,
                                                   centered=True),
                             torch.optim.RMSprop([tw], lr=1e-2, alpha=0.9, eps=0.0,
                                                 momentum=0.5, centered=True)),
    }[name]
    for _ in range(5):
        g = rng.standard_normal(w0.shape)
        ours.apply([g], [w])
        tw.grad = torch.tensor(g)
        theirs.step()
    np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam", "amsgrad", "rmsprop-centered"])
def test_large_weights_update_on_every_thread_with_the_same_numbers(name, monkeypatch):
    """A weight of PARALLEL_UPDATE_MIN elements or more is updated in one parallel region, a
    share per thread; on one thread (backing off) and by the reference, the same bits."""
    from fundl.kernels import _parallel

    if not _parallel.regions():
        pytest.skip("parallel regions do not run here (one thread)")
    shape = (300, 257)
    assert np.prod(shape) >= fused.PARALLEL_UPDATE_MIN
    # a fresh back-off that counts no region as a stall (an earlier test's may be backing off)
    monkeypatch.setattr(fused, "_UPDATE_BACKOFF", _parallel.Backoff(1e9, stall_seconds=1e3))
    regions = []
    real = _parallel.run_region
    monkeypatch.setattr(_parallel, "run_region", lambda loop, n, *a, **k: regions.append(
        (loop, n, k.get("threads"))) or real(loop, n, *a, **k))
    parallel = _run(OPTIMIZERS[name], shape, np.float32, 3, True, monkeypatch=monkeypatch)
    assert len(regions) == 3 and all(r[1] == _parallel.threads() and r[2] is None
                                     for r in regions)
    assert regions[0][0] in fused._PARTS.values()
    fused._UPDATE_BACKOFF.skip = 10 ** 6  # backing off: every region on this thread alone
    regions.clear()
    serial = _run(OPTIMIZERS[name], shape, np.float32, 3, True, monkeypatch=monkeypatch)
    assert [r[2] for r in regions] == [1, 1, 1]
    reference = _run(OPTIMIZERS[name], shape, np.float32, 3, False, monkeypatch=monkeypatch)
    for got in (parallel, serial):
        np.testing.assert_array_equal(got[0], reference[0])
        for slot in reference[1]:
            np.testing.assert_array_equal(got[1][slot], reference[1][slot])
