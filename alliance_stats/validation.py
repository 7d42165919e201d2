"""Shared checks of user input, so that every reader refuses the same things with the same words.

- :func:`check_option`, :func:`check_whole_number`, :func:`check_number`: option values
  (raise :class:`~alliance_stats.exceptions.OptionError`).
- :func:`require_frame`, :func:`need_columns`, :func:`check_unique_columns`: the table and its
  columns (did-you-mean suggestions via :mod:`difflib`).
- :func:`numeric_column`: numbers in a column, naming the rows that are not numbers or infinite.
- :func:`id_text`, :func:`ids_to_text`: the one rule for IDs (see below).
- :func:`session_reasons`, :func:`check_session_keys`: session numbers and patient x session keys.

The ID rule
-----------
Patient, therapist and rater IDs are text. A number is written as its digits (``7`` and ``7.0``
both become ``"7"``; ``7.5`` becomes ``"7.5"``); text keeps its characters (``"007"`` stays
``"007"``) except surrounding white space, non-breaking and zero-width spaces, which are
removed; an empty ID is missing. :func:`~alliance_stats.read_sessions` applies this rule to
the ID columns and :func:`~alliance_stats.pseudonymize` hashes the same text, so two IDs are
the same patient for the loader exactly when they get the same pseudonym. File readers read ID
columns as text, so leading zeros survive in CSV, Excel and SPSS string variables (an ID
stored as a *number* in Excel or SPSS has no leading zeros to keep).

Session numbers are whole numbers from 1 to :data:`SESSION_MAX`; dates are refused (see
``session_from_dates`` of :func:`~alliance_stats.read_sessions`).
"""

from __future__ import annotations

import datetime as _dt
import difflib
import numbers
import re
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from .exceptions import ColumnError, DataFileError, OptionError, SessionDataError, _fmt_labels, _show

__all__ = [
    "SESSION_MAX",
    "check_option",
    "check_whole_number",
    "check_number",
    "require_frame",
    "need_columns",
    "check_unique_columns",
    "numeric_column",
    "id_text",
    "ids_to_text",
    "session_reasons",
    "sessions_message",
    "check_session_keys",
    "DATE_SESSION_FIX",
]

SESSION_MAX = 99_999
"""Largest session number accepted (sessions are 1 .. SESSION_MAX)."""

DATE_SESSION_FIX = (
    "Number each patient's sessions 1, 2, 3 ... in a column of their own, or pass "
    "session_from_dates=True to number them in date order within each patient."
)

_STRIP = " \t\r\n\f\v\u00a0\u2007\u202f\u200b\u200c\u200d\u2060\ufeff\u3000"
_DATE_TEXT = re.compile(
    r"^\s*(\d{4}-\d{1,2}-\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?"
    r"|\d{1,2}[./]\d{1,2}[./]\d{2,4}( \d{1,2}:\d{2}(:\d{2})?)?)\s*$"
)


# -- options ----------------------------------------------------------------------------------
def check_option(option: str, value, allowed: Iterable, hint: str = ""):
    """Return ``value`` if it is one of ``allowed``, else raise OptionError naming them."""
    allowed = tuple(allowed)
    try:
        ok = any(
            isinstance(value, type(a)) and not (isinstance(value, bool) and not isinstance(a, bool)) and value == a
            for a in allowed
        )
    except Exception:  # an array or frame compared with a string
        ok = False
    if not ok:
        raise OptionError(option, value, allowed, hint)
    return value


