"""The autograd engine: backward, accumulation, graph freeing, no_grad, multi-output functions,
un-broadcasting and the errors that blame a broken op."""
import numpy as np
import pytest

import fundl as fl
from fundl import autograd
from fundl.autograd import Function
from fundl.testing import assert_error, gradcheck


def _leaf(data):
    return fl.tensor(np.asarray(data, dtype=np.float64), requires_grad=True)


# -- test-only functions ----------------------------------------------------------------------

class TwoOut(Function):
    """(2x, x**2): a two-output function; an unused output's gradient arrives as None."""

    def forward(self, x):
        self.save(x)
        return 2 * x, x * x

    def backward(self, g_double, g_square):
        (x,) = self.saved
        gx = 0
        if g_double is not None:
            gx = gx + 2 * g_double
        if g_square is not None:
            gx = gx + 2 * x * g_square
        return gx


class WrongShape(Function):
    def forward(self, x):
        return x * 1

    def backward(self, gy):
        return gy.sum(keepdims=True)[..., None].repeat(5, axis=-1).reshape(5)


class IntGradient(Function):
    def forward(self, x):
        return x * 1

    def backward(self, gy):
        return gy.astype(np.int64)


class Failing(Function):
    def forward(self, x):
        return x * 1

    def backward(self, gy):
        raise ZeroDivisionError("deliberate failure in backward")


class Float64Gradient(Function):
    """Returns a float64 gradient whatever the input dtype (the engine must cast it)."""

    def forward(self, x):
        return x * 1

    def backward(self, gy):
        return gy.astype(np.float64)


# -- basics -----------------------------------------------------------------------------------

def test_simple_gradient():
    x = _leaf([1.0, 2.0, 3.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, [2.0, 4.0, 6.0])


def test_tensor_used_twice_gets_both_contributions():
    x = _leaf([1.0, -2.0])
    y = x * 3
    (y + y * x).sum().backward()  # d/dx (3x + 3x^2) = 3 + 6x
    np.testing.assert_allclose(x.grad, 3 + 6 * np.array([1.0, -2.0]))


def test_same_tensor_as_both_inputs():
    x = _leaf([1.5])
    (x * x).backward()
    np.testing.assert_allclose(x.grad, [3.0])


def test_diamond_graph():
    x = _leaf([0.5, 2.0])
    a = x * 2
    b = fl.exp(a)
    c = a * a
    d = b + c          # x -> a -> (b, c) -> d
    d.sum().backward()
    xv = np.array([0.5, 2.0])
    np.testing.assert_allclose(x.grad, 2 * np.exp(2 * xv) + 8 * xv)


def test_deep_chain_has_no_recursion_limit():
    x = _leaf([1.0])
    y = x
    for _ in range(2000):
        y = y * 1.001
    y.backward()
    np.testing.assert_allclose(x.grad, [1.001 ** 2000])
    del y  # dropping a 2000-op graph must not overflow the stack either


def test_deep_graph_can_be_dropped_without_backward():
    x = _leaf([1.0])
    y = x
    for _ in range(5000):
        y = y + 1.0
    del y


def test_requires_grad_propagation():
    a = _leaf([1.0])
    b = fl.tensor([2.0])
    assert (a * b).requires_grad
    assert not (b * b).requires_grad
    assert (b * b).creator is None
    assert (a * b).creator is not None and not (a * b).is_leaf


def test_constant_input_gets_no_gradient():
    a = _leaf([1.0, 2.0])
    b = fl.tensor(np.array([3.0, 4.0]))
    (a * b).sum().backward()
    assert b.grad is None
    np.testing.assert_allclose(a.grad, [3.0, 4.0])


def test_numpy_and_python_operands_mix_with_tensors():
    x = _leaf([1.0, 2.0])
    y = (np.array([2.0, 3.0]) * x + 1.0) / 2
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0, 1.5])


# -- accumulation -----------------------------------------------------------------------------

