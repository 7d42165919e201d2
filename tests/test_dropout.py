"""als.early_alliance_dropout against R's glm and lme4::glmer (tests/reference/make_glmm_reference.R).

The data (tests/reference/make_glmm_data.py) are simulated session rows in which the hazard of
leaving after a session falls with that session's alliance. R builds the patient-level and
person-period data itself from the session rows, so the aggregation is checked too.

Tolerances are what the code achieves: without therapist (statsmodels GLM vs R glm) 1e-10
relative; with therapist (als.glmm vs glmer) estimates 2e-6 relative, standard errors 4e-5
(patient level) and 2e-4 (hazard model) relative, log-likelihood 5e-7 (ours higher): lme4's finite-difference Hessian (step 1e-4)
differs from its own numDeriv Hessian by up to 1.6e-3 on the hazard model, while ours is stable
to 1e-5 across steps.
"""

from functools import lru_cache
from math import pi, sqrt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

import alliance_stats as als
from alliance_stats.models.dropout import _slopes

REF = Path(__file__).parent / "reference"
SESSIONS = pd.read_csv(REF / "glmm_dropout_sessions.csv")
MODELS = pd.read_csv(REF / "dropout_reference_models.csv")
PATIENTS = pd.read_csv(REF / "glmm_dropout_patients.csv")
SURVIVAL = pd.read_csv(REF / "dropout_reference_survival.csv")
R_NAMES = {"level": "level", "level + slope": "level_slope", "hazard": "hazard"}


@lru_cache(maxsize=None)
def fitted(therapist):
    return als.early_alliance_dropout(SESSIONS, alliance="alliance", dropout="dropout",
                                      therapist="therapist" if therapist else None, covariates=("severity",))


def _tables(r):
    return pd.concat([r.effects, r.hazard], ignore_index=True)


@pytest.mark.parametrize("therapist", [False, True])
def test_models_match_r(therapist):
    r = fitted(therapist)
    assert r.engine == ("glmm" if therapist else "statsmodels")
    tab = _tables(r)
    for model, rname in R_NAMES.items():
        ours = tab[tab["model"] == model]
        ref = MODELS[(MODELS["model"] == rname) & (MODELS["therapist"] == therapist)]
        assert ours["term"].tolist() == ref["term"].tolist()
        if therapist:
            np.testing.assert_allclose(ours["estimate"], ref["estimate"], rtol=2e-6)
            np.testing.assert_allclose(ours["se"], ref["se"], rtol=2e-4 if model == "hazard" else 4e-5)
            fit = r.fits[model]
            # glmer stops 3.5e-7 short of the hazard model's optimum (raw-scale predictors); ours is higher
            assert fit.llf == pytest.approx(ref["loglik"].iloc[0], abs=5e-7)
            assert fit.llf >= ref["loglik"].iloc[0] - 1e-8
            assert fit.random["variance"].iloc[0] == pytest.approx(ref["therapist_var"].iloc[0], rel=5e-6)
        else:
            np.testing.assert_allclose(ours["estimate"], ref["estimate"], rtol=1e-10)
            np.testing.assert_allclose(ours["se"], ref["se"], rtol=1e-10)
            np.testing.assert_allclose(ours["p"], ref["p"], rtol=1e-8)
            assert r.fits[model].llf == pytest.approx(ref["loglik"].iloc[0], abs=1e-9)
        assert len(r.fits[model].model.endog if not therapist else r.fits[model]._index) == ref["n"].iloc[0]


