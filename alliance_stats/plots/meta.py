"""Meta-analysis figures: forest and funnel plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.transforms import blended_transform_factory

from ..exceptions import MetaAnalysisError
from ..validation import check_option
from ._style import ACCENT, INK, MUTED, _diamond, _meta_result


def forest_plot(
    result,
    *,
    ax=None,
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
    through it. With ``group``, rows are grouped with a subgroup diamond: the same model
    fitted within each group, as :meth:`MetaResult.subgroups` gives it.

    Parameters
    ----------
    result : MetaResult
    ax : Axes, optional
        Drawn into; a new figure sized to the number of rows otherwise.
    group : str or array-like, optional
        A column of the data given to :func:`meta_analysis`, or one label per effect size.
    sort : {"estimate", "weight", None}
        Order of the rows within each group (default: data order).
    show_pi : bool
        Draw the prediction interval.

    Returns
    -------
    Axes
    """
    _meta_result(result, "forest_plot()")
    if result.three_level or result.qm is not None:
        raise MetaAnalysisError("the forest plot shows intercept-only models without clusters; fit one with meta_analysis(...)")
    check_option("sort", sort, ("estimate", "weight", None))
    t = result.table.copy()
    is_r = result.measure == "r"
    t["est"] = t["r"] if is_r else t["yi"]
    if group is not None:
        sub_fits = result.subgroups(group).set_index("group")  # checks the column or the labels
        labels = result.data[group] if isinstance(group, str) else pd.Series(np.asarray(group, dtype=object).ravel())
        t["group"] = labels.astype(str).to_numpy()
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
            sg = sub_fits.loc[g]
            rows.append(("subgroup", (g, int(sg["k"]), sg["estimate"], sg["ci_low"], sg["ci_high"])))
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
    *,
    ax=None,
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

    _meta_result(result, "funnel_plot()")
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


