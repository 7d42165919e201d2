"""Every migrated result class on the one Result base (alliance_stats/_result.py): the same
interface whatever the analysis. Built from small seeded fits of the reference data sets in
tests/reference (synthetic, or R's public data)."""

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


def _csv(name):
    return pd.read_csv(REF / name)


def _sessions():
    d = als.simulate_study(n_therapists=6, patients_per_therapist=5, seed=1).sessions
    return d.join(als.score(d, "WAI-SR", items="wai{}")).join(als.score(d, "PHQ-9", items="phq{}"))


def _lmm():
    d = _sessions()
    d.loc[d.index[:3], "phq9_total"] = np.nan  # rows left out, counted
    return als.lmm("phq9_total ~ wai_sr_total + session + (1 | patient)", d)


def _apim():
    lng = _csv("agreement_apim.csv")
    d = als.partner_scores(lng, dyad="dyad", role="role", columns="alliance")
    return als.apim(d, actor="alliance", partner="alliance_partner", outcome="outcome", dyad="dyad", role="role")


BUILD = {
    "lmm": _lmm,
    "glmm": lambda: als.glmm("cbind(incidence, size - incidence) ~ C(period) + (1 | herd)", _csv("glmm_cbpp.csv")),
    "alliance_outcome": lambda: als.alliance_outcome(_sessions(), outcome="phq9_total", alliance="wai_sr_total",
                                                     therapist="therapist"),
    "therapist_effects": lambda: als.therapist_effects(_sessions(), alliance="wai_sr_total", outcome="phq9_total",
                                                       session="session"),
    "dropout": lambda: als.early_alliance_dropout(_csv("glmm_dropout_sessions.csv"), alliance="alliance", dropout="dropout",
                                                  therapist="therapist", covariates=("severity",)),
    "response_surface": lambda: als.response_surface(_csv("agreement_rsa.csv"), x="client_wai", y="therapist_wai",
                                                     outcome="outcome", scale_midpoint=3),
    "apim": _apim,
    "dynamic_panel": lambda: als.dynamic_panel(_csv("dynamics_feedback.csv"), x="alliance", y="phq", max_session=5),
    "ri_clpm": lambda: als.ri_clpm(_csv("dynamics_feedback.csv"), x="alliance", y="phq", max_session=5),
    "power": lambda: als.power_analysis(n_therapists=6, patients_per_therapist=5, sessions=6, effect=-1.5, n_sims=4, seed=3,
                                        progress=False),
}
CLASSES = {"lmm": "LMMResult", "glmm": "GLMMResult", "alliance_outcome": "AllianceOutcomeResult",
           "therapist_effects": "TherapistEffectsResult", "dropout": "DropoutResult",
           "response_surface": "ResponseSurfaceResult", "apim": "APIMResult", "dynamic_panel": "DynamicPanelResult",
           "ri_clpm": "RICLPMResult", "power": "PowerResult"}
# the n each result reports: rows, patients, persons or simulated studies analysed
N = {"lmm": lambda r: r.n_obs, "glmm": lambda r: r.n_obs, "alliance_outcome": lambda r: r.model.n_obs,
     "therapist_effects": lambda r: r.model.n_obs, "dropout": lambda r: r.n_patients, "response_surface": lambda r: r.n_obs,
     "apim": lambda r: r.n_obs, "dynamic_panel": lambda r: r.n_rows, "ri_clpm": lambda r: r.n_rows,
     "power": lambda r: int((r.table["n_sims"] - r.table["n_failed"]).sum())}
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
    assert isinstance(res, Result) and type(res).__name__ == CLASSES[name]
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
        zeros = [c for c in cells if ZERO.search(c)]
        assert not zeros, zeros  # no non-zero value printed as 0.00 (and none of these estimates is exactly 0)
    assert res.to_apa().equals(res.to_apa(2))


@pytest.mark.parametrize("name", list(BUILD))
def test_methods_and_accounting(name):
    res = fitted(name)
    n = N[name](res)
    text = res.methods()
    assert len(text) > 200 and re.search(rf"\b{n}\b", text), text
    acc = res.accounting()
    assert list(acc.columns) == list(ACCOUNTING_COLUMNS)
    used = acc[acc["status"] == "used"]
    assert used["n"].iloc[0] == n
    assert set(acc["status"]) <= {"used", "excluded"} and (acc["n"] > 0).all()
    excluded = acc[acc["status"] == "excluded"]
    if len(excluded):
        assert "left out" in res.summary().lower() and (excluded["reason"] != "").all()


def test_accounting_counts_what_each_result_records():
    m = fitted("lmm")
    assert m.accounting()["n"].tolist() == [m.n_obs, *m.dropped.tolist()] and m.n_obs + m.n_dropped == len(_sessions())
    assert m.dropped["missing phq9_total"] >= 3
    dr = fitted("dropout")
    acc = dr.accounting()
    pat = acc[acc["unit"] == "patients"]
    assert pat["n"].sum() == dr.n_patients + dr.n_excluded
    assert dict(zip(pat["reason"][1:], pat["n"][1:])) == dr.excluded_counts.to_dict()
    ao = fitted("alliance_outcome")
    assert ao.accounting()["n"].sum() == len(ao.data)


@pytest.mark.parametrize("name", list(BUILD))
def test_plot_takes_ax_by_keyword_only(name):
    res = fitted(name)
    fig, ax = plt.subplots()
    assert res.plot(ax=ax) is ax
    with pytest.raises(TypeError):
        res.plot(ax)
    plt.close(fig)
