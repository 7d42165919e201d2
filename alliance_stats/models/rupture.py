"""Rupture-repair episodes in session-by-session alliance scores."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

from ..exceptions import ArgumentError, InsufficientDataError, SessionDataError
from .._format import apa_p, fmt_ci, fmt_df, fmt_num, fmt_pct
from .._result import Result, accounting_frame
from ..io import check_session_keys
from ..validation import check_number, check_option, check_whole_number, need_columns, numeric_column, require_frame

__all__ = ["detect_ruptures", "RuptureEpisodes", "rupture_profile", "rupture_summary", "alliance_trajectories",
           "AllianceTrajectories", "rupture_outcome", "RuptureOutcomeResult", "RUPTURE_PRESETS"]

RUPTURE_PRESETS = {
    # Stiles et al. (2004): V-shaped deflections of at least 2 SD
    "stiles2004": {"threshold": 2.0, "sd_source": "within"},
    # Strauss et al. (2006): the same criterion with a 1-SD threshold
    "strauss2006": {"threshold": 1.0, "sd_source": "within"},
}
#: Whose SD scales a drop: the patient's own, the pooled within-patient SD, or the larger of the two.
SD_SOURCES = ("within", "pooled", "both")

EPISODE_COLUMNS = [
    "patient", "pre_session", "rupture_session", "pre_score", "rupture_score", "drop", "drop_sd",
    "repair_session", "repair_score", "repaired", "sessions_to_repair", "n_decline_sessions",
]


def _prepare(data, alliance, patient, session):
    require_frame(data)
    need_columns(data, {"alliance": alliance, "patient": patient, "session": session})
    d = data[[patient, session, alliance]]
    s = check_session_keys(d, [patient], session)
    codes, uniq = pd.factorize(d[patient], sort=False)
    sv = s.to_numpy(dtype=np.int64)
    # codes number patients by first appearance, so rising codes also mean each patient's rows are together
    if not np.all((np.diff(codes) > 0) | ((np.diff(codes) == 0) & (np.diff(sv) > 0))):
        raise SessionDataError(
            "the data are not sorted by patient and session; sort them first "
            f"(data.sort_values([{patient!r}, {session!r}])) or read them with als.read_sessions()"
        )
    a = numeric_column(d, alliance).to_numpy()
    return codes, uniq, sv, a


PROFILE_COLUMNS = ["patient", "rupture_session", "repaired", "offset", "score"]


@dataclass(eq=False, repr=False)
class RuptureEpisodes(Result):
    """Result of :func:`detect_ruptures`: the episodes and the rules and counts that go with them.

    Attributes
    ----------
    episodes : DataFrame
        One row per episode: ``patient, pre_session, rupture_session, pre_score,
        rupture_score, drop, drop_sd, repair_session, repair_score, repaired,
        sessions_to_repair, n_decline_sessions`` (``to_frame()`` returns a copy).
    rules : dict
        The rules used (threshold, sd_source, min_sessions, repair_window, repair_to,
        max_decline_sessions, method).
    alliance, patient, session : str
        The columns of the data the episodes were found in.
    n_patients : int
        Patients in the data.
    not_assessable : tuple
        Patients with fewer than ``min_sessions`` scored sessions (no episode can be found).
    steps_assessed, steps_not_assessed : int
        Session-to-session steps compared, and steps not compared because a score is missing
        or a session was missed.
    sd_pooled : float
        SD of all alliance scores in the sample.

    The episodes table can be filtered and kept with its rules: ``res.filter(res.episodes.drop_sd
    > 3)`` is the same result with fewer episodes, and :func:`rupture_summary`,
    :func:`rupture_outcome` and :meth:`profile` accept it.
    """

    title = "Rupture-repair episodes"

    episodes: pd.DataFrame
    rules: dict
    alliance: str
    patient: str
    session: str
    n_patients: int
    not_assessable: tuple
    steps_assessed: int
    steps_not_assessed: int
    sd_pooled: float
    # the detection's arrays (patient codes, labels, sessions, scores): the profile is read from them
    _series: tuple = field(default=(), repr=False)

    @property
    def n_not_assessable(self) -> int:
        return len(self.not_assessable)

    def filter(self, rows) -> "RuptureEpisodes":
        """The same result with only the episodes selected by ``rows`` (a boolean mask over
        :attr:`episodes`, or a subset of its rows)."""
        if isinstance(rows, pd.DataFrame):
            if not rows.index.isin(self.episodes.index).all():
                raise ArgumentError("filter() takes rows of res.episodes (a subset of it, or a boolean mask over it)")
            sub = self.episodes.loc[rows.index]
        else:
            mask = pd.Series(rows, index=self.episodes.index) if not isinstance(rows, pd.Series) else rows
            if mask.dtype != bool or not mask.index.equals(self.episodes.index):
                raise ArgumentError("filter() takes a boolean mask over res.episodes, e.g. res.episodes['drop_sd'] > 3")
            sub = self.episodes[mask.to_numpy()]
        return replace(self, episodes=sub.reset_index(drop=True))

    # -- Result interface ---------------------------------------------------------------------
    def _headline(self) -> str:
        ep = self.episodes
        n_ass = self.n_patients - self.n_not_assessable
        rule = self.rules.get("method") or f"{self.rules['threshold']:g} SD ({self.rules['sd_source']})"
        return (f"{len(ep)} episodes ({int(ep['repaired'].sum()) if len(ep) else 0} repaired) in "
                f"{ep['patient'].nunique()} of {n_ass} assessable patients; rule {rule}")

    def to_frame(self) -> pd.DataFrame:
        return self.episodes.copy()

    def methods(self) -> str:
        r = self.rules
        ep = self.episodes
        n_ass = self.n_patients - self.n_not_assessable
        window = ("a drop from one scored session to the next" if r["max_decline_sessions"] == 1 else
                  f"a run of up to {r['max_decline_sessions']} consecutive declines")
        sd = {"within": "the patient's own SD", "pooled": "the pooled SD of the sample",
              "both": "the larger of the patient's own and the pooled SD"}[r["sd_source"]]
        target = "the pre-rupture score" if r["repair_to"] == "pre" else f"{r['repair_to']:g} of the drop"
        win = "" if r["repair_window"] is None else f" within {r['repair_window']} sessions"
        rep = int(ep["repaired"].sum()) if len(ep) else 0
        return (
            f"Rupture-repair episodes in {self.alliance} were defined as {window} of at least {r['threshold']:g} × {sd}"
            f" (Stiles et al., 2004; Strauss et al., 2006), repaired when a later session{win} returned to {target}. "
            f"Patients with fewer than {r['min_sessions']} scored sessions were not assessable ({self.n_not_assessable} of "
            f"{self.n_patients}); {self.steps_not_assessed} session-to-session steps spanning a missing score or a missed "
            f"session were not compared. {len(ep)} episodes were found in {ep['patient'].nunique() if len(ep) else 0} of "
            f"{n_ass} patients; {rep} ({fmt_pct(100 * rep / len(ep)) if len(ep) else 'NA'}%) were repaired."
        )

    def accounting(self) -> pd.DataFrame:
        steps = accounting_frame("session steps", self.steps_assessed,
                                 {"missing score or missed session": self.steps_not_assessed})
        return accounting_frame("patients", self.n_patients - self.n_not_assessable,
                                {f"fewer than {self.rules['min_sessions']} scored sessions": self.n_not_assessable},
                                more=[steps])

    def _notes(self) -> list:
        if not self.not_assessable:
            return []
        shown = ", ".join(map(str, self.not_assessable[:8])) + (" ..." if self.n_not_assessable > 8 else "")
        return [f"not assessable: {shown}"]

    def profile(self, window: int = 3) -> pd.DataFrame:
        """Alliance aligned on each episode's rupture session (offsets ``-window..+window``).

        Returns a long table ``patient, rupture_session, repaired, offset, score``; missed
        sessions and missing scores are absent rows.
        """
        window = check_whole_number("window", window, 0)
        if not self._series:
            raise ArgumentError("this result was built without its detection data; call als.detect_ruptures() again")
        codes, uniq, sv, a = self._series
        ep = self.episodes
        if not len(ep):
            return pd.DataFrame(columns=PROFILE_COLUMNS)
        # the trough row of each episode: sessions are unique and sorted within a patient
        pcode = pd.Index(uniq).get_indexer(ep["patient"])
        key = pd.MultiIndex.from_arrays([codes, sv])
        trough = key.get_indexer(pd.MultiIndex.from_arrays([pcode, ep["rupture_session"].to_numpy(np.int64)]))
        n = len(a)
        k = np.arange(-window, window + 1)
        rows = trough[:, None] + k[None, :]  # a session offset within +-window is a row offset within +-window
        inside = (rows >= 0) & (rows < n)
        rc = np.clip(rows, 0, max(n - 1, 0))
        off = sv[rc] - sv[trough][:, None]
        ok = inside & (codes[rc] == pcode[:, None]) & (np.abs(off) <= window) & np.isfinite(a[rc])
        e_idx, _ = np.nonzero(ok)
        out = pd.DataFrame({
            "patient": ep["patient"].to_numpy()[e_idx],
            "rupture_session": ep["rupture_session"].to_numpy(np.int64)[e_idx],
            "repaired": ep["repaired"].to_numpy(bool)[e_idx],
            "offset": off[ok].astype(np.int64),
            "score": a[rc[ok]].astype(float),
        })
        return out.sort_values(["patient", "rupture_session", "offset"], kind="stable").reset_index(drop=True)

    def plot(self, *, ax=None, window: int = 3, title: str | None = None):
        """The rupture profile: mean alliance aligned on the rupture session, repaired vs
        unrepaired, with 95% CIs (:func:`~alliance_stats.plot_rupture_profile`)."""
        from ..plots.rupture import plot_rupture_profile

        return plot_rupture_profile(self.profile(window), alliance=self.alliance, window=window, ax=ax, title=title)


def rupture_profile(episodes: RuptureEpisodes, *, window: int = 3) -> pd.DataFrame:
    """Alliance aligned on each episode's rupture session: ``episodes.profile(window)``
    (see :meth:`RuptureEpisodes.profile`)."""
    return _episodes(episodes).profile(window)


def _episodes(episodes) -> RuptureEpisodes:
    if not isinstance(episodes, RuptureEpisodes):
        what = "a DataFrame" if isinstance(episodes, pd.DataFrame) else type(episodes).__name__
        raise ArgumentError(
            f"episodes must be the result of als.detect_ruptures() (got {what}); it carries the rules and the "
            "patients not assessable. To use some of the episodes, filter the result: res.filter(res.episodes['repaired'])"
        )
    return episodes


def detect_ruptures(
    data: pd.DataFrame,
    alliance: str,
    *,
    patient: str = "patient",
    session: str = "session",
    threshold: float = 2.0,
    sd_source: str = "within",
    min_sessions: int = 3,
    repair_window: int | None = None,
    repair_to="pre",
    max_decline_sessions: int = 1,
    method: str | None = None,
) -> RuptureEpisodes:
    """Find rupture-repair episodes in session-by-session alliance scores.

    Parameters
    ----------
    data : DataFrame
        One row per patient x session, sorted by patient and session. Not modified.
    alliance : str
        Alliance score column (higher = better alliance).
    patient, session : str
        ID columns.
    threshold : float
        Size of a rupture in standard deviations.
    sd_source : {"within", "pooled", "both"}
        ``within``: the SD of the patient's own alliance scores across their sessions;
        ``pooled``: the SD of all alliance scores in the sample; ``both``: the larger (stricter)
        of the two for each patient, combining within- and between-person variability as
        Gumz et al. (2012) recommend.
    min_sessions : int
        Patients with fewer observed scores are not assessable.
    repair_window : int, optional
        A repair must come within this many sessions after the lowest session of the episode;
        None: any later session.
    repair_to : "pre" or float
        ``"pre"``: a repair is a return to at least the pre-rupture score; a number f in (0, 1]:
        a return of at least the fraction f of the drop (``trough + f * drop``).
    max_decline_sessions : int
        1: a rupture is a drop from one session to the next (a V). Larger values allow a
        multi-session crisis: a run of consecutive declines of up to that many sessions whose
        total drop reaches the threshold (Gumz et al. 2012 saw declines of up to 6 sessions).
    method : {"stiles2004", "strauss2006"}, optional
        Preset: sets ``threshold`` and ``sd_source`` (2 SD / 1 SD, the patient's own SD).

    Returns
    -------
    RuptureEpisodes
        ``.episodes`` (also ``to_frame()``): one row per episode: ``patient, pre_session,
        rupture_session, pre_score, rupture_score, drop, drop_sd, repair_session,
        repair_score, repaired, sessions_to_repair, n_decline_sessions``. ``rupture_session``
        is the lowest session of the episode; ``sessions_to_repair`` counts sessions from it
        to the repair. The result also holds the rules used, the patients not assessable
        (fewer than ``min_sessions`` scores), the number of session-to-session steps not
        assessed because of a missing score or a missed session (``accounting()``), the
        rupture profile (``profile()``) and its figure (``plot()``).

    Notes
    -----
    Rules, in order:

    1. Scores are compared only between consecutive sessions that both have a score: a step
       across a missed session or a missing score is not assessed (and counted).
    2. The patient's series is cut into runs of consecutive declines; each run is split into
       windows of at most ``max_decline_sessions`` declines. A window whose total drop
       (score before the window minus score at its last session) is at least ``threshold`` x SD
       is an episode: ``pre_session`` is the session before the window, ``rupture_session``
       its last (lowest) session, ``n_decline_sessions`` its number of declines.
    3. The episode is repaired at the first later session with a score (within
       ``repair_window`` sessions of the rupture session) that reaches the repair target.

    With the defaults this is the V-shaped criterion of Stiles et al. (2004; 2 SD) and, with
    ``threshold=1``, of Strauss et al. (2006).

    References
    ----------
    Stiles, W. B., et al. (2004). Patterns of alliance development and the rupture-repair
    hypothesis. Journal of Counseling Psychology, 51(1), 81-92.
    Strauss, J. L., et al. (2006). Early alliance, alliance ruptures, and symptom change in a
    nonrandomized trial of cognitive therapy for avoidant and obsessive-compulsive personality
    disorders. Journal of Consulting and Clinical Psychology, 74(2), 337-345.
    Gumz, A., Brahler, E., Geyer, M., & Erices, R. (2012). Crisis-repair sequences: Considerations
    on the assessment and analysis of the therapeutic alliance. BMC Medical Research
    Methodology, 12, 10.
    """
    if method is not None:
        check_option("method", method, tuple(sorted(RUPTURE_PRESETS)) + (None,))
        threshold = RUPTURE_PRESETS[method]["threshold"]
        sd_source = RUPTURE_PRESETS[method]["sd_source"]
    check_option("sd_source", sd_source, SD_SOURCES)
    threshold = check_number("threshold", threshold, 0, lo_open=True)
    kmax = check_whole_number("max_decline_sessions", max_decline_sessions, 1)
    if repair_to != "pre":
        check_number("repair_to", repair_to, 0, 1, lo_open=True, hint="give 'pre' or a fraction in (0, 1]")
    if repair_window is not None:
        repair_window = check_whole_number("repair_window", repair_window, 1)

    codes, uniq, sv, a = _prepare(data, alliance, patient, session)
    n = len(a)
    scored = ~np.isnan(a)
    n_scored = np.bincount(codes[scored], minlength=len(uniq)) if n else np.zeros(len(uniq), int)
    assessable_p = n_scored >= min_sessions
    # SDs
    cnt = np.maximum(n_scored, 1)
    s1 = np.bincount(codes, weights=np.where(scored, a, 0.0), minlength=len(uniq))
    s2 = np.bincount(codes, weights=np.where(scored, a * a, 0.0), minlength=len(uniq))
    with np.errstate(invalid="ignore", divide="ignore"):
        var_w = (s2 - s1 * s1 / cnt) / (n_scored - 1)
    sd_w = np.sqrt(np.maximum(var_w, 0))
    sd_pooled = float(np.nanstd(a, ddof=1)) if scored.sum() > 1 else np.nan
    sd = {"within": sd_w, "pooled": np.full(len(uniq), sd_pooled), "both": np.fmax(sd_w, sd_pooled)}[sd_source]

    # steps between consecutive rows of a patient
    same = np.zeros(n, bool)
    same[1:] = codes[1:] == codes[:-1]
    consec = np.zeros(n, bool)
    consec[1:] = same[1:] & (sv[1:] == sv[:-1] + 1)
    step_ok = consec & scored & np.r_[False, scored[:-1]]
    step_ok &= assessable_p[codes]
    not_assessed = same & ~step_ok & assessable_p[codes]
    diff = np.full(n, np.nan)
    diff[1:] = a[1:] - a[:-1]
    decline = step_ok & (diff < 0)

    # runs of consecutive declines and windows of at most kmax declines
    idx = np.flatnonzero(decline)
    episodes = pd.DataFrame(columns=EPISODE_COLUMNS)
    if len(idx):
        new_run = np.r_[True, idx[1:] != idx[:-1] + 1]
        run_id = np.cumsum(new_run) - 1
        run_start = idx[new_run][run_id]
        pos = idx - run_start
        win = run_id * 10**6 + pos // kmax
        last = np.r_[win[1:] != win[:-1], True]
        first = np.r_[True, win[1:] != win[:-1]]
        w_first = idx[first]
        w_last = idx[last]
        pre_row = w_first - 1
        trough_row = w_last
        pc = codes[trough_row]
        drop = a[pre_row] - a[trough_row]
        with np.errstate(invalid="ignore", divide="ignore"):
            drop_sd = drop / sd[pc]
        keep = drop >= threshold * sd[pc]
        keep &= sd[pc] > 0
        pre_row, trough_row, drop, drop_sd, pc = pre_row[keep], trough_row[keep], drop[keep], drop_sd[keep], pc[keep]
        n_decl = (trough_row - pre_row).astype(int)
        target = a[pre_row] if repair_to == "pre" else a[trough_row] + float(repair_to) * drop
        # repair search: walk forward while steps stay assessable
        m = len(trough_row)
        rep_row = np.full(m, -1)
        alive = np.ones(m, bool)
        cur = trough_row.copy()
        limit = np.inf if repair_window is None else int(repair_window)
        while alive.any():
            nxt = cur + 1
            ok = alive & (nxt < n)
            ok[ok] &= same[nxt[ok]]  # stay within the patient; missed sessions are skipped
            if repair_window is not None:
                ok &= (sv[np.minimum(nxt, n - 1)] - sv[trough_row]) <= limit
            alive &= ok
            hit = alive & (a[np.minimum(nxt, n - 1)] >= target)
            rep_row[hit] = nxt[hit]
            alive &= ~hit
            cur = nxt
        repaired = rep_row >= 0
        rs = np.where(repaired, sv[np.maximum(rep_row, 0)], -1)
        episodes = pd.DataFrame(
            {
                "patient": uniq[pc],
                "pre_session": sv[pre_row],
                "rupture_session": sv[trough_row],
                "pre_score": a[pre_row],
                "rupture_score": a[trough_row],
                "drop": drop,
                "drop_sd": drop_sd,
                "repair_session": pd.Series(rs, dtype="Int64").where(repaired, pd.NA).to_numpy(),
                "repair_score": np.where(repaired, a[np.maximum(rep_row, 0)], np.nan),
                "repaired": repaired,
                "sessions_to_repair": pd.Series(rs - sv[trough_row], dtype="Int64").where(repaired, pd.NA).to_numpy(),
                "n_decline_sessions": n_decl,
            }
        )
    return RuptureEpisodes(
        episodes=episodes,
        rules={"threshold": threshold, "sd_source": sd_source, "min_sessions": min_sessions,
               "repair_window": repair_window, "repair_to": repair_to, "max_decline_sessions": kmax, "method": method},
        alliance=alliance, patient=patient, session=session, n_patients=int(len(uniq)),
        not_assessable=tuple(uniq[~assessable_p].tolist()), steps_assessed=int(step_ok.sum()),
        steps_not_assessed=int(not_assessed.sum()), sd_pooled=sd_pooled, _series=(codes, uniq, sv, a),
    )


def rupture_summary(episodes: RuptureEpisodes, data: pd.DataFrame) -> pd.DataFrame:
    """One row per patient: sessions, ruptures, repaired, unrepaired, flags and rate.

    Parameters
    ----------
    episodes : RuptureEpisodes
        From :func:`detect_ruptures` (or ``res.filter(...)`` of it).
    data : DataFrame
        The session table the episodes were found in.

    Returns
    -------
    DataFrame
        ``patient, sessions`` (sessions with an alliance score), ``ruptures, repaired,
        unrepaired, any_rupture, any_unrepaired, ruptures_per_10_sessions, assessable``.
        Patients who were not assessable have missing counts.
    """
    res = _episodes(episodes)
    episodes = res.episodes
    p, alliance = res.patient, res.alliance
    require_frame(data)
    need_columns(data, {"patient (used by detect_ruptures)": p, "alliance (used by detect_ruptures)": alliance})
    sessions = data.groupby(p, sort=False)[alliance].count()
    out = pd.DataFrame({"patient": sessions.index, "sessions": sessions.to_numpy()})
    g = episodes.groupby("patient")["repaired"]
    rup = g.size()
    rep = g.sum()
    out["ruptures"] = out["patient"].map(rup).fillna(0).astype(int)
    out["repaired"] = out["patient"].map(rep).fillna(0).astype(int)
    out["unrepaired"] = out["ruptures"] - out["repaired"]
    out["any_rupture"] = out["ruptures"] > 0
    out["any_unrepaired"] = out["unrepaired"] > 0
    out["ruptures_per_10_sessions"] = 10 * out["ruptures"] / out["sessions"].where(out["sessions"] > 0)
    na = set(res.not_assessable)
    out["assessable"] = ~out["patient"].isin(na)
    for c in ("ruptures", "repaired", "unrepaired", "ruptures_per_10_sessions"):
        out[c] = out[c].where(out["assessable"])
    for c in ("any_rupture", "any_unrepaired"):
        out[c] = out[c].astype("boolean").where(out["assessable"], pd.NA)
    return out


def _p_level(alpha: float) -> str:
    """A significance level as APA writes it: .05, not 0.05."""
    return f"{alpha:g}".replace("0.", ".", 1) if alpha < 1 else f"{alpha:g}"


#: The trajectory patterns of :func:`alliance_trajectories`, in the order their rules apply.
TRAJECTORY_PATTERNS = ("V-shaped", "U-shaped", "linear growth", "linear decline", "stable")


@dataclass(eq=False, repr=False)
class AllianceTrajectories(Result):
    """Result of :func:`alliance_trajectories`.

    Attributes
    ----------
    table : DataFrame
        One row per patient: ``patient, n_sessions, mean, slope, slope_p, quadratic,
        quadratic_p, vertex_session, r2_linear, r2_quadratic, repaired_rupture, pattern``
        (``to_frame()`` returns a copy).
    alliance, session : str
        The alliance and session columns.
    min_sessions : int
        Patients with fewer scored sessions are not classified (pattern missing).
    alpha : float
        Significance level of the linear and quadratic terms.
    rupture_method : str or None
        The :func:`detect_ruptures` preset that defines a V.
    data : DataFrame
        ``patient``, the session column and the alliance column, for :meth:`plot`.
    """

    title = "Alliance trajectory patterns"

    table: pd.DataFrame
    alliance: str
    session: str
    min_sessions: int
    alpha: float
    rupture_method: str | None
    data: pd.DataFrame = field(repr=False)

    @property
    def n_not_classified(self) -> int:
        return int(self.table["pattern"].isna().sum())

    def counts(self) -> pd.DataFrame:
        """Patients per pattern: ``pattern, patients, percent`` (of those classified)."""
        n = self.table["pattern"].value_counts().reindex(list(TRAJECTORY_PATTERNS), fill_value=0)
        tot = int(n.sum())
        return pd.DataFrame({"pattern": list(TRAJECTORY_PATTERNS), "patients": n.to_numpy(int),
                             "percent": 100 * n.to_numpy(float) / tot if tot else np.nan})

    def _headline(self) -> str:
        c = self.counts()
        return (f"{int(c['patients'].sum())} patients classified: "
                + ", ".join(f"{r.pattern} {r.patients}" for r in c.itertuples()))

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def _tables(self) -> list:
        c = self.counts()
        c["percent"] = [fmt_pct(v) for v in c["percent"]]
        return [("Patients by pattern", c.astype(str))]

    def methods(self) -> str:
        c = self.counts()
        found = "; ".join(f"{r.pattern} {r.patients} ({fmt_pct(r.percent)}%)" for r in c.itertuples())
        v = (f"V-shaped: a repaired rupture-repair episode ({self.rupture_method} rules of detect_ruptures; Stiles et al., "
             "2004); " if self.rupture_method is not None else "")
        return (
            f"Each patient's {self.alliance} series was fitted by ordinary least squares with a linear trend in session "
            "and, separately, a quadratic trend in the centred session, and labelled by the first rule that applied: "
            f"{v}U-shaped: a positive quadratic term with p < {_p_level(self.alpha)} and its vertex inside the observed sessions "
            f"(Kivlighan & Shaughnessy, 2000); linear growth or decline: a linear slope with p < {_p_level(self.alpha)}; "
            f"otherwise stable. Patients with fewer than {max(self.min_sessions, 4)} scored sessions were not "
            f"classified ({self.n_not_classified}). Of {int(c['patients'].sum())} patients classified: {found}."
        )

    def accounting(self) -> pd.DataFrame:
        n = len(self.table)
        return accounting_frame("patients", n - self.n_not_classified,
                                {f"fewer than {max(self.min_sessions, 4)} scored sessions": self.n_not_classified})

    def plot(self, *, ax=None, min_n: int = 3, **kw):
        """The session-by-session trajectories coloured by pattern, one mean line and 95% band
        per pattern (:func:`~alliance_stats.plot_trajectories` with ``hue="pattern"``);
        unclassified patients are not drawn."""
        from ..plots.alliance import plot_trajectories

        d = self.data.merge(self.table[["patient", "pattern"]].dropna(), on="patient")
        return plot_trajectories(d, self.alliance, session=self.session, hue="pattern", min_n=min_n, ax=ax, **kw)


def alliance_trajectories(
    data: pd.DataFrame,
    alliance: str,
    *,
    patient: str = "patient",
    session: str = "session",
    min_sessions: int = 4,
    alpha: float = 0.05,
    rupture_method: str | None = "stiles2004",
) -> AllianceTrajectories:
    """Growth terms and a pattern label for each patient's alliance series.

    Parameters
    ----------
    data : DataFrame
        One row per patient x session, sorted. Not modified.
    alliance : str
        Alliance score column.
    min_sessions : int
        Patients with fewer scored sessions keep their row, with the pattern and the growth
        terms missing.
    alpha : float
        Significance level of the linear and quadratic terms.
    rupture_method : str or None
        Preset of :func:`detect_ruptures` that defines a V (rupture-repair) pattern; None
        skips that check.

    Returns
    -------
    AllianceTrajectories
        ``.table`` (also ``to_frame()``), per patient: ``patient, n_sessions, mean, slope,
        slope_p`` (linear OLS on session), ``quadratic, quadratic_p, vertex_session`` (OLS on
        centred session and its square), ``r2_linear, r2_quadratic, repaired_rupture`` and
        ``pattern``; ``counts()`` per pattern, ``accounting()`` of the patients not
        classified, ``methods()`` and ``plot()`` (trajectories coloured by pattern).

    Notes
    -----
    The pattern is the first rule that applies:

    1. ``V-shaped``: a repaired rupture-repair episode (``rupture_method``; Stiles et al. 2004);
    2. ``U-shaped``: a positive quadratic term with p < alpha and its vertex (lowest point)
       inside the observed sessions: high-low-high, the pattern Kivlighan & Shaughnessy (2000)
       linked to better outcome;
    3. ``linear growth`` / ``linear decline``: a linear slope with p < alpha;
    4. ``stable``.

    An inverted U (low-high-low) is not a pattern of its own; it falls under rules 3-4.
    """
    check_option("rupture_method", rupture_method, tuple(sorted(RUPTURE_PRESETS)) + (None,))
    codes, uniq, sv, a = _prepare(data, alliance, patient, session)
    ok = ~np.isnan(a)
    c, x, y = codes[ok], sv[ok].astype(float), a[ok]
    P = len(uniq)
    n = np.bincount(c, minlength=P).astype(float)
    enough = n >= max(min_sessions, 4)
    with np.errstate(invalid="ignore", divide="ignore"):
        xm = np.bincount(c, weights=x, minlength=P) / n
        ym = np.bincount(c, weights=y, minlength=P) / n
    xc = x - xm[c]
    yc = y - ym[c]
    S = lambda w: np.bincount(c, weights=w, minlength=P)  # noqa: E731
    sxx, sxy, syy = S(xc * xc), S(xc * yc), S(yc * yc)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = sxy / sxx
        rss1 = syy - slope * sxy
        se1 = np.sqrt(np.maximum(rss1, 0) / (n - 2) / sxx)
        t1 = slope / se1
        p1 = 2 * stats.t.sf(np.abs(t1), n - 2)
    # quadratic on centred x: y = b0 + b1 xc + b2 (xc^2 - mean(xc^2))
    q = xc * xc
    qm = S(q) / np.where(n > 0, n, 1)
    qc = q - qm[c]
    M = np.zeros((P, 2, 2))
    M[:, 0, 0], M[:, 0, 1], M[:, 1, 1] = sxx, S(xc * qc), S(qc * qc)
    M[:, 1, 0] = M[:, 0, 1]
    r = np.stack([sxy, S(qc * yc)], axis=1)
    quad = np.full(P, np.nan)
    quad_p = np.full(P, np.nan)
    rss2 = np.full(P, np.nan)
    lin2 = np.full(P, np.nan)
    good = enough & (np.abs(np.linalg.det(M)) > 1e-12)
    if good.any():
        Mi = np.linalg.inv(M[good])
        b = np.einsum("pij,pj->pi", Mi, r[good])
        rss = syy[good] - np.einsum("pi,pi->p", b, r[good])
        df = n[good] - 3
        with np.errstate(invalid="ignore", divide="ignore"):
            se2 = np.sqrt(np.maximum(rss, 0) / df * Mi[:, 1, 1])
            quad_p[good] = 2 * stats.t.sf(np.abs(b[:, 1] / se2), df)
        quad[good], lin2[good], rss2[good] = b[:, 1], b[:, 0], rss
    with np.errstate(invalid="ignore", divide="ignore"):
        vertex = xm - lin2 / (2 * quad)
        r2_lin = 1 - rss1 / syy
        r2_quad = 1 - rss2 / syy
    lo = np.full(P, np.inf)
    hi = np.full(P, -np.inf)
    np.minimum.at(lo, c, x)
    np.maximum.at(hi, c, x)
    rep = np.zeros(P, bool)
    if rupture_method is not None:
        ep = detect_ruptures(data, alliance, patient=patient, session=session, method=rupture_method, min_sessions=min_sessions)
        ep = ep.episodes
        if len(ep):
            rep_ids = set(ep.loc[ep["repaired"].astype(bool), "patient"])
            rep = np.array([u in rep_ids for u in uniq])
    pattern = np.where(
        rep, "V-shaped",
        np.where((quad > 0) & (quad_p < alpha) & (vertex > lo) & (vertex < hi), "U-shaped",
                 np.where((p1 < alpha) & (slope > 0), "linear growth",
                          np.where((p1 < alpha) & (slope < 0), "linear decline", "stable"))),
    ).astype(object)
    pattern[~enough] = None
    out = pd.DataFrame({
        "patient": uniq, "n_sessions": n.astype(int), "mean": ym, "slope": slope, "slope_p": p1,
        "quadratic": quad, "quadratic_p": quad_p, "vertex_session": vertex, "r2_linear": r2_lin,
        "r2_quadratic": r2_quad, "repaired_rupture": rep, "pattern": pattern,
    })
    for col in ("slope", "slope_p", "r2_linear"):
        out.loc[~enough, col] = np.nan
    series = pd.DataFrame({"patient": data[patient].to_numpy(), session: data[session].to_numpy(),
                           alliance: data[alliance].to_numpy()})
    return AllianceTrajectories(table=out, alliance=str(alliance), session=str(session), min_sessions=int(min_sessions),
                                alpha=float(alpha), rupture_method=rupture_method, data=series)


@dataclass(repr=False)
class RuptureOutcomeResult(Result):
    """Result of :func:`rupture_outcome`.

    Attributes
    ----------
    table : DataFrame
        Model coefficients: ``term, estimate, se, statistic, df, p, ci_low, ci_high``.
    groups : DataFrame
        Per status (none / repaired / unrepaired): ``n``, mean first and last outcome, mean
        and SD of the change.
    effects : DataFrame
        Contrasts (repaired vs none, unrepaired vs none, repaired vs unrepaired) with
        estimate, SE, statistic, df, p and ``r_equivalent`` = t / sqrt(t^2 + df) (Rosenthal
        1991), signed so that a positive r means better outcome, comparable to the
        meta-analytic rupture-resolution r = .29 (Eubanks, Muran & Safran 2018).
    excluded : dict
        Patients left out, by reason.
    model : str
        What was fitted.
    data : DataFrame
        One row per patient analysed: first and last outcome, status, change.
    outcome : str
        The outcome column.
    analysis : {"ancova", "change"}
    higher_is_better : bool
        Direction of the outcome, as given.
    rules : dict
        The rupture-detection rules of the episodes (threshold, SD source, ...).
    """

    table: pd.DataFrame
    groups: pd.DataFrame
    effects: pd.DataFrame
    excluded: dict
    model: str
    data: pd.DataFrame
    outcome: str = ""
    analysis: str = "ancova"
    higher_is_better: bool = False
    rules: dict = field(default_factory=dict)

    title = "Rupture-repair and outcome"

    def _headline(self) -> str:
        n = ", ".join(f"{s} {k}" for s, k in zip(self.groups["status"], self.groups["n"]))
        return f"{self.model}; n = {int(self.groups['n'].sum())} patients ({n})"

    def to_frame(self) -> pd.DataFrame:
        """The status contrasts: ``contrast, estimate, se, statistic, df, p, ci_low, ci_high,
        r_equivalent`` (95% CIs from t on df)."""
        e = self.effects.copy()
        crit = stats.t.ppf(0.975, e["df"].to_numpy(float))
        e.insert(6, "ci_low", e["estimate"] - crit * e["se"])
        e.insert(7, "ci_high", e["estimate"] + crit * e["se"])
        return e

    def to_apa(self, digits: int | None = None) -> pd.DataFrame:
        """APA-style table of the status contrasts: b, SE, t, df, p, 95% CI and the r-equivalent."""
        d = 2 if digits is None else check_whole_number("digits", digits, lo=0)
        e = self.to_frame()
        return pd.DataFrame({
            "Contrast": e["contrast"],
            "b": [fmt_num(v, d) for v in e["estimate"]],
            "SE": [fmt_num(v, d) for v in e["se"]],
            "t": [fmt_num(v, d) for v in e["statistic"]],
            "df": [fmt_df(v) for v in e["df"]],
            "p": [apa_p(v) for v in e["p"]],
            "95% CI": [fmt_ci(a, b, d) for a, b in zip(e["ci_low"], e["ci_high"])],
            "r (equivalent)": [fmt_num(v, d, leading_zero=False) for v in e["r_equivalent"]],
        })

    def _tables(self) -> list[tuple[str, pd.DataFrame]]:
        g = self.groups
        return [("Outcome by rupture-repair status", pd.DataFrame({
            "Status": g["status"].astype(str), "n": g["n"].astype(int),
            "First": [fmt_num(x) for x in g["mean_first"]], "Last": [fmt_num(x) for x in g["mean_last"]],
            "Change M": [fmt_num(x) for x in g["mean_change"]], "Change SD": [fmt_num(x) for x in g["sd_change"]]}))]

    def methods(self) -> str:
        """A methods-and-results paragraph: status groups, the model, the contrasts with their
        r-equivalents, and the patients left out."""
        from ..plots import score_label

        out = score_label(self.outcome) if self.outcome else "the outcome"
        r = self.rules
        rule = ""
        if r.get("threshold") is not None:
            rule = (f" (episodes detected with a {r['threshold']:g}-SD threshold"
                    + (f", {r['sd_source']} SD" if r.get("sd_source") else "") + ")")
        n = ", ".join(f"{s}: n = {k}" for s, k in zip(self.groups["status"], self.groups["n"]))
        what = (f"the last {out} score adjusted for the first (ANCOVA)" if self.analysis == "ancova"
                else f"the change in {out} from the first to the last score")
        s = [f"Patients were grouped by rupture-repair status{rule}: none (no episode), repaired (every episode "
             f"repaired), unrepaired (at least one episode not repaired) ({n}).",
             f"Status was related to {what}: {self.model}."]
        parts = [f"{row['contrast']}: b = {fmt_num(row['estimate'])}, 95% CI {fmt_ci(row['ci_low'], row['ci_high'])}, "
                 f"t({fmt_df(row['df'])}) = {fmt_num(row['statistic'])}, p {apa_p(row['p'], eq=True)}, "
                 f"r = {fmt_num(row['r_equivalent'], leading_zero=False)}" for _, row in self.to_frame().iterrows()]
        s.append("; ".join(parts) + ".")
        s.append("The r-equivalent, t / sqrt(t² + df) (Rosenthal, 1991), is signed so that a positive value means a "
                 f"better outcome ({'higher' if self.higher_is_better else 'lower'} {out} is better).")
        left = {k: v for k, v in self.excluded.items() if v}
        if left:
            s.append("Patients left out: " + "; ".join(f"{k}: {v}" for k, v in left.items()) + ".")
        return " ".join(s)

    def accounting(self) -> pd.DataFrame:
        """Patients analysed and left out, by reason."""
        return accounting_frame("patients", int(self.groups["n"].sum()), self.excluded)

    def plot(self, *, ax=None, **kw):
        """Mean change in outcome by rupture-repair status with 95% CIs; see
        :func:`alliance_stats.plot_rupture_outcome`."""
        from ..plots import plot_rupture_outcome

        return plot_rupture_outcome(self, ax=ax, **kw)


def rupture_outcome(
    data: pd.DataFrame,
    episodes: RuptureEpisodes,
    *,
    outcome: str,
    patient: str = "patient",
    session: str = "session",
    therapist: str | None = None,
    analysis: str = "ancova",
    higher_is_better: bool = False,
) -> RuptureOutcomeResult:
    """Relate rupture-repair status to treatment outcome.

    Parameters
    ----------
    data : DataFrame
        Session table with the outcome measured per session. Not modified.
    episodes : RuptureEpisodes
        From :func:`detect_ruptures` on the same patients.
    outcome : str
        Outcome column (e.g. ``phq9_total``).
    therapist : str, optional
        Therapist column: adds a random intercept per therapist (REML with :func:`lmm`;
        Satterthwaite t tests as lmerTest).
    analysis : {"ancova", "change"}
        ``ancova``: last outcome ~ first outcome + status; ``change``: (last - first) ~ status.
    higher_is_better : bool
        Direction of the outcome (False for symptom scores such as the PHQ-9), used to sign
        ``r_equivalent`` so that positive means better outcome.

    Returns
    -------
    RuptureOutcomeResult

    Notes
    -----
    Status per assessable patient: ``none`` (no episode), ``repaired`` (every episode
    repaired), ``unrepaired`` (at least one episode not repaired). First and last outcome are
    the patient's first and last sessions with an outcome score. Patients not assessable for
    ruptures, or with fewer than two outcome scores, are excluded and counted.
    """
    import statsmodels.formula.api as smf

    res = _episodes(episodes)
    episodes, not_assessable = res.episodes, list(res.not_assessable)
    check_option("analysis", analysis, ("ancova", "change"))
    require_frame(data)
    need_columns(data, {role: c for role, c in (("outcome", outcome), ("patient", patient), ("session", session),
                                                ("therapist", therapist)) if c is not None})
    d = data[[c for c in (patient, session, outcome, therapist) if c is not None]].copy()
    d[outcome] = numeric_column(d, outcome)
    d = d.dropna(subset=[outcome]).sort_values([patient, session], kind="stable")
    g = d.groupby(patient, sort=False)
    per = pd.DataFrame({"first": g[outcome].first(), "last": g[outcome].last(), "n_scores": g[outcome].size()})
    if therapist is not None:
        th = data.groupby(patient)[therapist].agg(lambda s: s.iloc[0] if s.nunique() == 1 else np.nan)
        per["therapist"] = th.reindex(per.index)
    all_patients = pd.Index(data[patient].dropna().unique())
    per = per.reindex(all_patients)
    excluded = {
        "not assessable for ruptures": int(per.index.isin(not_assessable).sum()),
        "fewer than two outcome scores": int(((per["n_scores"].fillna(0) < 2) & ~per.index.isin(not_assessable)).sum()),
    }
    keep = (per["n_scores"].fillna(0) >= 2) & ~per.index.isin(not_assessable)
    if therapist is not None:
        multi = keep & per["therapist"].isna()
        excluded["seen by more than one therapist"] = int(multi.sum())
        keep &= ~multi
    per = per[keep].copy()
    ep = episodes.groupby("patient")["repaired"].agg(["size", "all"])
    status = np.where(~per.index.isin(ep.index), "none", np.where(ep.reindex(per.index)["all"].fillna(False).astype(bool), "repaired", "unrepaired"))
    per["status"] = pd.Categorical(status, categories=["none", "repaired", "unrepaired"])
    per["change"] = per["last"] - per["first"]
    present = [s for s in ["none", "repaired", "unrepaired"] if (per["status"] == s).sum() >= 2]
    if "none" not in present or len(present) < 2:
        raise InsufficientDataError(
            f"need at least two patients without ruptures and two in another status; found "
            f"{per['status'].value_counts().to_dict()}"
        )
    small = per["status"].value_counts()
    for st_name in ("repaired", "unrepaired"):
        if st_name not in present and small.get(st_name, 0) > 0:
            excluded[f"in a status group of fewer than 2 patients ({st_name})"] = int(small[st_name])
    per = per[per["status"].isin(present)].copy()
    per["status"] = per["status"].cat.remove_unused_categories()
    rhs = "status" + (" + first" if analysis == "ancova" else "")
    lhs = "last" if analysis == "ancova" else "change"
    formula = f"{lhs} ~ {rhs}"
    sign = 1.0 if higher_is_better else -1.0
    eff = []
    if therapist is not None:
        from .lmm import lmm

        fit = lmm(formula + " + (1 | therapist)", per.reset_index(), reml=True)
        table = fit.fixed.rename(columns={"t": "statistic"})[["term", "estimate", "se", "statistic", "df", "p", "ci_low", "ci_high"]].copy()
        table["term"] = table["term"].str.replace("[T.", "[", regex=False)
        model = f"{formula} + (1 | therapist), REML, Satterthwaite df (alliance-stats lmm = lme4/lmerTest)"

        def contrast(name, w):
            c = fit.contrast({k.replace("status[", "status[T."): v for k, v in w.items()})
            eff.append({"contrast": name, "estimate": c["estimate"], "se": c["se"], "statistic": c["t"], "df": c["df"], "p": c["p"],
                        "r_equivalent": sign * c["t"] / np.sqrt(c["t"] ** 2 + c["df"])})
    else:
        fit = smf.ols(formula, per.reset_index()).fit()
        dfres = float(fit.df_resid)
        params, cov = fit.params, fit.cov_params()
        model = f"{formula} (OLS)"
        dist = stats.t(dfres)
        rename = lambda n: n.replace("[T.", "[")  # noqa: E731
        crit = dist.ppf(0.975)
        table = pd.DataFrame({"term": [rename(n) for n in params.index], "estimate": params.to_numpy(), "se": fit.bse.to_numpy()})
        table["statistic"] = table["estimate"] / table["se"]
        table["df"] = dfres
        table["p"] = 2 * dist.sf(np.abs(table["statistic"]))
        table["ci_low"] = table["estimate"] - crit * table["se"]
        table["ci_high"] = table["estimate"] + crit * table["se"]
        idx = {rename(n): n for n in params.index}

        def contrast(name, w):
            est = float(sum(params[idx[k]] * v for k, v in w.items()))
            var = float(sum(cov.loc[idx[a], idx[b]] * w[a] * w[b] for a in w for b in w))
            t = est / np.sqrt(var)
            eff.append({"contrast": name, "estimate": est, "se": np.sqrt(var), "statistic": t, "df": dfres, "p": float(2 * dist.sf(abs(t))),
                        "r_equivalent": sign * t / np.sqrt(t * t + dfres)})
    if "repaired" in present:
        contrast("repaired vs none", {"status[repaired]": 1.0})
    if "unrepaired" in present:
        contrast("unrepaired vs none", {"status[unrepaired]": 1.0})
    if "repaired" in present and "unrepaired" in present:
        contrast("repaired vs unrepaired", {"status[repaired]": 1.0, "status[unrepaired]": -1.0})
    grp = per.groupby("status", observed=True).agg(n=("change", "size"), mean_first=("first", "mean"), mean_last=("last", "mean"),
                                                   mean_change=("change", "mean"), sd_change=("change", "std")).reset_index()
    return RuptureOutcomeResult(table=table, groups=grp, effects=pd.DataFrame(eff), excluded=excluded, model=model,
                                data=per.reset_index().rename(columns={"index": patient}), outcome=outcome,
                                analysis=analysis, higher_is_better=bool(higher_is_better),
                                rules=dict(res.rules or {}))
