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
from conftest import STUDY_TOML, write_study_files
from alliance_stats.cli import main
from alliance_stats.config import load_config
from alliance_stats.pipeline import run_study

SECTIONS = ["data", "reliability", "trajectories", "reliable_change", "alliance_outcome", "therapist_effects",
            "ruptures", "transitions", "dynamics", "dropout", "agreement", "pqs", "meta", "exports"]
RUN = [s for s in SECTIONS if s != "agreement"]


@pytest.fixture
def demo(demo_results):
    return demo_results


def test_demo_report_has_every_analysis_with_methods_and_accounting(demo):
    html = (demo / "report.html").read_text()
    ids = re.findall(r"<section id='(\w+)'>", html)
    assert ids == SECTIONS + ["reproducibility", "warnings"]
    for key in RUN:
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
    return write_study_files(tmp_path, body)


BASE = STUDY_TOML


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
    assert c.analyses() == ["reliability", "trajectories", "reliable_change", "alliance_outcome", "therapist_effects", "ruptures",
                            "dynamics", "agreement"]


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
    def boom(study):
        raise KeyboardInterrupt

    import dataclasses

    from alliance_stats.study.registry import STEPS, all_steps

    all_steps()
    monkeypatch.setitem(STEPS, "ruptures", dataclasses.replace(STEPS["ruptures"], run=boom))
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
    assert ("analysis 'reliable_change', configured in [reliable_change] (line 21 of study.toml): reliability=1.5 is not a "
            "valid value. reliability must lie strictly between 0 and 1") in err


def test_reliable_change_uses_the_reliability_of_the_outcome_scale(tmp_path):
    body = BASE.replace('outcome = "phq9_total"', 'outcome = "wai_sr_bond"') + '\n[analyses]\nrun = ["reliable_change"]\n'
    cfg = _config(tmp_path, body)
    out = run_study(load_config(cfg), tmp_path / "r", progress=False)
    df = als.read_sessions(tmp_path / "sessions.csv", patient="client_id", session="session_no", therapist="therapist_id",
                           instruments={"wai-sr": "WAISR_{}"}).data
    first = df.sort_values("session").groupby("patient").head(1)
    r = als.reliability(first, "wai-sr", items="WAISR_{}").table
    bond = r.loc[r["scale"] == "bond", "alpha"].iloc[0]
    html = (out / "report.html").read_text()
    assert f"r_xx = {bond:.3f} (Cronbach&#x27;s alpha of the wai-sr bond scale" in html
    assert "clinical cut-off" not in html  # the PHQ-9-style cut-off is for totals only; WAI-SR has none
    assert "with none not classified" in html


# ------------------------------------------------------------------------------------------
# the registry, the new sections and the new configuration features

def test_demo_has_dynamics_and_dropout_and_says_why_agreement_is_skipped(demo):
    html = (demo / "report.html").read_text()
    body = html.split("<section id='agreement'>")[1].split("</section>")[0]
    assert "Not run: the client&#x27;s (wai-sr, mean of items 1–5) and the therapist&#x27;s (calpas-t" in body
    assert "different scales" in body and "<table" not in body
    s = als.read_sessions(als.sample_path("sessions_csv"), patient="client_id", session="session_no",
                          therapist="therapist_id", instruments={"wai-sr": "WAISR_{}", "phq-9": "PHQ9_{}"}).data
    dyn = als.dynamic_panel(s, x="wai_sr_total", y="phq9_total", max_session=12)
    assert f"**Methods.** {dyn.methods()}" in (demo / "report.md").read_text()
    assert pd.read_csv(demo / "tables" / "dynamics_apa.csv", dtype=str).to_numpy().tolist() == dyn.to_apa().to_numpy().tolist()
    pat = pd.read_csv(als.sample_path("patients"), dtype={"client_id": str})
    drop = als.early_alliance_dropout(s.merge(pat.rename(columns={"client_id": "patient"})[["patient", "dropout"]], on="patient"),
                                      alliance="wai_sr_total", dropout="dropout", therapist="therapist")
    assert pd.read_csv(demo / "tables" / "dropout_apa.csv", dtype=str).to_numpy().tolist() == drop.to_apa().to_numpy().tolist()
    for f in ("dynamics_paths", "dropout_probability", "dropout_survival"):
        assert (demo / "figures" / f"{f}.png").is_file() and (demo / "figures" / f"{f}.pdf").is_file()


