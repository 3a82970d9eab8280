"""Attention layers: MultiHeadAttention (Vaswani et al., 2017) and Attention (Luong/Bahdanau).

Keras 3's arguments, call signatures and weight layouts, so Keras code and weights carry over:

- ``MultiHeadAttention(num_heads, key_dim)`` called as ``mha(query, value, key=None,
  attention_mask=None, return_attention_scores=False, training=None, use_causal_mask=False)``;
- ``Attention(use_scale=False, score_mode="dot")`` called on ``[query, value]`` or
  ``[query, value, key]``.

Both are compositions of differentiable ops (matmul, softmax, where), so their gradients come
from the engine; masked scores get a large negative number before the softmax, as Keras.

Example:
    >>> q = Input(shape=(8, 16)); v = Input(shape=(10, 16))
    >>> out = MultiHeadAttention(num_heads=2, key_dim=4)(q, v)      # (None, 8, 16)
"""
from __future__ import annotations

import math
import numbers

import numpy

from .. import backend
from .. import functional as F
from ..tensor import Tensor
from ._weights import add_weight_with_constraint as _add_weight
from ._weights import set_weight_options, weight_options_config
from .base import Layer, SymbolicTensor
from .core import _check_rate, _seed_generator, _uniform

_LARGE_NEGATIVE = {numpy.dtype("float16"): -65504.0}  # others -1e9, as Keras


def _bool_array(mask, like, who, what):
    """A mask (Tensor, array or nested list) as a boolean array on ``like``'s device."""
    xp = backend.get_array_module(like)
    data = mask.data if isinstance(mask, Tensor) else mask
    if isinstance(data, SymbolicTensor):
        raise TypeError(f"{who}: {what} is symbolic here; pass it by position in the "
                        "functional API.")
    return xp.asarray(data).astype(bool)


def _masked_softmax(scores, mask):
    """softmax(scores) over the last axis, masked entries (``mask`` False) pushed to -1e9."""
    if mask is not None:
        big = _LARGE_NEGATIVE.get(scores.dtype, -1e9)
        scores = scores + (~mask).astype(scores.dtype) * scores.dtype.type(big)
    return F.softmax(scores, axis=-1)


def _dropout(x, rate, training, seed_gen):
    """Inverted dropout of attention weights (the same rule as the Dropout layer)."""
    if not training or rate == 0:
        return x
    keep = 1.0 - rate
    mask = ((_uniform(x.shape, x.data, seed_gen) < keep).astype(x.dtype)
            * x.dtype.type(1.0 / keep))
    return x * mask


def _causal(t, s, xp):
    """Keras's causal mask: query i may see keys j <= i (lower triangle, (t, s))."""
    return xp.arange(t)[:, None] >= xp.arange(s)[None, :]


def _positive_int(who, name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive int"
                         f"{' or None' if allow_none else ''}, got {value!r}.")
    return int(value)


