"""als.lmm API, edge cases, hand-worked closed forms; decompose; alliance_outcome; compare."""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alliance_stats as als

REF = Path(__file__).parent / "reference"


@pytest.fixture(scope="module")
def small():
    return pd.read_csv(REF / "lmm_small.csv.gz")


@pytest.fixture(scope="module")
def sleep():
    return pd.read_csv(REF / "lmm_sleepstudy.csv")


def balanced(seed=0, groups=30, per=6, sd_b=1.5, sd_e=1.0, beta=(2.0, 0.5)):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), per)
    x = rng.normal(size=g.size)
    y = beta[0] + beta[1] * x + rng.normal(0, sd_b, groups)[g] + rng.normal(0, sd_e, g.size)
    return pd.DataFrame({"g": g, "x": x, "y": y})


# --- formula handling -----------------------------------------------------------------------
def test_nested_slash_equals_explicit_interaction(small):
    a = als.lmm("wai ~ session + (1 | therapist/patient)", small)
    b = als.lmm("wai ~ session + (1 | therapist) + (1 | therapist:patient)", small)
    assert a.llf == pytest.approx(b.llf, abs=1e-9)
    assert a.n_groups == {"therapist": 20, "therapist:patient": 160}


def test_crossed_factors_are_fitted_and_reported_with_the_nesting_hint():
    d = pd.DataFrame({"a": np.tile([1, 2, 3], 8), "b": np.repeat([1, 2, 3, 4], 6), "y": np.arange(24.0) % 5})
    with pytest.warns(als.SingularFitWarning):
        m = als.lmm("y ~ 1 + (1 | a) + (1 | b)", d)
    assert m.n_groups == {"a": 3, "b": 4}
    assert any("'b' and 'a' are crossed: 4 of 4 b groups" in msg and "(1 | a/b)" in msg for msg in m.messages)


def test_reused_patient_ids_are_crossed_until_nested_explicitly():
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"therapist": np.repeat([1, 2, 3, 4], 12), "patient": np.tile(np.repeat([1, 2, 3], 4), 4)})
    d["y"] = rng.normal(size=len(d)) + d["therapist"] * 0.3 + (d["patient"] + 10 * d["therapist"]) % 3
    with pytest.warns(als.SingularFitWarning):
        crossed = als.lmm("y ~ 1 + (1 | therapist) + (1 | patient)", d)
    assert crossed.n_groups == {"therapist": 4, "patient": 3}
    assert any("(1 | therapist/patient)" in msg for msg in crossed.messages)
    with pytest.warns(als.SingularFitWarning):
        m = als.lmm("y ~ 1 + (1 | therapist/patient)", d)
    assert m.n_groups == {"therapist": 4, "therapist:patient": 12}
    assert not any("crossed" in msg for msg in m.messages)


@pytest.mark.parametrize(
    "formula, err, match",
    [
        ("y ~ x", als.ModelSpecError, "no random-effect term"),
        ("y ~ x + (1 | nope)", als.ColumnError, "nope"),
        ("y ~ zz + (1 | g)", als.ColumnError, "zz"),
        ("y x (1 | g)", als.ModelSpecError, "~"),
        ("y ~ x + 1 | g", als.ModelSpecError, "parentheses"),
    ],
)
def test_bad_formulas(formula, err, match):
    with pytest.raises(err, match=match):
        als.lmm(formula, balanced())


def test_errors_are_value_errors():
    assert issubclass(als.ModelSpecError, ValueError)
    with pytest.raises(ValueError):
        als.lmm("y ~ x + (1 | g)", balanced(), df_method="kenward")


def test_single_group_raises():
    d = balanced(groups=1, per=10)
    with pytest.raises(als.ModelSpecError, match="at least two groups"):
        als.lmm("y ~ x + (1 | g)", d)


