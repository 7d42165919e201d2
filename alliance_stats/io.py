"""Reading exports (CSV, TSV, Excel, SPSS, Stata, Parquet) into tidy, validated session tables."""

from __future__ import annotations

import difflib
import hashlib
import hmac
import warnings
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from .exceptions import ColumnError, DataFileError, InvalidValuesWarning, QSortError, SessionDataError
from .exceptions import _fmt_labels, _show, user_stacklevel
from .instruments import get_instrument
from .scoring import resolve_items, score

__all__ = [
    "read_table",
    "read_sessions",
    "session_grid",
    "read_qsorts",
    "pseudonymize",
    "row_accounting",
    "ID_COLUMNS",
    "PQS_DISTRIBUTION",
    "PQS_DISTRIBUTION_VERIFICATION",
]

ID_COLUMNS = ("therapist", "patient", "session", "rater")
PQS_DISTRIBUTION = (5, 8, 12, 16, 18, 16, 12, 8, 5)
#: How well :data:`PQS_DISTRIBUTION` is verified, on the domain notes' grades ("verified",
#: "secondary", "unverified"): the forced distribution 5-8-12-16-18-16-12-8-5 is verified for
#: Block's Q-set (California Q-set); for the PQS itself it is taken from secondary sources.
#: :func:`read_qsorts` records it in ``attrs["alliance_stats"]["distribution_verification"]``.
PQS_DISTRIBUTION_VERIFICATION = "secondary"

_FORMATS = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".xlsx": "excel",
    ".xlsm": "excel",
    ".xls": "excel",
    ".sav": "spss",
    ".zsav": "spss",
    ".dta": "stata",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def read_table(source, *, sheet=None) -> tuple[pd.DataFrame, dict]:
    """Read a data file by its extension; return the table and what was learnt about it.

    Rows are labelled 1..n in file order (data row 1 is the first row under the header), so
    that errors can name them. SPSS and Stata value labels and variable labels are returned
    in the metadata dict, not applied.
    """
    if isinstance(source, pd.DataFrame):
        return source.copy(), {"source": "DataFrame", "format": "DataFrame"}
    path = Path(source)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataFileError(
            f"{str(path)!r}: unknown file type {path.suffix!r}; alliance-stats reads "
            f"{', '.join(sorted(_FORMATS))}. Save the export in one of these formats."
        )
    if not path.is_file():
        raise DataFileError(f"{str(path)!r} does not exist (working directory: {Path.cwd()})")
    meta: dict = {"source": str(path), "format": fmt}
    try:
        if fmt in ("csv", "tsv"):
            sep = "\t" if fmt == "tsv" else ","
            df = pd.read_csv(path, sep=sep)
            if fmt == "csv" and df.shape[1] == 1 and ";" in str(df.columns[0]):
                df = pd.read_csv(path, sep=";", decimal=",")  # European spreadsheet export
                meta["separator"] = ";"
        elif fmt == "excel":
            with pd.ExcelFile(path) as xl:
                names = xl.sheet_names
            if sheet is None:
                sheet = names[0]
            elif sheet not in names and not (isinstance(sheet, int) and 0 <= sheet < len(names)):
                raise DataFileError(f"{str(path)!r} has no sheet {sheet!r}; its sheets are {names}")
            df = pd.read_excel(path, sheet_name=sheet)
            meta["sheet"] = sheet
        elif fmt in ("spss", "stata"):
            import pyreadstat

            reader = pyreadstat.read_sav if fmt == "spss" else pyreadstat.read_dta
            df, m = reader(str(path), apply_value_formats=False)
            meta["value_labels"] = {k: dict(v) for k, v in m.variable_value_labels.items()}
            meta["variable_labels"] = {
                k: v for k, v in zip(m.column_names, m.column_labels) if v is not None
            }
        else:
            df = pd.read_parquet(path)
    except DataFileError:
        raise
    except Exception as exc:  # the reader's own message is kept
        raise DataFileError(f"{str(path)!r} could not be read as {fmt}: {exc}") from exc
    df.index = pd.RangeIndex(1, len(df) + 1)
    return df, meta


def _need_columns(df: pd.DataFrame, mapping: Mapping[str, str]) -> None:
    for role, col in mapping.items():
        if col not in df.columns:
            close = difflib.get_close_matches(str(col), [str(c) for c in df.columns], n=3, cutoff=0.5)
            hint = f"; did you mean {close}?" if close else ""
            raise ColumnError(
                f"{role}={col!r} is not a column of the data{hint} (columns: "
                f"{list(df.columns)[:12]}{' ...' if df.shape[1] > 12 else ''})"
            )


