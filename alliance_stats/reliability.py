"""Internal consistency (alpha, omega) and reliable / clinically significant change."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .exceptions import InsufficientDataError, KeyReversalWarning, NestedDataWarning, OptionError, user_stacklevel
from .instruments import get_instrument
from .scoring import item_matrix, resolve_items, warn_provisional
from ._format import fmt_ci, fmt_num, fmt_pct, format_frame
from ._result import Result, accounting_frame
from .validation import check_number, check_option, check_session_keys, need_columns, numeric_column, require_frame

__all__ = ["reliability", "ReliabilityResult", "multilevel_reliability", "MultilevelReliability", "cronbach_alpha",
           "omega_total", "pre_post", "reliable_change", "ReliableChange", "clinical_cutoffs"]

RC_CATEGORIES = ["recovered", "improved", "unchanged", "deteriorated"]


def cronbach_alpha(X: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Raw Cronbach's alpha of complete rows of ``X`` (n x k) with Feldt's (1965) CI.

    alpha = k / (k - 1) * (1 - sum(item variances) / variance of the sum). The CI uses
    (1 - alpha) / (1 - alpha_hat) ~ F(n - 1, (n - 1)(k - 1)), as psych::alpha.ci does.
    """
    n, k = X.shape
    cov = np.cov(X, rowvar=False, ddof=1)
    alpha = k / (k - 1) * (1 - np.trace(cov) / cov.sum())
    df1, df2 = n - 1, (n - 1) * (k - 1)
    q = (1 - level) / 2
    lo = 1 - (1 - alpha) * stats.f.ppf(1 - q, df1, df2)
    hi = 1 - (1 - alpha) * stats.f.ppf(q, df1, df2)
    return float(alpha), float(lo), float(hi)


def _minres_one_factor(R: np.ndarray, tol: float = 1e-12, max_iter: int = 10_000) -> np.ndarray:
    """Loadings of a one-factor minimum-residual (unweighted least squares) solution.

    Iterated principal axes: communalities start at the squared multiple correlations and
    are replaced by the squared loadings of the first principal axis of the reduced
    correlation matrix until they stop changing. At convergence the off-diagonal residuals
    are minimal in the least-squares sense (the criterion psych::fa(fm = "minres") minimizes).
    """
    k = R.shape[0]
    try:
        h2 = 1 - 1 / np.diag(np.linalg.inv(R))
    except np.linalg.LinAlgError:
        h2 = np.full(k, 0.5)
    for _ in range(max_iter):
        Rr = R.copy()
        np.fill_diagonal(Rr, h2)
        vals, vecs = np.linalg.eigh(Rr)
        lam = vecs[:, -1] * np.sqrt(max(vals[-1], 0.0))
        new = lam**2
        if np.max(np.abs(new - h2)) < tol:
            h2 = new
            break
        h2 = new
    if lam.sum() < 0:
        lam = -lam
    return lam


def omega_total(X: np.ndarray) -> float:
    """McDonald's omega total from a one-factor minres solution on the item correlations.

    omega_t = 1 - sum(uniquenesses) / sum(R), with uniqueness 1 - loading^2 and sum(R) the
    sum of all entries of the correlation matrix (the variance of the standardized sum).
    """
    R = np.corrcoef(X, rowvar=False)
    lam = _minres_one_factor(R)
    u2 = 1 - lam**2
    return float(1 - u2.sum() / R.sum())


