"""The lmm optimizer reaches lme4's optimum on the raw-session random-slope design where the
first optimizer stopped short (optimizer issue), and says what it did (``.optsum``, ``all_fit``).

References: tests/reference/make_lmm_optimizer_data.py (seeded data) and
make_lmm_optimizer_reference.R (lme4 1.1, the better of lmer's default and bobyqa with
rhoend 1e-12; the corner and saddle points from lme4's own deviance function).
"""

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
from alliance_stats.models.lmm.nested import NestedEngine
from alliance_stats.models.lmm.optimize import check_point

REF = Path(__file__).parent / "reference"
DATA = pd.read_csv(REF / "lmm_optimizer_data.csv.gz")
MODELS = pd.read_csv(REF / "lmm_optimizer_models.csv").set_index("id")
FIT = pd.read_csv(REF / "lmm_optimizer_reference_fit.csv").set_index("id")
FIXED = pd.read_csv(REF / "lmm_optimizer_reference_fixed.csv")
RANDOM = pd.read_csv(REF / "lmm_optimizer_reference_random.csv")
POINTS = pd.read_csv(REF / "lmm_optimizer_reference_points.csv").set_index("point")
SLEEP = pd.read_csv(REF / "lmm_sleepstudy.csv")
SLEEP_LOGLIK = -871.814135979246  # lme4, tests/reference/lmm_reference_fit.csv (sleep_rs)
FORMULA = MODELS.loc["issue", "formula"]


def data_for(model_id):
    m = MODELS.loc[model_id]
    d = DATA[DATA["data"] == m["data"]].drop(columns="data").reset_index(drop=True)
    d["session"] = d["session"] + m["shift"]
    return d


def theta_of(point):
    return np.array(POINTS.loc[point, "theta"].split(), float)


@lru_cache(maxsize=None)
def fitted(model_id):
    with warnings.catch_warnings():
        warnings.simplefilter("error", als.AllianceStatsWarning)  # none is singular; all converge
        return als.lmm(FORMULA, data_for(model_id), reml=bool(MODELS.loc[model_id, "reml"]))


@pytest.mark.parametrize("model_id", MODELS.index.tolist())
def test_reaches_lme4s_optimum(model_id):
    res, ref = fitted(model_id), FIT.loc[model_id]
    assert res.llf == pytest.approx(ref["loglik"], abs=1e-6)
    assert res.converged and not res.singular and res.optsum.converged
    f = FIXED[FIXED["id"] == model_id].set_index("term")
    ours = res.fixed.set_index("term").loc[f.index]
    np.testing.assert_allclose(ours["estimate"], f["estimate"], rtol=1e-5)
    np.testing.assert_allclose(ours["se"], f["se"], rtol=1e-5)
    r = RANDOM[RANDOM["id"] == model_id]
    sd = r[r["var2"].isna()]
    np.testing.assert_allclose(res.random["sd"].dropna().to_numpy(), sd["sdcor"].to_numpy(), rtol=1e-4)
    corr = r[r["var2"].notna()]["sdcor"].to_numpy()
    np.testing.assert_allclose(res.random["corr"].dropna().to_numpy(), corr, atol=1e-4)


def test_the_issue_case_is_no_longer_a_corner():
    """The issue's report: intercept SD exactly 0 and logLik 29 units short. Now the intercept SD
    is lme4's, and the optimum is at least as good as lme4's."""
    res = fitted("issue")
    sd = res.random.set_index(["group", "term1"])["sd"].dropna()
    ref = RANDOM[(RANDOM["id"] == "issue") & RANDOM["var2"].isna()].set_index("var1")["sdcor"]
    assert sd[("patient", "Intercept")] == pytest.approx(ref["Intercept"], rel=1e-4)
    assert sd[("patient", "Intercept")] > 0.5
    assert res.llf > -0.5 * POINTS.loc["corner", "deviance"] + 25


def engine(model_id="issue"):
    d = build_design(FORMULA, data_for(model_id))
    return NestedEngine(d.X, d.y, d.levels)


def test_deviance_at_the_traps_equals_lme4s():
    """Our deviance function at the corner, the saddle and the optimum equals lme4's there."""
    eng = engine()
    for point in ("corner", "saddle", "optimum"):
        assert eng.deviance(eng.to_int(theta_of(point)), True) == pytest.approx(POINTS.loc[point, "deviance"], abs=1e-7)


