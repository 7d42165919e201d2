"""Alliance-outcome models: within/between decomposition, the lagged model in both directions,
and the therapist/patient split of the alliance.

References
----------
Falkenström, Granström & Holmqvist (2013). Therapeutic alliance predicts symptomatic improvement
session by session. Journal of Counseling Psychology, 60, 317-328.
Falkenström, Finkel, Sandell, Rubel & Holmqvist (2017). Dynamic models of individual change in
psychotherapy process research. Journal of Consulting and Clinical Psychology, 85, 537-549.
Baldwin, Wampold & Imel (2007). Untangling the alliance-outcome correlation. Journal of
Consulting and Clinical Psychology, 75, 842-852.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._format import apa_p, fmt_ci, fmt_df, fmt_num, format_frame
from .._result import Result, accounting_frame
from ..exceptions import DynamicPanelBiasWarning, IncompleteGroupsWarning, ModelSpecError, OptionError, user_stacklevel, _fmt_labels
from ..io import check_session_keys
from ..validation import check_option, check_whole_number, need_columns, numeric_column, require_frame
from .lmm import LMMResult, lmm

__all__ = ["decompose", "alliance_outcome", "AllianceOutcomeResult", "therapist_effects", "TherapistEffectsResult"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _q(name: str) -> str:
    """A column name as a formula term (backticks when it is not an identifier)."""
    return name if _IDENT.match(name) else f"`{name}`"


def _check_columns(data, **roles):
    require_frame(data)
    need_columns(data, {role: c for role, c in roles.items() if c is not None})


def _check_roles(covariates, **roles):
    """Each column plays one role: the outcome is not also the alliance, an ID or a covariate
    (a model of a column on itself fits perfectly and its other effects come out as 0)."""
    seen = {}
    for role, c in roles.items():
        if c is None:
            continue
        if c in seen:
            hint = (
                "; give the symptom or outcome measure as outcome= and the alliance score as alliance= (to predict "
                "the alliance from symptoms use direction='outcome->alliance')"
                if {role, seen[c]} == {"outcome", "alliance"} else ""
            )
            raise ModelSpecError(f"{seen[c]}= and {role}= are both the column {c!r}: each column plays one role{hint}")
        seen[c] = role
    for i, c in enumerate(covariates):
        if c in seen and seen[c] != "session":
            hint = {
                "outcome": "; the outcome explains itself perfectly (the alliance effects would come out as 0). The "
                           "previous session's outcome is already in the model (prior_outcome=True)",
                "alliance": "; the alliance is already in the model, split into its within- and between-patient parts",
            }.get(seen[c], "; an ID column is a grouping factor, not a covariate")
            raise ModelSpecError(f"covariates[{i}]={c!r} is also the {seen[c]} column: remove it from covariates{hint}")


def _numeric(data, col, name=None):
    """The column as float (ColumnError naming the rows that are not numbers or are infinite);
    ``name`` is the user's column name when ``col`` was renamed."""
    return numeric_column(data, col, what=f"column {name if name is not None else col!r}")


