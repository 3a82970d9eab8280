"""Every test starts with fresh automatic layer names (``dense``, not ``dense_57``), as Keras's
own tests do with ``clear_session()``: tests that read a layer's default name do not depend on
which tests ran before them.

The kernels compile in the foreground (``FUNDL_COMPILE=foreground``, unless the environment
says otherwise): by default a cold Numba cache makes fundl run the plain-NumPy references while
a background process compiles (fundl.kernels._jit), and the tests must test the compiled
kernels, deterministically. Set here, before fundl is imported, so that subprocesses the
tests start (the command line) inherit it."""
import os

import pytest

os.environ.setdefault("FUNDL_COMPILE", "foreground")


@pytest.fixture(autouse=True)
def _fresh_layer_names():
    from fundl.layers.base import reset_name_counters

    reset_name_counters()
    yield
