"""VGG16 and VGG19 as Keras builds them (Simonyan & Zisserman, 2015)."""
from __future__ import annotations

from ..layers import Conv2D, Dense, Flatten, MaxPooling2D
from ..zoo.vgg import CONFIGS
from ._common import check_args, finish, input_of, pool


def _vgg(config, who, include_top, weights, input_tensor, input_shape, pooling, classes,
         classifier_activation, name):
    shape = check_args(who, include_top, weights, input_tensor, input_shape, pooling, classes,
                       classifier_activation)
    inputs = input_of(input_tensor, shape)
    x = inputs
    block, conv = 1, 1
    for item in CONFIGS[config]:
        if item == "M":
            x = MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
            block, conv = block + 1, 1
        else:
            x = Conv2D(item, 3, padding="same", activation="relu",
                       name=f"block{block}_conv{conv}")(x)
            conv += 1
    if include_top:
        x = Flatten(name="flatten")(x)
        x = Dense(4096, activation="relu", name="fc1")(x)
        x = Dense(4096, activation="relu", name="fc2")(x)
        x = Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = pool(x, pooling)
    return finish(who, inputs, x, name)


def VGG16(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
          classes=1000, classifier_activation="softmax", name="vgg16"):
    """VGG16 (configuration D) with Keras's layers, names and arguments.

    Thirteen 3x3 "same" convolutions with ReLU in five blocks closed by 2x2 max pools, then
    (``include_top``) ``flatten``, ``fc1`` and ``fc2`` (4096, ReLU, no dropout, as Keras) and
    ``predictions``. 138,357,544 parameters at 224x224x3 with 1000 classes, Keras's count.

    Args:
        include_top: keep the three dense layers. Default True.
        weights: must be None: fundl ships no pretrained weights (any other value raises a
            ValueError saying so; load your own with ``model.load_weights(path)``).
        input_tensor: an optional symbolic tensor (``fundl.layers.Input(...)`` or a layer's
            output) to build the network on.
        input_shape: (height, width, channels), at least 32x32; default (224, 224, 3)
            (with ``include_top=False``: (None, None, 3), any size).
        pooling: with ``include_top=False``: None (the 4-D map of the last block), ``"avg"`` or
            ``"max"`` (global pooling to a vector).
        classes: the number of classes (with ``include_top``). Default 1000.
        classifier_activation: the output activation; None gives logits. Default "softmax".
        name: the model's name.

    Returns:
        A built, uncompiled :class:`~fundl.models.Model`.

    Example:
        >>> model = fundl.applications.VGG16(input_shape=(32, 32, 3), classes=10)
        >>> features = fundl.applications.VGG16(include_top=False, pooling="avg")
    """
    return _vgg("D", "VGG16", include_top, weights, input_tensor, input_shape, pooling, classes,
                classifier_activation, name)


def VGG19(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
          classes=1000, classifier_activation="softmax", name="vgg19"):
    """VGG19 (configuration E) with Keras's layers, names and arguments.

    As :func:`VGG16` with four convolutions in each of the last three blocks:
    143,667,240 parameters at 224x224x3 with 1000 classes.

    Args:
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in :func:`VGG16`.

    Returns:
        A built, uncompiled :class:`~fundl.models.Model`.

    Example:
        >>> model = fundl.applications.VGG19(input_shape=(64, 64, 3), classes=10)
    """
    return _vgg("E", "VGG19", include_top, weights, input_tensor, input_shape, pooling, classes,
                classifier_activation, name)
