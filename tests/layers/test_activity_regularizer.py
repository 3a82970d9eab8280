"""activity_regularizer= on every layer (Keras 3): accepted, applied to the output, saved."""
import json

import numpy as np
import pytest

import fundl as fl
from fundl import layers as L
from fundl import regularizers

_X = lambda *shape: np.random.default_rng(0).uniform(-1, 1, shape).astype("float32")  # noqa

# class -> (constructor kwargs, call inputs); every concrete layer the package exports
CASES = {
    "AWGN": ({"stddev": 0.1}, lambda: _X(2, 4)),
    "EnergyNormalization": ({}, lambda: _X(2, 4)),
    "Activation": ({"activation": "relu"}, lambda: _X(2, 3)),
    "Add": ({}, lambda: [_X(2, 3), _X(2, 3)]),
    "Attention": ({}, lambda: [_X(2, 3, 4), _X(2, 5, 4)]),
    "Average": ({}, lambda: [_X(2, 3), _X(2, 3)]),
    "AveragePooling1D": ({}, lambda: _X(2, 4, 3)),
    "AveragePooling2D": ({}, lambda: _X(2, 4, 4, 3)),
    "AveragePooling3D": ({}, lambda: _X(1, 2, 2, 2, 3)),
    "BatchNormalization": ({}, lambda: _X(4, 3)),
    "Concatenate": ({}, lambda: [_X(2, 3), _X(2, 2)]),
    "Conv1D": ({"filters": 2, "kernel_size": 2}, lambda: _X(2, 4, 3)),
    "Conv1DTranspose": ({"filters": 2, "kernel_size": 2}, lambda: _X(2, 4, 3)),
    "Conv2D": ({"filters": 2, "kernel_size": 2}, lambda: _X(2, 4, 4, 3)),
    "Conv2DTranspose": ({"filters": 2, "kernel_size": 2}, lambda: _X(2, 3, 3, 3)),
    "Conv3D": ({"filters": 2, "kernel_size": 2}, lambda: _X(1, 3, 3, 3, 2)),
    "Cropping1D": ({}, lambda: _X(2, 4, 3)),
    "Cropping2D": ({"cropping": 1}, lambda: _X(2, 4, 4, 3)),
    "Dense": ({"units": 2}, lambda: _X(2, 3)),
    "DepthwiseConv2D": ({"kernel_size": 2}, lambda: _X(2, 3, 3, 2)),
    "Dropout": ({"rate": 0.5}, lambda: _X(2, 3)),
    "ELU": ({}, lambda: _X(2, 3)),
    "Embedding": ({"input_dim": 5, "output_dim": 2}, lambda: np.array([[1, 4, 0]])),
    "Flatten": ({}, lambda: _X(2, 3, 2)),
    "GRU": ({"units": 2}, lambda: _X(2, 3, 2)),
    "GaussianDropout": ({"rate": 0.3}, lambda: _X(2, 3)),
    "GaussianNoise": ({"stddev": 0.3}, lambda: _X(2, 3)),
    "GlobalAveragePooling1D": ({}, lambda: _X(2, 4, 3)),
    "GlobalAveragePooling2D": ({}, lambda: _X(2, 4, 4, 3)),
    "GlobalAveragePooling3D": ({}, lambda: _X(1, 2, 2, 2, 3)),
    "GlobalMaxPooling1D": ({}, lambda: _X(2, 4, 3)),
    "GlobalMaxPooling2D": ({}, lambda: _X(2, 4, 4, 3)),
    "GlobalMaxPooling3D": ({}, lambda: _X(1, 2, 2, 2, 3)),
    "LSTM": ({"units": 2}, lambda: _X(2, 3, 2)),
    "LayerNormalization": ({}, lambda: _X(2, 3)),
    "LeakyReLU": ({}, lambda: _X(2, 3)),
    "LocalResponseNormalization": ({"depth_radius": 1}, lambda: _X(1, 2, 2, 3)),
    "Masking": ({}, lambda: _X(2, 3, 2)),
    "MaxPooling1D": ({}, lambda: _X(2, 4, 3)),
    "MaxPooling2D": ({}, lambda: _X(2, 4, 4, 3)),
    "MaxPooling3D": ({}, lambda: _X(1, 2, 2, 2, 3)),
    "Maximum": ({}, lambda: [_X(2, 3), _X(2, 3)]),
    "Minimum": ({}, lambda: [_X(2, 3), _X(2, 3)]),
    "MultiHeadAttention": ({"num_heads": 2, "key_dim": 2}, None),
    "Multiply": ({}, lambda: [_X(2, 3), _X(2, 3)]),
    "Normalization": ({}, lambda: _X(2, 3)),
    "PReLU": ({}, lambda: _X(2, 3)),
    "Permute": ({"dims": (2, 1)}, lambda: _X(2, 3, 2)),
    "RBF": ({"units": 2}, lambda: _X(2, 3)),
    "RandomContrast": ({"factor": 0.2}, lambda: _X(2, 3, 3, 2)),
    "RandomFlip": ({}, lambda: _X(2, 3, 3, 2)),
    "RandomRotation": ({"factor": 0.2}, lambda: _X(2, 3, 3, 2)),
    "RandomTranslation": ({"height_factor": 0.2, "width_factor": 0.2}, lambda: _X(2, 3, 3, 2)),
    "RandomZoom": ({"height_factor": 0.2}, lambda: _X(2, 3, 3, 2)),
    "ReLU": ({}, lambda: _X(2, 3)),
    "RepeatVector": ({"n": 2}, lambda: _X(2, 3)),
    "Rescaling": ({"scale": 0.5}, lambda: _X(2, 3)),
    "Reshape": ({"target_shape": (3, 2)}, lambda: _X(2, 6)),
    "SeparableConv2D": ({"filters": 2, "kernel_size": 2}, lambda: _X(2, 3, 3, 2)),
    "SimpleRNN": ({"units": 2}, lambda: _X(2, 3, 2)),
    "Softmax": ({}, lambda: _X(2, 3)),
    "SpatialDropout1D": ({"rate": 0.3}, lambda: _X(2, 3, 2)),
    "SpatialDropout2D": ({"rate": 0.3}, lambda: _X(2, 3, 3, 2)),
    "Subtract": ({}, lambda: [_X(2, 3), _X(2, 3)]),
    "UpSampling1D": ({}, lambda: _X(2, 2, 3)),
    "UpSampling2D": ({}, lambda: _X(2, 2, 2, 3)),
    "ZeroPadding1D": ({}, lambda: _X(2, 3, 2)),
    "ZeroPadding2D": ({}, lambda: _X(2, 2, 2, 3)),
    "ZeroPadding3D": ({}, lambda: _X(1, 2, 2, 2, 1)),
}
# wrappers, cells, graph layers and Input take their regularizer through the wrapped layer
SKIPPED = {"Bidirectional", "TimeDistributed", "RNN", "GRUCell", "LSTMCell", "SimpleRNNCell",
           "GraphConv", "InputLayer", "Lambda", "Layer", "SymbolicTensor"}