# --- closed forms for a random-intercept model ------------------------------------------------
def test_blups_icc_r2_match_closed_forms():
    d = balanced(seed=3)
    m = als.lmm("y ~ x + (1 | g)", d)
    s2b = m.random.loc[0, "variance"]
    s2 = m.sigma**2
    beta = m.fixed["estimate"].to_numpy()
    resid = d["y"] - beta[0] - beta[1] * d["x"]
    n_i = d.groupby("g").size()
    shrink = s2b / (s2b + s2 / n_i)
    blup = shrink * resid.groupby(d["g"]).mean()
    condsd = np.sqrt(1 / (1 / s2b + n_i / s2))
    re = m.random_effects().set_index("level")
    np.testing.assert_allclose(re.loc[blup.index, "estimate"], blup, rtol=1e-8)
    np.testing.assert_allclose(re.loc[blup.index, "cond_sd"], condsd, rtol=1e-8)
    icc = m.icc().set_index("level")["share"]
    assert icc["g"] == pytest.approx(s2b / (s2b + s2))
    vf = np.var(beta[0] + beta[1] * d["x"], ddof=1)
    r2 = m.r2()
    assert r2["marginal"] == pytest.approx(vf / (vf + s2b + s2))
    assert r2["conditional"] == pytest.approx((vf + s2b) / (vf + s2b + s2))
    fitted = m.predict()
    np.testing.assert_allclose(fitted, beta[0] + beta[1] * d["x"] + blup.loc[d["g"]].to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(m.residuals(), d["y"] - fitted)


def test_balanced_random_intercept_anova_closed_form():
    """Balanced one-way design without covariates: REML = the ANOVA estimators (when positive),
    and the intercept's SE is sqrt((s2 + n s2b) / (n k)) with df = k - 1."""
    rng = np.random.default_rng(7)
    k, n = 12, 5
    g = np.repeat(np.arange(k), n)
    y = 10 + rng.normal(0, 2, k)[g] + rng.normal(0, 1, k * n)
    d = pd.DataFrame({"g": g, "y": y})
    m = als.lmm("y ~ 1 + (1 | g)", d)
    means = d.groupby("g")["y"].mean()
    msb = n * ((means - y.mean()) ** 2).sum() / (k - 1)
    msw = ((d["y"] - means.loc[d["g"]].to_numpy()) ** 2).sum() / (k * (n - 1))
    assert m.sigma**2 == pytest.approx(msw, rel=1e-6)
    assert m.random.loc[0, "variance"] == pytest.approx((msb - msw) / n, rel=1e-6)
    row = m.fixed.iloc[0]
    assert row["estimate"] == pytest.approx(y.mean())
    assert row["se"] == pytest.approx(np.sqrt(msb / (n * k)), rel=1e-6)
    assert row["df"] == pytest.approx(k - 1, rel=1e-4)


def test_predict_new_data_unseen_group_gets_population_prediction_when_allowed():
    d = balanced(seed=2)
    m = als.lmm("y ~ x + (1 | g)", d)
    new = pd.DataFrame({"g": [0, 999, 999, 998], "x": [1.0, 1.0, 2.0, 1.0]})
    with pytest.warns(als.AllianceStatsWarning, match=r"3 of 4 row\(s\) of the new data got the population prediction.*"
                      r"g: 2 group\(s\) \(999, 998\) in 3 row\(s\)"):
        p = m.predict(new, allow_new_levels=True)
    b = m.fixed["estimate"].to_numpy()
    re = m.random_effects().set_index("level")["estimate"]
    assert p.iloc[1] == pytest.approx(b[0] + b[1])
    assert p.iloc[2] == pytest.approx(b[0] + 2 * b[1])
    assert p.iloc[0] == pytest.approx(b[0] + b[1] + re.loc[0])
    assert m.predict(new, include_random=False).iloc[0] == pytest.approx(b[0] + b[1])


def test_predict_new_data_refuses_unseen_groups_by_default_as_lme4():
    d = balanced(seed=2)
    m = als.lmm("y ~ x + (1 | g)", d)
    new = pd.DataFrame({"g": [0, 999, np.nan], "x": [1.0, 1.0, 1.0]})
    with pytest.raises(als.ColumnError, match=r"groups not seen in the fit \(g: 2 group\(s\) \(999, nan\) in 2 row\(s\)\).*"
                       r"allow_new_levels=True"):
        m.predict(new)
    with pytest.raises(als.OptionError, match=r"allow_new_levels='yes' is not a valid value; allowed: True, False"):
        m.predict(new, allow_new_levels="yes")
    # seen groups only: no warning, no refusal
    p = m.predict(new.iloc[:1])
    re = m.random_effects().set_index("level")["estimate"]
    b = m.fixed["estimate"].to_numpy()
    assert p.iloc[0] == pytest.approx(b[0] + b[1] + re.loc[0])


@pytest.mark.parametrize("reml", ["no", 1, None])
def test_reml_must_be_true_or_false(reml):
    d = balanced(seed=2)
    with pytest.raises(als.OptionError, match=r"reml=.* is not a valid value; allowed: True, False"):
        als.lmm("y ~ x + (1 | g)", d, reml=reml)


@pytest.mark.parametrize("L", [[1.0, 0.0, 0.0], np.eye(2), "Days", [0.0, np.nan], [0.0, 0.0]])
def test_contrast_refuses_weights_that_are_not_one_finite_nonzero_vector(sleep, L):
    m = als.lmm("Reaction ~ Days + (1 | Subject)", sleep)
    with pytest.raises(als.OptionError, match=r"(?s)L=.*one weight per fixed effect \(2: 'Intercept', 'Days'\)"):
        m.contrast(L)


def test_predict_refuses_new_data_that_is_not_a_table(sleep):
    m = als.lmm("Reaction ~ Days + (1 | Subject)", sleep)
    with pytest.raises(als.DataFileError, match="data of predict\\(\\) must be a pandas DataFrame, got list"):
        m.predict([[1, 2]])


def test_contrast_of_unit_vector_equals_fixed_row(sleep):
    m = als.lmm("Reaction ~ Days + (Days | Subject)", sleep)
    c = m.contrast({"Days": 1.0})
    row = m.fixed.set_index("term").loc["Days"]
    for k in ("estimate", "se", "df", "t", "p"):
        assert c[k] == pytest.approx(row[k], rel=1e-9)
    z = als.lmm("Reaction ~ Days + (Days | Subject)", sleep, df_method="z")
    assert np.isinf(z.fixed["df"]).all()
    from scipy import stats

    assert z.fixed.loc[1, "p"] == pytest.approx(2 * stats.norm.sf(abs(z.fixed.loc[1, "t"])))


# --- edge cases -----------------------------------------------------------------------------
def test_one_session_patients_and_one_patient_therapists_are_kept(small):
    d = small.copy()
    one = d.groupby("patient").head(1).iloc[:5].copy()
    one["patient"] = one["patient"] + 10_000
    lone = d[d["patient"] == d["patient"].iloc[0]].copy()
    lone["patient"] += 20_000
    lone["therapist"] = 999
    d2 = pd.concat([d, one, lone], ignore_index=True)
    m = als.lmm("wai ~ session + (1 | therapist/patient)", d2)
    assert m.n_obs == len(d2)
    assert m.n_groups == {"therapist": 21, "therapist:patient": 160 + 5 + 1}
    assert m.converged


def test_constant_and_collinear_predictors_are_dropped_with_a_warning():
    d = balanced()
    d["const"] = 3.0
    d["x2"] = 2 * d["x"] - 1
    with pytest.warns(als.AllianceStatsWarning, match="rank deficient.*const.*x2"):
        m = als.lmm("y ~ x + const + x2 + (1 | g)", d)
    assert m.fixed["term"].tolist() == ["Intercept", "x"]
    assert m.dropped_terms == ["const", "x2"]
    ref = als.lmm("y ~ x + (1 | g)", d)
    assert m.llf == pytest.approx(ref.llf, abs=1e-8)


def test_missing_values_are_counted_by_column_and_input_untouched():
    d = balanced()
    d.loc[[0, 5], "y"] = np.nan
    d.loc[[5, 7, 9], "x"] = np.nan
    before = d.copy()
    m = als.lmm("y ~ x + (1 | g)", d)
    pd.testing.assert_frame_equal(d, before)
    assert m.n_obs == len(d) - 4
    assert m.n_dropped == 4
    assert m.dropped.to_dict() == {"missing y": 2, "missing x": 2}
    assert "Rows left out: 4" in m.summary()


def test_tables_made_on_first_read_are_the_same_after_pickling_and_can_be_replaced():
    # fixed, random, vcov and dropped are built when first read (lmm.design.LazyFrame): a result
    # pickled before any table was read (power analysis' workers) carries its tables' builders
    import pickle

    d = balanced()
    d.loc[[0, 5], "y"] = np.nan
    m = als.lmm("y ~ x + (1 | g)", d, df_method="z")
    copy = pickle.loads(pickle.dumps(m))
    pd.testing.assert_frame_equal(copy.fixed, m.fixed)
    pd.testing.assert_frame_equal(copy.random, m.random)
    pd.testing.assert_frame_equal(copy.vcov, m.vcov)
    pd.testing.assert_series_equal(copy.dropped, m.dropped)
    assert m.fixed["term"].tolist() == m.vcov.index.tolist() == m.vcov.columns.tolist() == ["Intercept", "x"]
    np.testing.assert_allclose(m.fixed["se"], np.sqrt(np.diag(m.vcov)), rtol=1e-15)
    assert m.random["sd"].iloc[-1] == m.sigma and m.random["group"].iloc[-1] == "Residual"
    assert m.dropped.to_dict() == {"missing y": 2}
    assert m.fixed is m.fixed  # built once
    m.dropped = pd.Series({"missing y": 1}, name="rows")  # assignment replaces the table (as alliance models do)
    assert m.dropped.to_dict() == {"missing y": 1}


def test_zero_variance_is_reported_as_singular():
    rng = np.random.default_rng(5)
    d = pd.DataFrame({"g": np.repeat(np.arange(20), 5), "y": rng.normal(size=100)})
    d["y"] -= d.groupby("g")["y"].transform("mean") * 1.0  # no between-group variance at all
    with pytest.warns(als.SingularFitWarning, match="variance of 'Intercept \\| g' is estimated at zero"):
        m = als.lmm("y ~ 1 + (1 | g)", d)
    assert m.singular
    assert m.random.loc[0, "variance"] == pytest.approx(0, abs=1e-10)
    assert any("singular" in s for s in m.messages)


def test_random_slope_without_intercept_and_uncorrelated(sleep):
    a = als.lmm("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", sleep)
    b = als.lmm("Reaction ~ Days + (1 + Days || Subject)", sleep)
    assert a.llf == pytest.approx(b.llf, abs=1e-8)
    assert len(a.random) == 3 and a.random["term2"].isna().all()


def test_display_and_apa(sleep):
    m = als.lmm("Reaction ~ Days + (Days | Subject)", sleep)
    s = m.summary()
    assert "REML criterion" in s and "Subject" in s and "Satterthwaite" in s
    apa = m.to_apa()
    assert apa.columns.tolist() == ["Term", "b", "SE", "df", "t", "p", "95% CI"]
    # the formatted lmerTest row (tests/reference/lmm_reference_fixed.csv, sleep_rs)
    from scipy import stats

    r = pd.read_csv(REF / "lmm_reference_fixed.csv").query("id == 'sleep_rs' and term == 'Days'").iloc[0]
    half = stats.t.ppf(0.975, r["df"]) * r["se"]
    assert f"{r['df']:.1f}" == "17.0"  # whole to one decimal: printed as an integer (APA)
    assert apa.loc[1].tolist() == [
        "Days", f"{r['estimate']:.2f}", f"{r['se']:.2f}", "17", f"{r['t']:.2f}", "< .001",
        f"[{r['estimate'] - half:.2f}, {r['estimate'] + half:.2f}]",
    ]
    assert "<table" in m._repr_html_()
    assert "|" in apa.to_markdown(index=False)
    ax = m.plot()
    assert len(ax.get_yticklabels()) == 1


def test_icc_marks_levels_with_random_slopes(sleep):
    m = als.lmm("Reaction ~ Days + (Days | Subject)", sleep)
    icc = m.icc()
    assert list(icc.columns) == ["level", "variance", "share", "random_slopes"]
    assert icc["random_slopes"].tolist() == [True, False]  # Subject has a slope; the shares are at Days = 0
    v0 = m.random.query("group == 'Subject' and term1 == 'Intercept' and term2 != term2")["variance"].iloc[0]
    assert icc.loc[0, "share"] == pytest.approx(v0 / (v0 + m.sigma**2), rel=1e-12)
    assert not als.lmm("Reaction ~ Days + (1 | Subject)", sleep).icc()["random_slopes"].any()


# --- compare ----------------------------------------------------------------------------------
def test_compare_refits_with_ml_when_fixed_effects_differ(small):
    full = als.lmm("phq ~ wai_within_lag1 + wai_between + session + (1 | patient)", small)
    red = als.lmm("phq ~ wai_within_lag1 + session + (1 | patient)", small.dropna(subset=["wai_between"]).loc[full.model_frame.index])
    res = als.compare(red, full)
    tab = res.to_frame()
    assert (tab["criterion"] == "ML (refit)").all() and res.criterion == "ML (refit)" and res.refitted
    assert "refitted with ML" in res.note and f"Note: {res.note}" in res.summary()
    assert "refitted by ML" in res.methods() and f"n = {full.n_obs} observations" in res.methods()
    apa = res.to_apa()
    assert list(apa.columns) == ["Model", "npar", "AIC", "BIC", "logLik", "χ²", "df", "p"] and apa.loc[0, "χ²"] == ""
    assert res.accounting()["n"].tolist() == [full.n_obs]
    ml_full = als.lmm(full.formula, small, reml=False)
    ml_red = red.refit(reml=False)
    assert tab.loc[1, "Chisq"] == pytest.approx(2 * (ml_full.llf - ml_red.llf), abs=1e-6)
    assert tab.loc[1, "Df"] == 1
    from scipy import stats

    assert tab.loc[1, "p"] == pytest.approx(stats.chi2.sf(tab.loc[1, "Chisq"], 1))


def test_compare_keeps_reml_for_random_part_and_refuses_different_rows(sleep):
    a = als.lmm("Reaction ~ Days + (1 | Subject)", sleep)
    b = als.lmm("Reaction ~ Days + (Days | Subject)", sleep)
    res = als.compare(b, a)
    tab = res.table
    assert tab["criterion"].eq("REML").all() and res.note == "" and not res.refitted and res._notes() == []
    assert tab.loc[1, "Chisq"] == pytest.approx(2 * (b.llf - a.llf))
    assert tab.loc[1, "Df"] == 2
    c = als.lmm("Reaction ~ Days + (1 | Subject)", sleep.iloc[:-10])
    with pytest.raises(als.ModelSpecError, match="different rows"):
        als.compare(a, c)


# --- decompose ----------------------------------------------------------------------------------
def test_decompose_hand_values_and_gaps():
    d = pd.DataFrame({"patient": ["a"] * 4 + ["b"] * 3, "session": [1, 2, 3, 5, 2, 3, 4], "wai": [3.0, 4, np.nan, 5, 2, 4, 6]})
    out = als.decompose(d, "wai", lags=[1, 2])
    assert out["wai_between"].tolist() == [4, 4, 4, 4, 4, 4, 4]
    np.testing.assert_array_equal(out["wai_within"], [-1, 0, np.nan, 1, -2, 0, 2])
    np.testing.assert_array_equal(out["wai_lag1"], [np.nan, 3, 4, np.nan, np.nan, 2, 4])
    np.testing.assert_array_equal(out["wai_lag2"], [np.nan, np.nan, 3, np.nan, np.nan, np.nan, 2])
    np.testing.assert_array_equal(out["wai_within_lag1"], [np.nan, -1, 0, np.nan, np.nan, -2, 0])
    assert "wai_between" not in d.columns


def test_decompose_detrend_linear_removes_each_patients_trend():
    d = pd.DataFrame({"patient": [1] * 4 + [2] * 2, "session": [1, 2, 3, 4, 1, 2], "x": [1.0, 3, 5, 7.5, 2, 4]})
    with pytest.warns(als.IncompleteGroupsWarning, match=r"1 patient\(s\) in 'patient' have fewer than 3 observed values of 'x' \(2\)") as rec:
        out = als.decompose(d, "x", detrend="linear")
    # patient 1: fit 1,3,5,7.5 on 1..4: slope 2.15, mean 4.125 -> residuals
    fitted = 4.125 + 2.15 * (np.array([1, 2, 3, 4]) - 2.5)
    np.testing.assert_allclose(out["x_within"][:4], np.array([1.0, 3, 5, 7.5]) - fitted)
    assert out["x_within"][4:].isna().all()
    w = rec[0].message
    assert (w.function, w.groups, w.columns) == ("decompose", [2], ["x_within"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", als.IncompleteGroupsWarning)
        als.decompose(d, "x")  # without detrend every patient with a value has a within part: no warning


def test_decompose_rejects_duplicates_and_bad_lags():
    d = pd.DataFrame({"patient": [1, 1], "session": [1, 1], "x": [1.0, 2.0]})
    with pytest.raises(als.SessionDataError):
        als.decompose(d, "x")
    with pytest.raises(als.OptionError, match="lags=0 is not a valid value. give a whole number of at least 1"):
        als.decompose(d.assign(session=[1, 2]), "x", lags=[0])
    with pytest.raises(als.ColumnError):
        als.decompose(d, "nope")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(1, 12), st.floats(-5, 5, allow_nan=False)), min_size=1, max_size=40))
