"""Small 2-D classification sets for playgrounds, demos and tests.

Every generator returns ``(x, y)``: ``x`` float32 of shape (n_samples, 2) and ``y`` int64 of
shape (n_samples,). Classes are as balanced as ``n_samples`` allows (sizes differ by at most one).
``noise`` is the standard deviation of Gaussian noise added to each coordinate (for
:func:`gaussians`, the blobs' standard deviation); with ``noise=0`` the points lie exactly on the
shapes described. ``seed`` goes to ``numpy.random.default_rng``: the same seed gives the same
data. Points are shuffled unless ``shuffle=False``, which returns them class by class.

Example:
    >>> from fundl.datasets import synthetic
    >>> x, y = synthetic.moons(200, noise=0.1, seed=0)
    >>> x.shape, x.dtype, y.shape, y.dtype
    ((200, 2), dtype('float32'), (200,), dtype('int64'))
"""
from __future__ import annotations

import math
import operator

import numpy as np

__all__ = ["spiral", "circles", "xor", "gaussians", "ellipses", "moons"]


def spiral(n_samples: int = 300, noise: float = 0.05, seed=None, *, classes: int = 2,
           turns: float = 1.0, shuffle: bool = True):
    """Interleaved spiral arms, one per class.

    Arm ``k`` holds points ``r * (cos t, sin t)`` with the radius ``r`` evenly spaced in
    [0.1, 1] and the angle ``t = 2*pi*turns*r + 2*pi*k/classes``.

    Args:
        n_samples: total number of points.
        noise: standard deviation of the Gaussian noise on each coordinate.
        seed: seed for ``numpy.random.default_rng``.
        classes: number of arms (and labels 0..classes-1).
        turns: how fast the arms wind: full turns of the angle per unit of radius.
        shuffle: shuffle the points (else they come class by class).

    Returns:
        ``(x, y)``: x float32 (n_samples, 2), y int64 (n_samples,).

    Example:
        >>> x, y = spiral(300, classes=3, seed=0)
    """
    rng = _rng(n_samples, noise, seed)
    parts = []
    for k, m in enumerate(_sizes(n_samples, classes)):
        r = np.linspace(0.1, 1.0, m)
        t = 2 * math.pi * (turns * r + k / classes)
        parts.append((np.stack([r * np.cos(t), r * np.sin(t)], axis=1), k))
    return _finish(parts, noise, rng, shuffle)


def circles(n_samples: int = 200, noise: float = 0.05, seed=None, *, factor: float = 0.5,
            shuffle: bool = True):
    """Two concentric circles: label 0 on the unit circle, label 1 on the circle of radius ``factor``.

    Args:
        n_samples: total number of points.
        noise: standard deviation of the Gaussian noise on each coordinate.
        seed: seed for ``numpy.random.default_rng``.
        factor: radius of the inner circle, in (0, 1).
        shuffle: shuffle the points (else they come class by class).

    Returns:
        ``(x, y)``: x float32 (n_samples, 2), y int64 (n_samples,).

    Example:
        >>> x, y = circles(200, factor=0.3, seed=0)
    """
    if not 0 < factor < 1:
        raise ValueError(f"circles: factor is the inner radius, expected 0 < factor < 1, got {factor}.")
    rng = _rng(n_samples, noise, seed)
    parts = []
    for label, (m, radius) in enumerate(zip(_sizes(n_samples, 2), (1.0, factor))):
        t = np.linspace(0, 2 * math.pi, m, endpoint=False)
        parts.append((radius * np.stack([np.cos(t), np.sin(t)], axis=1), label))
    return _finish(parts, noise, rng, shuffle)


def xor(n_samples: int = 200, noise: float = 0.05, seed=None, *, margin: float = 0.1,
        shuffle: bool = True):
    """The XOR problem: uniform points in the four quadrants, label 1 where x and y differ in sign.

    Points are uniform in ``[margin, 1]`` (times the quadrant's signs) per coordinate, so with
    ``noise=0`` the classes are separated by a band of width ``2 * margin`` around both axes.
    Each quadrant gets a quarter of the points.

    Args:
        n_samples: total number of points.
        noise: standard deviation of the Gaussian noise on each coordinate.
        seed: seed for ``numpy.random.default_rng``.
        margin: gap between the axes and the points, in [0, 1).
        shuffle: shuffle the points (else they come quadrant by quadrant).

    Returns:
        ``(x, y)``: x float32 (n_samples, 2), y int64 (n_samples,) in {0, 1}.

    Example:
        >>> x, y = xor(400, noise=0.0, seed=0)
    """
    if not 0 <= margin < 1:
        raise ValueError(f"xor: expected 0 <= margin < 1, got {margin}.")
    rng = _rng(n_samples, noise, seed)
    signs = ((1, 1), (-1, 1), (-1, -1), (1, -1))  # counter-clockwise, so labels alternate 0, 1, 0, 1
    parts = [(rng.uniform(margin, 1.0, size=(m, 2)) * s, q % 2)
             for q, (m, s) in enumerate(zip(_sizes(n_samples, 4), signs))]
    return _finish(parts, noise, rng, shuffle)