class MultiHeadAttention(Layer):
    """Multi-head attention: ``num_heads`` scaled dot-product attentions over learned projections.

    For each head h: ``softmax(Q_h K_h^T / sqrt(key_dim)) V_h`` with ``Q_h = query @ Wq_h + bq_h``
    (likewise K from ``key``, V from ``value``); the heads' outputs are concatenated and
    projected to ``output_shape`` (the query's last size by default).

    Args:
        num_heads: the number of heads.
        key_dim: the size of each head's query and key.
        value_dim: the size of each head's value (``key_dim`` by default).
        dropout: the dropout rate on the attention weights (training only).
        use_bias: add biases to the four projections.
        output_shape: the size of the output's last axis (default: the query's).
        attention_axes: None (attend over every axis between the batch and the feature axes,
            flattened); a tuple naming exactly those axes is accepted too.
        kernel_initializer, bias_initializer: initializers of the projections.
        kernel_regularizer, bias_regularizer, activity_regularizer: optional penalties.
        kernel_constraint, bias_constraint: optional constraints (:mod:`fundl.constraints`).
        seed: None (dropout from fundl's generator) or an int (the layer's own generator).

    Call: ``mha(query, value, key=None, attention_mask=None, return_attention_scores=False,
    training=None, use_causal_mask=False)``: query ``(batch, T, dq)``, value ``(batch, S, dv)``,
    key ``(batch, S, dk)`` (the value by default); ``attention_mask`` a boolean ``(batch, T, S)``
    (True = may attend); ``use_causal_mask`` lets query i see keys up to i only. Returns the
    output ``(batch, T, output_shape)``, and with ``return_attention_scores`` also the attention
    weights ``(batch, num_heads, T, S)`` (before dropout).

    Weights (Keras 3's layout, in its ``get_weights`` order): ``query_kernel`` (dq, num_heads,
    key_dim), ``query_bias`` (num_heads, key_dim), ``key_kernel`` (dk, num_heads, key_dim),
    ``key_bias``, ``value_kernel`` (dv, num_heads, value_dim), ``value_bias``,
    ``output_kernel`` (num_heads, value_dim, output_shape), ``output_bias`` (output_shape,).

    Example:
        >>> mha = MultiHeadAttention(num_heads=2, key_dim=2)
        >>> out, scores = mha(fl.randn(3, 8, 16), fl.randn(3, 4, 16),
        ...                   return_attention_scores=True)
        >>> out.shape, scores.shape
        ((3, 8, 16), (3, 2, 8, 4))
    """

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True,
                 output_shape=None, attention_axes=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        who = "MultiHeadAttention"
        self._seed_gen = _seed_generator(who, seed)
        self.seed = None if seed is None else int(seed)
        self.num_heads = _positive_int(who, "num_heads", num_heads)
        self.key_dim = _positive_int(who, "key_dim", key_dim)
        self.value_dim = _positive_int(who, "value_dim", value_dim, allow_none=True)
        self.dropout = _check_rate(who, dropout)
        self.use_bias = bool(use_bias)
        if isinstance(output_shape, (list, tuple)):
            if len(output_shape) != 1:
                raise ValueError(f"{who}: output_shape must be an int or a 1-tuple here, got "
                                 f"{output_shape!r}.")
            output_shape = output_shape[0]
        self.output_shape = _positive_int(who, "output_shape", output_shape, allow_none=True)
        if attention_axes is not None:
            axes = (attention_axes,) if isinstance(attention_axes, numbers.Integral) else \
                tuple(attention_axes)
            if not all(isinstance(a, numbers.Integral) and not isinstance(a, bool)
                       for a in axes) or not axes:
                raise TypeError(f"{who}: attention_axes must be None, an int or a tuple of "
                                f"ints, got {attention_axes!r}.")
            attention_axes = tuple(int(a) for a in axes)
        self.attention_axes = attention_axes
        set_weight_options(self, kernel_initializer, bias_initializer, kernel_regularizer,
                           bias_regularizer, activity_regularizer, kernel_constraint,
                           bias_constraint)
        self._return_scores = False

    # -- shapes ------------------------------------------------------------------------------
    @staticmethod
    def _unpack(query_shape, value_shape, key_shape):
        """Shapes given one per argument (Keras) or as one list (``[q, v(, k, mask)]``)."""
        if value_shape is None and isinstance(query_shape, list) and query_shape and \
                isinstance(query_shape[0], (tuple, list)):
            shapes = list(query_shape) + [None, None]
            return tuple(shapes[0]), tuple(shapes[1]), (None if shapes[2] is None
                                                        else tuple(shapes[2]))
        if value_shape is None:
            raise ValueError("MultiHeadAttention needs a query and a value: call it as "
                             "mha(query, value).")
        return tuple(query_shape), tuple(value_shape), (None if key_shape is None
                                                        else tuple(key_shape))

    def _check_shapes(self, q, v, k):
        who = f"MultiHeadAttention '{self.name}'"
        for name, shape in (("query", q), ("value", v), ("key", k)):
            if len(shape) < 3:
                raise ValueError(f"{who}: expected a {name} of rank >= 3 (batch, ..., features), "
                                 f"got shape {shape}.")
            if shape[-1] is None:
                raise ValueError(f"{who}: the {name}'s feature size must be known, got shape "
                                 f"{shape}.")
        if len(v) != len(q) or len(k) != len(q):
            raise ValueError(f"{who}: query, value and key must have the same rank, got shapes "
                             f"{q}, {v} and {k}.")
        if v[:-1] != k[:-1] and None not in v[:-1] + k[:-1]:
            raise ValueError(f"{who}: value and key must agree on every axis but the last, got "
                             f"shapes {v} and {k}.")
        if self.attention_axes is not None:
            inner = tuple(range(1, len(q) - 1))
            if tuple(sorted(a % len(q) for a in self.attention_axes)) != inner:
                raise ValueError(f"{who}: attention_axes={self.attention_axes} is not supported "
                                 f"for inputs of rank {len(q)}; fundl attends over all the axes "
                                 f"between batch and features {inner} (attention_axes=None).")

    def build(self, query_shape, value_shape=None, key_shape=None):
        q, v, k = self._unpack(query_shape, value_shape, key_shape)
        k = v if k is None else k
        self._check_shapes(q, v, k)
        n, h = self.num_heads, self.key_dim
        hv = self.value_dim or self.key_dim
        out = self.output_shape or q[-1]
        self._sizes = (q[-1], k[-1], v[-1])

        def weight(name, shape, kernel):
            if kernel:
                return _add_weight(self, name, shape, self.kernel_initializer,
                                   self.kernel_regularizer, self.kernel_constraint)
            return _add_weight(self, name, shape, self.bias_initializer, self.bias_regularizer,
                               self.bias_constraint)

        self.query_kernel = weight("query_kernel", (q[-1], n, h), True)
        self.query_bias = weight("query_bias", (n, h), False) if self.use_bias else None
        self.key_kernel = weight("key_kernel", (k[-1], n, h), True)
        self.key_bias = weight("key_bias", (n, h), False) if self.use_bias else None
        self.value_kernel = weight("value_kernel", (v[-1], n, hv), True)
        self.value_bias = weight("value_bias", (n, hv), False) if self.use_bias else None
        self.output_kernel = weight("output_kernel", (n, hv, out), True)
        self.output_bias = weight("output_bias", (out,), False) if self.use_bias else None

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        q, v, k = self._unpack(query_shape, value_shape, key_shape)
        self._check_shapes(q, v, v if k is None else k)
        out = tuple(q[:-1]) + (self.output_shape or q[-1],)
        if not self._return_scores:
            return out
        t = None if None in q[1:-1] else math.prod(q[1:-1])
        s = None if None in v[1:-1] else math.prod(v[1:-1])
        return [out, (q[0], self.num_heads, t, s)]

    # -- calling ------------------------------------------------------------------------------
    def __call__(self, query, value=None, key=None, attention_mask=None, **kwargs):
        """``mha(query, value, key=None, attention_mask=None, return_attention_scores=False,
        training=None, use_causal_mask=False)`` (see the class docstring)."""
        self._return_scores = bool(kwargs.get("return_attention_scores", False))
        if value is None:
            raise TypeError(f"MultiHeadAttention '{self.name}': missing the value: call it as "
                            "mha(query, value) (self-attention: mha(x, x)).")
        # The key goes by position so that build sees its shape; in the functional API the
        # mask too, so that the graph records every tensor as an input of this node.
        args = [value] if key is None else [value, key]
        if isinstance(attention_mask, SymbolicTensor):
            args = [value, value if key is None else key, attention_mask]
        elif attention_mask is not None:
            kwargs["attention_mask"] = attention_mask
        return super().__call__(query, *args, **kwargs)

    def _project(self, x, kernel, bias):
        """x (B, T, d) @ kernel (d, n, h) + bias -> (B, n, T, h)."""
        d, n, h = kernel.shape
        y = F.linear(x, F.reshape(kernel, (d, n * h)),
                     None if bias is None else F.reshape(bias, (n * h,)))
        y = F.reshape(y, (x.shape[0], x.shape[1], n, h))
        return F.transpose(y, (0, 2, 1, 3))

    def call(self, query, value, key=None, attention_mask=None, return_attention_scores=False,
             training=None, use_causal_mask=False):
        who = f"MultiHeadAttention '{self.name}'"
        key = value if key is None else key
        q_shape, v_shape = query.shape, value.shape
        self._check_shapes(q_shape, v_shape, key.shape)
        for name, x, size in zip(("query", "key", "value"), (query, key, value), self._sizes):
            if x.shape[-1] != size:
                raise ValueError(f"{who}: expected a {name} with last axis {size} (set when the "
                                 f"layer was built), got shape {x.shape}.")
        batch = q_shape[0]
        t = math.prod(q_shape[1:-1])
        s = math.prod(v_shape[1:-1])
        if len(q_shape) > 3:  # attend over all the inner axes, flattened
            query = F.reshape(query, (batch, t, q_shape[-1]))
            value = F.reshape(value, (batch, s, v_shape[-1]))
            key = F.reshape(key, (batch, s, key.shape[-1]))
        q = self._project(query, self.query_kernel, self.query_bias)       # (B, n, T, h)
        k = self._project(key, self.key_kernel, self.key_bias)             # (B, n, S, h)
        v = self._project(value, self.value_kernel, self.value_bias)       # (B, n, S, hv)
        q = q * q.dtype.type(1.0 / math.sqrt(self.key_dim))  # Keras scales the query first
        scores = F.matmul(q, F.transpose(k, (0, 1, 3, 2)))                 # (B, n, T, S)
        mask = self._mask(attention_mask, use_causal_mask, scores.data, batch, t, s)
        weights = _masked_softmax(scores, mask)
        dropped = _dropout(weights, self.dropout, training, self._seed_gen)
        out = F.matmul(dropped, v)                                         # (B, n, T, hv)
        n, hv, o = self.output_kernel.shape
        out = F.reshape(F.transpose(out, (0, 2, 1, 3)), (batch, t, n * hv))
        out = F.linear(out, F.reshape(self.output_kernel, (n * hv, o)), self.output_bias)
        if len(q_shape) > 3:
            out = F.reshape(out, tuple(q_shape[:-1]) + (o,))
        if return_attention_scores:
            return out, weights
        return out

    def _mask(self, attention_mask, use_causal_mask, like, batch, t, s):
        """The boolean (B or 1, 1, T, S) mask of allowed (query, key) pairs, or None."""
        xp = backend.get_array_module(like)
        mask = None
        if attention_mask is not None:
            m = _bool_array(attention_mask, like, f"MultiHeadAttention '{self.name}'",
                            "attention_mask")
            if m.ndim > 3:
                m = m.reshape(m.shape[0], t, s)
            if m.ndim == 2:
                m = m[None]
            if m.shape[-2:] != (t, s) or m.shape[0] not in (1, batch):
                raise ValueError(f"MultiHeadAttention '{self.name}': attention_mask must have "
                                 f"shape (batch, {t}, {s}) = (batch, query steps, key steps), "
                                 f"got {tuple(m.shape)}.")
            mask = m[:, None]
        if use_causal_mask:
            causal = _causal(t, s, xp)[None, None]
            mask = causal if mask is None else mask & causal
        return mask

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "value_dim": self.value_dim, "dropout": self.dropout, "use_bias": self.use_bias,
                "output_shape": self.output_shape,
                "attention_axes": (None if self.attention_axes is None
                                   else list(self.attention_axes)),
                **weight_options_config(self), "seed": self.seed}


