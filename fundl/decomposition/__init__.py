"""Matrix decompositions with scikit-learn's conventions: PCA, dictionary learning and sparse
coding."""
from .dictionary import DictionaryLearning, SparseCoder, sparse_encode
from .pca import PCA

__all__ = ["DictionaryLearning", "PCA", "SparseCoder", "sparse_encode"]
