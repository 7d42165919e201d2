"""A catalogue of bad and awkward inputs: each ends in a named error whose message holds the key
words, or in the correct result; no input DataFrame or file is ever modified.

Each case builds its inputs under ``tmp_path`` and returns a :class:`Case`: the call, the inputs
to watch, and either the expected error class with words its message must contain, or a check
of the result. Expected values are worked by hand from the small tables built here.
"""

from __future__ import annotations

import hashlib
import hmac
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

import alliance_stats as als
from alliance_stats.cli import main as cli_main


@dataclass
class Case:
    call: Callable
    inputs: list = field(default_factory=list)
    error: type | None = None
    words: tuple = ()
    check: Callable | None = None
    absent: tuple = ()  # words the message must NOT contain (e.g. a secret key)


CATALOGUE: dict[str, Callable] = {}


def case(name):
    def deco(f):
        assert name not in CATALOGUE
        CATALOGUE[name] = f
        return f

    return deco


def _phq(values=(1, 2, 3), pids=("a", "a", "b"), sessions=(1, 2, 1), therapists=None):
    """PHQ-9 forms: every item of row k holds values[k], so the total (sum) is 9 * values[k]."""
    d = {"pid": list(pids), "sess": list(sessions)}
    if therapists is not None:
        d["th"] = list(therapists)
    d.update({f"phq{i}": list(values) for i in range(1, 10)})
    return pd.DataFrame(d)


