"""Catalogue of output-side hazards (issues 15 and 19): every file the package writes lands inside
the folder asked for, never replaces an input or a folder the package did not write, and an
interrupted command leaves nothing half-written behind.

Each test names the hazard a user found; each asserts our exception class, the key words of its
message, and that no input file changed (SHA-256 before and after).
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alliance_stats as als
from alliance_stats._output import MANIFEST, ResultsFolder, slug
from alliance_stats.cli import build_parser, main
from alliance_stats.config import load_config
from alliance_stats.exceptions import ConfigError, OptionError, OutputPathError
from alliance_stats.pipeline import run_study
from conftest import write_study_files

ROOT = Path(__file__).resolve().parents[1]

BASE = """\
[study]
title = "Output safety"

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

[analyses]
run = ["reliability"]
"""


def _checksums(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _study(folder: Path, body: str = BASE, data: pd.DataFrame | None = None) -> Path:
    return write_study_files(folder, body, data)


def _hidden(folder: Path) -> list:
    return sorted(p.name for p in folder.rglob(".*"))


# ------------------------------------------------------------------------------------------
# 1. names made from data stay inside the results folder

def test_hostile_column_name_cannot_escape_the_results_folder(tmp_path):
    """A column 'x/../../../../ESCAPED' used as the alliance variable once wrote ESCAPED.png/.pdf
    outside --out. Its figure now gets a slugged name inside figures/, and a second column whose
    slug collides gets a suffix instead of overwriting it."""
    raw = pd.read_csv(als.sample_path("sessions_csv"))
    hostile = "x/../../../../ESCAPED"
    raw[hostile] = raw["WAISR_1"] * 2.0
    raw["x_ESCAPED"] = raw["WAISR_2"] * 1.0  # slug("x/../../../../ESCAPED") is "x_ESCAPED" too
    study = tmp_path / "a" / "b" / "c" / "d"
    body = (BASE.replace('alliance = "wai_sr_total"', f'alliance = "{hostile}"')
            .replace('outcome = "phq9_total"', 'outcome = "x_ESCAPED"')
            .replace('run = ["reliability"]', 'run = ["trajectories"]'))
    cfg = _study(study, body, data=raw)
    before = _checksums(study)
    out = study / "res"
    assert main(["analyze", str(cfg), "--out", str(out), "--quiet"]) == 0
    assert [p for p in tmp_path.rglob("*ESCAPED*") if not p.is_relative_to(out)] == []
    figs = sorted(p.name for p in (out / "figures").iterdir())
    assert {"trajectories_x_ESCAPED.png", "trajectories_x_ESCAPED.pdf",
            "trajectories_x_ESCAPED_2.png", "trajectories_x_ESCAPED_2.pdf"} <= set(figs)
    assert all(p.resolve().is_relative_to(out.resolve()) for p in out.rglob("*"))
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "figures/trajectories_x_ESCAPED.png" in report and "figures/trajectories_x_ESCAPED_2.png" in report
    assert {k: v for k, v in _checksums(study).items() if not k.startswith("res/")} == before
    assert _hidden(study) == []


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=0, max_size=300))
def test_slug_is_a_plain_file_name(name):
    s = slug(name)
    assert 1 <= len(s) <= 81
    assert all((c.isascii() and c.isalnum()) or c in "-_" for c in s)
    assert s[0] not in "-_" or s == "unnamed"
    assert Path(s).name == s and s not in (".", "..")


def test_results_folder_refuses_a_path_outside_and_suffixes_collisions(tmp_path):
    o = ResultsFolder(tmp_path / "res")
    o.start()
    try:
        with pytest.raises(OutputPathError, match="outside the results folder"):
            o.path("figures", "..", "..", "ESCAPED.png")
        assert [o.reserve("figures", n) for n in ("a/b", "a_b", "A_B", "trajectories", "a.b")] == \
            ["a_b", "a_b_2", "A_B_3", "trajectories", "a_b_4"]
        assert o.reserve("tables", "a_b") == "a_b"  # another folder, another set of names
    finally:
        o.abort()
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------
# 2. --force replaces only a folder the package wrote

def test_force_refuses_the_folder_holding_the_config_and_data(tmp_path, capsys):
    """`analyze study/study.toml --out study --force` once deleted study.toml and the data (exit 0)."""
    study = tmp_path / "study"
    cfg = _study(study)
    before = _checksums(study)
    assert main(["analyze", str(cfg), "--out", str(study), "--force", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "holds the study input" in err and "study.toml" in err and "Choose a new folder for --out" in err
    with pytest.raises(OutputPathError, match="holds the study input"):
        run_study(load_config(cfg), study, force=True, progress=False)
    # the folder above the study is refused as well, and so is the data file itself
    with pytest.raises(OutputPathError, match="holds the study input"):
        run_study(load_config(cfg), tmp_path, force=True, progress=False)
    with pytest.raises(OutputPathError, match=r"is the study input .*sessions\.csv"):
        run_study(load_config(cfg), study / "sessions.csv", force=True, progress=False)
    assert _checksums(study) == before and sorted(p.name for p in tmp_path.iterdir()) == ["study"]


def test_force_refuses_a_folder_without_manifest_or_with_changed_files(tmp_path, capsys):
    study = tmp_path / "study"
    cfg = _study(study)
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.docx").write_bytes(b"my work")
    assert main(["analyze", str(cfg), "--out", str(mine), "--force", "--quiet"]) == 2
    assert f"has no {MANIFEST}" in capsys.readouterr().err
    assert (mine / "chapter1.docx").read_bytes() == b"my work"

    out = tmp_path / "res"
    assert main(["analyze", str(cfg), "--out", str(out), "--quiet"]) == 0
    (out / "tables" / "reliability.csv").write_text("edited by hand\n")
    with pytest.raises(OutputPathError, match=r"has files changed since it wrote them: tables/reliability\.csv"):
        run_study(load_config(cfg), out, force=True, progress=False)
    assert (out / "tables" / "reliability.csv").read_text() == "edited by hand\n"
    (out / MANIFEST).write_text("{not json")
    with pytest.raises(OutputPathError, match=f"has a {MANIFEST} that cannot be read"):
        run_study(load_config(cfg), out, force=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res", "study", "thesis"]


def test_force_onto_a_file_is_refused_and_leaves_nothing_behind(tmp_path, capsys):
    """`--out res.txt --force` onto a file once exited 2 leaving `.res.txt-old` behind."""
    study = tmp_path / "study"
    cfg = _study(study)
    target = tmp_path / "res.txt"
    target.write_text("notes")
    assert main(["analyze", str(cfg), "--out", str(target), "--force", "--quiet"]) == 2
    assert "is a file, not a results folder" in capsys.readouterr().err
    assert target.read_text() == "notes" and _hidden(tmp_path) == []


def test_output_whose_parent_is_a_file(tmp_path, capsys):
    """An output path under a file once gave `[Errno 17] File exists`."""
    study = tmp_path / "study"
    cfg = _study(study)
    blocker = tmp_path / "notes.txt"
    blocker.write_text("x")
    with pytest.raises(OutputPathError, match=r"'.*notes\.txt' is a file, not a folder"):
        run_study(load_config(cfg), blocker / "res", progress=False)
    assert main(["score", str(study / "sessions.csv"), "-i", "wai-sr=WAISR_{}", "-o", str(blocker / "deep" / "x.csv")]) == 2
    assert "notes.txt' is a file, not a folder" in capsys.readouterr().err
    assert blocker.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "study"]


def test_manifest_lists_every_file_and_force_replaces_our_own_folder(tmp_path):
    study = tmp_path / "study"
    cfg = _study(study)
    out = tmp_path / "res"
    run_study(load_config(cfg), out, progress=False)
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    files = {k: v for k, v in _checksums(out).items() if k != MANIFEST}
    assert manifest["written_by"] == "alliance-stats" and manifest["files"] == files
    assert {"report.html", "report.md", "tables/reliability.csv"} <= set(files)
    (out / ".DS_Store").write_bytes(b"\0")  # dropped by a file browser: no reason to refuse
    (out / "tables" / "reliability.md").unlink()  # missing: no reason to refuse either
    run_study(load_config(cfg), out, force=True, progress=False)
    assert (out / "tables" / "reliability.md").is_file() and not (out / ".DS_Store").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res", "study"]


def test_failed_move_puts_the_old_folder_back(tmp_path, monkeypatch):
    """The swap sets the old folder aside, moves the new one in, deletes the old; if the move
    fails the old folder is restored and no temporary folder is left."""
    study = tmp_path / "study"
    cfg = _study(study)
    out = tmp_path / "res"
    run_study(load_config(cfg), out, progress=False)
    before = _checksums(out)
    real_rename = Path.rename

    def rename(self, target):
        if self.name.startswith(".res-") and "-old-" not in self.name:
            raise OSError("simulated failure moving the new folder in")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="simulated failure"):
        run_study(load_config(cfg), out, force=True, progress=False)
    assert _checksums(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["res", "study"]


# ------------------------------------------------------------------------------------------
# 3. score -o

SAV_ARGS = ["-i", "wai-sr=WAISR_{}", "--patient", "client_id", "--session", "session_no"]


def _score_args(src, out, *extra):
    return ["score", str(src), *SAV_ARGS, "-o", str(out), *extra]


@pytest.fixture(scope="module")
def sav_input(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sav")
    src = folder / "sessions.sav"
    shutil.copy(als.sample_path("sessions_spss"), src)
    return src


def _read_back(path: Path) -> tuple[pd.DataFrame, dict]:
    ext = path.suffix
    if ext in (".sav", ".dta"):
        df, m = (pyreadstat.read_sav if ext == ".sav" else pyreadstat.read_dta)(str(path))
        return df, {"value_labels": m.variable_value_labels, "labels": dict(zip(m.column_names, m.column_labels))}
    reader = {".csv": pd.read_csv, ".tsv": lambda p: pd.read_csv(p, sep="\t"), ".xlsx": pd.read_excel,
              ".parquet": pd.read_parquet}[ext]
    return reader(path), {}


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".xlsx", ".parquet", ".sav", ".dta"])
def test_score_writes_the_format_its_extension_names(sav_input, tmp_path, ext):
    """`-o scored.sav` once wrote CSV text under a .sav name."""
    before = _checksums(sav_input.parent)
    out = tmp_path / f"scored{ext}"
    assert main(_score_args(sav_input, out)) == 0
    want = als.read_sessions(sav_input, patient="client_id", session="session_no", instruments={"wai-sr": "WAISR_{}"},
                             apply_labels=ext not in (".sav", ".dta")).data
    got, meta = _read_back(out)
    assert list(got.columns) == list(want.columns) and len(got) == len(want) == 1821
    for col in ("session", "wai_sr_total", "wai_sr_bond", "WAISR_1", "age"):
        np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float), rtol=0, atol=1e-12)
    assert got["patient"].astype(str).tolist() == want["patient"].astype(str).tolist()
    if ext in (".sav", ".dta"):
        labels = {k: {int(c): v for c, v in lab.items()} for k, lab in meta["value_labels"].items()}
        assert labels["therapy"] == {1: "CBT", 2: "PDT"}
        assert labels["alliance_type"] == {1: "magical", 2: "working", 3: "therapeutic", 4: "structuralizing"}
        assert meta["labels"]["patient"] == "Client ID" and meta["labels"]["age"] == "Age at intake (years)"
        assert got["therapy"].tolist() == want["therapy"].tolist()  # the codes 1/2
    else:
        assert got["therapy"].astype(str).tolist() == want["therapy"].astype(str).tolist()  # "CBT"/"PDT"
    assert _checksums(sav_input.parent) == before and _hidden(tmp_path) == []


def test_score_plain_rows_keep_value_labels(sav_input, tmp_path):
    out = tmp_path / "scored.dta"
    assert main(["score", str(sav_input), "-i", "wai-sr=WAISR_{}", "-o", str(out)]) == 0
    got, meta = _read_back(out)
    assert {int(k): v for k, v in meta["value_labels"]["gender"].items()} == {1: "female", 2: "male", 3: "diverse"}
    assert meta["labels"]["client_id"] == "Client ID" and "wai_sr_total" in got.columns


def test_score_dash_writes_csv_to_standard_output(sav_input, tmp_path, monkeypatch, capsys):
    """`-o -` once made a file called '-'."""
    monkeypatch.chdir(tmp_path)
    assert main(_score_args(sav_input, "-")) == 0
    cap = capsys.readouterr()
    from io import StringIO

    df = pd.read_csv(StringIO(cap.out))
    assert main(_score_args(sav_input, tmp_path / "ref.csv")) == 0
    assert (tmp_path / "ref.csv").read_text() == cap.out  # the same text a .csv file holds
    assert len(df) == 1821 and "-> standard output" in cap.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref.csv"]


@pytest.mark.parametrize("name", ["scored.txt", "scored", "scored.xls", "scored.SAV.bak"])
def test_score_refuses_an_unknown_extension(sav_input, tmp_path, capsys, name):
    out = tmp_path / name
    args = build_parser().parse_args(_score_args(sav_input, out))
    with pytest.raises(OptionError) as e:
        args.func(args)
    assert e.value.option == "--output" and e.value.allowed == (".csv", ".tsv", ".xlsx", ".parquet", ".sav", ".dta", "-")
    assert main(_score_args(sav_input, out)) == 2
    err = capsys.readouterr().err
    assert "allowed: '.csv', '.tsv', '.xlsx', '.parquet', '.sav', '.dta', '-'" in err
    assert list(tmp_path.iterdir()) == []


def test_score_needs_force_for_an_existing_file(sav_input, tmp_path, capsys):
    """An existing output file was once overwritten silently."""
    out = tmp_path / "scored.csv"
    out.write_text("keep me\n")
    args = build_parser().parse_args(_score_args(sav_input, out))
    with pytest.raises(OutputPathError, match="already exists; pass --force"):
        args.func(args)
    assert out.read_text() == "keep me\n"
    assert main(_score_args(sav_input, out, "--force")) == 0
    assert len(pd.read_csv(out)) == 1821 and sorted(p.name for p in tmp_path.iterdir()) == ["scored.csv"]


def test_score_never_writes_onto_its_input(tmp_path, monkeypatch, capsys):
    """`score FILE -o FILE` once overwrote its input in place, without --force."""
    src = tmp_path / "in.csv"
    shutil.copy(als.sample_path("sessions_csv"), src)
    os.link(src, tmp_path / "hardlink.csv")
    before = _checksums(tmp_path)
    monkeypatch.chdir(tmp_path)
    for target in (src, "in.csv", "./sub/../in.csv", "hardlink.csv"):
        for force in ([], ["--force"]):
            args = build_parser().parse_args(["score", "in.csv", "-i", "wai-sr=WAISR_{}", "-o", str(target), *force])
            with pytest.raises(OutputPathError, match="is the input file; inputs are never overwritten"):
                args.func(args)
    assert main(["score", "in.csv", "-i", "wai-sr=WAISR_{}", "-o", "in.csv", "--force"]) == 2
    assert "is the input file" in capsys.readouterr().err
    assert _checksums(tmp_path) == before


def test_score_write_failure_leaves_no_temporary_file(tmp_path, capsys):
    src = tmp_path / "in.csv"
    df = pd.DataFrame({f"q{i}": [1, 2] for i in range(1, 8)})
    df["bad name with spaces and a very long tail that Stata cannot take as a variable name"] = [1, 2]
    df.to_csv(src, index=False)
    assert main(["score", str(src), "-i", "gad-7", "--items", "q{}", "-o", str(tmp_path / "o.dta")]) == 2
    err = capsys.readouterr().err
    assert "could not write" in err and "as Stata (.dta)" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


# ------------------------------------------------------------------------------------------
# 4. SIGINT and SIGTERM

_CHILD = r"""
import signal, sys, time
from pathlib import Path
signal.signal(signal.SIGINT, signal.default_int_handler)   # as in a terminal, whatever started us
flag = Path(sys.argv[1])
mode = sys.argv[2]