def test_decompose_invariants(rows):
    d = pd.DataFrame(rows, columns=["patient", "session", "x"]).drop_duplicates(["patient", "session"])
    out = als.decompose(d, "x", lags=[1])
    np.testing.assert_allclose(out["x_between"] + out["x_within"], d["x"], atol=1e-9)
    np.testing.assert_allclose(out.groupby("patient")["x_within"].sum(), 0, atol=1e-8)
    look = {(p, s): x for p, s, x in d.itertuples(index=False)}
    expect = [look.get((p, s - 1), np.nan) for p, s in zip(d["patient"], d["session"])]
    np.testing.assert_array_equal(out["x_lag1"], expect)


# --- alliance_outcome, therapist_effects ----------------------------------------------------------------
def test_alliance_outcome_reproduces_the_lme4_lagged_fixture(small):
    raw = small[["therapist", "patient", "session", "wai", "phq"]]
    with pytest.warns(als.SingularFitWarning, match="therapist"):  # as lme4: no therapist variance in PHQ-9 here
        res = als.alliance_outcome(raw, outcome="phq", alliance="wai", therapist="therapist", covariates=["session"])
    ref = pd.read_csv(REF / "lmm_reference_fixed.csv").query("id == 'lagged'").set_index("term")
    ours = res.model.fixed.set_index("term").loc[ref.index]
    np.testing.assert_allclose(ours["estimate"], ref["estimate"], rtol=1e-4)
    np.testing.assert_allclose(ours["df"], ref["df"], rtol=1e-2)
    eff = res.effects.set_index("level")
    assert eff.index.tolist() == ["within-patient", "between-patient", "therapist"]
    assert eff.loc["within-patient", "estimate"] == pytest.approx(ref.loc["wai_within_lag1", "estimate"], rel=1e-4)
    used = res.data.loc[res.model.model_frame.index]
    sd_ratio = used["wai_within_lag1"].std() / used["phq"].std()
    assert eff.loc["within-patient", "std_estimate"] == pytest.approx(eff.loc["within-patient", "estimate"] * sd_ratio)
    reasons = res.model.dropped.to_dict()
    assert reasons["no wai at session t-1 (first session or a gap)"] > 0
    assert res.model.n_obs + res.model.n_dropped == len(raw)


