"""fundl.runtime: the speed machinery's state in one object, reset by tests."""
import os
import subprocess
import sys

import numpy as np

import fundl as fl
from fundl import backend, kernels, runtime
from fundl.kernels import blas
from fundl.kernels import recurrent as rkernels


def test_state_is_one_object_holding_the_machinerys_state():
    rt = runtime.state()
    assert runtime.state() is rt
    v = backend.ones_vector(7, np.float32)
    assert rt.ones[("numpy", 7, np.dtype(np.float32).str)] is v
    blas.gemm_function(np.float32)
    assert np.dtype(np.float32) in rt.gemm
    old = rkernels.use_compiled(False)
    try:
        assert rt.compiled_recurrent is False
    finally:
        rkernels.use_compiled(old)


def test_reset_clears_caches_and_settings_and_restores_blas():
    rt = runtime.state()
    saved = (rt.parallel, rt.blas_saved, rt.blas_single_depth, rt.regions_ok, rt.gemm, rt.ones,
             rt.compiled_recurrent, rt.serial_medium_products)

    class FakeBLAS:
        num_threads = 1

        def set_num_threads(self, n):
            self.num_threads = n

    fake = FakeBLAS()
    try:
        rt.parallel, rt.blas_saved, rt.blas_single_depth = (2, [fake], None), [4], 1
        rt.compiled_recurrent = rt.serial_medium_products = False
        backend.ones_vector(3, np.float64)
        rt.reset()
        assert fake.num_threads == 4  # a map in progress had set BLAS to one thread
        assert rt.parallel is None and rt.blas_saved is None and rt.blas_single_depth == 0
        assert rt.ones == {} and rt.gemm == {} and rt.regions_ok is None
        assert rt.compiled_recurrent and rt.serial_medium_products is None
        assert rt.workspace.arrays == []
    finally:
        (rt.parallel, rt.blas_saved, rt.blas_single_depth, rt.regions_ok, rt.gemm, rt.ones,
         rt.compiled_recurrent, rt.serial_medium_products) = saved


def test_results_are_the_same_after_a_reset():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6, 6, 3)).astype(np.float32)
    k = rng.standard_normal((3, 3, 3, 5)).astype(np.float32)
    want = fl.conv2d(x, k, padding="same").numpy()
    runtime.state().reset()
    np.testing.assert_array_equal(fl.conv2d(x, k, padding="same").numpy(), want)


def test_workspace_recycles_only_unreferenced_buffers():
    ws = runtime.Workspace(1 << 20)
    a = ws.empty(np, (8, 8), np.float32)
    b = ws.empty(np, (8, 8), np.float32)
    assert a is not b  # a is still referenced here
    del b
    c = ws.empty(np, (8, 8), np.float32)
    assert c is not a and ws.nbytes == 2 * a.nbytes
    big = ws.empty(np, (1 << 20,), np.float32)  # larger than the pool: not kept
    assert all(x is not big for x in ws.arrays)
    ws.clear()
    assert ws.arrays == [] and ws.nbytes == 0


def test_workspace_buffers_are_aligned_and_a_callers_view_keeps_one_in_use():
    """Pooled buffers start on 64 bytes (AVX-512 kernels run faster there). A view a caller
    made of a buffer refers to the buffer's block, not to the buffer itself (NumPy's .base):
    it still keeps the buffer from being handed out again, or dropped."""
    ws = runtime.Workspace(1 << 20)
    a = ws.empty(np, (5, 3), np.float32)
    a_id = id(a)
    assert a.ctypes.data % runtime.ALIGNMENT == 0 and a.flags.c_contiguous and a.flags.writeable
    view = a.reshape(-1)[2:]
    del a
    b = ws.empty(np, (5, 3), np.float32)
    assert id(b) != a_id and not np.shares_memory(b, view)
    ws._make_room(ws.max_bytes)  # no room for anything: only free buffers may go
    assert any(np.shares_memory(x, view) for x in ws.arrays)
    del b, view
    assert id(ws.empty(np, (5, 3), np.float32)) == a_id  # free again: recycled
    for shape, dtype in (((7,), np.float64), ((3, 0), np.float32), (4, np.int8)):
        c = runtime.aligned_empty(shape, dtype)
        assert c.dtype == dtype and c.flags.c_contiguous and (c.size == 0 or
                                                              c.ctypes.data % 64 == 0)
        assert c.shape == ((shape,) if isinstance(shape, int) else shape)


