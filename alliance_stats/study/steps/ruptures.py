"""Rupture-repair episodes and their link to outcome."""

from __future__ import annotations

from ...models.rupture import RUPTURE_PRESETS, SD_SOURCES
from ..registry import INTEGER, NUMBER, TEXT, Key, Step, register
from ..section import Section

KEYS = (
    Key("method", TEXT, "detection rule preset (threshold and SD source)", allowed=tuple(RUPTURE_PRESETS)),
    Key("threshold", NUMBER, "drop, in SDs, between consecutive scored sessions that counts as a rupture"),
    Key("max_decline_sessions", INTEGER, "sessions a decline may take and still count as one rupture"),
    Key("sd_source", TEXT, "whose SD scales the drop", allowed=SD_SOURCES),
)


def run(study) -> Section:
    from ...models.rupture import detect_ruptures, rupture_outcome, rupture_summary
    from ...plots import plot_patient_series, plot_rupture_profile

    cfg, a, y = study.cfg, study.alliance, study.outcome
    kw = {k.name: cfg.get("ruptures", k.name) for k in KEYS if cfg.get("ruptures", k.name) is not None}
    rup = detect_ruptures(study.sessions, a, **kw)
    ep = rup.episodes
    summ = rupture_summary(rup, study.sessions)
    th = "therapist" if study.has_therapist else None
    ro = rupture_outcome(study.sessions, rup, outcome=y, therapist=th, higher_is_better=study.higher_is_better)
    sec = Section("ruptures", STEP.title)
    sec.methods = rup.methods()
    n_ass = int(summ["assessable"].sum())
    sec.text.append(f"{len(ep)} episodes in {int(summ['any_rupture'].sum())} of {n_ass} assessable patients; "
                    f"{int(ep['repaired'].sum()) if len(ep) else 0} repaired.")
    sec.add_file("rupture_episodes", ep)
    sec.add_file("rupture_by_patient", summ)
    sec.add_table("rupture_status_groups", "Outcome by rupture-repair status", ro.groups)
    sec.add_result("rupture_outcome_apa", "Rupture-repair status contrasts", ro,
                   figure="rupture_outcome", figure_caption="Change in outcome by status with 95% CIs")
    if len(ep):
        sec.add_figure("rupture_profile", "Alliance aligned on the rupture session, repaired vs unrepaired",
                       plot_rupture_profile(rup))
        counts = ep.groupby("patient").size()
        pid = counts.sort_values(ascending=False, kind="stable").index[0]
        sec.add_figure("rupture_example_patient", f"Patient {pid}: detected episodes marked",
                       plot_patient_series(study.sessions, a, patient_id=pid, episodes=ep))
    sec.accounting += [f"Rupture detection: {n} {unit} {status}" + (f" ({reason})" if reason else "")
                       for unit, status, reason, n in rup.accounting().itertuples(index=False)]
    return sec


STEP = register(Step("ruptures", "Rupture–repair episodes and outcome",
                     "Rupture-repair detection in each patient's alliance series and the outcome by rupture-repair status.",
                     run, table="ruptures", keys=KEYS))