def decompose(
    data: pd.DataFrame,
    columns,
    *,
    by: str = "patient",
    session: str = "session",
    lags=(),
    detrend: str | None = None,
) -> pd.DataFrame:
    """Split session-level scores into between-patient (person mean) and within-patient parts,
    and add lagged copies.

    Adds, for each column ``c``:

    - ``c_between``: the patient's mean of ``c`` (over sessions where it was observed);
    - ``c_within``: ``c - c_between``; with ``detrend="linear"`` the residual from the patient's own
      linear trend over sessions instead (Falkenström et al. 2017), missing for patients with
      fewer than three observed values (named by an
      :class:`~alliance_stats.IncompleteGroupsWarning`, one per column);
    - for each ``k`` in ``lags``: ``c_lag{k}`` and ``c_within_lag{k}``, the values at session
      number ``s - k`` of the same patient. A lag across a missing session is missing: the value
      of session 4 is not used as "session 6 minus 1" when session 5 is absent.

    ``data`` is not modified; a copy with the new columns is returned, every row in the same order.

    Examples
    --------
    >>> import pandas as pd, alliance_stats as als
    >>> d = pd.DataFrame({"patient": [1, 1, 1, 2, 2], "session": [1, 2, 4, 1, 2],
    ...                   "wai": [3.0, 4.0, 5.0, 2.0, 4.0]})
    >>> out = als.decompose(d, "wai", lags=[1])
    >>> out[["wai_between", "wai_within", "wai_lag1"]].to_numpy().tolist()
    [[4.0, -1.0, nan], [4.0, 0.0, 3.0], [4.0, 1.0, nan], [3.0, -1.0, nan], [3.0, 1.0, 2.0]]
    """
    out, too_few = _decompose(data, columns, by=by, session=session, lags=lags, detrend=detrend)
    for c, patients in too_few.items():
        if patients:
            warnings.warn(IncompleteGroupsWarning(
                f"decompose(): {len(patients)} patient(s) in {by!r} have fewer than 3 observed values of {c!r} "
                f"({_fmt_labels(patients)}); detrend='linear' needs 3 for a trend, so {c}_within (and its lags) "
                "is missing in their rows",
                function="decompose", reason=f"fewer than 3 observed values of {c!r} for a linear trend",
                groups=patients, columns=[f"{c}_within"],
            ), stacklevel=user_stacklevel())
    return out


def _decompose(data, columns, *, by, session, lags, detrend) -> tuple[pd.DataFrame, dict]:
    """:func:`decompose`'s work: the new frame, and per column the patients (labels) too few for a trend."""
    cols = [columns] if isinstance(columns, str) else list(columns)
    if not cols:
        raise OptionError("columns", columns, hint="name at least one column")
    _check_columns(data, by=by, session=session, **{f"columns[{i}]": c for i, c in enumerate(cols)})
    check_option("detrend", detrend, (None, "linear"))
    lags = [lags] if isinstance(lags, (int, np.integer)) else list(lags)
    lags = [check_whole_number("lags", k, 1) for k in lags]
    sess = check_session_keys(data, [by], session, what="value")
    out = data.copy()
    g = data[by]
    notes = {}
    for c in cols:
        x = _numeric(data, c)
        between = x.groupby(g, sort=False).transform("mean")
        out[f"{c}_between"] = between
        if detrend == "linear":
            obs = x.notna()
            s = sess.astype(float).where(obs)
            n = obs.groupby(g, sort=False).transform("sum")
            ms = s.groupby(g, sort=False).transform("mean")
            sxx = ((s - ms) ** 2).groupby(g, sort=False).transform("sum")
            sxy = ((s - ms) * (x - between)).groupby(g, sort=False).transform("sum")
            slope = sxy / sxx.where(sxx > 0)
            within = (x - between) - slope * (sess.astype(float) - ms)
            few = n < 3
            within = within.where(~few)
            notes[c] = pd.unique(g[few & obs]).tolist()
        else:
            within = x - between
        out[f"{c}_within"] = within
    if lags:
        key = pd.DataFrame({"_by": g.to_numpy(), "_s": sess.to_numpy()}, index=data.index)
        for k in lags:
            src = pd.DataFrame({"_by": g.to_numpy(), "_s": sess.to_numpy() + k}, index=data.index)
            for c in cols:
                src[f"{c}_lag{k}"] = _numeric(data, c).to_numpy()
                src[f"{c}_within_lag{k}"] = out[f"{c}_within"].to_numpy()
            merged = key.merge(src, on=["_by", "_s"], how="left")
            for c in cols:
                out[f"{c}_lag{k}"] = merged[f"{c}_lag{k}"].to_numpy()
                out[f"{c}_within_lag{k}"] = merged[f"{c}_within_lag{k}"].to_numpy()
    return out, notes


