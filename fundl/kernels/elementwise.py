"""One compiled interpreter for chains of element-wise operations (graph mode's fusion).

Why: replaying a recorded chain such as ``0.5 * (y - t) ** 2`` op by op makes one pass over
memory and one new array per op. Graph mode (:mod:`fundl.graph_mode`) replaces each chain of
element-wise ops by one op whose forward runs a small **program** here: the chain is
evaluated block by block (:data:`BLOCK` elements, kept in cache in a few register buffers),
so each input is read once and only the chain's result is written.

No source code is generated (CI forbids exec/eval in fundl/): :func:`run_program_numba` is one
interpreter compiled once per float dtype (kernel group ``"elementwise"`` of
:func:`fundl.kernels._jit.ready`), whatever the chain. A program is an ``int64`` array of
instructions, one row each, ``(opcode, dst, a, b, flags)``:

* ``LOAD dst, k``: register ``dst`` = input ``k`` (up to :data:`MAX_INPUTS` inputs, each of
  the output's size, a row of its last axis (a bias, ``mode`` 1) or one element (``mode`` 2));
* a unary op ``dst = f(a)``; a binary op ``dst = a (op) b``, where ``flags & 1`` means ``a`` is
  a constant (index into ``consts``) and ``flags & 2`` means ``b`` is;
* the result is the register of the last instruction.

:func:`run_program_reference` runs the same program with whole-array NumPy/CuPy operations
(the arithmetic of the ops it stands for, in the same order): the path while the kernel is
compiling, for CuPy arrays, and what the tests compare the kernel with.
"""
from __future__ import annotations

import numpy

from ._jit import FLOAT_DTYPES, jit, ready

BLOCK = 4096
"""Elements per block: a few register buffers of this size stay in L1 cache."""

MAX_INPUTS = 4
"""Array inputs a program may read (the kernel's fixed arity: one compiled signature)."""

# opcodes (the interpreter's and the reference's)
LOAD = 0
ADD, SUB, MUL, DIV, MAXIMUM, MINIMUM, POW = 10, 11, 12, 13, 14, 15, 16
NEG, EXP, LOG, TANH, SIGMOID, RELU, SQRT, ABS = 20, 21, 22, 23, 24, 25, 26, 27
BINARY = (ADD, SUB, MUL, DIV, MAXIMUM, MINIMUM, POW)
UNARY = (NEG, EXP, LOG, TANH, SIGMOID, RELU, SQRT, ABS)

FULL, ROW, SCALAR = 0, 1, 2
"""How an input is read: element by element, as a row repeated along the last axis, or one
value for all."""


@jit
def _load(d, x, mode, start, m, ncols):
    """Register ``d[:m]`` = block ``start`` of input ``x`` read in ``mode``."""
    if mode == 0:
        xs = x[start:start + m]  # (a slice: its loop vectorises; x[start + t] does not)
        for t in range(m):
            d[t] = xs[t]
    elif mode == 2:
        v = x[0]
        for t in range(m):
            d[t] = v
    else:  # a row: in segments, from where this block starts in it
        c = start % ncols
        filled = 0
        while filled < m:
            seg = min(ncols - c, m - filled)
            xs = x[c:c + seg]
            ds = d[filled:filled + seg]
            for t in range(seg):
                ds[t] = xs[t]
            filled += seg
            c = 0


@jit
def _unary(code, d, a, m):
    zero = d.dtype.type(0.0)
    half = d.dtype.type(0.5)
    if code == NEG:
        for t in range(m):
            d[t] = -a[t]
    elif code == EXP:
        for t in range(m):
            d[t] = numpy.exp(a[t])
    elif code == LOG:
        for t in range(m):
            d[t] = numpy.log(a[t])
    elif code == TANH:
        for t in range(m):
            d[t] = numpy.tanh(a[t])
    elif code == SIGMOID:  # as ops.activation._sigmoid
        for t in range(m):
            d[t] = numpy.tanh(a[t] * half) * half + half
    elif code == RELU:  # max(x, 0), NaN kept (as numpy.maximum)
        for t in range(m):
            v = a[t]
            d[t] = v if (v > zero or v != v) else zero
    elif code == SQRT:
        for t in range(m):
            d[t] = numpy.sqrt(a[t])
    else:  # ABS
        for t in range(m):
            d[t] = abs(a[t])


