"""DenseNet121, DenseNet169 and DenseNet201 as Keras builds them (Huang et al., 2017)."""
from __future__ import annotations

from ..layers import (
    Activation, AveragePooling2D, BatchNormalization, Concatenate, Conv2D, MaxPooling2D,
    ZeroPadding2D,
)
from ._common import avg_pool_top, check_args, finish, input_of

_EPS = 1.001e-5
_GROWTH = 32
BLOCKS = {121: (6, 12, 24, 16), 169: (6, 12, 32, 32), 201: (6, 12, 48, 32)}


def _bn_relu(x, name):
    x = BatchNormalization(epsilon=_EPS, name=name + "_bn")(x)
    return Activation("relu", name=name + "_relu")(x)


def _conv_block(x, name):
    """BN-ReLU-1x1 (4k) -BN-ReLU-3x3 (k), concatenated to the input (growth rate k = 32)."""
    y = _bn_relu(x, name + "_0")
    y = Conv2D(4 * _GROWTH, 1, use_bias=False, name=name + "_1_conv")(y)
    y = _bn_relu(y, name + "_1")
    y = Conv2D(_GROWTH, 3, padding="same", use_bias=False, name=name + "_2_conv")(y)
    return Concatenate(name=name + "_concat")([x, y])


def _transition(x, name):
    """BN-ReLU-1x1 halving the channels, then a 2x2 average pool."""
    channels = x.shape[-1]
    x = _bn_relu(x, name)
    x = Conv2D(int(channels * 0.5), 1, use_bias=False, name=name + "_conv")(x)
    return AveragePooling2D(2, strides=2, name=name + "_pool")(x)


def _densenet(depth, include_top, weights, input_tensor, input_shape, pooling, classes,
              classifier_activation, name):
    who = f"DenseNet{depth}"
    shape = check_args(who, include_top, weights, input_tensor, input_shape, pooling, classes,
                       classifier_activation)
    inputs = input_of(input_tensor, shape)
    x = ZeroPadding2D(((3, 3), (3, 3)), name="zero_padding2d")(inputs)
    x = Conv2D(64, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = _bn_relu(x, "conv1")
    x = ZeroPadding2D(((1, 1), (1, 1)), name="zero_padding2d_1")(x)
    x = MaxPooling2D(3, strides=2, name="pool1")(x)
    blocks = BLOCKS[depth]
    for i, n in enumerate(blocks):
        for j in range(n):
            x = _conv_block(x, f"conv{i + 2}_block{j + 1}")
        if i < len(blocks) - 1:
            x = _transition(x, f"pool{i + 2}")
    x = BatchNormalization(epsilon=_EPS, name="bn")(x)
    x = Activation("relu", name="relu")(x)
    x = avg_pool_top(x, include_top, pooling, classes, classifier_activation)
    return finish(who, inputs, x, name)


def DenseNet121(include_top=True, weights=None, input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax", name="densenet121"):
    """DenseNet-121 with Keras's layers, names and arguments (``keras.applications``).

    A 7x7 stem, four dense blocks of 6, 12, 24 and 16 BN-ReLU-conv pairs (growth rate 32,
    bias-free convolutions) joined by transitions that halve the channels and the size, a
    final BN-ReLU and (``include_top``) global average pooling and the classifier.
    8,062,504 parameters (trainable and batch-norm statistics) at 224x224x3 with 1000
    classes, Keras's count.

    Args:
        include_top: keep global average pooling and the classifier. Default True.
        weights: must be None: fundl ships no pretrained weights (any other value raises a
            ValueError saying so; load your own with ``model.load_weights(path)``).
        input_tensor: an optional symbolic tensor to build the network on.
        input_shape: (height, width, channels), at least 32x32; default (224, 224, 3)
            (with ``include_top=False``: (None, None, 3)).
        pooling: with ``include_top=False``: None, ``"avg"`` or ``"max"``.
        classes: the number of classes. Default 1000.
        classifier_activation: the output activation; None gives logits.
        name: the model's name.

    Returns:
        A built, uncompiled :class:`~fundl.models.Model`.

    Example:
        >>> model = fundl.applications.DenseNet121(input_shape=(64, 64, 3), classes=10)
    """
    return _densenet(121, include_top, weights, input_tensor, input_shape, pooling, classes,
                     classifier_activation, name)


def DenseNet169(include_top=True, weights=None, input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax", name="densenet169"):
    """DenseNet-169 (blocks 6, 12, 32, 32), Keras's build: 14,307,880 parameters at 224x224x3.

    Args:
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in :func:`DenseNet121`.

    Returns:
        A built, uncompiled :class:`~fundl.models.Model`.

    Example:
        >>> model = fundl.applications.DenseNet169(include_top=False, pooling="avg")
    """
    return _densenet(169, include_top, weights, input_tensor, input_shape, pooling, classes,
                     classifier_activation, name)


def DenseNet201(include_top=True, weights=None, input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax", name="densenet201"):
    """DenseNet-201 (blocks 6, 12, 48, 32), Keras's build: 20,242,984 parameters at 224x224x3.

    Args:
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in :func:`DenseNet121`.

    Returns:
        A built, uncompiled :class:`~fundl.models.Model`.

    Example:
        >>> model = fundl.applications.DenseNet201(include_top=False, pooling="avg")
    """
    return _densenet(201, include_top, weights, input_tensor, input_shape, pooling, classes,
                     classifier_activation, name)
