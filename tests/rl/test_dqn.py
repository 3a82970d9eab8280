"""DQN: targets and gradients against NumPy/PyTorch references, target sync, bad input,
determinism, save/load, and a short CartPole run."""
import numpy as np
import pytest

import fundl as fl

gym = pytest.importorskip("gymnasium")


@pytest.fixture(autouse=True)
def seeded():
    fl.manual_seed(0)


def make_agent(hidden=(8,), n_obs=4, n_actions=2, **kwargs):
    net = fl.zoo.mlp_q_network(n_obs, n_actions, hidden=hidden)
    kwargs.setdefault("random_state", 0)
    agent = fl.rl.DQN(net, n_actions, **kwargs)
    agent._setup((n_obs,), np.dtype("float32"))
    return agent


def batch(rng, b=16, n_obs=4, n_actions=2):
    return (rng.standard_normal((b, n_obs)).astype(np.float32),
            rng.integers(0, n_actions, b),
            rng.standard_normal(b).astype(np.float32),
            rng.standard_normal((b, n_obs)).astype(np.float32),
            (rng.random(b) < 0.3).astype(np.float32))


def numpy_mlp(weights, x):
    """The mlp_q_network forward in NumPy (float64), from [W1, b1, W2, b2, ...]."""
    h = x.astype(np.float64)
    for i in range(0, len(weights), 2):
        h = h @ weights[i] + weights[i + 1]
        if i + 2 < len(weights):
            h = np.maximum(h, 0)
    return h


@pytest.mark.parametrize("double", [True, False])
def test_targets_match_numpy(double):
    agent = make_agent(hidden=(16,), n_actions=3, gamma=0.9, double=double)
    # make the target network differ from the online one
    rng = np.random.default_rng(5)
    agent.target_network.set_weights([rng.standard_normal(w.shape).astype(np.float32)
                                      for w in agent.q_network.get_weights()])
    obs, act, rew, nxt, term = batch(np.random.default_rng(1), n_actions=3)
    y = agent.compute_targets(rew, nxt, term)
    q_online = numpy_mlp(agent.q_network.get_weights(), nxt)
    q_target = numpy_mlp(agent.target_network.get_weights(), nxt)
    if double:
        v = q_target[np.arange(16), q_online.argmax(axis=1)]
    else:
        v = q_target.max(axis=1)
    expected = rew + 0.9 * (1 - term) * v
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    if double:  # the two rules differ on this batch, so the test tells them apart
        assert not np.allclose(v, q_target.max(axis=1))


