"""Lagged within/between models of alliance -> outcome and outcome -> alliance."""

from __future__ import annotations

from ..registry import Step, register
from ..section import Section

DIRECTIONS = (("alliance->outcome", "alliance_to_outcome"), ("outcome->alliance", "outcome_to_alliance"))


def run(study) -> Section:
    from ..._format import apa_p
    from ...models.alliance import alliance_outcome

    th = "therapist" if study.has_therapist else None
    a, y, cov = study.alliance, study.outcome, study.covariates
    sec = Section("alliance_outcome", STEP.title)
    # methods()/accounting() of AllianceOutcomeResult come with its move to the Result base (#16);
    # until then the step says what was done.
    sec.methods = (
        f"Lagged within/between models (Falkenström, Finkel, Sandell, Rubel & Holmqvist 2017): {y} at "
        f"session t on the patient-mean-centred {a} at t−1 (within-patient), the patient's mean "
        f"{a} (between-patient)" + (", its therapist mean (therapist level)" if th else "") +
        f", the prior {y} at t−1" + (", " + ", ".join(cov) if cov else "") +
        ", with random intercepts for patients" + (" nested in therapists" if th else "") +
        "; REML, Satterthwaite df (as lmerTest). The reverse direction swaps the roles (outcome at t−1 predicting "
        "alliance at t). Estimates equal lme4/lmerTest's (tests/reference)."
    )
    fits = {}
    for direction, tag in DIRECTIONS:
        r = alliance_outcome(study.sessions, outcome=y, alliance=a, therapist=th, covariates=cov, direction=direction)
        fits[direction] = r
        sec.add_result(f"{tag}_apa", f"{direction}: {r.response} at t on {r.predictor} at t−1", r,
                       figure=f"{tag}_effects", figure_caption=f"{direction}: effects by level with 95% CIs")
        sec.add_file(f"{tag}_fixed", r.model.fixed)
        sec.add_file(f"{tag}_random", r.model.random)
        left = "; ".join(f"{k}: {v}" for k, v in r.model.dropped.items()) if r.model.n_dropped else "none"
        sec.accounting.append(f"{direction}: {r.model.n_obs} sessions analysed, {r.model.n_dropped} left out ({left}).")
        sec.text += [f"{direction}: {m}" for m in r.model.messages]
    w = fits["alliance->outcome"].effects.iloc[0]
    sec.text.insert(0, f"Within-patient effect of {a} on next-session {y}: b = {w['estimate']:.2f}, "
                       f"95% CI [{w['ci_low']:.2f}, {w['ci_high']:.2f}], p {apa_p(w['p'], eq=True)}.")
    return sec


STEP = register(Step("alliance_outcome", "Alliance → outcome and outcome → alliance",
                     "Lagged within/between mixed models in both directions (Falkenström et al. 2017).", run))