def test_patient_aggregation_and_exclusions_match_r():
    r = fitted(False)
    inc = PATIENTS[PATIENTS["included"]]
    assert r.n_patients == len(inc) == 263
    assert r.n_dropout == inc["dropout"].sum()
    both = r.patients.merge(inc, on="patient", suffixes=("", "_r"))
    assert len(both) == len(inc)
    np.testing.assert_allclose(both["early_mean"], both["early_mean_r"], rtol=1e-13)
    np.testing.assert_allclose(both["early_slope"], both["early_slope_r"], rtol=1e-10, atol=1e-13)
    assert (both["last_session"] == both["last_session_r"]).all()
    out = PATIENTS[~PATIENTS["included"]]
    assert r.n_excluded == len(out) == 73
    assert set(r.excluded["patient"]) == set(out["patient"])
    counts = r.excluded_counts
    assert counts["left before session 3"] == (out["last_session"] < 3).sum() == 30
    assert counts["no alliance rating at one of sessions 1, 2, 3"] == 43
    assert "73 left out" in r.summary() and "43 no alliance rating" in r.methods()
    # person-period rows: the hazard model's n (R) plus the rows without a rating
    assert r.person_periods == MODELS.loc[MODELS["model"] == "hazard", "n"].iloc[0]
    assert r.person_periods_dropped == 106 and r.events_dropped == 1


@pytest.mark.parametrize("therapist", [False, True])
def test_predicted_probabilities_match_r(therapist):
    r = fitted(therapist)
    ref = pd.read_csv(REF / f"dropout_reference_predict_{'glmer' if therapist else 'glm'}.csv")
    p = r.predicted
    assert len(p) == len(ref) == 49
    np.testing.assert_allclose(p["early_mean"], ref["early_mean"], rtol=1e-13)
    logit = np.log(p["p"] / (1 - p["p"]))
    np.testing.assert_allclose(logit, ref["link"], atol=2e-6 if therapist else 1e-10)
    half = (np.log(p["p_high"] / (1 - p["p_high"])) - np.log(p["p_low"] / (1 - p["p_low"]))) / 2
    np.testing.assert_allclose(half, 1.959963984540054 * ref["se_link"], rtol=4e-5 if therapist else 1e-9)


def test_survival_curves_match_r():
    r = fitted(False)
    ref = SURVIVAL.assign(tertile=SURVIVAL["tertile"].map({1: "low", 2: "middle", 3: "high"}))
    both = r.survival.merge(ref, on=["tertile", "session"], suffixes=("", "_r"))
    assert len(both) == len(r.survival) == len(ref)
    assert (both["at_risk"] == both["at_risk_r"]).all() and (both["events"] == both["events_r"]).all()
    np.testing.assert_allclose(both["hazard_model"], both["hazard_model_r"], rtol=1e-10)
    np.testing.assert_allclose(both["survival_model"], both["survival_model_r"], rtol=1e-10)
    # life table: S(t) = prod (1 - events / at risk), by hand for the first sessions of one tertile
    low = r.survival[r.survival["tertile"] == "low"].reset_index(drop=True)
    by_hand = np.cumprod(1 - low["events"][:4] / low["at_risk"][:4])
    np.testing.assert_allclose(low["survival_obs"][:4], by_hand)
    # the survival of the low tertile falls fastest (the simulated effect)
    last = r.survival.groupby("tertile")["survival_model"].last()
    assert last["low"] < last["middle"] < last["high"]


def test_odds_ratio_per_sd_and_d_equivalent():
    r = fitted(True)
    e = r.effects[(r.effects["model"] == "level") & (r.effects["term"] == "early_mean")].iloc[0]
    sd = r.patients["early_mean"].std(ddof=1)
    assert e["sd"] == pytest.approx(sd, rel=1e-12)
    assert e["or_sd"] == pytest.approx(np.exp(e["estimate"] * sd), rel=1e-12)
    assert e["or_sd_low"] == pytest.approx(np.exp(e["ci_low"] * sd), rel=1e-12)
    assert e["d"] == pytest.approx(np.log(e["or_sd"]) * sqrt(3) / pi, rel=1e-12)
    # closed form: an odds ratio of exp(pi / sqrt(3)) is d = 1
    assert np.log(np.exp(pi / sqrt(3))) * sqrt(3) / pi == pytest.approx(1.0)
    assert e["or"] < 1 and e["d"] < 0 and e["p"] < 0.001  # the simulated effect is found


