"""Crossed and partially crossed random effects (``alliance_stats/models/lmm/crossed.py``).

Against lme4 1.1 / lmerTest 3.1 (tests/reference/make_lmm_crossed_reference.R): Penicillin
(plates crossed with samples), InstEval (students, instructors and departments, 73,421 ratings),
simulated sessions rated by observer raters (patients crossed with raters, with random slopes on
either side) and patients who change therapist (partially crossed). The engine's deviance equals
the nested engine's on nested designs at random theta.
"""

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alliance_stats as als
from alliance_stats.models.lmm import crossed as crossed_mod
from alliance_stats.models.lmm.crossed import CrossedEngine
from alliance_stats.models.lmm.design import build_design
from alliance_stats.models.lmm.nested import NestedEngine

REF = Path(__file__).parent / "reference"
MODELS = pd.read_csv(REF / "lmm_crossed_models.csv").set_index("id")
FIXED = pd.read_csv(REF / "lmm_crossed_fixed.csv")
RANDOM = pd.read_csv(REF / "lmm_crossed_random.csv")
FIT = pd.read_csv(REF / "lmm_crossed_fit.csv").set_index("id")
BLUPS = pd.read_csv(REF / "lmm_crossed_ranef.csv.gz", dtype={"level": str})
DATA = {
    "penicillin": "lmm_crossed_penicillin.csv",
    "insteval": "lmm_crossed_insteval.csv.gz",
    "raters": "lmm_crossed_raters.csv.gz",
    "changers": "lmm_crossed_changers.csv.gz",
}


@lru_cache(maxsize=None)
def dataset(name):
    return pd.read_csv(REF / DATA[name])


@lru_cache(maxsize=None)
def fitted(model_id):
    m = MODELS.loc[model_id]
    if FIT.loc[model_id, "singular"]:
        with pytest.warns(als.SingularFitWarning):
            return als.lmm(m["formula"], dataset(m["data"]), reml=bool(m["reml"]))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", als.AllianceStatsWarning)
        return als.lmm(m["formula"], dataset(m["data"]), reml=bool(m["reml"]))


IDS = [pytest.param(i, marks=pytest.mark.slow) if i == "insteval" else i for i in MODELS.index]  # InstEval: 30-75 s


@pytest.mark.parametrize("model_id", IDS)
def test_loglik_theta_and_fixed_effects_equal_lme4(model_id):
    res = fitted(model_id)
    ref = FIT.loc[model_id]
    assert res.n_obs == ref["n"]
    assert res.singular == bool(ref["singular"])
    # the optimum: at least as good as lme4's, and no better by more than the optimizers' noise
    assert res.llf >= ref["loglik"] - 1e-6
    assert res.llf == pytest.approx(ref["loglik"], abs=1e-5)
    assert res.sigma == pytest.approx(ref["sigma"], rel=1e-5)
    f = FIXED[FIXED["id"] == model_id].set_index("term")
    ours = res.fixed.set_index("term").loc[f.index]
    np.testing.assert_allclose(ours["estimate"], f["estimate"], rtol=1e-5)
    np.testing.assert_allclose(ours["se"], f["se"], rtol=1e-5)
    np.testing.assert_allclose(ours["df"], f["df"], rtol=1e-4)
    np.testing.assert_allclose(ours["p"], f["p"], rtol=2e-3)


@pytest.mark.parametrize("model_id", IDS)
def test_variance_components_equal_lme4(model_id):
    res = fitted(model_id)
    r = RANDOM[RANDOM["id"] == model_id]
    key = [(g, a if isinstance(a, str) else "", b if isinstance(b, str) else "") for g, a, b in zip(r["grp"], r["var1"], r["var2"])]
    ours = res.random.copy()
    ours.index = [(g, a if isinstance(a, str) else "", b if isinstance(b, str) else "") for g, a, b in zip(ours["group"], ours["term1"], ours["term2"])]
    assert sorted(ours.index) == sorted(key)
    ours = ours.loc[key]
    var = r["var2"].isna().to_numpy()
    resid = float(r.loc[r["grp"] == "Residual", "vcov"].iloc[0])
    # the optimum's flat directions: lme4's and our optimizer stop within 1e-9 of the deviance
    np.testing.assert_allclose(ours["variance"].to_numpy()[var], r["vcov"].to_numpy()[var], rtol=5e-5, atol=1e-8 * resid)
    np.testing.assert_allclose(ours["corr"].to_numpy()[~var], r["sdcor"].to_numpy()[~var], atol=1e-5)


