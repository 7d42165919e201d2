import warnings
import numpy as np
import pandas as pd
import pytest

import alliance_stats as als


def series(vals, pid="a", sessions=None):
    sessions = np.arange(1, len(vals) + 1) if sessions is None else sessions
    return pd.DataFrame({"patient": pid, "session": sessions, "w": vals})


def one(df, **kw):
    return als.detect_ruptures(df, "w", **kw).episodes


# Hand-worked SDs (sample SD of the patient's scores):
# V        [4,4,4,2,4,4]       mean 3.667, SD 0.8165; drop 2 = 2.449 SD
# no rep.  [4,4,4,2,2.5,3,3]   mean 3.214, SD 0.8092; drop 2 = 2.472 SD
# late     [4,4,4,2,2,2,4]     mean 3.143, SD 1.0690; drop 2 = 1.871 SD
# decline  [4,4,4,3.5,3,2.5,4,4] mean 3.6875, SD 0.5863; steps 0.5 = 0.853 SD, 3 steps 1.5 = 2.558 SD


@pytest.mark.parametrize("method", ["stiles2004", "strauss2006"])
def test_single_v(method):
    ep = one(series([4, 4, 4, 2, 4, 4]), method=method)
    assert len(ep) == 1
    e = ep.iloc[0]
    assert (e.pre_session, e.rupture_session, e.pre_score, e.rupture_score, e["drop"]) == (3, 4, 4.0, 2.0, 2.0)
    assert e.drop_sd == pytest.approx(2 / np.std([4, 4, 4, 2, 4, 4], ddof=1))
    assert e.repaired and e.repair_session == 5 and e.sessions_to_repair == 1 and e.n_decline_sessions == 1


@pytest.mark.parametrize("method", ["stiles2004", "strauss2006"])
def test_no_repair_and_partial_repair(method):
    df = series([4, 4, 4, 2, 2.5, 3, 3])
    e = one(df, method=method).iloc[0]
    assert not e.repaired and pd.isna(e.repair_session) and pd.isna(e.sessions_to_repair)
    assert e.drop_sd == pytest.approx(2 / np.std([4, 4, 4, 2, 2.5, 3, 3], ddof=1))
    half = one(df, method=method, repair_to=0.5).iloc[0]  # target 2 + 0.5 * 2 = 3
    assert half.repaired and half.repair_session == 6 and half.sessions_to_repair == 2


def test_repair_outside_window_and_presets_differ():
    df = series([4, 4, 4, 2, 2, 2, 4])  # drop of 1.871 SD: a 1-SD rupture, not a 2-SD one
    assert len(one(df, method="stiles2004")) == 0
    e = one(df, method="strauss2006").iloc[0]
    assert e.repaired and e.repair_session == 7 and e.sessions_to_repair == 3
    e2 = one(df, method="strauss2006", repair_window=2).iloc[0]
    assert not e2.repaired


@pytest.mark.parametrize("method", ["stiles2004", "strauss2006"])
def test_multi_session_decline(method):
    df = series([4, 4, 4, 3.5, 3, 2.5, 4, 4])
    assert len(one(df, method=method)) == 0  # single steps are 0.853 SD
    e = one(df, method=method, max_decline_sessions=3).iloc[0]
    assert (e.pre_session, e.rupture_session, e.n_decline_sessions) == (3, 6, 3)
    assert e["drop"] == pytest.approx(1.5) and e.drop_sd == pytest.approx(1.5 / np.std([4, 4, 4, 3.5, 3, 2.5, 4, 4], ddof=1))
    assert e.repaired and e.repair_session == 7


