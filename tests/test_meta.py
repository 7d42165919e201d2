"""Meta-analysis against R's metafor 3.8.1 (fixtures: tests/reference/make_metafor_reference.R)."""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance_stats as als

REF_DIR = Path(__file__).parent / "reference"
REF = pd.read_csv(REF_DIR / "metafor_reference.csv")
RTOL = 1e-5

SETS = {
    "molloy2014": ("meta_molloy2014.csv", "ri", "ni", "authors"),
    "mcdaniel1994": ("meta_mcdaniel1994.csv", "ri", "ni", "study"),
    "alliance_sample": (None, "r", "n", "study"),
}


def ref(ds, analysis, quantity):
    v = REF[(REF.dataset == ds) & (REF.analysis == analysis) & (REF.quantity == quantity)].sort_values("i").value.to_numpy()
    assert len(v), (ds, analysis, quantity)
    return v


def data(ds):
    f = SETS[ds][0]
    return als.load_sample("meta") if f is None else pd.read_csv(REF_DIR / f)


def fit(ds, **kw):
    """The metafor references pool every effect size as independent (rma(yi, vi)), also where a
    study label repeats; the DependentEffectsWarning that this raises is tested below."""
    _, r, n, st = SETS[ds]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", als.DependentEffectsWarning)
        return als.meta_analysis(data(ds), r=r, n=n, study=st, **kw)


def close(got, expected, rtol=RTOL, atol=1e-12):
    np.testing.assert_allclose(np.atleast_1d(np.asarray(got, float)), np.atleast_1d(expected), rtol=rtol, atol=atol)


@pytest.mark.parametrize("ds", list(SETS))
@pytest.mark.parametrize("method", ["REML", "ML", "DL", "PM", "HE", "FE"])
def test_random_effects_every_method(ds, method):
    res = fit(ds, method=method)
    an = "uni_" + ("EE" if method == "FE" else method)
    f = res._fit
    close(res.z, ref(ds, an, "b"))
    close(res.se_z, ref(ds, an, "se"))
    close(res.statistic, ref(ds, an, "zval"))
    close(res.pval, ref(ds, an, "pval"), atol=1e-300)
    close([f["ci_lb"][0], f["ci_ub"][0]], np.r_[ref(ds, an, "ci_lb"), ref(ds, an, "ci_ub")])
    close(res.tau2, ref(ds, an, "tau2"), atol=1e-14)
    close(res.i2, ref(ds, an, "I2"), atol=1e-10)
    close(res.h2, ref(ds, an, "H2"))
    close(res.q, ref(ds, an, "QE"))
    close(res.q_p, ref(ds, an, "QEp"), atol=1e-300)
    if method != "FE":
        close(np.arctanh(res.pi), np.r_[ref(ds, an, "pi_lb"), ref(ds, an, "pi_ub")])
    # the correlation scale is the back-transformed Fisher z
    assert res.estimate == pytest.approx(np.tanh(ref(ds, an, "b")[0]), rel=RTOL)


@pytest.mark.parametrize("ds", list(SETS))
def test_knapp_hartung(ds):
    res = fit(ds, test="knha")
    close([res.se_z, res.statistic, res.df, res.pval], [ref(ds, "knha_REML", q)[0] for q in ("se", "tval", "df", "pval")])
    close(np.arctanh(res.ci), np.r_[ref(ds, "knha_REML", "ci_lb"), ref(ds, "knha_REML", "ci_ub")])
    close(np.arctanh(res.pi), np.r_[ref(ds, "knha_REML", "pi_lb"), ref(ds, "knha_REML", "pi_ub")])


@pytest.mark.parametrize("ds", list(SETS))
def test_egger(ds):
    res = fit(ds)
    e = res.egger().iloc[0]
    close([e.statistic, e.pval, e.limit_estimate], [ref(ds, "egger_rma", q)[0] for q in ("zval", "pval", "limit")])
    e = res.egger(model="lm").iloc[0]
    close([e.statistic, e.pval, e.df], [ref(ds, "egger_lm", q)[0] for q in ("tval", "pval", "df")])


