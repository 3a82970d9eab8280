"""The background kernel compiler: ``python -m fundl._warmup``.

Started by :func:`fundl.kernels._jit.ready` when a kernel group is first needed and Numba's
disk cache lacks it. It reads lines ``"<group> <dtype char>"`` (``"conv f"``) on stdin, runs
that group's warm-up (:data:`WARMUPS`: small forward and backward passes through the same
layers and ops a model uses, so that every kernel compiles with the argument types a
training or inference step passes), which compiles the kernels into Numba's cache, writes
the group's stamp and answers ``"done <group> <char>"`` (or ``"failed <group> <char> <why>"``)
on stdout. It exits when its stdin closes (its parent exited) or after
:data:`IDLE_SECONDS` without a request.

It lives above the floors (DESIGN.md), like the command line: it drives the kernels
through layers, as a model does; :mod:`fundl.kernels._jit` only starts it by name, in a
process of its own, and never imports it.

Run by hand, ``python -m fundl._warmup conv pool`` compiles those groups (float32)
and exits: a way to fill the cache up front, e.g. in a container image.
"""
from __future__ import annotations

import select
import sys

import numpy

IDLE_SECONDS = 60.0
"""A worker with nothing to do for this long exits (a later group starts a new one)."""

_BATCH = 16  # samples: enough for two parts per region and activations above 256 KB


def _backward(y):
    """Sum ``y`` and run the backward pass (what a training step does after the forward)."""
    y.sum().backward()


def _tensor(shape, dtype, seed=0):
    import fundl as fl

    data = numpy.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return fl.tensor(data, requires_grad=True)


def _run_layers(layers, shape, dtype, batches=(_BATCH, 1), training=True):
    """Each layer forward (and backward when ``training``) on inputs of ``(batch,) + shape``
    for every batch size (one sample takes the kernels' serial paths)."""
    for batch in batches:
        for layer in layers:
            x = _tensor((batch,) + shape, dtype)
            y = layer(x, training=training) if training is not None else layer(x)
            if training:
                _backward(y)


def _conv(dtype):
    from fundl import layers as L

    _run_layers([L.Conv2D(6, 5, padding="same", activation="tanh", dtype=dtype),   # 1 channel
                 L.Conv2D(6, 5, activation="relu", dtype=dtype)], (28, 28, 1), dtype)
    _run_layers([L.Conv2D(16, 3, padding="same", activation="relu", dtype=dtype),  # implicit pad
                 L.Conv2D(8, 3, strides=2, padding="same", dtype=dtype),
                 L.Conv2D(16, 5, dtype=dtype)], (12, 12, 16), dtype)
    _run_layers([L.Conv1D(8, 3, padding="same", activation="relu", dtype=dtype)], (20, 4), dtype)
    # 3x3 "same", 16 wide, 8 channels: the im2col-free path (kernels.conv3x3) where it runs
    _run_layers([L.Conv2D(16, 3, padding="same", dtype=dtype)], (3, 16, 8), dtype)
    _run_layers([L.Conv2D(16, 3, padding="same", dtype=dtype)], (12, 12, 16), dtype,
                training=False)


def _pool(dtype):
    from fundl import layers as L

    for shape in ((24, 24, 6), (8, 8, 16)):
        _run_layers([L.MaxPooling2D(2), L.AveragePooling2D(2), L.MaxPooling2D(3, 2, "same"),
                     L.AveragePooling2D(3, 1, "same")], shape, dtype)
    _run_layers([L.MaxPooling1D(2), L.AveragePooling1D(2)], (20, 4), dtype)


def _activation(dtype):
    from fundl import layers as L
    from fundl.ops.activation import relu, sigmoid, tanh

    # above and below the parallel regions' threshold (256 KB), above the kernels' (4096)
    for shape in ((32, 32, 8), (8, 8, 16)):
        for kind in ("relu", "tanh", "sigmoid"):
            _run_layers([L.Conv2D(shape[-1], 1, activation=kind, dtype=dtype)], shape, dtype)
        x = _tensor((_BATCH,) + shape, dtype)
        _backward(relu(x) + tanh(x) + sigmoid(x))


def _norm(dtype):
    from fundl import layers as L

    for shape in ((8, 8, 16), (32,)):
        _run_layers([L.BatchNormalization(dtype=dtype)], shape, dtype)
        _run_layers([L.BatchNormalization(dtype=dtype)], shape, dtype, training=False)
    _run_layers([L.BatchNormalization(dtype=dtype)], (64, 64, 16), dtype, batches=(_BATCH,))


def _recurrent(dtype):
    from fundl import layers as L
    from fundl.autograd import no_grad

    if numpy.dtype(dtype) != numpy.float32:  # float64 runs the references (recurrent._pick)
        return
    for cell in (L.LSTM, L.GRU):
        _run_layers([cell(16, dtype=dtype), cell(16, return_sequences=True, dtype=dtype)],
                    (5, 4), dtype, batches=(64, 8))
        _run_layers([cell(16, dtype=dtype)], (5, 4), dtype, batches=(64, 8), training=False)
    with no_grad():  # the LSTM's inference loop (no graph recorded: ops.recurrent._infer)
        _run_layers([L.LSTM(16, dtype=dtype), L.LSTM(16, return_sequences=True, dtype=dtype)],
                    (5, 4), dtype, batches=(64,), training=False)


