"""Classic neural networks as scikit-learn-style estimators: Rosenblatt's perceptron and the
two-stage radial-basis-function network."""
from .perceptron import Perceptron
from .rbf_network import RBFNetwork

__all__ = ["Perceptron", "RBFNetwork"]
