"""Moving a tensor between devices, differentiably (the gradient moves back)."""
from __future__ import annotations

from ..autograd import Function
from ..backend import device_of, to_device


class ToDevice(Function):
    def __init__(self, device):
        self.device = device

    def forward(self, x):
        self.source = device_of(x)
        return to_device(x, self.device)

    def backward(self, gy):
        return to_device(gy, self.source)


def to(x, device):
    """``x`` on ``device`` ("cpu" or "gpu"); ``x`` itself when it is already there."""
    if x.device == device:
        return x
    return ToDevice(device).apply(x)