# ----------------------------------------------------------------------------------------
def _groups(model: LMMResult) -> str:
    """'30 patient groups, 6 therapist groups' from a model's grouping factors."""
    return ", ".join(f"{v} {k} groups" for k, v in model.n_groups.items())


def _effect_text(r, what: str = "b") -> str:
    """One effect for running text: b = -1.23, 95% CI [..], t(df) = .., p = .."""
    return (f"{what} = {fmt_num(r['estimate'])}, 95% CI {fmt_ci(r['ci_low'], r['ci_high'])}, "
            f"t({fmt_df(r['df'])}) = {fmt_num(r['t'])}, p {apa_p(r['p'], eq=True)}")


def _model_tables(model: LMMResult) -> list:
    return [("Full model, fixed effects", model.to_apa()), ("Full model, random effects", format_frame(model.random, na=""))]


@dataclass(repr=False)
class AllianceOutcomeResult(Result):
    """The lagged within/between alliance-outcome model (see :func:`alliance_stats.alliance_outcome`).

    ``model`` is the :class:`LMMResult`; ``effects`` has one row per level (within-patient,
    between-patient and, with a therapist column, therapist) with the unstandardized estimate,
    SE, df, p, 95% CI and the standardized estimate (beta = b x SD(predictor part) / SD(response)).
    ``estimator`` names the model that produced them (a random-intercept mixed model, with or
    without the person-mean-centred lagged outcome).
    """

    model: LMMResult
    effects: pd.DataFrame
    direction: str
    predictor: str
    response: str
    lag: int
    data: pd.DataFrame
    estimator: str = "random-intercept mixed model"

    title = "Alliance-outcome model"

    @property
    def n_obs(self) -> int:
        """Session rows in the model."""
        return self.model.n_obs

    def _headline(self) -> str:
        return (f"{self.direction}: {self.response} at session t on {self.predictor} at t-{self.lag}; {self.estimator}; "
                f"n = {self.model.n_obs} sessions, {_groups(self.model)}")

    def to_frame(self) -> pd.DataFrame:
        """The effects table, one row per level (a copy)."""
        return self.effects.copy()

    def to_apa(self, digits: int | None = None) -> pd.DataFrame:
        """APA-style table of the effects (b, SE, standardized beta, t, df, p, 95% CI)."""
        return _effects_apa(self.effects, term=True, beta=True, digits=digits)

    def _tables(self) -> list:
        return _model_tables(self.model)

    def _notes(self) -> list:
        return list(self.model.messages)

    def accounting(self) -> pd.DataFrame:
        """Session rows in the model and rows left out, by reason (no score at t - lag, ...)."""
        return self.model.accounting()

    def methods(self) -> str:
        """A methods-and-results paragraph: the model, the data it used, the estimator, the df
        method and the within- and between-level effects."""
        m = self.model
        e = self.effects.set_index("level")
        therapist = "therapist" in e.index
        lagged = f"{self.response}_within_lag{self.lag}"
        named = set(self.effects["term"]) | {"Intercept", lagged}
        covs = [t for t in m.fixed["term"] if t not in named]
        between = (f"the therapist's mean of the patients' mean {self.predictor} and the patient's deviation from it (Baldwin, "
                   "Wampold & Imel, 2007)" if therapist else f"the patient's mean {self.predictor}")
        parts = [f"the patient's deviation from their own mean {self.predictor} at session t-{self.lag} (within-patient)", between]
        if lagged in set(m.fixed["term"]):
            parts.append(f"the patient's deviation from their own mean {self.response} at session t-{self.lag}")
        if covs:
            parts.append("the covariates " + ", ".join(covs))
        dfm = {"satterthwaite": "Satterthwaite", "kenward-roger": "Kenward-Roger"}.get(m.df_method)
        s = (f"To separate the state-like (within-patient) from the trait-like (between-patient) part of {self.predictor} "
             f"(Falkenström, Granström & Holmqvist, 2013), {self.response} at session t was regressed on "
             + ", ".join(parts[:-1]) + f" and {parts[-1]}, in a {self.estimator} with random intercepts for "
             + " and ".join(m.n_groups) + f", fitted with alliance-stats (equivalent to lme4::lmer) to n = {m.n_obs} "
             f"sessions from {_groups(m)}")
        if m.n_dropped:
            s += f"; {m.n_dropped} rows were left out (" + "; ".join(f"{k}: {v}" for k, v in m.dropped.items()) + ")"
        s += "."
        s += f" Effects were tested with {dfm} degrees of freedom." if dfm else " Effects were tested with Wald z tests."
        res = []
        for level, r in e.iterrows():
            beta = f", standardized beta = {fmt_num(r['std_estimate'])}" if np.isfinite(r["std_estimate"]) else ""
            res.append(f"{level}, {_effect_text(r)}{beta}")
        s += " Effects: " + "; ".join(res) + "."
        if lagged in set(m.fixed["term"]):
            s += (" With the lagged outcome and a random intercept per patient, these estimates are subject to dynamic-panel "
                  "(Nickell) bias in short series (Falkenström et al., 2017).")
        return s

    def plot(self, *, ax=None, standardized: bool = False):
        """Within- vs between-patient (and therapist) effects with 95% CIs; see
        :func:`alliance_stats.plot_within_between`."""
        from ..plots import plot_within_between

        return plot_within_between(self, ax=ax, standardized=standardized)


