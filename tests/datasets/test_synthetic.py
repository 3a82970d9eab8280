"""2-D toy sets: shapes, dtypes, balance, seeding and the exact geometry at noise=0."""
import math

import numpy as np
import pytest

from fundl.datasets import synthetic

GENERATORS = {
    "spiral": (synthetic.spiral, 2), "spiral3": (lambda *a, **k: synthetic.spiral(*a, classes=3, **k), 3),
    "circles": (synthetic.circles, 2), "xor": (synthetic.xor, 2),
    "gaussians": (synthetic.gaussians, 3), "ellipses": (synthetic.ellipses, 2), "moons": (synthetic.moons, 2),
}


@pytest.mark.parametrize("name", GENERATORS)
@pytest.mark.parametrize("n", [1, 7, 101, 400])
def test_shapes_dtypes_balance(name, n):
    gen, classes = GENERATORS[name]
    x, y = gen(n, seed=0)
    assert x.shape == (n, 2) and x.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int64
    assert np.isfinite(x).all()
    counts = np.bincount(y, minlength=classes)
    assert len(counts) == classes and counts.max() - counts.min() <= 1


@pytest.mark.parametrize("name", GENERATORS)
def test_seed_reproducible(name):
    gen, _ = GENERATORS[name]
    a, b, c = gen(50, seed=3), gen(50, seed=3), gen(50, seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("name", GENERATORS)
def test_shuffle_false_keeps_class_blocks(name):
    gen, _ = GENERATORS[name]
    _, y = gen(60, seed=0, shuffle=False)
    if name == "xor":  # quadrant by quadrant: labels 0, 1, 0, 1
        assert y.tolist() == [0] * 15 + [1] * 15 + [0] * 15 + [1] * 15
    else:
        assert (np.diff(y) >= 0).all()


def test_circles_radii():
    x, y = synthetic.circles(200, noise=0.0, factor=0.3, seed=0)
    r = np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(r[y == 0], 1.0, rtol=1e-6)
    np.testing.assert_allclose(r[y == 1], 0.3, rtol=1e-6)


def test_moons_geometry():
    x, y = synthetic.moons(200, noise=0.0, seed=0)
    upper, lower = x[y == 0].astype(np.float64), x[y == 1].astype(np.float64)
    assert upper[:, 0].min() == pytest.approx(-1) and upper[:, 0].max() == pytest.approx(1)
    assert upper[:, 1].min() >= -1e-6 and upper[:, 1].max() == pytest.approx(1, abs=1e-3)
    assert lower[:, 0].min() == pytest.approx(0, abs=1e-6) and lower[:, 0].max() == pytest.approx(2)
    assert lower[:, 1].min() == pytest.approx(-0.5, abs=1e-3) and lower[:, 1].max() <= 0.5 + 1e-6
    np.testing.assert_allclose(np.linalg.norm(upper, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(lower - [1.0, 0.5], axis=1), 1.0, rtol=1e-6)


def test_spiral_geometry():
    x, y = synthetic.spiral(300, noise=0.0, classes=3, turns=1.5, seed=0)
    x = x.astype(np.float64)
    r = np.linalg.norm(x, axis=1)
    assert r.min() == pytest.approx(0.1) and r.max() == pytest.approx(1.0)
    t = 2 * math.pi * (1.5 * r + y / 3)
    np.testing.assert_allclose(x, r[:, None] * np.stack([np.cos(t), np.sin(t)], axis=1), atol=1e-6)


def test_xor_quadrants():
    x, y = synthetic.xor(400, noise=0.0, margin=0.2, seed=0)
    assert (np.abs(x) >= 0.2 - 1e-7).all() and (np.abs(x) <= 1).all()
    np.testing.assert_array_equal(y, (x[:, 0] * x[:, 1] < 0).astype(np.int64))
    quadrant_counts = np.unique(np.sign(x), axis=0, return_counts=True)[1]
    assert quadrant_counts.tolist() == [100] * 4


def test_gaussians_centers_and_spread():
    x, y = synthetic.gaussians(90, noise=0.0, centers=3, seed=0)
    t = 2 * math.pi * y / 3
    np.testing.assert_allclose(x, np.stack([np.cos(t), np.sin(t)], axis=1), atol=1e-6)
    centers = [[0.0, 0.0], [10.0, -5.0]]
    x, y = synthetic.gaussians(20000, noise=0.5, centers=centers, seed=0)
    for k, c in enumerate(centers):
        np.testing.assert_allclose(x[y == k].mean(axis=0), c, atol=0.03)
        np.testing.assert_allclose(x[y == k].std(axis=0), 0.5, atol=0.03)


def test_ellipses_elliptical_radius():
    a, b, angle = 2.0, 0.5, 0.7
    x, y = synthetic.ellipses(2000, noise=0.0, axes=(a, b), ring=(1.5, 2.5), angle=angle, seed=0)
    c, s = math.cos(angle), math.sin(angle)
    u = x[:, 0] * c + x[:, 1] * s  # rotate back into the ellipse's frame
    v = -x[:, 0] * s + x[:, 1] * c
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    assert rho[y == 0].max() <= 1 + 1e-5
    assert rho[y == 1].min() >= 1.5 - 1e-5 and rho[y == 1].max() <= 2.5 + 1e-5
    # Uniform in area: half of the inner ellipse's points lie within rho = sqrt(1/2).
    assert np.mean(rho[y == 0] < math.sqrt(0.5)) == pytest.approx(0.5, abs=0.05)


def test_noise_is_added():
    clean, _ = synthetic.circles(400, noise=0.0, seed=0, shuffle=False)
    noisy, _ = synthetic.circles(400, noise=0.1, seed=0, shuffle=False)
    assert np.std(noisy - clean) == pytest.approx(0.1, rel=0.1)


@pytest.mark.parametrize("call", [
    lambda: synthetic.moons(0), lambda: synthetic.moons(10, noise=-1),
    lambda: synthetic.moons(10, noise=float("nan")), lambda: synthetic.moons(2.5),
    lambda: synthetic.circles(10, factor=1.5), lambda: synthetic.spiral(10, classes=0),
    lambda: synthetic.gaussians(10, centers=[[1, 2, 3]]), lambda: synthetic.gaussians(10, centers=0),
    lambda: synthetic.ellipses(10, ring=(2.0, 1.0)), lambda: synthetic.xor(10, margin=1.0),
])
def test_invalid_arguments(call):
    with pytest.raises((ValueError, TypeError)):
        call()
