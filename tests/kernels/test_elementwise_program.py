"""The element-wise program interpreter (fundl.kernels.elementwise): the compiled kernel equals
its plain-NumPy reference, and the reference equals the NumPy arithmetic it stands for."""
import numpy
import pytest

from fundl.kernels import elementwise as E

# (the every-op program divides by zero in places: inf must come out as NumPy's)
pytestmark = pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")

DTYPES = [numpy.float64, numpy.float32]
TOL = {numpy.float64: 1e-13, numpy.float32: 2e-6}


def _prog(rows):
    return numpy.array(rows, numpy.int64)


def _every_op():
    """A program using every opcode and every operand kind (register, constant on either
    side), over a full input x, a bias row b and a scalar input s."""
    rows = [[E.LOAD, 0, 0, 0, 0], [E.LOAD, 1, 1, 0, 0], [E.LOAD, 2, 2, 0, 0],
            [E.ADD, 3, 0, 1, 0],            # x + b
            [E.TANH, 4, 3, 0, 0],
            [E.MUL, 5, 4, 0, 2],            # * c0 (0.5)
            [E.SUB, 6, 1, 5, 1],            # c1 (2.0) - .
            [E.EXP, 7, 6, 0, 0],
            [E.LOG, 8, 7, 0, 0],
            [E.DIV, 9, 8, 2, 0],            # / s
            [E.SIGMOID, 10, 9, 0, 0],
            [E.NEG, 11, 10, 0, 0],
            [E.ABS, 12, 11, 0, 0],
            [E.SQRT, 13, 12, 0, 0],
            [E.POW, 14, 13, 1, 2],          # ** 2.0
            [E.POW, 15, 14, 2, 2],          # ** 3.0
            [E.MAXIMUM, 16, 15, 0, 0],      # max(., x)
            [E.MINIMUM, 17, 16, 0, 2],      # min(., 0.5)
            [E.RELU, 18, 0, 0, 0],
            [E.SUB, 19, 17, 18, 0],
            [E.DIV, 20, 0, 19, 1],          # 0.5 / .
            [E.MAXIMUM, 21, 0, 20, 1],      # max(0.5, .)
            [E.MINIMUM, 22, 0, 21, 1]]      # min(0.5, .)
    return _prog(rows), numpy.array([0.5, 2.0, 3.0])


def _numpy_every_op(x, b, s):
    h = numpy.tanh(x + b) * x.dtype.type(0.5)
    h = x.dtype.type(2.0) - h
    h = numpy.log(numpy.exp(h)) / s
    h = numpy.tanh(h * 0.5) * 0.5 + 0.5
    h = numpy.sqrt(numpy.abs(-h))
    h = (h ** 2) ** x.dtype.type(3.0)
    h = numpy.minimum(numpy.maximum(h, x), x.dtype.type(0.5)) - numpy.maximum(x, 0)
    h = x.dtype.type(0.5) / h
    return numpy.minimum(x.dtype.type(0.5), numpy.maximum(x.dtype.type(0.5), h))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 7), (1300,), (4, 5, 129)])  # partial and several blocks
def test_kernel_equals_reference_and_numpy(dtype, shape):
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    b = rng.standard_normal(shape[-1]).astype(dtype)
    s = numpy.array([1.7], dtype)
    prog, consts = _prog(_every_op()[0]), _every_op()[1]
    out = numpy.empty(shape, dtype)
    E.run_program_numba(prog, consts, x.reshape(-1), b, s, s, numpy.array([E.FULL, E.ROW,
                        E.SCALAR, E.FULL]), shape[-1], out.reshape(-1))
    ref = E.run_program_reference(prog, consts, [x, b, s], shape, dtype)
    assert ref.dtype == dtype and ref.shape == shape
    numpy.testing.assert_allclose(out, ref, rtol=TOL[dtype], atol=TOL[dtype])
    numpy.testing.assert_allclose(ref, _numpy_every_op(x, b, s[0]), rtol=TOL[dtype],
                                  atol=TOL[dtype])
    via = E.run_program(prog, consts, [x, b, s], shape, dtype)
    numpy.testing.assert_allclose(via, ref, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_and_inf_propagate_like_numpy(dtype):
    x = numpy.array([numpy.nan, -numpy.inf, numpy.inf, -1.0, 0.0, 2.0], dtype)
    y = numpy.array([1.0, numpy.nan, 0.0, numpy.nan, -0.0, 3.0], dtype)
    for code, fn in ((E.MAXIMUM, numpy.maximum), (E.MINIMUM, numpy.minimum)):
        prog = _prog([[E.LOAD, 0, 0, 0, 0], [E.LOAD, 1, 1, 0, 0], [code, 2, 0, 1, 0]])
        got = E.run_program(prog, numpy.zeros(0), [x, y], x.shape, dtype)
        numpy.testing.assert_array_equal(numpy.isnan(got), numpy.isnan(fn(x, y)))
        numpy.testing.assert_array_equal(got[~numpy.isnan(got)], fn(x, y)[~numpy.isnan(got)])
    relu = E.run_program(_prog([[E.LOAD, 0, 0, 0, 0], [E.RELU, 1, 0, 0, 0]]), numpy.zeros(0),
                         [x], x.shape, dtype)
    numpy.testing.assert_array_equal(relu, numpy.maximum(x, 0))


def test_non_contiguous_and_other_dtypes_are_handled():
    x = numpy.arange(24.0).reshape(4, 6)[:, ::2]          # not contiguous
    prog = _prog([[E.LOAD, 0, 0, 0, 0], [E.MUL, 1, 0, 0, 2], [E.ADD, 1, 1, 0, 0]])
    got = E.run_program(prog, numpy.array([3.0]), [x], x.shape, numpy.float64)
    numpy.testing.assert_array_equal(got, x * 3 + x)
    xi = numpy.arange(6, dtype=numpy.float16)               # not compiled for: the reference
    got = E.run_program(prog, numpy.array([3.0]), [xi], xi.shape, numpy.float16)
    assert got.dtype == numpy.float16
    numpy.testing.assert_array_equal(got, xi * numpy.float16(3) + xi)


def test_modes_of():
    shape = (4, 3)
    assert E.modes_of([numpy.ones(shape), numpy.ones(3), numpy.ones(1), numpy.ones((1, 3))],
                      shape) == [E.FULL, E.ROW, E.SCALAR, E.ROW]
    assert E.modes_of([numpy.ones((4, 1))], shape) is None  # a column: not fused
