"""Experience replay: a fixed-size ring of transitions sampled uniformly (Lin 1992; Mnih 2015).

All storage is preallocated NumPy arrays, so adding a transition is a few array writes and
sampling is one fancy-index gather per field into reused output arrays.

Two layouts:

* plain (``frame_stack=None``): ``obs`` and ``next_obs`` arrays of ``obs_shape`` per slot.
  ``next_obs`` is stored separately (not as the following slot's ``obs``) so episode ends,
  time-limit truncations and resets need no special cases.
* stacked frames (``frame_stack=k``): for Atari-style observations made of the last ``k``
  frames stacked on the **last** axis (``(84, 84, 4)``), each frame is stored **once**. The
  ring holds frames; a transition is recorded at the slot of its observation's newest frame,
  and its next observation is the stack one slot later. The ``k`` frames of an episode's first
  observation are written when it starts (the padding that the frame-stacking wrapper used is
  stored as is), so a stack never mixes two episodes and sampled stacks equal what the agent
  saw. One million 84×84 uint8 frames take 7.06 GB (plus ~13 MB for actions, rewards, flags)
  instead of 56 GB for stacked ``obs`` and ``next_obs``.

Example:
    >>> buf = fl.rl.ReplayBuffer(10_000, obs_shape=(4,), obs_dtype="float32")
    >>> buf.add(obs, action, reward, next_obs, terminated)        # doctest: +SKIP
    >>> obs, actions, rewards, next_obs, terminated = buf.sample(64, rng)   # doctest: +SKIP
"""
from __future__ import annotations

import numbers

import numpy


