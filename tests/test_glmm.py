"""als.glmm against lme4 1.1-31's glmer (tests/reference/make_glmm_reference.R).

Fixtures: cbpp (binomial, cbind(); Laplace and 25-point adaptive Gauss-Hermite quadrature),
grouseticks (Poisson; three nested levels, INDEX in BROOD in LOCATION; HEIGHT standardised),
a binary outcome with a correlated random intercept and slope, and the simulated dropout design
(patients in therapists; Laplace and 10-point quadrature). glmer ran with bobyqa at
rhoend = 1e-10 and PIRLS tolerance 1e-14.

Tolerances are what the code achieves (largest differences measured, rounded up):
log-likelihood 5e-8 absolute, theta 2e-6 absolute, estimates 2e-6 relative, standard errors
3e-5 relative (lme4's own come from a finite-difference Hessian with step 1e-4 and differ from
its numDeriv Hessian by up to 2e-4 on the dropout design; ours agree with lme4's default),
conditional modes 3e-6 absolute and their SDs 2e-6 relative, predictions 1e-7.
"""

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

import alliance_stats as als
from alliance_stats.models.lmm.glmm import _Binomial, _Poisson, gh_rule

REF = Path(__file__).parent / "reference"
FIXED = pd.read_csv(REF / "glmm_reference_fixed.csv")
RANDOM = pd.read_csv(REF / "glmm_reference_random.csv")
RANEF = pd.read_csv(REF / "glmm_reference_ranef.csv")
FIT = pd.read_csv(REF / "glmm_reference_fit.csv").set_index("id")
PRED = pd.read_csv(REF / "glmm_reference_predict.csv")

CBPP = "cbind(incidence, size - incidence) ~ C(period) + (1 | herd)"
MODELS = {
    "cbpp_laplace": (CBPP, "cbpp", "binomial", 1),
    "cbpp_agq25": (CBPP, "cbpp", "binomial", 25),
    "grouse": ("TICKS ~ YEAR + HEIGHT_z + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)", "grouseticks", "poisson", 1),
    "slopes": ("y ~ session + x + (1 + session | patient)", "slopes", "binomial", 1),
    "dropout_laplace": ("dropout ~ early_mean + severity + (1 | therapist)", "dropout", "binomial", 1),
    "dropout_agq10": ("dropout ~ early_mean + severity + (1 | therapist)", "dropout", "binomial", 10),
}


@lru_cache(maxsize=None)
def dataset(name):
    if name == "cbpp":
        d = pd.read_csv(REF / "glmm_cbpp.csv")
        return d.assign(period=d["period"].astype(str))
    if name == "grouseticks":
        return pd.read_csv(REF / "glmm_grouseticks.csv")
    if name == "slopes":
        return pd.read_csv(REF / "glmm_slopes.csv")
    d = pd.read_csv(REF / "glmm_dropout_patients.csv")
    return d[d["included"]].reset_index(drop=True)


@lru_cache(maxsize=None)
def fitted(model_id):
    formula, data, family, nagq = MODELS[model_id]
    return als.glmm(formula, dataset(data), family=family, nagq=nagq)


@pytest.mark.parametrize("model_id", list(MODELS))
def test_matches_lme4(model_id):
    m = fitted(model_id)
    ref = FIXED[FIXED["id"] == model_id]
    fit = FIT.loc[model_id]
    nagq = MODELS[model_id][3]
    # lme4's logLik for nAGQ > 1 leaves out the saturated model's log-likelihood; ours keeps it
    r_llf = fit["loglik"] + (fit["saturated_loglik"] if nagq > 1 else 0.0)
    assert m.llf == pytest.approx(r_llf, abs=5e-8)
    assert m.optsum["saturated_loglik"] == pytest.approx(fit["saturated_loglik"], abs=1e-9)
    if nagq == 1:
        assert m.aic == pytest.approx(fit["aic"], abs=1e-7)
        assert m.bic == pytest.approx(fit["bic"], abs=1e-7)
    assert m.n_obs == fit["n"]
    np.testing.assert_allclose(m.theta, np.array(fit["theta"].split(), float), atol=2e-6)
    assert len(m.fixed) == len(ref)
    np.testing.assert_allclose(m.fixed["estimate"], ref["estimate"], rtol=2e-6, atol=1e-8)
    np.testing.assert_allclose(m.fixed["se"], ref["se"], rtol=3e-5)
    np.testing.assert_allclose(m.fixed["z"], ref["z"], rtol=3e-5)
    assert m.converged and not m.singular
    assert m.optsum["checks"]["passed"].all()


