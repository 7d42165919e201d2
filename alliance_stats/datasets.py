"""Synthetic sample datasets shipped with alliance-stats (see sample_data/README.md)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .exceptions import DataFileError

__all__ = ["list_samples", "load_sample", "sample_path", "SAMPLES"]

# name -> (file, description). All files are synthetic, made by sample_data/make_samples.py.
SAMPLES = {
    "sessions_csv": ("sessions_wide.csv", "wide session export (CSV): WAI-SR client, CALPAS therapist and PHQ-9 items per session"),
    "sessions_spss": ("sessions.sav", "the same study as an SPSS file with value and variable labels"),
    "sessions_excel": ("sessions.xlsx", "the same study as an Excel workbook (sheet 'sessions', plus a 'codebook' sheet)"),
    "sessions_long": ("sessions_long.csv", "WAI-SR items of the first 40 patients in long shape (one row per item response)"),
    "patients": ("patients.csv", "one row per patient: planned and attended sessions and dropout (0/1)"),
    "pqs": ("pqs_sorts.csv", "PQS Q-sorts of a subset of sessions by two judges"),
    "meta": ("meta_alliance_outcome.csv", "SYNTHETIC study-level alliance-outcome correlations calibrated to the published pooled r = .278"),
    "truth": ("truth.json", "true parameters of the simulated study"),
    "episodes": ("planted_ruptures.csv", "rupture episodes planted by the simulator (ground truth)"),
}


def _sample_dir() -> Path:
    here = Path(__file__).resolve().parent
    for cand in (here / "_sample_data", here.parent / "sample_data"):
        if (cand / "README.md").is_file():
            return cand
    raise DataFileError(
        "the sample data folder was not found; reinstall alliance-stats or run it from a checkout"
    )


def sample_path(name: str) -> Path:
    """Path of a sample file, for passing to :func:`read_sessions` and friends."""
    if name not in SAMPLES:
        raise DataFileError(f"unknown sample {name!r}; samples are {sorted(SAMPLES)} (see als.list_samples())")
    return _sample_dir() / SAMPLES[name][0]


def list_samples() -> pd.DataFrame:
    """The sample datasets: ``name, file, description``."""
    return pd.DataFrame([{"name": k, "file": f, "description": d} for k, (f, d) in SAMPLES.items()])


def load_sample(name: str):
    """Load a sample dataset as it is stored (raw export columns, not normalized).

    Returns a DataFrame (a dict for ``"truth"``). Use :func:`read_sessions` on
    :func:`sample_path` to normalize and score it.
    """
    path = sample_path(name)
    if path.suffix == ".json":
        import json

        return json.loads(path.read_text())
    if path.suffix == ".sav":
        import pyreadstat

        df, _ = pyreadstat.read_sav(str(path), apply_value_formats=False)
        return df
    if path.suffix == ".xlsx":
        return pd.read_excel(path, sheet_name="sessions")
    return pd.read_csv(path)
