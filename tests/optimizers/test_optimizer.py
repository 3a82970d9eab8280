"""The Optimizer base: clipping, weight decay, learning rate, state, config, lookup, errors."""
import json
import warnings

import numpy as np
import pytest

import fundl as fl
import fundl.optimizers as optim
from fundl.optimizers import schedules
from fundl.testing import assert_error

# Non-default options so every slot kind exists.
MAKERS = {
    "SGD": lambda: optim.SGD(0.05, momentum=0.9, nesterov=True),
    "Adagrad": lambda: optim.Adagrad(0.1, initial_accumulator_value=0.2),
    "Adadelta": lambda: optim.Adadelta(1.0, rho=0.9),
    "RMSprop": lambda: optim.RMSprop(0.01, momentum=0.5, centered=True),
    "Adam": lambda: optim.Adam(0.01, amsgrad=True, clipnorm=1.0),
    "AdamW": lambda: optim.AdamW(schedules.CosineDecay(0.01, 10), weight_decay=0.01),
}


def _weights(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [fl.Tensor(rng.standard_normal(s).astype(dtype), name=n)
            for s, n in (((3, 4), "kernel"), ((4,), "bias"))]


def _grads(seed, dtype=np.float64, scale=1.0):
    rng = np.random.default_rng(seed)
    return [(scale * rng.standard_normal(s)).astype(dtype) for s in ((3, 4), (4,))]


# -- clipping and weight decay ------------------------------------------------------------
def test_clipnorm_clips_each_gradient_to_its_norm():
    ws = _weights()
    before = [w.numpy().copy() for w in ws]
    gs = [np.full((3, 4), 2.0), np.full(4, 0.1)]          # norms 6.93 and 0.2
    optim.SGD(1.0, clipnorm=1.0).apply(gs, ws)
    expected = [gs[0] / np.linalg.norm(gs[0]), gs[1]]     # only the large one is scaled
    for b, w, g in zip(before, ws, expected):
        np.testing.assert_allclose(w.numpy(), b - g, rtol=1e-12)


def test_global_clipnorm_scales_all_gradients_together():
    ws = _weights()
    before = [w.numpy().copy() for w in ws]
    gs = _grads(1, scale=3.0)
    total = np.sqrt(sum(np.sum(g * g) for g in gs))
    optim.SGD(1.0, global_clipnorm=2.0).apply(gs, ws)
    for b, w, g in zip(before, ws, gs):
        np.testing.assert_allclose(w.numpy(), b - g * 2.0 / total, rtol=1e-12)


def test_global_clipnorm_leaves_small_gradients_alone():
    ws = _weights()
    before = [w.numpy().copy() for w in ws]
    gs = _grads(1, scale=1e-3)
    optim.SGD(1.0, global_clipnorm=2.0).apply(gs, ws)
    for b, w, g in zip(before, ws, gs):
        np.testing.assert_allclose(w.numpy(), b - g, rtol=1e-12)


def test_clipvalue_clips_elements():
    ws = _weights()
    before = [w.numpy().copy() for w in ws]
    gs = _grads(2, scale=2.0)
    optim.SGD(1.0, clipvalue=0.5).apply(gs, ws)
    for b, w, g in zip(before, ws, gs):
        np.testing.assert_allclose(w.numpy(), b - np.clip(g, -0.5, 0.5), rtol=1e-12)


def test_clipping_does_not_modify_the_callers_gradients():
    gs = _grads(3, scale=5.0)
    copies = [g.copy() for g in gs]
    for opt in (optim.Adam(clipnorm=1.0), optim.RMSprop(global_clipnorm=1.0),
                optim.SGD(clipvalue=0.1, momentum=0.9)):
        opt.apply(gs, _weights())
    for g, c in zip(gs, copies):
        np.testing.assert_array_equal(g, c)


def test_only_one_clip_argument_allowed():
    assert_error(ValueError, optim.SGD, clipnorm=1.0, clipvalue=1.0,
                 contains=["SGD", "clipnorm", "clipvalue"])


def test_weight_decay_is_decoupled_and_applied_before_the_step():
    ws = _weights()
    w0 = [w.numpy().copy() for w in ws]
    gs = _grads(4)
    optim.SGD(0.1, weight_decay=0.5).apply(gs, ws)
    for a, w, g in zip(w0, ws, gs):
        np.testing.assert_allclose(w.numpy(), (a - a * 0.5 * 0.1) - 0.1 * g, rtol=1e-12)


def test_exclude_from_weight_decay_by_name():
    ws = _weights()
    w0 = [w.numpy().copy() for w in ws]
    gs = _grads(5)
    opt = optim.SGD(0.1, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_names=["bias"])
    opt.apply(gs, ws)
    np.testing.assert_allclose(ws[0].numpy(), w0[0] * 0.95 - 0.1 * gs[0], rtol=1e-12)
    np.testing.assert_allclose(ws[1].numpy(), w0[1] - 0.1 * gs[1], rtol=1e-12)


# -- learning rate ------------------------------------------------------------------------
def test_learning_rate_setter_changes_the_next_step():
    opt = optim.SGD(0.1)
    opt.learning_rate = 0.5 * opt.learning_rate            # what ReduceLROnPlateau does
    assert opt.learning_rate == 0.05
    w = fl.Tensor(np.zeros(2))
    opt.apply([np.ones(2)], [w])
    np.testing.assert_allclose(w.numpy(), [-0.05, -0.05])


def test_learning_rate_of_a_schedule_cannot_be_set_to_a_float():
    opt = optim.SGD(schedules.ExponentialDecay(0.1, 10, 0.5))
    assert_error(TypeError, setattr, opt, "learning_rate", 0.01,
                 contains=["SGD", "ExponentialDecay", "schedule"])


def test_learning_rate_must_be_a_number_or_schedule():
    assert_error(TypeError, optim.Adam, learning_rate="fast",
                 contains=["Adam", "learning_rate", "'fast'"])


# -- in-place updates and inputs ------------------------------------------------------------
def test_update_writes_into_the_weights_array():
    flat = np.zeros(16)
    ws = [fl.Tensor(flat[:12].reshape(3, 4)), fl.Tensor(flat[12:])]
    datas = [w.data for w in ws]
    optim.Adam(0.1).apply([np.ones((3, 4)), np.ones(4)], ws)
    assert all(w.data is d for w, d in zip(ws, datas))
    np.testing.assert_allclose(flat, -0.1, rtol=1e-5)      # the first Adam step is ~lr * sign(g)


def test_tensor_gradients_equal_array_gradients():
    gs = _grads(6)
    a, b = _weights(), _weights()
    optim.RMSprop(0.01).apply(gs, a)
    optim.RMSprop(0.01).apply([fl.Tensor(g) for g in gs], b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_float64_gradients_are_cast_to_float32_weights():
    ws = _weights(dtype=np.float32)
    optim.Adam(0.01).apply(_grads(7), ws)
    assert all(w.dtype == np.float32 for w in ws)


def test_apply_gradients_returns_iterations_and_counts_steps():
    ws = _weights()
    opt = optim.Adam()
    assert opt.apply_gradients(zip(_grads(1), ws)) == 1
    assert opt.apply_gradients(zip(_grads(2), ws)) == 2
    assert opt.iterations == 2


def test_apply_without_weights_uses_the_built_ones():
    a, b = _weights(), _weights()
    opt_a, opt_b = optim.SGD(0.1, momentum=0.9), optim.SGD(0.1, momentum=0.9)
    opt_a.build(a)
    for seed in (1, 2):
        opt_a.apply(_grads(seed))
        opt_b.apply(_grads(seed), b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_none_gradient_is_skipped_with_a_warning():
    ws = _weights()
    bias_before = ws[1].numpy().copy()
    opt = optim.SGD(0.1)
    with pytest.warns(UserWarning, match="bias"):
        opt.apply([_grads(1)[0], None], ws)
    np.testing.assert_array_equal(ws[1].numpy(), bias_before)
    assert opt.iterations == 1


def test_none_warning_points_at_the_caller():
    ws = _weights()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        optim.SGD().apply_gradients([(None, ws[0]), (_grads(1)[1], ws[1])])
    assert caught and caught[0].filename == __file__


# -- errors -------------------------------------------------------------------------------
def test_gradient_shape_mismatch_names_optimizer_weight_and_shapes():
    ws = _weights()
    assert_error(ValueError, optim.Adam(name="opt1").apply, [np.ones((4, 3)), np.ones(4)], ws,
                 contains=["Adam", "opt1", "weight 0", "kernel", "(4, 3)", "(3, 4)"])


def test_mismatched_number_of_gradients_and_weights():
    assert_error(ValueError, optim.SGD().apply, [np.ones((3, 4))], _weights(),
                 contains=["SGD", "1 gradients", "2 weights"])


def test_all_gradients_none_is_an_error():
    assert_error(ValueError, optim.SGD().apply, [None, None], _weights(),
                 contains=["SGD", "no gradients"])


def test_weights_must_be_tensors():
    assert_error(TypeError, optim.SGD().apply, [np.ones(2)], [np.zeros(2)],
                 contains=["SGD", "fundl.Tensor", "ndarray"])


def test_weights_must_be_floating_point():
    assert_error(TypeError, optim.Adam().apply, [np.ones(2)], [fl.Tensor(np.arange(2))],
                 contains=["Adam", "floating-point", "int64"])


def test_repr_shows_the_arguments():
    assert repr(optim.SGD(0.1, momentum=0.9)) == (
        "SGD(name='SGD', learning_rate=0.1, momentum=0.9, nesterov=False)")


def test_apply_without_weights_before_build_is_an_error():
    assert_error(ValueError, optim.SGD().apply, [np.ones(2)], contains=["SGD", "build"])


# -- state ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_state_round_trip_gives_identical_next_steps(kind):
    a, opt_a = _weights(), MAKERS[kind]()
    for seed in (1, 2, 3):
        opt_a.apply(_grads(seed), a)
    state = opt_a.get_state()
    b = [fl.Tensor(w.numpy().copy()) for w in a]
    opt_b = MAKERS[kind]()
    opt_b.set_state(state, b)
    assert opt_b.iterations == 3
    for seed in (4, 5):
        opt_a.apply(_grads(seed), a)
        opt_b.apply(_grads(seed), b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_state_keys_and_copies():
    ws, opt = _weights(), optim.Adam()
    opt.apply(_grads(1), ws)
    state = opt.get_state()
    assert sorted(state) == ["0.momentum", "0.velocity", "1.momentum", "1.velocity",
                             "iterations"]
    saved = state["0.momentum"].copy()
    opt.apply(_grads(2), ws)
    np.testing.assert_array_equal(state["0.momentum"], saved)
    assert int(state["iterations"]) == 1


def test_set_state_shape_mismatch_names_key_and_shapes_and_changes_nothing():
    ws, opt = _weights(), optim.Adam()
    opt.apply(_grads(1), ws)
    before = opt.get_state()
    bad = dict(before, **{"1.velocity": np.zeros(5)})
    assert_error(ValueError, opt.set_state, bad, ws, contains=["1.velocity", "(5,)", "(4,)"])
    after = opt.get_state()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])


def test_set_state_missing_and_unexpected_keys():
    ws = _weights()
    state = optim.SGD(momentum=0.9)
    state.build(ws)
    assert_error(ValueError, optim.Adam().set_state, state.get_state(), ws,
                 contains=["0.velocity", "missing", "unexpected"])


# -- config and lookup ----------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_get_config_json_round_trip(kind):
    opt = MAKERS[kind]()
    config = json.loads(json.dumps(opt.get_config()))
    back = type(opt).from_config(config)
    assert back.get_config() == opt.get_config()


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_serialize_deserialize(kind):
    opt = MAKERS[kind]()
    back = optim.deserialize(json.loads(json.dumps(optim.serialize(opt))))
    assert type(back) is type(opt)
    assert back.get_config() == opt.get_config()


def test_schedule_serialises_inside_the_config():
    config = optim.SGD(schedules.PiecewiseConstantDecay([2], [0.1, 0.01])).get_config()
    assert config["learning_rate"] == {"class_name": "PiecewiseConstantDecay",
                                       "config": {"boundaries": [2], "values": [0.1, 0.01],
                                                  "name": "PiecewiseConstant"}}


def test_config_keeps_the_current_learning_rate():
    opt = optim.RMSprop(0.01)
    opt.learning_rate = 0.002
    assert optim.RMSprop.from_config(opt.get_config()).learning_rate == 0.002


def test_from_config_accepts_keras_only_options_when_off():
    config = dict(optim.Adam().get_config(), use_ema=False, ema_momentum=0.99,
                  ema_overwrite_frequency=None, loss_scale_factor=None,
                  gradient_accumulation_steps=None)
    assert optim.Adam.from_config(config).get_config() == optim.Adam().get_config()
    assert_error(ValueError, optim.Adam.from_config, dict(config, use_ema=True),
                 contains=["use_ema"])


@pytest.mark.parametrize("name,cls,lr", [
    ("sgd", optim.SGD, 0.01), ("adam", optim.Adam, 0.001), ("rmsprop", optim.RMSprop, 0.001),
    ("adagrad", optim.Adagrad, 0.001), ("adadelta", optim.Adadelta, 0.001),
    ("adamw", optim.AdamW, 0.001), ("Adam", optim.Adam, 0.001), ("SGD", optim.SGD, 0.01),
])
def test_get_by_name_gives_keras_defaults(name, cls, lr):
    opt = optim.get(name)
    assert type(opt) is cls and opt.learning_rate == lr
    assert opt.get_config() == cls().get_config()


def test_get_returns_instances_and_dicts():
    opt = optim.Adam(0.1)
    assert optim.get(opt) is opt
    assert isinstance(optim.get({"class_name": "RMSprop", "config": {"rho": 0.5}}), optim.RMSprop)


def test_get_unknown_name():
    assert_error(ValueError, optim.get, "adamaxx", contains=["adamaxx", "sgd", "adam"])


def test_get_wrong_type():
    assert_error(TypeError, optim.get, 3, contains=["optimizers.get", "int"])


# -- GPU ------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not fl.gpu_available(), reason="needs CuPy and an NVIDIA GPU")
@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_gpu_matches_cpu(kind):
    import cupy

    cpu, opt_cpu = _weights(dtype=np.float32), MAKERS[kind]()
    gpu = [fl.Tensor(w.numpy(), device="gpu") for w in cpu]
    opt_gpu = MAKERS[kind]()
    for seed in (1, 2, 3):
        opt_cpu.apply(_grads(seed, np.float32), cpu)
        opt_gpu.apply([cupy.asarray(g) for g in _grads(seed, np.float32)], gpu)
    assert all(w.device == "gpu" for w in gpu)
    for x, y in zip(cpu, gpu):
        np.testing.assert_allclose(y.numpy(), x.numpy(), rtol=1e-5, atol=1e-6)
    state = opt_gpu.get_state()
    assert all(type(v) is np.ndarray for v in state.values())


@pytest.mark.gpu
@pytest.mark.skipif(not fl.gpu_available(), reason="needs CuPy and an NVIDIA GPU")
def test_slots_follow_weights_moved_to_gpu():
    import cupy

    cpu, opt_cpu = _weights(dtype=np.float32), optim.Adam(0.01)
    moved, opt_moved = _weights(dtype=np.float32), optim.Adam(0.01)
    opt_cpu.apply(_grads(1, np.float32), cpu)
    opt_moved.apply(_grads(1, np.float32), moved)
    for w in moved:                                      # what moving a model does to its weights
        w.data = cupy.asarray(w.data)
    opt_cpu.apply(_grads(2, np.float32), cpu)
    opt_moved.apply([cupy.asarray(g) for g in _grads(2, np.float32)], moved)
    assert all(type(s) is cupy.ndarray for w in moved for s in opt_moved.slots(w).values())
    for x, y in zip(cpu, moved):
        np.testing.assert_allclose(y.numpy(), x.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [lambda: fl.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
                                  lambda: fl.optimizers.Adam(0.1),
                                  lambda: fl.optimizers.RMSprop(0.1, centered=True),
                                  lambda: fl.optimizers.Adagrad(0.1),
                                  lambda: fl.optimizers.Adadelta(0.1)],
                         ids=["sgd", "adam", "rmsprop", "adagrad", "adadelta"])
def test_weights_of_any_size_share_one_scratch_buffer_without_mixing_updates(make):
    """Steps use one temporary buffer for all weights: the big and the small weight updated
    together give what each gives when updated by an optimizer of its own."""
    rng = np.random.default_rng(0)
    big, small = rng.standard_normal((6, 5)), rng.standard_normal(3)
    g_big, g_small = rng.standard_normal((6, 5)), rng.standard_normal(3)
    together = [fl.tensor(big.copy()), fl.tensor(small.copy())]
    opt = make()
    for _ in range(3):
        opt.apply([g_big, g_small], together)
    for value, grad, got in ((big, g_big, together[0]), (small, g_small, together[1])):
        alone = fl.tensor(value.copy())
        solo = make()
        for _ in range(3):
            solo.apply([grad], [alone])
        np.testing.assert_array_equal(got.numpy(), alone.numpy())
    assert len(opt._scratch_buffers) <= 2 and \
        all(b.size == big.size for b in opt._scratch_buffers.values())
