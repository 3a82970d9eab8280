"""Layers: the building blocks of models (Keras names, arguments and weight layouts)."""
from .base import Layer, SymbolicTensor, register_serializable
from .channel import AWGN, EnergyNormalization
from .activation import ELU, LeakyReLU, PReLU, ReLU, Softmax
from .attention import Attention, MultiHeadAttention
from .augmentation import (
    RandomContrast, RandomFlip, RandomRotation, RandomTranslation, RandomZoom,
)
from .embedding import Embedding, Masking
from .core import (
    Activation, Dense, Dropout, Flatten, GaussianNoise, Input, InputLayer, Lambda, Reshape,
)
from .conv import (
    Conv1D, Conv1DTranspose, Conv2D, Conv2DTranspose, Conv3D, DepthwiseConv2D, SeparableConv2D,
    UpSampling1D, UpSampling2D, ZeroPadding1D, ZeroPadding2D, ZeroPadding3D,
)
from .graph import GraphConv
from .noise import GaussianDropout, SpatialDropout1D, SpatialDropout2D
from .preprocessing import Normalization, Rescaling
from .rbf import RBF
from .reshaping import Cropping1D, Cropping2D, Permute, RepeatVector
from .merge import (
    Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract, add, average, concatenate,
    maximum, minimum, multiply, subtract,
)
from .norm import BatchNormalization, LayerNormalization, LocalResponseNormalization
from .recurrent import (
    GRU, LSTM, RNN, Bidirectional, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell, TimeDistributed,
)
from .pool import (
    AveragePooling1D, AveragePooling2D, AveragePooling3D, GlobalAveragePooling1D,
    GlobalAveragePooling2D, GlobalAveragePooling3D, GlobalMaxPooling1D, GlobalMaxPooling2D,
    GlobalMaxPooling3D, MaxPooling1D, MaxPooling2D, MaxPooling3D,
)

__all__ = [
    "RandomContrast", "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom",
    "Attention", "MultiHeadAttention", "RBF", "AWGN", "EnergyNormalization",
    "ELU", "LeakyReLU", "PReLU", "ReLU", "Softmax", "Normalization", "Rescaling",
    "Cropping1D", "Cropping2D", "Permute", "RepeatVector", "GaussianDropout",
    "SpatialDropout1D", "SpatialDropout2D", "add", "average", "concatenate", "maximum",
    "minimum", "multiply", "subtract", "DepthwiseConv2D", "SeparableConv2D",
    "Conv1DTranspose", "UpSampling1D",
    "Activation", "Add", "Average", "Concatenate", "Dense", "Dropout", "Flatten", "GaussianNoise",
    "GraphConv", "Input", "InputLayer", "Lambda", "Layer", "Maximum", "Minimum", "Multiply",
    "Reshape", "Subtract", "SymbolicTensor", "register_serializable",
    "BatchNormalization", "LayerNormalization", "LocalResponseNormalization",
    "Bidirectional", "Embedding", "GRU", "GRUCell", "LSTM", "LSTMCell", "Masking", "RNN",
    "SimpleRNN", "SimpleRNNCell", "TimeDistributed",
    "Conv1D", "Conv2D", "Conv2DTranspose", "Conv3D", "UpSampling2D", "ZeroPadding1D",
    "ZeroPadding2D", "ZeroPadding3D",
    "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "GlobalMaxPooling3D", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D",
]
