"""The Tensor API (API.md "Tensors and automatic differentiation"): creation, dtype rules,
factories, attributes and conversions."""
import numpy as np
import pytest

import fundl as fl
from fundl.testing import assert_error


@pytest.fixture
def float64_default():
    fl.set_default_dtype("float64")
    try:
        yield
    finally:
        fl.set_default_dtype("float32")


# -- dtype rules ------------------------------------------------------------------------------

def test_python_floats_become_float32():
    assert fl.tensor([[1.0, 2.0]]).dtype == np.float32
    assert fl.tensor(3.5).dtype == np.float32


def test_mixed_python_ints_and_floats_become_float32():
    assert fl.tensor([1, 2.5]).dtype == np.float32


def test_python_ints_become_int64():
    assert fl.tensor([1, 2, 3]).dtype == np.int64
    assert fl.tensor(7).dtype == np.int64


def test_python_bools_stay_bool():
    assert fl.tensor([True, False]).dtype == np.bool_


def test_numpy_float64_array_keeps_float64():
    assert fl.tensor(np.zeros((2, 2))).dtype == np.float64
    assert fl.tensor(np.float64(1.0)).dtype == np.float64


def test_numpy_float32_and_int32_arrays_keep_their_dtype():
    assert fl.tensor(np.zeros(2, dtype=np.float32)).dtype == np.float32
    assert fl.tensor(np.zeros(2, dtype=np.int32)).dtype == np.int32


def test_explicit_dtype_wins():
    assert fl.tensor([1.0, 2.0], dtype="float64").dtype == np.float64
    assert fl.tensor(np.zeros(2), dtype=np.float32).dtype == np.float32
    assert fl.tensor([1, 2], dtype="float32").dtype == np.float32


def test_default_dtype_applies_to_python_floats(float64_default):
    assert fl.tensor([1.0]).dtype == np.float64
    assert fl.zeros(2).dtype == np.float64


def test_set_default_dtype_rejects_integers():
    assert_error(TypeError, fl.set_default_dtype, "int32", contains=["int32"])
    assert fl.get_default_dtype() == np.float32


def test_tensor_from_tensor_drops_the_graph():
    x = fl.tensor([1.0, 2.0], requires_grad=True)
    y = fl.tensor(x * 2)
    assert y.creator is None and not y.requires_grad
    np.testing.assert_array_equal(y.numpy(), [2.0, 4.0])


def test_tensor_from_list_of_tensors():
    t = fl.tensor([fl.tensor(1.0), fl.tensor(2.0)])
    assert t.dtype == np.float32 and t.shape == (2,)
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])


def test_numpy_asarray_of_tensor():
    a = np.asarray(fl.tensor([[1.0, 2.0]]))
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.shape == (1, 2)
    assert np.asarray(fl.tensor([1.5]), dtype=np.float64).dtype == np.float64


# -- factories --------------------------------------------------------------------------------

@pytest.mark.parametrize("factory", [fl.zeros, fl.ones, fl.rand, fl.randn])
def test_factories_take_varargs_or_a_tuple(factory):
    assert factory(2, 3).shape == (2, 3)
    assert factory((2, 3)).shape == (2, 3)
    assert factory([4]).shape == (4,)
    assert factory(2, 3).dtype == np.float32


@pytest.mark.parametrize("factory", [fl.zeros, fl.ones, fl.rand, fl.randn])
def test_factories_honour_dtype_and_requires_grad(factory):
    t = factory(2, dtype="float64", requires_grad=True)
    assert t.dtype == np.float64 and t.requires_grad and t.is_leaf


def test_zeros_and_ones_values():
    np.testing.assert_array_equal(fl.zeros(2, 2).numpy(), np.zeros((2, 2)))
    np.testing.assert_array_equal(fl.ones(3).numpy(), np.ones(3))


