"""The ``alliance-stats`` command line."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings
from pathlib import Path

import pandas as pd

from ._output import interrupt_handlers
from .exceptions import AllianceStatsError, AllianceStatsWarning, ArgumentError, OptionError, OutputPathError


def _parse_instruments(values: list[str], items: str | None) -> dict:
    spec: dict = {}
    for v in values:
        name, _, pat = v.partition("=")
        spec[name.strip()] = pat.strip() or None
    if items is not None:
        if len(spec) != 1:
            raise ArgumentError("--items applies to a single --instrument; write --instrument NAME=PATTERN for several")
        (name,) = spec
        spec[name] = items
    return spec


def _cmd_instruments(args) -> int:
    from .instruments import instruments

    df = instruments()
    if args.csv:
        df.to_csv(sys.stdout, index=False)
    else:
        cols = ["name", "rater", "n_items", "scale_min", "scale_max", "scoring", "subscales", "provenance"]
        print(df[cols].to_string(index=False))
    return 0


#: ``score -o`` formats by extension.
OUTPUT_FORMATS = {".csv": "CSV", ".tsv": "TSV", ".xlsx": "Excel", ".parquet": "Parquet", ".sav": "SPSS", ".dta": "Stata"}


def _output_kind(output: str) -> str:
    """The ``score -o`` format for OUTPUT ('-' is CSV on standard output); refuse any other extension."""
    if output == "-":
        return "-"
    ext = Path(output).suffix.lower()
    if ext not in OUTPUT_FORMATS:
        raise OptionError("--output", output, tuple(OUTPUT_FORMATS) + ("-",),
                          hint=f"The extension {ext or '(none)'!r} names no format alliance-stats writes; "
                               "'-' writes CSV to standard output")
    return ext


def _labels_for_output(df: pd.DataFrame, meta: dict) -> tuple[dict, dict]:
    """SPSS/Stata value labels and variable labels of the input, keyed by the output's column names."""
    rename = {col: role for role, col in meta.get("id_columns", {}).items()}
    value = {rename.get(k, k): v for k, v in meta.get("value_labels", {}).items()}
    column = {rename.get(k, k): v for k, v in meta.get("variable_labels", {}).items()}
    return ({k: v for k, v in value.items() if k in df.columns}, {k: v for k, v in column.items() if k in df.columns})


def _write_scored(df: pd.DataFrame, path: Path, ext: str, meta: dict) -> None:
    if ext in (".csv", ".tsv"):
        df.to_csv(path, index=False, sep="\t" if ext == ".tsv" else ",")
    elif ext == ".xlsx":
        df.to_excel(path, index=False)
    elif ext == ".parquet":
        df.to_parquet(path, index=False)
    else:
        import pyreadstat

        value_labels, column_labels = _labels_for_output(df, meta)
        if ext == ".dta":  # Stata labels whole numbers only
            value_labels = {col: {int(k) if isinstance(k, float) and k.is_integer() else k: v for k, v in lab.items()}
                            for col, lab in value_labels.items()}
        writer = pyreadstat.write_sav if ext == ".sav" else pyreadstat.write_dta
        writer(df, str(path), column_labels={c: column_labels.get(c) for c in df.columns},
               variable_value_labels=value_labels)


def _cmd_score(args) -> int:
    from ._output import atomic_write, check_file_target
    from .io import read_sessions, read_table
    from .scoring import score_instruments

    ext = _output_kind(args.output)
    if ext != "-":  # refuse before the (possibly long) read
        check_file_target(args.output, inputs=[args.file], force=args.force)
    labelled = ext in (".sav", ".dta")  # keep the codes; the labels travel as value labels
    spec = _parse_instruments(args.instrument, args.items)
    if args.patient or args.session:
        if not (args.patient and args.session):
            raise ArgumentError("give both --patient and --session (or neither to score rows as they are)")
        df, prov = read_sessions(
            args.file, patient=args.patient, session=args.session, therapist=args.therapist,
            rater=args.rater, instruments=spec, sheet=args.sheet, on_invalid=args.on_invalid, apply_labels=not labelled,
        )
        meta = {"id_columns": prov.id_columns, "value_labels": prov.value_labels, "variable_labels": prov.variable_labels}
    else:
        df, meta = read_table(args.file, sheet=args.sheet)
        df = score_instruments(df, spec, on_invalid=args.on_invalid)  # invalid items set missing too
    if ext == "-":
        try:
            df.to_csv(sys.stdout, index=False)
            sys.stdout.flush()
        except BrokenPipeError:  # the reader stopped early (e.g. | head); not an error of ours
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        print(f"scored {len(df)} rows ({', '.join(spec)}) -> standard output", file=sys.stderr)
        return 0
    out = Path(args.output)

    def write(tmp: Path) -> None:
        try:
            _write_scored(df, tmp, ext, meta)
        except (KeyboardInterrupt, OSError):
            raise
        except Exception as exc:  # the writer's own reason, with what to do
            raise OutputPathError(f"could not write {str(out)!r} as {OUTPUT_FORMATS[ext]} ({ext}): "
                                  f"{' '.join(str(exc).split())}. Write .csv or .parquet instead, or fix the column "
                                  "named in the reason.") from None

    atomic_write(out, write, inputs=[args.file], force=args.force, what="output file")
    print(f"scored {len(df)} rows ({', '.join(spec)}) -> {out}", file=sys.stderr)
    return 0