@dataclass(eq=False, repr=False)
class ReliabilityResult(Result):
    """Result of :func:`reliability`.

    Attributes
    ----------
    table : DataFrame
        One row per scale: ``scale, n, n_excluded, n_items, alpha, alpha_ci_low, alpha_ci_high,
        omega_total, mean_r`` (``to_frame()`` returns a copy).
    instrument : str
        The instrument's name; ``provenance`` its key's provenance (``"provisional"`` when the
        reversals are not confirmed against the manual).
    items : list of str
        The item columns, in item order.
    item_total : dict
        Each scale's corrected item-total correlations, ``{scale: {column: r}}`` (psych's
        ``r.drop``); :meth:`item_total_frame` as a table.
    level : float
        Confidence level of the alpha CI.
    n_rows : int
        Rows of the data.
    """

    title = "Internal consistency"

    table: pd.DataFrame
    instrument: str
    provenance: str
    items: list
    item_total: dict
    level: float
    n_rows: int

    def item_total_frame(self) -> pd.DataFrame:
        """Corrected item-total correlations: ``scale, item, r_drop``."""
        rows = [(s, c, r) for s, d in self.item_total.items() for c, r in d.items()]
        return pd.DataFrame(rows, columns=["scale", "item", "r_drop"])

    def _main(self) -> pd.Series:
        t = self.table.set_index("scale")
        return t.loc["total"] if "total" in t.index else t.iloc[0]

    def _headline(self) -> str:
        m = self._main()
        return (f"{self.instrument}, {len(self.table)} scale{'s' if len(self.table) != 1 else ''} on {self.n_rows} rows; "
                f"{m.name} alpha = {fmt_num(m['alpha'], leading_zero=False)}")

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def to_apa(self, digits: int | None = None) -> pd.DataFrame:
        d = 2 if digits is None else int(digits)
        t = self.table
        ci = [fmt_ci(lo, hi, d, leading_zero=False) for lo, hi in zip(t["alpha_ci_low"], t["alpha_ci_high"])]
        out = format_frame(t.drop(columns=["alpha_ci_low", "alpha_ci_high"]), digits=d, na="NA",
                           bounded=("alpha", "omega_total", "mean_r"))
        out.insert(out.columns.get_loc("alpha") + 1, f"{round(100 * self.level):g}% CI", ci)
        return out

    def _tables(self) -> list:
        it = self.item_total_frame()
        return [("Corrected item-total correlations", format_frame(it, digits=2, bounded=("r_drop",), na="NA"))] if len(it) else []

    def _notes(self) -> list:
        return (["The key's reversals are provisional (not confirmed against the manual)."]
                if self.provenance == "provisional" else [])

    def methods(self) -> str:
        pct = f"{round(100 * self.level):g}%"
        found = "; ".join(
            f"{r.scale} ({r.n_items} items, n = {r.n}): α = {fmt_num(r.alpha, leading_zero=False)}, {pct} CI "
            f"{fmt_ci(r.alpha_ci_low, r.alpha_ci_high, leading_zero=False)}, ω = {fmt_num(r.omega_total, leading_zero=False)}"
            for r in self.table.itertuples())
        return (
            f"Internal consistency of the {self.instrument} scales was estimated on {self.n_rows} rows: raw "
            f"(covariance-based) Cronbach's alpha with Feldt's (1965) {pct} confidence interval, McDonald's omega total "
            "from a one-factor minimum-residual factor analysis of the item correlations, and the mean inter-item "
            "correlation (as R's psych::alpha and psych::omega). Items the key marks as reversed were reverse-scored "
            f"first; rows with a missing item of a scale were left out of that scale (complete cases). {found}."
        )

    def accounting(self) -> pd.DataFrame:
        parts = [accounting_frame(f"rows ({r.scale})", r.n, {"a missing item of the scale": r.n_excluded})
                 for r in self.table.itertuples()]
        return pd.concat(parts, ignore_index=True)


