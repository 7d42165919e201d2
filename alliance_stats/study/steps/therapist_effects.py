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
    # TherapistEffectsResult and LMMResult: methods()/accounting() come with the Result base (#16).
    sec.methods = (
        f"Baldwin, Wampold & Imel (2007): each patient's mean {a} split into the therapist's mean and the "
        f"patient's deviation from it; the last {y} regressed on both with the first {y} as "
        "baseline and a random intercept for therapists (REML, Satterthwaite df). The caterpillar plot shows the "
        f"therapist random intercepts of {a} from a three-level model (sessions in patients in therapists) "
        "with 95% conditional intervals."
    )
    sec.add_result("therapist_effects_apa", "Therapist-level and patient-level alliance slopes", te,
                   figure="therapist_effects_slopes", figure_caption="Therapist vs patient slopes with 95% CIs")
    m3 = lmm(f"{a} ~ session + (1 | therapist/patient)", data=study.sessions)
    sec.add_figure("therapist_caterpillar", "Therapist random intercepts of the alliance", plot_therapist_effects(m3))
    icc = m3.icc()
    sec.add_table("alliance_variance_components", "Variance components of the alliance", m3.random)
    sec.text.append("Share of alliance variance: " + ", ".join(f"{r.level} {r.share:.2f}" for r in icc.itertuples()) + ".")
    sec.text += list(m3.messages)
    left = "; ".join(f"{k}: {v}" for k, v in te.model.dropped.items()) if te.model.n_dropped else "none"
    sec.accounting.append(f"Outcome model: {te.model.n_obs} patients analysed, {te.model.n_dropped} left out ({left}).")
    sec.accounting.append(f"Three-level alliance model: {m3.n_obs} sessions analysed, {m3.n_dropped} left out.")
    return sec


STEP = register(Step("therapist_effects", "Therapist and patient contributions to the alliance–outcome link",
                     "Therapist- and patient-level alliance slopes (Baldwin et al. 2007) and the therapist caterpillar plot.",
                     run, needs=_needs))
