"""als.dynamic_panel (ML-SEM dynamic panel model) and als.ri_clpm (RI-CLPM) against lavaan, the
published wages example of Allison, Williams & Moral-Benito (2017), input checks, and the
alliance_outcome warning about dynamic-panel bias.

Fixtures: tests/reference/make_dynamics_data.py (simulated data) and make_dynamics_reference.R
(lavaan 0.6-14; estimator = "ML", missing = "fiml", observed information).
"""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alliance_stats as als
from alliance_stats.models import dynamics

REF = Path(__file__).parent / "reference"
PARAMS = pd.read_csv(REF / "dynamics_reference.csv", keep_default_na=False, na_values=["NA"])
FIT = pd.read_csv(REF / "dynamics_reference_fit.csv").set_index("model")
STD = pd.read_csv(REF / "dynamics_reference_std.csv").set_index("model")
DATA = {k: pd.read_csv(REF / f"dynamics_{k}.csv") for k in ("feedback", "design2", "wages")}

MODELS = {
    "fb_dpm": lambda se="observed": als.dynamic_panel(DATA["feedback"], x="alliance", y="phq", se=se),
    "fb_dpm_reverse": lambda: als.dynamic_panel(DATA["feedback"], x="alliance", y="phq", reverse=True),
    "fb_dpm_age": lambda: als.dynamic_panel(DATA["feedback"], x="alliance", y="phq", covariates=["age"]),
    "fb_riclpm": lambda se="observed": als.ri_clpm(DATA["feedback"], x="alliance", y="phq", se=se),
    "d2_dpm_lag2": lambda se="observed": als.dynamic_panel(DATA["design2"], x="alliance", y="phq", lag=2, covariates="stress",
                                                           error_inv=True, se=se),
    "d2_riclpm_free": lambda: als.ri_clpm(DATA["design2"], x="alliance", y="phq", constrain=False),
    "wages_basic": lambda: als.dynamic_panel(DATA["wages"], x="union", y="lwage", patient="id", session="t"),
    "wages_socius": lambda: als.dynamic_panel(DATA["wages"], x="union", y="wks", patient="id", session="t",
                                              covariates=["lwage", "ed"], error_inv=True),
}
_CACHE = {}


def fitted(mid):
    if mid not in _CACHE:
        _CACHE[mid] = MODELS[mid]()
    return _CACHE[mid]


def _key(df):
    a, b = df["lhs"].astype(str), df["rhs"].astype(str)
    swap = (df["op"] == "~~") & (a > b)
    return pd.Series(np.where(swap, b, a), index=df.index) + " " + df["op"] + " " + pd.Series(np.where(swap, a, b), index=df.index)


def _merged(res, mid):
    ours = res.parameters.assign(key=_key(res.parameters)).set_index("key")
    ref = PARAMS[PARAMS["model"] == mid]
    ref = ref.assign(key=_key(ref)).set_index("key")
    ref = ref[ref["op"] != "=~"]  # fixed loadings
    fixed = ref["se"] == 0  # fixed zero residual variances of the RI-CLPM indicators
    assert set(ref.index[~fixed]) == set(ours.index[ours["se"].notna()]), "the free parameters differ from lavaan's"
    return ref[~fixed].merge(ours, left_index=True, right_index=True, how="left", suffixes=("", "_ours"))


