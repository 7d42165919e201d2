"""The fast engine and the statsmodels engine behind als.lmm agree where both reach the optimum."""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alliance_stats as als


@pytest.fixture(scope="module")
def study():
    s = als.simulate_study(n_therapists=12, patients_per_therapist=8, seed=5, rupture_rate=0)
    d = s.sessions
    return d.join(als.score(d, "PHQ-9", items="phq{}")).join(als.score(d, "WAI-SR", items="wai{}"))


DESIGNS = [
    "phq9_total ~ session + (1 | patient)",
    "phq9_total ~ session + (1 + session | patient)",
    "wai_sr_total ~ session + (1 | therapist/patient)",
    "wai_sr_total ~ session + (1 | therapist) + (1 + session || therapist:patient)",
]


@pytest.mark.parametrize("formula", DESIGNS)
@pytest.mark.parametrize("reml", [True, False])
def test_engines_agree_on_simulated_designs(study, formula, reml):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", als.SingularFitWarning)
        fast = als.lmm(formula, study, reml=reml)
        sm = als.lmm(formula, study, reml=reml, engine="statsmodels")
    assert fast.engine == "fast" and sm.engine == "statsmodels" and sm.converged
    assert sm.llf == pytest.approx(fast.llf, abs=1e-3)
    se = fast.fixed["se"].to_numpy()
    np.testing.assert_allclose(sm.fixed["estimate"], fast.fixed["estimate"], atol=1e-3 * se.min())
    np.testing.assert_allclose(sm.fixed["se"], se, rtol=1e-3)
    np.testing.assert_allclose(sm.fixed["df"], fast.fixed["df"], rtol=1e-2)
    np.testing.assert_allclose(sm.random["variance"], fast.random["variance"], rtol=2e-3, atol=1e-6)
    assert type(sm) is type(fast) and list(sm.fixed.columns) == list(fast.fixed.columns)


def test_engines_agree_on_the_lagged_alliance_outcome_model(study):
    kw = dict(outcome="phq9_total", alliance="wai_sr_total", therapist="therapist", covariates=["session"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", als.SingularFitWarning)
        fast = als.alliance_outcome(study, **kw)
        sm = als.alliance_outcome(study, engine="statsmodels", **kw)
    assert sm.model.engine == "statsmodels" and sm.model.llf == pytest.approx(fast.model.llf, abs=1e-3)
    np.testing.assert_allclose(sm.effects["estimate"], fast.effects["estimate"], atol=1e-3 * fast.effects["se"].min())


def test_auto_is_the_fast_engine(study):
    a = als.lmm(DESIGNS[1], study)
    b = als.lmm(DESIGNS[1], study, engine="fast")
    assert a.engine == "fast" and a.llf == b.llf and a.fixed.equals(b.fixed)


def test_statsmodels_stopping_short_is_reported(study):
    # statsmodels' MixedLM stops 24 log-likelihood units short on this design; the check at its
    # estimate says so, and the fast engine reaches the optimum
    f = "wai_sr_total ~ session + (1 + session | therapist) + (1 | therapist:patient)"
    with pytest.warns(als.ConvergenceWarning):
        sm = als.lmm(f, study, engine="statsmodels")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", als.SingularFitWarning)
        fast = als.lmm(f, study)
    assert not sm.converged and fast.converged
    assert fast.llf - sm.llf > 1.0


def test_engine_errors(study):
    with pytest.raises(als.OptionError, match="engine='lme4' is not a valid value; allowed: 'auto', 'fast', 'statsmodels'"):
        als.lmm(DESIGNS[0], study, engine="lme4")
    with pytest.raises(als.ModelSpecError, match=r"engine='statsmodels' cannot fit this design: correlated random slopes at the inner level.*engine='fast'"):
        als.lmm("wai_sr_total ~ session + (1 | therapist) + (1 + session | therapist:patient)", study, engine="statsmodels")
    with pytest.raises(als.ModelSpecError, match=r"uncorrelated terms \(\|\|\) at the level 'patient'"):
        als.lmm("phq9_total ~ session + (1 + session || patient)", study, engine="statsmodels")


# --- the fast deviance against the level-by-level factorisation -------------------------------
NESTED_FORMULAS = [
    "y ~ x + (1 | site/therapist/patient)",  # scalar at every level: the direct scalar elimination
    "y ~ x + (1 | therapist/patient)",
    "y ~ x + (1 | patient)",
    "y ~ x + (1 + x | patient)",  # 2 x 2 blocks in closed form
    "y ~ x + (1 | therapist) + (1 + x + z | therapist:patient)",  # general q = 3 blocks
    "y ~ x + (1 + x | therapist) + (1 | therapist:patient)",  # a slope at the coarser level
]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), formula=st.sampled_from(NESTED_FORMULAS),
       theta_scale=st.floats(0.0, 3.0), reml=st.booleans())
def test_fast_deviance_equals_the_level_by_level_factorisation(seed, formula, theta_scale, reml):
    """The deviance the optimizer sees (``_factor_fast``: precomputed outer products, closed-form
    blocks, scalar levels) equals the one from the plain factorisation used for BLUPs and
    vcov (``_factor``: a Cholesky factor per group and level), at random theta."""
    from alliance_stats.models.lmm.design import build_design
    from alliance_stats.models.lmm.nested import NestedEngine

    rng = np.random.default_rng(seed)
    n = 240
    patient = rng.integers(0, 40, n)
    therapist = patient // 5  # 8 therapists
    site = therapist // 4  # 2 sites
    x, z = rng.normal(size=n), rng.normal(size=n)
    y = 1 + 0.5 * x + rng.normal(size=40)[patient] + rng.normal(size=8)[therapist] + rng.normal(size=n)
    d = pd.DataFrame({"y": y, "x": x, "z": z, "patient": patient, "therapist": therapist, "site": site})
    D = build_design(formula, d)
    eng = NestedEngine(D.X, D.y, D.levels)
    theta = eng.start() * theta_scale + np.where(np.isfinite(eng.lower), 0.0, rng.normal(scale=0.3, size=eng.n_theta))
    fast = eng.deviance(theta, reml)
    plain = eng._dev_from(eng._factor(theta), reml)
    assert fast == pytest.approx(plain, rel=1e-10, abs=1e-8)
