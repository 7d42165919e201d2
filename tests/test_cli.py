import pandas as pd
import pytest

import alliance_stats as als
from alliance_stats.cli import build_parser, main


def test_instruments(capsys):
    assert main(["instruments"]) == 0
    out = capsys.readouterr().out
    assert "wai-sr" in out and "provisional" in out
    assert main(["instruments", "--csv"]) == 0
    assert capsys.readouterr().out.startswith("name,label,rater")


def test_score_session_table(tmp_path, capsys):
    out = tmp_path / "scored.csv"
    rc = main(["score", str(als.sample_path("sessions_csv")), "-i", "wai-sr=WAISR_{}", "-i", "phq-9=PHQ9_{}",
               "--patient", "client_id", "--session", "session_no", "-o", str(out)])
    assert rc == 0
    df = pd.read_csv(out)
    assert len(df) == 1821 and {"wai_sr_total", "phq9_total", "patient", "session"} <= set(df.columns)


def test_score_plain_rows_with_items(tmp_path):
    src = tmp_path / "in.csv"
    pd.DataFrame({f"q{i}": [1, 2] for i in range(1, 8)}).to_csv(src, index=False)
    out = tmp_path / "out.csv"
    assert main(["score", str(src), "--instrument", "gad-7", "--items", "q{}", "-o", str(out)]) == 0
    assert pd.read_csv(out)["gad7_total"].tolist() == [7.0, 14.0]


def test_bad_input_exits_nonzero_with_one_line(tmp_path, capsys):
    src = tmp_path / "in.csv"
    pd.DataFrame({f"q{i}": [1, 5] for i in range(1, 8)}).to_csv(src, index=False)
    rc = main(["score", str(src), "-i", "gad-7", "--items", "q{}", "-o", str(tmp_path / "o.csv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert err[0].startswith("alliance-stats: error: column 'q1'") and "0..3" in err[0]
    assert main(["score", str(tmp_path / "missing.csv"), "-i", "gad-7", "-o", "x.csv"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["score", str(src), "-i", "nope", "-o", "x.csv"]) == 2
    assert "unknown instrument 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", [[], ["instruments"], ["score"], ["demo"], ["analyze"]])
def test_help_everywhere(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(cmd + ["--help"])
    assert e.value.code == 0
    assert "usage: alliance-stats" in capsys.readouterr().out


def test_demo_writes_results_and_respects_force(tmp_path, capsys, demo_results):
    import shutil

    from conftest import STUDY_TOML, write_study_files

    out = tmp_path / "results"
    shutil.copytree(demo_results, out)  # the session's one demo run (tests/conftest.py)
    for f in ["report.md", "tables/sessions_scored.csv", "tables/reliability.csv", "tables/row_accounting.csv"]:
        assert (out / f).is_file(), f
    rel = pd.read_csv(out / "tables" / "reliability.csv")
    assert set(rel.instrument) == {"wai-sr", "calpas-t", "phq-9"}
    report = (out / "report.md").read_text()
    assert "1821 sessions" in report and "ProvisionalKeyWarning" in report
    assert main(["demo", "--out", str(out), "--quiet"]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    (out / "marker").write_text("old")  # a file the package did not write: --force refuses to delete it
    assert main(["demo", "--out", str(out), "--quiet", "--force"]) == 2
    assert "holds files alliance-stats did not write: marker" in capsys.readouterr().err
    assert (out / "marker").read_text() == "old"
    (out / "marker").unlink()
    (out / "tables" / "reliability.md").unlink()  # a missing file is no reason to refuse
    cfg = write_study_files(tmp_path / "study", STUDY_TOML + '\n[analyses]\nrun = ["reliability"]\n')
    assert main(["analyze", str(cfg), "--out", str(out), "--quiet", "--force"]) == 0
    assert (out / "tables" / "reliability.md").is_file() and (out / "alliance-stats-manifest.json").is_file()
    assert not (out / "tables" / "meta_analysis_apa.csv").exists()  # the old folder was replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results", "study"]  # no temporary folders left behind
