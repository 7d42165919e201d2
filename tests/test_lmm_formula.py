"""als.lmm's formulas against lme4 (tests/reference/make_lmm_formula_reference.R).

Model matrices: for each formula of lmm_formula_cases.csv, the rows used, the response, the
fixed-effects matrix X, the offset and each grouping factor's random-effect columns equal what
lme4's lFormula builds (names mapped: ``x[T.b]`` is R's ``xb``, ``Intercept`` R's
``(Intercept)``). Fits: lmer's logLik and fixed effects, and predict(newdata, re.form = NA).
Refusals: each names the term or column and says what to write.
"""

import re
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alliance_stats as als
from alliance_stats.models.lmm.design import build_design

REF = Path(__file__).parent / "reference"
CASES = pd.read_csv(REF / "lmm_formula_cases.csv")
MATRICES = pd.read_csv(REF / "lmm_formula_matrices.csv.gz")
FITS = pd.read_csv(REF / "lmm_formula_fits.csv")
FIT = pd.read_csv(REF / "lmm_formula_fit.csv").set_index("id")
FIXED = pd.read_csv(REF / "lmm_formula_fixed.csv")
PREDICT = pd.read_csv(REF / "lmm_formula_predict.csv")
NEWDATA = pd.read_csv(REF / "lmm_formula_newdata.csv", dtype={"Subject": str, "patient": str})


@lru_cache(maxsize=None)
def dataset(name):
    if name == "sleepstudy":
        return pd.read_csv(REF / "lmm_sleepstudy.csv")
    return pd.read_csv(REF / "lmm_formula_data.csv")


def r_name(name: str) -> str:
    """Our column name as R's model.matrix spells it."""
    if name == "Intercept":
        return "(Intercept)"
    name = name.replace("[T.True]", "TRUE").replace("[True]", "TRUE").replace("[False]", "FALSE")
    return re.sub(r"\[(?:T\.)?([^\]]*)\]", r"\1", name)


def reference(case_id, part):
    r = MATRICES[(MATRICES["id"] == case_id) & (MATRICES["part"] == part)]
    wide = r.pivot(index="row", columns="column", values="value")
    return wide[list(dict.fromkeys(r["column"]))]  # R's column order


