"""Rupture-repair episodes (Stiles et al. 2004 2-SD rule) and their link to outcome.

Copy this file and change the settings below to your export's file and column names.
Run: python analyses/rupture_repair.py [OUT_FOLDER]
"""

import sys
from pathlib import Path

import alliance_stats as als

# --- settings: your data ------------------------------------------------------------------
DATA = als.sample_path("sessions_csv")
IDS = dict(patient="client_id", session="session_no", therapist="therapist_id")
INSTRUMENTS = {"wai-sr": "WAISR_{}", "phq-9": "PHQ9_{}"}
ALLIANCE, OUTCOME = "wai_sr_total", "phq9_total"
THRESHOLD = 2.0  # SDs of the patient's own scores; 1.0 for Strauss et al. (2006)
# -------------------------------------------------------------------------------------------

out = Path(sys.argv[1] if len(sys.argv) > 1 else "rupture_results")
df = als.read_sessions(DATA, instruments=INSTRUMENTS, **IDS).data
rup = als.detect_ruptures(df, ALLIANCE, threshold=THRESHOLD, max_decline_sessions=3)
episodes = rup.episodes
per_patient = als.rupture_summary(rup, df)
print(f"{len(episodes)} episodes; {int(per_patient['any_rupture'].sum())} of {int(per_patient['assessable'].sum())} "
      f"assessable patients had at least one; {int(episodes['repaired'].sum())} repaired")
res = als.rupture_outcome(df, rup, outcome=OUTCOME, therapist="therapist")
print(res.summary())
out.mkdir(parents=True, exist_ok=True)
episodes.to_csv(out / "episodes.csv", index=False)
als.export_table(res.to_apa(), out / "rupture_outcome.docx", caption="Rupture-repair status and outcome")
als.save_figure(rup.plot(), out / "rupture_profile", formats=("pdf", "png"))
print(f"tables and figures written to {out}/")
