"""Lagged within/between alliance -> outcome model, both directions, and therapist effects.

Copy this file and change the settings below to your export's file and column names.
Run: python analyses/alliance_outcome.py [OUT_FOLDER]
"""

import sys
from pathlib import Path

import alliance_stats as als

# --- settings: your data ------------------------------------------------------------------
DATA = als.sample_path("sessions_spss")  # .csv, .xlsx, .sav, .dta or .parquet
IDS = dict(patient="client_id", session="session_no", therapist="therapist_id")
INSTRUMENTS = {"wai-sr": "WAISR_{}", "phq-9": "PHQ9_{}"}  # {} = item number
ALLIANCE, OUTCOME = "wai_sr_total", "phq9_total"
# -------------------------------------------------------------------------------------------

out = Path(sys.argv[1] if len(sys.argv) > 1 else "alliance_outcome_results")
df, prov = als.read_sessions(DATA, instruments=INSTRUMENTS, **IDS)
print(als.row_accounting(prov).to_string(index=False))

for direction in ("alliance->outcome", "outcome->alliance"):
    res = als.alliance_outcome(df, outcome=OUTCOME, alliance=ALLIANCE, therapist="therapist",
                               covariates=["session"], direction=direction)
    print(res.summary())
    tag = direction.replace("->", "_to_")
    als.export_table(res.to_apa(), out / f"{tag}.docx", caption=f"Lagged within/between model ({direction})",
                     note="REML; Satterthwaite df; 95% CIs.")
    als.save_figure(res.plot(), out / f"{tag}", formats=("pdf", "png"))

te = als.therapist_effects(df, alliance=ALLIANCE, outcome=OUTCOME, session="session", therapist="therapist")
print(te.summary())
als.export_table(te.to_apa(), out / "therapist_effects.docx", caption="Therapist and patient alliance slopes (Baldwin et al. 2007)")
print(f"tables and figures written to {out}/")
