"""Client and therapist ratings together: response surface analysis, the APIM, partner scores,
and the key checks (KeyReversalWarning, CALPAS provenance, PQS distribution label).

Reference values: tests/reference/make_agreement_reference.R (R's lm, lme4::lmer + lmerTest,
nlme::gls, psych::alpha) on the synthetic data of tests/reference/make_agreement_data.py.
"""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

import alliance_stats as als

REF = Path(__file__).parent / "reference"
RSA_COLS = ["estimate", "se", "statistic", "p", "ci_low", "ci_high"]


@pytest.fixture(scope="module")
def rsa_ref():
    return pd.read_csv(REF / "agreement_rsa_reference.csv")


@pytest.fixture(scope="module")
def apim_ref():
    return pd.read_csv(REF / "agreement_apim_reference.csv")


@pytest.fixture(scope="module")
def rsa_data():
    return pd.read_csv(REF / "agreement_rsa.csv")


def _long(name):
    lng = pd.read_csv(REF / f"agreement_{name}.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", als.IncompleteGroupsWarning)  # dyads without both roles (tested below)
        return als.partner_scores(lng, dyad="dyad", role="role", columns="alliance")


def _compare(tab, ref, cols, rel, abs_=0.0):
    for col in cols:
        r = ref.loc[tab.index, col].to_numpy(float)
        g = tab[col].to_numpy(float)
        np.testing.assert_allclose(g, r, rtol=rel, atol=abs_, err_msg=col)


# ---------------------------------------------------------------- response surface, OLS
@pytest.mark.parametrize("model,kw", [("ols_midpoint", {"scale_midpoint": 3}), ("ols_mean", {"center": "mean"})])
def test_rsa_ols_against_lm(rsa_data, rsa_ref, model, kw):
    res = als.response_surface(rsa_data, x="client_wai", y="therapist_wai", outcome="outcome", n_boot=0, **kw)
    ref = rsa_ref[rsa_ref.model == model].set_index("parameter")
    tab = res.table.set_index("parameter")
    assert list(tab.index) == ["b0", "b1", "b2", "b3", "b4", "b5", "a1", "a2", "a3", "a4", "a5", "X0", "Y0", "Z0", "p10", "p11", "p20", "p21"]
    # achieved: max relative difference 8e-13 (CIs), 3e-14 (estimates, SEs)
    _compare(tab, ref, RSA_COLS, rel=5e-12)
    assert (tab.loc[["b0", "a1", "a5"], "df"] == 144).all() and np.isinf(tab.loc["p11", "df"])
    assert res.center == pytest.approx(ref.loc["center", "estimate"], rel=1e-14)
    assert res.sigma == pytest.approx(ref.loc["sigma", "estimate"], rel=1e-13)
    assert res.r2 == pytest.approx(ref.loc["r2", "estimate"], rel=1e-13)
    assert res.n_obs == 150 and res.n_dropped == 0


def test_rsa_vcov_against_lm(rsa_data):
    res = als.response_surface(rsa_data, x="client_wai", y="therapist_wai", outcome="outcome", scale_midpoint=3, n_boot=0)
    ref = pd.read_csv(REF / "agreement_rsa_vcov.csv").set_index("term")
    np.testing.assert_allclose(res.vcov.to_numpy(), ref.loc[res.vcov.index, list(res.vcov.columns)].to_numpy(), rtol=1e-11)


def test_rsa_multilevel_against_lmer(rsa_ref):
    ml = pd.read_csv(REF / "agreement_rsa_ml.csv")
    res = als.response_surface(ml, x="client_wai", y="therapist_wai", outcome="outcome", patient="patient", scale_midpoint=3, n_boot=0)
    ref = rsa_ref[rsa_ref.model == "lmer"].set_index("parameter")
    tab = res.table.set_index("parameter")
    # achieved: 3e-7 relative (lme4's own optimum, bobyqa to rhoend 1e-12, vs ours); small p-values 2e-6
    _compare(tab, ref, ["estimate", "se", "statistic", "ci_low", "ci_high"], rel=1e-6)
    _compare(tab.loc[tab["df"] < np.inf], ref, ["df"], rel=1e-6)
    _compare(tab, ref, ["p"], rel=1e-5)
    assert res.n_obs == ref.loc["n", "estimate"] == 351
    assert res.sigma == pytest.approx(ref.loc["sigma", "estimate"], rel=1e-6)
    assert res.n_groups == 45
    # 9 of the 360 sessions lack a value; each counted once under its first missing column
    assert res.n_dropped == 9
    assert res.dropped.to_dict() == {"missing outcome": 4, "missing therapist_wai": 5}
    assert isinstance(res.model, als.LMMResult)