def check_session_keys(data: pd.DataFrame, keys: list[str], session: str, *, what: str = "score") -> pd.Series:
    """Validate ID columns: no missing IDs, sessions positive whole numbers, no duplicate keys.

    Returns the session numbers as int64. Raises SessionDataError naming the rows.
    """
    ids = data[keys + [session]]
    miss = ids.isna().any(axis=1)
    if miss.any():
        rows = data.index[miss].tolist()
        raise SessionDataError(f"missing IDs in {keys + [session]} at rows {_fmt_labels(rows)}; fix them first", rows=rows)
    sess = pd.to_numeric(data[session], errors="coerce")
    bad = sess.isna() | (sess != np.round(sess)) | (sess < 1)
    if bad.any():
        rows = data.index[bad].tolist()
        raise SessionDataError(f"{session!r} is not a positive whole number at rows {_fmt_labels(rows)}", rows=rows)
    dup = data.duplicated(keys + [session], keep=False)
    if dup.any():
        rows = data.index[dup].tolist()
        raise SessionDataError(
            f"the same {' x '.join(keys + [session])} appears twice at rows {_fmt_labels(rows)}; keep one {what} "
            "per session (average raters first if there are several)",
            rows=rows,
        )
    return sess.astype("int64")


def _to_wide(df: pd.DataFrame, ids: list[str], item: str, value: str) -> pd.DataFrame:
    """Pivot a long table (one row per item response) to one row per form."""
    dup = df.duplicated(ids + [item], keep=False)
    if dup.any():
        rows = df.index[dup].tolist()
        raise SessionDataError(
            f"{len(rows)} rows give the same item twice for the same "
            f"{' x '.join(ids)}: rows {_fmt_labels(rows)}. Remove the repeated responses.",
            rows=rows,
        )
    keyed = df.set_index(ids + [item])[value].unstack(item)
    keyed.columns = [str(c) for c in keyed.columns]
    others = [c for c in df.columns if c not in ids + [item, value]]
    if others:
        extra = df.groupby(ids, dropna=False, sort=False)[others].first()
        keyed = keyed.join(extra)
    wide = keyed.reset_index()
    wide.index = pd.RangeIndex(1, len(wide) + 1)
    return wide


def _check_ids(df: pd.DataFrame, keys: list[str]) -> list[tuple[object, str]]:
    """Find rows with missing IDs, bad session numbers, or duplicated keys."""
    problems: list[tuple[object, str]] = []
    for c in keys:
        miss = df[c].isna() | df[c].astype(str).str.strip().eq("")
        problems += [(r, f"missing {c} ID") for r in df.index[miss]]
    s = pd.to_numeric(df["session"], errors="coerce")
    bad = df["session"].notna() & (s.isna() | (s < 1) | (s != np.round(s)))
    problems += [(r, f"session {_show(df.at[r, 'session'])} is not a positive whole number") for r in df.index[bad]]
    flagged = {r for r, _ in problems}
    ok = df.loc[~df.index.isin(flagged)]
    dup_keys = [k for k in keys if k != "therapist"]
    dup = ok.duplicated(dup_keys, keep=False)
    for r in ok.index[dup]:
        desc = ", ".join(f"{k} {_show(ok.at[r, k])}" for k in dup_keys)
        problems.append((r, f"duplicate {' x '.join(dup_keys)} ({desc})"))
    return problems


