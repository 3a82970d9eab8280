"""Residual networks (He, Zhang, Ren and Sun, 2016): ImageNet ResNet-18 to 152 and CIFAR ResNets."""
from __future__ import annotations

from ..layers import (
    Activation, Add, BatchNormalization, Conv2D, Dense, GlobalAveragePooling2D, MaxPooling2D,
    Reshape, ZeroPadding2D, ZeroPadding3D,
)
from ._common import build, check_args, named_depth

# torchvision's batch-norm settings (PyTorch's momentum 0.1 is Keras's 0.9)
_BN = {"epsilon": 1e-5, "momentum": 0.9}


def _conv_bn(x, filters, size, name, strides=1, relu=True):
    """A bias-free convolution, BatchNormalization and (optionally) ReLU.

    3x3 convolutions pad 1 on both sides, as torchvision: Keras's "same" pads only after the
    image when the stride is 2, which shifts every window by one pixel.
    """
    padding = "valid" if size == 1 else (size - 1) // 2
    x = Conv2D(filters, size, strides=strides, padding=padding, use_bias=False,
               kernel_initializer="he_normal", name=name + "_conv")(x)
    x = BatchNormalization(**_BN, name=name + "_bn")(x)
    return Activation("relu", name=name + "_relu")(x) if relu else x


def _basic_block(x, filters, strides, name, shortcut):
    """Two 3x3 convolutions plus the shortcut (ResNet-18/34 and the CIFAR ResNets)."""
    y = _conv_bn(x, filters, 3, name + "_1", strides)
    y = _conv_bn(y, filters, 3, name + "_2", relu=False)
    return Activation("relu", name=name + "_out")(Add(name=name + "_add")([shortcut(x), y]))


def _bottleneck_block(x, filters, strides, name, shortcut):
    """1x1 reduce, 3x3 (with the stride, as torchvision's "v1.5"), 1x1 expand to 4x filters."""
    y = _conv_bn(x, filters, 1, name + "_1")
    y = _conv_bn(y, filters, 3, name + "_2", strides)
    y = _conv_bn(y, 4 * filters, 1, name + "_3", relu=False)
    return Activation("relu", name=name + "_out")(Add(name=name + "_add")([shortcut(x), y]))


def _projection(filters, strides, name):
    """Option B: a strided 1x1 convolution and BatchNormalization where the shape changes."""
    def shortcut(x):
        return _conv_bn(x, filters, 1, name + "_0", strides, relu=False)
    return shortcut


def _identity(x):
    return x


_IMAGENET = {
    18: (_basic_block, (2, 2, 2, 2), 1),
    34: (_basic_block, (3, 4, 6, 3), 1),
    50: (_bottleneck_block, (3, 4, 6, 3), 4),
    101: (_bottleneck_block, (3, 4, 23, 3), 4),
    152: (_bottleneck_block, (3, 8, 36, 3), 4),
}


def resnet(depth, input_shape=(224, 224, 3), classes=1000, include_top=True, weights=None,
           classifier_activation="softmax"):
    """An ImageNet ResNet of ``depth`` 18, 34, 50, 101 or 152 layers, as torchvision builds it.

    A 7x7/2 convolution and a 3x3/2 max pool, four stages of residual blocks (64, 128, 256,
    512 filters; stages 2-4 start with stride 2), global average pooling and the classifier.
    ResNet-18/34 use basic blocks (two 3x3 convolutions), 50/101/152 bottleneck blocks
    (1x1, 3x3, 1x1 with 4x expansion). Convolutions have no bias (BatchNormalization follows
    each, epsilon 1e-5, momentum 0.9 = PyTorch's 0.1); shortcuts are identities except where
    the shape changes, where a strided 1x1 convolution projects (option B). As torchvision
    ("ResNet v1.5"), a bottleneck's stride is on its 3x3 convolution (the paper and Keras's
    ResNet50 put it on the first 1x1); 3x3 and 7x7 convolutions pad symmetrically.

    Trainable parameters at 224x224x3, 1000 classes, equal torchvision's: 11,689,512 /
    21,797,672 / 25,557,032 / 44,549,160 / 60,192,808. ``count_params()`` adds the
    BatchNormalization moving statistics (non-trainable), as Keras counts them.

    Args:
        depth: 18, 34, 50, 101 or 152.
        input_shape: (height, width, channels); 224x224 is the reference, maps shrink
            32-fold (32x32 gives 1x1 maps before the pooling).
        classes: the number of classes.
        include_top: keep the pooling and the classifier; False returns the last stage's map.
        weights: must be None (no pretrained weights).
        classifier_activation: the output activation ("softmax", or None for logits).

    Returns:
        A built, uncompiled :class:`~fundl.models.Model`: (batch, *input_shape) ->
        (batch, classes).

    Example:
        >>> model = fundl.zoo.resnet(50, input_shape=(64, 64, 3), classes=200)
    """
    if depth not in _IMAGENET:
        raise ValueError(f"fundl.zoo.resnet: depth must be one of {sorted(_IMAGENET)}, got "
                         f"{depth!r} (resnet_cifar builds the CIFAR depths 6n + 2).")
    name = f"resnet{depth}"
    shape = check_args(name, input_shape, classes, include_top, weights)
    block, repeats, expansion = _IMAGENET[depth]

    def body(x):
        x = _conv_bn(x, 64, 7, "conv1", strides=2)
        # torchvision pads the max pool by 1 with -inf; after a ReLU, zeros are the same
        x = ZeroPadding2D(1, name="pool1_pad")(x)
        x = MaxPooling2D(3, strides=2, name="pool1_pool")(x)
        channels = 64
        for stage, (n, filters) in enumerate(zip(repeats, (64, 128, 256, 512))):
            for i in range(n):
                strides = 2 if stage > 0 and i == 0 else 1
                label = f"conv{stage + 2}_block{i + 1}"
                change = strides != 1 or channels != filters * expansion
                shortcut = (_projection(filters * expansion, strides, label) if change
                            else _identity)
                x = block(x, filters, strides, label, shortcut)
                channels = filters * expansion
        if include_top:
            x = GlobalAveragePooling2D(name="avg_pool")(x)
            x = Dense(classes, activation=classifier_activation, name="predictions")(x)
        return x

    return build(name, shape, body, name)