@pytest.mark.parametrize("method", ["stiles2004", "strauss2006"])
def test_flat_series_and_gap(method):
    assert len(one(series([4.0] * 6), method=method)) == 0
    gap = series([4, 4, 4, 2, 4], sessions=[1, 2, 3, 5, 6])  # the drop spans a missed session
    res = als.detect_ruptures(gap, "w", method=method)
    assert len(res.episodes) == 0 and res.steps_not_assessed == 1
    # 6 rows, 5 steps: 3 compared, 1 across the missed session
    assert res.accounting()[["unit", "status", "n"]].values.tolist() == [
        ["patients", "used", 1], ["session steps", "used", 3], ["session steps", "excluded", 1]]
    miss = series([4, 4, 4, np.nan, 2, 4, 4])  # a missing score breaks the step too
    res = als.detect_ruptures(miss, "w", method=method)
    assert len(res.episodes) == 0 and res.steps_not_assessed == 2 and res.steps_assessed == 4


def test_repair_found_across_a_missed_session():
    df = series([4, 4, 4, 2, 4, 4], sessions=[1, 2, 3, 4, 6, 7])
    e = one(df).iloc[0]
    assert e.repaired and e.repair_session == 6 and e.sessions_to_repair == 2


def test_not_assessable_reported_not_dropped():
    df = pd.concat([series([4, 4, 4, 2, 4, 4], "a"), series([4, 2], "b")], ignore_index=True)
    ep = als.detect_ruptures(df, "w")
    assert ep.not_assessable == ("b",) and ep.n_not_assessable == 1 and ep.n_patients == 2
    summ = als.rupture_summary(ep, df).set_index("patient")
    assert summ.loc["a", "ruptures"] == 1 and summ.loc["a", "repaired"] == 1 and summ.loc["a", "unrepaired"] == 0
    assert summ.loc["a", "ruptures_per_10_sessions"] == pytest.approx(10 / 6)
    assert not summ.loc["b", "assessable"] and pd.isna(summ.loc["b", "ruptures"])


def test_pooled_and_both_sd():
    df = pd.concat([series([4, 4, 4, 2, 4, 4], "a"), series([1, 5, 1, 5, 1, 5], "b")], ignore_index=True)
    sd_all = np.std(df["w"], ddof=1)
    ep = one(df, sd_source="pooled", threshold=1.0)
    a = ep[ep.patient == "a"].iloc[0]
    assert a.drop_sd == pytest.approx(2 / sd_all)
    both = one(df, sd_source="both", threshold=1.0)
    a2 = both[both.patient == "a"].iloc[0]
    assert a2.drop_sd == pytest.approx(2 / max(sd_all, np.std([4, 4, 4, 2, 4, 4], ddof=1)))


def test_bad_input():
    with pytest.raises(als.SessionDataError, match="not sorted"):
        one(series([4, 4, 2], sessions=[2, 1, 3]))
    with pytest.raises(als.SessionDataError, match="appears twice at rows 1, 2"):
        one(series([4, 4, 2], sessions=[1, 2, 2]))
    with pytest.raises(als.ColumnError):
        als.detect_ruptures(series([4, 4]), "nope")
    with pytest.raises(als.OptionError, match="method='smith' is not a valid value; allowed: 'stiles2004', 'strauss2006'"):
        one(series([4, 4, 2]), method="smith")
    interleaved = pd.DataFrame({"patient": ["a", "b", "a"], "session": [1, 1, 2], "w": [4, 4, 4]})
    with pytest.raises(als.SessionDataError, match="not sorted"):
        one(interleaved)


def test_recovers_planted_ruptures():
    st = als.simulate_study(seed=3, n_therapists=20, patients_per_therapist=10, missed_session_rate=0)
    d = st.sessions.assign(w=als.score(st.sessions, "wai-sr", items="wai{}")["wai_sr_total"])
    pl = st.episodes
    ep = als.detect_ruptures(d, "w", method="stiles2004", max_decline_sessions=3).episodes
    det = set(zip(ep.patient, ep.rupture_session))
    hits = sum(any((p, s) in det for s in range(r, t + 1)) for p, r, t in zip(pl.patient, pl.rupture_session, pl.trough_session))
    assert hits / len(pl) > 0.75  # recall of the 2-SD rule; 0.82 at this seed
    # repair status agrees with the planted one in most detected episodes (0.75 at this seed:
    # item noise can keep an observed score below the pre-rupture score after a latent repair)
    rep = {(p, t): r for p, t, r in zip(ep.patient, ep.rupture_session, ep.repaired)}
    agree = [rep[(p, t)] == r for p, t, r in zip(pl.patient, pl.trough_session, pl.repaired) if (p, t) in rep]
    assert len(agree) > 50 and np.mean(agree) > 0.7


