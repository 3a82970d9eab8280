"""Pictures of what fundl computes: the recorded graph as Graphviz DOT text (plots come later)."""
from .graph import graph_dot

__all__ = ["graph_dot"]
