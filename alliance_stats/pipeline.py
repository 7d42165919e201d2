"""The study pipeline behind ``alliance-stats demo``: load, score, check, write results."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import warnings
from pathlib import Path

import pandas as pd

from . import __version__
from .datasets import sample_path
from .exceptions import AllianceStatsError
from .instruments import get_instrument
from .io import read_qsorts, read_sessions, row_accounting
from .reliability import reliability

__all__ = ["run_demo", "DEMO_INSTRUMENTS"]

DEMO_IDS = dict(patient="client_id", session="session_no", therapist="therapist_id")
DEMO_INSTRUMENTS = {"wai-sr": "WAISR_{}", "calpas-t": "CALPAS_T_{}", "phq-9": "PHQ9_{}"}


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class _Output:
    """Write into a temporary folder beside the target; move it into place at the end."""

    def __init__(self, out: Path, force: bool):
        self.out = Path(out)
        if self.out.exists() and not force:
            raise AllianceStatsError(
                f"results folder {str(self.out)!r} already exists; pass --force to replace it"
            )
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}-", dir=self.out.parent))

    def path(self, *parts: str) -> Path:
        p = self.tmp.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def table(self, df: pd.DataFrame, name: str, index: bool = False) -> None:
        df.to_csv(self.path("tables", f"{name}.csv"), index=index)
        self.path("tables", f"{name}.md").write_text(df.to_markdown(index=index, floatfmt=".3f") + "\n")

    def commit(self) -> Path:
        if self.out.exists():
            old = self.out.with_name(f".{self.out.name}-old")
            if old.exists():
                shutil.rmtree(old)
            self.out.rename(old)
            self.tmp.rename(self.out)
            shutil.rmtree(old)
        else:
            self.tmp.rename(self.out)
        return self.out

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def run_demo(out="results", *, force: bool = False, progress: bool = True) -> Path:
    """Run the standard analysis on the synthetic sample data and write the results.

    Writes ``tables/`` (scored session table, reliability, row accounting, instruments used,
    each as CSV and Markdown) and ``report.md`` to ``out``; an existing folder is replaced
    only with ``force=True``, and an interrupted run leaves no half-written folder.
    """
    from tqdm.auto import tqdm

    o = _Output(Path(out), force)
    steps = ["load sessions", "load other exports", "reliability", "meta-analysis", "write report"]
    bar = tqdm(total=len(steps), desc="alliance-stats demo", disable=not progress, unit="step")
    try:
        caught: list[str] = []
        with warnings.catch_warnings(record=True) as wlist:
            warnings.simplefilter("always")
            bar.set_postfix_str(steps[0])
            src = sample_path("sessions_csv")
            sessions = read_sessions(src, instruments=DEMO_INSTRUMENTS, **DEMO_IDS)
            bar.update()

            bar.set_postfix_str(steps[1])
            checks = []
            for name in ("sessions_spss", "sessions_excel"):
                other = read_sessions(sample_path(name), instruments=DEMO_INSTRUMENTS, **DEMO_IDS)
                same = other["wai_sr_total"].round(10).equals(sessions["wai_sr_total"].round(10))
                checks.append({"file": sample_path(name).name, "rows": len(other), "same_scores_as_csv": same})
            long = read_sessions(sample_path("sessions_long"), instruments={"wai-sr": "WAISR_{}"}, **DEMO_IDS)
            checks.append({"file": sample_path("sessions_long").name, "rows": len(long), "same_scores_as_csv": None})
            qs = read_qsorts(sample_path("pqs"), session="session_id", patient="client_id", rater="judge", items="PQS_{}")
            checks.append({"file": sample_path("pqs").name, "rows": len(qs), "same_scores_as_csv": None})
            bar.update()

            bar.set_postfix_str(steps[2])
            rel = []
            for inst, pat in DEMO_INSTRUMENTS.items():
                r = reliability(sessions, inst, items=pat)
                r.insert(0, "instrument", inst)
                r.insert(1, "provenance", get_instrument(inst).provenance)
                rel.append(r)
            rel = pd.concat(rel, ignore_index=True)
            bar.update()

            bar.set_postfix_str(steps[3])
            meta = _meta_step(o)
            bar.update()
            caught = sorted({f"{w.category.__name__}: {w.message}" for w in wlist})

        bar.set_postfix_str(steps[3])
        o.table(sessions, "sessions_scored")
        o.table(rel, "reliability")
        o.table(row_accounting(sessions), "row_accounting")
        o.table(pd.DataFrame(checks), "other_exports")
        used = pd.DataFrame(
            [
                {"instrument": k, **{f: v for f, v in get_instrument(k).to_dict().items() if f in ("label", "rater", "scoring", "provenance", "citation")}}
                for k in DEMO_INSTRUMENTS
            ]
        )
        o.table(used, "instruments_used")
        _write_report(o, sessions, rel, checks, used, caught, src, meta)
        bar.update()
        bar.close()
        return o.commit()
    except BaseException:
        bar.close()
        o.abort()
        raise


def _meta_step(o: _Output) -> dict:
    """Pooled alliance-outcome r of the synthetic study table: REML, three-level, bias checks."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from .datasets import load_sample
    from .models.meta import aggregate_effects, meta_analysis

    table = load_sample("meta")
    three = meta_analysis(table, r="r", n="n", study="study", cluster="study")
    per_study = aggregate_effects(table, by="study", r="r", n="n", r_between=0.5)
    res = meta_analysis(per_study, r="r", n="n", study="study")
    egger = res.egger()
    tf = res.trim_and_fill()
    o.table(res.to_apa(), "meta_analysis_apa")
    o.table(res.table, "meta_analysis_studies")
    o.table(three.variance_components, "meta_analysis_three_level")
    o.table(egger, "meta_analysis_egger")
    for name, draw in (("forest_plot", lambda: res.forest_plot(group="rater")), ("funnel_plot", lambda: res.funnel_plot(contours=True, trim_and_fill=True))):
        ax = draw()
        for ext in ("png", "pdf"):
            ax.figure.savefig(o.path("figures", f"{name}.{ext}"), dpi=200, bbox_inches="tight")
        plt.close(ax.figure)
    return {"res": res, "three": three, "egger": egger.iloc[0], "tf": tf}


