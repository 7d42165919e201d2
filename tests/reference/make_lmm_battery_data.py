"""Write the simulated alliance designs of the mixed-model reference battery (lmm_battery_*.csv.gz).

Run from the repository root: ``python tests/reference/make_lmm_battery_data.py``, then
``Rscript tests/reference/make_lmm_battery.R``. Uses numpy only (not the package), so the data do
not change when alliance_stats does. The model list is lmm_battery_models.csv; the data sets and
their factor columns are listed in lmm_battery_data.csv (both written by hand, read by the R
script and by tests/test_lmm_battery.py).

Every design: sessions in patients (in therapists), columns therapist, patient, session
(0-based count), alliance (raw), alliance_pm (patient mean), alliance_pc (alliance - patient
mean) and outcome = 10 + 0.5 alliance_pc + 0.8 alliance_pm - 0.15 session + random effects + e.
"""

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent


def _ids(prefix, k, n):
    width = len(str(n))
    return np.array([f"{prefix}{i + 1:0{width}d}" for i in k])


def design(seed, *, therapists=None, patients, sessions, dropout=False):
    """Rows of patients (optionally within therapists); ``sessions``: an int (balanced) or a
    (lo, hi) range of session counts drawn per patient. ``therapists``: number of therapists
    (patients split evenly) or None. With ``dropout`` each patient stops after a session drawn
    from 3..sessions."""
    rng = np.random.default_rng(seed)
    if isinstance(sessions, tuple):
        n_s = rng.integers(sessions[0], sessions[1] + 1, size=patients)
    elif dropout:
        n_s = rng.integers(3, sessions + 1, size=patients)
        n_s[rng.random(patients) < 0.4] = sessions  # 40 % complete
    else:
        n_s = np.full(patients, sessions)
    pat = np.repeat(np.arange(patients), n_s)
    ses = np.concatenate([np.arange(k) for k in n_s])
    d = pd.DataFrame({"patient": _ids("p", pat, patients), "session": ses})
    if therapists:
        ther = np.arange(patients) * therapists // patients
        d.insert(0, "therapist", _ids("t", ther[pat], therapists))
    a_p = rng.normal(0, 0.7, patients)
    d["alliance"] = np.round(5 + a_p[pat] + 0.03 * ses + rng.normal(0, 0.5, len(d)), 6)
    d["alliance_pm"] = d.groupby("patient")["alliance"].transform("mean")
    d["alliance_pc"] = d["alliance"] - d["alliance_pm"]
    return d, rng, pat


def outcome(d, rng, pat, *, re_patient, re_therapist=None, resid_sd=1.0, ther=None):
    """outcome = fixed part + Z b + e; re_*: (covariance 2x2 of intercept and session slope)."""
    mu = 10 + 0.5 * d["alliance_pc"] + 0.8 * d["alliance_pm"] - 0.15 * d["session"]
    s = d["session"].to_numpy(float)
    b = rng.multivariate_normal([0, 0], re_patient, size=pat.max() + 1, method="eigh")
    y = mu + b[pat, 0] + b[pat, 1] * s
    if re_therapist is not None:
        t = ther if ther is not None else pd.factorize(d["therapist"], sort=True)[0]
        bt = rng.multivariate_normal([0, 0], re_therapist, size=t.max() + 1, method="eigh")
        y = y + bt[t, 0] + bt[t, 1] * s
    return y + rng.normal(0, resid_sd, len(d))


def cov(v0, v1, r):
    c = r * np.sqrt(v0 * v1)
    return np.array([[v0, c], [c, v1]])


def finish(d, y):
    d = d.copy()
    d["outcome"] = np.round(y, 6)
    d["alliance_pm"] = d["alliance_pm"].round(10)
    d["alliance_pc"] = d["alliance_pc"].round(10)
    return d