def _sparse(dtype):
    from fundl import kernels

    indptr = numpy.array([0, 2, 3], numpy.int64)
    indices = numpy.array([0, 1, 1], numpy.int64)
    kernels.spmm(indptr, indices, numpy.ones(3, dtype), numpy.ones((2, 4), dtype))


def _fused(dtype):
    from .kernels import fused

    w, g = numpy.zeros(8, dtype), numpy.ones(8, dtype)
    m, v = numpy.zeros(8, dtype), numpy.zeros(8, dtype)
    fused.sgd_update_numba(w, g, m, 0.1, 0.9, False)  # the argument types of SGD.update_step
    fused.adam_update_numba(w, g, m, v, v, 0.1, 0.9, 0.999, 1e-7, False)  # Adam.update_step
    fused.rmsprop_update_numba(w, g, m, v, v, 0.1, 0.9, 0.0, 1e-7, False)  # RMSprop's
    # the same on every thread, for large weights (fused.update)
    fused._sgd_parts(w, g, m, 0.1, 0.9, False, 2)
    fused._adam_parts(w, g, m, v, v, 0.1, 0.9, 0.999, 1e-7, False, 2)
    fused._rmsprop_parts(w, g, m, v, v, 0.1, 0.9, 0.0, 1e-7, False, 2)
    z = numpy.zeros((2, 4), dtype)  # the dense layer's bias + ReLU and its gradient
    fused.bias_relu_numba(z, z[0])
    fused.relu_grad_numba(z, z, z.copy())
    # the softmax cross-entropy, as ops.nn calls it
    fused.softmax_xent_numba(z, z, numpy.zeros(2, numpy.int64), True, w[:2], z.copy())
    fused.softmax_numba(z, z.copy())  # a classifier's activation="softmax" and its gradient
    fused.softmax_grad_numba(z, z, z.copy())
    fused._gather_rows_parts(z, numpy.zeros(1, numpy.int64), z[:1].copy())  # fit's batches
    if numpy.dtype(dtype) == numpy.float32:  # the dense layer's GEMM region (no product)
        no_kernels = numpy.zeros(3, numpy.int64)
        pads = (fused._PAD,) * 5
        no_tasks = numpy.zeros((0, 12), numpy.int64)
        fused.gemm_tasks_numba(no_kernels, no_tasks, pads, 0, 1, w, False)
        fused.dense_gemms_numba(no_kernels, no_tasks, pads, 1, w, False)


def _elementwise(dtype):
    from .kernels import elementwise as E

    prog = numpy.array([[E.LOAD, 0, 0, 0, 0], [E.MUL, 1, 0, 0, 2]], numpy.int64)
    x = numpy.ones(4, dtype)
    E.run_program_numba(prog, numpy.ones(1), x, x, x, x, numpy.zeros(4, numpy.int64), 4,
                        numpy.empty(4, dtype))  # graph mode's fused element-wise chains


WARMUPS = {"conv": _conv, "pool": _pool, "activation": _activation, "norm": _norm,
           "sparse": _sparse, "recurrent": _recurrent, "fused": _fused,
           "elementwise": _elementwise}
"""Per kernel group, the work that compiles its kernels (for one dtype)."""


def warm(group, char):
    """Compile ``group``'s kernels for dtype ``char`` into Numba's cache and stamp it."""
    from .kernels._jit import write_stamp

    WARMUPS[group](numpy.dtype(char))
    write_stamp(group, char)


def _requests():
    """Lines from stdin until it closes or stays silent for :data:`IDLE_SECONDS`."""
    while True:
        readable, _, _ = select.select([sys.stdin], [], [], IDLE_SECONDS)
        if not readable:
            return
        line = sys.stdin.readline()
        if not line:
            return
        yield line


def main(argv=None) -> int:
    """Serve requests from stdin, or compile the groups named in ``argv`` (float32) and exit."""
    import warnings

    argv = sys.argv[1:] if argv is None else argv
    warnings.simplefilter("ignore")  # nobody reads this process's warnings
    if argv:
        unknown = [g for g in argv if g not in WARMUPS]
        if unknown:
            print(f"fundl._warmup: unknown kernel group(s) {unknown}; choose from "
                  f"{sorted(WARMUPS)}.", file=sys.stderr)
            return 2
        for group in argv:
            warm(group, "f")
        return 0
    for line in _requests():
        parts = line.split()
        if len(parts) != 2:
            continue
        group, char = parts
        if group not in WARMUPS:  # a group without a warm-up: the parent compiles it itself
            _answer(f"failed {group} {char} no warm-up for kernel group {group!r} in "
                    f"fundl._warmup.WARMUPS")
            continue
        try:
            warm(group, char)
            answer = f"done {group} {char}"
        except Exception as e:  # noqa: BLE001 - the parent compiles in the foreground instead
            answer = f"failed {group} {char} {type(e).__name__}: {e}".replace("\n", " ")
        _answer(answer)
    return 0


def _answer(text):
    """Tell the parent; once it has exited (a short run), keep filling the cache for the
    next run: the groups it asked for are still in stdin's buffer."""
    try:
        print(text, flush=True)
    except OSError:  # BrokenPipeError: nobody reads any more
        import os

        sys.stdout = open(os.devnull, "w")


if __name__ == "__main__":
    sys.exit(main())
