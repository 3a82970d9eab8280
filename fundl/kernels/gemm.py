"""fundl's own float32 GEMM: a register-tiled AVX-512 micro-kernel, for the dense layer and
the recurrent loops.

Why: on an Intel Xeon with AVX-512 (2-core VM, family 6 model 167), OpenBLAS's small-matrix
kernels, which the dense layer's products call (:mod:`fundl.kernels.fused`), ran the MLP's
``64 x 784 @ 784 x 256`` (half of a batch of 128, one core) in ~218 us; Intel MKL (PyTorch's
GEMM) in ~156 us; this kernel in 131-150 us. NumPy's OpenBLAS is no faster than the small
kernels there, so without this kernel a user of the default install gets OpenBLAS's speed on
the product that is a third of an MLP's training step. (The weight gradient ``x.T @ g``
stays with OpenBLAS, whose kernel was as fast as this one: 156 against 152-163 us.) On an
AMD EPYC with AVX-512 (Zen 4, family 25, 2-core VM) every product here is bound by the FMA
units: this kernel and OpenBLAS's small kernels ran within 1-3 % of each other (253 against
261 us for the MLP's product), both faster than NumPy (269 us) and than the recurrent loops'
:func:`fundl.kernels.recurrent.matmul_nt` (40 against 55 us for 32 x 128 @ 128 x 512); taking
it there made the MLP's epoch 0.92 and the GRU's training step 0.95 of the small kernels'
(paired runs, separate processes), through what it enables (the Dense forward's split by
weight rows, the GRU's products on ``U^T``), and left the LSTM's unchanged (0.99-1.01).

How a GEMM is computed here, ``C (m, n) = A (m, k) @ B (k, n)``, all row-major float32:

* C is cut into tiles of :data:`ROWS` x :data:`COLS` (14 x 32). One call of the
  micro-kernel :func:`_tile` computes one tile over the whole of ``k``: its 14 x 32 sums live
  in 28 vector registers of 16 floats (AVX-512's ``zmm``) for the whole loop, so C is written
  once and never read.
* Each step ``kk`` of the loop loads a row of B's 32 columns (two vectors) and, for each of
  the tile's 14 rows, broadcasts ``A[i, kk]`` to a vector and adds ``A[i, kk] * B[kk, :]``
  into the row's two sums with a fused multiply-add: 28 FMAs per 16 loads, so the loop is
  bound by the FMA units, not by memory. B's row :data:`PREFETCH` steps ahead is prefetched.
* ``A`` is read through two strides (``A[i, kk]`` at ``i * sai + kk * sak``): the same
  kernel computes ``x @ w`` (``sai = k, sak = 1``) and ``x.T @ g`` (``sai = 1``, ``sak`` =
  x's row length) without transposing anything. ``B``'s rows must be contiguous.
* Rows go in blocks of near-equal size, at most 14 (one kernel for each size, 1 to 14). The
  last columns (fewer than 32) are computed from a zero-padded copy of B's into a scratch
  tile, then copied out: the micro-kernel always does 32 columns.

The micro-kernel is written in LLVM IR (a Numba intrinsic): Numba's loops cannot be made to
keep 28 vector sums in registers. Where there is no AVX-512, LLVM would split each vector in
two and spill: :func:`usable` is False there and the callers keep their BLAS.

Example:
    >>> c = matmul(a, b)                 # a (m, k), b (k, n) C-contiguous float32
    >>> numpy.allclose(c, a @ b, rtol=1e-4)
    True
"""
from __future__ import annotations

import functools

import numpy

from ._jit import jit
from ._jit import numba as _numba
from .blas import cpu_flags

ROWS = 14
"""Rows of C per micro-kernel call (14 x 2 vector sums: 28 of AVX-512's 32 registers)."""
LANES = 16
"""float32 lanes of an AVX-512 vector."""
COLS = 2 * LANES
"""Columns of C per micro-kernel call."""
PREFETCH = 16
"""How many rows of B ahead the micro-kernel asks the cache for (software prefetch): B's rows
are a whole weight row apart (1 KB for 256 units), a new 4 KB page every few rows, where the
hardware prefetchers stop. Measured (one core, ``64 x 784 @ 784 x 256``): ~160 us without,
140-150 us at 8-32 rows ahead."""