def _write(path: Path, text: str, encoding="utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


HEADER = ["pid", "sess"] + [f"phq{i}" for i in range(1, 10)]


def _rows(sep=",", rows=(("a", 1, 1), ("a", 2, 2), ("b", 1, 3))):
    out = [sep.join(HEADER)]
    for pid, s, v in rows:
        out.append(sep.join([str(pid), str(s)] + [str(v)] * 9))
    return "\n".join(out) + "\n"


#: The provenance of the last table _read() returned (it is kept next to the table, not on it).
_LAST: dict = {}


def _read(src, **kw):
    kw.setdefault("patient", "pid")
    kw.setdefault("session", "sess")
    df, _LAST["prov"] = als.read_sessions(src, **kw)
    return df


def _is(actual, expected):
    assert actual == expected, f"{actual!r} != {expected!r}"


def _totals(expected):
    def check(df):
        assert df["phq9_total"].tolist() == expected

    return check


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------
@case("csv-empty-0-bytes")
def _(tmp):
    p = tmp / "empty.csv"
    p.write_bytes(b"")
    return Case(lambda: _read(p), [p], als.DataFileError, ("empty.csv", "is empty"))


@case("csv-blank-lines-only")
def _(tmp):
    p = _write(tmp / "blank.csv", "\n\n  \n")
    return Case(lambda: _read(p), [p], als.DataFileError, ("blank.csv", "is empty"))


@case("csv-header-only")
def _(tmp):
    p = _write(tmp / "head.csv", ",".join(HEADER) + "\n")
    return Case(lambda: _read(p), [p], als.DataFileError, ("head.csv", "header but no data rows"))


@case("xlsx-header-only")
def _(tmp):
    p = tmp / "head.xlsx"
    _phq().iloc[:0].to_excel(p, index=False)
    return Case(lambda: _read(p), [p], als.DataFileError, ("head.xlsx", "header but no data rows", "Sheet1"))


@case("dataframe-no-rows")
def _(tmp):
    df = _phq().iloc[:0].copy()
    return Case(lambda: _read(df), [df], als.DataFileError, ("DataFrame has no rows",))


@case("csv-semicolon-decimal-commas")
def _(tmp):
    text = _rows(";").replace("phq9\n", "phq9;weight\n")
    lines = text.strip().split("\n")
    lines = [lines[0]] + [ln + f";{w}" for ln, w in zip(lines[1:], ("1,5", "2,25", "0,5"))]
    p = _write(tmp / "eu.csv", "\n".join(lines) + "\n")

    def check(df):
        assert df["phq9_total"].tolist() == [9.0, 18.0, 27.0]
        assert df["weight"].tolist() == [1.5, 2.25, 0.5]
        meta = _LAST["prov"]
        assert meta.separator == ";" and meta.decimal == ","

    return Case(lambda: _read(p, instruments=["phq-9"]), [p], check=check)


@case("csv-tab-delimited-with-csv-extension")
def _(tmp):
    p = _write(tmp / "tabs.csv", _rows("\t"))

    def check(df):
        assert df["phq9_total"].tolist() == [9.0, 18.0, 27.0]
        assert _LAST["prov"].separator == "\t"

    return Case(lambda: _read(p, instruments=["phq-9"]), [p], check=check)


@case("csv-tab-delimited-decimal-commas")
def _(tmp):
    text = "pid\tsess\tscore\na\t1\t3,5\na\t2\t4,25\n"
    p = _write(tmp / "tabdec.csv", text)
    return Case(lambda: _read(p), [p], check=lambda df: _is(df["score"].tolist(), [3.5, 4.25]))


@case("csv-pipe-delimited")
def _(tmp):
    p = _write(tmp / "pipe.csv", _rows("|"))
    return Case(lambda: _read(p, instruments=["phq-9"]), [p], check=_totals([9.0, 18.0, 27.0]))


@case("csv-decimal-commas-in-comma-file")
def _(tmp):
    p = _write(tmp / "ragged.csv", "pid,sess,score\na,1,3,5\na,2,4,25\n")
    return Case(lambda: _read(p), [p], als.DataFileError, ("ragged.csv", "line(s) 2, 3", "more fields than the header (3)",
                                                           "decimal comma", "sep="))


@case("csv-tab-ragged-delimiter-not-found")
def _(tmp):
    # ragged tab rows: no delimiter splits every line alike, so the file is read as one column
    p = _write(tmp / "tabragged.csv", "pid\tsess\tx\na\t1\na\t2\t5\t6\n")
    return Case(lambda: _read(p), [p], als.ColumnError, ("patient='pid' is not a column", "delimiter", "sep='\\t'"))


@case("csv-old-mac-line-ends")
def _(tmp):
    p = tmp / "mac.csv"
    p.write_bytes(_rows().replace("\n", "\r").encode())
    return Case(lambda: _read(p, instruments=["phq-9"]), [p], check=_totals([9.0, 18.0, 27.0]))


@case("csv-unclosed-quote")
def _(tmp):
    p = _write(tmp / "quote.csv", 'pid,sess\n"a,1\nb,2\n')
    return Case(lambda: _read(p), [p], als.DataFileError, ("quote.csv", "never closed", "row 1"))


@case("csv-lines-end-with-delimiter")
def _(tmp):
    p = _write(tmp / "trail.csv", "pid,sess\na,1,\nb,2,\n")
    return Case(lambda: _read(p), [p], als.DataFileError, ("trail.csv", "more fields than the header (2)", "end with a delimiter"))


@case("csv-utf8-bom")
def _(tmp):
    p = tmp / "bom.csv"
    p.write_bytes(b"\xef\xbb\xbf" + _rows().encode())

    def check(df):
        assert df["patient"].tolist() == ["a", "a", "b"]
        assert _LAST["prov"].encoding == "utf-8-sig"

    return Case(lambda: _read(p), [p], check=check)


@case("txt-utf16-bom-tab-excel-unicode-text")
def _(tmp):
    p = tmp / "unicode.txt"
    p.write_bytes(_rows("\t").replace("a\t", "Zoë\t").encode("utf-16"))

    def check(df):
        assert df["patient"].tolist() == ["Zoë", "Zoë", "b"]
        assert df["phq9_total"].tolist() == [9.0, 18.0, 27.0]

    return Case(lambda: _read(p, instruments=["phq-9"]), [p], check=check)


@case("csv-latin1-refused-with-encoding-hint")
def _(tmp):
    p = _write(tmp / "latin.csv", _rows().replace("b,", "Jürgen,"), encoding="latin-1")
    return Case(lambda: _read(p), [p], als.DataFileError, ("latin.csv", "not UTF-8", "encoding='cp1252'", "line 4"))


@case("csv-latin1-with-encoding-option")
def _(tmp):
    p = _write(tmp / "latin.csv", _rows().replace("b,", "Jürgen,"), encoding="latin-1")
    return Case(lambda: _read(p, encoding="cp1252"), [p], check=lambda df: _is(sorted(df["patient"].unique()), ["Jürgen", "a"]))


@case("csv-utf16-without-bom")
def _(tmp):
    p = _write(tmp / "u16.csv", _rows(), encoding="utf-16-le")
    return Case(lambda: _read(p), [p], als.DataFileError, ("UTF-16", "encoding='utf-16-le'"))


@case("csv-unknown-encoding-name")
def _(tmp):
    p = _write(tmp / "ok.csv", _rows())
    return Case(lambda: _read(p, encoding="klingon-8"), [p], als.OptionError, ("encoding='klingon-8'", "codec"))


@case("csv-bad-sep-option")
def _(tmp):
    p = _write(tmp / "ok.csv", _rows())
    return Case(lambda: _read(p, sep=":"), [p], als.OptionError, ("sep=':'", "allowed"))


@case("path-is-a-folder")
def _(tmp):
    d = tmp / "export"
    d.mkdir()
    _write(d / "sessions.csv", _rows())
    return Case(lambda: _read(d), [d / "sessions.csv"], als.DataFileError, ("is a folder", "sessions.csv"))


@case("path-does-not-exist")
def _(tmp):
    return Case(lambda: _read(tmp / "nope.csv"), [], als.DataFileError, ("nope.csv", "does not exist"))


@case("path-unknown-extension")
def _(tmp):
    p = _write(tmp / "data.json", "{}")
    return Case(lambda: _read(p), [p], als.DataFileError, ("unknown file type '.json'",))


@case("source-not-a-path-or-frame")
def _(tmp):
    return Case(lambda: _read(42), [], als.DataFileError, ("file path or a pandas DataFrame", "int"))


@case("xlsx-saved-with-csv-extension")
def _(tmp):
    p = tmp / "export.csv"
    _phq().to_excel(p, index=False, engine="openpyxl")
    return Case(lambda: _read(p), [p], als.DataFileError, ("export.csv", "an Excel workbook", "rename it to .xlsx"))


@case("csv-saved-with-xlsx-extension")
def _(tmp):
    p = _write(tmp / "export.xlsx", _rows())
    return Case(lambda: _read(p), [p], als.DataFileError, ("export.xlsx", "not a readable Excel workbook"))


@case("xlsx-truncated")
def _(tmp):
    p = tmp / "cut.xlsx"
    _phq().to_excel(p, index=False)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return Case(lambda: _read(p), [p], als.DataFileError, ("cut.xlsx", "not a readable Excel workbook", "truncated"))


@case("sav-truncated")
def _(tmp):
    import pyreadstat

    p = tmp / "cut.sav"
    pyreadstat.write_sav(_phq(), str(p))
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return Case(lambda: _read(p), [p], als.DataFileError, ("cut.sav", "could not be read as spss"))


@case("csv-truncated-mid-row")
def _(tmp):
    text = _rows()
    p = _write(tmp / "cut.csv", text[: text.rindex(",", 0, len(text) - 6)])  # the last row loses its last 3 items
    return Case(lambda: _read(p), [p], als.DataFileError, ("cut.csv", "last line (4)", "8 of the header's 11 fields", "truncated"))


@case("csv-short-row-inside-file")
def _(tmp):
    p = _write(tmp / "short.csv", "pid,sess,phq1\na,1\nb,1,2\n")  # a short line that ends properly: missing value

    def check(df):
        assert df["patient"].tolist() == ["a", "b"] and np.isnan(df["phq1"].iloc[0]) and df["phq1"].iloc[1] == 2

    return Case(lambda: _read(p), [p], check=check)


@case("csv-duplicate-header")
def _(tmp):
    p = _write(tmp / "dup.csv", "pid,sess,phq1,phq1\na,1,1,2\n")
    return Case(lambda: _read(p), [p], als.ColumnError, ("dup.csv", "'phq1'", "more than once", "phq1.1"))


@case("xlsx-duplicate-header")
def _(tmp):
    p = tmp / "dup.xlsx"
    pd.DataFrame([["a", 1, 1, 2]], columns=["pid", "sess", "phq1", "phq1"]).to_excel(p, index=False)
    return Case(lambda: _read(p), [p], als.ColumnError, ("dup.xlsx", "'phq1'", "more than once"))


@case("dataframe-duplicate-columns")
def _(tmp):
    df = pd.concat([_phq(), _phq()[["phq1"]]], axis=1)
    return Case(lambda: _read(df), [df], als.ColumnError, ("'phq1' (2 times)",))


@case("score-duplicate-item-columns")
def _(tmp):
    df = pd.concat([_phq(), _phq()[["phq3"]]], axis=1)
    return Case(lambda: als.score(df, "phq-9", items="phq{}"), [df], als.ColumnError, ("'phq3' (2 times)", "phq-9"))


@case("xlsx-several-sheets-first-by-default")
def _(tmp):
    p = tmp / "book.xlsx"
    with pd.ExcelWriter(p) as xw:
        _phq().to_excel(xw, sheet_name="sessions", index=False)
        pd.DataFrame({"code": [1]}).to_excel(xw, sheet_name="codebook", index=False)

    def check(df):
        assert df["phq9_total"].tolist() == [9.0, 18.0, 27.0]
        assert _LAST["prov"].sheet == "sessions"
        assert _LAST["prov"].sheets == ("sessions", "codebook")

    return Case(lambda: _read(p, instruments=["phq-9"]), [p], check=check)


@case("xlsx-several-sheets-chosen-by-name")
def _(tmp):
    p = tmp / "book.xlsx"
    with pd.ExcelWriter(p) as xw:
        pd.DataFrame({"code": [1]}).to_excel(xw, sheet_name="codebook", index=False)
        _phq(values=(0, 1, 2)).to_excel(xw, sheet_name="sessions", index=False)
    return Case(lambda: _read(p, sheet="sessions", instruments=["phq-9"]), [p], check=_totals([0.0, 9.0, 18.0]))


@case("xlsx-sheet-missing")
def _(tmp):
    p = tmp / "book.xlsx"
    _phq().to_excel(p, index=False, sheet_name="data")
    return Case(lambda: _read(p, sheet="sessions"), [p], als.DataFileError, ("no sheet 'sessions'", "['data']"))


@case("xlsx-first-sheet-empty-others-have-data")
def _(tmp):
    p = tmp / "book.xlsx"
    with pd.ExcelWriter(p) as xw:
        _phq().iloc[:0].to_excel(xw, sheet_name="readme", index=False)
        _phq().to_excel(xw, sheet_name="sessions", index=False)
    return Case(lambda: _read(p), [p], als.DataFileError, ("sheet 'readme'", "['readme', 'sessions']", "sheet="))


@case("sav-user-missing-values-read-as-missing")
def _(tmp):
    import pyreadstat

    p = tmp / "um.sav"
    df = _phq()
    df = df.astype({f"phq{i}": float for i in range(1, 10)})
    df.loc[2, "phq4"] = 99.0  # declared user-missing, not an answer
    pyreadstat.write_sav(df, str(p), missing_ranges={"phq4": [99.0]})

    def check(out):
        assert np.isnan(out.loc[2, "phq4"]) and out["phq9_n_missing"].tolist() == [0, 0, 1]
        assert out.loc[2, "phq9_total"] == 27.0  # one missing item is prorated by the PHQ-9 key: 3 * 9
        assert _LAST["prov"].user_missing == {
            "phq4": {"declared": [{"lo": 99.0, "hi": 99.0}], "n_set_missing": 1}}

    return Case(lambda: _read(p, instruments=["phq-9"]), [p], check=check)


@case("sav-value-labels-applied-to-other-columns")
def _(tmp):
    import pyreadstat

    p = tmp / "lab.sav"
    df = _phq()
    df["therapy"] = [1.0, 1.0, 2.0]
    pyreadstat.write_sav(df, str(p), variable_value_labels={"therapy": {1.0: "CBT", 2.0: "PDT"},
                                                            "phq1": {0.0: "not at all", 3.0: "nearly every day"}})

    def check(out):
        assert out["therapy"].astype(str).tolist() == ["CBT", "CBT", "PDT"]
        assert out["phq1"].tolist() == [1.0, 2.0, 3.0]  # items keep their numbers
        assert _LAST["prov"].value_labels["phq1"] == {0.0: "not at all", 3.0: "nearly every day"}

    return Case(lambda: _read(p, instruments=["phq-9"]), [p], check=check)


@case("sav-value-labels-not-applied")
def _(tmp):
    import pyreadstat

    p = tmp / "lab.sav"
    df = _phq()
    df["therapy"] = [1.0, 1.0, 2.0]
    pyreadstat.write_sav(df, str(p), variable_value_labels={"therapy": {1.0: "CBT", 2.0: "PDT"}})
    return Case(lambda: _read(p, apply_labels=False), [p], check=lambda out: _is(out["therapy"].tolist(), [1.0, 1.0, 2.0]))


@case("sav-leading-zeros-in-string-ids")
def _(tmp):
    import pyreadstat

    p = tmp / "ids.sav"
    pyreadstat.write_sav(_phq(pids=("007", "007", "7")), str(p))
    return Case(lambda: _read(p), [p], check=lambda out: _is(out["patient"].tolist(), ["007", "007", "7"]))


@case("sav-numeric-ids-as-digits")
def _(tmp):
    import pyreadstat

    p = tmp / "num.sav"
    pyreadstat.write_sav(_phq(pids=(7, 7, 12)), str(p))  # SPSS stores numbers as doubles: 7.0
    return Case(lambda: _read(p), [p], check=lambda out: _is(out["patient"].tolist(), ["12", "7", "7"]))


@case("xlsx-leading-zeros-in-text-ids")
def _(tmp):
    p = tmp / "ids.xlsx"
    _phq(pids=("007", "007", "010")).to_excel(p, index=False)
    return Case(lambda: _read(p), [p], check=lambda out: _is(out["patient"].tolist(), ["007", "007", "010"]))


@case("csv-leading-zeros-kept-and-distinct")
def _(tmp):
    p = _write(tmp / "ids.csv", _rows(rows=(("007", 1, 1), ("7", 1, 2), ("007", 2, 3))))

    def check(out):
        assert out["patient"].tolist() == ["007", "007", "7"]
        assert out["session"].tolist() == [1, 2, 1]

    return Case(lambda: _read(p), [p], check=check)


@case("csv-numeric-therapist-ids-as-text")
def _(tmp):
    p = _write(tmp / "th.csv", "pid,sess,th\n1,1,01\n1,2,01\n2,1,2\n")
    return Case(lambda: _read(p, therapist="th"), [p], check=lambda out: _is((out["therapist"].tolist(), out["patient"].tolist()), (["01", "01", "2"], ["1", "1", "2"])))


# ---------------------------------------------------------------------------------------------
# values: items
# ---------------------------------------------------------------------------------------------
@case("item-out-of-range")
def _(tmp):
    df = _phq()
    df.loc[1, "phq4"] = 4
    return Case(lambda: _read(df, instruments=["phq-9"]), [df], als.ItemRangeError, ("'phq4'", "0..3", "row(s) 1", "on_invalid='nan'"))


@case("item-text-value")
def _(tmp):
    df = _phq().astype({"phq2": object})
    df.loc[0, "phq2"] = "three"
    return Case(lambda: als.score(df, "phq-9", items="phq{}"), [df], als.ItemRangeError, ("'phq2'", "not numeric", "'three'"))


@case("item-infinite")
def _(tmp):
    df = _phq().astype({"phq5": float})
    df.loc[2, "phq5"] = np.inf
    return Case(lambda: als.score(df, "phq-9", items="phq{}"), [df], als.ItemRangeError, ("'phq5'", "row(s) 2", "inf"))


@case("item-fraction-on-likert")
def _(tmp):
    df = _phq().astype({"phq6": float})
    df.loc[0, "phq6"] = 1.5
    return Case(lambda: als.score(df, "phq-9", items="phq{}"), [df], als.ItemRangeError, ("'phq6'", "whole numbers", "1.5"))


@case("on-invalid-nan-read-sessions-sets-item-missing-and-counts")
def _(tmp):
    df = _phq()
    df.loc[1, "phq4"] = 7

    def call():
        with pytest.warns(als.InvalidValuesWarning, match="1 invalid value"):
            return _read(df, instruments=["phq-9"], on_invalid="nan")

    def check(out):
        assert out["phq4"].isna().tolist() == [False, True, False]
        acc = als.row_accounting(_LAST["prov"])
        row = acc[acc["step"] == "values set missing"].iloc[0]
        assert row["rows"] == 1 and row["reason"] == "phq4 (phq-9): invalid response at row(s) 1"
        assert _LAST["prov"].instruments["phq-9"].invalid_examples == {"phq4": (1,)}
        rel = als.reliability(out, "phq-9")  # accepts the result; the bad row is left out
        assert rel.table["n"].tolist() == [2] and rel.table["n_excluded"].tolist() == [1]
        assert rel.accounting()["n"].tolist() == [2, 1]

    return Case(call, [df], check=check)


@case("on-invalid-nan-score-instruments")
def _(tmp):
    df = _phq()
    df.loc[0, "phq1"] = -1
    df.loc[0, "phq2"] = 5  # two invalid items in row 0: more than the one missing item the PHQ-9 key prorates

    def call():
        with pytest.warns(als.InvalidValuesWarning):
            return als.score_instruments(df, {"phq-9": "phq{}"}, on_invalid="nan", with_record=True)

    def check(res):
        out, rec = res
        assert np.isnan(out.loc[0, "phq1"]) and out.loc[1, "phq1"] == 2
        assert np.isnan(out.loc[0, "phq2"])
        assert rec["phq-9"].invalid_examples == {"phq1": (0,), "phq2": (0,)}
        assert rec["phq-9"].invalid_set_missing == {"phq1": 1, "phq2": 1}
        assert np.isnan(out.loc[0, "phq9_total"]) and out["phq9_total"].tolist()[1:] == [18.0, 27.0]

    return Case(call, [df], check=check)


@case("on-invalid-nan-cli-score-writes-missing")
def _(tmp):
    src = tmp / "in.csv"
    df = _phq()
    df.loc[2, "phq9"] = 9
    df.loc[2, "phq8"] = 4
    df.to_csv(src, index=False)
    out = tmp / "out.csv"

    def call():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", als.InvalidValuesWarning)
            rc = cli_main(["score", str(src), "-i", "phq-9=phq{}", "--on-invalid", "nan", "-o", str(out)])
        assert rc == 0
        return pd.read_csv(out)

    def check(res):
        assert res["phq9"].isna().tolist() == [False, False, True] and res["phq8"].isna().tolist() == [False, False, True]
        assert res["phq9_total"].tolist()[:2] == [9.0, 18.0] and np.isnan(res["phq9_total"].iloc[2])

    return Case(call, [src], check=check)


@case("on-invalid-bad-option")
def _(tmp):
    df = _phq()
    return Case(lambda: _read(df, instruments=["phq-9"], on_invalid="drop"), [df], als.OptionError, ("on_invalid='drop'", "'raise', 'nan'"))


# ---------------------------------------------------------------------------------------------
# values: sessions
# ---------------------------------------------------------------------------------------------
def _session_case(values, words, error=als.SessionDataError):
    def build(tmp):
        df = _phq()
        df["sess"] = pd.Series(values, dtype=object if any(isinstance(v, str) for v in values) else None)
        return Case(lambda: _read(df), [df], error, words)

    return build


case("session-1e20")(_session_case([1, 1e20, 1], ("row 1", "session 1e+20", "whole number up to 99999", "patient 'a'")))
case("session-zero")(_session_case([1, 0, 1], ("row 1", "session 0", "up to 99999")))
case("session-negative")(_session_case([1, -3, 1], ("session -3", "positive whole number")))
case("session-fraction")(_session_case([1, 2.5, 1], ("session 2.5", "whole number")))
case("session-infinite")(_session_case([1, np.inf, 1], ("session inf", "whole number")))
case("session-100000")(_session_case([1, 100_000, 1], ("session 100000", "up to 99999")))
case("session-text")(_session_case([1, "second", 1], ("session 'second'", "whole number")))
case("session-date-text")(_session_case(["2024-01-08", "2024-01-15", "2024-01-09"],
                                        ("session 2024-01-08 is a date", "session_from_dates=True")))


@case("session-datetime-column")
def _(tmp):
    df = _phq()
    df["sess"] = pd.to_datetime(["2024-01-08", "2024-01-15", "2024-01-09"])
    return Case(lambda: _read(df), [df], als.SessionDataError, ("session 2024-01-08 is a date", "1, 2, 3", "session_from_dates=True"),
                absent=("1704672000",))


@case("session-dates-in-excel")
def _(tmp):
    p = tmp / "dates.xlsx"
    df = _phq()
    df["sess"] = pd.to_datetime(["2024-01-08", "2024-01-15", "2024-01-09"])
    df.to_excel(p, index=False)
    return Case(lambda: _read(p), [p], als.SessionDataError, ("dates.xlsx", "is a date", "session_from_dates=True"), absent=("1704672000",))


@case("session-dates-in-spss")
def _(tmp):
    import pyreadstat

    p = tmp / "dates.sav"
    df = _phq()
    df["sess"] = pd.to_datetime(["2024-01-08", "2024-01-15", "2024-01-09"])
    pyreadstat.write_sav(df, str(p))
    return Case(lambda: _read(p), [p], als.SessionDataError, ("dates.sav", "session 2024-01-08 is a date", "session_from_dates=True"))


@case("session-from-dates-in-spss")
def _(tmp):
    import pyreadstat

    p = tmp / "dates.sav"
    df = _phq()
    df["sess"] = pd.to_datetime(["2024-01-15", "2024-01-08", "2024-01-09"])
    pyreadstat.write_sav(df, str(p))
    return Case(lambda: _read(p, session_from_dates=True), [p],
                check=lambda out: _is((out["session"].tolist(), out["phq1"].tolist()), ([1, 2, 1], [2, 1, 3])))


@case("session-from-dates-numbers-sessions")
def _(tmp):
    df = _phq(pids=("a", "a", "b"))
    df["sess"] = pd.to_datetime(["2024-02-01", "2024-01-15", "2024-03-09"])

    def check(out):
        assert out["patient"].tolist() == ["a", "a", "b"] and out["session"].tolist() == [1, 2, 1]
        assert out["session_date"].dt.strftime("%Y-%m-%d").tolist() == ["2024-01-15", "2024-02-01", "2024-03-09"]
        assert out["phq1"].tolist() == [2, 1, 3]  # the rows moved with their dates
        acc = als.row_accounting(_LAST["prov"])
        assert "date order within each patient" in acc.loc[acc["step"] == "sessions numbered from dates", "reason"].iloc[0]

    return Case(lambda: _read(df, session_from_dates=True), [df], check=check)


@case("session-from-dates-iso-text-in-csv")
def _(tmp):
    p = _write(tmp / "d.csv", "pid,sess,x\na,2024-01-15,1\na,2024-01-08,2\nb,2024-01-09,3\n")
    return Case(lambda: _read(p, session_from_dates=True), [p],
                check=lambda out: _is((out["session"].tolist(), out["x"].tolist()), ([1, 2, 1], [2, 1, 3])))


@case("session-from-dates-but-numbers")
def _(tmp):
    df = _phq()
    return Case(lambda: _read(df, session_from_dates=True), [df], als.SessionDataError, ("session_from_dates=True", "holds numbers"))


@case("session-from-dates-but-not-dates")
def _(tmp):
    df = _phq()
    df["sess"] = ["2024-01-08", "next week", "2024-01-09"]
    return Case(lambda: _read(df, session_from_dates=True), [df], als.SessionDataError, ("not dates at rows 1", "'next week'", "YYYY-MM-DD"))


@case("session-all-rows-dropped")
def _(tmp):
    df = _phq()
    df["sess"] = [0, -1, 0]
    return Case(lambda: _read(df, on_bad_rows="drop"), [df], als.SessionDataError, ("all 3 rows were excluded", "nothing is left"))


@case("session-bad-rows-dropped-and-counted")
def _(tmp):
    df = _phq()
    df["sess"] = [1, 1e20, 1]

    def check(out):
        assert out["patient"].tolist() == ["a", "b"]
        acc = als.row_accounting(_LAST["prov"])
        assert acc["step"].tolist() == ["read", "excluded", "kept"]
        assert acc["reason"].iloc[1] == "session 1e+20 is not a positive whole number up to 99999"

    return Case(lambda: _read(df, on_bad_rows="drop"), [df], check=check)


@case("session-grid-start-zero")
def _(tmp):
    df = pd.DataFrame({"patient": ["a", "a"], "session": [1, 3]})
    return Case(lambda: als.session_grid(df, start=0), [df], als.OptionError, ("start=0", "from 1 to 99999"))


@case("session-grid-start-text")
def _(tmp):
    df = pd.DataFrame({"patient": ["a", "a"], "session": [1, 3]})
    return Case(lambda: als.session_grid(df, start="1"), [df], als.OptionError, ("start='1'", "whole number"))


@case("session-grid-huge-session")
def _(tmp):
    df = pd.DataFrame({"patient": ["a", "a"], "session": [1, 1e20]})
    return Case(lambda: als.session_grid(df), [df], als.SessionDataError, ("row 1", "1e+20", "up to 99999", "patient 'a'"))


@case("session-grid-dates")
def _(tmp):
    df = pd.DataFrame({"patient": ["a", "a"], "session": pd.to_datetime(["2024-01-01", "2024-01-08"])})
    return Case(lambda: als.session_grid(df), [df], als.SessionDataError, ("is a date", "session_from_dates"))


# ---------------------------------------------------------------------------------------------
# values: IDs
# ---------------------------------------------------------------------------------------------
@case("id-missing-patient")
def _(tmp):
    df = _phq(pids=("a", None, "b"))
    return Case(lambda: _read(df), [df], als.SessionDataError, ("row 1: missing patient ID",))


@case("id-blank-patient")
def _(tmp):
    df = _phq(pids=("a", " \u00a0", "b"))
    return Case(lambda: _read(df), [df], als.SessionDataError, ("row 1: missing patient ID",))


@case("id-nan-in-numeric-column")
def _(tmp):
    df = _phq(pids=(1.0, np.nan, 2.0))
    return Case(lambda: _read(df), [df], als.SessionDataError, ("row 1: missing patient ID",))


@case("id-duplicate-patient-session")
def _(tmp):
    df = _phq(sessions=(1, 1, 1))
    return Case(lambda: _read(df), [df], als.SessionDataError, ("duplicate patient x session", "patient 'a', session 1"))


@case("id-trailing-space-is-the-same-patient")
def _(tmp):
    df = _phq(pids=("P-001", "P-001 ", "P-002"))

    def check(out):
        assert out["patient"].tolist() == ["P-001", "P-001", "P-002"]
        acc = als.row_accounting(_LAST["prov"])
        assert acc.loc[acc["step"] == "IDs trimmed", ["rows", "reason"]].values.tolist() == [[1, "surrounding spaces removed from patient IDs"]]

    return Case(lambda: _read(df), [df], check=check)


@case("id-trailing-space-makes-a-duplicate")
def _(tmp):
    df = _phq(pids=("P-001", "P-001 ", "P-002"), sessions=(1, 1, 1))
    return Case(lambda: _read(df), [df], als.SessionDataError, ("duplicate patient x session", "patient 'P-001', session 1"))


@case("id-non-breaking-space-in-therapist")
def _(tmp):
    df = _phq(therapists=("T1", "T1\u00a0", "T2"))

    def check(out):
        assert out["therapist"].tolist() == ["T1", "T1", "T2"]
        acc = als.row_accounting(_LAST["prov"])
        assert acc.loc[acc["step"] == "IDs trimmed", "reason"].tolist() == ["surrounding spaces removed from therapist IDs"]

    def call():
        with warnings.catch_warnings():
            warnings.simplefilter("error", als.MultipleTherapistsWarning)  # T1 and "T1 " are one therapist
            return _read(df, therapist="th")

    return Case(call, [df], check=check)


@case("id-number-and-text-one-patient-one-pseudonym")
def _(tmp):
    df = _phq(pids=(1, "1", 2), sessions=(1, 2, 1))
    df["pid"] = df["pid"].astype(object)

    def check(out):
        assert out["patient"].tolist() == ["1", "1", "2"]
        a = als.pseudonymize(out, "patient", key="a secret key")["patient"]
        b = als.pseudonymize(df, "pid", key="a secret key")["pid"]
        assert a.nunique() == 2 and sorted(a) == sorted(b)

    return Case(lambda: _read(df), [df], check=check)


@case("id-float-ids-written-as-digits")
def _(tmp):
    df = _phq(pids=(7.0, 7.0, 12.0))
    return Case(lambda: _read(df), [df], check=lambda out: _is(out["patient"].tolist(), ["12", "7", "7"]))


@case("id-patient-with-two-therapists-warns")
def _(tmp):
    df = _phq(therapists=("T1", "T2", "T1"))

    def call():
        with pytest.warns(als.MultipleTherapistsWarning, match=r"1 patient\(s\) appear with more than one therapist: 'a' \(T1, T2\)"):
            return _read(df, therapist="th")

    def check(out):
        assert _LAST["prov"].several_therapists == {"a": ("T1", "T2")} and _LAST["prov"].n_several_therapists == 1

    return Case(call, [df], check=check)


@case("id-same-column-for-two-roles")
def _(tmp):
    df = _phq()
    return Case(lambda: als.read_sessions(df, patient="pid", session="pid").data, [df], als.ColumnError, ("'pid'", "more than one of"))


@case("id-column-misspelt")
def _(tmp):
    df = _phq()
    return Case(lambda: als.read_sessions(df, patient="pidd", session="sess").data, [df], als.ColumnError, ("patient='pidd'", "did you mean ['pid']"))


# ---------------------------------------------------------------------------------------------
# scores read by models
# ---------------------------------------------------------------------------------------------
@case("ruptures-infinite-alliance")
def _(tmp):
    df = pd.DataFrame({"patient": ["a"] * 5, "session": [1, 2, 3, 4, 5], "wai": [4.0, 4.1, np.inf, 4.0, 3.9]})
    return Case(lambda: als.detect_ruptures(df, "wai"), [df], als.AllianceStatsError, ("'wai'", "infinite", "rows 2"))


@case("ruptures-text-alliance")
def _(tmp):
    df = pd.DataFrame({"patient": ["a"] * 3, "session": [1, 2, 3], "wai": [4.0, "high", 4.0]})
    return Case(lambda: als.detect_ruptures(df, "wai"), [df], als.AllianceStatsError, ("'wai'", "not numbers", "rows 1"))


@case("reliable-change-infinite")
def _(tmp):
    df = pd.DataFrame({"pre": [10.0, 12.0, 9.0], "post": [5.0, -np.inf, 8.0]})
    return Case(lambda: als.reliable_change(df, pre="pre", post="post", reliability=0.8), [df], als.AllianceStatsError, ("'post'", "infinite", "rows 1"))


@case("reliable-change-reliability-as-text")
def _(tmp):
    df = pd.DataFrame({"pre": [10.0, 12.0, 9.0], "post": [5.0, 6.0, 8.0]})
    return Case(lambda: als.reliable_change(df, pre="pre", post="post", reliability="0.8"), [df], als.OptionError, ("reliability='0.8'", "between 0 and 1"))


# ---------------------------------------------------------------------------------------------
# item maps
# ---------------------------------------------------------------------------------------------
def _map_case(items, error, words):
    def build(tmp):
        df = _phq()
        return Case(lambda: als.score(df, "phq-9", items=items), [df], error, words)

    return build


_NINE = {i: f"phq{i}" for i in range(1, 10)}
case("items-float-key")(_map_case({1.7: "phq1", **{k: v for k, v in _NINE.items() if k > 1}}, als.ColumnError, ("key 1.7", "float", "whole numbers 1..9")))
case("items-bool-key")(_map_case({True: "phq1", **{k: v for k, v in _NINE.items() if k > 1}}, als.ColumnError, ("key True", "bool")))
case("items-text-key")(_map_case({"1": "phq1", **{k: v for k, v in _NINE.items() if k > 1}}, als.ColumnError, ("key '1'", "str")))
case("items-same-column-nine-times")(_map_case(["phq1"] * 9, als.ColumnError, ("'phq1'", "items 1 and 2", "a column of its own")))
case("items-dict-column-twice")(_map_case({**_NINE, 9: "phq8"}, als.ColumnError, ("'phq8'", "items 8 and 9")))
case("items-missing-item")(_map_case({k: v for k, v in _NINE.items() if k != 4}, als.ColumnError, ("missing [4]",)))
case("items-item-out-of-range")(_map_case({**_NINE, 10: "phq1"}, als.ColumnError, ("outside the range [10]",)))
case("items-wrong-count")(_map_case([f"phq{i}" for i in range(1, 9)], als.ColumnError, ("9 items", "lists 8 columns")))
case("items-integer")(_map_case(5, als.OptionError, ("items=5", "pattern")))
case("items-set")(_map_case({f"phq{i}" for i in range(1, 10)}, als.OptionError, ("items=", "list of 9 column names")))
case("items-pattern-without-braces")(_map_case("phq", als.ColumnError, ("not a pattern", "'phq{}'")))
case("items-pattern-two-slots")(_map_case("phq{}_{}", als.ColumnError, ("cannot be filled",)))
case("items-column-not-in-data")(_map_case("PHQ_{}", als.ColumnError, ("'PHQ_1'", "not in the data")))


@case("items-auto-case-ambiguous")
def _(tmp):
    df = _phq()
    df["PHQ1"] = df["phq1"]
    return Case(lambda: als.score(df, "phq-9"), [df], als.ColumnError, ("ambiguous", "upper/lower case", "items="))


@case("score-data-not-a-frame")
def _(tmp):
    return Case(lambda: als.score([[1, 2]], "phq-9"), [], als.DataFileError, ("pandas DataFrame", "list"))


@case("score-scoring-option")
def _(tmp):
    df = _phq()
    return Case(lambda: als.score(df, "phq-9", items="phq{}", scoring="median"), [df], als.OptionError, ("scoring='median'", "'mean', 'sum'"))


# ---------------------------------------------------------------------------------------------
# Q-sorts
# ---------------------------------------------------------------------------------------------
def _sorts(n=2, seed=0):
    rng = np.random.default_rng(seed)
    piles = np.repeat(np.arange(1, 10), als.PQS_DISTRIBUTION)
    rows = [dict(sid=k + 1, **{f"pqs{i + 1}": p for i, p in enumerate(rng.permutation(piles))}) for k in range(n)]
    return pd.DataFrame(rows)


@case("qsort-off-forced-distribution")
def _(tmp):
    df = _sorts()
    one = df.columns[(df.loc[0] == 9).to_numpy()][0]
    df.loc[0, one] = 8  # pile 9 loses an item, pile 8 gains one
    return Case(lambda: als.read_qsorts(df, session="sid").data, [df], als.QSortError,
                ("session 1 (row 0)", "found [5, 8, 12, 16, 18, 16, 12, 9, 4]", "expected [5, 8, 12, 16, 18, 16, 12, 8, 5]"))


@case("qsort-pile-outside-scale")
def _(tmp):
    df = _sorts()
    df.loc[1, "pqs7"] = 10
    return Case(lambda: als.read_qsorts(df, session="sid").data, [df], als.QSortError, ("session 2", "outside 1..9"))


@case("qsort-flagged-not-raised")
def _(tmp):
    df = _sorts()
    df.loc[1, "pqs7"] = np.nan

    def call():
        with pytest.warns(als.InvalidValuesWarning, match="1 of 2 Q-sorts"):
            return als.read_qsorts(df, session="sid", on_invalid="flag").data

    return Case(call, [df], check=lambda q: _is(q["qsort_valid"].tolist(), [True, False]))


@case("qsort-distribution-wrong-sum")
def _(tmp):
    df = _sorts()
    return Case(lambda: als.read_qsorts(df, session="sid", distribution=[10] * 9).data, [df], als.QSortError, ("sums to 90", "not 100"))


@case("qsort-distribution-not-numbers")
def _(tmp):
    df = _sorts()
    return Case(lambda: als.read_qsorts(df, session="sid", distribution="5,8,12").data, [df], als.OptionError, ("distribution='5,8,12'", "whole numbers"))


@case("qsort-on-invalid-option")
def _(tmp):
    df = _sorts()
    return Case(lambda: als.read_qsorts(df, session="sid", on_invalid="drop").data, [df], als.OptionError, ("on_invalid='drop'", "'raise', 'flag'"))


@case("qsort-patient-ids-as-text")
def _(tmp):
    df = _sorts()
    df.insert(0, "pid", [7, 7.0])
    return Case(lambda: als.read_qsorts(df, session="sid", patient="pid").data, [df], check=lambda q: _is(q["patient"].tolist(), ["7", "7"]))


# ---------------------------------------------------------------------------------------------
# options: pseudonymize and friends
# ---------------------------------------------------------------------------------------------
@case("pseudonymize-length-as-text")
def _(tmp):
    df = _phq()
    return Case(lambda: als.pseudonymize(df, "pid", key="a secret key", length="16"), [df], als.OptionError, ("length='16'", "from 8 to 64"))


@case("pseudonymize-length-too-short")
def _(tmp):
    df = _phq()
    return Case(lambda: als.pseudonymize(df, "pid", key="a secret key", length=4), [df], als.OptionError, ("length=4", "from 8 to 64"))


@case("pseudonymize-short-key-not-shown")
def _(tmp):
    df = _phq()
    return Case(lambda: als.pseudonymize(df, "pid", key="hunter2"), [df], als.OptionError, ("key=", "at least 8"), absent=("hunter2",))


@case("pseudonymize-missing-key")
def _(tmp):
    df = _phq()
    return Case(lambda: als.pseudonymize(df, "pid", key=None), [df], als.OptionError, ("key=", "NoneType", "at least 8"))


@case("pseudonymize-numeric-key")
def _(tmp):
    df = _phq()
    return Case(lambda: als.pseudonymize(df, "pid", key=12345678), [df], als.OptionError, ("key=", "int"), absent=("12345678",))


@case("pseudonymize-id-rule")
def _(tmp):
    df = pd.DataFrame({"pid": pd.Series(["P1", " P1\u00a0", "007", 7, 7.0, None], dtype=object)})

    def check(out):
        h = lambda s: hmac.new(b"a secret key", s.encode(), hashlib.sha256).hexdigest()[:16]  # noqa: E731
        assert out["pid"].tolist()[:5] == [h("P1"), h("P1"), h("007"), h("7"), h("7")]
        assert pd.isna(out["pid"].iloc[5])

    return Case(lambda: als.pseudonymize(df, "pid", key="a secret key"), [df], check=check)


@case("read-sessions-shape-option")
def _(tmp):
    df = _phq()
    return Case(lambda: _read(df, shape="wider"), [df], als.OptionError, ("shape='wider'", "'auto', 'wide', 'long'"))


@case("read-sessions-on-bad-rows-option")
def _(tmp):
    df = _phq()
    return Case(lambda: _read(df, on_bad_rows="skip"), [df], als.OptionError, ("on_bad_rows='skip'", "'raise', 'drop'"))


@case("read-sessions-session-from-dates-option")
def _(tmp):
    df = _phq()
    return Case(lambda: _read(df, session_from_dates="yes"), [df], als.OptionError, ("session_from_dates='yes'",))


# ---------------------------------------------------------------------------------------------
def _snapshot(inputs):
    snap = []
    for x in inputs:
        if isinstance(x, pd.DataFrame):
            snap.append(x.copy(deep=True))
        else:
            snap.append(Path(x).read_bytes())
    return snap


def _unchanged(inputs, snap):
    for x, before in zip(inputs, snap):
        if isinstance(x, pd.DataFrame):
            pd.testing.assert_frame_equal(x, before)
        else:
            assert Path(x).read_bytes() == before, f"{x} was modified"


@pytest.mark.parametrize("name", list(CATALOGUE), ids=list(CATALOGUE))
def test_catalogue(name, tmp_path):
    spec = CATALOGUE[name](tmp_path)
    snap = _snapshot(spec.inputs)
    if spec.error is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", als.AllianceStatsWarning)
            with pytest.raises(spec.error) as err:
                spec.call()
        assert isinstance(err.value, als.AllianceStatsError)
        msg = str(err.value)
        for w in spec.words:
            assert w in msg, f"{w!r} not in message: {msg}"
        for w in spec.absent:
            assert w not in msg, f"{w!r} must not be in message: {msg}"
    else:
        result = spec.call()
        spec.check(result)
    _unchanged(spec.inputs, snap)


def test_catalogue_is_large_enough():
    assert len(CATALOGUE) >= 60


def test_with_context_keeps_class_and_attributes():
    err = als.ItemRangeError("wai3", rows=[4], values=[9], allowed=(1, 5), instrument="wai-sr")
    new = err.with_context("analysis 'reliability'")
    assert type(new) is als.ItemRangeError and new.column == "wai3" and new.rows == [4]
    assert str(new).startswith("analysis 'reliability': column 'wai3' (wai-sr): 1 value(s) outside")
    assert str(err).startswith("column 'wai3'")  # the original is not changed


def test_pipeline_on_invalid_nan_runs_reliability(tmp_path):
    """analyze with on_invalid = "nan": the invalid response is missing in the scored table and
    the reliability step accepts it (it ended in a TypeError from ItemRangeError.__init__)."""
    import textwrap

    from alliance_stats.config import load_config
    from alliance_stats.pipeline import run_study

    raw = als.load_sample("sessions_csv")
    raw.loc[3, "WAISR_7"] = 6  # outside 1..5
    raw.to_csv(tmp_path / "sessions.csv", index=False)
    before = (tmp_path / "sessions.csv").read_bytes()
    cfg = tmp_path / "study.toml"
    cfg.write_text(textwrap.dedent("""\
        [study]
        title = "t"
        [data]
        file = "sessions.csv"
        patient = "client_id"
        session = "session_no"
        therapist = "therapist_id"
        on_invalid = "nan"
        [instruments]
        "wai-sr" = "WAISR_{}"
        "phq-9" = "PHQ9_{}"
        [variables]
        alliance = "wai_sr_total"
        outcome = "phq9_total"
        [analyses]
        run = ["reliability"]
        """))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", als.AllianceStatsWarning)
        out = run_study(load_config(cfg), tmp_path / "results", progress=False)
    scored = pd.read_csv(out / "tables" / "sessions_scored.csv")
    assert int(scored["WAISR_7"].isna().sum()) == int(raw["WAISR_7"].isna().sum()) + 1
    rel = pd.read_csv(out / "tables" / "reliability.csv")
    wai_total = rel[(rel["instrument"] == "wai-sr") & (rel["scale"] == "total")].iloc[0]
    assert wai_total["n"] + wai_total["n_excluded"] == len(scored)
    acc = pd.read_csv(out / "tables" / "row_accounting.csv")
    assert "WAISR_7 (wai-sr): invalid response at row(s) 4" in acc["reason"].fillna("").tolist()
    assert (tmp_path / "sessions.csv").read_bytes() == before


# ---------------------------------------------------------------------------------------------
# invariants
# ---------------------------------------------------------------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_raw_ids = st.one_of(
    st.integers(-5, 30),
    st.integers(0, 30).map(float),
    st.sampled_from([0.5, 7.25]),
    st.builds(lambda pad, n, ws: ws[0] + pad + str(n) + ws[1], st.sampled_from(["", "0", "00", "P"]), st.integers(0, 30),
              st.tuples(st.sampled_from(["", " ", "\u00a0", "\t"]), st.sampled_from(["", " ", "\u00a0"]))),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_raw_ids, min_size=1, max_size=25))
