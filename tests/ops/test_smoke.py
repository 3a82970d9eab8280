import numpy as np
import pytest

import fundl as fl
from fundl.testing import assert_error, check_op

torch = pytest.importorskip("torch")


def test_mul_broadcast():
    rng = np.random.default_rng(0)
    check_op(fl.mul, torch.mul, [rng.standard_normal((3, 4)), rng.standard_normal((4,))],
             reference=np.multiply)


def test_add_shape_error():
    assert_error(ValueError, fl.add, fl.ones(2, 3), fl.ones(4), contains=["Add", "(2, 3)", "(4,)"])
