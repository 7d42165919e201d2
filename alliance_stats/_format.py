"""Numbers as APA-style strings: the one place where a number in a table or summary becomes text.

Every ``to_apa()`` table, :func:`alliance_stats.export_table`, the results folder's Markdown
tables and the study report format their numbers here, so a value reads the same wherever it
is printed.

Rules (APA Publication Manual, 7th ed., sections 6.36 and 6.40-6.44)
--------------------------------------------------------------------
- Estimates (:func:`fmt_num`): ``digits`` decimals (2), more when that would hide the value:
  a value with ``|x| < 10**-digits`` gets two significant digits (``0.0034``), at most
  :data:`MAX_DECIMALS` decimals. Below that floor (``|x| < FLOOR``) it is written in
  scientific notation (``3.4e-08``), so a non-zero value never prints as zero. Negative zero
  is never shown.
- Quantities that cannot exceed 1 (p, correlations, alpha, omega, proportions, power): no zero
  before the decimal point (``.45``, ``-.12``). The caller says which (``leading_zero=False``).
- p values (:func:`fmt_p`): three decimals without the leading zero (``.023``), ``< .001``
  below .001, ``> .999`` above .999.
- Confidence intervals (:func:`fmt_ci`): ``[a, b]`` with both ends at the same number of
  decimals (the larger of what each end needs).
- Degrees of freedom (:func:`fmt_df`): a whole number when whole to one decimal, otherwise one
  decimal (``156``, ``1444.4``).
- Percentages (:func:`fmt_pct`): one decimal (``48.1``); a non-zero value below 0.05 is
  ``< 0.1``.
- Booleans: ``yes`` / ``no``. Integers: as they are. Missing values: ``na`` (``"NA"`` in the
  ``to_apa`` tables, an empty cell in :func:`format_frame`).
"""

from __future__ import annotations

import math
import re
from numbers import Integral, Real

import numpy as np
import pandas as pd

__all__ = ["MAX_DECIMALS", "FLOOR", "fmt_num", "fmt_p", "apa_p", "fmt_ci", "fmt_est_ci", "fmt_df", "fmt_pct",
           "fmt_bool", "fmt_value", "format_frame", "column_kind"]

#: Most decimals an estimate gets (two significant digits down to 10**-(MAX_DECIMALS - 1)).
MAX_DECIMALS = 6
#: Below this magnitude an estimate is written in scientific notation (``3.6e-06``): the smallest
#: value that still shows two significant digits in MAX_DECIMALS decimals (0.000036 does; 0.0000036
#: would print as 0.000004, one digit, 10% off).
FLOOR = 10.0 ** -(MAX_DECIMALS - 1)
#: Significant digits shown for small values.
SIG_DIGITS = 2


def _missing(x) -> bool:
    if x is None or x is pd.NA or x is pd.NaT:
        return True
    try:
        return isinstance(x, Real) and math.isnan(x)
    except TypeError:
        return False


def _strip_zero(s: str) -> str:
    """'0.45' -> '.45', '-0.45' -> '-.45' (a value whose magnitude is below 1)."""
    if s.startswith("0."):
        return s[1:]
    if s.startswith("-0."):
        return "-" + s[2:]
    return s


def _no_negative_zero(s: str) -> str:
    if s.startswith("-") and not any(ch in "123456789" for ch in s.split("e")[0]):
        return s[1:]
    return s


def decimals_for(x: float, digits: int = 2) -> int | None:
    """Decimals :func:`fmt_num` gives ``x``: ``digits``, more for ``|x| < 10**-digits`` (two
    significant digits), ``None`` below :data:`FLOOR` (scientific notation)."""
    a = abs(float(x))
    if a == 0 or not math.isfinite(a) or a >= 10.0 ** -digits:
        return digits
    if a < FLOOR:
        return None
    d = SIG_DIGITS - 1 - math.floor(math.log10(a))
    if round(a, d) >= 10.0 ** -digits:  # 0.00999 -> 0.010 at two significant digits: 0.01 says it
        return digits
    return max(digits, min(d, MAX_DECIMALS))


