"""Write the small synthetic alliance table behind the formula fixtures (lmm_formula_data.csv).

Run from the repository root: ``python tests/reference/make_lmm_formula_data.py``, then
``Rscript tests/reference/make_lmm_formula_reference.R``. Twelve patients of three therapists,
five to eight sessions each, a three-level condition, a two-level site, a logical column, and
three missing outcomes (so that poly() and scale() over all rows differ from over the complete
rows, as R computes them).
"""

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent


def build(seed=2024):
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(12):
        n = int(rng.integers(5, 9))
        condition = ["cbt", "ipt", "wait"][p % 3]
        site = ["a", "b"][p % 2]
        female = bool(rng.integers(0, 2))
        u = rng.normal(0, 2)
        for s in range(1, n + 1):
            wai = 4 + 0.05 * s + rng.normal(0, 0.4)
            phq = 15 + u - 0.6 * s - 2 * (wai - 4) - 1.5 * (condition == "cbt") + rng.normal(0, 2)
            rows.append({"patient": f"p{p + 1:02d}", "therapist": f"t{p // 4 + 1}", "session": s, "condition": condition,
                         "site": site, "female": female, "wai": round(wai, 3), "dose": round(rng.uniform(0.5, 3), 3),
                         "phq": round(phq, 2)})
    d = pd.DataFrame(rows)
    d.loc[[3, 20, 41], "phq"] = np.nan
    d["female"] = d["female"].map({True: "TRUE", False: "FALSE"})  # read as logical by R and pandas
    return d


if __name__ == "__main__":
    build().to_csv(HERE / "lmm_formula_data.csv", index=False)
