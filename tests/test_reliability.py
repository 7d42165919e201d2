from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alliance_stats as als

REF = Path(__file__).parent / "reference"


@pytest.fixture(scope="module")
def psych():
    return pd.read_csv(REF / "psych_reliability.csv")


def _check(got, ref):
    assert got["n"] == ref["n"] and got["n_items"] == ref["n_items"]
    for col in ("alpha", "alpha_ci_low", "alpha_ci_high", "mean_r"):
        assert got[col] == pytest.approx(ref[col], rel=1e-8), col
    # psych::omega fits minres with optim's default tolerance; we iterate to 1e-12
    assert got["omega_total"] == pytest.approx(ref["omega_total"], abs=1e-6)


def test_wai_sr_against_psych(psych):
    items = pd.read_csv(REF / "reliability_wai_sr_items.csv")
    got = als.reliability(items, "wai-sr", items="wai{}").table.set_index("scale")
    ref = psych[psych.dataset == "wai_sr_sim"].set_index("scale")
    for scale in ("task", "bond", "goal", "total"):
        _check(got.loc[scale], ref.loc[scale])


def test_bfi_with_reversed_item_against_psych(psych):
    items = pd.read_csv(REF / "reliability_bfi_agreeableness.csv")
    key = {"name": "t-bfi-agree", "n_items": 5, "scale": [1, 6], "subscales": {}, "reversed": [1]}
    als.register_instrument(key, replace=True)
    got = als.reliability(items, "t-bfi-agree", items="A{}").table.iloc[0]
    _check(got, psych[psych.dataset == "bfi_agreeableness"].iloc[0])


def test_listwise_exclusion_counted():
    items = pd.read_csv(REF / "reliability_wai_sr_items.csv").astype(float)
    items.loc[[0, 5], "wai3"] = np.nan
    r = als.reliability(items, "wai-sr", items="wai{}").table.set_index("scale")
    assert r.loc["bond", "n"] == 398 and r.loc["bond", "n_excluded"] == 2
    assert r.loc["task", "n_excluded"] == 0


def test_constant_item_is_an_error():
    df = pd.DataFrame({f"w{i}": [3, 4, 5, 2] for i in range(1, 13)})
    df["w3"] = 4
    with pytest.raises(als.AllianceStatsError, match=r"scale 'bond'.*\['w3'\] do not vary"):
        als.reliability(df, "wai-sr", items="w{}", scales=["bond"])


def test_reliable_change_hand_worked():
    # SD_pre = 5, r_xx = .84: SE = 5 * sqrt(.16) = 2, S_diff = 2 * sqrt(2) = 2.8284, 1.96 * S_diff = 5.544
    df = pd.DataFrame({"pre": [20, 20, 20, 10, 20], "post": [10, 16, 27, 13, np.nan]})
    res = als.reliable_change(df, pre="pre", post="post", reliability=0.84, sd=5, cutoff=12, higher_is_better=False)
    out = res.table
    np.testing.assert_allclose(out["rc"].iloc[:4], [-10 / np.sqrt(8), -4 / np.sqrt(8), 7 / np.sqrt(8), 3 / np.sqrt(8)])
    assert out["category"].astype(object).iloc[:4].tolist() == ["recovered", "unchanged", "deteriorated", "unchanged"]
    assert out["reliable"].tolist() == [True, False, True, False, False]
    assert pd.isna(out["category"].iloc[4])
    assert res.s_diff == pytest.approx(2 * np.sqrt(2)) and res.n_not_classified == 1
    assert res.se == pytest.approx(2.0) and res.change_needed == pytest.approx(1.96 * 2 * np.sqrt(2))
    assert res.counts()["patients"].tolist() == [1, 0, 2, 1]
    assert res.accounting()["n"].tolist() == [4, 1] and df.shape == (5, 2)
    assert "at least 5.54 points" in res.methods() and res.to_frame()["pre"].tolist()[:4] == [20, 20, 20, 10]
    # the same improvement without passing the cut-off is "improved"
    out2 = als.reliable_change(pd.DataFrame({"pre": [25], "post": [15]}), pre="pre", post="post", reliability=0.84, sd=5, cutoff=12, higher_is_better=False).table
    assert out2["category"].iloc[0] == "improved"
    # a reliable improvement that starts below the cut-off crosses nothing: "improved", not "recovered"
    out3 = als.reliable_change(pd.DataFrame({"pre": [11], "post": [2]}), pre="pre", post="post", reliability=0.84, sd=5, cutoff=12, higher_is_better=False).table
    assert out3["rc"].iloc[0] == pytest.approx(-9 / np.sqrt(8)) and out3["category"].iloc[0] == "improved"


