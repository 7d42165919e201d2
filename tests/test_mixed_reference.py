"""als.lmm against lme4 1.1 / lmerTest 3.1 (tests/reference/make_lmm_reference.R).

Tolerances from the issue: fixed effects 1e-4 relative, standard errors and variance components
1e-3 relative, log-likelihood 1e-3 absolute, Satterthwaite df 1%.
"""

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance_stats as als

REF = Path(__file__).parent / "reference"
MODELS = pd.read_csv(REF / "lmm_models.csv")
FIXED = pd.read_csv(REF / "lmm_reference_fixed.csv")
RANDOM = pd.read_csv(REF / "lmm_reference_random.csv")
FIT = pd.read_csv(REF / "lmm_reference_fit.csv").set_index("id")


@lru_cache(maxsize=None)
def dataset(name):
    if name == "sleepstudy":
        return pd.read_csv(REF / "lmm_sleepstudy.csv")
    return pd.read_csv(REF / f"lmm_{name}.csv.gz")


@lru_cache(maxsize=None)
def fitted(model_id):
    m = MODELS.set_index("id").loc[model_id]
    with pytest.warns(als.SingularFitWarning) if FIT.loc[model_id, "singular"] else _nowarn():
        return als.lmm(m["formula"], dataset(m["data"]), reml=bool(m["reml"]))


class _nowarn:
    def __enter__(self):
        import warnings

        self._c = warnings.catch_warnings()
        self._c.__enter__()
        warnings.simplefilter("error", als.SingularFitWarning)
        warnings.simplefilter("error", als.ConvergenceWarning)

    def __exit__(self, *a):
        return self._c.__exit__(*a)


def _grp(name):
    name = name.split(".")[0]  # lme4 names the second block of (1 + x || g) "g.1"
    return ":".join(sorted(name.split(":")))


IDS = MODELS["id"].tolist()
SLOW = {"rs_large", "three_large"}
PARAMS = [pytest.param(i, marks=pytest.mark.slow) if i in SLOW else i for i in IDS]


@pytest.mark.parametrize("model_id", PARAMS)
def test_loglik_and_fixed_effects(model_id):
    res = fitted(model_id)
    ref = FIT.loc[model_id]
    assert res.n_obs == ref["n"]
    assert res.llf == pytest.approx(ref["loglik"], abs=1e-3)
    assert res.singular == bool(ref["singular"])
    f = FIXED[FIXED["id"] == model_id].set_index("term")
    ours = res.fixed.set_index("term").loc[f.index]
    scale = np.abs(f["estimate"]).max()
    np.testing.assert_allclose(ours["estimate"], f["estimate"], rtol=1e-4, atol=1e-6 * scale)
    np.testing.assert_allclose(ours["se"], f["se"], rtol=1e-3)
    np.testing.assert_allclose(ours["df"], f["df"], rtol=1e-2)
    np.testing.assert_allclose(ours["p"], f["p"], rtol=2e-2, atol=1e-10)


@pytest.mark.parametrize("model_id", PARAMS)
def test_variance_components(model_id):
    res = fitted(model_id)
    r = RANDOM[RANDOM["id"] == model_id].copy()
    r["key"] = [
        (_grp(g), "" if pd.isna(a) else a, "" if pd.isna(b) else b) for g, a, b in zip(r["grp"], r["var1"], r["var2"])
    ]
    ours = res.random.copy()
    ours["key"] = [
        (_grp(g), "" if a is None or pd.isna(a) else a, "" if b is None or pd.isna(b) else b)
        for g, a, b in zip(ours["group"], ours["term1"], ours["term2"])
    ]
    assert sorted(ours["key"]) == sorted(r["key"])
    ours = ours.set_index("key").loc[r["key"]]
    resid = float(r.loc[r["grp"] == "Residual", "vcov"].iloc[0])
    var_rows = r["var2"].isna().to_numpy()
    # variances: 1e-3 relative (a zero variance on the boundary: within 1e-6 of the residual)
    np.testing.assert_allclose(ours["variance"].to_numpy()[var_rows], r["vcov"].to_numpy()[var_rows], rtol=1e-3, atol=1e-6 * resid)
    # covariances: 1e-3 relative to the product of the SDs
    if (~var_rows).any():
        sd = dict(zip([(k[0], k[1]) for k in r["key"][var_rows]], np.sqrt(r["vcov"][var_rows])))
        denom = np.array([sd[(k[0], k[1])] * sd[(k[0], k[2])] for k in r["key"][~var_rows]])
        diff = np.abs(ours["variance"].to_numpy()[~var_rows] - r["vcov"].to_numpy()[~var_rows])
        assert np.all(diff <= 1e-3 * np.maximum(denom, 1e-12) + 1e-9)


BLUPS = pd.read_csv(REF / "lmm_reference_ranef.csv", dtype={"level": str})


@pytest.mark.parametrize("model_id", sorted(BLUPS["id"].unique()))
def test_blups_and_conditional_sds(model_id):
    """Conditional modes and lme4's condVar SDs (incl. the nested three-level case, where a
    patient's conditional variance carries its therapist's)."""
    ref = BLUPS[BLUPS["id"] == model_id].copy()
    ours = fitted(model_id).random_effects()
    our_key = {}
    for g, lev, term, est, sd in ours.itertuples(index=False):
        our_key[(_grp(g), ":".join(sorted(str(lev).split(":"))) if ":" in g else str(lev), term)] = (est, sd)
    got = np.array([our_key[(_grp(g), ":".join(sorted(lev.split(":"))) if ":" in g else lev, t)] for g, lev, t in zip(ref["grp"], ref["level"], ref["term"])])
    scale = np.abs(ref["estimate"]).max()
    np.testing.assert_allclose(got[:, 0], ref["estimate"], rtol=1e-3, atol=1e-4 * scale)
    np.testing.assert_allclose(got[:, 1], ref["cond_sd"], rtol=1e-3)
