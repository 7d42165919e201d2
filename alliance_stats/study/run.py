"""Running a study: load and score, each registered step the configuration asks for, the report.

Results are written to a temporary folder and moved into place at the end, with
``alliance-stats-manifest.json`` listing every file and its SHA-256; file names made from data are
slugged and kept inside the folder (see ``alliance_stats._output``).
"""

from __future__ import annotations

import platform
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd

from .._output import ResultsFolder
from ..config import StudyConfig, check_config, load_config
from ..exceptions import AllianceStatsError, ConfigError
from .registry import all_steps
from .section import Section

__all__ = ["Study", "run_demo", "run_analyze", "run_study", "demo_config", "DEMO_INSTRUMENTS"]

DEMO_IDS = dict(patient="client_id", session="session_no", therapist="therapist_id")
DEMO_INSTRUMENTS = {"wai-sr": "WAISR_{}", "calpas-t": "CALPAS_T_{}", "phq-9": "PHQ9_{}"}
DEFAULT_SEED = 20261121


def demo_config() -> StudyConfig:
    """The configuration ``alliance-stats demo`` runs: the synthetic sample study."""
    from ..datasets import sample_path

    values = {
        "study": {"title": "alliance-stats demo: the synthetic sample study"},
        "data": {"file": str(sample_path("sessions_csv")), **DEMO_IDS},
        "instruments": dict(DEMO_INSTRUMENTS),
        "variables": {"alliance": "wai_sr_total", "outcome": "phq9_total", "covariates": ["session"],
                      "state": "alliance_type", "states": ["magical", "working", "therapeutic", "structuralizing"]},
        "ruptures": {"threshold": 2.0, "method": "stiles2004", "max_decline_sessions": 3},
        "pqs": {"file": str(sample_path("pqs")), "session": "session_no", "patient": "client_id", "rater": "judge",
                "items": "PQS_{}", "group": "therapy"},
        "meta": {"file": str(sample_path("meta")), "r": "r", "n": "n", "study": "study", "cluster": "study", "group": "rater"},
        "dynamics": {"max_session": 12},
        "dropout": {"file": str(sample_path("patients")), "patient": "client_id", "dropout": "dropout",
                    "sessions": [1, 2, 3]},
        "output": {"seed": DEFAULT_SEED, "formats": ["png", "pdf"]},
    }
    return check_config(StudyConfig(values=values, base=sample_path("sessions_csv").parent))


