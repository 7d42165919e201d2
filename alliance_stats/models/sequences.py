"""Sequence models of session states: Markov transitions and lag-sequential analysis."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .._format import apa_p, fmt_est_ci, fmt_num
from .._result import Result, accounting_frame
from ..exceptions import ColumnError, InsufficientDataError, OptionError
from ..io import check_session_keys
from ..validation import check_whole_number, need_columns, require_frame
from ..simulate import ALLIANCE_TYPES, TREATMENT_PHASES

__all__ = ["transitions", "TransitionResult", "lag_sequential", "LagSequentialResult", "ALLIANCE_TYPES", "TREATMENT_PHASES"]


@dataclass(eq=False, repr=False)
class LagSequentialResult(Result):
    """Result of :func:`lag_sequential`.

    Attributes
    ----------
    table : DataFrame
        Per given -> target: ``given, target, lag, n_pairs, n_given, n_target,
        n_given_target, p_target_given, p_target, z, p, yules_q`` (``to_frame()`` is a copy).
    code : str
        The code column.
    lag : int
    pairs_not_counted : int
        Session pairs at the lag not counted because of a missed session or a missing code.
    """

    title = "Lag-sequential analysis"

    table: pd.DataFrame
    code: str
    lag: int
    pairs_not_counted: int

    def _headline(self) -> str:
        n = int(self.table["n_pairs"].iloc[0]) if len(self.table) else 0
        return f"{len(self.table)} transition(s) of {self.code!r} at lag {self.lag}, {n} pairs"

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def methods(self) -> str:
        t = self.table
        parts = [f"{g} -> {tg}: P(T|G) = {fmt_num(pt, leading_zero=False)} vs base rate {fmt_num(pb, leading_zero=False)}, "
                 f"z = {fmt_num(z)}, p {apa_p(p, eq=True)}, Yule's Q = {fmt_num(q, leading_zero=False)}"
                 for g, tg, pt, pb, z, p, q in zip(t["given"], t["target"], t["p_target_given"], t["p_target"], t["z"], t["p"], t["yules_q"])]
        return (f"Lag-sequential analysis of {self.code} at lag {self.lag} (Bakeman & Quera, 2011): transitional "
                "probabilities were compared with the base rate of the target by the Allison-Liker (1982) adjusted "
                f"residual z, and association given by Yule's Q; {int(t['n_pairs'].iloc[0]) if len(t) else 0} pairs of "
                f"sessions {self.lag} apart ({self.pairs_not_counted} not counted: a missed session or a missing code). "
                + "; ".join(parts) + ".")

    def accounting(self) -> pd.DataFrame:
        n = int(self.table["n_pairs"].iloc[0]) if len(self.table) else 0
        return accounting_frame("session pairs", n, {"missed session or missing code": self.pairs_not_counted})

    def plot(self, *, ax=None):
        """Adjusted residual z of each given -> target with the +-1.96 band."""
        from ..plots.sequences import plot_lag_sequential

        return plot_lag_sequential(self, ax=ax)



def _pairs(data, code, patient, session, lag=1):
    """Codes at t and t + lag for every pair of sessions of a patient exactly `lag` apart."""
    require_frame(data)
    need_columns(data, {"state/code": code, "patient": patient, "session": session})
    d = data[[patient, session, code]]
    s = check_session_keys(d, [patient], session, what="code")
    key = pd.DataFrame({"p": d[patient].to_numpy(), "s": s.to_numpy(dtype=np.int64), "c": d[code].to_numpy()})
    later = key.assign(s=key["s"] - lag)
    m = key.merge(later, on=["p", "s"], suffixes=("_from", "_to"))
    n_possible = int(key.groupby("p")["s"].count().sub(lag).clip(lower=0).sum())
    return m, key, n_possible


def _wilson(k, n, level):
    z = stats.norm.ppf(1 - (1 - level) / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@dataclass(repr=False)
class TransitionResult(Result):
    """First-order Markov model of moves between session states.

    Attributes
    ----------
    counts, probabilities, ci_low, ci_high : DataFrame
        From-state (rows) x to-state (columns); probabilities are row proportions with 95%
        Wilson intervals.
    stationary : Series
        Long-run share of sessions in each state (NaN when the chain is not irreducible).
    expected_duration : Series
        Expected number of consecutive sessions in a state, 1 / (1 - p_ii).
    test : dict
        Likelihood-ratio chi-square (G^2) of first-order dependence against independence of
        successive states, with df = (S - 1)^2 and p, and Pearson's X^2.
    n_transitions, n_breaks : int
        Transitions counted, and pairs of sessions not counted because of a missed session or
        a missing state.
    level : float
        Confidence level of the Wilson intervals.
    state : str or None
        The column that held the states (for labels).
    """

    counts: pd.DataFrame
    probabilities: pd.DataFrame
    ci_low: pd.DataFrame
    ci_high: pd.DataFrame
    stationary: pd.Series
    expected_duration: pd.Series
    test: dict
    n_transitions: int
    n_breaks: int
    level: float = 0.95
    state: str | None = None

    title = "Transitions between session states"

    def _headline(self) -> str:
        t = self.test
        return (f"{len(self.counts)} states, {self.n_transitions} transitions; first-order dependence "
                f"G²({t['df']}) = {fmt_num(t['g2'])}, p {apa_p(t['p'], eq=True)}")

    def to_frame(self) -> pd.DataFrame:
        """One row per pair of states: ``from, to, count, probability, ci_low, ci_high`` (the
        row proportion and its Wilson interval)."""
        idx = pd.MultiIndex.from_product([self.counts.index, self.counts.columns], names=["from", "to"])
        return pd.DataFrame({"count": self.counts.to_numpy().ravel(), "probability": self.probabilities.to_numpy().ravel(),
                             "ci_low": self.ci_low.to_numpy().ravel(), "ci_high": self.ci_high.to_numpy().ravel()},
                            index=idx).reset_index()

    def to_apa(self, digits: int | None = None) -> pd.DataFrame:
        """APA-style transition table: one row per from-state with its number of transitions,
        and per to-state the probability with its Wilson CI in brackets."""
        d = 2 if digits is None else check_whole_number("digits", digits, lo=0)
        rows = []
        for a in self.probabilities.index:
            row = {"From": str(a), "n": int(self.counts.loc[a].sum())}
            for b in self.probabilities.columns:
                p = self.probabilities.at[a, b]
                row[str(b)] = "NA" if not np.isfinite(p) else fmt_est_ci(
                    p, self.ci_low.at[a, b], self.ci_high.at[a, b], d, leading_zero=False)
            rows.append(row)
        return pd.DataFrame(rows)

    def _tables(self) -> list[tuple[str, pd.DataFrame]]:
        per = pd.DataFrame({"State": [str(x) for x in self.expected_duration.index],
                            "Expected consecutive sessions": [fmt_num(x) for x in self.expected_duration]})
        if self.stationary.notna().all():
            per["Long-run share"] = [fmt_num(x, leading_zero=False) for x in self.stationary]
        return [("States", per)]

    def methods(self) -> str:
        """A methods-and-results paragraph: the Markov model, what counts as a transition, the
        intervals, the test of first-order dependence, durations and the long-run shares."""
        t = self.test
        lv = int(round(self.level * 100))
        states = ", ".join(str(x) for x in self.counts.index)
        s = [f"Moves between {len(self.counts)} session states ({states}) were described as a first-order Markov "
             f"chain: {self.n_transitions} transitions between consecutive sessions of the same patient were counted"
             + (f" ({self.n_breaks} pairs of sessions broken by a missed session or a missing state were not counted, "
                "so no transition bridges a gap)" if self.n_breaks else "") + ".",
             f"Transition probabilities are row proportions with {lv}% Wilson confidence intervals.",
             f"The likelihood-ratio test of first-order dependence against independence of successive states gave "
             f"G²({t['df']}) = {fmt_num(t['g2'])}, p {apa_p(t['p'], eq=True)} (Pearson X²({t['df']}) = "
             f"{fmt_num(t['x2'])}, p {apa_p(t['p_x2'], eq=True)})." if t["df"] > 0 else
             "The test of first-order dependence needs at least two states left and entered; it was not computed."]
        dur = ", ".join(f"{k} {fmt_num(v)}" for k, v in self.expected_duration.items())
        s.append(f"Expected consecutive sessions in each state, 1 / (1 - p_ii): {dur}.")
        if self.stationary.notna().all():
            s.append("Long-run shares of sessions (stationary distribution): "
                     + ", ".join(f"{k} {fmt_num(v, leading_zero=False)}" for k, v in self.stationary.items()) + ".")
        return " ".join(s)

    def accounting(self) -> pd.DataFrame:
        """Pairs of consecutive sessions counted as transitions, and those not counted."""
        return accounting_frame("session pairs", self.n_transitions,
                                {"broken by a missed session or a missing state": self.n_breaks})

    def plot(self, *, ax=None, **kw):
        """Heatmap of the transition probabilities; see :func:`alliance_stats.plot_transitions`."""
        from ..plots import plot_transitions

        return plot_transitions(self, ax=ax, **kw)


def transitions(
    data: pd.DataFrame,
    state: str,
    *,
    patient: str = "patient",
    session: str = "session",
    states=None,
    level: float = 0.95,
) -> TransitionResult:
    """Transitions between session states (alliance types, treatment phases, any category).

    Parameters
    ----------
    data : DataFrame
        One row per patient x session. Not modified.
    state : str
        Column holding each session's state.
    patient, session : str
        ID columns.
    states : sequence, optional
        The states in order, e.g. ``als.ALLIANCE_TYPES`` or ``als.TREATMENT_PHASES``; default the
        column's categories, or its sorted values. A value outside ``states`` is an error.
    level : float
        Confidence level of the Wilson intervals.

    Returns
    -------
    TransitionResult

    Notes
    -----
    Only sessions t and t + 1 of the same patient that both have a state count as a
    transition: a missed session or a missing state breaks the sequence, never bridges it.
    """
    m, key, n_possible = _pairs(data, state, patient, session)
    if states is None:
        col = data[state]
        states = list(col.cat.categories) if isinstance(col.dtype, pd.CategoricalDtype) else sorted(col.dropna().unique().tolist(), key=str)
    states = list(states)
    present = key["c"].dropna()
    unknown = ~present.isin(states)
    if unknown.any():
        vals = sorted(set(present[unknown].astype(str)))
        raise ColumnError(f"column {state!r} holds value(s) {vals[:10]} that are not among the states {states}")
    ok = m["c_from"].notna() & m["c_to"].notna()
    mm = m[ok]
    n_breaks = int(n_possible - len(mm))
    S = len(states)
    idx = {s: i for i, s in enumerate(states)}
    C = np.zeros((S, S))
    np.add.at(C, (mm["c_from"].map(idx).to_numpy(int), mm["c_to"].map(idx).to_numpy(int)), 1)
    row = C.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        P = C / row
    lo, hi = _wilson(C, row, level)
    # stationary distribution: pi P = pi, sum pi = 1 (only for chains whose every state is left)
    stat = np.full(S, np.nan)
    if np.all(row > 0):
        A = np.vstack([P.T - np.eye(S), np.ones(S)])
        b = np.r_[np.zeros(S), 1.0]
        sol, *_ = np.linalg.lstsq(A, b, rcond=None)
        if np.allclose(A @ sol, b, atol=1e-9) and np.all(sol >= -1e-12):
            stat = np.clip(sol, 0, None)
    with np.errstate(divide="ignore"):
        dur = 1 / (1 - np.diag(P))
    # independence test on states that occur as origin and destination
    N = C.sum()
    use_r, use_c = C.sum(axis=1) > 0, C.sum(axis=0) > 0
    Cu = C[np.ix_(use_r, use_c)]
    E = Cu.sum(axis=1, keepdims=True) * Cu.sum(axis=0, keepdims=True) / N if N else Cu
    with np.errstate(invalid="ignore", divide="ignore"):
        g2 = 2 * np.nansum(np.where(Cu > 0, Cu * np.log(Cu / E), 0.0))
        x2 = np.nansum((Cu - E) ** 2 / E)
    df = int((use_r.sum() - 1) * (use_c.sum() - 1))
    test = {"g2": float(g2), "x2": float(x2), "df": df, "p": float(stats.chi2.sf(g2, df)) if df > 0 else np.nan,
            "p_x2": float(stats.chi2.sf(x2, df)) if df > 0 else np.nan}
    frame = lambda a: pd.DataFrame(a, index=pd.Index(states, name="from"), columns=pd.Index(states, name="to"))  # noqa: E731
    return TransitionResult(
        counts=frame(C.astype(int)), probabilities=frame(P), ci_low=frame(lo), ci_high=frame(hi),
        stationary=pd.Series(stat, index=states, name="stationary"),
        expected_duration=pd.Series(dur, index=states, name="expected_sessions"),
        test=test, n_transitions=int(N), n_breaks=n_breaks, level=level, state=str(state),
    )


def lag_sequential(
    data: pd.DataFrame,
    code: str,
    *,
    given,
    target,
    lag: int = 1,
    patient: str = "patient",
    session: str = "session",
) -> LagSequentialResult:
    """Lag-sequential analysis: does code ``target`` follow code ``given`` more than chance?

    Parameters
    ----------
    data : DataFrame
        One row per patient x session (or segment: ``session`` is any whole-number order), one
        code per row. Not modified.
    code : str
        Code column (e.g. 3RS markers and resolution strategies).
    given, target : value or list of values
        Antecedent and consequent codes; every combination is tested.
    lag : int
        Distance in sessions (segments); pairs across a gap are not counted.

    Returns
    -------
    LagSequentialResult
        ``.table`` (also ``to_frame()``): per given -> target: ``n_pairs, n_given, n_target,
        n_given_target, p_target_given`` (transitional probability), ``p_target`` (its
        expected value: the base rate of the target), ``z`` (Allison-Liker adjusted residual),
        ``p`` (two-sided), ``yules_q``. ``pairs_not_counted`` counts session pairs at the lag
        that were not counted because of a missed session or a missing code.

    Notes
    -----
    With N pairs at the lag, P(G) and P(T) the base rates of the given code (at t) and the
    target (at t + lag): z = (P(T|G) - P(T)) / sqrt(P(T) (1 - P(T)) (1 - P(G)) / (N P(G)))
    (Allison & Liker 1982). Yule's Q = (ad - bc) / (ad + bc) from the 2 x 2 table of given
    vs not given at t and target vs not target at t + lag (Bakeman & Quera 2011).
    """
    lag = check_whole_number("lag", lag, 1)
    m, _, n_possible = _pairs(data, code, patient, session, lag=lag)
    m = m[m["c_from"].notna() & m["c_to"].notna()]
    n_not_counted = int(n_possible - len(m))
    N = len(m)
    if N == 0:
        raise InsufficientDataError(f"no pairs of codes {lag} session(s) apart; check the {session!r} order")
    givens = given if isinstance(given, (list, tuple)) else [given]
    targets = target if isinstance(target, (list, tuple)) else [target]
    for lab, vals, col in (("given", givens, "c_from"), ("target", targets, "c_to")):
        absent = [v for v in vals if not (m[col] == v).any()]
        if absent and len(absent) == len(vals):
            occur = tuple(sorted(m[col].unique().tolist(), key=str))
            raise OptionError(lab, absent[0] if len(absent) == 1 else absent, occur,
                              hint=f"the {lab} code(s) never occur at the lag positions")
    rows = []
    for g in givens:
        for t in targets:
            G = (m["c_from"] == g).to_numpy()
            T = (m["c_to"] == t).to_numpy()
            a = int((G & T).sum())
            b = int((G & ~T).sum())
            c = int((~G & T).sum())
            d = int((~G & ~T).sum())
            nG, nT = a + b, a + c
            pG, pT = nG / N, nT / N
            ptg = a / nG if nG else np.nan
            with np.errstate(invalid="ignore", divide="ignore"):
                z = (ptg - pT) / np.sqrt(pT * (1 - pT) * (1 - pG) / (N * pG))
                q = (a * d - b * c) / (a * d + b * c) if (a * d + b * c) else np.nan
            rows.append({"given": g, "target": t, "lag": int(lag), "n_pairs": N, "n_given": nG, "n_target": nT,
                         "n_given_target": a, "p_target_given": ptg, "p_target": pT, "z": z,
                         "p": 2 * stats.norm.sf(abs(z)) if np.isfinite(z) else np.nan, "yules_q": q})
    return LagSequentialResult(table=pd.DataFrame(rows), code=str(code), lag=int(lag), pairs_not_counted=n_not_counted)