def _write_report(o: _Output, sessions, rel, checks, used, caught, src: Path, meta: dict) -> None:
    score_cols = [c for c in sessions.columns if c.endswith("_total")]
    desc = sessions[score_cols].describe().T[["count", "mean", "std", "min", "max"]]
    lines = [
        "# alliance-stats demo report",
        "",
        f"alliance-stats {__version__}. Data: the synthetic sample study (`{src.name}`, sha256 "
        f"`{_sha256(src)[:16]}…`); see sample_data/README.md for how it was made.",
        "",
        "## Data",
        f"{sessions['patient'].nunique()} patients, {sessions['therapist'].nunique()} therapists, "
        f"{len(sessions)} sessions.",
        "",
        row_accounting(sessions).to_markdown(index=False),
        "",
        "## Instruments",
        used.to_markdown(index=False),
        "",
        "## Scores",
        desc.to_markdown(floatfmt=".2f"),
        "",
        "## Reliability",
        "Raw Cronbach's alpha with Feldt's 95% CI, omega total from a one-factor minres solution "
        "(checked against R's psych), mean inter-item correlation; complete cases per scale.",
        "",
        rel.to_markdown(index=False, floatfmt=".3f"),
        "",
        "## Meta-analysis of alliance-outcome correlations (synthetic table)",
        "The table in sample_data/meta_alliance_outcome.csv is SYNTHETIC, calibrated to the pooled "
        "r = .278 of Fluckiger et al. (2018). Dependent effects were averaged within studies "
        "(Borenstein et al. 2009, r_between = .5) for the random-effects model (REML, z test); the "
        "three-level model (REML) uses every effect size. Estimates match R's metafor.",
        "",
        "```",
        meta["res"].summary(),
        "```",
        "",
        "Three-level model: " + meta["three"].summary().split("\n")[2],
        "",
        meta["three"].variance_components.to_markdown(index=False, floatfmt=".4f"),
        "",
        f"Egger's test: z = {meta['egger']['statistic']:.2f}, p = {meta['egger']['pval']:.3f}; "
        f"trim-and-fill: k0 = {meta['tf'].k0} ({meta['tf'].side}), adjusted r = {meta['tf'].estimate:.3f}.",
        "",
        "![forest plot](figures/forest_plot.png)",
        "",
        "![funnel plot](figures/funnel_plot.png)",
        "",
        "## Other exports of the same study",
        pd.DataFrame(checks).to_markdown(index=False),
        "",
        "## Warnings",
        *(["None."] if not caught else [f"- {w}" for w in caught]),
        "",
    ]
    o.path("report.md").write_text("\n".join(lines))
