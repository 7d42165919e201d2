"""Figures for papers. Axes-level functions take ``ax=None`` and return the Axes."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.patches import Polygon
from matplotlib.text import OffsetFrom
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory

from .exceptions import ArgumentError, ColumnError, InsufficientDataError, MetaAnalysisError, OptionError
from .validation import check_number, check_option, need_columns

__all__ = ["forest_plot", "funnel_plot", "plot_pqs_profile", "plot_transitions", "plot_patient_series", "plot_rupture_profile", "rupture_profile",
           "plot_within_between", "plot_therapist_effects", "plot_trajectories", "plot_reliable_change", "set_theme", "save_figure",
           "score_label"]

INK = "#222222"
ACCENT = "#0072B2"  # Okabe-Ito blue (colour-blind safe)
MUTED = "#999999"

# ----------------------------------------------------------------------------------------
# Axis labels

#: Names of the package's canonical columns on an axis.
COLUMN_LABELS = {"session": "Session", "patient": "Patient", "therapist": "Therapist", "rater": "Rater"}
#: Column-name endings read as a time point: ``phq9_total_pre`` -> ``PHQ-9 total (pre)``.
SUFFIX_LABELS = {"_pre": "pre", "_post": "post", "_baseline": "baseline", "_first": "first", "_last": "last"}
_RATER_FORMS = ("client", "therapist", "observer", "patient")


def _instrument_short_name(name: str) -> str:
    """'phq-9' -> 'PHQ-9', 'wai-36-client' -> 'WAI-36 (client)'."""
    for form in _RATER_FORMS:
        if name.endswith("-" + form):
            return f"{name[: -len(form) - 1].upper()} ({form})"
    return name.upper()


def _score_labels() -> dict:
    from .instruments import get_instrument, instruments

    out = {}
    for name in instruments()["name"]:
        inst = get_instrument(name)
        short = _instrument_short_name(inst.name)
        for scale in inst.scales:
            out[f"{inst.prefix}_{scale}"] = f"{short} {scale.replace('_', ' ')}"
    return out


def score_label(column) -> str:
    """The display name of a column for an axis label.

    Score columns of registered instruments get the instrument's name and the scale
    (``phq9_total`` -> ``PHQ-9 total``, ``wai_sr_task`` -> ``WAI-SR task``, ``calpas_t_total`` ->
    ``CALPAS-T total``), also with a time-point ending (``phq9_total_pre`` -> ``PHQ-9 total
    (pre)``); the canonical columns are capitalised (``session`` -> ``Session``); any other name
    is returned as it is.

    Examples
    --------
    >>> score_label("phq9_total"), score_label("wai_sr_total_post"), score_label("my_scale")
    ('PHQ-9 total', 'WAI-SR total (post)', 'my_scale')
    """
    col = str(column)
    if col in COLUMN_LABELS:
        return COLUMN_LABELS[col]
    known = _score_labels()
    if col in known:
        return known[col]
    for end, when in SUFFIX_LABELS.items():
        if col.endswith(end) and col[: -len(end)] in known:
            return f"{known[col[: -len(end)]]} ({when})"
    return col


def _integer_ticks(axis) -> None:
    """Ticks at whole numbers only (sessions): 1, 2 ... or 5, 10 ..., never 2.5, 7.5."""
    axis.set_major_locator(MaxNLocator(nbins="auto", integer=True))


def _few_ticks(axis, nbins: int = 5) -> None:
    """At most ``nbins`` intervals at 1, 2 or 5 x 10^k, so that tick labels of small effects
    (-0.15, -0.10 ...) do not run into each other."""
    axis.set_major_locator(MaxNLocator(nbins=nbins, steps=[1, 2, 5, 10]))


def _diamond(ax, y, lo, est, hi, color, h=0.35):
    ax.add_patch(Polygon([[lo, y], [est, y + h], [hi, y], [est, y - h]], closed=True, facecolor=color, edgecolor=color, zorder=3))


def _meta_result(result, what: str, cls) -> None:
    if not isinstance(result, cls):
        raise ArgumentError(f"{what} takes the result of als.meta_analysis(), got {type(result).__name__}")


def forest_plot(
    result,
    ax=None,
    *,
    group: str | None = None,
    sort: str | None = None,
    show_pi: bool = True,
    label_header: str = "Study",
    xlabel: str | None = None,
    xlim=None,
    color: str = ACCENT,
):
    """Forest plot in the style of published alliance meta-analyses.

    One row per effect size with its label, n and ``r [95% CI]`` as text columns and a square
    sized by its weight, then the pooled diamond with the prediction interval as a line
    through it. With ``group`` (a column of the data given to :func:`meta_analysis`), rows
    are grouped with a subgroup diamond (the same model fitted within each group).

    Parameters
    ----------
    result : MetaResult
    ax : Axes, optional
        Drawn into; a new figure sized to the number of rows otherwise.
    group : str, optional
        Moderator column to group by.
    sort : {"estimate", "weight", None}
        Order of the rows within each group (default: data order).
    show_pi : bool
        Draw the prediction interval.

    Returns
    -------
    Axes
    """
    from .models.meta import MetaResult, meta_analysis

    _meta_result(result, "forest_plot()", MetaResult)
    if result.three_level or result.qm is not None:
        raise MetaAnalysisError("the forest plot shows intercept-only models without clusters; fit one with meta_analysis(...)")
    check_option("sort", sort, ("estimate", "weight", None))
    t = result.table.copy()
    is_r = result.measure == "r"
    back = np.tanh if is_r else (lambda x: x)
    t["est"] = back(t["yi"])
    data = result._inputs.get("data")
    if group is not None:
        if data is None or group not in data.columns:
            raise ColumnError(f"group={group!r} is not a column of the data given to meta_analysis")
        t["group"] = data[group].astype(str).to_numpy()
    else:
        t["group"] = ""
    if sort in ("estimate", "weight"):
        t = t.sort_values(["group", "est" if sort == "estimate" else "weight"], ascending=[True, False], kind="stable")
    elif group is not None:
        t = t.sort_values("group", kind="stable")

    rows = []  # (kind, payload)
    for g, sub in t.groupby("group", sort=False):
        if group is not None:
            rows.append(("header", g))
        rows += [("study", r) for _, r in sub.iterrows()]
        if group is not None and len(sub) >= 2:
            sg = meta_analysis(yi=sub["yi"].to_numpy(), vi=sub["vi"].to_numpy(), method=result.method, test=result.test, level=result.level)
            rows.append(("subgroup", (g, len(sub), back(sg.z), back(sg._fit["ci_lb"][0]), back(sg._fit["ci_ub"][0]))))
    n_rows = len(rows) + 2
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 0.28 * n_rows + 1.3))
    trans = blended_transform_factory(ax.transAxes, ax.transData)
    wmax = t["weight"].max()
    y = n_rows
    lv = int(round(result.level * 100))
    has_n = is_r and "n" in t and t["n"].notna().all()
    ax.text(-0.02, y, label_header, transform=trans, ha="right", va="center", fontweight="bold", fontsize=9)
    if has_n:
        ax.text(1.04, y, "n", transform=trans, ha="left", va="center", fontweight="bold", fontsize=9)
    ax.text(1.17, y, f"{'r' if is_r else 'Estimate'} [{lv}% CI]", transform=trans, ha="left", va="center", fontweight="bold", fontsize=9)
    ax.text(1.62, y, "Weight", transform=trans, ha="left", va="center", fontweight="bold", fontsize=9)
    y -= 1
    for kind, p in rows:
        y -= 1
        if kind == "header":
            ax.text(-0.02, y, p, transform=trans, ha="right", va="center", fontstyle="italic", fontsize=9)
        elif kind == "study":
            ax.plot([p["ci_low"], p["ci_high"]], [y, y], color=INK, lw=0.9, zorder=2)
            ax.scatter([p["est"]], [y], marker="s", s=12 + 90 * p["weight"] / wmax, color=color, zorder=3)
            ax.text(-0.02, y, p["label"], transform=trans, ha="right", va="center", fontsize=8)
            if has_n:
                ax.text(1.04, y, f"{int(round(p['n']))}", transform=trans, ha="left", va="center", fontsize=8)
            ax.text(1.17, y, f"{p['est']:.2f} [{p['ci_low']:.2f}, {p['ci_high']:.2f}]", transform=trans, ha="left", va="center", fontsize=8)
            ax.text(1.62, y, f"{p['weight']:.1f}%", transform=trans, ha="left", va="center", fontsize=8)
        else:
            g, k, est, lo, hi = p
            _diamond(ax, y, lo, est, hi, MUTED)
            ax.text(-0.02, y, f"Subtotal {g} (k = {k})", transform=trans, ha="right", va="center", fontsize=8, fontstyle="italic")
            ax.text(1.17, y, f"{est:.2f} [{lo:.2f}, {hi:.2f}]", transform=trans, ha="left", va="center", fontsize=8, fontstyle="italic")
    y -= 1.5
    _diamond(ax, y, result.ci[0], result.estimate, result.ci[1], INK)
    if show_pi and result.method != "FE":
        ax.plot([result.pi[0], result.pi[1]], [y, y], color=INK, lw=1.2, zorder=2)
        ax.plot([result.pi[0]] * 2 + [np.nan] + [result.pi[1]] * 2, [y - 0.15, y + 0.15, np.nan, y - 0.15, y + 0.15], color=INK, lw=1.2)
    model = "FE model" if result.method == "FE" else f"RE model ({result.method})"
    ax.text(-0.02, y, f"{model}, k = {result.k}; I² = {result.i2:.0f}%", transform=trans, ha="right", va="center", fontsize=8.5, fontweight="bold")
    ax.text(1.17, y, f"{result.estimate:.2f} [{result.ci[0]:.2f}, {result.ci[1]:.2f}]", transform=trans, ha="left", va="center", fontsize=8.5, fontweight="bold")
    ax.axvline(0, color=MUTED, lw=0.8, ls="--", zorder=1)
    ax.axvline(result.estimate, color=INK, lw=0.6, ls=":", zorder=1)
    ax.set_ylim(y - 1, n_rows + 0.7)
    ax.set_yticks([])
    for s in ("left", "right", "top"):
        ax.spines[s].set_visible(False)
    if xlim is not None:
        ax.set_xlim(xlim)
    ax.set_xlabel(xlabel or ("Correlation (r)" if is_r else "Effect size"))
    if ax.figure is not None:
        ax.figure.subplots_adjust(left=0.3, right=0.58)
    return ax


def funnel_plot(
    result,
    ax=None,
    *,
    contours: bool = False,
    levels=(0.90, 0.95, 0.99),
    trim_and_fill: bool = False,
    color: str = ACCENT,
):
    """Funnel plot: effect sizes (analysis scale: Fisher z for correlations) against their
    standard errors, the SE axis inverted.

    Parameters
    ----------
    result : MetaResult
    ax : Axes, optional
    contours : bool
        Contour-enhanced funnel (Peters et al. 2008): shaded regions of significance around
        zero at ``levels``; otherwise the pseudo-confidence triangle around the pooled estimate.
    trim_and_fill : bool
        Add the studies imputed by :meth:`MetaResult.trim_and_fill` as open circles.

    Returns
    -------
    Axes
    """
    from scipy import stats

    from .models.meta import MetaResult

    _meta_result(result, "funnel_plot()", MetaResult)
    if result.three_level or result.qm is not None:
        raise MetaAnalysisError("the funnel plot is drawn for intercept-only models without clusters; fit one with "
                                "meta_analysis(...) without moderators= and cluster=")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4.5))
    y = result.table["yi"].to_numpy()
    se = np.sqrt(result.table["vi"].to_numpy())
    se_max = se.max() * 1.08
    grid = np.linspace(0, se_max, 100)
    if contours:
        lv_sorted = sorted(levels, reverse=True)  # widest region first, narrower ones on top
        shades = ["#bdbdbd", "#d9d9d9", "#f0f0f0", "#f7f7f7"]
        for j, lv in enumerate(lv_sorted):
            zc = stats.norm.ppf(1 - (1 - lv) / 2)
            alpha_hi = 1 - lv
            if j + 1 < len(lv_sorted):
                label = f"{alpha_hi:.2f} < p < {1 - lv_sorted[j + 1]:.2f}"
            else:
                label = f"p > {alpha_hi:.2f}"
            ax.fill_betweenx(grid, -zc * grid, zc * grid, color=shades[j % len(shades)], zorder=0, label=label)
        ax.axvline(0, color=MUTED, lw=0.8)
    else:
        zc = stats.norm.ppf(1 - (1 - result.level) / 2)
        ax.plot(result.z - zc * grid, grid, color=MUTED, lw=0.9, ls="--")
        ax.plot(result.z + zc * grid, grid, color=MUTED, lw=0.9, ls="--")
    ax.axvline(result.z, color=INK, lw=0.9)
    ax.scatter(y, se, s=22, color=color, edgecolor="white", linewidth=0.4, zorder=3, label="studies")
    if trim_and_fill:
        tf = result.trim_and_fill()
        filled = tf.table[tf.table["filled"]]
        if len(filled):
            ax.scatter(filled["yi"], np.sqrt(filled["vi"]), s=22, facecolor="white", edgecolor=INK, zorder=3, label=f"filled (k0 = {tf.k0})")
            ax.axvline(tf.z, color=INK, lw=0.9, ls=":")
    ax.set_ylim(se_max, 0)
    ax.set_xlabel("Fisher's z" if result.measure == "r" else "Effect size")
    ax.set_ylabel("Standard error")
    if contours or trim_and_fill:
        ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for s in ("right", "top"):
        ax.spines[s].set_visible(False)
    return ax


def plot_pqs_profile(items: pd.DataFrame, ax=None, *, n_label: int = 5, color: str = ACCENT):
    """PQS items ranked by mean pile, the most and least characteristic labelled.

    Parameters
    ----------
    items : DataFrame
        From :func:`pqs_items` (one group: pass ``items[items.therapy == "CBT"]`` for one).
    n_label : int
        How many items to label at each end.

    Returns
    -------
    Axes
    """
    need = {"item_number", "mean", "rank"}
    if not need <= set(items.columns):
        raise ColumnError(f"items must come from als.pqs_items() (columns {sorted(need)})")
    if items["item_number"].duplicated().any():
        raise ArgumentError("items hold several groups; select one group (e.g. items[items.therapy == 'CBT'])")
    d = items.sort_values("mean", ascending=False, kind="stable").reset_index(drop=True)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.8))
    x = np.arange(1, len(d) + 1)
    ax.vlines(x, 5, d["mean"], color=MUTED, lw=0.8)
    ax.scatter(x, d["mean"], s=10, color=color, zorder=3)
    if "sd" in d and d["sd"].notna().all():
        ax.fill_between(x, d["mean"] - d["sd"], d["mean"] + d["sd"], color=color, alpha=0.12, lw=0)
    ax.axhline(5, color=INK, lw=0.8)
    # item numbers in a row in the top-left (most characteristic) and bottom-right (least) corners,
    # a fixed number of points apart whatever the figure's size, each joined to its item by a line
    top = list(range(min(n_label, len(d))))
    bottom = list(range(max(len(d) - n_label, len(top)), len(d)))
    step, inset = 14, 18
    line = dict(arrowstyle="-", color=MUTED, lw=0.5, shrinkA=1, shrinkB=3)
    for j, i in enumerate(top):
        ax.annotate(f"{int(d.loc[i, 'item_number'])}", (x[i], d.loc[i, "mean"]), xytext=(inset + step * j, -3),
                    textcoords=OffsetFrom(ax, (0, 1), unit="points"), ha="center", va="top", fontsize=7, arrowprops=line)
    for j, i in enumerate(bottom):
        ax.annotate(f"{int(d.loc[i, 'item_number'])}", (x[i], d.loc[i, "mean"]), xytext=(-inset - step * (len(bottom) - 1 - j), 3),
                    textcoords=OffsetFrom(ax, (1, 0), unit="points"), ha="center", va="bottom", fontsize=7, arrowprops=line)
    ax.set_xlim(0, len(d) + 1)
    ax.set_ylim(1, 9)
    ax.set_xlabel("PQS items ranked by mean pile")
    ax.set_ylabel("Mean pile (1 = uncharacteristic, 9 = characteristic)")
    for s in ("right", "top"):
        ax.spines[s].set_visible(False)
    return ax


def plot_transitions(result, ax=None, *, annotate: bool = True, cmap: str = "Blues", show_counts: bool = False):
    """Heatmap of transition probabilities (rows: from, columns: to).

    Parameters
    ----------
    result : TransitionResult
        From :func:`transitions`.
    annotate : bool
        Write each probability (and the count with ``show_counts``) in its cell.

    Returns
    -------
    Axes
    """
    P = result.probabilities
    if ax is None:
        side = 1.1 + 0.9 * len(P)
        _, ax = plt.subplots(figsize=(side + 1.2, side))
    im = ax.imshow(P.to_numpy(dtype=float), cmap=cmap, vmin=0, vmax=1)
    ax.set_xticks(range(len(P.columns)), [str(c) for c in P.columns], rotation=90)
    ax.set_yticks(range(len(P.index)), [str(c) for c in P.index])
    ax.set_xlabel("To (next session)")
    ax.set_ylabel("From")
    if annotate:
        C = result.counts.to_numpy()
        for i in range(P.shape[0]):
            for j in range(P.shape[1]):
                v = P.iat[i, j]
                txt = "–" if not np.isfinite(v) else f"{v:.2f}" + (f"\n(n={C[i, j]})" if show_counts else "")
                ax.text(j, i, txt, ha="center", va="center", fontsize=8, color="white" if np.isfinite(v) and v > 0.6 else INK)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="Transition probability")
    return ax


REPAIRED = "#009E73"   # Okabe-Ito green
UNREPAIRED = "#D55E00"  # Okabe-Ito vermillion


def plot_patient_series(data: pd.DataFrame, alliance: str, *, patient_id, episodes: pd.DataFrame | None = None,
                        patient: str = "patient", session: str = "session", ax=None, color: str = ACCENT):
    """One patient's session-by-session alliance with detected rupture episodes marked.

    Each episode is drawn from its pre-rupture session to its rupture session (green when
    repaired, with a ring at the repair session; orange when not).

    Returns
    -------
    Axes
    """
    need_columns(data, {"alliance": alliance, "patient": patient, "session": session})
    d = data[data[patient] == patient_id].sort_values(session)
    if d.empty:
        known = data[patient].dropna().unique().tolist()
        raise OptionError("patient_id", patient_id, hint=f"no row of {patient!r} holds it; patients include "
                          f"{', '.join(map(repr, known[:8]))}{' ...' if len(known) > 8 else ''}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    ax.plot(d[session], d[alliance], "-o", color=color, ms=4, lw=1.2, zorder=2)
    if episodes is not None and len(episodes):
        e = episodes[episodes["patient"] == patient_id]
        a = d.set_index(session)[alliance]
        for _, r in e.iterrows():
            col = REPAIRED if r["repaired"] else UNREPAIRED
            ax.plot([r["pre_session"], r["rupture_session"]], [r["pre_score"], r["rupture_score"]], color=col, lw=3, zorder=3)
            if r["repaired"]:
                rs = int(r["repair_session"])
                ax.scatter([rs], [a.get(rs, np.nan)], s=90, facecolor="none", edgecolor=col, lw=1.8, zorder=4)
    _integer_ticks(ax.xaxis)
    ax.set_xlabel(score_label(session))
    ax.set_ylabel(score_label(alliance))
    ax.set_title(f"Patient {patient_id}", fontsize=10)
    for s in ("right", "top"):
        ax.spines[s].set_visible(False)
    return ax


def rupture_profile(data: pd.DataFrame, alliance: str, episodes: pd.DataFrame, *, patient: str = "patient",
                    session: str = "session", window: int = 3) -> pd.DataFrame:
    """Alliance aligned on each episode's rupture session (offsets -window..+window).

    Returns a long table ``patient, rupture_session, repaired, offset, score`` (missing
    sessions are absent rows).
    """
    a = data.set_index([patient, session])[alliance]
    rows = []
    for _, r in episodes.iterrows():
        for k in range(-window, window + 1):
            v = a.get((r["patient"], int(r["rupture_session"]) + k), np.nan)
            if np.isfinite(v):
                rows.append({"patient": r["patient"], "rupture_session": int(r["rupture_session"]), "repaired": bool(r["repaired"]), "offset": k, "score": float(v)})
    return pd.DataFrame(rows, columns=["patient", "rupture_session", "repaired", "offset", "score"])


def plot_rupture_profile(data: pd.DataFrame, alliance: str, episodes: pd.DataFrame, *, patient: str = "patient",
                         session: str = "session", window: int = 3, ax=None, title: str | None = None):
    """Mean alliance aligned on the rupture session (the V), repaired vs unrepaired, 95% CIs.

    Returns
    -------
    Axes
    """
    from scipy import stats as st

    prof = rupture_profile(data, alliance, episodes, patient=patient, session=session, window=window)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.5))
    for rep, col, lab in ((True, REPAIRED, "repaired"), (False, UNREPAIRED, "unrepaired")):
        g = prof[prof["repaired"] == rep].groupby("offset")["score"].agg(["mean", "std", "count"]).reindex(range(-window, window + 1))
        if g["count"].fillna(0).max() == 0:
            continue
        half = st.t.ppf(0.975, np.maximum(g["count"] - 1, 1)) * g["std"] / np.sqrt(g["count"])
        n_ep = int((episodes["repaired"].astype(bool) == rep).sum())
        ax.plot(g.index, g["mean"], "-o", color=col, ms=4, label=f"{lab} (n = {n_ep})")
        ax.fill_between(g.index, g["mean"] - half, g["mean"] + half, color=col, alpha=0.15, lw=0)
    ax.axvline(0, color=MUTED, lw=0.8, ls="--")
    ax.set_xticks(range(-window, window + 1))
    ax.set_xlabel("Sessions from the rupture session")
    ax.set_ylabel(f"Mean {score_label(alliance)}")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(frameon=False, fontsize=8)
    for s in ("right", "top"):
        ax.spines[s].set_visible(False)
    return ax


def plot_within_between(result, ax=None, *, standardized: bool = False, color: str = ACCENT):
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


def plot_therapist_effects(model, ax=None, *, group: str | None = None, term: str = "Intercept", level: float = 0.95,
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


# ----------------------------------------------------------------------------------------
# Trajectories and reliable change

OKABE_ITO = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]


def _mean_band(d: pd.DataFrame, x: str, y: str, level: float) -> pd.DataFrame:
    """Mean of ``y`` per ``x`` with a t-based confidence band (NaN where n < 2)."""
    from scipy import stats as st

    g = d.groupby(x)[y].agg(["mean", "std", "count"])
    half = st.t.ppf(0.5 + level / 2, np.maximum(g["count"] - 1, 1)) * g["std"] / np.sqrt(g["count"])
    g["low"] = g["mean"] - half.where(g["count"] > 1)
    g["high"] = g["mean"] + half.where(g["count"] > 1)
    return g


def plot_trajectories(data: pd.DataFrame, y: str, *, patient: str = "patient", session: str = "session",
                      hue: str | None = None, col: str | None = None, level: float = 0.95, min_n: int = 5,
                      max_patients: int | None = None, ax=None, palette=None, seed: int = 0, col_wrap: int = 3):
    """Session-by-session trajectories: one thin line per patient, the mean with a 95% band.

    Parameters
    ----------
    data : DataFrame
        One row per patient x session (e.g. from :func:`read_sessions`). Not modified.
    y : str
        Column to draw (an alliance or outcome score).
    hue : str, optional
        Patient-level grouping column (e.g. improved vs not improved): one colour, one mean line
        and band per group. A patient whose ``hue`` value changes across sessions is an error.
    col : str, optional
        Facet column (e.g. the trajectory ``pattern`` from :func:`alliance_trajectories`); makes a
        figure-level plot and returns a seaborn ``FacetGrid``.
    level : float
        Confidence level of the band around the mean (t-based, per session).
    min_n : int
        The mean and band are drawn only at sessions with at least ``min_n`` patients, so a
        handful of long treatments does not make a ragged tail.
    max_patients : int, optional
        Draw the thin lines of at most this many patients (a seeded random subset; the means
        still use every patient).

    Returns
    -------
    Axes, or FacetGrid when ``col`` is given.
    """
    roles = {"y": y, "patient": patient, "session": session, "hue": hue, "col": col}
    need_columns(data, {k: c for k, c in roles.items() if c})
    needed = [y, patient, session] + [c for c in (hue, col) if c]
    d = data[needed].dropna(subset=[y, session]).copy()
    if d.empty:
        raise InsufficientDataError(f"no rows with both {y!r} and {session!r}; nothing to plot")
    for c in (hue, col):
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
    if col is not None:
        import seaborn as sns

        order = sorted(d[col].dropna().unique(), key=str)
        grid = sns.FacetGrid(d, col=col, col_order=order, col_wrap=min(col_wrap, len(order)), sharey=True, height=2.8)
        for key, a in grid.axes_dict.items():
            sub = d[d[col] == key]
            plot_trajectories(sub, y, patient=patient, session=session, hue=hue, level=level, min_n=min_n,
                              max_patients=max_patients, ax=a, palette=palette, seed=seed)
            a.set_title(f"{key} (n = {sub[patient].nunique()})", fontsize=10)
        return grid
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
        ax.legend(frameon=False, fontsize=8, title=hue, title_fontsize=8)
    for s in ("right", "top"):
        ax.spines[s].set_visible(False)
    return ax


RCI_COLORS = {"recovered": "#009E73", "improved": "#56B4E9", "unchanged": "#999999", "deteriorated": "#D55E00"}


def plot_reliable_change(data: pd.DataFrame, *, pre: str, post: str, reliability: float, cutoff: float | None = None,
                         higher_is_better: bool = True, sd: float | None = None, z: float = 1.96, ax=None):
    """Jacobson & Truax (1991) plot: post against pre score per patient, coloured by category.

    Draws the no-change diagonal, the reliable-change band (diagonal +/- the change needed,
    z x S_diff), the clinical cut-off on both axes, and one point per patient coloured
    recovered / improved / unchanged / deteriorated (from :func:`reliable_change`; the legend
    gives the count in each). Patients without both scores are left out and counted in the
    title.

    Returns
    -------
    Axes
    """
    from .reliability import reliable_change

    rc = reliable_change(data, pre=pre, post=post, reliability=reliability, sd=sd, cutoff=cutoff,
                         higher_is_better=higher_is_better, z=z)
    info = rc.attrs["alliance_stats"]
    x = pd.to_numeric(data[pre], errors="coerce")
    yv = pd.to_numeric(data[post], errors="coerce")
    ok = rc["category"].notna()
    if not ok.any():
        raise InsufficientDataError(f"no patient has both {pre!r} and {post!r}; nothing to plot")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    lo = float(np.nanmin([x[ok].min(), yv[ok].min()]))
    hi = float(np.nanmax([x[ok].max(), yv[ok].max()]))
    pad = 0.05 * (hi - lo if hi > lo else 1.0)
    lo, hi = lo - pad, hi + pad
    line = np.array([lo, hi])
    cn = info["change_needed"]
    ax.fill_between(line, line - cn, line + cn, color=MUTED, alpha=0.18, lw=0, label=f"no reliable change (±{cn:.1f})")
    ax.plot(line, line, color=INK, lw=0.8)
    if cutoff is not None:
        ax.axhline(cutoff, color=INK, lw=0.8, ls="--", label=f"clinical cut-off ({cutoff:g})")
        ax.axvline(cutoff, color=INK, lw=0.8, ls="--")
    for cat, colr in RCI_COLORS.items():
        sel = ok & (rc["category"] == cat)
        if sel.any():
            ax.scatter(x[sel], yv[sel], s=16, color=colr, edgecolor="white", lw=0.4, zorder=3, label=f"{cat} ({int(sel.sum())})")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    xl, yl = score_label(pre), score_label(post)
    ax.set_xlabel(xl if xl.endswith("(pre)") else f"{xl} (pre)")
    ax.set_ylabel(yl if yl.endswith("(post)") else f"{yl} (post)")
    n_out = int((~ok).sum())
    if n_out:
        ax.set_title(f"{n_out} patient(s) without both scores not shown", fontsize=8)
    ax.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    for s in ("right", "top"):
        ax.spines[s].set_visible(False)
    return ax


# ----------------------------------------------------------------------------------------
# Theme and saving

MM_PER_INCH = 25.4
JOURNAL_WIDTH_MM = {"single": 89.0, "double": 183.0}  # the usual journal column widths
JOURNAL_WIDTH_IN = {k: v / MM_PER_INCH for k, v in JOURNAL_WIDTH_MM.items()}
#: Raster resolution for figures with shading or photographs, and for line art (journals' minimums).
DPI = 300
LINE_ART_DPI = 600
#: rcParams for files sent to a journal: TrueType (Type 42) fonts embedded in PDF and PostScript
#: (submission systems reject or flag Type 3 bitmap fonts) and text kept as text in SVG.
SUBMISSION_RC = {"pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none"}


def set_theme(context: str = "paper") -> None:
    """Set a colour-blind-safe (Okabe-Ito) theme with journal font sizes.

    ``"paper"``: 8 pt text, thin lines, for figures saved at a journal column width;
    ``"notebook"``: 11 pt, for reading on screen. Both embed TrueType fonts in PDF/PS and keep
    SVG text as text (:data:`SUBMISSION_RC`) and save PNGs at 300 dpi. Changes matplotlib's
    rcParams for the session (seaborn's ``set_theme`` underneath); call
    ``matplotlib.rcdefaults()`` to undo.
    """
    import seaborn as sns

    check_option("context", context, ("paper", "notebook"))
    base = 8 if context == "paper" else 11
    rc = {
        "font.size": base, "axes.labelsize": base, "axes.titlesize": base + 1, "xtick.labelsize": base - 1,
        "ytick.labelsize": base - 1, "legend.fontsize": base - 1, "axes.spines.right": False, "axes.spines.top": False,
        "axes.linewidth": 0.6 if context == "paper" else 0.8, "lines.linewidth": 1.2 if context == "paper" else 1.6,
        "savefig.bbox": "tight", "savefig.dpi": DPI, **SUBMISSION_RC,
        "figure.dpi": 100 if context == "paper" else 110,
    }
    sns.set_theme(context=context, style="ticks", palette=OKABE_ITO, font="DejaVu Sans", rc=rc)


def save_for_submission(fig, path, *, dpi: int = DPI) -> None:
    """``fig.savefig`` with the journal settings (:data:`SUBMISSION_RC`, ``dpi``, tight box)
    whatever the session's rcParams."""
    with mpl.rc_context(SUBMISSION_RC):
        fig.savefig(path, dpi=dpi, bbox_inches="tight")


def _fit_width(f, width_in: float) -> None:
    """Size ``f`` so that the file saved with a tight bounding box is ``width_in`` wide.

    The height is scaled with the width (aspect ratio kept); then the width is corrected for
    what the tight box adds or cuts (labels outside the axes, empty margins), which does not
    scale with the figure: secant steps on the saved width as a function of the figure width.
    """
    old_w, old_h = f.get_size_inches()
    h = old_h * width_in / old_w
    pad = 2 * float(mpl.rcParams["savefig.pad_inches"])

    def saved(w):
        f.set_size_inches(w, h)
        return f.get_tightbbox(f.canvas.get_renderer()).width + pad

    w0, t0 = width_in, saved(width_in)
    w1 = max(w0 + width_in - t0, 0.2 * width_in)
    for _ in range(8):
        if abs(t0 - width_in) < 0.2 / LINE_ART_DPI or w1 == w0:
            break
        t1 = saved(w1)
        slope = (t1 - t0) / (w1 - w0)
        w0, t0 = w1, t1
        w1 = max(w1 + (width_in - t1) / (slope if slope > 0.05 else 1.0), 0.2 * width_in)
    f.set_size_inches(w0, h)


def save_figure(fig, path, *, formats=("pdf", "png", "svg"), width="single", dpi: int | None = None,
                line_art: bool = False) -> list:
    """Save a figure in several formats at a journal column width, ready for submission.

    PDF, EPS and PS embed TrueType (Type 42) fonts and SVG keeps text as text
    (:data:`SUBMISSION_RC`), whatever the session's rcParams.

    Parameters
    ----------
    fig : Figure, Axes or seaborn grid
        What to save (an Axes or grid is saved with its figure).
    path : str or Path
        File name; its extension, if any, is replaced by each format's.
    formats : sequence of {"pdf", "png", "svg", "eps", "tif"}
    width : {"single", "double"} or float
        Single column (89 mm, 3.5 in), double column (183 mm, 7.2 in), or inches: the width
        of the saved file (labels outside the axes included). The height is scaled to keep the
        figure's aspect ratio.
    dpi : int, optional
        Resolution of raster formats: 300 by default (the usual journal minimum), 600 with
        ``line_art=True``.
    line_art : bool
        A figure of lines and text only (no shading): saved at 600 dpi unless ``dpi`` is given.

    Returns
    -------
    list of Path
        The files written.
    """
    from pathlib import Path

    f = getattr(fig, "figure", fig)
    f = getattr(f, "figure", f)  # FacetGrid.figure, Axes.figure
    if not hasattr(f, "savefig"):
        raise ArgumentError(f"save_figure() takes a matplotlib Figure, Axes or seaborn grid, got {type(fig).__name__}")
    if isinstance(width, str):
        w = JOURNAL_WIDTH_IN[check_option("width", width, tuple(JOURNAL_WIDTH_IN), hint="or give a number of inches")]
    else:
        w = check_number("width", width, 0, lo_open=True, hint="give 'single', 'double' or a positive number of inches")
    if dpi is None:
        dpi = LINE_ART_DPI if line_art else DPI
    else:
        dpi = check_number("dpi", dpi, 0, lo_open=True, hint="dots per inch, e.g. 300")
    allowed = ("pdf", "png", "svg", "eps", "tif", "tiff", "jpg")
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    for x in formats:
        if not isinstance(x, str) or x.lower().lstrip(".") not in allowed:
            raise OptionError("formats", x, allowed, hint="a figure format, or a list of them")
    _fit_width(f, w)
    if hasattr(fig, "tight_layout") and fig is not f:  # a seaborn grid lays itself out again at the new size
        fig.tight_layout()
        _fit_width(f, w)
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in formats:
        p = base.with_suffix("." + ext.lower().lstrip("."))
        save_for_submission(f, p, dpi=dpi)
        out.append(p)
    return out