def test_mode_a_corner_is_escaped_by_the_boundary_restart():
    """Mode (a): theta = (0, t21, 0) is a true local minimum in the Cholesky coordinates; the local
    checks pass there, and BOBYQA started there stays. The boundary restart (the covariance matrix
    re-factored with a small variance on the zero diagonals) leaves it for lme4's optimum."""
    corner = theta_of("corner")
    eng = engine()
    s = check_point(eng, True, eng.to_int(corner), "corner")
    assert s.converged and s.checks["min_eigenvalue"] > 0 and s.checks["at_bound"] == (0, 2)
    d = data_for("issue")
    with pytest.warns(als.SingularFitWarning, match="'Intercept \\| patient' is estimated at zero"):
        stuck = als.lmm(FORMULA, d, start=corner, restart=False)
    assert stuck.llf == pytest.approx(-0.5 * POINTS.loc["corner", "deviance"], abs=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", als.AllianceStatsWarning)
        res = als.lmm(FORMULA, d, start=corner)
    assert res.llf >= FIT.loc["issue", "loglik"] - 1e-6
    b = res.optsum.checks["boundary_restarts"][0]
    assert b["kind"] == "boundary" and b["improved"] and b["objective"] < POINTS.loc["corner", "deviance"] - 50
    assert res.optsum.restarts[0]["why"] == "boundary"


def test_mode_b_saddle_fails_the_signed_curvature_check_and_is_left():
    """Mode (b): the correlation at -1/+1 (t22 = 0) where the deviance still falls along t22. The
    gradient is 0 there (the deviance is even in t22), so only the signed curvature shows it."""
    saddle = theta_of("saddle")
    eng = engine()
    s = check_point(eng, True, eng.to_int(saddle), "saddle")
    assert not s.converged
    assert s.checks["min_eigenvalue"] < -100
    assert s.checks["newton_decrement"] == np.inf
    assert s.checks["gradient"] < 0.01
    with warnings.catch_warnings():
        warnings.simplefilter("error", als.AllianceStatsWarning)
        res = als.lmm(FORMULA, data_for("issue"), start=saddle)
    assert res.llf >= FIT.loc["issue", "loglik"] - 1e-6


def test_optsum_says_what_the_fit_did():
    m = als.lmm("Reaction ~ Days + (Days | Subject)", SLEEP)
    o = m.optsum
    assert o.optimizer == "bobyqa" and o.return_code in ("FTOL_REACHED", "XTOL_REACHED")
    np.testing.assert_array_equal(o.start, [1, 0, 1])
    np.testing.assert_array_equal(o.lower, [0, -np.inf, 0])
    assert o.tolerances["ftol_rel"] == 1e-9 and o.tolerances["ftol_abs"] == 1e-5 and o.tolerances["xtol_abs"] == 1e-7
    np.testing.assert_array_equal(o.final, m.theta)
    assert o.objective == pytest.approx(m.deviance, abs=1e-9)
    assert m.llf == pytest.approx(SLEEP_LOGLIK, abs=1e-6)
    assert 0 < o.feval < o.n_evals < 200
    assert o.converged and o.checks["newton_decrement"] < 1e-6 and o.checks["min_eigenvalue"] > 0
    assert o.checks["at_bound"] == () and o.checks["boundary_restarts"] == ()
    text = repr(o)
    for word in ("bobyqa", "start (theta)", "[1, 0, 1]", "Newton decrement", "min eigenvalue", "converged          True"):
        assert word in text
    with pytest.raises(AttributeError):  # frozen
        o.objective = 0.0
    one = als.lmm("Reaction ~ Days + (1 | Subject)", SLEEP).optsum
    assert one.optimizer == "brent" and one.converged


def test_all_fit_agrees_across_optimizers_on_sleepstudy():
    m = als.lmm("Reaction ~ Days + (Days | Subject)", SLEEP)
    tab = als.all_fit(m)
    assert tab.index.tolist() == ["bobyqa", "nelder-mead", "sbplx", "cobyla", "L-BFGS-B"]
    assert tab["converged"].all()
    np.testing.assert_allclose(tab["logLik"], SLEEP_LOGLIK, atol=1e-6)
    assert (tab["logLik_gap"] <= 0).all() and tab["logLik_gap"].max() == 0
    # lme4: fixed effects 251.405105, 10.467286; SDs 24.740658, 5.922138; corr 0.065551; residual 25.591796
    np.testing.assert_allclose(tab["Intercept"], 251.405105, rtol=1e-7)
    np.testing.assert_allclose(tab["Days"], 10.467286, rtol=1e-6)
    np.testing.assert_allclose(tab["sd Intercept | Subject"], 24.740658, rtol=1e-4)
    np.testing.assert_allclose(tab["sd Days | Subject"], 5.922138, rtol=1e-4)
    np.testing.assert_allclose(tab["corr Intercept, Days | Subject"], 0.065551, atol=1e-4)
    np.testing.assert_allclose(tab["sd Residual"], 25.591796, rtol=1e-5)
    assert (tab["evaluations"] > 0).all() and (tab["seconds"] > 0).all()
    assert (tab["message"] == "").all()
    two = als.all_fit(m, optimizers=["nelder-mead", "bobyqa"])
    assert two.index.tolist() == ["nelder-mead", "bobyqa"]


def test_bad_optimizer_options_are_refused():
    with pytest.raises(als.OptionError, match="optimizer"):
        als.lmm("Reaction ~ Days + (Days | Subject)", SLEEP, optimizer="newton")
    with pytest.raises(als.OptionError, match="start"):
        als.lmm("Reaction ~ Days + (Days | Subject)", SLEEP, start=[1, 0])
    with pytest.raises(als.OptionError, match="start"):
        als.lmm("Reaction ~ Days + (Days | Subject)", SLEEP, start=[-1, 0, 1])
    m = als.lmm("Reaction ~ Days + (Days | Subject)", SLEEP)
    with pytest.raises(als.OptionError, match="optimizers"):
        als.all_fit(m, optimizers=["bobyqa", "simplex"])
    with pytest.raises(als.ModelSpecError, match="LMMResult"):
        als.all_fit(SLEEP)


def test_singular_message_reads_the_covariance_matrix():
    """lme4 (tests/reference/lmm_reference_fit.csv, three_wai_slopes2): the therapist block has
    its last Cholesky element at 0, i.e. an intercept-slope correlation of -1 with both variances
    positive; the message says so instead of calling a variance zero."""
    d = pd.read_csv(REF / "lmm_small.csv.gz")
    with pytest.warns(als.SingularFitWarning, match="correlation of 'Intercept' and 'session' \\| therapist is estimated at -1"):
        m = als.lmm("wai ~ session + (1 + session | therapist) + (1 + session | therapist:patient)", d)
    assert m.llf == pytest.approx(-891.723896124573, abs=1e-6)
    assert m.converged and m.optsum.checks["boundary_restarts"]


def small_random_slope(seed, n_patients=25, n_sessions=8):
    rng = np.random.default_rng(seed)
    b = rng.multivariate_normal([0, 0], [[0.8, -0.03], [-0.03, 0.004]], size=n_patients)
    pid = np.repeat(np.arange(n_patients), n_sessions)
    s = np.tile(np.arange(n_sessions), n_patients)
    y = 10 - 0.1 * s + b[pid, 0] + b[pid, 1] * s + rng.normal(0, 1.5, len(pid))
    return pd.DataFrame({"patient": pid, "session": s, "y": y})


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), shift=st.integers(-20, 20))
def test_shifting_time_does_not_change_the_optimum(seed, shift):
    """session -> session + c re-parametrises the fixed and random parts (intercept and slope
    mix): the likelihood is the same function, so the optimum's log-likelihood must be the same
    whatever the shift, whether the optimum is interior or singular."""
    d = small_random_slope(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", als.SingularFitWarning)
        a = als.lmm("y ~ session + (1 + session | patient)", d, df_method="z")
        b = als.lmm("y ~ session + (1 + session | patient)", d.assign(session=d["session"] + shift), df_method="z")
    assert a.converged and b.converged
    assert b.llf == pytest.approx(a.llf, abs=1e-6)
    assert b.params["session"] == pytest.approx(a.params["session"], rel=1e-4, abs=1e-6)