def test_gradients_accumulate_across_backward_calls():
    x = _leaf([1.0, 2.0])
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad, [5.0, 5.0])


def test_grad_none_resets_accumulation():
    x = _leaf([1.0])
    (x * 2).sum().backward()
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0])


def test_zero_grad_resets_accumulation():
    x = _leaf([1.0])
    (x * 2).sum().backward()
    x.zero_grad()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0])


def test_leaf_gradients_do_not_share_memory():
    a, b = _leaf([1.0, 2.0]), _leaf([3.0, 4.0])
    (a + b).backward(np.ones(2))  # Add hands the same array to both inputs
    assert not np.shares_memory(a.grad, b.grad)
    a.grad *= 10  # an in-place update (clipping, optimizers) must stay local
    np.testing.assert_allclose(b.grad, [1.0, 1.0])


def test_leaf_gradient_does_not_alias_callers_gradient():
    x = _leaf([1.0, 2.0, 3.0, 4.0])
    g = np.ones((2, 2))
    x.reshape(2, 2).backward(g)  # Reshape's gradient is a view of g
    g[...] = 5.0
    np.testing.assert_allclose(x.grad, np.ones(4))


def test_backward_on_a_leaf():
    x = _leaf([1.0, 2.0])
    g = np.array([3.0, 4.0])
    x.backward(g)
    x.backward(g)
    np.testing.assert_allclose(x.grad, [6.0, 8.0])
    g[0] = 100.0
    np.testing.assert_allclose(x.grad, [6.0, 8.0])


# -- graph lifetime ---------------------------------------------------------------------------

def test_graph_is_freed_after_backward():
    x = _leaf([1.0])
    y = (x * 2).sum()
    y.backward()
    assert_error(RuntimeError, y.backward, contains=["freed", "retain_graph=True"])


def test_freed_graph_error_names_the_op():
    x = _leaf([1.0])
    h = fl.exp(x)
    (h * 2).sum().backward()
    assert_error(RuntimeError, (h * 3).sum().backward, contains=["Exp", "freed"])


def test_retain_graph_allows_a_second_backward():
    x = _leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, [4.0, 8.0])


def test_saved_arrays_are_released_after_backward():
    x = _leaf([1.0, 2.0])
    y = x * x
    fn = y.creator
    y.sum().backward()
    assert fn.saved == () and fn.inputs is None


# -- backward arguments -----------------------------------------------------------------------

def test_backward_on_non_scalar_without_gradient_raises():
    y = _leaf([1.0, 2.0]) * 2
    assert_error(RuntimeError, y.backward, contains=["one-element", "(2,)"])


def test_backward_with_explicit_gradient():
    x = _leaf([1.0, 2.0])
    (x * x).backward(np.array([1.0, 10.0]))
    np.testing.assert_allclose(x.grad, [2.0, 40.0])


def test_backward_with_tensor_gradient_of_other_dtype():
    x = fl.tensor([1.0, 2.0], requires_grad=True)  # float32
    (x * 3).backward(fl.tensor(np.array([1.0, 2.0])))  # float64 gradient
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad, [3.0, 6.0])


def test_backward_with_wrong_gradient_shape():
    y = _leaf([1.0, 2.0]) * 2
    assert_error(ValueError, y.backward, np.ones(3), contains=["(3,)", "(2,)"])


def test_backward_on_one_element_non_scalar():
    x = _leaf([[2.0]])
    (x * x).backward()
    np.testing.assert_allclose(x.grad, [[4.0]])


def test_backward_without_graph_raises():
    assert_error(RuntimeError, fl.tensor([1.0]).sum().backward, contains=["requires_grad"])


# -- no_grad / enable_grad ---------------------------------------------------------------------

def test_no_grad_context_records_nothing():
    x = _leaf([1.0])
    with fl.no_grad():
        assert not fl.is_grad_enabled()
        y = x * 2
    assert fl.is_grad_enabled()
    assert not y.requires_grad and y.creator is None


