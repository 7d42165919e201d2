"""Psychotherapy Process Q-set (PQS) analyses: prototypes, item profiles, reliability,
Q-factor analysis, and PQS items related to the alliance."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..exceptions import ColumnError, DataFileError, OptionError, InsufficientDataError, QSortError, SessionDataError
from ..exceptions import _fmt_labels, _show
from .._format import fmt_num, fmt_pct
from .._format import format_frame
from .._result import Result, accounting_frame
from ..validation import check_option, check_whole_number, need_columns, numeric_column, require_frame

__all__ = [
    "pqs_prototype_fit",
    "PQSPrototypeFit",
    "pqs_items",
    "PQSItems",
    "pqs_reliability",
    "PQSReliability",
    "q_factor_analysis",
    "QFactorResult",
    "pqs_alliance",
    "PQSAlliance",
]

N_ITEMS = 100
ITEMS = [f"pqs{i}" for i in range(1, N_ITEMS + 1)]


def _valid_sorts(sorts: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The valid sorts (``qsort_valid`` true, as made by read_qsorts) and how many were left out."""
    if not isinstance(sorts, pd.DataFrame):
        raise DataFileError(f"sorts must be a DataFrame (from als.read_qsorts), got {type(sorts).__name__}")
    missing = [c for c in ITEMS if c not in sorts.columns]
    if missing:
        raise ColumnError(
            f"the sorts lack item column(s) {missing[:5]}{' ...' if len(missing) > 5 else ''}; read them with "
            "als.read_qsorts(), which names the items pqs1 ... pqs100 and checks each sort"
        )
    if "qsort_valid" not in sorts.columns:
        raise ColumnError(
            "the sorts carry no 'qsort_valid' column: read them with als.read_qsorts() so that each sort "
            "is checked against the forced distribution before it enters an analysis"
        )
    ok = sorts["qsort_valid"].astype(bool)
    valid = sorts.loc[ok]
    X = valid[ITEMS].to_numpy(dtype=float)
    if np.isnan(X).any():
        raise QSortError("a sort marked valid has missing items; re-read the sorts with als.read_qsorts()")
    return valid, int((~ok).sum())


def _id_columns(sorts: pd.DataFrame) -> list[str]:
    return [c for c in sorts.columns if c not in ITEMS and c not in ("qsort_valid", "qsort_problem")]


def _read_prototypes(prototypes) -> pd.DataFrame:
    """Prototypes as a 100 x P frame (rows items 1..100, one column per prototype)."""
    if isinstance(prototypes, (str, Path)):
        path = Path(prototypes)
        if not path.is_file():
            raise DataFileError(f"prototype file {str(path)!r} does not exist")
        prototypes = pd.read_csv(path)
    if not isinstance(prototypes, pd.DataFrame):
        raise DataFileError("prototypes must be a DataFrame or a CSV file: 100 rows (items), one column per prototype")
    p = prototypes.copy()
    if "item" in p.columns:
        p = p.set_index("item")
    if len(p) != N_ITEMS:
        raise DataFileError(
            f"prototypes must rate all {N_ITEMS} PQS items (one row each, optionally an 'item' column 1..100); got {len(p)} rows"
        )
    if "item" in prototypes.columns:
        items = pd.to_numeric(pd.Series(p.index), errors="coerce")
        if sorted(items.tolist()) != list(range(1, N_ITEMS + 1)):
            raise DataFileError("the prototypes' 'item' column must hold the item numbers 1 ... 100, each once")
        p = p.sort_index()
    for c in p.columns:
        v = pd.to_numeric(p[c], errors="coerce")
        if v.isna().any():
            bad = p.index[v.isna()].tolist()
            raise DataFileError(f"prototype {c!r} has missing or non-numeric ratings at item(s) {bad[:10]}")
        if v.std() == 0:
            raise DataFileError(f"prototype {c!r} gives every item the same rating; it cannot be correlated")
        p[c] = v.astype(float)
    p.index = ITEMS
    return p


