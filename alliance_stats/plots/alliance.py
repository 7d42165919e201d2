"""Alliance-outcome figures: within/between effects, therapist effects, trajectories."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt

from ..exceptions import ArgumentError, ColumnError, InsufficientDataError, OptionError
from ..validation import need_columns
from ._style import (
    ACCENT,
    INK,
    MUTED,
    OKABE_ITO,
    _few_ticks,
    _integer_ticks,
    score_label,
)


def plot_within_between(result, *, ax=None, standardized: bool = False, color: str = ACCENT):
    """Within- vs between-patient (and therapist-level) alliance effects with 95% CIs.

    ``result`` is an :class:`AllianceOutcomeResult` (or a :class:`TherapistEffectsResult`, whose
    therapist and patient rows are drawn). One point and interval per level, a dashed zero line;
    ``standardized=True`` draws the standardized estimates.
    """
    eff = getattr(result, "effects", None)
    if eff is None or "level" not in eff:
        raise ArgumentError("plot_within_between() takes the result of als.alliance_outcome() or als.therapist_effects(), "
                            f"got {type(result).__name__}")
    eff = eff[eff["term"] != "difference"]
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 0.8 + 0.5 * len(eff)))
    cols = ("std_estimate", "std_ci_low", "std_ci_high") if standardized else ("estimate", "ci_low", "ci_high")
    est, lo, hi = (eff[c].to_numpy(float) for c in cols)
    yv = np.arange(len(eff))[::-1]
    ax.errorbar(est, yv, xerr=[est - lo, hi - est], fmt="o", color=color, ecolor=color, capsize=4, ms=6)
    ax.axvline(0, color=MUTED, lw=0.8, ls="--")
    ax.set_yticks(yv)
    ax.set_yticklabels(eff["level"])
    ax.set_ylim(-0.6, len(eff) - 0.4)
    resp = getattr(result, "response", "outcome")
    _few_ticks(ax.xaxis)
    ax.set_xlabel(("Standardized effect" if standardized else f"Effect on {score_label(resp)}") + " (95% CI)")
    return ax


def plot_therapist_effects(model, *, ax=None, group: str | None = None, term: str = "Intercept", level: float = 0.95,
                           color: str = ACCENT):
    """Caterpillar plot of random effects (e.g. therapist intercepts) with conditional intervals.

    ``model`` is an :class:`LMMResult` (or anything with ``.model``); ``group`` the grouping
    factor (default: the coarsest one, e.g. the therapists). Groups are sorted by their
    estimate; intervals are estimate +/- z x conditional SD.
    """
    from scipy import stats

    m = getattr(model, "model", model)
    if not callable(getattr(m, "random_effects", None)):
        raise ArgumentError("plot_therapist_effects() takes a fitted mixed model (als.lmm(), or a result with .model such as "
                            f"als.therapist_effects()), got {type(model).__name__}")
    re = m.random_effects()
    group = group or list(m.n_groups)[0]
    sel = re[(re["group"] == group) & (re["term"] == term)]
    if sel.empty:
        groups = sorted(set(re["group"]))
        if group not in groups:
            raise OptionError("group", group, groups)
        raise OptionError("term", term, sorted(set(re.loc[re["group"] == group, "term"])),
                          hint=f"the random-effect terms of {group!r}")
    sel = sel.sort_values("estimate").reset_index(drop=True)
    z = stats.norm.ppf(0.5 + level / 2)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, max(2.5, 0.18 * len(sel) + 1)))
    x = np.arange(len(sel))
    ax.errorbar(sel["estimate"], x, xerr=z * sel["cond_sd"], fmt="o", ms=3, color=color, ecolor=MUTED, capsize=0)
    ax.axvline(0, color=INK, lw=0.8, ls="--")
    ax.set_yticks(x)
    ax.set_yticklabels(sel["level"].astype(str), fontsize=7)
    ax.set_ylabel(score_label(group))
    ax.set_xlabel(f"{term} deviation ({int(round(level * 100))}% interval)")
    return ax



def _mean_band(d: pd.DataFrame, x: str, y: str, level: float) -> pd.DataFrame:
    """Mean of ``y`` per ``x`` with a t-based confidence band (NaN where n < 2)."""
    from scipy import stats as st

    g = d.groupby(x)[y].agg(["mean", "std", "count"])
    half = st.t.ppf(0.5 + level / 2, np.maximum(g["count"] - 1, 1)) * g["std"] / np.sqrt(g["count"])
    g["low"] = g["mean"] - half.where(g["count"] > 1)
    g["high"] = g["mean"] + half.where(g["count"] > 1)
    return g


def _trajectory_rows(data: pd.DataFrame, y: str, patient: str, session: str, groupers: dict) -> pd.DataFrame:
    """The rows to draw (``y`` and ``session`` present), checking the patient-level grouping
    columns ``groupers`` ({role: column}): present for every patient and constant within one."""
    roles = {"y": y, "patient": patient, "session": session, **groupers}
    need_columns(data, {k: c for k, c in roles.items() if c})
    cols = [y, patient, session] + [c for c in groupers.values() if c]
    d = data[list(dict.fromkeys(cols))].dropna(subset=[y, session]).copy()
    if d.empty:
        raise InsufficientDataError(f"no rows with both {y!r} and {session!r}; nothing to plot")
    for c in groupers.values():
        if c:
            if d[c].isna().any():
                miss = d.loc[d[c].isna(), patient].unique().tolist()
                raise ColumnError(
                    f"{c!r} is missing for patient(s) {miss[:5]}{' ...' if len(miss) > 5 else ''}; their lines would not be "
                    f"drawn. Give them a value (e.g. 'unknown') or leave them out of the data first."
                )
            n = d.groupby(patient)[c].nunique()
            if (n > 1).any():
                raise ColumnError(
                    f"{c!r} must be constant within a patient to group trajectories; it changes for patient(s) "
                    f"{n[n > 1].index.tolist()[:5]}. Use a patient-level column (e.g. improved vs not improved)."
                )
    return d


def plot_trajectories(data: pd.DataFrame, y: str, *, patient: str = "patient", session: str = "session",
                      hue: str | None = None, level: float = 0.95, min_n: int = 5, max_patients: int | None = None,
                      ax=None, palette=None, seed: int = 0, col=None):
    """Session-by-session trajectories: one thin line per patient, the mean with a 95% band.

    An axes-level plot; :func:`trajectories_grid` draws one panel per value of a column.

    Parameters
    ----------
    data : DataFrame
        One row per patient x session (e.g. from :func:`read_sessions`). Not modified.
    y : str
        Column to draw (an alliance or outcome score); the axis is labelled with
        :func:`score_label` (``wai_sr_total`` -> ``WAI-SR total``).
    hue : str, optional
        Patient-level grouping column (e.g. improved vs not improved): one colour, one mean line
        and band per group. A patient whose ``hue`` value changes across sessions is an error.
    level : float
        Confidence level of the band around the mean (t-based, per session).
    min_n : int
        The mean and band are drawn only at sessions with at least ``min_n`` patients, so a
        handful of long treatments does not make a ragged tail.
    max_patients : int, optional
        Draw the thin lines of at most this many patients (a seeded random subset; the means
        still use every patient).
    ax : Axes, optional
        Drawn into; a new figure otherwise.
    col : None
        Not taken here: facets are drawn by :func:`trajectories_grid` (an error names it).

    Returns
    -------
    Axes
    """
    if col is not None:
        raise ArgumentError(f"plot_trajectories() draws one Axes; for one panel per value of col={col!r} use "
                            f"als.trajectories_grid(data, {y!r}, col={col!r}), which returns a seaborn FacetGrid")
    d = _trajectory_rows(data, y, patient, session, {"hue": hue})
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.5))
    groups = [(None, d)] if hue is None else list(d.groupby(hue, sort=True, observed=True))
    colors = palette or (OKABE_ITO if hue is not None else [ACCENT])
    keep = d[patient].unique()
    if max_patients is not None and len(keep) > max_patients:
        keep = np.random.default_rng(seed).choice(keep, size=max_patients, replace=False)
    keep = set(keep.tolist())
    for i, (key, g) in enumerate(groups):
        c = colors[i % len(colors)]
        for pid, s in g.groupby(patient, sort=False):
            if pid in keep:
                s = s.sort_values(session)
                ax.plot(s[session], s[y], color=c, lw=0.5, alpha=0.25, zorder=1)
        m = _mean_band(g, session, y, level)
        m = m[m["count"] >= min_n]
        lab = "mean" if key is None else f"{key} (n = {g[patient].nunique()})"
        ax.plot(m.index, m["mean"], color=c, lw=2.2, zorder=3, label=lab)
        ax.fill_between(m.index, m["low"], m["high"], color=c, alpha=0.25, lw=0, zorder=2)
    _integer_ticks(ax.xaxis)
    ax.set_xlabel(score_label(session))
    ax.set_ylabel(score_label(y))
    if hue is not None:
        ax.legend(frameon=False, fontsize=8, title=score_label(hue), title_fontsize=8)
    for s in ("right", "top"):
        ax.spines[s].set_visible(False)
    return ax


def trajectories_grid(data: pd.DataFrame, y: str, *, col: str, patient: str = "patient", session: str = "session",
                      hue: str | None = None, level: float = 0.95, min_n: int = 5, max_patients: int | None = None,
                      palette=None, seed: int = 0, col_wrap: int = 3, height: float = 2.8):
    """Trajectories in one panel per value of ``col`` (e.g. the trajectory ``pattern`` from
    :func:`alliance_trajectories`), each drawn as :func:`plot_trajectories` draws one.

    Parameters
    ----------
    col : str
        Patient-level facet column; a patient whose value changes across sessions is an error.
    col_wrap : int
        Panels per row.
    height : float
        Height of each panel in inches.

    The other parameters are those of :func:`plot_trajectories`.

    Returns
    -------
    seaborn.FacetGrid
        Panels titled ``value (n = patients)``, sharing the y axis.
    """
    import seaborn as sns

    d = _trajectory_rows(data, y, patient, session, {"col": col, "hue": hue})
    order = sorted(d[col].dropna().unique(), key=str)
    grid = sns.FacetGrid(d, col=col, col_order=order, col_wrap=min(col_wrap, len(order)), sharey=True, height=height)
    for key, a in grid.axes_dict.items():
        sub = d[d[col] == key]
        plot_trajectories(sub, y, patient=patient, session=session, hue=hue, level=level, min_n=min_n,
                          max_patients=max_patients, ax=a, palette=palette, seed=seed)
        a.set_title(f"{key} (n = {sub[patient].nunique()})", fontsize=10)
    grid.set_axis_labels(score_label(session), score_label(y))
    return grid


def plot_coefficients(table: pd.DataFrame, *, ax=None, estimate: str = "estimate", low: str = "ci_low", high: str = "ci_high",
                      term: str = "term", reference: float = 0.0, log: bool = False, xlabel: str = "estimate (95% CI)"):
    """Coefficient plot: one point and interval per row of ``table`` (a model's fixed effects),
    top to bottom in table order, with a dashed line at ``reference`` (0, or 1 for ratios on a
    log axis, ``log=True``). Returns the Axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 0.5 + 0.4 * max(len(table), 1)))
    est, lo, hi = (table[c].to_numpy(float) for c in (estimate, low, high))
    yv = np.arange(len(table))[::-1]
    ax.errorbar(est, yv, xerr=[est - lo, hi - est], fmt="o", color="k", capsize=3)
    ax.axvline(reference, color="0.6", lw=0.8, ls="--")
    if log:
        ax.set_xscale("log")
    ax.set_yticks(yv)
    ax.set_yticklabels(table[term])
    ax.set_xlabel(xlabel)
    return ax
