"""Write the simulated data sets behind the mixed-model reference fixtures.

Run from the repository root: ``python tests/reference/make_lmm_data.py``, then
``Rscript tests/reference/make_lmm_reference.R``. The model list both use is lmm_models.csv.
"""

from pathlib import Path

import alliance_stats as als

HERE = Path(__file__).parent


def build(seed, n_therapists, patients_per_therapist, min_sessions, max_sessions):
    s = als.simulate_study(n_therapists=n_therapists, patients_per_therapist=patients_per_therapist,
                           min_sessions=min_sessions, max_sessions=max_sessions, seed=seed)
    d = s.sessions
    d = d[["therapist", "patient", "session"]].assign(
        wai=als.score(d, "WAI-SR", items="wai{}")["wai_sr_total"],
        phq=als.score(d, "PHQ-9", items="phq{}")["phq9_total"],
    )
    d = als.decompose(d, ["wai", "phq"], by="patient", session="session", lags=[1])
    per = d.drop_duplicates("patient").dropna(subset=["wai_between"])
    tm = per.groupby("therapist")["wai_between"].mean()
    d["wai_therapist"] = d["therapist"].map(tm)
    d["wai_patient"] = d["wai_between"] - d["wai_therapist"]
    cols = ["therapist", "patient", "session", "wai", "phq", "wai_between", "wai_within_lag1",
            "wai_patient", "wai_therapist", "phq_within_lag1"]
    return d[cols].round(10)


if __name__ == "__main__":
    build(11, 20, 8, 6, 20).to_csv(HERE / "lmm_small.csv.gz", index=False)
    # the size at which statsmodels' MixedLM failed (2,000 patients, ~30,000 sessions)
    build(12, 100, 20, 12, 20).to_csv(HERE / "lmm_large.csv.gz", index=False)