@pytest.mark.parametrize("model_id", list(MODELS))
def test_variance_components(model_id):
    m = fitted(model_id)
    ref = RANDOM[RANDOM["id"] == model_id].reset_index(drop=True)
    assert m.random["group"].tolist() == ref["grp"].tolist()
    assert m.random["term1"].tolist() == ref["var1"].tolist()
    np.testing.assert_allclose(m.random["variance"], ref["vcov"], rtol=5e-6)


@pytest.mark.parametrize("model_id", ["cbpp_laplace", "cbpp_agq25", "grouse", "slopes", "dropout_laplace"])
def test_conditional_modes(model_id):
    m = fitted(model_id)
    ours = m.random_effects().assign(level=lambda d: d["level"].astype(str))
    ref = RANEF[RANEF["id"] == model_id].assign(level=lambda d: d["level"].astype(str))
    both = ours.merge(ref, left_on=["group", "level", "term"], right_on=["grp", "level", "term"], suffixes=("", "_r"))
    assert len(both) == len(ours) == len(ref)
    np.testing.assert_allclose(both["estimate"], both["estimate_r"], atol=3e-6)
    np.testing.assert_allclose(both["cond_sd"], both["cond_sd_r"], rtol=2e-6)


def test_predict_matches_lme4():
    m = fitted("cbpp_laplace")
    new = pd.DataFrame({"period": ["1", "2", "3", "4"], "herd": [1, 1, 1, 1]})
    np.testing.assert_allclose(m.predict(new, include_random=False), PRED["link"], atol=1e-7)
    np.testing.assert_allclose(m.predict(new, type="response", include_random=False), PRED["response"], atol=1e-7)
    np.testing.assert_allclose(m.predict(new), PRED["link_herd1"], atol=1e-7)
    # the fitted rows: link = X beta + Z b, response = inverse logit
    fitted_link = m.predict()
    assert fitted_link.index.equals(dataset("cbpp").index)
    np.testing.assert_allclose(m.predict(type="response"), 1 / (1 + np.exp(-fitted_link)), rtol=1e-12)


def test_ratios_and_wald_intervals():
    m = fitted("cbpp_laplace")
    f = m.fixed
    np.testing.assert_allclose(f["or"], np.exp(f["estimate"]))
    np.testing.assert_allclose(f["or_low"], np.exp(f["estimate"] - 1.959963984540054 * f["se"]))
    np.testing.assert_allclose(f["p"], 2 * (1 - __import__("scipy").stats.norm.cdf(np.abs(f["z"]))), atol=1e-12)
    g = fitted("grouse").fixed
    assert {"rr", "rr_low", "rr_high"} <= set(g.columns) and "or" not in g.columns
    np.testing.assert_allclose(g["rr_high"], np.exp(g["ci_high"]))


def test_proportion_with_weights_equals_cbind():
    d = dataset("cbpp").assign(prop=lambda x: x["incidence"] / x["size"])
    m = als.glmm("prop ~ C(period) + (1 | herd)", d, family="binomial", weights="size")
    ref = fitted("cbpp_laplace")
    assert m.llf == pytest.approx(ref.llf, abs=1e-9)
    np.testing.assert_allclose(m.fixed["estimate"], ref.fixed["estimate"], rtol=1e-7)


