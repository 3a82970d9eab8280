"""The GPU comparisons of the op and layer harnesses, run on the CPU against the CPU.

On a machine with a GPU ``check_op``/``check_layer`` compare every op's and layer's GPU run with
its CPU run; elsewhere that code would never run in CI. With ``device="cpu"`` the same
comparison runs twice on the CPU: the plumbing (inputs, backward directions, weight gradients,
layers shared through kwargs) is exercised here, and a function that does not compute the same
thing twice is caught.
"""
import numpy as np
import pytest

import fundl as fl
from fundl.layers import LSTM, BatchNormalization, Conv2D, Dense, Dropout
from fundl.testing import compare_with_gpu
from fundl.testing.layer_case import compare_layer_with_gpu


@pytest.mark.parametrize("fn, shapes", [(fl.tanh, [(3, 4)]), (fl.matmul, [(2, 3), (3, 5)]),
                                        (lambda x: fl.softmax(x).sum(axis=0), [(4, 6)])])
def test_op_comparison_runs(fn, shapes):
    rng = np.random.default_rng(0)
    compare_with_gpu(fn, [rng.standard_normal(s) for s in shapes], device="cpu")


def test_op_comparison_fails_on_a_difference():
    calls = []

    def drifting(x):  # not the same function twice
        calls.append(1)
        return x * float(len(calls))

    with pytest.raises(AssertionError, match="differs between cpu and cpu"):
        compare_with_gpu(drifting, [np.ones((2, 2))], device="cpu")


@pytest.mark.parametrize("cls, kwargs, shape", [
    (Dense, {"units": 3}, (2, 4)),
    (Conv2D, {"filters": 2, "kernel_size": 3, "padding": "same"}, (2, 5, 5, 3)),
    (BatchNormalization, {}, (4, 3)),          # training mode: batch statistics, moving averages
    (LSTM, {"units": 3, "return_sequences": True}, (2, 4, 3)),
])
def test_layer_comparison_runs(cls, kwargs, shape):
    compare_layer_with_gpu(cls, kwargs, input_shape=shape, device="cpu")


def test_layer_comparison_in_inference_for_random_layers():
    compare_layer_with_gpu(Dropout, {"rate": 0.5}, input_shape=(3, 4), training_modes=(False,),
                           device="cpu")