def test_report_module_does_not_import_the_pipeline():
    import ast
    import pathlib

    src = pathlib.Path(als.__file__).parent / "report.py"
    imported = {n.module for n in ast.walk(ast.parse(src.read_text())) if isinstance(n, ast.ImportFrom)}
    assert not any(m and ("pipeline" in m or "study" in m) for m in imported), imported


def test_configuration_reference_in_docs_is_up_to_date():
    import pathlib

    from alliance_stats.config import config_reference

    doc = pathlib.Path(__file__).parents[1] / "docs" / "configuration.md"
    assert doc.read_text(encoding="utf-8") == config_reference() + "\n", "run: python -c \"from alliance_stats.config import config_reference as c; open('docs/configuration.md','w').write(c()+'\\n')\""
    text = config_reference()
    for step in ("dynamics", "dropout", "agreement", "ruptures"):
        assert f"| `{step}` |" in text
    assert "| `method` | text | no | `stiles2004`, `strauss2006` |" in text


@pytest.mark.parametrize("extra, match, allowed", [
    ('\n[dynamics]\nmax_sesion = 10\n', r"'max_sesion' in \[dynamics\] \(line 20 of study.toml\): unknown key \(did you mean 'max_session'\?\)", None),
    ('\n[ruptures]\nmethod = "stiles"\n', r"'method' in \[ruptures\] \(line 20 of study.toml\): must be one of stiles2004, strauss2006, got 'stiles' \(did you mean 'stiles2004'\?\)",
     ("stiles2004", "strauss2006")),
    ('\n[dynamics]\nse = "sandwich"\n', r"must be one of observed, robust, got 'sandwich'", ("observed", "robust")),
    ('\n[figures]\ntheme = "poster"\n', r"'theme' in \[figures\] \(line 20 of study.toml\): must be one of paper, notebook, none", ("paper", "notebook", "none")),
    ('\n[figures]\nformats = ["png", "gif"]\n', r"got 'gif'", None),
    ('\n[analyses]\nrun = ["dropout"]\n', r"analysis 'dropout' needs a \[dropout\] table", None),
])
def test_config_schema_comes_from_the_registry(tmp_path, extra, match, allowed):
    from alliance_stats.exceptions import ConfigError, OptionError

    cfg = _config(tmp_path, BASE + extra)
    with pytest.raises(ConfigError, match=match) as err:
        load_config(cfg)
    if allowed is not None:
        assert isinstance(err.value, OptionError) and err.value.allowed == allowed


def test_item_lists_score_like_the_pattern(tmp_path):
    items = ", ".join(f'"PHQ9_{i}"' for i in range(1, 10))
    body = BASE.replace('"phq-9" = "PHQ9_{}"', f'"phq-9" = [{items}]') + '\n[analyses]\nrun = ["reliability"]\n'
    out = run_study(load_config(_config(tmp_path, body)), tmp_path / "r", progress=False)
    rel = pd.read_csv(out / "tables" / "reliability.csv")
    s = als.read_sessions(als.sample_path("sessions_csv"), patient="client_id", session="session_no", instruments={"phq-9": "PHQ9_{}"}).data
    ref = als.reliability(s, "phq-9", items="PHQ9_{}").table
    assert rel.loc[rel["instrument"] == "phq-9", "alpha"].to_numpy() == pytest.approx(ref["alpha"].to_numpy(), abs=1e-12)
    short = BASE.replace('"phq-9" = "PHQ9_{}"', '"phq-9" = ["PHQ9_1", "PHQ9_2"]')
    with pytest.raises(als.ConfigError, match=r"'phq-9' in \[instruments\] \(line 12 of study.toml\): lists 2 item columns; phq-9 has 9 items"):
        load_config(_config(tmp_path, short))


