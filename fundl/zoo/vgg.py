"""VGG (Simonyan and Zisserman, 2015): every configuration, A to E, of the paper's Table 1."""
from __future__ import annotations

from ..layers import Conv2D, Dense, Dropout, Flatten, LocalResponseNormalization, MaxPooling2D
from ._common import build, check_args

# The columns of Table 1: an int is a 3x3 "same" convolution with that many filters, (1, n) a
# 1x1 convolution, "M" a 2x2 max pool, "LRN" local response normalisation.
CONFIGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "A-LRN": [64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "C": [64, 64, "M", 128, 128, "M", 256, 256, (1, 256), "M", 512, 512, (1, 512), "M",
          512, 512, (1, 512), "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}


def vgg(config, input_shape=(224, 224, 3), classes=1000, include_top=True, weights=None,
        classifier_activation="softmax", dropout=0.5):
    """A VGG network of configuration ``config`` ("A", "A-LRN", "B", "C", "D" or "E").

    Five blocks of 3x3 convolutions ("same", ReLU; C also has 1x1 ones), each closed by a 2x2
    max pool, then two dense layers of 4096 with dropout and the classifier. A-LRN adds local
    response normalisation after the first convolution (Krizhevsky's n=5, k=2,
    alpha=1e-4, beta=0.75). Names follow Keras's VGG16 (``block1_conv1`` ... ``fc1``, ``fc2``,
    ``predictions``), and the parameter counts at 224x224x3 with 1000 classes are those of the
    paper's Table 2 and of torchvision/Keras: A and A-LRN 132,863,336, B 133,047,848,
    C 133,638,952, D (VGG16) 138,357,544, E (VGG19) 143,667,240.

    Flatten runs over channels-last maps, so fc1's rows are in (row, column, channel) order
    (Keras's, not torchvision's). Inputs must be at least 32x32 (five halvings).

    Args:
        config: the column of Table 1: "A", "A-LRN", "B", "C", "D" or "E".
        input_shape: (height, width, channels).
        classes: the number of classes.
        include_top: keep fc1, fc2 and the classifier; False returns block5's pooled map.
        weights: must be None (no pretrained weights).
        classifier_activation: the output activation ("softmax", or None for logits).
        dropout: the dropout rate after fc1 and fc2 (0.5 in the paper; Keras's VGG16 has none).

    Returns:
        A built, uncompiled :class:`~fundl.models.Model`: (batch, *input_shape) ->
        (batch, classes).

    Example:
        >>> model = fundl.zoo.vgg("C", input_shape=(32, 32, 3), classes=10)
    """
    if config not in CONFIGS:
        raise ValueError(f"fundl.zoo.vgg: config must be one of {sorted(CONFIGS)}, got "
                         f"{config!r}.")
    name = "vgg_" + config.lower().replace("-", "_")
    who = f"vgg({config!r})"
    shape = check_args(who, input_shape, classes, include_top, weights)

    def body(x):
        block, conv = 1, 1
        for item in CONFIGS[config]:
            if item == "M":
                x = MaxPooling2D(2, name=f"block{block}_pool")(x)
                block, conv = block + 1, 1
            elif item == "LRN":
                x = LocalResponseNormalization(2, 2.0, 1e-4, 0.75, name=f"block{block}_lrn")(x)
            else:
                size, filters = item if isinstance(item, tuple) else (3, item)
                x = Conv2D(filters, size, padding="same", activation="relu",
                           name=f"block{block}_conv{conv}")(x)
                conv += 1
        if include_top:
            x = Flatten(name="flatten")(x)
            x = Dense(4096, activation="relu", name="fc1")(x)
            x = Dropout(dropout, name="drop1")(x)
            x = Dense(4096, activation="relu", name="fc2")(x)
            x = Dropout(dropout, name="drop2")(x)
            x = Dense(classes, activation=classifier_activation, name="predictions")(x)
        return x

    return build(who, shape, body, name)


def _named(config, name, count):
    def model(input_shape=(224, 224, 3), classes=1000, include_top=True, weights=None,
              classifier_activation="softmax", dropout=0.5):
        return vgg(config, input_shape=input_shape, classes=classes, include_top=include_top,
                   weights=weights, classifier_activation=classifier_activation,
                   dropout=dropout)

    model.__name__ = model.__qualname__ = name
    model.__doc__ = f"""{name.upper()}: :func:`vgg` with configuration "{config}".

    {count} parameters at 224x224x3 with 1000 classes.

    Args:
        input_shape, classes, include_top, weights, classifier_activation, dropout: as in
            :func:`vgg`.

    Returns:
        A built, uncompiled :class:`~fundl.models.Model`.

    Example:
        >>> model = fundl.zoo.{name}(input_shape=(32, 32, 3), classes=10)
    """
    return model


vgg11 = _named("A", "vgg11", "132,863,336")
vgg13 = _named("B", "vgg13", "133,047,848")
vgg16 = _named("D", "vgg16", "138,357,544")
vgg19 = _named("E", "vgg19", "143,667,240")
