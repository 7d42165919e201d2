"""The study pipeline: demo, analyze STUDY.toml, the report, and configuration errors."""

import base64
import hashlib
import json
import re
import shutil
import textwrap

import pandas as pd
import pytest

import alliance_stats as als
from alliance_stats.cli import main
from alliance_stats.config import load_config
from alliance_stats.pipeline import run_demo, run_study

SECTIONS = ["data", "reliability", "trajectories", "reliable_change", "alliance_outcome", "therapist_effects",
            "ruptures", "transitions", "pqs", "meta", "exports"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "results"
    return run_demo(out, progress=False)


def test_demo_report_has_every_analysis_with_methods_and_accounting(demo):
    html = (demo / "report.html").read_text()
    ids = re.findall(r"<section id='(\w+)'>", html)
    assert ids == SECTIONS + ["reproducibility", "warnings"]
    for key in SECTIONS:
        body = html.split(f"<section id='{key}'>")[1].split("</section>")[0]
        assert "<strong>Methods.</strong>" in body, key
    assert html.count("Rows used and left out.") >= 8
    assert "Alliance → outcome and outcome → alliance" in html
    assert "alliance-&gt;outcome: phq9_total at t on wai_sr_total at t−1" in html
    assert "outcome-&gt;alliance: wai_sr_total at t on phq9_total at t−1" in html


def test_demo_report_is_self_contained_with_every_figure(demo):
    html = (demo / "report.html").read_text()
    pngs = sorted(p.stem for p in (demo / "figures").glob("*.png"))
    pdfs = sorted(p.stem for p in (demo / "figures").glob("*.pdf"))
    assert pngs == pdfs and len(pngs) >= 16
    imgs = re.findall(r"<img src='data:image/png;base64,([^']+)'", html)
    assert len(imgs) == len(pngs)
    embedded = {hashlib.sha256(base64.b64decode(x)).hexdigest() for x in imgs}
    on_disk = {hashlib.sha256((demo / "figures" / f"{p}.png").read_bytes()).hexdigest() for p in pngs}
    assert embedded == on_disk
    assert "src='http" not in html and "<script" not in html and "<link" not in html
    for name in ("trajectories_wai_sr_total", "reliable_change", "alliance_to_outcome_effects", "outcome_to_alliance_effects",
                 "therapist_caterpillar", "rupture_profile", "transitions", "forest_plot", "funnel_plot"):
        assert name in pngs


def test_demo_tables_versions_seed_and_checksums(demo):
    csvs = sorted(p.stem for p in (demo / "tables").glob("*.csv"))
    mds = sorted(p.stem for p in (demo / "tables").glob("*.md"))
    assert csvs == mds
    for t in ("row_accounting", "reliability", "alliance_to_outcome_apa", "outcome_to_alliance_apa", "therapist_effects_apa",
              "rupture_outcome_apa", "transitions_apa", "pqs_items", "meta_analysis_apa", "reliable_change", "other_exports"):
        assert t in csvs, t
    html = (demo / "report.html").read_text()
    src = als.sample_path("sessions_csv")
    assert hashlib.sha256(src.read_bytes()).hexdigest() in html
    assert hashlib.sha256(als.sample_path("pqs").read_bytes()).hexdigest() in html
    assert "Seed 20261121" in html
    assert f"<td>alliance-stats</td><td>{als.__version__}</td>" in html
    assert "<td>statsmodels</td>" in html
    ex = pd.read_csv(demo / "tables" / "other_exports.csv")
    assert ex["same_scores_as_csv"].all()
    # the within-patient effect in the report is the model's
    ao = als.alliance_outcome(als.read_sessions(src, patient="client_id", session="session_no", therapist="therapist_id",
                                                instruments={"wai-sr": "WAISR_{}", "phq-9": "PHQ9_{}"}).data,
                              outcome="phq9_total", alliance="wai_sr_total", therapist="therapist", covariates=["session"])
    w = ao.effects.iloc[0]
    assert f"b = {w['estimate']:.2f}, 95% CI [{w['ci_low']:.2f}, {w['ci_high']:.2f}]" in html
    apa = pd.read_csv(demo / "tables" / "alliance_to_outcome_apa.csv", dtype=str)
    assert apa.to_numpy().tolist() == ao.to_apa().to_numpy().tolist()


def _config(tmp_path, body: str, data=True):
    if data:
        shutil.copy(als.sample_path("sessions_csv"), tmp_path / "sessions.csv")
    p = tmp_path / "study.toml"
    p.write_text(textwrap.dedent(body))
    return p


BASE = """\
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


def test_analyze_runs_the_configured_analyses(tmp_path, capsys):
    cfg = _config(tmp_path, BASE + '\n[analyses]\nrun = ["reliability", "alliance_outcome", "ruptures"]\n')
    out = tmp_path / "res"
    assert main(["analyze", str(cfg), "--out", str(out), "--quiet"]) == 0
    html = (out / "report.html").read_text()
    assert re.findall(r"<section id='(\w+)'>", html) == ["data", "reliability", "alliance_outcome", "ruptures", "reproducibility", "warnings"]
    assert "<title>Test study</title>" in html and "study.toml" in html and "[analyses]" in html
    rel = pd.read_csv(out / "tables" / "reliability.csv")
    assert set(rel["instrument"]) == {"wai-sr", "phq-9"}
    assert "report.html" in capsys.readouterr().err
    # default: every analysis the configuration has what it needs for (no state, no PQS, no meta)
    cfg2 = _config(tmp_path, BASE, data=False)
    c = load_config(cfg2)
    assert c.analyses() == ["reliability", "trajectories", "reliable_change", "alliance_outcome", "therapist_effects", "ruptures"]


def test_analyze_example_config_is_valid(tmp_path, capsys):
    assert main(["analyze", "--example"]) == 0
    text = capsys.readouterr().out
    cfg = _config(tmp_path, text.replace('"sessions_wide.csv"', '"sessions.csv"'))
    c = load_config(cfg)
    assert c.get("variables", "alliance") == "wai_sr_total" and "transitions" in c.analyses()


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda s: s.replace('covariates = ["session"]', 'covariates = ["sesion"]'),
         r"'covariates' in \[variables\] \(line 17 of study.toml\): column 'sesion' is not in the data \(did you mean 'session'\?\)"),
        (lambda s: s.replace('outcome = "phq9_total"', 'outcome = "phq9_total"\nlag = 2'),
         r"'lag' in \[variables\] \(line 17 of study.toml\): unknown key"),
        (lambda s: s.replace('patient = "client_id"', 'patient = 3'),
         r"'patient' in \[data\] \(line 6 of study.toml\): must be text, got 3"),
        (lambda s: s + '\n[analyses]\nrun = ["rupture"]\n',
         r"'run' in \[analyses\] \(line 20 of study.toml\): unknown analysis 'rupture' \(did you mean 'ruptures'\?\)"),
        (lambda s: s + '\n[analyses]\nrun = ["pqs"]\n', r"analysis 'pqs' needs a \[pqs\] table"),
        (lambda s: s.replace('"phq-9" = "PHQ9_{}"', '"phq9x" = "PHQ9_{}"'), r"'phq9x' in \[instruments\] \(line 12 of study.toml\)"),
        (lambda s: s.replace('[variables]', '[variable]'), r"\[variable\] \(line 14 of study.toml\): unknown table \(did you mean 'variables'\?\)"),
        (lambda s: s.replace('file = "sessions.csv"', 'file = "nope.csv"'), r"'file' in \[data\] \(line 5 of study.toml\): file .*nope.csv' does not exist"),
        (lambda s: s.replace('alliance = "wai_sr_total"', 'alliance = "wai_sr_total'), r"study.toml is not valid TOML: .*line 15"),
        (lambda s: s + '\n[output]\nseed = -1\n', r"'seed' in \[output\] \(line 20 of study.toml\): must be a whole number of 0 or more"),
        (lambda s: s.replace('alliance = "wai_sr_total"', 'alliance = "__import__(\'os\')"'), r"'alliance' in \[variables\] \(line 15 of study.toml\): column"),
    ],
)
def test_config_errors_name_key_and_line(tmp_path, capsys, edit, match):
    cfg = _config(tmp_path, edit(BASE))
    out = tmp_path / "res"
    assert main(["analyze", str(cfg), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(match, err), err
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_interrupted_run_leaves_no_results_folder(tmp_path, monkeypatch):
    from alliance_stats import pipeline

    def boom(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline._Study, "ruptures", boom)
    cfg = _config(tmp_path, BASE + '\n[analyses]\nrun = ["reliability", "ruptures"]\n')
    out = tmp_path / "res"
    with pytest.raises(KeyboardInterrupt):
        run_study(load_config(cfg), out, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sessions.csv", "study.toml"]
    # an existing results folder (one the package wrote: its manifest lists every file) survives an
    # interrupted --force run untouched
    out.mkdir()
    (out / "keep").write_text("x")
    manifest = {"written_by": "alliance-stats", "files": {"keep": hashlib.sha256(b"x").hexdigest()}}
    (out / "alliance-stats-manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(KeyboardInterrupt):
        run_study(load_config(cfg), out, force=True, progress=False)
    assert (out / "keep").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res", "sessions.csv", "study.toml"]


def test_analysis_error_names_the_analysis(tmp_path, capsys):
    body = BASE.replace('outcome = "phq9_total"', 'outcome = "wai_sr_bond"') + '\n[analyses]\nrun = ["reliable_change"]\n[reliable_change]\nreliability = 1.5\n'
    cfg = _config(tmp_path, body)
    assert main(["analyze", str(cfg), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "analysis 'reliable_change': reliability=1.5 is not a valid value. reliability must lie strictly between 0 and 1" in err


def test_reliable_change_uses_the_reliability_of_the_outcome_scale(tmp_path):
    body = BASE.replace('outcome = "phq9_total"', 'outcome = "wai_sr_bond"') + '\n[analyses]\nrun = ["reliable_change"]\n'
    cfg = _config(tmp_path, body)
    out = run_study(load_config(cfg), tmp_path / "r", progress=False)
    df = als.read_sessions(tmp_path / "sessions.csv", patient="client_id", session="session_no", therapist="therapist_id",
                           instruments={"wai-sr": "WAISR_{}"}).data
    first = df.sort_values("session").groupby("patient").head(1)
    r = als.reliability(first, "wai-sr", items="WAISR_{}")
    bond = r.loc[r["scale"] == "bond", "alpha"].iloc[0]
    html = (out / "report.html").read_text()
    assert f"r_xx = {bond:.3f} (Cronbach&#x27;s alpha of the wai-sr bond scale" in html
    assert "clinical cut-off" not in html  # the PHQ-9-style cut-off is for totals only; WAI-SR has none
    assert "with none not classified" in html
