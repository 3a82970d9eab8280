"""Element-wise ops: forward, gradients, broadcasting, Python numbers, operators, dtypes, errors.

Every op goes through ``fundl.testing.check_op`` (NumPy reference in float64, finite
differences, float32 gradient shapes/dtypes, PyTorch when installed). The PyTorch side is
written with tensor operators and methods, so this file runs without torch; only the
comparisons that spell ``torch.`` need it, and they import it themselves.
"""
import numpy as np
import pytest

import fundl as fl
from fundl.testing import assert_error, check_op

# operand shape pairs: same shape, broadcasting either way, both ways, 0-d on either side
SHAPES = [
    ((3, 4), (3, 4)), ((3, 4), (4,)), ((4,), (3, 4)), ((3, 1), (1, 4)), ((), (3, 4)),
    ((3, 4), ()), ((2, 3, 4), (3, 1)), ((), ()),
]


def _signed(rng, shape, lo=0.5, hi=2.0):
    """Values with |v| in [lo, hi] and random signs (away from 0, where abs/div/log kink)."""
    return np.asarray(rng.uniform(lo, hi, shape) * rng.choice([-1.0, 1.0], shape))


def _grid(rng, shape, offset=0.0):
    """Multiples of 0.1 plus ``offset``: two grids offset by 0.05 never come within 0.05."""
    return np.asarray(rng.integers(-20, 21, shape) * 0.1 + offset)


def _operands(name, rng, xs, ys):
    if name == "div":
        return rng.standard_normal(xs), _signed(rng, ys)
    if name == "pow":  # positive bases so that d/dy = x^y ln x exists
        return rng.uniform(0.5, 2.0, xs), rng.uniform(-2.0, 2.0, ys)
    if name in ("maximum", "minimum"):  # no ties: ties are tested on their own below
        return _grid(rng, xs), _grid(rng, ys, 0.05)
    return rng.standard_normal(xs), rng.standard_normal(ys)


BINARY = {  # name: (fundl function, PyTorch function, NumPy reference)
    "add": (fl.add, lambda a, b: a + b, np.add),
    "sub": (fl.sub, lambda a, b: a - b, np.subtract),
    "mul": (fl.mul, lambda a, b: a * b, np.multiply),
    "div": (fl.div, lambda a, b: a / b, np.divide),
    "pow": (fl.pow, lambda a, b: a ** b, np.power),
    "maximum": (fl.maximum, lambda a, b: a.maximum(b), np.maximum),
    "minimum": (fl.minimum, lambda a, b: a.minimum(b), np.minimum),
}


@pytest.mark.parametrize("shapes", SHAPES, ids=str)
@pytest.mark.parametrize("name", BINARY)
def test_binary(name, shapes):
    fn, torch_fn, ref = BINARY[name]
    rng = np.random.default_rng(0)
    check_op(fn, torch_fn, list(_operands(name, rng, *shapes)), reference=ref)


OPERATORS = {  # the Tensor operator forms, same checks
    "x + y": (lambda a, b: a + b, np.add, "add"),
    "x - y": (lambda a, b: a - b, np.subtract, "sub"),
    "x * y": (lambda a, b: a * b, np.multiply, "mul"),
    "x / y": (lambda a, b: a / b, np.divide, "div"),
    "x ** y": (lambda a, b: a ** b, np.power, "pow"),
}


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 4), (4,)), ((), (2, 3))], ids=str)
@pytest.mark.parametrize("form", OPERATORS)
def test_binary_operator(form, shapes):
    fn, ref, name = OPERATORS[form]
    rng = np.random.default_rng(1)
    check_op(fn, fn, list(_operands(name, rng, *shapes)), reference=ref)


