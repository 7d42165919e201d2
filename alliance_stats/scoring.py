"""Scoring of instrument items by each form's key."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import numpy as np
import pandas as pd

from .exceptions import user_stacklevel, ColumnError, InstrumentKeyError, InvalidValuesWarning, ItemRangeError, ProvisionalKeyWarning
from .exceptions import OptionError
from .instruments import Instrument, get_instrument
from .validation import check_option, check_unique_columns, require_frame

__all__ = ["score", "score_instruments", "resolve_items", "item_matrix", "InstrumentRecord", "EXAMPLE_ROWS"]

#: How many row labels a provenance record keeps as examples of each reason (the counts are exact).
EXAMPLE_ROWS = 10


@dataclass(frozen=True)
class InstrumentRecord:
    """What scoring one instrument did, in a record whose size does not grow with the rows.

    Attributes
    ----------
    name : str
        The instrument's registered name (``"wai-sr"``).
    provenance : str
        How well its scoring key is verified (``"verified"``, ``"secondary"``, ``"provisional"``).
    key_source : str
        Where the key comes from (manual, article).
    scoring : str
        ``"mean"`` or ``"sum"``.
    items : tuple of str
        The item columns scored, item 1 first.
    invalid_set_missing : mapping
        ``{column: number of responses set missing}`` (``on_invalid="nan"``); empty otherwise.
    invalid_examples : mapping
        ``{column: row labels}`` of those responses, the first :data:`EXAMPLE_ROWS` of each column.
    """

    name: str
    provenance: str
    key_source: str
    scoring: str
    items: tuple
    invalid_set_missing: Mapping
    invalid_examples: Mapping

    @classmethod
    def _make(cls, inst: Instrument, scoring: str, cols, invalid: dict, invalid_rows: dict) -> "InstrumentRecord":
        return cls(
            name=inst.name, provenance=inst.provenance, key_source=inst.source, scoring=scoring,
            items=tuple(cols), invalid_set_missing=MappingProxyType({c: int(k) for c, k in invalid.items()}),
            invalid_examples=MappingProxyType({c: tuple(r[:EXAMPLE_ROWS]) for c, r in invalid_rows.items()}),
        )


def warn_provisional(inst: Instrument) -> None:
    """Emit a ProvisionalKeyWarning for a key that is not verified."""
    if inst.provenance == "provisional":
        warnings.warn(
            f"the scoring key of {inst.name!r} is provisional: {inst.notes} "
            f"Supply the official key from the manual with "
            f"als.register_instrument('path/to/{inst.name}.toml', replace=True) "
            f"(see als.get_instrument({inst.name!r}).to_dict() for the fields).",
            ProvisionalKeyWarning,
            stacklevel=user_stacklevel(),
        )


def _auto_patterns(inst: Instrument) -> list[str]:
    bases = []
    for b in (inst.prefix, inst.prefix.replace("_", ""), *inst.aliases):
        b = re.sub(r"[^0-9a-z]+", "_", b.lower()).strip("_")
        for v in (b, b.replace("_", "")):
            if v and v not in bases:
                bases.append(v)
    pats = []
    for b in bases:
        pats += [f"{b}{{}}", f"{b}_{{}}", f"{b}_item{{}}", f"{b}_{{:02d}}", f"{b}{{:02d}}", f"{b}.{{}}"]
    return pats


def resolve_items(data: pd.DataFrame, instrument, items=None) -> list[str]:
    """Map item numbers 1..n of ``instrument`` to columns of ``data``.

    Parameters
    ----------
    data : DataFrame
    instrument : str or Instrument
    items : list, dict, str or None
        A list of n column names in item order; a dict ``{item_number: column}``; a pattern
        with ``{}`` for the item number (``"wai{}"``, ``"WAI_{:02d}"``); or None to look for
        the usual names (``wai_sr1``, ``wai_sr_1``, ``waisr_01`` ...), case-insensitively.

    Returns
    -------
    list of str
        Column names, item 1 first.
    """
    inst = get_instrument(instrument)
    require_frame(data)
    n = inst.n_items
    columns = list(data.columns)
    if items is None:
        lower: dict = {}
        for c in columns:
            lower.setdefault(str(c).lower(), []).append(c)
        tried = _auto_patterns(inst)
        for pat in tried:
            names = [pat.format(i) for i in range(1, n + 1)]
            if all(nm in lower for nm in names):
                check_unique_columns(data, [c for nm in names for c in lower[nm]],
                                     where=f"the data (item columns of {inst.name!r})")
                twice = [lower[nm] for nm in names if len(lower[nm]) > 1]
                if twice:
                    raise ColumnError(
                        f"the item columns of {inst.name!r} are ambiguous: {twice[0]} differ only in "
                        "upper/lower case; pass items= to say which columns hold the items"
                    )
                return [lower[nm][0] for nm in names]
        raise ColumnError(
            f"could not find the {n} item columns of {inst.name!r}; looked for names like "
            f"{', '.join(repr(p.format(1)) for p in tried[:6])}. Pass items= as a pattern "
            f"(e.g. items='item{{}}'), a list of {n} column names, or a dict {{item: column}}."
        )
    if isinstance(items, str):
        if "{" not in items:
            raise ColumnError(
                f"items={items!r} is not a pattern: put {{}} where the item number goes, e.g. '{items}{{}}'"
            )
        try:
            cols = [items.format(i) for i in range(1, n + 1)]
        except (IndexError, KeyError, ValueError) as exc:
            raise ColumnError(f"items pattern {items!r} cannot be filled with item numbers: {exc}") from None
    elif isinstance(items, Mapping):
        keys = {}
        for k, v in items.items():
            if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
                raise ColumnError(
                    f"items mapping key {k!r} ({type(k).__name__}) is not an item number of {inst.name!r}: "
                    f"keys must be whole numbers 1..{n}, e.g. {{1: 'wai1', 2: 'wai2'}}"
                )
            keys[int(k)] = v
        missing = [i for i in range(1, n + 1) if i not in keys]
        extra = [i for i in keys if not 1 <= i <= n]
        if missing or extra:
            raise ColumnError(
                f"items mapping for {inst.name!r} must cover items 1..{n} exactly; "
                f"missing {missing}, outside the range {extra}"
            )
        cols = [keys[i] for i in range(1, n + 1)]
    elif isinstance(items, (list, tuple, pd.Index, np.ndarray, pd.Series)):
        cols = list(items)
        if len(cols) != n:
            raise ColumnError(f"{inst.name!r} has {n} items but items= lists {len(cols)} columns")
    else:
        raise OptionError(
            "items", items,
            hint=f"give a pattern such as 'wai{{}}', a list of {n} column names in item order, or a dict "
            "{item number: column}",
        )
    seen: dict = {}
    for i, c in enumerate(cols, start=1):
        try:
            hash(c)
        except TypeError:
            raise ColumnError(f"item {i} of {inst.name!r} is mapped to {c!r}, which is not a column name") from None
        if c in seen:
            raise ColumnError(
                f"column {c!r} is mapped to items {seen[c]} and {i} of {inst.name!r}; each item needs a "
                "column of its own"
            )
        seen[c] = i
    absent = [c for c in cols if c not in data.columns]
    if absent:
        raise ColumnError(
            f"item column(s) {absent[:10]}{' ...' if len(absent) > 10 else ''} of {inst.name!r} "
            f"are not in the data (columns include {columns[:8]}{' ...' if len(columns) > 8 else ''})"
        )
    check_unique_columns(data, cols, where=f"the data (item columns of {inst.name!r})")
    return cols


def _column_values(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Return float values and a mask of entries that are present but not numbers."""
    if pd.api.types.is_bool_dtype(series):
        vals = np.full(len(series), np.nan)
        return vals, series.notna().to_numpy()
    if pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=float, na_value=np.nan), np.zeros(len(series), dtype=bool)
    s = series.astype("object")
    blank = s.map(lambda v: isinstance(v, str) and v.strip() == "")
    s = s.mask(blank)
    num = pd.to_numeric(s, errors="coerce")
    not_number = (s.notna() & num.isna()).to_numpy()
    return num.to_numpy(dtype=float, na_value=np.nan), not_number