@dataclass(eq=False, repr=False)
class PQSPrototypeFit(Result):
    """Result of :func:`pqs_prototype_fit`.

    Attributes
    ----------
    table : DataFrame
        The sorts' ID columns and one column per prototype: Pearson's r between the sort and
        the prototype (``to_frame()`` is a copy).
    prototypes : list of str
        The prototypes' names (their columns in ``table``).
    n_excluded : int
        Sorts flagged invalid by :func:`read_qsorts`, left out.
    """

    title = "PQS prototype adherence"

    table: pd.DataFrame
    prototypes: list
    n_excluded: int

    def _headline(self) -> str:
        means = ", ".join(f"{p} mean r = {fmt_num(self.table[p].mean())}" for p in self.prototypes)
        return f"{len(self.table)} sorts against {len(self.prototypes)} prototype(s); {means}"

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def methods(self) -> str:
        per = "; ".join(f"{p}: M = {fmt_num(self.table[p].mean())}, SD = {fmt_num(self.table[p].std(ddof=1))}, "
                        f"range {fmt_num(self.table[p].min())} to {fmt_num(self.table[p].max())}" for p in self.prototypes)
        s = (f"Adherence to the prototype(s) was the Pearson correlation between each session's Q-sort and the "
             f"prototype over the {N_ITEMS} PQS items (Ablon & Jones, 1998), for {len(self.table)} valid sorts ({per}).")
        if self.n_excluded:
            s += f" {self.n_excluded} sort(s) flagged by the check of the forced distribution were left out."
        return s

    def accounting(self) -> pd.DataFrame:
        return accounting_frame("sorts", len(self.table), {"flagged invalid by read_qsorts": self.n_excluded})


def pqs_prototype_fit(sorts: pd.DataFrame, prototypes) -> PQSPrototypeFit:
    """Adherence to prototypes: the correlation of each session's sort with each prototype.

    Parameters
    ----------
    sorts : DataFrame
        From :func:`read_qsorts`; invalid (flagged) sorts are left out and counted.
    prototypes : DataFrame or path to a CSV
        100 rows (items 1..100, in order or with an ``item`` column) and one column per
        prototype with its item ratings (e.g. the psychodynamic and CBT prototypes of Ablon &
        Jones 1998, which are not redistributable and must come from the user).

    Returns
    -------
    PQSPrototypeFit
        ``.table`` (``to_frame()``): the sorts' ID columns and one column per prototype
        holding Pearson's r between the sort and the prototype; ``accounting()`` counts the
        flagged sorts left out; ``methods()``.
    """
    valid, n_bad = _valid_sorts(sorts)
    P = _read_prototypes(prototypes)
    X = valid[ITEMS].to_numpy(dtype=float)
    Xc = X - X.mean(axis=1, keepdims=True)
    Pc = P.to_numpy() - P.to_numpy().mean(axis=0, keepdims=True)
    r = (Xc @ Pc) / np.outer(np.sqrt((Xc**2).sum(axis=1)), np.sqrt((Pc**2).sum(axis=0)))
    out = valid[_id_columns(valid)].copy()
    for j, name in enumerate(P.columns):
        out[name] = r[:, j]
    return PQSPrototypeFit(table=out.reset_index(drop=True), prototypes=list(P.columns), n_excluded=int(n_bad))


@dataclass(eq=False, repr=False)
class PQSItems(Result):
    """Result of :func:`pqs_items`.

    Attributes
    ----------
    table : DataFrame
        ``[by], item, item_number, mean, sd, n, rank, most_characteristic,
        least_characteristic`` (``to_frame()`` is a copy).
    by : str or None
        The group column.
    n_extreme : int
        Items flagged at each end.
    n_sorts : int
        Valid sorts used; ``n_excluded`` sorts flagged invalid by :func:`read_qsorts` were left out.
    """

    title = "PQS item profile"

    table: pd.DataFrame
    by: str | None
    n_extreme: int
    n_sorts: int
    n_excluded: int

    def _groups(self) -> list:
        return [None] if self.by is None else list(dict.fromkeys(self.table[self.by]))

    def _headline(self) -> str:
        g = "" if self.by is None else f" by {self.by} ({len(self._groups())} groups)"
        return f"{self.n_sorts} sorts{g}; {self.n_extreme} most and least characteristic items flagged"

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def methods(self) -> str:
        parts = []
        for g in self._groups():
            t = self.table if g is None else self.table[self.table[self.by] == g]
            top = ", ".join(str(int(n)) for n in t.loc[t["most_characteristic"], "item_number"])
            parts.append(("" if g is None else f"{g}: ") + f"most characteristic items {top}")
        return (f"Each PQS item's mean pile (1-9) and SD were computed over {self.n_sorts} valid sorts"
                + ("" if self.by is None else f" within each {self.by}")
                + f" and ranked; the {self.n_extreme} highest are the most characteristic. " + "; ".join(parts) + ".")

    def accounting(self) -> pd.DataFrame:
        return accounting_frame("sorts", self.n_sorts, {"flagged invalid by read_qsorts": self.n_excluded})

    def plot(self, *, ax=None, group=None, n_label: int = 5):
        """The item profile (:func:`~alliance_stats.plot_pqs_profile`) of all sorts, or of one
        ``group`` when the profile was made ``by`` a column."""
        from ..plots.pqs import plot_pqs_profile

        t = self.table
        if self.by is not None:
            groups = self._groups()
            if group not in groups:
                raise OptionError("group", group, tuple(groups), hint=f"the profile is by {self.by!r}: name the group to draw")
            t = t[t[self.by] == group].drop(columns=self.by)
        return plot_pqs_profile(t, ax=ax, n_label=n_label)


