"""Write the simulated data behind the optimizer reference fits (tests/test_lmm_optimizer.py).

The design of the optimizer issue: patients x sessions, ``session`` 0..14 raw, a patient
intercept variance of about 0.8, a slope variance of about 0.004 with a negative covariance, and
``outcome ~ alliance_pc + alliance_pm + session + (1 + session | patient)`` (alliance centred
within patient, and the patient mean). On these data the first optimizer stopped in a corner
of the Cholesky coordinates (intercept SD 0) short of lme4's optimum.

Run from the repository root: ``python tests/reference/make_lmm_optimizer_data.py``, then
``Rscript tests/reference/make_lmm_optimizer_reference.R``.
"""

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent

# data set: (seed, residual SD, intercept-slope correlation)
DATA = {
    "issue": (0, 2.0, -0.5),
    "seed1": (1, 2.0, -0.5),
    "seed2": (2, 2.0, -0.5),
    "seed3": (3, 2.0, -0.5),
    "seed4": (4, 2.0, -0.5),
    "corr8_seed0": (0, 2.0, -0.8),
    "corr8_seed4": (4, 2.0, -0.8),
    "corr2_seed3": (3, 2.0, -0.2),
    "regular": (0, 1.5, -0.3),
}
# model id: (data set, shift added to session, REML); the shifted copies re-parametrise time
MODELS = {k: (k, 0, True) for k in DATA} | {
    "issue_ml": ("issue", 0, False),
    "issue_shift1": ("issue", 1, True),
    "issue_centred": ("issue", -7, True),
}
FORMULA = "outcome ~ alliance_pc + alliance_pm + session + (1 + session | patient)"


def simulate(seed, sigma, corr, n_patients=200, n_sessions=15, var0=0.8, var1=0.004):
    """One data set: patient intercepts and session slopes from a bivariate normal, alliance
    with a patient mean and session-to-session variation, split into its within-patient part
    (``alliance_pc``) and the patient mean (``alliance_pm``)."""
    rng = np.random.default_rng(seed)
    cov = corr * np.sqrt(var0 * var1)
    b = rng.multivariate_normal([0.0, 0.0], [[var0, cov], [cov, var1]], size=n_patients)
    pid = np.repeat(np.arange(1, n_patients + 1), n_sessions)
    session = np.tile(np.arange(n_sessions), n_patients)
    alliance = rng.normal(0, 0.5, n_patients)[pid - 1] + rng.normal(0, 0.6, len(pid))
    a_pm = pd.Series(alliance).groupby(pid).transform("mean").to_numpy()
    a_pc = alliance - a_pm
    y = 10 + 0.25 * a_pc + 0.6 * a_pm - 0.08 * session + b[pid - 1, 0] + b[pid - 1, 1] * session + rng.normal(0, sigma, len(pid))
    return pd.DataFrame({"patient": pid, "session": session, "alliance_pc": a_pc, "alliance_pm": a_pm, "outcome": y})


def build():
    parts = []
    for cid, (seed, sigma, corr) in DATA.items():
        parts.append(simulate(seed, sigma, corr).round(6).assign(data=cid))
    d = pd.concat(parts, ignore_index=True)
    return d[["data", "patient", "session", "alliance_pc", "alliance_pm", "outcome"]]


if __name__ == "__main__":
    build().to_csv(HERE / "lmm_optimizer_data.csv.gz", index=False)
    pd.DataFrame([{"id": k, "data": v[0], "shift": v[1], "reml": v[2], "formula": FORMULA} for k, v in MODELS.items()]).to_csv(
        HERE / "lmm_optimizer_models.csv", index=False)
