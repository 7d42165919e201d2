import re
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_tour_runs_as_written(tmp_path, monkeypatch):
    tour = [b for b in _blocks() if "# load and score" in b and "# meta-analysis" in b]
    assert len(tour) == 1, "the README lost its short tour"
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    try:
        exec(compile(tour[0], str(README), "exec"), ns)
    finally:
        mpl.rcdefaults()
        plt.close("all")
    assert len(ns["df"]) == 1821 and ns["prov"].n_kept == 1821 and ns["prov"].format == "spss"
    assert ns["ao"].effects["level"].tolist() == ["within-patient", "between-patient", "therapist"]
    assert len(ns["ep"].episodes) > 0 and ns["meta"].k == ns["studies"]["study"].nunique()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure2.pdf", "figure2.png", "table2.docx"]


def test_readme_examples_run_as_written():
    runnable = [b for b in _blocks() if ("read_sessions" in b or "meta_analysis" in b or "detect_ruptures" in b
                                        or "alliance_outcome" in b) and "# load and score" not in b]
    assert len(runnable) == 4, "the README lost its load-and-score, alliance-outcome, meta-analysis or rupture example"
    ns: dict = {}
    for block in runnable:
        exec(compile(block, str(README), "exec"), ns)
    assert len(ns["df"]) == 1821 and {"wai_sr_total", "phq9_total"} <= set(ns["df"].columns)
    assert ns["ao"].effects["level"].tolist() == ["within-patient", "between-patient", "therapist"]
    assert ns["m"].n_groups == {"therapist": 20, "therapist:patient": 160}
    assert round(ns["ar"].residual_params["phi"], 2) == 0.25  # the AR(1) example's comment
    assert ns["res"].three_level and ns["re"].test == "knha"
    assert len(ns["ep"].episodes) > 0 and ns["ep"].rules["threshold"] == 2.0
    assert ns["sessions"].provenance.n_kept == 1821 and ns["sessions"].provenance.format == "spss"
    plt.close("all")