@pytest.mark.parametrize("mid", list(MODELS))
def test_every_parameter_and_fit_measure_equals_lavaan(mid):
    res = fitted(mid)
    m = _merged(res, mid)
    # estimates to 2e-5 of max(1, |estimate|), SEs to 2e-5 relative: what the two optimisers reach
    np.testing.assert_allclose(m["estimate"], m["est"], rtol=0, atol=2e-5 * np.maximum(1, m["est"].abs()).max())
    assert np.max(np.abs(m["estimate"] - m["est"]) / np.maximum(1, m["est"].abs())) < 2e-5
    np.testing.assert_allclose(m["se_ours"], m["se"], rtol=2e-5)
    f, r = res.fit, FIT.loc[mid]
    assert f["npar"] == r["npar"] and f["df"] == r["df"] and f["n"] == r["ntotal"]
    assert f["loglik"] == pytest.approx(r["logl"], abs=1e-6)
    assert f["chi2"] == pytest.approx(r["chisq"], abs=1e-6)
    assert f["p"] == pytest.approx(r["pvalue"], abs=1e-8)
    for ours, theirs in (("cfi", "cfi"), ("tli", "tli"), ("rmsea", "rmsea")):
        assert f[ours] == pytest.approx(r[theirs], abs=1e-9)
    assert f["srmr"] == pytest.approx(r["srmr"], abs=1e-6)
    assert res.converged and not res.messages


@pytest.mark.parametrize("mid", ["fb_dpm", "fb_riclpm", "d2_dpm_lag2"])
def test_robust_standard_errors_equal_lavaans_huber_white(mid):
    res = MODELS[mid](se="robust")
    m = _merged(res, mid)
    np.testing.assert_allclose(m["se_ours"], m["se_robust"], rtol=2e-5)
    assert res.se_type == "robust" and "robust" in res.methods()


def test_wages_example_reproduces_the_published_dpm_results():
    """Allison, Williams & Moral-Benito (2017), as printed in the dpm package's README:
    wks ~ pre(lag(union)) + lag(lwage) | ed, error.inv = TRUE, information = "observed"."""
    res = fitted("wages_socius")
    e = res.effects.set_index("path")
    published = {"x->y": (-1.206, 0.522), "lwage->y": (0.588, 0.488), "ed->y": (-0.107, 0.056), "y->y": (0.188, 0.020)}
    for path, (b, se) in published.items():
        assert round(e.loc[path, "estimate"], 3) == b
        assert round(e.loc[path, "se"], 3) == se
    assert res.fit["df"] == 76 and round(res.fit["chi2"], 3) == 138.476
    assert round(res.fit["rmsea"], 3) == 0.037 and round(res.fit["srmr"], 3) == 0.025
    assert res.covariates == {"lwage": "time-varying", "ed": "time-invariant"}
    # dpm's test suite: lwage ~ pre(lag(union)) has chi2(37) = 271.23
    basic = fitted("wages_basic")
    assert basic.fit["df"] == 37 and round(basic.fit["chi2"], 2) == 271.23


@pytest.mark.parametrize("mid", ["fb_riclpm", "d2_riclpm_free"])
def test_random_intercept_correlation_equals_lavaans_standardized_solution(mid):
    res = fitted(mid)
    b = res.between.set_index("term").loc["correlation"]
    assert b["estimate"] == pytest.approx(STD.loc[mid, "est_std"], abs=1e-6)
    assert b["se"] == pytest.approx(STD.loc[mid, "se"], rel=1e-4)
    assert res.between_r == b["estimate"]


def test_effects_table_contract():
    res = fitted("fb_dpm_reverse")
    assert list(res.effects.columns[:7]) == ["path", "estimate", "se", "z", "p", "ci_low", "ci_high"]
    assert res.effects["path"].tolist() == ["x->y", "y->y", "y->x", "x->x"]
    e = res.effects.iloc[0]
    assert e["z"] == pytest.approx(e["estimate"] / e["se"])
    assert e["ci_high"] - e["estimate"] == pytest.approx(1.959964 * e["se"], rel=1e-6)
    rc = fitted("fb_riclpm")
    assert rc.effects["path"].tolist() == ["x->y", "y->x", "x->x", "y->y"]
    free = fitted("d2_riclpm_free")
    assert free.effects.groupby("path", sort=False)["session"].apply(list).to_dict() == {p: list(range(2, 9)) for p in ["x->y", "y->x", "x->x", "y->y"]}
    assert set(fitted("fb_dpm").fit.index) >= {"chi2", "df", "p", "cfi", "tli", "rmsea", "srmr", "loglik", "aic", "bic", "npar", "n"}


