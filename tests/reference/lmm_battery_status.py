"""How far als.lmm is from each reference of the mixed-model battery (a table, for development).

Run from the repository root: ``python tests/reference/lmm_battery_status.py [id ...]``.
Columns: seconds of our fit, lme4's isSingular and our SingularFitWarning, dll = our logLik -
lme4's best (negative: we stopped short), and the largest relative differences of the fixed
estimates (relative to max(|estimate|, 1e-3 x the largest)), SEs, Satterthwaite df and the
residual variance; ``error`` when als.lmm raised. The assertions are in tests/test_lmm_battery.py.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parents[1]))
import test_lmm_battery as T  # noqa: E402


def status(ids):
    rows = []
    for i in ids:
        f = T._fit(i)
        ref = T.FIT.loc[i]
        r = dict(id=i, sec=round(f.seconds, 2), lme4_singular=bool(ref["singular"]), our_warning=f.singular_warned)
        if f.error is not None:
            rows.append({**r, "error": f"{type(f.error).__name__}: {str(f.error)[:80]}"})
            continue
        res = f.result
        r["dll"] = res.llf - ref["loglik"]
        try:
            ours, fx = T._fixed(i, res)
        except AssertionError:
            rows.append({**r, "error": f"terms {sorted(res.fixed['term'])} vs lme4 {sorted(fx_terms(i))}"})
            continue
        scale = np.abs(fx["estimate"]).max()
        r["estimate"] = np.max(np.abs(ours["estimate"] - fx["estimate"]) / np.maximum(np.abs(fx["estimate"]), 1e-3 * scale))
        r["se"] = np.max(np.abs(ours["se"] / fx["se"] - 1))
        r["df"] = np.max(np.abs(ours["df"] / fx["df"] - 1))
        resid = T.RANDOM.query("id == @i and grp == 'Residual'")["vcov"].iloc[0]
        r["sigma2"] = abs(res.sigma**2 / resid - 1)
        rows.append(r)
    return pd.DataFrame(rows)


def fx_terms(i):
    return T.FIXED.loc[T.FIXED["id"] == i, "term"].tolist()


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    pd.set_option("display.width", 250, "display.max_colwidth", 90, "display.max_rows", 500)
    print(status(sys.argv[1:] or T.IDS).to_string(float_format=lambda x: f"{x:.2e}"))