def test_matmuls_choice_does_not_depend_on_what_ran_before():
    """In a fresh process: the choice for a medium product is the same before and after a
    convolution ran a parallel region, set explicitly or "auto" (the default), which follows
    only the model running now (model_products)."""
    code = ("import numpy as np, fundl as fl; from fundl import kernels, runtime; "
            "rt = runtime.state(); auto = [kernels.serial_product(64, 400, 120)]; "
            "rt.serial_medium_products = True; fixed = [kernels.serial_product(64, 400, 120)]; "
            "fl.conv2d(np.ones((4, 8, 8, 3), np.float32), np.ones((3, 3, 3, 4), np.float32)); "
            "fixed.append(kernels.serial_product(64, 400, 120)); "
            "rt.serial_medium_products = None; auto.append(kernels.serial_product(64, 400, 120)); "
            "cm = runtime.model_products(True); cm.__enter__(); "
            "inside = kernels.serial_product(64, 400, 120); cm.__exit__(None, None, None); "
            "auto.append(kernels.serial_product(64, 400, 120)); "
            "print(fixed[0] == fixed[1] == (kernels.threads() > 1), auto == [False] * 3, "
            "inside == kernels.regions())")
    env = dict(os.environ, FUNDL_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.stdout.split() == ["True", "True", "True"], out.stderr
    assert not kernels.serial_product(8, 8, 8)


def test_a_model_decides_by_its_own_layers(monkeypatch):
    """fit/predict run with the rule of the model's layers: a CNN keeps medium products on
    one thread, an MLP keeps BLAS's threads, whatever ran before."""
    import fundl as fl
    from fundl.kernels import fused
    from fundl.layers import Conv2D, Dense, Flatten

    # Dense's float32 products may take the AVX-512 small kernels (fundl.kernels.fused),
    # which never ask the rule: make them take kernels.matmul, which does
    monkeypatch.setattr(fused, "DENSE_SMALL_GEMMS", False)

    seen = []
    real = kernels.serial_product

    def spy(m, k, n):
        seen.append(getattr(runtime.state().local, "model_regions", None))
        return real(m, k, n)

    cnn = fl.Sequential([fl.Input(shape=(6, 6, 1)), Conv2D(2, 3), Flatten(), Dense(2)])
    mlp = fl.Sequential([fl.Input(shape=(4,)), Dense(3), Dense(2)])
    assert cnn._uses_parallel_regions() and not mlp._uses_parallel_regions()
    kernels.serial_product = spy
    try:
        cnn.predict(np.ones((2, 6, 6, 1), "float32"), verbose=0)
        cnn_flags, seen[:] = set(seen), []
        mlp.predict(np.ones((2, 4), "float32"), verbose=0)
        mlp_flags = set(seen)
    finally:
        kernels.serial_product = real
    assert cnn_flags == {True} and mlp_flags == {False}
    assert getattr(runtime.state().local, "model_regions", None) is None   # restored


def test_workspace_keys_buffers_by_shape_and_dtype():
    ws = runtime.Workspace(1 << 20)
    a = ws.empty(np, (4, 3), np.float32)
    a_id = id(a)
    del a
    assert id(ws.empty(np, (4, 3), np.float64)) != a_id  # another dtype: another buffer
    assert id(ws.empty(np, (3, 4), np.float32)) != a_id  # another shape too
    b = ws.empty(np, [4, 3], np.dtype("float32"))  # a list and a dtype object: the same kind
    assert id(b) == a_id and b.shape == (4, 3) and b.dtype == np.float32
    assert id(ws.empty(np, 12, np.float32)) != a_id and ws.empty(np, 12, "f4").shape == (12,)


def test_workspace_drops_the_least_recently_used_free_buffers_first():
    ws = runtime.Workspace(3 * 4096)
    first = [ws.empty(np, (1024,), np.float32), ws.empty(np, (2, 512), np.float32),
             ws.empty(np, (4, 256), np.float32)]
    ids = [id(a) for a in first]
    del first
    ws.empty(np, (2, 512), np.float32)  # used again: now the most recent kind
    ws.empty(np, (4, 256), np.float32)
    new = ws.empty(np, (8, 128), np.float32)  # no room: the (1024,) buffer goes
    pooled = [id(a) for a in ws.arrays]
    assert ids[0] not in pooled and ids[1] in pooled and ids[2] in pooled and id(new) in pooled
    assert ws.nbytes == 3 * 4096
    del new
    held = ws.empty(np, (3 * 1024,), np.float32)  # fits only if every free one goes
    assert [id(a) for a in ws.arrays] == [id(held)] and ws.nbytes == 3 * 4096


def test_workspace_never_drops_nor_hands_out_a_buffer_in_use():
    ws = runtime.Workspace(2 * 4096)
    a = ws.empty(np, (1024,), np.float32)
    b = ws.empty(np, (1024,), np.float32)
    c = ws.empty(np, (1024,), np.float32)  # the pool is full of buffers in use: c is unpooled
    assert len({id(a), id(b), id(c)}) == 3 and ws.nbytes == 2 * 4096
    view = a[:10]  # a view keeps its base in use
    del a
    d = ws.empty(np, (1024,), np.float32)
    assert not np.shares_memory(d, view)
    assert any(np.shares_memory(x, view) for x in ws.arrays)


def test_workspace_hands_a_buffer_to_one_thread_at_a_time():
    import threading

    ws = runtime.Workspace(1 << 22)
    errors = []

    def work(k):
        for _ in range(300):
            a = ws.empty(np, (64,), np.int64)
            a[:] = k
            if (a != k).any():  # another thread got the same buffer meanwhile
                errors.append(k)
            del a

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(ws.arrays) <= 4
