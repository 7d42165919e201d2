"""The Result interface on ReliabilityResult, MultilevelReliability, AllianceTrajectories,
PQSReliability and PQSAlliance (the last analyses that returned a bare DataFrame, Series or dict;
alliance_stats/_result.py). Same checks as tests/test_result_base.py, on seeded synthetic data and
the package's synthetic samples."""

import re
import warnings
from functools import lru_cache
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import alliance_stats as als
from alliance_stats._result import ACCOUNTING_COLUMNS, Result

REF = Path(__file__).parent / "reference"


def _reliability():
    items = pd.read_csv(REF / "reliability_wai_sr_items.csv").astype(float)
    items.loc[[0, 5], "wai3"] = np.nan  # two rows left out of bond and total, counted
    return als.reliability(items, "wai-sr", items="wai{}")


ML_ITEMS = [f"wai{i}" for i in range(1, 7)]


@lru_cache(maxsize=None)
def _ml_data():
    d = als.simulate_study(n_therapists=3, patients_per_therapist=4, seed=2).sessions
    d = d[d["session"] <= 5].dropna(subset=ML_ITEMS).reset_index(drop=True)
    d.loc[[0, 7], "wai2"] = np.nan  # two item responses left out, counted
    return d


def _multilevel():
    return als.multilevel_reliability(_ml_data(), items=ML_ITEMS)


def _trajectories():
    d = als.simulate_study(n_therapists=4, patients_per_therapist=5, seed=1).sessions
    d = d.join(als.score(d, "WAI-SR", items="wai{}"))
    d = d[~((d["patient"] == d["patient"].iloc[0]) & (d["session"] > 2))]  # one patient with 2 sessions: not classified
    return als.alliance_trajectories(d, "wai_sr_total")


@lru_cache(maxsize=None)
def _sorts():
    return als.read_qsorts(als.sample_path("pqs"), session="session_no", patient="client_id", rater="judge",
                           items="PQS_{}").data


def _pqs_alliance():
    d = als.read_sessions(als.sample_path("sessions_csv"), patient="client_id", session="session_no",
                          instruments={"wai-sr": "WAISR_{}"}).data
    d = d.drop(index=d.index[(d["patient"] == _sorts()["patient"].iloc[0]) & (d["session"] == _sorts()["session"].iloc[0])])
    return als.pqs_alliance(_sorts(), d, alliance="wai_sr_total", session=["patient", "session"])


BUILD = {
    "reliability": _reliability,
    "multilevel_reliability": _multilevel,
    "alliance_trajectories": _trajectories,
    "pqs_reliability": lambda: als.pqs_reliability(_sorts(), session=["patient", "session"], rater="rater"),
    "pqs_alliance": _pqs_alliance,
}
CLASSES = {"reliability": "ReliabilityResult", "multilevel_reliability": "MultilevelReliability",
           "alliance_trajectories": "AllianceTrajectories", "pqs_reliability": "PQSReliability", "pqs_alliance": "PQSAlliance"}
# (the n each result reports, the unit of its first accounting row, {reason: n} left out)
N = {
    "reliability": (lambda r: int(r.table["n"].iloc[0]), "rows (task)", {"a missing item of the scale": [2, 2]}),
    "multilevel_reliability": (lambda r: r.n_responses, "item responses", {"missing": [2]}),
    "alliance_trajectories": (lambda r: int(r.table["pattern"].notna().sum()), "patients",
                              {"fewer than 4 scored sessions": [1]}),
    "pqs_reliability": (lambda r: r.n_sorts, "sorts", {"not rated by every judge": [0]}),
    "pqs_alliance": (lambda r: r.n_sessions, "sessions", {"no wai_sr_total score": [1]}),
}
HAS_PLOT = {"alliance_trajectories"}
ZERO = re.compile(r"(?<![\d.])-?0?\.0+(?![\d.e])")  # 0.00, .00, -0.00: a number printed as zero