def test_rsa_midpoint_from_instrument_key():
    # WAI-36 client and therapist totals: sums of 36 items on 1-7, midpoint 36 * (1 + 7) / 2 = 144
    rng = np.random.default_rng(5)
    d = pd.DataFrame({"wai36_client_total": rng.integers(100, 230, 60).astype(float),
                      "wai36_therapist_total": rng.integers(110, 220, 60).astype(float)})
    d["outcome"] = 0.01 * d["wai36_client_total"] + rng.normal(0, 1, 60)
    a = als.response_surface(d, x="wai36_client_total", y="wai36_therapist_total", outcome="outcome", n_boot=0)
    b = als.response_surface(d, x="wai36_client_total", y="wai36_therapist_total", outcome="outcome", scale_midpoint=144, n_boot=0)
    assert a.center == 144
    assert "wai-36-client" in a.center_method
    pd.testing.assert_frame_equal(a.table, b.table)


def test_rsa_midpoint_refusals(rsa_data):
    with pytest.raises(als.ModelSpecError, match=r"'client_wai', 'therapist_wai'.*scale_midpoint="):
        als.response_surface(rsa_data, x="client_wai", y="therapist_wai", outcome="outcome")
    d = rsa_data.rename(columns={"client_wai": "wai_sr_total", "therapist_wai": "wai_s_total"})
    with pytest.raises(als.ModelSpecError, match="different scales"):
        als.response_surface(d, x="wai_sr_total", y="wai_s_total", outcome="outcome")
    d = rsa_data.rename(columns={"client_wai": "wai_sr_total", "therapist_wai": "wai_sr_goal"})
    d.loc[3, "wai_sr_goal"] = 7.0
    with pytest.raises(als.ModelSpecError, match=r"'wai_sr_goal'.*outside that range at row\(s\) 3"):
        als.response_surface(d, x="wai_sr_total", y="wai_sr_goal", outcome="outcome")


def test_rsa_input_refusals(rsa_data):
    kw = dict(x="client_wai", y="therapist_wai", outcome="outcome")
    with pytest.raises(als.ColumnError, match="outcome='symptoms'"):
        als.response_surface(rsa_data, **{**kw, "outcome": "symptoms"})
    with pytest.raises(als.OptionError, match="center='median'"):
        als.response_surface(rsa_data, center="median", **kw)
    with pytest.raises(als.OptionError, match="scale_midpoint"):
        als.response_surface(rsa_data, center="mean", scale_midpoint=3, **kw)
    with pytest.raises(als.OptionError, match="n_boot"):
        als.response_surface(rsa_data, scale_midpoint=3, n_boot=-1, **kw)
    same = rsa_data.assign(therapist_wai=rsa_data["client_wai"])
    with pytest.raises(als.ModelSpecError, match="collinear"):
        als.response_surface(same, scale_midpoint=3, n_boot=0, **kw)
    bad = rsa_data.astype({"outcome": object})
    bad.loc[7, "outcome"] = "n/a"
    with pytest.raises(als.ColumnError, match=r"outcome='outcome'.*rows 7"):
        als.response_surface(bad, scale_midpoint=3, **kw)
    with pytest.raises(als.ColumnError, match=r"x=None is not a column"):
        als.response_surface(rsa_data, **{**kw, "x": None})
    with pytest.raises(als.ColumnError, match=r"x=\['client_wai'\] is not a column"):
        als.response_surface(rsa_data, **{**kw, "x": ["client_wai"]})
    with pytest.raises(als.ColumnError, match=r"more than one column called 'client_wai'"):
        als.response_surface(pd.concat([rsa_data, rsa_data[["client_wai"]]], axis=1), scale_midpoint=3, **kw)
    with pytest.raises(als.DataFileError, match="DataFrame"):
        als.response_surface(rsa_data.to_numpy(), scale_midpoint=3, **kw)
    one = rsa_data.assign(pid=np.arange(len(rsa_data)))
    with pytest.raises(als.ModelSpecError, match=r"patient='pid' has as many groups \(\d+\) as complete rows"):
        als.response_surface(one, scale_midpoint=3, patient="pid", **kw)
    with pytest.raises(als.ModelSpecError, match=r"0 have outcome, client_wai and therapist_wai and a pid"):
        als.response_surface(one.assign(pid=np.nan), scale_midpoint=3, patient="pid", **kw)


