"""Radial-basis-function units: ``exp(-gamma·‖x − c‖²)`` with trainable centres."""
from __future__ import annotations

import numpy

from .. import backend, initializers
from .. import functional as F
from .base import Layer, deserialize_object, serialize_object


class RBF(Layer):
    """Gaussian radial-basis units: unit j outputs ``exp(-gamma_j · ‖x − c_j‖²)``.

    The centres ``c_j`` are a trainable ``(units, features)`` weight ``centers``; each unit has
    its own width through ``log_gamma`` ``(units,)`` (the log keeps ``gamma_j > 0`` under
    gradient steps), trainable only with ``trainable_gamma=True`` (else a fixed, non-trainable
    weight, saved with the layer). Squared distances are computed as
    ``‖x‖² − 2 x·cᵀ + ‖c‖²``: one matmul for the whole batch, in the layer's float32 by
    default, clipped at 0 against rounding.

    The classic RBF network (Moody & Darken 1989) takes its centres from k-means:
    ``RBF.from_kmeans(kmeans)`` or ``layer.set_centers(kmeans.cluster_centers_)``; then either
    solve the output layer by least squares (:class:`fundl.classic.RBFNetwork`) or train
    ``Sequential([RBF(...), Dense(...)])`` end to end by backpropagation.

    Args:
        units: the number of radial units.
        gamma: the initial width parameter (a float, the same for all units, or a list with
            one value per unit).
        centers_initializer: how the centres start (default uniform in [-1, 1]).
        trainable_gamma: learn the widths too.

    Input shape ``(batch, ..., features)`` -> output ``(batch, ..., units)``.

    Example:
        >>> layer = RBF(10, gamma=0.5)
        >>> layer(numpy.zeros((4, 2), "float32")).shape
        (4, 10)
    """

    def __init__(self, units, gamma=1.0, centers_initializer="random_uniform",
                 trainable_gamma=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, numpy.integer)) or units <= 0:
            raise ValueError(f"RBF: units must be a positive integer, got {units!r}.")
        self.units = int(units)
        gammas = numpy.broadcast_to(numpy.asarray(gamma, dtype=numpy.float64), (self.units,)) \
            if numpy.ndim(gamma) in (0, 1) and numpy.size(gamma) in (1, self.units) else None
        if gammas is None or not numpy.all(numpy.isfinite(gammas)) or numpy.any(gammas <= 0):
            raise ValueError(f"RBF: gamma must be a positive number or {self.units} positive "
                             f"numbers (one per unit), got {gamma!r}.")
        self.gamma = gamma if numpy.ndim(gamma) == 0 else [float(g) for g in gammas]
        self._gammas = gammas
        self.centers_initializer = deserialize_object(initializers, centers_initializer)
        self.trainable_gamma = bool(trainable_gamma)

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"RBF '{self.name}': expected an input of shape (batch, ..., "
                             f"features) with a known feature size, got {input_shape}.")
        self.centers = self.add_weight("centers", (self.units, input_shape[-1]),
                                       self.centers_initializer)
        self.log_gamma = self.add_weight(
            "log_gamma", (self.units,), initializers.Constant(0.0),
            trainable=self.trainable_gamma)
        self.log_gamma.assign(numpy.log(self._gammas).astype(self.log_gamma.dtype))

    def call(self, x, training=False):
        if x.shape[-1] != self.centers.shape[1]:
            raise ValueError(f"RBF '{self.name}': expected last input axis of size "
                             f"{self.centers.shape[1]} (set when the layer was built), got "
                             f"input of shape {x.shape}.")
        c = self.centers
        d2 = (F.sum(x * x, axis=-1, keepdims=True)
              - 2.0 * F.matmul(x, F.transpose(c))
              + F.sum(c * c, axis=-1))
        d2 = F.maximum(d2, 0.0)
        return F.exp(-F.exp(self.log_gamma) * d2)

    def compute_output_shape(self, input_shape):
        if self.built and input_shape[-1] != self.centers.shape[1]:
            raise ValueError(f"expected last input axis of size {self.centers.shape[1]}, got "
                             f"{input_shape}.")
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "gamma": self.gamma,
                "centers_initializer": serialize_object(self.centers_initializer),
                "trainable_gamma": self.trainable_gamma}

    # ------------------------------------------------------------------ k-means centres
    def set_centers(self, centers, gamma=None):
        """Set the centres (``(units, features)``, e.g. ``KMeans.cluster_centers_``) and
        optionally the widths; builds the layer if needed. Returns self."""
        centers = backend.to_numpy(numpy.asarray(centers) if isinstance(centers, (list, tuple))
                                   else centers)
        if centers.ndim != 2 or centers.shape[0] != self.units:
            raise ValueError(f"RBF '{self.name}': set_centers expects ({self.units}, features) "
                             f"centres, got shape {centers.shape}.")
        if not self.built:
            self._maybe_build((None, centers.shape[1]))
        if centers.shape[1] != self.centers.shape[1]:
            raise ValueError(f"RBF '{self.name}': the layer was built for "
                             f"{self.centers.shape[1]} features, got centres of shape "
                             f"{centers.shape}.")
        self.centers.assign(centers.astype(self.centers.dtype))
        if gamma is not None:
            gammas = numpy.broadcast_to(numpy.asarray(gamma, dtype=numpy.float64), (self.units,))
            self.log_gamma.assign(numpy.log(gammas).astype(self.log_gamma.dtype))
        return self

    @staticmethod
    def spacing_gamma(centers):
        """The width rule ``sigma = d_max / sqrt(2 M)`` (Haykin) as ``gamma = 1 / (2 sigma²)
        = M / d_max²``, with ``d_max`` the largest distance between the M centres."""
        centers = numpy.asarray(backend.to_numpy(centers), dtype=numpy.float64)
        sq = (centers ** 2).sum(axis=1)
        d2 = numpy.maximum(sq[:, None] - 2 * centers @ centers.T + sq[None, :], 0)
        d_max2 = float(d2.max())
        return len(centers) / d_max2 if d_max2 > 0 else 1.0

    @classmethod
    def from_kmeans(cls, kmeans, gamma=None, **kwargs):
        """An RBF layer with one unit per k-means centre.

        Args:
            kmeans: a fitted :class:`fundl.cluster.KMeans`.
            gamma: the width; None uses :meth:`spacing_gamma` of the centres.
            **kwargs: other constructor arguments (``trainable_gamma``, ``name``, ...).
        """
        centers = getattr(kmeans, "cluster_centers_", None)
        if centers is None:
            raise ValueError("RBF.from_kmeans: the KMeans is not fitted yet; call its fit "
                             "first.")
        if gamma is None:
            gamma = cls.spacing_gamma(centers)
        layer = cls(len(centers), gamma=float(gamma) if numpy.ndim(gamma) == 0 else gamma,
                    **kwargs)
        return layer.set_centers(centers)

