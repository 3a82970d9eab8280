"""GoogLeNet, Inception v1 (Szegedy et al., 2015), with the dimension-reduction modules."""
from __future__ import annotations

from ..layers import (
    Activation, AveragePooling2D, BatchNormalization, Concatenate, Conv2D, Dense, Dropout,
    Flatten, GlobalAveragePooling2D, LocalResponseNormalization, MaxPooling2D,
)
from ._common import build, check_args

# Table 1 of the paper: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
INCEPTION = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}


def googlenet(input_shape=(224, 224, 3), classes=1000, include_top=True, weights=None,
              classifier_activation="softmax", aux_logits=False, original=False):
    """GoogLeNet: a stem, nine Inception modules with 1x1 reductions, global average pooling.

    Each Inception module concatenates four branches: a 1x1 convolution; a 1x1 reduction then
    a 3x3; a 1x1 reduction then a "5x5"; a 3x3 max pool (stride 1) then a 1x1 projection, with
    the widths of the paper's Table 1.

    Two builds:

    - ``original=False`` (default), torchvision's ``googlenet``, the widely used one: every
      convolution is bias-free and followed by BatchNormalization (epsilon 1e-3) and ReLU, the
      "5x5" branch uses a 3x3 kernel (a known quirk of torchvision, kept for weight
      compatibility), the pool before 5a is 2x2, no LRN, dropout 0.2. 6,624,904 trainable
      parameters at 224x224x3 with 1000 classes, as torchvision's without auxiliary
      classifiers; ``count_params()`` also counts the BatchNormalization moving statistics
      (non-trainable, 2 x 7,280 more), as Keras does.
    - ``original=True``, the 2014 paper: convolutions with biases and ReLU, no batch
      normalisation, true 5x5 kernels, LRN after the stem's first pool and after its 3x3
      convolution, a 3x3 pool before 5a, dropout 0.4. 6,998,552 parameters.

    The 7x7 average pool before the classifier is :class:`GlobalAveragePooling2D` (the same at
    224x224, and it adapts to other sizes). Max pools use "same" padding, which gives the
    sizes of torchvision's ``ceil_mode=True``.

    Args:
        input_shape: (height, width, channels); 224x224 is the reference, maps shrink
            32-fold (32x32 gives 1x1 maps before the pooling); at least 80x80 with
            ``aux_logits``.
        classes: the number of classes.
        include_top: keep the pooling, dropout and classifier; False returns 5b's map
            (7x7x1024 at 224x224).
        weights: must be None (no pretrained weights).
        classifier_activation: the output activation ("softmax", or None for logits).
        aux_logits: also return the two auxiliary classifiers on 4a and 4d (average pool 5x5
            stride 3, 1x1 convolution of 128, dense 1024 with ReLU, dropout 0.7, the
            classifier): the model then has three outputs ``[main, aux1, aux2]``, trained with
            ``loss_weights=[1, 0.3, 0.3]`` as in the paper; torchvision's count is then
            13,004,888. Needs ``include_top``.
        original: the paper's build instead of torchvision's (see above).

    Returns:
        A built, uncompiled :class:`~fundl.models.Model`: (batch, *input_shape) ->
        (batch, classes), or a list of three such outputs with ``aux_logits``.

    Example:
        >>> model = fundl.zoo.googlenet(input_shape=(96, 96, 3), classes=10)
    """
    shape = check_args("googlenet", input_shape, classes, include_top, weights)
    if aux_logits and not include_top:
        raise ValueError("fundl.zoo.googlenet: aux_logits=True needs include_top=True (the "
                         "auxiliary classifiers are classifiers).")

    def conv(x, filters, size, name, strides=1, padding="same"):
        if original:
            return Conv2D(filters, size, strides=strides, padding=padding, activation="relu",
                          name=name)(x)
        x = Conv2D(filters, size, strides=strides, padding=padding, use_bias=False,
                   name=name)(x)
        x = BatchNormalization(epsilon=1e-3, momentum=0.9, name=name + "_bn")(x)
        return Activation("relu", name=name + "_relu")(x)

    def inception(x, key):
        n1, r3, n3, r5, n5, proj = INCEPTION[key]
        p = f"inception{key}_"
        b1 = conv(x, n1, 1, p + "1x1")
        b2 = conv(conv(x, r3, 1, p + "3x3_reduce"), n3, 3, p + "3x3")
        b3 = conv(conv(x, r5, 1, p + "5x5_reduce"), n5, 5 if original else 3, p + "5x5")
        b4 = MaxPooling2D(3, strides=1, padding="same", name=p + "pool")(x)
        b4 = conv(b4, proj, 1, p + "pool_proj")
        return Concatenate(name=p + "output")([b1, b2, b3, b4])

    def aux(x, name):
        x = AveragePooling2D(5, strides=3, name=name + "_pool")(x)
        x = conv(x, 128, 1, name + "_conv")
        x = Flatten(name=name + "_flatten")(x)
        x = Dense(1024, activation="relu", name=name + "_fc1")(x)
        x = Dropout(0.7, name=name + "_drop")(x)
        return Dense(classes, activation=classifier_activation, name=name + "_predictions")(x)

    def lrn(x, name):
        return LocalResponseNormalization(2, 2.0, 1e-4, 0.75, name=name)(x) if original else x

    def body(x):
        # padding 3 on both sides, as torchvision (Keras's "same" would pad 2 before, 3 after)
        x = conv(x, 64, 7, "conv1", strides=2, padding=3)
        x = MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
        x = lrn(x, "lrn1")
        x = conv(x, 64, 1, "conv2")
        x = conv(x, 192, 3, "conv3")
        x = lrn(x, "lrn2")
        x = MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
        x = inception(inception(x, "3a"), "3b")
        x = MaxPooling2D(3, strides=2, padding="same", name="pool3")(x)
        x = inception(x, "4a")
        aux1 = aux(x, "aux1") if aux_logits else None
        x = inception(inception(inception(x, "4b"), "4c"), "4d")
        aux2 = aux(x, "aux2") if aux_logits else None
        x = inception(x, "4e")
        x = MaxPooling2D(3 if original else 2, strides=2, padding="same", name="pool4")(x)
        x = inception(inception(x, "5a"), "5b")
        if include_top:
            x = GlobalAveragePooling2D(name="avg_pool")(x)
            x = Dropout(0.4 if original else 0.2, name="dropout")(x)
            x = Dense(classes, activation=classifier_activation, name="predictions")(x)
        return [x, aux1, aux2] if aux_logits else x

    return build("googlenet", shape, body, "googlenet")