def wait(*a, **k):
    flag.write_text("ready")
    time.sleep(600)

if mode == "score":
    import alliance_stats.cli as cli
    real = cli._write_scored
    def slow(df, path, ext, meta):
        real(df, path, ext, meta)   # the temporary file now holds the data
        wait()
    cli._write_scored = slow
else:
    import dataclasses
    from alliance_stats.study.registry import all_steps
    steps = all_steps()
    steps["reliability"] = dataclasses.replace(steps["reliability"], run=wait)
from alliance_stats.cli import main
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.parametrize("command, sig", [("analyze", signal.SIGINT), ("analyze", signal.SIGTERM),
                                          ("demo", signal.SIGTERM), ("score", signal.SIGINT), ("score", signal.SIGTERM)])
def test_signal_cleans_up_and_exits_with_one_line(tmp_path, command, sig):
    """A SIGTERM once left a hidden `.X-xxxxxxxx` folder; a SIGINT printed a raw traceback."""
    study = tmp_path / "study"
    cfg = _study(study)
    before = _checksums(study)
    work = tmp_path / "work"
    work.mkdir()
    if command == "score":
        out = work / "scored.csv"
        out.write_text("previous\n")
        argv = ["score", str(study / "sessions.csv"), "-i", "wai-sr=WAISR_{}", "-o", str(out), "--force"]
    else:
        out = work / "res"
        argv = ([command, str(cfg)] if command == "analyze" else [command]) + ["--out", str(out), "--quiet"]
    flag = tmp_path / "ready"
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(flag), command, *argv], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300  # a guard against a hang, not a timing assertion
    while not flag.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the child never reached the pause: {proc.communicate()}")
        time.sleep(0.05)
    assert _hidden(work) != []  # the temporary folder or file exists now
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + int(sig)
    assert stderr.strip() == f"alliance-stats: stopped by {sig.name}; its temporary files were removed"
    assert "Traceback" not in stderr and stdout == ""
    assert _hidden(work) == []
    if command == "score":
        assert sorted(p.name for p in work.iterdir()) == ["scored.csv"] and out.read_text() == "previous\n"
    else:
        assert list(work.iterdir()) == []
    assert _checksums(study) == before