def reliability(
    data: pd.DataFrame,
    instrument,
    *,
    items=None,
    scales=None,
    level: float = 0.95,
    on_invalid: str = "raise",
) -> ReliabilityResult:
    """Internal consistency of each scale of an instrument.

    Parameters
    ----------
    data : DataFrame
        One row per completed form. Not modified.
    instrument : str or Instrument
    items : list, dict, str or None
        Item columns (see :func:`resolve_items`).
    scales : list of str, optional
        Scales to report; default every subscale and the total.
    level : float
        Confidence level of the alpha CI.
    on_invalid : {"raise", "nan"}
        As in :func:`score`.

    Returns
    -------
    ReliabilityResult
        ``.table`` (also ``to_frame()``), one row per scale: ``scale, n, n_excluded,
        n_items, alpha, alpha_ci_low, alpha_ci_high, omega_total, mean_r``. Reversed items
        are reverse-scored by the key first. Rows with any missing item of the scale are left
        out (listwise) and counted in ``n_excluded`` (and ``accounting()``).
        ``.item_total`` holds each scale's corrected item-total correlations (``{scale:
        {column: r}}``, psych's ``r.drop``; ``item_total_frame()`` as a table); ``methods()``
        is a methods paragraph.

    Warns
    -----
    KeyReversalWarning
        When an item correlates negatively with the sum of the other items of its scale
        (after the key's reversals): the key may lack a reversal of that item (or the data
        hold it already reversed). The warning's ``items`` maps the columns to their
        correlations.

    Notes
    -----
    alpha is the raw (covariance-based) coefficient, with Feldt's CI; omega total comes from
    a one-factor minimum-residual factor analysis of the item correlations; mean_r is the
    mean off-diagonal inter-item correlation. Checked against R's psych package (alpha,
    alpha.ci, omega with nfactors = 1): see tests/reference/.
    """
    inst = get_instrument(instrument)
    require_frame(data)
    level = check_number("level", level, 0, 1, lo_open=True, hi_open=True, hint="give the confidence level, e.g. 0.95")
    check_option("on_invalid", on_invalid, ("raise", "nan"))
    if isinstance(scales, str):
        scales = [scales]
    elif scales is not None and not isinstance(scales, (list, tuple, pd.Index)):
        raise OptionError("scales", scales, hint="give a list of scale names, e.g. ['total']")
    warn_provisional(inst)
    cols = resolve_items(data, inst, items)
    X, _ = item_matrix(data, inst, cols, on_invalid=on_invalid)
    if "patient" in data.columns and data["patient"].duplicated().any():
        n_pat = data["patient"].nunique()
        warnings.warn(
            f"{len(data)} rows of {n_pat} patients (column 'patient'): alpha pools the session rows as if they "
            "were independent, so its CI is too narrow and it says nothing about change within patients. "
            "als.multilevel_reliability(data, items=..., patient='patient', session='session') gives the "
            "session-level coefficients (Shrout & Lane 2012)",
            NestedDataWarning, stacklevel=user_stacklevel(),
        )
    if inst.reversed:
        r = np.asarray(inst.reversed) - 1
        X[:, r] = (inst.scale[0] + inst.scale[1]) - X[:, r]
    all_scales = inst.scales
    if scales is None:
        scales = list(all_scales)
    unknown = [s for s in scales if s not in all_scales]
    if unknown:
        raise OptionError("scales", unknown[0] if len(unknown) == 1 else unknown, tuple(all_scales),
                          hint=f"the scales of {inst.name!r}")
    rows = []
    item_total = {}
    for s in scales:
        idx = np.asarray(all_scales[s]) - 1
        sub = X[:, idx]
        complete = ~np.isnan(sub).any(axis=1)
        Xc = sub[complete]
        n, k = Xc.shape
        row = {"scale": s, "n": n, "n_excluded": int((~complete).sum()), "n_items": k}
        if k < 2 or n < 3:
            row.update(alpha=np.nan, alpha_ci_low=np.nan, alpha_ci_high=np.nan, omega_total=np.nan, mean_r=np.nan,
                       item_total_min=np.nan, item_total_max=np.nan)
        else:
            sd = Xc.std(axis=0, ddof=1)
            if np.any(sd == 0):
                const = [cols[i] for i, z in zip(idx, sd) if z == 0]
                raise InsufficientDataError(
                    f"scale {s!r} of {inst.name!r}: item column(s) {const} do not vary in the "
                    f"{n} complete rows, so correlations are undefined; check the data or drop "
                    "the scale with scales=[...]"
                )
            a, lo, hi = cronbach_alpha(Xc, level)
            R = np.corrcoef(Xc, rowvar=False)
            rest = Xc.sum(axis=1, keepdims=True) - Xc
            r_drop = {cols[i]: float(np.corrcoef(Xc[:, j], rest[:, j])[0, 1]) for j, i in enumerate(idx)}
            item_total[s] = r_drop
            negative = {c: r for c, r in r_drop.items() if r < 0}
            if negative:
                number = {cols[i]: i + 1 for i in idx}
                shown = ", ".join(f"{c!r} (item {number[c]}, r = {r:.2f})" for c, r in negative.items())
                note = (" The key's reversals are provisional (not confirmed against the manual)." if inst.provenance == "provisional" else "")
                warnings.warn(
                    KeyReversalWarning(
                        f"scale {s!r} of {inst.name!r}: {shown} {'correlates' if len(negative) == 1 else 'correlate'} negatively with the rest of the scale "
                        f"(corrected item-total correlation < 0 in {n} complete rows). The key may lack a reversal of "
                        f"{'this item' if len(negative) == 1 else 'these items'}, or the data hold {'it' if len(negative) == 1 else 'them'} "
                        f"already reversed.{note} Check the item wording; register a key with the reversal "
                        "(als.register_instrument(..., replace=True)) if the item is negatively worded.",
                        instrument=inst.name, scale=s, items=negative,
                    ),
                    stacklevel=user_stacklevel(),
                )
            row.update(
                alpha=a,
                alpha_ci_low=lo,
                alpha_ci_high=hi,
                omega_total=omega_total(Xc),
                mean_r=float(R[np.triu_indices(k, 1)].mean()),
                item_total_min=min(r_drop.values()),
                item_total_max=max(r_drop.values()),
            )
        rows.append(row)
    return ReliabilityResult(table=pd.DataFrame(rows), instrument=inst.name, provenance=inst.provenance, items=list(cols),
                             item_total=item_total, level=float(level), n_rows=int(len(data)))