@lru_cache(maxsize=None)
def fitted(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BUILD[name]()


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("name", list(BUILD))
def test_text_interface(name):
    res = fitted(name)
    assert isinstance(res, Result) and type(res).__name__ == CLASSES[name] and getattr(als, CLASSES[name]) is type(res)
    r = repr(res)
    assert "\n" not in r and r.startswith(f"<{CLASSES[name]}: ") and r.endswith(">")
    text = res.summary()
    assert isinstance(text, str) and res.title in text and len(text.splitlines()) > 3
    html = res._repr_html_()
    assert html.startswith("<div class='alliance-stats-result'>") and html.count("<div") == 1 and html.endswith("</div>")
    assert "__repr__" not in vars(type(res)) and "_repr_html_" not in vars(type(res))


@pytest.mark.parametrize("name", list(BUILD))
def test_tables(name):
    res = fitted(name)
    frame = res.to_frame()
    assert isinstance(frame, pd.DataFrame) and len(frame) > 0
    before = res.to_frame()
    for j in np.flatnonzero([pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t) for t in frame.dtypes]):
        frame.iloc[0, j] = frame.iloc[0, j] + 1  # a copy: changing it in place leaves the result as it was
    pd.testing.assert_frame_equal(res.to_frame(), before)
    for digits in (None, 3):
        apa = res.to_apa(digits)
        assert isinstance(apa, pd.DataFrame) and len(apa) > 0
        cells = apa.to_numpy().ravel()
        assert all(isinstance(c, str) for c in cells), [type(c) for c in cells if not isinstance(c, str)][:3]
        assert not [c for c in cells if ZERO.search(c)]  # no non-zero value printed as 0.00
    assert res.to_apa().equals(res.to_apa(2))


@pytest.mark.parametrize("name", list(BUILD))
def test_methods_and_accounting(name):
    res = fitted(name)
    count, unit, left = N[name]
    n = count(res)
    text = res.methods()
    assert len(text) > 200 and re.search(rf"\b{n}\b", text), text
    acc = res.accounting()
    assert list(acc.columns) == list(ACCOUNTING_COLUMNS)
    assert acc["unit"].iloc[0] == unit and acc["status"].iloc[0] == "used" and acc["n"].iloc[0] == n
    assert set(acc["status"]) <= {"used", "excluded"} and (acc["n"] > 0).all()
    excluded = acc[acc["status"] == "excluded"]
    got = {r: excluded.loc[excluded["reason"] == r, "n"].tolist() for r in left}
    assert got == {r: [v for v in ns if v] for r, ns in left.items()}
    if len(excluded):
        assert "left out" in res.summary().lower() and (excluded["reason"] != "").all()


def test_the_numbers_in_the_text_are_the_tables():
    rel = fitted("reliability")
    t = rel.table.set_index("scale")
    assert t.loc["bond", "n"] == 398 and t.loc["bond", "n_excluded"] == 2
    assert f"bond (4 items, n = 398): α = {t.loc['bond', 'alpha']:.2f}".replace("0.", ".") in rel.methods()
    assert rel.item_total_frame().groupby("scale").size().to_dict() == {"bond": 4, "goal": 4, "task": 4, "total": 12}
    ml = fitted("multilevel_reliability")
    assert ml.to_frame()["coefficient"].tolist() == ["RkF", "R1R", "RkR", "Rc", "RkRn", "Rcn"]
    d = _ml_data()
    assert ml.n_responses == len(d) * 6 - 2 and (ml.n_patients, ml.n_sessions, ml.n_items) == (d["patient"].nunique(), 5, 6)
    tr = fitted("alliance_trajectories")
    c = tr.counts()
    assert c["patients"].sum() == tr.table["pattern"].notna().sum() and c["percent"].sum() == pytest.approx(100)
    pr = fitted("pqs_reliability")
    assert len(pr.sessions) == 69 and len(pr.items) == 100 and len(pr.pairs) == 69
    pa = fitted("pqs_alliance")
    assert (pa.table["n"] == pa.n_sessions).all() and pa.n_sessions == 68 and pa.n_without_alliance == 1


@pytest.mark.parametrize("name", list(BUILD))
def test_plot_takes_ax_by_keyword_only(name):
    res = fitted(name)
    fig, ax = plt.subplots()
    if name not in HAS_PLOT:
        with pytest.raises(als.ArgumentError, match="no standard figure"):
            res.plot(ax=ax)
        return
    assert res.plot(ax=ax) is ax
    with pytest.raises(TypeError):
        res.plot(ax)