# ------------------------------------------------------------------------------------------
# 5. configuration text

@pytest.mark.parametrize("pattern, words", [
    ("WAI{0.__class__}", "the field {0.__class__} is not allowed"),
    ("WAI{name}", "the field {name} is not allowed"),
    ("WAI{0}", "the field {0} is not allowed"),
    ("WAI{[0]}", "the field {[0]} is not allowed"),
    ("WAI{!r}", "the field {!r} is not allowed"),
    ("WAI{:{}}", "the field {:{}} is not allowed"),
    ("WAI{}_{}", "has 2 {} fields"),
    ("WAI", "has 0 {} fields"),
    ("WAI{", "Single '{' encountered"),
    ("WAI{:s}", "cannot format an item number"),
])
def test_item_pattern_accepts_only_braces(tmp_path, capsys, pattern, words):
    """'WAI{0.__class__}' once reached str.format and gave an AttributeError."""
    study = tmp_path / "study"
    cfg = _study(study, BASE.replace('"wai-sr" = "WAISR_{}"', f'"wai-sr" = "{pattern}"'))
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    msg = str(e.value)
    assert msg.startswith("'wai-sr' in [instruments] (line 11 of study.toml): item pattern") and words in msg
    assert main(["analyze", str(cfg), "--out", str(tmp_path / "res"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err and not (tmp_path / "res").exists()


def test_item_pattern_number_formats_and_pqs_items(tmp_path):
    study = tmp_path / "study"
    cfg = _study(study, BASE.replace('"wai-sr" = "WAISR_{}"', '"wai-sr" = "WAI_{:02d}"'))
    assert load_config(cfg).values["instruments"]["wai-sr"] == "WAI_{:02d}"
    shutil.copy(als.sample_path("pqs"), study / "pqs.csv")
    cfg.write_text(BASE + '\n[pqs]\nfile = "pqs.csv"\nsession = "session_no"\nitems = "PQS_{0.real}"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'items' in \[pqs\] \(line 24 of study.toml\): item pattern 'PQS_\{0.real\}'"):
        load_config(cfg)


def test_config_must_be_utf8(tmp_path, capsys):
    """A Latin-1 study.toml once gave a UnicodeDecodeError."""
    study = tmp_path / "study"
    cfg = _study(study)
    cfg.write_bytes(BASE.replace("Output safety", "Arbeitsbündnis").encode("latin-1"))
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    msg = str(e.value)
    assert "study.toml is not UTF-8 text: byte 0xfc on line 2" in msg and "Save it as UTF-8" in msg
    assert main(["analyze", str(cfg), "--out", str(tmp_path / "res"), "--quiet"]) == 2
    assert "not UTF-8 text" in capsys.readouterr().err
    # UTF-8 with a byte-order mark (as Windows Notepad saves it) is read
    cfg.write_bytes(b"\xef\xbb\xbf" + BASE.replace("Output safety", "Arbeitsbündnis").encode("utf-8"))
    assert load_config(cfg).get("study", "title") == "Arbeitsbündnis"


def test_readme_states_what_force_replaces_and_what_score_writes():
    from alliance_stats.cli import OUTPUT_FORMATS

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Where results go, and what `--force` may replace"):text.index("## A short tour")]
    assert MANIFEST in section and "130 (SIGINT)" in section and "143\n(SIGTERM)" in section
    assert all(f"`{ext}`" in section for ext in OUTPUT_FORMATS) and "`-o -` writes CSV to standard output" in section
