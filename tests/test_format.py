"""The APA number formatter (alliance_stats._format): hand-worked cases and invariants."""

import math
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alliance_stats._format import (FLOOR, MAX_DECIMALS, fmt_bool, fmt_ci, fmt_df, fmt_est_ci, fmt_num, fmt_p, fmt_pct,
                                    format_frame)

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9)
nonzero = finite.filter(lambda x: x != 0)


def _value(s: str) -> float:
    """The number a formatted string shows ('.45' and '-.45' included)."""
    return float(s)


def _decimals(s: str) -> int:
    return len(s.split(".")[1]) if "." in s and "e" not in s else 0


# ---------------------------------------------------------------------------------------
# hand-worked cases (APA 7, sections 6.36 and 6.40-6.44)


@pytest.mark.parametrize("x, out", [
    (-1.5234, "-1.52"), (0.125, "0.12"), (2.0, "2.00"), (1444.4, "1444.40"),
    (0.0034, "0.0034"), (-0.0041, "-0.0041"), (0.006, "0.0060"), (0.00999, "0.01"), (0.012, "0.01"),
    (0.000123, "0.00012"), (3.4e-8, "3.4e-08"), (-1e-7, "-1.0e-07"),
    (0.0, "0.00"), (-0.0, "0.00"), (-0.004999, "-0.0050"),
    (7, "7"), (np.int64(-3), "-3"), (True, "yes"), (None, "NA"), (float("nan"), "NA"), (float("inf"), "inf"),
])
def test_fmt_num_cases(x, out):
    assert fmt_num(x) == out


def test_fmt_num_bounded_and_digits():
    assert fmt_num(0.452, leading_zero=False) == ".45"
    assert fmt_num(-0.452, leading_zero=False) == "-.45"
    assert fmt_num(-0.0042, leading_zero=False) == "-.0042"
    assert fmt_num(1.0, leading_zero=False) == "1.00"
    assert fmt_num(0.12345, 3) == "0.123" and fmt_num(0.00012, 3) == "0.00012"


@pytest.mark.parametrize("p, out", [
    (0.0, "< .001"), (0.000999, "< .001"), (0.001, ".001"), (0.0234, ".023"), (0.05, ".050"), (0.5, ".500"),
    (0.9989, ".999"), (0.9994, "> .999"), (1.0, "> .999"), (float("nan"), "NA"),
])
def test_fmt_p_cases(p, out):
    assert fmt_p(p) == out


def test_fmt_p_in_text():
    assert fmt_p(0.034, eq=True) == "= .034" and fmt_p(1e-6, eq=True) == "< .001"


def test_intervals_df_percentages_booleans():
    # the interval: [-0.01, -0.00] hid that both ends are negative and not zero
    assert fmt_ci(-0.0134, -0.0021) == "[-0.0134, -0.0021]"
    assert fmt_ci(-1.85, -1.19) == "[-1.85, -1.19]"
    assert fmt_ci(-0.00005, 0.25) == "[-0.000050, 0.250000]"  # both ends at the decimals the smaller needs
    assert fmt_ci(0.59, 0.69, leading_zero=False) == "[.59, .69]"
    assert fmt_est_ci(0.64, 0.59, 0.69, leading_zero=False) == ".64 [.59, .69]"
    assert fmt_est_ci(0.004, 0.001, 0.02, leading_zero=False) == ".0040 [.0010, .0200]"
    assert [fmt_df(v) for v in (1444.4, 156.0, 17.98, 18.04, float("inf"))] == ["1444.4", "156", "18", "18", "inf"]
    assert [fmt_pct(v) for v in (48.125, 3.125, 50.0, 0.0, 0.04, 100.0)] == ["48.1", "3.1", "50.0", "0.0", "< 0.1", "100.0"]
    assert [fmt_bool(v) for v in (True, False, np.bool_(True))] == ["yes", "no", "yes"]