def pre_post(data: pd.DataFrame, score: str, *, patient: str = "patient", session: str = "session") -> pd.DataFrame:
    """Each patient's first and last score: the ``pre`` and ``post`` of :func:`reliable_change`.

    Parameters
    ----------
    data : DataFrame
        One row per patient x session (long), e.g. ``sessions.data`` from
        :func:`read_sessions`. Not modified.
    score : str
        The score column (e.g. ``phq9_total``).
    patient, session : str
        ID columns.

    Returns
    -------
    DataFrame
        One row per patient (in order of first appearance): ``patient, n_scores, pre_session,
        pre, post_session, post``: the first and last sessions with a score. A patient with one
        score has ``post`` missing (and is not classified by :func:`reliable_change`); a
        patient with none has both missing.

    Examples
    --------
    >>> import pandas as pd, alliance_stats as als
    >>> d = pd.DataFrame({"patient": ["a", "a", "a", "b"], "session": [1, 2, 3, 1], "phq": [20, 15, 9, 12]})
    >>> als.pre_post(d, "phq")[["patient", "pre", "post"]].to_dict("list")
    {'patient': ['a', 'b'], 'pre': [20.0, 12.0], 'post': [9.0, nan]}
    """
    require_frame(data)
    need_columns(data, {"score": score, "patient": patient, "session": session})
    sess = check_session_keys(data, [patient], session)
    d = pd.DataFrame({"patient": data[patient], "session": sess, "score": numeric_column(data, score)})
    order = pd.Index(d["patient"].dropna().unique())
    d = d.dropna(subset=["score"]).sort_values(["patient", "session"], kind="stable")
    g = d.groupby("patient", sort=False)
    out = pd.DataFrame({"n_scores": g.size(), "pre_session": g["session"].first(), "pre": g["score"].first(),
                        "post_session": g["session"].last(), "post": g["score"].last()}).reindex(order)
    one = out["n_scores"] < 2
    out.loc[one, ["post_session", "post"]] = np.nan
    out["n_scores"] = out["n_scores"].fillna(0).astype(int)
    for c in ("pre_session", "post_session"):
        out[c] = out[c].astype("Int64")
    return out.rename_axis(patient).reset_index()


