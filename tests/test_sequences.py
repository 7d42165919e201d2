import numpy as np
import pandas as pd
import pytest
from scipy import stats
import matplotlib.pyplot as plt

import alliance_stats as als

NAMES = {"M": "magical", "W": "working", "T": "therapeutic", "S": "structuralizing"}


def seq(codes, pid, sessions=None):
    sessions = range(1, len(codes) + 1) if sessions is None else sessions
    return pd.DataFrame({"patient": pid, "session": list(sessions), "state": [NAMES.get(c, c) for c in codes]})


def test_transitions_hand_worked():
    # a: W W T T S (4 transitions); b: W T _ T (session 3 missed: 1 transition, 1 break)
    d = pd.concat([seq("WWTTS", "a"), seq("WTT", "b", [1, 2, 4])], ignore_index=True)
    res = als.transitions(d, "state", states=als.ALLIANCE_TYPES)
    C = res.counts
    assert res.n_transitions == 5 and res.n_breaks == 1
    assert C.loc["working", "working"] == 1 and C.loc["working", "therapeutic"] == 2
    assert C.loc["therapeutic", "therapeutic"] == 1 and C.loc["therapeutic", "structuralizing"] == 1
    assert C.to_numpy().sum() == 5
    P = res.probabilities
    assert P.loc["working", "therapeutic"] == pytest.approx(2 / 3) and P.loc["therapeutic", "structuralizing"] == 0.5
    assert P.loc["magical"].isna().all()  # never left: no estimate
    assert res.expected_duration["working"] == pytest.approx(1.5) and res.expected_duration["therapeutic"] == 2.0
    assert res.stationary.isna().all()
    # Wilson interval for 2 of 3
    z = stats.norm.ppf(0.975)
    p, n = 2 / 3, 3
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    assert res.ci_low.loc["working", "therapeutic"] == pytest.approx(centre - half)
    assert res.ci_high.loc["working", "therapeutic"] == pytest.approx(centre + half)
    # G2 on the 2 x 3 table of used origins (W, T) and destinations (W, T, S)
    O = np.array([[1, 2, 0], [0, 1, 1]], float)
    E = O.sum(1, keepdims=True) * O.sum(0, keepdims=True) / 5
    g2 = 2 * sum(o * np.log(o / e) for o, e in zip(O.ravel(), E.ravel()) if o > 0)
    assert res.test["g2"] == pytest.approx(g2) and res.test["df"] == 2
    assert "5 transitions" in res.summary() and "<table" in res._repr_html_()


def test_stationary_distribution_hand_worked():
    res = als.transitions(seq("AABABBA", "a"), "state")
    np.testing.assert_allclose(res.probabilities.to_numpy(), [[1 / 3, 2 / 3], [2 / 3, 1 / 3]])
    np.testing.assert_allclose(res.stationary.to_numpy(), [0.5, 0.5])


def test_transitions_on_simulated_types_recover_the_matrix():
    st = als.simulate_study(seed=4, n_therapists=40, patients_per_therapist=10, missed_session_rate=0)
    res = als.transitions(st.sessions, "alliance_type", states=als.ALLIANCE_TYPES)
    np.testing.assert_allclose(res.probabilities.to_numpy(), st.type_transitions.to_numpy(), atol=0.04)
    inside = (res.ci_low.to_numpy() <= st.type_transitions.to_numpy()) & (st.type_transitions.to_numpy() <= res.ci_high.to_numpy())
    assert inside.mean() >= 0.8
    assert res.test["p"] < 1e-10


def test_transition_errors():
    with pytest.raises(als.ColumnError, match=r"value\(s\) \['X'\] that are not among"):
        als.transitions(seq("WX", "a"), "state", states=als.ALLIANCE_TYPES)
    with pytest.raises(als.SessionDataError, match="appears twice"):
        als.transitions(seq("WW", "a", [1, 1]), "state")
    with pytest.raises(als.ColumnError):
        als.transitions(seq("WW", "a"), "nope")


def test_lag_sequential_worked_example():
    # X Y X Y Z X Y: lag-1 pairs XY YX XY YZ ZX XY (N = 6); given X: 3, target Y: 3, X->Y: 3
    d = pd.DataFrame({"patient": "a", "session": range(1, 8), "code": list("XYXYZXY")})
    r = als.lag_sequential(d, "code", given="X", target="Y").table.iloc[0]
    assert (r.n_pairs, r.n_given, r.n_target, r.n_given_target) == (6, 3, 3, 3)
    assert r.p_target_given == 1.0 and r.p_target == 0.5
    assert r.z == pytest.approx(0.5 / np.sqrt(0.5 * 0.5 * 0.5 / 3))  # 2.449
    assert r.yules_q == 1.0
    lag2 = als.lag_sequential(d, "code", given=["X"], target=["X", "Z"], lag=2).table
    assert lag2["n_pairs"].tolist() == [5, 5]
    # X at 1,3,6 -> t+2 = X(3), Z(5), (8 absent): X->X 1, X->Z 1
    assert lag2["n_given_target"].tolist() == [1, 1]


def test_lag_sequential_gap_breaks_pairs():
    d = pd.DataFrame({"patient": "a", "session": [1, 2, 4, 5], "code": list("XYXY")})
    res = als.lag_sequential(d, "code", given="X", target="Y")
    r = res.table.iloc[0]
    assert r.n_pairs == 2 and r.n_given_target == 2
    assert res.pairs_not_counted == 1  # sessions 2 -> 4 span a gap
    assert res.accounting()["n"].tolist() == [2, 1] and res.to_frame().equals(res.table)
    assert "2 pairs of sessions 1 apart (1 not counted" in res.methods()
    ax = res.plot()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["X → Y"]
    assert len(ax.containers) == 1 and len(ax.containers[0]) == 1  # one bar (z is undefined here: P(T) = 1)
    plt.close("all")


def test_plot_transitions():
    res = als.transitions(seq("WWTTSWT", "a"), "state", states=als.ALLIANCE_TYPES)
    ax = res.plot()
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 16 and texts.count("–") == 4  # the magical row was never left
    assert [t.get_text() for t in ax.get_xticklabels()] == list(als.ALLIANCE_TYPES)
    img = ax.images[0].get_array()
    assert img[1, 2] == pytest.approx(res.probabilities.loc["working", "therapeutic"])
