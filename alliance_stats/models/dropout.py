"""Early alliance and dropout: ``als.early_alliance_dropout``.

Does a weak alliance early in treatment predict that the patient leaves before the agreed end?
Sharf, Primavera & Diener (2010) pooled 11 studies (N = 1,301): d = .55 between completers and
dropouts. The function relates each patient's early alliance (mean, and linear slope, over the
first sessions) to dropout by logistic regression, with a therapist random intercept when the
therapist is given (:func:`alliance_stats.glmm`), and models the session-by-session hazard of
dropping out with the alliance of each session (discrete-time survival, logit link).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special, stats

from .._format import apa_p, fmt_ci, fmt_est_ci, fmt_num
from .._result import Result, accounting_frame
from ..exceptions import ColumnError, ModelSpecError, OptionError, SessionDataError, _fmt_labels
from .lmm.glmm import glmm

D_FACTOR = math.sqrt(3) / math.pi  # logit -> d (Chinn 2000): d = ln(OR) sqrt(3) / pi
Z975 = stats.norm.ppf(0.975)
SHARF_2010 = dict(k=11, n=1301, d=0.55)
TERTILES = ("low", "middle", "high")


@dataclass(repr=False)
class DropoutResult(Result):
    """Early alliance and dropout (see :func:`alliance_stats.early_alliance_dropout`).

    Attributes
    ----------
    effects : DataFrame
        Patient-level logistic models of dropout: model ("level": early mean; "level + slope":
        early mean and slope), term, estimate (log-odds per scale point), se, z, p, ci_low,
        ci_high, ``or`` (odds ratio per scale point) with or_low/or_high, ``sd`` (the predictor's
        SD over the included patients), ``or_sd`` (odds ratio per SD) with or_sd_low/or_sd_high,
        and ``d`` (d-equivalent of the per-SD odds ratio, ln(OR) sqrt(3)/pi) with d_low/d_high.
    hazard : DataFrame
        The discrete-time model of the hazard of leaving after each session: the same columns
        (model "hazard"; terms Intercept, log(session), alliance, covariates).
    predicted : DataFrame
        early_mean, p, p_low, p_high: predicted probability of dropout over the observed range
        of early alliance (covariates at their means, a typical therapist), 95% CI from the
        link scale.
    survival : DataFrame
        tertile (low, middle, high early alliance), session, at_risk, events, hazard_obs,
        survival_obs (life table), early_mean (the tertile's mean early alliance), hazard_model,
        survival_model (the hazard model at that alliance, covariates at their means).
    patients : DataFrame
        One row per included patient: patient, therapist, dropout, early_mean, early_slope,
        last_session, tertile, covariates.
    excluded : DataFrame
        patient, reason, for every patient left out (each patient once, under the first reason).
    n_patients, n_dropout, n_excluded : int
    person_periods, person_periods_dropped : int
        Rows of the hazard model, and session rows left out of it for want of an alliance
        rating (``events_dropped`` of them were the session after which the patient left).
    engine : str
        "glmm" (therapist random intercept, :func:`alliance_stats.glmm`) or "statsmodels"
        (logistic regression, statsmodels' GLM).
    fits : dict
        The fitted models by name (GLMMResult or statsmodels results).
    """

    effects: pd.DataFrame
    hazard: pd.DataFrame
    predicted: pd.DataFrame
    survival: pd.DataFrame
    patients: pd.DataFrame
    excluded: pd.DataFrame
    n_patients: int
    n_dropout: int
    n_excluded: int
    person_periods: int
    person_periods_dropped: int
    events_dropped: int
    sessions: tuple
    alliance: str
    dropout: str
    therapist: str | None
    covariates: tuple
    engine: str
    fits: dict = field(default_factory=dict)
    messages: list = field(default_factory=list)

    @property
    def excluded_counts(self) -> pd.Series:
        """Patients left out, by reason."""
        return self.excluded["reason"].value_counts(sort=False).rename("patients")

    def _main(self) -> pd.Series:
        e = self.effects
        return e[(e["model"] == "level") & (e["term"] == "early_mean")].iloc[0]

    # -- display ----------------------------------------------------------------------------
    title = "Early alliance and dropout"

    @property
    def n_obs(self) -> int:
        """Patients analysed."""
        return self.n_patients

    def _headline(self) -> str:
        return (f"{self.n_patients} patients analysed, {self.n_dropout} dropped out; {self.n_excluded} left out; early alliance: "
                f"mean (and slope) of {self.alliance} over sessions {', '.join(map(str, self.sessions))}; {self.engine}")

    def to_frame(self) -> pd.DataFrame:
        """Every term of the patient-level models of dropout and of the hazard model (a copy)."""
        return pd.concat([self.effects, self.hazard], ignore_index=True)

    def to_apa(self, digits: int | None = None) -> pd.DataFrame:
        """APA-style table of the alliance effects: model, predictor, b, SE, OR per scale point
        [95% CI], OR per SD [95% CI], d-equivalent, p."""
        digits = 2 if digits is None else int(digits)
        rows = pd.concat([self.effects, self.hazard])
        rows = rows[rows["term"].isin(["early_mean", "early_slope", "alliance"])]
        label = {"early_mean": "Early alliance (mean)", "early_slope": "Early alliance (slope)", "alliance": "Alliance (session)"}
        model = {"level": "Dropout: early level", "level + slope": "Dropout: early level and slope", "hazard": "Hazard of dropout per session"}
        return pd.DataFrame({
            "Model": [model[m] for m in rows["model"]],
            "Predictor": [label[t] for t in rows["term"]],
            "b": [fmt_num(v, digits) for v in rows["estimate"]],
            "SE": [fmt_num(v, digits) for v in rows["se"]],
            "OR [95% CI]": [fmt_est_ci(o, a, b, digits) for o, a, b in zip(rows["or"], rows["or_low"], rows["or_high"])],
            "OR per SD [95% CI]": [fmt_est_ci(o, a, b, digits) for o, a, b in zip(rows["or_sd"], rows["or_sd_low"], rows["or_sd_high"])],
            "d": [fmt_num(v, digits) for v in rows["d"]],
            "p": [apa_p(v) for v in rows["p"]],
        }).reset_index(drop=True)

    def _notes(self) -> list:
        return [f"Sharf, Primavera & Diener (2010): d = {SHARF_2010['d']:.2f} ({SHARF_2010['k']} studies, "
                f"N = {SHARF_2010['n']:,}); here |d| = {fmt_num(abs(self._main()['d']))}", *self.messages]

    def accounting(self) -> pd.DataFrame:
        """Patients analysed and left out by reason; patient-sessions of the hazard model and those
        left out for want of an alliance rating."""
        sessions = accounting_frame("patient-sessions (hazard model)", self.person_periods,
                                    {"no alliance rating at the session": self.person_periods_dropped})
        return accounting_frame("patients", self.n_patients, list(self.excluded_counts.items()), more=[sessions])

    def methods(self) -> str:
        """A methods-and-results paragraph (APA style) describing what was done and found."""
        s = ", ".join(str(x) for x in self.sessions)
        m = self._main()
        excl = "; ".join(f"{n} {r}" for r, n in self.excluded_counts.items())
        model = (f"a logistic mixed model with a random intercept for therapists (Laplace approximation; alliance-stats "
                 f"glmm, equivalent to lme4::glmer)" if self.engine == "glmm" else "logistic regression (statsmodels GLM)")
        covs = f", adjusting for {', '.join(self.covariates)}" if self.covariates else ""
        slope = ""
        if (self.effects["term"] == "early_slope").any():
            sl = self.effects[self.effects["term"] == "early_slope"].iloc[0]
            slope = (f" Adding the early slope, the change in alliance over sessions {s} was "
                     f"{'' if sl['p'] < 0.05 else 'not '}associated with dropout beyond its level "
                     f"(OR per SD = {fmt_num(sl['or_sd'])}, 95% CI {fmt_ci(sl['or_sd_low'], sl['or_sd_high'])}, p {apa_p(sl['p'], eq=True)}).")
        hz = self.hazard[self.hazard["term"] == "alliance"].iloc[0]
        return (
            f"Early alliance was the mean of the {self.alliance} ratings of sessions {s}, and its linear slope over "
            f"these sessions. Of {self.n_patients + self.n_excluded} patients, {self.n_patients} had an alliance rating "
            f"at each of these sessions and were analysed ({self.n_dropout} dropped out, "
            f"{100 * self.n_dropout / self.n_patients:.1f}%); {self.n_excluded} were left out ({excl}). Dropout "
            f"({self.dropout}) was regressed on early alliance by {model}{covs}. Odds ratios are given per scale point "
            f"and per standard deviation of early alliance (SD = {fmt_num(m['sd'])}), and converted to d = ln(OR) "
            f"\u221a3/\u03c0 (Chinn, 2000) for comparison with the meta-analysis of Sharf, Primavera and Diener (2010; "
            f"{SHARF_2010['k']} studies, N = {SHARF_2010['n']:,}, d = .55). Each SD higher early alliance went with "
            f"{'lower' if m['or_sd'] < 1 else 'higher'} odds of dropout, OR = {fmt_num(m['or_sd'])}, 95% CI "
            f"{fmt_ci(m['or_sd_low'], m['or_sd_high'])}, p {apa_p(m['p'], eq=True)} (per scale point OR = "
            f"{fmt_num(m['or'])}), d = {fmt_num(abs(m['d']))} (Sharf et al.: .55).{slope} In a discrete-time survival model "
            f"(logit link; {self.person_periods} patient-sessions from session {max(self.sessions)} on, baseline hazard "
            f"linear in log session), each scale point higher alliance at a session went with an OR of "
            f"{fmt_num(hz['or'])} (95% CI {fmt_ci(hz['or_low'], hz['or_high'])}, p {apa_p(hz['p'], eq=True)}) for "
            f"leaving after that session."
        )

    def plot(self, *, ax=None, kind: str = "probability"):
        """``kind="probability"``: predicted probability of dropout over early alliance with its
        95% CI and the patients' outcomes; ``kind="survival"``: :meth:`plot_survival`."""
        if kind == "survival":
            return self.plot_survival(ax=ax)
        if kind != "probability":
            raise OptionError("kind", kind, ("probability", "survival"))
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        p = self.predicted
        ax.fill_between(p["early_mean"], p["p_low"], p["p_high"], color="C0", alpha=0.2, lw=0)
        ax.plot(p["early_mean"], p["p"], color="C0")
        pt = self.patients
        ax.plot(pt["early_mean"], pt["dropout"] * 1.0, "|", color="0.3", ms=8, alpha=0.5)
        ax.set_ylim(-0.04, 1.04)
        ax.set_xlabel(f"early alliance ({self.alliance}, mean of sessions {', '.join(map(str, self.sessions))})")
        ax.set_ylabel("probability of dropout")
        return ax

    def plot_survival(self, *, ax=None):
        """Survival (staying in treatment) by session for the tertiles of early alliance: the
        hazard model's curves (lines) and the life table (steps)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        for k, (t, g) in enumerate(self.survival.groupby("tertile", sort=False)):
            ax.plot(g["session"], g["survival_model"], color=f"C{k}", label=f"{t} early alliance")
            ax.step(g["session"], g["survival_obs"], where="post", color=f"C{k}", ls="--", lw=0.9, alpha=0.8)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("session")
        ax.set_ylabel("proportion still in treatment")
        ax.legend(frameon=False, title="model (lines), life table (dashed)", fontsize="small", title_fontsize="small")
        return ax


# -- the function ----------------------------------------------------------------------------


def early_alliance_dropout(data: pd.DataFrame, *, alliance: str, dropout: str, patient: str = "patient",
                           session: str = "session", therapist: str | None = None, sessions=(1, 2, 3),
                           covariates=()) -> DropoutResult:
    """Early alliance as a predictor of dropout, with odds ratios, d-equivalents and survival curves.

    Parameters
    ----------
    data : DataFrame
        Session-level rows, one per patient and session (long format). ``data`` is not modified.
    alliance : str
        Column of the session's alliance score (e.g. the WAI-SR mean).
    dropout : str
        Column marking patients who left treatment before its agreed end: 0/1 (or True/False),
        the same in every row of a patient. The patient's last session row is taken as the
        session after which they left.
    patient, session : str
        Patient ID and session number columns.
    therapist : str, optional
        Therapist ID column: adds a therapist random intercept (:func:`alliance_stats.glmm`).
        Without it, the models are ordinary logistic regressions (statsmodels' GLM).
    sessions : tuple of int
        The early sessions (default 1, 2, 3). Patients without an alliance rating at each of
        them are left out, counted and listed (``.excluded``), with the reason: left before the
        last early session, or a missing rating.
    covariates : tuple of str
        Numeric patient-level columns (the same in every row of a patient) to adjust for.

    Returns
    -------
    DropoutResult
        ``.effects``, ``.hazard``, ``.predicted``, ``.survival``, ``.patients``, ``.excluded``;
        ``.plot()``, ``.plot_survival()``, ``.to_apa()``, ``.methods()``, ``.summary()``.

    Notes
    -----
    Patient level: ``dropout ~ early_mean (+ early_slope) + covariates (+ (1 | therapist))``,
    where early_mean is the mean and early_slope the least-squares slope per session of the
    alliance over ``sessions``. Odds ratios per scale point are exp(b), per SD exp(b SD) with
    the SD of the predictor over the analysed patients; the d-equivalent is
    ln(OR per SD) sqrt(3)/pi (Chinn, 2000: the logistic distribution's SD is pi/sqrt(3)), signed
    (negative when higher alliance lowers the odds of dropout); compare its size with Sharf,
    Primavera & Diener's (2010) d = .55. The conversion assumes a logistic latent variable and
    treats the per-SD contrast as a standardised group difference: an approximation.

    Hazard (discrete-time survival, Singer & Willett 2003): the analysed patients' session rows
    from the last early session on are the periods at risk; the event is leaving after that
    session (the dropouts' last session). ``event ~ log(session) + alliance + covariates
    (+ (1 | therapist))``, with the alliance rated at that session; rows without a rating are
    left out and counted. Survival curves: the life table of each tertile of early alliance,
    and the model's S(t) = prod (1 - h(s)) with the alliance held at the tertile's mean early
    alliance.

    Checked against R's glm and lme4::glmer on simulated data
    (tests/reference/make_glmm_reference.R).
    """
    if not isinstance(data, pd.DataFrame):
        raise ModelSpecError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    covariates = (covariates,) if isinstance(covariates, str) else tuple(covariates)
    sessions = _check_sessions(sessions)
    cols = [patient, session, alliance, dropout] + ([therapist] if therapist is not None else []) + list(covariates)
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise ColumnError(f"column(s) {_fmt_labels(missing)} not found; available columns: {_fmt_labels(list(data.columns), limit=25)}")
    if len(set(cols)) < len(cols):
        raise ModelSpecError(f"the same column is given for two roles: {_fmt_labels(cols)}")
    d = data[cols].copy()
    d.columns = ["patient", "session", "alliance", "dropout"] + (["therapist"] if therapist is not None else []) + [f"_cov{i}" for i in range(len(covariates))]
    cov_names = dict(zip([f"_cov{i}" for i in range(len(covariates))], covariates))
    _validate(d, data.index, patient, session, alliance, dropout, therapist, cov_names)

    # per patient ------------------------------------------------------------------------------
    d = d.sort_values(["patient", "session"], kind="stable")
    g = d.groupby("patient", sort=False)
    per = g.agg(last_session=("session", "max"), dropout=("dropout", "first"))
    if therapist is not None:
        per["therapist"] = g["therapist"].first()
    for c in cov_names:
        per[c] = g[c].first()
    early = d[d["session"].isin(sessions) & d["alliance"].notna()]
    n_early = early.groupby("patient")["session"].nunique().reindex(per.index, fill_value=0)
    per["early_mean"] = early.groupby("patient")["alliance"].mean().reindex(per.index)
    per["early_slope"] = _slopes(early).reindex(per.index) if len(sessions) >= 2 else np.nan

    reasons = pd.Series(pd.NA, index=per.index, dtype=object)
    reasons[per["dropout"].isna()] = f"missing {dropout}"
    for c, name in cov_names.items():
        reasons[reasons.isna() & per[c].isna()] = f"missing {name}"
    reasons[reasons.isna() & (per["last_session"] < max(sessions))] = f"left before session {max(sessions)}"
    reasons[reasons.isna() & (n_early < len(sessions))] = f"no {alliance} rating at one of sessions {', '.join(map(str, sessions))}"
    excluded = pd.DataFrame({"patient": reasons.index[reasons.notna()], "reason": reasons[reasons.notna()].to_numpy()})
    inc = per[reasons.isna()].copy()
    inc["dropout"] = inc["dropout"].astype(int)
    if len(inc) == 0:
        raise ModelSpecError(f"no patient has an {alliance!r} rating at each of sessions {', '.join(map(str, sessions))}; "
                             "check the session numbering or pass the early sessions the data have (sessions=...)")
    if inc["dropout"].nunique() < 2:
        raise ModelSpecError(f"all {len(inc)} analysed patients have {dropout} = {inc['dropout'].iloc[0]}: dropout cannot be related to anything")
    if len(inc) < 10:
        raise ModelSpecError(f"only {len(inc)} patients have ratings at each early session: too few for a logistic model")

    covs = list(cov_names)
    engine = "glmm" if therapist is not None else "statsmodels"
    fits, effects = {}, []
    specs = [("level", ["early_mean"] + covs)]
    if len(sessions) >= 2:
        specs.append(("level + slope", ["early_mean", "early_slope"] + covs))
    for name, xs in specs:
        tab, fit = _logit(inc, "dropout", xs, therapist is not None)
        fits[name] = fit
        effects.append(_ratios(tab.assign(model=name), inc, cov_names))
    effects = pd.concat(effects, ignore_index=True)

    # predicted probabilities over the range of early alliance -----------------------------------------
    lvl = fits["level"]
    beta, V = _coef(lvl)
    grid = np.linspace(inc["early_mean"].min(), inc["early_mean"].max(), 49)
    Xg = np.column_stack([np.ones(len(grid)), grid] + [np.full(len(grid), inc[c].mean()) for c in covs])
    eta = Xg @ beta
    se = np.sqrt(np.einsum("ij,jk,ik->i", Xg, V, Xg))
    predicted = pd.DataFrame({"early_mean": grid, "p": special.expit(eta), "p_low": special.expit(eta - Z975 * se),
                              "p_high": special.expit(eta + Z975 * se)})

    # discrete-time hazard -----------------------------------------------------------------------------
    pp = d[d["patient"].isin(inc.index) & (d["session"] >= max(sessions))].copy()
    pp["event"] = ((pp["session"] == pp["patient"].map(inc["last_session"])) & (pp["patient"].map(inc["dropout"]) == 1)).astype(int)
    for c in covs:
        pp[c] = pp["patient"].map(inc[c])
    used = pp[pp["alliance"].notna()].assign(log_session=lambda x: np.log(x["session"]))
    if used["event"].nunique() < 2:
        raise ModelSpecError("no dropout event among the rated sessions after the early ones: the hazard cannot be modelled")
    htab, hfit = _logit(used, "event", ["log_session", "alliance"] + covs, therapist is not None)
    fits["hazard"] = hfit
    hazard = _ratios(htab.assign(model="hazard"), used, cov_names)
    hazard["term"] = hazard["term"].replace({"log_session": "log(session)"})

    # survival by tertile of early alliance --------------------------------------------------------
    inc["tertile"] = pd.qcut(inc["early_mean"], 3, labels=list(TERTILES)).astype(str)
    hb, _ = _coef(hfit)
    periods = np.arange(max(sessions), int(pp["session"].max()) + 1)
    pp["tertile"] = pp["patient"].map(inc["tertile"])
    surv = []
    for t in TERTILES:
        sub = pp[pp["tertile"] == t]
        at_risk = sub.groupby("session").size().reindex(periods, fill_value=0).to_numpy()
        events = sub.groupby("session")["event"].sum().reindex(periods, fill_value=0).to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            h_obs = np.where(at_risk > 0, events / np.maximum(at_risk, 1), np.nan)
        s_obs = np.cumprod(np.where(np.isnan(h_obs), 1.0, 1 - h_obs))
        s_obs[np.cumsum(at_risk[::-1])[::-1] == 0] = np.nan  # no one left at risk
        a = inc.loc[inc["tertile"] == t, "early_mean"].mean()
        Xh = np.column_stack([np.ones(len(periods)), np.log(periods), np.full(len(periods), a)]
                             + [np.full(len(periods), inc[c].mean()) for c in covs])
        h_mod = special.expit(Xh @ hb)
        surv.append(pd.DataFrame({"tertile": t, "session": periods, "at_risk": at_risk, "events": events, "hazard_obs": h_obs,
                                  "survival_obs": s_obs, "early_mean": a, "hazard_model": h_mod, "survival_model": np.cumprod(1 - h_mod)}))
    survival = pd.concat(surv, ignore_index=True)

    patients = inc.reset_index().rename(columns=cov_names)
    patients = patients[["patient"] + (["therapist"] if therapist is not None else []) + ["dropout", "early_mean", "early_slope", "last_session", "tertile"] + list(covariates)]
    rename = {"patient": patient, "therapist": therapist} if therapist is not None else {"patient": patient}
    messages = []
    if len(sessions) < 2:
        messages.append("one early session: no slope model")
    n_lost = int(((pp["alliance"].isna()) & (pp["event"] == 1)).sum())
    if n_lost:
        messages.append(f"{n_lost} dropout event(s) fell on a session without an alliance rating and are not in the hazard model")
    return DropoutResult(
        effects=effects, hazard=hazard, predicted=predicted, survival=survival,
        patients=patients.rename(columns={k: v for k, v in rename.items() if v is not None and k != v}),
        excluded=excluded.rename(columns={"patient": patient}) if patient != "patient" else excluded,
        n_patients=int(len(inc)), n_dropout=int(inc["dropout"].sum()), n_excluded=int(len(excluded)),
        person_periods=int(len(used)), person_periods_dropped=int(pp["alliance"].isna().sum()), events_dropped=n_lost,
        sessions=tuple(sessions), alliance=alliance, dropout=dropout, therapist=therapist, covariates=covariates,
        engine=engine, fits=fits, messages=messages,
    )


def _check_sessions(sessions):
    try:
        s = tuple(sessions)
    except TypeError:
        s = (sessions,)
    ok = len(s) > 0 and all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in s) and len(set(s)) == len(s)
    if not ok:
        raise OptionError("sessions", sessions, hint="give the early session numbers as whole numbers, e.g. sessions=(1, 2, 3)")
    return tuple(sorted(int(x) for x in s))


def _validate(d, index, patient, session, alliance, dropout, therapist, cov_names):
    if not pd.api.types.is_numeric_dtype(d["session"]) or pd.api.types.is_bool_dtype(d["session"]):
        raise SessionDataError(f"session column {session!r} must hold session numbers")
    bad = d["session"].isna() | d["patient"].isna()
    if bad.any():
        raise SessionDataError(f"rows {_fmt_labels(index[bad.to_numpy()])} have no {patient!r} or {session!r}; fill them in "
                               "or drop those rows", rows=index[bad.to_numpy()])
    dup = d.duplicated(["patient", "session"], keep=False)
    if dup.any():
        raise SessionDataError(f"patient(s) {_fmt_labels(d.loc[dup, 'patient'].unique())} have more than one row for the same "
                               f"session ({session!r}); keep one row per patient and session", rows=index[dup.to_numpy()])
    if not pd.api.types.is_numeric_dtype(d["alliance"]) or pd.api.types.is_bool_dtype(d["alliance"]):
        raise ModelSpecError(f"alliance column {alliance!r} must be numeric (a scale score)")
    v = d["dropout"]
    if pd.api.types.is_bool_dtype(v):
        d["dropout"] = v.astype(float)
    else:
        num = pd.to_numeric(v, errors="coerce")
        bad = (v.notna() & num.isna()) | (num.notna() & ~num.isin([0, 1]))
        if bad.any():
            raise ModelSpecError(f"dropout column {dropout!r} must be 0/1 (or True/False); rows {_fmt_labels(index[bad.to_numpy()])} "
                                 f"hold {_fmt_labels(pd.unique(v[bad])[:5])}")
        d["dropout"] = num
    cols = [("dropout", dropout)] + ([("therapist", therapist)] if therapist is not None else []) + list(cov_names.items())
    for c, name in cols:
        if c.startswith("_cov") and (not pd.api.types.is_numeric_dtype(d[c]) or pd.api.types.is_bool_dtype(d[c])):
            if pd.api.types.is_bool_dtype(d[c]):
                d[c] = d[c].astype(float)
            else:
                raise ModelSpecError(f"covariate {name!r} must be numeric; code a categorical covariate as 0/1 columns")
        varies = d.dropna(subset=[c]).groupby("patient")[c].nunique() > 1
        if varies.any():
            raise ModelSpecError(f"{name!r} must be the same in every row of a patient (a patient-level value); it varies "
                                 f"within patient(s) {_fmt_labels(varies.index[varies])}")
    if therapist is not None and d["therapist"].isna().any():
        rows = index[d["therapist"].isna().to_numpy()]
        raise ModelSpecError(f"therapist column {therapist!r} is missing at rows {_fmt_labels(rows)}; fill it in (patients "
                             "need their therapist for the random intercept)")


def _slopes(early):
    """Least-squares slope of alliance on session per patient (rated sessions of the window)."""
    s = early["session"].astype(float)
    ms = s.groupby(early["patient"]).transform("mean")
    ma = early.groupby("patient")["alliance"].transform("mean")
    num = ((s - ms) * (early["alliance"] - ma)).groupby(early["patient"]).sum()
    den = ((s - ms) ** 2).groupby(early["patient"]).sum()
    return num / den.where(den > 0)


def _logit(frame, y, xs, with_therapist):
    """Fit y ~ xs (+ (1 | therapist)); return (table with term, estimate, se, z, p, ci, fit)."""
    if with_therapist:
        f = f"{y} ~ " + " + ".join(xs) + " + (1 | therapist)"
        fit = glmm(f, frame.reset_index(), family="binomial")
        tab = fit.fixed[["term", "estimate", "se", "z", "p", "ci_low", "ci_high"]].copy()
        return tab, fit
    import statsmodels.api as sm

    X = np.column_stack([np.ones(len(frame))] + [frame[c].to_numpy(float) for c in xs])
    try:
        fit = sm.GLM(frame[y].to_numpy(float), X, family=sm.families.Binomial()).fit(tol=1e-13, maxiter=200)
        beta, se = np.asarray(fit.params), np.asarray(fit.bse)
        ok = bool(np.all(np.isfinite(se))) and fit.converged
    except (np.linalg.LinAlgError, ValueError, FloatingPointError):
        ok = False
    if not ok:
        raise ModelSpecError(f"the logistic regression of {y!r} on {', '.join(xs)} did not converge; check for a predictor "
                             "that separates dropouts from completers, or a constant one")
    z = beta / se
    tab = pd.DataFrame({"term": ["Intercept"] + list(xs), "estimate": beta, "se": se, "z": z, "p": 2 * special.ndtr(-np.abs(z)),
                        "ci_low": beta - Z975 * se, "ci_high": beta + Z975 * se})
    return tab, fit


def _coef(fit):
    """(beta, vcov) of a fitted model from either engine."""
    if hasattr(fit, "vcov") and isinstance(fit.vcov, pd.DataFrame):
        return fit.fixed["estimate"].to_numpy(), fit.vcov.to_numpy()
    return np.asarray(fit.params), np.asarray(fit.cov_params())


def _ratios(tab, frame, cov_names):
    tab = tab.copy()
    tab["or"], tab["or_low"], tab["or_high"] = np.exp(tab["estimate"]), np.exp(tab["ci_low"]), np.exp(tab["ci_high"])
    sd = [frame[t].std(ddof=1) if t in frame.columns else np.nan for t in tab["term"]]
    tab["sd"] = sd
    tab["or_sd"] = np.exp(tab["estimate"] * tab["sd"])
    tab["or_sd_low"] = np.exp(tab["ci_low"] * tab["sd"])
    tab["or_sd_high"] = np.exp(tab["ci_high"] * tab["sd"])
    tab["d"] = tab["estimate"] * tab["sd"] * D_FACTOR
    tab["d_low"] = tab["ci_low"] * tab["sd"] * D_FACTOR
    tab["d_high"] = tab["ci_high"] * tab["sd"] * D_FACTOR
    tab["term"] = tab["term"].replace(cov_names)
    cols = ["model", "term", "estimate", "se", "z", "p", "ci_low", "ci_high", "or", "or_low", "or_high", "sd",
            "or_sd", "or_sd_low", "or_sd_high", "d", "d_low", "d_high"]
    return tab[cols]