def test_alliance_outcome_reverse_direction_and_plot(small):
    raw = small[["therapist", "patient", "session", "wai", "phq"]]
    rev = als.alliance_outcome(raw, outcome="phq", alliance="wai", direction="outcome->alliance")
    assert rev.response == "wai" and rev.predictor == "phq"
    assert rev.model.fixed["term"].tolist() == ["Intercept", "phq_within_lag1", "phq_between", "wai_within_lag1"]
    ax = rev.plot()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["within-patient", "between-patient"]
    assert "outcome->alliance" in rev.summary()
    with pytest.raises(als.OptionError, match="direction=.*allowed: .alliance->outcome., .outcome->alliance."):
        als.alliance_outcome(raw, outcome="phq", alliance="wai", direction="both")


def test_alliance_outcome_recovers_simulated_within_effect():
    s = als.simulate_study(n_therapists=30, patients_per_therapist=10, seed=8)
    d = s.sessions
    d = d.join(als.score(d, "WAI-SR", items="wai{}")).join(als.score(d, "PHQ-9", items="phq{}"))
    res = als.alliance_outcome(d, outcome="phq9_total", alliance="wai_sr_total", covariates=["session"])
    w = res.effects.set_index("level").loc["within-patient"]
    assert w["ci_low"] < s.truth["within_effect"] < w["ci_high"]


