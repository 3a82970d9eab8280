"""matmul (every NumPy promotion and broadcasting rule) and linear: values, gradients, errors.

Every op goes through ``fundl.testing.check_op``; its PyTorch comparison runs only when torch
is installed, so torch is imported lazily inside the reference lambdas.
"""
import numpy as np
import pytest

import fundl as fl
from fundl.testing import assert_error, check_op


def _F():
    import torch.nn.functional

    return torch.nn.functional


MATMUL_SHAPES = [
    ((3, 4), (4, 5)),            # 2-D
    ((2, 3, 4), (2, 4, 5)),      # batched 3-D
    ((2, 2, 3, 4), (2, 2, 4, 5)),  # batched 4-D
    ((2, 1, 3, 4), (5, 4, 2)),   # batch axes broadcast both ways
    ((1, 3, 4), (2, 4, 5)),      # a batch axis of 1 against 2
    ((3, 4), (2, 4, 5)),         # a matrix against a batch
    ((2, 3, 4), (4, 5)),         # a batch against one matrix (a shared weight)
    ((2, 2, 3, 4), (4, 5)),
    ((4,), (4, 5)),              # 1-D @ 2-D
    ((3, 4), (4,)),              # 2-D @ 1-D
    ((4,), (4,)),                # 1-D @ 1-D: a 0-d result
    ((4,), (2, 4, 5)),           # 1-D @ batch
    ((2, 3, 4), (4,)),           # batch @ 1-D
    ((1, 1), (1, 1)),
]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul(shapes):
    rng = np.random.default_rng(0)
    x, y = (np.asarray(rng.standard_normal(s)) for s in shapes)
    check_op(fl.matmul, lambda a, b: a @ b, [x, y], reference=np.matmul)


@pytest.mark.parametrize("form", ["x @ w", "x.matmul(w)", "ndarray @ w", "x @ ndarray"])
def test_matmul_forms(form):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    if form == "x @ w":
        check_op(lambda u, v: u @ v, lambda u, v: u @ v, [a, b], reference=np.matmul)
    elif form == "x.matmul(w)":
        check_op(lambda u, v: u.matmul(v), lambda u, v: u.matmul(v), [a, b], reference=np.matmul)
    elif form == "ndarray @ w":  # ndarray.__matmul__ defers to Tensor.__rmatmul__
        check_op(lambda v: a @ v, lambda v: v.new_tensor(a) @ v, [b], reference=lambda v: a @ v)
    else:
        check_op(lambda u: u @ b, lambda u: u @ u.new_tensor(b), [a], reference=lambda u: u @ b)


def test_matmul_one_operand_constant():
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5))
    check_op(fl.matmul, lambda a, b: a @ b, [x, w], reference=np.matmul, constant=(1,))
    check_op(fl.matmul, lambda a, b: a @ b, [x, w], reference=np.matmul, constant=(0,))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_vector_dot_gradients(dtype):
    a = fl.tensor(np.array([1.0, 2.0, 3.0], dtype=dtype), requires_grad=True)
    b = fl.tensor(np.array([4.0, 5.0, 6.0], dtype=dtype), requires_grad=True)
    out = a @ b
    assert out.shape == () and float(out.item()) == 32.0
    out.backward()
    np.testing.assert_array_equal(a.grad, [4.0, 5.0, 6.0])
    np.testing.assert_array_equal(b.grad, [1.0, 2.0, 3.0])
    assert a.grad.dtype == dtype and b.grad.dtype == dtype


@pytest.mark.parametrize("shapes", [((3, 4), (5, 6)), ((4,), (3,)), ((2, 3, 4), (3, 5)),
                                    ((3, 4), (3,)), ((5,), (2, 4, 3))], ids=str)
def test_matmul_inner_mismatch_names_op_and_shapes(shapes):
    xs, ys = shapes
    assert_error(ValueError, fl.matmul, fl.ones(*xs), fl.ones(*ys),
                 contains=["MatMul", str(xs), str(ys)])
    assert_error(ValueError, lambda: fl.ones(*xs) @ fl.ones(*ys), contains=["MatMul", str(xs)])


def test_matmul_batch_mismatch_names_op_and_shapes():
    assert_error(ValueError, fl.matmul, fl.ones(2, 3, 4), fl.ones(3, 4, 5),
                 contains=["MatMul", "(2, 3, 4)", "(3, 4, 5)", "batch"])


def test_matmul_rejects_0d():
    assert_error(ValueError, fl.matmul, fl.tensor(2.0), fl.ones(3),
                 contains=["MatMul", "()", "(3,)"])


# -- linear -------------------------------------------------------------------------------------

LINEAR_X = [(5, 3), (2, 5, 3), (2, 2, 4, 3), (3,), (1, 3)]


def _np_linear(x, w, b=None):
    return x @ w if b is None else x @ w + b


@pytest.mark.parametrize("x_shape", LINEAR_X, ids=str)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no bias"])
def test_linear(x_shape, bias):
    rng = np.random.default_rng(3)
    x, w = np.asarray(rng.standard_normal(x_shape)), rng.standard_normal((3, 4))
    if bias:
        check_op(fl.linear, lambda a, k, b: _F().linear(a, k.T, b),
                 [x, w, rng.standard_normal(4)], reference=_np_linear)
    else:
        check_op(fl.linear, lambda a, k: _F().linear(a, k.T), [x, w], reference=_np_linear)


def test_linear_constant_input():
    """Only the weights need gradients (the first layer of a network)."""
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((6, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2)
    check_op(fl.linear, lambda a, k, c: _F().linear(a, k.T, c), [x, w, b], reference=_np_linear,
             constant=(0,))


def test_linear_matches_matmul_plus_bias():
    rng = np.random.default_rng(5)
    x = fl.tensor(rng.standard_normal((2, 4, 3)).astype(np.float32), requires_grad=True)
    w = fl.tensor(rng.standard_normal((3, 2)).astype(np.float32), requires_grad=True)
    b = fl.tensor(rng.standard_normal(2).astype(np.float32), requires_grad=True)
    y = fl.linear(x, w, b)
    assert y.dtype == np.float32 and y.shape == (2, 4, 2)
    y.sum().backward()
    grads = [t.grad for t in (x, w, b)]
    for t in (x, w, b):
        t.grad = None
    ((x @ w) + b).sum().backward()
    for t, g in zip((x, w, b), grads):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, t.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("x_shape,w_shape", [((5, 3), (4, 2)), ((5, 3), (3,)), ((5, 3), (1, 3, 2)),
                                             ((2, 5, 4), (3, 2))], ids=str)
def test_linear_wrong_kernel_shape(x_shape, w_shape):
    assert_error(ValueError, fl.linear, fl.ones(*x_shape), fl.ones(*w_shape),
                 contains=["Linear", str(x_shape), str(w_shape)])


@pytest.mark.parametrize("b_shape", [(3,), (2, 1), (1, 2), ()], ids=str)
def test_linear_wrong_bias_shape(b_shape):
    assert_error(ValueError, fl.linear, fl.ones(5, 3), fl.ones(3, 2), fl.ones(*b_shape),
                 contains=["Linear", "bias", "(2,)", str(b_shape)])