def test_custom_instrument_key_from_a_file(tmp_path):
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "my-bond.toml").write_text(
        'name = "my-bond"\nn_items = 4\nscale = [1, 5]\nsubscales = {}\nrater = "client"\nconstruct = "alliance"\n', encoding="utf-8")
    body = BASE.replace('"phq-9" = "PHQ9_{}"', '"phq-9" = "PHQ9_{}"\n"my-bond" = ["WAISR_3", "WAISR_5", "WAISR_7", "WAISR_9"]\n\n'
                        '[instruments.custom]\n"my-bond" = "keys/my-bond.toml"') + '\n[analyses]\nrun = ["reliability"]\n'
    out = run_study(load_config(_config(tmp_path, body)), tmp_path / "r", progress=False)
    rel = pd.read_csv(out / "tables" / "reliability.csv").set_index(["instrument", "scale"])
    # the four WAI-SR bond items, scored by the user's key (a mean), have the WAI-SR bond scale's alpha
    assert rel.loc[("my-bond", "total"), "alpha"] == pytest.approx(rel.loc[("wai-sr", "bond"), "alpha"], abs=1e-12)
    html = (out / "report.html").read_text()
    assert "my-bond.toml" in html and "Keys given by the researcher ([instruments.custom]): my-bond." in html
    bad = body.replace('"keys/my-bond.toml"', '"keys/nope.toml"')
    with pytest.raises(als.ConfigError, match=r"'my-bond' in \[instruments.custom\] \(line 16 of study.toml\): instrument key file .*nope.toml' does not exist"):
        load_config(_config(tmp_path, bad))


def test_figures_table_sets_formats_dpi_and_width(tmp_path):
    import matplotlib.image as mpimg

    body = BASE + '\n[analyses]\nrun = ["reliable_change"]\n\n[figures]\nformats = ["svg"]\ndpi = 100\nwidth = "single"\n'
    out = run_study(load_config(_config(tmp_path, body)), tmp_path / "r", progress=False)
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["reliable_change.png", "reliable_change.svg"]
    w = mpimg.imread(out / "figures" / "reliable_change.png").shape[1]
    assert abs(w - 89 / 25.4 * 100) <= 2  # 89 mm at 100 dpi


def test_pre_post_and_score_reliability():
    df = pd.DataFrame({"patient": ["a", "a", "a", "b", "c"], "session": [3, 1, 2, 1, 1],
                       "phq9_total": [12.0, 20.0, None, 15.0, None]})
    pp = als.pre_post(df, "phq9_total").set_index("patient")
    assert pp.loc["a", ["pre", "post", "pre_session", "post_session", "n_scores"]].tolist() == [20.0, 12.0, 1, 3, 2]
    assert pp.loc["b", "pre"] == 15.0 and pd.isna(pp.loc["b", "post"])
    assert pp["n_scores"].tolist() == [2, 1, 0]  # c has no score: kept, both ends missing
    assert pd.isna(pp.loc["c", "pre"])
    s = als.read_sessions(als.sample_path("sessions_csv"), patient="client_id", session="session_no",
                          instruments={"wai-sr": "WAISR_{}"}).data
    got = als.score_reliability(s, "wai_sr_bond", {"wai-sr": "WAISR_{}"})
    first = s[s.groupby("patient")["session"].transform("min") == s["session"]]
    ref = als.reliability(first, "wai-sr", items="WAISR_{}").table.set_index("scale").loc["bond"]
    assert isinstance(got, als.ReliabilityResult) and got.table["scale"].tolist() == ["bond"]
    assert got.table["alpha"].iloc[0] == pytest.approx(ref["alpha"], abs=1e-12) and got.table["n"].iloc[0] == ref["n"]
    with pytest.raises(als.ColumnError, match="'wai_sr_nope' is not a scale of wai-sr"):
        als.score_reliability(s, "wai_sr_nope", {"wai-sr": "WAISR_{}"})


