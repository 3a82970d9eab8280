"""Reshaping layers: Cropping1D, Cropping2D, Permute, RepeatVector."""
import numpy as np
import pytest

from fundl.layers import Cropping1D, Cropping2D, Permute, RepeatVector
from fundl.testing import assert_error
from fundl.testing.layer_case import check_layer


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("cropping, out", [(1, (2, 4, 3)), ((2, 0), (2, 4, 3)),
                                           ((0, 3), (2, 3, 3))])
def test_cropping1d_harness(cropping, out):
    check_layer(Cropping1D, {"cropping": cropping}, input_shape=(2, 6, 3),
                expected_output_shape=out, expected_weights={})


@pytest.mark.parametrize("kwargs, out", [
    ({"cropping": 1}, (2, 3, 4, 2)),
    ({"cropping": (1, 2)}, (2, 3, 2, 2)),
    ({"cropping": ((1, 0), (0, 2))}, (2, 4, 4, 2)),
    ({"cropping": ((1, 0), (0, 2)), "data_format": "channels_first"}, (2, 4, 4, 6)),
])
def test_cropping2d_harness(kwargs, out):
    shape = (2, 5, 6, 2) if "data_format" not in kwargs else (2, 4, 5, 8)
    check_layer(Cropping2D, kwargs, input_shape=shape, expected_output_shape=out,
                expected_weights={})


def test_cropping2d_values_match_slicing():
    x = _x((2, 7, 8, 3))
    y = Cropping2D(((1, 2), (3, 1)), dtype="float64")(x).numpy()
    np.testing.assert_array_equal(y, x[:, 1:-2, 3:-1, :])
    xf = x.transpose(0, 3, 1, 2)
    y = Cropping2D(((1, 2), (3, 1)), data_format="channels_first", dtype="float64")(xf).numpy()
    np.testing.assert_array_equal(y, xf[:, :, 1:-2, 3:-1])
    np.testing.assert_array_equal(Cropping1D((2, 1), dtype="float64")(x[:, 0]).numpy(),
                                  x[:, 0, 2:-1])


def test_cropping_matches_torch_narrowing():
    torch = pytest.importorskip("torch")
    x = _x((2, 6, 7, 3))
    t = torch.tensor(x, requires_grad=True)
    want = t[:, 2:-1, 1:-1, :]
    g = _x(want.shape, 1)
    want.backward(torch.tensor(g))
    import fundl as fl
    fx = fl.tensor(x, requires_grad=True)
    out = Cropping2D(((2, 1), (1, 1)), dtype="float64")(fx)
    out.backward(g)
    np.testing.assert_array_equal(out.numpy(), want.detach().numpy())
    np.testing.assert_array_equal(fx.grad, t.grad.numpy())


@pytest.mark.parametrize("dims, out", [((2, 1), (2, 4, 3)), ((1, 2), (2, 3, 4))])
def test_permute_harness(dims, out):
    check_layer(Permute, {"dims": dims}, input_shape=(2, 3, 4), expected_output_shape=out,
                expected_weights={})


def test_permute_values():
    x = _x((2, 3, 4, 5))
    np.testing.assert_array_equal(Permute((3, 1, 2), dtype="float64")(x).numpy(),
                                  x.transpose(0, 3, 1, 2))


def test_repeat_vector_harness_and_values():
    check_layer(RepeatVector, {"n": 3}, input_shape=(2, 4), expected_output_shape=(2, 3, 4),
                expected_weights={})
    x = _x((2, 4))
    np.testing.assert_array_equal(RepeatVector(3, dtype="float64")(x).numpy(),
                                  np.repeat(x[:, None], 3, axis=1))


def test_errors():
    assert_error(ValueError, lambda: Cropping1D(-1), contains=("Cropping1D", "cropping"))
    assert_error(ValueError, lambda: Cropping2D(((1, 2, 3), (0, 0))),
                 contains=("Cropping2D", "cropping"))
    assert_error(ValueError, lambda: Cropping2D(3)(np.ones((1, 5, 8, 1), "float32")),
                 contains=("Cropping2D", "(1, 5, 8, 1)", "crop less"))
    assert_error(ValueError, lambda: Cropping2D(1)(np.ones((1, 5, 8), "float32")),
                 contains=("Cropping2D", "rank 4"))
    assert_error(ValueError, lambda: Permute((0, 1)), contains=("Permute", "permutation"))
    assert_error(ValueError, lambda: Permute((2, 1))(np.ones((2, 3, 4, 5), "float32")),
                 contains=("Permute", "rank 3"))
    assert_error(ValueError, lambda: RepeatVector(0), contains=("RepeatVector", "positive"))
    assert_error(ValueError, lambda: RepeatVector(2)(np.ones((2, 3, 4), "float32")),
                 contains=("RepeatVector", "rank 2"))