def test_rsa_rows_with_missing_values_counted(rsa_data):
    d = rsa_data.copy()
    d.loc[[0, 1], "outcome"] = np.nan
    d.loc[2, "client_wai"] = np.nan
    res = als.response_surface(d, x="client_wai", y="therapist_wai", outcome="outcome", scale_midpoint=3, n_boot=0)
    assert res.n_obs == 147 and res.n_dropped == 3
    assert res.dropped.to_dict() == {"missing outcome": 2, "missing client_wai": 1}
    assert rsa_data["outcome"].notna().all()  # input untouched


def test_rsa_bootstrap_seeded_and_close_to_delta(rsa_data, rsa_ref):
    kw = dict(x="client_wai", y="therapist_wai", outcome="outcome", scale_midpoint=3, n_boot=1000)
    a = als.response_surface(rsa_data, seed=7, **kw)
    b = als.response_surface(rsa_data, seed=7, **kw)
    c = als.response_surface(rsa_data, seed=8, **kw)
    pd.testing.assert_frame_equal(a.table, b.table)
    assert not np.allclose(a.table["boot_ci_low"], c.table["boot_ci_low"])
    ta = a.table.set_index("parameter")
    ref = rsa_ref[rsa_ref.model == "ols_midpoint"].set_index("parameter")
    # linear parameters, n = 150: the percentile interval is about as wide as lm's t interval
    for p in ("b0", "a1", "a2", "a3"):
        w_boot = ta.loc[p, "boot_ci_high"] - ta.loc[p, "boot_ci_low"]
        w_lm = ref.loc[p, "ci_high"] - ref.loc[p, "ci_low"]
        assert 0.75 < w_boot / w_lm < 1.25, p
        assert ta.loc[p, "boot_ci_low"] < ref.loc[p, "estimate"] < ta.loc[p, "boot_ci_high"]


def test_rsa_cluster_bootstrap_runs():
    ml = pd.read_csv(REF / "agreement_rsa_ml.csv")
    res = als.response_surface(ml, x="client_wai", y="therapist_wai", outcome="outcome", patient="patient",
                               scale_midpoint=3, n_boot=15, seed=3)
    t = res.table.set_index("parameter")
    assert res.n_boot == 15 and res.n_boot_failed == 0
    assert (t.loc[["b0", "a1", "a4"], "boot_ci_low"] < t.loc[["b0", "a1", "a4"], "boot_ci_high"]).all()
    assert "cluster bootstrap" in res.methods()


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_rsa_swapping_x_and_y_mirrors_the_surface(seed):
    rng = np.random.default_rng(seed)
    d = pd.DataFrame({"c": rng.uniform(1, 5, 40), "t": rng.uniform(1, 5, 40)})
    d["z"] = d["c"] - 0.5 * (d["c"] - d["t"]) ** 2 + rng.normal(0, 0.5, 40)
    a = als.response_surface(d, x="c", y="t", outcome="z", scale_midpoint=3, n_boot=0).table.set_index("parameter")["estimate"]
    b = als.response_surface(d, x="t", y="c", outcome="z", scale_midpoint=3, n_boot=0).table.set_index("parameter")["estimate"]
    for p, q, sign in [("b1", "b2", 1), ("b3", "b5", 1), ("a1", "a1", 1), ("a2", "a2", 1), ("a4", "a4", 1),
                       ("a3", "a3", -1), ("a5", "a5", -1), ("X0", "Y0", 1), ("Z0", "Z0", 1)]:
        assert a[p] == pytest.approx(sign * b[q], rel=1e-8, abs=1e-10), p


