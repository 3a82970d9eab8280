"""Finite-difference gradient checking (``fl.gradcheck``)."""
from __future__ import annotations

import numpy

from .. import backend
from ..autograd import no_grad
from ..tensor import Tensor


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, seed=0, raise_exception=True) -> bool:
    """Compare ``fn``'s backward with central finite differences (do it in float64).

    The output is reduced to a scalar along a fixed random direction ``v`` (so one backward
    gives ``v^T J``), and every input element is perturbed by ``±eps``.

    Args:
        fn: a function of Tensors returning a Tensor (or a tuple of Tensors).
        inputs: Tensors (those with ``requires_grad`` are checked), arrays or numbers.
        eps, atol, rtol: the finite-difference step and tolerances.
        raise_exception: raise an AssertionError with the worst element on failure
            (else return False).

    Returns:
        True when every checked gradient matches.

    Raises:
        AssertionError: a gradient differs (names the input's position, shape and worst index).
        TypeError: an input with ``requires_grad`` is not float64.

    Inputs are perturbed in private copies and keep their own arrays afterwards; their
    ``.grad`` is overwritten with the analytic gradient.

    Example:
        >>> x = fl.tensor(np.random.randn(3, 4), requires_grad=True)   # float64 data
        >>> fl.gradcheck(lambda t: (t * t).sum(), [x])
        True
    """
    checked = [(i, x) for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    for i, x in checked:
        if x.dtype != numpy.float64:
            raise TypeError(f"gradcheck: input {i} must be float64 to be checked reliably, got "
                            f"{x.dtype}. Create it from a float64 array or with dtype='float64'.")
    originals = [x.data for _, x in checked]
    try:
        # Perturb private C-ordered copies: the caller's arrays may be views, read-only, shared
        # between inputs, or non-contiguous (then reshape(-1) would copy and perturb nothing).
        for _, x in checked:
            x.data = backend.get_array_module(x.data).array(x.data, order="C", copy=True)
        return _check(fn, inputs, checked, eps, atol, rtol, seed, raise_exception)
    finally:
        for (_, x), data in zip(checked, originals):
            x.data = data


def _check(fn, inputs, checked, eps, atol, rtol, seed, raise_exception):
    def outputs():
        out = fn(*inputs)
        return out if isinstance(out, (tuple, list)) else (out,)

    rng = numpy.random.default_rng(seed)
    outs = outputs()
    directions = [rng.standard_normal(o.shape) for o in outs]
    for _, x in checked:
        x.grad = None
    total = None
    for o, v in zip(outs, directions):
        if o.requires_grad:
            xp = backend.get_array_module(o.data)
            term = (o * xp.asarray(v)).sum()
            total = term if total is None else total + term
    if total is None:
        raise ValueError("gradcheck: no output depends on an input with requires_grad=True.")
    total.backward()
    analytic = [backend.to_numpy(x.grad) if x.grad is not None else numpy.zeros(x.shape)
                for _, x in checked]

    def value():
        with no_grad():
            return sum(float((backend.to_numpy(o.data) * v).sum()) for o, v in zip(outputs(), directions))

    for (i, x), ga in zip(checked, analytic):
        flat = x.data.reshape(-1)  # a view: x.data is a C-ordered copy
        numeric = numpy.empty(flat.shape[0])
        for k in range(flat.shape[0]):
            orig = flat[k].item()
            flat[k] = orig + eps
            plus = value()
            flat[k] = orig - eps
            minus = value()
            flat[k] = orig
            numeric[k] = (plus - minus) / (2 * eps)
        numeric = numeric.reshape(x.shape)
        bad = ~numpy.isclose(ga, numeric, atol=atol, rtol=rtol)
        if bad.any():
            if not raise_exception:
                return False
            k = numpy.unravel_index(numpy.argmax(numpy.abs(ga - numeric)), x.shape) if x.ndim else ()
            k = tuple(int(j) for j in k)
            raise AssertionError(
                f"gradcheck: gradient mismatch for input {i} (shape {x.shape}) at index {k}: "
                f"backward gave {ga[k]}, finite differences {numeric[k]} "
                f"({int(bad.sum())} of {bad.size} elements differ)."
            )
    return True