def build():
    out = {}
    # -- raw session 0..14, balanced, random intercept + slope, negative covariance (the known failure)
    # (residual SD 2, as a questionnaire total; "rs200small" has residual SD 0.7)
    for name, seed, n_p, n_s, drop, rsd in [("rs200", 101, 200, 15, False, 2.0), ("rs200b", 102, 200, 15, False, 2.0),
                                            ("rs100", 103, 100, 10, False, 2.0), ("rs200drop", 104, 200, 15, True, 2.0),
                                            ("rs200small", 105, 200, 15, False, 0.7)]:
        d, rng, pat = design(seed, patients=n_p, sessions=n_s, dropout=drop)
        out[name] = finish(d, outcome(d, rng, pat, re_patient=cov(0.8, 0.004, -0.5), resid_sd=rsd))
    # -- patient variance at zero, therapist variance tiny (0.004 REML): small true patient variance,
    # no therapist effect; "tinyther2": the same with the therapist means of the outcome equalised
    # (with alliance_pm in the model the therapist variance stays positive, 0.02)
    d, rng, pat = design(201, therapists=10, patients=80, sessions=8)
    d = finish(d, outcome(d, rng, pat, re_patient=cov(0.02, 0, 0), resid_sd=1.0))
    out["tinyther"] = d
    out["tinyther2"] = d.assign(outcome=(d["outcome"] - d.groupby("therapist")["outcome"].transform("mean") + d["outcome"].mean()).round(6))
    # -- tiny (positive) patient and therapist variances
    d, rng, pat = design(216, therapists=20, patients=200, sessions=15)
    out["tinyvar"] = finish(d, outcome(d, rng, pat, re_patient=cov(0.03, 0, 0), re_therapist=cov(0.02, 0, 0)))
    # -- variances exactly zero at the optimum (for outcome ~ alliance_pc + session + ..., balanced:
    # alliance_pc averages zero within each patient): "zerotherapist" has the therapist means of the
    # outcome equalised; "zeropatient" has each patient's deviation from the therapist mean shrunk to 0.3
    d, rng, pat = design(215, therapists=10, patients=80, sessions=8)
    d = finish(d, outcome(d, rng, pat, re_patient=cov(0.5, 0, 0), re_therapist=cov(0.3, 0, 0)))
    tm = d.groupby("therapist")["outcome"].transform("mean")
    pm = d.groupby("patient")["outcome"].transform("mean")
    out["zerotherapist"] = d.assign(outcome=(d["outcome"] - tm + d["outcome"].mean()).round(6))
    out["zeropatient"] = d.assign(outcome=(d["outcome"] - 0.7 * (pm - tm)).round(6))
    # -- intercept-slope correlation near +1 (true 0.9), at +1 (true 0.97) and at -1 (slope = -0.1 x intercept)
    d, rng, pat = design(214, patients=150, sessions=12)
    out["corrnear"] = finish(d, outcome(d, rng, pat, re_patient=cov(1.0, 0.01, 0.9), resid_sd=0.6))
    d, rng, pat = design(202, patients=60, sessions=10)
    out["corrplus"] = finish(d, outcome(d, rng, pat, re_patient=cov(1.0, 0.01, 0.97), resid_sd=0.8))
    d, rng, pat = design(203, patients=60, sessions=10)
    out["corrminus"] = finish(d, outcome(d, rng, pat, re_patient=cov(1.0, 0.01, -1.0), resid_sd=0.8))
    # -- slopes at patient and therapist level (20 therapists)
    d, rng, pat = design(204, therapists=20, patients=160, sessions=12)
    out["slopes2"] = finish(d, outcome(d, rng, pat, re_patient=cov(0.6, 0.005, -0.3), re_therapist=cov(0.2, 0.002, 0.3)))
    # -- few therapists (3, 4, 5) and 10 therapists
    for k, seed in [(3, 205), (4, 206), (5, 207), (10, 208)]:
        d, rng, pat = design(seed, therapists=k, patients=6 * k, sessions=8)
        out[f"ther{k}"] = finish(d, outcome(d, rng, pat, re_patient=cov(0.5, 0.003, 0), re_therapist=cov(0.3, 0, 0)))
    # -- unbalanced: 1..20 sessions per patient, 30 therapists
    d, rng, pat = design(209, therapists=30, patients=240, sessions=(1, 20))
    out["unbal"] = finish(d, outcome(d, rng, pat, re_patient=cov(0.7, 0.004, -0.3), re_therapist=cov(0.25, 0, 0)))
    # -- 100,000 rows: 250 therapists x 20 patients x 20 sessions
    d, rng, pat = design(210, therapists=250, patients=5000, sessions=20)
    out["big"] = finish(d, outcome(d, rng, pat, re_patient=cov(0.6, 0.003, -0.2), re_therapist=cov(0.15, 0, 0)))
    # -- sessions rated by observers (8 raters, crossed with patients)
    d, rng, pat = design(211, patients=60, sessions=10)
    rater = rng.integers(0, 8, len(d))
    d.insert(2, "rater", _ids("r", rater, 8))
    y = outcome(d, rng, pat, re_patient=cov(0.6, 0, 0)) + rng.normal(0, 0.5, 8)[rater]
    out["raters"] = finish(d, y)
    # -- partially crossed: 25 % of patients change therapist half way (15 therapists)
    d, rng, pat = design(212, therapists=15, patients=150, sessions=12)
    t = pd.factorize(d["therapist"], sort=True)[0]
    movers = rng.random(150) < 0.25
    newt = (np.arange(150) * 15 // 150 + rng.integers(1, 15, 150)) % 15
    move = movers[pat] & (d["session"].to_numpy() >= 6)
    t = np.where(move, newt[pat], t)
    d["therapist"] = _ids("t", t, 15)
    out["changers"] = finish(d, outcome(d, rng, pat, re_patient=cov(0.6, 0, 0), re_therapist=cov(0.3, 0, 0), ther=t))
    # -- quadratic time (unbalanced sessions, 1..16)
    d, rng, pat = design(213, patients=120, sessions=(1, 16))
    y = outcome(d, rng, pat, re_patient=cov(0.6, 0.004, -0.2)) + 0.012 * d["session"] ** 2
    out["quad"] = finish(d, y)
    return out


if __name__ == "__main__":
    import sys

    where = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    for name, d in build().items():
        d.to_csv(where / f"lmm_battery_{name}.csv.gz", index=False, compression={"method": "gzip", "mtime": 0})
        print(name, d.shape)
