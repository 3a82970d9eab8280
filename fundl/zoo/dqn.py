"""Q-networks for deep Q-learning: the Nature DQN (Mnih et al., 2015) and a small MLP."""
from __future__ import annotations

import numbers

from ..layers import Conv2D, Dense, Flatten, Rescaling
from ..models import Sequential


def nature_dqn(n_actions, input_shape=(84, 84, 4)):
    """The convolutional Q-network of "Human-level control through deep reinforcement learning".

    ==========  ====================================  ==========
    layer       here                                  parameters
    ==========  ====================================  ==========
    input       84x84x4 uint8 (4 stacked frames)      0
    scale       x / 255 (``Rescaling``)               0
    conv1       Conv2D 32 @ 8x8, stride 4, ReLU       8,224
    conv2       Conv2D 64 @ 4x4, stride 2, ReLU       32,832
    conv3       Conv2D 64 @ 3x3, stride 1, ReLU       36,928
    fc          Dense 512, ReLU (on 7x7x64)           1,606,144
    q           Dense ``n_actions`` (linear)          513 per action
    ==========  ====================================  ==========

    1,684,128 + 513·n_actions parameters (1,687,206 for Pong's 6 actions). The input is
    channels-last (Keras's convention): gymnasium's ``FrameStackObservation`` stacks on the
    first axis, so move it last (see ``examples/rl_atari_dqn.py``). Pixels enter as uint8, as
    the replay buffer stores them, and are scaled inside the model.

    Args:
        n_actions: the number of actions (the environment's ``action_space.n``).
        input_shape: (height, width, frames). Default (84, 84, 4).

    Returns:
        A built, uncompiled :class:`~fundl.models.Sequential`: ``(batch, 84, 84, 4)`` uint8
        -> ``(batch, n_actions)`` Q-values.

    Example:
        >>> net = fundl.zoo.nature_dqn(6)
        >>> net.count_params()
        1687206
    """
    _check_actions("nature_dqn", n_actions)
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(s, numbers.Integral) and s > 0 for s in shape):
        raise ValueError(f"fundl.zoo.nature_dqn: input_shape must be (height, width, frames) of "
                         f"positive ints, got {input_shape!r}.")
    return Sequential([
        Rescaling(1.0 / 255.0, input_shape=shape, name="scale"),
        Conv2D(32, 8, strides=4, activation="relu", name="conv1"),
        Conv2D(64, 4, strides=2, activation="relu", name="conv2"),
        Conv2D(64, 3, strides=1, activation="relu", name="conv3"),
        Flatten(name="flatten"),
        Dense(512, activation="relu", name="fc"),
        Dense(int(n_actions), name="q"),
    ], name="nature_dqn")


def mlp_q_network(obs_dim, n_actions, hidden=(64, 64), activation="relu"):
    """A multilayer perceptron Q-network for vector observations (classic control).

    Args:
        obs_dim: size of the observation vector (CartPole: 4).
        n_actions: number of actions.
        hidden: sizes of the hidden layers. Default (64, 64); RL Zoo uses (256, 256) on
            CartPole.
        activation: the hidden layers' activation. Default ``"relu"``.

    Returns:
        A built, uncompiled :class:`~fundl.models.Sequential`: ``(batch, obs_dim)`` ->
        ``(batch, n_actions)`` (linear output).

    Example:
        >>> net = fundl.zoo.mlp_q_network(4, 2, hidden=(256, 256))
        >>> net.count_params()
        67586
    """
    _check_actions("mlp_q_network", n_actions)
    if isinstance(obs_dim, bool) or not isinstance(obs_dim, numbers.Integral) or obs_dim < 1:
        raise ValueError(f"fundl.zoo.mlp_q_network: obs_dim must be a positive int, got "
                         f"{obs_dim!r}.")
    hidden = tuple(hidden)
    if not all(isinstance(h, numbers.Integral) and h > 0 for h in hidden):
        raise ValueError(f"fundl.zoo.mlp_q_network: hidden must be positive ints, got {hidden!r}.")
    layers = []
    for i, units in enumerate(hidden):
        kwargs = {"input_shape": (int(obs_dim),)} if i == 0 else {}
        layers.append(Dense(int(units), activation=activation, name=f"hidden{i + 1}", **kwargs))
    out_kwargs = {} if hidden else {"input_shape": (int(obs_dim),)}
    layers.append(Dense(int(n_actions), name="q", **out_kwargs))
    return Sequential(layers, name="mlp_q_network")


def _check_actions(who, n_actions):
    if isinstance(n_actions, bool) or not isinstance(n_actions, numbers.Integral) \
            or n_actions < 1:
        raise ValueError(f"fundl.zoo.{who}: n_actions must be a positive int, got "
                         f"{n_actions!r}.")
