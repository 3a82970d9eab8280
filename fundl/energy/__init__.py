"""Energy-based networks: Hopfield networks, Boltzmann machines, RBMs, deep belief networks,
and Markov chains (the sampling behind them)."""
from .hopfield import Hopfield
from .rbm import RBM

__all__ = ["Hopfield", "RBM"]
