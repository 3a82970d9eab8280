"""ResNet50, ResNet101 and ResNet152 as Keras builds them (He et al., 2016; version 1)."""
from __future__ import annotations

from ..layers import Activation, Add, BatchNormalization, Conv2D, MaxPooling2D, ZeroPadding2D
from ._common import avg_pool_top, check_args, finish, input_of

_EPS = 1.001e-5  # Keras's batch-norm epsilon in its ResNets
STACKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def _bn(name):
    return BatchNormalization(epsilon=_EPS, name=name)


def _block(x, filters, stride=1, conv_shortcut=True, name=None):
    """Keras's bottleneck block v1: the stride sits on the first 1x1 convolution."""
    if conv_shortcut:
        shortcut = Conv2D(4 * filters, 1, strides=stride, name=name + "_0_conv")(x)
        shortcut = _bn(name + "_0_bn")(shortcut)
    else:
        shortcut = x
    x = Conv2D(filters, 1, strides=stride, name=name + "_1_conv")(x)
    x = Activation("relu", name=name + "_1_relu")(_bn(name + "_1_bn")(x))
    x = Conv2D(filters, 3, padding="same", name=name + "_2_conv")(x)
    x = Activation("relu", name=name + "_2_relu")(_bn(name + "_2_bn")(x))
    x = Conv2D(4 * filters, 1, name=name + "_3_conv")(x)
    x = _bn(name + "_3_bn")(x)
    x = Add(name=name + "_add")([shortcut, x])
    return Activation("relu", name=name + "_out")(x)


def _stack(x, filters, blocks, stride1=2, name=None):
    x = _block(x, filters, stride=stride1, name=name + "_block1")
    for i in range(2, blocks + 1):
        x = _block(x, filters, conv_shortcut=False, name=f"{name}_block{i}")
    return x


def _resnet(depth, include_top, weights, input_tensor, input_shape, pooling, classes,
            classifier_activation, name):
    who = f"ResNet{depth}"
    shape = check_args(who, include_top, weights, input_tensor, input_shape, pooling, classes,
                       classifier_activation)
    inputs = input_of(input_tensor, shape)
    x = ZeroPadding2D(((3, 3), (3, 3)), name="conv1_pad")(inputs)
    x = Conv2D(64, 7, strides=2, name="conv1_conv")(x)
    x = Activation("relu", name="conv1_relu")(_bn("conv1_bn")(x))
    x = ZeroPadding2D(((1, 1), (1, 1)), name="pool1_pad")(x)
    x = MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for i, (filters, blocks) in enumerate(zip((64, 128, 256, 512), STACKS[depth])):
        x = _stack(x, filters, blocks, stride1=1 if i == 0 else 2, name=f"conv{i + 2}")
    x = avg_pool_top(x, include_top, pooling, classes, classifier_activation)
    return finish(who, inputs, x, name)


def ResNet50(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", name="resnet50"):
    """ResNet-50 with Keras's layers, names and arguments (``keras.applications.ResNet50``).

    Keras's build differs from torchvision's: every convolution has a bias and the stride of a
    down-sampling block sits on its first 1x1 convolution. 25,636,712 parameters (trainable
    and batch-norm statistics) at 224x224x3 with 1000 classes, Keras's count; the layer names
    (``conv1_conv``, ``conv2_block1_1_conv``, ..., ``predictions``) are Keras's too.

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
        >>> model = fundl.applications.ResNet50(input_shape=(64, 64, 3), classes=10)
    """
    return _resnet(50, include_top, weights, input_tensor, input_shape, pooling, classes,
                   classifier_activation, name)


def ResNet101(include_top=True, weights=None, input_tensor=None, input_shape=None,
              pooling=None, classes=1000, classifier_activation="softmax", name="resnet101"):
    """ResNet-101, Keras's build (see :func:`ResNet50`): 44,707,176 parameters at 224x224x3.

    Args:
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in :func:`ResNet50`.

    Returns:
        A built, uncompiled :class:`~fundl.models.Model`.

    Example:
        >>> model = fundl.applications.ResNet101(include_top=False, pooling="avg")
    """
    return _resnet(101, include_top, weights, input_tensor, input_shape, pooling, classes,
                   classifier_activation, name)


def ResNet152(include_top=True, weights=None, input_tensor=None, input_shape=None,
              pooling=None, classes=1000, classifier_activation="softmax", name="resnet152"):
    """ResNet-152, Keras's build (see :func:`ResNet50`): 60,419,944 parameters at 224x224x3.

    Args:
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in :func:`ResNet50`.

    Returns:
        A built, uncompiled :class:`~fundl.models.Model`.

    Example:
        >>> model = fundl.applications.ResNet152(include_top=False, pooling="avg")
    """
    return _resnet(152, include_top, weights, input_tensor, input_shape, pooling, classes,
                   classifier_activation, name)
