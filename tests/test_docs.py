"""Every Python block of the docs runs, so the docs cannot rot.

Each ``docs/*.md`` file's ```python blocks are joined in order into one script (a later block
may use what an earlier one made) and run in a fresh interpreter from a temporary folder.
A block whose first line is ``# doc: skip`` is shown but not run (only for what needs a
GPU or a cluster); a file may set ``FUNDL_DATA_DIR``-dependent blocks apart with
``# doc: needs-data`` (skipped when the data are absent).
"""
import os
import pathlib
import re
import subprocess
import sys

import pytest

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks(path):
    return BLOCK.findall(path.read_text())


def _script(path, have_data):
    parts = []
    for block in _blocks(path):
        first = block.splitlines()[0].strip() if block.strip() else ""
        if first == "# doc: skip" or (first == "# doc: needs-data" and not have_data):
            continue
        parts.append(block)
    return "\n".join(parts)


DOC_FILES = sorted(p for p in DOCS.glob("*.md") if _blocks(p)) if DOCS.is_dir() else []


def test_the_docs_have_code_to_run():
    assert DOC_FILES, "docs/ should hold pages with Python blocks (the course path at least)"


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: p.name)
def test_every_python_block_of_a_doc_runs(path, tmp_path):
    data = os.environ.get("FUNDL_DATA_DIR")
    have_data = bool(data) and pathlib.Path(data, "mnist").is_dir()
    script = tmp_path / f"{path.stem}.py"
    script.write_text(_script(path, have_data))
    env = dict(os.environ, MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (f"{path.name}: a code block failed\n"
                                    f"{result.stderr[-4000:]}")