def test_rsa_known_surface_recovered_exactly():
    # noise-free z = 1 + (x + y) - (x - y)^2: b = (1, 1, 1, -1, 2, -1); a1 = 2, a2 = 0, a3 = 0, a4 = -4, a5 = 0
    g = np.arange(1.0, 5.5, 0.5)
    x, y = np.meshgrid(g, g)
    d = pd.DataFrame({"x": x.ravel(), "y": y.ravel()})
    d["z"] = 1 + (d.x - 3) + (d.y - 3) - ((d.x - 3) - (d.y - 3)) ** 2
    e = als.response_surface(d, x="x", y="y", outcome="z", scale_midpoint=3, n_boot=0).table.set_index("parameter")["estimate"]
    np.testing.assert_allclose(e[["b0", "b1", "b2", "b3", "b4", "b5"]], [1, 1, 1, -1, 2, -1], atol=1e-12)
    np.testing.assert_allclose(e[["a1", "a2", "a3", "a4", "a5"]], [2, 0, 0, -4, 0], atol=1e-12)
    # 4 b3 b5 - b4^2 = 0: no stationary point; principal axes p11 = 1 (ridge along x = y), p21 = -1
    assert np.isnan(e["X0"]) and np.isnan(e["Z0"]) and np.isnan(e["p10"])
    assert e["p11"] == pytest.approx(1, abs=1e-9) and e["p21"] == pytest.approx(-1, abs=1e-9)


def test_rsa_presentation_and_plots(rsa_data):
    import matplotlib.pyplot as plt

    res = als.response_surface(rsa_data, x="client_wai", y="therapist_wai", outcome="outcome", scale_midpoint=3, n_boot=50)
    s = res.summary()
    assert "a4" in s and "line of incongruence" in s and "saddle" in s and "bootstrap" in s
    apa = res.to_apa()
    assert list(apa.columns) == ["Parameter", "Meaning", "Estimate", "SE", "t / z", "p", "95% CI", "95% bootstrap CI"]
    assert apa.loc[apa.Parameter == "a4", "Estimate"].item() == "-0.83"
    assert "<table" in res._repr_html_()
    assert "centred on 3" in res.methods() and "Shanock" in res.methods()
    ax = res.plot()
    assert ax.get_xlabel() == "client_wai" and len(ax.lines) == 3
    ax3 = res.plot(kind="surface")
    assert ax3.name == "3d"
    with pytest.raises(als.OptionError, match="kind"):
        res.plot(kind="heatmap")
    _, flat = plt.subplots()
    with pytest.raises(als.OptionError, match="3-D Axes"):
        res.plot(ax=flat, kind="surface")
    assert res.predict(3, 3) == pytest.approx(res.table.set_index("parameter").loc["b0", "estimate"])


# ---------------------------------------------------------------------------------- APIM
def test_partner_scores_against_r_merge():
    ref = pd.read_csv(REF / "agreement_apim_partner.csv")
    for ds in ("apim", "apim_incomplete"):
        got = _long(ds)
        m = ref[ref.dataset == ds].merge(got, on=["dyad", "role"], how="outer", validate="one_to_one")
        assert len(m) == len(got)
        np.testing.assert_array_equal(m["partner"].to_numpy(), m["alliance_partner"].to_numpy())
    raw = pd.read_csv(REF / "agreement_apim_incomplete.csv")
    with pytest.warns(als.IncompleteGroupsWarning, match=r"6 of 90 dyad\(s\) have no row of the other role") as rec:
        als.partner_scores(raw, dyad="dyad", role="role", columns="alliance")
    w = [x.message for x in rec if isinstance(x.message, als.IncompleteGroupsWarning)][0]
    lone = raw.groupby("dyad")["role"].nunique()
    assert w.function == "partner_scores" and w.n == 6 and w.columns == ["alliance_partner"]
    assert set(w.groups) == {str(k) for k in lone.index[lone < 2]}  # dyad IDs as text (the ID rule)
    with warnings.catch_warnings():
        warnings.simplefilter("error", als.IncompleteGroupsWarning)  # every dyad complete: no warning
        als.partner_scores(pd.read_csv(REF / "agreement_apim.csv"), dyad="dyad", role="role", columns="alliance")