@pytest.mark.parametrize("model_id", IDS)
def test_blups_and_conditional_sds_equal_lme4(model_id):
    ref = BLUPS[BLUPS["id"] == model_id]
    ours = fitted(model_id).random_effects()
    ours = ours.set_index([ours["group"], ours["level"].astype(str), ours["term"]])
    got = ours.loc[list(zip(ref["grp"], ref["level"], ref["term"]))]
    scale = np.abs(ref["estimate"]).max()
    np.testing.assert_allclose(got["estimate"], ref["estimate"], rtol=0, atol=5e-6 * scale)
    np.testing.assert_allclose(got["cond_sd"], ref["cond_sd"], rtol=5e-5)


def test_fitted_values_icc_and_r2_use_every_crossed_factor():
    """Fitted values are X beta plus each factor's BLUP; ICC shares are the variances over their
    sum; the conditional R^2 adds both factors' variances (Nakagawa & Schielzeth 2013)."""
    res = fitted("raters")
    d = dataset("raters")
    beta = res.params
    re = res.random_effects().set_index(["group", "level"])["estimate"]
    by_hand = (beta["Intercept"] + beta["session"] * d["session"] + re.loc["patient"].loc[d["patient"]].to_numpy()
               + re.loc["rater"].loc[d["rater"]].to_numpy())
    np.testing.assert_allclose(res.predict(), by_hand, rtol=1e-12)
    v = res.random.set_index("group")["variance"]
    icc = res.icc().set_index("level")["share"]
    assert icc["rater"] == pytest.approx(v["rater"] / v.sum(), rel=1e-12)
    vf = np.var(beta["Intercept"] + beta["session"] * d["session"], ddof=1)
    r2 = res.r2()
    assert r2["conditional"] == pytest.approx((vf + v["patient"] + v["rater"]) / (vf + v.sum()), rel=1e-12)
    assert r2["marginal"] == pytest.approx(vf / (vf + v.sum()), rel=1e-12)


def test_predict_gives_new_groups_of_either_factor_a_random_effect_of_zero():
    res = fitted("raters")
    b = res.params
    re = res.random_effects().set_index(["group", "level"])["estimate"]
    new = pd.DataFrame({"patient": ["P001", "P001", "NEW", "NEW"], "rater": ["R01", "NEW", "R01", "NEW"], "session": 2.0})
    with pytest.raises(als.ColumnError, match=r"patient: 1 group\(s\) \('NEW'\) in 2 row\(s\); rater: 1 group\(s\)"):
        res.predict(new)
    with pytest.warns(als.AllianceStatsWarning, match=r"3 of 4 row\(s\)"):
        p = res.predict(new, allow_new_levels=True).to_numpy()
    fix = b["Intercept"] + 2 * b["session"]
    np.testing.assert_allclose(p, [fix + re[("patient", "P001")] + re[("rater", "R01")], fix + re[("patient", "P001")],
                                   fix + re[("rater", "R01")], fix], rtol=1e-12)


def test_crossing_is_reported_with_the_nesting_hint():
    res = fitted("changers")
    note = [m for m in res.messages if "crossed" in m]
    assert len(note) == 1
    assert "'patient' and 'therapist' are crossed: 49 of 300 patient groups" in note[0]
    assert "(1 | therapist/patient)" in note[0]
    assert res.n_groups == {"therapist": 25, "patient": 300}


def test_statsmodels_engine_refuses_crossed_factors_by_name():
    with pytest.raises(als.ModelSpecError, match="engine='statsmodels' cannot fit.*'patient' and 'therapist' are crossed"):
        als.lmm(MODELS.loc["changers", "formula"], dataset("changers"), engine="statsmodels")


def test_two_factors_with_the_same_groups_are_refused():
    d = dataset("raters").copy()
    d["coder"] = d["rater"].str.replace("R", "C")
    with pytest.raises(als.ModelSpecError, match="'rater' and 'coder' define the same groups|'coder' and 'rater' define the same groups"):
        als.lmm("alliance ~ session + (1 | patient) + (1 | rater) + (1 | coder)", d)


