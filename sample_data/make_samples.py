"""Make the synthetic sample datasets in sample_data/ (run from the repository root).

    python sample_data/make_samples.py

Every file is synthetic: made by alliance_stats.simulate_study (seed below) and written in the
shapes researchers get from survey tools, SPSS and Excel. No real patient records.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
from scipy import optimize

import alliance_stats as als

SEED = 20261121
OUT = Path(__file__).resolve().parent
DESIGN = dict(n_therapists=20, patients_per_therapist=8, max_sessions=20, min_sessions=6)


def export_table(st: als.SimulatedStudy) -> pd.DataFrame:
    """The simulated sessions with the column names a survey tool would give them."""
    s = st.sessions
    out = pd.DataFrame(
        {
            "therapist_id": s["therapist"].map(lambda t: f"T{t:02d}"),
            "client_id": s["patient"].map(lambda p: f"P{p:04d}"),
            "session_no": s["session"],
            "therapy": s["therapy"],
            "age": s["age"],
            "gender": s["gender"],
            "phase": s["phase"].astype(str),
            "alliance_type": s["alliance_type"].astype(str),
        }
    )
    for i in range(1, 13):
        out[f"WAISR_{i}"] = s[f"wai{i}"]
    for i in range(1, 25):
        out[f"CALPAS_T_{i}"] = s[f"calpas{i}"]
    for i in range(1, 10):
        out[f"PHQ9_{i}"] = s[f"phq{i}"]
    return out


CODES = {
    "therapy": {1: "CBT", 2: "PDT"},
    "gender": {1: "female", 2: "male", 3: "diverse"},
    "phase": {1: "beginning", 2: "middle", 3: "termination"},
    "alliance_type": {1: "magical", 2: "working", 3: "therapeutic", 4: "structuralizing"},
}


def write_spss(wide: pd.DataFrame, path: Path) -> None:
    df = wide.copy()
    for col, lab in CODES.items():
        inv = {v: k for k, v in lab.items()}
        df[col] = df[col].map(inv).astype(float)
    labels = {
        "therapist_id": "Therapist ID",
        "client_id": "Client ID",
        "session_no": "Session number",
        "therapy": "Treatment",
        "age": "Age at intake (years)",
        "gender": "Gender",
        "phase": "Treatment phase",
        "alliance_type": "Alliance type coded by observer",
    }
    labels.update({f"WAISR_{i}": f"WAI-SR client item {i}" for i in range(1, 13)})
    labels.update({f"CALPAS_T_{i}": f"CALPAS-T item {i}" for i in range(1, 25)})
    labels.update({f"PHQ9_{i}": f"PHQ-9 item {i}" for i in range(1, 10)})
    pyreadstat.write_sav(
        df,
        str(path),
        column_labels=[labels[c] for c in df.columns],
        variable_value_labels={k: {float(a): b for a, b in v.items()} for k, v in CODES.items()},
    )


def write_excel(wide: pd.DataFrame, path: Path) -> None:
    codebook = pd.DataFrame(
        [
            ("therapist_id", "Therapist ID"),
            ("client_id", "Client ID"),
            ("session_no", "Session number (1 = first session)"),
            ("therapy", "Treatment: CBT or PDT"),
            ("WAISR_1..WAISR_12", "WAI-SR client items, 1 Seldom ... 5 Always"),
            ("CALPAS_T_1..CALPAS_T_24", "CALPAS therapist items, 1-7"),
            ("PHQ9_1..PHQ9_9", "PHQ-9 items, 0-3"),
        ],
        columns=["column", "meaning"],
    )
    with pd.ExcelWriter(path, engine="openpyxl") as xw:
        wide.to_excel(xw, sheet_name="sessions", index=False)
        codebook.to_excel(xw, sheet_name="codebook", index=False)


def long_table(wide: pd.DataFrame, n_patients: int = 40) -> pd.DataFrame:
    keep = wide["client_id"].isin(sorted(wide["client_id"].unique())[:n_patients])
    items = [f"WAISR_{i}" for i in range(1, 13)]
    lt = wide.loc[keep, ["therapist_id", "client_id", "session_no"] + items].melt(
        id_vars=["therapist_id", "client_id", "session_no"], var_name="item", value_name="value"
    )
    lt = lt.dropna(subset=["value"])
    lt["item_no"] = lt["item"].str.rsplit("_", n=1).str[-1].astype(int)
    return lt.sort_values(["client_id", "session_no", "item_no"]).drop(columns="item_no")


def pqs_table(st: als.SimulatedStudy) -> pd.DataFrame:
    q = st.qsorts
    out = pd.DataFrame(
        {
            "session_id": [f"P{p:04d}-S{s:02d}" for p, s in zip(q["patient"], q["session"])],
            "client_id": q["patient"].map(lambda p: f"P{p:04d}"),
            "session_no": q["session"],
            "judge": q["judge"],
            "therapy": q["therapy"],
        }
    )
    items = q[[f"pqs{i}" for i in range(1, 101)]].set_axis([f"PQS_{i}" for i in range(1, 101)], axis=1)
    return pd.concat([out, items], axis=1)


def _reml_pooled(y: np.ndarray, v: np.ndarray) -> float:
    """Random-effects REML pooled estimate (used only to calibrate the synthetic table)."""

    def nll(tau2):
        w = 1 / (v + tau2)
        mu = np.sum(w * y) / np.sum(w)
        return 0.5 * (np.sum(np.log(v + tau2)) + np.log(np.sum(w)) + np.sum(w * (y - mu) ** 2))

    tau2 = optimize.minimize_scalar(nll, bounds=(0, 1), method="bounded", options={"xatol": 1e-12}).x
    w = 1 / (v + tau2)
    return float(np.sum(w * y) / np.sum(w))


def meta_table(seed: int) -> pd.DataFrame:
    """Synthetic study-level alliance-outcome correlations, calibrated to r = .278."""
    rng = np.random.default_rng(seed)
    k_studies = 60
    rows = []
    target = np.arctanh(0.278)
    for s in range(1, k_studies + 1):
        n = int(np.clip(np.round(np.exp(rng.normal(4.2, 0.8))), 12, 1500))
        u_study = rng.normal(0, 0.09)
        rater = rng.choice(["client", "therapist", "observer"], p=[0.6, 0.2, 0.2])
        treatment = rng.choice(["CBT", "psychodynamic", "mixed", "other"], p=[0.4, 0.25, 0.2, 0.15])
        internet = bool(rng.random() < 0.1)
        year = int(rng.integers(1985, 2018))
        measure = rng.choice(["WAI", "CALPAS", "HAq", "other"], p=[0.6, 0.15, 0.15, 0.1])
        for e in range(1, int(rng.choice([1, 1, 1, 2, 2, 3])) + 1):
            z = target + u_study + rng.normal(0, 0.05) + rng.normal(0, 1 / np.sqrt(n - 3))
            rows.append(
                dict(study=f"Synthetic study {s:03d}", es_id=len(rows) + 1, year=year, n=n, z=z,
                     rater=rater, treatment=treatment, internet=internet, measure=measure,
                     outcome=rng.choice(["symptoms", "global", "functioning"]))
            )
    df = pd.DataFrame(rows)
    v = 1 / (df["n"].to_numpy() - 3)
    # shift every z by the same constant so that REML over all effect sizes gives z(.278):
    # a constant shift moves the pooled estimate by exactly that constant (tau2 is unchanged)
    df["z"] += target - _reml_pooled(df["z"].to_numpy(), v)
    df["r"] = np.round(np.tanh(df["z"]), 3)
    df = df.drop(columns="z")
    df.insert(0, "synthetic", True)
    return df[["synthetic", "study", "es_id", "year", "n", "r", "rater", "measure", "outcome", "treatment", "internet"]]


def patient_table(st: als.SimulatedStudy) -> pd.DataFrame:
    """One row per patient: planned and attended sessions and whether the patient dropped out."""
    p = st.patients
    return pd.DataFrame({"client_id": p["patient"].map(lambda i: f"P{i:04d}"), "planned_sessions": p["planned_sessions"],
                         "attended_sessions": p["attended_sessions"], "dropout": p["dropout"].astype(int)})


def main() -> None:
    st = als.simulate_study(seed=SEED, **DESIGN)
    wide = export_table(st)
    wide.to_csv(OUT / "sessions_wide.csv", index=False)
    write_spss(wide, OUT / "sessions.sav")
    write_excel(wide, OUT / "sessions.xlsx")
    long_table(wide).to_csv(OUT / "sessions_long.csv", index=False)
    pqs_table(st).to_csv(OUT / "pqs_sorts.csv", index=False)
    patient_table(st).to_csv(OUT / "patients.csv", index=False)
    ep = st.episodes.assign(client_id=st.episodes["patient"].map(lambda p: f"P{p:04d}"))
    ep.to_csv(OUT / "planted_ruptures.csv", index=False)
    meta = meta_table(SEED)
    meta.to_csv(OUT / "meta_alliance_outcome.csv", index=False)
    truth = dict(st.truth)
    truth["design"] = DESIGN
    truth["meta_calibrated_pooled_r"] = 0.278
    (OUT / "truth.json").write_text(json.dumps(truth, indent=2, default=lambda o: o.item() if hasattr(o, "item") else str(o)) + "\n")
    print(f"{len(wide)} sessions, {wide.client_id.nunique()} patients, {len(st.qsorts)} Q-sorts, "
          f"{len(meta)} meta-analytic effects from {meta.study.nunique()} synthetic studies")


if __name__ == "__main__":
    main()
