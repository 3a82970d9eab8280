"""Pictures of what fundl computes and learns (matplotlib, the ``fundl[viz]`` extra).

- Training: :func:`plot_history` (loss and metrics per epoch).
- What a network learned: :func:`plot_filters`, :func:`plot_feature_maps`,
  :func:`plot_decision_boundary`, :func:`plot_confusion_matrix` (:func:`confusion_matrix`
  gives the numbers).
- Data and samples: :func:`image_grid`.
- Graphs: :func:`plot_model` (a model's layers, Keras's ``plot_model``), :func:`plot_graph`
  (a Tensor's autograd graph), drawn by Graphviz's ``dot`` (:func:`model_to_dot` and
  :func:`graph_dot` give the DOT text).

Each plot returns a ``matplotlib.figure.Figure`` on its own Agg canvas (pyplot and the global
backend are never touched) and writes a PNG when given ``to_file=``. matplotlib is imported
on the first plot: without it, an ImportError says ``pip install 'fundl[viz]'``.

Example:
    >>> import fundl as fl
    >>> history = model.fit(x, y, epochs=10, validation_split=0.1, verbose=0)
    >>> fl.viz.plot_history(history, to_file="history.png")
    >>> fl.viz.plot_model(model, to_file="model.png")
"""
from .graph import graph_dot
from .model_graph import model_to_dot, plot_graph, plot_model, render_dot
from .plots import (
    confusion_matrix, image_grid, plot_confusion_matrix, plot_decision_boundary,
    plot_feature_maps, plot_filters, plot_history,
)

__all__ = [
    "confusion_matrix", "graph_dot", "image_grid", "model_to_dot", "plot_confusion_matrix",
    "plot_decision_boundary", "plot_feature_maps", "plot_filters", "plot_graph",
    "plot_history", "plot_model", "render_dot",
]
