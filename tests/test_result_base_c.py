"""The Result interface on MetaResult, QFactorResult, TransitionResult and RuptureOutcomeResult
(group C of the migration onto alliance_stats._result.Result)."""

import inspect
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import alliance_stats as als
from alliance_stats._result import ACCOUNTING_COLUMNS, Result


def _meta():
    return als.meta_analysis(als.aggregate_effects(als.load_sample("meta"), by="study", r="r", n="n"), r="r", n="n",
                             study="study")


def _meta_dropped():
    return als.meta_analysis(r=[0.2, 1.0, 0.3, 0.25], n=[50, 40, 60, 2], on_invalid="drop")


def _meta_three_level():
    return als.meta_analysis(als.load_sample("meta"), r="r", n="n", study="study", cluster="study")


def _meta_regression():
    return als.meta_analysis(als.load_sample("meta"), r="r", n="n", moderators="rater + year", test="knha")


def _meta_filled():
    # five small studies with large effects on one side: trim-and-fill imputes some on the other
    r = [0.10, 0.12, 0.15, 0.11, 0.45, 0.50, 0.55, 0.60, 0.48]
    n = [400, 350, 300, 380, 30, 25, 20, 18, 28]
    return als.meta_analysis(r=r, n=n).trim_and_fill()


def _qfactor():
    qs = als.read_qsorts(als.sample_path("pqs"), session="session_id", patient="client_id", rater="judge", items="PQS_{}").data
    return als.q_factor_analysis(qs[qs.rater == "J1"])


def _transitions():
    d = pd.DataFrame({"patient": ["a"] * 5 + ["b"] * 3, "session": [1, 2, 3, 4, 5, 1, 2, 4],
                      "state": ["working", "working", "therapeutic", "therapeutic", "structuralizing",
                                "working", "therapeutic", "therapeutic"]})
    return als.transitions(d, "state", states=als.ALLIANCE_TYPES)


def _rupture_outcome():
    rows = []
    shapes = {"none": [4, 4, 4, 4, 4, 4], "repaired": [4, 4, 2, 4, 4, 4], "unrepaired": [4, 4, 4, 4, 4, 2]}
    last = {"none": [10, 11, 12], "repaired": [6, 7, 9], "unrepaired": [13, 14, 12]}
    for status, alli in shapes.items():
        for k in range(3):
            phq = np.linspace([20, 22, 21][k], last[status][k], 6)
            rows += [{"patient": f"{status}{k}", "session": s + 1, "w": alli[s] + 0.01 * k, "phq9_total": phq[s]}
                     for s in range(6)]
    d = pd.DataFrame(rows)
    d.loc[(d.patient == "none2") & (d.session > 1), "phq9_total"] = np.nan  # one outcome score: left out
    return als.rupture_outcome(d, als.detect_ruptures(d, "w"), outcome="phq9_total")