@dataclass(eq=False, repr=False)
class ReliableChange(Result):
    """Result of :func:`reliable_change`.

    Attributes
    ----------
    table : DataFrame
        Aligned to the data's index: ``pre, post, change, rc, reliable, category``
        (``to_frame()`` returns a copy).
    se, s_diff, change_needed : float
        SE = SD_pre * sqrt(1 - r_xx), S_diff = sqrt(2) * SE, change needed = z * S_diff.
    sd, reliability, z : float
        The SD, r_xx and critical |RC| used.
    cutoff : float or None
        The clinical cut-off.
    higher_is_better : bool
    pre, post : str
        The columns the scores came from (axis labels of the plot).
    """

    title = "Reliable change (Jacobson & Truax, 1991)"

    table: pd.DataFrame
    se: float
    s_diff: float
    change_needed: float
    sd: float
    reliability: float
    z: float
    cutoff: float | None
    higher_is_better: bool
    pre: str
    post: str

    @property
    def n_not_classified(self) -> int:
        return int(self.table["category"].isna().sum())

    def counts(self) -> pd.DataFrame:
        """Patients per category: ``category, patients, percent`` (of those classified)."""
        n = self.table["category"].value_counts().reindex(RC_CATEGORIES, fill_value=0)
        tot = int(n.sum())
        return pd.DataFrame({"category": RC_CATEGORIES, "patients": n.to_numpy(int),
                             "percent": 100 * n.to_numpy(float) / tot if tot else np.nan})

    def _headline(self) -> str:
        c = self.counts().set_index("category")["patients"]
        return (f"{int(c.sum())} patients classified: " + ", ".join(f"{k} {int(v)}" for k, v in c.items())
                + f"; change needed {fmt_num(self.change_needed)}")

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def _tables(self) -> list:
        c = self.counts()
        c["percent"] = [fmt_pct(v) for v in c["percent"]]
        return [("Patients by category", c.astype(str))]

    def methods(self) -> str:
        c = self.counts().set_index("category")
        cut = (f" Recovered: a reliable improvement crossing the clinical cut-off {fmt_num(self.cutoff)} from the "
               "dysfunctional range." if self.cutoff is not None else "")
        found = "; ".join(f"{k} {int(r['patients'])} ({fmt_pct(r['percent'])}%)" for k, r in c.iterrows())
        return (
            f"Reliable change (Jacobson & Truax, 1991): RC = (post - pre) / S_diff, S_diff = √2 · SD_pre · √(1 - r_xx) "
            f"with SD = {fmt_num(self.sd)} and r_xx = {fmt_num(self.reliability, leading_zero=False)}; a change is "
            f"reliable when |RC| > {self.z:g}, i.e. at least {fmt_num(self.change_needed)} points.{cut} Of "
            f"{int(c['patients'].sum())} patients classified: {found}."
        )

    def accounting(self) -> pd.DataFrame:
        n = len(self.table)
        return accounting_frame("patients", n - self.n_not_classified, {"pre or post score missing": self.n_not_classified})

    def plot(self, *, ax=None):
        """Post against pre per patient, coloured by category, with the reliable-change band
        (:func:`~alliance_stats.plot_reliable_change`)."""
        from .plots.change import plot_reliable_change

        return plot_reliable_change(self, ax=ax)


def reliable_change(
    data: pd.DataFrame,
    *,
    reliability: float,
    pre: str = "pre",
    post: str = "post",
    sd: float | None = None,
    cutoff: float | None = None,
    higher_is_better: bool = True,
    z: float = 1.96,
) -> ReliableChange:
    """Reliable change index and clinical-significance category (Jacobson & Truax 1991).

    Parameters
    ----------
    data : DataFrame
        One row per patient, e.g. from :func:`pre_post` (each patient's first and last score).
        Not modified.
    pre, post : str
        Columns with the scores before and after treatment (default ``pre`` and ``post``, the
        columns of :func:`pre_post`).
    reliability : float
        Reliability of the measure, r_xx in (0, 1) (e.g. Cronbach's alpha or test-retest).
    sd : float, optional
        Standard deviation for the standard error; default the sample SD of ``pre``.
    cutoff : float, optional
        Clinical cut-off (e.g. cut-off c of :func:`clinical_cutoffs`); needed for
        ``recovered``.
    higher_is_better : bool
        True for alliance and well-being scores, False for symptom scores (PHQ-9, CORE-OM).
    z : float
        Critical |RC| (1.96 for p < .05).

    Returns
    -------
    ReliableChange
        ``.table`` (also ``to_frame()``), aligned to ``data.index``: ``pre``, ``post``,
        ``change`` (post - pre), ``rc``, ``reliable`` (bool), ``category`` (``recovered`` /
        ``improved`` / ``unchanged`` / ``deteriorated``; missing where pre or post is
        missing); ``se``, ``s_diff``, ``change_needed``; ``counts()`` per category,
        ``accounting()`` of the patients not classified, ``plot()`` (the Jacobson-Truax plot,
        drawn from the result).

    Notes
    -----
    SE = SD_pre * sqrt(1 - r_xx), S_diff = sqrt(2) * SE, RC = (post - pre) / S_diff,
    reliable when |RC| > z. Recovered: reliable improvement that crosses the cut-off, from a
    pre score in the dysfunctional range to a post score past it (above it when higher is
    better, below it otherwise); improved: reliable improvement only (including patients who
    began in the functional range); deteriorated: reliable worsening; otherwise unchanged.
    """
    require_frame(data)
    need_columns(data, {"pre": pre, "post": post})
    reliability = check_number("reliability", reliability, 0, 1, lo_open=True, hi_open=True,
                               hint="reliability must lie strictly between 0 and 1 (e.g. Cronbach's alpha)")
    z = check_number("z", z, 0, lo_open=True)
    if cutoff is not None:
        cutoff = check_number("cutoff", cutoff)
    check_option("higher_is_better", higher_is_better, (True, False))
    x0 = numeric_column(data, pre)
    x1 = numeric_column(data, post)
    if sd is None:
        sd = float(x0.std(ddof=1))
        if not np.isfinite(sd):
            raise InsufficientDataError(f"cannot estimate the SD of {pre!r} from fewer than 2 scores; pass sd=")
    sd = check_number("sd", sd, 0, lo_open=True, hint="sd must be positive")
    se = sd * np.sqrt(1 - reliability)
    sdiff = np.sqrt(2) * se
    change = x1 - x0
    rc = change / sdiff
    reliable = rc.abs() > z
    better = rc > z if higher_is_better else rc < -z
    worse = rc < -z if higher_is_better else rc > z
    cat = pd.Series("unchanged", index=data.index, dtype=object)
    cat[better] = "improved"
    if cutoff is not None:
        past = x1 > cutoff if higher_is_better else x1 < cutoff
        started = x0 <= cutoff if higher_is_better else x0 >= cutoff  # began in the dysfunctional range
        cat[better & past & started] = "recovered"
    cat[worse] = "deteriorated"
    missing = change.isna()
    cat[missing] = np.nan
    cats = RC_CATEGORIES
    out = pd.DataFrame(
        {
            "pre": x0,
            "post": x1,
            "change": change,
            "rc": rc,
            "reliable": reliable.where(~missing, False).astype(bool),
            "category": pd.Categorical(cat, categories=cats),
        },
        index=data.index,
    )
    return ReliableChange(table=out, se=float(se), s_diff=float(sdiff), change_needed=float(z * sdiff), sd=float(sd),
                          reliability=float(reliability), z=float(z), cutoff=cutoff, higher_is_better=bool(higher_is_better),
                          pre=str(pre), post=str(post))


