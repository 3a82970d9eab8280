"""Matrix decompositions with scikit-learn's conventions: PCA, dictionary learning and sparse
coding."""
from .pca import PCA

__all__ = ["PCA"]
