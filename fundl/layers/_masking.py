"""Sequence masks that travel with tensors: the registry behind ``attach_mask``/``get_mask``.

Padded sequences need a mask of shape (batch, timesteps) saying which steps are real. Keras
keeps it on the tensor (``_keras_mask``); fundl's Tensor has fixed slots, so the mask lives
in a registry keyed by ``id(tensor)`` that holds the tensor only weakly: an entry disappears
with its tensor, and a new tensor that reuses a dead one's id never inherits its mask.

Who writes and who reads (Keras 3's rules):

- layers that *make* a mask attach it to their output: ``Embedding(mask_zero=True)``,
  ``Masking``, and the recurrent layers with ``return_sequences=True``;
- ``Layer.__call__`` passes a mask on, through ``Layer.compute_mask``, for layers with
  ``supports_masking = True`` (those that keep the batch and time axes and act per step:
  ``Dense``, ``Activation``, ``Dropout``, the normalisations, the merge layers); any other
  layer's output carries no mask, so a layer that consumes the time axis ends the chain;
- layers that *use* one read it from their input: the recurrent layers (masked steps do not
  update the state) and ``compile``'s loss (masked steps do not count; see
  :mod:`fundl.models.training`).

This module imports nothing from the layers, so ``base.py`` can use it without a cycle.
"""
from __future__ import annotations

import weakref

from ..tensor import Tensor

_MASKS: dict = {}  # id(tensor) -> (weak reference to the tensor, boolean mask array)


def attach_mask(tensor, mask):
    """Attach a boolean mask of shape (batch, timesteps) to ``tensor`` (None removes it).

    Args:
        tensor: a Tensor of shape (batch, timesteps, ...).
        mask: an array (or Tensor) of booleans, True for real steps, or None.

    Returns:
        ``tensor`` itself.

    Raises:
        ValueError: the mask's shape is not ``tensor.shape[:2]``.

    Example:
        >>> x = attach_mask(fl.zeros(2, 3, 4), np.array([[1, 1, 0], [1, 0, 0]], bool))
        >>> get_mask(x).sum()
        3
    """
    key = id(tensor)
    if mask is None:
        _MASKS.pop(key, None)
        return tensor
    if isinstance(mask, Tensor):
        mask = mask.data
    shape = tuple(getattr(tensor, "shape", ()))
    if tuple(mask.shape) != shape[:2]:
        raise ValueError(f"attach_mask: a mask must have shape (batch, timesteps) = {shape[:2]} "
                         f"for a tensor of shape {shape}, got {tuple(mask.shape)}.")
    if mask.dtype != bool:
        mask = mask.astype(bool)
    _MASKS[key] = (weakref.ref(tensor, lambda _, k=key: _MASKS.pop(k, None)), mask)
    return tensor


def get_mask(tensor):
    """The boolean (batch, timesteps) mask attached to ``tensor`` by :func:`attach_mask`, or None.

    Example:
        >>> get_mask(Embedding(10, 2, mask_zero=True)(np.array([[3, 0]])))
        array([[ True, False]])
    """
    entry = _MASKS.get(id(tensor))
    if entry is None or entry[0]() is not tensor:
        return None
    return entry[1]


def pass_mask_on(layer, inputs, output):
    """Attach to ``output`` the mask ``layer.compute_mask`` derives from the inputs' masks.

    Called by ``Layer.__call__`` for layers with ``supports_masking``. Nothing happens when the
    layer returned several outputs, attached a mask itself (or returned a masked input as it
    is), when no input is masked, or when the mask does not fit ``output.shape[:2]``.

    Args:
        layer: the layer just called.
        inputs: its input Tensor, or list of Tensors (merge layers).
        output: what its ``call`` returned.
    """
    if isinstance(inputs, list):
        mask = [get_mask(x) for x in inputs]
        if all(m is None for m in mask):
            return
    else:
        mask = get_mask(inputs)
        if mask is None:
            return
    if not isinstance(output, Tensor) or get_mask(output) is not None:
        return
    mask = layer.compute_mask(inputs, mask)
    if mask is not None and tuple(mask.shape) == output.shape[:2]:
        attach_mask(output, mask)