@jit
def _binary(code, d, a, b, m):
    """``d = a (op) b`` on registers."""
    if code == ADD:
        for t in range(m):
            d[t] = a[t] + b[t]
    elif code == SUB:
        for t in range(m):
            d[t] = a[t] - b[t]
    elif code == MUL:
        for t in range(m):
            d[t] = a[t] * b[t]
    elif code == DIV:
        for t in range(m):
            d[t] = a[t] / b[t]
    elif code == MAXIMUM:  # NaN from either side kept, as numpy.maximum
        for t in range(m):
            u, v = a[t], b[t]
            d[t] = u if (u >= v or u != u) else v
    elif code == MINIMUM:
        for t in range(m):
            u, v = a[t], b[t]
            d[t] = u if (u <= v or u != u) else v
    else:
        for t in range(m):
            d[t] = a[t] ** b[t]


@jit
def _binary_const(code, d, a, s, m, const_first):
    """``d = a (op) s`` (or ``s (op) a`` when ``const_first``) with a constant ``s``."""
    if code == ADD:
        for t in range(m):
            d[t] = a[t] + s
    elif code == MUL:
        for t in range(m):
            d[t] = a[t] * s
    elif code == SUB:
        if const_first:
            for t in range(m):
                d[t] = s - a[t]
        else:
            for t in range(m):
                d[t] = a[t] - s
    elif code == DIV:
        if const_first:
            for t in range(m):
                d[t] = s / a[t]
        else:
            for t in range(m):
                d[t] = a[t] / s
    elif code == MAXIMUM:  # (a NaN constant: the result is NaN, as numpy.maximum)
        for t in range(m):
            u = a[t]
            d[t] = u if (u >= s or u != u) else s
    elif code == MINIMUM:
        for t in range(m):
            u = a[t]
            d[t] = u if (u <= s or u != u) else s
    elif const_first:
        for t in range(m):
            d[t] = s ** a[t]
    elif s == 2.0:  # x ** 2 (NumPy computes it as x * x)
        for t in range(m):
            d[t] = a[t] * a[t]
    else:
        for t in range(m):
            d[t] = a[t] ** s


@jit
def run_program_numba(prog, consts, x0, x1, x2, x3, modes, ncols, out):
    """Evaluate ``prog`` (see the module docstring) into ``out`` (1-D, contiguous).

    ``x0..x3`` are 1-D contiguous arrays of ``out``'s dtype (unused ones: any such array);
    ``modes[k]`` says how input ``k`` is read; ``ncols`` is the length of a ROW input.
    """
    n = out.shape[0]
    nreg = 1
    for p in range(prog.shape[0]):
        if prog[p, 1] + 1 > nreg:
            nreg = prog[p, 1] + 1
    regs = numpy.empty((nreg, BLOCK), out.dtype)
    cs = numpy.empty(consts.shape[0], out.dtype)
    for c in range(consts.shape[0]):
        cs[c] = consts[c]  # rounded to the dtype, as NumPy rounds a 0-d constant
    last = prog[prog.shape[0] - 1, 1]
    for start in range(0, n, BLOCK):
        m = min(BLOCK, n - start)
        for p in range(prog.shape[0]):
            code = prog[p, 0]
            d = regs[prog[p, 1]]
            if code == LOAD:
                k = prog[p, 2]
                if k == 0:
                    _load(d, x0, modes[0], start, m, ncols)
                elif k == 1:
                    _load(d, x1, modes[1], start, m, ncols)
                elif k == 2:
                    _load(d, x2, modes[2], start, m, ncols)
                else:
                    _load(d, x3, modes[3], start, m, ncols)
            elif code >= 20:
                _unary(code, d, regs[prog[p, 2]], m)
            elif prog[p, 4] == 0:
                _binary(code, d, regs[prog[p, 2]], regs[prog[p, 3]], m)
            elif prog[p, 4] == 2:
                _binary_const(code, d, regs[prog[p, 2]], cs[prog[p, 3]], m, False)
            else:
                _binary_const(code, d, regs[prog[p, 3]], cs[prog[p, 2]], m, True)
        r = regs[last]
        o = out[start:start + m]
        for t in range(m):
            o[t] = r[t]
    return out


def _reference_binary(xp, code, a, b):
    if code == ADD:
        return a + b
    if code == SUB:
        return a - b
    if code == MUL:
        return a * b
    if code == DIV:
        return a / b
    if code == MAXIMUM:
        return xp.maximum(a, b)
    if code == MINIMUM:
        return xp.minimum(a, b)
    return a ** b


