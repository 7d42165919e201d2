import numpy as np
import pandas as pd
import pytest

import alliance_stats as als


def test_same_seed_same_data():
    a = als.simulate_study(seed=3, n_therapists=4, patients_per_therapist=3)
    b = als.simulate_study(seed=3, n_therapists=4, patients_per_therapist=3)
    pd.testing.assert_frame_equal(a.sessions, b.sessions)
    pd.testing.assert_frame_equal(a.qsorts, b.qsorts)
    pd.testing.assert_frame_equal(a.episodes, b.episodes)
    c = als.simulate_study(seed=4, n_therapists=4, patients_per_therapist=3)
    assert not a.sessions["wai1"].equals(c.sessions["wai1"])


def test_structure_and_truth(small_study):
    s = small_study.sessions
    t = small_study.truth
    assert t["n_patients"] == 30 and t["n_therapists"] == 6 and t["within_effect"] == -1.5 and t["seed"] == 11
    assert len(s) == t["n_sessions"]
    # patients nested in therapists; ragged series
    assert (s.groupby("patient")["therapist"].nunique() == 1).all()
    assert s.groupby("patient").size().nunique() > 1
    assert s.session.min() == 1 and s.session.max() <= 12
    assert set(s.alliance_type.cat.categories) == set(als.ALLIANCE_TYPES)
    assert set(s.phase.unique()) <= set(als.TREATMENT_PHASES)
    # every item inside its scale
    assert s[[f"wai{i}" for i in range(1, 13)]].stack().dropna().between(1, 5).all()
    assert s[[f"phq{i}" for i in range(1, 10)]].stack().dropna().between(0, 3).all()
    assert s[[f"calpas{i}" for i in range(1, 25)]].stack().dropna().between(1, 7).all()
    # the simulated table scores and reads without errors
    df = als.read_sessions(s, patient="patient", session="session", therapist="therapist", instruments={"wai-sr": "wai{}", "phq-9": "phq{}"}).data
    assert df["wai_sr_total"].notna().mean() > 0.99


def test_qsorts_follow_the_forced_distribution(small_study):
    q = als.read_qsorts(small_study.qsorts, session="session", patient="patient", rater="judge").data
    assert len(q) > 0 and q["qsort_valid"].all()


def test_planted_episodes_are_in_the_data():
    st = als.simulate_study(seed=5, n_therapists=10, patients_per_therapist=10, rupture_rate=0.1, missed_session_rate=0)
    ep = st.episodes
    assert len(ep) > 20
    assert (ep.rupture_session == ep.pre_session + 1).all()
    assert (ep.trough_session - ep.rupture_session + 1 == ep.n_decline_sessions).all()
    assert ep.loc[ep.repaired, "repair_session"].eq(ep.loc[ep.repaired, "trough_session"] + 1).all()
    assert 0.5 < ep.repaired.mean() < 0.85  # repair_prob = 0.65
    # the latent drop shows in the scored alliance: trough below pre on average by > 0.5 points
    sc = als.score(st.sessions, "wai-sr", items="wai{}")
    a = st.sessions[["patient", "session"]].assign(w=sc["wai_sr_total"]).set_index(["patient", "session"])["w"]
    pre = a.reindex(list(zip(ep.patient, ep.pre_session))).to_numpy()
    low = a.reindex(list(zip(ep.patient, ep.trough_session))).to_numpy()
    assert np.nanmean(pre - low) > 0.5


def test_no_ruptures_when_rate_zero():
    st = als.simulate_study(seed=1, n_therapists=3, patients_per_therapist=3, rupture_rate=0)
    assert len(st.episodes) == 0 and st.truth["n_ruptures"] == 0


def test_between_correlation_close_to_truth():
    st = als.simulate_study(seed=8, n_therapists=100, patients_per_therapist=10, rupture_rate=0, repair_effect=0)
    p = st.patients
    r = np.corrcoef(p.trait_alliance, p.improvement)[0, 1]
    assert abs(r - 0.28) < 0.06  # n = 1000: SE of r about .03


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"between_r": 1.0}, "between_r"),
        ({"min_sessions": 10, "max_sessions": 5}, "min_sessions=10 .* must not exceed max_sessions=5"),
        ({"rupture_rate": 1.5}, "rupture_rate"),
        ({"type_transitions": np.eye(3)}, "4 x 4"),
        ({"n_therapists": 0}, "at least 1"),
    ],
)
def test_bad_arguments(kw, message):
    with pytest.raises(als.OptionError, match=message):
        als.simulate_study(seed=1, **kw)


