import matplotlib.pyplot as plt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance_stats as als

REF = pd.read_csv(Path(__file__).parent / "reference" / "pqs_reference.csv")
PILES = np.repeat(np.arange(1, 10), als.PQS_DISTRIBUTION)


@pytest.fixture(scope="module")
def sorts():
    return als.read_qsorts(als.sample_path("pqs"), session="session_no", patient="client_id", rater="judge", items="PQS_{}").data


def _sort_frame(rows, **ids):
    df = pd.DataFrame(rows, columns=[f"pqs{i}" for i in range(1, 101)])
    for k, v in ids.items():
        df.insert(0, k, v)
    return als.read_qsorts(df, session="session", rater="rater" if "rater" in ids else None).data


def test_prototype_fit_hand_worked():
    a = PILES.copy()                  # items 1..100 in ascending piles
    b = PILES[::-1].copy()            # the reverse sort
    sorts = _sort_frame([a, b], session=[1, 2])
    proto = pd.DataFrame({"item": np.arange(100, 0, -1), "ascending": np.arange(100, 0, -1), "same_as_a": a[::-1]})
    res = als.pqs_prototype_fit(sorts, proto)
    fit = res.table
    assert res.prototypes == ["ascending", "same_as_a"] and "2 valid sorts" in res.methods()
    # same_as_a equals sort a item for item (the item column is in reverse order): r = 1 and -1
    assert fit["same_as_a"].tolist() == pytest.approx([1.0, -1.0])
    # r between the piles and the item numbers 1..100, worked out from the definition
    x, y = a.astype(float), np.arange(1, 101, dtype=float)
    r = ((x - x.mean()) * (y - y.mean())).sum() / np.sqrt(((x - x.mean()) ** 2).sum() * ((y - y.mean()) ** 2).sum())
    assert fit.loc[0, "ascending"] == pytest.approx(r) and fit.loc[1, "ascending"] == pytest.approx(-r)


@pytest.mark.parametrize(
    "proto, message",
    [
        (pd.DataFrame({"p": np.arange(99)}), "all 100 PQS items"),
        (pd.DataFrame({"p": [np.nan] + list(range(99))}), "prototype 'p' has missing or non-numeric ratings"),
        (pd.DataFrame({"p": [5] * 100}), "same rating"),
        (pd.DataFrame({"item": [1] * 100, "p": range(100)}), "item numbers 1 ... 100"),
    ],
)
def test_prototype_validation(proto, message):
    sorts = _sort_frame([PILES], session=[1])
    with pytest.raises(als.DataFileError, match=message):
        als.pqs_prototype_fit(sorts, proto)


def test_flagged_sorts_never_enter(sorts):
    bad = sorts.copy()
    bad.loc[0, "qsort_valid"] = False
    fit = als.pqs_prototype_fit(bad, pd.DataFrame({"p": np.arange(100)}))
    assert len(fit.to_frame()) == len(sorts) - 1 and fit.n_excluded == 1
    assert fit.accounting()["n"].tolist() == [len(sorts) - 1, 1] and "1 sort(s) flagged" in fit.methods()
    rel = als.pqs_reliability(bad, session=["patient", "session"], rater="rater")
    assert rel.n_excluded == 1 and rel.sessions_not_rated_by_every_judge == 1  # the session of the flagged sort now has one judge
    assert rel.accounting()[["unit", "status", "n"]].values.tolist() == [
        ["sorts", "used", len(sorts) - 1], ["sorts", "excluded", 1],
        ["sessions (item ICCs)", "used", 68], ["sessions (item ICCs)", "excluded", 1]]
    res = als.pqs_items(bad)
    items = res.table
    assert items["n"].iloc[0] == len(sorts) - 1 and res.n_excluded == 1 and res.n_sorts == len(sorts) - 1
    assert res.accounting()["n"].tolist() == [len(sorts) - 1, 1]
    raw = sorts.drop(columns=["qsort_valid", "qsort_problem"])
    with pytest.raises(als.ColumnError, match="read them with als.read_qsorts"):
        als.pqs_items(raw)


def test_pqs_items_hand_worked():
    a, b = PILES.copy(), PILES[::-1].copy()
    sorts = _sort_frame([a, a, b], session=[1, 2, 3])
    it = als.pqs_items(sorts, n_extreme=5).table.set_index("item")
    # item 100: piles 9, 9, 1 -> mean 19/3; item 1: 1, 1, 9 -> 11/3
    assert it.loc["pqs100", "mean"] == pytest.approx(19 / 3) and it.loc["pqs1", "mean"] == pytest.approx(11 / 3)
    assert it.loc["pqs100", "sd"] == pytest.approx(np.std([9, 9, 1], ddof=1))
    assert it.loc["pqs100", "most_characteristic"] and it.loc["pqs1", "least_characteristic"]
    assert it["most_characteristic"].sum() == 5 and it.loc["pqs100", "rank"] == pytest.approx(3.0)  # 5 items tie at 19/3


def test_pqs_items_by_group(sorts):
    res = als.pqs_items(sorts, by="therapy")
    by = res.table
    ax = res.plot(group="CBT")
    assert len(ax.collections[1].get_offsets()) == 100
    with pytest.raises(als.OptionError, match="group=None"):
        res.plot()
    plt.close("all")
    assert set(by["therapy"]) == {"CBT", "PDT"} and len(by) == 200
    assert (by.groupby("therapy")["most_characteristic"].sum() == 10).all()


