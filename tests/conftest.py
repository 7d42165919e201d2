import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

import alliance_stats as als  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="session")
def small_study():
    """A small seeded simulated study shared by tests (treat as read-only)."""
    return als.simulate_study(seed=11, n_therapists=6, patients_per_therapist=5, max_sessions=12)


@pytest.fixture(scope="session")
def sample_sessions():
    return als.read_sessions(
        als.sample_path("sessions_csv"),
        patient="client_id",
        session="session_no",
        therapist="therapist_id",
        instruments={"wai-sr": "WAISR_{}", "calpas-t": "CALPAS_T_{}", "phq-9": "PHQ9_{}"},
    ).data