# --- feedback, carry-over and informative dropout (issue 17) -------------------------------------------
def test_new_dynamics_parameters_default_to_the_unchanged_simulation():
    a = als.simulate_study(seed=3, n_therapists=4, patients_per_therapist=3)
    b = als.simulate_study(seed=3, n_therapists=4, patients_per_therapist=3, feedback=0.0, outcome_ar=0.0,
                           dropout_alliance=0.0, dropout_unrepaired=0.0)
    pd.testing.assert_frame_equal(a.sessions, b.sessions)
    assert a.truth["feedback"] == 0.0 and not a.patients["dropout_after_rupture"].any()


def test_feedback_from_symptoms_to_the_next_alliance_is_recovered():
    """Symptoms -> next alliance with feedback -0.1 WAI-SR points per PHQ-9 point: the dynamic panel
    model with PHQ-9 as the (predetermined) predictor of the alliance covers the truth."""
    s = als.simulate_study(n_therapists=40, patients_per_therapist=10, min_sessions=8, max_sessions=8, seed=31, feedback=-0.1,
                           outcome_ar=0.5, improvement_sd=0.0, rupture_rate=0.0, missed_session_rate=0.0, missing_item_rate=0.0)
    assert s.truth["feedback"] == -0.1 and s.truth["outcome_ar"] == 0.5
    d = s.sessions[["patient", "session"]].assign(wai=als.score(s.sessions, "WAI-SR", items="wai{}")["wai_sr_total"],
                                                  phq=als.score(s.sessions, "PHQ-9", items="phq{}")["phq9_total"])
    fb = als.dynamic_panel(d, x="phq", y="wai", se="robust").effects.set_index("path").loc["x->y"]
    assert fb["ci_low"] < -0.1 < fb["ci_high"]


def test_dropout_follows_the_first_sessions_alliance():
    s = als.simulate_study(n_therapists=100, patients_per_therapist=10, seed=4, dropout_alliance=2.0, rupture_rate=0)
    p = s.patients
    # expected dropout per patient: logistic in the first-session latent alliance (trait + state with
    # SD alliance_sd_within), integrated over the state by Gauss-Hermite quadrature
    z, w = np.polynomial.hermite_e.hermegauss(40)
    base = np.log(0.15 / 0.85)
    lin = base + 2.0 * (3.8 - p["trait_alliance"].to_numpy()[:, None] - 0.25 * z[None, :])
    expected = (1 / (1 + np.exp(-lin))) @ w / w.sum()
    q = np.quantile(p["trait_alliance"], [0.25, 0.75])
    for part in (p["trait_alliance"] < q[0], p["trait_alliance"] > q[1]):
        e = expected[part.to_numpy()].mean()
        assert abs(p.loc[part, "dropout"].mean() - e) < 3 * np.sqrt(e * (1 - e) / part.sum())
    assert p.loc[p["trait_alliance"] < q[0], "dropout"].mean() > 0.3 > 0.1 > p.loc[p["trait_alliance"] > q[1], "dropout"].mean()


def test_unrepaired_ruptures_end_treatment_within_two_sessions():
    s = als.simulate_study(n_therapists=50, patients_per_therapist=10, seed=4, dropout_unrepaired=1.0, repair_prob=0.3, rupture_rate=0.1)
    p = s.patients.set_index("patient")
    unrep = s.episodes[~s.episodes["repaired"]].set_index("patient")
    gap = p.loc[unrep.index, "last_session"] - unrep["trough_session"]
    flagged = p.loc[unrep.index, "dropout_after_rupture"]
    assert flagged.mean() > 0.8
    assert set(gap[flagged]) <= {1, 2} and (gap[~flagged] <= 2).all()
    assert not p.loc[~p.index.isin(unrep.index), "dropout_after_rupture"].any()
    assert (p["attended_sessions"] <= p["last_session"]).all()
    last = s.sessions.groupby("patient")["session"].max()
    assert (last.loc[flagged[flagged].index] == p.loc[flagged[flagged].index, "last_session"]).all()


@pytest.mark.parametrize("kw, message", [({"outcome_ar": 1.0}, "outcome_ar"), ({"dropout_unrepaired": 1.5}, "dropout_unrepaired"),
                                         ({"feedback": float("nan")}, "feedback")])
def test_bad_dynamics_arguments(kw, message):
    with pytest.raises(als.AllianceStatsError, match=message):
        als.simulate_study(seed=1, **kw)


# --- client and therapist ratings with a planted agreement surface (issue 18 item 7) ---------------------
def _study_hash(study):
    import hashlib

    h = hashlib.sha256()
    for df in (study.sessions, study.patients, study.episodes, study.qsorts):
        h.update(df.to_csv(index=False, float_format="%.12g").encode())
    return h.hexdigest()


