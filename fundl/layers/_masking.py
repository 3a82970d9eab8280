"""Sequence masks that travel with tensors: the registry behind ``attach_mask``/``get_mask``.

Padded sequences need a mask of shape (batch, timesteps) saying which steps are real. As in
Keras it lives on the tensor, in its ``_keras_mask`` slot: it goes away with the tensor, a
new tensor never inherits another's, and threads share nothing. :data:`_MASKS` holds the
masked tensors weakly only so that callers can skip all mask handling while no mask is alive
anywhere (``if _MASKS:``, a fast path of ``Layer.__call__`` and the training loop).

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

_MASKS: dict = {}
"""Weak references to the tensors that carry a mask, keyed by the reference's own id (alive
while it is in here, so never reused), each removed when its tensor dies. Truthy while any
masked tensor is alive; the masks themselves are on the tensors. (Not a ``WeakSet``: its
lookups compare tensors with ``==``, which is elementwise for a Tensor.)"""


def _forget(ref):
    _MASKS.pop(id(ref), None)


def _track(tensor):
    """Count ``tensor`` (which had no mask) among the masked ones until it dies or loses its
    mask."""
    ref = weakref.ref(tensor, _forget)
    _MASKS[id(ref)] = ref


def _untrack(tensor):
    for key in [k for k, r in _MASKS.items() if r() is tensor]:
        del _MASKS[key]


def attach_mask(tensor, mask):
    """Attach a boolean mask of shape (batch, timesteps) to ``tensor`` (None removes it).

    Args:
        tensor: a Tensor of shape (batch, timesteps, ...).
        mask: an array (or Tensor) of booleans, True for real steps, or None.

    Returns:
        ``tensor`` itself.

    Raises:
        TypeError: ``tensor`` cannot carry a mask (not a Tensor).
        ValueError: the mask's shape is not ``tensor.shape[:2]``.

    Example:
        >>> x = attach_mask(fl.zeros(2, 3, 4), np.array([[1, 1, 0], [1, 0, 0]], bool))
        >>> get_mask(x).sum()
        3
    """
    if mask is None:
        if getattr(tensor, "_keras_mask", None) is not None:
            tensor._keras_mask = None
            _untrack(tensor)
        return tensor
    if isinstance(mask, Tensor):
        mask = mask.data
    shape = tuple(tensor.shape)
    if tuple(mask.shape) != shape[:2]:
        raise ValueError(f"attach_mask: a mask must have shape (batch, timesteps) = {shape[:2]} "
                         f"for a tensor of shape {shape}, got {tuple(mask.shape)}.")
    if mask.dtype != bool:
        mask = mask.astype(bool)
    had = getattr(tensor, "_keras_mask", None) is not None
    try:
        tensor._keras_mask = mask
    except AttributeError:  # an object without the slot (a NumPy array)
        raise TypeError(f"attach_mask: masks are attached to Tensors, got "
                        f"{type(tensor).__name__}; wrap it with fl.tensor(...) first.") from None
    if not had:
        _track(tensor)
    return tensor


def get_mask(tensor):
    """The boolean (batch, timesteps) mask attached to ``tensor`` by :func:`attach_mask`, or None.

    Example:
        >>> get_mask(Embedding(10, 2, mask_zero=True)(np.array([[3, 0]])))
        array([[ True, False]])
    """
    if type(tensor) is Tensor:  # the common case, without getattr's default
        return tensor._keras_mask
    return getattr(tensor, "_keras_mask", None)


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
