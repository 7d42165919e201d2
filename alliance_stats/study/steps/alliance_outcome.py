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
    fits = {}
    for direction, tag in DIRECTIONS:
        r = alliance_outcome(study.sessions, outcome=y, alliance=a, therapist=th, covariates=cov, direction=direction)
        fits[direction] = r
        sec.add_result(f"{tag}_apa", f"{direction}: {r.response} at t on {r.predictor} at t−1", r,
                       figure=f"{tag}_effects", figure_caption=f"{direction}: effects by level with 95% CIs")
        sec.add_file(f"{tag}_fixed", r.model.fixed)
        sec.add_file(f"{tag}_random", r.model.random)
        sec.text += [f"{direction}: {m}" for m in r.model.messages]
    w = fits["alliance->outcome"].effects.iloc[0]
    sec.text.insert(0, f"Within-patient effect of {a} on next-session {y}: b = {w['estimate']:.2f}, "
                       f"95% CI [{w['ci_low']:.2f}, {w['ci_high']:.2f}], p {apa_p(w['p'], eq=True)}.")
    return sec


STEP = register(Step("alliance_outcome", "Alliance → outcome and outcome → alliance",
                     "Lagged within/between mixed models in both directions (Falkenström et al. 2017).", run))