def pqs_items(sorts: pd.DataFrame, *, by: str | None = None, n_extreme: int = 10) -> PQSItems:
    """Item profile: mean pile, SD and rank of each item, overall or by group.

    Parameters
    ----------
    sorts : DataFrame
        From :func:`read_qsorts`.
    by : str, optional
        Group column (therapy type, phase, judge ...).
    n_extreme : int
        How many items to flag as most and least characteristic.

    Returns
    -------
    PQSItems
        ``.table`` (also ``to_frame()``): ``[by], item, item_number, mean, sd, n, rank,
        most_characteristic, least_characteristic``; rank 1 is the highest mean pile (ties get
        their mean rank). ``accounting()`` counts the flagged sorts left out; ``plot()`` draws
        the profile.
    """
    valid, n_bad = _valid_sorts(sorts)
    if by is not None:
        need_columns(valid, {"by": by}, where="the sorts")
    groups = [(None, valid)] if by is None else list(valid.groupby(by, sort=True, observed=True))
    parts = []
    for g, sub in groups:
        X = sub[ITEMS].to_numpy(dtype=float)
        mean = X.mean(axis=0)
        sd = X.std(axis=0, ddof=1) if len(sub) > 1 else np.full(N_ITEMS, np.nan)
        rank = stats.rankdata(-mean, method="average")
        order = np.argsort(-mean, kind="stable")
        most = np.zeros(N_ITEMS, bool)
        least = np.zeros(N_ITEMS, bool)
        most[order[:n_extreme]] = True
        least[order[-n_extreme:]] = True
        d = pd.DataFrame(
            {"item": ITEMS, "item_number": np.arange(1, N_ITEMS + 1), "mean": mean, "sd": sd, "n": len(sub),
             "rank": rank, "most_characteristic": most, "least_characteristic": least}
        )
        if by is not None:
            d.insert(0, by, g)
        parts.append(d.sort_values("rank", kind="stable"))
    out = pd.concat(parts, ignore_index=True)
    return PQSItems(table=out, by=by, n_extreme=int(n_extreme), n_sorts=int(len(valid)), n_excluded=int(n_bad))


def _icc2(m: np.ndarray) -> tuple[float, float]:
    """ICC(2,1) and ICC(2,k) (Shrout & Fleiss 1979) of an n targets x k raters matrix."""
    n, k = m.shape
    grand = m.mean()
    ss_r = k * ((m.mean(axis=1) - grand) ** 2).sum()
    ss_c = n * ((m.mean(axis=0) - grand) ** 2).sum()
    ss_e = ((m - grand) ** 2).sum() - ss_r - ss_c
    msr = ss_r / (n - 1)
    msc = ss_c / (k - 1)
    mse = ss_e / ((n - 1) * (k - 1))
    icc2 = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
    icc2k = (msr - mse) / (msr + (msc - mse) / n)
    return icc2, icc2k