def read_sessions(
    source,
    *,
    patient: str,
    session: str,
    therapist: str | None = None,
    rater: str | None = None,
    instruments=None,
    sheet=None,
    shape: str = "auto",
    item: str = "item",
    value: str = "value",
    on_invalid: str = "raise",
    on_bad_rows: str = "raise",
    apply_labels: bool = True,
) -> pd.DataFrame:
    """Read an export into one tidy, validated, scored session table.

    Parameters
    ----------
    source : path or DataFrame
        CSV, TSV, Excel (.xlsx), SPSS (.sav), Stata (.dta) or Parquet file, or a DataFrame
        (which is copied, never modified).
    patient, session : str
        Columns holding the patient ID and the session number (a positive whole number).
    therapist, rater : str, optional
        Columns holding the therapist ID and the rater (client, therapist, observer, or a
        judge's ID). Renamed to the canonical ``therapist`` / ``rater``.
    instruments : dict or list, optional
        Instruments to score: ``{"wai-sr": "wai{}", "phq-9": "phq{}"}`` maps each
        instrument to its item columns (see :func:`resolve_items`); a list of names looks
        for the usual column names.
    sheet : str or int, optional
        Excel sheet (default: the first).
    shape : {"auto", "wide", "long"}
        Wide: one row per session (per rater), item columns. Long: one row per item response,
        with columns ``item`` (the item's column name, e.g. ``wai3``) and ``value``.
        ``auto`` picks long when both of those columns are present.
    on_invalid : {"raise", "nan"}
        What to do with an item response outside its scale (see :func:`score`).
    on_bad_rows : {"raise", "drop"}
        Rows with a missing ID, a session that is not a positive whole number, or the same
        patient x session x rater twice raise :class:`SessionDataError` listing them; with
        ``"drop"`` they are excluded and listed with the reason in the row accounting.
    apply_labels : bool
        Turn SPSS/Stata value labels of columns that are neither IDs nor items into
        categories. Labels of every column stay in the metadata.

    Returns
    -------
    DataFrame
        Canonical ID columns first (``therapist``, ``patient``, ``session``, ``rater`` as
        given), the other columns of the file, then the scores of each instrument
        (``{prefix}_{scale}``, see :func:`score`); sorted by patient, session (and rater).
        ``df.attrs["alliance_stats"]`` records the source, the instrument keys with their
        provenance, value labels, and the row accounting (rows read, kept, excluded with
        reason); :func:`row_accounting` shows it as a table.

    Examples
    --------
    >>> import alliance_stats as als
    >>> df = als.read_sessions(als.sample_path("sessions_csv"), patient="client_id",
    ...     session="session_no", therapist="therapist_id",
    ...     instruments={"wai-sr": "WAISR_{}", "phq-9": "PHQ9_{}"})
    >>> df[["patient", "session", "wai_sr_total", "phq9_total"]].shape[1]
    4
    """
    if shape not in ("auto", "wide", "long"):
        raise ValueError(f"shape must be 'auto', 'wide' or 'long', got {shape!r}")
    if on_bad_rows not in ("raise", "drop"):
        raise ValueError(f"on_bad_rows must be 'raise' or 'drop', got {on_bad_rows!r}")
    df, meta = read_table(source, sheet=sheet)
    roles = {"patient": patient, "session": session}
    if therapist is not None:
        roles["therapist"] = therapist
    if rater is not None:
        roles["rater"] = rater
    _need_columns(df, roles)
    n_read = len(df)
    is_long = shape == "long" or (shape == "auto" and item in df.columns and value in df.columns)
    if is_long:
        _need_columns(df, {"item": item, "value": value})
        df = _to_wide(df, list(roles.values()), item, value)
    taken = {c for role, c in roles.items()}
    clash = [r for r in roles if r in df.columns and r not in taken]
    if clash:
        raise ColumnError(
            f"the data already has column(s) {clash} besides the ones named as IDs; rename them "
            "before reading, the canonical ID names are reserved"
        )
    df = df.rename(columns={c: role for role, c in roles.items()})
    keys = [k for k in ID_COLUMNS if k in roles]

    excluded: list[dict] = []
    problems = _check_ids(df, keys)
    if problems:
        if on_bad_rows == "raise":
            rows = sorted({r for r, _ in problems}, key=lambda r: (str(type(r)), r))
            detail = "; ".join(f"row {r}: {why}" for r, why in problems[:8])
            more = f"; ... ({len(problems) - 8} more)" if len(problems) > 8 else ""
            raise SessionDataError(
                f"{len(rows)} row(s) with bad session identifiers: {detail}{more}. Fix the IDs in "
                "the export, or pass on_bad_rows='drop' to exclude these rows (they are then "
                "listed in the row accounting).",
                rows=rows,
            )
        why: dict = {}
        for r, reason in problems:
            why.setdefault(r, reason)
        excluded = [{"row": r, "reason": reason} for r, reason in why.items()]
        df = df.drop(index=list(why))

    df["session"] = pd.to_numeric(df["session"]).astype("int64")
    order = ["therapist", "patient", "session", "rater"]
    df = df[[c for c in order if c in df.columns] + [c for c in df.columns if c not in order]]

    inst_meta: dict = {}
    item_cols: set = set()
    if instruments is not None:
        spec = instruments if isinstance(instruments, Mapping) else {name: None for name in instruments}
        parts = []
        for name, items in spec.items():
            inst = get_instrument(name)
            sc = score(df, inst, items=items, on_invalid=on_invalid)
            clash = [c for c in sc.columns if c in df.columns or any(c in p.columns for p in parts)]
            if clash:
                raise ColumnError(
                    f"score column(s) {clash} of {inst.name!r} already exist; pass each instrument "
                    "once, or score it with als.score(..., prefix=...) to choose other names"
                )
            parts.append(sc)
            a = sc.attrs["alliance_stats"]
            item_cols.update(a["items"])
            inst_meta[inst.name] = {
                "provenance": inst.provenance,
                "scoring": a["scoring"],
                "items": a["items"],
                "invalid_set_missing": a["invalid"],
                "key_source": inst.source,
            }
        if parts:
            df = pd.concat([df] + parts, axis=1)

    labels = meta.get("value_labels", {})
    if apply_labels and labels:
        for col, lab in labels.items():
            target = {v: k for k, v in roles.items()}.get(col, col)
            if target in df.columns and target not in keys and target not in item_cols:
                vals = df[target]
                if vals.dropna().isin(list(lab)).all():
                    df[target] = pd.Categorical(vals.map(lab), categories=list(dict.fromkeys(lab.values())))

    df = df.sort_values([k for k in ("patient", "session", "rater") if k in df.columns], kind="stable")
    source_rows = df.index.tolist()
    df = df.reset_index(drop=True)
    meta.update(
        {
            "shape": "long" if is_long else "wide",
            "id_columns": {role: col for role, col in roles.items()},
            "instruments": inst_meta,
            "rows": {
                "read": n_read,
                "forms": len(source_rows) + len(excluded),
                "kept": len(df),
                "excluded": excluded,
            },
            "source_rows": source_rows,
        }
    )
    df.attrs["alliance_stats"] = meta
    return df