@pytest.mark.parametrize("ds", list(SETS))
@pytest.mark.parametrize("method", ["REML", "FE"])
def test_trim_and_fill(ds, method):
    tf = fit(ds, method=method).trim_and_fill()
    an = "trimfill_" + ("EE" if method == "FE" else method)
    assert tf.k0 == ref(ds, an, "k0")[0]
    assert (tf.side == "right") == bool(ref(ds, an, "side_right")[0])
    close([tf.z, tf.se_z], [ref(ds, an, "b")[0], ref(ds, an, "se")[0]])
    close(tf.tau2, ref(ds, an, "tau2"), atol=1e-14)
    assert tf.table["filled"].sum() == tf.k0 and tf.k == fit(ds).k + tf.k0


@pytest.mark.parametrize("ds", list(SETS))
def test_leave_one_out_and_weights(ds):
    res = fit(ds)
    l1 = res.leave_one_out()
    assert len(l1) == res.k
    close(l1.z, ref(ds, "leave1out", "estimate"))
    close(l1.se_z, ref(ds, "leave1out", "se"))
    close(l1.tau2, ref(ds, "leave1out", "tau2"), atol=1e-14)
    close(l1.i2, ref(ds, "leave1out", "I2"), atol=1e-10)
    close(l1.q, ref(ds, "leave1out", "QE"))
    close(res.table.weight, ref(ds, "weights_REML", "w"))


@pytest.mark.parametrize("test", ["z", "knha"])
def test_meta_regression_continuous(test):
    res = als.meta_analysis(data("molloy2014"), r="ri", n="ni", moderators=["meanage", "quality"], test=test)
    an = f"metareg_{test}"
    assert res.coefficients.term.tolist() == ["intercept", "meanage", "quality"]
    close(res.coefficients.estimate, ref("molloy2014", an, "b"))
    close(res.coefficients.se, ref("molloy2014", an, "se"))
    close([res.qm, res.qm_p, res.tau2, res.i2, res.q, res.r2], [ref("molloy2014", an, q)[0] for q in ("QM", "QMp", "tau2", "I2", "QE", "R2")])
    assert res.qm_df == ((2, 13) if test == "knha" else (2, None))


def test_meta_regression_categorical_formula():
    res = als.meta_analysis(als.load_sample("meta"), r="r", n="n", moderators="rater + year")
    assert res.coefficients.term.tolist() == ["intercept", "rater[observer]", "rater[therapist]", "year"]
    close(res.coefficients.estimate, ref("alliance_sample", "metareg_z", "b"))
    close(res.coefficients.se, ref("alliance_sample", "metareg_z", "se"))
    close([res.qm, res.qm_p, res.tau2], [ref("alliance_sample", "metareg_z", q)[0] for q in ("QM", "QMp", "tau2")])


@pytest.mark.parametrize("ds", ["konstantopoulos2011", "alliance_sample"])
def test_three_level(ds):
    if ds == "konstantopoulos2011":
        d = pd.read_csv(REF_DIR / "meta_konstantopoulos2011.csv")
        d["label"] = d.district.astype(str) + "/" + d.school.astype(str)
        res = als.meta_analysis(d, yi="yi", vi="vi", cluster="district", study="label")
        pi = res.pi
    else:
        res = als.meta_analysis(als.load_sample("meta"), r="r", n="n", study="study", cluster="study")
        pi = np.arctanh(res.pi)
    f = res._fit
    close([res.z, res.se_z, res.statistic, res.pval], [ref(ds, "threelevel", q)[0] for q in ("b", "se", "zval", "pval")])
    close([f["ci_lb"][0], f["ci_ub"][0]], np.r_[ref(ds, "threelevel", "ci_lb"), ref(ds, "threelevel", "ci_ub")])
    close(res.variance_components.variance, ref(ds, "threelevel", "sigma2"))
    close(res.variance_components.i2, ref(ds, "threelevel", "I2_level"))
    close(res.q, ref(ds, "threelevel", "QE"))
    close(f["loglik"], ref(ds, "threelevel", "logLik"))
    close(pi, np.r_[ref(ds, "threelevel", "pi_lb"), ref(ds, "threelevel", "pi_ub")])
    assert res.three_level and res.tau2 == pytest.approx(res.variance_components.variance.sum())