def test_too_many_crossed_random_effects_are_refused_by_name(monkeypatch):
    monkeypatch.setattr(crossed_mod, "MAX_DENSE", 10)
    with pytest.raises(als.ModelSpecError, match=r"'rater' \(12 groups x 1\).*at most 10 columns"):
        als.lmm(MODELS.loc["raters", "formula"], dataset("raters"))


# --- the engine itself -------------------------------------------------------------------------------
def _nested_data(seed):
    rng = np.random.default_rng(seed)
    n = 240
    patient = rng.integers(0, 40, n)
    therapist = patient // 5  # 8 therapists
    site = therapist // 4  # 2 sites
    x, z = rng.normal(size=n), rng.normal(size=n)
    y = 1 + 0.5 * x + rng.normal(size=40)[patient] + rng.normal(size=8)[therapist] + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "z": z, "patient": patient, "therapist": therapist, "site": site})


NESTED_FORMULAS = [
    "y ~ x + (1 | patient)",
    "y ~ x + (1 | therapist) + (1 | patient)",
    "y ~ x + (1 | site) + (1 | therapist) + (1 | patient)",
    "y ~ x + (1 + x | patient)",
    "y ~ x + (1 | therapist) + (1 + x + z | therapist:patient)",
    "y ~ x + (1 + x | therapist) + (1 | therapist:patient)",
    "y ~ x + (1 + x || therapist) + (1 + z | patient)",
]


def _random_theta(eng, rng, scale):
    return eng.start() * scale + np.where(np.isfinite(eng.lower), 0.0, rng.normal(scale=0.3, size=eng.n_theta))


# how the reduction of the other columns is made: all dense; pairs of non-zeros for the other
# factors (rows: flat (m, m) positions or a compact list) and dense X, y; pairs for every column
REDUCTIONS = [("dense", None, None), ("sparse", None, None), ("sparse", 0, None), ("sparse", None, 0), ("sparse", 0, 0)]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), formula=st.sampled_from(NESTED_FORMULAS), theta_scale=st.floats(0.0, 3.0),
       reml=st.booleans(), how=st.sampled_from(REDUCTIONS))
def test_deviance_equals_the_nested_engines_on_nested_designs(seed, formula, theta_scale, reml, how):
    """The blocked factorisation (first factor's blocks, reduction of the rest by pairs of
    non-zeros or dense products, dense Cholesky) and the level-by-level elimination of the
    nested engine are two routes to the same deviance."""
    D = build_design(formula, _nested_data(seed))
    nested = NestedEngine(D.X, D.y, D.levels)
    eng = CrossedEngine(D.X, D.y, D.levels)
    eng._setup(how[0], flat_max=how[1], dense_factor=how[2])
    theta = _random_theta(nested, np.random.default_rng(seed), theta_scale)
    assert eng.deviance(theta, reml) == pytest.approx(nested.deviance(theta, reml), rel=1e-9)
    th = eng.to_orig(theta)
    assert eng.deviance_vp(th, 1.3, reml) == pytest.approx(nested.deviance_vp(th, 1.3, reml), rel=1e-9)
    # a covariance near 0 (5e-7 beside variances of 1: seed 64) is held to 1e-13 of the matrix
    V = nested.vcov_beta(th, 1.3)
    np.testing.assert_allclose(eng.vcov_beta(th, 1.3), V, rtol=1e-8, atol=1e-13 * np.abs(V).max())