def test_agreement_step_runs_on_client_and_therapist_ratings_of_one_scale(tmp_path):
    """Client and therapist WAI-SR of the same sessions (the therapist's form given as the researcher's own key):
    the agreement section is the multilevel response surface that als.response_surface fits on the same data."""
    st = als.simulate_study(seed=5, n_therapists=10, patients_per_therapist=6, therapist_alliance_r=0.3,
                            agreement_surface={"a1": 0.5, "a4": -0.6})
    items = [f"wai{i}" for i in range(1, 13)] + [f"wai_t{i}" for i in range(1, 13)]
    data = st.sessions[["patient", "session", "therapist", *items, "session_eval_client"]]
    (tmp_path / "keys").mkdir(parents=True)
    key = als.get_instrument("wai-sr").to_dict()
    (tmp_path / "keys" / "wai-sr-t.toml").write_text(
        'name = "wai-sr-t"\nn_items = 12\nscale = [1, 5]\nscoring = "mean"\nrater = "therapist"\nconstruct = "alliance"\n'
        "[subscales]\n" + "".join(f"{k} = {list(v)}\n" for k, v in key["subscales"].items()), encoding="utf-8")
    body = textwrap.dedent("""\
        [study]
        title = "Agreement"

        [data]
        file = "sessions.csv"
        patient = "patient"
        session = "session"
        therapist = "therapist"

        [instruments]
        "wai-sr" = "wai{}"
        "wai-sr-t" = "wai_t{}"

        [instruments.custom]
        "wai-sr-t" = "keys/wai-sr-t.toml"

        [variables]
        alliance = "wai_sr_total"
        outcome = "session_eval_client"

        [analyses]
        run = ["agreement"]

        [agreement]
        n_boot = 0
        """)
    cfg = write_study_files(tmp_path, body, data=data)
    out = run_study(load_config(cfg), tmp_path / "r", progress=False)
    html = (out / "report.html").read_text()
    body = html.split("<section id='agreement'>")[1].split("</section>")[0]
    assert "Not run" not in body and "<strong>Methods.</strong>" in body
    scored = als.score_instruments(data, {"wai-sr": "wai{}", "wai-sr-t": "wai_t{}"})  # the key was registered by the run
    ref = als.response_surface(scored, x="wai_sr_total", y="wai_sr_t_total", outcome="session_eval_client",
                               patient="patient", n_boot=0, seed=0)
    apa = pd.read_csv(out / "tables" / "agreement_apa.csv", dtype=str, keep_default_na=False)
    assert apa.astype(str).values.tolist() == ref.to_apa().astype(str).values.tolist()
    assert (out / "figures" / "agreement_surface.png").exists()


def test_agreement_needs_both_columns_and_dropout_counts_patients_without_sessions(tmp_path):
    one = BASE + '\n[analyses]\nrun = ["agreement"]\n\n[agreement]\nclient = "wai_sr_total"\n'
    with pytest.raises(als.ConfigError, match=r"'client' in \[agreement\].*give 'therapist' too"):
        run_study(load_config(_config(tmp_path / "a", one)), tmp_path / "a" / "r", progress=False)
    folder = tmp_path / "d"
    folder.mkdir()
    pats = pd.read_csv(als.sample_path("patients"))
    extra = pats.iloc[:2].copy()
    extra.iloc[:, 0] = ["ZZZ1", "ZZZ2"]
    pd.concat([pats, extra]).to_csv(folder / "patients.csv", index=False)
    body = BASE + ('\n[analyses]\nrun = ["dropout"]\n\n[dropout]\nfile = "patients.csv"\n'
                   f'patient = "{pats.columns[0]}"\ndropout = "dropout"\n')
    out = run_study(load_config(_config(folder, body)), folder / "r", progress=False)
    html = (out / "report.html").read_text()
    assert "2 patient(s) of patients.csv have no session data and were left out." in html