def test_reliable_change_default_sd_and_direction():
    df = pd.DataFrame({"pre": [2.0, 4.0, 3.0], "post": [4.0, 4.0, 3.0]})  # SD of pre = 1
    out = als.reliable_change(df, pre="pre", post="post", reliability=0.75).table
    # SE = 1 * .5, S_diff = .7071: change of 2 -> RC = 2.828 (improved, higher is better)
    assert out["rc"].iloc[0] == pytest.approx(2 / np.sqrt(0.5))
    assert out["category"].astype(object).tolist() == ["improved", "unchanged", "unchanged"]


def test_reliable_change_errors():
    df = pd.DataFrame({"pre": [1, 2], "post": [1, "x"]})
    with pytest.raises(als.AllianceStatsError, match="reliability must lie strictly between 0 and 1"):
        als.reliable_change(df, pre="pre", post="pre", reliability=1.0)
    with pytest.raises(als.AllianceStatsError, match="'post' holds values that are not numbers at rows 1 \\(values 'x'\\)"):
        als.reliable_change(df, pre="pre", post="post", reliability=0.8)
    with pytest.raises(als.ColumnError):
        als.reliable_change(df, pre="nope", post="post", reliability=0.8)


def test_clinical_cutoffs_hand_worked():
    # symptoms (lower is better): M_dys 20, SD 5; M_func 5, SD 3
    c = als.clinical_cutoffs(mean_dysfunctional=20, sd_dysfunctional=5, mean_functional=5, sd_functional=3, higher_is_better=False)
    assert c.loc["a", "value"] == 10 and c.loc["b", "value"] == 11
    assert c.loc["c", "value"] == pytest.approx((5 * 5 + 3 * 20) / 8)  # 10.625
    up = als.clinical_cutoffs(mean_dysfunctional=3, sd_dysfunctional=0.5, mean_functional=4.5, sd_functional=0.25)
    assert up.loc["a", "value"] == 4.0 and up.loc["b", "value"] == 4.0
    with pytest.raises(als.AllianceStatsError, match="sd_functional must be positive"):
        als.clinical_cutoffs(mean_dysfunctional=1, sd_dysfunctional=1, mean_functional=1, sd_functional=0)


def test_pre_post_feeds_reliable_change():
    # first and last scored session per patient; one score: no post; session order, not row order
    d = pd.DataFrame({"patient": ["a", "a", "a", "b", "c", "c"], "session": [3, 1, 2, 1, 1, 2],
                      "phq": [9, 20, 15, 12, np.nan, 14]})
    pp = als.pre_post(d, "phq")
    assert pp["patient"].tolist() == ["a", "b", "c"]
    assert pp["pre"].tolist() == [20.0, 12.0, 14.0] and pp["post"].tolist()[0] == 9.0
    assert pp["post"].isna().tolist() == [False, True, True] and pp["n_scores"].tolist() == [3, 1, 1]
    res = als.reliable_change(pp, reliability=0.84, sd=5, higher_is_better=False)
    # a: change -11, S_diff 2.828: RC = -3.89, reliable improvement
    assert res.table["rc"].iloc[0] == pytest.approx(-11 / np.sqrt(8)) and res.table["category"].iloc[0] == "improved"
    assert res.n_not_classified == 2
