import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alliance_stats as als


def frame(n_items, values, prefix="i"):
    """One-row frame with items i1..in; `values` is a constant or a {item: value} dict over a base."""
    if isinstance(values, dict):
        base = values.get("base", 0)
        row = {f"{prefix}{k}": values.get(k, base) for k in range(1, n_items + 1)}
    else:
        row = {f"{prefix}{k}": values for k in range(1, n_items + 1)}
    return pd.DataFrame([row])


# Hand-worked cases: (instrument, n_items, item values, expected scores).
# Reversal is (min + max) - x; scores are means or sums of the (reversed) items.
CASES = [
    # WAI-SR 1-5, no reversed items; task 1,2,10,12 = 5,5,5,5; others 3 -> task 5, bond 3, goal 3
    ("wai-sr", 12, {"base": 3, 1: 5, 2: 5, 10: 5, 12: 5}, {"task": 5.0, "bond": 3.0, "goal": 3.0, "total": 44 / 12}),
    # WAI-S 1-7, all 6; reversed 4 and 10 -> 2; goal (4,6,10,11) = (2+6+2+6)/4 = 4; total (10*6+2*2)/12
    ("wai-s", 12, 6, {"task": 6.0, "bond": 6.0, "goal": 4.0, "total": 64 / 12}),
    # WAI-36 client 1-7 sums, all 7; reversed items -> 1. task has reversed 7,11,15,31,33 (5 of 12):
    # 7*7 + 5*1 = 54; bond reversed 1,20,29 (3): 9*7 + 3 = 66; goal reversed 3,9,10,12,27,34 (6): 6*7+6 = 48
    ("wai-36-client", 36, 7, {"task": 54.0, "bond": 66.0, "goal": 48.0, "total": 168.0}),
    ("wai-36-therapist", 36, 7, {"task": 54.0, "bond": 66.0, "goal": 48.0, "total": 168.0}),
    ("wai-36-observer", 36, 7, {"task": 54.0, "bond": 66.0, "goal": 48.0, "total": 168.0}),
    # CALPAS means, no reversed items in the provisional key
    ("calpas-p", 24, {"base": 4, 1: 7, 6: 7}, {"patient_commitment": 5.0, "patient_working_capacity": 4.0, "total": 102 / 24}),
    ("calpas-t", 24, 2, {"working_strategy_consensus": 2.0, "total": 2.0}),
    ("calpas-r", 24, 3, {"therapist_understanding_involvement": 3.0, "total": 3.0}),
    # HAq-II 1-6 mean, reversed 4,8,11,16,19 -> 7 - 6 = 1: (14*6 + 5*1)/19
    ("haq-ii", 19, 6, {"total": 89 / 19}),
    # SRS / ORS: visual-analogue 0-10 with decimals, sum
    ("srs", 4, {1: 9.5, 2: 8.0, 3: 10.0, 4: 7.25}, {"total": 34.75}),
    ("ors", 4, {1: 2.5, 2: 5.0, 3: 6.0, 4: 4.5}, {"total": 18.0}),
    ("phq-9", 9, {"base": 1, 1: 3, 9: 0}, {"total": 10.0}),
    ("gad-7", 7, 2, {"total": 14.0}),
    ("bdi-ii", 21, {"base": 1, 21: 3}, {"total": 23.0}),
    # OQ-45 0-4 sums, all 4; reversed 1,12,13,20,21,24,31,37,43 -> 0.
    # SD (25 items) reversed 13,24,31 -> 22*4 = 88; IR (11) reversed 1,20,37,43 -> 7*4 = 28;
    # SR (9) reversed 12,21 -> 7*4 = 28; total 36*4 = 144
    ("oq-45", 45, 4, {"symptom_distress": 88.0, "interpersonal_relations": 28.0, "social_role": 28.0, "total": 144.0}),
    # CORE-OM 0-4 mean x 10, all 4; reversed 3,4,7,12,19,21,31,32 -> 0.
    # wellbeing 4,14,17,31: 2 reversed -> (4+4)/4*10 = 20; risk none reversed -> 40;
    # total (26*4)/34*10
    ("core-om", 34, 4, {"wellbeing": 20.0, "risk": 40.0, "total": 1040 / 34}),
    # CORE-10 0-4 sum, all 3; reversed 2 and 3 -> 1: 8*3 + 2 = 26
    ("core-10", 10, 3, {"total": 26.0}),
]