def clinical_cutoffs(
    *,
    mean_dysfunctional: float,
    sd_dysfunctional: float,
    mean_functional: float,
    sd_functional: float,
    higher_is_better: bool = True,
) -> pd.DataFrame:
    """Jacobson & Truax (1991) clinical cut-offs a, b and c.

    a: two SDs beyond the dysfunctional mean, towards health; b: two SDs beyond the
    functional mean, towards dysfunction; c: the point between the two means weighted by
    their SDs, ``(SD_dys * M_func + SD_func * M_dys) / (SD_dys + SD_func)``.

    Returns
    -------
    DataFrame
        Index ``a, b, c``; columns ``value`` and ``definition``.
    """
    for nm, v in (("mean_dysfunctional", mean_dysfunctional), ("mean_functional", mean_functional)):
        check_number(nm, v)
    for nm, v in (("sd_dysfunctional", sd_dysfunctional), ("sd_functional", sd_functional)):
        check_number(nm, v, 0, lo_open=True, hint=f"{nm} must be positive")
    check_option("higher_is_better", higher_is_better, (True, False))
    sgn = 1 if higher_is_better else -1
    a = mean_dysfunctional + sgn * 2 * sd_dysfunctional
    b = mean_functional - sgn * 2 * sd_functional
    c = (sd_dysfunctional * mean_functional + sd_functional * mean_dysfunctional) / (
        sd_dysfunctional + sd_functional
    )
    s = "+" if higher_is_better else "-"
    t = "-" if higher_is_better else "+"
    return pd.DataFrame(
        {
            "value": [a, b, c],
            "definition": [
                f"M_dys {s} 2 SD_dys",
                f"M_func {t} 2 SD_func",
                "(SD_dys * M_func + SD_func * M_dys) / (SD_dys + SD_func)",
            ],
        },
        index=pd.Index(["a", "b", "c"], name="cutoff"),
    )


#: Shrout & Lane's (2012) coefficients: what each one is the reliability of.
ML_COEFFICIENTS = {
    "RkF": "between-patient differences, all sessions and items fixed",
    "R1R": "between-patient differences on one random session",
    "RkR": "between-patient differences on the average of random sessions",
    "Rc": "change within patients (sessions told apart)",
    "RkRn": "between-patient differences, average of sessions (nested model, items random)",
    "Rcn": "change within patients (nested model, items random)",
}