def test_therapist_effects_session_level_input(small):
    raw = small[["therapist", "patient", "session", "wai", "phq"]]
    with pytest.warns(als.SingularFitWarning):
        te = als.therapist_effects(raw, alliance="wai", outcome="phq", session="session")
    per = te.patients.set_index("patient")
    p1 = raw[raw["patient"] == raw["patient"].iloc[0]].sort_values("session")
    assert per.loc[p1["patient"].iloc[0], "alliance"] == pytest.approx(p1["wai"].mean())
    assert per.loc[p1["patient"].iloc[0], "outcome"] == pytest.approx(p1["phq"].dropna().iloc[-1])
    assert per.loc[p1["patient"].iloc[0], "baseline"] == pytest.approx(p1["phq"].dropna().iloc[0])
    # therapist means of the patient-level split are those of the patient means
    np.testing.assert_allclose(per.groupby("therapist")["alliance_patient"].mean(), 0, atol=1e-12)
    e = te.effects.set_index("level")
    assert e.loc["difference (therapist - patient)", "estimate"] == pytest.approx(e.loc["therapist", "estimate"] - e.loc["patient within therapist", "estimate"])
    with pytest.raises(als.ModelSpecError, match="session="):
        als.therapist_effects(raw, alliance="wai", outcome="phq")