def _reference_unary(xp, code, a):
    if code == NEG:
        return -a
    if code == EXP:
        return xp.exp(a)
    if code == LOG:
        return xp.log(a)
    if code == TANH:
        return xp.tanh(a)
    if code == SIGMOID:
        return xp.tanh(a * 0.5) * 0.5 + 0.5
    if code == RELU:
        return xp.maximum(a, 0)
    if code == SQRT:
        return xp.sqrt(a)
    return xp.abs(a)


def run_program_reference(prog, consts, inputs, shape, dtype):
    """The program on whole arrays (NumPy or CuPy): the plain-``xp`` reference.

    Args:
        prog: ``(n, 5)`` int instructions (see the module docstring).
        consts: float constants (rounded to ``dtype`` here, as NumPy rounds a 0-d constant).
        inputs: the input arrays, each of ``shape``, a row of its last axis, or one element.
        shape, dtype: the result's.

    Returns:
        The result, an array of ``shape`` and ``dtype``.
    """
    from ..backend import get_array_module

    xp = get_array_module(inputs[0]) if inputs else numpy
    cs = [xp.asarray(c, dtype=dtype) for c in consts]
    regs = {}
    for code, dst, a, b, flags in (tuple(int(v) for v in row) for row in prog):
        if code == LOAD:
            x = inputs[a]
            regs[dst] = x.reshape(()) if x.size == 1 and x.shape != tuple(shape) else x
        elif code in UNARY:
            regs[dst] = _reference_unary(xp, code, regs[a])
        else:
            u = cs[a] if flags & 1 else regs[a]
            v = cs[b] if flags & 2 else regs[b]
            if code == POW and flags == 2 and float(consts[b]) == 2.0:
                regs[dst] = u * u
            else:
                regs[dst] = _reference_binary(xp, code, u, v)
    y = regs[int(prog[-1][1])]
    if y.shape != tuple(shape):
        y = xp.broadcast_to(y, shape)
    return xp.array(y, dtype=dtype, copy=True) if y.dtype != dtype or not y.flags.owndata \
        else y


def modes_of(inputs, shape):
    """The read mode of each input for an output of ``shape`` (None: cannot be fused)."""
    size = 1
    for n in shape:
        size *= n
    modes = []
    for x in inputs:
        if tuple(x.shape) == tuple(shape):
            modes.append(FULL)
        elif x.size == 1:
            modes.append(SCALAR)
        elif len(shape) >= 1 and x.size == shape[-1] and x.shape[-1] == shape[-1]:
            modes.append(ROW)
        else:
            return None
    return modes


def run_program(prog, consts, inputs, shape, dtype):
    """Evaluate a program: the compiled interpreter for C-contiguous NumPy float32/float64
    arrays once its kernel group is ready, else :func:`run_program_reference`.

    Args:
        prog: ``(n, 5)`` int64 instructions; consts: float64 constants.
        inputs: up to :data:`MAX_INPUTS` arrays of ``dtype`` (each of ``shape``, a row of its
            last axis, or one element).
        shape, dtype: the result's.

    Returns:
        A new array of ``shape`` and ``dtype``.

    Example:
        >>> prog = numpy.array([[LOAD, 0, 0, 0, 0], [MUL, 1, 0, 0, 2], [TANH, 1, 1, 0, 0]])
        >>> run_program(prog, numpy.array([2.0]), [numpy.ones(3)], (3,), numpy.float64)
        array([0.96402758, 0.96402758, 0.96402758])
    """
    dtype = numpy.dtype(dtype)
    if dtype in FLOAT_DTYPES and len(inputs) <= MAX_INPUTS and \
            all(type(x) is numpy.ndarray and x.dtype == dtype for x in inputs) and \
            ready("elementwise", dtype):
        modes = modes_of(inputs, shape)
        if modes is not None:
            flat = [numpy.ascontiguousarray(x).reshape(-1) for x in inputs]
            out = numpy.empty(shape, dtype)
            filler = out.reshape(-1)[:1] if out.size else numpy.zeros(1, dtype)
            while len(flat) < MAX_INPUTS:
                flat.append(filler)
            if out.size:
                run_program_numba(prog, consts, flat[0], flat[1], flat[2], flat[3],
                                  numpy.array(modes, numpy.int64),
                                  shape[-1] if shape else 1, out.reshape(-1))
            return out
    return run_program_reference(prog, consts, inputs, shape, dtype)
