"""The plain-xp references (the GPU path) give the compiled CPU path's results, through the ops.

On a machine without a GPU the CuPy code paths of the ops cannot run; but the ops call the
same ``xp`` reference kernels for CuPy arrays as for NumPy arrays when Numba is unavailable.
Switching the compiled kernels off (``fundl.kernels._NUMBA``) sends a small CNN's training
step through every reference, and its loss and gradients must match the compiled run's.
"""
import numpy as np
import pytest

import fundl as fl
from fundl import kernels


def _cnn_step(seed=0):
    rng = np.random.default_rng(seed)
    x = fl.tensor(rng.standard_normal((6, 9, 9, 3)), requires_grad=True)
    params = {
        "k1": rng.standard_normal((3, 3, 3, 6)) * 0.3, "b1": rng.standard_normal(6) * 0.1,
        "g": 1 + rng.standard_normal(6) * 0.1, "be": rng.standard_normal(6) * 0.1,
        "k2": rng.standard_normal((1, 1, 6, 4)) * 0.3,
        "k3": rng.standard_normal((2, 2, 2, 4)) * 0.3,
    }
    p = {k: fl.tensor(v, requires_grad=True) for k, v in params.items()}
    h = fl.conv2d(x, p["k1"], p["b1"], padding="same")
    h = fl.relu(fl.batch_norm(h, p["g"], p["be"]))
    h = fl.max_pool(h, 2, padding="same")               # 5x5x6
    h = fl.tanh(fl.conv2d(h, p["k2"]))                  # the im2col-free path
    h = fl.sigmoid(fl.conv2d(h, p["k3"], groups=2))     # grouped
    h = fl.avg_pool(h, 2)
    loss = (h * h).sum()
    loss.backward()
    return [loss.numpy()] + [x.grad] + [p[k].grad for k in sorted(p)]


def test_reference_kernels_match_the_compiled_ones_through_the_ops(monkeypatch):
    if not kernels._NUMBA:
        pytest.skip("Numba is not installed: both runs would take the references")
    compiled = _cnn_step()
    monkeypatch.setattr(kernels, "_NUMBA", False)
    assert not kernels.compiled(np.zeros(1))
    reference = _cnn_step()
    for got, want in zip(reference, compiled):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