def _effects_apa(e, term=False, beta=False, digits=None):
    d = 2 if digits is None else int(digits)
    cols = {"Level": e["level"]}
    if term:
        cols["Term"] = e["term"]
    cols["b"] = [fmt_num(v, d) for v in e["estimate"]]
    cols["SE"] = [fmt_num(v, d) for v in e["se"]]
    if beta:
        cols["beta"] = [fmt_num(v, d) for v in e["std_estimate"]]
    cols.update({
        "t": [fmt_num(v, d) for v in e["t"]], "df": [fmt_df(v) for v in e["df"]], "p": [apa_p(v) for v in e["p"]],
        "95% CI": [fmt_ci(a, b, d) for a, b in zip(e["ci_low"], e["ci_high"])],
    })
    return pd.DataFrame(cols)


def _effects_table(model: LMMResult, rows, frame, response):
    f = model.fixed.set_index("term")
    sd_y = float(frame[response].std(ddof=1))
    out = []
    for level, term in rows:
        if term not in f.index:
            raise ModelSpecError(
                f"the {level} term {term!r} could not be estimated (dropped as constant or collinear); "
                "check that the alliance varies at that level"
            )
        r = f.loc[term]
        sd_x = float(frame[term].std(ddof=1))
        out.append({
            "level": level, "term": term, "estimate": r["estimate"], "se": r["se"], "df": r["df"], "t": r["t"], "p": r["p"],
            "ci_low": r["ci_low"], "ci_high": r["ci_high"], "sd_predictor": sd_x,
            "std_estimate": r["estimate"] * sd_x / sd_y, "std_ci_low": r["ci_low"] * sd_x / sd_y, "std_ci_high": r["ci_high"] * sd_x / sd_y,
        })
    return pd.DataFrame(out)


def _therapist_split(frame, pmean_col, patient, therapist, prefix):
    """Therapist mean of patient means, and patient deviation from it (Baldwin et al. 2007)."""
    per = frame[[patient, therapist, pmean_col]].drop_duplicates(patient)
    per = per.dropna(subset=[pmean_col])
    tm = per.groupby(therapist)[pmean_col].mean()
    frame[f"{prefix}_therapist"] = frame[therapist].map(tm)
    frame[f"{prefix}_patient"] = frame[pmean_col] - frame[f"{prefix}_therapist"]
    return frame


