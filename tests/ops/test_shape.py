"""Shape ops (reshape transpose getitem concatenate stack pad broadcast_to expand_dims squeeze):
forward, gradients (``check_op``: NumPy reference, float64 gradcheck, float32 gradient
shape/dtype, PyTorch when installed) and error messages."""
import numpy as np
import pytest

import fundl as fl
from fundl.testing import assert_error, check_op

try:
    import torch
except ImportError:  # the PyTorch comparison inside check_op is skipped then
    torch = None


def _randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# -- reshape ----------------------------------------------------------------------------------

@pytest.mark.parametrize("src,dst", [((2, 3, 4), (6, 4)), ((2, 3, 4), (-1,)), ((2, 3, 4), (4, -1, 2)),
                                     ((6,), (1, 2, 3)), ((3, 4), (12, 1)), ((1,), ())], ids=str)
def test_reshape(src, dst):
    check_op(lambda t: fl.reshape(t, *dst), lambda t: torch.reshape(t, dst), [_randn(*src)],
             reference=lambda a: a.reshape(dst))


def test_reshape_method_takes_a_tuple_or_varargs():
    x = fl.tensor(_randn(2, 3))
    assert x.reshape((3, 2)).shape == (3, 2)
    assert x.reshape(3, 2).shape == (3, 2)
    assert x.reshape(-1).shape == (6,)


def test_reshape_of_non_contiguous_input():
    check_op(lambda t: fl.reshape(fl.transpose(t), 6), lambda t: torch.reshape(t.T, (6,)),
             [_randn(2, 3)], reference=lambda a: a.T.reshape(6))


# -- transpose --------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,axes", [((3, 4), None), ((2, 3, 4), None), ((2, 3, 4), (1, 0, 2)),
                                        ((2, 3, 4), (2, 0, 1)), ((2, 3, 4), (-1, 0, -2)),
                                        ((2, 3, 1, 2), (3, 1, 0, 2))], ids=str)
def test_transpose(shape, axes):
    def torch_fn(t):
        return t.permute(*(axes if axes is not None else range(t.ndim - 1, -1, -1)))

    check_op(lambda t: fl.transpose(t, axes), torch_fn, [_randn(*shape)],
             reference=lambda a: np.transpose(a, axes))


def test_transpose_axes_as_varargs():
    x = fl.tensor(_randn(2, 3, 4))
    assert x.transpose(2, 0, 1).shape == (4, 2, 3)
    assert x.transpose((2, 0, 1)).shape == (4, 2, 3)


def test_T_property_reverses_axes():
    check_op(lambda t: t.T, lambda t: t.permute(2, 1, 0), [_randn(2, 3, 4)],
             reference=lambda a: a.T)


# -- getitem ----------------------------------------------------------------------------------

def _torch_index(index):
    """The same index for torch: NumPy arrays become torch tensors."""
    if isinstance(index, tuple):
        return tuple(_torch_index(i) for i in index)
    if isinstance(index, np.ndarray):
        return torch.from_numpy(index)
    return index


INDICES = {
    "int": 1,
    "negative_int": -1,
    "two_ints": (1, -2),
    "slice": slice(1, None),
    "slice_step": (slice(None, None, 2), slice(1, 4)),
    "negative_slice": (slice(-2, None), slice(None, -1)),
    "reverse_step": (slice(None), slice(3, 0, -2)),
    "none": (None, slice(None), 1),
    "ellipsis": (Ellipsis, 1),
    "ellipsis_middle": (0, Ellipsis, None),
    "int_array_repeats": np.array([0, 2, 0, 0]),
    "int_array_2d_repeats": np.array([[0, 1], [1, 1]]),
    "two_int_arrays_repeats": (np.array([0, 0, 2]), np.array([1, 1, 3])),
    "negative_int_array": np.array([-1, -1, 0]),
    "bool_mask_rows": np.array([True, False, True]),
    "mixed_array_slice": (np.array([2, 0, 2]), slice(1, 3)),
    "mixed_slice_array": (slice(None, None, -1), np.array([3, 3, 0])),
    "mixed_int_array": (1, np.array([0, 0, 3])),
}


def _negative_step(index):
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, slice) and (i.step or 1) < 0 for i in items)


@pytest.mark.parametrize("name", list(INDICES))
def test_getitem(name):
    index = INDICES[name]
    # torch has no negative slice steps: those cases check against NumPy and gradcheck only.
    torch_fn = None if _negative_step(index) else (lambda t: t[_torch_index(index)])
    check_op(lambda t: t[index], torch_fn, [_randn(3, 4)], reference=lambda a: a[index])