def test_same_tensor_on_both_sides():
    """x * x and x - x: both gradient paths reach the same input and are summed."""
    x = np.random.default_rng(2).standard_normal((3, 4))
    check_op(lambda a: a * a, lambda a: a * a, [x], reference=lambda a: a * a)
    check_op(lambda a: a / a - a, lambda a: a / a - a, [_signed(np.random.default_rng(3), (3,))],
             reference=lambda a: a / a - a)


# Python numbers on either side; the number takes the tensor's dtype.
SCALAR_FORMS = {
    "x + 1.5": (lambda a: a + 1.5, "any"),
    "1.5 + x": (lambda a: 1.5 + a, "any"),
    "x - 3": (lambda a: a - 3, "any"),
    "2 - x": (lambda a: 2 - a, "any"),
    "x * 2": (lambda a: a * 2, "any"),
    "2 * x": (lambda a: 2 * a, "any"),
    "x * -0.5": (lambda a: a * -0.5, "any"),
    "x / 4": (lambda a: a / 4, "any"),
    "2 / x": (lambda a: 2 / a, "nonzero"),
    "x ** 3": (lambda a: a ** 3, "any"),
    "x ** 2": (lambda a: a ** 2, "any"),
    "x ** 0.5": (lambda a: a ** 0.5, "positive"),
    "x ** -1.5": (lambda a: a ** -1.5, "positive"),
    "2 ** x": (lambda a: 2 ** a, "any"),
}


@pytest.mark.parametrize("form", SCALAR_FORMS)
def test_python_number_operand(form):
    fn, domain = SCALAR_FORMS[form]
    rng = np.random.default_rng(4)
    x = {"any": rng.standard_normal((3, 4)), "nonzero": _signed(rng, (3, 4)),
         "positive": rng.uniform(0.5, 2.0, (3, 4))}[domain]
    check_op(fn, fn, [x], reference=fn)


FUNCTIONAL_NUMBER_FORMS = {  # the functional spelling with a number on either side
    "add(x, 2)": (lambda a: fl.add(a, 2), lambda a: a + 2),
    "sub(2, x)": (lambda a: fl.sub(2, a), lambda a: 2 - a),
    "mul(x, 0.5)": (lambda a: fl.mul(a, 0.5), lambda a: a * 0.5),
    "div(1, x)": (lambda a: fl.div(1, a), lambda a: 1 / a),
    "pow(x, 2)": (lambda a: fl.pow(a, 2), lambda a: a ** 2),
    "maximum(x, 0.25)": (lambda a: fl.maximum(a, 0.25), lambda a: np.maximum(a, 0.25)),
    "minimum(0.25, x)": (lambda a: fl.minimum(0.25, a), lambda a: np.minimum(0.25, a)),
}


@pytest.mark.parametrize("form", FUNCTIONAL_NUMBER_FORMS)
def test_functional_with_number(form):
    fn, ref = FUNCTIONAL_NUMBER_FORMS[form]
    x = _signed(np.random.default_rng(5), (3, 4))  # |x| >= 0.5: no ties with 0.25
    torch_fn = {"maximum(x, 0.25)": lambda a: a.clamp(min=0.25),
                "minimum(0.25, x)": lambda a: a.clamp(max=0.25)}.get(form, ref)
    check_op(fn, torch_fn, [x], reference=ref)


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "matmul"])
def test_numpy_array_on_the_left(name):
    """ndarray <op> Tensor defers to the Tensor's reflected operator (no NumPy object array)."""
    rng = np.random.default_rng(6)
    a = _signed(rng, (3, 4))
    forms = {"add": lambda u, v: u + v, "sub": lambda u, v: u - v, "mul": lambda u, v: u * v,
             "div": lambda u, v: u / v, "matmul": lambda u, v: u @ v}
    op = forms[name]
    y = _signed(rng, (4, 2) if name == "matmul" else (3, 4))
    check_op(lambda t: op(a, t), lambda t: op(t.new_tensor(a), t), [y],
             reference=lambda v: op(a, v))
    assert isinstance(op(a, fl.tensor(y)), fl.Tensor)