def alliance_outcome(
    data: pd.DataFrame,
    *,
    outcome: str,
    alliance: str,
    patient: str = "patient",
    session: str = "session",
    therapist: str | None = None,
    lag: int = 1,
    random_slope: bool = False,
    covariates=(),
    detrend: bool = False,
    prior_outcome: bool = True,
    direction: str = "alliance->outcome",
    reml: bool = True,
    df_method: str = "satterthwaite",
    engine: str = "auto",
) -> AllianceOutcomeResult:
    """Fit the standard lagged within/between alliance-outcome model.

    With ``direction="alliance->outcome"`` (Falkenström et al. 2013), ``outcome`` at session t is
    regressed on

    - the within-patient alliance at t - ``lag`` (``{alliance}_within_lag{lag}``: the patient's
      deviation from their own mean; the *state-like* effect),
    - the patient's mean alliance (``{alliance}_between``; the *trait-like* effect) or, when
      ``therapist`` is given, its split into the therapist's mean of patient means
      (``{alliance}_therapist``) and the patient's deviation from it (``{alliance}_patient``),
    - when ``prior_outcome``, the within-patient outcome at t - ``lag``,
    - ``covariates`` (column names, e.g. ``["session"]``),

    with a random intercept per patient (patients nested in therapists when ``therapist`` is
    given) and, with ``random_slope``, a random slope of the within-patient alliance.
    ``direction="outcome->alliance"`` swaps the roles (symptoms predicting the next alliance),
    so both directions come from one call each. ``detrend=True`` removes each patient's linear
    trend from the within-patient predictors first (Falkenström et al. 2017). ``engine`` picks
    who estimates the variance parameters (see :func:`lmm`).

    Rows without a score at session t - ``lag`` (first sessions, gaps) are left out and counted.

    **The lagged outcome and dynamic-panel (Nickell) bias.** With ``prior_outcome=True`` a
    patient's intercept and their own previous (person-mean-centred) outcome are in the same
    model. The person mean contains the later sessions, whose errors it shares with the
    current one, so in series of a few to a dozen sessions the lagged outcome's coefficient is
    biased downwards (roughly by -(1 + rho) / (T - 1) for T sessions; Nickell 1981). When symptoms
    also feed back into the next alliance (Falkenström et al. 2013), the alliance's within-patient
    deviation shares errors with the outcome too, and its effect is biased towards zero
    (Falkenström et al. 2017). In 200 studies simulated with ``simulate_study(feedback=-0.05,
    outcome_ar=0.5)`` (200 patients, 8 sessions, true effect -1.5; the package's recovery test)
    this model's within-patient effect averaged -0.80 and its 95% CI held the truth in 14% of
    studies; the dynamic panel model averaged -1.48 (97%); notebook 09 shows the simulation.
    The fit therefore warns (:class:`DynamicPanelBiasWarning`) with the patients' number of
    sessions;
    :func:`dynamic_panel` (the ML-SEM dynamic panel model) and :func:`ri_clpm` estimate these
    effects without the bias. ``prior_outcome=False`` leaves the lagged outcome out (then the
    model does not adjust for the previous symptoms, and does not warn).

    Examples
    --------
    >>> import alliance_stats as als
    >>> d = als.simulate_study(n_therapists=6, patients_per_therapist=5, seed=1).sessions
    >>> d = d.join(als.score(d, "WAI-SR", items="wai{}")).join(als.score(d, "PHQ-9", items="phq{}"))
    >>> res = als.alliance_outcome(d, outcome="phq9_total", alliance="wai_sr_total")
    >>> res.effects["level"].tolist()
    ['within-patient', 'between-patient']
    """
    check_option("direction", direction, ("alliance->outcome", "outcome->alliance"))
    lag = check_whole_number("lag", lag, 1)
    covariates = [covariates] if isinstance(covariates, str) else list(covariates)
    _check_columns(data, outcome=outcome, alliance=alliance, patient=patient, session=session, therapist=therapist)
    _check_columns(data, **{f"covariates[{i}]": c for i, c in enumerate(covariates)})
    _check_roles(covariates, outcome=outcome, alliance=alliance, patient=patient, session=session, therapist=therapist)
    pred, resp = (alliance, outcome) if direction == "alliance->outcome" else (outcome, alliance)
    keep = list(dict.fromkeys([patient, session, pred, resp] + ([therapist] if therapist else []) + covariates))
    # patients too few for a trend lose their within parts; lmm() counts their rows as missing
    frame, _ = _decompose(data[keep], [pred, resp], by=patient, session=session, lags=(lag,), detrend="linear" if detrend else None)
    if therapist:
        per_ther = frame.groupby(patient)[therapist].nunique()
        if (per_ther > 1).any():
            bad = per_ther.index[per_ther > 1].tolist()
            raise ModelSpecError(f"patients {_fmt_labels(bad)} appear with more than one therapist; each patient must have one therapist")
    wl = f"{pred}_within_lag{lag}"
    terms = [wl]
    rows = [("within-patient", wl)]
    if therapist:
        frame = _therapist_split(frame, f"{pred}_between", patient, therapist, pred)
        terms += [f"{pred}_patient", f"{pred}_therapist"]
        rows += [("between-patient", f"{pred}_patient"), ("therapist", f"{pred}_therapist")]
    else:
        terms.append(f"{pred}_between")
        rows.append(("between-patient", f"{pred}_between"))
    if prior_outcome:
        terms.append(f"{resp}_within_lag{lag}")
    terms += covariates
    slope = f" + {_q(wl)}" if random_slope else ""
    if therapist:
        rand = f"(1 | {_q(therapist)}) + (1{slope} | {_q(therapist)}:{_q(patient)})"
    else:
        rand = f"(1{slope} | {_q(patient)})"
    formula = f"{_q(resp)} ~ " + " + ".join(_q(t) for t in terms) + f" + {rand}"
    model = lmm(formula, frame, reml=reml, df_method=df_method, engine=engine)
    # say why rows were left out in the analysis' own words
    relabel = {
        f"missing {wl}": f"no {pred} at session t-{lag} (first session or a gap)",
        f"missing {resp}_within_lag{lag}": f"no {resp} at session t-{lag}",
    }
    model.dropped.index = [relabel.get(i, i) for i in model.dropped.index]
    used = frame.loc[model.model_frame.index]
    effects = _effects_table(model, rows, used, resp)
    estimator = "random-intercept mixed model" + (" with the person-mean-centred lagged outcome" if prior_outcome else "")
    estimator += f" ({'REML' if reml else 'ML'})"
    if prior_outcome:
        per = frame.dropna(subset=[resp]).groupby(patient).size()
        med, lo, hi = float(per.median()), int(per.min()), int(per.max())
        x_, y_ = ("x=" + repr(pred), "y=" + repr(resp))
        warnings.warn(
            f"alliance_outcome() fits the lagged outcome {resp}_within_lag{lag} with a random intercept per patient: with "
            f"{med:g} sessions per patient (median; range {lo}-{hi}) this model is biased (dynamic-panel or Nickell bias, "
            f"Falkenström et al. 2017), the lagged outcome's coefficient downwards and, if {resp} feeds back into {pred}, "
            f"the within-patient effect towards zero. als.dynamic_panel(data, {x_}, {y_}) or als.ri_clpm(data, {x_}, {y_}) "
            "give unbiased estimates; prior_outcome=False leaves the lagged outcome out.",
            DynamicPanelBiasWarning, stacklevel=user_stacklevel(),
        )
    return AllianceOutcomeResult(model=model, effects=effects, direction=direction, predictor=pred, response=resp, lag=lag, data=frame,
                                 estimator=estimator)