def test_getitem_full_boolean_mask():
    data = _randn(3, 4)
    mask = data > 0
    check_op(lambda t: t[mask], lambda t: t[torch.from_numpy(mask)], [data],
             reference=lambda a: a[mask])


def test_getitem_tensor_mask_and_tensor_indices():
    data = _randn(3, 4)
    x = fl.tensor(data, requires_grad=True)
    mask = fl.tensor(data > 0)
    rows = fl.tensor(np.array([2, 2]))
    (x[mask].sum() + x[rows].sum()).backward()
    expected = (data > 0).astype(float)
    expected[2] += 2.0
    np.testing.assert_allclose(x.grad, expected)


def test_getitem_repeated_indices_accumulate():
    x = fl.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    x[np.array([0, 0, 2, 0])].backward(np.array([1.0, 10.0, 100.0, 1000.0]))
    np.testing.assert_allclose(x.grad, [1011.0, 0.0, 100.0])


def test_getitem_list_index_with_repeats_accumulates():
    x = fl.tensor(np.array([1.0, 2.0]), requires_grad=True)
    x[[1, 1, 1]].sum().backward()
    np.testing.assert_allclose(x.grad, [0.0, 3.0])


def test_getitem_of_3d_input_mixed():
    index = (Ellipsis, np.array([1, 1]), slice(None, None, 2))
    check_op(lambda t: t[index], lambda t: t[_torch_index(index)], [_randn(2, 3, 4)],
             reference=lambda a: a[index])


def test_getitem_out_of_bounds_names_op():
    assert_error(IndexError, lambda: fl.ones(2, 3)[5], contains=["GetItem", "(2, 3)"])


# -- concatenate and stack ----------------------------------------------------------------------

@pytest.mark.parametrize("axis,sizes", [(0, (1, 2, 3)), (1, (2, 1, 4)), (-1, (3, 3, 1)),
                                        (-3, (2, 1, 1))], ids=str)
def test_concatenate(axis, sizes):
    shapes = []
    for n in sizes:
        s = [2, 3, 4]
        s[axis] = n
        shapes.append(tuple(s))
    inputs = [_randn(*s, seed=i) for i, s in enumerate(shapes)]
    check_op(lambda *ts: fl.concatenate(ts, axis=axis), lambda *ts: torch.cat(ts, dim=axis), inputs,
             reference=lambda *a: np.concatenate(a, axis=axis))


def test_concatenate_with_a_constant_input():
    check_op(lambda a, b: fl.concatenate([a, b], axis=1), lambda a, b: torch.cat([a, b], dim=1),
             [_randn(2, 2), _randn(2, 3, seed=1)], constant=(1,))


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_stack(axis):
    inputs = [_randn(2, 3, seed=i) for i in range(3)]
    check_op(lambda *ts: fl.stack(ts, axis=axis), lambda *ts: torch.stack(ts, dim=axis), inputs,
             reference=lambda *a: np.stack(a, axis=axis))


# -- pad --------------------------------------------------------------------------------------

def _torch_pad(pairs, value):
    # torch.nn.functional.pad lists (before, after) from the LAST axis backwards.
    flat = [v for p in reversed(pairs) for v in p]
    return lambda t: torch.nn.functional.pad(t, flat, value=value)


@pytest.mark.parametrize("pad_width,pairs", [(1, ((1, 1), (1, 1))), ((2, 1), ((2, 1), (2, 1))),
                                             (((0, 2), (3, 1)), ((0, 2), (3, 1))),
                                             (((1, 0),), ((1, 0), (1, 0)))], ids=str)
@pytest.mark.parametrize("value", [0.0, 1.5])
def test_pad(pad_width, pairs, value):
    check_op(lambda t: fl.pad(t, pad_width, constant_values=value), _torch_pad(pairs, value),
             [_randn(2, 3)], reference=lambda a: np.pad(a, pad_width, constant_values=value))


def test_pad_3d_per_axis():
    pw = ((1, 0), (0, 0), (2, 2))
    check_op(lambda t: fl.pad(t, pw), _torch_pad(pw, 0.0), [_randn(2, 1, 3)],
             reference=lambda a: np.pad(a, pw))


# -- broadcast_to, expand_dims, squeeze --------------------------------------------------------

@pytest.mark.parametrize("src,dst", [((3, 1), (2, 3, 4)), ((4,), (3, 4)), ((1, 1), (2, 5)),
                                     ((), (2, 3)), ((2, 3), (2, 3))], ids=str)
