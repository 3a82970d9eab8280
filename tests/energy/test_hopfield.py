"""fundl.energy.Hopfield: Hebbian storage, energy descent, fixed points, completion, errors."""
import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fundl.cluster import NotFittedError
from fundl.energy import Hopfield


def _patterns(p, n, seed=0):
    return numpy.random.default_rng(seed).choice([-1.0, 1.0], size=(p, n))


def test_hebbian_weights_by_hand():
    net = Hopfield(3).store([[1, -1, 1]])
    expected = numpy.array([[0, -1, 1], [-1, 0, -1], [1, -1, 0]]) / 3
    numpy.testing.assert_allclose(net.weights_, expected)
    assert net.energy([1, -1, 1]) == pytest.approx(-1.0)  # -1/2 * 6 off-diagonal terms of 1/3


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), load=st.integers(1, 30))
def test_energy_never_rises_in_async_recall(seed, load):
    n = 40
    net = Hopfield(n).store(_patterns(load, n, seed))
    start = numpy.random.default_rng(seed + 1).choice([-1.0, 1.0], size=n)
    energies = [net.energy(start)]
    for steps in range(1, 6):  # the same seed: each run extends the previous one by a sweep
        energies.append(net.energy(net.recall(start, max_steps=steps, random_state=seed)))
    assert all(b <= a + 1e-12 for a, b in zip(energies, energies[1:]))


def test_stored_patterns_are_fixed_points_at_low_load():
    P = _patterns(5, 200)
    net = Hopfield(200).store(P)
    for mode in ("async", "sync"):
        numpy.testing.assert_array_equal(net.recall(P, mode=mode, random_state=0), P)
    assert net.n_steps_ == 1


def test_pattern_completion_from_half_masked_probe():
    P = _patterns(4, 100, seed=3)
    net = Hopfield(100).store(P)
    probe = P.copy()
    probe[:, 50:] = numpy.random.default_rng(0).choice([-1.0, 1.0], size=(4, 50))
    numpy.testing.assert_array_equal(net.recall(probe, random_state=0), P)
    noisy = P[0].copy()
    noisy[:20] *= -1
    numpy.testing.assert_array_equal(net.recall(noisy, mode="sync"), P[0])


def test_sync_can_oscillate_and_stops_at_max_steps():
    # two units coupled negatively, both +1: a synchronous update flips both, forever
    net = Hopfield(2).store([[1, -1]])
    out = net.recall([1, 1], mode="sync", max_steps=7)
    assert net.n_steps_ == 7 and out.tolist() in ([1, 1], [-1, -1])
    assert net.recall([1, 1], mode="async", random_state=0).tolist() in ([1, -1], [-1, 1])


def test_errors():
    net = Hopfield(4)
    with pytest.raises(NotFittedError, match="Hopfield.*fit"):
        net.recall([1, 1, 1, 1])
    with pytest.raises(ValueError, match=r"only -1 and \+1.*2 \* x - 1"):
        net.store([[0, 1, 1, 0]])
    with pytest.raises(ValueError, match="only -1 and"):
        net.store([[0.5, 1, 1, -1]])
    with pytest.raises(ValueError, match=r"\(4,\)"):
        net.store([[1, 1, -1]])
    net.store([[1, -1, 1, -1]])
    with pytest.raises(ValueError, match="mode"):
        net.recall([1, 1, 1, 1], mode="parallel")
    with pytest.raises(ValueError, match="only -1"):
        net.energy([1, 0, 1, 1])
    with pytest.raises(ValueError, match="n_units"):
        Hopfield(0)
