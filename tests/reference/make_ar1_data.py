"""Inputs of make_ar1_reference.R: the package's scored sample sessions with the alliance split
into its lagged within-patient and between-patient parts (the model of issue #17).

Run from the repository root:  python tests/reference/make_ar1_data.py
Writes tests/reference/ar1_sample.csv (synthetic sample data shipped with the package).
"""

import warnings

import alliance_stats as als

COLUMNS = ["patient", "therapist", "session", "phq9_total", "wai_sr_total", "wai_sr_total_within_lag1", "wai_sr_total_between"]


def sample_table():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", als.ProvisionalKeyWarning)
        d = als.read_sessions(als.sample_path("sessions_csv"), patient="client_id", session="session_no", therapist="therapist_id",
                              instruments={"wai-sr": "WAISR_{}", "phq-9": "PHQ9_{}"}).data
    return als.decompose(d, "wai_sr_total", lags=[1])[COLUMNS]


if __name__ == "__main__":
    sample_table().to_csv("tests/reference/ar1_sample.csv", index=False, float_format="%.17g")
