"""Speed of the dynamic panel model and the RI-CLPM, beside lavaan on the same data.

Run: python benchmarks/dynamics.py   (or python benchmarks/run.py --dynamics)

1,000 patients x 12 sessions from simulate_study (symptom -> alliance feedback, carry-over),
once complete and once with dropout (after a weak first alliance and after unrepaired ruptures)
and missed sessions, so that FIML has many missing-data patterns. Python: the best of 3 runs
(wall clock); lavaan 0.6 (its default optimizer, estimator = "ML", missing = "fiml", observed
information; the model syntax of tests/reference/make_dynamics_reference.R): one run, timed
around the lavaan() call. The last column is the difference in log-likelihood at the optimum.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

import alliance_stats as als

ROOT = Path(__file__).resolve().parent.parent
SYNTAX = ROOT / "tests" / "reference" / "make_dynamics_reference.R"

R_TIMER = r"""
suppressMessages(library(lavaan))
args <- commandArgs(TRUE)
src <- readLines(args[1])
eval(parse(text = src[grep("^to_wide <- function", src):(grep("^# --- models", src) - 1)]))
d <- read.csv(args[2])
T <- max(d$session)
w <- to_wide(d, "patient", "session", c("wai", "phq"))
model <- switch(args[3], dpm = dpm_syntax("phq", "wai", T), reverse = dpm_syntax("phq", "wai", T, reverse = TRUE),
                riclpm = riclpm_syntax("wai", "phq", T))
t0 <- proc.time()[["elapsed"]]
f <- lavaan(model, data = w, estimator = "ML", missing = "fiml", fixed.x = FALSE, meanstructure = TRUE, information = "observed",
            int.ov.free = FALSE, int.lv.free = FALSE, auto.fix.first = FALSE, auto.fix.single = FALSE, auto.var = FALSE,
            auto.cov.lv.x = FALSE, auto.cov.y = FALSE, auto.th = FALSE, auto.delta = FALSE)
el <- proc.time()[["elapsed"]] - t0
cat(el, format(fitMeasures(f, "logl"), digits = 15), lavInspect(f, "converged"), "\n")
"""


def data(missing: bool) -> pd.DataFrame:
    kw = dict(dropout_alliance=1.0, dropout_unrepaired=0.5, missed_session_rate=0.05) if missing else dict(dropout_rate=0.0, missed_session_rate=0.0)
    s = als.simulate_study(n_therapists=100, patients_per_therapist=10, min_sessions=12, max_sessions=12, seed=2026, feedback=-0.05,
                           outcome_ar=0.3, pqs_fraction=0.0, **kw)
    return s.sessions[["patient", "session"]].assign(wai=als.score(s.sessions, "WAI-SR", items="wai{}")["wai_sr_total"],
                                                      phq=als.score(s.sessions, "PHQ-9", items="phq{}")["phq9_total"])


FITS = {
    "dpm": ("dynamic_panel", lambda d: als.dynamic_panel(d, x="wai", y="phq")),
    "reverse": ("dynamic_panel(reverse=True)", lambda d: als.dynamic_panel(d, x="wai", y="phq", reverse=True)),
    "riclpm": ("ri_clpm", lambda d: als.ri_clpm(d, x="wai", y="phq")),
}


def bench_dynamics(with_r: bool = True, repeat: int = 3):
    have_r = with_r and shutil.which("Rscript") is not None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "time_lavaan.R"
        script.write_text(R_TIMER)
        for missing in (False, True):
            d = data(missing)
            path = Path(tmp) / f"d{int(missing)}.csv"
            d.to_csv(path, index=False)
            for key, (name, fit) in FITS.items():
                times, res = [], None
                for _ in range(repeat):
                    t = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", als.AllianceStatsWarning)
                        res = fit(d)
                    times.append(time.perf_counter() - t)
                row = {"model": name, "data": "dropout + missed sessions" if missing else "complete", "patients": res.n_patients,
                       "rows": res.n_rows, "parameters": int(res.fit["npar"]), "alliance-stats s": min(times)}
                if have_r:
                    out = subprocess.run(["Rscript", str(script), str(SYNTAX), str(path), key], capture_output=True, text=True, check=True)
                    el, ll, conv = out.stdout.split()
                    row.update({"lavaan s": float(el), "lavaan / alliance-stats": float(el) / min(times),
                                "logLik diff (ours - lavaan)": res.fit["loglik"] - float(ll), "lavaan converged": conv == "TRUE"})
                rows.append(row)
    return rows


def main():
    import platform

    import numpy as np

    print(f"machine: {platform.machine()}, {platform.system()} {platform.release()}, Python {sys.version.split()[0]}, "
          f"pandas {pd.__version__}, numpy {np.__version__}")
    print(pd.DataFrame(bench_dynamics()).to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