@pytest.mark.parametrize("name, n, values, expected", CASES, ids=[c[0] for c in CASES])
def test_hand_worked_scores(name, n, values, expected):
    df = frame(n, values)
    out = als.score(df, name, items="i{}")
    prefix = als.get_instrument(name).prefix
    for scale, val in expected.items():
        assert out.loc[0, f"{prefix}_{scale}"] == pytest.approx(val, rel=1e-12), scale
    assert out.loc[0, f"{prefix}_n_missing"] == 0


def test_output_columns_and_alignment():
    df = pd.DataFrame({f"wai{i}": [4, 5, 3] for i in range(1, 13)}, index=["a", "b", "c"])
    out = als.score(df, "wai-sr", items="wai{}")
    assert list(out.columns) == ["wai_sr_task", "wai_sr_bond", "wai_sr_goal", "wai_sr_total", "wai_sr_n_missing"]
    assert list(out.index) == ["a", "b", "c"]
    assert out["wai_sr_total"].tolist() == [4.0, 5.0, 3.0]


def test_prorating_and_missing_rule():
    # PHQ-9: one missing item may be prorated (sum of 8 answered = 16 -> 16/8 * 9 = 18)
    df = frame(9, 2)
    df.loc[0, "i4"] = np.nan
    out = als.score(df, "phq-9", items="i{}")
    assert out.loc[0, "phq9_total"] == 18.0 and out.loc[0, "phq9_n_missing"] == 1
    df.loc[0, "i5"] = np.nan  # two missing: more than max_missing = 1
    assert np.isnan(als.score(df, "phq-9", items="i{}").loc[0, "phq9_total"])
    # WAI-SR: 1 missing per subscale allowed, 3 for the total
    w = frame(12, 4)
    w.loc[0, ["i1", "i2"]] = np.nan  # two task items missing
    out = als.score(w, "wai-sr", items="i{}")
    assert np.isnan(out.loc[0, "wai_sr_task"])
    assert out.loc[0, "wai_sr_bond"] == 4.0 and out.loc[0, "wai_sr_total"] == 4.0
    w.loc[0, ["i3", "i4"]] = np.nan  # four missing in total
    assert np.isnan(als.score(w, "wai-sr", items="i{}").loc[0, "wai_sr_total"])


def test_scoring_override():
    out = als.score(frame(12, 4), "wai-sr", items="i{}", scoring="sum", prefix="w")
    assert out.loc[0, "w_total"] == 48.0 and out.loc[0, "w_task"] == 16.0


def test_item_specs_list_dict_pattern_auto():
    df = pd.DataFrame({f"GAD7_{i:02d}": [1] for i in range(1, 8)})
    cols = [f"GAD7_{i:02d}" for i in range(1, 8)]
    a = als.score(df, "gad-7", items=cols)
    b = als.score(df, "gad-7", items={i: c for i, c in enumerate(cols, 1)})
    c = als.score(df, "gad-7", items="GAD7_{:02d}")
    d = als.score(df, "gad-7")  # auto-detected: gad7_01 .. gad7_07, case-insensitive
    for x in (a, b, c, d):
        assert x.loc[0, "gad7_total"] == 7.0


@pytest.mark.parametrize(
    "items, message",
    [
        ("wai{}", r"item column\(s\) \['wai1'"),
        ("wai", "not a pattern"),
        (["a", "b"], "has 12 items but items= lists 2"),
        ({1: "i1"}, r"missing \[2, 3"),
        (None, "could not find the 12 item columns of 'wai-sr'"),
    ],
)
def test_item_spec_errors(items, message):
    with pytest.raises(als.ColumnError, match=message):
        als.score(frame(12, 3), "wai-sr", items=items)


def test_out_of_range_names_column_rows_values():
    df = pd.DataFrame({f"p{i}": [0, 1, 2, 3] for i in range(1, 10)}, index=[10, 11, 12, 13])
    df.loc[12, "p4"] = 4
    df.loc[13, "p4"] = -1
    with pytest.raises(als.ItemRangeError) as e:
        als.score(df, "phq-9", items="p{}")
    err = e.value
    assert isinstance(err, ValueError)
    assert err.column == "p4" and err.rows == [12, 13] and err.values == [4, -1] and err.allowed == (0, 3)
    assert "'p4'" in str(err) and "12, 13" in str(err) and "0..3" in str(err) and "on_invalid='nan'" in str(err)