def row_accounting(data: pd.DataFrame) -> pd.DataFrame:
    """The row accounting recorded by :func:`read_sessions`, as a table.

    Returns
    -------
    DataFrame
        Columns ``step, rows, reason``: rows read, rows excluded per reason, rows kept.
    """
    meta = data.attrs.get("alliance_stats", {}).get("rows")
    if meta is None:
        raise ColumnError("this table carries no row accounting; it was not made by als.read_sessions()")
    rows = [{"step": "read", "rows": meta["read"], "reason": ""}]
    if meta.get("forms", meta["read"]) != meta["read"]:
        rows.append({"step": "forms after pivoting long to wide", "rows": meta["forms"], "reason": ""})
    reasons = pd.Series([e["reason"].split(" (")[0] for e in meta["excluded"]], dtype=object)
    for reason, k in reasons.value_counts().items():
        rows.append({"step": "excluded", "rows": int(k), "reason": reason})
    rows.append({"step": "kept", "rows": meta["kept"], "reason": ""})
    return pd.DataFrame(rows)


def session_grid(
    data: pd.DataFrame,
    *,
    patient: str = "patient",
    session: str = "session",
    by: Iterable[str] | None = None,
    start: int | None = None,
) -> pd.DataFrame:
    """Make missing sessions explicit rows, so that lags never jump a gap.

    Parameters
    ----------
    data : DataFrame
        One row per patient x session (x rater). Not modified.
    patient, session : str
        ID columns.
    by : list of str, optional
        Further keys within which sessions run, e.g. ``["rater"]``; defaults to ``rater``
        when the data has that column.
    start : int, optional
        First session of every patient's grid (e.g. 1); default each patient's first
        observed session.

    Returns
    -------
    DataFrame
        Every session from the first to the last of each patient, with a boolean column
        ``observed``; inserted rows have missing values except the IDs (and ``therapist``
        when it is constant within the patient).
    """
    _need_columns(data, {"patient": patient, "session": session})
    if by is None:
        by = ["rater"] if "rater" in data.columns and "rater" not in (patient, session) else []
    by = list(by)
    _need_columns(data, {f"by[{i}]": c for i, c in enumerate(by)})
    keys = [patient] + by
    sess = check_session_keys(data, keys, session, what="row")
    df = data.copy()
    df[session] = sess
    g = df.groupby(keys, sort=True, dropna=False)[session]
    lo = g.min() if start is None else g.min().clip(upper=int(start))
    hi = g.max()
    counts = (hi - lo + 1).to_numpy()
    idx = np.repeat(np.arange(len(hi)), counts)
    offs = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    key_frame = hi.index.to_frame(index=False).iloc[idx].reset_index(drop=True)
    key_frame[session] = np.repeat(lo.to_numpy(), counts) + offs
    df["observed"] = True
    out = key_frame.merge(df, on=keys + [session], how="left", sort=False)
    out["observed"] = out["observed"].fillna(False).astype(bool)
    if "therapist" in df.columns and "therapist" not in keys:
        th = df.groupby(keys, dropna=False)["therapist"].agg(lambda s: s.iloc[0] if s.nunique() <= 1 else np.nan)
        fill = out[keys].merge(th.rename("_th").reset_index(), on=keys, how="left")["_th"].to_numpy()
        out["therapist"] = out["therapist"].where(out["observed"], fill)
    cols = [c for c in data.columns] + ["observed"]
    out = out[cols].sort_values(keys + [session], kind="stable").reset_index(drop=True)
    out.attrs = dict(data.attrs)
    return out