@functools.lru_cache(maxsize=None)
def usable() -> bool:
    """Whether this CPU runs the micro-kernel at speed: AVX-512F, and Numba present. Where
    it does, fundl takes it over OpenBLAS's AVX-512 small kernels and
    :func:`fundl.kernels.recurrent.matmul_nt` (the Dense layer's forward, the recurrent
    loops' products): measured as fast or faster on an Intel Xeon and an AMD EPYC (Zen 4),
    see the module docstring."""
    return _numba is not None and "avx512f" in cpu_flags()


if _numba is not None:
    from llvmlite import ir as _ir
    from numba.core import types as _types
    from numba.extending import intrinsic as _intrinsic

    def _address(builder, base, *terms):
        """``base + 4 * sum(a * b for a, b in terms)`` (int64 byte address of a float32)."""
        i64 = _ir.IntType(64)
        offset = _ir.Constant(i64, 0)
        for a, b in terms:
            offset = builder.add(offset, builder.mul(a, b))
        return builder.add(base, builder.mul(offset, _ir.Constant(i64, 4)))

    def _make_tile(n_rows):
        """The micro-kernel for tiles of ``n_rows`` x 32: ``C[0:n_rows, 0:32] = A[0:n_rows,
        0:k] @ B[0:k, 0:32]`` (with ``acc`` ``+=``: C's tile is the sums' start), at int64
        addresses with strides in elements (``A[i, kk]`` at ``a + 4 * (i * sai + kk *
        sak)``, B's rows ``ldb`` apart, C's ``ldc``); ``k >= 1``. See the module docstring."""
        def tile(typingctx, a, sai, sak, b, ldb, c, ldc, k, acc):
            return _types.void(*([_types.int64] * 8), _types.boolean), \
                functools.partial(_tile_code, n_rows)

        tile.__name__ = tile.__qualname__ = f"_tile{n_rows}"
        return _intrinsic(tile)

    def _tile_code(n_rows, context, builder, signature, args):
        """The LLVM IR of one tile, three blocks: the start (the sums as 2 x ``n_rows``
        vectors, from zero or from C), the loop over ``kk`` (phi nodes carry ``kk`` and the
        sums from one step to the next, so LLVM keeps them in registers; each step loads
        B's row, prefetches a later one and adds ``A[i, kk] * B[kk, :]`` into each row's
        sums), and the end (the sums stored to C once)."""
        a, sai, sak, b, ldb, c, ldc, k, acc = args
        i64, i32, f32 = _ir.IntType(64), _ir.IntType(32), _ir.FloatType()
        vec = _ir.VectorType(f32, LANES)
        fma_name = f"llvm.fma.v{LANES}f32"
        module = builder.module
        fma = module.globals.get(fma_name) or _ir.Function(
            module, _ir.FunctionType(vec, [vec, vec, vec]), fma_name)
        i8p = _ir.IntType(8).as_pointer()
        prefetch = module.globals.get("llvm.prefetch.p0") or _ir.Function(
            module, _ir.FunctionType(_ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0")
        zero = _ir.Constant(vec, [0.0] * LANES)
        undef = _ir.Constant(vec, _ir.Undefined)
        splat_mask = _ir.Constant(_ir.VectorType(i32, LANES), [0] * LANES)
        rows = [_ir.Constant(i64, r) for r in range(n_rows)]
        halves = [_ir.Constant(i64, LANES * v) for v in range(2)]
        one = _ir.Constant(i64, 1)

        # the sums start at zero, or with acc at C's tile (loaded only then)
        with builder.if_else(acc) as (then, otherwise):
            with then:
                loaded = [[builder.load(builder.inttoptr(_address(builder, c, (r, ldc), (h, one)),
                                                         vec.as_pointer()), align=4)
                           for h in halves] for r in rows]
                from_c = builder.block
            with otherwise:
                from_zero = builder.block
        start = []
        for row in loaded:
            start.append([])
            for v in row:
                phi = builder.phi(vec)
                phi.add_incoming(v, from_c)
                phi.add_incoming(zero, from_zero)
                start[-1].append(phi)
        entry = builder.block
        loop = builder.append_basic_block("tile_loop")
        done = builder.append_basic_block("tile_done")
        builder.branch(loop)
        builder.position_at_end(loop)
        kk = builder.phi(i64)
        kk.add_incoming(_ir.Constant(i64, 0), entry)
        sums = [[builder.phi(vec) for _ in halves] for _ in rows]
        for row, first in zip(sums, start):
            for s, v in zip(row, first):
                s.add_incoming(v, entry)
        b_row = [builder.load(builder.inttoptr(_address(builder, b, (kk, ldb), (h, one)),
                                               vec.as_pointer()), align=4)
                 for h in halves]
        # B's row PREFETCH rows ahead: B's rows are ldb apart, a new page every few rows,
        # where the hardware prefetchers stop
        ahead = builder.add(kk, _ir.Constant(i64, PREFETCH))
        for h in halves:
            target = builder.inttoptr(_address(builder, b, (ahead, ldb), (h, one)), i8p)
            builder.call(prefetch, [target, _ir.Constant(i32, 0), _ir.Constant(i32, 3),
                                    _ir.Constant(i32, 1)])
        new = []
        for r, row in zip(rows, sums):
            x = builder.load(builder.inttoptr(_address(builder, a, (r, sai), (kk, sak)),
                                              f32.as_pointer()), align=4)
            x = builder.shuffle_vector(builder.insert_element(undef, x, _ir.Constant(i32, 0)),
                                       undef, splat_mask)
            new.append([builder.call(fma, [x, bv, s]) for bv, s in zip(b_row, row)])
        kk_next = builder.add(kk, one)
        body = builder.block
        kk.add_incoming(kk_next, body)
        for row, values in zip(sums, new):
            for s, v in zip(row, values):
                s.add_incoming(v, body)
        builder.cbranch(builder.icmp_signed("<", kk_next, k), loop, done)

        builder.position_at_end(done)
        for r, values in zip(rows, new):
            for h, v in zip(halves, values):
                target = _address(builder, c, (r, ldc), (h, one))
                builder.store(v, builder.inttoptr(target, vec.as_pointer()), align=4)
        return context.get_dummy_value()

    (_tile1, _tile2, _tile3, _tile4, _tile5, _tile6, _tile7, _tile8, _tile9, _tile10, _tile11,
     _tile12, _tile13, _tile) = [_make_tile(rows) for rows in range(1, ROWS + 1)]

    @_intrinsic
    def _load(typingctx, address):
        """The float32 at int64 ``address``."""
        def codegen(context, builder, signature, args):
            return builder.load(builder.inttoptr(args[0], _ir.FloatType().as_pointer()),
                                align=4)

        return _types.float32(_types.int64), codegen

    @_intrinsic
    def _store(typingctx, address, value):
        """Write float32 ``value`` at int64 ``address``."""
        def codegen(context, builder, signature, args):
            builder.store(args[1], builder.inttoptr(args[0], _ir.FloatType().as_pointer()),
                          align=4)
            return context.get_dummy_value()

        return _types.void(_types.int64, _types.float32), codegen
else:
    def _tile(*args):  # never called without Numba (usable() is False)
        raise RuntimeError("fundl: the GEMM micro-kernel needs Numba")

    _load = _store = _tile1 = _tile2 = _tile3 = _tile4 = _tile5 = _tile6 = _tile7 = _tile
    _tile8 = _tile9 = _tile10 = _tile11 = _tile12 = _tile13 = _tile


@jit
def _block(a, sai, sak, b, ldb, c, ldc, k, rows, acc):
    """One block of ``rows`` (1 to 14) rows x 32 columns through the kernel for that many
    (``acc``: added to C)."""
    if rows == 14:
        _tile(a, sai, sak, b, ldb, c, ldc, k, acc)
    elif rows == 13:
        _tile13(a, sai, sak, b, ldb, c, ldc, k, acc)
    elif rows == 12:
        _tile12(a, sai, sak, b, ldb, c, ldc, k, acc)
    elif rows == 11:
        _tile11(a, sai, sak, b, ldb, c, ldc, k, acc)
    elif rows == 10:
        _tile10(a, sai, sak, b, ldb, c, ldc, k, acc)
    elif rows == 9:
        _tile9(a, sai, sak, b, ldb, c, ldc, k, acc)
    elif rows == 8:
        _tile8(a, sai, sak, b, ldb, c, ldc, k, acc)
    elif rows == 7:
        _tile7(a, sai, sak, b, ldb, c, ldc, k, acc)
    elif rows == 6:
        _tile6(a, sai, sak, b, ldb, c, ldc, k, acc)
    elif rows == 5:
        _tile5(a, sai, sak, b, ldb, c, ldc, k, acc)
    elif rows == 4:
        _tile4(a, sai, sak, b, ldb, c, ldc, k, acc)
    elif rows == 3:
        _tile3(a, sai, sak, b, ldb, c, ldc, k, acc)
    elif rows == 2:
        _tile2(a, sai, sak, b, ldb, c, ldc, k, acc)
    else:
        _tile1(a, sai, sak, b, ldb, c, ldc, k, acc)


@jit
def _zeros(c, ldc, m, n):
    """C (m, n) = 0 (a product over an empty inner dimension)."""
    for i in range(m):
        for j in range(n):
            _store(c + 4 * (i * ldc + j), numpy.float32(0.0))


@jit
def _columns(b, ldb, j, n, k, edge_b):
    """Where the micro-kernel reads B's columns ``j:j + 32`` and the distance between its rows:
    B itself, or for the last columns (fewer than 32) their zero-padded copy in ``edge_b``."""
    cols = min(COLS, n - j)
    if cols == COLS:
        return b + 4 * j, ldb
    for kk in range(k):
        for jj in range(cols):
            edge_b[kk * COLS + jj] = _load(b + 4 * (kk * ldb + j + jj))
    return edge_b.ctypes.data, COLS


@jit
def _copy_out(scratch, c, ldc, i, j, valid, cols, accumulate):
    """C[i:i + valid, j:j + cols] = (or with ``accumulate`` +=) the scratch tile's first rows
    and columns (the last columns, fewer than 32)."""
    for r in range(valid):
        row = c + 4 * ((i + r) * ldc + j)
        for jj in range(cols):
            v = scratch[r * COLS + jj]
            _store(row + 4 * jj, _load(row + 4 * jj) + v if accumulate else v)


@jit
def gemm_numba(a, sai, sak, b, ldb, c, ldc, m, n, k):
    """``C (m, n) = A (m, k) @ B (k, n)`` over float32 at int64 addresses: ``A[i, kk]`` at
    ``a + 4 * (i * sai + kk * sak)``, B and C row-major with unit column stride and leading
    dimensions ``ldb``, ``ldc``. C is only written (beta 0). See :func:`_rows`."""
    _rows(a, sai, sak, sai, False, b, ldb, c, ldc, m, n, k, False)


@jit
def gemm_acc_numba(a, sai, sak, b, ldb, c, ldc, m, n, k):
    """``C += A @ B``, the arguments as :func:`gemm_numba` takes them (a weight gradient summed
    over blocks of a sequence's steps): each tile's sums start from C's values."""
    _rows(a, sai, sak, sai, False, b, ldb, c, ldc, m, n, k, True)


@jit
def _rows(a, sai, sak, sab, packed, b, ldb, c, ldc, m, n, k, accumulate):
    """:func:`gemm_numba`, :func:`gemm_acc_numba` (``accumulate``) and
    :func:`gemm_packed_numba` (``packed``).

    The rows go in blocks of near-equal size, at most 14 each (a 64-row half batch: 13, 13,
    13, 13, 12; 24 rows: 12 and 12, where 14 + 8 + a padded 4 took 24 % longer), each through
    the kernel for its number of rows; each block sweeps all the columns, 32 at a time. The
    block of A that starts at row ``i`` starts at ``a + 4 * i * sab``, its rows ``sai``
    apart (``sab = sai`` for A as it is). A ``packed`` A (:func:`pack_numba`'s panels) goes in
    blocks of exactly 14 rows, its panels' (the last block shorter). The last columns (fewer
    than 32) come from a zero-padded copy of B's, computed into a scratch tile and copied out
    (see the module docstring)."""
    if m <= 0 or n <= 0:
        return
    if k <= 0:
        if not accumulate:
            _zeros(c, ldc, m, n)
        return
    # B's last columns padded to COLS, and the scratch tile, only where there are such columns:
    # an allocation in every call, from both threads of a recurrent loop's region, costs
    tail = n % COLS
    edge_b = numpy.zeros(k * COLS if tail else 0, numpy.float32)
    scratch = numpy.empty(ROWS * COLS if tail else 0, numpy.float32)
    scratch_at = scratch.ctypes.data
    blocks = (m + ROWS - 1) // ROWS
    for j in range(0, n, COLS):
        cols = min(COLS, n - j)
        b_at, b_ld = _columns(b, ldb, j, n, k, edge_b)
        i = 0
        for q in range(blocks):  # m rows in blocks of at most 14 each
            rows = min(ROWS, m - i) if packed else (m * (q + 1)) // blocks - (m * q) // blocks
            if cols == COLS:
                _block(a + 4 * i * sab, sai, sak, b_at, b_ld, c + 4 * (i * ldc + j), ldc, k,
                       rows, accumulate)
            else:
                _block(a + 4 * i * sab, sai, sak, b_at, b_ld, scratch_at, COLS, k, rows, False)
                _copy_out(scratch, c, ldc, i, j, rows, cols, accumulate)
            i += rows


@jit
def pack_numba(a, sai, sak, m, k, panels):
    """Copy A (m, k) (``A[i, kk]`` at ``a + 4 * (i * sai + kk * sak)``) into ``panels``, a
    float32 array of :func:`panels_size` elements: one panel ``[kk][row]`` of :data:`ROWS`
    rows per block of A's rows, the last block zero-padded. Why: a product repeated with the
    same A (a recurrent layer's weights, at every step of a sequence) then reads A as one
    contiguous stream instead of rows far apart (or columns, where A is stored transposed)."""
    for i in range(0, m, ROWS):
        base = i * k
        valid = min(ROWS, m - i)
        for kk in range(k):
            at = base + kk * ROWS
            for r in range(valid):
                panels[at + r] = _load(a + 4 * ((i + r) * sai + kk * sak))
            for r in range(valid, ROWS):
                panels[at + r] = 0


@jit
def panels_size(m, k):
    """Elements of :func:`pack_numba`'s panels for an A of (m, k) (compiled: the recurrent
    loops size their panels with it too)."""
    return (m + ROWS - 1) // ROWS * ROWS * k


@jit
def gemm_packed_numba(panels, k_all, k0, b, ldb, c, ldc, m, n, k):
    """``C (m, n) = A[:, k0:k0 + k] @ B (k, n)`` for an A packed by :func:`pack_numba` with
    ``k_all`` columns (B and C as :func:`gemm_numba` takes them; C only written): the same
    tiles, each block's A read from its panel (``A[i + r, kk]`` at ``panels[i * k_all + kk *
    14 + r]`` for a block starting at row ``i``)."""
    _rows(panels.ctypes.data + 4 * k0 * ROWS, 1, ROWS, k_all, True, b, ldb, c, ldc, m, n, k,
          False)


def matmul(a, b, trans_a=False):
    """``a @ b`` (or ``a.T @ b`` with ``trans_a``) for C-contiguous float32 NumPy matrices
    through the micro-kernel (see the module docstring; :func:`usable` must be True).

    Args:
        a: (m, k), or (k, m) with ``trans_a``.
        b: (k, n).

    Returns:
        A new (m, n) float32 array.
    """
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, numpy.ndarray) or x.dtype != numpy.float32 or x.ndim != 2 or \
                not x.flags.c_contiguous:
            raise TypeError(f"gemm.matmul: {name} must be a C-contiguous float32 NumPy matrix, "
                            f"got {type(x).__name__} {getattr(x, 'dtype', '')} "
                            f"{getattr(x, 'shape', '')}; use numpy.ascontiguousarray(x, "
                            "numpy.float32).")
    m, k = a.shape[::-1] if trans_a else a.shape
    if b.shape[0] != k:
        raise ValueError(f"gemm.matmul: a{'.T' if trans_a else ''} is ({m}, {k}) but b is "
                         f"{b.shape}; the inner dimensions must agree.")
    n = b.shape[1]
    c = numpy.empty((m, n), numpy.float32)
    sai, sak = (1, m) if trans_a else (k, 1)
    gemm_numba(a.ctypes.data, sai, sak, b.ctypes.data, n, c.ctypes.data, n, m, n, k)
    return c
