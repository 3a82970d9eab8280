"""max_pool2d on the Keras-tutorial LeNet's shapes (2x2 tiling windows, 6 and 16 channels),
which run the row-by-row kernel (6) and the window-by-window one (16): float64 gradcheck,
NumPy and PyTorch, and float32 against PyTorch, alone and after a ReLU (ties at zero)."""
import numpy as np
import pytest

import fundl as fl
from fundl.ops.pool import max_pool2d
from fundl.testing import check_op


def _distinct(shape, seed=0):
    """Values 0.1 apart in random order: no ties, and no gradcheck step crosses one."""
    rng = np.random.default_rng(seed)
    values = rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1
    return values + rng.uniform(-0.01, 0.01, shape)


def _np_max_pool2(x):
    n, h, w, c = x.shape
    return x[:, :h // 2 * 2, :w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _torch_max_pool2(a):
    import torch.nn.functional as F

    return F.max_pool2d(a.movedim(-1, 1), 2).movedim(1, -1)


@pytest.mark.parametrize("shape", [(2, 8, 8, 6), (2, 7, 9, 3), (1, 6, 6, 16)], ids=str)
def test_max_pool2d_tiled_float64(shape):
    check_op(lambda a: max_pool2d(a, 2), _torch_max_pool2, [_distinct(shape)],
             reference=_np_max_pool2)


@pytest.mark.parametrize("channels", [6, 16])
@pytest.mark.parametrize("relu", [False, True], ids=["plain", "after_relu"])
def test_max_pool2d_float32_against_torch(channels, relu):
    """LeNet-sized float32 maps (28x28x6, 10x10x16), forward and input gradient; after a
    ReLU whole windows are 0, and the gradient of a tie goes to its first element in both."""
    torch = pytest.importorskip("torch")
    size = 28 if channels == 6 else 10
    rng = np.random.default_rng(channels)
    x = rng.standard_normal((8, size, size, channels)).astype(np.float32)
    gy = rng.standard_normal((8, size // 2, size // 2, channels)).astype(np.float32)
    xt = fl.Tensor(x, requires_grad=True)
    y = max_pool2d(fl.relu(xt) if relu else xt, 2)
    y.backward(fl.Tensor(gy))
    tx = torch.from_numpy(x).requires_grad_()
    ty = _torch_max_pool2(torch.relu(tx) if relu else tx)
    ty.backward(torch.from_numpy(gy))
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    np.testing.assert_array_equal(np.asarray(xt.grad), tx.grad.numpy())
