"""The Atari pipeline end to end: gymnasium's frame stacking, nature_dqn, frames stored once.

A small synthetic pixel environment stands in for the emulator (so the default tests need no
ROMs); with ale-py installed, a slow test runs the real example on Pong for a few steps.
"""
import numpy as np
import pytest

import fundl as fl

gym = pytest.importorskip("gymnasium")


class Pixels(gym.Env):
    """84x84 uint8 frames of a bright square that moves with the action; an episode lasts
    ``length`` steps and pays 1 when the square ends a step at the right edge."""

    observation_space = gym.spaces.Box(0, 255, (84, 84), np.uint8)
    action_space = gym.spaces.Discrete(3)  # left, stay, right

    def __init__(self, length=25):
        self.length = length

    def _frame(self):
        f = np.zeros((84, 84), np.uint8)
        f[38:46, self.x:self.x + 8] = 255
        f[0, self.t % 84] = 128  # a clock pixel, so consecutive frames always differ
        return f

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = int(self.np_random.integers(0, 76)), 0
        return self._frame(), {}

    def step(self, action):
        self.x = int(np.clip(self.x + 4 * (int(action) - 1), 0, 76))
        self.t += 1
        return self._frame(), float(self.x == 76), False, self.t >= self.length, {}


def pixel_env():
    from gymnasium.wrappers import FrameStackObservation, TransformObservation

    env = FrameStackObservation(Pixels(), 4)
    return TransformObservation(env, lambda o: np.moveaxis(o, 0, -1),
                                gym.spaces.Box(0, 255, (84, 84, 4), np.uint8))


def test_pixel_pipeline_end_to_end(tmp_path):
    fl.manual_seed(0)
    env = pixel_env()
    agent = fl.rl.DQN(fl.zoo.nature_dqn(3), env.action_space, buffer_size=200, batch_size=4,
                      learning_starts=44, train_freq=4, target_update=20, frame_stack=4,
                      random_state=0)
    stacks = []
    agent.learn(env, 56, callbacks=[fl.rl.LambdaCallback(
        on_step=lambda step, logs: stacks.append(step))])
    buf = agent.replay_buffer
    assert buf.obs_dtype == np.uint8 and buf.frames.shape == (200, 84, 84)
    # 56 transitions in 2 full episodes + 6 steps: 56 frames + 4 per episode start
    assert len(buf) == 56 and buf._written == 56 + 3 * 4
    assert len(agent.losses_) == 4 and np.isfinite(agent.losses_).all()
    assert agent.episode_lengths_ == [25, 25]
    o, a, r, n, d = buf.sample(8, np.random.default_rng(0))
    assert o.shape == n.shape == (8, 84, 84, 4) and o.dtype == np.uint8
    # next_obs is obs shifted by one frame
    np.testing.assert_array_equal(o[..., 1:], n[..., :-1])
    agent.save(tmp_path / "pixels.fundl")
    again = fl.rl.DQN.load(tmp_path / "pixels.fundl")
    np.testing.assert_array_equal(again.q_values(o), agent.q_values(o))


@pytest.mark.slow
def test_atari_example_on_pong(load_example=None):
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[2] / "examples" / "rl_atari_dqn.py"
    spec = importlib.util.spec_from_file_location("rl_atari_dqn", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    agent = module.main(["--steps", "60", "--learning-starts", "40", "--buffer", "500",
                         "--batch-size", "4", "--verbose", "0"])
    assert agent.num_timesteps == 60 and len(agent.losses_) == 6
    assert np.isfinite(agent.losses_).all()
    assert agent.replay_buffer.frames.shape == (500, 84, 84)
