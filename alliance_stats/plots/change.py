"""Reliable-change figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt

from ..exceptions import ArgumentError, InsufficientDataError
from ._style import INK, MUTED, RCI_COLORS, score_label


def plot_reliable_change(result, *, ax=None):
    """Jacobson & Truax (1991) plot: post against pre score per patient, coloured by category.

    Draws the no-change diagonal, the reliable-change band (diagonal +/- the change needed,
    z x S_diff), the clinical cut-off on both axes, and one point per patient coloured
    recovered / improved / unchanged / deteriorated (the legend gives the count in each).
    Patients without both scores are left out and counted in the title.

    Parameters
    ----------
    result : ReliableChange
        From :func:`~alliance_stats.reliable_change` (drawn as it is; nothing is refitted).

    Returns
    -------
    Axes
    """
    tab = getattr(result, "table", None)
    if not isinstance(tab, pd.DataFrame) or not {"pre", "post", "category"} <= set(tab.columns):
        raise ArgumentError(f"plot_reliable_change() draws the result of als.reliable_change(), got {type(result).__name__}; "
                            "e.g. als.reliable_change(als.pre_post(df, 'phq9_total'), reliability=.84).plot()")
    pre, post, cutoff, cn = result.pre, result.post, result.cutoff, result.change_needed
    x, yv = tab["pre"], tab["post"]
    ok = tab["category"].notna()
    if not ok.any():
        raise InsufficientDataError(f"no patient has both {pre!r} and {post!r}; nothing to plot")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    lo = float(np.nanmin([x[ok].min(), yv[ok].min()]))
    hi = float(np.nanmax([x[ok].max(), yv[ok].max()]))
    pad = 0.05 * (hi - lo if hi > lo else 1.0)
    lo, hi = lo - pad, hi + pad
    line = np.array([lo, hi])
    ax.fill_between(line, line - cn, line + cn, color=MUTED, alpha=0.18, lw=0, label=f"no reliable change (±{cn:.1f})")
    ax.plot(line, line, color=INK, lw=0.8)
    if cutoff is not None:
        ax.axhline(cutoff, color=INK, lw=0.8, ls="--", label=f"clinical cut-off ({cutoff:g})")
        ax.axvline(cutoff, color=INK, lw=0.8, ls="--")
    for cat, colr in RCI_COLORS.items():
        sel = ok & (tab["category"] == cat)
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


