"""ReplayBuffer: wrap-around, uniform sampling, dtypes, and stacked frames stored once."""
import numpy as np
import pytest

import fundl as fl


def fill(buf, n, start=0):
    for i in range(start, start + n):
        obs = np.full(buf.obs_shape, i, dtype=buf.obs_dtype)
        buf.add(obs, i % 3, float(i), obs + 1, i % 5 == 0)


def test_add_and_wrap_around():
    buf = fl.rl.ReplayBuffer(5, (2,), "float32")
    fill(buf, 3)
    assert len(buf) == 3 and buf.pos == 3
    fill(buf, 4, start=3)  # 7 transitions in 5 slots: 5 and 6 overwrote 0 and 1
    assert len(buf) == 5 and buf.pos == 2
    assert buf.obs[:, 0].tolist() == [5, 6, 2, 3, 4]
    assert buf.next_obs[:, 0].tolist() == [6, 7, 3, 4, 5]
    assert buf.actions.tolist() == [2, 0, 2, 0, 1]
    assert buf.rewards.tolist() == [5, 6, 2, 3, 4]
    assert buf.terminated.tolist() == [1, 0, 0, 0, 0]


def test_sample_dtypes_shapes_and_uniformity():
    buf = fl.rl.ReplayBuffer(10, (3,), "uint8")
    fill(buf, 4)
    obs, act, rew, nxt, term = buf.sample(2000, np.random.default_rng(0))
    assert obs.shape == (2000, 3) and obs.dtype == np.uint8 and nxt.dtype == np.uint8
    assert act.dtype == np.int64 and rew.dtype == np.float32 and term.dtype == np.float32
    # only the 4 stored transitions, about equally often; fields stay aligned
    counts = np.bincount(obs[:, 0], minlength=4)
    assert counts.sum() == 2000 and counts.min() > 400
    np.testing.assert_array_equal(nxt[:, 0], obs[:, 0] + 1)
    np.testing.assert_array_equal(rew, obs[:, 0])
    np.testing.assert_array_equal(act, obs[:, 0] % 3)


def test_errors():
    buf = fl.rl.ReplayBuffer(4, (2,))
    with pytest.raises(ValueError, match="empty"):
        buf.sample(2, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"shape \(3,\).*\(2,\)"):
        buf.add(np.zeros(3), 0, 0.0, np.zeros(2), False)
    with pytest.raises(ValueError, match="capacity"):
        fl.rl.ReplayBuffer(0, (2,))
    with pytest.raises(ValueError, match="last axis"):
        fl.rl.ReplayBuffer(10, (8, 8, 3), "uint8", frame_stack=4)


class FrameStacker:
    """What a frame-stacking wrapper does: the last k frames on the last axis, the first frame
    repeated at a reset (gymnasium's FrameStackObservation pads with the reset frame)."""

    def __init__(self, k):
        self.k = k

    def reset(self, frame):
        self.frames = [frame] * self.k
        return np.stack(self.frames, axis=-1)

    def step(self, frame):
        self.frames = self.frames[1:] + [frame]
        return np.stack(self.frames, axis=-1)


@pytest.mark.parametrize("capacity", [9, 23, 100])
def test_stacked_frames_are_stored_once_and_rebuilt_exactly(capacity):
    rng = np.random.default_rng(0)
    k = 4
    buf = fl.rl.ReplayBuffer(capacity, (3, 2, k), "uint8", frame_stack=k)
    assert buf.frames.shape == (capacity, 3, 2)  # one frame per slot, not stacks
    stacker, seen, counter = FrameStacker(k), [], 0
    for episode in range(6):
        counter += 1
        obs = stacker.reset(np.full((3, 2), counter, np.uint8))
        for t in range(int(rng.integers(1, 7))):
            counter += 1
            nxt = stacker.step(np.full((3, 2), counter, np.uint8))
            terminated = t == 3
            buf.add(obs, counter % 2, float(counter), nxt, terminated)
            seen.append((obs.copy(), counter % 2, float(counter), nxt.copy(), terminated))
            obs = nxt
            if terminated:
                break
    # every transition still held must come back exactly as it was added
    by_reward = {s[2]: s for s in seen}
    o, a, r, n, d = buf.sample(500, rng)
    assert o.shape == (500, 3, 2, k) and o.dtype == np.uint8
    for i in range(500):
        so, sa, sr, sn, sd = by_reward[float(r[i])]
        np.testing.assert_array_equal(o[i], so)
        np.testing.assert_array_equal(n[i], sn)
        assert a[i] == sa and d[i] == sd
    # the buffer holds at most `capacity` frames, each transition at least one of them
    assert 0 < len(buf) < capacity
    if capacity == 100:  # nothing overwritten yet: every transition is there
        assert len(buf) == len(seen) and set(r.tolist()) == set(by_reward)


def test_one_million_atari_frames_fit_in_8_gb():
    # numpy.zeros reserves pages without touching them, so this costs no real memory here
    buf = fl.rl.ReplayBuffer(1_000_000, (84, 84, 4), "uint8", frame_stack=4)
    assert buf.frames.nbytes == 1_000_000 * 84 * 84
    assert buf.nbytes < 8e9
    assert buf.nbytes == 1_000_000 * (84 * 84 + 1 + 8 + 4 + 4)