def test_default_output_unchanged_by_the_agreement_options():
    # hashes of these two calls taken before the therapist ratings and the agreement surface were added
    s = als.simulate_study(seed=7, n_therapists=3, patients_per_therapist=4, max_sessions=8)
    assert _study_hash(s) == "e769c40e14bc1b3bd4d73b80d2bddf9ce250d1b801e901e02de82ae121914b6c"
    assert "therapist_alliance_r" not in s.truth and "agreement_surface" not in s.truth
    assert not any(c.startswith(("wai_t", "session_eval")) for c in s.sessions.columns)
    d = als.simulate_study(seed=7, n_therapists=3, patients_per_therapist=4, max_sessions=8, dropout_alliance=1.0, feedback=-0.1)
    assert _study_hash(d) == "c33f34dbc6219dd2272535b956beb43c07418f14330e8b2dfb4fb49427127541"


def test_agreement_options_leave_the_other_columns_as_they_were():
    kw = dict(seed=7, n_therapists=3, patients_per_therapist=4, max_sessions=8, dropout_alliance=1.0)
    a = als.simulate_study(**kw)
    b = als.simulate_study(**kw, therapist_alliance_r=0.4)
    c = als.simulate_study(**kw, therapist_alliance_r=0.4, agreement_surface={"a4": -0.5})
    pd.testing.assert_frame_equal(b.sessions[a.sessions.columns], a.sessions)
    pd.testing.assert_frame_equal(c.sessions[b.sessions.columns], b.sessions)  # the surface's draws come after the ratings
    for x in (b, c):
        pd.testing.assert_frame_equal(x.patients, a.patients)
        pd.testing.assert_frame_equal(x.qsorts, a.qsorts)
    assert [f"wai_t{i}" for i in range(1, 13)] == [col for col in b.sessions.columns if col.startswith("wai_t")]
    assert {"session_eval_client", "session_eval_therapist"} <= set(c.sessions.columns)
    assert b.sessions[[f"wai_t{i}" for i in range(1, 13)]].stack().dropna().between(1, 5).all()


def test_agreement_surface_coefficients_and_noise():
    s = als.simulate_study(seed=2, n_therapists=30, patients_per_therapist=10, therapist_alliance_r=0.3,
                           therapist_alliance_offset=-0.3, agreement_surface={"a1": 0.5, "a2": -0.1, "a3": 0.2, "a4": -0.6, "a5": 0.1})
    t = s.truth["agreement_surface"]
    # the b's solve a1 = b1 + b2, a2 = b3 + b4 + b5, a3 = b1 - b2, a4 = b3 - b4 + b5, a5 = b3 - b5 (by hand:
    # b1 = .35, b2 = .15, b3 = (-.1 - .6) / 4 + .05 = -.125, b4 = (-.1 + .6) / 2 = .25, b5 = -.175 - .05 = -.225)
    np.testing.assert_allclose([t[k] for k in ("b0", "b1", "b2", "b3", "b4", "b5")], [0, 0.35, 0.15, -0.125, 0.25, -0.225], atol=1e-15)
    assert [t[k] for k in ("a1", "a2", "a3", "a4", "a5")] == [0.5, -0.1, 0.2, -0.6, 0.1] and t["center"] == 3
    d = s.sessions
    x = als.score(d, "wai-sr", items="wai{}")["wai_sr_total"] - 3
    y = als.score(d, "wai-sr", items="wai_t{}")["wai_sr_total"] - 3

    def surface(own, other):
        return t["b1"] * own + t["b2"] * other + t["b3"] * own**2 + t["b4"] * own * other + t["b5"] * other**2

    # what is left after the planted surface of the scored ratings: a patient intercept (SD .4) and a residual (SD .5),
    # in the client's evaluation and (roles swapped) in the therapist's
    for z, pl in ((d["session_eval_client"], surface(x, y)), (d["session_eval_therapist"], surface(y, x))):
        rest = (z - pl).groupby(d["patient"])
        within = np.sqrt((rest.transform(lambda v: v - v.mean()) ** 2).sum() / (len(d) - d["patient"].nunique()))
        assert abs(within - 0.5) < 0.02  # about 2,500 sessions: SE of the SD about .008
        between = rest.mean().std()  # SD of patient means: sqrt(.4^2 + .5^2 / ~8)
        assert abs(between - np.sqrt(0.16 + 0.25 / (len(d) / 300))) < 0.05  # 300 patients: SE about .02


def _scored_pair(study):
    d = study.sessions
    return d.assign(client_wai=als.score(d, "wai-sr", items="wai{}")["wai_sr_total"],
                    therapist_wai=als.score(d, "wai-sr", items="wai_t{}")["wai_sr_total"])


