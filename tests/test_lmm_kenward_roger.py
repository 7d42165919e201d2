"""Kenward-Roger inference for als.lmm against lmerTest 3.1 / pbkrtest 0.5
(tests/reference/make_kr_reference.R: summary(fit, ddf = "Kenward-Roger"), contest1D and
pbkrtest::vcovAdj, lme4 converged with bobyqa rhoend 1e-10).

Two comparisons:
- the algebra, at R's own variance parameters (no optimizer in between): the adjusted covariance,
  SEs and df agree to rounding (1e-9 relative), nested and crossed designs alike;
- the fits, end to end: what remains is the distance between the two optima (1e-8 in the REML
  criterion), which moves SEs and df by up to ~1e-5 relative.
"""

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import alliance_stats as als
from alliance_stats.models.lmm import kenward_roger as krm
from alliance_stats.models.lmm.design import build_design
from alliance_stats.models.lmm.nested import Level

REF = Path(__file__).parent / "reference"
MODELS = pd.read_csv(REF / "lmm_kr_models.csv")
FIXED = pd.read_csv(REF / "lmm_kr_fixed.csv")
CONTRASTS = pd.read_csv(REF / "lmm_kr_contrasts.csv")
VCOV = pd.read_csv(REF / "lmm_kr_vcov.csv")
MULTI = pd.read_csv(REF / "lmm_kr_ddf_multi.csv")
FIT = pd.read_csv(REF / "lmm_kr_fit.csv").set_index("id")
NESTED = MODELS.loc[~MODELS["crossed"], "id"].tolist()
CROSSED = MODELS.loc[MODELS["crossed"], "id"].tolist()


@lru_cache(maxsize=None)
def dataset(name):
    files = {"sleepstudy": "lmm_sleepstudy.csv", "small": "lmm_small.csv.gz"}
    return pd.read_csv(REF / files.get(name, f"lmm_{name}.csv"))


def model(model_id):
    return MODELS.set_index("id").loc[model_id]


def ref_vcov(model_id, col):
    v = VCOV[VCOV["id"] == model_id]
    p = int(np.sqrt(len(v)))
    return v[col].to_numpy().reshape(p, p, order="F")  # R's column-major expand.grid