def test_aggregate_gls_matches_metafor():
    ag = als.aggregate_effects(als.load_sample("meta"), by="study", r="r", n="n", method="gls")
    close(ag.yi, ref("alliance_sample", "aggregate_gls", "yi"))
    close(ag.vi, ref("alliance_sample", "aggregate_gls", "vi"))


def test_aggregate_borenstein_hand_worked():
    # two effects, r = .3 and .5, n = 103 and 53: v = 1/100 and 1/50, rho = .5
    d = pd.DataFrame({"s": ["A", "A", "B"], "r": [0.3, 0.5, 0.2], "n": [103, 53, 40], "year": [2001, 2001, 1999]})
    ag = als.aggregate_effects(d, by="s", r="r", n="n", r_between=0.5)
    z = (np.arctanh(0.3) + np.arctanh(0.5)) / 2
    v = (0.01 + 0.02 + 2 * 0.5 * np.sqrt(0.01 * 0.02)) / 4
    a = ag.set_index("study")
    assert a.loc["A", "yi"] == pytest.approx(z) and a.loc["A", "vi"] == pytest.approx(v) and a.loc["A", "k"] == 2
    assert a.loc["A", "n"] == pytest.approx(3 + 1 / v) and a.loc["A", "year"] == 2001
    assert a.loc["B", "vi"] == pytest.approx(1 / 37)
    # the aggregated table feeds meta_analysis with exactly these variances
    res = als.meta_analysis(ag, r="r", n="n", study="study", method="FE")
    w = 1 / np.array([v, 1 / 37])
    assert res.z == pytest.approx((w * np.array([z, np.arctanh(0.2)])).sum() / w.sum())


def test_fixed_effect_hand_worked():
    # inverse-variance weighted mean of z; SE = 1/sqrt(sum w); Q = sum w (z - zbar)^2
    r, n = np.array([0.1, 0.3, 0.5]), np.array([53, 103, 203])
    res = als.meta_analysis(r=r, n=n, method="FE")
    z, w = np.arctanh(r), n - 3.0
    zbar = (w * z).sum() / w.sum()
    assert res.z == pytest.approx(zbar) and res.se_z == pytest.approx(1 / np.sqrt(w.sum()))
    assert res.q == pytest.approx((w * (z - zbar) ** 2).sum()) and res.q_df == 2
    assert res.estimate == pytest.approx(np.tanh(zbar))


def test_sample_table_is_calibrated_to_published_r():
    res = fit("alliance_sample")
    assert res.estimate == pytest.approx(0.278, abs=5e-4)  # Fluckiger et al. (2018): r = .278


@pytest.mark.parametrize(
    "r, n, message",
    [
        ([0.2, 1.0, 0.3], [50, 60, 70], r"'Study 2': \|r\| = 1 is not below 1"),
        ([0.2, 0.4, 0.3], [50, 3, 70], r"'Study 2': n = 3 is not above 3"),
        ([0.2, np.nan, 0.3], [50, 60, 70], "'Study 2': missing r or n"),
    ],
)
def test_invalid_input_named(r, n, message):
    with pytest.raises(als.AllianceStatsError, match=message):
        als.meta_analysis(r=r, n=n)
    res = als.meta_analysis(r=r, n=n, on_invalid="drop")
    assert res.k == 2 and res.excluded["label"].tolist() == ["Study 2"]
    assert "Left out: 1 effect sizes: " in res.summary()
    acc = res.accounting()
    assert acc["status"].tolist() == ["used", "excluded"] and acc["n"].tolist() == [2, 1]
    assert "1 effect size(s) were left out" in res.methods()