def test_dyad_key_follows_the_id_rule():
    """Dyad 1 typed as a number by one rater and as "1 " by the other is one dyad (validation.id_text)."""
    d = pd.DataFrame({"dyad": [1, "1 ", 2.0, "2", "x"], "role": ["client", "therapist", "client", "therapist", "client"],
                      "wai": [4.0, 3.5, 2.0, 5.0, 1.0]})
    with pytest.warns(als.IncompleteGroupsWarning) as rec:
        out = als.partner_scores(d, dyad="dyad", role="role", columns="wai")
    assert out["wai_partner"].tolist()[:4] == [3.5, 4.0, 5.0, 2.0] and np.isnan(out["wai_partner"].iloc[4])
    assert out["dyad"].tolist() == d["dyad"].tolist()  # the user's column is returned as given
    assert rec[0].message.groups == ["x"]
    # the same rule in apim: a dyad written 3 and "3 " is one dyad, so two client rows are refused
    lng = _long("apim")
    lng["dyad"] = lng["dyad"].astype(object)
    assert (lng.loc[0, "dyad"], lng.loc[0, "role"]) == (1, "client")
    ref = als.apim(lng, actor="alliance", partner="alliance_partner", outcome="outcome", dyad="dyad", role="role")
    spaced = lng.assign(dyad=[f" {k} " if r == "therapist" else k for k, r in zip(lng["dyad"], lng["role"])])
    res = als.apim(spaced, actor="alliance", partner="alliance_partner", outcome="outcome", dyad="dyad", role="role")
    assert res.n_complete_dyads == ref.n_complete_dyads == 120 and res.n_single_dyads == 0
    np.testing.assert_array_equal(res.effects["estimate"].to_numpy(), ref.effects["estimate"].to_numpy())
    clash = lng.copy()
    clash.loc[clash.index[1], ["dyad", "role"]] = [1.0, "client"]
    with pytest.raises(als.ModelSpecError, match=r"dyad\(s\) '1' have more than one row"):
        als.apim(clash, actor="alliance", partner="alliance_partner", outcome="outcome", dyad="dyad", role="role")


@pytest.mark.parametrize("ds", ["apim", "apim_incomplete"])
@pytest.mark.parametrize("method", ["REML", "ML"])
def test_apim_against_nlme_gls(apim_ref, ds, method):
    d = _long(ds)
    res = als.apim(d, actor="alliance", partner="alliance_partner", outcome="outcome", dyad="dyad", role="role", method=method)
    ref = apim_ref[apim_ref.model == f"{ds}_{method}"].set_index("parameter")
    e = res.effects.set_index(res.effects["term"].str.replace("alliance_partner", "partner"))
    assert list(e.index) == ["roleclient", "roletherapist", "roleclient:alliance", "roletherapist:alliance", "roleclient:partner", "roletherapist:partner"]
    # achieved: estimates 3e-8, SEs and CIs 3e-6 relative (nlme's optimum, msTol 1e-14, vs ours:
    # our log-likelihood is equal or higher by < 2e-9)
    _compare(e, ref, ["estimate"], rel=1e-7)
    _compare(e, ref, ["se", "ci_low", "ci_high"], rel=5e-6)
    np.testing.assert_allclose(e["t"], ref.loc[e.index, "statistic"], rtol=5e-6)
    np.testing.assert_allclose(e["p"], ref.loc[e.index, "p"], rtol=1e-3)
    assert (e["df"] == ref.loc[e.index, "df"]).all()
    assert res.n_obs == ref.loc["n_obs", "estimate"]
    assert res.llf == pytest.approx(ref.loc["loglik", "estimate"], abs=5e-9)
    assert res.llf >= ref.loc["loglik", "estimate"] - 1e-10
    v = res.variance.set_index("parameter")
    assert v.loc["residual SD client", "estimate"] == pytest.approx(ref.loc["sigma_client", "estimate"], rel=5e-6)
    assert v.loc["residual SD therapist", "estimate"] == pytest.approx(ref.loc["sigma_therapist", "estimate"], rel=5e-6)
    assert v.loc["residual correlation", "estimate"] == pytest.approx(ref.loc["rho", "estimate"], abs=1e-6)
    # intervals from the Hessian of the variance parameters: nlme's apVar is a finite-difference
    # Hessian (fdHess, relative step 6e-6); achieved 6e-4 absolute
    for ours, theirs in (("residual correlation", "rho"), ("residual SD client", "sigma_ref"), ("SD ratio therapist/client", "sd_ratio")):
        np.testing.assert_allclose(v.loc[ours, ["ci_low", "ci_high"]].to_numpy(float), ref.loc[theirs, ["ci_low", "ci_high"]].to_numpy(float), atol=1e-3)
    t = res.tests.set_index("test")
    for ours, theirs in ((0, "test_equal_actor"), (1, "test_equal_partner"), (2, "test_equal_actor_and_partner")):
        row = res.tests.iloc[ours]
        assert row["statistic"] == pytest.approx(ref.loc[theirs, "statistic"], rel=5e-6)
        assert row["df2"] == ref.loc[theirs, "df"]
        assert row["p"] == pytest.approx(ref.loc[theirs, "p"], rel=5e-5)
    lrt = t.loc["no residual correlation (LRT)"]
    assert lrt["statistic"] == pytest.approx(ref.loc["test_rho_zero", "statistic"], abs=1e-8)
    assert lrt["p"] == pytest.approx(ref.loc["test_rho_zero", "p"], rel=1e-6)