def test_rand_is_in_unit_interval_and_seeded():
    fl.manual_seed(3)
    a = fl.rand(100).numpy()
    fl.manual_seed(3)
    b = fl.rand(100).numpy()
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0.0 and a.max() < 1.0


def test_randn_is_seeded_and_roughly_standard():
    fl.manual_seed(4)
    a = fl.randn(2000).numpy()
    fl.manual_seed(4)
    np.testing.assert_array_equal(a, fl.randn(2000).numpy())
    assert abs(a.mean()) < 0.1 and abs(a.std() - 1.0) < 0.1


def test_full():
    t = fl.full((2, 3), 7.0)
    assert t.shape == (2, 3) and t.dtype == np.float32
    np.testing.assert_array_equal(t.numpy(), np.full((2, 3), 7.0))
    assert fl.full(4, 1.0).shape == (4,)
    assert fl.full((2,), 1, dtype="int64").dtype == np.int64


def test_arange():
    np.testing.assert_array_equal(fl.arange(4).numpy(), [0, 1, 2, 3])
    assert fl.arange(4).dtype == np.int64
    np.testing.assert_array_equal(fl.arange(2, 5).numpy(), [2, 3, 4])
    np.testing.assert_allclose(fl.arange(0.0, 1.0, 0.25).numpy(), [0.0, 0.25, 0.5, 0.75])
    assert fl.arange(0.0, 1.0, 0.25).dtype == np.float32
    assert fl.arange(3, dtype="float64").dtype == np.float64


def test_arange_keeps_step_without_stop():
    np.testing.assert_array_equal(fl.arange(10, step=3).numpy(), [0, 3, 6, 9])


def test_zeros_like_and_ones_like():
    x = fl.tensor(np.ones((2, 3)))
    z = fl.zeros_like(x)
    o = fl.ones_like(x, dtype="float32", requires_grad=True)
    assert z.shape == (2, 3) and z.dtype == np.float64 and not z.requires_grad
    np.testing.assert_array_equal(z.numpy(), 0.0)
    assert o.dtype == np.float32 and o.requires_grad
    np.testing.assert_array_equal(o.numpy(), 1.0)
    assert fl.zeros_like(np.zeros((4,), dtype=np.int32)).dtype == np.int32


# -- requires_grad ----------------------------------------------------------------------------

def test_requires_grad_on_integer_tensor_raises():
    assert_error(TypeError, fl.tensor, [1, 2], requires_grad=True, contains=["int64", "float"])
    assert_error(TypeError, fl.zeros, 2, dtype="int32", requires_grad=True, contains=["int32"])
    assert_error(TypeError, fl.arange(3).requires_grad_, contains=["int64"])


def test_requires_grad_cannot_be_switched_off_on_non_leaf():
    y = fl.tensor([1.0], requires_grad=True) * 2
    assert_error(RuntimeError, y.requires_grad_, False, contains=["leaf", "detach"])


def test_requires_grad_can_be_switched_on_and_off_on_leaf():
    x = fl.tensor([1.0])
    assert x.requires_grad_() is x and x.requires_grad
    x.requires_grad_(False)
    assert not x.requires_grad


# -- attributes and conversions ---------------------------------------------------------------

def test_shape_dtype_ndim_size_len():
    x = fl.tensor(np.zeros((2, 3, 4)))
    assert x.shape == (2, 3, 4) and x.dtype == np.float64 and x.ndim == 3 and x.size == 24
    assert len(x) == 2


def test_len_of_0d_tensor_raises():
    assert_error(TypeError, len, fl.tensor(1.0), contains=["0-d"])


def test_numpy_returns_the_data():
    data = np.arange(6.0).reshape(2, 3)
    a = fl.tensor(data).numpy()
    assert isinstance(a, np.ndarray)
    np.testing.assert_array_equal(a, data)


def test_item():
    assert fl.tensor([[2.5]]).item() == 2.5
    assert isinstance(fl.tensor(3).item(), int)
    assert_error(ValueError, fl.tensor([1.0, 2.0]).item, contains=["(2,)"])


