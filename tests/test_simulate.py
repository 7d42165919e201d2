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
