"""The floors of the house (DESIGN.md): the engine never imports what is built on top of it.

backend, tensor, autograd, functional, ops and kernels are the lower floors; layers, models,
optimizers, callbacks, the CLI and the packages above them may use the engine, never the other
way round. Checked on the source (imports inside functions count too), so a lazy upward
import cannot hide.
"""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "fundl"
LOWER = ["backend.py", "runtime.py", "tensor.py", "autograd.py", "functional.py", "ops", "kernels"]
UPPER = {"layers", "models", "optimizers", "callbacks", "cli", "_cli_train", "_cli_playground",
         "saving", "zoo", "datasets", "losses", "metrics", "activations", "initializers",
         "regularizers", "constraints", "applications", "cluster", "decomposition", "classic",
         "energy", "rl", "distributed", "viz", "utils", "preprocessing", "tape", "graph_mode"}


def _lower_files():
    for entry in LOWER:
        path = PACKAGE / entry
        yield from sorted(path.rglob("*.py")) if path.is_dir() else [path]


def _imported_fundl_modules(path):
    """Top-level fundl subpackage names that ``path`` imports, with line numbers."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    package = list(rel.parts[:-1])  # fundl, fundl/ops, ...
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                parts = base + (node.module.split(".") if node.module else [])
                names = ([parts[1]] if len(parts) > 1
                         else [alias.name for alias in node.names])
            elif node.module and node.module.split(".")[0] == "fundl":
                parts = node.module.split(".")
                names = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
            else:
                continue
            for name in names:
                yield name, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "fundl" and len(parts) > 1:
                    yield parts[1], node.lineno


@pytest.mark.parametrize("path", list(_lower_files()), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_lower_floor_never_imports_upper_floors(path):
    upward = [(name, line) for name, line in _imported_fundl_modules(path) if name in UPPER]
    assert not upward, (f"{path.relative_to(PACKAGE)} imports upper floors "
                        f"{upward}: move the code down or the import up (DESIGN.md).")
