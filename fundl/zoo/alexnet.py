"""AlexNet (Krizhevsky, Sutskever and Hinton, 2012), as the single-tower torchvision build."""
from __future__ import annotations

from ..layers import Conv2D, Dense, Dropout, Flatten, LocalResponseNormalization, MaxPooling2D
from ._common import build, check_args


def alexnet(input_shape=(224, 224, 3), classes=1000, include_top=True, weights=None,
            classifier_activation="softmax", lrn=False, dropout=0.5):
    """AlexNet: five convolutions (11x11 stride 4 first) with overlapping max pooling, three dense.

    The variant is torchvision's ``alexnet``, the single-GPU network of Krizhevsky's "One weird
    trick" (2014): 64, 192, 384, 256, 256 filters (the 2012 paper split 96, 256, 384, 384, 256
    over two GPUs with some layers seeing only their own half). At 224x224x3 with 1000 classes
    it has 61,100,840 parameters, as torchvision's.

    ======  ===========================================  ===============
    layer   here                                         output (224px)
    ======  ===========================================  ===============
    conv1   Conv2D 64 @ 11x11 / 4, padding 2, ReLU        55x55x64
    pool1   MaxPooling2D 3x3 / 2                         27x27x64
    conv2   Conv2D 192 @ 5x5, "same", ReLU               27x27x192
    pool2   MaxPooling2D 3x3 / 2                         13x13x192
    conv3-5 Conv2D 384, 256, 256 @ 3x3, "same", ReLU     13x13x256
    pool5   MaxPooling2D 3x3 / 2                         6x6x256
    fc6-7   Dropout, Dense 4096, ReLU (twice)            4096
    output  Dense ``classes``                            ``classes``
    ======  ===========================================  ===============

    torchvision puts an adaptive 6x6 average pool before the classifier; at 224x224 it is the
    identity, so it is left out: at other sizes fc6's input is whatever pool5 gives
    (the smallest input is 63x63, where pool5 is 1x1). Flatten runs over channels-last
    maps, so fc6's rows are in (row, column, channel) order, not torchvision's (channel, row,
    column).

    Args:
        input_shape: (height, width, channels), at least 63x63.
        classes: the number of classes.
        include_top: keep the classifier (fc6, fc7, output); False returns pool5's map.
        weights: must be None (no pretrained weights).
        classifier_activation: the output activation ("softmax", or None for logits).
        lrn: add the paper's local response normalisation after the ReLUs of conv1 and conv2
            (n=5, k=2, alpha=1e-4, beta=0.75; no parameters), as in the 2012 network.
        dropout: the dropout rate before fc6 and fc7 (0.5 in the paper).

    Returns:
        A built, uncompiled :class:`~fundl.models.Model`: (batch, *input_shape) ->
        (batch, classes).

    Example:
        >>> model = fundl.zoo.alexnet(lrn=True)
        >>> model.count_params()
        61100840
    """
    shape = check_args("alexnet", input_shape, classes, include_top, weights)

    def body(x):
        # padding=2 on both sides, as torchvision (Keras's "same" would give 56x56)
        x = Conv2D(64, 11, strides=4, padding=2, activation="relu", name="conv1")(x)
        if lrn:
            x = LocalResponseNormalization(2, 2.0, 1e-4, 0.75, name="lrn1")(x)
        x = MaxPooling2D(3, strides=2, name="pool1")(x)
        x = Conv2D(192, 5, padding="same", activation="relu", name="conv2")(x)
        if lrn:
            x = LocalResponseNormalization(2, 2.0, 1e-4, 0.75, name="lrn2")(x)
        x = MaxPooling2D(3, strides=2, name="pool2")(x)
        x = Conv2D(384, 3, padding="same", activation="relu", name="conv3")(x)
        x = Conv2D(256, 3, padding="same", activation="relu", name="conv4")(x)
        x = Conv2D(256, 3, padding="same", activation="relu", name="conv5")(x)
        x = MaxPooling2D(3, strides=2, name="pool5")(x)
        if include_top:
            x = Flatten(name="flatten")(x)
            x = Dropout(dropout, name="drop6")(x)
            x = Dense(4096, activation="relu", name="fc6")(x)
            x = Dropout(dropout, name="drop7")(x)
            x = Dense(4096, activation="relu", name="fc7")(x)
            x = Dense(classes, activation=classifier_activation, name="predictions")(x)
        return x

    return build("alexnet", shape, body, "alexnet")
