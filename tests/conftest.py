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


@pytest.fixture(scope="session")
def demo_results(tmp_path_factory):
    """The demo's results folder, made once per test session (treat as read-only; copy it to change it)."""
    from alliance_stats.study import run_demo

    return run_demo(tmp_path_factory.mktemp("demo") / "results", progress=False)


#: The study configuration the pipeline tests share (the sample sessions copied as sessions.csv).
STUDY_TOML = """\
[study]
title = "Test study"

[data]
file = "sessions.csv"
patient = "client_id"
session = "session_no"
therapist = "therapist_id"

[instruments]
"wai-sr" = "WAISR_{}"
"phq-9" = "PHQ9_{}"

[variables]
alliance = "wai_sr_total"
outcome = "phq9_total"
covariates = ["session"]
"""


def write_study_files(folder, body=STUDY_TOML, data=None):
    """The sample sessions (or ``data``) as ``folder/sessions.csv`` and ``body`` as
    ``folder/study.toml``; returns the TOML's path."""
    import shutil
    import textwrap

    folder.mkdir(parents=True, exist_ok=True)
    if data is None:
        shutil.copy(als.sample_path("sessions_csv"), folder / "sessions.csv")
    else:
        data.to_csv(folder / "sessions.csv", index=False)
    cfg = folder / "study.toml"
    cfg.write_text(textwrap.dedent(body), encoding="utf-8")
    return cfg


@pytest.fixture
def write_study():
    """:func:`write_study_files` as a fixture."""
    return write_study_files