def test_format_frame_reads_kinds_from_names_and_keeps_text():
    df = pd.DataFrame({"item": ["a", "b"], "n": [69, 70], "rank": [1.0, 2.0], "r": [0.809, -0.7771],
                       "p_fdr": [0.0, 0.0412], "significant": [True, False], "percent": [48.125, np.nan],
                       "i2": [20.819, 35.2], "df": [1444.4, 18.0], "mean": [8.357, 0.00431], "b": ["0.0034", "x"]})
    out = format_frame(df)
    assert out.to_numpy().tolist() == [
        ["a", "69", "1", ".81", "< .001", "yes", "48.1", "20.8", "1444.4", "8.36", "0.0034"],
        ["b", "70", "2", "-.78", ".041", "no", "", "35.2", "18", "0.0043", "x"],
    ]
    assert df["r"].tolist() == [0.809, -0.7771]  # the input is not modified
    # the caller says which columns are bounded
    assert format_frame(df[["mean"]], bounded=["mean"])["mean"].tolist() == ["8.36", ".0043"]
    assert format_frame(df[["r"]], bounded=[])["r"].tolist() == ["0.81", "-0.78"]


# ---------------------------------------------------------------------------------------
# invariants


@given(nonzero)
@settings(max_examples=400, deadline=None)
def test_a_nonzero_value_never_prints_as_zero_and_keeps_its_sign(x):
    for lz in (True, False):
        s = fmt_num(x, leading_zero=lz)
        v = _value(s)
        assert v != 0, s
        assert math.copysign(1, v) == math.copysign(1, x), s
        assert not re.fullmatch(r"-?0?\.0+", s)


@given(finite)
@settings(max_examples=400, deadline=None)
def test_the_printed_value_is_the_value_rounded(x):
    s = fmt_num(x)
    v = _value(s)
    a = abs(x)
    if a >= 0.01:  # two decimals
        assert _decimals(s) == 2 and abs(v - x) <= 0.005 + 1e-9 * max(1, a)
    elif a >= FLOOR:  # two significant digits: within 5% of the value
        assert 2 <= _decimals(s) <= MAX_DECIMALS and abs(v - x) <= 0.05 * a + 1e-15
    elif a > 0:  # below the floor: scientific notation with two significant digits
        assert "e" in s and abs(v - x) <= 0.05 * a
    else:
        assert s == "0.00"
    assert not s.startswith("-0.00") or v != 0


@given(finite)
@settings(max_examples=200, deadline=None)
def test_bounded_values_drop_only_the_leading_zero(x):
    a, b = fmt_num(x), fmt_num(x, leading_zero=False)
    assert _value(a) == _value(b)
    assert b == a.replace("0.", ".", 1) if re.match(r"^-?0\.", a) else b == a
    assert not re.match(r"^-?0\.", b)


@given(st.floats(min_value=0, max_value=1, allow_nan=False))
@settings(max_examples=300, deadline=None)
def test_p_values(p):
    s = fmt_p(p)
    if p < 0.001:
        assert s == "< .001"
    elif p > 0.999:
        assert s == "> .999"
    else:
        assert re.fullmatch(r"\.\d{3}", s) and abs(float(s) - p) <= 0.0005 + 1e-12 and s != ".000"


@given(finite, finite)
@settings(max_examples=300, deadline=None)
def test_interval_ends_are_printed_alike_and_in_order(a, b):
    lo, hi = min(a, b), max(a, b)
    s = fmt_ci(lo, hi)
    m = re.fullmatch(r"\[(\S+), (\S+)\]", s)
    assert m, s
    x, y = m.group(1), m.group(2)
    assert ("e" in x or "e" in y) or _decimals(x) == _decimals(y)
    assert _value(x) <= _value(y)
    for end, v in ((x, lo), (y, hi)):
        if v != 0:
            assert _value(end) != 0 and math.copysign(1, _value(end)) == math.copysign(1, v)


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_df_whole_or_one_decimal(df):
    s = fmt_df(df)
    assert re.fullmatch(r"\d+(\.[1-9])?", s) and abs(float(s) - df) <= 0.05 + 1e-9 * df


@given(st.floats(min_value=-1000, max_value=1000, allow_nan=False))
def test_percentages_have_at_most_one_decimal(x):
    s = fmt_pct(x)
    if 0 < abs(x) < 0.05:
        assert s in ("< 0.1", "> -0.1")
    else:
        assert re.fullmatch(r"-?\d+\.\d", s) and abs(float(s) - x) <= 0.05 + 1e-9 and s != "-0.0"