UNARY = {  # name: (fundl function, PyTorch function, NumPy reference, input domain)
    "neg": (fl.neg, lambda a: -a, np.negative, "any"),
    "exp": (fl.exp, lambda a: a.exp(), np.exp, "any"),
    "log": (fl.log, lambda a: a.log(), np.log, "positive"),
    "sqrt": (fl.sqrt, lambda a: a.sqrt(), np.sqrt, "positive"),
    "abs": (fl.abs, lambda a: a.abs(), np.abs, "nonzero"),
    "-x": (lambda a: -a, lambda a: -a, np.negative, "any"),
    "abs(x)": (lambda a: abs(a), lambda a: abs(a), np.abs, "nonzero"),
    "x.exp()": (lambda a: a.exp(), lambda a: a.exp(), np.exp, "any"),
    "x.log()": (lambda a: a.log(), lambda a: a.log(), np.log, "positive"),
    "x.sqrt()": (lambda a: a.sqrt(), lambda a: a.sqrt(), np.sqrt, "positive"),
    "x.abs()": (lambda a: a.abs(), lambda a: a.abs(), np.abs, "nonzero"),
}


@pytest.mark.parametrize("shape", [(3, 4), (), (2, 1, 3)], ids=str)
@pytest.mark.parametrize("name", UNARY)
def test_unary(name, shape):
    fn, torch_fn, ref, domain = UNARY[name]
    rng = np.random.default_rng(7)
    x = {"any": rng.standard_normal(shape), "positive": rng.uniform(0.5, 2.0, shape),
         "nonzero": _signed(rng, shape)}[domain]
    check_op(fn, torch_fn, [x], reference=ref)


def test_abs_gradient_at_zero_is_zero():
    x = fl.tensor(np.array([-2.0, 0.0, 3.0]), requires_grad=True)
    fl.abs(x).sum().backward()
    np.testing.assert_array_equal(x.grad, [-1.0, 0.0, 1.0])


def test_pow_exponent_gradient_at_zero_base():
    """d(x^y)/dy = x^y ln x is taken as 0 at x == 0 (its limit for y > 0), as PyTorch does."""
    x = fl.tensor(np.array([0.0, 2.0]))
    y = fl.tensor(np.array(2.0), requires_grad=True)
    (x ** y).sum().backward()
    np.testing.assert_allclose(y.grad, 4.0 * np.log(2.0), rtol=1e-12)


def test_pow_zero_exponent_has_zero_base_gradient():
    """x ** 0 is the constant 1: its gradient is 0 everywhere, also at x == 0 (not 0 * inf)."""
    x = fl.tensor(np.array([0.0, 1.5, -2.0]), requires_grad=True)
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0])


CLIPS = {"both": (-0.5, 0.5), "min only": (-0.5, None), "max only": (None, 0.5),
         "wide (nothing clipped)": (-5.0, 5.0)}


@pytest.mark.parametrize("bounds", CLIPS)
@pytest.mark.parametrize("form", ["function", "method"])
def test_clip(bounds, form):
    lo, hi = CLIPS[bounds]
    x = _grid(np.random.default_rng(8), (4, 5), 0.05)  # never within 0.05 of a bound
    fn = (lambda a: fl.clip(a, lo, hi)) if form == "function" else (lambda a: a.clip(lo, hi))
    check_op(fn, lambda a: a.clamp(lo, hi), [x], reference=lambda a: np.clip(a, lo, hi))


def test_clip_gradient_is_one_inside_zero_outside():
    x = fl.tensor(np.array([-2.0, -0.25, 0.25, 2.0]), requires_grad=True)
    fl.clip(x, -1.0, 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 1.0, 0.0])