def test_other_errors():
    with pytest.raises(als.MetaAnalysisError, match="variance -0.1 is not positive"):
        als.meta_analysis(yi=[0.1, 0.2], vi=[0.01, -0.1])
    with pytest.raises(als.InsufficientDataError, match="at least 2 effect sizes; 1 left after leaving out 2 invalid"):
        als.meta_analysis(r=[0.2, 1.0, 1.2], n=[10, 10, 10], on_invalid="drop")
    with pytest.raises(als.ColumnError, match="moderator='nope'"):
        als.meta_analysis(als.load_sample("meta"), r="r", n="n", moderators="nope")
    with pytest.raises(als.ArgumentError, match="either r and n"):
        als.meta_analysis(r=[0.1], n=[10], yi=[0.1], vi=[0.1])
    with pytest.raises(als.ArgumentError, match=r"different lengths \(r: 2, n: 3\)"):
        als.meta_analysis(r=[0.1, 0.2], n=[10, 20, 30])
    with pytest.raises(als.OptionError, match="method='SJ' is not a valid value; allowed: 'REML', 'ML', 'DL', 'PM', 'HE', 'FE'"):
        als.meta_analysis(r=[0.1, 0.2], n=[10, 20], method="SJ")
    with pytest.raises(als.OptionError, match="method='DL'.*allowed: 'REML', 'ML'. the three-level model"):
        als.meta_analysis(r=[0.1, 0.2, 0.3], n=[10, 20, 30], study=["a", "a", "b"], cluster=["a", "a", "b"], method="DL")
    with pytest.raises(als.ModelSpecError, match="every cluster holds one effect size"):
        als.meta_analysis(r=[0.1, 0.2, 0.3], n=[10, 20, 30], cluster=["a", "b", "c"])
    with pytest.raises(als.MetaAnalysisError, match="trim-and-fill is defined"):
        als.meta_analysis(als.load_sample("meta"), r="r", n="n", moderators="year").trim_and_fill()
    with pytest.raises(als.MetaAnalysisError, match="'s' is missing at rows 1"):
        als.aggregate_effects(pd.DataFrame({"s": ["A", None], "r": [0.1, 0.2], "n": [20, 30]}), by="s", r="r", n="n")
    with pytest.raises(als.MetaAnalysisError, match="r_between=-0.6 is not a possible correlation .* 3 effect sizes of study 'A': .* above -0.5"):
        als.aggregate_effects(pd.DataFrame({"s": ["A"] * 3, "r": [0.1, 0.2, 0.3], "n": [20, 30, 40]}), by="s", r="r", n="n",
                              r_between=-0.6)


def test_result_presentation():
    res = fit("alliance_sample")
    s = res.summary()
    lo, hi = (f"{x:.2f}".removeprefix("0") for x in res.ci)
    assert s.splitlines()[:2] == ["Meta-analysis", repr(res)[len("<MetaResult: "):-1]]
    assert f"k = 104; pooled r = {res.estimate:.2f}".replace("0.", ".") + f", 95% CI [{lo}, {hi}]" in s
    assert "Heterogeneity:" in s and f"{res.q:.2f}" in s and f"{res.i2:.1f}" in s
    assert repr(res).startswith("<MetaResult: random-effects model (REML), k = 104") and "\n" not in repr(res)
    m = res.methods()
    assert f"k = 104 correlations (summed n = {int(res.table['n'].sum()):,})" in m
    assert f"Q(103) = {res.q:.2f}" in m and "prediction interval" in m and "restricted maximum likelihood" in m
    apa = res.to_apa()
    assert apa.loc[0, "r"] == f"{res.estimate:.2f}".removeprefix("0") and apa.loc[0, "p"] == "< .001"  # r: no leading zero
    assert apa.loc[0, "r 95% CI"].startswith("[") and "<table" in res._repr_html_()
    t = res.table
    assert list(t.columns) == ["label", "r", "n", "yi", "vi", "weight", "ci_low", "ci_high"]
    assert t.weight.sum() == pytest.approx(100)