def test_no_grad_decorator_with_parentheses():
    @fl.no_grad()
    def double(t):
        """Doc."""
        return t * 2

    y = double(_leaf([1.0]))
    assert not y.requires_grad and fl.is_grad_enabled()
    assert double.__name__ == "double" and double.__doc__ == "Doc."


def test_no_grad_decorator_without_parentheses():
    @fl.no_grad
    def double(t):
        return t * 2

    assert not double(_leaf([1.0])).requires_grad
    assert fl.is_grad_enabled()


def test_no_grad_restores_state_on_exception():
    with pytest.raises(KeyError):
        with fl.no_grad():
            raise KeyError("boom")
    assert fl.is_grad_enabled()


def test_no_grad_decorator_restores_state_on_exception():
    @fl.no_grad()
    def fail():
        raise KeyError("boom")

    with pytest.raises(KeyError):
        fail()
    assert fl.is_grad_enabled()


def test_enable_grad_inside_no_grad():
    x = _leaf([1.0])
    with fl.no_grad():
        with fl.enable_grad():
            y = x * 2
        z = x * 2
        assert not fl.is_grad_enabled()
    assert y.requires_grad and not z.requires_grad


def test_nested_no_grad_restores_outer_state():
    with fl.no_grad():
        with fl.no_grad():
            pass
        assert not fl.is_grad_enabled()
    assert fl.is_grad_enabled()


# -- multi-output functions ---------------------------------------------------------------------

def test_multi_output_both_used():
    x = _leaf([1.0, 3.0])
    double, square = TwoOut().apply(x)
    (double * 5 + square).sum().backward()
    np.testing.assert_allclose(x.grad, 10 + 2 * np.array([1.0, 3.0]))


@pytest.mark.parametrize("which", [0, 1])
def test_multi_output_one_used(which):
    x = _leaf([1.0, 3.0])
    out = TwoOut().apply(x)[which]
    out.sum().backward()
    expected = [2.0, 2.0] if which == 0 else [2.0, 6.0]
    np.testing.assert_allclose(x.grad, expected)


def test_multi_output_backward_from_an_output_directly():
    x = _leaf([1.0, 3.0])
    _, square = TwoOut().apply(x)
    square.backward(np.array([1.0, 1.0]))
    np.testing.assert_allclose(x.grad, [2.0, 6.0])


def test_multi_output_outputs_meet_again():
    x = _leaf([2.0])
    double, square = TwoOut().apply(x)
    (double * square).backward()  # d/dx 2x^3 = 6x^2
    np.testing.assert_allclose(x.grad, [24.0])


def test_multi_output_gradcheck():
    x = _leaf(np.random.default_rng(0).standard_normal(4))
    assert gradcheck(lambda t: TwoOut().apply(t), [x])


def test_multi_output_without_grad_returns_plain_tensors():
    x = fl.tensor([1.0])
    a, b = TwoOut().apply(x)
    assert a.creator is None and b.creator is None


# -- un-broadcasting and dtypes -------------------------------------------------------------------

def test_unbroadcast_to_column():
    a = _leaf(np.ones((3, 1)))
    b = _leaf(np.ones((2, 3, 4)))
    (a + b).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (2, 3, 4)
    np.testing.assert_allclose(a.grad, np.full((3, 1), 8.0))


def test_unbroadcast_scalar_and_row():
    s = _leaf(2.0)
    r = _leaf(np.ones(4))
    m = _leaf(np.ones((3, 4)))
    (s * m + r).sum().backward()
    assert s.grad.shape == () and r.grad.shape == (4,)
    np.testing.assert_allclose(s.grad, 12.0)
    np.testing.assert_allclose(r.grad, np.full(4, 3.0))


def test_unbroadcast_helper():
    g = np.ones((2, 3, 4))
    np.testing.assert_allclose(autograd.unbroadcast(g, (3, 1)), np.full((3, 1), 8.0))
    assert autograd.unbroadcast(g, (2, 3, 4)) is g
    assert autograd.unbroadcast(g, (5,)) is None
    assert autograd.unbroadcast(np.ones(3), (2, 3)) is None