def test_clip_needs_a_bound():
    assert_error(ValueError, fl.clip, fl.ones(3), contains=["clip", "min", "max"])


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_tie_splits_gradient_in_half(name):
    """Equal operands share the gradient 1/2 each, as in PyTorch."""
    fn = getattr(fl, name)
    x = fl.tensor(np.array([1.0, 2.0, 3.0, -1.0]), requires_grad=True)
    y = fl.tensor(np.array([1.0, 0.0, 5.0, -1.0]), requires_grad=True)
    fn(x, y).backward(np.array([1.0, 2.0, 4.0, 8.0]))
    if name == "maximum":
        gx, gy = [0.5, 2.0, 0.0, 4.0], [0.5, 0.0, 4.0, 4.0]
    else:
        gx, gy = [0.5, 0.0, 4.0, 4.0], [0.5, 2.0, 0.0, 4.0]
    np.testing.assert_array_equal(x.grad, gx)
    np.testing.assert_array_equal(y.grad, gy)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_tie_with_broadcast_scalar(name):
    """A 0-d operand collects its share from every element it was broadcast to."""
    fn = getattr(fl, name)
    x = fl.tensor(np.array([0.0, 0.0, 3.0, -3.0], dtype=np.float32), requires_grad=True)
    s = fl.tensor(np.array(0.0, dtype=np.float32), requires_grad=True)
    fn(x, s).sum().backward()
    winner_x = [0.5, 0.5, 1.0, 0.0] if name == "maximum" else [0.5, 0.5, 0.0, 1.0]
    np.testing.assert_array_equal(x.grad, winner_x)
    assert s.grad.shape == () and s.grad.dtype == np.float32
    assert float(s.grad) == 2.0


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_tie_rule_matches_torch(name):
    torch = pytest.importorskip("torch")
    x = np.array([[1.0, 2.0, 3.0], [0.5, 0.5, -1.0]])
    y = np.array([1.0, 0.5, 3.0])
    check_op(getattr(fl, name), getattr(torch, name), [x, y], reference=getattr(np, name),
             check_grad=False)  # finite differences are meaningless at a tie
    fx, fy = fl.tensor(x, requires_grad=True), fl.tensor(y, requires_grad=True)
    tx, ty = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    getattr(fl, name)(fx, fy).sum().backward()
    getattr(torch, name)(tx, ty).sum().backward()
    np.testing.assert_array_equal(fx.grad, tx.grad.numpy())
    np.testing.assert_array_equal(fy.grad, ty.grad.numpy())


WHERE_SHAPES = [((3, 4), (3, 4), (3, 4)), ((3, 1), (4,), ()), ((4,), (3, 4), (3, 1)),
                ((), (3, 4), (4,)), ((2, 3, 1), (3, 4), (1, 4))]


@pytest.mark.parametrize("shapes", WHERE_SHAPES, ids=str)
def test_where(shapes):
    cs, xs, ys = shapes
    rng = np.random.default_rng(9)
    cond = np.asarray(rng.random(cs) < 0.5)
    check_op(fl.where, lambda c, a, b: a.where(c, b), [cond, rng.standard_normal(xs),
                                                       rng.standard_normal(ys)],
             reference=np.where)


@pytest.mark.parametrize("other", [0.0, -1.5])
def test_where_with_number_and_tensor_condition(other):
    x = np.random.default_rng(10).standard_normal((3, 4))
    check_op(lambda a: fl.where(a > 0, a, other), lambda a: a.where(a > 0, other),
             [x], reference=lambda a: np.where(a > 0, a, other))


@pytest.mark.parametrize("other", [0, 0.0, -1])
def test_where_with_number_keeps_float32(other):
    """fl.where(x > 0, x, 0): the number takes x's dtype, not the boolean condition's."""
    x = fl.tensor(np.array([-1.0, 2.0], dtype=np.float32), requires_grad=True)
    y = fl.where(x > 0, x, other)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.numpy(), [other, 2.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0])