def read_qsorts(
    source,
    *,
    session: str,
    items="pqs{}",
    patient: str | None = None,
    rater: str | None = None,
    distribution: Iterable[int] | None = PQS_DISTRIBUTION,
    on_invalid: str = "raise",
    sheet=None,
) -> pd.DataFrame:
    """Read Q-sorts (one row per rated session, one column per item holding its pile).

    Parameters
    ----------
    source : path or DataFrame
    session : str
        Column identifying the rated session.
    items : str, list or dict
        Item columns (see :func:`resolve_items`); default ``"pqs{}"`` (pqs1 ... pqs100).
    patient, rater : str, optional
        Further ID columns to keep (renamed to ``patient`` / ``rater``).
    distribution : sequence of int or None
        Required number of items in each pile, lowest pile first; default the PQS's
        5, 8, 12, 16, 18, 16, 12, 8, 5 (:data:`PQS_DISTRIBUTION`; verified for Block's Q-set,
        from secondary sources for the PQS: :data:`PQS_DISTRIBUTION_VERIFICATION` is
        ``"secondary"``; pass the one in Jones's manual if it differs). None checks only that
        piles are 1..len.
    on_invalid : {"raise", "flag"}
        A sort with a missing item, a pile outside 1..9 (or not whole), or pile counts that
        break the distribution raises :class:`QSortError` naming the session and the counts
        found vs expected; ``"flag"`` keeps it with ``qsort_valid = False`` and the reason in
        ``qsort_problem``. Flagged sorts are left out of every PQS analysis.

    Returns
    -------
    DataFrame
        ID columns (``session``, and ``patient``/``rater`` when given), the file's other
        columns, items as ``pqs1`` .. ``pqs100``, ``qsort_valid`` and ``qsort_problem``.
    """
    if on_invalid not in ("raise", "flag"):
        raise ValueError(f"on_invalid must be 'raise' or 'flag', got {on_invalid!r}")
    inst = get_instrument("pqs")
    df, meta = read_table(source, sheet=sheet)
    roles = {"session": session}
    if patient:
        roles["patient"] = patient
    if rater:
        roles["rater"] = rater
    _need_columns(df, roles)
    cols = resolve_items(df, inst, items)
    dist = None if distribution is None else np.asarray(list(distribution), dtype=int)
    n_piles = len(dist) if dist is not None else 9
    if dist is not None and dist.sum() != inst.n_items:
        raise QSortError(f"distribution {list(dist)} sums to {dist.sum()}, not {inst.n_items} items")
    X = df[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    nonnum = df[cols].notna().to_numpy() & np.isnan(X)
    problems = []
    for i, r in enumerate(df.index):
        row = X[i]
        sid = df.at[r, session]
        missing = int(np.isnan(row).sum() - nonnum[i].sum())
        why = []
        if nonnum[i].any():
            why.append(f"{int(nonnum[i].sum())} pile value(s) are not numbers")
        if missing:
            why.append(f"{missing} of {inst.n_items} items have no pile")
        vals = row[~np.isnan(row)]
        out_rng = (vals < 1) | (vals > n_piles) | (vals != np.round(vals))
        if out_rng.any():
            why.append(f"pile(s) {sorted(set(vals[out_rng].tolist()))} outside 1..{n_piles}")
        if dist is not None and not why:
            found = np.bincount(vals.astype(int), minlength=n_piles + 1)[1:]
            if not np.array_equal(found, dist):
                diff = [k + 1 for k in range(n_piles) if found[k] != dist[k]]
                why.append(
                    f"pile counts found {found.tolist()} vs expected {dist.tolist()} (piles {diff} differ)"
                )
        if why:
            problems.append((r, sid, "; ".join(why)))
    if problems and on_invalid == "raise":
        r, sid, why = problems[0]
        more = f" ({len(problems) - 1} more invalid sort(s) follow)" if len(problems) > 1 else ""
        raise QSortError(
            f"Q-sort of session {_show(sid)} (row {r}): {why}{more}. Correct the sort, or pass "
            "on_invalid='flag' to keep it flagged and out of the analyses.",
            session=sid,
        )
    clash = [k for k in roles if k in df.columns and k not in roles.values()]
    if clash:
        raise ColumnError(f"the data already has column(s) {clash} besides the ones named as IDs; rename them first")
    others = [c for c in df.columns if c not in cols and c not in roles.values()]
    out = df[list(roles.values()) + others].rename(columns={c: k for k, c in roles.items()})
    items_df = pd.DataFrame(X, index=df.index, columns=[f"pqs{i}" for i in range(1, inst.n_items + 1)])
    out = pd.concat([out, items_df], axis=1)
    out["qsort_valid"] = True
    out["qsort_problem"] = ""
    for r, _, why in problems:
        out.at[r, "qsort_valid"] = False
        out.at[r, "qsort_problem"] = why
    if problems:
        warnings.warn(
            f"{len(problems)} of {len(out)} Q-sorts are invalid and flagged (qsort_valid = False)",
            InvalidValuesWarning,
            stacklevel=user_stacklevel(),
        )
    out = out.reset_index(drop=True)
    meta.update(
        {
            "distribution": None if dist is None else dist.tolist(),
            "distribution_verification": (
                None if dist is None
                else f"{PQS_DISTRIBUTION_VERIFICATION} (the PQS default: verified for Block's Q-set, secondary sources for the PQS)"
                if tuple(dist.tolist()) == PQS_DISTRIBUTION else "user-supplied"
            ),
            "rows": {"read": len(df), "valid": len(df) - len(problems), "flagged": len(problems)},
        }
    )
    out.attrs["alliance_stats"] = meta
    return out


def _canon_id(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (np.integer,)):
        return str(int(v))
    return str(v)


def pseudonymize(data: pd.DataFrame, columns, *, key, length: int = 16) -> pd.DataFrame:
    """Replace ID values with keyed hashes (HMAC-SHA256) so data can be shared.

    The same ID and key always give the same pseudonym, so tables pseudonymized with one key
    can still be joined; without the key the IDs cannot be recovered by trying candidates.
    Keep the key secret and out of the shared data.

    Parameters
    ----------
    data : DataFrame
        Not modified.
    columns : str or list of str
    key : str or bytes
        Secret key (at least 8 characters).
    length : int
        Hex characters kept of each digest (8..64).

    Returns
    -------
    DataFrame
        A copy with the columns replaced; missing IDs stay missing. Integer-valued floats
        hash like integers (``7.0`` as ``7``).
    """
    if isinstance(columns, str):
        columns = [columns]
    _need_columns(data, {f"columns[{i}]": c for i, c in enumerate(columns)})
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, (bytes, bytearray)) or len(key) < 8:
        raise ValueError("key must be a secret string or bytes of at least 8 characters")
    if not 8 <= int(length) <= 64:
        raise ValueError(f"length must be between 8 and 64, got {length}")
    out = data.copy()
    cache: dict = {}

    def h(v):
        if pd.isna(v):
            return v
        s = _canon_id(v)
        if s not in cache:
            cache[s] = hmac.new(key, s.encode("utf-8"), hashlib.sha256).hexdigest()[:length]
        return cache[s]

    for c in columns:
        out[c] = data[c].map(h).astype(object)
    out.attrs = dict(data.attrs)
    out.attrs.setdefault("alliance_stats", {})
    out.attrs["alliance_stats"] = dict(out.attrs["alliance_stats"], pseudonymized=list(columns))
    return out
