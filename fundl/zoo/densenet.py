"""Densely connected networks (Huang, Liu, van der Maaten and Weinberger, 2017)."""
from __future__ import annotations

from ..layers import (
    Activation, AveragePooling2D, BatchNormalization, Concatenate, Conv2D, Dense,
    GlobalAveragePooling2D, MaxPooling2D, ZeroPadding2D,
)
from ._common import build, check_args, named_depth

_BN = {"epsilon": 1e-5, "momentum": 0.9}  # torchvision's (PyTorch's momentum 0.1)


def _bn_relu_conv(x, filters, size, name):
    """The pre-activation unit of DenseNet: BatchNormalization, ReLU, then a bias-free conv."""
    x = BatchNormalization(**_BN, name=name + "_bn")(x)
    x = Activation("relu", name=name + "_relu")(x)
    return Conv2D(filters, size, padding="same", use_bias=False, kernel_initializer="he_normal",
                  name=name + "_conv")(x)


def _dense_block(x, layers, growth_rate, name):
    """``layers`` bottleneck layers (1x1 to 4k, 3x3 to k); each sees every earlier output."""
    for i in range(layers):
        label = f"{name}_block{i + 1}"
        y = _bn_relu_conv(x, 4 * growth_rate, 1, label + "_1")
        y = _bn_relu_conv(y, growth_rate, 3, label + "_2")
        x = Concatenate(name=label + "_concat")([x, y])
    return x


def _transition(x, channels, name):
    """Compression to ``channels`` by a 1x1 convolution, then 2x2 average pooling."""
    x = _bn_relu_conv(x, channels, 1, name)
    return AveragePooling2D(2, name=name + "_pool")(x)


def _head(x, include_top, classes, classifier_activation):
    x = BatchNormalization(**_BN, name="bn")(x)
    x = Activation("relu", name="relu")(x)
    if include_top:
        x = GlobalAveragePooling2D(name="avg_pool")(x)
        x = Dense(classes, activation=classifier_activation, name="predictions")(x)
    return x


_IMAGENET = {121: (6, 12, 24, 16), 169: (6, 12, 32, 32), 201: (6, 12, 48, 32)}


def densenet(depth, input_shape=(224, 224, 3), classes=1000, include_top=True, weights=None,
             classifier_activation="softmax"):
    """An ImageNet DenseNet-BC of ``depth`` 121, 169 or 201 (growth rate 32), as torchvision's.

    A 7x7/2 convolution of 64 filters and a 3x3/2 max pool, four dense blocks joined by
    transitions that halve the channels (compression 0.5) and the map size, a final
    BatchNormalization and ReLU, global average pooling and the classifier. Every layer of a
    block is BatchNormalization-ReLU-1x1 conv (128 filters)-BatchNormalization-ReLU-3x3 conv
    (32 filters), concatenated to its input. Convolutions have no bias; BatchNormalization
    uses torchvision's epsilon 1e-5 and momentum 0.9 (PyTorch's 0.1).

    Trainable parameters at 224x224x3, 1000 classes: 7,978,856 / 14,149,480 / 20,013,928,
    as torchvision's; ``count_params()`` adds the BatchNormalization moving statistics.

    Args:
        depth: 121, 169 or 201.
        input_shape: (height, width, channels), at least 32x32.
        classes: the number of classes.
        include_top: keep the pooling and the classifier; False returns the final
            (BatchNormalization + ReLU) feature map.
        weights: must be None (no pretrained weights).
        classifier_activation: the output activation ("softmax", or None for logits).

    Returns:
        A built, uncompiled :class:`~fundl.models.Model`: (batch, *input_shape) ->
        (batch, classes).

    Example:
        >>> model = fundl.zoo.densenet(121, input_shape=(64, 64, 3), classes=200)
    """
    if depth not in _IMAGENET:
        raise ValueError(f"fundl.zoo.densenet: depth must be one of {sorted(_IMAGENET)}, got "
                         f"{depth!r} (densenet_bc_cifar builds the CIFAR depths).")
    name = f"densenet{depth}"
    shape = check_args(name, input_shape, classes, include_top, weights)

    def body(x):
        # padding 3 on both sides, as torchvision (Keras's "same" would pad 2 before, 3 after)
        x = Conv2D(64, 7, strides=2, padding=3, use_bias=False, kernel_initializer="he_normal",
                   name="conv1_conv")(x)
        x = BatchNormalization(**_BN, name="conv1_bn")(x)
        x = Activation("relu", name="conv1_relu")(x)
        # torchvision pads the max pool by 1 with -inf; after a ReLU, zeros are the same
        x = ZeroPadding2D(1, name="pool1_pad")(x)
        x = MaxPooling2D(3, strides=2, name="pool1_pool")(x)
        channels = 64
        blocks = _IMAGENET[depth]
        for i, layers in enumerate(blocks):
            x = _dense_block(x, layers, 32, f"conv{i + 2}")
            channels += 32 * layers
            if i < len(blocks) - 1:
                channels //= 2
                x = _transition(x, channels, f"pool{i + 2}")
        return _head(x, include_top, classes, classifier_activation)

    return build(name, shape, body, name)