@dataclass(eq=False, repr=False)
class MultilevelReliability(Result):
    """Result of :func:`multilevel_reliability`.

    Attributes
    ----------
    coefficients : Series
        ``RkF, R1R, RkR, Rc, RkRn, Rcn`` (Shrout & Lane 2012; ``to_frame()`` as a table with
        what each measures).
    variance : Series
        The REML variance components: ``var_id, var_time, var_items, var_id_time,
        var_id_items, var_time_items, var_residual`` (crossed model) and ``var_nested_id,
        var_nested_id_time, var_nested_residual`` (nested model).
    items : list of str
        The item columns.
    n_patients, n_sessions, n_items, n_responses, n_missing : int
        Patients, distinct session numbers, items, item responses used and item responses
        left out because they are missing.
    """

    title = "Multilevel reliability (Shrout & Lane, 2012)"

    coefficients: pd.Series
    variance: pd.Series
    items: list
    n_patients: int
    n_sessions: int
    n_items: int
    n_responses: int
    n_missing: int

    def _headline(self) -> str:
        c = self.coefficients
        return (f"{self.n_items} items, {self.n_patients} patients, {self.n_sessions} sessions; "
                f"RkF = {fmt_num(c['RkF'], leading_zero=False)}, Rc = {fmt_num(c['Rc'], leading_zero=False)}")

    def to_frame(self) -> pd.DataFrame:
        """``coefficient, estimate, reliability_of``."""
        return pd.DataFrame({"coefficient": list(self.coefficients.index), "estimate": self.coefficients.to_numpy(float),
                             "reliability_of": [ML_COEFFICIENTS[k] for k in self.coefficients.index]})

    def to_apa(self, digits: int | None = None) -> pd.DataFrame:
        return format_frame(self.to_frame(), digits=2 if digits is None else int(digits), bounded=("estimate",), na="NA")

    def _tables(self) -> list:
        v = pd.DataFrame({"component": list(self.variance.index), "variance": self.variance.to_numpy(float)})
        return [("Variance components (REML)", format_frame(v, digits=3, na="NA"))]

    def methods(self) -> str:
        c = {k: fmt_num(v, leading_zero=False) for k, v in self.coefficients.items()}
        miss = f"; {self.n_missing} missing item responses were left out" if self.n_missing else ""
        return (
            f"The reliability of the {self.n_items}-item scale measured at every session was estimated with Shrout and "
            "Lane's (2012) generalizability coefficients, from REML variance components of the item responses: patient, "
            "session, item and their two-way interactions as crossed random effects, and sessions nested within "
            "patients (as R's psych::multilevel.reliability with lmer). The data were "
            f"{self.n_responses} item responses of {self.n_patients} patients over {self.n_sessions} session numbers{miss}. "
            f"The reliability of between-patient differences was RkF = {c['RkF']} with all sessions and items fixed, "
            f"R1R = {c['R1R']} for one random session and RkR = {c['RkR']} for the average of random sessions; the "
            f"reliability of change within patients (telling a patient's sessions apart) was Rc = {c['Rc']}. From the "
            f"nested model (items random), RkRn = {c['RkRn']} and Rcn = {c['Rcn']}."
        )

    def accounting(self) -> pd.DataFrame:
        return accounting_frame("item responses", self.n_responses, {"missing": self.n_missing})