def test_where_condition_gets_no_gradient():
    c = fl.tensor(np.array([1.0, 0.0, 2.0]), requires_grad=True)  # non-zero means true
    x = fl.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    y = fl.where(c, x, -x)
    y.backward(np.ones(3))
    np.testing.assert_array_equal(y.numpy(), [1.0, -2.0, 3.0])
    np.testing.assert_array_equal(x.grad, [1.0, -1.0, 1.0])
    assert c.grad is None


COMPARISONS = {
    "equal": (lambda a, b: a == b, np.equal), "not_equal": (lambda a, b: a != b, np.not_equal),
    "less": (lambda a, b: a < b, np.less), "less_equal": (lambda a, b: a <= b, np.less_equal),
    "greater": (lambda a, b: a > b, np.greater),
    "greater_equal": (lambda a, b: a >= b, np.greater_equal),
}


@pytest.mark.parametrize("shapes", [((4, 5), (4, 5)), ((4, 5), (5,)), ((4, 1), ()), ((), ())],
                         ids=str)
@pytest.mark.parametrize("form", ["function", "operator"])
@pytest.mark.parametrize("name", COMPARISONS)
def test_comparison(name, form, shapes):
    op, ref = COMPARISONS[name]
    rng = np.random.default_rng(11)
    # small integer grids, so that ties (where == and != matter) occur
    x = np.asarray(rng.integers(-2, 3, shapes[0]) * 0.5)
    y = np.asarray(rng.integers(-2, 3, shapes[1]) * 0.5)
    fn = getattr(fl, name) if form == "function" else op
    check_op(fn, op, [x, y], reference=ref, check_grad=False)


@pytest.mark.parametrize("name", COMPARISONS)
def test_comparison_is_boolean_without_gradient(name):
    x = fl.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    out = getattr(fl, name)(x, 2.0)
    assert out.dtype == np.bool_ and out.shape == (3,)
    assert not out.requires_grad and out.creator is None
    np.testing.assert_array_equal(out.numpy(), getattr(np, name)(x.numpy(), 2.0))


@pytest.mark.parametrize("name", COMPARISONS)
def test_comparison_with_number_on_the_left(name):
    op, ref = COMPARISONS[name]
    x = fl.tensor(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(op(2.0, x).numpy(), ref(2.0, x.numpy()))


# -- dtypes of mixed inputs -------------------------------------------------------------

def test_float32_times_python_float_stays_float32():
    x = fl.tensor(np.array([1.0, -2.0], dtype=np.float32), requires_grad=True)
    y = x * 0.1
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad, [0.1, 0.1], rtol=1e-7)


@pytest.mark.parametrize("form", ["x + 2", "2 - x", "x ** 3", "2 / x", "x / 3.0"])
def test_python_number_keeps_float32(form):
    fn = {"x + 2": lambda a: a + 2, "2 - x": lambda a: 2 - a, "x ** 3": lambda a: a ** 3,
          "2 / x": lambda a: 2 / a, "x / 3.0": lambda a: a / 3.0}[form]
    x = fl.tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    y = fn(x)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_python_number_keeps_float64():
    x = fl.tensor(np.array([1.0, 2.0]), requires_grad=True)
    assert (x * 0.1).dtype == np.float64
    np.testing.assert_array_equal((x * 0.1).numpy(), np.array([1.0, 2.0]) * 0.1)


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "maximum"])
def test_float32_tensor_with_float64_array(name):
    """float32 Tensor (op) float64 ndarray computes in float64; x's gradient is cast back."""
    rng = np.random.default_rng(12)
    x64 = _signed(rng, (3, 4))
    a = _signed(rng, (4,)) + 0.05  # never ties with x for maximum
    x = fl.tensor(x64.astype(np.float32), requires_grad=True)
    y = getattr(fl, name)(x, a)
    assert y.dtype == np.float64
    ref = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
           "maximum": np.maximum}[name]
    np.testing.assert_allclose(y.numpy(), ref(x64.astype(np.float32), a), rtol=1e-12)
    y.backward(np.ones((3, 4)))
    assert x.grad.dtype == np.float32 and x.grad.shape == (3, 4)