def fmt_num(x, digits: int = 2, *, leading_zero: bool = True, decimals: int | None = None, na: str = "NA") -> str:
    """An estimate with ``digits`` decimals, more when needed to show a small value.

    Parameters
    ----------
    x : float
        The value (an integer is printed as it is, a bool as yes/no).
    digits : int
        Decimals for ``|x| >= 10**-digits``.
    leading_zero : bool
        False for quantities that cannot exceed 1 in magnitude (r, alpha, proportions).
    decimals : int, optional
        Exactly this many decimals (used to print several values alike, as the ends of a CI).
    na : str
        Text for a missing value.

    Examples
    --------
    >>> fmt_num(-1.5234), fmt_num(0.0034), fmt_num(-0.0000001), fmt_num(0.45, leading_zero=False)
    ('-1.52', '0.0034', '-1.0e-07', '.45')
    """
    if _missing(x):
        return na
    if isinstance(x, (bool, np.bool_)):
        return fmt_bool(x)
    if isinstance(x, Integral):
        return str(int(x))
    x = float(x)
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    d = decimals if decimals is not None else decimals_for(x, digits)
    if d is None:
        s = f"{x:.{SIG_DIGITS - 1}e}"
    else:
        s = _no_negative_zero(f"{x:.{d}f}")
    return s if leading_zero else _strip_zero(s)


def fmt_p(p, eq: bool = False, na: str = "NA") -> str:
    """A p value in APA style: ``< .001``, otherwise three decimals without the leading zero
    (``.023``), ``> .999`` above .999.

    With ``eq=True`` an exact value is prefixed by ``= `` (for running text: ``p = .034``).
    """
    if _missing(p):
        return na
    p = float(p)
    if p < 0.001:
        return "< .001"
    if p > 0.999:
        return "> .999"
    s = _strip_zero(f"{p:.3f}")
    return f"= {s}" if eq else s


apa_p = fmt_p  # the older name, used across the package


def _common_decimals(values, digits: int) -> int | None:
    ds = [decimals_for(v, digits) for v in values if not _missing(v)]
    if not ds or any(d is None for d in ds):
        return None
    return max(ds)


def fmt_ci(lo, hi, digits: int = 2, *, leading_zero: bool = True, na: str = "NA") -> str:
    """A confidence interval in brackets, both ends at the same decimals (the more of what each
    end needs): ``fmt_ci(-0.013, -0.0021)`` is ``[-0.0130, -0.0021]``, never ``[-0.01, -0.00]``."""
    d = _common_decimals([lo, hi], digits)
    a = fmt_num(lo, digits, leading_zero=leading_zero, decimals=d, na=na)
    b = fmt_num(hi, digits, leading_zero=leading_zero, decimals=d, na=na)
    return f"[{a}, {b}]"


def fmt_est_ci(est, lo, hi, digits: int = 2, *, leading_zero: bool = True, na: str = "NA") -> str:
    """An estimate followed by its CI, all three at the same decimals: ``.64 [.59, .69]``."""
    if _missing(est):
        return na
    d = _common_decimals([est, lo, hi], digits)
    e = fmt_num(est, digits, leading_zero=leading_zero, decimals=d, na=na)
    a = fmt_num(lo, digits, leading_zero=leading_zero, decimals=d, na=na)
    b = fmt_num(hi, digits, leading_zero=leading_zero, decimals=d, na=na)
    return f"{e} [{a}, {b}]"


def fmt_df(df, na: str = "NA") -> str:
    """Degrees of freedom: whole when whole to one decimal (``156``), else one decimal (``1444.4``)."""
    if _missing(df):
        return na
    df = float(df)
    if math.isinf(df):
        return "inf"
    s = _no_negative_zero(f"{df:.1f}")
    return s[:-2] if s.endswith(".0") else s


def fmt_pct(x, na: str = "NA") -> str:
    """A percentage with one decimal (``48.1``); a non-zero value below 0.05 in magnitude is
    ``< 0.1`` (or ``> -0.1``)."""
    if _missing(x):
        return na
    x = float(x)
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if 0 < abs(x) < 0.05:
        return "< 0.1" if x > 0 else "> -0.1"
    return _no_negative_zero(f"{x:.1f}")


def fmt_bool(x, na: str = "NA") -> str:
    """``yes`` or ``no``."""
    if _missing(x):
        return na
    return "yes" if bool(x) else "no"


# ----------------------------------------------------------------------------------------
# Whole tables

KINDS = ("num", "bounded", "p", "df", "pct", "int", "bool", "text")

_P_NAMES = {"p", "pval", "p_value", "pvalue", "p-value", "p.value", "p_fdr", "p_adj", "p_holm", "p_bonferroni"}
_DF_NAMES = {"df", "ddf", "df1", "df2", "dof", "den_df", "num_df"}
_BOUNDED_NAMES = {"r", "rho", "tau_b", "corr", "correlation", "mean_r", "alpha", "omega", "omega_total", "omega_h",
                  "icc", "kappa", "power", "coverage", "proportion", "prop", "probability", "prob", "r_equivalent",
                  "r (equivalent)", "cronbach_alpha", "loading", "h2", "communality",
                  "item_total_min", "item_total_max"}