@lru_cache(maxsize=None)
def fitted(model_id):
    import warnings

    m = model(model_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", als.SingularFitWarning)  # some reference fits are singular, as in R
        return als.lmm(m["formula"], dataset(m["data"]), df_method="kenward-roger")


# --- the algebra at R's variance parameters ---------------------------------------------------
def _crossed_design(model_id):
    """X and levels of a crossed model, built by hand (the engine on this branch takes nested
    factors only) in lme4's order of the random terms, as R's covariance parameters are listed."""
    m = model(model_id)
    d = dataset(m["data"])
    X = np.column_stack([np.ones(len(d))] + ([d["session"].to_numpy(float)] if "session" in m["formula"] else []))
    levels = []
    for term in FIT.loc[model_id, "terms"].split():
        slope = f"(1 + session | {term})" in m["formula"]
        codes, uniq = pd.factorize(d[term], sort=True)
        Z = np.column_stack([np.ones(len(d))] + ([d["session"].to_numpy(float)] if slope else []))
        levels.append(Level(name=term, Z=Z, blocks=[Z.shape[1]], codes=codes, n_groups=len(uniq)))
    return X, levels


def _kr_at_reference(model_id):
    if model(model_id)["crossed"]:
        X, levels = _crossed_design(model_id)
    else:
        d = build_design(model(model_id)["formula"], dataset(model(model_id)["data"]))
        X, levels = d.X, d.levels
    gamma = np.array(FIT.loc[model_id, "gamma"].split(), float)
    params = krm.parameters(levels)
    assert len(params) + 1 == len(gamma)
    covs = [np.zeros((lv.q, lv.q)) for lv in levels]
    for (li, i, j), g in zip(params, gamma):
        covs[li][i, j] = covs[li][j, i] = g
    return krm.kenward_roger(X, levels, covs, gamma[-1])


@pytest.mark.parametrize("chunk", [krm.CHUNK, 1])  # 1: every connected component on its own
@pytest.mark.parametrize("model_id", NESTED + CROSSED)
def test_algebra_equals_pbkrtest_at_r_parameters(model_id, chunk, monkeypatch):
    monkeypatch.setattr(krm, "CHUNK", chunk)
    kr = _kr_at_reference(model_id)
    V0, VA = ref_vcov(model_id, "vcov"), ref_vcov(model_id, "vcov_adj")
    np.testing.assert_allclose(kr["vcov"], V0, rtol=1e-9, atol=1e-11 * np.abs(V0).max())
    np.testing.assert_allclose(kr["vcov_adj"], VA, rtol=1e-9, atol=1e-11 * np.abs(VA).max())
    f = FIXED[FIXED["id"] == model_id]
    np.testing.assert_allclose(kr["se"], f["se"], rtol=1e-10)
    np.testing.assert_allclose(kr["df"], f["df"], rtol=1e-9)
    c = CONTRASTS[CONTRASTS["id"] == model_id]
    for L, df in zip(c["L"], c["df"]):
        assert krm.ddf_L(np.array(L.split(), float), kr["vcov"], kr) == pytest.approx(df, rel=1e-9)
    for L, df in zip(MULTI.loc[MULTI["id"] == model_id, "L"], MULTI.loc[MULTI["id"] == model_id, "df"]):
        L2 = np.array([r.split() for r in L.split(";")], float)
        assert krm.ddf_L(L2, kr["vcov"], kr) == pytest.approx(df, rel=1e-9)


# --- end to end: als.lmm(..., df_method="kenward-roger") -------------------------------------------
def _check_fit(model_id):
    res = fitted(model_id)
    assert res.df_method == "kenward-roger"
    assert -2 * res.llf == pytest.approx(FIT.loc[model_id, "reml_crit"], abs=2e-8)
    f = FIXED[FIXED["id"] == model_id]
    ours = res.fixed
    assert ours["term"].str.replace(r"\[T\.(.*)\]", r"\1", regex=True).tolist() == f["term"].tolist()
    scale = np.abs(f["estimate"]).max()
    np.testing.assert_allclose(ours["estimate"], f["estimate"], rtol=1e-5, atol=1e-7 * scale)
    np.testing.assert_allclose(ours["se"], f["se"], rtol=2e-5)
    np.testing.assert_allclose(ours["df"], f["df"], rtol=2e-5)
    np.testing.assert_allclose(ours["t"], f["t"], rtol=2e-5)
    np.testing.assert_allclose(ours["p"], f["p"], rtol=2e-4, atol=1e-12)
    VA = ref_vcov(model_id, "vcov_adj")
    np.testing.assert_allclose(res.vcov_adjusted.to_numpy(), VA, rtol=5e-5, atol=5e-5 * np.abs(VA).max())


@pytest.mark.parametrize("model_id", NESTED)
def test_fit_equals_lmertest_kenward_roger(model_id):
    _check_fit(model_id)


@pytest.mark.parametrize("model_id", NESTED)
def test_contrast_equals_contest1d_kenward_roger(model_id):
    res = fitted(model_id)
    for _, c in CONTRASTS[CONTRASTS["id"] == model_id].iterrows():
        out = res.contrast(np.array(c["L"].split(), float))
        assert out["estimate"] == pytest.approx(c["estimate"], rel=1e-5, abs=1e-7)
        assert out["se"] == pytest.approx(c["se"], rel=2e-5)
        assert out["df"] == pytest.approx(c["df"], rel=2e-5)
        assert out["p"] == pytest.approx(c["p"], rel=2e-4, abs=1e-12)


@pytest.mark.parametrize("model_id", CROSSED)
def test_crossed_fit_when_the_engine_takes_it(model_id):
    m = model(model_id)
    try:
        build_design(m["formula"], dataset(m["data"]))
    except als.ModelSpecError as e:
        if "crossed" not in str(e):
            raise
        pytest.skip("crossed random effects: not fitted by the engine on this branch")
    _check_fit(model_id)


# --- closed forms ----------------------------------------------------------------------------
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(groups=st.integers(3, 9), per=st.integers(2, 6), seed=st.integers(0, 10_000))
def test_balanced_one_way_gives_the_anova_f_test(groups, per, seed):
    """Balanced one-way random intercept with a within-group covariate orthogonal to groups: KR
    reproduces the exact tests (Kenward & Roger 1997, sec. 5): the intercept's df is groups - 1
    and its SE sqrt(MS_between / N); the within effect's df is N - groups - 1, SE unadjusted."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), per)
    x = np.tile(np.arange(per) - (per - 1) / 2, groups)  # centred within every group
    y = rng.normal(size=groups)[g] * 1.5 + 0.3 * x + rng.normal(size=groups * per)
    d = pd.DataFrame({"y": y, "x": x, "g": g})
    ybar = d.groupby("g")["y"].mean().to_numpy()
    N = groups * per
    resid_w = y - ybar[g] - (x @ y / (x @ x)) * x
    ms_between = per * np.sum((ybar - y.mean()) ** 2) / (groups - 1)
    ms_within = resid_w @ resid_w / (N - groups - 1)
    assume(ms_between > 1.05 * ms_within)  # else the group variance sits at (or near) zero
    m = als.lmm("y ~ x + (1 | g)", d, df_method="kenward-roger")
    f = m.fixed.set_index("term")
    assert f.loc["Intercept", "df"] == pytest.approx(groups - 1, rel=1e-6)
    assert f.loc["Intercept", "se"] == pytest.approx(np.sqrt(ms_between / N), rel=1e-6)
    assert f.loc["x", "df"] == pytest.approx(N - groups - 1, rel=1e-6)
    assert f.loc["x", "se"] == pytest.approx(np.sqrt(ms_within / (x @ x)), rel=1e-6)


def test_row_order_and_outcome_scale_do_not_matter():
    d = dataset("kr_unbalanced")
    f = "phq ~ wai + session + experience + (1 | therapist/patient)"
    a = als.lmm(f, d, df_method="kenward-roger").fixed
    shuffled = d.sample(frac=1, random_state=3).assign(phq=lambda x: 10 * x["phq"])
    b = als.lmm(f, shuffled, df_method="kenward-roger").fixed
    np.testing.assert_allclose(b["df"], a["df"], rtol=1e-5)
    np.testing.assert_allclose(b["se"], 10 * a["se"], rtol=1e-5)


# --- options and messages --------------------------------------------------------------------
def test_ddf_alias_and_case():
    d = dataset("kr_ergostool")
    a = als.lmm("effort ~ Type + (1 | Subject)", d, df_method="kenward-roger")
    for kw in ({"ddf": "Kenward-Roger"}, {"ddf": "kenward-roger"}, {"df_method": "Kenward-Roger"},
               {"ddf": "KENWARD-ROGER", "df_method": "kenward-roger"}):
        b = als.lmm("effort ~ Type + (1 | Subject)", d, **kw)
        assert b.df_method == "kenward-roger"
        np.testing.assert_array_equal(b.fixed["df"], a.fixed["df"])
    s = als.lmm("effort ~ Type + (1 | Subject)", d, ddf="Satterthwaite")
    assert s.df_method == "satterthwaite" and s.vcov_adjusted is None
    assert als.lmm("effort ~ Type + (1 | Subject)", d).df_method == "satterthwaite"


@pytest.mark.parametrize(
    "kw, option, match",
    [
        ({"df_method": "kenward"}, "df_method", "'satterthwaite', 'kenward-roger', 'z'"),
        ({"df_method": "KR"}, "df_method", "allowed"),
        ({"ddf": "lme4"}, "ddf", "'Satterthwaite', 'Kenward-Roger'"),
        ({"ddf": 1}, "ddf", "allowed"),
        ({"ddf": "Kenward-Roger", "df_method": "satterthwaite"}, "ddf", "disagrees with df_method='satterthwaite'"),
        ({"ddf": "Satterthwaite", "df_method": "z"}, "ddf", "disagrees"),
        ({"df_method": "kenward-roger", "reml": False}, "df_method", "REML fits only"),
        ({"ddf": "Kenward-Roger", "reml": False}, "df_method", "REML fits only"),
    ],
)
def test_bad_options_raise_option_error(kw, option, match):
    with pytest.raises(als.OptionError, match=match) as e:
        als.lmm("effort ~ Type + (1 | Subject)", dataset("kr_ergostool"), **kw)
    assert e.value.option == option


def test_too_large_a_block_is_refused_by_name(monkeypatch):
    monkeypatch.setattr(krm, "MAX_COMPONENT", 6)
    d = dataset("kr_alliance4")  # 4 therapists with 6 patients each: blocks of 7 random effects
    m = als.lmm("wai ~ session + (1 | patient)", d, df_method="kenward-roger")  # blocks of 1
    assert np.isfinite(m.fixed["df"]).all()
    with pytest.raises(als.OptionError, match="link 7 random effects into one block") as e:
        als.lmm("wai ~ session + (1 | therapist/patient)", d, df_method="kenward-roger")
    assert e.value.option == "df_method" and "'satterthwaite'" in str(e.value)


def test_summary_apa_refit_compare():
    m = fitted("alliance4_wai")
    s = m.summary()
    assert "Kenward-Roger SE and df" in s
    apa = m.to_apa()
    f = m.fixed
    # two decimals, two significant digits below .01 (APA: enough digits to show the value)
    assert apa["SE"].tolist() == [f"{v:.2f}" if v >= 0.01 else f"{v:.2g}" for v in f["se"]]
    assert apa["df"].tolist() == [f"{v:.1f}".removesuffix(".0") for v in f["df"]]
    # SEs in the table are the adjusted ones, the CI uses them with the KR df
    np.testing.assert_allclose(f["se"], np.sqrt(np.diag(m.vcov_adjusted)), rtol=1e-12)
    from scipy import stats

    crit = stats.t.ppf(0.975, f["df"])
    np.testing.assert_allclose(f["ci_high"], f["estimate"] + crit * f["se"], rtol=1e-10)
    assert m.refit(df_method="satterthwaite").df_method == "satterthwaite"
    assert m.refit().df_method == "kenward-roger"
    with pytest.raises(als.OptionError, match="REML fits only"):
        m.refit(reml=False)
    smaller = als.lmm("wai ~ session + (1 | therapist/patient)", dataset("kr_alliance4"), df_method="kenward-roger")
    cmp = als.compare(smaller, m).table
    assert cmp["criterion"].iloc[0] == "ML (refit)" and np.isfinite(cmp["Chisq"].iloc[1])