def test_float32_and_float64_tensors_both_get_own_dtype_gradients():
    x = fl.tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    w = fl.tensor(np.full((3,), 2.0), requires_grad=True)
    y = x * w
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad, np.full((2, 3), 2.0, dtype=np.float32))
    np.testing.assert_array_equal(w.grad, [2.0, 2.0, 2.0])


def test_integer_tensor_cannot_require_grad():
    assert_error(TypeError, fl.tensor, [1, 2, 3], requires_grad=True,
                 contains=["floating", "int64"])
    assert_error(TypeError, fl.tensor(np.arange(3)).requires_grad_, contains=["floating"])


def test_integer_tensor_arithmetic_has_no_graph():
    x = fl.tensor(np.arange(4))
    y = x * 2 + 1
    assert y.dtype == np.int64 and not y.requires_grad
    np.testing.assert_array_equal(y.numpy(), [1, 3, 5, 7])


# -- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("shapes", [((2, 3), (4,)), ((2, 3), (3, 2)), ((5, 2, 3), (4, 1, 3))],
                         ids=str)
@pytest.mark.parametrize("name,op", [("add", "Add"), ("sub", "Sub"), ("mul", "Mul"),
                                     ("div", "Div"), ("pow", "Pow"), ("maximum", "Maximum"),
                                     ("minimum", "Minimum")])
def test_broadcast_mismatch_names_op_and_shapes(name, op, shapes):
    xs, ys = shapes
    assert_error(ValueError, getattr(fl, name), fl.ones(*xs), fl.ones(*ys),
                 contains=[op, str(xs), str(ys)])


def test_broadcast_mismatch_from_operator_and_array():
    assert_error(ValueError, lambda: fl.ones(2, 3) + np.ones(4), contains=["Add", "(2, 3)", "(4,)"])
    assert_error(ValueError, lambda: np.ones((5,)) * fl.ones(2, 3),
                 contains=["Mul", "(5,)", "(2, 3)"])


@pytest.mark.parametrize("shapes", [((2, 3), (2, 3), (4,)), ((4,), (2, 3), (2, 3)),
                                    ((3,), (1,), (4,))], ids=str)
def test_where_mismatch_names_op_and_shapes(shapes):
    cs, xs, ys = shapes
    e = assert_error(ValueError, fl.where, np.ones(cs, dtype=bool), fl.ones(*xs), fl.ones(*ys),
                     contains=["Where"])
    bad = [s for s in (cs, xs, ys) if str(s) in str(e)]
    assert len(bad) >= 2, str(e)


@pytest.mark.parametrize("name", COMPARISONS)
def test_comparison_mismatch_names_op_and_shapes(name):
    assert_error(ValueError, getattr(fl, name), fl.ones(2, 3), fl.ones(4),
                 contains=[name, "(2, 3)", "(4,)"])


# -- no side effects ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                  "where", "neg", "exp", "log", "sqrt", "abs", "clip"])
def test_inputs_are_not_modified(name):
    rng = np.random.default_rng(13)
    a, b = rng.uniform(0.5, 2.0, (3, 4)), rng.uniform(0.5, 2.0, (4,))
    a0, b0 = a.copy(), b.copy()
    x, y = fl.tensor(a, requires_grad=True), fl.tensor(b, requires_grad=True)
    if name == "where":
        out = fl.where(a > 1.0, x, y)
    elif name == "clip":
        out = fl.clip(x, 0.8, 1.5)
    elif name in BINARY:
        out = getattr(fl, name)(x, y)
    else:
        out = getattr(fl, name)(x)
    gy = np.ones(out.shape)
    out.backward(gy)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)
    np.testing.assert_array_equal(gy, np.ones(out.shape))