def test_moderator_spellings_agree_and_empty_is_an_error():
    m = als.load_sample("meta")
    a = als.meta_analysis(m, r="r", n="n", moderators="rater + year")
    b = als.meta_analysis(m, r="r", n="n", moderators=["rater", "year"])
    c = als.meta_analysis(m, r="r", n="n", moderators="~ rater + year + ")
    np.testing.assert_allclose(a.coefficients.estimate, b.coefficients.estimate)
    np.testing.assert_allclose(a.coefficients.estimate, c.coefficients.estimate)
    with pytest.raises(als.OptionError, match="moderators=' \\+ ' is not a valid value. name at least one column"):
        als.meta_analysis(m, r="r", n="n", moderators=" + ")


# -- dependent effect sizes and convergence (project issue 15, item 4) ----------------------------


def test_repeated_study_labels_warn_and_point_to_cluster_and_aggregate():
    m = als.load_sample("meta")  # 104 effects from 60 studies; 31 studies give 2 or more
    with pytest.warns(als.DependentEffectsWarning) as rec:
        als.meta_analysis(m, r="r", n="n", study="study")
    msg = str(rec[0].message)
    assert "31 of 60 studies contribute more than one effect size (75 of the 104 effect sizes" in msg
    assert "cluster='study'" in msg and "aggregate_effects(data, by='study'" in msg
    assert m["study"].value_counts().gt(1).sum() == 31  # the count in the message, from the data
    with pytest.warns(als.DependentEffectsWarning, match=r"1 of 2 studies .* cluster= \(the study labels\)"):
        als.meta_analysis(r=[0.1, 0.2, 0.3], n=[50, 60, 70], study=["a", "a", "b"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: a three-level model, one effect per study, no labels
        als.meta_analysis(m, r="r", n="n", study="study", cluster="study")
        als.meta_analysis(als.aggregate_effects(m, by="study", r="r", n="n"), r="r", n="n", study="study")
        als.meta_analysis(m, r="r", n="n")


@pytest.mark.parametrize("method", ["REML", "ML", "PM"])
def test_tau2_fit_reports_convergence(method):
    ok = fit("molloy2014", method=method)
    assert ok.converged is True and 1 < ok.iterations < 50
    with pytest.warns(als.ConvergenceWarning, match=f"the {method} estimate of tau\\^2 did not converge in 1 iteration"):
        bad = fit("molloy2014", method=method, max_iter=1)
    assert bad.converged is False and bad.iterations == 1
    assert abs(bad.tau2 - ok.tau2) > 1e-8  # it really stopped early


@pytest.mark.parametrize("method", ["DL", "HE", "FE"])
def test_closed_forms_need_no_iterations(method):
    res = fit("molloy2014", method=method, max_iter=1)
    assert res.converged is True and res.iterations is None


def test_three_level_reports_convergence():
    m = als.load_sample("meta")
    ok = als.meta_analysis(m, r="r", n="n", study="study", cluster="study")
    assert ok.converged is True and ok.iterations > 1
    with pytest.warns(als.ConvergenceWarning, match="the REML estimate of the variance components did not converge in 2"):
        bad = als.meta_analysis(m, r="r", n="n", study="study", cluster="study", max_iter=2)
    assert bad.converged is False and bad.iterations == 2


def test_refits_report_convergence():
    res = fit("molloy2014")
    assert res.egger()["converged"].tolist() == [True]
    assert res.leave_one_out()["converged"].all()
    with pytest.warns(als.ConvergenceWarning):
        short = fit("molloy2014", max_iter=1)
    with pytest.warns(als.ConvergenceWarning):
        assert not short.leave_one_out()["converged"].any()
    with pytest.warns(als.ConvergenceWarning):  # the refit without moderators behind R^2
        reg = als.meta_analysis(data("molloy2014"), r="ri", n="ni", moderators="meanage", max_iter=1)
    assert reg.converged is False


def test_trim_and_fill_reports_convergence():
    res = fit("molloy2014")
    tf = res.trim_and_fill()
    assert tf.converged is True and tf.k0 == 2 and tf.fill_iterations == 3  # k0: 0 -> 1 -> 2 -> 2
    with pytest.warns(als.ConvergenceWarning, match=r"did not settle in 1 iteration\(s\) \(the last two estimates: 0, 1\); k0 = 0"):
        short = res.trim_and_fill(max_iter=1)
    assert short.converged is False and short.k0 == 0 and short.fill_iterations == 1
    with pytest.raises(als.OptionError, match="max_iter=0"):
        res.trim_and_fill(max_iter=0)


# ---------------------------------------------------------------------------------------
# subgroups: the model within each level (metafor's rma(..., subset = by == level))


@pytest.mark.parametrize("ds, by, method, test", [
    ("alliance_sample", "rater", "REML", "z"),
    ("alliance_sample", "rater", "DL", "z"),
    ("alliance_sample", "rater", "REML", "knha"),
    ("mcdaniel1994", "type", "REML", "z"),
])
def test_subgroups_against_metafor(ds, by, method, test):
    _, r, n, st = SETS[ds]
    d = data(ds).dropna(subset=[by])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", als.DependentEffectsWarning)
        res = als.meta_analysis(d, r=r, n=n, study=st, method=method, test=test)
    sg = res.subgroups(by)
    assert sg["group"].tolist() == pd.unique(d[by].astype(str)).tolist()  # order of first appearance
    for _, row in sg.iterrows():
        an = f"subgroup_{by}_{method}_{test}_{row['group']}"
        assert row["k"] == ref(ds, an, "k")[0]
        close(row["z"], ref(ds, an, "b"))
        close(row["se_z"], ref(ds, an, "se"))
        close(row["pval"], ref(ds, an, "pval"), atol=1e-300)
        close([row["ci_low"], row["ci_high"]], np.tanh(np.r_[ref(ds, an, "ci_lb"), ref(ds, an, "ci_ub")]))
        close([row["pi_low"], row["pi_high"]], np.tanh(np.r_[ref(ds, an, "pi_lb"), ref(ds, an, "pi_ub")]))
        close(row["tau2"], ref(ds, an, "tau2"), atol=1e-12)
        close(row["i2"], ref(ds, an, "I2"), atol=1e-8)
        close(row["q"], ref(ds, an, "QE"))
        close(row["q_p"], ref(ds, an, "QEp"))
        assert row["converged"] and row["estimate"] == pytest.approx(np.tanh(row["z"]), rel=1e-15)


def test_subgroups_labels_and_refusals():
    m = als.load_sample("meta")
    res = als.meta_analysis(m, r="r", n="n")
    by_col = res.subgroups("rater")
    by_arr = res.subgroups(m["rater"].to_numpy())
    pd.testing.assert_frame_equal(by_col, by_arr)
    # a subgroup of one effect size is listed with nothing pooled
    one = res.subgroups(["a"] + ["b"] * (res.k - 1))
    assert one["k"].tolist() == [1, res.k - 1] and one.loc[0, ["estimate", "tau2"]].isna().all()
    assert one.loc[1, "estimate"] == pytest.approx(als.meta_analysis(m.iloc[1:], r="r", n="n").estimate, rel=1e-12)
    with pytest.raises(als.ColumnError, match="by='nope'"):
        res.subgroups("nope")
    with pytest.raises(als.ArgumentError, match="3 labels for 104 effect sizes"):
        res.subgroups(["a", "b", "c"])
    arrays = als.meta_analysis(r=m["r"], n=m["n"])
    with pytest.raises(als.ArgumentError, match="keeps no data"):
        arrays.subgroups("rater")
    gap = m.assign(rater=m["rater"].where(m.index != 3))
    with pytest.raises(als.MetaAnalysisError, match="by='rater' is missing for effect size"):
        als.meta_analysis(gap, r="r", n="n").subgroups("rater")
    with pytest.raises(als.MetaAnalysisError, match="a subgroup analysis is defined"):
        als.meta_analysis(m, r="r", n="n", moderators="year").subgroups("rater")