def test_loader_and_pseudonymize_group_ids_alike(raw):
    """Two raw IDs are one patient for read_sessions exactly when pseudonymize gives them one
    pseudonym (the one ID rule), whatever mix of numbers, text, zeros and spaces."""
    df = pd.DataFrame({"pid": pd.Series(raw, dtype=object), "sess": range(1, len(raw) + 1)})
    out = als.read_sessions(df, patient="pid", session="sess").data
    loaded = dict(zip(out["session"] - 1, out["patient"]))  # session i + 1 was row i
    pseudo = als.pseudonymize(df, "pid", key="a secret key")["pid"]
    for i in range(len(raw)):
        for j in range(len(raw)):
            assert (loaded[i] == loaded[j]) == (pseudo[i] == pseudo[j]), (raw[i], raw[j])
    assert out["patient"].map(type).eq(str).all()


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.floats(allow_nan=False), st.integers(-10**25, 10**25)))
def test_session_numbers_accepted_exactly_when_whole_and_in_range(v):
    from alliance_stats.validation import SESSION_MAX, session_reasons

    reasons = session_reasons(pd.Series([v], dtype=object if isinstance(v, int) and abs(v) > 2**62 else None))
    ok = np.isfinite(float(v)) and float(v) == int(float(v)) and 1 <= v <= SESSION_MAX
    assert (reasons == {}) == ok


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda d: als.decompose(d, ["wai"]), ("'wai'", "infinite", "rows 2")),
        (lambda d: als.rupture_outcome(d, als.detect_ruptures(d.assign(wai=d["wai"].replace(np.inf, 4.0)), "wai"), outcome="wai"),
         ("'wai'", "infinite", "rows 2")),
        (lambda d: als.meta_analysis(r=[0.2, np.inf, 0.3], n=[50, 60, 70]), ("r or n is infinite",)),
        (lambda d: als.meta_analysis(yi=[0.2, 0.1, 0.3], vi=[0.01, np.inf, 0.02]), ("yi or vi is infinite",)),
    ],
    ids=["decompose", "rupture-outcome", "meta-r", "meta-vi"],
)
def test_models_refuse_infinite_scores(call, words):
    d = pd.DataFrame({"patient": ["a"] * 6, "session": range(1, 7), "wai": [4.0, 4.1, np.inf, 4.0, 3.9, 4.2]})
    before = d.copy()
    with pytest.raises(als.AllianceStatsError) as err:
        call(d)
    for w in words:
        assert w in str(err.value), str(err.value)
    pd.testing.assert_frame_equal(d, before)


def test_pqs_alliance_refuses_infinite_alliance():
    sorts = als.read_qsorts(_sorts(4), session="sid").data
    data = pd.DataFrame({"sid": [1, 2, 3, 4], "wai": [4.0, np.inf, 3.0, 2.5]})
    with pytest.raises(als.ColumnError, match=r"'wai' holds infinite values at rows 1"):
        als.pqs_alliance(sorts, data.rename(columns={"sid": "session"}), alliance="wai")