def test_rows_left_out_are_counted_and_data_untouched():
    d = dataset("cbpp").copy()
    d.loc[[0, 5], "incidence"] = np.nan
    d.loc[[7], "size"] = np.nan
    d.loc[[9], "period"] = None
    before = d.copy()
    m = als.glmm(CBPP, d, family="binomial")
    pd.testing.assert_frame_equal(d, before)
    assert m.n_dropped == 4 and m.n_obs == 52
    assert m.dropped.to_dict() == {"missing incidence": 2, "missing size": 1, "missing period": 1}
    assert "Rows left out: 4" in m.summary()
    # the same as the model fitted to the complete rows
    ref = als.glmm(CBPP, d.dropna(), family="binomial")
    assert m.llf == pytest.approx(ref.llf, abs=1e-9)
    assert m.predict().index.tolist() == d.dropna().index.tolist()


def test_row_order_and_index_do_not_matter():
    d = dataset("cbpp")
    shuffled = d.sample(frac=1, random_state=3)
    shuffled.index = [f"r{i}" for i in range(len(d))]
    m = als.glmm(CBPP, shuffled, family="binomial")
    ref = fitted("cbpp_laplace")
    assert m.llf == pytest.approx(ref.llf, abs=1e-9)
    np.testing.assert_allclose(m.fixed["estimate"], ref.fixed["estimate"], rtol=1e-7)
    assert m.predict().index.tolist() == shuffled.index.tolist()


def test_agq_refuses_more_than_one_scalar_random_effect():
    with pytest.raises(als.ModelSpecError, match="single scalar random effect"):
        als.glmm(MODELS["grouse"][0], dataset("grouseticks"), family="poisson", nagq=5)
    with pytest.raises(als.ModelSpecError, match="single scalar random effect"):
        als.glmm(MODELS["slopes"][0], dataset("slopes"), nagq=3)


@pytest.mark.parametrize("kwargs", [dict(family="gaussian"), dict(nagq=0), dict(nagq=101), dict(nagq=2.5), dict(nagq=True)])
def test_bad_options_refused_by_name(kwargs):
    with pytest.raises(als.OptionError) as e:
        als.glmm(MODELS["dropout_laplace"][0], dataset("dropout"), **kwargs)
    assert list(kwargs)[0] in str(e.value)


def test_outcome_must_fit_the_family():
    d = dataset("dropout").copy()
    d.loc[3, "dropout"] = 2
    with pytest.raises(als.ModelSpecError, match=r"'dropout' holds values other than 0 and 1.*rows 3.*cbind"):
        als.glmm(MODELS["dropout_laplace"][0], d)
    g = dataset("grouseticks").astype({"TICKS": float})
    g.loc[10, "TICKS"] = 1.5
    with pytest.raises(als.ModelSpecError, match=r"count.*rows 10"):
        als.glmm("TICKS ~ HEIGHT_z + (1 | BROOD)", g, family="poisson")
    c = dataset("cbpp").copy()
    c.loc[2, "incidence"] = 99  # more cases than animals: negative failures
    with pytest.raises(als.ModelSpecError, match=r"whole numbers >= 0.*rows 2"):
        als.glmm(CBPP, c)
    with pytest.raises(als.ModelSpecError, match="binomial response"):
        als.glmm(CBPP, dataset("cbpp"), family="poisson")
    with pytest.raises(als.OptionError, match="weights"):
        als.glmm("TICKS ~ HEIGHT_z + (1 | BROOD)", dataset("grouseticks"), family="poisson", weights="HEIGHT")
    with pytest.raises(als.ModelSpecError, match=r"same value .0. in all \d+ rows used.*no variation to model"):
        als.glmm("dropout ~ severity + (1 | therapist)", dataset("dropout").assign(dropout=0))


def test_lmm_refuses_binary_outcomes_but_not_integer_scores():
    d = dataset("dropout")
    with pytest.raises(als.ModelSpecError, match=r"only the values 0 and 1.*als\.glmm"):
        als.lmm("dropout ~ early_mean + (1 | therapist)", d)
    with pytest.raises(als.ModelSpecError, match="als.glmm"):
        als.lmm(CBPP, dataset("cbpp"))
    # integer outcomes (a count, a sum score) are fitted by lmm
    m = als.lmm("TICKS ~ HEIGHT_z + (1 | BROOD)", dataset("grouseticks"))
    assert m.n_obs == 403