def test_non_numeric_and_non_integer_values():
    df = frame(9, 1, prefix="p").astype(object)
    df.loc[0, "p2"] = "often"
    with pytest.raises(als.ItemRangeError, match="'often'"):
        als.score(df, "phq-9", items="p{}")
    df.loc[0, "p2"] = 1.5  # not a whole number on a Likert scale
    with pytest.raises(als.ItemRangeError, match="1.5"):
        als.score(df, "phq-9", items="p{}")
    df.loc[0, "p2"] = " "  # a blank cell is missing, not invalid
    assert als.score(df, "phq-9", items="p{}").loc[0, "phq9_n_missing"] == 1


def test_on_invalid_nan_counts_and_warns():
    df = pd.DataFrame({f"p{i}": [1, 1] for i in range(1, 10)})
    df.loc[1, "p1"] = 9
    with pytest.warns(als.InvalidValuesWarning, match="1 invalid value"):
        out, rec = als.score(df, "phq-9", items="p{}", on_invalid="nan", with_record=True)
    assert out.attrs == {}
    assert rec.invalid_set_missing == {"p1": 1} and rec.invalid_examples == {"p1": (1,)}
    assert rec.name == "phq-9" and rec.items == tuple(f"p{i}" for i in range(1, 10)) and rec.scoring == "sum"
    assert out.loc[1, "phq9_total"] == 9.0 and out.loc[1, "phq9_n_missing"] == 1


def test_provisional_key_warns_with_fix():
    with pytest.warns(als.ProvisionalKeyWarning, match=r"register_instrument\('path/to/calpas-p.toml', replace=True\)"):
        als.score(frame(24, 4), "calpas-p", items="i{}")


def test_pqs_is_not_scored():
    with pytest.raises(als.InstrumentKeyError, match="read_qsorts"):
        als.score(frame(100, 5), "pqs", items="i{}")


def test_input_not_modified():
    df = frame(12, 3)
    df.loc[0, "i2"] = np.nan
    before = df.copy()
    als.score(df, "wai-s", items="i{}")
    pd.testing.assert_frame_equal(df, before)


items12 = st.lists(st.one_of(st.integers(1, 7), st.none()), min_size=12, max_size=12)


@settings(max_examples=60, deadline=None)
@given(st.lists(items12, min_size=1, max_size=15))
def test_reversing_in_data_equals_reversing_by_key(rows):
    """Scoring with reversed items in the key equals scoring pre-reversed data with a key
    without reversed items; reversing twice gives the data back."""
    df = pd.DataFrame(rows, columns=[f"i{k}" for k in range(1, 13)], dtype=float)
    rev = df.copy()
    rev[["i4", "i10"]] = 8 - rev[["i4", "i10"]]
    pd.testing.assert_frame_equal(8 - (8 - df), df)
    key = als.get_instrument("wai-s").to_dict()
    key.update(name="t-wai-s-norev", reversed=[], aliases=[], provenance="user", prefix="wai_s")
    plain = als.register_instrument(key, replace=True)
    a = als.score(df, "wai-s", items="i{}")
    b = als.score(rev, plain, items="i{}")
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 3), min_size=9, max_size=9), min_size=2, max_size=20), st.randoms())
def test_row_order_does_not_change_scores_and_complete_rows_are_plain_sums(rows, rnd):
    df = pd.DataFrame(rows, columns=[f"p{k}" for k in range(1, 10)])
    out = als.score(df, "phq-9", items="p{}")
    assert (out["phq9_total"] == df.sum(axis=1)).all()
    perm = list(df.index)
    rnd.shuffle(perm)
    out2 = als.score(df.loc[perm], "phq-9", items="p{}")
    pd.testing.assert_frame_equal(out2.loc[df.index], out)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(1, 5), min_size=12, max_size=12), min_size=1, max_size=20))
def test_complete_rows_are_plain_means(rows):
    df = pd.DataFrame(rows, columns=[f"w{k}" for k in range(1, 13)])
    out = als.score(df, "wai-sr", items="w{}")
    np.testing.assert_allclose(out["wai_sr_total"], df.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(out["wai_sr_bond"], df[["w3", "w5", "w7", "w9"]].mean(axis=1), rtol=1e-12)


def test_the_pair_read_table_returns_is_refused_with_how_to_unpack_it():
    pair = als.read_table(als.sample_path("sessions_csv"))
    with pytest.raises(als.DataFileError, match=r"\(table, metadata\) pair.*df, meta = als.read_table"):
        als.score_instruments(pair, {"wai-sr": "WAISR_{}"})
    with pytest.raises(als.DataFileError, match="got list"):
        als.score_instruments([pair[0]], {"wai-sr": "WAISR_{}"})