# ----------------------------------------------------------------------------------------
@dataclass(repr=False)
class TherapistEffectsResult(Result):
    """Therapist vs patient contributions of the alliance to outcome (Baldwin et al. 2007)."""

    model: LMMResult
    effects: pd.DataFrame
    patients: pd.DataFrame

    title = "Therapist and patient contributions of the alliance to outcome"

    @property
    def n_obs(self) -> int:
        """Patients in the model."""
        return self.model.n_obs

    def _headline(self) -> str:
        e = self.effects.set_index("term")
        return (f"n = {self.model.n_obs} patients, {_groups(self.model)}; therapist b = {fmt_num(e.loc['alliance_therapist', 'estimate'])}, "
                f"patient b = {fmt_num(e.loc['alliance_patient', 'estimate'])}")

    def to_frame(self) -> pd.DataFrame:
        """The therapist, patient and difference effects (a copy)."""
        return self.effects.copy()

    def to_apa(self, digits: int | None = None) -> pd.DataFrame:
        """APA-style table of the therapist, patient and difference effects."""
        return _effects_apa(self.effects, digits=digits)

    def _tables(self) -> list:
        return _model_tables(self.model)

    def _notes(self) -> list:
        return list(self.model.messages)

    def accounting(self) -> pd.DataFrame:
        """Patients in the model and patients left out, by reason (no outcome score, ...)."""
        return accounting_frame("patients", self.model.n_obs, list(self.model.dropped.items()))

    def methods(self) -> str:
        """A methods-and-results paragraph: the split of the alliance, the model, the data it used
        and the therapist-level, patient-level and difference effects."""
        m = self.model
        e = self.effects.set_index("term")
        others = [t for t in m.fixed["term"] if t not in ("Intercept", "alliance_therapist", "alliance_patient")]
        adj = f", adjusting for {', '.join(others)}," if others else ""
        s = ("Following Baldwin, Wampold and Imel (2007), each patient's alliance was split into their therapist's mean "
             "alliance (over the therapist's patients) and the patient's deviation from it. Outcome was regressed on both"
             f"{adj} in a linear mixed model with a random intercept for therapists, fitted by "
             f"{'REML' if m.reml else 'maximum likelihood'} with alliance-stats (equivalent to lme4::lmer) to n = {m.n_obs} "
             f"patients of {_groups(m)}")
        if m.n_dropped:
            s += f"; {m.n_dropped} patients were left out (" + "; ".join(f"{k}: {v}" for k, v in m.dropped.items()) + ")"
        dfm = {"satterthwaite": "Satterthwaite", "kenward-roger": "Kenward-Roger"}.get(m.df_method, "Wald")
        s += (f". Effects were tested with {dfm} degrees of freedom. The therapist-level slope was "
              f"{_effect_text(e.loc['alliance_therapist'], 'b')}; the patient-level slope {_effect_text(e.loc['alliance_patient'], 'b')}; "
              f"their difference (therapist - patient) {_effect_text(e.loc['difference'], 'b')}.")
        return s

    def plot(self, *, ax=None):
        """Therapist- and patient-level effects with 95% CIs."""
        from ..plots import plot_within_between

        return plot_within_between(self, ax=ax)


