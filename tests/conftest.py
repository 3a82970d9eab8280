"""Every test starts with fresh automatic layer names (``dense``, not ``dense_57``), as Keras's
own tests do with ``clear_session()``: tests that read a layer's default name do not depend on
which tests ran before them."""
import pytest


@pytest.fixture(autouse=True)
def _fresh_layer_names():
    from fundl.layers.base import reset_name_counters

    reset_name_counters()
    yield