def check_whole_number(option: str, value, lo: int | None = None, hi: int | None = None) -> int:
    """Return ``value`` as int if it is a whole number (not bool, not text) within [lo, hi]."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if not ok and isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        ok = True
    if ok:
        v = int(value)
        if (lo is None or v >= lo) and (hi is None or v <= hi):
            return v
    rng = f"from {lo} to {hi}" if lo is not None and hi is not None else (f"of at least {lo}" if lo is not None else f"of at most {hi}")
    raise OptionError(option, value, hint=f"give a whole number {rng}")


def check_number(option: str, value, lo=None, hi=None, *, lo_open: bool = False, hi_open: bool = False,
                 hint: str | None = None) -> float:
    """Return ``value`` as float if it is a finite number (not bool, not text) within the bounds."""
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and np.isfinite(value):
        v = float(value)
        ok_lo = lo is None or (v > lo if lo_open else v >= lo)
        ok_hi = hi is None or (v < hi if hi_open else v <= hi)
        if ok_lo and ok_hi:
            return v
    parts = []
    if lo is not None:
        parts.append(f"{'above' if lo_open else 'at least'} {lo}")
    if hi is not None:
        parts.append(f"{'below' if hi_open else 'at most'} {hi}")
    raise OptionError(option, value, hint=hint or "give a finite number" + (" " + " and ".join(parts) if parts else ""))


# -- tables and columns ----------------------------------------------------------------------
def require_frame(data, what: str = "data") -> pd.DataFrame:
    """Raise DataFileError unless ``data`` is a pandas DataFrame."""
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], pd.DataFrame):
        raise DataFileError(f"{what} must be a pandas DataFrame, got a (table, metadata) pair as als.read_table() "
                            "returns it; pass the table: df, meta = als.read_table(path)")
    if not isinstance(data, pd.DataFrame) and isinstance(getattr(data, "data", None), pd.DataFrame) \
            and hasattr(data, "provenance"):
        raise DataFileError(f"{what} must be a pandas DataFrame, got {type(data).__name__} (the table and its "
                            "provenance, as als.read_sessions() returns them); pass its table: sessions.data, or "
                            "unpack it: df, prov = als.read_sessions(...)")
    if not isinstance(data, pd.DataFrame):
        raise DataFileError(
            f"{what} must be a pandas DataFrame, got {type(data).__name__}; read a file with "
            "als.read_sessions() or als.read_table() first"
        )
    return data


def check_unique_columns(df: pd.DataFrame, columns=None, *, where: str = "the data") -> None:
    """Raise ColumnError naming column names that occur more than once (among ``columns`` if given)."""
    cols = pd.Index(df.columns)
    dup = cols[cols.duplicated()].unique()
    if columns is not None:
        wanted = set()
        for c in columns:
            try:
                wanted.add(c)
            except TypeError:
                pass
        dup = [c for c in dup if c in wanted]
    dup = list(dup)
    if dup:
        counts = ", ".join(f"{c!r} ({int((cols == c).sum())} times)" for c in dup[:10])
        raise ColumnError(
            f"{where} has more than one column called {counts}; rename or remove the copies so "
            "that each column name occurs once"
        )


def _delimiter_hint(df: pd.DataFrame) -> str:
    if df.shape[1] == 1:
        name = str(df.columns[0])
        for sep, label in ((";", "semicolons"), ("\t", "tabs"), (",", "commas"), ("|", "'|'")):
            if sep in name:
                return (
                    f". The data have a single column whose name holds {label}: the file's delimiter was "
                    f"not recognised; pass sep={sep!r}"
                )
    return ""


def need_columns(df: pd.DataFrame, mapping: Mapping[str, object], *, where: str = "the data") -> None:
    """Raise ColumnError for the first ``role=column`` whose column is not in ``df``, with
    close matches ("did you mean") and a word about the delimiter when the table has one column.
    ``where`` names the table in the message (e.g. "the sorts")."""
    for role, col in mapping.items():
        try:
            present = col in df.columns
        except TypeError:  # an unhashable column name, e.g. a list
            present = False
        if not present:
            close = difflib.get_close_matches(str(col), [str(c) for c in df.columns], n=3, cutoff=0.5)
            hint = f"; did you mean {close}?" if close else ""
            raise ColumnError(
                f"{role}={col!r} is not a column of {where}{hint} (columns: "
                f"{list(df.columns)[:12]}{' ...' if df.shape[1] > 12 else ''}){_delimiter_hint(df)}"
            )


def numeric_column(data: pd.DataFrame, column, *, what: str | None = None, allow_inf: bool = False,
                   error=None) -> pd.Series:
    """The column as float; raise naming the rows whose values are not numbers or are infinite.

    Missing values stay missing (NaN). ``error`` is the exception class (default ColumnError).
    """
    error = error or ColumnError
    s = data[column]
    label = what or f"column {column!r}"
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_datetime64_any_dtype(s):
        raise error(f"{label} holds {'true/false values' if pd.api.types.is_bool_dtype(s) else 'dates'}, not numbers")
    x = pd.to_numeric(s, errors="coerce").astype(float)
    bad = s.notna() & x.isna()
    if bad.any():
        rows = data.index[bad.to_numpy()].tolist()
        raise error(f"{label} holds values that are not numbers at rows {_fmt_labels(rows)} "
                    f"(values {_fmt_labels(s[bad].tolist())})")
    if not allow_inf:
        inf = np.isinf(x.to_numpy())
        if inf.any():
            rows = data.index[inf].tolist()
            raise error(f"{label} holds infinite values at rows {_fmt_labels(rows)}; correct them or set "
                        "them to missing")
    return x


# -- IDs ----------------------------------------------------------------------------------------
def _missing(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def id_text(value):
    """An ID as text by the package's one ID rule (module docstring); missing stays NaN."""
    if _missing(value):
        return np.nan
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        f = float(value)
        if f.is_integer():
            return str(int(f))
        return repr(f)
    s = value if isinstance(value, str) else str(value)
    s = s.strip(_STRIP)
    return s if s else np.nan