class Study:
    """What every step reads: the checked configuration and the loaded, scored session table.

    Attributes
    ----------
    cfg : StudyConfig
    sessions : DataFrame
        The scored sessions (after :meth:`load`), with the ID columns ``patient``, ``session``
        (``therapist`` when configured).
    alliance, outcome : str
        The configured score columns; ``covariates`` the configured covariate columns.
    has_therapist : bool
    outcome_instrument : Instrument or None
        The instrument whose score the outcome is.
    higher_is_better : bool
        Direction of the outcome (from its instrument key; False when unknown).
    seed : int
        ``[output] seed``.
    inputs : list of (what, Path)
        Every file read, for the report's checksums.
    """

    def __init__(self, cfg: StudyConfig):
        self.cfg = cfg
        self.inputs: list[tuple[str, Path]] = []
        self.seed = int(cfg.get("output", "seed", DEFAULT_SEED))
        self.rng = np.random.default_rng(self.seed)
        self.var = cfg.values["variables"]
        self.sessions: pd.DataFrame | None = None
        self.provenance = None  # the loader's Provenance record (after load)

    def column(self, table: str, key: str, df: pd.DataFrame | None = None, value=None) -> str:
        """The column named by ``[table] key`` (or ``value``), checked to be in ``df``
        (default the sessions); a ConfigError naming key, line and close matches otherwise."""
        from ..config import _suggest

        df = self.sessions if df is None else df
        value = self.cfg.get(table, key) if value is None else value
        if value not in df.columns:
            raise self.cfg.error(table, key, f"column {value!r} is not in the data{_suggest(value, df.columns)}; "
                                 f"columns: {', '.join(map(str, df.columns[:40]))}")
        return value

    def instrument_of(self, column: str):
        """The configured instrument whose score ``column`` is, or None."""
        from ..instruments import get_instrument

        for name in self.cfg.instruments():
            inst = get_instrument(name)
            if column.startswith(inst.prefix + "_"):
                return inst
        return None

    def load(self) -> Section:
        """Read and score the session data; the 'Data' section."""
        from ..instruments import get_instrument
        from ..io import read_sessions, row_accounting

        d = self.cfg.values["data"]
        src = self.cfg.path("data")
        self.inputs.append(("session data", src))
        for name, path in self.cfg.custom_instruments().items():
            self.inputs.append((f"instrument key {name}", path))
        ids = {k: d.get(k) for k in ("patient", "session", "therapist", "rater")}
        instruments = self.cfg.instruments()
        try:
            self.sessions, self.provenance = read_sessions(src, instruments=instruments, sheet=d.get("sheet"),
                                                           on_invalid=d.get("on_invalid", "raise"), on_bad_rows=d.get("on_bad_rows", "raise"), **ids)
        except ConfigError:
            raise
        except AllianceStatsError as exc:
            raise exc.with_context(f"reading {src.name} as configured in {self.cfg.where('data')}") from None
        self.alliance = self.column("variables", "alliance")
        self.outcome = self.column("variables", "outcome")
        self.covariates = [self.column("variables", "covariates", value=c) for c in self.var.get("covariates", [])]
        self.has_therapist = d.get("therapist") is not None
        inst = self.instrument_of(self.outcome)
        self.outcome_instrument = inst
        self.higher_is_better = bool(inst.higher_is_better) if inst is not None and inst.higher_is_better is not None else False
        s = self.sessions
        sec = Section("data", "Data")
        sec.methods = (
            f"Session data were read from {src.name} with alliance-stats' read_sessions, which checks the patient, "
            "session and therapist IDs, rejects duplicate patient × session rows and out-of-range item responses, and "
            "scores each instrument by its key (reversed items, subscales, missing-item rule with prorating)."
        )
        sec.text.append(f"{s['patient'].nunique()} patients"
                        + (f", {s['therapist'].nunique()} therapists" if self.has_therapist else "")
                        + f", {len(s)} sessions (median {s.groupby('patient').size().median():.0f} sessions per patient).")
        sec.add_table("row_accounting", "Row accounting: rows read, excluded with the reason, kept", row_accounting(self.provenance))
        sec.add_file("sessions_scored", s)
        sec.text.append("The scored session table is in tables/sessions_scored.csv.")
        used = pd.DataFrame([
            {"instrument": k, "items": p if isinstance(p, str) else ", ".join(map(str, p)),
             **{f: v for f, v in get_instrument(k).to_dict().items() if f in ("label", "rater", "scoring", "provenance", "citation")}}
            for k, p in instruments.items()
        ])
        sec.add_table("instruments_used", "Instruments and the item columns scored", used)
        prov = used[used["provenance"] == "provisional"]["instrument"].tolist()
        if prov:
            sec.text.append(f"Provisional keys (not yet checked against the manual; see the key's notes): {', '.join(prov)}.")
        own = used[used["provenance"] == "user"]["instrument"].tolist()
        if own:
            sec.text.append(f"Keys given by the researcher ([instruments.custom]): {', '.join(own)}.")
        score_cols = [c for c in s.columns if c.endswith("_total")]
        desc = s[score_cols].describe().T[["count", "mean", "std", "min", "max"]].reset_index(names="score")
        desc["count"] = desc["count"].astype(int)
        sec.add_table("score_descriptives", "Session-level scores", desc)
        return sec


def _versions() -> pd.DataFrame:
    rows = [("python", platform.python_version())]
    for pkg in ("alliance-stats", "numpy", "pandas", "scipy", "statsmodels", "matplotlib", "seaborn", "pingouin"):
        try:
            rows.append((pkg, version(pkg)))
        except PackageNotFoundError:
            rows.append((pkg, "not installed"))
    return pd.DataFrame(rows, columns=["package", "version"])


