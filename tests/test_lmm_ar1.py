"""lmm(..., residuals="ar1", time=...): AR(1) residuals within patients by session.

References: tests/reference/ar1_reference.json from make_ar1_reference.R (nlme::lme with
corAR1, converged tightly) on the package's scored sample sessions (ar1_sample.csv, made by
make_ar1_data.py) and on nlme's Ovary data (ar1_ovary.csv). nlme gives containment df, not
Satterthwaite's: the df are checked against a dense computation of the same likelihood written
out here (V = sigma^2 (Z G Z' + R_phi), no prewhitening), differentiated numerically.
"""

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.linalg import solve_triangular

import alliance_stats as als

REF = Path(__file__).parent / "reference"
CASES = json.loads((REF / "ar1_reference.json").read_text())


@pytest.fixture(scope="module")
def data():
    return {"sample": pd.read_csv(REF / "ar1_sample.csv"), "ovary": pd.read_csv(REF / "ar1_ovary.csv")}


@pytest.fixture(scope="module")
def fits(data):
    out = {}
    for key, r in CASES.items():
        out[key] = als.lmm(r["formula"], data[r["data"]], reml=r["reml"], residuals="ar1", time=r["time"])
    return out


def test_sample_csv_is_the_package_sample():
    """The R reference was computed on what the package's sample gives today."""
    spec = importlib.util.spec_from_file_location("make_ar1_data", REF / "make_ar1_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    now = mod.sample_table().reset_index(drop=True)
    stored = pd.read_csv(REF / "ar1_sample.csv")
    pd.testing.assert_frame_equal(now, stored, check_dtype=False, rtol=1e-14)


@pytest.mark.parametrize("key", list(CASES))
def test_agrees_with_nlme(fits, key):
    r, m = CASES[key], fits[key]
    assert m.n_obs == r["n"]
    assert m.converged
    # measured max abs diffs over the 8 fits: logLik 6e-10, phi 4e-7, fixed effects 5e-7 (the
    # ML fit of sample_lag, where nlme stops a little short: its logLik is 6e-10 lower), SE 2e-6 rel
    assert m.llf == pytest.approx(r["logLik"], abs=1e-8)
    assert m.aic == pytest.approx(r["AIC"], abs=1e-7)
    # nlme's REML BIC takes log(n - p), lme4's (and this package's) log(n)
    p = len(r["fixef"])
    bic = r["BIC"] + (m.n_params * (np.log(r["n"]) - np.log(r["n"] - p)) if r["reml"] else 0.0)
    assert m.bic == pytest.approx(bic, abs=1e-7)
    assert set(m.residual_params) == {"phi"}
    assert m.residual_params["phi"] == pytest.approx(r["phi"], abs=1e-6)
    assert m.sigma == pytest.approx(r["sigma"], rel=1e-6)
    np.testing.assert_allclose(m.fixed["estimate"], list(r["fixef"].values()), rtol=0, atol=1e-6)
    np.testing.assert_allclose(m.fixed["se"], list(r["se"].values()), rtol=5e-6)
    covs = [np.atleast_2d(np.array(c, float)) for c in r["covs"].values()]
    assert len(covs) == len(m._design.levels)
    for got, want in zip(m._sigmas, covs):
        np.testing.assert_allclose(got, want, rtol=0, atol=5e-5 * np.abs(want).max())
    # the variance table shows the same numbers (innermost level first, residual last)
    assert m.random["variance"].iloc[0] == pytest.approx(covs[0][0, 0], rel=5e-5)
    assert m.random["variance"].iloc[-1] == pytest.approx(r["sigma"] ** 2, rel=2e-6)
    # fitted values X beta + Z b (nlme's fitted() at the innermost level)
    np.testing.assert_allclose(m.predict(), r["fitted"], rtol=0, atol=1e-5)


def test_issue_model_lr_and_aic(data, fits):
    """The issue's numbers: phi = .25, LR = 60.7, AIC 7779 -> 7721 (REML)."""
    r = CASES["sample_lag_REML"]
    ar = fits["sample_lag_REML"]
    iid = als.lmm(r["formula"], data["sample"])
    assert iid.residual_params == {} and iid.residual_structure == "iid"
    assert iid.aic == pytest.approx(r["iid_AIC"], abs=1e-6)
    assert ar.n_params == iid.n_params + 1
    tab = als.compare(iid, ar).to_frame()
    assert tab["criterion"].tolist() == ["REML", "REML"]
    assert tab["npar"].tolist() == [iid.n_params, iid.n_params + 1]
    assert tab["Df"].iloc[1] == 1
    assert tab["Chisq"].iloc[1] == pytest.approx(2 * (r["logLik"] - r["iid_logLik"]), abs=1e-6)
    assert round(tab["Chisq"].iloc[1], 1) == 60.7
    assert tab["AIC"].tolist() == pytest.approx([r["iid_AIC"], r["AIC"]], abs=1e-6)
    assert round(ar.residual_params["phi"], 2) == 0.25


def test_compare_refits_ar1_models_by_ml(data, fits):
    """Different fixed parts: compare() refits by ML and keeps the AR(1) residuals."""
    r = CASES["sample_lag_ML"]
    small = als.lmm("phq9_total ~ wai_sr_total_between + session + (1 | patient)",
                    data["sample"].dropna(subset=["wai_sr_total_within_lag1"]), residuals="ar1", time="session")
    tab = als.compare(small, fits["sample_lag_REML"]).to_frame()
    assert tab["criterion"].iloc[1] == "ML (refit)"
    assert tab["logLik"].iloc[1] == pytest.approx(r["logLik"], abs=1e-8)
    assert tab["npar"].iloc[1] == 4 + 1 + 1 + 1


def test_refit_keeps_residuals(fits):
    m = fits["ovary_REML"].refit(reml=False)
    assert m.residual_structure == "ar1" and m.time == "obs"
    assert m.llf == pytest.approx(CASES["ovary_ML"]["logLik"], abs=1e-8)


def test_row_order_does_not_matter(data, fits):
    """The AR(1) follows the time column, not the order of the rows."""
    d = data["ovary"].sample(frac=1.0, random_state=3)
    m = als.lmm(CASES["ovary_REML"]["formula"], d, residuals="ar1", time="obs")
    ref = fits["ovary_REML"]
    assert m.llf == pytest.approx(ref.llf, abs=1e-9)
    assert m.residual_params["phi"] == pytest.approx(ref.residual_params["phi"], abs=1e-7)
    np.testing.assert_allclose(m.predict().loc[ref.predict().index], ref.predict(), atol=1e-7)


def test_predict_new_data_matches_fitted(data, fits):
    m = fits["sample_slope_REML"]
    new = data["sample"].loc[m.model_frame.index]
    np.testing.assert_allclose(m.predict(new), m.predict(), atol=1e-10)


def test_text_outputs(fits):
    m = fits["sample_lag_REML"]
    phi = m.residual_params["phi"]
    assert f"phi = {phi:.4f}" in m.summary()
    assert "corAR1(form = ~ session | patient)" in m.summary()
    assert m._residual_sentence() in m.methods()
    assert m._residual_sentence() == ("Residuals within patient were modelled as first-order autoregressive over session "
                                      "(AR(1), residuals k session units apart correlating \u03c6^k, as nlme's corAR1), \u03c6 = .25.")
    iid = fits["ovary_REML"].refit(residuals="iid", time=None)
    assert iid._residual_sentence() == "" and "autoregressive" not in iid.methods() and "Residual correlation" not in iid.summary()


# -- Satterthwaite df: a dense computation of the same likelihood -------------------------------------
def _dense_dev(vp, X, y, Z, groups, times, reml):
    """-2 log-likelihood (REML criterion) at (theta, phi, sigma) with beta at its GLS estimate,
    from V = sigma^2 (theta^2 Z Z' + R_phi) with R_phi[s, t] = phi^|t_s - t_t| within a group
    (V is block diagonal over the groups: each block written out in full and factored)."""
    theta, phi, sigma = vp
    logdet, Xi, yi = 0.0, [], []
    for g in np.unique(groups):
        k = groups == g
        t, z = times[k], Z[k]
        V = sigma**2 * (theta**2 * np.outer(z, z) + phi ** np.abs(t[:, None] - t[None, :]))
        L = np.linalg.cholesky(V)
        logdet += 2 * np.log(np.diag(L)).sum()
        Xi.append(solve_triangular(L, X[k], lower=True))
        yi.append(solve_triangular(L, y[k], lower=True))
    Xi, yi = np.vstack(Xi), np.concatenate(yi)
    beta = np.linalg.lstsq(Xi, yi, rcond=None)[0]
    r = yi - Xi @ beta
    n, p = X.shape
    dev = logdet + r @ r + n * np.log(2 * np.pi)
    if reml:
        dev += np.linalg.slogdet(Xi.T @ Xi)[1] - p * np.log(2 * np.pi)
    return dev, Xi


def test_satterthwaite_df_hand_check(data, fits):
    """df_j = 2 V_jj^2 / (g_j' A g_j), A = 2 H^{-1} of the deviance in (theta, phi, sigma) and
    g_j the gradient of V_jj: every piece from the dense likelihood above, by central differences."""
    m = fits["ovary_REML"]
    d = data["ovary"].loc[m.model_frame.index]
    X = np.column_stack([np.ones(len(d)), d["sin_t"], d["cos_t"]])
    y, groups, times = d["follicles"].to_numpy(float), d["Mare"].to_numpy(), d["obs"].to_numpy(float)
    Z = np.ones(len(d))
    vp = np.array([m.theta[0], m.residual_params["phi"], m.sigma])

    def dev(v):
        return _dense_dev(v, X, y, Z, groups, times, True)[0]

    def vcov(v):
        Xi = _dense_dev(v, X, y, Z, groups, times, True)[1]
        return np.linalg.inv(Xi.T @ Xi)

    # at the optimum the dense REML criterion is the fit's
    assert dev(vp) == pytest.approx(m.deviance, abs=1e-8)
    np.testing.assert_allclose(vcov(vp), m.vcov.to_numpy(), rtol=1e-8)
    h = 1e-4 * np.abs(vp)  # central differences: O(h^2), 2e-5 rel in df at 1e-3, 5e-7 at 1e-4
    k = len(vp)
    H = np.empty((k, k))
    for i in range(k):
        for j in range(i, k):
            ei, ej = np.eye(k)[i] * h[i], np.eye(k)[j] * h[j]
            H[i, j] = H[j, i] = (dev(vp + ei + ej) - dev(vp + ei - ej) - dev(vp - ei + ej) + dev(vp - ei - ej)) / (4 * h[i] * h[j])
    A = 2 * np.linalg.inv(H)
    J = [(vcov(vp + np.eye(k)[i] * h[i]) - vcov(vp - np.eye(k)[i] * h[i])) / (2 * h[i]) for i in range(k)]
    g = np.array([[J[i][jj, jj] for i in range(k)] for jj in range(X.shape[1])])
    var = np.diag(m.vcov.to_numpy())
    df = 2 * var**2 / np.einsum("pk,kl,pl->p", g, A, g)
    np.testing.assert_allclose(m.fixed["df"], df, rtol=2e-6)
    # and the contrast of one coefficient gives the same df
    assert m.contrast({"sin_t": 1})["df"] == pytest.approx(m.fixed["df"].iloc[1], rel=1e-10)


# -- refusals -----------------------------------------------------------------------------------------
F = "follicles ~ sin_t + cos_t + (1 | Mare)"


@pytest.mark.parametrize("value", ["ar2", "AR1", None, 1])
def test_unknown_residuals_refused(data, value):
    with pytest.raises(als.OptionError, match="residuals="):
        als.lmm(F, data["ovary"], residuals=value, time="obs")


def test_time_needed_and_only_with_ar1(data):
    with pytest.raises(als.OptionError, match="time=None.*integer time column"):
        als.lmm(F, data["ovary"], residuals="ar1")
    with pytest.raises(als.OptionError, match="time='obs'.*needs residuals='ar1'"):
        als.lmm(F, data["ovary"], time="obs")


def test_time_column_missing(data):
    with pytest.raises(als.ColumnError, match="time='visit'.*not among the data's columns"):
        als.lmm(F, data["ovary"], residuals="ar1", time="visit")


def test_time_column_not_integer(data):
    with pytest.raises(als.ColumnError, match="time='Time' holds non-integer values"):
        als.lmm(F, data["ovary"], residuals="ar1", time="Time")
    d = data["ovary"].assign(obs=data["ovary"]["obs"].astype(str))
    with pytest.raises(als.ColumnError, match="time='obs' holds non-numeric values"):
        als.lmm(F, d, residuals="ar1", time="obs")


def test_time_missing_in_used_rows(data):
    d = data["ovary"].copy()
    d.loc[[5, 40], "obs"] = np.nan
    with pytest.raises(als.ColumnError, match=r"time='obs' is missing at row\(s\) \[?5, 40"):
        als.lmm(F, d, residuals="ar1", time="obs")
    d = data["ovary"].assign(obs=data["ovary"]["obs"].astype("Int64"))  # pandas' nullable integers
    d.loc[7, "obs"] = pd.NA
    with pytest.raises(als.ColumnError, match=r"time='obs' is missing at row\(s\) 7 "):
        als.lmm(F, d, residuals="ar1", time="obs")
    # a row the model leaves out anyway (missing outcome) may lack its time
    d = data["ovary"].copy()
    d.loc[5, ["obs", "follicles"]] = np.nan
    m = als.lmm(F, d, residuals="ar1", time="obs")
    assert m.n_obs == len(d) - 1 and m.n_dropped == 1


def test_duplicate_times_refused(data):
    d = data["ovary"].copy()
    d.loc[3, "obs"] = d.loc[2, "obs"]
    with pytest.raises(als.SessionDataError, match=r"repeated time\(s\) within Mare .*1.*rows?\(s\) .*2, 3") as e:
        als.lmm(F, d, residuals="ar1", time="obs")
    assert e.value.rows == [2, 3]


def test_crossed_refused(data):
    d = data["ovary"].assign(rater=np.arange(len(data["ovary"])) % 7)
    with pytest.raises(als.ModelSpecError, match="crossed grouping factors"):
        als.lmm("follicles ~ sin_t + (1 | Mare) + (1 | rater)", d, residuals="ar1", time="obs")


def test_kenward_roger_and_statsmodels_refused(data):
    with pytest.raises(als.OptionError, match="Kenward-Roger is not implemented for AR"):
        als.lmm(F, data["ovary"], residuals="ar1", time="obs", df_method="kenward-roger")
    with pytest.raises(als.OptionError, match="engine='statsmodels'"):
        als.lmm(F, data["ovary"], residuals="ar1", time="obs", engine="statsmodels")


def test_data_not_modified(data):
    d = data["ovary"].copy()
    before = d.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        als.lmm(F, d, residuals="ar1", time="obs")
    pd.testing.assert_frame_equal(d, before)
