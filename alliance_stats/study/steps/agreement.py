"""Client-therapist agreement on the alliance: response-surface analysis (issue #18)."""

from __future__ import annotations

from ..registry import INTEGER, TEXT, Key, Step, register
from ..section import Section

KEYS = (
    Key("client", TEXT, "the client's alliance score column (default: the score of the client-rated alliance instrument)"),
    Key("therapist", TEXT, "the therapist's alliance score column of the same sessions, on the client's scale "
                           "(default: the score of the therapist-rated alliance instrument)"),
    Key("outcome", TEXT, "outcome column (default [variables] outcome)"),
    Key("n_boot", INTEGER, "bootstrap resamples (whole patients) for the CIs of the surface parameters (default 1000)"),
)


def _ratings(study):
    """(client column, therapist column) or the reason there are none."""
    from ...instruments import get_instrument

    cfg = study.cfg
    given = [k for k in ("client", "therapist") if cfg.get("agreement", k)]
    if len(given) == 1:
        other = "therapist" if given[0] == "client" else "client"
        raise cfg.error("agreement", given[0], f"give '{other}' too: agreement needs the client's and the therapist's "
                                               "score of the same sessions")
    if given:
        return study.column("agreement", "client"), study.column("agreement", "therapist")
    found = {}
    for name in cfg.instruments():
        inst = get_instrument(name)
        if inst.construct == "alliance" and inst.rater in ("client", "therapist"):
            found.setdefault(inst.rater, inst)
    missing = [r for r in ("client", "therapist") if r not in found]
    if missing:
        return (f"no {' and no '.join(missing)}-rated alliance instrument among the configured instruments "
                "(response-surface analysis needs client and therapist ratings of the same sessions)")
    c, t = found["client"], found["therapist"]
    if tuple(c.scale) != tuple(t.scale) or c.scoring != t.scoring:
        return (f"the client's ({c.name}, {c.scoring} of items {c.scale[0]}–{c.scale[1]}) and the therapist's ({t.name}, "
                f"{t.scoring} of items {t.scale[0]}–{t.scale[1]}) alliance ratings are on different scales, and agreement "
                "(x = y) is only defined on one scale; name two scores on one scale in [agreement] client and therapist")
    return f"{c.prefix}_total", f"{t.prefix}_total"


def skip(study):
    r = _ratings(study)
    return r if isinstance(r, str) else None


def run(study) -> Section:
    from ...models.agreement import response_surface

    cfg = study.cfg
    x, y = _ratings(study)
    outcome = study.column("agreement", "outcome") if cfg.get("agreement", "outcome") else study.outcome
    res = response_surface(study.sessions, x=x, y=y, outcome=outcome, patient="patient",
                           n_boot=cfg.get("agreement", "n_boot", 1000), seed=study.seed)
    sec = Section("agreement", STEP.title)
    sec.add_result("agreement_apa", f"Response surface of {outcome} on the client's ({x}) and the therapist's ({y}) ratings",
                   res, figure="agreement_surface", figure_caption="Response surface (contours) with the lines of congruence and incongruence")
    return sec


STEP = register(Step(
    "agreement", "Client–therapist agreement on the alliance",
    "Multilevel polynomial regression with response-surface analysis of the outcome on the client's and the "
    "therapist's rating of the same sessions (Shanock et al. 2010; Kivlighan et al. 2017); skipped, with the reason, "
    "when the data have no client and therapist ratings on one scale.",
    run, table="agreement", keys=KEYS, skip=skip,
))