@dataclass(eq=False, repr=False)
class PQSReliability(Result):
    """Result of :func:`pqs_reliability`.

    Attributes
    ----------
    sessions : DataFrame
        Per session: the session key column(s), ``k`` (judges), ``mean_r`` and
        ``spearman_brown`` (``to_frame()`` returns a copy).
    items : DataFrame
        Per item: ``item, n_sessions, k, icc2, icc2k`` over the sessions rated by every judge
        (empty when fewer than two such sessions or judges).
    pairs : DataFrame
        Every judge pair of every session: key column(s), ``rater_1, rater_2, r``.
    n_judges : int
        Distinct judges.
    n_sorts : int
        Valid sorts used; ``n_excluded`` sorts flagged invalid by :func:`read_qsorts` were left out.
    sessions_not_rated_by_every_judge : int
        Sessions left out of the item ICCs.
    """

    title = "PQS inter-judge reliability"

    sessions: pd.DataFrame
    items: pd.DataFrame
    pairs: pd.DataFrame
    n_judges: int
    n_sorts: int
    n_excluded: int
    sessions_not_rated_by_every_judge: int

    def _rated(self) -> pd.DataFrame:
        return self.sessions[self.sessions["k"] >= 2]

    def _headline(self) -> str:
        s = self._rated()
        head = f"{self.n_sorts} sorts by {self.n_judges} judges; {len(s)} sessions with two or more judges"
        if len(s):
            head += f", median r = {fmt_num(s['mean_r'].median(), leading_zero=False)}"
        return head

    def to_frame(self) -> pd.DataFrame:
        return self.sessions.copy()

    def to_apa(self, digits: int | None = None) -> pd.DataFrame:
        return format_frame(self.sessions, digits=2 if digits is None else int(digits), na="NA",
                            bounded=("mean_r", "spearman_brown"))

    def _tables(self) -> list:
        if not len(self.items):
            return []
        return [("Item ICCs (two-way random, absolute agreement)",
                 format_frame(self.items, digits=2, na="NA", bounded=("icc2", "icc2k")))]

    def methods(self) -> str:
        s = self._rated()
        bits = []
        if len(s):
            bits.append(
                f"For each of the {len(s)} sessions sorted by two or more judges, the mean Pearson correlation between "
                "the judges' sorts over the 100 items and its Spearman-Brown projection k r / (1 + (k - 1) r), the "
                "reliability of the judges' mean sort, were computed: median r = "
                f"{fmt_num(s['mean_r'].median(), leading_zero=False)} (range {fmt_num(s['mean_r'].min(), leading_zero=False)} "
                f"to {fmt_num(s['mean_r'].max(), leading_zero=False)}), median Spearman-Brown = "
                f"{fmt_num(s['spearman_brown'].median(), leading_zero=False)}.")
        if len(self.items):
            it = self.items
            bits.append(
                f"Per item, ICC(2,1) and ICC(2,k) (two-way random effects, absolute agreement; Shrout & Fleiss, 1979) "
                f"were computed over the {int(it['n_sessions'].iloc[0])} sessions rated by all {int(it['k'].iloc[0])} "
                f"judges: median ICC(2,1) = {fmt_num(it['icc2'].median(), leading_zero=False)}, median ICC(2,k) = "
                f"{fmt_num(it['icc2k'].median(), leading_zero=False)}.")
        else:
            bits.append("Item ICCs were not computed: fewer than two sessions were rated by every judge.")
        return (f"Inter-judge reliability of {self.n_sorts} PQS sorts (Jones, 2000) by {self.n_judges} judges. "
                + " ".join(bits))

    def accounting(self) -> pd.DataFrame:
        used_items = int(self.items["n_sessions"].iloc[0]) if len(self.items) else 0
        return accounting_frame("sorts", self.n_sorts, {"flagged invalid by read_qsorts": self.n_excluded}, more=[
            accounting_frame("sessions (item ICCs)", used_items,
                             {"not rated by every judge": self.sessions_not_rated_by_every_judge})])


