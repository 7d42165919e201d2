"""Write the simulated data sets behind the dynamic panel and RI-CLPM reference fixtures.

Run from the repository root: ``python tests/reference/make_dynamics_data.py``, then
``Rscript tests/reference/make_dynamics_reference.R`` (which also writes the wages data of
Allison, Williams & Moral-Benito 2017 from R's plm package).

- ``dynamics_feedback.csv``: 300 patients, 6 planned sessions, symptoms feeding back into the next
  alliance (feedback = -0.05 WAI-SR points per PHQ-9 point), autoregressive symptoms (0.5), the
  true within-patient alliance effect -1.5; dropout depending on the first alliance and on
  unrepaired ruptures, missed sessions: many missing-data patterns for FIML. ``age`` is constant
  within patients (a time-invariant covariate).
- ``dynamics_design2.csv``: a second design, 150 patients and 8 planned sessions, weaker
  dynamics, plus ``stress``, a session-level covariate unrelated to the rest (time-varying).
"""

from pathlib import Path

import numpy as np

import alliance_stats as als

HERE = Path(__file__).parent


def scored(s):
    d = s.sessions
    return d[["patient", "session", "age"]].assign(
        alliance=als.score(d, "WAI-SR", items="wai{}")["wai_sr_total"],
        phq=als.score(d, "PHQ-9", items="phq{}")["phq9_total"],
    )


if __name__ == "__main__":
    s = als.simulate_study(n_therapists=30, patients_per_therapist=10, min_sessions=6, max_sessions=6, seed=20261123,
                           feedback=-0.05, outcome_ar=0.5, improvement_sd=0.0, dropout_alliance=1.0, dropout_unrepaired=0.5,
                           missed_session_rate=0.05)
    scored(s).round(10).to_csv(HERE / "dynamics_feedback.csv", index=False)
    s = als.simulate_study(n_therapists=15, patients_per_therapist=10, min_sessions=8, max_sessions=8, seed=20261124,
                           feedback=-0.03, outcome_ar=0.3, improvement_sd=1.0, missed_session_rate=0.05)
    d = scored(s)
    d["stress"] = np.round(np.random.default_rng(20261124).normal(0, 1, len(d)), 3)
    d.round(10).to_csv(HERE / "dynamics_design2.csv", index=False)