def test_input_not_modified():
    df = series([4, 4, 4, 2, 4, 4])
    before = df.copy()
    one(df)
    pd.testing.assert_frame_equal(df, before)


def test_trajectories_closed_forms_and_patterns():
    rng = np.random.default_rng(0)
    s = np.arange(1, 11)
    d = pd.concat(
        [
            series([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "line"),             # slope exactly 1, R2 = 1
            series([4.0, 1.0, 0.0, 1.0, 4.0, 9.0], "parab"),            # (s - 3)^2: quadratic 1, vertex 3
            series(4 + rng.normal(0, 0.05, 10), "flat"),
            series(4.5 - 0.1 * s + rng.normal(0, 0.05, 10), "down"),
            series(3 + 0.04 * (s - 5.5) ** 2 + rng.normal(0, 0.05, 10), "U"),
            series([4, 4, 4, 4, 2, 4, 4, 4, 4, 4.0], "V"),
            series([4, 4, 3], "short"),
        ],
        ignore_index=True,
    )
    tr = als.alliance_trajectories(d, "w").table.set_index("patient")
    assert tr.loc["line", "slope"] == pytest.approx(1.0) and tr.loc["line", "r2_linear"] == pytest.approx(1.0)
    assert tr.loc["parab", "quadratic"] == pytest.approx(1.0) and tr.loc["parab", "vertex_session"] == pytest.approx(3.0)
    assert tr.loc["parab", "r2_quadratic"] == pytest.approx(1.0)
    assert tr.loc["flat", "pattern"] == "stable" and tr.loc["down", "pattern"] == "linear decline"
    assert tr.loc["U", "pattern"] == "U-shaped" and tr.loc["V", "pattern"] == "V-shaped"
    assert tr.loc["V", "repaired_rupture"] and pd.isna(tr.loc["short", "pattern"])
    assert tr.loc[tr["pattern"].isna()].index.tolist() == ["short"] and tr.loc["short", "n_sessions"] == 3


def _outcome_data():
    # 9 patients, 6 sessions each: 3 without ruptures, 3 with a repaired V, 3 with an unrepaired drop
    rows = []
    shapes = {"none": [4, 4, 4, 4, 4, 4], "repaired": [4, 4, 2, 4, 4, 4], "unrepaired": [4, 4, 4, 4, 4, 2]}
    last = {"none": [10, 11, 12], "repaired": [6, 7, 9], "unrepaired": [13, 14, 12]}
    first = [20, 22, 21]
    for status, alli in shapes.items():
        for k in range(3):
            pid = f"{status}{k}"
            phq = np.linspace(first[k], last[status][k], 6)
            for s in range(6):
                rows.append({"patient": pid, "therapist": f"T{k}", "session": s + 1, "w": alli[s] + 0.01 * k, "phq": phq[s]})
    return pd.DataFrame(rows)


def test_rupture_outcome_closed_form():
    d = _outcome_data()
    ep = als.detect_ruptures(d, "w")
    res = als.rupture_outcome(d, ep, outcome="phq", analysis="ancova")
    assert res.groups.set_index("status")["n"].to_dict() == {"none": 3, "repaired": 3, "unrepaired": 3}
    # least squares by hand: last = b0 + b1 repaired + b2 unrepaired + b3 first
    per = d.groupby("patient").agg(first=("phq", "first"), last=("phq", "last"))
    st = per.index.str.rstrip("012")
    X = np.column_stack([np.ones(9), st == "repaired", st == "unrepaired", per["first"]]).astype(float)
    b, rss, *_ = np.linalg.lstsq(X, per["last"].to_numpy(), rcond=None)
    sigma2 = rss[0] / (9 - 4)
    se = np.sqrt(np.diag(sigma2 * np.linalg.inv(X.T @ X)))
    t = res.table.set_index("term")
    np.testing.assert_allclose(t.loc[["Intercept", "status[repaired]", "status[unrepaired]", "first"], "estimate"], b)
    np.testing.assert_allclose(t.loc[["Intercept", "status[repaired]", "status[unrepaired]", "first"], "se"], se)
    e = res.effects.set_index("contrast")
    tr = b[1] / se[1]
    # lower PHQ is better: repaired patients end lower, so r is positive
    assert e.loc["repaired vs none", "r_equivalent"] == pytest.approx(-tr / np.sqrt(tr**2 + 5)) and e.loc["repaired vs none", "r_equivalent"] > 0
    v = np.linalg.inv(X.T @ X) * sigma2
    t3 = (b[1] - b[2]) / np.sqrt(v[1, 1] + v[2, 2] - 2 * v[1, 2])
    assert e.loc["repaired vs unrepaired", "statistic"] == pytest.approx(t3)
    change = als.rupture_outcome(d, ep, outcome="phq", analysis="change")
    g = change.groups.set_index("status")
    assert g.loc["repaired", "mean_change"] == pytest.approx(np.mean([6 - 20, 7 - 22, 9 - 21]))
    ax = res.plot()
    assert len(ax.get_xticklabels()) == 3


def test_rupture_outcome_exclusions_and_errors():
    d = _outcome_data()
    d.loc[(d.patient == "none1") & (d.session > 1), "phq"] = np.nan  # one outcome score left
    ep = als.detect_ruptures(d, "w")
    res = als.rupture_outcome(d, ep, outcome="phq")
    assert res.excluded["fewer than two outcome scores"] == 1
    assert res.groups.set_index("status").loc["none", "n"] == 2
    d.loc[d.patient == "none0", "phq"] = np.nan  # now only one patient without ruptures is left
    with pytest.raises(als.InsufficientDataError, match=r"found \{.*'none': 1"):
        als.rupture_outcome(d, ep, outcome="phq")
    with pytest.raises(als.InsufficientDataError, match="at least two patients without ruptures"):
        als.rupture_outcome(d[~d.patient.str.startswith("none")], als.detect_ruptures(d[~d.patient.str.startswith("none")], "w"), outcome="phq")
    with pytest.raises(als.ArgumentError, match="the result of als.detect_ruptures"):
        als.rupture_outcome(d, pd.DataFrame(), outcome="phq")


def test_rupture_outcome_counts_a_status_group_too_small_to_model():
    d = _outcome_data()
    d = d[~d.patient.isin(["unrepaired1", "unrepaired2"])]  # one unrepaired patient left
    res = als.rupture_outcome(d, als.detect_ruptures(d, "w"), outcome="phq")
    assert res.excluded["in a status group of fewer than 2 patients (unrepaired)"] == 1
    assert res.groups["status"].tolist() == ["none", "repaired"]
    assert "Left out: 1 patients: in a status group of fewer than 2 patients (unrepaired)" in res.summary()
    acc = res.accounting()
    assert acc[acc.status == "used"]["n"].tolist() == [6]
    assert "in a status group of fewer than 2 patients (unrepaired)" in res.methods()


def test_rupture_outcome_with_therapists_uses_the_mixed_model():
    st = als.simulate_study(seed=5, n_therapists=12, patients_per_therapist=8)
    d = st.sessions.assign(w=als.score(st.sessions, "wai-sr", items="wai{}")["wai_sr_total"],
                           phq=als.score(st.sessions, "phq-9", items="phq{}")["phq9_total"])
    ep = als.detect_ruptures(d, "w")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", als.SingularFitWarning)
        res = als.rupture_outcome(d, ep, outcome="phq", therapist="therapist")
        direct = als.lmm("last ~ status + first + (1 | therapist)", res.data)
    t = res.table.set_index("term")
    ref = direct.fixed.set_index("term")
    np.testing.assert_allclose(t.loc["status[repaired]", ["estimate", "se", "df"]].astype(float),
                               ref.loc["status[T.repaired]", ["estimate", "se", "df"]].astype(float))
    assert "lmerTest" in res.model
    e = res.effects.set_index("contrast")
    assert e.loc["repaired vs none", "df"] == pytest.approx(ref.loc["status[T.repaired]", "df"])


def test_episodes_result_filters_profiles_and_reports():
    d = pd.DataFrame({"patient": ["a"] * 8 + ["b"] * 8 + ["c"] * 2, "session": list(range(1, 9)) * 2 + [1, 2],
                      "w": [4, 4, 4, 2, 4, 4, 4, 4] + [4, 4, 4, 4, 2, 2, 2, 2] + [4, 3]})
    before = d.copy()
    res = als.detect_ruptures(d, "w", threshold=1.5)
    pd.testing.assert_frame_equal(d, before)
    assert isinstance(res, als._result.Result) and res.to_frame().equals(res.episodes) and res.to_frame() is not res.episodes
    assert repr(res) == "<RuptureEpisodes: 2 episodes (1 repaired) in 2 of 2 assessable patients; rule 1.5 SD (within)>"
    acc = res.accounting()
    assert acc.loc[acc.status == "excluded", ["unit", "reason", "n"]].values.tolist() == [
        ["patients", "fewer than 3 scored sessions", 1]]
    assert "not assessable (1 of 3)" in res.methods() and "1 (50.0%) were repaired" in res.methods()
    # a filtered result keeps its rules: the summary counts only the kept episodes, c stays not assessable
    rep = res.filter(res.episodes["repaired"])
    assert rep.episodes["patient"].tolist() == ["a"] and rep.rules == res.rules
    summ = als.rupture_summary(rep, d).set_index("patient")
    assert summ.loc["a", "ruptures"] == 1 and summ.loc["b", "ruptures"] == 0 and not summ.loc["c", "assessable"]
    with pytest.raises(als.ArgumentError, match="boolean mask"):
        res.filter([0, 1])
    # the profile by hand: a's V 4,4,4,[2],4,4,4; b's drop 4,4,4,[2],2,2,2 around session 5 (session 8 is b's last)
    prof = res.profile(window=3)
    assert prof[prof.patient == "a"].set_index("offset")["score"].to_dict() == {-3: 4.0, -2: 4.0, -1: 4.0, 0: 2.0, 1: 4.0, 2: 4.0, 3: 4.0}
    assert prof[prof.patient == "b"].set_index("offset")["score"].to_dict() == {-3: 4.0, -2: 4.0, -1: 4.0, 0: 2.0, 1: 2.0, 2: 2.0, 3: 2.0}
    assert res.profile(window=1)["offset"].tolist() == [-1, 0, 1, -1, 0, 1]
    assert als.rupture_profile(res, window=1).equals(res.profile(window=1))
    with pytest.raises(als.ArgumentError, match="result of als.detect_ruptures"):
        als.rupture_summary(res.episodes, d)


def test_profile_skips_missed_sessions_and_missing_scores():
    d = pd.DataFrame({"patient": "a", "session": [1, 2, 3, 4, 6, 7], "w": [4, 4, 4, 2, np.nan, 4.0]})
    res = als.detect_ruptures(d, "w", threshold=1.0)
    prof = res.profile(window=3)
    # session 5 was missed and session 6 has no score: offsets +1 and +2 are absent, +3 (session 7) is there
    assert prof.set_index("offset")["score"].to_dict() == {-3: 4.0, -2: 4.0, -1: 4.0, 0: 2.0, 3: 4.0}
