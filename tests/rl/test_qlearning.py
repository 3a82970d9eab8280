"""Tabular Q-learning: the update against hand-computed values, schedules, spaces, learning."""
import numpy as np
import pytest

import fundl as fl

gym = pytest.importorskip("gymnasium")


class Chain(gym.Env):
    """States 0-1-2-3 in a row; action 1 moves right, 0 stays; reaching 3 pays 1 and ends."""

    observation_space = gym.spaces.Discrete(4)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.s = 0
        return 0, {}

    def step(self, action):
        self.s = min(self.s + int(action), 3)
        done = self.s == 3
        return self.s, float(done), done, False, {}


def test_update_matches_hand_computed_values():
    agent = fl.rl.QLearning(3, 2, learning_rate=0.5, gamma=0.9, epsilon=0.0)
    agent.q_table_[1] = [2.0, 4.0]
    # Q(0,1) <- 0 + 0.5 * (1 + 0.9 * max(2, 4) - 0) = 0.5 * 4.6 = 2.3
    delta = agent.update(0, 1, 1.0, 1, terminated=False)
    assert delta == pytest.approx(4.6)
    assert agent.q_table_[0, 1] == pytest.approx(2.3)
    # again: 2.3 + 0.5 * (4.6 - 2.3) = 3.45
    agent.update(0, 1, 1.0, 1, terminated=False)
    assert agent.q_table_[0, 1] == pytest.approx(3.45)
    # terminal: no bootstrap. Q(1,0) <- 2 + 0.5 * (-1 - 2) = 0.5
    agent.update(1, 0, -1.0, 2, terminated=True)
    assert agent.q_table_[1, 0] == pytest.approx(0.5)
    assert agent.q_table_[2].tolist() == [0.0, 0.0]


def test_learn_on_a_chain_reaches_the_hand_computed_fixed_point():
    env = Chain()
    agent = fl.rl.QLearning(env.observation_space, env.action_space, learning_rate=0.5,
                            gamma=0.9, epsilon=0.3, random_state=0)
    returns = agent.learn(env, 300)
    assert returns.shape == (300,) and set(np.unique(returns)) == {1.0}
    # Q*(s, right) = gamma**(2 - s); Q*(s, stay) = gamma * Q*(s, right)
    right = np.array([0.81, 0.9, 1.0])
    np.testing.assert_allclose(agent.q_table_[:3, 1], right, atol=1e-3)
    np.testing.assert_allclose(agent.q_table_[:3, 0], 0.9 * right, atol=1e-2)
    assert [agent.act(s, greedy=True) for s in range(3)] == [1, 1, 1]


def test_epsilon_schedules():
    agent = fl.rl.QLearning(4, 2, epsilon=(1.0, 0.1, 10))
    assert agent._epsilon(0) == 1.0 and agent._epsilon(5) == pytest.approx(0.55)
    assert agent._epsilon(100) == pytest.approx(0.1)
    agent = fl.rl.QLearning(4, 2, epsilon=fl.rl.ExponentialSchedule(1.0, 0.05, 0.5))
    assert agent._epsilon(2) == 0.25 and agent._epsilon(10) == 0.05
    assert fl.rl.QLearning(4, 2, epsilon=0.2)._epsilon(1000) == 0.2
    with pytest.raises(ValueError, match="start, end, duration"):
        fl.rl.QLearning(4, 2, epsilon=(1.0, 0.1))


def test_spaces_and_bad_input():
    env = gym.make("FrozenLake-v1")
    agent = fl.rl.QLearning(env.observation_space, env.action_space)
    assert agent.q_table_.shape == (16, 4)
    with pytest.raises(TypeError, match="Discrete.*Box"):
        fl.rl.QLearning(gym.spaces.Box(-1, 1, (2,)), 2)
    with pytest.raises(TypeError, match="observation space must be a gymnasium Discrete"):
        fl.rl.QLearning(4, 2).learn(gym.make("CartPole-v1"), 1)
    with pytest.raises(ValueError, match="16 states"):
        fl.rl.QLearning(5, 4).learn(env, 1)
    with pytest.raises(ValueError, match="learning_rate"):
        fl.rl.QLearning(4, 2, learning_rate=0.0)
    with pytest.raises(ValueError, match=r"state must be an int in \[0, 4\)"):
        fl.rl.QLearning(4, 2).act(7)


def test_frozenlake_is_deterministic_given_the_seed():
    env = gym.make("FrozenLake-v1")
    a = fl.rl.QLearning(16, 4, epsilon=(1.0, 0.1, 200), random_state=3).learn(env, 300)
    b = fl.rl.QLearning(16, 4, epsilon=(1.0, 0.1, 200), random_state=3).learn(env, 300)
    np.testing.assert_array_equal(a, b)
