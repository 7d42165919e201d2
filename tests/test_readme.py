import re
from pathlib import Path

import matplotlib.pyplot as plt

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_examples_run_as_written():
    runnable = [b for b in _blocks() if "read_sessions" in b or "meta_analysis" in b or "detect_ruptures" in b or "alliance_outcome" in b]
    assert len(runnable) == 4, "the README lost its load-and-score, alliance-outcome, meta-analysis or rupture example"
    ns: dict = {}
    for block in runnable:
        exec(compile(block, str(README), "exec"), ns)
    assert len(ns["df"]) == 1821 and {"wai_sr_total", "phq9_total"} <= set(ns["df"].columns)
    assert ns["ao"].effects["level"].tolist() == ["within-patient", "between-patient", "therapist"]
    assert ns["m"].n_groups == {"therapist": 20, "therapist:patient": 160}
    assert ns["res"].three_level and ns["re"].test == "knha"
    assert len(ns["ep"]) > 0 and ns["ep"].attrs["alliance_stats"]["rules"]["threshold"] == 2.0
    plt.close("all")
