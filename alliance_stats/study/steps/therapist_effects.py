"""Therapist and patient contributions to the alliance-outcome link (Baldwin et al. 2007)."""

from __future__ import annotations

from ..registry import Step, register
from ..section import Section


def _needs(cfg):
    return None if cfg.get("data", "therapist") is not None else "a therapist column in [data]"


def run(study) -> Section:
    from ...models.alliance import therapist_effects
    from ...models.lmm import lmm
    from ...plots import plot_therapist_effects

    a, y = study.alliance, study.outcome
    te = therapist_effects(study.sessions, alliance=a, outcome=y, session="session", therapist="therapist")
    sec = Section("therapist_effects", STEP.title)
    sec.add_result("therapist_effects_apa", "Therapist-level and patient-level alliance slopes", te,
                   figure="therapist_effects_slopes", figure_caption="Therapist vs patient slopes with 95% CIs")
    m3 = lmm(f"{a} ~ session + (1 | therapist/patient)", data=study.sessions)
    sec.add_result("alliance_three_level_apa", f"Three-level model of {a} (sessions in patients in therapists)", m3)
    sec.add_figure("therapist_caterpillar", "Therapist random intercepts of the alliance with 95% conditional intervals",
                   plot_therapist_effects(m3))
    icc = m3.icc()
    sec.add_table("alliance_variance_components", "Variance components of the alliance", m3.random)
    sec.text.append("Share of alliance variance: " + ", ".join(f"{r.level} {r.share:.2f}" for r in icc.itertuples()) + ".")
    return sec


STEP = register(Step("therapist_effects", "Therapist and patient contributions to the alliance–outcome link",
                     "Therapist- and patient-level alliance slopes (Baldwin et al. 2007) and the therapist caterpillar plot.",
                     run, needs=_needs))