def _named(depth, count):
    return named_depth(resnet, "resnet", depth, count)


resnet18 = _named(18, "11,689,512")
resnet34 = _named(34, "21,797,672")
resnet50 = _named(50, "25,557,032")
resnet101 = _named(101, "44,549,160")
resnet152 = _named(152, "60,192,808")


def _zero_padded(filters, strides, name):
    """Option A: subsample by ``strides`` and append zero channels; no parameters.

    The channel padding reads the (height, width, channels) map as a volume with channels as
    its third spatial axis, so ZeroPadding3D pads them; half the new channels go before, half
    after, as the common PyTorch CIFAR implementation does.
    """
    def shortcut(x):
        _, h, w, c = x.shape
        # a 1x1 "pool" with a stride keeps every strides-th pixel: x[:, ::2, ::2, :]
        x = MaxPooling2D(1, strides=strides, name=name + "_0_subsample")(x)
        h, w = -(-h // strides), -(-w // strides)
        extra = filters - c
        x = Reshape((h, w, c, 1), name=name + "_0_split")(x)
        x = ZeroPadding3D(((0, 0), (0, 0), (extra // 2, extra - extra // 2)),
                          name=name + "_0_pad")(x)
        return Reshape((h, w, filters), name=name + "_0_merge")(x)
    return shortcut


def resnet_cifar(depth=20, input_shape=(32, 32, 3), classes=10, include_top=True, weights=None,
                 classifier_activation="softmax", shortcut="A"):
    """A CIFAR-10 ResNet of ``depth`` = 6n + 2 layers (He et al. 2016, section 4.2).

    A 3x3 convolution of 16 filters, three stages of n basic blocks on 32x32, 16x16 and 8x8
    maps with 16, 32 and 64 filters (stages 2 and 3 start with stride 2), global average
    pooling and the classifier. Convolutions have no bias (BatchNormalization follows each)
    and He-normal initialisation.

    Shortcuts are identities; where the shape changes (twice) they are:

    - ``shortcut="A"`` (default, the paper's CIFAR choice): subsampling plus zero channels, no
      parameters. ResNet-20/32/44/56/110 then have 269,722 / 464,154 / 658,586 / 853,018 /
      1,727,962 trainable parameters (the paper's 0.27M / 0.46M / 0.66M / 0.85M / 1.7M).
    - ``shortcut="B"``: a strided 1x1 convolution and BatchNormalization (2,752 more
      trainable parameters; ResNet-20: 272,474).

    Args:
        depth: 20, 32, 44, 56, 110 (the paper's), or any 6n + 2.
        input_shape: (height, width, channels) with known sizes (32x32x3 for CIFAR).
        classes: the number of classes.
        include_top: keep the pooling and the classifier; False returns the 8x8x64 map.
        weights: must be None (no pretrained weights).
        classifier_activation: the output activation ("softmax", or None for logits).
        shortcut: "A" (zero padding) or "B" (projection) where the shape changes.

    Returns:
        A built, uncompiled :class:`~fundl.models.Model`: (batch, *input_shape) ->
        (batch, classes).

    Example:
        >>> model = fundl.zoo.resnet_cifar(56)
        >>> model.compile(optimizer=fundl.optimizers.SGD(0.1, momentum=0.9),
        ...               loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"fundl.zoo.resnet_cifar: depth must be 6n + 2 for n >= 1 (20, 32, 44, "
                         f"56, 110, ...), got {depth!r}.")
    if shortcut not in ("A", "B"):
        raise ValueError(f"fundl.zoo.resnet_cifar: shortcut must be 'A' (zero padding) or 'B' "
                         f"(projection), got {shortcut!r}.")
    name = f"resnet{depth}_cifar"
    shape = check_args("resnet_cifar", input_shape, classes, include_top, weights)
    if shortcut == "A" and None in shape:
        raise ValueError(f"fundl.zoo.resnet_cifar: shortcut 'A' needs known height and width, got "
                         f"input_shape {input_shape!r}; use shortcut='B'.")
    n = (depth - 2) // 6

    def body(x):
        x = _conv_bn(x, 16, 3, "conv1")
        for stage, filters in enumerate((16, 32, 64)):
            for i in range(n):
                strides = 2 if stage > 0 and i == 0 else 1
                label = f"conv{stage + 2}_block{i + 1}"
                if strides == 1:
                    cut = _identity
                elif shortcut == "A":
                    cut = _zero_padded(filters, strides, label)
                else:
                    cut = _projection(filters, strides, label)
                x = _basic_block(x, filters, strides, label, cut)
        if include_top:
            x = GlobalAveragePooling2D(name="avg_pool")(x)
            x = Dense(classes, activation=classifier_activation, name="predictions")(x)
        return x

    return build("resnet_cifar", shape, body, name)