def item_matrix(data: pd.DataFrame, instrument, cols, *, on_invalid: str = "raise", with_rows: bool = False):
    """Validated item responses as a float matrix (rows x items), NaN for missing.

    Returns the matrix and a dict ``{column: number of values set missing}`` (with
    ``with_rows=True`` also ``{column: row labels of those values}``).
    """
    inst = get_instrument(instrument)
    check_option("on_invalid", on_invalid, ("raise", "nan"))
    lo, hi = inst.scale
    X = np.empty((len(data), len(cols)), dtype=float)
    invalid: dict[str, int] = {}
    invalid_rows: dict = {}
    for j, c in enumerate(cols):
        vals, not_number = _column_values(data[c])
        with np.errstate(invalid="ignore"):
            bad = not_number | (vals < lo) | (vals > hi)
            if inst.integer:
                bad |= np.isfinite(vals) & (vals != np.round(vals))
            bad |= np.isinf(vals)
        if bad.any():
            if on_invalid == "raise":
                idx = np.flatnonzero(bad)
                raise ItemRangeError(
                    c,
                    rows=data.index[idx].tolist(),
                    values=data[c].iloc[idx].tolist(),
                    allowed=(lo, hi),
                    instrument=inst.name,
                    integer=inst.integer,
                )
            vals = np.where(bad, np.nan, vals)
            invalid[c] = int(bad.sum())
            invalid_rows[c] = data.index[bad].tolist()
        X[:, j] = vals
    return (X, invalid, invalid_rows) if with_rows else (X, invalid)


