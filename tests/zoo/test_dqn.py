"""Q-networks of the zoo: the Nature DQN's layers and parameter count, the MLP, save/load."""
import numpy as np
import pytest

import fundl as fl


def test_nature_dqn_shapes_and_parameter_count():
    net = fl.zoo.nature_dqn(6)
    # conv 8,224 + 32,832 + 36,928, dense 3136*512+512, 512*6+6 (Mnih et al. 2015)
    assert net.count_params() == 8224 + 32832 + 36928 + 1606144 + 3078 == 1687206
    names = [layer.name for layer in net.layers]
    assert names == ["scale", "conv1", "conv2", "conv3", "flatten", "fc", "q"]
    assert net.compute_output_shape((None, 84, 84, 4)) == (None, 6)
    x = np.random.default_rng(0).integers(0, 256, (2, 84, 84, 4), dtype=np.uint8)
    q = net(x)
    assert q.shape == (2, 6) and q.dtype == np.float32
    # uint8 frames are scaled by 1/255 inside: the same as feeding the scaled floats past it
    h = x.astype(np.float32) / 255
    for layer in net.layers[1:]:
        h = layer(fl.tensor(h)).numpy()
    np.testing.assert_allclose(q.numpy(), h, rtol=1e-5, atol=1e-6)


def test_nature_dqn_save_load_round_trip(tmp_path):
    net = fl.zoo.nature_dqn(4)
    x = np.random.default_rng(1).integers(0, 256, (1, 84, 84, 4), dtype=np.uint8)
    net.save(tmp_path / "q.fundl")
    again = fl.models.load_model(tmp_path / "q.fundl")
    np.testing.assert_array_equal(again(x).numpy(), net(x).numpy())


def test_mlp_q_network_and_errors():
    net = fl.zoo.mlp_q_network(4, 2, hidden=(256, 256))
    assert net.count_params() == 4 * 256 + 256 + 256 * 256 + 256 + 256 * 2 + 2 == 67586
    assert fl.zoo.mlp_q_network(3, 5, hidden=()).count_params() == 20
    assert "nature_dqn" in fl.zoo.list_models() and "mlp_q_network" in fl.zoo.list_models()
    with pytest.raises(ValueError, match="n_actions"):
        fl.zoo.nature_dqn(0)
    with pytest.raises(ValueError, match="input_shape"):
        fl.zoo.nature_dqn(4, input_shape=(84, 84))
    with pytest.raises(ValueError, match="obs_dim"):
        fl.zoo.mlp_q_network(0, 2)
