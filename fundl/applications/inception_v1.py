"""InceptionV1 (GoogLeNet, Szegedy et al., 2015) with Keras's application arguments.

Keras ships no Inception v1; this wraps :func:`fundl.zoo.googlenet` (torchvision's build,
batch-normalised, 6.6M trainable parameters) behind the same arguments as the other
applications.
"""
from __future__ import annotations

from ..zoo.googlenet import googlenet
from ._common import check_args, finish, input_of, pool


def InceptionV1(include_top=True, weights=None, input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax",
                name="inception_v1"):
    """GoogLeNet / Inception v1 with Keras's application arguments.

    The network is :func:`fundl.zoo.googlenet` (torchvision's build: 6,624,904 trainable
    parameters at 224x224x3 with 1000 classes, plus 14,560 batch-norm statistics), used as
    one nested block of the returned model.

    Args:
        include_top: keep global pooling, dropout and the classifier. Default True.
        weights: must be None: fundl ships no pretrained weights (any other value raises a
            ValueError saying so; load your own with ``model.load_weights(path)``).
        input_tensor: an optional symbolic tensor to build the network on.
        input_shape: (height, width, channels), at least 32x32; default (224, 224, 3)
            (with ``include_top=False``: (None, None, 3)).
        pooling: with ``include_top=False``: None (5b's map), ``"avg"`` or ``"max"``.
        classes: the number of classes. Default 1000.
        classifier_activation: the output activation; None gives logits.
        name: the model's name.

    Returns:
        A built, uncompiled :class:`~fundl.models.Model`.

    Example:
        >>> model = fundl.applications.InceptionV1(input_shape=(64, 64, 3), classes=10)
    """
    shape = check_args("InceptionV1", include_top, weights, input_tensor, input_shape, pooling,
                       classes, classifier_activation)
    net = googlenet(input_shape=shape, classes=classes if include_top else 1000,
                    include_top=include_top, classifier_activation=classifier_activation)
    inputs = input_of(input_tensor, shape)
    x = net(inputs)
    if not include_top:
        x = pool(x, pooling)
    return finish("InceptionV1", inputs, x, name)


GoogLeNet = InceptionV1
