"""Reading exports (CSV, TSV, Excel, SPSS, Stata, Parquet) into tidy, validated session tables."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io as _io
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping, NamedTuple

import numpy as np
import pandas as pd

from .exceptions import (
    ArgumentError,
    ColumnError,
    DataFileError,
    InvalidValuesWarning,
    MultipleTherapistsWarning,
    OptionError,
    QSortError,
    SessionDataError,
)
from .exceptions import _fmt_labels, _show, user_stacklevel
from ._result import Result, accounting_frame
from .instruments import get_instrument
from .scoring import EXAMPLE_ROWS, InstrumentRecord, resolve_items, score_instruments
from .validation import (
    DATE_SESSION_FIX,
    SESSION_MAX,
    check_option,
    check_session_keys,
    check_unique_columns,
    check_whole_number,
    id_text,
    ids_to_text,
    need_columns,
    require_frame,
    session_reasons,
)

__all__ = [
    "read_table",
    "read_sessions",
    "session_grid",
    "read_qsorts",
    "pseudonymize",
    "row_accounting",
    "Provenance",
    "RowStep",
    "SessionData",
    "check_session_keys",
    "ID_COLUMNS",
    "PQS_DISTRIBUTION",
    "PQS_DISTRIBUTION_VERIFICATION",
]

ID_COLUMNS = ("therapist", "patient", "session", "rater")
PQS_DISTRIBUTION = (5, 8, 12, 16, 18, 16, 12, 8, 5)
#: How well :data:`PQS_DISTRIBUTION` is verified, on the domain notes' grades ("verified",
#: "secondary", "unverified"): the forced distribution 5-8-12-16-18-16-12-8-5 is verified for
#: Block's Q-set (California Q-set); for the PQS itself it is taken from secondary sources.
#: :func:`read_qsorts` records it in ``provenance.distribution_verification``.
PQS_DISTRIBUTION_VERIFICATION = "secondary"

_EMPTY: Mapping = MappingProxyType({})


class RowStep(NamedTuple):
    """One line of a row accounting: the step, how many rows (or values) it concerns, why, and
    the labels of the first :data:`~alliance_stats.scoring.EXAMPLE_ROWS` of them."""

    step: str
    rows: int
    reason: str = ""
    examples: tuple = ()


@dataclass(frozen=True)
class Provenance:
    """Where a table came from and what loading did to it: a small, typed record.

    Its size does not grow with the rows (each reason keeps a count and at most
    :data:`~alliance_stats.scoring.EXAMPLE_ROWS` example row labels), and it is held next to
    the table, not on it, so filtering or copying the table costs nothing and loses nothing:
    ``sessions = als.read_sessions(...)``, then ``sessions.data[sessions.data.session > 3]`` and
    ``sessions.provenance`` is unchanged.

    Attributes
    ----------
    source : str
        The file's path, or ``"DataFrame"``.
    format : str
        ``csv``, ``tsv``, ``excel``, ``spss``, ``stata``, ``parquet`` or ``DataFrame``.
    sha256 : str or None
        SHA-256 of the file's bytes (None for a DataFrame).
    shape : str
        ``wide`` or ``long`` (sessions), ``qsort`` (Q-sorts).
    id_columns : mapping
        ``{role: column in the file}`` (``patient``, ``session``, ...).
    encoding, separator, decimal : str or None
        How a CSV/TSV file was decoded and split.
    sheet, sheets
        The Excel sheet read and every sheet of the workbook.
    value_labels, variable_labels, user_missing : mapping
        SPSS/Stata labels, and SPSS user-missing values set missing per column.
    instruments : mapping
        ``{instrument: InstrumentRecord}``: key provenance, scoring, items, responses set missing.
    steps : tuple of RowStep
        The row accounting (see :meth:`row_accounting`).
    n_read, n_kept : int
        Rows read from the source and rows in the returned table.
    several_therapists : mapping
        Patients seen by more than one therapist (the first ``EXAMPLE_ROWS``), with their
        therapists; ``n_several_therapists`` counts them all.
    distribution, distribution_verification
        Q-sorts only: the forced distribution checked and how well it is verified.
    """

    source: str
    format: str
    sha256: str | None = None
    shape: str = "wide"
    id_columns: Mapping = field(default_factory=lambda: _EMPTY)
    encoding: str | None = None
    separator: str | None = None
    decimal: str | None = None
    sheet: object = None
    sheets: tuple = ()
    value_labels: Mapping = field(default_factory=lambda: _EMPTY)
    variable_labels: Mapping = field(default_factory=lambda: _EMPTY)
    user_missing: Mapping = field(default_factory=lambda: _EMPTY)
    instruments: Mapping = field(default_factory=lambda: _EMPTY)
    steps: tuple = ()
    n_read: int = 0
    n_kept: int = 0
    several_therapists: Mapping = field(default_factory=lambda: _EMPTY)
    n_several_therapists: int = 0
    distribution: tuple | None = None
    distribution_verification: str | None = None

    @classmethod
    def _from_table(cls, meta: dict, **fields) -> "Provenance":
        """A record from :func:`read_table`'s metadata plus the loader's fields."""
        sheets = meta.get("sheets")
        return cls(
            source=meta["source"], format=meta["format"], sha256=meta.get("sha256"),
            encoding=meta.get("encoding"), separator=meta.get("separator"), decimal=meta.get("decimal"),
            sheet=meta.get("sheet"), sheets=tuple(sheets) if sheets else (),
            value_labels=MappingProxyType(meta.get("value_labels", {})),
            variable_labels=MappingProxyType(meta.get("variable_labels", {})),
            user_missing=MappingProxyType(meta.get("user_missing", {})),
            **fields,
        )

    def row_accounting(self) -> pd.DataFrame:
        """The row accounting as a table: columns ``step, rows, reason``."""
        return pd.DataFrame([s[:3] for s in self.steps], columns=["step", "rows", "reason"])

    def excluded(self) -> dict:
        """``{reason: number of rows excluded}``."""
        return {s.reason: s.rows for s in self.steps if s.step == "excluded"}


class SessionData(Result):
    """What :func:`read_sessions` and :func:`read_qsorts` return: the tidy table and its provenance.

    ``sessions.data`` is the DataFrame (use it as any DataFrame; filtering it never touches the
    provenance); ``sessions.provenance`` is the :class:`Provenance` record. The pair unpacks,
    as :func:`read_table`'s does: ``df, prov = als.read_sessions(...)``. As a result it shows
    the row accounting: ``to_frame()`` is the table of :meth:`Provenance.row_accounting`,
    ``accounting()`` counts rows kept and excluded by reason.
    """

    title = "Data loaded"

    def __init__(self, data: pd.DataFrame, provenance: Provenance):
        self.data = data
        self.provenance = provenance

    def __iter__(self):
        return iter((self.data, self.provenance))

    def _headline(self) -> str:
        p = self.provenance
        digest = f", sha256 {p.sha256[:12]}" if p.sha256 else ""
        return f"{p.n_kept:,} of {p.n_read:,} rows kept from {p.source} ({p.format}{digest})"

    def to_frame(self) -> pd.DataFrame:
        return self.provenance.row_accounting()

    def accounting(self) -> pd.DataFrame:
        return accounting_frame("rows", self.provenance.n_kept, self.provenance.excluded())

    def _tables(self) -> list:
        recs = self.provenance.instruments.values()
        if not recs:
            return []
        tab = pd.DataFrame(
            [(r.name, r.provenance, r.scoring, len(r.items), sum(r.invalid_set_missing.values())) for r in recs],
            columns=["instrument", "key", "scoring", "items", "responses set missing"],
        )
        return [("Instruments scored", tab.astype(str))]

    def _notes(self) -> list:
        p = self.provenance
        if not p.n_several_therapists:
            return []
        return [f"{p.n_several_therapists} patient(s) appear with more than one therapist: "
                + ", ".join(map(_show, p.several_therapists))]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
_SEPARATORS = (",", ";", "\t", "|")
_SEP_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}


# -- text files: encoding, delimiter, decimal mark ----------------------------------------------
def _decode(path: Path, raw: bytes, encoding: str | None) -> tuple[str, str]:
    """Decode a text file: the encoding given, else a BOM's (UTF-8, UTF-16, UTF-32), else UTF-8."""
    name = repr(str(path))
    if encoding is not None:
        if not isinstance(encoding, str):
            raise OptionError("encoding", encoding, hint="give a codec name such as 'utf-8', 'cp1252' or 'utf-16'")
        try:
            return raw.decode(encoding), encoding
        except LookupError:
            raise OptionError("encoding", encoding, hint="not a known codec; try 'utf-8', 'cp1252', 'latin-1' or 'utf-16'") from None
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise DataFileError(
                f"{name} cannot be decoded as {encoding}: byte 0x{raw[exc.start]:02x} on line {line} is not valid "
                "in that encoding; pass the encoding the file was saved in (encoding='utf-8', 'cp1252', 'utf-16' ...)"
            ) from None
    for bom, enc in ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xef\xbb\xbf", "utf-8-sig"),
                     (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if raw.startswith(bom):
            try:
                return raw.decode(enc), enc
            except UnicodeDecodeError as exc:
                raise DataFileError(
                    f"{name} starts with a {enc.upper()} byte-order mark but byte {exc.start} cannot be decoded as "
                    f"{enc}: the file is damaged or truncated; export it again"
                ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if raw[:4000].count(b"\x00") > len(raw[:4000]) // 4:
            raise DataFileError(
                f"{name} looks like UTF-16 text without a byte-order mark; pass encoding='utf-16-le' "
                "(or 'utf-16-be'), or save the file as 'CSV UTF-8'"
            ) from None
        line = raw[: exc.start].count(b"\n") + 1
        near = raw[max(0, exc.start - 15): exc.start + 15].decode("cp1252", errors="replace")
        raise DataFileError(
            f"{name} is not UTF-8 text: byte 0x{raw[exc.start]:02x} on line {line} (near {near!r}) cannot be "
            "decoded. The file was probably saved as Windows-1252/Latin-1 (common for Excel and SPSS exports on "
            "Windows): pass encoding='cp1252' (or encoding='latin-1'), or save it as 'CSV UTF-8'"
        ) from None
    if "\x00" in text[:4000]:
        raise DataFileError(
            f"{name} holds NUL characters: it looks like UTF-16 text without a byte-order mark; pass "
            "encoding='utf-16-le' (or 'utf-16-be'), or save the file as 'CSV UTF-8'"
        )
    return text, "utf-8"


def _field_counts(sample: str, sep: str) -> list[int]:
    rows = csv.reader(_io.StringIO(sample), delimiter=sep)
    try:
        return [len(r) for r in rows if any(f.strip() for f in r)]
    except csv.Error:
        return []


def _sniff_separator(text: str, default: str) -> str:
    """The delimiter among , ; tab | that splits the first lines into the same number (> 1) of
    fields as the header; the format's default when none or several tie."""
    lines = text.splitlines()
    sample = "\n".join(lines[:60])
    best, best_n = None, 1
    for sep in (default,) + tuple(s for s in _SEPARATORS if s != default):
        counts = _field_counts(sample, sep)
        if not counts or counts[0] < 2:
            continue
        body = counts[1:-1] if len(counts) > 2 else counts[1:]  # the last line may be cut short
        if all(c == counts[0] for c in body) and counts[0] > best_n:
            best, best_n = sep, counts[0]
    return best if best is not None else default


_DEC_COMMA = re.compile(r"^\s*-?\d+,\d+\s*$")
_DEC_POINT = re.compile(r"^\s*-?\d*\.\d+\s*$")


def _decimal_mark(text: str, sep: str) -> str:
    if sep == ";":
        return ","
    if sep == ",":
        return "."
    fields = [f for r in csv.reader(_io.StringIO("\n".join(text.splitlines()[1:200])), delimiter=sep) for f in r]
    commas = sum(bool(_DEC_COMMA.match(f)) for f in fields)
    points = sum(bool(_DEC_POINT.match(f)) for f in fields)
    return "," if commas and not points else "."


def _read_text(path: Path, fmt: str, *, sep, decimal, encoding, text_columns, meta: dict) -> pd.DataFrame:
    name = repr(str(path))
    raw = path.read_bytes()
    for magic, what, ext in ((b"PK\x03\x04", "an Excel workbook (or another zip file)", ".xlsx"),
                             (b"\xd0\xcf\x11\xe0", "an old Excel workbook (.xls)", ".xls, or better save it as .xlsx"),
                             (b"$FL2", "an SPSS data file", ".sav"), (b"$FL3", "an SPSS data file", ".zsav"),
                             (b"PAR1", "a Parquet file", ".parquet")):
        if raw.startswith(magic):
            raise DataFileError(f"{name} is not a text file but {what} with the extension {path.suffix!r}; rename it to {ext}")
    text, enc = _decode(path, raw, encoding)
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")  # Windows and old Mac line ends
    if not text.strip():
        raise DataFileError(f"{name} is empty ({len(raw)} bytes, no header and no data); export the data again")
    default = "\t" if fmt == "tsv" else ","
    if sep is None:
        sep = _sniff_separator(text, default)
    elif sep not in _SEPARATORS:
        raise OptionError("sep", sep, _SEPARATORS)
    if decimal is None:
        decimal = _decimal_mark(text, sep)
    elif decimal not in (".", ","):
        raise OptionError("decimal", decimal, (".", ","))
    if decimal == sep:
        raise OptionError("decimal", decimal, hint=f"the decimal mark must differ from the delimiter sep={sep!r}")
    header = next(csv.reader(_io.StringIO(text), delimiter=sep), [])
    names = [h for h in header if h.strip()]
    dup = sorted({h for h in names if names.count(h) > 1})
    if dup:
        raise ColumnError(
            f"{name}: the header names column(s) {dup} more than once (pandas would rename the copies "
            f"'{dup[0]}.1' ... and ignore them); rename or remove the copies so each name occurs once"
        )
    _check_field_counts(name, text, sep, len(header))
    meta.update({"encoding": enc, "separator": sep, "decimal": decimal})
    dtype = {c: str for c in text_columns if c is not None and c in header} or None
    try:
        return pd.read_csv(_io.StringIO(text), sep=sep, decimal=decimal, dtype=dtype)
    except pd.errors.ParserError as exc:
        if "EOF inside string" in str(exc):
            raise DataFileError(
                f"{name} could not be read as {fmt}: a quote (\") opened in {str(exc).split('starting at ')[-1]} is never "
                "closed; correct the quotes in the export"
            ) from None
        hint = (
            f" The file was read with the {_SEP_NAMES.get(sep, repr(sep))} as delimiter: a value may hold the "
            "delimiter (a decimal comma in a comma-separated file?), or a line was cut short. Quote such values, "
            "export with ';' as the delimiter, or pass sep= (',', ';', '\\t', '|')."
        )
        raise DataFileError(f"{name} could not be read as {fmt}: {exc}.{hint}") from None


def _check_field_counts(name: str, text: str, sep: str, n_header: int) -> None:
    """Refuse lines with more fields than the header (pandas would shift them or use the first
    column as the index) and a last line cut short without a line end (a truncated file)."""
    reader = csv.reader(_io.StringIO(text), delimiter=sep)
    long_lines: list[int] = []
    last_n, last_line = n_header, 0
    try:
        for row in reader:
            if not row or not any(f.strip() for f in row):
                continue
            if len(row) > n_header:
                long_lines.append(reader.line_num)
            last_n, last_line = len(row), reader.line_num
    except csv.Error as exc:
        raise DataFileError(f"{name}: line {reader.line_num} cannot be parsed ({exc}); check the quotes on that line") from None
    if long_lines:
        raise DataFileError(
            f"{name}: line(s) {_fmt_labels(long_lines)} have more fields than the header ({n_header}) with the "
            f"{_SEP_NAMES.get(sep, repr(sep))} as delimiter: a value holds the delimiter (a decimal comma in a "
            "comma-separated file?) or the lines end with a delimiter. Quote such values, export with ';' as the "
            "delimiter, or pass sep= "
            "(',', ';', '\\t', '|')"
        )
    if last_line > 1 and last_n < n_header and not text.endswith(("\n", "\r")):
        raise DataFileError(
            f"{name}: the last line ({last_line}) has {last_n} of the header's {n_header} fields and no line end: "
            "the file looks truncated; export it again"
        )


def read_table(
    source, *, sheet=None, sep: str | None = None, decimal: str | None = None, encoding: str | None = None,
    text_columns: Iterable = (),
) -> tuple[pd.DataFrame, dict]:
    """Read a data file by its extension; return the table and what was learnt about it.

    Rows are labelled 1..n in file order (data row 1 is the first row under the header), so
    that errors can name them. SPSS and Stata value labels and variable labels are returned
    in the metadata dict, not applied. SPSS user-missing values (e.g. 99 declared missing)
    are set missing and counted per column in ``meta["user_missing"]``.

    Parameters
    ----------
    source : path or DataFrame
        A DataFrame is copied, never modified.
    sheet : str or int, optional
        Excel sheet (default: the first; the metadata lists every sheet).
    sep, decimal, encoding : str, optional
        For CSV/TSV files. By default the delimiter is detected among ``,`` ``;`` tab and ``|``
        (the header and the first lines must split into the same number of fields), the decimal
        mark is ``,`` with ``;`` as delimiter (European spreadsheets) and ``.`` with ``,``, and
        the encoding is UTF-8 or the one a byte-order mark announces (UTF-8, UTF-16, UTF-32).
        Any other encoding (Windows-1252, Latin-1 ...) must be named: ``encoding="cp1252"``.
        A line with more fields than the header, or a last line cut short, is an error.
    text_columns : list of str
        ID columns: read as text from CSV/TSV files and as stored (text cells as text) from
        Excel, so that IDs keep leading zeros.

    Raises
    ------
    DataFileError
        The path is a folder or does not exist, the type is unknown, the file is empty or has
        a header but no rows, or it cannot be decoded or parsed (the message says which option fixes it).
    ColumnError
        A column name occurs more than once in the header.
    """
    if isinstance(source, pd.DataFrame):
        check_unique_columns(source, where="the DataFrame")
        if len(source) == 0:
            raise DataFileError(f"the DataFrame has no rows (columns: {list(source.columns)[:12]})")
        return source.copy(), {"source": "DataFrame", "format": "DataFrame"}
    if not isinstance(source, (str, os.PathLike)):
        raise DataFileError(f"source must be a file path or a pandas DataFrame, got {type(source).__name__}")
    path = Path(source)
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if p.suffix.lower() in _FORMATS)[:5]
        hint = f"; data files in it: {inside}" if inside else ""
        raise DataFileError(f"{str(path)!r} is a folder, not a data file: give the path of the file itself{hint}")
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataFileError(
            f"{str(path)!r}: unknown file type {path.suffix!r}; alliance-stats reads "
            f"{', '.join(sorted(_FORMATS))}. Save the export in one of these formats."
        )
    if not path.exists():
        raise DataFileError(f"{str(path)!r} does not exist (working directory: {Path.cwd()})")
    if not path.is_file():
        raise DataFileError(f"{str(path)!r} is not a regular file")
    if fmt not in ("csv", "tsv") and (sep is not None or decimal is not None):
        raise OptionError("sep" if sep is not None else "decimal", sep if sep is not None else decimal,
                          hint=f"sep= and decimal= apply to CSV/TSV files, not to {fmt} files")
    meta: dict = {"source": str(path), "format": fmt, "sha256": _sha256(path)}
    where = repr(str(path))
    try:
        if fmt in ("csv", "tsv"):
            df = _read_text(path, fmt, sep=sep, decimal=decimal, encoding=encoding,
                            text_columns=list(text_columns), meta=meta)
        elif fmt == "excel":
            try:
                with pd.ExcelFile(path) as xl:
                    names = xl.sheet_names
            except ImportError as exc:
                raise DataFileError(f"{where}: reading {path.suffix} files needs an extra package ({exc}); "
                                    "save the workbook as .xlsx") from None
            except Exception as exc:
                raise DataFileError(
                    f"{where} is not a readable Excel workbook ({type(exc).__name__}: {exc}); it may be damaged, "
                    "truncated or another format renamed to .xlsx. Open and save it again in Excel"
                ) from None
            if sheet is None:
                sheet = names[0]
            elif sheet not in names and not (isinstance(sheet, int) and 0 <= sheet < len(names)):
                raise DataFileError(f"{where} has no sheet {sheet!r}; its sheets are {names}")
            head = pd.read_excel(path, sheet_name=sheet, header=None, nrows=1)
            header = [h for h in (head.iloc[0].tolist() if len(head) else []) if not pd.isna(h)]
            dup = sorted({str(h) for h in header if header.count(h) > 1})
            if dup:
                raise ColumnError(
                    f"{where}, sheet {sheet!r}: the header names column(s) {dup} more than once; rename or "
                    "remove the copies so each name occurs once"
                )
            # ID columns as objects: text cells stay text ("007"), number cells stay numbers
            df = pd.read_excel(path, sheet_name=sheet, dtype={c: object for c in text_columns if c is not None} or None)
            meta["sheet"] = sheet
            meta["sheets"] = names
        elif fmt in ("spss", "stata"):
            import pyreadstat

            reader = pyreadstat.read_sav if fmt == "spss" else pyreadstat.read_dta
            kw = {"encoding": encoding} if encoding is not None else {}
            if fmt == "spss":
                kw["user_missing"] = True  # read the declared values, set them missing below and count them
            df, m = reader(str(path), apply_value_formats=False, **kw)
            meta["value_labels"] = {k: dict(v) for k, v in m.variable_value_labels.items()}
            meta["variable_labels"] = {
                k: v for k, v in zip(m.column_names, m.column_labels) if v is not None
            }
            user_missing = {}
            for col, ranges in (getattr(m, "missing_ranges", None) or {}).items():
                if not ranges or col not in df.columns:
                    continue
                hit = np.zeros(len(df), dtype=bool)
                for r in ranges:
                    if isinstance(r["lo"], str) or isinstance(r["hi"], str):
                        hit |= (df[col] == r["lo"]).to_numpy(dtype=bool, na_value=False)
                    else:
                        v = pd.to_numeric(df[col], errors="coerce")
                        hit |= ((v >= r["lo"]) & (v <= r["hi"])).to_numpy(dtype=bool, na_value=False)
                df[col] = df[col].mask(hit)
                user_missing[col] = {"declared": [dict(r) for r in ranges], "n_set_missing": int(hit.sum())}
            if user_missing:
                meta["user_missing"] = user_missing
        else:
            df = pd.read_parquet(path)
    except (DataFileError, ColumnError, OptionError):
        raise
    except Exception as exc:  # the reader's own message is kept
        raise DataFileError(f"{where} could not be read as {fmt} ({type(exc).__name__}: {exc}); the file may be "
                            "damaged or truncated, or saved in another format") from exc
    check_unique_columns(df, where=where)
    if len(df) == 0:
        sheet_note = ""
        if fmt == "excel":
            sheet_note = f" in sheet {meta['sheet']!r}" + (f" (its sheets: {meta['sheets']}; choose one with sheet=)" if len(meta["sheets"]) > 1 else "")
        what = "a header but no data rows" if df.shape[1] else "no header and no data"
        raise DataFileError(f"{where} has {what}{sheet_note}; export the data again")
    df.index = pd.RangeIndex(1, len(df) + 1)
    return df, meta


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
        miss = df[c].isna()
        problems += [(r, f"missing {c} ID") for r in df.index[miss.to_numpy()]]
    for r, why in session_reasons(df["session"]).items():
        who = df.at[r, "patient"]
        problems.append((r, why + ("" if pd.isna(who) else f" (patient {_show(who)})")))
    flagged = {r for r, _ in problems}
    ok = df.loc[~df.index.isin(flagged)]
    dup_keys = [k for k in keys if k != "therapist"]
    dup = ok.duplicated(dup_keys, keep=False)
    for r in ok.index[dup.to_numpy()]:
        desc = ", ".join(f"{k} {_show(ok.at[r, k])}" for k in dup_keys)
        problems.append((r, f"duplicate {' x '.join(dup_keys)} ({desc})"))
    return problems


SESSIONS_FROM_DATES_RULE = (
    "session numbers made from the dates in the session column: 1, 2, 3 ... in date order within each "
    "patient (the same date and time is the same session); the dates are kept in 'session_date'"
)


def _sessions_from_dates(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """Number sessions 1, 2, 3 ... by date within each patient; keep the dates in session_date."""
    s = df["session"]
    if "session_date" in df.columns:
        raise ColumnError("the data already has a column 'session_date'; rename it to use session_from_dates=True")
    if pd.api.types.is_datetime64_any_dtype(s):
        dates = s
    elif pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        raise SessionDataError(
            f"session_from_dates=True, but {column!r} holds numbers, not dates; leave session_from_dates out to "
            "use them as session numbers"
        )
    else:
        def one(v):
            if v is None or (isinstance(v, float) and np.isnan(v)):
                return pd.NaT
            if isinstance(v, str):
                v = v.strip()
                if not v:
                    return pd.NaT
                return pd.to_datetime(v, format="ISO8601", errors="coerce")
            return pd.to_datetime(v, errors="coerce")

        dates = pd.to_datetime(s.astype(object).map(one), errors="coerce")
        bad = s.notna() & dates.isna() & ~s.astype(object).map(lambda v: isinstance(v, str) and not v.strip())
        if bad.any():
            rows = df.index[bad.to_numpy()].tolist()
            raise SessionDataError(
                f"session_from_dates=True, but {column!r} holds values that are not dates at rows {_fmt_labels(rows)} "
                f"(values {_fmt_labels(s[bad].tolist())}); write dates as YYYY-MM-DD (ISO 8601) or as date cells",
                rows=rows,
            )
    out = df.copy()
    out["session_date"] = dates
    out["session"] = dates.groupby(df["patient"], dropna=False).rank(method="dense")
    return out


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
    session_from_dates: bool = False,
    sep: str | None = None,
    decimal: str | None = None,
    encoding: str | None = None,
) -> pd.DataFrame:
    """Read an export into one tidy, validated, scored session table.

    Parameters
    ----------
    source : path or DataFrame
        CSV, TSV, Excel (.xlsx), SPSS (.sav), Stata (.dta) or Parquet file, or a DataFrame
        (which is copied, never modified). See :func:`read_table` for how delimiters and
        encodings of text files are found.
    patient, session : str
        Columns holding the patient ID and the session number (a whole number from 1 to
        99,999; dates are refused, see ``session_from_dates``).
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
        What to do with an item response outside its scale (see :func:`score`). With
        ``"nan"`` the response is set missing in the returned item column too, and counted
        per column (with its rows) in the row accounting.
    on_bad_rows : {"raise", "drop"}
        Rows with a missing ID, a session that is not a whole number from 1 to 99,999, or the
        same patient x session x rater twice raise :class:`SessionDataError` listing them; with
        ``"drop"`` they are excluded and listed with the reason in the row accounting.
    apply_labels : bool
        Turn SPSS/Stata value labels of columns that are neither IDs nor items into
        categories. Labels of every column stay in the metadata.
    session_from_dates : bool
        The session column holds dates (a date per visit): number each patient's sessions
        1, 2, 3 ... in date order (the same date and time is one session) and keep the dates in
        ``session_date``. The rule is recorded in the row accounting. Without this option a
        date in the session column is an error.
    sep, decimal, encoding : str, optional
        Delimiter, decimal mark and encoding of a CSV/TSV file (see :func:`read_table`).

    Returns
    -------
    SessionData
        ``.data``: the DataFrame: canonical ID columns first (``therapist``, ``patient``,
        ``session``, ``rater`` as given), the other columns of the file, then the scores of
        each instrument (``{prefix}_{scale}``, see :func:`score`); sorted by patient, session
        (and rater). ``.provenance``: a :class:`Provenance` record of the source (path,
        SHA-256, format, encoding/sheet), the instrument keys with their provenance, value
        labels, and the row accounting (rows read, IDs trimmed, rows excluded with reason,
        item responses set missing, rows kept), which :func:`row_accounting` shows as a
        table. The pair unpacks: ``df, prov = als.read_sessions(...)``.

    Notes
    -----
    IDs follow one rule (see :mod:`alliance_stats.validation`): ``patient``, ``therapist``
    and ``rater`` are returned as text; a number is written as its digits (``7.0`` -> ``"7"``),
    text keeps its characters (leading zeros too) without surrounding spaces (non-breaking
    ones included). IDs that lost spaces are counted in the row accounting; so ``"P1 "`` and
    ``"P1"`` are one patient, and ``1`` and ``"1"`` are one patient, exactly as
    :func:`pseudonymize` sees them. A patient seen by more than one therapist is named in a
    :class:`~alliance_stats.exceptions.MultipleTherapistsWarning`.

    Examples
    --------
    >>> import alliance_stats as als
    >>> sessions = als.read_sessions(als.sample_path("sessions_csv"), patient="client_id",
    ...     session="session_no", therapist="therapist_id",
    ...     instruments={"wai-sr": "WAISR_{}", "phq-9": "PHQ9_{}"})
    >>> df = sessions.data
    >>> df[["patient", "session", "wai_sr_total", "phq9_total"]].shape[1]
    4
    >>> sessions.provenance.n_kept == len(df)
    True
    """
    check_option("shape", shape, ("auto", "wide", "long"))
    check_option("on_invalid", on_invalid, ("raise", "nan"))
    check_option("on_bad_rows", on_bad_rows, ("raise", "drop"))
    check_option("session_from_dates", session_from_dates, (False, True))
    check_option("apply_labels", apply_labels, (True, False))
    roles = {"patient": patient, "session": session}
    if therapist is not None:
        roles["therapist"] = therapist
    if rater is not None:
        roles["rater"] = rater
    for role, col in roles.items():
        if not isinstance(col, (str, int)) or isinstance(col, bool):
            raise OptionError(role, col, hint="give the name of the column holding it")
    same = [c for c in roles.values() if list(roles.values()).count(c) > 1]
    if same:
        raise ColumnError(f"column {same[0]!r} is named for more than one of {list(roles)}; each ID needs its own column")
    id_roles = [r for r in ("therapist", "patient", "rater") if r in roles]
    df, meta = read_table(source, sheet=sheet, sep=sep, decimal=decimal, encoding=encoding,
                          text_columns=[roles[r] for r in id_roles])
    where = meta["source"] if meta["source"] != "DataFrame" else "the DataFrame"
    need_columns(df, roles)
    n_read = len(df)
    trimmed: dict[str, int] = {}
    for r in id_roles:
        df[roles[r]], k = ids_to_text(df[roles[r]])
        if k:
            trimmed[r] = k
    is_long = shape == "long" or (shape == "auto" and item in df.columns and value in df.columns)
    if is_long:
        need_columns(df, {"item": item, "value": value})
        df = _to_wide(df, list(roles.values()), item, value)
    taken = {c for role, c in roles.items()}
    clash = [r for r in roles if r in df.columns and r not in taken]
    if session_from_dates and "session_date" in df.columns and "session_date" not in taken:
        clash.append("session_date")
    if clash:
        raise ColumnError(
            f"the data already has column(s) {clash} besides the ones named as IDs; rename them "
            "before reading, the canonical ID names are reserved"
        )
    df = df.rename(columns={c: role for role, c in roles.items()})
    keys = [k for k in ID_COLUMNS if k in roles]
    if session_from_dates:
        df = _sessions_from_dates(df, session)

    excluded: list[dict] = []
    problems = _check_ids(df, keys)
    if problems:
        if on_bad_rows == "raise":
            rows = sorted({r for r, _ in problems}, key=lambda r: (str(type(r)), r))
            detail = "; ".join(f"row {r}: {why}" for r, why in problems[:8])
            more = f"; ... ({len(problems) - 8} more)" if len(problems) > 8 else ""
            dates = DATE_SESSION_FIX + " " if any("is a date" in why for _, why in problems) else ""
            raise SessionDataError(
                f"{where}: {len(rows)} row(s) with bad session identifiers: {detail}{more}. {dates}Fix the IDs in "
                "the export, or pass on_bad_rows='drop' to exclude these rows (they are then "
                "listed in the row accounting).",
                rows=rows,
            )
        why: dict = {}
        for r, reason in problems:
            why.setdefault(r, reason)
        excluded = [{"row": r, "reason": reason} for r, reason in why.items()]
        df = df.drop(index=list(why))
        if len(df) == 0:
            counts = pd.Series([e["reason"].split(" (")[0] for e in excluded]).value_counts()
            raise SessionDataError(
                f"{where}: all {len(excluded)} rows were excluded as bad rows, nothing is left to analyse "
                f"({'; '.join(f'{k}: {v}' for k, v in counts.head(5).items())}). Fix the IDs in the export.",
                rows=[e["row"] for e in excluded],
            )

    df["session"] = pd.to_numeric(df["session"]).astype("int64")
    order = ["therapist", "patient", "session", "rater"]
    df = df[[c for c in order if c in df.columns] + [c for c in df.columns if c not in order]]

    several = {}
    if "therapist" in df.columns:
        pairs = df[["patient", "therapist"]].drop_duplicates()
        multi = pairs[pairs.duplicated("patient", keep=False)].sort_values(["patient", "therapist"])
        several = {p: g["therapist"].astype(str).tolist() for p, g in multi.groupby("patient", sort=True)}
        if several:
            shown = "; ".join(f"{p!r} ({', '.join(t)})" for p, t in list(several.items())[:8])
            more = f"; ... ({len(several) - 8} more)" if len(several) > 8 else ""
            warnings.warn(
                f"{where}: {len(several)} patient(s) appear with more than one therapist: {shown}{more}. Models "
                "that nest patients in therapists need one therapist per patient; check the IDs (a typo?), or "
                "keep the patients who switched therapist apart on purpose.",
                MultipleTherapistsWarning,
                stacklevel=user_stacklevel(),
            )

    inst_meta: dict = {}
    item_cols: set = set()
    if instruments is not None:
        df, inst_meta = score_instruments(df, instruments, on_invalid=on_invalid, with_record=True)
        for rec in inst_meta.values():
            item_cols.update(rec.items)

    labels = meta.get("value_labels", {})
    if apply_labels and labels:
        for col, lab in labels.items():
            target = {v: k for k, v in roles.items()}.get(col, col)
            if target in df.columns and target not in keys and target not in item_cols:
                vals = df[target]
                if vals.dropna().isin(list(lab)).all():
                    df[target] = pd.Categorical(vals.map(lab), categories=list(dict.fromkeys(lab.values())))

    df = df.sort_values([k for k in ("patient", "session", "rater") if k in df.columns], kind="stable")
    df = df.reset_index(drop=True)
    n_forms = len(df) + len(excluded)
    steps = [RowStep("read", n_read)]
    if n_forms != n_read:
        steps.append(RowStep("forms after pivoting long to wide", n_forms))
    steps += [RowStep("IDs trimmed", int(k), f"surrounding spaces removed from {r} IDs") for r, k in trimmed.items()]
    if session_from_dates:
        steps.append(RowStep("sessions numbered from dates", n_forms, SESSIONS_FROM_DATES_RULE))
    by_reason: dict = {}
    for e in excluded:
        by_reason.setdefault(e["reason"].split(" (")[0], []).append(e["row"])
    for reason, rows in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        steps.append(RowStep("excluded", len(rows), reason, tuple(rows[:EXAMPLE_ROWS])))
    for rec in inst_meta.values():
        for col, k in rec.invalid_set_missing.items():
            shown = rec.invalid_examples[col]
            more = f" (first {len(shown)} shown)" if k > len(shown) else ""
            steps.append(RowStep("values set missing", k,
                                 f"{col} ({rec.name}): invalid response at row(s) {_fmt_labels(shown)}{more}", shown))
    steps.append(RowStep("kept", len(df)))
    prov = Provenance._from_table(
        meta, shape="long" if is_long else "wide", id_columns=MappingProxyType(dict(roles)),
        instruments=MappingProxyType(inst_meta), steps=tuple(steps), n_read=n_read, n_kept=len(df),
        several_therapists=MappingProxyType({p: tuple(t) for p, t in list(several.items())[:EXAMPLE_ROWS]}),
        n_several_therapists=len(several),
    )
    return SessionData(df, prov)


def row_accounting(loaded) -> pd.DataFrame:
    """The row accounting recorded by :func:`read_sessions` (or :func:`read_qsorts`), as a table.

    Parameters
    ----------
    loaded : SessionData or Provenance
        What the loader returned, or its ``.provenance``.

    Returns
    -------
    DataFrame
        Columns ``step, rows, reason``: rows read, IDs trimmed of surrounding spaces (per ID
        column), sessions numbered from dates, rows excluded per reason, item responses set
        missing (per column, ``on_invalid="nan"``), rows kept.
    """
    prov = getattr(loaded, "provenance", loaded)
    if not isinstance(prov, Provenance):
        if isinstance(loaded, pd.DataFrame):
            raise ArgumentError(
                "a DataFrame carries no row accounting: it is kept next to the table, not on it. Pass what "
                "als.read_sessions() returned (sessions = als.read_sessions(...); als.row_accounting(sessions)) "
                "or its sessions.provenance"
            )
        raise ArgumentError(f"row_accounting() needs what als.read_sessions() returned, got {type(loaded).__name__}")
    return prov.row_accounting()


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
        First session of every patient's grid (a whole number from 1, e.g. 1); default each
        patient's first observed session.

    Returns
    -------
    DataFrame
        Every session from the first to the last of each patient, with a boolean column
        ``observed``; inserted rows have missing values except the IDs (and ``therapist``
        when it is constant within the patient).
    """
    require_frame(data)
    need_columns(data, {"patient": patient, "session": session})
    if start is not None:
        start = check_whole_number("start", start, 1, SESSION_MAX)
    if by is None:
        by = ["rater"] if "rater" in data.columns and "rater" not in (patient, session) else []
    if isinstance(by, str):
        by = [by]
    elif isinstance(by, (list, tuple, pd.Index)):
        by = list(by)
    else:
        raise OptionError("by", by, hint="give a list of column names, e.g. ['rater']")
    need_columns(data, {f"by[{i}]": c for i, c in enumerate(by)})
    check_unique_columns(data, [patient, session] + by)
    if "observed" in data.columns:
        raise ColumnError("the data already has a column 'observed'; rename it, session_grid() adds that column")
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
    return out[cols].sort_values(keys + [session], kind="stable").reset_index(drop=True)


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
    sep: str | None = None,
    decimal: str | None = None,
    encoding: str | None = None,
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
    SessionData
        ``.data``: ID columns (``session``, and ``patient``/``rater`` when given), the file's
        other columns, items as ``pqs1`` .. ``pqs100``, ``qsort_valid`` and ``qsort_problem``;
        ``.provenance``: the :class:`Provenance` (source, SHA-256, the distribution checked
        and how well it is verified, sorts flagged). Unpacks as ``sorts, prov = ...``.
    """
    check_option("on_invalid", on_invalid, ("raise", "flag"))
    inst = get_instrument("pqs")
    dist = None
    if distribution is not None:
        vals = list(distribution) if not isinstance(distribution, (str, bytes)) and hasattr(distribution, "__iter__") else None
        if not vals or any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 0 for v in vals):
            raise OptionError(
                "distribution", distribution,
                hint="give the number of items in each pile as whole numbers, lowest pile first, e.g. "
                f"{list(PQS_DISTRIBUTION)}, or None",
            )
        dist = np.asarray(vals, dtype=int)
        if dist.sum() != inst.n_items:
            raise QSortError(f"distribution {dist.tolist()} sums to {int(dist.sum())}, not {inst.n_items} items")
    roles = {"session": session}
    if patient:
        roles["patient"] = patient
    if rater:
        roles["rater"] = rater
    df, meta = read_table(source, sheet=sheet, sep=sep, decimal=decimal, encoding=encoding,
                          text_columns=[c for r, c in roles.items() if r != "session"])
    need_columns(df, roles)
    for r, c in roles.items():
        if r != "session":
            df[c], _ = ids_to_text(df[c])
        elif df[c].dtype == object or pd.api.types.is_string_dtype(df[c]):
            df[c] = df[c].map(lambda v: v.strip(" \t\u00a0") if isinstance(v, str) else v)
    cols = resolve_items(df, inst, items)
    n_piles = len(dist) if dist is not None else 9
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
    steps = [RowStep("read", len(df))]
    if problems:
        steps.append(RowStep("flagged", len(problems), "invalid sort, kept with qsort_valid = False",
                             tuple(r for r, _, _ in problems[:EXAMPLE_ROWS])))
    steps.append(RowStep("kept", len(out)))
    prov = Provenance._from_table(
        meta, shape="qsort", id_columns=MappingProxyType(dict(roles)), steps=tuple(steps), n_read=len(df),
        n_kept=len(out), distribution=None if dist is None else tuple(dist.tolist()),
        distribution_verification=(
            None if dist is None
            else f"{PQS_DISTRIBUTION_VERIFICATION} (the PQS default: verified for Block's Q-set, secondary sources for the PQS)"
            if tuple(dist.tolist()) == PQS_DISTRIBUTION else "user-supplied"
        ),
    )
    return SessionData(out, prov)


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
        Secret key (at least 8 characters). Never shown in error messages.
    length : int
        Hex characters kept of each digest (8..64).

    Returns
    -------
    DataFrame
        A copy with the columns replaced; missing IDs stay missing.

    Notes
    -----
    The hashed text follows the package's one ID rule (:mod:`alliance_stats.validation`), the
    rule :func:`read_sessions` applies: numbers as their digits (``7``, ``7.0`` and ``"7"`` give
    one pseudonym), text without surrounding spaces (``"P1 "`` is ``"P1"``), leading zeros
    kept (``"007"`` differs from ``"7"``). So two IDs get one pseudonym exactly when the loader
    takes them for one patient.
    """
    require_frame(data)
    if isinstance(columns, str):
        columns = [columns]
    elif not isinstance(columns, (list, tuple, pd.Index)):
        raise OptionError("columns", columns, hint="give a column name or a list of column names")
    columns = list(columns)
    need_columns(data, {f"columns[{i}]": c for i, c in enumerate(columns)})
    check_unique_columns(data, columns)
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, (bytes, bytearray)) or len(key) < 8:
        shown = f"<{type(key).__name__}" + (f" of {len(key)} bytes>" if isinstance(key, (bytes, bytearray)) else ">")
        raise OptionError(
            "key", shown,
            hint="give a secret string or bytes of at least 8 characters (the key itself is not shown here)",
        )
    length = check_whole_number("length", length, 8, 64)
    out = data.copy()
    cache: dict = {}

    def h(v):
        s = id_text(v)
        if not isinstance(s, str):
            return np.nan
        if s not in cache:
            cache[s] = hmac.new(key, s.encode("utf-8"), hashlib.sha256).hexdigest()[:length]
        return cache[s]

    for c in columns:
        out[c] = data[c].astype(object).map(h).astype(object)
    return out
