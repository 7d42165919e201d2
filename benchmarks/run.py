"""Speed measurements for alliance-stats (run: make bench, or python benchmarks/run.py).

Prints a Markdown table; copy it into benchmarks/README.md with the machine and date.
Each figure is the best of `repeat` runs (wall clock, time.perf_counter).
"""

from __future__ import annotations

import platform
import sys
import time
import warnings

import numpy as np
import pandas as pd

import alliance_stats as als


def best_of(fn, repeat=5, budget=0.0):
    """Best wall-clock time of at least ``repeat`` runs, running on until ``budget`` seconds have
    passed: short calls then get as long a window as R's slower ones to land in a quiet moment of
    this shared machine (its speed changes in phases of a tenth of a second to a second)."""
    times = []
    start = time.perf_counter()
    while len(times) < repeat or time.perf_counter() - start < budget:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def wai_sr_rows(n, seed=0, missing=0.01):
    rng = np.random.default_rng(seed)
    X = rng.integers(1, 6, size=(n, 12)).astype(float)
    X[rng.random(X.shape) < missing] = np.nan
    return pd.DataFrame(X, columns=[f"wai{i}" for i in range(1, 13)])


def bench_scoring():
    rows = []
    for n in (10_000, 100_000, 1_000_000):
        df = wai_sr_rows(n)
        t = best_of(lambda: als.score(df, "wai-sr", items="wai{}"))
        rows.append({"benchmark": "score WAI-SR (12 items, 1% missing)", "rows": n, "seconds": t})
    df = wai_sr_rows(1_000_000)
    df36 = pd.DataFrame(np.random.default_rng(1).integers(1, 8, size=(1_000_000, 36)), columns=[f"w{i}" for i in range(1, 37)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", als.ProvisionalKeyWarning)
        t = best_of(lambda: als.score(df36, "wai-36-client", items="w{}"))
    rows.append({"benchmark": "score WAI-36 (36 items, 14 reversed)", "rows": 1_000_000, "seconds": t})
    t = best_of(lambda: als.reliability(df, "wai-sr", items="wai{}"), repeat=3)
    rows.append({"benchmark": "reliability WAI-SR (alpha, omega, 4 scales)", "rows": 1_000_000, "seconds": t})
    return rows


def bench_loading():
    path = als.sample_path("sessions_csv")
    ids = dict(patient="client_id", session="session_no", therapist="therapist_id")
    inst = {"wai-sr": "WAISR_{}", "phq-9": "PHQ9_{}"}
    t = best_of(lambda: als.read_sessions(path, instruments=inst, **ids).data)
    big = pd.concat([als.load_sample("sessions_csv").assign(client_id=lambda d, k=k: d.client_id + f"-{k}") for k in range(50)], ignore_index=True)
    t2 = best_of(lambda: als.read_sessions(big, instruments=inst, **ids).data, repeat=3)
    return [
        {"benchmark": "read_sessions sample CSV + score 2 instruments", "rows": 1821, "seconds": t},
        {"benchmark": "read_sessions DataFrame + validate IDs + score 2 instruments", "rows": len(big), "seconds": t2},
    ]


def bench_real_path():
    """The real path: read_sessions on 1,000,000 session rows, then detect_ruptures on what it returned."""
    rng = np.random.default_rng(0)
    P, S = 100_000, 10
    raw = pd.DataFrame({"pid": np.repeat(np.arange(P), S).astype(str), "sess": np.tile(np.arange(1, S + 1), P),
                        "w": np.round(rng.normal(3.8, 0.4, P * S), 2)})
    t_read = best_of(lambda: als.read_sessions(raw, patient="pid", session="sess"), repeat=2)
    df = als.read_sessions(raw, patient="pid", session="sess").data
    t_detect = best_of(lambda: als.detect_ruptures(df, "w"), repeat=3)
    return [
        {"benchmark": "read_sessions DataFrame (1,000,000 rows, 100,000 patients)", "rows": len(raw), "seconds": t_read},
        {"benchmark": "detect_ruptures on read_sessions' table (real path)", "rows": len(df), "seconds": t_detect},
    ]


def bench_ruptures():
    rng = np.random.default_rng(0)
    P, S = 100_000, 10
    d = pd.DataFrame({"patient": np.repeat(np.arange(P), S), "session": np.tile(np.arange(1, S + 1), P),
                      "w": np.round(rng.normal(3.8, 0.4, P * S), 2)})
    rows = []
    for k in (1, 3):
        t = best_of(lambda: als.detect_ruptures(d, "w", max_decline_sessions=k), repeat=3)
        rows.append({"benchmark": f"detect_ruptures (max_decline_sessions={k}), 100,000 patients", "rows": len(d), "seconds": t})
    return rows


LMM_MODELS = {
    "random intercept": "phq ~ wai_within_lag1 + wai_between + session + (1 | patient)",
    "random slope": "phq ~ session + (1 + session | patient)",
    "three-level (therapist/patient)": "wai ~ session + phq_within_lag1 + (1 | therapist) + (1 | therapist:patient)",
}
LMM_SIZES = {"~3k": (20, 10), "~30k": (100, 20), "~150k": (500, 20)}  # therapists, patients each

R_TIMER = r"""
suppressMessages({library(lme4); library(lmerTest)})
args <- commandArgs(TRUE)
d <- read.csv(args[1]); d$patient <- factor(d$patient); d$therapist <- factor(d$therapist)
k <- as.integer(args[3])
budget <- as.numeric(args[4])
best <- function(expr_fun) {  # at least k runs, and on until `budget` seconds have passed (as best_of)
  ts <- numeric(0); t0 <- proc.time()[["elapsed"]]
  while (length(ts) < k || proc.time()[["elapsed"]] - t0 < budget) ts <- c(ts, system.time(expr_fun())[["elapsed"]])
  min(ts)
}
f <- args[2]
t1 <- best(function() lme4::lmer(as.formula(f), d))
t2 <- best(function() lmerTest::lmer(as.formula(f), d))
fit <- lme4::lmer(as.formula(f), d)
ll <- as.numeric(logLik(fit))
cat(sprintf("%.6f %.6f %.6f %d\n", t1, t2, ll, as.integer(fit@optinfo$feval)))
"""


def lmm_data(n_therapists, per, seed=1):
    s = als.simulate_study(n_therapists=n_therapists, patients_per_therapist=per, min_sessions=12, max_sessions=20,
                           seed=seed, pqs_fraction=0)
    d = s.sessions[["therapist", "patient", "session"]].assign(
        wai=als.score(s.sessions, "WAI-SR", items="wai{}")["wai_sr_total"],
        phq=als.score(s.sessions, "PHQ-9", items="phq{}")["phq9_total"],
    )
    return als.decompose(d, ["wai", "phq"], lags=[1])


def bench_lmm(with_r=True):
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    have_r = with_r and shutil.which("Rscript") is not None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "time_lmer.R"
        script.write_text(R_TIMER)
        for size, (T, P) in LMM_SIZES.items():
            d = lmm_data(T, P)
            path = Path(tmp) / f"d{T}.csv"
            if have_r:
                d.to_csv(path, index=False)
            # millisecond fits need more repeats for a stable minimum, and the same time window as R's
            repeat, budget = (15, 2.0) if len(d) < 10_000 else (3, 0.0)
            for name, formula in LMM_MODELS.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", als.AllianceStatsWarning)
                    fit = {}
                    t = best_of(lambda: fit.setdefault("m", als.lmm(formula, d)), repeat=repeat, budget=budget)
                    tz = best_of(lambda: als.lmm(formula, d, df_method="z"), repeat=repeat, budget=budget)
                    t0 = time.perf_counter()
                    sm = als.lmm(formula, d, df_method="z", engine="statsmodels")
                    tsm = time.perf_counter() - t0
                o = fit["m"].optsum
                row = {"model": name, "rows": fit["m"].n_obs, "fast, Satterthwaite s": t, "fast, z s": tz,
                       "evaluations (first pass / all)": f"{o.feval} / {o.n_evals}",
                       "statsmodels engine s": tsm, "statsmodels reached optimum": bool(sm.converged and abs(sm.llf - fit["m"].llf) < 1e-3)}
                if have_r:
                    out = subprocess.run(["Rscript", str(script), str(path), formula, str(repeat), str(budget)], capture_output=True, text=True, check=True)
                    t1, t2, ll, feval = map(float, out.stdout.split())
                    row.update({"lme4 feval": int(feval), "lme4::lmer s": t1, "lmerTest::lmer s": t2, "fast(z) / lme4": tz / t1,
                                "fast(Satt.) / lmerTest": t / t2, "logLik diff (fast - lme4)": fit["m"].llf - ll})
                rows.append(row)
    return rows


CROSSED_MODELS = [  # (name, data file in tests/reference, formula, grouping columns)
    ("Penicillin: plate x sample", "lmm_crossed_penicillin.csv", "diameter ~ 1 + (1 | plate) + (1 | sample)", ["plate", "sample"]),
    ("raters: patient x rater", "lmm_crossed_raters.csv.gz", "alliance ~ session + (1 | patient) + (1 | rater)", ["patient", "rater"]),
    ("therapist changers (partially crossed)", "lmm_crossed_changers.csv.gz", "phq ~ session + (1 | therapist) + (1 | patient)",
     ["therapist", "patient"]),
    ("InstEval: student x instructor x dept", "lmm_crossed_insteval.csv.gz", "y ~ service + (1 | s) + (1 | d) + (1 | dept)",
     ["s", "d", "dept"]),
]

R_CROSSED_TIMER = r"""
suppressMessages({library(lme4); library(lmerTest)})
args <- commandArgs(TRUE)
d <- read.csv(args[1])
for (v in strsplit(args[3], ",")[[1]]) d[[v]] <- factor(d[[v]])
k <- as.integer(args[4]); budget <- as.numeric(args[5])
best <- function(expr_fun) {  # best wall-clock and best CPU time (user + system) of the runs
  w <- numeric(0); cpu <- numeric(0); t0 <- proc.time()[["elapsed"]]
  while (length(w) < k || proc.time()[["elapsed"]] - t0 < budget) {
    st <- system.time(expr_fun())
    w <- c(w, st[["elapsed"]]); cpu <- c(cpu, st[["user.self"]] + st[["sys.self"]])
  }
  c(min(w), min(cpu))
}
f <- as.formula(args[2])
t1 <- best(function() lme4::lmer(f, d))
t2 <- best(function() lmerTest::lmer(f, d))
m <- lme4::lmer(f, d)
cat(sprintf("%.6f %.6f %.6f %.6f %.6f %d\n", t1[1], t1[2], t2[1], t2[2], as.numeric(logLik(m)), m@optinfo$feval))
"""


def best_of_cpu(fn, repeat=5, budget=0.0):
    """As best_of, with the best CPU time (all threads of this process) beside the best wall
    clock: on a machine shared with other jobs, CPU time is the steadier of the two."""
    wall, cpu = [], []
    start = time.perf_counter()
    while len(wall) < repeat or time.perf_counter() - start < budget:
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return min(wall), min(cpu)


def bench_crossed(with_r=True):
    """Crossed random effects (the blocked Cholesky engine) side by side with lme4 and lmerTest,
    on the data of tests/reference (Penicillin and InstEval are lme4's). Wall-clock and CPU
    seconds; deviance evaluations of the z fit (the optimizer and its convergence check)."""
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    from alliance_stats.models.lmm.crossed import CrossedEngine

    ref = Path(__file__).resolve().parent.parent / "tests" / "reference"
    have_r = with_r and shutil.which("Rscript") is not None
    count = {"n": 0}
    deviance = CrossedEngine.deviance

    def counted(self, theta, reml=True):
        count["n"] += 1
        return deviance(self, theta, reml)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "time_crossed.R"
        script.write_text(R_CROSSED_TIMER)
        for name, file, formula, groups in CROSSED_MODELS:
            d = pd.read_csv(ref / file)
            repeat, budget = (5, 2.0) if len(d) < 10_000 else (1, 0.0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", als.AllianceStatsWarning)
                fit = {}
                t, tc = best_of_cpu(lambda: fit.setdefault("m", als.lmm(formula, d)), repeat=repeat, budget=budget)
                CrossedEngine.deviance = counted
                try:
                    count["n"] = 0
                    tz, tzc = best_of_cpu(lambda: fit.setdefault("z", als.lmm(formula, d, df_method="z")), repeat=1)
                    evals = count["n"]
                finally:
                    CrossedEngine.deviance = deviance
                if repeat > 1:
                    more = best_of_cpu(lambda: als.lmm(formula, d, df_method="z"), repeat=repeat, budget=budget)
                    tz, tzc = min(tz, more[0]), min(tzc, more[1])
            row = {"model": name, "rows": fit["m"].n_obs, "als Satt. s": t, "als Satt. CPU s": tc, "als z s": tz,
                   "als z CPU s": tzc, "als evals": evals}
            if have_r:
                out = subprocess.run(["Rscript", str(script), str(ref / file), formula, ",".join(groups), str(repeat), str(budget)],
                                     capture_output=True, text=True, check=True)
                t1, t1c, t2, t2c, ll, fev = out.stdout.split()
                t1, t1c, t2, t2c, ll = map(float, (t1, t1c, t2, t2c, ll))
                row.update({"lme4 s": t1, "lme4 CPU s": t1c, "lmerTest s": t2, "lmerTest CPU s": t2c, "lme4 evals": int(fev),
                            "als z / lme4 (CPU)": tzc / t1c, "als Satt. / lmerTest (CPU)": tc / t2c,
                            "logLik als - lme4": fit["m"].llf - ll})
            rows.append(row)
    return rows


MEMORY_CHILD = r"""
import resource, sys, time, warnings
import pandas as pd
import alliance_stats as als
warnings.simplefilter("ignore")
d = pd.read_csv(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
m = als.lmm(sys.argv[2], d)
el = time.perf_counter() - t
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(d), m.n_obs, before / 1024, after / 1024, el)
"""


def bench_memory():
    """Peak resident memory of a fresh process that reads the ~150k-row data and fits the
    three-level model with Satterthwaite df (ru_maxrss before and after the fit)."""
    import subprocess
    import tempfile
    from pathlib import Path

    d = lmm_data(*LMM_SIZES["~150k"])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.csv"
        d.to_csv(path, index=False)
        out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(path), LMM_MODELS["three-level (therapist/patient)"]],
                             capture_output=True, text=True, check=True)
    rows, n_obs, before, after, el = out.stdout.split()
    return {"model": "three-level (therapist/patient)", "rows read": int(rows), "rows fitted": int(n_obs),
            "peak RSS before fit (MB)": float(before), "peak RSS after fit (MB)": float(after), "fit s": float(el)}


def bench_power():
    """The fast-engine issue's goal: 500 studies of 20 therapists x 8 patients x 12 sessions, the
    lagged within/between model with Satterthwaite df, on 2 cores."""
    t = time.perf_counter()
    res = als.power_analysis(n_therapists=20, patients_per_therapist=8, sessions=12, effect=-1.5, n_sims=500,
                             seed=1, n_jobs=2, progress=False)
    el = time.perf_counter() - t
    row = res.table.iloc[0]
    return {"benchmark": "power_analysis, 500 studies of 20 x 8 x 12, n_jobs=2", "seconds": el,
            "power": row["power"], "fits failed": int(res.table["n_failed"].sum())}


def main():
    if "--dynamics" in sys.argv:  # dynamic panel model and RI-CLPM vs lavaan (benchmarks/dynamics.py)
        sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
        import dynamics

        dynamics.main()
        return
    if "--power" in sys.argv:
        print(pd.DataFrame([bench_power()]).to_markdown(index=False, floatfmt=".3f"))
        return
    if "--memory" in sys.argv:
        print(pd.DataFrame([bench_memory()]).to_markdown(index=False, floatfmt=".1f"))
        return
    if "--crossed" in sys.argv:
        print(pd.DataFrame(bench_crossed()).to_markdown(index=False, floatfmt=".3f"))
        return
    if "--lmm" in sys.argv:
        out = pd.DataFrame(bench_lmm())
        print(out.to_markdown(index=False, floatfmt=".3f"))
        return
    rows = bench_scoring() + bench_loading() + bench_real_path() + bench_ruptures()
    out = pd.DataFrame(rows)
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {platform.system()} {platform.release()}, "
          f"Python {sys.version.split()[0]}, pandas {pd.__version__}, numpy {np.__version__}")
    print(out.to_markdown(index=False, floatfmt=".3f"))
    print()
    print(pd.DataFrame(bench_lmm()).to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