def _positive_int(owner, arg, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{owner}: `{arg}` must be a positive integer, got {value!r}.")
    return int(value)


class ReplayBuffer:
    """A ring buffer of transitions ``(obs, action, reward, next_obs, terminated)``.

    Args:
        capacity: the most transitions kept (frames, with ``frame_stack``); once full, each
            new transition overwrites the oldest.
        obs_shape: shape of one observation, e.g. ``(4,)`` or ``(84, 84, 4)``.
        obs_dtype: dtype the observations are stored in (``"uint8"`` for pixels keeps them
            4× smaller than float32). Default float32.
        action_shape: shape of one action, ``()`` for discrete actions. Default ``()``.
        action_dtype: dtype of the actions. Default int64.
        frame_stack: ``None``, or ``k`` when the observations are ``k`` frames stacked on the
            last axis (``obs_shape[-1] == k``): each frame is then stored once (see the module
            docstring).

    Attributes:
        size: number of transitions that can be sampled.
        nbytes: bytes of all preallocated arrays.

    Example:
        >>> buf = ReplayBuffer(1_000_000, (84, 84, 4), "uint8", frame_stack=4)
        >>> round(buf.nbytes / 1e9, 2)
        7.07
    """

    def __init__(self, capacity, obs_shape, obs_dtype="float32", action_shape=(),
                 action_dtype="int64", frame_stack=None):
        who = "ReplayBuffer"
        self.capacity = _positive_int(who, "capacity", capacity)
        try:
            self.obs_shape = tuple(int(s) for s in obs_shape)
        except TypeError:
            raise TypeError(f"{who}: `obs_shape` must be a tuple of ints, got {obs_shape!r}."
                            ) from None
        self.obs_dtype = numpy.dtype(obs_dtype)
        self.action_shape = tuple(int(s) for s in action_shape)
        self.action_dtype = numpy.dtype(action_dtype)
        self.frame_stack = None if frame_stack is None else _positive_int(who, "frame_stack",
                                                                          frame_stack)
        n = self.capacity
        if self.frame_stack is not None:
            k = self.frame_stack
            if len(self.obs_shape) < 1 or self.obs_shape[-1] != k:
                raise ValueError(f"{who}: with frame_stack={k} the observations must stack "
                                 f"{k} frames on the last axis, got obs_shape {self.obs_shape}.")
            if n < k + 1:
                raise ValueError(f"{who}: capacity {n} is too small for frame_stack={k}; it "
                                 f"must be at least {k + 1} frames.")
            self.frames = numpy.zeros((n,) + self.obs_shape[:-1], dtype=self.obs_dtype)
            # valid[i]: a transition whose observation's newest frame is in slot i
            self.valid = numpy.zeros(n, dtype=bool)
            self._offsets = numpy.arange(-k + 1, 1)  # frame offsets of one stack
            self._head = -1          # slot of the newest frame written
            self._written = 0        # frames written in all
            self._last_next = None   # the last next_obs added (to detect episode continuity)
        else:
            self.obs = numpy.zeros((n,) + self.obs_shape, dtype=self.obs_dtype)
            self.next_obs = numpy.zeros((n,) + self.obs_shape, dtype=self.obs_dtype)
        self.actions = numpy.zeros((n,) + self.action_shape, dtype=self.action_dtype)
        self.rewards = numpy.zeros(n, dtype=numpy.float32)
        self.terminated = numpy.zeros(n, dtype=numpy.float32)
        self.pos = 0
        self.size = 0
        self._out = {}

    @property
    def nbytes(self) -> int:
        arrays = [self.actions, self.rewards, self.terminated]
        arrays += [self.frames, self.valid] if self.frame_stack else [self.obs, self.next_obs]
        return int(sum(a.nbytes for a in arrays))

    def __len__(self) -> int:
        return self.size

    def _check_obs(self, obs, what):
        obs = numpy.asarray(obs)
        if obs.shape != self.obs_shape:
            raise ValueError(f"ReplayBuffer.add: `{what}` has shape {obs.shape} but the buffer "
                             f"stores observations of shape {self.obs_shape}.")
        return obs

    def add(self, obs, action, reward, next_obs, terminated) -> None:
        """Store one transition (copied into the preallocated arrays).

        Args:
            obs: the observation the action was taken in, of ``obs_shape``.
            action: the action (an int for discrete actions).
            reward: the reward received.
            next_obs: the observation after the step (the final one if the episode ended).
            terminated: True when the episode ended in a terminal state (no bootstrapping
                from ``next_obs``); a time-limit truncation is *not* terminal.
        """
        obs = self._check_obs(obs, "obs")
        next_obs = self._check_obs(next_obs, "next_obs")
        if self.frame_stack is not None:
            self._add_frames(obs, action, reward, next_obs, terminated)
            return
        i = self.pos
        self.obs[i] = obs
        self.next_obs[i] = next_obs
        self.actions[i] = action
        self.rewards[i] = reward
        self.terminated[i] = terminated
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def _write_frame(self, frame):
        """Write one frame at the next slot; transitions whose stacks used it become invalid."""
        n, k = self.capacity, self.frame_stack
        i = (self._head + 1) % n
        self.frames[i] = frame
        # The transitions at slots i .. i+k-1 (now the oldest) had stacks reaching back to
        # slot i: they are gone. (Slot i-1 was rewritten just before, so no old transition
        # there still points at slot i as its next frame.)
        for j in range(i, i + k):
            j %= n
            if self.valid[j]:
                self.valid[j] = False
                self.size -= 1
        self._head = i
        self._written += 1
        return i

    def _add_frames(self, obs, action, reward, next_obs, terminated):
        last = self._last_next
        if last is None or not numpy.array_equal(obs, last):
            # an episode starts (or the caller skipped ahead): store obs's k frames
            for f in range(self.frame_stack):
                self._write_frame(obs[..., f])
        i = self._head
        # the slot after i is about to hold next_obs's newest frame: drop any transition there
        # first (its stack would change), then record this transition at i
        self._write_frame(next_obs[..., -1])
        self.valid[i] = True
        self.actions[i] = action
        self.rewards[i] = reward
        self.terminated[i] = terminated
        self.size += 1
        self.pos = self._head
        self._last_next = None if terminated else next_obs.copy()

    def _buffers(self, batch_size):
        out = self._out.get(batch_size)
        if out is None:
            b = batch_size
            out = self._out[batch_size] = (
                numpy.empty((b,) + self.obs_shape, dtype=self.obs_dtype),
                numpy.empty((b,) + self.action_shape, dtype=self.action_dtype),
                numpy.empty(b, dtype=numpy.float32),
                numpy.empty((b,) + self.obs_shape, dtype=self.obs_dtype),
                numpy.empty(b, dtype=numpy.float32),
            )
        return out

    def sample_indices(self, batch_size, rng) -> numpy.ndarray:
        """``batch_size`` slot indices drawn uniformly (with replacement) from stored transitions.

        Args:
            batch_size: number of indices.
            rng: a ``numpy.random.Generator``.

        Returns:
            int64 array of shape ``(batch_size,)``.
        """
        if self.size == 0:
            raise ValueError("ReplayBuffer.sample: the buffer is empty; add transitions first.")
        if self.frame_stack is None:
            return rng.integers(0, self.size, size=batch_size)
        # Stacked frames: transitions sit at a subset of the slots (not at episode-start
        # padding frames); draw among the valid ones (rejection: they are nearly all).
        limit = min(self._written, self.capacity)
        idx = rng.integers(0, limit, size=batch_size)
        bad = ~self.valid[idx]
        while bad.any():
            idx[bad] = rng.integers(0, limit, size=int(bad.sum()))
            bad = ~self.valid[idx]
        return idx

    def sample(self, batch_size, rng):
        """A uniform random batch of transitions.

        Args:
            batch_size: number of transitions (drawn with replacement).
            rng: a ``numpy.random.Generator`` (the agent's, for reproducibility).

        Returns:
            ``(obs, actions, rewards, next_obs, terminated)``: arrays of shapes
            ``(B, *obs_shape)``, ``(B, *action_shape)``, ``(B,)``, ``(B, *obs_shape)``,
            ``(B,)`` (rewards and terminated as float32). The arrays are reused by the next
            call with the same ``batch_size``: copy them to keep them.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
                or batch_size < 1:
            raise ValueError(f"ReplayBuffer.sample: `batch_size` must be a positive integer, "
                             f"got {batch_size!r}.")
        idx = self.sample_indices(batch_size, rng)
        return self.gather(idx)

    def gather(self, idx):
        """The transitions at slot indices ``idx`` (as :meth:`sample` returns them)."""
        obs, actions, rewards, next_obs, term = self._buffers(len(idx))
        if self.frame_stack is None:
            numpy.take(self.obs, idx, axis=0, out=obs)
            numpy.take(self.next_obs, idx, axis=0, out=next_obs)
        else:
            n = self.capacity
            rows = (idx[:, None] + self._offsets) % n          # (B, k) frame slots of obs
            # frames[rows] is (B, k, H, W); the observations are (B, H, W, k)
            stacked = self.frames[rows]
            obs[...] = numpy.moveaxis(stacked, 1, -1)
            rows += 1
            rows %= n
            next_obs[...] = numpy.moveaxis(self.frames[rows], 1, -1)
        numpy.take(self.actions, idx, axis=0, out=actions)
        numpy.take(self.rewards, idx, out=rewards)
        numpy.take(self.terminated, idx, out=term)
        return obs, actions, rewards, next_obs, term

    def __repr__(self):
        extra = f", frame_stack={self.frame_stack}" if self.frame_stack else ""
        return (f"ReplayBuffer(capacity={self.capacity}, obs_shape={self.obs_shape}, "
                f"obs_dtype={self.obs_dtype}{extra}, size={self.size})")
