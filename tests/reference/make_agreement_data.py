"""Synthetic client-therapist data for the agreement analyses (response surface, APIM).

Seeded numpy only; run from the repository root:
    python tests/reference/make_agreement_data.py
then Rscript tests/reference/make_agreement_reference.R for the reference values.

Writes (all synthetic, no patient records):
  agreement_rsa.csv      one row per client-therapist pair: client and therapist WAI-SR means
                         (1-5, in steps of 1/12 as a 12-item mean), an outcome with a congruence
                         effect (higher when both agree at a high level)
  agreement_rsa_ml.csv   sessions of patients: client and therapist ratings each session and a
                         session outcome with a patient random intercept; a few ratings missing
  agreement_apim.csv     long table, one row per person: dyad, role (client/therapist), alliance
                         (own rating) and outcome; every dyad complete
  agreement_apim_incomplete.csv  the same design with 6 dyads lacking the therapist row and
                         5 persons lacking the outcome
"""

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent


def _wai_mean(latent):
    """A 12-item 1-5 mean: round to twelfths, clip to the scale."""
    return np.clip(np.round(latent * 12) / 12, 1, 5)


def rsa_single(rng, n=150):
    c = rng.normal(3.4, 0.7, n)
    t = 0.5 * (c - 3.4) + rng.normal(3.5, 0.55, n)
    x, y = _wai_mean(c), _wai_mean(t)
    xc, yc = x - 3, y - 3
    z = 2 + 0.35 * xc + 0.25 * yc - 0.10 * xc**2 + 0.22 * xc * yc - 0.15 * yc**2 + rng.normal(0, 0.6, n)
    return pd.DataFrame({"dyad": np.arange(1, n + 1), "client_wai": x, "therapist_wai": y, "outcome": np.round(z, 4)})


def rsa_multilevel(rng, n_pat=45, n_sess=8):
    pid = np.repeat(np.arange(1, n_pat + 1), n_sess)
    sess = np.tile(np.arange(1, n_sess + 1), n_pat)
    cp = rng.normal(3.3, 0.5, n_pat)[pid - 1]
    tp = rng.normal(3.5, 0.4, n_pat)[pid - 1]
    x = _wai_mean(cp + rng.normal(0, 0.45, len(pid)))
    y = _wai_mean(tp + 0.3 * (x - 3.3) + rng.normal(0, 0.4, len(pid)))
    xc, yc = x - 3, y - 3
    u = rng.normal(0, 0.5, n_pat)[pid - 1]
    z = 1 + 0.3 * xc + 0.2 * yc - 0.12 * xc**2 + 0.18 * xc * yc - 0.08 * yc**2 + u + rng.normal(0, 0.5, len(pid))
    d = pd.DataFrame({"patient": pid, "session": sess, "client_wai": x, "therapist_wai": y, "outcome": np.round(z, 4)})
    miss = rng.choice(len(d), 9, replace=False)
    d.loc[miss[:5], "therapist_wai"] = np.nan
    d.loc[miss[5:], "outcome"] = np.nan
    return d


def apim_long(rng, n=120):
    dyad = np.arange(1, n + 1)
    # own alliance ratings, correlated within dyad
    shared = rng.normal(0, 0.5, n)
    a_c = 3.6 + shared + rng.normal(0, 0.55, n)
    a_t = 3.4 + 0.6 * shared + rng.normal(0, 0.45, n)
    e = rng.multivariate_normal([0, 0], [[1.0, 0.35 * 1.0 * 0.6], [0.35 * 1.0 * 0.6, 0.36]], n)
    y_c = 10 + 2.0 * a_c + 0.8 * a_t + e[:, 0]
    y_t = 8 + 1.2 * a_t + 0.3 * a_c + e[:, 1]
    d = pd.DataFrame({
        "dyad": np.r_[dyad, dyad],
        "role": ["client"] * n + ["therapist"] * n,
        "alliance": np.round(np.r_[a_c, a_t], 3),
        "outcome": np.round(np.r_[y_c, y_t], 3),
    })
    return d.sort_values(["dyad", "role"], kind="stable").reset_index(drop=True)


def main():
    rng = np.random.default_rng(20261124)
    rsa_single(rng).to_csv(HERE / "agreement_rsa.csv", index=False)
    rsa_multilevel(rng).to_csv(HERE / "agreement_rsa_ml.csv", index=False)
    apim_long(rng).to_csv(HERE / "agreement_apim.csv", index=False)
    inc = apim_long(rng, n=90)
    gone = rng.choice(np.arange(1, 91), 6, replace=False)
    inc = inc[~(inc["dyad"].isin(gone) & (inc["role"] == "therapist"))].reset_index(drop=True)
    miss = rng.choice(len(inc), 5, replace=False)
    inc.loc[miss, "outcome"] = np.nan
    inc.to_csv(HERE / "agreement_apim_incomplete.csv", index=False)


if __name__ == "__main__":
    main()