def test_results_print_tabulate_and_plot():
    import matplotlib.axes

    for mid in ("fb_dpm", "fb_riclpm"):
        res = fitted(mid)
        text = res.summary()
        assert res.title in text and res.effects.loc[0, "label"] in text and "Model fit:" in text
        assert f"{res.fit['chi2']:.3f}" in text and f"{res.fit['cfi']:.3f}" in text
        assert repr(res).startswith(f"<{type(res).__name__}: ") and "\n" not in repr(res)
        apa = res.to_apa()
        assert list(apa.columns) == ["Path", "b", "SE", "z", "p", "95% CI"]
        assert apa.loc[0, "b"] == f"{res.effects.loc[0, 'estimate']:.2f}"
        assert "<table" in res._repr_html_()
        methods = res.methods()
        assert f"{res.fit['chi2']:.2f}" in methods and str(res.n_patients) in methods
        ax = res.plot()
        assert isinstance(ax, matplotlib.axes.Axes)
        labels = {t.get_text() for t in ax.texts}
        assert f"{res.effects.set_index('path').loc['x->y', 'estimate']:.2f}" in labels
    assert "Allison" in fitted("fb_dpm").methods() and "Hamaker" in fitted("fb_riclpm").methods()
    assert fitted("fb_dpm").estimator.startswith("ML-SEM")


def test_rows_left_out_are_counted_and_the_input_is_untouched():
    d = DATA["feedback"].copy()
    before = d.copy()
    extra = pd.DataFrame({"patient": [1, 2], "session": [7, 8], "age": [40, 50], "alliance": [4.0, 3.0], "phq": [5.0, 6.0]})
    d = pd.concat([d, extra], ignore_index=True)
    d.loc[3, ["alliance", "phq"]] = np.nan
    res = als.dynamic_panel(d, x="alliance", y="phq", max_session=6)
    assert res.dropped.to_dict() == {"session after max_session=6": 2, "no alliance, phq score": 1,
                                     "alliance without phq at the last session (not in the model)": 1}
    assert res.n_rows + res.n_dropped == len(d)
    acc = res.accounting()
    assert acc.loc[acc["status"] == "used", "n"].tolist() == [res.n_rows]
    assert acc.loc[acc["status"] == "excluded", "n"].sum() == 4
    assert "Left out: 2 rows: session after max_session=6" in res.summary()
    pd.testing.assert_frame_equal(DATA["feedback"], before)
    # the x at the last session is not in a one-direction model: a row with only that is counted
    d2 = DATA["feedback"].copy()
    last = d2.index[d2["session"] == 6][0]
    d2.loc[last, "phq"] = np.nan
    r2 = als.dynamic_panel(d2, x="alliance", y="phq")
    assert r2.dropped.to_dict() == {"alliance without phq at the last session (not in the model)": 2}


def test_input_errors_name_what_is_wrong():
    d = DATA["feedback"]
    with pytest.raises(als.ColumnError, match=r"x='wai'.*covariates\[0\]='sex'"):
        als.dynamic_panel(d, x="wai", y="phq", covariates=["sex"])
    with pytest.raises(als.ColumnError, match="y='symptoms'"):
        als.ri_clpm(d, x="alliance", y="symptoms")
    short = d[d["session"] <= 2]
    with pytest.raises(als.ModelSpecError, match="at least 3 sessions"):
        als.dynamic_panel(short, x="alliance", y="phq")
    with pytest.raises(als.ModelSpecError, match="at least 4 sessions"):
        als.dynamic_panel(d[d["session"] <= 3], x="alliance", y="phq", lag=2)
    with pytest.raises(als.ModelSpecError, match="at least 3 sessions"):
        als.ri_clpm(short, x="alliance", y="phq")
    dup = pd.concat([d, d.iloc[[5]]], ignore_index=True)
    with pytest.raises(als.SessionDataError, match="appears twice"):
        als.dynamic_panel(dup, x="alliance", y="phq")
    with pytest.raises(als.ModelSpecError, match="two roles"):
        als.dynamic_panel(d, x="phq", y="phq")
    with pytest.raises(als.ModelSpecError, match="lag must be a positive whole number"):
        als.dynamic_panel(d, x="alliance", y="phq", lag=0)
    with pytest.raises(als.OptionError, match="se='sandwich'.*'observed', 'robust'"):
        als.ri_clpm(d, x="alliance", y="phq", se="sandwich")
    bad = d.astype({"phq": object})
    bad.loc[7, "phq"] = "n/a"
    with pytest.raises(als.AllianceStatsError, match="'phq' holds values that are not numbers at rows 7"):
        als.dynamic_panel(bad, x="alliance", y="phq")
    thin = pd.concat([d, pd.DataFrame({"patient": [1], "session": [9], "age": [40], "alliance": [4.0], "phq": [3.0]})], ignore_index=True)
    with pytest.raises(als.ModelSpecError, match="fewer than 3 patients have a score for .*phq_9.*max_session="):
        als.dynamic_panel(thin, x="alliance", y="phq")


