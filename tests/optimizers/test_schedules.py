"""Learning-rate schedules: values against closed forms, configs, errors, use in an optimizer."""
import json
import math

import numpy as np
import pytest

import fundl as fl
import fundl.optimizers as optim
from fundl.optimizers import schedules
from fundl.testing import assert_error

STEPS = [0, 1, 7, 10, 15, 20, 100]


@pytest.mark.parametrize("staircase", [False, True])
def test_exponential_decay_values(staircase):
    s = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=staircase)
    for step in STEPS:
        p = math.floor(step / 10) if staircase else step / 10
        assert s(step) == pytest.approx(0.1 * 0.5 ** p, rel=1e-12)


def test_piecewise_constant_values_at_and_around_boundaries():
    s = schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    got = [s(step) for step in (0, 10, 11, 20, 21, 1000)]
    assert got == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]
    assert all(isinstance(v, float) for v in got)


@pytest.mark.parametrize("alpha", [0.0, 0.2])
def test_cosine_decay_values(alpha):
    s = schedules.CosineDecay(0.1, decay_steps=20, alpha=alpha)
    for step in STEPS:
        c = 0.5 * (1 + math.cos(math.pi * min(step, 20) / 20))
        assert s(step) == pytest.approx(0.1 * ((1 - alpha) * c + alpha), rel=1e-12, abs=1e-15)


def test_cosine_decay_with_warmup_values():
    s = schedules.CosineDecay(0.0, decay_steps=20, alpha=0.1, warmup_target=0.2, warmup_steps=10)
    for step in STEPS:
        if step < 10:
            ref = 0.2 * step / 10
        else:
            c = 0.5 * (1 + math.cos(math.pi * min(step - 10, 20) / 20))
            ref = 0.2 * (0.9 * c + 0.1)
        assert s(step) == pytest.approx(ref, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("schedule", [
    schedules.ExponentialDecay(0.1, 10, 0.9, staircase=True),
    schedules.PiecewiseConstantDecay([5, 9], [0.3, 0.2, 0.1]),
    schedules.CosineDecay(0.01, 50, alpha=0.1, warmup_target=0.1, warmup_steps=5),
])
def test_schedule_serialize_round_trip(schedule):
    data = json.loads(json.dumps(schedules.serialize(schedule)))
    back = schedules.deserialize(data)
    assert type(back) is type(schedule)
    assert back.get_config() == schedule.get_config()
    assert [back(s) for s in STEPS] == [schedule(s) for s in STEPS]


def test_schedule_deserialize_unknown_name():
    assert_error(ValueError, schedules.deserialize, {"class_name": "Nope", "config": {}},
                 contains=["Nope", "ExponentialDecay"])


def test_schedule_rejects_nonpositive_decay_steps():
    assert_error(ValueError, schedules.ExponentialDecay, 0.1, 0, 0.5,
                 contains=["ExponentialDecay", "decay_steps", "0"])
    assert_error(ValueError, schedules.CosineDecay, 0.1, -3, contains=["CosineDecay", "-3"])


def test_piecewise_rejects_wrong_lengths():
    assert_error(ValueError, schedules.PiecewiseConstantDecay, [1, 2], [0.1, 0.2],
                 contains=["PiecewiseConstantDecay", "2 boundaries", "2 values"])


def test_piecewise_rejects_unsorted_boundaries():
    assert_error(ValueError, schedules.PiecewiseConstantDecay, [5, 2], [0.1, 0.2, 0.3],
                 contains=["strictly increasing", "[5, 2]"])


def test_optimizer_evaluates_schedule_at_iterations():
    s = schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    opt = optim.SGD(learning_rate=s)
    w = fl.Tensor(np.zeros(3))
    lrs = []
    for _ in range(3):
        lrs.append(opt.learning_rate)
        opt.apply([np.ones(3)], [w])
    assert lrs == [0.1, 0.05, 0.025]
    np.testing.assert_allclose(w.numpy(), -(0.1 + 0.05 + 0.025) * np.ones(3), rtol=1e-12)
    assert opt.learning_rate == pytest.approx(0.0125)


def test_custom_schedule_subclass_works_in_optimizer():
    class Halving(schedules.LearningRateSchedule):
        def __call__(self, step):
            return 1.0 / 2 ** step

    opt = optim.SGD(learning_rate=Halving())
    w = fl.Tensor(np.zeros(1))
    opt.apply([np.ones(1)], [w])
    opt.apply([np.ones(1)], [w])
    np.testing.assert_allclose(w.numpy(), [-1.5])