def design(formula, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", als.AllianceStatsWarning)  # rank deficiency: R drops the same columns
        return build_design(formula, data)


@pytest.mark.parametrize("case_id", CASES["id"].tolist())
def test_model_matrices_equal_lme4(case_id):
    case = CASES.set_index("id").loc[case_id]
    d = design(case["formula"], dataset(case["data"]))
    rows = d.data.index
    y = reference(case_id, "y")
    assert rows.tolist() == y.index.tolist()
    off = d.offset if d.offset is not None else 0.0
    np.testing.assert_allclose(d.y + off, y["y"].to_numpy(), rtol=1e-13)
    if (MATRICES.query("id == @case_id")["part"] == "offset").any():
        np.testing.assert_allclose(d.offset, reference(case_id, "offset")["offset"].to_numpy(), rtol=1e-13)
    else:
        assert d.offset is None
    X = reference(case_id, "X")
    assert [r_name(n) for n in d.xnames] == X.columns.tolist()
    np.testing.assert_allclose(d.X, X.to_numpy(), rtol=1e-12, atol=1e-13)
    for lv, inf in zip(d.levels, d.level_info):
        Z = reference(case_id, f"Z:{inf['name']}")
        assert [r_name(n) for n in inf["term_names"]] == Z.columns.tolist()
        np.testing.assert_allclose(lv.Z, Z.to_numpy(), rtol=1e-12, atol=1e-13)
    r_levels = {p[2:] for p in MATRICES.query("id == @case_id")["part"] if p.startswith("Z:")}
    assert r_levels == {inf["name"] for inf in d.level_info}


@lru_cache(maxsize=None)
def fitted(fit_id):
    f = FITS.set_index("id").loc[fit_id]
    return als.lmm(f["formula"], dataset(f["data"]), reml=bool(f["reml"]))


@pytest.mark.parametrize("fit_id", FITS["id"].tolist())
def test_fits_equal_lmer(fit_id):
    m = fitted(fit_id)
    ref = FIT.loc[fit_id]
    assert m.n_obs == ref["n"]
    assert m.llf == pytest.approx(ref["loglik"], abs=1e-8)
    f = FIXED[FIXED["id"] == fit_id]
    ours = m.fixed.assign(term=m.fixed["term"].map(r_name)).set_index("term")
    assert ours.index.tolist() == f["term"].tolist()
    np.testing.assert_allclose(ours["estimate"], f["estimate"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours["se"], f["se"], rtol=1e-5)


@pytest.mark.parametrize("fit_id", FITS["id"].tolist())
def test_population_predictions_on_new_data_equal_lme4(fit_id):
    """predict(newdata, include_random=False) = R's predict(fit, newdata, re.form = NA): poly()
    by the stored coefficients, scale() by the fitted centre and SD, the offset added back."""
    m = fitted(fit_id)
    data = FITS.set_index("id").loc[fit_id, "data"]
    new = NEWDATA[NEWDATA["data"] == data].dropna(axis=1, how="all").set_index("row")
    ref = PREDICT[PREDICT["id"] == fit_id].set_index("row")["predicted"]
    np.testing.assert_allclose(m.predict(new, include_random=False), ref.loc[new.index], rtol=2e-7)


def test_predictions_on_the_fitted_rows_equal_predictions_on_the_same_rows_as_new_data():
    """The stored state reproduces the fit's own columns: poly, scale, factor levels, offset."""
    m = fitted("fit_alliance")
    rows = dataset("alliance").loc[m.model_frame.index]
    np.testing.assert_allclose(m.predict(rows), m.predict(), rtol=1e-12)
    np.testing.assert_allclose(m.residuals(), rows["phq"] - m.predict(), rtol=1e-12)


def test_quadratic_growth_is_a_power_not_a_bitwise_xor():
    """The defect of issue 14: I(session^2) was Python's XOR (session ^ 2), a different model."""
    d = dataset("sleepstudy")
    m = als.lmm("Reaction ~ Days + I(Days^2) + (1 | Subject)", d)
    explicit = als.lmm("Reaction ~ Days + D2 + (1 | Subject)", d.assign(D2=d["Days"] ** 2))
    np.testing.assert_allclose(m.fixed["estimate"], explicit.fixed["estimate"], rtol=1e-10)
    assert m.fixed["term"].tolist() == ["Intercept", "Days", "I(Days^2)"]


# --- refusals ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def alliance():
    return dataset("alliance")


@pytest.mark.parametrize(
    "formula, match",
    [
        ("phq ~ session^2 + (1 | patient)", r"crossing operator.*I\(session\^2\)"),
        ("phq ~ session**2 + (1 | patient)", r"crossing operator.*I\(session\^2\)"),
        ("phq ~ (session + wai)^1 + (1 | patient)", "whole number of at least 2"),
        ("phq ~ . + (1 | patient)", r"'\.' \(all other columns\)"),
        ('phq ~ "session" + (1 | patient)', "quotes.*backticks"),
        ("phq ~ {session + 1} + (1 | patient)", "braces"),
        ("phq ~ bs(session, 3) + (1 | patient)", r"function bs\(\) .*not supported"),
        ("phq ~ poly(session, wai, degree = 2) + (1 | patient)", r"poly\(session, wai, degree = 2\).*several variables"),
        ("phq ~ poly(session, 9) + (1 | patient)", r"poly\(session, 9\).*less than the number of distinct values \(8\)"),
        ("phq ~ poly(session, 2.5) + (1 | patient)", "whole number"),
        ("phq ~ session + 2 + (1 | patient)", "number 2"),
        ("phq ~ C(condition, contr.sum) + (1 | patient)", r"C\(condition, contr.sum\).*relevel"),
        ('phq ~ factor(condition, levels = c("b")) + (1 | patient)', "relevel"),
        ('phq ~ relevel(condition, ref = "none") + (1 | patient)', "reference level 'none' is not among"),
        ("phq ~ I(poly(session, 2)) + (1 | patient)", r"write poly\(\) as a term of its own"),
        ("phq ~ log(condition) + (1 | patient)", r"column 'condition' is not numeric.*factor\(condition\)"),
        ("phq ~ wai + offset(dose) + (1 + offset(dose) | patient)", "offset.*fixed part"),
        ("phq ~ wai:offset(dose) + (1 | patient)", "offset"),
        ("phq ~ I(session + + ) + (1 | patient)", "cannot read"),
        ("phq ~ session + (1 | patient", "parenthesis|cannot read"),
        ("factor(site) ~ session + (1 | patient)", "numeric"),
        ("phq ~ I(wai & session) + (1 | patient)", r"operator '&'"),
        ("phq ~ np.mean(wai) + (1 | patient)", "element-wise"),
    ],
)
def test_unsupported_formulas_are_refused_by_name(alliance, formula, match):
    with pytest.raises(als.ModelSpecError, match=match):
        als.lmm(formula, alliance)


_TOKENS = ["wai", "session", "condition", "female", "dose", "phq", "patient", "+", "-", "*", "/", ":", "^", "**", "(", ")",
           ",", "1", "0", "2", "I(", "poly(", "scale(", "log(", "factor(", "C(", "relevel(", "offset(", "np.log(",
           "raw = TRUE", "ref = 'a'", '"x"', "`wai`", "|", "||", ".", "%in%", ">", "TRUE", "{", "[", "$", "~", "degree = 3"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=9), st.sampled_from(["{} + (1 | patient)", "wai + ({} | patient)", "{}"]))
def test_any_formula_fits_or_raises_our_error(tokens, shape):
    """Whatever is written, the answer is a design or one of our errors, never a parser's traceback."""
    formula = "phq ~ " + shape.format(" ".join(tokens))
    try:
        design(formula, dataset("alliance"))
    except als.AllianceStatsError:
        pass


def test_poly_refuses_missing_values_anywhere_in_the_data(alliance):
    d = alliance.copy()
    d.loc[[5, 9], "wai"] = np.nan
    with pytest.raises(als.ModelSpecError, match=r"poly\(wai, 2\).*rows 5, 9 .*drop those rows"):
        als.lmm("phq ~ poly(wai, 2) + (1 | patient)", d)


def test_log_of_zero_is_refused_with_the_rows(alliance):
    d = alliance.assign(dose=alliance["dose"].where(alliance.index != 7, 0.0))
    with pytest.raises(als.ModelSpecError, match=r"log\(dose\) is not a finite number at rows 7"):
        als.lmm("phq ~ log(dose) + (1 | patient)", d)


def test_outcome_on_the_right_hand_side_is_refused(alliance):
    with pytest.raises(als.ModelSpecError, match=r"'phq' is the outcome \(phq\) and also a predictor \(phq, in the fixed part\)"):
        als.lmm("phq ~ wai + phq + (1 | patient)", alliance)
    with pytest.raises(als.ModelSpecError, match=r"'phq' is the outcome \(log\(phq\)\) and also a predictor \(I\(phq\^2\)"):
        als.lmm("log(phq) ~ I(phq^2) + (1 | patient)", alliance)
    with pytest.raises(als.ModelSpecError, match=r"'phq' is the outcome .* in the random term \(1 \+ phq \| patient\)"):
        als.lmm("phq ~ wai + (1 + phq | patient)", alliance)
    with pytest.raises(als.ModelSpecError, match="grouping factor"):
        als.lmm("phq ~ wai + (1 | phq)", alliance)


def test_a_factor_with_one_level_in_the_rows_used_is_refused(alliance):
    d = alliance.assign(grp=np.where(alliance["phq"].isna(), "b", "a"))  # "b" only where the outcome is missing
    for formula in ["phq ~ C(grp) + (1 | patient)", "phq ~ factor(grp) + (1 | patient)", "phq ~ grp + (1 | patient)",
                    "phq ~ 0 + grp + (1 | patient)", "phq ~ wai + (0 + grp | patient)"]:
        with pytest.raises(als.ModelSpecError, match=r"has one level \('a'\) in the 76 rows used.*two or more levels"):
            als.lmm(formula, d)


def test_a_constant_outcome_is_refused(alliance):
    with pytest.raises(als.ModelSpecError, match=r"outcome k has the same value \(3\) in all 79 rows used"):
        als.lmm("k ~ wai + (1 | patient)", alliance.assign(k=3.0))
    with pytest.raises(als.ModelSpecError, match=r"outcome k minus the offset has the same value"):
        als.lmm("k ~ wai + offset(dose) + (1 | patient)", alliance.assign(k=alliance["dose"] + 1))


def test_new_data_with_an_unseen_level_or_a_missing_column_are_named():
    m = fitted("fit_alliance")
    new = NEWDATA[NEWDATA["data"] == "alliance"].dropna(axis=1, how="all")
    with pytest.raises(als.ModelSpecError, match=r"condition has level\(s\) 'dbt' in the new data"):
        m.predict(new.assign(condition="dbt"), include_random=False)
    with pytest.raises(als.ColumnError, match="lack the column 'dose'"):
        m.predict(new.drop(columns="dose"), include_random=False)


# --- roles in the alliance models (issue 19) -------------------------------------------------------
@pytest.fixture(scope="module")
def study():
    d = als.simulate_study(n_therapists=4, patients_per_therapist=5, seed=3).sessions
    return d.join(als.score(d, "WAI-SR", items="wai{}")).join(als.score(d, "PHQ-9", items="phq{}"))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(covariates=["phq9_total"]), r"covariates\[0\]='phq9_total' is also the outcome column.*prior_outcome"),
        (dict(covariates=["session", "wai_sr_total"]), r"covariates\[1\]='wai_sr_total' is also the alliance column"),
        (dict(covariates=["patient"]), r"covariates\[0\]='patient' is also the patient column.*grouping factor"),
        (dict(alliance="phq9_total"), r"outcome= and alliance= are both the column 'phq9_total'.*direction='outcome->alliance'"),
        (dict(therapist="patient"), r"patient= and therapist= are both the column 'patient'"),
        (dict(outcome="session"), r"outcome= and session= are both the column 'session'"),
    ],
)
def test_alliance_outcome_refuses_a_column_in_two_roles(study, kwargs, match):
    args = dict(outcome="phq9_total", alliance="wai_sr_total") | kwargs
    with pytest.raises(als.ModelSpecError, match=match):
        als.alliance_outcome(study, **args)


def test_session_may_be_a_covariate_of_the_alliance_outcome_model(study):
    res = als.alliance_outcome(study, outcome="phq9_total", alliance="wai_sr_total", covariates=["session"])
    assert "session" in res.model.fixed["term"].tolist()


def test_therapist_effects_refuses_a_column_in_two_roles(study):
    with pytest.raises(als.ModelSpecError, match=r"outcome= and alliance= are both the column 'wai_sr_total'"):
        als.therapist_effects(study, alliance="wai_sr_total", outcome="wai_sr_total", session="session")
    with pytest.raises(als.ModelSpecError, match=r"covariates\[0\]='phq9_total' is also the outcome column"):
        als.therapist_effects(study, alliance="wai_sr_total", outcome="phq9_total", session="session", covariates=["phq9_total"])


def test_the_offset_is_reported_and_not_a_coefficient():
    m = fitted("fit_alliance")
    assert "offset(log(dose)) entered with coefficient 1 (an offset, not estimated)" in m.messages
    assert not any("offset" in t for t in m.fixed["term"])