def score(
    data: pd.DataFrame,
    instrument,
    *,
    items=None,
    prefix: str | None = None,
    scoring: str | None = None,
    on_invalid: str = "raise",
    with_record: bool = False,
):
    """Score an instrument's subscales and total by its key.

    Parameters
    ----------
    data : DataFrame
        One row per completed form (session x rater), one column per item. Not modified.
    instrument : str or Instrument
        Name or alias of a registered key (see :func:`instruments`), e.g. ``"wai-sr"``.
    items : list, dict, str or None
        Which columns hold items 1..n (see :func:`resolve_items`), e.g. ``"wai{}"``.
    prefix : str, optional
        Prefix of the output columns; default the key's (``wai_sr``, ``phq9`` ...).
    scoring : {"mean", "sum"}, optional
        Override the key's convention.
    on_invalid : {"raise", "nan"}
        A response outside the scale, not a number, or (on Likert scales) not a whole number
        raises :class:`ItemRangeError`; with ``"nan"`` it is set missing, counted (per column)
        in a warning and in the :class:`InstrumentRecord` (``with_record=True``).
    with_record : bool
        Also return the :class:`InstrumentRecord` of what was scored: ``scores, record``.

    Returns
    -------
    DataFrame
        Aligned to ``data.index``: ``{prefix}_{subscale}`` for each subscale,
        ``{prefix}_total``, and ``{prefix}_n_missing`` (items missing in the row). With
        ``with_record=True``, the pair ``(scores, record)``.

    Notes
    -----
    Reversed items are scored ``(min + max) - x``. A scale score is the mean of its answered
    items (times the number of items for ``sum`` scoring, i.e. prorated) when at most
    ``max_missing`` of its items are missing, and missing otherwise. CORE-OM's clinical
    score multiplies the mean by 10 (``multiplier``).

    Examples
    --------
    >>> import pandas as pd, alliance_stats as als
    >>> df = pd.DataFrame({f"phq{i}": [1, 2] for i in range(1, 10)})
    >>> als.score(df, "phq-9", items="phq{}")["phq9_total"].tolist()
    [9.0, 18.0]
    """
    inst = get_instrument(instrument)
    if inst.kind == "qsort":
        raise InstrumentKeyError(
            f"{inst.name!r} is a Q-sort, not a rating scale: read it with als.read_qsorts() and "
            "analyse it with the PQS functions"
        )
    require_frame(data)
    check_option("on_invalid", on_invalid, ("raise", "nan"))
    if scoring is not None:
        check_option("scoring", scoring, ("mean", "sum"))
    scoring = scoring or inst.scoring
    if prefix is not None and (not isinstance(prefix, str) or not prefix.strip()):
        raise OptionError("prefix", prefix, hint="give the start of the score columns' names, e.g. 'wai'")
    warn_provisional(inst)
    cols = resolve_items(data, inst, items)
    X, invalid, invalid_rows = item_matrix(data, inst, cols, on_invalid=on_invalid, with_rows=True)
    if invalid:
        warnings.warn(
            f"{sum(invalid.values())} invalid value(s) of {inst.name!r} set missing: "
            + ", ".join(f"{c}: {k}" for c, k in invalid.items()),
            InvalidValuesWarning,
            stacklevel=user_stacklevel(),
        )
    if inst.reversed:
        r = np.asarray(inst.reversed) - 1
        X[:, r] = (inst.scale[0] + inst.scale[1]) - X[:, r]
    present = ~np.isnan(X)
    Xz = np.where(present, X, 0.0)
    p = prefix or inst.prefix
    out = {}
    for scale, its in inst.scales.items():
        idx = np.asarray(its) - 1
        n_ok = present[:, idx].sum(axis=1)
        total = Xz[:, idx].sum(axis=1)
        ok = (len(idx) - n_ok) <= inst.max_missing_for(scale)
        ok &= n_ok > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            val = np.where(ok, total / n_ok, np.nan)
        if scoring == "sum":
            val = val * len(idx)
        if inst.multiplier != 1:
            val = val * inst.multiplier
        out[f"{p}_{scale}"] = val
    out[f"{p}_n_missing"] = (~present).sum(axis=1)
    res = pd.DataFrame(out, index=data.index)
    if with_record:
        return res, InstrumentRecord._make(inst, scoring, cols, invalid, invalid_rows)
    return res


