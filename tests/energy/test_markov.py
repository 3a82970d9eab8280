"""fundl.energy.MarkovChain against hand-computed chains."""
import numpy
import pytest

from fundl.energy import MarkovChain

WEATHER = [[0.9, 0.1], [0.5, 0.5]]


def test_stationary_by_hand():
    # pi = pi P: 0.1 pi0 = 0.5 pi1 -> pi = (5/6, 1/6)
    numpy.testing.assert_allclose(MarkovChain(WEATHER).stationary(), [5 / 6, 1 / 6])
    # doubly stochastic: uniform
    P = [[0.2, 0.3, 0.5], [0.5, 0.2, 0.3], [0.3, 0.5, 0.2]]
    numpy.testing.assert_allclose(MarkovChain(P).stationary(), [1 / 3] * 3)


def test_n_step_by_hand():
    chain = MarkovChain(WEATHER)
    numpy.testing.assert_allclose(chain.n_step(0), numpy.eye(2))
    numpy.testing.assert_allclose(chain.n_step(2), [[0.86, 0.14], [0.70, 0.30]])
    numpy.testing.assert_allclose(chain.n_step(200), [[5 / 6, 1 / 6]] * 2)


def test_sample_frequencies_and_labels():
    chain = MarkovChain(WEATHER, states=["sun", "rain"])
    path = chain.sample(20_000, "sun", random_state=0)
    assert path.shape == (20_001,) and path[0] == "sun"
    assert abs((path == "sun").mean() - 5 / 6) < 0.02
    # the empirical transition frequencies out of "rain" are P's second row
    after_rain = path[1:][path[:-1] == "rain"]
    assert abs((after_rain == "sun").mean() - 0.5) < 0.03
    # a deterministic cycle
    cycle = MarkovChain([[0, 1, 0], [0, 0, 1], [1, 0, 0]])
    numpy.testing.assert_array_equal(cycle.sample(5, 1, random_state=0), [1, 2, 0, 1, 2, 0])


def test_gibbs_sampling_is_a_markov_chain_with_boltzmann_stationary_distribution():
    from fundl.energy import BoltzmannMachine

    X = numpy.array([[1, 0, 1], [0, 1, 0]] * 5)
    bm = BoltzmannMachine(3, 1, n_iter=5, random_state=0).fit(X)
    chain = MarkovChain(bm.transition_matrix())
    numpy.testing.assert_allclose(chain.stationary(), bm.state_probabilities(), atol=1e-10)


@pytest.mark.parametrize("P, match", [
    ([[0.5, 0.5]], "square"),
    ([[0.5, 0.6], [0.5, 0.5]], "row 0 sums to 1.1"),
    ([[1.5, -0.5], [0.5, 0.5]], "non-negative"),
    ([[numpy.nan, 1], [0.5, 0.5]], "finite"),
])
def test_bad_matrices(P, match):
    with pytest.raises(ValueError, match=match):
        MarkovChain(P)


def test_bad_start_and_states():
    with pytest.raises(ValueError, match="start state 'fog'"):
        MarkovChain(WEATHER, states=["sun", "rain"]).sample(3, "fog")
    with pytest.raises(ValueError, match="start state 2"):
        MarkovChain(WEATHER).sample(3, 2)
    with pytest.raises(ValueError, match="distinct labels"):
        MarkovChain(WEATHER, states=["a", "a"])