# (make the result, the unit counted by accounting(), how many used, {reason: n} left out)
CASES = {
    "meta": (_meta, "effect sizes", 60, {}),
    "meta_dropped": (_meta_dropped, "effect sizes", 2, {"|r| = 1 is not below 1": 1, "n = 2 is not above 3": 1}),
    "meta_three_level": (_meta_three_level, "effect sizes", 104, {}),
    "meta_regression": (_meta_regression, "effect sizes", 104, {}),
    "meta_filled": (_meta_filled, "effect sizes", 9, {}),
    "qfactor": (_qfactor, "Q-sorts", None, None),
    "transitions": (_transitions, "session pairs", 5, {"broken by a missed session or a missing state": 1}),
    "rupture_outcome": (_rupture_outcome, "patients", 8, {"fewer than two outcome scores": 1}),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    make, unit, used, left = CASES[request.param]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", als.DependentEffectsWarning)
        return request.param, make(), unit, used, left


def test_on_the_base_without_own_repr(case):
    _, res, *_ = case
    assert isinstance(res, Result)
    cls = type(res)
    assert cls.__repr__ is Result.__repr__ and cls._repr_html_ is Result._repr_html_
    assert cls.title != Result.title
    r = repr(res)
    assert r.startswith(f"<{cls.__name__}: ") and r.endswith(">") and "\n" not in r
    s = res.summary()
    assert s.splitlines()[0] == cls.title and s.splitlines()[1] == res._headline()
    html = res._repr_html_()
    assert html.startswith("<div class='alliance-stats-result'>") and "<table" in html


def test_tables(case):
    _, res, *_ = case
    f = res.to_frame()
    assert isinstance(f, pd.DataFrame) and len(f)
    f.iloc[:, -1] = 0  # a copy: the result is unchanged
    assert not res.to_frame().equals(f)
    apa = res.to_apa()
    assert apa.map(lambda x: isinstance(x, (str, int, np.integer))).all().all()
    three = res.to_apa(digits=3)
    assert apa.shape == three.shape and not apa.equals(three)
    with pytest.raises(als.OptionError, match="digits=-1"):
        res.to_apa(digits=-1)


def test_methods_paragraph(case):
    _, res, *_ = case
    m = res.methods()
    assert isinstance(m, str) and m.endswith(".") and len(m.split(". ")) >= 2


def test_accounting(case):
    name, res, unit, used, left = case
    acc = res.accounting()
    assert tuple(acc.columns) == ACCOUNTING_COLUMNS
    assert set(acc["status"]) <= {"used", "excluded"} and (acc["unit"] == unit).all()
    if name == "qfactor":
        used, left = len(res.loadings), {}
    ex = acc[acc.status == "excluded"]
    assert acc.loc[0, "status"] == "used" and acc.loc[0, "n"] == used and acc.loc[0, "reason"] == ""
    assert dict(zip(ex["reason"], ex["n"])) == left


def test_plot_takes_ax_by_keyword_and_returns_it(case):
    _, res, *_ = case
    p = inspect.signature(type(res).plot).parameters["ax"]
    assert p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is None
    if getattr(res, "qm", None) is not None or getattr(res, "three_level", False):
        with pytest.raises(als.MetaAnalysisError, match="intercept-only"):
            res.plot()
        return
    _, axes = plt.subplots(1, 2)
    assert res.plot(ax=axes[1]) is axes[1]
    assert len(axes[0].get_children()) == len(plt.subplots()[1].get_children())  # the other Axes untouched


# ---------------------------------------------------------------------------------------
# values of the new tables against the results' own attributes


def test_meta_frames_hold_the_fitted_numbers():
    res = _meta()
    f = res.to_frame()
    assert f.columns.tolist() == ["term", "r", "r_ci_low", "r_ci_high", "estimate", "se", "statistic", "pval", "ci_low", "ci_high"]
    assert (f.loc[0, "r"], f.loc[0, "r_ci_low"], f.loc[0, "r_ci_high"]) == (res.estimate, *res.ci)
    assert f.loc[0, "estimate"] == res.z and f.loc[0, "se"] == res.se_z
    assert "r" not in _meta_regression().to_frame().columns
    filled = _meta_filled()
    k0 = filled.k0
    assert k0 > 0 and filled.k == 9 + k0 and filled.table["filled"].sum() == k0
    acc = filled.accounting()
    assert acc.values.tolist()[-1] == ["effect sizes", "used", "imputed by trim-and-fill", k0]
    assert f"Trim-and-fill (Duval & Tweedie, 2000) imputed {k0} effect size(s) on the {filled.side} side" in filled.methods()
    three = _meta_three_level().methods()
    assert "nested in 60 clusters" in three and "variance between clusters" in three
    reg = _meta_regression()
    assert f"F(3, 100) = {reg.qm:.2f}" in reg.methods() and "Knapp-Hartung" in reg.methods()


def test_qfactor_transition_rupture_frames():
    q = _qfactor()
    f = q.to_frame()
    assert f["n_defining"].sum() == q.loadings["defines"].notna().sum()
    assert f["variance_pct"].tolist() == q.variance["variance_pct"].tolist()
    assert f"{q.n_factors} factor(s) were retained ({q.rule})" in q.methods()
    tr = _transitions()
    t = tr.to_frame().set_index(["from", "to"])
    assert len(t) == 16 and t["count"].sum() == tr.n_transitions == 5
    assert t.loc[("working", "therapeutic"), "probability"] == pytest.approx(2 / 3)
    assert t.loc[("working", "therapeutic"), "ci_low"] == tr.ci_low.loc["working", "therapeutic"]
    assert f"G²({tr.test['df']}) = {tr.test['g2']:.2f}" in tr.methods()
    ro = _rupture_outcome()
    e = ro.to_frame()
    half = ro.to_frame()["ci_high"] - e["estimate"]
    from scipy import stats

    np.testing.assert_allclose(half, stats.t.ppf(0.975, e["df"]) * e["se"])
    assert "fewer than two outcome scores: 1" in ro.methods() and "lower PHQ-9 total is better" in ro.methods()
    ax = ro.plot()
    assert ax.get_ylabel() == "Change in PHQ-9 total (last - first)"