def ids_to_text(series: pd.Series) -> tuple[pd.Series, int]:
    """Apply :func:`id_text` to a column; return the text column and how many values lost
    surrounding spaces (values that were text and changed). The rule is applied once per distinct
    value and the rows take their text from it."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    uniq = pd.Index(uniques)
    if pd.api.types.is_integer_dtype(uniq.dtype) and not pd.api.types.is_bool_dtype(uniq.dtype):
        text = pd.Index(uniq.astype("int64").astype(str), dtype="str")  # the rule, vectorised
        changed_u = np.zeros(len(uniq), bool)
    elif pd.api.types.is_string_dtype(uniq.dtype) and not pd.api.types.is_object_dtype(uniq.dtype):
        stripped = uniq.str.strip(_STRIP)
        changed_u = np.asarray(stripped != uniq, bool)
        text = pd.Index(stripped.where(stripped != "", np.nan), dtype="str")
    else:  # object, float, bool, dates: value by value
        vals = list(uniq)
        texts = [id_text(v) for v in vals]
        changed_u = np.array([isinstance(v, str) and isinstance(t, str) and v != t for v, t in zip(vals, texts)], dtype=bool)
        text = pd.Index(texts, dtype="str")
    valid = codes >= 0
    changed = int(changed_u[codes[valid]].sum()) if len(uniq) else 0
    lookup = text.append(pd.Index([np.nan], dtype="str"))
    out = pd.Series(lookup.take(np.where(valid, codes, len(text))), index=series.index, name=series.name)
    return out, changed


# -- sessions -----------------------------------------------------------------------------------
def _is_date(v) -> bool:
    if isinstance(v, (_dt.date, _dt.datetime, pd.Timestamp, np.datetime64)):
        return True
    return isinstance(v, str) and bool(_DATE_TEXT.match(v))


def _date_text(v) -> str:
    if isinstance(v, (pd.Timestamp, _dt.datetime)):
        ts = pd.Timestamp(v)
        return str(ts.date()) if ts == ts.normalize() else str(ts)
    return str(v).strip()


def session_reasons(values: pd.Series, *, name: str = "session") -> dict:
    """Reasons why session values are not session numbers: ``{row label: reason}``.

    A session number is a whole number from 1 to :data:`SESSION_MAX`. Missing values are not
    checked here (the caller reports missing IDs); dates get their own reason.
    """
    out: dict = {}
    present = values.notna().to_numpy()
    if pd.api.types.is_datetime64_any_dtype(values):
        for r, v in zip(values.index[present], values[present]):
            out[r] = f"{name} {_date_text(v)} is a date, not a session number"
        return out
    if pd.api.types.is_timedelta64_dtype(values) or pd.api.types.is_bool_dtype(values):
        for r, v in zip(values.index[present], values[present]):
            out[r] = f"{name} {_show(v)} is not a session number"
        return out
    date = np.zeros(len(values), dtype=bool)
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        date = values.map(_is_date).to_numpy(dtype=bool) & present
    num = pd.to_numeric(values.where(~date), errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        bad = present & ~date & (np.isnan(num) | ~np.isfinite(num) | (num != np.round(num)) | (num < 1) | (num > SESSION_MAX))
    for i in np.flatnonzero(date | bad):
        v = values.iloc[i]
        if date[i]:
            out[values.index[i]] = f"{name} {_date_text(v)} is a date, not a session number"
        else:
            shown = f"{float(v):g}" if isinstance(v, (float, np.floating)) and abs(v) >= 1e15 else _show(v)
            out[values.index[i]] = f"{name} {shown} is not a positive whole number up to {SESSION_MAX}"
    return out


def sessions_message(reasons: Mapping, *, limit: int = 8) -> str:
    """A short list of session problems, with the fix for dates when any value is a date."""
    items = list(reasons.items())
    detail = "; ".join(f"row {_show(r)}: {why}" for r, why in items[:limit])
    if len(items) > limit:
        detail += f"; ... ({len(items) - limit} more)"
    if any("is a date" in why for _, why in items):
        detail += ". " + DATE_SESSION_FIX
    return detail


def check_session_keys(data: pd.DataFrame, keys: list, session, *, what: str = "score") -> pd.Series:
    """Validate ID columns: no missing IDs, sessions whole numbers 1..SESSION_MAX (no dates), no
    duplicate keys. Returns the session numbers as int64; raises SessionDataError naming the rows."""
    ids = data[list(keys) + [session]]
    miss = ids.isna().any(axis=1)
    if miss.any():
        rows = data.index[miss.to_numpy()].tolist()
        raise SessionDataError(f"missing IDs in {list(keys) + [session]} at rows {_fmt_labels(rows)}; fix them first", rows=rows)
    reasons = session_reasons(data[session], name=str(session))
    if reasons and keys and data.index.is_unique:
        reasons = {r: f"{why} ({keys[0]} {_show(data.at[r, keys[0]])})" for r, why in reasons.items()}
    if reasons:
        rows = list(reasons)
        raise SessionDataError(
            f"{session!r} must hold session numbers (whole numbers from 1 to {SESSION_MAX}): "
            f"{sessions_message(reasons)}",
            rows=rows,
        )
    dup = data.duplicated(list(keys) + [session], keep=False)
    if dup.any():
        rows = data.index[dup.to_numpy()].tolist()
        raise SessionDataError(
            f"the same {' x '.join(map(str, list(keys) + [session]))} appears twice at rows {_fmt_labels(rows)}; keep one {what} "
            "per session (average raters first if there are several)",
            rows=rows,
        )
    return pd.to_numeric(data[session]).astype("int64")