def gaussians(n_samples: int = 300, noise: float = 0.2, seed=None, *, centers=3,
              shuffle: bool = True):
    """Isotropic Gaussian blobs, one label per blob.

    Args:
        n_samples: total number of points.
        noise: standard deviation of every blob.
        seed: seed for ``numpy.random.default_rng``.
        centers: an int k (k centres evenly spaced on the unit circle, the first at (1, 0)) or an
            array-like of shape (k, 2) with the centres.
        shuffle: shuffle the points (else they come blob by blob).

    Returns:
        ``(x, y)``: x float32 (n_samples, 2), y int64 (n_samples,) in 0..k-1.

    Example:
        >>> x, y = gaussians(300, centers=[[0, 0], [3, 3]], noise=0.5, seed=0)
    """
    if isinstance(centers, (int, np.integer)):
        if centers < 1:
            raise ValueError(f"gaussians: expected at least one centre, got centers={centers}.")
        t = 2 * math.pi * np.arange(centers) / centers
        centers = np.stack([np.cos(t), np.sin(t)], axis=1)
    centers = np.asarray(centers, dtype=np.float64)
    if centers.ndim != 2 or centers.shape[1] != 2 or len(centers) == 0:
        raise ValueError("gaussians: centers must be an int or have shape (k, 2), "
                         f"got shape {centers.shape}.")
    rng = _rng(n_samples, noise, seed)
    parts = [(np.repeat(c[None], m, axis=0), k)
             for k, (m, c) in enumerate(zip(_sizes(n_samples, len(centers)), centers))]
    return _finish(parts, noise, rng, shuffle)


def ellipses(n_samples: int = 300, noise: float = 0.05, seed=None, *, axes=(1.0, 0.5),
             ring=(1.5, 2.0), angle: float = math.pi / 6, shuffle: bool = True):
    """A filled ellipse (label 0) inside a concentric elliptical ring (label 1), rotated by ``angle``.

    Label 0 is uniform over the ellipse with semi-axes ``axes``; label 1 is uniform over the ring
    between the same ellipse scaled by ``ring[0]`` and by ``ring[1]``. In the ellipse's own frame
    ``(u, v)``, the elliptical radius ``sqrt((u/a)^2 + (v/b)^2)`` is <= 1 for label 0 and within
    ``ring`` for label 1 (when ``noise=0``). Unlike :func:`circles`, the classes fill areas and
    the boundary is not axis-aligned.

    Args:
        n_samples: total number of points.
        noise: standard deviation of the Gaussian noise on each coordinate.
        seed: seed for ``numpy.random.default_rng``.
        axes: semi-axes ``(a, b)`` of the inner ellipse, both > 0.
        ring: inner and outer scale of the ring, ``1 <= ring[0] < ring[1]``.
        angle: rotation of both ellipses, in radians (counter-clockwise).
        shuffle: shuffle the points (else they come class by class).

    Returns:
        ``(x, y)``: x float32 (n_samples, 2), y int64 (n_samples,) in {0, 1}.

    Example:
        >>> x, y = ellipses(300, axes=(2.0, 1.0), angle=0.0, seed=0)
    """
    (a, b), (r0, r1) = axes, ring
    if not (a > 0 and b > 0 and 1 <= r0 < r1):
        raise ValueError("ellipses: expected axes > 0 and 1 <= ring[0] < ring[1], "
                         f"got axes={axes}, ring={ring}.")
    rng = _rng(n_samples, noise, seed)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    parts = []
    for label, (m, (lo, hi)) in enumerate(zip(_sizes(n_samples, 2), ((0.0, 1.0), (r0, r1)))):
        # rho = sqrt(uniform over [lo^2, hi^2]) makes the density uniform in area.
        rho = np.sqrt(rng.uniform(lo * lo, hi * hi, size=m))
        t = rng.uniform(0, 2 * math.pi, size=m)
        uv = np.stack([a * rho * np.cos(t), b * rho * np.sin(t)], axis=1)
        parts.append((uv @ rot.T, label))
    return _finish(parts, noise, rng, shuffle)


def moons(n_samples: int = 200, noise: float = 0.1, seed=None, *, shuffle: bool = True):
    """Two interleaving half circles, as scikit-learn's ``make_moons``.

    Label 0: the upper unit half circle ``(cos t, sin t)``; label 1: the lower one shifted,
    ``(1 - cos t, 0.5 - sin t)``, with ``t`` evenly spaced in [0, pi].

    Args:
        n_samples: total number of points.
        noise: standard deviation of the Gaussian noise on each coordinate.
        seed: seed for ``numpy.random.default_rng``.
        shuffle: shuffle the points (else they come class by class).

    Returns:
        ``(x, y)``: x float32 (n_samples, 2), y int64 (n_samples,) in {0, 1}.

    Example:
        >>> x, y = moons(200, noise=0.1, seed=0)
    """
    rng = _rng(n_samples, noise, seed)
    m0, m1 = _sizes(n_samples, 2)
    t0, t1 = np.linspace(0, math.pi, m0), np.linspace(0, math.pi, m1)
    parts = [(np.stack([np.cos(t0), np.sin(t0)], axis=1), 0),
             (np.stack([1 - np.cos(t1), 0.5 - np.sin(t1)], axis=1), 1)]
    return _finish(parts, noise, rng, shuffle)


def _rng(n_samples, noise, seed) -> np.random.Generator:
    n = operator.index(n_samples)
    if n < 1:
        raise ValueError(f"n_samples must be a positive int, got {n_samples}.")
    if not (noise >= 0 and math.isfinite(noise)):
        raise ValueError(f"noise is a standard deviation, expected a finite value >= 0, got {noise}.")
    return np.random.default_rng(seed)


def _sizes(n_samples: int, k: int) -> list[int]:
    k = operator.index(k)
    if k < 1:
        raise ValueError(f"expected at least one class, got {k}.")
    return [n_samples // k + (i < n_samples % k) for i in range(k)]


def _finish(parts, noise, rng, shuffle):
    x = np.concatenate([p for p, _ in parts]).reshape(-1, 2)
    y = np.concatenate([np.full(len(p), label, dtype=np.int64) for p, label in parts])
    if noise:
        x = x + rng.normal(scale=noise, size=x.shape)
    if shuffle:
        order = rng.permutation(len(y))
        x, y = x[order], y[order]
    return x.astype(np.float32), y