def test_T_reverses_axes():
    x = fl.tensor(np.arange(6.0).reshape(2, 3))
    assert x.T.shape == (3, 2)
    np.testing.assert_array_equal(x.T.numpy(), np.arange(6.0).reshape(2, 3).T)


def test_iteration_yields_rows_and_is_differentiable():
    x = fl.tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    rows = list(x)
    assert len(rows) == 3 and all(r.shape == (2,) for r in rows)
    np.testing.assert_array_equal(rows[1].numpy(), [2.0, 3.0])
    rows[1].sum().backward()
    np.testing.assert_array_equal(x.grad, [[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])


def test_repr():
    assert repr(fl.tensor([1.0, 2.0])) == "tensor([1., 2.], dtype=float32)"
    assert repr(fl.tensor([1.0], requires_grad=True)).endswith("requires_grad=True)")
    y = fl.tensor([1.0], requires_grad=True) * 2
    assert "creator=Mul" in repr(y)


def test_scalar_conversions():
    t = fl.tensor(2.0)
    assert float(t) == 2.0 and int(fl.tensor(3)) == 3 and bool(fl.tensor(1.0))
    assert [10, 20, 30][fl.tensor(1)] == 20  # __index__


def test_tensors_are_hashable():
    a, b = fl.tensor([1.0]), fl.tensor([1.0])
    assert len({a, b}) == 2


def test_detach_shares_data_and_stops_gradient():
    x = fl.tensor([1.0, 2.0], requires_grad=True)
    d = (x * 3).detach()
    assert d.creator is None and not d.requires_grad
    y = (x * d).sum()
    y.backward()
    np.testing.assert_allclose(x.grad, [3.0, 6.0])  # d counted as a constant


def test_detach_of_leaf_shares_memory():
    x = fl.tensor(np.zeros(2), requires_grad=True)
    assert np.shares_memory(x.detach().numpy(), x.numpy())


def test_to_cpu_is_identity_on_cpu():
    x = fl.tensor([1.0], requires_grad=True)
    assert x.to("cpu") is x
    assert x.device == "cpu"


def test_to_unknown_device_raises():
    assert_error(ValueError, fl.tensor([1.0]).to, "tpu", contains=["tpu"])


def test_zero_grad_and_grad_none():
    x = fl.tensor([1.0], requires_grad=True)
    (x * 2).sum().backward()
    x.zero_grad()
    assert x.grad is None


def test_name_is_kept():
    t = fl.Tensor([1.0], name="w")
    assert t.name == "w"


def test_manual_seed_resets_the_gpu_generator():
    # the GPU generator is derived from the CPU one when first needed: reseeding must drop it
    import importlib

    tensor_module = importlib.import_module("fundl.tensor")  # fl.tensor is the function
    tensor_module._gpu_rng = object()
    fl.manual_seed(0)
    assert tensor_module._gpu_rng is None


def test_operators_and_methods_are_defined_on_the_class():
    """Tensor's operators are written in fundl/tensor.py (delegating to the ops), not attached
    to the class by another module at import."""
    import fundl.functional as functional
    from fundl.tensor import Tensor

    for name in ("__add__", "__radd__", "__matmul__", "__getitem__", "__eq__", "sum", "reshape",
                 "relu", "to", "T"):
        member = Tensor.__dict__[name]
        fn = member.fget if isinstance(member, property) else member
        assert fn.__module__ == "fundl.tensor", name
    assert not hasattr(functional, "_install_tensor_methods")
    t = fl.tensor([[1.0, -2.0]])
    assert (2 - t).tolist() == [[1.0, 4.0]] and (t ** 2).sum().item() == 5.0
    assert t.T.shape == (2, 1) and abs(t).tolist() == [[1.0, 2.0]]
    assert t in {t: 1}   # hashable by identity despite the elementwise __eq__