class Attention(Layer):
    """Dot-product (Luong) or additive "concat" (Bahdanau) attention over ``[query, value]``.

    ``score_mode="dot"``: ``scores = query @ key^T`` (times the learned ``scale`` with
    ``use_scale``); ``"concat"``: ``scores = concat_score_weight * sum(tanh(scale * (q + k)))``
    over the features. Then ``softmax(scores) @ value``.

    Args:
        use_scale: learn a scalar ``scale`` for the scores (initialised to 1).
        score_mode: "dot" or "concat".
        dropout: the dropout rate on the attention weights (training only).
        seed: None (dropout from fundl's generator) or an int (the layer's own generator).

    Call: ``layer([query, value])`` or ``layer([query, value, key])`` with query
    ``(batch, T, dim)``, value ``(batch, S, dim)``, key ``(batch, S, dim)`` (the value by
    default), and the keywords ``mask=[query_mask, value_mask]`` (boolean ``(batch, T)`` and
    ``(batch, S)``; a masked value step gets no attention, a masked query step outputs zeros),
    ``return_attention_scores``, ``use_causal_mask``, ``training``. Returns ``(batch, T, dim)``,
    and the attention weights ``(batch, T, S)`` with ``return_attention_scores``.

    Weights: ``scale`` (a scalar, with ``use_scale``), ``concat_score_weight`` (a scalar, for
    "concat").

    Example:
        >>> Attention()([fl.randn(2, 5, 8), fl.randn(2, 7, 8)]).shape
        (2, 5, 8)
    """

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self._seed_gen = _seed_generator("Attention", seed)
        self.seed = None if seed is None else int(seed)
        if score_mode not in ("dot", "concat"):
            raise ValueError(f"Attention: score_mode must be 'dot' or 'concat', got "
                             f"{score_mode!r}.")
        self.use_scale = bool(use_scale)
        self.score_mode = score_mode
        self.dropout = _check_rate("Attention", dropout)
        self._return_scores = False

    def __call__(self, inputs, *args, **kwargs):
        self._return_scores = bool(kwargs.get("return_attention_scores", False))
        return super().__call__(inputs, *args, **kwargs)

    def _check(self, shapes):
        who = f"Attention '{self.name}'"
        if not isinstance(shapes, list) or len(shapes) not in (2, 3):
            raise ValueError(f"{who}: expected a list [query, value] or [query, value, key], "
                             f"got {shapes!r}.")
        q, v = tuple(shapes[0]), tuple(shapes[1])
        k = tuple(shapes[2]) if len(shapes) == 3 else v
        if len(q) != 3 or len(v) != 3 or len(k) != 3:
            raise ValueError(f"{who}: expected inputs of rank 3 (batch, steps, dim), got shapes "
                             f"{[tuple(s) for s in shapes]}.")
        if q[-1] is not None and k[-1] is not None and q[-1] != k[-1]:
            raise ValueError(f"{who}: query and key need the same last size to be compared, got "
                             f"shapes {q} and {k}.")
        if v[1] is not None and k[1] is not None and v[1] != k[1]:
            raise ValueError(f"{who}: value and key need the same number of steps, got shapes "
                             f"{v} and {k}.")
        return q, v, k

    def build(self, input_shape):
        self._check([tuple(s) for s in input_shape])
        self.scale = (self.add_weight(name="scale", shape=(), initializer="ones")
                      if self.use_scale else None)
        self.concat_score_weight = (
            self.add_weight(name="concat_score_weight", shape=(), initializer="ones")
            if self.score_mode == "concat" else None)

    def call(self, inputs, mask=None, training=None, return_attention_scores=False,
             use_causal_mask=False):
        shapes = [tuple(x.shape) for x in inputs] if isinstance(inputs, (list, tuple)) else \
            inputs
        self._check(shapes)
        query, value = inputs[0], inputs[1]
        key = inputs[2] if len(inputs) == 3 else value
        if self.score_mode == "dot":
            scores = F.matmul(query, F.transpose(key, (0, 2, 1)))
            if self.scale is not None:
                scores = scores * self.scale
        else:
            summed = F.expand_dims(query, 2) + F.expand_dims(key, 1)      # (B, T, S, dim)
            if self.scale is not None:
                summed = summed * self.scale
            scores = F.sum(F.tanh(summed), axis=-1) * self.concat_score_weight
        q_mask, v_mask = (list(mask) + [None, None])[:2] if isinstance(
            mask, (list, tuple)) else (None, None)
        allowed = None
        if v_mask is not None:
            allowed = _bool_array(v_mask, scores.data, f"Attention '{self.name}'",
                                  "the value mask")[:, None, :]
        if use_causal_mask:
            xp = backend.get_array_module(scores.data)
            causal = _causal(scores.shape[1], scores.shape[2], xp)[None]
            allowed = causal if allowed is None else allowed & causal
        weights = _masked_softmax(scores, allowed)
        out = F.matmul(_dropout(weights, self.dropout, training, self._seed_gen), value)
        if q_mask is not None:
            qm = _bool_array(q_mask, out.data, f"Attention '{self.name}'", "the query mask")
            out = out * qm[:, :, None].astype(out.dtype)
        if return_attention_scores:
            return out, weights
        return out

    def compute_mask(self, inputs, mask=None):
        """The query's mask (the output has the query's steps)."""
        if isinstance(mask, (list, tuple)) and mask:
            return mask[0]
        return None

    def compute_output_shape(self, input_shape):
        q, v, _ = self._check([tuple(s) for s in input_shape])
        out = (q[0], q[1], v[-1])
        return [out, (q[0], q[1], v[1])] if self._return_scores else out

    def get_config(self):
        return {**super().get_config(), "use_scale": self.use_scale,
                "score_mode": self.score_mode, "dropout": self.dropout, "seed": self.seed}