def test_apim_incomplete_dyads_counted():
    raw = pd.read_csv(REF / "agreement_apim_incomplete.csv")
    d = _long("apim_incomplete")
    res = als.apim(d, actor="alliance", partner="alliance_partner", outcome="outcome", dyad="dyad", role="role")
    lone = raw.groupby("dyad")["role"].transform("size") == 1
    # persons without an outcome, then persons whose dyad has no therapist row
    assert res.dropped.to_dict() == {"missing outcome": int(raw["outcome"].isna().sum()),
                                     "no partner row (the dyad has only one role)": int((lone & raw["outcome"].notna()).sum())}
    assert res.n_obs == len(raw) - res.n_dropped == 165
    both = raw.dropna(subset=["outcome"]).groupby("dyad").size()
    complete = set(both.index[both == 2])
    assert res.n_complete_dyads == len(complete)
    singles = set(both.index[both == 1]) - set(raw.loc[lone, "dyad"])
    assert set(res.single_dyads) == {str(k) for k in singles} and res.n_single_dyads == 3  # IDs as text
    assert "one member" in res.summary()


def test_apim_k_ratio(apim_ref):
    d = _long("apim")
    res = als.apim(d, actor="alliance", partner="alliance_partner", outcome="outcome", dyad="dyad", role="role", k_ratio=True)
    ref = apim_ref[apim_ref.model == "apim_REML"].set_index("parameter")
    k = res.effects[res.effects.effect == "k (partner/actor)"].set_index("role")["estimate"]
    assert k["client"] == pytest.approx(ref.loc["roleclient:partner", "estimate"] / ref.loc["roleclient:alliance", "estimate"], rel=1e-7)
    assert k["therapist"] == pytest.approx(ref.loc["roletherapist:partner", "estimate"] / ref.loc["roletherapist:alliance", "estimate"], rel=1e-7)


def test_apim_refusals():
    d = _long("apim")
    kw = dict(actor="alliance", partner="alliance_partner", outcome="outcome", dyad="dyad", role="role")
    three = pd.concat([d, d.iloc[:2].assign(role="observer", dyad=[500, 500])], ignore_index=True)
    with pytest.raises(als.ModelSpecError, match=r"3 role\(s\).*exactly two"):
        als.apim(three, **kw)
    with pytest.raises(als.ModelSpecError, match=r"exactly two"):
        als.apim(d[d.role == "client"], **kw)
    dup = pd.concat([d, d.iloc[[4]]], ignore_index=True)
    with pytest.raises(als.ModelSpecError, match=r"dyad\(s\) '3' have more than one row"):
        als.apim(dup, **kw)
    with pytest.raises(als.ColumnError, match="partner='wai_partner'"):
        als.apim(d, **{**kw, "partner": "wai_partner"})
    with pytest.raises(als.OptionError, match="method"):
        als.apim(d, method="GLS", **kw)
    with pytest.raises(als.OptionError, match="dyad"):
        als.apim(d, **{**kw, "dyad": ["dyad", "role"]})
    with pytest.raises(als.ModelSpecError, match="roles"):
        als.apim(d, roles=("client", "supervisor"), **kw)
    with pytest.raises(als.ColumnError, match="alliance_partner"):
        als.partner_scores(d, dyad="dyad", role="role", columns="alliance")
    with pytest.raises(als.ModelSpecError, match="exactly two"):
        als.partner_scores(three.drop(columns="alliance_partner"), dyad="dyad", role="role", columns="alliance")