def _named(depth, count):
    return named_depth(densenet, "densenet", depth, count)


densenet121 = _named(121, "7,978,856")
densenet169 = _named(169, "14,149,480")
densenet201 = _named(201, "20,013,928")


def densenet_bc_cifar(depth=100, growth_rate=12, input_shape=(32, 32, 3), classes=10,
                      include_top=True, weights=None, classifier_activation="softmax"):
    """A CIFAR DenseNet-BC (bottleneck + compression 0.5) of ``depth`` layers, growth rate k.

    A 3x3 convolution of 2k filters, three dense blocks of (depth - 4) / 6 bottleneck layers
    each (BatchNormalization-ReLU-1x1 conv to 4k-BatchNormalization-ReLU-3x3 conv to k)
    on 32x32, 16x16 and 8x8 maps, transitions that halve channels and map size, a final
    BatchNormalization and ReLU, global average pooling and the classifier.
    DenseNet-BC-100 with k=12 has 769,162 trainable parameters (the paper's 0.8M).

    Args:
        depth: 6n + 4 (100, 190, 250 in the paper; small ones like 16 for quick tests).
        growth_rate: k, the filters each layer adds (12, 24 or 40 in the paper).
        input_shape: (height, width, channels), at least 4x4.
        classes: the number of classes.
        include_top: keep the pooling and the classifier; False returns the final map.
        weights: must be None (no pretrained weights).
        classifier_activation: the output activation ("softmax", or None for logits).

    Returns:
        A built, uncompiled :class:`~fundl.models.Model`: (batch, *input_shape) ->
        (batch, classes).

    Example:
        >>> model = fundl.zoo.densenet_bc_cifar(100, growth_rate=12)
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise ValueError(f"fundl.zoo.densenet_bc_cifar: depth must be 6n + 4 for n >= 1 (100, "
                         f"190, 250, ...), got {depth!r}.")
    if isinstance(growth_rate, bool) or not isinstance(growth_rate, int) or growth_rate < 1:
        raise ValueError(f"fundl.zoo.densenet_bc_cifar: growth_rate must be a positive int, got "
                         f"{growth_rate!r}.")
    name = f"densenet_bc_{depth}_{growth_rate}"
    shape = check_args("densenet_bc_cifar", input_shape, classes, include_top, weights)
    layers = (depth - 4) // 6

    def body(x):
        x = Conv2D(2 * growth_rate, 3, padding="same", use_bias=False,
                   kernel_initializer="he_normal", name="conv1_conv")(x)
        channels = 2 * growth_rate
        for i in range(3):
            x = _dense_block(x, layers, growth_rate, f"conv{i + 2}")
            channels += growth_rate * layers
            if i < 2:
                channels //= 2
                x = _transition(x, channels, f"pool{i + 2}")
        return _head(x, include_top, classes, classifier_activation)

    return build("densenet_bc_cifar", shape, body, name)