def multilevel_reliability(data: pd.DataFrame, *, items, patient: str = "patient", session: str = "session") -> MultilevelReliability:
    """Reliability of a scale measured at every session: Shrout & Lane's (2012) generalizability
    coefficients, as ``psych::multilevel.reliability(..., lmer = TRUE, lme = FALSE)``.

    Pooled alpha over session rows treats them as independent and says nothing about how well
    the scale tells a patient's sessions apart, which is what within-patient analyses need. The
    coefficients come from variance components of item responses (REML, :func:`lmm`): patient,
    session, item and their two-way interactions, crossed; and patient / session within patient
    / residual, nested.

    Parameters
    ----------
    data : DataFrame
        One row per patient and session, one column per item (already keyed: reverse-scored items
        reversed). Not modified.
    items : list of str
        The item columns.
    patient, session : str
        ID and session-number columns.

    Returns
    -------
    MultilevelReliability
        ``.coefficients`` (also ``to_frame()``): ``RkF`` (between-patient differences, all
        sessions and items fixed), ``R1R`` (one random session), ``RkR`` (the average of the
        sessions, random sessions), ``Rc`` (change within patients: sessions told apart),
        ``RkRn`` and ``Rcn`` (the same from the nested model, items random); ``n_patients``,
        ``n_sessions`` (distinct session numbers), ``n_items``, ``n_responses`` and
        ``n_missing`` (item responses left out because they are missing, in ``accounting()``);
        ``.variance``, the variance components (``var_*``); ``methods()``, a methods paragraph.

    Examples
    --------
    >>> import alliance_stats as als
    >>> d = als.read_sessions(als.sample_path("sessions_csv"), patient="client_id", session="session_no",
    ...                       therapist="therapist_id")  # doctest: +SKIP
    >>> als.multilevel_reliability(d, items=[f"WAISR_{i}" for i in range(1, 13)]).coefficients  # doctest: +SKIP
    """
    from .models.lmm import lmm

    require_frame(data)
    if isinstance(items, str) or not hasattr(items, "__iter__"):
        raise OptionError("items", items, (), hint="give a list of the item columns")
    items = list(items)
    if len(items) < 2 or len(set(items)) != len(items):
        raise OptionError("items", items, (), hint="give at least two different item columns")
    need_columns(data, {"patient": patient, "session": session, **{f"items[{i}]": c for i, c in enumerate(items)}})
    values = np.column_stack([numeric_column(data, c) for c in items])
    n_rows = len(data)
    long = pd.DataFrame({
        "id": np.repeat(data[patient].astype(str).to_numpy(), len(items)),
        "time": np.repeat(data[session].astype(str).to_numpy(), len(items)),
        "items": np.tile(np.asarray(items, dtype=object), n_rows),
        "values": values.ravel(),
    })
    missing = int(long["values"].isna().sum())
    long = long.dropna(subset=["values"])
    n_id, n_time, n_items = long["id"].nunique(), long["time"].nunique(), len(items)
    if n_id < 2 or n_time < 2:
        raise InsufficientDataError(
            f"multilevel reliability needs at least two patients and two sessions; found {n_id} patient(s) "
            f"({patient!r}) and {n_time} session(s) ({session!r})")
    crossed = lmm("values ~ 1 + (1 | id) + (1 | time) + (1 | items) + (1 | id:time) + (1 | id:items) + (1 | items:time)",
                  long, df_method="z")
    nested = lmm("values ~ 1 + (1 | id/time)", long, df_method="z")

    def comp(fit, group):
        r = fit.random
        return float(r.loc[(r["group"] == group) & r["term2"].isna(), "variance"].iloc[0])

    v_id, v_time, v_items = comp(crossed, "id"), comp(crossed, "time"), comp(crossed, "items")
    v_pt, v_pi, v_ti, err = comp(crossed, "id:time"), comp(crossed, "id:items"), comp(crossed, "items:time"), crossed.sigma**2
    n_vid, n_vt, n_res = comp(nested, "id"), comp(nested, "id:time"), nested.sigma**2
    person = v_id + v_pi / n_items
    coef = {
        "RkF": person / (person + err / (n_time * n_items)),
        "R1R": person / (person + v_time + v_pt + err / n_items),
        "RkR": person / (person + v_time / n_time + v_pt / n_time + err / (n_time * n_items)),
        "Rc": v_pt / (v_pt + err / n_items),
        "RkRn": n_vid / (n_vid + n_vt / n_time + n_res / (n_time * n_items)),
        "Rcn": n_vt / (n_vt + n_res / n_items),
    }
    var = {
        "var_id": v_id, "var_time": v_time, "var_items": v_items, "var_id_time": v_pt, "var_id_items": v_pi,
        "var_time_items": v_ti, "var_residual": err,
        "var_nested_id": n_vid, "var_nested_id_time": n_vt, "var_nested_residual": n_res,
    }
    return MultilevelReliability(
        coefficients=pd.Series(coef, name="estimate", dtype=float), variance=pd.Series(var, name="variance", dtype=float),
        items=items, n_patients=int(n_id), n_sessions=int(n_time), n_items=int(n_items), n_responses=int(len(long)),
        n_missing=missing)
