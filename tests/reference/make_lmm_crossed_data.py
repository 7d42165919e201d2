"""Write the simulated data sets behind the crossed-random-effects reference fixtures.

Run from the repository root: ``python tests/reference/make_lmm_crossed_data.py``, then
``Rscript tests/reference/make_lmm_crossed_reference.R`` (which also writes lme4's Penicillin and
InstEval data). The model list both use is lmm_crossed_models.csv. Synthetic data only.
"""

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent


def raters(seed=21, n_patients=80, sessions=4, n_raters=12, per_session=3):
    """Observer ratings of recorded sessions: each session is rated by `per_session` of the
    raters drawn at random, so patients and raters are crossed (every rater rates many patients,
    every patient is rated by several raters)."""
    rng = np.random.default_rng(seed)
    rows = []
    u_p = rng.normal(0, 0.6, n_patients)
    s_p = rng.normal(0, 0.08, n_patients)
    u_r = rng.normal(0, 0.4, n_raters)
    for p in range(n_patients):
        for s in range(1, sessions + 1):
            for r in rng.choice(n_raters, per_session, replace=False):
                y = 4.0 + 0.15 * s + u_p[p] + s_p[p] * s + u_r[r] + rng.normal(0, 0.5)
                rows.append((f"P{p + 1:03d}", s, f"R{r + 1:02d}", round(y, 6)))
    return pd.DataFrame(rows, columns=["patient", "session", "rater", "alliance"])


def changers(seed=22, n_therapists=25, n_patients=300, share=0.15):
    """Patients who change therapist: each patient starts with one therapist and `share` of them
    move to another one half-way, so patients lie within therapists except for the changers
    (partially crossed)."""
    rng = np.random.default_rng(seed)
    u_t = rng.normal(0, 0.5, n_therapists)
    u_p = rng.normal(0, 1.0, n_patients)
    rows = []
    for p in range(n_patients):
        n_s = int(rng.integers(4, 13))
        t0 = int(rng.integers(n_therapists))
        move = rng.random() < share
        t1 = int((t0 + rng.integers(1, n_therapists)) % n_therapists) if move else t0
        for s in range(1, n_s + 1):
            t = t0 if s <= n_s // 2 else t1
            y = 12.0 - 0.4 * s + u_p[p] + u_t[t] + rng.normal(0, 1.5)
            rows.append((t + 1, p + 1, s, round(y, 6)))
    return pd.DataFrame(rows, columns=["therapist", "patient", "session", "phq"])


if __name__ == "__main__":
    gz = {"method": "gzip", "mtime": 0}  # the same bytes on every run
    raters().to_csv(HERE / "lmm_crossed_raters.csv.gz", index=False, compression=gz)
    changers().to_csv(HERE / "lmm_crossed_changers.csv.gz", index=False, compression=gz)