def test_apim_presentation_and_plots():
    d = _long("apim")
    res = als.apim(d, actor="alliance", partner="alliance_partner", outcome="outcome", dyad="dyad", role="role")
    s = res.summary()
    assert "equal actor effects (client = therapist)" in s and "residual correlation" in s
    apa = res.to_apa()
    assert list(apa["Effect"]) == ["intercept", "intercept", "actor", "actor", "partner", "partner"]
    assert apa.loc[2, "b"] == "2.00" and apa.loc[5, "b"] == "0.39"
    assert "<table" in res._repr_html_()
    assert "corSymm" in res.methods() and "120 dyads" in res.methods()
    assert res.table is res.effects
    ax = res.plot()
    assert len(ax.texts) >= 9
    ax2 = res.plot(kind="effects")
    assert [t.get_text() for t in ax2.get_yticklabels()] == ["client actor", "therapist actor", "client partner", "therapist partner"]
    with pytest.raises(als.OptionError):
        res.plot(kind="forest")


# ---------------------------------------------------------------------------------- keys
def test_key_lacking_a_reversal_warns_with_psych_r_drop():
    items = pd.read_csv(REF / "reliability_bfi_agreeableness.csv")
    ref = pd.read_csv(REF / "agreement_bfi_rdrop.csv").set_index("item")["r_drop"]
    als.register_instrument({"name": "t-bfi-agree-unreversed", "n_items": 5, "scale": [1, 6], "subscales": {}}, replace=True)
    with pytest.warns(als.KeyReversalWarning, match=r"'A1' \(item 1, r = -0.31\) correlates negatively.*lack a reversal") as rec:
        out = als.reliability(items, "t-bfi-agree-unreversed", items="A{}")
    w = [x.message for x in rec if isinstance(x.message, als.KeyReversalWarning)][0]
    assert w.scale == "total" and w.instrument == "t-bfi-agree-unreversed" and list(w.items) == ["A1"]
    assert w.items["A1"] == pytest.approx(ref["A1"], rel=1e-10)
    got = pd.Series(out.item_total["total"])
    np.testing.assert_allclose(got[ref.index].to_numpy(), ref.to_numpy(), rtol=1e-10)
    assert issubclass(als.KeyReversalWarning, als.AllianceStatsWarning)


def test_key_with_the_reversal_does_not_warn():
    items = pd.read_csv(REF / "reliability_bfi_agreeableness.csv")
    als.register_instrument({"name": "t-bfi-agree-keyed", "n_items": 5, "scale": [1, 6], "subscales": {}, "reversed": [1]}, replace=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", als.KeyReversalWarning)
        als.reliability(items, "t-bfi-agree-keyed", items="A{}")


def test_calpas_keys_state_the_reversal_check():
    for form in ("calpas-p", "calpas-t", "calpas-r"):
        inst = als.get_instrument(form)
        assert inst.reversed == () and inst.provenance == "provisional"
        assert "could NOT be confirmed either way" in inst.notes and "KeyReversalWarning" in inst.notes


def test_pqs_distribution_verification_label():
    assert als.PQS_DISTRIBUTION_VERIFICATION == "secondary"
    assert "secondary sources" in als.get_instrument("pqs").notes
    rng = np.random.default_rng(0)
    piles = np.repeat(np.arange(1, 10), als.PQS_DISTRIBUTION)
    sorts = pd.DataFrame([rng.permutation(piles) for _ in range(2)], columns=[f"pqs{i}" for i in range(1, 101)])
    sorts.insert(0, "sess", [1, 2])
    meta = als.read_qsorts(sorts, session="sess").provenance
    assert meta.distribution_verification.startswith("secondary")
    meta = als.read_qsorts(sorts, session="sess", distribution=None).provenance
    assert meta.distribution_verification is None
