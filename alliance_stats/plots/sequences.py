"""Alliance-state sequence figures: transition matrices."""

from __future__ import annotations

import numpy as np
from matplotlib import pyplot as plt

from ._style import ACCENT, INK, MUTED, score_label


def plot_transitions(result, *, ax=None, annotate: bool = True, cmap: str = "Blues", show_counts: bool = False):
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
    what = getattr(result, "state", None)
    what = f" ({score_label(what)})" if what else ""
    ax.set_xlabel(f"To: next session{what}")
    ax.set_ylabel(f"From{what}")
    if annotate:
        C = result.counts.to_numpy()
        for i in range(P.shape[0]):
            for j in range(P.shape[1]):
                v = P.iat[i, j]
                txt = "–" if not np.isfinite(v) else f"{v:.2f}" + (f"\n(n={C[i, j]})" if show_counts else "")
                ax.text(j, i, txt, ha="center", va="center", fontsize=8, color="white" if np.isfinite(v) and v > 0.6 else INK)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="Transition probability")
    return ax


def plot_lag_sequential(result, *, ax=None):
    """The adjusted residual z of each given -> target transition of a
    :func:`~alliance_stats.lag_sequential` result, with the +-1.96 band (p < .05).

    Returns
    -------
    Axes
    """
    t = result.table
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 0.5 + 0.4 * max(len(t), 2)))
    y = np.arange(len(t))[::-1]
    ax.axvspan(-1.96, 1.96, color=MUTED, alpha=0.18, lw=0)
    ax.axvline(0, color=INK, lw=0.8)
    ax.barh(y, t["z"], color=ACCENT, height=0.6)
    ax.set_yticks(y, [f"{g} → {tg}" for g, tg in zip(t["given"], t["target"])])
    ax.set_xlabel(f"Adjusted residual z (lag {result.lag})")
    for sp in ("right", "top"):
        ax.spines[sp].set_visible(False)
    return ax
