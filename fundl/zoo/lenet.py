"""LeNet-5 (LeCun, Bottou, Bengio and Haffner, 1998), the first convolutional network zoo model."""
from __future__ import annotations

from ..layers import AveragePooling2D, Conv2D, Dense, Flatten
from ._common import build, check_args


def lenet5(input_shape=(32, 32, 1), classes=10, include_top=True, weights=None,
           classifier_activation="softmax"):
    """LeNet-5: two convolution/subsampling stages, then C5, F6 and the output layer.

    The layers of the paper, with modern stand-ins where it used special units:

    ========  ==================================================  ==========
    layer     here                                                parameters
    ========  ==================================================  ==========
    C1        Conv2D 6 @ 5x5, tanh                                156
    S2        AveragePooling2D 2x2                                0
    C3        Conv2D 16 @ 5x5, tanh, every C3 map sees all six    2,416
    S4        AveragePooling2D 2x2                                0
    C5        Conv2D 120 @ 5x5, tanh (1x1 maps on 32x32 inputs)   48,120
    F6        Dense 84, tanh                                      10,164
    output    Dense ``classes`` (softmax instead of RBF units)    850
    ========  ==================================================  ==========

    61,706 parameters on 32x32x1 inputs with 10 classes. Simplifications of the original: the
    subsampling layers have no trainable coefficient and bias (plain averages), C3 is fully
    connected to S2 (the paper's sparse connection table saves 900 weights), tanh replaces
    the scaled ``1.7159 tanh(2a/3)``, and the output is a softmax, not Euclidean RBF units.

    Inputs smaller than 32x32 (MNIST's 28x28) get padding "same" on C1, which is LeCun's own
    preprocessing (the digits centred in a 32x32 field with a 2-pixel zero border): C1's output
    is then 28x28 and every later shape is the classic one. 32x32 and larger use "valid".

    Args:
        input_shape: (height, width, channels), at least 28x28 for the classic shapes.
        classes: the number of classes.
        include_top: keep F6 and the output layer; False returns C5's (1, 1, 120) feature map.
        weights: must be None (no pretrained weights).
        classifier_activation: the output activation ("softmax", or None for logits).

    Returns:
        A built, uncompiled :class:`~fundl.models.Model`: (batch, *input_shape) ->
        (batch, classes).

    Example:
        >>> model = fundl.zoo.lenet5(input_shape=(28, 28, 1))
        >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
        ...               metrics=["accuracy"])
        >>> model.count_params()
        61706
    """
    shape = check_args("lenet5", input_shape, classes, include_top, weights)
    small = any(s is not None and s < 32 for s in shape[:2])

    def body(x):
        x = Conv2D(6, 5, padding="same" if small else "valid", activation="tanh", name="c1")(x)
        x = AveragePooling2D(2, name="s2")(x)
        x = Conv2D(16, 5, activation="tanh", name="c3")(x)
        x = AveragePooling2D(2, name="s4")(x)
        x = Conv2D(120, 5, activation="tanh", name="c5")(x)
        if include_top:
            x = Flatten(name="flatten")(x)
            x = Dense(84, activation="tanh", name="f6")(x)
            x = Dense(classes, activation=classifier_activation, name="predictions")(x)
        return x

    return build("lenet5", shape, body, "lenet5")