@pytest.mark.parametrize("formula", NESTED_FORMULAS)
@pytest.mark.parametrize("how", [REDUCTIONS[0], REDUCTIONS[3]])
def test_solution_and_conditional_variances_equal_the_nested_engines(formula, how):
    D = build_design(formula, _nested_data(3))
    nested = NestedEngine(D.X, D.y, D.levels)
    eng = CrossedEngine(D.X, D.y, D.levels)
    eng._setup(how[0], flat_max=how[1], dense_factor=how[2])
    theta = _random_theta(nested, np.random.default_rng(3), 0.8)
    a, b = nested.solve(theta, True, condvar=True), eng.solve(theta, True, condvar=True)
    np.testing.assert_allclose(b["beta"], a["beta"], rtol=1e-9)
    np.testing.assert_allclose(b["vcov"], a["vcov"], rtol=1e-9)
    for k in range(len(D.levels)):
        np.testing.assert_allclose(b["b"][k], a["b"][k], rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(b["condvar"][k], a["condvar"][k], rtol=1e-8, atol=1e-14)


def _crossed_data(seed):
    rng = np.random.default_rng(seed)
    n = 300
    a, b, c = rng.integers(0, 30, n), rng.integers(0, 12, n), rng.integers(0, 5, n)
    x = rng.normal(size=n)
    y = 1 + 0.5 * x + rng.normal(size=30)[a] + rng.normal(size=12)[b] * (1 + 0.3 * x) + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "a": a, "b": b, "c": c})


CROSSED_FORMULAS = [
    "y ~ x + (1 | a) + (1 | b)",
    "y ~ x + (1 | a) + (1 + x | b) + (1 | c)",
    "y ~ x + (1 + x | a) + (1 | b)",
    "y ~ x + (1 + x || a) + (1 + x | b)",
]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), formula=st.sampled_from(CROSSED_FORMULAS), theta_scale=st.floats(0.0, 3.0),
       reml=st.booleans())
def test_sparse_and_dense_reductions_agree_on_crossed_designs(seed, formula, theta_scale, reml):
    D = build_design(formula, _crossed_data(seed))
    assert D.crossed
    dense = CrossedEngine(D.X, D.y, D.levels, reduction="dense")
    theta = _random_theta(dense, np.random.default_rng(seed), theta_scale)
    for how in REDUCTIONS[1:]:
        sparse = CrossedEngine(D.X, D.y, D.levels)
        sparse._setup(*how)
        assert sparse.deviance(theta, reml) == pytest.approx(dense.deviance(theta, reml), rel=1e-10)


def test_crossed_deviance_equals_the_dense_formula():
    """lme4's profiled REML criterion written out with dense matrices (Bates et al. 2015,
    eq. 41): log|Lambda'Z'Z Lambda + I| + log|R_X|^2 + (n - p)(1 + log(2 pi r^2 / (n - p)))."""
    D = build_design("y ~ x + (1 + x | a) + (1 | b)", _crossed_data(5))
    eng = CrossedEngine(D.X, D.y, D.levels)
    theta = np.array([0.8, 0.3, 0.5, 1.2])  # original scale: a's (1, 1), (2, 1), (2, 2); b's
    Zs, Ls = [], []
    for lv, (r, c, _), t in zip(D.levels, eng.tri_index, np.split(theta, [3])):
        Z = np.zeros((len(D.y), lv.n_groups * lv.q))
        for j in range(lv.q):
            Z[np.arange(len(D.y)), lv.codes * lv.q + j] = lv.Z[:, j]
        L = np.zeros((lv.q, lv.q))
        L[r, c] = t
        Zs.append(Z)
        Ls.append(np.kron(np.eye(lv.n_groups), L))
    Z = np.hstack(Zs)
    Lam = np.block([[Ls[0], np.zeros((Ls[0].shape[0], Ls[1].shape[1]))], [np.zeros((Ls[1].shape[0], Ls[0].shape[1])), Ls[1]]])
    X, y = D.X, D.y
    n, p = X.shape
    ZL = Z @ Lam
    A = ZL.T @ ZL + np.eye(ZL.shape[1])
    Vi_proj = np.eye(n) - ZL @ np.linalg.solve(A, ZL.T)  # (I + Z Lambda Lambda'Z')^{-1}
    XtVX = X.T @ Vi_proj @ X
    beta = np.linalg.solve(XtVX, X.T @ Vi_proj @ y)
    r2 = (y - X @ beta) @ Vi_proj @ (y - X @ beta)
    dev = np.linalg.slogdet(A)[1] + np.linalg.slogdet(XtVX)[1] + (n - p) * (1 + np.log(2 * np.pi * r2 / (n - p)))
    assert eng.deviance(eng.to_int(theta), True) == pytest.approx(dev, rel=1e-11)