def therapist_effects(
    data: pd.DataFrame,
    *,
    alliance: str,
    outcome: str,
    patient: str = "patient",
    therapist: str = "therapist",
    session: str | None = None,
    baseline: bool = True,
    covariates=(),
    reml: bool = True,
) -> TherapistEffectsResult:
    """Split the alliance into the therapist's mean and the patient's deviation from it and
    relate each to outcome (Baldwin, Wampold & Imel 2007).

    ``data`` is either one row per patient (``alliance`` and ``outcome`` already per patient,
    e.g. early alliance and post-treatment score; give a baseline column in ``covariates``) or
    session-level (pass ``session``): then the alliance is each patient's mean over sessions, the
    outcome the patient's last observed score and, with ``baseline=True``, the first observed
    score is a covariate. The model is ``outcome ~ alliance_therapist + alliance_patient
    [+ baseline] + covariates + (1 | therapist)``. ``effects`` has the therapist-level and
    patient-level slopes and their difference (therapist - patient) with Satterthwaite df.
    """
    covariates = [covariates] if isinstance(covariates, str) else list(covariates)
    _check_columns(data, alliance=alliance, outcome=outcome, patient=patient, therapist=therapist, session=session)
    _check_columns(data, **{f"covariates[{i}]": c for i, c in enumerate(covariates)})
    _check_roles(covariates, outcome=outcome, alliance=alliance, patient=patient, therapist=therapist, session=session)
    per_ther = data.groupby(patient)[therapist].nunique()
    if (per_ther > 1).any():
        raise ModelSpecError(f"patients {_fmt_labels(per_ther.index[per_ther > 1].tolist())} appear with more than one therapist")
    n_rows = data.groupby(patient).size()
    extra = []
    if (n_rows > 1).any():
        if session is None:
            raise ModelSpecError(
                f"{int((n_rows > 1).sum())} patients have more than one row: pass session= to aggregate session-level "
                "data (alliance mean, last outcome), or give one row per patient"
            )
        check_session_keys(data, [patient], session, what="value")
        d = data.sort_values([patient, session])
        a = _numeric(d, alliance)
        y = _numeric(d, outcome)
        per = pd.DataFrame({
            therapist: d.groupby(patient, sort=True)[therapist].first(),
            "alliance": a.groupby(d[patient], sort=True).mean(),
            "outcome": y.dropna().groupby(d.loc[y.notna(), patient], sort=True).last(),
        })
        if baseline:
            first = y.dropna().groupby(d.loc[y.notna(), patient], sort=True).first()
            nobs = y.notna().groupby(d[patient]).sum()
            per["baseline"] = first.where(nobs.reindex(first.index) >= 2)
            extra.append("baseline")
        for c in covariates:
            varies = d.groupby(patient)[c].nunique() > 1
            if varies.any():
                raise ModelSpecError(
                    f"covariate {c!r} changes across sessions for patients {_fmt_labels(varies.index[varies].tolist())}; "
                    "therapist_effects() works per patient: give a patient-level covariate (e.g. the first value)"
                )
            per[c] = d.groupby(patient, sort=True)[c].first()
    else:
        per = data.set_index(patient)[[therapist, alliance, outcome] + covariates].rename(columns={alliance: "alliance", outcome: "outcome"})
        per["alliance"] = _numeric(per, "alliance", repr(alliance))
        per["outcome"] = _numeric(per, "outcome", repr(outcome))
    per.index.name = patient
    per = per.reset_index()
    tm = per.groupby(therapist)["alliance"].mean()
    per["alliance_therapist"] = per[therapist].map(tm)
    per["alliance_patient"] = per["alliance"] - per["alliance_therapist"]
    terms = ["alliance_therapist", "alliance_patient"] + extra + covariates
    formula = "outcome ~ " + " + ".join(_q(t) for t in terms) + f" + (1 | {_q(therapist)})"
    model = lmm(formula, per, reml=reml)
    relabel = {"missing outcome": "no outcome score", "missing alliance_therapist": "no alliance score",
               "missing alliance_patient": "no alliance score", "missing baseline": "fewer than two outcome scores"}
    reasons = model.dropped.rename(index=lambda i: relabel.get(i, i))
    model.dropped = reasons.groupby(level=0, sort=False).sum()
    used = per.loc[model.model_frame.index]
    eff = _effects_table(model, [("therapist", "alliance_therapist"), ("patient within therapist", "alliance_patient")], used, "outcome")
    diff = model.contrast({"alliance_therapist": 1.0, "alliance_patient": -1.0})
    eff = pd.concat([eff, pd.DataFrame([{"level": "difference (therapist - patient)", "term": "difference", **diff.to_dict(), "sd_predictor": np.nan, "std_estimate": np.nan, "std_ci_low": np.nan, "std_ci_high": np.nan}])], ignore_index=True)
    return TherapistEffectsResult(model=model, effects=eff, patients=per)
