"""Simulated alliance studies with known true parameters."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .exceptions import OptionError
from .validation import check_number, check_whole_number

__all__ = ["simulate_study", "SimulatedStudy", "ALLIANCE_TYPES", "TREATMENT_PHASES"]

ALLIANCE_TYPES = ("magical", "working", "therapeutic", "structuralizing")
TREATMENT_PHASES = ("beginning", "middle", "termination")

# Default moves between alliance types from one session to the next: mostly staying, some
# progression, little regression (a stylized clinical picture; rows sum to 1).
DEFAULT_TYPE_TRANSITIONS = np.array(
    [
        [0.70, 0.25, 0.04, 0.01],
        [0.05, 0.75, 0.17, 0.03],
        [0.02, 0.08, 0.80, 0.10],
        [0.01, 0.04, 0.10, 0.85],
    ]
)
DEFAULT_TYPE_START = np.array([0.55, 0.40, 0.05, 0.0])
PQS_DISTRIBUTION = (5, 8, 12, 16, 18, 16, 12, 8, 5)
SURFACE_PARAMETERS = ("a1", "a2", "a3", "a4", "a5")
WAI_SR_MIDPOINT = 3.0  # the agreement surface is centred on the middle of the WAI-SR's 1-5 scale
SESSION_EVAL_PATIENT_SD = 0.4  # SD of each rater's patient-level intercept of the session evaluation
SESSION_EVAL_RESIDUAL_SD = 0.5  # SD of the session-level residual of the session evaluation


@dataclass
class SimulatedStudy:
    """A simulated study: the data and the truth that generated it.

    Attributes
    ----------
    sessions : DataFrame
        One row per attended session: ``therapist, patient, session, therapy, age, gender,
        phase, alliance_type``, WAI-SR client items ``wai1..wai12`` (1-5), CALPAS therapist
        items ``calpas1..calpas24`` (1-7), PHQ-9 items ``phq1..phq9`` (0-3); with
        ``therapist_alliance_r`` also the therapist's WAI-SR items ``wai_t1..wai_t12`` (1-5), and
        with ``agreement_surface`` the session evaluations ``session_eval_client`` and
        ``session_eval_therapist``.
    qsorts : DataFrame
        PQS sorts of a subset of sessions by two judges: ``therapist, patient, session,
        judge, therapy, pqs1..pqs100``.
    patients : DataFrame
        True patient-level values: trait alliance, baseline severity, improvement, planned
        and attended sessions, dropout, rupture status.
    episodes : DataFrame
        Planted rupture episodes: ``patient, pre_session, rupture_session, trough_session,
        n_decline_sessions, depth, repaired, repair_session``.
    truth : dict
        The generating parameters and realized rates.
    type_transitions : DataFrame
        True transition matrix between alliance types.
    """

    sessions: pd.DataFrame
    qsorts: pd.DataFrame
    patients: pd.DataFrame
    episodes: pd.DataFrame
    truth: dict
    type_transitions: pd.DataFrame = field(repr=False)

    def __repr__(self) -> str:
        t = self.truth
        return (
            f"SimulatedStudy({t['n_therapists']} therapists, {t['n_patients']} patients, "
            f"{len(self.sessions)} sessions, {len(self.episodes)} planted ruptures, "
            f"{len(self.qsorts)} Q-sorts, seed={t['seed']})"
        )


def _piles_from_scores(scores: np.ndarray, distribution) -> np.ndarray:
    """Forced-distribution piles (1..len) from latent item scores, one row per sort."""
    ranks = np.argsort(np.argsort(scores, axis=1, kind="stable"), axis=1)
    bounds = np.cumsum(distribution)
    return np.searchsorted(bounds, ranks, side="right") + 1


# a1..a5 from b0..b5 (rows), as response_surface() defines them
_SURFACE_A = np.array([
    [0, 1, 1, 0, 0, 0],
    [0, 0, 0, 1, 1, 1],
    [0, 1, -1, 0, 0, 0],
    [0, 0, 0, 1, -1, 1],
    [0, 0, 0, 1, 0, -1],
], dtype=float)


def _surface_coefficients(surface) -> tuple[np.ndarray, np.ndarray]:
    """a1..a5 and b0..b5 (b0 = 0) of the planted agreement surface from a mapping of a1..a5."""
    from collections.abc import Mapping

    fix = 'give a mapping of response-surface parameters, e.g. {"a1": 0.5, "a4": -0.6} (keys a1..a5; missing keys are 0)'
    if not isinstance(surface, Mapping):
        raise OptionError("agreement_surface", surface, hint=fix)
    unknown = [k for k in surface if k not in SURFACE_PARAMETERS]
    if unknown:
        raise OptionError("agreement_surface", surface, hint=f"unknown key(s) {', '.join(map(repr, unknown))}; " + fix)
    a = np.array([check_number(f"agreement_surface[{k!r}]", surface.get(k, 0.0)) for k in SURFACE_PARAMETERS])
    # the five a's and b1..b5 are one-to-one: invert the rows a1..a5 of _SURFACE_A on b1..b5
    return a, np.r_[0.0, np.linalg.solve(_SURFACE_A[:, 1:], a)]


def _dynamic_series(trait, w, w_innov, D, attended, wai_bias, wai_noise, wai_missing, alliance_ar, feedback, outcome_ar,
                    within_effect, noise):
    """Alliance and symptoms generated session by session (feedback and carry-over), from the
    same random draws as the static simulation. Returns (latent alliance, WAI-SR items,
    observed WAI-SR mean, symptom deviations from the expected course)."""
    P, S = w.shape
    w = w.copy()
    latent = np.empty((P, S))
    wai = np.empty((P, S, 12))
    wai_obs = np.empty((P, S))
    e = np.zeros((P, S))
    for s in range(S):
        if s > 0:
            w[:, s] = alliance_ar * w[:, s - 1] + feedback * e[:, s - 1] + w_innov[:, s]
        latent[:, s] = trait + w[:, s] + D[:, s]
        items = np.clip(np.round(latent[:, s, None] + wai_bias + wai_noise[:, s]), 1, 5)
        items[wai_missing[:, s]] = np.nan
        wai[:, s] = items
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            obs = np.nanmean(items, axis=1)
        wai_obs[:, s] = np.where(np.isnan(obs), latent[:, s], obs)
        lag_dev = np.where(attended[:, s - 1], wai_obs[:, s - 1] - trait, 0.0) if s > 0 else 0.0
        e[:, s] = (outcome_ar * e[:, s - 1] if s > 0 else 0.0) + within_effect * lag_dev + noise[:, s]
    return latent, wai, wai_obs, e


def simulate_study(
    *,
    n_therapists: int = 20,
    patients_per_therapist: int = 8,
    max_sessions: int = 20,
    min_sessions: int = 6,
    seed=None,
    alliance_mean: float = 3.8,
    alliance_sd_between: float = 0.5,
    alliance_sd_within: float = 0.25,
    alliance_ar: float = 0.3,
    therapist_share: float = 0.15,
    between_r: float = 0.28,
    within_effect: float = -1.5,
    baseline_mean: float = 15.0,
    baseline_sd: float = 4.0,
    improvement_mean: float = 6.0,
    improvement_sd: float = 4.0,
    residual_sd: float = 2.0,
    rupture_rate: float = 0.06,
    rupture_depth: float = 1.0,
    repair_prob: float = 0.65,
    multi_session_prob: float = 0.25,
    repair_effect: float = 2.0,
    unrepaired_effect: float = -1.0,
    dropout_rate: float = 0.15,
    missed_session_rate: float = 0.03,
    missing_item_rate: float = 0.01,
    item_sd: float = 0.35,
    pqs_fraction: float = 0.15,
    type_transitions=None,
    feedback: float = 0.0,
    outcome_ar: float = 0.0,
    dropout_alliance: float = 0.0,
    dropout_unrepaired: float = 0.0,
    therapist_alliance_r: float | None = None,
    therapist_alliance_offset: float = 0.0,
    agreement_surface=None,
) -> SimulatedStudy:
    """Simulate therapists -> patients -> sessions with known alliance-outcome parameters.

    Parameters
    ----------
    n_therapists, patients_per_therapist : int
        Design; patients are nested in therapists.
    max_sessions, min_sessions : int
        Each patient's planned number of sessions is uniform on [min, max]; dropout and missed
        sessions make the attended sessions ragged.
    seed : int or None
        Same seed, same data.
    alliance_mean, alliance_sd_between, alliance_sd_within, alliance_ar : float
        Client-rated WAI-SR alliance (1-5 mean scale): trait mean and SD between patients,
        SD of the within-patient (state) deviations, and their session-to-session AR(1)
        coefficient.
    therapist_share : float
        Therapist share of the between-patient alliance variance.
    between_r : float
        Latent correlation between a patient's trait alliance and their improvement (PHQ-9
        points, baseline minus end), before rupture effects; default near the meta-analytic
        r = .28 (Fluckiger et al. 2018).
    within_effect : float
        Within-patient lagged effect: PHQ-9 points at session t+1 per point of (observed)
        WAI-SR alliance at session t above the patient's own trait level. Negative = a better
        alliance is followed by fewer symptoms.
    baseline_mean, baseline_sd, improvement_mean, improvement_sd, residual_sd : float
        PHQ-9 at the first session, expected improvement by the planned last session (on a
        log-time curve), and session-level noise.
    rupture_rate : float
        Probability that a rupture starts at an eligible session (not the first two or the
        last two).
    rupture_depth : float
        Mean drop of the latent alliance in a rupture (WAI-SR points).
    repair_prob, multi_session_prob : float
        Share of ruptures that are repaired (back to the pre-rupture level), and share that
        unfold as a 2-3 session decline rather than a single-session V.
    repair_effect, unrepaired_effect : float
        Extra improvement (PHQ-9 points) of patients with at least one repaired rupture, and
        with an unrepaired one (negative: less improvement).
    dropout_rate, missed_session_rate, missing_item_rate : float
        Share of patients who drop out early, of sessions missed (gaps), and of item
        responses left blank.
    item_sd : float
        Noise of an item response around the latent alliance.
    pqs_fraction : float
        Share of patients whose first, middle and last sessions are Q-sorted by two judges.
    type_transitions : array (4 x 4), optional
        Transition matrix between the alliance types (magical, working, therapeutic,
        structuralizing).
    feedback : float
        Symptom -> next-session alliance feedback: WAI-SR points added to the latent alliance at
        session t+1 per PHQ-9 point by which the patient's symptoms at session t lie above their
        expected course (Falkenström et al. 2013 found effects in both directions). Negative =
        worse symptoms are followed by a weaker alliance. 0 (default) = no feedback.
    outcome_ar : float
        Autoregression of the PHQ-9 deviations from the patient's expected course from one
        session to the next (0 = none, the default). With it, symptoms at session t carry
        ``outcome_ar`` of the previous session's deviation, including the alliance effect.
    dropout_alliance : float
        Dropout depends on the first session's (latent) alliance: the log-odds of dropping out
        rise by this much per WAI-SR point below ``alliance_mean`` (the base rate stays
        ``dropout_rate`` at the mean). 0 (default) = dropout unrelated to the alliance.
    dropout_unrepaired : float
        Probability that a patient with an unrepaired rupture drops out one or two sessions
        after its trough. 0 (default) = no such dropout.

    With the four parameters above at 0 the data are exactly those of earlier versions for the
    same seed. When any is set, the symptoms ``e`` (deviations from the expected course) and
    the alliance states ``w`` follow, session by session,
    ``w_t = alliance_ar * w_t-1 + feedback * e_t-1 + innovation`` and
    ``e_t = outcome_ar * e_t-1 + within_effect * (observed alliance_t-1 - trait) + noise``.

    therapist_alliance_r : float or None
        Adds the therapist's rating of the same sessions on the WAI-SR's items and 1-5 scale
        (``wai_t1..wai_t12``; score them with ``als.score(sessions, "wai-sr", items="wai_t{}")``).
        The therapist's latent rating is ``alliance_mean + therapist_alliance_offset +
        r * (client's latent - alliance_mean) + sqrt(1 - r^2) * (own patient effect + own session
        noise)``, the two independent parts with the client's SDs (``alliance_sd_between``,
        ``alliance_sd_within``): it correlates r with the client's latent rating between patients
        and from session to session (ruptures aside). None (default) = no therapist WAI-SR.
    therapist_alliance_offset : float
        The therapist's mean rating minus the client's (WAI-SR points; therapists tend to rate
        the alliance lower than their clients). Used only with ``therapist_alliance_r``.
    agreement_surface : mapping, optional
        Plants an effect of the two ratings and their (dis)agreement on a session evaluation
        that each rater gives after each session (``session_eval_client``,
        ``session_eval_therapist``; e.g. session depth), as response-surface parameters
        ``{"a1": ..., "a2": ..., "a3": ..., "a4": ..., "a5": ...}`` (missing keys = 0; needs
        ``therapist_alliance_r``). With x the client's and y the therapist's observed WAI-SR mean
        (the mean of the answered items) minus 3, the scale midpoint, the client's evaluation is
        ``b1 x + b2 y + b3 x^2 + b4 x y + b5 y^2 + u + e`` with b1 = (a1 + a3) / 2,
        b2 = (a1 - a3) / 2, b3 = (a2 + a4) / 4 + a5 / 2, b4 = (a2 - a4) / 2,
        b5 = (a2 + a4) / 4 - a5 / 2 (so a1 = b1 + b2, a2 = b3 + b4 + b5, a3 = b1 - b2,
        a4 = b3 - b4 + b5, a5 = b3 - b5, as :func:`alliance_stats.response_surface` reports them),
        a patient intercept u (SD 0.4) and a session residual e (SD 0.5). The therapist's
        evaluation follows the same surface with the roles swapped (own rating as x). E.g.
        ``{"a1": 0.5, "a4": -0.6}``: both rise with the shared level of the alliance and fall the
        more client and therapist disagree. Fit with ``response_surface(..., patient=...)``; the
        linear part (a2 = a4 = a5 = 0) is an APIM with actor effect b1 and partner effect b2 for
        both roles. None (default) = no session evaluations.

    The therapist ratings and the session evaluations are drawn after everything else: for the
    same seed the other columns are those of the simulation without them, and ``.truth`` gains
    their keys only when they are simulated.

    Returns
    -------
    SimulatedStudy
        ``.sessions``, ``.qsorts``, ``.patients``, ``.episodes``, ``.truth``,
        ``.type_transitions``.
    """
    n_therapists = check_whole_number("n_therapists", n_therapists, 1)
    patients_per_therapist = check_whole_number("patients_per_therapist", patients_per_therapist, 1)
    max_sessions = check_whole_number("max_sessions", max_sessions, 2, 10_000)
    min_sessions = check_whole_number("min_sessions", min_sessions, 2, 10_000)
    if seed is not None and not isinstance(seed, (np.random.SeedSequence, np.random.Generator)):
        seed = check_whole_number("seed", seed, 0)
    for nm, v in (
        ("alliance_mean", alliance_mean), ("alliance_sd_between", alliance_sd_between),
        ("alliance_sd_within", alliance_sd_within), ("alliance_ar", alliance_ar), ("within_effect", within_effect),
        ("baseline_mean", baseline_mean), ("baseline_sd", baseline_sd), ("improvement_mean", improvement_mean),
        ("improvement_sd", improvement_sd), ("residual_sd", residual_sd), ("rupture_depth", rupture_depth),
        ("repair_effect", repair_effect), ("unrepaired_effect", unrepaired_effect), ("item_sd", item_sd),
        ("between_r", between_r), ("therapist_share", therapist_share), ("rupture_rate", rupture_rate),
        ("repair_prob", repair_prob), ("dropout_rate", dropout_rate), ("missed_session_rate", missed_session_rate),
        ("missing_item_rate", missing_item_rate), ("pqs_fraction", pqs_fraction), ("multi_session_prob", multi_session_prob),
    ):
        check_number(nm, v)
    for nm, v in (("alliance_sd_between", alliance_sd_between), ("alliance_sd_within", alliance_sd_within),
                  ("baseline_sd", baseline_sd), ("improvement_sd", improvement_sd), ("residual_sd", residual_sd),
                  ("item_sd", item_sd), ("rupture_depth", rupture_depth)):
        check_number(nm, v, 0)
    check_number("alliance_ar", alliance_ar, -1, 1, lo_open=True, hi_open=True)
    if min_sessions > max_sessions:
        raise OptionError("min_sessions", min_sessions, hint=f"it must not exceed max_sessions={max_sessions}")
    for nm, v in (
        ("between_r", between_r),
        ("therapist_share", therapist_share),
        ("rupture_rate", rupture_rate),
        ("repair_prob", repair_prob),
        ("dropout_rate", dropout_rate),
        ("missed_session_rate", missed_session_rate),
        ("missing_item_rate", missing_item_rate),
        ("pqs_fraction", pqs_fraction),
        ("multi_session_prob", multi_session_prob),
        ("dropout_unrepaired", dropout_unrepaired),
    ):
        if nm == "between_r":
            check_number(nm, v, -1, 1, lo_open=True, hi_open=True)
        else:
            check_number(nm, v, 0, 1)
    check_number("outcome_ar", outcome_ar, -1, 1, lo_open=True, hi_open=True)
    check_number("feedback", feedback)
    check_number("dropout_alliance", dropout_alliance)
    if therapist_alliance_r is not None:
        therapist_alliance_r = check_number("therapist_alliance_r", therapist_alliance_r, -1, 1,
                                            hint="give the correlation of the therapist's and the client's latent ratings, "
                                            "between -1 and 1, or None for no therapist WAI-SR ratings")
    therapist_alliance_offset = check_number("therapist_alliance_offset", therapist_alliance_offset)
    surface_b = None
    if agreement_surface is not None:
        surface_a, surface_b = _surface_coefficients(agreement_surface)
        if therapist_alliance_r is None:
            raise OptionError("agreement_surface", agreement_surface,
                              hint="the surface needs the therapist's ratings: set therapist_alliance_r= as well (e.g. 0.3)")
    dynamic = feedback != 0 or outcome_ar != 0
    fix = "give a 4 x 4 matrix of probabilities whose rows sum to 1"
    try:
        P_T = np.asarray(DEFAULT_TYPE_TRANSITIONS if type_transitions is None else type_transitions, dtype=float)
    except (TypeError, ValueError):
        raise OptionError("type_transitions", type_transitions, hint=fix) from None
    if P_T.shape != (4, 4) or not np.all(np.isfinite(P_T)) or np.any(P_T < 0) or not np.allclose(P_T.sum(axis=1), 1):
        raise OptionError("type_transitions", type_transitions, hint=fix)

    rng = np.random.default_rng(seed)
    T, P, S = n_therapists, n_therapists * patients_per_therapist, max_sessions
    ther = np.repeat(np.arange(T), patients_per_therapist)
    therapy = np.where(np.arange(T) % 2 == 0, "CBT", "PDT")

    # patient level ----------------------------------------------------------------------
    th_eff = rng.normal(0, np.sqrt(therapist_share) * alliance_sd_between, T)
    pa_eff = rng.normal(0, np.sqrt(1 - therapist_share) * alliance_sd_between, P)
    trait = alliance_mean + th_eff[ther] + pa_eff
    z_a = (trait - alliance_mean) / alliance_sd_between
    baseline = np.clip(rng.normal(baseline_mean, baseline_sd, P), 5, 27)
    improvement = improvement_mean + improvement_sd * (
        between_r * z_a + np.sqrt(1 - between_r**2) * rng.standard_normal(P)
    )
    planned = rng.integers(min_sessions, max_sessions + 1, P)
    u_drop = rng.random(P)
    frac_drop = rng.uniform(0.3, 0.8, P)
    u_missed = rng.random((P, S))

    # within-patient alliance states -----------------------------------------------------
    w = np.empty((P, S))
    w[:, 0] = rng.normal(0, alliance_sd_within, P)
    innov = np.sqrt(1 - alliance_ar**2) * alliance_sd_within
    w_innov = np.zeros((P, S))
    for s in range(1, S):
        w_innov[:, s] = rng.normal(0, innov, P)
        w[:, s] = alliance_ar * w[:, s - 1] + w_innov[:, s]

    # dropout (the base rate, optionally raised by a weak first-session alliance) ---------------
    if dropout_alliance == 0:
        dropped = u_drop < dropout_rate
    else:
        base = np.log(dropout_rate / (1 - dropout_rate)) if 0 < dropout_rate < 1 else (-np.inf if dropout_rate == 0 else np.inf)
        early = trait + w[:, 0]
        dropped = u_drop < 1 / (1 + np.exp(-(base + dropout_alliance * (alliance_mean - early))))
    n_att = np.where(dropped, np.maximum(2, (planned * frac_drop).astype(int)), planned)
    sess_idx = np.arange(S)[None, :]
    attended = sess_idx < n_att[:, None]
    missed = (u_missed < missed_session_rate) & (sess_idx > 0) & (sess_idx < n_att[:, None] - 1)
    attended &= ~missed

    # ruptures ---------------------------------------------------------------------------
    D = np.zeros((P, S))
    free_from = np.full(P, 2)  # first 0-based session where a rupture may start
    blocked = np.zeros(P, dtype=bool)  # after an unrepaired rupture no further episodes
    episodes = []
    for s in range(2, S):
        cand = (~blocked) & (s >= free_from) & (s <= n_att - 3) & attended[:, s] & attended[:, s - 1]
        start = cand & (rng.random(P) < rupture_rate)
        for i in np.flatnonzero(start):
            depth = max(0.4, rng.normal(rupture_depth, 0.15 * rupture_depth))
            k = int(rng.integers(2, 4)) if rng.random() < multi_session_prob else 1
            k = min(k, n_att[i] - 2 - s)
            k = max(k, 1)
            for j in range(k):
                D[i, s + j] -= depth * (j + 1) / k
            repaired = rng.random() < repair_prob
            if repaired:
                repair_s = s + k
                free_from[i] = repair_s + 2
            else:
                D[i, s + k :] -= 0.7 * depth
                repair_s = None
                blocked[i] = True
            episodes.append(
                {
                    "patient": i + 1,
                    "pre_session": s,  # 1-based number of the session before the drop
                    "rupture_session": s + 1,
                    "trough_session": s + k,
                    "n_decline_sessions": k,
                    "depth": depth,
                    "repaired": repaired,
                    "repair_session": None if repair_s is None else repair_s + 1,
                }
            )
    ep = pd.DataFrame(
        episodes,
        columns=[
            "patient", "pre_session", "rupture_session", "trough_session",
            "n_decline_sessions", "depth", "repaired", "repair_session",
        ],
    )
    any_rep = np.zeros(P, dtype=bool)
    any_unrep = np.zeros(P, dtype=bool)
    if len(ep):
        any_rep[ep.loc[ep.repaired, "patient"].to_numpy() - 1] = True
        any_unrep[ep.loc[~ep.repaired, "patient"].to_numpy() - 1] = True
    improvement = improvement + repair_effect * any_rep + unrepaired_effect * any_unrep
    rupture_dropout = np.zeros(P, dtype=bool)
    if dropout_unrepaired > 0 and len(ep):
        for r in ep.loc[~ep.repaired].itertuples():
            i = r.patient - 1
            if rng.random() < dropout_unrepaired:
                last = r.trough_session + int(rng.integers(1, 3))  # attends one or two sessions after the trough
                if last < n_att[i]:
                    n_att[i] = last
                    rupture_dropout[i] = True
        attended &= sess_idx < n_att[:, None]
        attended[rupture_dropout, n_att[rupture_dropout] - 1] = True  # the last session before leaving is attended

    latent = trait[:, None] + w + D

    # WAI-SR client items ------------------------------------------------------------------
    wai_bias = rng.normal(0, 0.15, 12)
    wai_noise = rng.normal(0, item_sd, (P, S, 12))
    wai = np.clip(np.round(latent[:, :, None] + wai_bias + wai_noise), 1, 5)
    wai_missing = rng.random(wai.shape) < missing_item_rate
    wai[wai_missing] = np.nan
    with np.errstate(invalid="ignore"):
        wai_obs = np.nanmean(np.where(np.isnan(wai), np.nan, wai), axis=2)
    wai_obs = np.where(np.isnan(wai_obs), latent, wai_obs)

    # PHQ-9 ----------------------------------------------------------------------------------
    frac = np.log1p(sess_idx) / np.log(np.maximum(planned, 2))[:, None]
    mu = baseline[:, None] - improvement[:, None] * frac
    noise = rng.normal(0, residual_sd, (P, S))
    if dynamic:
        # session by session: symptoms feed back into the next alliance, and carry over
        latent, wai, wai_obs, e = _dynamic_series(trait, w, w_innov, D, attended, wai_bias, wai_noise, wai_missing, alliance_ar,
                                                  feedback, outcome_ar, within_effect, noise)
        y = mu + e
    else:
        lag_dev = np.zeros((P, S))
        lag_dev[:, 1:] = np.where(attended[:, :-1], wai_obs[:, :-1] - trait[:, None], 0.0)
        y = mu + within_effect * lag_dev + noise
    total = np.clip(np.round(y), 0, 27).astype(int)
    q, r = np.divmod(total, 9)
    order = np.argsort(rng.random((P, S, 9)), axis=2)
    rank = np.argsort(order, axis=2)
    phq = (q[:, :, None] + (rank < r[:, :, None])).astype(float)
    phq[rng.random(phq.shape) < missing_item_rate] = np.nan

    # CALPAS therapist items -------------------------------------------------------------------
    c_lat = 5.0 + 0.8 * (latent - alliance_mean) + rng.normal(0, 0.3, (P, S))
    calpas = np.clip(np.round(c_lat[:, :, None] + rng.normal(0, 0.6, (P, S, 24))), 1, 7)
    calpas[rng.random(calpas.shape) < missing_item_rate] = np.nan

    # alliance types and phases ---------------------------------------------------------------
    cum = np.cumsum(P_T, axis=1)
    states = np.empty((P, S), dtype=int)
    states[:, 0] = np.searchsorted(np.cumsum(DEFAULT_TYPE_START), rng.random(P), side="right")
    for s in range(1, S):
        u = rng.random(P)
        states[:, s] = (u[:, None] > cum[states[:, s - 1]]).sum(axis=1)
    states = np.minimum(states, 3)
    third = n_att[:, None] / 3.0
    phase = np.where(sess_idx < third, 0, np.where(sess_idx < 2 * third, 1, 2))

    # assemble -----------------------------------------------------------------------------
    pi, si = np.nonzero(attended)
    age = np.round(rng.normal(38, 12, P).clip(18, 80)).astype(int)
    gender = rng.choice(["female", "male", "diverse"], P, p=[0.62, 0.36, 0.02])
    sessions = pd.DataFrame(
        {
            "therapist": ther[pi] + 1,
            "patient": pi + 1,
            "session": si + 1,
            "therapy": therapy[ther[pi]],
            "age": age[pi],
            "gender": gender[pi],
            "phase": pd.Categorical(np.asarray(TREATMENT_PHASES)[phase[pi, si]], categories=TREATMENT_PHASES),
            "alliance_type": pd.Categorical(np.asarray(ALLIANCE_TYPES)[states[pi, si]], categories=ALLIANCE_TYPES),
        }
    )
    for j in range(12):
        sessions[f"wai{j + 1}"] = wai[pi, si, j]
    for j in range(24):
        sessions[f"calpas{j + 1}"] = calpas[pi, si, j]
    for j in range(9):
        sessions[f"phq{j + 1}"] = phq[pi, si, j]

    # PQS -----------------------------------------------------------------------------------------
    protos = {t: rng.normal(0, 1, 100) for t in ("CBT", "PDT")}
    load = np.zeros(100)
    linked = rng.choice(100, 12, replace=False)
    load[linked] = rng.choice([-0.8, 0.8], 12)
    rated = np.flatnonzero(rng.random(P) < pqs_fraction)
    rows = []
    for i in rated:
        att = np.flatnonzero(attended[i])
        for s in sorted({att[0], att[len(att) // 2], att[-1]}):
            za = (wai_obs[i, s] - alliance_mean) / alliance_sd_between
            base = protos[therapy[ther[i]]] + load * za + rng.normal(0, 0.7, 100)
            for judge in (1, 2):
                piles = _piles_from_scores((base + rng.normal(0, 0.5, 100))[None, :], PQS_DISTRIBUTION)[0]
                rows.append([ther[i] + 1, i + 1, s + 1, f"J{judge}", therapy[ther[i]], *piles])
    qsorts = pd.DataFrame(
        rows, columns=["therapist", "patient", "session", "judge", "therapy"] + [f"pqs{k}" for k in range(1, 101)]
    )

    # therapist WAI-SR and session evaluations (drawn last: the draws above stay as they were) ----------
    extra_truth = {}
    if therapist_alliance_r is not None:
        r_t = therapist_alliance_r
        own = rng.normal(0, alliance_sd_between, P)[:, None] + rng.normal(0, alliance_sd_within, (P, S))
        t_lat = alliance_mean + therapist_alliance_offset + r_t * (latent - alliance_mean) + np.sqrt(1 - r_t**2) * own
        wai_t = np.clip(np.round(t_lat[:, :, None] + rng.normal(0, 0.15, 12) + rng.normal(0, item_sd, (P, S, 12))), 1, 5)
        wai_t[rng.random(wai_t.shape) < missing_item_rate] = np.nan
        for j in range(12):
            sessions[f"wai_t{j + 1}"] = wai_t[pi, si, j]
        extra_truth.update(therapist_alliance_r=r_t, therapist_alliance_offset=therapist_alliance_offset)
        if surface_b is not None:
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                y_obs = np.nanmean(wai_t, axis=2)
            x_obs = wai_obs
            xc = x_obs - WAI_SR_MIDPOINT
            yc = np.where(np.isnan(y_obs), t_lat, y_obs) - WAI_SR_MIDPOINT
            b = surface_b
            for rater, (own_c, other_c) in (("client", (xc, yc)), ("therapist", (yc, xc))):
                z = (b[1] * own_c + b[2] * other_c + b[3] * own_c**2 + b[4] * own_c * other_c + b[5] * other_c**2
                     + rng.normal(0, SESSION_EVAL_PATIENT_SD, P)[:, None] + rng.normal(0, SESSION_EVAL_RESIDUAL_SD, (P, S)))
                sessions[f"session_eval_{rater}"] = z[pi, si]
            extra_truth["agreement_surface"] = {
                **{k: float(v) for k, v in zip(("b0", "b1", "b2", "b3", "b4", "b5"), b)},
                **{k: float(v) for k, v in zip(SURFACE_PARAMETERS, surface_a)},
                "center": WAI_SR_MIDPOINT,
                "patient_sd": SESSION_EVAL_PATIENT_SD,
                "residual_sd": SESSION_EVAL_RESIDUAL_SD,
            }

    patients = pd.DataFrame(
        {
            "therapist": ther + 1,
            "patient": np.arange(1, P + 1),
            "therapy": therapy[ther],
            "trait_alliance": trait,
            "therapist_alliance_effect": th_eff[ther],
            "baseline": baseline,
            "improvement": improvement,
            "planned_sessions": planned,
            "attended_sessions": attended.sum(axis=1),
            "last_session": n_att,
            "dropout": dropped | rupture_dropout,
            "dropout_after_rupture": rupture_dropout,
            "any_repaired_rupture": any_rep,
            "any_unrepaired_rupture": any_unrep,
        }
    )
    eligible = int(sum(max(0, n - 4) for n in n_att))
    truth = {
        "seed": seed,
        "n_therapists": T,
        "patients_per_therapist": patients_per_therapist,
        "n_patients": P,
        "n_sessions": int(attended.sum()),
        "max_sessions": max_sessions,
        "min_sessions": min_sessions,
        "alliance_mean": alliance_mean,
        "alliance_sd_between": alliance_sd_between,
        "alliance_sd_within": alliance_sd_within,
        "alliance_ar": alliance_ar,
        "therapist_share": therapist_share,
        "between_r": between_r,
        "within_effect": within_effect,
        "residual_sd": residual_sd,
        "rupture_rate": rupture_rate,
        "rupture_depth": rupture_depth,
        "repair_prob": repair_prob,
        "multi_session_prob": multi_session_prob,
        "repair_effect": repair_effect,
        "unrepaired_effect": unrepaired_effect,
        "dropout_rate": dropout_rate,
        "feedback": feedback,
        "outcome_ar": outcome_ar,
        "dropout_alliance": dropout_alliance,
        "dropout_unrepaired": dropout_unrepaired,
        "missed_session_rate": missed_session_rate,
        "missing_item_rate": missing_item_rate,
        "pqs_fraction": pqs_fraction,
        "n_ruptures": len(ep),
        "realized_rupture_rate": len(ep) / eligible if eligible else float("nan"),
        "pqs_linked_items": sorted((linked + 1).tolist()),
        **extra_truth,
    }
    return SimulatedStudy(
        sessions=sessions,
        qsorts=qsorts,
        patients=patients,
        episodes=ep,
        truth=truth,
        type_transitions=pd.DataFrame(P_T, index=list(ALLIANCE_TYPES), columns=list(ALLIANCE_TYPES)),
    )