def pqs_reliability(sorts: pd.DataFrame, *, session: str = "session", rater: str = "rater") -> PQSReliability:
    """Inter-rater reliability of PQS sorts, per session and per item.

    Parameters
    ----------
    sorts : DataFrame
        From :func:`read_qsorts` with two or more judges' sorts of the same sessions.
    session : str or list of str
        Column(s) identifying the rated session.
    rater : str
        Judge column.

    Returns
    -------
    PQSReliability
        ``.sessions`` (also ``to_frame()``): per session ``k`` (judges), ``mean_r`` (mean
        Pearson r between the judges' sorts over the 100 items) and ``spearman_brown`` =
        k r / (1 + (k - 1) r), the reliability of the judges' mean sort; ``.items``: per item
        ``icc2`` and ``icc2k`` (two-way random effects, absolute agreement; Shrout & Fleiss
        1979) across the sessions rated by every judge, checked against R's psych::ICC;
        ``.pairs``: every judge pair of every session with its r. ``accounting()`` counts the
        invalid sorts and the sessions not rated by every judge; ``methods()`` is a methods
        paragraph.
    """
    valid, n_bad = _valid_sorts(sorts)
    keys = [session] if isinstance(session, str) else list(session)
    need_columns(valid, {**{"session": c for c in keys}, "rater": rater}, where="the sorts")
    dup = valid.duplicated(keys + [rater], keep=False)
    if dup.any():
        rows = valid.index[dup].tolist()
        raise QSortError(f"the same judge sorted the same session twice (rows {rows[:10]}); keep one sort per judge")
    pair_rows, sess_rows = [], []
    for key, g in valid.groupby(keys, sort=True):
        X = g[ITEMS].to_numpy(dtype=float)
        judges = g[rater].tolist()
        k = len(X)
        key = key if isinstance(key, tuple) else (key,)
        if k < 2:
            sess_rows.append({**dict(zip(keys, key)), "k": 1, "mean_r": np.nan, "spearman_brown": np.nan})
            continue
        R = np.corrcoef(X)
        iu = np.triu_indices(k, 1)
        for a, b in zip(*iu):
            pair_rows.append({**dict(zip(keys, key)), "rater_1": judges[a], "rater_2": judges[b], "r": R[a, b]})
        rbar = R[iu].mean()
        sess_rows.append({**dict(zip(keys, key)), "k": k, "mean_r": rbar, "spearman_brown": k * rbar / (1 + (k - 1) * rbar)})
    wide = valid.pivot_table(index=keys, columns=rater, values=ITEMS, aggfunc="first", observed=True)
    judges = sorted(valid[rater].unique().tolist(), key=str)
    complete = wide.dropna()
    item_rows = []
    if len(judges) >= 2 and len(complete) >= 2:
        for it in ITEMS:
            m = complete[it].to_numpy(dtype=float)
            icc2, icc2k = _icc2(m)
            item_rows.append({"item": it, "n_sessions": len(m), "k": m.shape[1], "icc2": icc2, "icc2k": icc2k})
    return PQSReliability(sessions=pd.DataFrame(sess_rows), items=pd.DataFrame(item_rows), pairs=pd.DataFrame(pair_rows),
                          n_judges=len(judges), n_sorts=int(len(valid)), n_excluded=int(n_bad),
                          sessions_not_rated_by_every_judge=int(len(wide) - len(complete)))


def _varimax(L: np.ndarray, tol: float = 1e-14, max_iter: int = 10_000) -> np.ndarray:
    """Varimax rotation with Kaiser normalization (Kaiser 1958), the criterion of R's stats::varimax."""
    h = np.sqrt((L**2).sum(axis=1))
    A = L / h[:, None]
    p, m = A.shape
    T = np.eye(m)
    d = 0.0
    for _ in range(max_iter):
        Z = A @ T
        B = A.T @ (Z**3 - Z @ np.diag((Z**2).sum(axis=0)) / p)
        U, s, Vt = np.linalg.svd(B)
        T = U @ Vt
        d_new = s.sum()
        if d_new < d * (1 + tol):
            break
        d = d_new
    return (A @ T) * h[:, None]