@pytest.mark.slow
def test_planted_surface_recovered_by_multilevel_response_surface():
    """100 studies of 60 patients (about 440 sessions): the mean of the estimates of a1..a5 lies within 3.5 Monte
    Carlo SEs (SD / 10) of the truth, and the 95% intervals cover it at close to their nominal rate."""
    A = {"a1": 0.5, "a2": -0.1, "a3": 0.2, "a4": -0.6, "a5": 0.1}
    truth = np.array(list(A.values()))
    est, covered = [], []
    for seed in range(100):
        s = als.simulate_study(seed=seed, n_therapists=10, patients_per_therapist=6, max_sessions=10, rupture_rate=0.0,
                               therapist_alliance_r=0.3, therapist_alliance_offset=-0.3, agreement_surface=A)
        r = als.response_surface(_scored_pair(s), x="client_wai", y="therapist_wai", outcome="session_eval_client",
                                 patient="patient", scale_midpoint=3, n_boot=0).table.set_index("parameter").loc[list(A)]
        est.append(r["estimate"].to_numpy())
        covered.append(((r["ci_low"] < truth) & (truth < r["ci_high"])).to_numpy())
    est, covered = np.array(est), np.array(covered)
    mc_se = est.std(axis=0, ddof=1) / np.sqrt(len(est))  # about .013-.026
    assert np.all(np.abs(est.mean(axis=0) - truth) < 3.5 * mc_se), (est.mean(axis=0), mc_se)
    assert 0.91 < covered.mean() < 0.99  # 500 intervals at 95%: binomial SD about .01 (achieved .94)


@pytest.mark.slow
def test_linear_agreement_effects_recovered_by_the_apim():
    """A flat surface (a1 = .6, a3 = .2: b1 = .4, b2 = .2) is an APIM with actor effect .4 and partner effect .2 for
    both roles; on patient means (one dyad per patient) over 25 studies of 160 patients the mean estimates lie within
    3.5 Monte Carlo SEs of the truth and the 95% intervals cover it at close to their nominal rate."""
    truth = np.array([0.4, 0.4, 0.2, 0.2])  # client actor, therapist actor, client partner, therapist partner
    est, covered = [], []
    for seed in range(25):
        s = als.simulate_study(seed=100 + seed, n_therapists=20, patients_per_therapist=8, max_sessions=10, rupture_rate=0.0,
                               therapist_alliance_r=0.3, therapist_alliance_offset=-0.3, agreement_surface={"a1": 0.6, "a3": 0.2})
        m = _scored_pair(s).groupby("patient")[["client_wai", "therapist_wai", "session_eval_client", "session_eval_therapist"]].mean()
        long = pd.concat([
            pd.DataFrame({"patient": m.index, "role": "client", "wai": m["client_wai"], "eval": m["session_eval_client"]}),
            pd.DataFrame({"patient": m.index, "role": "therapist", "wai": m["therapist_wai"], "eval": m["session_eval_therapist"]}),
        ], ignore_index=True)
        long = als.partner_scores(long, dyad="patient", role="role", columns="wai")
        e = als.apim(long, actor="wai", partner="wai_partner", outcome="eval", dyad="patient", role="role").effects
        e = e[e["effect"].isin(["actor", "partner"])]
        assert e["role"].tolist() == ["client", "therapist"] * 2 and e["effect"].tolist() == ["actor"] * 2 + ["partner"] * 2
        est.append(e["estimate"].to_numpy())
        covered.append(((e["ci_low"] < truth) & (truth < e["ci_high"])).to_numpy())
    est, covered = np.array(est), np.array(covered)
    mc_se = est.std(axis=0, ddof=1) / np.sqrt(len(est))
    assert np.all(np.abs(est.mean(axis=0) - truth) < 3.5 * mc_se), (est.mean(axis=0), mc_se)
    assert covered.mean() > 0.88  # 100 intervals at 95%: binomial SD about .022


@pytest.mark.parametrize("kw, message", [
    ({"therapist_alliance_r": 1.5}, "therapist_alliance_r"),
    ({"therapist_alliance_r": 0.3, "therapist_alliance_offset": float("inf")}, "therapist_alliance_offset"),
    ({"agreement_surface": {"a4": -0.5}}, "set therapist_alliance_r"),
    ({"therapist_alliance_r": 0.3, "agreement_surface": {"b4": 0.2}}, r"unknown key\(s\) 'b4'"),
    ({"therapist_alliance_r": 0.3, "agreement_surface": [0.5, 0, 0, -0.5, 0]}, "give a mapping"),
    ({"therapist_alliance_r": 0.3, "agreement_surface": {"a4": "big"}}, r"agreement_surface\['a4'\]"),
])
def test_bad_agreement_arguments(kw, message):
    with pytest.raises(als.OptionError, match=message):
        als.simulate_study(seed=1, **kw)