def test_analytic_information_equals_numerical_derivatives_of_the_gradient():
    res_data = DATA["design2"]
    P = dynamics._panel(res_data, x="alliance", y="phq", patient="patient", session="session", covariates=["stress"],
                        max_session=None, fn="t", min_waves=4, lag=2)
    ram, X, scale = dynamics._dpm_model(P, "alliance", "phq", 2, True, False)
    pats = dynamics._patterns(X / scale[: ram.p])
    th = dynamics._start(ram, X / scale[: ram.p])
    th = th + 0.01 * np.random.default_rng(1).standard_normal(len(th))
    K = len(th)
    h = 1e-5 * np.maximum(1, np.abs(th))
    _, g = ram.loglik(np.vstack([th + np.diag(h), th - np.diag(h)]), pats)
    num = -(g[:K] - g[K:]).T / (2 * h[None, :])
    ana = ram.hessian(th, pats)
    np.testing.assert_allclose(ana, (num + num.T) / 2, atol=1e-5 * np.abs(num).max())


@settings(max_examples=8, deadline=None)
@given(c=st.floats(0.2, 5.0), shift=st.floats(-10, 10))
def test_rescaling_x_rescales_its_effect_and_nothing_else(c, shift):
    """x' = c x + shift: the x->y effect becomes b / c; y->y, chi2 and the SE ratio do not change."""
    base = fitted("fb_riclpm")
    d = DATA["feedback"].assign(alliance=lambda t: c * t["alliance"] + shift)
    res = als.ri_clpm(d, x="alliance", y="phq")
    e0, e1 = base.effects.set_index("path"), res.effects.set_index("path")
    assert e1.loc["x->y", "estimate"] == pytest.approx(e0.loc["x->y", "estimate"] / c, rel=1e-5)
    assert e1.loc["y->x", "estimate"] == pytest.approx(e0.loc["y->x", "estimate"] * c, rel=1e-5)
    assert e1.loc["y->y", "estimate"] == pytest.approx(e0.loc["y->y", "estimate"], rel=1e-5, abs=1e-7)
    assert e1.loc["x->y", "z"] == pytest.approx(e0.loc["x->y", "z"], rel=1e-4)
    assert res.fit["chi2"] == pytest.approx(base.fit["chi2"], abs=1e-5)


# --- alliance_outcome's warning -------------------------------------------------------------------
def test_alliance_outcome_warns_about_dynamic_panel_bias_and_names_its_estimator():
    d = DATA["feedback"]
    with pytest.warns(als.DynamicPanelBiasWarning, match=r"6 sessions per patient \(median; range 2-6\).*als.dynamic_panel.*als.ri_clpm"):
        res = als.alliance_outcome(d, outcome="phq", alliance="alliance")
    assert res.estimator == "random-intercept mixed model with the person-mean-centred lagged outcome (REML)"
    assert res.estimator in res.summary() and res.estimator in res.methods()
    with warnings.catch_warnings():
        warnings.simplefilter("error", als.DynamicPanelBiasWarning)
        plain = als.alliance_outcome(d, outcome="phq", alliance="alliance", prior_outcome=False, reml=False)
    assert plain.estimator == "random-intercept mixed model (ML)"
    assert issubclass(als.DynamicPanelBiasWarning, als.AllianceStatsWarning)


