"""Energy-based networks: Hopfield networks, Boltzmann machines, RBMs, deep belief networks,
and Markov chains (the sampling behind them)."""
from .boltzmann import BoltzmannMachine
from .dbn import DBN
from .hopfield import Hopfield
from .markov import MarkovChain
from .rbm import RBM

__all__ = ["BoltzmannMachine", "DBN", "Hopfield", "MarkovChain", "RBM"]
