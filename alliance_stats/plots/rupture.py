"""Rupture-repair figures: a patient's series with episodes, the rupture profile (computed by
:meth:`~alliance_stats.RuptureEpisodes.profile`; these functions only draw)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt

from ..exceptions import ArgumentError, OptionError
from ..validation import need_columns
from ._style import ACCENT, MUTED, REPAIRED, UNREPAIRED, _integer_ticks, score_label


def plot_patient_series(data: pd.DataFrame, alliance: str, *, patient_id, episodes=None,
                        patient: str = "patient", session: str = "session", ax=None, color: str = ACCENT):
    """One patient's session-by-session alliance with detected rupture episodes marked.

    Each episode is drawn from its pre-rupture session to its rupture session (green when
    repaired, with a ring at the repair session; orange when not). ``episodes`` is the result of
    :func:`~alliance_stats.detect_ruptures` or its ``episodes`` table.

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
    episodes = getattr(episodes, "episodes", episodes)
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


def plot_rupture_profile(profile, *, alliance: str = "alliance", window: int | None = None, ax=None,
                         title: str | None = None):
    """Mean alliance aligned on the rupture session (the V), repaired vs unrepaired, 95% CIs.

    Parameters
    ----------
    profile : RuptureEpisodes or DataFrame
        The result of :func:`~alliance_stats.detect_ruptures` (its ``profile(window)`` is
        drawn), or such a profile table (``patient, rupture_session, repaired, offset, score``).
    alliance : str
        The alliance column, for the axis label (a result supplies its own).
    window : int, optional
        Sessions either side of the rupture (default 3; for a table, its largest offset).

    Returns
    -------
    Axes
    """
    from scipy import stats as st

    if hasattr(profile, "profile") and hasattr(profile, "episodes"):  # a detect_ruptures result
        alliance = profile.alliance
        profile = profile.profile(3 if window is None else window)
    need_columns(profile, {c: c for c in ("patient", "rupture_session", "repaired", "offset", "score")})
    prof = profile
    if window is None:
        window = int(prof["offset"].abs().max()) if len(prof) else 3
    episodes = prof.drop_duplicates(["patient", "rupture_session"])
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




def plot_rupture_outcome(result, *, ax=None, color: str = ACCENT):
    """Mean change in outcome (last - first score) by rupture-repair status with 95% CIs
    (t on n - 1 df), from a :class:`RuptureOutcomeResult`.

    Returns
    -------
    Axes
    """
    from scipy import stats as st

    g = getattr(result, "groups", None)
    if g is None or "mean_change" not in g:
        raise ArgumentError(f"plot_rupture_outcome() takes the result of als.rupture_outcome(), got {type(result).__name__}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.5))
    se = g["sd_change"] / np.sqrt(g["n"])
    crit = st.t.ppf(0.975, np.maximum(g["n"] - 1, 1))
    x = np.arange(len(g))
    ax.errorbar(x, g["mean_change"], yerr=crit * se, fmt="o", color=color, capsize=4)
    ax.axhline(0, color=MUTED, lw=0.8)
    ax.set_xticks(x, [f"{s}\n(n = {n})" for s, n in zip(g["status"], g["n"])])
    ax.set_xlabel("Rupture-repair status")
    outcome = getattr(result, "outcome", "") or "outcome"
    ax.set_ylabel(f"Change in {score_label(outcome)} (last - first)")
    for sp in ("right", "top"):
        ax.spines[sp].set_visible(False)
    return ax