def _cmd_demo(args) -> int:
    from .pipeline import run_demo

    path = run_demo(args.out, force=args.force, progress=not args.quiet)
    print(f"results written to {path}/ (open {path / 'report.html'} in a browser)", file=sys.stderr)
    return 0


def _cmd_analyze(args) -> int:
    from .config import EXAMPLE_CONFIG
    from .pipeline import run_analyze

    if args.example:
        print(EXAMPLE_CONFIG, end="")
        return 0
    if args.config is None:
        raise ArgumentError("give a study configuration file (alliance-stats analyze STUDY.toml); "
                            "alliance-stats analyze --example prints one to start from")
    path = run_analyze(args.config, args.out, force=args.force, progress=not args.quiet)
    print(f"results written to {path}/ (open {path / 'report.html'} in a browser)", file=sys.stderr)
    return 0


def _add_output_args(parser) -> None:
    parser.add_argument("--out", default="results", help="results folder (default: results)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing results folder, only one alliance-stats wrote (it has "
                             "alliance-stats-manifest.json) with no file added or changed since, and never one holding an input")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="alliance-stats",
        description="Therapeutic alliance research toolkit: score, check and analyse alliance data.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    pi = sub.add_parser("instruments", help="list the instrument keys", description="List every registered instrument form.")
    pi.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    pi.set_defaults(func=_cmd_instruments)

    ps = sub.add_parser(
        "score",
        help="score instrument items in a data file",
        description="Score one or more instruments in FILE (CSV, TSV, Excel, SPSS, Stata, Parquet) "
        "and write the data with the scores appended.",
    )
    ps.add_argument("file", help="data file")
    ps.add_argument("--instrument", "-i", action="append", required=True, metavar="NAME[=PATTERN]",
                    help="instrument to score, e.g. wai-sr or wai-sr=WAISR_{} (repeatable)")
    ps.add_argument("--items", help="item column pattern for a single instrument, e.g. 'wai{}'")
    ps.add_argument("--patient", help="patient ID column (with --session: validate and sort as a session table)")
    ps.add_argument("--session", help="session number column")
    ps.add_argument("--therapist", help="therapist ID column")
    ps.add_argument("--rater", help="rater column")
    ps.add_argument("--sheet", help="Excel sheet name")
    ps.add_argument("--on-invalid", choices=["raise", "nan"], default="raise",
                    help="out-of-range responses: stop with an error (default) or set missing and count them")
    ps.add_argument("-o", "--output", required=True, metavar="OUT",
                    help="output file; its extension names the format: .csv, .tsv, .xlsx, .parquet, .sav or .dta "
                         "(SPSS/Stata value labels of the input are kept); '-' writes CSV to standard output")
    ps.add_argument("--force", action="store_true", help="replace an existing output file (never the input)")
    ps.set_defaults(func=_cmd_score)

    pd_ = sub.add_parser(
        "demo",
        help="run the standard analysis on the sample data",
        description="Run the standard study analysis on the synthetic sample study and write figures, "
        "tables and a self-contained report.html.",
    )
    _add_output_args(pd_)
    pd_.set_defaults(func=_cmd_demo)

    pa = sub.add_parser(
        "analyze",
        help="run the standard analysis on your own data described by STUDY.toml",
        description="Run the study pipeline (load and score, reliability, trajectories, reliable change, "
        "alliance-outcome models, therapist effects, ruptures, transitions, PQS, meta-analysis) on the data "
        "described by a TOML configuration, and write figures, tables and report.html.",
    )
    pa.add_argument("config", nargs="?", help="study configuration (TOML); see --example")
    _add_output_args(pa)
    pa.add_argument("--example", action="store_true", help="print an example configuration and exit")
    pa.set_defaults(func=_cmd_analyze)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    seen: set = set()

    def show(message, category, filename, lineno, file=None, line=None):
        text = f"alliance-stats: warning: {message}"
        if issubclass(category, AllianceStatsWarning) and text not in seen:
            seen.add(text)
            print(text, file=sys.stderr)

    warnings.showwarning = show
    try:
        with interrupt_handlers():
            return args.func(args)
    except (AllianceStatsError, OSError) as exc:
        msg = " ".join(str(exc).split())
        print(f"alliance-stats: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        name = signal.Signals(signum).name
        print(f"alliance-stats: stopped by {name}; its temporary files were removed", file=sys.stderr)
        return 128 + int(signum)


if __name__ == "__main__":
    sys.exit(main())