def test_plot_therapist_effects_caterpillar(small):
    m = als.lmm("wai ~ session + (1 | therapist/patient)", small)
    ax = als.plot_therapist_effects(m)
    assert len(ax.get_yticklabels()) == 20
    assert ax.get_ylabel() == "Therapist"  # the grouping column's display name (score_label)
    pts = ax.lines[0].get_xdata()
    assert np.all(np.diff(pts) >= 0)


def test_an_optimizer_that_stops_early_is_reported_not_hidden(monkeypatch, sleep):
    """If every optimizer stops away from the optimum (simulated by optimizers that return their
    start, and no Newton polish), the checks catch it: ConvergenceWarning, converged False, a
    message, and .optsum lists the restarts that were tried."""
    from alliance_stats.models.lmm import optimize as lmm_optimize

    def stuck(name, f, x_int, lo, eng):
        return float(f(x_int)), np.asarray(x_int, float), "STUCK"

    monkeypatch.setattr(lmm_optimize, "_run", stuck)
    monkeypatch.setattr(lmm_optimize, "_polish", lambda f, fx, x, check, lo, eng: (fx, x, check))
    with pytest.warns(als.ConvergenceWarning, match="may not have converged: at the best optimum found after 4 restart.*Try"):
        m = als.lmm("Reaction ~ Days + (Days | Subject)", sleep)
    assert not m.converged
    assert any("converged" in s for s in m.messages)
    assert not m.optsum.converged and m.optsum.return_code == "STUCK"
    assert [r["optimizer"] for r in m.optsum.restarts] == ["bobyqa", "nelder-mead", "sbplx", "L-BFGS-B"]
    np.testing.assert_allclose(m.optsum.final, [1, 0, 1], atol=0.01)  # the start, or the best point the checks saw


