"""Keras's ``keras.applications`` names over fundl's own builds: ``VGG16``, ``VGG19``,
``ResNet50``, ``ResNet101``, ``ResNet152``, ``DenseNet121``, ``DenseNet169``,
``DenseNet201`` and ``InceptionV1`` (GoogLeNet).

Each takes Keras's arguments, ``include_top=True, weights=None, input_tensor=None,
input_shape=None, pooling=None, classes=1000, classifier_activation="softmax"``, and returns a
built, uncompiled functional model with Keras's layer names and parameter counts (VGG16
138,357,544; ResNet50 25,636,712; DenseNet121 8,062,504 at 224x224x3 with 1000 classes).

Pretrained weights are not shipped: ``weights`` must be None (the default here; Keras's is
``"imagenet"``), and any other value raises a ValueError that says so. Train the model, or
load weights you saved with ``model.load_weights(path)``.

Example:
    >>> from fundl.applications import ResNet50
    >>> model = ResNet50(input_shape=(64, 64, 3), classes=10)
    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    >>> base = fundl.applications.VGG16(include_top=False, pooling="avg",
    ...                                 input_shape=(32, 32, 3))   # a feature extractor
"""
from .densenet import DenseNet121, DenseNet169, DenseNet201
from .inception_v1 import GoogLeNet, InceptionV1
from .resnet import ResNet50, ResNet101, ResNet152
from .vgg import VGG16, VGG19

__all__ = ["DenseNet121", "DenseNet169", "DenseNet201", "GoogLeNet", "InceptionV1", "ResNet50",
           "ResNet101", "ResNet152", "VGG16", "VGG19"]
