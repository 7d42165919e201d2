"""The committed notebooks are built from notebooks/_build.py: same bytes, no outputs (issue 16 item 7).

Edit the cells in notebooks/_build.py and rebuild (python notebooks/_build.py), never the .ipynb.
"""

import importlib.util
import json
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _build_module():
    spec = importlib.util.spec_from_file_location("_notebook_build", NOTEBOOKS / "_build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


BUILD = _build_module()
SOURCES = {name: cells for name, cells in BUILD.NOTEBOOKS.values()}


def test_every_committed_notebook_has_a_source():
    committed = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert committed == sorted(SOURCES), "notebooks without a source in _build.py (or sources never built)"
    assert len(committed) >= 10


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_committed_notebook_equals_its_build(name, tmp_path):
    built = BUILD.write(name, SOURCES[name], tmp_path)
    assert built.read_bytes() == (NOTEBOOKS / name).read_bytes(), f"{name} differs from its source: run python notebooks/_build.py"


def test_build_is_deterministic(tmp_path):
    name = sorted(SOURCES)[0]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = BUILD.write(name, SOURCES[name], tmp_path / "a")
    b = BUILD.write(name, SOURCES[name], tmp_path / "b")
    assert a.read_bytes() == b.read_bytes()
    ids = [c["id"] for c in json.loads(a.read_text())["cells"]]
    assert ids[:2] == [f"{Path(name).stem}-00", f"{Path(name).stem}-01"] and len(set(ids)) == len(ids)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_committed_notebooks_have_no_outputs(name):
    nb = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, name
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code), name
    assert nb["metadata"] == {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