def score_instruments(data: pd.DataFrame, instruments, *, on_invalid: str = "raise", with_record: bool = False):
    """Score several instruments and append their scores to a copy of the data.

    Parameters
    ----------
    data : DataFrame
        One row per completed form. Not modified.
    instruments : dict, list or str
        ``{"wai-sr": "wai{}", "phq-9": None}`` maps instruments to their item columns (see
        :func:`resolve_items`; None looks for the usual names); a list or a single name looks
        for the usual names.
    on_invalid : {"raise", "nan"}
        As in :func:`score`. With ``"nan"`` an invalid response is also set missing in the
        returned *item column*, so that every later step (reliability, models) sees the same
        data the scores were computed from.
    with_record : bool
        Also return ``{instrument: InstrumentRecord}`` (the key's provenance, scoring, items,
        responses set missing per column): ``scored, records``.

    Returns
    -------
    DataFrame
        The data, with invalid item responses missing (``on_invalid="nan"``), then the score
        columns of each instrument (with ``with_record=True``, the pair ``(scored, records)``).
    """
    require_frame(data)
    check_option("on_invalid", on_invalid, ("raise", "nan"))
    if isinstance(instruments, str):
        instruments = [instruments]
    if isinstance(instruments, Mapping):
        spec = dict(instruments)
    elif isinstance(instruments, (list, tuple)):
        spec = {name: None for name in instruments}
    else:
        raise OptionError("instruments", instruments, hint="give a dict {instrument: item pattern} or a list of instrument names")
    out = data.copy()
    parts: list[pd.DataFrame] = []
    meta: dict = {}
    for name, items in spec.items():
        inst = get_instrument(name)
        if inst.name in meta:
            raise ColumnError(f"instrument {inst.name!r} is given twice (as {name!r}); pass each instrument once")
        sc, rec = score(data, inst, items=items, on_invalid=on_invalid, with_record=True)
        clash = [c for c in sc.columns if c in out.columns or any(c in p.columns for p in parts)]
        if clash:
            raise ColumnError(
                f"score column(s) {clash} of {inst.name!r} already exist; pass each instrument "
                "once, or score it with als.score(..., prefix=...) to choose other names"
            )
        parts.append(sc)
        if rec.invalid_set_missing:
            # the full row lists (the record keeps examples): the scores are NaN-free only where the items are
            _, _, invalid_rows = item_matrix(data, inst, list(rec.items), on_invalid="nan", with_rows=True)
            for col, rows in invalid_rows.items():
                out[col] = out[col].mask(out.index.isin(rows))
        meta[inst.name] = rec
    if parts:
        out = pd.concat([out] + parts, axis=1)
    return (out, meta) if with_record else out

