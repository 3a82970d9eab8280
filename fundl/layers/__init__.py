"""Layers: the building blocks of models (Keras names, arguments and weight layouts)."""
from .base import Layer, SymbolicTensor, register_serializable
from .core import (
    Activation, Dense, Dropout, Flatten, GaussianNoise, Input, InputLayer, Lambda, Reshape,
)
from .merge import Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract
from .norm import BatchNormalization, LayerNormalization, LocalResponseNormalization

__all__ = [
    "Activation", "Add", "Average", "Concatenate", "Dense", "Dropout", "Flatten", "GaussianNoise",
    "Input", "InputLayer", "Lambda", "Layer", "Maximum", "Minimum", "Multiply", "Reshape",
    "Subtract", "SymbolicTensor", "register_serializable",
    "BatchNormalization", "LayerNormalization", "LocalResponseNormalization",
]