def test_broadcast_to(src, dst):
    check_op(lambda t: fl.broadcast_to(t, dst), lambda t: torch.broadcast_to(t, dst),
             [np.asarray(_randn(*src))], reference=lambda a: np.broadcast_to(a, dst))


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_expand_dims(axis):
    check_op(lambda t: fl.expand_dims(t, axis), lambda t: torch.unsqueeze(t, axis), [_randn(2, 3)],
             reference=lambda a: np.expand_dims(a, axis))


@pytest.mark.parametrize("axis", [None, 0, 2, -1, (0, 2)], ids=str)
def test_squeeze(axis):
    def torch_fn(t):
        return torch.squeeze(t) if axis is None else torch.squeeze(t, axis)

    check_op(lambda t: fl.squeeze(t, axis), torch_fn, [_randn(1, 3, 1, 1)],
             reference=lambda a: np.squeeze(a, axis))


# -- errors -----------------------------------------------------------------------------------

def test_reshape_incompatible_names_op_and_both_shapes():
    assert_error(ValueError, fl.reshape, fl.ones(2, 3), 4, 2, contains=["Reshape", "(2, 3)", "(4, 2)"])


def test_reshape_two_unknown_axes():
    assert_error(ValueError, fl.reshape, fl.ones(2, 3), -1, -1, contains=["Reshape", "(-1, -1)"])


def test_reshape_unknown_axis_that_does_not_divide():
    assert_error(ValueError, fl.reshape, fl.ones(2, 3), 4, -1, contains=["Reshape", "(4, -1)"])


def test_concatenate_mismatched_names_op_and_shapes():
    assert_error(ValueError, fl.concatenate, [fl.ones(2, 3), fl.ones(3, 4)], axis=0,
                 contains=["Concatenate", "(2, 3)", "(3, 4)"])


def test_concatenate_different_ranks():
    assert_error(ValueError, fl.concatenate, [fl.ones(2, 3), fl.ones(2, 3, 1)], axis=1,
                 contains=["Concatenate", "(2, 3)", "(2, 3, 1)"])


def test_concatenate_bad_axis():
    assert_error(ValueError, fl.concatenate, [fl.ones(2, 3), fl.ones(2, 3)], axis=2,
                 contains=["Concatenate", "axis 2"])


def test_stack_mismatched_shapes():
    assert_error(ValueError, fl.stack, [fl.ones(2, 3), fl.ones(3, 2)],
                 contains=["Stack", "(2, 3)", "(3, 2)"])


def test_stack_bad_axis():
    assert_error(ValueError, fl.stack, [fl.ones(2, 3), fl.ones(2, 3)], axis=3,
                 contains=["Stack", "axis 3"])


def test_transpose_bad_axes():
    assert_error(ValueError, fl.transpose, fl.ones(2, 3, 4), 0, 1, 5,
                 contains=["Transpose", "(0, 1, 5)", "(2, 3, 4)"])


def test_transpose_repeated_axes():
    assert_error(ValueError, fl.transpose, fl.ones(2, 3), 0, 0, contains=["Transpose", "(0, 0)"])


def test_expand_dims_bad_axis():
    assert_error(ValueError, fl.expand_dims, fl.ones(2, 3), 3, contains=["ExpandDims", "axis 3", "(2, 3)"])


def test_squeeze_of_axis_that_is_not_one():
    assert_error(ValueError, fl.squeeze, fl.ones(1, 3), 1, contains=["Squeeze", "axis 1", "(1, 3)"])


def test_squeeze_bad_axis():
    assert_error(ValueError, fl.squeeze, fl.ones(1, 3), 2, contains=["Squeeze", "axis 2"])


def test_broadcast_to_impossible_shape():
    assert_error(ValueError, fl.broadcast_to, fl.ones(2, 3), (4, 3),
                 contains=["BroadcastTo", "(2, 3)", "(4, 3)"])


def test_broadcast_to_fewer_dims():
    assert_error(ValueError, fl.broadcast_to, fl.ones(2, 3), (3,), contains=["BroadcastTo", "(3,)"])


def test_pad_negative_width():
    assert_error(ValueError, fl.pad, fl.ones(2, 3), ((1, -1), (0, 0)), contains=["Pad", "(2, 3)"])


def test_pad_wrong_number_of_pairs():
    assert_error(ValueError, fl.pad, fl.ones(2, 3), ((1, 1), (0, 0), (2, 2)), contains=["Pad", "(2, 3)"])