def run_study(cfg: StudyConfig, out="results", *, force: bool = False, progress: bool = True, extra=None) -> Path:
    """Run the configured analyses and write figures, tables and ``report.html`` to ``out``.

    ``extra`` is an optional callable ``extra(study) -> Section`` run after the analyses (the demo
    uses it to compare the other sample exports with the CSV).

    Raises
    ------
    OutputPathError
        Before anything is computed, when ``out`` is or holds an input of the study (the
        configuration file or a data file it names), lies under a file, or exists and either
        ``force`` is false or it is not a folder alliance-stats wrote (no manifest, or files added
        or changed since).
    """
    import matplotlib

    matplotlib.use("Agg")
    from tqdm.auto import tqdm

    from ..report import ReportInfo, write_report

    fig = cfg.figures()
    o = ResultsFolder(Path(out), force=force, protect=cfg.input_paths(), formats=fig["formats"])
    study = Study(cfg)
    registry = all_steps()
    names = cfg.analyses()
    bar = tqdm(total=len(names) + 2, desc="alliance-stats", disable=not progress, unit="step")
    sections: list[Section] = []
    try:
        o.start()
        with matplotlib.rc_context(), warnings.catch_warnings(record=True) as wlist:
            warnings.simplefilter("always")
            if fig["theme"] != "none":
                from ..plots import set_theme

                set_theme(fig["theme"])
            bar.set_postfix_str("load and score")
            sections.append(study.load())
            bar.update()
            for name in names:
                step = registry[name]
                bar.set_postfix_str(name)
                why = step.skip(study) if step.skip is not None else None
                if why:
                    sections.append(Section(name, step.title, skipped=why))
                    bar.update()
                    continue
                try:
                    sections.append(step.run(study))
                except ConfigError:
                    raise
                except AllianceStatsError as exc:
                    where = f", configured in {cfg.where(step.table)}" if step.table and step.table in cfg.values else ""
                    raise exc.with_context(f"analysis {name!r}{where}") from None
                bar.update()
            if extra is not None:
                sections.append(extra(study))
            bar.set_postfix_str("report")
            info = ReportInfo(title=cfg.get("study", "title", "alliance-stats study report"), seed=study.seed,
                              inputs=list(study.inputs), versions=_versions(),
                              config_name=cfg.source.name if cfg.source is not None else None, config_text=cfg.text,
                              figure_width=fig["width"], figure_dpi=fig["dpi"])
            write_report(o, sections, info, caught=wlist)
        bar.update()
        bar.close()
        return o.commit()
    except BaseException:
        bar.close()
        o.abort()
        raise


def _demo_exports(study: Study) -> Section:
    """The demo also reads the SPSS, Excel and long exports of the same study and checks they score the same."""
    from ..datasets import sample_path
    from ..io import read_sessions

    checks = []
    base = study.sessions
    for name in ("sessions_spss", "sessions_excel"):
        other = read_sessions(sample_path(name), instruments=DEMO_INSTRUMENTS, **DEMO_IDS).data
        same = other["wai_sr_total"].round(10).equals(base["wai_sr_total"].round(10))
        checks.append({"file": sample_path(name).name, "rows": len(other), "same_scores_as_csv": same})
        study.inputs.append((name, sample_path(name)))
    long = read_sessions(sample_path("sessions_long"), instruments={"wai-sr": "WAISR_{}"}, **DEMO_IDS).data
    sub = base[base["patient"].isin(long["patient"].unique())]
    same = np.allclose(long["wai_sr_total"].to_numpy(), sub["wai_sr_total"].to_numpy(), equal_nan=True) if len(long) == len(sub) else False
    checks.append({"file": sample_path("sessions_long").name, "rows": len(long), "same_scores_as_csv": same})
    study.inputs.append(("sessions_long", sample_path("sessions_long")))
    sec = Section("exports", "Other exports of the same study")
    sec.methods = "The same synthetic study is shipped as SPSS, Excel and long-shaped CSV; each was read and scored and compared with the wide CSV."
    sec.add_table("other_exports", "Other exports: rows and whether the WAI-SR scores equal the CSV's", pd.DataFrame(checks))
    return sec


def run_demo(out="results", *, force: bool = False, progress: bool = True) -> Path:
    """Run the standard study analysis on the synthetic sample data and write the results.

    Loads and scores the sample study, then runs every registered step the sample data allow
    (reliability, trajectories, reliable change, the alliance–outcome models in both directions,
    therapist effects, rupture–repair, transitions, dynamics, dropout, the PQS analyses and the
    meta-analysis; steps the data do not allow are listed with the reason). Writes ``figures/``
    (PNG and PDF), ``tables/`` (CSV and Markdown) and a self-contained ``report.html`` to ``out``;
    an existing folder is replaced only with ``force=True`` and only when alliance-stats wrote it
    (its manifest lists every file, unchanged), and an interrupted run leaves no half-written folder.
    """
    return run_study(demo_config(), out, force=force, progress=progress, extra=_demo_exports)


def run_analyze(config, out="results", *, force: bool = False, progress: bool = True) -> Path:
    """Run the pipeline on your own data described by a study configuration file (TOML).

    See :data:`alliance_stats.config.EXAMPLE_CONFIG` (``alliance-stats analyze --example``) and
    ``docs/configuration.md``.
    """
    return run_study(load_config(config), out, force=force, progress=progress)