def test_information_criteria_as_lme4(sleep):
    m = als.lmm("Reaction ~ Days + (Days | Subject)", sleep)
    # lme4's fit (tests/reference/lmm_reference_fit.csv, sleep_rs; REML criterion 1743.6 as documented), 6 parameters
    ref = pd.read_csv(REF / "lmm_reference_fit.csv").set_index("id").loc["sleep_rs", "loglik"]
    assert m.deviance == pytest.approx(-2 * ref, abs=1e-6)
    assert m.aic == pytest.approx(m.deviance + 2 * 6)
    assert m.bic == pytest.approx(m.deviance + np.log(180) * 6)


def test_therapist_effects_counts_patients_left_out(small):
    raw = small[["therapist", "patient", "session", "wai", "phq"]].copy()
    p0, p1 = raw["patient"].unique()[:2]
    raw.loc[raw["patient"] == p0, "wai"] = np.nan  # no alliance at all
    raw.loc[(raw["patient"] == p1) & (raw["session"] > 1), "phq"] = np.nan  # one outcome score only
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", als.SingularFitWarning)
        te = als.therapist_effects(raw, alliance="wai", outcome="phq", session="session")
    assert te.model.n_obs == 158
    assert te.model.dropped.to_dict() == {"no alliance score": 1, "fewer than two outcome scores": 1}
    assert "Left out: 1 patients: no alliance score; 1 patients: fewer than two outcome scores" in te.summary()
    assert te.accounting()["n"].tolist() == [158, 1, 1]


def test_infinite_and_non_numeric_values_are_named():
    d = balanced()
    d.loc[4, "x"] = np.inf
    with pytest.raises(als.ModelSpecError, match="'x' holds infinite values at rows 4"):
        als.lmm("y ~ x + (1 | g)", d)
    d = balanced().astype({"y": object})
    d.loc[3, "y"] = "n/a"
    with pytest.raises(als.ModelSpecError, match="'y' holds values that are not numbers at rows 3"):
        als.lmm("y ~ x + (1 | g)", d)


def test_therapist_effects_refuses_a_session_varying_covariate(small):
    raw = small[["therapist", "patient", "session", "wai", "phq"]]
    with pytest.raises(als.ModelSpecError, match="'session' changes across sessions"):
        als.therapist_effects(raw, alliance="wai", outcome="phq", session="session", covariates=["session"])


# --- the design's column path (arrays for the fit, the DataFrame on first use) ------------------
def test_group_ids_of_any_type_give_the_same_fit_and_labels_in_their_own_order():
    d = balanced(seed=3, groups=12)
    ref = als.lmm("y ~ x + (1 | g)", d)
    names = np.array([f"p{k}" for k in [7, 3, 11, 0, 5, 9, 1, 10, 2, 8, 4, 6]])
    order = ["p11", "p0", "p3", "p7", "p5", "p9", "p1", "p10", "p2", "p8", "p4", "p6"]
    variants = {
        "str": d.assign(g=names[d["g"]]),
        "object": d.assign(g=pd.Series(names[d["g"]], dtype=object)),
        "category": d.assign(g=pd.Categorical(names[d["g"]], categories=order)),
        "Int64": d.assign(g=d["g"].astype("Int64")),
        "float": d.assign(g=d["g"] * 2.5 - 10),
        "sparse ints": d.assign(g=d["g"] * 10**9),
    }
    for kind, v in variants.items():
        m = als.lmm("y ~ x + (1 | g)", v)
        assert m.llf == pytest.approx(ref.llf, abs=1e-9), kind
        assert m.fixed["estimate"].to_numpy() == pytest.approx(ref.fixed["estimate"].to_numpy(), abs=1e-9), kind
        levels = m.random_effects()["level"].tolist()
        expected = {"str": sorted(set(names)), "object": sorted(set(names)), "category": order,
                    "Int64": list(range(12)), "float": [k * 2.5 - 10 for k in range(12)],
                    "sparse ints": [k * 10**9 for k in range(12)]}[kind]
        assert levels == expected, kind
        # each group's BLUP belongs to the same patient whatever the ID type
        blup = dict(zip(levels, m.random_effects()["estimate"]))
        ref_blup = ref.random_effects()["estimate"].to_numpy()
        key = {"str": lambda k: names[k], "object": lambda k: names[k], "category": lambda k: names[k],
               "Int64": lambda k: k, "float": lambda k: k * 2.5 - 10, "sparse ints": lambda k: k * 10**9}[kind]
        assert [blup[key(k)] for k in range(12)] == pytest.approx(ref_blup, abs=1e-8), kind