def _bounded_name(n: str) -> bool:
    return n in _BOUNDED_NAMES or bool(re.match(r"^(alpha|omega|icc|r|power|coverage)_(ci_)?(low|high|lower|upper|lb|ub)$", n))


def column_kind(name, values: pd.Series | None = None, bounded=None) -> str:
    """The kind of number a column holds, from its name (and values).

    ``p`` (p, pval, p_fdr, ..._p), ``df`` (df, ddf, ..._df), ``pct`` (names with percent, pct,
    % or I2), ``bounded`` (r, alpha, omega, ICC, power, coverage, proportions; or the names in
    ``bounded``), ``bool``, ``int`` (integers, and float columns whose values are all whole),
    ``num`` otherwise; ``text`` for columns of strings.
    """
    n = str(name).strip().lower()
    if values is not None:
        v = values.dropna()
        if pd.api.types.is_bool_dtype(values.dtype) or (len(v) and v.map(lambda x: isinstance(x, (bool, np.bool_))).all()):
            return "bool"
        numeric = pd.api.types.is_numeric_dtype(values.dtype) or (
            len(v) > 0 and v.map(lambda x: isinstance(x, Real) and not isinstance(x, (bool, np.bool_))).all())
        if not numeric:
            return "text"
    if bounded is not None and name in bounded:
        return "bounded"
    if n in _P_NAMES or n.startswith("p_") or n.endswith("_p") or n.endswith("_pval"):
        return "p"
    if n in _DF_NAMES or n.startswith("df_") or n.endswith("_df"):
        return "df"
    if "percent" in n or "pct" in n or "%" in n or n in {"i2", "i^2", "i²"}:
        return "pct"
    if bounded is None and _bounded_name(n):
        return "bounded"
    if values is not None:
        v = pd.to_numeric(values.dropna(), errors="coerce")
        if pd.api.types.is_integer_dtype(values.dtype):
            return "int"
        fin = v[np.isfinite(v.to_numpy(dtype=float))]
        if len(fin) and (fin == np.round(fin)).all() and (fin.abs() < 1e15).all():
            return "int"
    return "num"


def fmt_value(x, kind: str = "num", digits: int = 2, na: str = "") -> str:
    """One cell: a string stays as it is; a number is formatted as ``kind`` says
    (one of ``num, bounded, p, df, pct, int, bool, text``)."""
    if isinstance(x, str):
        return x
    if _missing(x):
        return na
    if isinstance(x, (bool, np.bool_)):
        return fmt_bool(x)
    if not isinstance(x, Real):
        return str(x)
    if kind == "p":
        return fmt_p(x, na=na)
    if kind == "df":
        return fmt_df(x, na=na)
    if kind == "pct":
        return fmt_pct(x, na=na)
    if kind == "int":
        xf = float(x)
        return str(int(round(xf))) if math.isfinite(xf) else fmt_num(xf, na=na)
    return fmt_num(x, digits, leading_zero=(kind != "bounded"), na=na)


def format_frame(df: pd.DataFrame, *, bounded=None, kinds: dict | None = None, digits: int = 2,
                 floatfmt: str | None = None, na: str = "") -> pd.DataFrame:
    """Every cell of ``df`` as an APA-style string; cells that are strings already (a
    ``to_apa()`` table) are kept exactly.

    Parameters
    ----------
    df : DataFrame
        Not modified.
    bounded : iterable of str, optional
        Columns of quantities that cannot exceed 1 (printed without the leading zero). Default:
        recognised by name (r, alpha, omega, ICC, power, coverage, proportions, p).
    kinds : dict, optional
        ``{column: kind}`` to override the kind read from a column's name and values (see
        :func:`column_kind`).
    digits : int
        Decimals of estimates (more for small values, see :func:`fmt_num`).
    floatfmt : str, optional
        A format spec (``".3f"``) for every non-integer float instead of the APA rules.
    na : str
        Text of a missing cell.
    """
    bounded = None if bounded is None else set(bounded)
    kinds = dict(kinds or {})
    out = {}
    for j, col in enumerate(df.columns):
        s = df.iloc[:, j]
        kind = kinds.get(col) or column_kind(col, s, bounded)
        if floatfmt is not None and kind not in ("int", "bool", "text"):
            out[j] = [x if isinstance(x, str) else (na if _missing(x) else format(x, floatfmt) if isinstance(x, float) else str(x))
                      for x in s]
        else:
            out[j] = [fmt_value(x, kind, digits, na) for x in s]
    res = pd.DataFrame(out, index=df.index, dtype=object)
    res.columns = df.columns
    return res
