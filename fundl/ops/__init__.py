"""Differentiable operations, one family per module; :mod:`fundl.functional` is the public face."""