def test_nullable_columns_count_their_missing_values_and_infinity_is_found():
    d = balanced()
    x = d["x"].astype("Float64")
    x[[2, 4]] = pd.NA
    d = d.assign(x=x, k=pd.array(np.arange(len(d)) % 3, dtype="Int64"))
    d.loc[[4, 8], "k"] = pd.NA
    m = als.lmm("y ~ x + k + (1 | g)", d)
    assert m.n_obs == len(d) - 3
    assert m.dropped.to_dict() == {"missing x": 2, "missing k": 1}
    plain = balanced().drop(index=[2, 4, 8])
    plain["k"] = (np.arange(len(d)) % 3)[plain.index]
    assert m.llf == pytest.approx(als.lmm("y ~ x + k + (1 | g)", plain).llf, abs=1e-9)
    d.loc[6, "x"] = np.inf
    with pytest.raises(als.ModelSpecError, match="'x' holds infinite values at rows 6"):
        als.lmm("y ~ x + (1 | g)", d)


def test_the_fit_keeps_its_rows_when_the_callers_frame_changes_afterwards():
    d = balanced()
    d.loc[3, "x"] = np.nan
    orig = d.copy()
    m = als.lmm("y ~ x + (1 | g)", d)
    d.loc[0, "y"] = 1e6  # changed before the design's DataFrame is first made
    d["x"] = 0.0
    del d["g"]
    pd.testing.assert_frame_equal(m.model_frame, orig.loc[orig["x"].notna(), ["y", "x", "g"]])
    assert m.refit().llf == pytest.approx(m.llf, abs=1e-9)
    assert m.residuals().index.tolist() == [i for i in range(180) if i != 3]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=-(2**40), max_value=2**40), min_size=1, max_size=60), st.integers(0, 3))
def test_dense_group_codes_number_ids_in_sorted_order(values, spread):
    from alliance_stats.models.lmm.design import _dense_codes

    v = np.array(values, np.int64) // (10 ** (3 * spread))  # from widely spread to a small range
    codes, n = _dense_codes(v)
    uniq, inv = np.unique(v, return_inverse=True)
    assert n == len(uniq)
    assert codes.tolist() == inv.tolist()


def test_a_used_column_name_that_appears_twice_is_named():
    d = balanced()
    dd = pd.concat([d, d[["x"]]], axis=1)
    with pytest.raises(als.ColumnError, match="more than one column named 'x'"):
        als.lmm("y ~ x + (1 | g)", dd)
    dz = pd.concat([d, d[["x"]].rename(columns={"x": "unused"}), d[["x"]].rename(columns={"x": "unused"})], axis=1)
    assert als.lmm("y ~ x + (1 | g)", dz).llf == pytest.approx(als.lmm("y ~ x + (1 | g)", d).llf, abs=1e-12)


def test_richardson_derivatives_of_the_satterthwaite_step_equal_closed_forms():
    """numDeriv's Richardson Hessian (genD cross terms) and Jacobian, as the Satterthwaite df use
    them, against the closed-form derivatives of f(x) = exp(x0) sin(x1) + x0^2 x2 and of
    g(x) = [[x0 x1, x2^2], [sin(x0), x1^3]], at relative steps (numDeriv's) and at given steps."""
    from alliance_stats.models.lmm.inference import nd_hessian, nd_jacobian

    x = np.array([0.3, 1.1, -0.7])
    f = lambda v: np.exp(v[0]) * np.sin(v[1]) + v[0] ** 2 * v[2]
    e0, s1, c1 = np.exp(x[0]), np.sin(x[1]), np.cos(x[1])
    H = np.array([[e0 * s1 + 2 * x[2], e0 * c1, 2 * x[0]], [e0 * c1, -e0 * s1, 0.0], [2 * x[0], 0.0, 0.0]])
    np.testing.assert_allclose(nd_hessian(f, x), H, atol=1e-10)
    np.testing.assert_allclose(nd_hessian(f, x, h0=np.full(3, 0.05)), H, atol=1e-10)
    g = lambda v: np.array([[v[0] * v[1], v[2] ** 2], [np.sin(v[0]), v[1] ** 3]])
    J = np.array([[[x[1], 0], [np.cos(x[0]), 0]], [[x[0], 0], [0, 3 * x[1] ** 2]], [[0, 2 * x[2]], [0, 0]]])
    np.testing.assert_allclose(nd_jacobian(g, x), J, atol=1e-10)
    np.testing.assert_allclose(nd_jacobian(g, x, h0=np.full(3, 0.05)), J, atol=1e-10)