def test_display_and_plot():
    m = fitted("cbpp_agq25")
    s = m.summary()
    assert "adaptive Gauss-Hermite quadrature (25 points)" in s and "odds ratios" in s
    assert "lme4's logLik" in s  # the note on the saturated-model term
    apa = m.to_apa()
    assert apa.columns.tolist() == ["Term", "b", "SE", "z", "p", "OR", "95% CI"]
    assert apa.loc[0, "p"] == "< .001"
    assert "cbind(incidence" in m._repr_html_()
    ax = m.plot()
    assert ax.get_xscale() == "log" and len(ax.get_yticklabels()) == 3
    assert fitted("grouse").to_apa().columns[5] == "RR"
    o = m.optsum
    assert o["optimizer"] == "nlopt LN_BOBYQA" and len(o["stages"]) == 2
    assert o["evaluations"] == sum(st["evaluations"] for st in o["stages"])


def test_gauss_hermite_rule_integrates_normal_moments():
    for n in (1, 2, 7, 25):
        z, w = map(np.array, zip(*gh_rule(n)))
        assert w.sum() == pytest.approx(1.0, abs=1e-14)
        np.testing.assert_allclose(z, -z[::-1], atol=1e-14)
        if n >= 2:
            assert (w * z**2).sum() == pytest.approx(1.0, abs=1e-12)  # E z^2 = 1
        if n >= 3:
            assert (w * z**4).sum() == pytest.approx(3.0, abs=1e-11)  # E z^4 = 3


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 30), st.floats(0, 1), st.floats(-8, 8))
def test_binomial_deviance_residual_is_loglik_less_saturated(m, frac, eta):
    y = np.round(frac * m) / m
    wt = float(m)
    lhs = _Binomial.devres(np.array([y]), np.array([eta]), np.array([wt]))[0]
    rhs = _Binomial.minus2ll(np.array([y]), np.array([eta]), np.array([wt]))[0] - _Binomial.saturated(np.array([y]), np.array([wt]))[0]
    assert lhs == pytest.approx(rhs, abs=1e-9 * max(1.0, abs(rhs)))
    assert lhs >= -1e-9


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 200), st.floats(-5, 6))
def test_poisson_deviance_residual_is_loglik_less_saturated(y, eta):
    y_, e_, w_ = np.array([float(y)]), np.array([eta]), np.array([1.0])
    lhs = _Poisson.devres(y_, e_, w_)[0]
    rhs = _Poisson.minus2ll(y_, e_, w_)[0] - _Poisson.saturated(y_, w_)[0]
    assert lhs == pytest.approx(rhs, abs=1e-8 * max(1.0, abs(rhs)))
    assert lhs >= -1e-9


def test_predict_new_data_checks():
    m = fitted("cbpp_laplace")
    with pytest.raises(als.ModelSpecError, match="DataFrame"):
        m.predict([1, 2])
    with pytest.raises(als.OptionError, match="type"):
        m.predict(type="probability")
    with pytest.raises(als.ColumnError, match="herd"):
        m.predict(pd.DataFrame({"period": ["1"]}))
    # an unseen herd is refused by name, as lme4; allowed, it gets a random effect of zero and the rows are
    # counted; herd IDs given as text match the numeric ones
    new = pd.DataFrame({"period": ["1", "1"], "herd": ["1", "99"]})
    with pytest.raises(als.ColumnError, match=r"groups not seen in the fit \(herd: 1 group\(s\) \('99'\) in 1 row\(s\)\)"):
        m.predict(new)
    with pytest.warns(als.AllianceStatsWarning, match=r"1 of 2 row\(s\) of the new data got the population prediction"):
        got = m.predict(new, allow_new_levels=True)
    np.testing.assert_allclose(got, [PRED["link_herd1"][0], PRED["link"][0]], atol=1e-7)