def test_mixed_precision_gradients_are_cast_to_input_dtype():
    x = fl.tensor([1.0, 2.0], requires_grad=True)               # float32
    w = fl.tensor(np.array([3.0, 4.0]), requires_grad=True)     # float64
    y = x * w
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float64
    np.testing.assert_allclose(x.grad, [3.0, 4.0])


def test_float64_gradient_from_op_is_cast():
    x = fl.tensor([1.0, 2.0], requires_grad=True)
    Float64Gradient().apply(x).sum().backward()
    assert x.grad.dtype == np.float32


# -- broken ops are blamed by name -------------------------------------------------------------

def test_wrong_gradient_shape_blames_the_op():
    x = _leaf([1.0, 2.0, 3.0])
    y = WrongShape().apply(x).sum()
    assert_error(ValueError, y.backward, contains=["WrongShape", "(5,)", "(3,)", "bug in the op"])


def test_integer_gradient_blames_the_op():
    x = _leaf([1.0, 2.0])
    y = IntGradient().apply(x).sum()
    assert_error(TypeError, y.backward, contains=["IntGradient", "int64", "float64"])


def test_exception_in_backward_leaves_no_stale_state():
    x = _leaf([1.0, 2.0])
    h = x * 2
    # The healthy branch runs first and leaves a gradient waiting at h's creator; then Failing raises.
    bad = (h * 3).sum() + Failing().apply(h).sum()
    with pytest.raises(ZeroDivisionError):
        bad.backward(retain_graph=True)
    assert h.creator._gys is None                 # nothing half-summed is left waiting
    x.grad = None
    (h * 5).sum().backward()
    np.testing.assert_allclose(x.grad, [10.0, 10.0])


def test_leaf_gradient_view_does_not_share_memory_with_another_leaf():
    x = _leaf([1.0, 2.0, 3.0, 4.0])
    z = _leaf(np.zeros((2, 2)))
    (x.reshape(2, 2) + z).backward(np.ones((2, 2)))  # x.grad is a view of what z receives
    assert not np.shares_memory(x.grad, z.grad)
    z.grad *= 3
    np.testing.assert_allclose(x.grad, np.ones(4))


def test_leaf_gradient_does_not_alias_a_view_passed_as_gradient():
    x = _leaf([1.0, 2.0])
    g = np.ones((2, 2))
    (x * 1).reshape(2).reshape(1, 2).backward(g[:1])
    x2 = _leaf([1.0, 2.0])
    x2.reshape(1, 2).backward(g[:1])
    assert not np.shares_memory(x2.grad, g)
    g[...] = 7.0
    np.testing.assert_allclose(x.grad, [1.0, 1.0])
    np.testing.assert_allclose(x2.grad, [1.0, 1.0])


def test_concatenated_leaves_get_separate_gradients():
    a, b = _leaf([1.0, 2.0]), _leaf([3.0])
    fl.concatenate([a, b]).backward(np.array([1.0, 2.0, 3.0]))
    a.grad *= 0
    np.testing.assert_allclose(b.grad, [3.0])


def test_grad_mode_is_per_thread():
    # as in PyTorch: no_grad in one thread leaves another thread's graph recording
    import threading

    inside, release = threading.Event(), threading.Event()

    def hold_no_grad():
        with fl.no_grad():
            inside.set()
            release.wait(5)

    t = threading.Thread(target=hold_no_grad)
    t.start()
    inside.wait(5)
    try:
        x = fl.tensor([1.0, 2.0], requires_grad=True)
        y = (x * x).sum()
        assert fl.is_grad_enabled() and y.requires_grad
        y.backward()
        np.testing.assert_allclose(x.grad, [2.0, 4.0])
    finally:
        release.set()
        t.join(5)