def test_reliability_against_psych_and_spearman_brown(sorts):
    rel = als.pqs_reliability(sorts, session=["patient", "session"], rater="rater")
    items = rel.items.head(10)
    np.testing.assert_allclose(items["icc2k"], REF[REF.quantity == "ICC2k"].sort_values("row").value, rtol=1e-10)
    np.testing.assert_allclose(items["icc2"], REF[REF.quantity == "ICC2"].sort_values("row").value, rtol=1e-10)
    s = rel.sessions
    assert (s["k"] == 2).all() and len(s) == 69
    # Spearman-Brown for two judges: 2r / (1 + r)
    np.testing.assert_allclose(s["spearman_brown"], 2 * s["mean_r"] / (1 + s["mean_r"]))
    first = sorts[(sorts.patient == s.loc[0, "patient"]) & (sorts.session == s.loc[0, "session"])]
    x = first[[f"pqs{i}" for i in range(1, 101)]].to_numpy(float)
    assert s.loc[0, "mean_r"] == pytest.approx(np.corrcoef(x)[0, 1])


def test_spearman_brown_three_judges_hand_worked():
    rng = np.random.default_rng(1)
    base = PILES.copy()
    sorts = [base, base, rng.permutation(base)]
    df = _sort_frame(sorts, session=[1, 1, 1], rater=["a", "b", "c"])
    s = als.pqs_reliability(df, session="session", rater="rater").sessions.iloc[0]
    r_ac = np.corrcoef(sorts[0], sorts[2])[0, 1]
    rbar = (1 + 2 * r_ac) / 3
    assert s["mean_r"] == pytest.approx(rbar) and s["spearman_brown"] == pytest.approx(3 * rbar / (1 + 2 * rbar))


def test_q_factor_analysis_against_r(sorts):
    j1 = sorts[sorts.rater == "J1"].head(12)
    qf = als.q_factor_analysis(j1, n_factors=3)
    np.testing.assert_allclose(qf.eigenvalues, REF[REF.quantity == "eigenvalues"].sort_values("row").value, atol=1e-10)
    L = REF[REF.quantity == "loadings"].pivot(index="row", columns="col", values="value").to_numpy()
    ours = qf.loadings[["F1", "F2", "F3"]].to_numpy()
    for j in range(3):  # a factor's sign is arbitrary
        sign = np.sign(ours[:, j] @ L[:, j])
        np.testing.assert_allclose(ours[:, j], sign * L[:, j], atol=1e-10)
    assert qf.variance["variance_pct"].sum() == pytest.approx(100 * (L**2).sum() / 12)


def test_q_factor_rule_finds_the_two_therapy_types(sorts):
    qf = als.q_factor_analysis(sorts[sorts.rater == "J1"])
    assert qf.n_factors == 2 and "eigenvalue > 1" in qf.rule
    d = qf.loadings.dropna(subset=["defines"])
    # each factor is defined by sorts of one therapy type
    assert d.groupby("defines")["therapy"].nunique().eq(1).all()
    assert qf.arrays[["F1", "F2"]].std().round(6).tolist() == [1.0, 1.0]


def pa_key(sorts):
    return sorts.loc[0, "patient"], sorts.loc[0, "session"]


def test_pqs_alliance_recovers_linked_items(sorts):
    d = als.read_sessions(als.sample_path("sessions_csv"), patient="client_id", session="session_no", instruments={"wai-sr": "WAISR_{}"}).data
    pa = als.pqs_alliance(sorts, d, alliance="wai_sr_total", session=["patient", "session"]).table
    linked = {f"pqs{i}" for i in als.load_sample("truth")["pqs_linked_items"]}
    top = set(pa.head(12)["item"])
    assert len(top & linked) >= 10
    assert pa["n"].iloc[0] == 69 and (pa["p_fdr"] >= pa["p"]).all()
    # the correlation of the top item, recomputed by hand from the judges' mean sort
    it = pa.loc[0, "item"]
    m = sorts.groupby(["patient", "session"])[it].mean()
    a = d.set_index(["patient", "session"])["wai_sr_total"].reindex(m.index)
    assert pa.loc[0, "r"] == pytest.approx(np.corrcoef(m, a)[0, 1])
    with pytest.raises(als.AllianceStatsError, match="only 0 sorted session"):
        als.pqs_alliance(sorts.assign(patient="X"), d, alliance="wai_sr_total", session=["patient", "session"])


def test_pqs_items_unknown_group_column(sorts):
    with pytest.raises(als.ColumnError, match="by='nope' is not a column"):
        als.pqs_items(sorts, by="nope")


def test_pqs_results_share_the_result_interface(sorts):
    from alliance_stats._result import ACCOUNTING_COLUMNS, Result

    d = als.read_sessions(als.sample_path("sessions_csv"), patient="client_id", session="session_no", instruments={"wai-sr": "WAISR_{}"}).data
    results = [als.pqs_prototype_fit(sorts, pd.DataFrame({"p": np.arange(100)})),
               als.pqs_reliability(sorts, session=["patient", "session"], rater="rater"),
               als.pqs_alliance(sorts, d, alliance="wai_sr_total", session=["patient", "session"])]
    for res, cls in zip(results, (als.PQSPrototypeFit, als.PQSReliability, als.PQSAlliance)):
        assert isinstance(res, cls) and isinstance(res, Result)
        assert repr(res).startswith(f"<{cls.__name__}: ") and "\n" not in repr(res)
        assert res.summary().startswith(res.title) and "<table" in res._repr_html_()
        apa = res.to_apa()
        assert len(apa) == len(res.to_frame()) and all(apa[c].map(lambda v: isinstance(v, str)).all() for c in apa.columns)
        assert tuple(res.accounting().columns) == ACCOUNTING_COLUMNS and res.methods().endswith(".")
        t = res.to_frame()
        t["changed"] = 1  # a copy: the result is unchanged
        assert "changed" not in res.to_frame().columns
        with pytest.raises(als.ArgumentError, match="no standard figure"):
            res.plot()
