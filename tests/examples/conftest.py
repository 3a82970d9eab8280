"""Helpers for the examples' quick tests: load an example file as a module, find the data."""
import importlib.util
import os
import pathlib

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def _load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _need_data(subdir):
    root = os.environ.get("FUNDL_DATA_DIR")
    if not root or not pathlib.Path(root, subdir).is_dir():
        pytest.skip(f"FUNDL_DATA_DIR with {subdir}/ is not set (CI sets it)")


@pytest.fixture
def load_example():
    """``load_example(name)``: the module ``examples/<name>.py`` (examples are scripts)."""
    return _load_example


@pytest.fixture
def need_data():
    """``need_data(subdir)``: skip unless ``$FUNDL_DATA_DIR/<subdir>`` exists (CI sets it)."""
    return _need_data
