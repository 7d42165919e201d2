"""The ML-SEM dynamic panel model of alliance and outcome over sessions (issue #17)."""

from __future__ import annotations

from ...models.dynamics import SE_TYPES
from ..registry import BOOLEAN, INTEGER, TEXT, Key, Step, register
from ..section import Section

KEYS = (
    Key("lag", INTEGER, "sessions between the alliance and the outcome it predicts (default 1)"),
    Key("reverse", BOOLEAN, "also estimate outcome -> next alliance jointly (default false)"),
    Key("max_session", INTEGER, "last session modelled (later sessions are left out and counted); default: the last in the data"),
    Key("se", TEXT, "standard errors (default observed information)", allowed=SE_TYPES),
)


def run(study) -> Section:
    from ...models.dynamics import dynamic_panel

    cfg = study.cfg
    kw = {k.name: cfg.get("dynamics", k.name) for k in KEYS if cfg.get("dynamics", k.name) is not None}
    res = dynamic_panel(study.sessions, x=study.alliance, y=study.outcome, **kw)
    sec = Section("dynamics", STEP.title)
    sec.add_result("dynamics_apa", f"Lagged effects of {study.alliance} and {study.outcome} (ML-SEM dynamic panel model)", res,
                   figure="dynamics_paths", figure_caption="Path diagram of the lagged effects (significant at .05 in bold)")
    sec.add_file("dynamics_parameters", res.parameters)
    sec.add_file("dynamics_fit", res.fit.rename("value").rename_axis("statistic").reset_index())
    return sec


STEP = register(Step(
    "dynamics", "Alliance and outcome over sessions (dynamic panel model)",
    "The ML-SEM dynamic panel model (Allison, Williams & Moral-Benito 2017): alliance at t-1 -> outcome at t, "
    "free of the dynamic-panel bias of the lagged random-intercept model.",
    run, table="dynamics", keys=KEYS,
))
