"""Clustering estimators with scikit-learn's conventions (``fit`` returns self, fitted
attributes end in ``_``)."""
from ._estimator import ConvergenceWarning, NotFittedError
from .kmeans import KMeans

__all__ = ["ConvergenceWarning", "KMeans", "NotFittedError"]
