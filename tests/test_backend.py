"""The back-end switch: devices, the CuPy/GPU checks and their error messages, dtype defaults.

Tests marked ``gpu`` need CuPy and an NVIDIA GPU and are skipped elsewhere.
"""
import sys
import types

import numpy as np
import pytest

import fundl as fl
from fundl import backend
from fundl.testing import assert_error


@pytest.fixture
def restore_device():
    device = backend.get_device()
    try:
        yield
    finally:
        backend._default_device = device


@pytest.fixture
def no_cupy_cached(monkeypatch):
    """Forget any imported CuPy so that _import_cupy runs again; restored afterwards."""
    monkeypatch.setattr(backend, "_cupy", None)


def test_default_device_is_cpu():
    assert fl.get_device() == "cpu"


def test_set_device_cpu(restore_device):
    fl.set_device("cpu")
    assert fl.get_device() == "cpu"
    assert isinstance(fl.zeros(2).data, np.ndarray)


def test_unknown_device_is_a_value_error(restore_device):
    assert_error(ValueError, fl.set_device, "tpu", contains=["'tpu'", "cpu", "gpu"])
    assert fl.get_device() == "cpu"


def test_gpu_without_cupy_says_cupy_is_missing(monkeypatch, no_cupy_cached, restore_device):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    e = assert_error(RuntimeError, fl.set_device, "gpu", contains=["CuPy", "not installed"])
    assert "pip install" in str(e)
    assert fl.get_device() == "cpu"
    assert not fl.gpu_available()


def _fake_cupy(available):
    cupy = types.ModuleType("cupy")
    cupy.cuda = types.SimpleNamespace(is_available=available)
    return cupy


def test_gpu_without_a_gpu_says_the_gpu_is_missing(monkeypatch, no_cupy_cached, restore_device):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(lambda: False))
    assert_error(RuntimeError, fl.set_device, "gpu",
                 contains=["CuPy is installed", "no usable NVIDIA GPU", "is_available"])
    assert fl.get_device() == "cpu"
    assert backend._cupy is None
    assert not fl.gpu_available()


def test_driver_failure_counts_as_no_gpu(monkeypatch, no_cupy_cached, restore_device):
    def broken():
        raise OSError("libcuda.so not found")

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(broken))
    assert_error(RuntimeError, fl.set_device, "gpu", contains=["no usable NVIDIA GPU"])
    assert backend._cupy is None


def test_device_module_and_array_module_on_cpu():
    assert backend.device_module("cpu") is np
    assert backend.get_array_module(np.ones(2)) is np
    assert backend.get_array_module(np.float32(1.0)) is np
    assert backend.device_of(np.ones(2)) == "cpu"
    assert_error(ValueError, backend.device_module, "tpu", contains=["tpu"])


def test_to_device_and_to_numpy_on_cpu():
    a = np.ones(3)
    assert backend.to_device(a, "cpu") is a
    assert backend.to_numpy(a) is a
    assert isinstance(backend.to_numpy([1.0, 2.0]), np.ndarray)


def test_default_dtype_round_trip():
    assert fl.get_default_dtype() == np.float32
    fl.set_default_dtype("float64")
    try:
        assert fl.get_default_dtype() == np.float64
        assert fl.randn(2).dtype == np.float64
    finally:
        fl.set_default_dtype("float32")
    assert fl.ones(1).dtype == np.float32


# -- real GPU ---------------------------------------------------------------------------------

gpu = pytest.mark.gpu
needs_gpu = pytest.mark.skipif(not fl.gpu_available(), reason="needs CuPy and an NVIDIA GPU")


@gpu
@needs_gpu
def test_gpu_tensor_round_trip():
    x = fl.tensor(np.arange(6.0).reshape(2, 3))
    g = x.to("gpu")
    assert g.device == "gpu" and g.dtype == np.float64
    np.testing.assert_array_equal(g.to("cpu").numpy(), x.numpy())
    np.testing.assert_array_equal(g.numpy(), x.numpy())


@gpu
@needs_gpu
def test_gpu_gradient_flows_back_to_cpu_leaf():
    x = fl.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    y = (x.to("gpu") * x.to("gpu")).sum()
    assert y.device == "gpu"
    y.backward()
    assert isinstance(x.grad, np.ndarray)
    np.testing.assert_allclose(x.grad, [2.0, 4.0, 6.0])


def _mixed_ops(x):
    """A scalar built from reduce and shape ops (x of shape (3, 4))."""
    return (fl.logsumexp(x, axis=1) + x.max(axis=1) + x.T.reshape(3, 4)[::2, 1:].sum()
            + fl.concatenate([x, x], axis=1).var(axis=1)).sum()


@gpu
@needs_gpu
def test_gpu_ops_match_cpu(restore_device):
    data = np.random.default_rng(0).standard_normal((3, 4))
    fl.set_device("gpu")
    x = fl.tensor(data, requires_grad=True)
    assert x.device == "gpu"
    y = _mixed_ops(x)
    y.backward()
    fl.set_device("cpu")
    xc = fl.tensor(data, requires_grad=True)
    yc = _mixed_ops(xc)
    yc.backward()
    np.testing.assert_allclose(y.item(), yc.item(), rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(x.grad), xc.grad, rtol=1e-12)


# -- the allocator policy set at import ------------------------------------------------------------
def test_tune_malloc_opt_out_and_other_platforms():
    assert backend._tune_malloc({"FUNDL_MALLOC": "system"}, "linux") is False
    assert backend._tune_malloc({}, "darwin") is False
    assert backend._tune_malloc({}, "win32") is False


_FAULTS_SCRIPT = """
import resource, sys
import numpy as np
import fundl
if sys.argv[1] == "tune":
    fundl.config.tune_process()
def step():  # a training step's pattern: a few MB-sized arrays alive at once, then freed
    arrays = [np.ones(1 << 21, np.float32) for _ in range(4)]  # 4 x 8 MB
    del arrays
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(fundl.backend.MALLOC_TUNED, faults)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
@pytest.mark.parametrize("setting, mode", [("", "tune"), ("system", "tune"), ("", "import")])
def test_freed_memory_is_reused_only_when_the_process_is_tuned(setting, mode):
    import os
    import subprocess

    env = dict(os.environ, FUNDL_MALLOC=setting)
    out = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT, mode], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    tuned, faults = out[0] == "True", int(out[1])
    if setting == "system" or mode == "import":  # vetoed, or never asked for: glibc's defaults
        assert not tuned
        assert faults > 20 * 1000  # glibc trims part of the freed 32 MB and faults it back per step
    elif tuned:  # glibc: the 8 MB come back from the heap, already mapped
        assert faults < 200


def test_tune_malloc_warns_on_an_unknown_setting():
    with pytest.warns(RuntimeWarning, match="FUNDL_MALLOC='off' is not a setting"):
        backend._tune_malloc({"FUNDL_MALLOC": "off"}, "darwin")
