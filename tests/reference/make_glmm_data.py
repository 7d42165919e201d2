"""Write the simulated data sets behind the GLMM and dropout reference fixtures.

Run from the repository root: ``python tests/reference/make_glmm_data.py``, then
``Rscript tests/reference/make_glmm_reference.R`` (which also writes R's cbpp and grouseticks).

glmm_dropout_sessions.csv
    Session-level rows (therapist, patient, session, alliance, dropout, severity) of 24 therapists
    with 14 patients each. Each patient has an alliance level (with a therapist share) and a
    linear trend; the hazard of leaving after session s (before the planned 16 sessions) is a
    logit-linear function of the alliance rated at session s, a therapist effect and the patient's
    baseline severity, so that early alliance predicts dropout. About 4% of the ratings are
    missing, and some patients leave within the first three sessions.
glmm_slopes.csv
    A binary session-level outcome (e.g. a rupture marker) with a random intercept and a random
    session slope per patient: 80 patients x 10 sessions, for the Laplace fit of a vector-valued
    random effect.
"""

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent


def dropout_sessions(seed=20240518, n_therapists=24, per_therapist=14, planned=16):
    rng = np.random.default_rng(seed)
    rows = []
    pid = 0
    for t in range(n_therapists):
        ther_alliance = rng.normal(0, 0.25)
        ther_dropout = rng.normal(0, 0.5)
        for _ in range(per_therapist):
            pid += 1
            level = 3.7 + ther_alliance + rng.normal(0, 0.5)
            trend = rng.normal(0.03, 0.03)
            severity = round(float(rng.normal(15, 4)), 1)
            dropped = 0
            for s in range(1, planned + 1):
                alliance = float(np.clip(level + trend * (s - 1) + rng.normal(0, 0.3), 1, 5))
                logit = -3.2 - 1.6 * (alliance - 3.7) + ther_dropout + 0.05 * (severity - 15) - 0.25 * np.log(s)
                leaves = s < planned and rng.random() < 1 / (1 + np.exp(-logit))
                rated = rng.random() > 0.04
                rows.append(dict(therapist=f"T{t + 1:02d}", patient=f"P{pid:03d}", session=s,
                                 alliance=round(alliance, 4) if rated else np.nan, severity=severity))
                if leaves:
                    dropped = 1
                    break
            for r in rows[-s:]:
                r["dropout"] = dropped
    d = pd.DataFrame(rows)
    return d[["therapist", "patient", "session", "alliance", "dropout", "severity"]]


def slopes(seed=7, n_patients=80, n_sessions=10):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_patients):
        b0, b1 = rng.multivariate_normal([0, 0], [[0.8, -0.1], [-0.1, 0.04]])
        x = rng.normal(0, 1)
        for s in range(1, n_sessions + 1):
            eta = -1.0 + b0 + (-0.08 + b1) * (s - 1) + 0.4 * x
            rows.append(dict(patient=f"P{i + 1:03d}", session=s, x=round(x, 4), y=int(rng.random() < 1 / (1 + np.exp(-eta)))))
    return pd.DataFrame(rows)


if __name__ == "__main__":
    dropout_sessions().to_csv(HERE / "glmm_dropout_sessions.csv", index=False)
    slopes().to_csv(HERE / "glmm_slopes.csv", index=False)
