"""Write the simulated alliance data sets behind the Kenward-Roger fixtures (lmm_kr_*.csv).

Run from the repository root: ``python tests/reference/make_kr_data.py``, then
``Rscript tests/reference/make_kr_reference.R``. Three-level designs (sessions in patients in
therapists) of the size where Kenward-Roger matters: 4 therapists, 12 therapists, and an
unbalanced one (10 therapists with 2 to 9 patients, patients with 1 to 20 sessions, sessions
missing at random). Each has a therapist-level predictor (years of experience), whose test has
few denominator degrees of freedom. And a design with crossed factors (patients' sessions rated by
observers, each patient by 2 or 3 of 8 raters), for the Kenward-Roger algebra on crossed levels.
"""

from pathlib import Path

import numpy as np

import alliance_stats as als

HERE = Path(__file__).parent


def build(seed, n_therapists, patients_per_therapist, min_sessions, max_sessions, unbalanced=False):
    s = als.simulate_study(n_therapists=n_therapists, patients_per_therapist=patients_per_therapist,
                           min_sessions=min_sessions, max_sessions=max_sessions, seed=seed)
    d = s.sessions
    d = d[["therapist", "patient", "session"]].assign(
        wai=als.score(d, "WAI-SR", items="wai{}")["wai_sr_total"],
        phq=als.score(d, "PHQ-9", items="phq{}")["phq9_total"],
    )
    rng = np.random.default_rng(seed)
    ther = sorted(d["therapist"].unique())
    exper = dict(zip(ther, rng.integers(1, 25, len(ther))))
    d["experience"] = d["therapist"].map(exper).astype(float)
    if unbalanced:
        # keep 2..patients_per_therapist patients per therapist, then each patient's first
        # 1..all sessions, then drop 10% of the remaining sessions at random
        keep = []
        for t, g in d.groupby("therapist"):
            pats = sorted(g["patient"].unique())
            keep += list(rng.choice(pats, size=int(rng.integers(2, len(pats) + 1)), replace=False))
        d = d[d["patient"].isin(keep)]
        last = {p: int(rng.integers(1, 21)) for p in d["patient"].unique()}
        d = d[d["session"] <= d["patient"].map(last)]
        d = d[rng.random(len(d)) > 0.1]
    d = d.dropna(subset=["wai", "phq"])
    cols = ["therapist", "patient", "session", "experience", "wai", "phq"]
    return d[cols].round(10).reset_index(drop=True)


def raters(seed=44, n_patients=40, n_raters=8):
    """Observer ratings of alliance: each patient's 4 sessions, each rated by 2 or 3 raters drawn
    from 8 (patients and raters crossed, partly)."""
    rng = np.random.default_rng(seed)
    pat = rng.normal(0, 0.5, n_patients)
    rat = rng.normal(0, 0.3, n_raters)
    rows = []
    for i in range(n_patients):
        rs = rng.choice(n_raters, size=int(rng.integers(2, 4)), replace=False)
        for s in range(1, 5):
            for r in rs:
                y = 3.5 + 0.1 * s + pat[i] + rat[r] + rng.normal(0, 0.4)
                rows.append((f"P{i + 1:02d}", f"R{r + 1}", s, round(float(y), 10)))
    import pandas as pd

    return pd.DataFrame(rows, columns=["patient", "rater", "session", "score"])


if __name__ == "__main__":
    build(41, 4, 6, 5, 12).to_csv(HERE / "lmm_kr_alliance4.csv", index=False)
    build(42, 12, 6, 5, 15).to_csv(HERE / "lmm_kr_alliance12.csv", index=False)
    build(43, 10, 9, 2, 20, unbalanced=True).to_csv(HERE / "lmm_kr_unbalanced.csv", index=False)
    raters().to_csv(HERE / "lmm_kr_raters.csv", index=False)