# --- recovery: the lagged random-intercept model is biased, the dynamic panel model is not ------------------
TRUE_X_Y, TRUE_Y_Y = -1.5, 0.5


def _recovery_study(seed):
    s = als.simulate_study(n_therapists=20, patients_per_therapist=10, min_sessions=8, max_sessions=8, seed=seed, within_effect=TRUE_X_Y,
                           outcome_ar=TRUE_Y_Y, feedback=-0.05, dropout_alliance=1.0, improvement_sd=0.0, rupture_rate=0.0,
                           missed_session_rate=0.0, missing_item_rate=0.0, pqs_fraction=0.0)
    d = s.sessions[["patient", "session"]].assign(wai=als.score(s.sessions, "WAI-SR", items="wai{}")["wai_sr_total"],
                                                  phq=als.score(s.sessions, "PHQ-9", items="phq{}")["phq9_total"])
    e = als.dynamic_panel(d, x="wai", y="phq", se="robust").effects.set_index("path")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", als.DynamicPanelBiasWarning)
        a = als.alliance_outcome(d, outcome="phq", alliance="wai").model.fixed.set_index("term")
    return {
        "dpm_xy": e.loc["x->y", "estimate"], "dpm_xy_cover": e.loc["x->y", "ci_low"] <= TRUE_X_Y <= e.loc["x->y", "ci_high"],
        "dpm_yy": e.loc["y->y", "estimate"], "dpm_yy_cover": e.loc["y->y", "ci_low"] <= TRUE_Y_Y <= e.loc["y->y", "ci_high"],
        "lmm_xy": a.loc["wai_within_lag1", "estimate"],
        "lmm_xy_cover": a.loc["wai_within_lag1", "ci_low"] <= TRUE_X_Y <= a.loc["wai_within_lag1", "ci_high"],
        "lmm_yy": a.loc["phq_within_lag1", "estimate"],
    }


@pytest.mark.slow
def test_dynamic_panel_recovers_what_the_lagged_random_intercept_model_misses():
    """200 studies of 200 patients x 8 sessions with symptom -> alliance feedback, autoregressive
    symptoms and dropout after a weak first alliance. The truth (simulate_study's parameters) lies
    inside the dynamic panel model's robust 95% CI in >= 93% of studies; the random-intercept model
    with the lagged outcome (alliance_outcome) is biased towards zero and misses it."""
    r = pd.DataFrame([_recovery_study(5000 + i) for i in range(200)])
    mc = r.std() / np.sqrt(len(r))  # Monte-Carlo standard errors of the means
    assert r["dpm_xy_cover"].mean() >= 0.93 and r["dpm_yy_cover"].mean() >= 0.93, r.mean()
    assert abs(r["dpm_xy"].mean() - TRUE_X_Y) < 3 * mc["dpm_xy"]
    assert abs(r["dpm_yy"].mean() - TRUE_Y_Y) < 3 * mc["dpm_yy"] + 0.02
    assert r["lmm_xy"].mean() - TRUE_X_Y > 10 * mc["lmm_xy"]  # pulled towards zero
    assert r["lmm_xy_cover"].mean() < 0.8


def test_readme_dynamics_example_runs_as_written(sample_sessions):
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "als.dynamic_panel" in b]
    assert len(block) == 1
    ns = {"als": als, "df": sample_sessions}
    exec(compile(block[0], "README.md", "exec"), ns)
    assert ns["dp"].effects["path"].tolist() == ["x->y", "y->y"] and ns["dp"].sessions == list(range(1, 13))
    assert ns["rc"].se_type == "robust" and len(ns["rc"].between) == 4