@dataclass(repr=False)
class QFactorResult(Result):
    """Result of :func:`q_factor_analysis`.

    Attributes
    ----------
    loadings : DataFrame
        Rotated loadings of each sort (row, with its IDs) on each factor, and the factor each
        sort defines (``defines``: the factor on which it loads significantly and highest, or
        NaN).
    arrays : DataFrame
        Factor arrays: for each item, the z-score of the weighted average of the defining sorts
        per factor (Brown 1980 weights f / (1 - f^2)).
    variance : DataFrame
        Eigenvalue, variance explained (%) and cumulative % per factor (after rotation, the
        sums of squared loadings).
    eigenvalues : ndarray
        All eigenvalues of the correlation matrix between sorts.
    n_factors : int
    rule : str
        How the number of factors was chosen.
    rotation : str
        ``"varimax"`` or ``"none"``.
    n_excluded : int
        Sorts left out because :func:`read_qsorts` flagged them (``qsort_valid`` false).
    """

    loadings: pd.DataFrame
    arrays: pd.DataFrame
    variance: pd.DataFrame
    eigenvalues: np.ndarray
    n_factors: int
    rule: str
    rotation: str = "varimax"
    n_excluded: int = 0

    title = "Q-factor analysis"

    def _n_defining(self) -> list[int]:
        return [int((self.loadings["defines"] == f).sum()) for f in self.variance["factor"]]

    def _rotation_text(self) -> str:
        return "varimax rotation" if self.rotation == "varimax" and self.n_factors > 1 else "unrotated"

    def _headline(self) -> str:
        total = self.variance["cumulative_pct"].iloc[-1]
        return (f"{len(self.loadings)} sorts, {self.n_factors} factor(s) ({self.rule}; {self._rotation_text()}), "
                f"{fmt_pct(total)}% of the variance")

    def to_frame(self) -> pd.DataFrame:
        """One row per factor: ``factor, eigenvalue`` (of the correlation matrix), ``ss_loadings``
        (after rotation), ``variance_pct, cumulative_pct, n_defining`` (sorts defining it)."""
        out = self.variance.copy()
        out["n_defining"] = self._n_defining()
        return out

    def to_apa(self, digits: int | None = None) -> pd.DataFrame:
        """APA-style table of the factors: eigenvalue (after rotation), % of variance,
        cumulative %, and the number of sorts defining each factor."""
        d = 2 if digits is None else check_whole_number("digits", digits, lo=0)
        v = self.variance
        return pd.DataFrame({
            "Factor": v["factor"],
            "Eigenvalue": [fmt_num(x, d) for x in v["ss_loadings"]],
            "% variance": [fmt_pct(x) for x in v["variance_pct"]],
            "Cumulative %": [fmt_pct(x) for x in v["cumulative_pct"]],
            "Defining sorts": self._n_defining(),
        })

    def methods(self) -> str:
        """A methods-and-results paragraph: Q-technique, extraction, rotation, the number of
        factors and why, variance explained, defining sorts, and the sorts left out."""
        n = len(self.loadings)
        total = self.variance["cumulative_pct"].iloc[-1]
        per = "; ".join(f"{f}: {fmt_pct(p)}% of the variance, defined by {k} sort(s)"
                        for f, p, k in zip(self.variance["factor"], self.variance["variance_pct"], self._n_defining()))
        undefined = int(self.loadings["defines"].isna().sum())
        s = [f"A Q-technique factor analysis (Stephenson, 1953) treated the {n} valid Q-sorts as variables and the "
             f"{N_ITEMS} PQS items as cases: principal components of the correlations between sorts were extracted"
             + (" and rotated by varimax with Kaiser normalization." if self._rotation_text() == "varimax rotation"
                else " and not rotated."),
             f"{self.n_factors} factor(s) were retained ({self.rule}), together explaining {fmt_pct(total)}% of the "
             f"variance ({per}).",
             "A sort defines the factor on which it loads significantly (|loading| > 2.58 / sqrt(100) = .26, p < .01; "
             "Brown, 1980) and highest; factor arrays are the z-scored averages of the defining sorts weighted by "
             "f / (1 - f²)."
             + (f" {undefined} sort(s) defined no factor." if undefined else "")]
        if self.n_excluded:
            s.append(f"{self.n_excluded} sort(s) flagged by the check of the forced distribution were left out.")
        return " ".join(s)

    def accounting(self) -> pd.DataFrame:
        """Q-sorts analysed and left out (flagged by :func:`read_qsorts`)."""
        return accounting_frame("Q-sorts", len(self.loadings),
                                {"not a valid forced distribution (qsort_valid false)": self.n_excluded})

    def plot(self, *, ax=None, **kw):
        """Loadings of each sort on each factor; see :func:`alliance_stats.plot_q_loadings`."""
        from ..plots import plot_q_loadings

        return plot_q_loadings(self, ax=ax, **kw)