def test_every_exported_layer_is_covered():
    exported = {n for n in L.__all__ if isinstance(getattr(L, n), type)}
    missing = sorted((exported - SKIPPED) ^ set(CASES))
    assert not missing, (f"layers {missing} are exported but have no row in CASES (or a row "
                         "but are not exported): add (kwargs, inputs) for each new layer")


@pytest.mark.parametrize("name", sorted(CASES))
def test_activity_regularizer_is_accepted_applied_and_saved(name):
    kwargs, inputs = CASES[name]
    cls = getattr(L, name)
    layer = cls(**kwargs, activity_regularizer=regularizers.L2(0.1))
    if name == "MultiHeadAttention":
        out = layer(_X(2, 3, 4), _X(2, 3, 4))
    else:
        out = layer(inputs())
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    want = sum(0.1 * float((o.numpy().astype("float64") ** 2).sum()) / o.shape[0] for o in outs)
    # no weight penalties here (no kernel_regularizer): the losses are the activity ones
    got = sum(float(p.numpy()) for p in layer.losses)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    config = json.loads(json.dumps(layer.get_config()))
    assert config["activity_regularizer"] == {"class_name": "L2", "config": {"l2": 0.1}}
    clone = cls.from_config(config)
    assert isinstance(clone.activity_regularizer, regularizers.L2)
    assert json.loads(json.dumps(clone.get_config())) == config


def test_layers_without_one_keep_their_configs():
    assert "activity_regularizer" not in L.Flatten().get_config()
    assert "activity_regularizer" not in L.ReLU().get_config()


def test_activity_penalty_enters_the_training_loss():
    fl.manual_seed(0)
    inputs = L.Input(shape=(4,))
    out = L.ReLU(activity_regularizer=regularizers.L1(10.0))(L.Dense(3)(inputs))
    model = fl.models.Model(inputs, out)
    model.compile(optimizer="sgd", loss="mse")
    x = _X(8, 4)
    y = np.zeros((8, 3), "float32")
    plain = float(np.mean((model.predict(x, verbose=0) - y) ** 2))
    assert model.evaluate(x, y, verbose=0) > plain + 1e-3  # the penalty is counted
