"""Every script in analyses/ runs as written on the sample data and writes its tables and figures."""

import runpy
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "analyses").glob("*.py"))


def test_there_are_scripts():
    assert {p.name for p in SCRIPTS} >= {"alliance_outcome.py", "rupture_repair.py", "meta_analysis_fluckiger2018.py"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_runs(script, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", [str(script), str(out)])
    runpy.run_path(str(script), run_name="__main__")
    files = sorted(p.name for p in out.iterdir())
    assert any(f.endswith(".docx") for f in files) and any(f.endswith(".pdf") for f in files)
    assert f"written to {out}/" in capsys.readouterr().out