@pytest.mark.parametrize("loss,clip", [("huber", None), ("huber", 0.5), ("mse", None)])
def test_train_step_matches_pytorch(loss, clip):
    torch = pytest.importorskip("torch")
    agent = make_agent(hidden=(16,), n_actions=3, gamma=0.95, loss=loss, max_grad_norm=clip,
                       optimizer=fl.optimizers.SGD(learning_rate=0.1))
    weights = [w.astype(np.float64) for w in agent.q_network.get_weights()]
    tgt = [w.astype(np.float64) + 0.05 for w in weights]
    agent.target_network.set_weights([w.astype(np.float32) for w in tgt])
    obs, act, rew, nxt, term = batch(np.random.default_rng(2), n_actions=3)
    # targets scaled up so that some TD errors exceed 1 (the Huber loss's linear part)
    rew = rew * 3
    loss_value = agent.train_step(obs, act, rew, nxt, term)

    tw = [torch.tensor(w, requires_grad=True) for w in weights]

    def forward(ws, x):
        h = torch.tensor(x, dtype=torch.float64)
        for i in range(0, len(ws), 2):
            h = h @ ws[i] + ws[i + 1]
            if i + 2 < len(ws):
                h = torch.relu(h)
        return h

    with torch.no_grad():
        a_star = forward(tw, nxt).argmax(1, keepdim=True)
        v = forward([torch.tensor(w) for w in tgt], nxt).gather(1, a_star).squeeze(1)
        not_done = 1 - torch.tensor(term, dtype=torch.float64)
        y = torch.tensor(rew, dtype=torch.float64) + 0.95 * not_done * v
    q = forward(tw, obs).gather(1, torch.tensor(act).unsqueeze(1)).squeeze(1)
    ref = (torch.nn.functional.smooth_l1_loss(q, y) if loss == "huber"
           else torch.nn.functional.mse_loss(q, y))
    ref.backward()
    assert loss == "mse" or (q - y).abs().max() > 1  # both branches of the Huber loss used
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(tw, clip)
    assert loss_value == pytest.approx(ref.item(), rel=1e-4)
    for w_new, w_old, t in zip(agent.q_network.get_weights(), weights, tw):
        np.testing.assert_allclose(w_new, w_old - 0.1 * t.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_target_network_is_a_copy_synced_every_target_update_steps():
    env = gym.make("CartPole-v1")
    agent = fl.rl.DQN(fl.zoo.mlp_q_network(4, 2, hidden=(8,)), 2, learning_starts=10,
                      batch_size=8, target_update=7, random_state=0)
    checks = []

    def on_step(step, logs):
        same = all(np.array_equal(a, b) for a, b in zip(agent.q_network.get_weights(),
                                                        agent.target_network.get_weights()))
        checks.append((step, same))

    agent.learn(env, 40, callbacks=[fl.rl.LambdaCallback(on_step=on_step)])
    assert agent.target_network is not agent.q_network
    assert all(a is not b for a, b in zip(agent.q_network.weights, agent.target_network.weights))
    for step, same in checks:
        if step % 7 == 0:
            assert same, step          # just synced
        elif step > 10 and step % 7 != 0 and (step - 1) % 7 != 0 and step >= 14:
            assert not same, step      # trained since the last sync: they differ
    assert not any(w.requires_grad for w in agent.target_network.weights)


class ContinuousEnv(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (4,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, seed=None, options=None):
        return np.zeros(4, np.float32), {}

    def step(self, action):
        return np.zeros(4, np.float32), 0.0, True, False, {}


def test_bad_input():
    net = fl.zoo.mlp_q_network(4, 2, hidden=(8,))
    with pytest.raises(TypeError, match=r"action space is Box.*Discrete"):
        fl.rl.DQN(net, 2).learn(ContinuousEnv(), 10)
    # wrong observation shape for the network: both shapes named
    with pytest.raises(ValueError, match=r"expects inputs of shape \(6,\).*shape \(4,\)"):
        fl.rl.DQN(fl.zoo.mlp_q_network(6, 2), 2).learn(gym.make("CartPole-v1"), 10)
    # a network whose input shape is only known when called
    lazy = fl.models.Sequential([fl.layers.Dense(8), fl.layers.Dense(2)])
    lazy(np.zeros((1, 6), np.float32))
    with pytest.raises(ValueError, match=r"Q-network .*\(4,\)"):
        fl.rl.DQN(lazy, 2).learn(gym.make("CartPole-v1"), 10)
    with pytest.raises(ValueError, match=r"\(batch, 2\).*returned \(1, 3\)"):
        fl.rl.DQN(fl.zoo.mlp_q_network(4, 3), 2).learn(gym.make("CartPole-v1"), 10)
    with pytest.raises(ValueError, match="n_actions=3.*Discrete\\(2\\)"):
        fl.rl.DQN(fl.zoo.mlp_q_network(4, 3), 3).learn(gym.make("CartPole-v1"), 10)
    with pytest.raises(TypeError, match="fundl model"):
        fl.rl.DQN(lambda x: x, 2)
    with pytest.raises(ValueError, match="loss"):
        fl.rl.DQN(net, 2, loss="l1")
    with pytest.raises(ValueError, match="gamma"):
        fl.rl.DQN(net, 2, gamma=1.5)
    with pytest.raises(ValueError, match=r"DQN.act: expected one observation of shape \(4,\)"):
        agent = make_agent()
        agent.act(np.zeros((2, 4)))


def run(seed, steps=300):
    fl.manual_seed(seed)
    env = gym.make("CartPole-v1")
    agent = fl.rl.DQN(fl.zoo.mlp_q_network(4, 2, hidden=(16,)), env.action_space,
                      learning_starts=50, batch_size=16, train_freq=2, gradient_steps=2,
                      target_update=20, random_state=seed)
    agent.learn(env, steps)
    return agent


def test_deterministic_given_the_seeds():
    a, b = run(0), run(0)
    assert a.episode_returns_ == b.episode_returns_
    np.testing.assert_array_equal(a.losses_, b.losses_)
    for x, y in zip(a.q_network.get_weights(), b.q_network.get_weights()):
        np.testing.assert_array_equal(x, y)
    c = run(1)
    assert c.losses_ != a.losses_


def test_short_cartpole_run():
    env = gym.make("CartPole-v1")
    agent = fl.rl.DQN(fl.zoo.mlp_q_network(4, 2, hidden=(32,)), env.action_space,
                      learning_starts=100, batch_size=32, buffer_size=250,
                      exploration_fraction=0.5, exploration_final_eps=0.1, random_state=0)
    seen = []
    agent.learn(env, 400, callbacks=[fl.rl.LambdaCallback(
        on_step=lambda step, logs: seen.append((step, logs["epsilon"], "loss" in logs)))])
    assert agent.num_timesteps == 400
    assert len(agent.replay_buffer) == 250  # filled, then wrapped
    assert len(agent.losses_) == 301 and np.isfinite(agent.losses_).all()
    assert sum(agent.episode_lengths_) <= 400 and len(agent.episode_returns_) >= 5
    # ε: linear from 1 to 0.1 over the first 200 steps, then 0.1
    eps = {step: e for step, e, _ in seen}
    assert eps[1] == pytest.approx(1.0) and eps[101] == pytest.approx(0.55)
    assert eps[201] == pytest.approx(0.1) and eps[400] == pytest.approx(0.1)
    assert [t for _, _, t in seen].index(True) == 99  # training starts at learning_starts
    mean, std = agent.evaluate(env, episodes=3)
    assert 8 <= mean <= 500 and std >= 0


def test_save_and_load_round_trip(tmp_path):
    agent = run(0, steps=120)
    path = tmp_path / "agent.fundl"
    agent.save(path)
    loaded = fl.rl.DQN.load(path)
    obs = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.q_values(obs), agent.q_values(obs))
    np.testing.assert_array_equal(loaded.q_values(obs),
                                  loaded.target_network(obs).numpy())
    assert loaded.get_config() == agent.get_config()
    assert loaded.num_timesteps == 120
    state, state2 = agent.optimizer.get_state(), loaded.optimizer.get_state()
    assert state.keys() == state2.keys()
    for k in state:
        np.testing.assert_array_equal(state[k], state2[k])
    # continuing training works
    loaded.learn(gym.make("CartPole-v1"), 60)
    assert loaded.num_timesteps == 180
    # a damaged file: a clear error
    data = path.read_bytes()
    (tmp_path / "bad.fundl").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a (readable )?fundl DQN file"):
        fl.rl.DQN.load(tmp_path / "bad.fundl")


def test_callbacks_can_stop_training():
    env = gym.make("CartPole-v1")
    agent = fl.rl.DQN(fl.zoo.mlp_q_network(4, 2, hidden=(8,)), 2, learning_starts=1000,
                      random_state=0)

    class StopAfterTwoEpisodes(fl.rl.Callback):
        def on_episode_end(self, episode, logs=None):
            assert logs["return"] == logs["length"]  # CartPole pays 1 per step
            if episode == 1:
                self.agent.stop_training = True

    agent.learn(env, 5000, callbacks=[StopAfterTwoEpisodes()])
    assert len(agent.episode_returns_) == 2
    assert agent.num_timesteps == sum(agent.episode_lengths_)
    with pytest.raises(TypeError, match="callbacks must be"):
        agent.learn(env, 10, callbacks=[print])