def q_factor_analysis(sorts: pd.DataFrame, *, n_factors: int | None = None, rotation: str = "varimax", max_factors: int = 7) -> QFactorResult:
    """Q-technique factor analysis: sorts (sessions) are the variables, items the cases.

    Principal components of the correlation matrix between sorts, rotated by varimax.

    Parameters
    ----------
    sorts : DataFrame
        From :func:`read_qsorts`; flagged sorts are left out.
    n_factors : int, optional
        Number of factors. When not given: the Kaiser-Guttman rule (eigenvalue > 1), keeping
        only factors defined by at least two sorts that load significantly on them, at most
        ``max_factors``.
    rotation : {"varimax", "none"}

    Returns
    -------
    QFactorResult

    Notes
    -----
    A loading is significant at p < .01 when |loading| > 2.58 / sqrt(100) = .258 (Brown 1980).
    Loadings are checked against R (eigen + stats::varimax; tests/reference/make_pqs_reference.R).
    """
    check_option("rotation", rotation, ("varimax", "none"))
    valid, n_bad = _valid_sorts(sorts)
    X = valid[ITEMS].to_numpy(dtype=float).T  # items x sorts
    n_sorts = X.shape[1]
    if n_sorts < 3:
        raise InsufficientDataError(f"a Q-factor analysis needs at least 3 valid sorts; {n_sorts} given"
                                    + (f" ({n_bad} invalid left out)" if n_bad else ""))
    R = np.corrcoef(X, rowvar=False)
    vals, vecs = np.linalg.eigh(R)
    order = np.argsort(vals)[::-1]
    vals, vecs = vals[order], vecs[:, order]
    crit = 2.58 / np.sqrt(N_ITEMS)
    if n_factors is None:
        nf = int(min(max_factors, max(1, (vals > 1).sum())))
        rule = "eigenvalue > 1"
        while nf > 1:
            L = vecs[:, :nf] * np.sqrt(vals[:nf])
            Lr = _varimax(L) if rotation == "varimax" else L
            defining = _defining(Lr, crit)
            if all((defining == j).sum() >= 2 for j in range(nf)):
                break
            nf -= 1
            rule = "eigenvalue > 1 and at least two defining sorts per factor"
    else:
        nf = check_whole_number("n_factors", n_factors, 1, n_sorts)
        rule = "given"
    L = vecs[:, :nf] * np.sqrt(np.maximum(vals[:nf], 0))
    if rotation == "varimax" and nf > 1:
        L = _varimax(L)
    L = L * np.where(L.sum(axis=0) < 0, -1.0, 1.0)  # orient each factor so most sorts load positively
    names = [f"F{j + 1}" for j in range(nf)]
    defining = _defining(L, crit)
    loadings = valid[_id_columns(valid)].reset_index(drop=True).copy()
    for j, nm in enumerate(names):
        loadings[nm] = L[:, j]
    loadings["defines"] = [names[d] if d >= 0 else np.nan for d in defining]
    Z = (X - X.mean(axis=0)) / X.std(axis=0, ddof=1)
    arrays = pd.DataFrame({"item": ITEMS, "item_number": np.arange(1, N_ITEMS + 1)})
    for j, nm in enumerate(names):
        idx = np.flatnonzero(defining == j)
        if len(idx) == 0:
            arrays[nm] = np.nan
            continue
        f = L[idx, j]
        w = f / (1 - f**2)
        s = Z[:, idx] @ w
        arrays[nm] = (s - s.mean()) / s.std(ddof=1)
    ss = (L**2).sum(axis=0)
    variance = pd.DataFrame({"factor": names, "eigenvalue": vals[:nf], "ss_loadings": ss,
                             "variance_pct": 100 * ss / n_sorts, "cumulative_pct": np.cumsum(100 * ss / n_sorts)})
    return QFactorResult(loadings=loadings, arrays=arrays, variance=variance, eigenvalues=vals, n_factors=nf, rule=rule,
                         rotation=rotation, n_excluded=n_bad)


def _defining(L: np.ndarray, crit: float) -> np.ndarray:
    """Index of the factor each sort defines (significant and its highest loading), or -1."""
    best = np.argmax(np.abs(L), axis=1)
    top = np.abs(L[np.arange(len(L)), best])
    return np.where(top > crit, best, -1)


@dataclass(eq=False, repr=False)
class PQSAlliance(Result):
    """Result of :func:`pqs_alliance`.

    Attributes
    ----------
    table : DataFrame
        Per item: ``item, item_number, r, n, p, p_fdr, significant``, sorted by |r|
        (``to_frame()`` returns a copy).
    alliance : str
        The alliance column.
    alpha : float
        False discovery rate of the ``significant`` flag.
    n_sessions : int
        Sorted sessions with an alliance score (the n of every r).
    n_without_alliance : int
        Sorted sessions left out because they have no alliance score.
    n_sorts, n_excluded : int
        Valid sorts averaged; sorts flagged invalid by :func:`read_qsorts`, left out.
    """

    title = "PQS items and the alliance"

    table: pd.DataFrame
    alliance: str
    alpha: float
    n_sessions: int
    n_without_alliance: int
    n_sorts: int
    n_excluded: int

    def _headline(self) -> str:
        k = int(self.table["significant"].sum())
        return (f"100 items x {self.alliance} over {self.n_sessions} sessions; {k} item{'s' if k != 1 else ''} "
                f"significant at FDR {self.alpha:g}")

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def methods(self) -> str:
        sig = self.table[self.table["significant"]]
        shown = "; ".join(f"{r.item} (r = {fmt_num(r.r, leading_zero=False)})" for r in sig.head(10).itertuples())
        found = (f"{len(sig)} of the 100 items were significant: {shown}" + ("; ..." if len(sig) > 10 else "")
                 if len(sig) else "no item was significant")
        return (
            f"The judges' sorts of each session were averaged, and each of the 100 PQS items was correlated (Pearson r) "
            f"with {self.alliance} across the {self.n_sessions} sessions with both a sort and an alliance score; the "
            f"p-values were adjusted with the Benjamini-Hochberg false discovery rate (FDR = {self.alpha:g}). {found}."
        )

    def accounting(self) -> pd.DataFrame:
        return accounting_frame("sessions", self.n_sessions, {f"no {self.alliance} score": self.n_without_alliance}, more=[
            accounting_frame("sorts", self.n_sorts, {"flagged invalid by read_qsorts": self.n_excluded})])


