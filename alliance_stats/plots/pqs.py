"""PQS figures: item profiles, Q-factor loadings."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.patches import Rectangle
from matplotlib.text import OffsetFrom

from ..exceptions import ArgumentError, ColumnError
from ._style import ACCENT, INK, MUTED, score_label


def plot_pqs_profile(items: pd.DataFrame, *, ax=None, n_label: int = 5, color: str = ACCENT):
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




def plot_q_loadings(result, *, ax=None, annotate: bool | None = None, cmap: str = "RdBu_r"):
    """Loadings of each sort (rows) on each factor (columns) of a Q-factor analysis, as a heatmap
    from -1 to 1; the loading of each sort on the factor it defines is framed.

    Parameters
    ----------
    result : QFactorResult
        From :func:`q_factor_analysis`.
    annotate : bool, optional
        Write each loading in its cell (default: when there are at most 40 sorts).

    Returns
    -------
    Axes
    """
    v = getattr(result, "variance", None)
    lo = getattr(result, "loadings", None)
    if v is None or lo is None or "factor" not in v:
        raise ArgumentError(f"plot_q_loadings() takes the result of als.q_factor_analysis(), got {type(result).__name__}")
    factors = v["factor"].tolist()
    L = lo[factors].to_numpy(dtype=float)
    ids = [c for c in ("patient", "session", "rater") if c in lo.columns]
    labels = [" · ".join(str(r[c]) for c in ids) for _, r in lo.iterrows()] if ids else [str(i + 1) for i in range(len(lo))]
    if annotate is None:
        annotate = len(lo) <= 40
    if ax is None:
        _, ax = plt.subplots(figsize=(1.6 + 0.8 * len(factors), 1.0 + 0.22 * len(lo)))
    im = ax.imshow(L, cmap=cmap, vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(factors)), [f"{f}\n({p:.0f}%)" for f, p in zip(factors, v["variance_pct"])])
    ax.set_yticks(range(len(lo)), labels, fontsize=7)
    ax.set_xlabel("Factor (% of variance)")
    ax.set_ylabel("Sort (" + ", ".join(score_label(c).lower() for c in ids) + ")" if ids else "Sort")
    for i, d in enumerate(lo["defines"]):
        if isinstance(d, str) and d in factors:
            j = factors.index(d)
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=INK, lw=1.2))
        if annotate:
            for j in range(len(factors)):
                ax.text(j, i, f"{L[i, j]:.2f}".replace("0.", "."), ha="center", va="center", fontsize=7,
                        color="white" if abs(L[i, j]) > 0.6 else INK)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="Loading")
    return ax
