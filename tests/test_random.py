"""fundl.random: Keras 3's seed semantics, distributions, dropout and shuffle."""
import numpy as np
import pytest

import fundl as fl
from fundl import random as frandom
from fundl.testing import assert_error, gradcheck


def test_int_seed_is_stateless_and_none_follows_manual_seed():
    a = frandom.normal((3, 4), seed=5).numpy()
    b = frandom.normal((3, 4), seed=5).numpy()
    np.testing.assert_array_equal(a, b)
    fl.manual_seed(11)
    c = frandom.uniform((5,)).numpy()
    d = frandom.uniform((5,)).numpy()
    fl.manual_seed(11)
    np.testing.assert_array_equal(frandom.uniform((5,)).numpy(), c)
    assert not np.array_equal(c, d)


def test_seed_generator_advances_and_replays():
    g1, g2 = frandom.SeedGenerator(42), frandom.SeedGenerator(42)
    first = frandom.normal((4,), seed=g1).numpy()
    second = frandom.normal((4,), seed=g1).numpy()
    assert not np.array_equal(first, second) and g1.state == 2
    np.testing.assert_array_equal(frandom.normal((4,), seed=g2).numpy(), first)
    np.testing.assert_array_equal(frandom.normal((4,), seed=g2).numpy(), second)
    assert frandom.SeedGenerator.from_config(g1.get_config()).seed == 42
    fl.manual_seed(3)
    s1 = frandom.SeedGenerator().seed
    fl.manual_seed(3)
    assert frandom.SeedGenerator().seed == s1


def test_distributions_have_the_right_moments_dtypes_and_ranges():
    n = frandom.normal((20000,), mean=2.0, stddev=3.0, seed=0).numpy()
    assert n.dtype == np.float32 and abs(n.mean() - 2) < 0.1 and abs(n.std() - 3) < 0.1
    u = frandom.uniform((20000,), minval=-1.0, maxval=3.0, dtype="float64", seed=0).numpy()
    assert u.dtype == np.float64 and u.min() >= -1 and u.max() < 3 and abs(u.mean() - 1) < 0.05
    r = frandom.randint((20000,), 2, 5, seed=0).numpy()
    assert r.dtype == np.int32 and set(np.unique(r)) == {2, 3, 4}
    t = frandom.truncated_normal((20000,), mean=1.0, stddev=0.5, seed=0).numpy()
    assert t.min() >= 0.0 and t.max() <= 2.0
    # the std of a normal truncated at 2 sigma is 0.8796 sigma
    assert abs(t.std() - 0.8796 * 0.5) < 0.01


def test_categorical_follows_softmax_probabilities():
    logits = np.log(np.array([[0.2, 0.5, 0.3]]))
    s = frandom.categorical(logits, 30000, seed=0).numpy()
    assert s.shape == (1, 30000) and s.dtype == np.int32
    np.testing.assert_allclose(np.bincount(s[0], minlength=3) / 30000, [0.2, 0.5, 0.3],
                               atol=0.015)


def test_dropout_scales_keeps_rate_and_is_differentiable():
    x = fl.ones(10000, dtype="float64")
    y = frandom.dropout(x, rate=0.25, seed=1).numpy()
    assert set(np.unique(y)) == {0.0, 4.0 / 3.0}
    assert abs((y == 0).mean() - 0.25) < 0.02
    same = frandom.dropout(fl.ones(4, 3), rate=0.5, noise_shape=(4, 1), seed=2).numpy()
    assert (same == same[:, :1]).all()
    t = fl.tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    assert gradcheck(lambda a: frandom.dropout(a, 0.5, seed=3), [t])
    assert_error(ValueError, frandom.dropout, x, 1.0, contains=["dropout", "rate"])
    assert_error(ValueError, frandom.dropout, fl.ones(4, 3), 0.5, noise_shape=(2, 3),
                 contains=["noise_shape", "(2, 3)", "(4, 3)"])


def test_shuffle_permutes_along_an_axis():
    x = np.arange(12.0).reshape(3, 4)
    s = frandom.shuffle(fl.tensor(x), axis=1, seed=0).numpy()
    assert sorted(s[0].tolist()) == [0, 1, 2, 3]
    np.testing.assert_array_equal(np.sort(s, axis=1), x)
    cols = s[0].astype(int)
    np.testing.assert_array_equal(s, x[:, cols])


def test_bad_arguments():
    assert_error(TypeError, frandom.normal, (2,), seed=1.5, contains=["seed", "float"])
    assert_error(ValueError, frandom.uniform, (2,), 1.0, 1.0, contains=["minval", "maxval"])
    assert_error(TypeError, frandom.normal, (2,), dtype="int32", contains=["floating"])
    assert_error(TypeError, frandom.randint, (2,), 0, 3, dtype="float32", contains=["integer"])
    assert_error(ValueError, frandom.normal, (2, -1), contains=["negative"])
