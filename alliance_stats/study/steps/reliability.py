"""Internal consistency of every configured instrument."""

from __future__ import annotations

import pandas as pd

from ..registry import Step, register
from ..section import Section


def run(study) -> Section:
    from ...reliability import reliability

    rows = []
    for name, items in study.cfg.instruments().items():
        r = reliability(study.sessions, name, items=items).to_frame()
        r.insert(0, "instrument", name)
        rows.append(r)
    rel = pd.concat(rows, ignore_index=True)
    sec = Section("reliability", STEP.title)
    sec.methods = ("Internal consistency over all scored sessions: raw Cronbach's alpha with Feldt's 95% CI, omega "
                   "total from a one-factor minres solution, and the mean inter-item correlation (as R's psych). "
                   "Sessions with any missing item are left out of each scale (complete cases).")
    sec.accounting = [f"{r.instrument} {r.scale}: {int(r.n)} sessions used, {int(r.n_excluded)} left out with a missing item."
                      for r in rel.itertuples()]
    sec.add_table("reliability", "Reliability of each scale", rel)
    return sec


STEP = register(Step("reliability", "Reliability", "Cronbach's alpha (Feldt CI), omega total and mean inter-item r of every scale.", run))