def test_display_and_plots():
    r = fitted(True)
    apa = r.to_apa()
    assert apa.columns.tolist() == ["Model", "Predictor", "b", "SE", "OR [95% CI]", "OR per SD [95% CI]", "d", "p"]
    assert len(apa) == 4 and apa.loc[0, "Predictor"] == "Early alliance (mean)"
    text = r.methods()
    assert "Sharf, Primavera and Diener (2010" in text and "random intercept for therapists" in text
    assert "Early alliance and dropout" in r._repr_html_()
    ax = r.plot()
    assert ax.get_ylabel() == "probability of dropout" and len(ax.lines) == 2
    ax2 = r.plot_survival()
    assert len(ax2.get_legend().get_texts()) == 3
    assert r.plot(kind="survival").get_xlabel() == "session"
    with pytest.raises(als.OptionError):
        r.plot(kind="forest")


def test_own_column_names_and_untouched_data():
    d = SESSIONS.rename(columns={"patient": "client", "session": "visit", "therapist": "clinician"}).sample(frac=1, random_state=1)
    before = d.copy()
    r = als.early_alliance_dropout(d, alliance="alliance", dropout="dropout", patient="client", session="visit",
                                   covariates="severity")
    pd.testing.assert_frame_equal(d, before)
    ref = fitted(False)
    np.testing.assert_allclose(r.effects["estimate"], ref.effects["estimate"], rtol=1e-10)
    assert "client" in r.patients.columns and "client" in r.excluded.columns


def test_refusals_name_what_is_wrong():
    d = SESSIONS
    with pytest.raises(als.ColumnError, match="wai"):
        als.early_alliance_dropout(d, alliance="wai", dropout="dropout")
    bad = d.copy()
    bad.loc[5, "dropout"] = 2
    with pytest.raises(als.ModelSpecError, match=r"0/1.*rows 5"):
        als.early_alliance_dropout(bad, alliance="alliance", dropout="dropout")
    bad = d.copy()
    first = bad.index[bad["patient"] == "P001"][0]
    bad.loc[first, "dropout"] = 1 - bad.loc[first, "dropout"]
    with pytest.raises(als.ModelSpecError, match=r"same in every row.*P001"):
        als.early_alliance_dropout(bad, alliance="alliance", dropout="dropout")
    with pytest.raises(als.SessionDataError, match="P002"):
        als.early_alliance_dropout(pd.concat([d, d[d["patient"] == "P002"].head(1)]), alliance="alliance", dropout="dropout")
    with pytest.raises(als.ModelSpecError, match="covariate 'therapist' must be numeric"):
        als.early_alliance_dropout(d, alliance="alliance", dropout="dropout", covariates=["therapist"])
    with pytest.raises(als.OptionError, match="sessions"):
        als.early_alliance_dropout(d, alliance="alliance", dropout="dropout", sessions=(1, 2.5))
    with pytest.raises(als.ModelSpecError, match="no patient has an 'alliance' rating"):
        als.early_alliance_dropout(d, alliance="alliance", dropout="dropout", sessions=(40, 41))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(1, 5), min_size=2, max_size=6), st.floats(-2, 2))
def test_early_slope_is_least_squares(values, shift):
    s = np.arange(1, len(values) + 1, dtype=float)
    early = pd.DataFrame({"patient": "p", "session": s, "alliance": np.array(values) + shift})
    expected = np.polyfit(s, early["alliance"], 1)[0]
    assert _slopes(early)["p"] == pytest.approx(expected, abs=1e-9)


def test_readme_example_runs_as_written():
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "early_alliance_dropout" in b]
    assert len(blocks) == 1, "the README lost its dropout example"
    ns: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), ns)
    assert ns["dr"].n_patients + ns["dr"].n_excluded == 240
    assert ns["g"].fixed["term"].tolist() == ["Intercept", "early_mean"]
    # the patient-level glmm is the level model the dropout function fits (no covariates)
    np.testing.assert_allclose(ns["g"].fixed["estimate"], ns["dr"].fits["level"].fixed["estimate"], rtol=1e-8)