def pqs_alliance(sorts: pd.DataFrame, data: pd.DataFrame, *, alliance: str, session="session", alpha: float = 0.05) -> PQSAlliance:
    """Correlate every PQS item with an alliance score across sessions.

    The judges' sorts of a session are averaged first; the session table is joined on the
    ``session`` key column(s) (e.g. ``["patient", "session"]``).

    Parameters
    ----------
    sorts : DataFrame
        From :func:`read_qsorts`.
    data : DataFrame
        Session table with the alliance score.
    alliance : str
        Alliance column of ``data``.
    session : str or list of str
        Key column(s) present in both tables.
    alpha : float
        False discovery rate for the ``significant`` flag.

    Returns
    -------
    PQSAlliance
        ``.table`` (also ``to_frame()``), per item: ``item, item_number, r, n, p, p_fdr,
        significant``, sorted by |r|; ``p_fdr`` is Benjamini-Hochberg adjusted.
        ``accounting()`` counts the sorted sessions with no alliance score (left out) and the
        invalid sorts; ``methods()`` is a methods paragraph.
    """
    from statsmodels.stats.multitest import multipletests

    valid, n_bad = _valid_sorts(sorts)
    keys = [session] if isinstance(session, str) else list(session)
    require_frame(data)
    for c in keys:
        need_columns(valid, {"session": c}, where="the sorts")
        need_columns(data, {"session": c}, where="the session table")
    need_columns(data, {"alliance": alliance}, where="the session table")
    dup = data.duplicated(keys, keep=False).to_numpy()
    if dup.any():
        rows = data.index[dup].tolist()
        raise SessionDataError(f"the session table has repeated {' x '.join(keys)} keys at rows {_fmt_labels(rows)}; give one "
                               "row per session", rows=rows)
    numeric_column(data, alliance)
    mean_sorts = valid.groupby(keys, sort=True)[ITEMS].mean().reset_index()
    key_cast = {c: mean_sorts[c].astype(str) for c in keys}
    left = mean_sorts.assign(**{f"_k{i}": key_cast[c] for i, c in enumerate(keys)})
    right = data[keys + [alliance]].assign(**{f"_k{i}": data[c].astype(str) for i, c in enumerate(keys)})[[f"_k{i}" for i in range(len(keys))] + [alliance]]
    merged = left.merge(right, on=[f"_k{i}" for i in range(len(keys))], how="left")
    a = pd.to_numeric(merged[alliance], errors="coerce")
    ok = a.notna()
    n_missing = int((~ok).sum())
    if ok.sum() < 3:
        raise InsufficientDataError(
            f"only {int(ok.sum())} sorted session(s) have an alliance score; check that the keys {keys} match "
            f"(e.g. sorts {_show(mean_sorts[keys[0]].iloc[0])} vs data {_show(data[keys[0]].iloc[0])})"
        )
    Y = merged.loc[ok, ITEMS].to_numpy(dtype=float)
    x = a[ok].to_numpy(dtype=float)
    n = len(x)
    xc = x - x.mean()
    Yc = Y - Y.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc @ Yc) / np.sqrt((xc @ xc) * (Yc**2).sum(axis=0))
        t = r * np.sqrt((n - 2) / (1 - r**2))
    p = 2 * stats.t.sf(np.abs(t), n - 2)
    finite = np.isfinite(p)
    p_fdr = np.full_like(p, np.nan)
    if finite.any():
        p_fdr[finite] = multipletests(p[finite], method="fdr_bh")[1]
    out = pd.DataFrame({"item": ITEMS, "item_number": np.arange(1, N_ITEMS + 1), "r": r, "n": n, "p": p, "p_fdr": p_fdr})
    out["significant"] = out["p_fdr"] < alpha
    out = out.reindex(out["r"].abs().sort_values(ascending=False, kind="stable").index).reset_index(drop=True)
    return PQSAlliance(table=out, alliance=str(alliance), alpha=float(alpha), n_sessions=int(n), n_without_alliance=n_missing,
                       n_sorts=int(len(valid)), n_excluded=int(n_bad))
