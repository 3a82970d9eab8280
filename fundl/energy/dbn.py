"""Deep belief networks (Hinton, Osindero & Teh 2006): RBMs stacked by greedy layer-wise
training, then unrolled into a feed-forward network for supervised fine-tuning."""
from __future__ import annotations

import numpy

from ..cluster._estimator import check_array, check_fitted, check_n_features, check_random_state
from .rbm import RBM


class DBN:
    """A stack of Bernoulli RBMs trained greedily, one layer at a time.

    ``fit`` trains the first RBM on the data, then each next RBM on the hidden probabilities of
    the one below (the layer-wise pre-training that started deep learning in 2006).
    ``to_model`` turns the stack into an ordinary fundl ``Sequential`` of sigmoid ``Dense``
    layers whose kernels and biases are the RBMs' ``components_.T`` and ``intercept_hidden_``,
    plus a fresh output layer, to fine-tune with ``compile``/``fit``.

    Args:
        hidden_layer_sizes: the hidden units of each RBM, bottom first, e.g. ``(256, 128)``.
        learning_rate, batch_size, n_iter, k: passed to each :class:`RBM` (PCD-k).
        random_state: None, an int or a ``numpy.random.Generator``; each RBM gets its own seed
            drawn from it.

    Attributes:
        rbms_: the fitted :class:`RBM` of each layer.

    Example:
        >>> X = (numpy.random.default_rng(0).random((200, 20)) > 0.5).astype(numpy.float32)
        >>> dbn = DBN((16, 8), n_iter=2, random_state=0).fit(X)
        >>> dbn.transform(X).shape
        (200, 8)
        >>> model = dbn.to_model(3)   # Dense(16, sigmoid) -> Dense(8, sigmoid) -> Dense(3, softmax)
    """

    def __init__(self, hidden_layer_sizes, learning_rate=0.1, batch_size=10, n_iter=10, k=1,
                 random_state=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.k = k
        self.random_state = random_state

    def fit(self, X, y=None):
        """Greedy layer-wise pre-training on X ``(n_samples, n_features)`` in [0, 1]; returns
        self."""
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, (int, numpy.integer)):
            sizes = (sizes,)
        if not isinstance(sizes, (tuple, list)) or not sizes or any(
                isinstance(s, bool) or not isinstance(s, (int, numpy.integer)) or s < 1
                for s in sizes):
            raise ValueError(f"DBN: hidden_layer_sizes must be a non-empty sequence of positive "
                             f"integers, e.g. (256, 128); got {self.hidden_layer_sizes!r}.")
        X = check_array(X, "DBN.fit")
        rng = check_random_state(self.random_state)
        self.rbms_ = []
        inputs = X
        for size in sizes:
            rbm = RBM(n_components=int(size), learning_rate=self.learning_rate,
                      batch_size=self.batch_size, n_iter=self.n_iter, k=self.k,
                      random_state=int(rng.integers(2**31)))
            inputs = rbm.fit(inputs).transform(inputs)
            self.rbms_.append(rbm)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        """The top layer's hidden probabilities, ``(n_samples, hidden_layer_sizes[-1])``."""
        check_fitted(self, "rbms_")
        X = check_array(X, "DBN.transform")
        check_n_features(self, X, self.n_features_in_, "DBN.transform")
        for rbm in self.rbms_:
            X = rbm.transform(X)
        return X

    def fit_transform(self, X, y=None):
        """Fit and return the top layer's features of X."""
        return self.fit(X).transform(X)

    def to_model(self, n_outputs, activation="softmax"):
        """A fundl ``Sequential`` initialised from the RBMs, with a new output layer.

        Args:
            n_outputs: the output layer's units (e.g. 10 classes).
            activation: the output layer's activation (``"softmax"``, ``"sigmoid"``, None).

        Returns:
            ``Sequential([Dense(h1, "sigmoid"), ..., Dense(n_outputs, activation)])``, built for
            inputs of ``n_features_in_`` features, not compiled.
        """
        check_fitted(self, "rbms_")
        from ..layers import Dense
        from ..models import Sequential

        layers = []
        for i, rbm in enumerate(self.rbms_):
            kwargs = {"input_dim": self.n_features_in_} if i == 0 else {}
            layers.append(Dense(rbm.n_components, activation="sigmoid", **kwargs))
        layers.append(Dense(int(n_outputs), activation=activation))
        model = Sequential(layers)
        for layer, rbm in zip(layers, self.rbms_):
            kernel, bias = layer.get_weights()
            layer.set_weights([numpy.asarray(rbm.components_.T, dtype=kernel.dtype),
                               numpy.asarray(rbm.intercept_hidden_, dtype=bias.dtype)])
        return model

    def __repr__(self):
        return f"DBN(hidden_layer_sizes={self.hidden_layer_sizes!r})"