# -- the engine against a textbook reference on random graphs -----------------------------------
def _reference_backward(root, seed):
    """The textbook engine, ~20 lines: a topological order by depth-first search, then every
    function's backward in reverse order, gradients summed per (function, output) and per
    leaf. Returns {id(leaf): gradient}; leaves the graph as it found it."""
    from fundl.autograd import unbroadcast

    order, seen = [], set()

    def visit(fn):
        if fn is not None and id(fn) not in seen:
            seen.add(id(fn))
            for x in fn.inputs:
                visit(getattr(x, "creator", None))   # (constants are no Tensors)
            order.append(fn)

    visit(root.creator)
    grads, leaves = {(id(root.creator), root.out_index): seed}, {}
    for fn in reversed(order):
        gys = [grads.get((id(fn), j)) for j in range(fn.n_outputs)]
        if all(g is None for g in gys):
            continue
        gxs = fn.backward(gys[0]) if fn.n_outputs == 1 else fn.backward(*gys)
        for x, need, g in zip(fn.inputs, fn.needs_grad, gxs if type(gxs) is tuple else (gxs,)):
            if need and g is not None:
                g = unbroadcast(g, x.shape) if g.shape != x.shape else g
                key, table = ((id(x.creator), x.out_index), grads) if x.creator else (id(x), leaves)
                table[key] = g if key not in table else table[key] + g
    return leaves


class _Halves(Function):
    """A two-output op for the random graphs: the left and right halves of the last axis."""

    def forward(self, x):
        self.n = x.shape[-1] // 2
        self.shape = x.shape
        return x[..., :self.n].copy(), x[..., self.n:].copy()

    def backward(self, g_left, g_right):
        g = np.zeros(self.shape)
        if g_left is not None:
            g[..., :self.n] = g_left
        if g_right is not None:
            g[..., self.n:] = g_right
        return g


def _random_graph(rng):
    """A random graph of float64 ops over a few leaves (some constant, one broadcast): shared
    subexpressions, a two-output op whose outputs are used once, twice or not at all."""
    leaves = [fl.tensor(rng.standard_normal((3, 4)), requires_grad=bool(rng.random() < 0.8))
              for _ in range(3)]
    leaves.append(fl.tensor(rng.standard_normal(4), requires_grad=True))   # broadcast
    leaves[0].requires_grad_(True)
    nodes = list(leaves)
    ops = [lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a - b,
           lambda a, b: fl.tanh(a) * b, lambda a, b: fl.maximum(a, b), lambda a, b: a / (b * b + 1),
           lambda a, b: fl.exp(0.1 * a) + fl.sigmoid(b)]
    for _ in range(int(rng.integers(3, 12))):
        a, b = (nodes[int(rng.integers(len(nodes)))] for _ in range(2))
        if rng.random() < 0.15 and a.ndim == 2:
            left, right = _Halves().apply(a)
            keep = rng.integers(3)   # use the left, the right or both halves
            halves = [left, right] if keep == 2 else [(left, right)[keep]]
            nodes.append(fl.concatenate((halves * 2)[:2], axis=-1))  # back to (3, 4)
            continue
        nodes.append(ops[int(rng.integers(len(ops)))](a, b))
    out = sum((n * float(rng.standard_normal())).sum() for n in nodes[-3:] if n.requires_grad)
    return leaves, out


@pytest.mark.parametrize("seed", range(30))
def test_engine_matches_the_reference_engine_on_random_graphs(seed):
    rng = np.random.default_rng(seed)
    leaves, out = _random_graph(rng)
    if not isinstance(out, fl.Tensor) or not out.requires_grad:
        pytest.skip("this draw has no gradient path")
    want = _reference_backward(out, np.ones(out.shape))
    out.backward()
    for leaf in leaves:
        if id(leaf) in want:
            np.testing.assert_allclose(leaf.grad, want[id(leaf)], rtol=1e-12, atol=1e-12)
        else:
            assert leaf.grad is None
