"""The study pipeline behind ``alliance-stats demo`` and ``alliance-stats analyze``.

One pipeline, driven by a :class:`~alliance_stats.config.StudyConfig`: load and score, then each
analysis the configuration asks for. Every figure goes to PNG and PDF, every table to CSV and
Markdown, and one self-contained ``report.html`` collects them, each analysis with a methods
paragraph and its row accounting. Results are written to a temporary folder and moved into place
at the end, with ``alliance-stats-manifest.json`` listing every file and its SHA-256; file names
made from data are slugged and kept inside the folder (see ``alliance_stats._output``).
"""

from __future__ import annotations

import platform
import warnings
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd

from ._output import ResultsFolder
from .config import StudyConfig, check_config, load_config
from .exceptions import AllianceStatsError, ConfigError

__all__ = ["run_demo", "run_analyze", "run_study", "demo_config", "DEMO_INSTRUMENTS"]

DEMO_IDS = dict(patient="client_id", session="session_no", therapist="therapist_id")
DEMO_INSTRUMENTS = {"wai-sr": "WAISR_{}", "calpas-t": "CALPAS_T_{}", "phq-9": "PHQ9_{}"}
DEFAULT_SEED = 20261121


@dataclass
class Section:
    """One part of the report: a methods paragraph, results text, tables and figures."""

    key: str
    title: str
    methods: str = ""
    text: list = field(default_factory=list)
    tables: list = field(default_factory=list)   # (name, caption, DataFrame)
    figures: list = field(default_factory=list)  # (name, caption)
    accounting: list = field(default_factory=list)  # sentences on rows used and left out
    pre: str = ""


# ------------------------------------------------------------------------------------------
# configurations

def demo_config() -> StudyConfig:
    """The configuration ``alliance-stats demo`` runs: the synthetic sample study."""
    from .datasets import sample_path

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
        "output": {"seed": DEFAULT_SEED, "formats": ["png", "pdf"]},
    }
    return check_config(StudyConfig(values=values, base=sample_path("sessions_csv").parent))


# ------------------------------------------------------------------------------------------
# the pipeline

class _Study:
    def __init__(self, cfg: StudyConfig, o: ResultsFolder):
        self.cfg = cfg
        self.o = o
        self.sections: list[Section] = []
        self.inputs: list[tuple[str, Path]] = []
        self.seed = int(cfg.get("output", "seed", DEFAULT_SEED))
        self.rng = np.random.default_rng(self.seed)
        self.var = cfg.values["variables"]
        self.outcome_key = None

    # -- helpers -------------------------------------------------------------------------
    def column(self, table: str, key: str, df: pd.DataFrame | None = None, value=None) -> str:
        df = self.sessions if df is None else df
        value = self.cfg.get(table, key) if value is None else value
        if value not in df.columns:
            from .config import _suggest

            raise self.cfg.error(table, key, f"column {value!r} is not in the data{_suggest(value, df.columns)}; "
                                 f"columns: {', '.join(map(str, df.columns[:40]))}")
        return value

    def instrument_of(self, column: str):
        from .instruments import get_instrument

        for name in self.cfg.values["instruments"]:
            inst = get_instrument(name)
            if column.startswith(inst.prefix + "_"):
                return inst
        return None

    # -- steps ---------------------------------------------------------------------------
    def load(self) -> None:
        from .io import read_sessions, row_accounting

        d = self.cfg.values["data"]
        src = self.cfg.path("data")
        self.inputs.append(("session data", src))
        ids = {k: d.get(k) for k in ("patient", "session", "therapist", "rater")}
        try:
            self.sessions = read_sessions(src, instruments=self.cfg.values["instruments"], sheet=d.get("sheet"),
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
        self.outcome_inst = inst
        self.higher_is_better = bool(inst.higher_is_better) if inst is not None and inst.higher_is_better is not None else False
        s = self.sessions
        acc = row_accounting(s)
        sec = Section("data", "Data")
        sec.methods = (
            f"Session data were read from {src.name} with alliance-stats' read_sessions, which checks the patient, "
            "session and therapist IDs, rejects duplicate patient × session rows and out-of-range item responses, and "
            "scores each instrument by its key (reversed items, subscales, missing-item rule with prorating)."
        )
        sec.text.append(f"{s['patient'].nunique()} patients"
                        + (f", {s['therapist'].nunique()} therapists" if self.has_therapist else "")
                        + f", {len(s)} sessions (median {s.groupby('patient').size().median():.0f} sessions per patient).")
        sec.tables.append((self.o.table(acc, "row_accounting"), "Row accounting: rows read, excluded with the reason, kept", acc))
        self.o.table(s, "sessions_scored")
        sec.text.append("The scored session table is in tables/sessions_scored.csv.")
        from .instruments import get_instrument

        used = pd.DataFrame([
            {"instrument": k, "items": p, **{f: v for f, v in get_instrument(k).to_dict().items() if f in ("label", "rater", "scoring", "provenance", "citation")}}
            for k, p in self.cfg.values["instruments"].items()
        ])
        sec.tables.append((self.o.table(used, "instruments_used"), "Instruments and the item columns scored", used))
        prov = used[used["provenance"] != "verified"]["instrument"].tolist()
        if prov:
            sec.text.append(f"Provisional keys (not yet checked against the manual; see the key's notes): {', '.join(prov)}.")
        score_cols = [c for c in s.columns if c.endswith("_total")]
        desc = s[score_cols].describe().T[["count", "mean", "std", "min", "max"]].reset_index(names="score")
        desc["count"] = desc["count"].astype(int)
        sec.tables.append((self.o.table(desc, "score_descriptives"), "Session-level scores", desc))
        self.sections.append(sec)

    def reliability(self) -> None:
        from .reliability import reliability

        rows = []
        for name, pat in self.cfg.values["instruments"].items():
            r = reliability(self.sessions, name, items=pat)
            r.insert(0, "instrument", name)
            rows.append(r)
        rel = pd.concat(rows, ignore_index=True)
        self.reliabilities = rel
        sec = Section("reliability", "Reliability")
        sec.methods = ("Internal consistency over all scored sessions: raw Cronbach's alpha with Feldt's 95% CI, omega "
                       "total from a one-factor minres solution, and the mean inter-item correlation (as R's psych). "
                       "Sessions with any missing item are left out of each scale (complete cases).")
        sec.accounting = [f"{r.instrument} {r.scale}: {int(r.n)} sessions used, {int(r.n_excluded)} left out with a missing item."
                          for r in rel.itertuples()]
        sec.tables.append((self.o.table(rel, "reliability"), "Reliability of each scale", rel))
        self.sections.append(sec)

    def trajectories(self) -> None:
        from .models.rupture import alliance_trajectories
        from .plots import plot_trajectories, trajectories_grid

        s = self.sessions
        sec = Section("trajectories", "Trajectories")
        sec.methods = (
            "Session-by-session scores: one thin line per patient and the mean per session with a t-based 95% band, "
            "drawn where at least 5 patients were seen. Each patient's alliance series was also fitted with a linear "
            "and a quadratic trend (OLS) and labelled V-shaped, U-shaped, linear growth/decline or stable by the "
            "documented rules of als.alliance_trajectories (after Stiles et al. 2004)."
        )
        for col in (self.alliance, self.outcome):
            ax = plot_trajectories(s, col, max_patients=120, seed=self.seed)
            ax.set_title(f"{col} by session", fontsize=10)
            sec.figures.append((self.o.figure(ax, f"trajectories_{col}"), f"{col}: patients (thin) and mean with 95% band"))
            sec.accounting.append(f"{col}: {int(s[col].notna().sum())} sessions drawn, {int(s[col].isna().sum())} without a score not drawn.")
        traj = alliance_trajectories(s, self.alliance)
        self.patterns = traj
        counts = traj["pattern"].value_counts(dropna=False).rename_axis("pattern").reset_index(name="patients")
        counts["pattern"] = counts["pattern"].fillna("not assessable (fewer than 4 scored sessions)")
        sec.tables.append((self.o.table(counts, "trajectory_patterns"), "Alliance trajectory patterns", counts))
        self.o.table(traj, "trajectories_by_patient")
        merged = s.merge(traj[["patient", "pattern"]].dropna(), on="patient")
        grid = trajectories_grid(merged, self.alliance, col="pattern", min_n=3)
        sec.figures.append((self.o.figure(grid, "trajectories_by_pattern"), "Alliance trajectories by pattern"))
        n_out = int(traj["pattern"].isna().sum())
        sec.accounting.append(f"{len(traj) - n_out} patients classified; {n_out} with fewer than 4 scored sessions not classified.")
        self.sections.append(sec)

    def reliable_change(self) -> None:
        from .plots import plot_reliable_change
        from .reliability import reliability, reliable_change

        s = self.sessions.dropna(subset=[self.outcome])
        n_none = self.sessions["patient"].nunique() - s["patient"].nunique()
        g = s.sort_values("session").groupby("patient")[self.outcome]
        ends = pd.DataFrame({"pre": g.first(), "post": g.last(), "n": g.size()})
        one = ends["n"] < 2
        ends.loc[one, "post"] = np.nan
        rel = self.cfg.get("reliable_change", "reliability")
        inst = self.outcome_inst
        rel_note = "given in the configuration"
        if rel is None:
            if inst is None:
                raise self.cfg.error("reliable_change", "reliability", f"give the reliability of {self.outcome!r}: it is not the score of a configured instrument")
            from .instruments import get_instrument

            name = next(k for k in self.cfg.values["instruments"] if get_instrument(k).name == inst.name)
            scale = self.outcome[len(inst.prefix) + 1 :]  # "phq9_total" -> "total", "wai_sr_bond" -> "bond"
            first = self.sessions.sort_values("session").groupby("patient").head(1)
            r = reliability(first, name, items=self.cfg.values["instruments"][name])
            if scale not in set(r["scale"]):
                raise self.cfg.error("reliable_change", "reliability", f"give the reliability of {self.outcome!r}: "
                                     f"it is not a scale of {name} ({', '.join(r['scale'])})")
            rel = float(r.loc[r["scale"] == scale, "alpha"].iloc[0])
            rel_note = f"Cronbach's alpha of the {inst.name} {scale} scale at each patient's first session"
        cutoff = self.cfg.get("reliable_change", "cutoff")
        if cutoff is None and inst is not None and inst.cutoffs and self.outcome == f"{inst.prefix}_total":
            cutoff = inst.cutoffs.get("clinical")
        rc = reliable_change(ends, pre="pre", post="post", reliability=rel, cutoff=cutoff, higher_is_better=self.higher_is_better)
        info = rc.attrs["alliance_stats"]
        tab = rc["category"].value_counts().reindex(rc["category"].cat.categories, fill_value=0).rename_axis("category").reset_index(name="patients")
        tab["percent"] = 100 * tab["patients"] / tab["patients"].sum()
        sec = Section("reliable_change", "Reliable and clinically significant change")
        sec.methods = (
            f"Jacobson & Truax (1991): each patient's first and last {self.outcome} score; RC = (post − pre) / S_diff with "
            f"S_diff = √2 · SD_pre · √(1 − r_xx), reliable when |RC| > 1.96. r_xx = {rel:.3f} ({rel_note}); the change needed is "
            f"{info['change_needed']:.2f} points." + (f" Recovered: reliable improvement crossing the clinical cut-off {cutoff:g} (from the dysfunctional range)." if cutoff is not None else "")
        )
        sec.tables.append((self.o.table(tab, "reliable_change"), "Patients by change category", tab))
        ax = plot_reliable_change(ends.rename(columns={"pre": f"{self.outcome}_pre", "post": f"{self.outcome}_post"}),
                                  pre=f"{self.outcome}_pre", post=f"{self.outcome}_post", reliability=rel, cutoff=cutoff,
                                  higher_is_better=self.higher_is_better)
        sec.figures.append((self.o.figure(ax, "reliable_change"), "First vs last score and the reliable-change band" + (" and clinical cut-off" if cutoff is not None else "")))
        sec.accounting.append(f"{int(rc['category'].notna().sum())} patients classified; {int(one.sum())} with a single {self.outcome} score "
                              f"and {n_none} with none not classified.")
        self.sections.append(sec)

    def alliance_outcome(self) -> None:
        from .models.alliance import alliance_outcome
        from .plots import plot_within_between

        th = "therapist" if self.has_therapist else None
        sec = Section("alliance_outcome", "Alliance → outcome and outcome → alliance")
        sec.methods = (
            f"Lagged within/between models (Falkenström, Finkel, Sandell, Rubel & Holmqvist 2017): {self.outcome} at "
            f"session t on the patient-mean-centred {self.alliance} at t−1 (within-patient), the patient's mean "
            f"{self.alliance} (between-patient)" + (", its therapist mean (therapist level)" if th else "") +
            f", the prior {self.outcome} at t−1" + (", " + ", ".join(self.covariates) if self.covariates else "") +
            ", with random intercepts for patients" + (" nested in therapists" if th else "") +
            "; REML, Satterthwaite df (as lmerTest). The reverse direction swaps the roles (outcome at t−1 predicting "
            "alliance at t). Estimates equal lme4/lmerTest's (tests/reference)."
        )
        fits = {}
        for direction, resp in (("alliance->outcome", self.outcome), ("outcome->alliance", self.alliance)):
            r = alliance_outcome(self.sessions, outcome=self.outcome, alliance=self.alliance, therapist=th,
                                 covariates=self.covariates, direction=direction)
            fits[direction] = r
            tag = "alliance_to_outcome" if direction == "alliance->outcome" else "outcome_to_alliance"
            apa = r.to_apa()
            sec.tables.append((self.o.table(apa, f"{tag}_apa"), f"{direction}: {r.response} at t on {r.predictor} at t−1", apa))
            self.o.table(r.model.fixed, f"{tag}_fixed")
            self.o.table(r.model.random, f"{tag}_random")
            ax = plot_within_between(r)
            ax.set_title(direction.replace("->", " → "), fontsize=10)
            sec.figures.append((self.o.figure(ax, f"{tag}_effects"), f"{direction}: effects by level with 95% CIs"))
            left = "; ".join(f"{k}: {v}" for k, v in r.model.dropped.items()) if r.model.n_dropped else "none"
            sec.accounting.append(f"{direction}: {r.model.n_obs} sessions analysed, {r.model.n_dropped} left out ({left}).")
            sec.text += [f"{direction}: {m}" for m in r.model.messages]
        w = fits["alliance->outcome"].effects.iloc[0]
        sec.text.insert(0, f"Within-patient effect of {self.alliance} on next-session {self.outcome}: b = {w['estimate']:.2f}, "
                           f"95% CI [{w['ci_low']:.2f}, {w['ci_high']:.2f}], p {_p(w['p'])}.")
        self.sections.append(sec)

    def therapist_effects(self) -> None:
        from .models.alliance import therapist_effects
        from .models.lmm import lmm
        from .plots import plot_therapist_effects, plot_within_between

        te = therapist_effects(self.sessions, alliance=self.alliance, outcome=self.outcome, session="session", therapist="therapist")
        sec = Section("therapist_effects", "Therapist and patient contributions to the alliance–outcome link")
        sec.methods = (
            f"Baldwin, Wampold & Imel (2007): each patient's mean {self.alliance} split into the therapist's mean and the "
            f"patient's deviation from it; the last {self.outcome} regressed on both with the first {self.outcome} as "
            "baseline and a random intercept for therapists (REML, Satterthwaite df). The caterpillar plot shows the "
            f"therapist random intercepts of {self.alliance} from a three-level model (sessions in patients in therapists) "
            "with 95% conditional intervals."
        )
        apa = te.to_apa()
        sec.tables.append((self.o.table(apa, "therapist_effects_apa"), "Therapist-level and patient-level alliance slopes", apa))
        ax = plot_within_between(te)
        sec.figures.append((self.o.figure(ax, "therapist_effects_slopes"), "Therapist vs patient slopes with 95% CIs"))
        m3 = lmm(f"{self.alliance} ~ session + (1 | therapist/patient)", data=self.sessions)
        ax = plot_therapist_effects(m3)
        sec.figures.append((self.o.figure(ax, "therapist_caterpillar"), "Therapist random intercepts of the alliance"))
        icc = m3.icc()
        sec.tables.append((self.o.table(m3.random, "alliance_variance_components"), "Variance components of the alliance", m3.random))
        sec.text.append("Share of alliance variance: " + ", ".join(f"{r.level} {r.share:.2f}" for r in icc.itertuples()) + ".")
        sec.text += list(m3.messages)
        left = "; ".join(f"{k}: {v}" for k, v in te.model.dropped.items()) if te.model.n_dropped else "none"
        sec.accounting.append(f"Outcome model: {te.model.n_obs} patients analysed, {te.model.n_dropped} left out ({left}).")
        sec.accounting.append(f"Three-level alliance model: {m3.n_obs} sessions analysed, {m3.n_dropped} left out.")
        self.sections.append(sec)

    def ruptures(self) -> None:
        from .models.rupture import detect_ruptures, rupture_outcome, rupture_summary
        from .plots import plot_patient_series, plot_rupture_profile

        kw = {k: self.cfg.get("ruptures", k) for k in ("threshold", "method", "max_decline_sessions", "sd_source") if self.cfg.get("ruptures", k) is not None}
        ep = detect_ruptures(self.sessions, self.alliance, **kw)
        summ = rupture_summary(ep, self.sessions)
        th = "therapist" if self.has_therapist else None
        ro = rupture_outcome(self.sessions, ep, outcome=self.outcome, therapist=th, higher_is_better=self.higher_is_better)
        info = ep.attrs.get("alliance_stats", {})
        sec = Section("ruptures", "Rupture–repair episodes and outcome")
        sec.methods = (
            f"Ruptures were detected in each patient's {self.alliance} series by the {info.get('method', kw.get('method', 'stiles2004'))} rule "
            f"(a drop of at least {info.get('threshold', kw.get('threshold', 2.0))} SD between consecutive scored sessions; "
            "Stiles et al. 2004, Strauss et al. 2006); a repair is a later return to the pre-rupture level (rules numbered "
            "in als.detect_ruptures). Rupture-repair status (none / repaired / unrepaired) was related to outcome by ANCOVA "
            f"(last {self.outcome} on first {self.outcome} and status" + (", therapist random intercept" if th else "") +
            "); r-equivalents are signed so that positive means better outcome (cf. r = .29, Eubanks, Muran & Safran 2018)."
        )
        n_pat = len(summ)
        n_ass = int(summ["assessable"].sum())
        sec.text.append(f"{len(ep)} episodes in {int(summ['any_rupture'].sum())} of {n_ass} assessable patients; "
                        f"{int(ep['repaired'].sum()) if len(ep) else 0} repaired.")
        self.o.table(ep, "rupture_episodes")
        self.o.table(summ, "rupture_by_patient")
        apa = ro.to_apa()
        sec.tables.append((self.o.table(ro.groups, "rupture_status_groups"), "Outcome by rupture-repair status", ro.groups))
        sec.tables.append((self.o.table(apa, "rupture_outcome_apa"), "Rupture-repair status contrasts", apa))
        if len(ep):
            ax = plot_rupture_profile(self.sessions, self.alliance, ep)
            sec.figures.append((self.o.figure(ax, "rupture_profile"), "Alliance aligned on the rupture session, repaired vs unrepaired"))
            counts = ep.groupby("patient").size()
            pid = counts.sort_values(ascending=False, kind="stable").index[0]
            ax = plot_patient_series(self.sessions, self.alliance, patient_id=pid, episodes=ep)
            sec.figures.append((self.o.figure(ax, "rupture_example_patient"), f"Patient {pid}: detected episodes marked"))
        ax = ro.plot()
        sec.figures.append((self.o.figure(ax, "rupture_outcome"), "Change in outcome by status with 95% CIs"))
        sec.accounting.append(f"{n_ass} of {n_pat} patients assessable ({n_pat - n_ass} with too few scored sessions)."
                              + ("" if not any(ro.excluded.values()) else " Outcome model left out: " + "; ".join(f"{v} {k}" for k, v in ro.excluded.items() if v) + "."))
        self.sections.append(sec)

    def transitions(self) -> None:
        from .models.sequences import transitions

        state = self.column("variables", "state")
        tr = transitions(self.sessions, state, states=self.var.get("states"))
        sec = Section("transitions", f"Transitions between session states ({state})")
        sec.methods = ("First-order Markov model of moves between consecutive scored sessions: row proportions with 95% Wilson "
                       "intervals, expected run lengths 1/(1 − p_ii), the stationary distribution, and the likelihood-ratio "
                       "G² test of first-order dependence. Pairs across a missed session or a missing state are not counted.")
        apa = tr.to_apa()
        sec.tables.append((self.o.table(apa, "transitions_apa"), "Transition probabilities [95% CI] (row = from)", apa))
        self.o.table(tr.counts, "transition_counts", index=True)
        ax = tr.plot()
        sec.figures.append((self.o.figure(ax, "transitions"), "Transition probabilities"))
        t = tr.test
        sec.text.append(f"G²({t['df']}) = {t['g2']:.2f}, p {_p(t['p'])}.")
        sec.accounting.append(f"{tr.n_transitions} transitions counted; {tr.n_breaks} session pairs not counted (missed session or missing state).")
        self.sections.append(sec)

    def pqs(self) -> None:
        from .io import read_qsorts
        from .models.pqs import pqs_alliance, pqs_items, pqs_reliability, q_factor_analysis
        from .plots import plot_pqs_profile

        c = self.cfg.values["pqs"]
        src = self.cfg.path("pqs")
        self.inputs.append(("PQS sorts", src))
        try:
            sorts = read_qsorts(src, session=c["session"], patient=c.get("patient"), rater=c.get("rater"), items=c.get("items", "pqs{}"))
        except AllianceStatsError as exc:
            raise exc.with_context(f"reading {src.name} as configured in {self.cfg.where('pqs')}") from None
        group = c.get("group")
        if group:
            self.column("pqs", "group", df=sorts)
        sec = Section("pqs", "Psychotherapy Process Q-set")
        sec.methods = ("PQS sorts (Jones 1985/2000; 100 items in a forced 9-pile distribution, checked on reading): item "
                       "means and ranks" + (f" by {group}" if group else "") + ", inter-judge reliability (mean r between the "
                       "judges' sorts with Spearman–Brown, and per-item ICC(2,1)/ICC(2,k), Shrout & Fleiss 1979), a Q-factor "
                       "analysis (principal components of the correlations between sorts, varimax), and item-alliance "
                       "correlations with Benjamini–Hochberg FDR.")
        items = pqs_items(sorts, by=group)
        self.o.table(items, "pqs_items")
        for key, sub in ([(None, items)] if not group else list(items.groupby(group, sort=True))):
            ax = plot_pqs_profile(sub.drop(columns=[group]) if group else sub)
            name = "pqs_profile" + (f"_{key}" if key is not None else "")
            ax.set_title("PQS profile" + (f": {key}" if key is not None else ""), fontsize=10)
            sec.figures.append((self.o.figure(ax, name), "PQS items ranked by mean pile" + (f" ({key})" if key is not None else "")))
        top = items.sort_values("rank").groupby(group, sort=True).head(5) if group else items.sort_values("rank").head(5)
        cols = ([group] if group else []) + ["item", "mean", "sd", "rank"]
        sec.tables.append((self.o.table(top[cols], "pqs_top_items"), "Most characteristic items", top[cols]))
        if c.get("rater"):
            rel = pqs_reliability(sorts, session=["patient", "session"] if c.get("patient") else "session", rater="rater")
            s = rel["sessions"]
            sec.text.append(f"Inter-judge reliability over {len(s)} sessions: median r = {s['mean_r'].median():.2f}, "
                            f"median Spearman–Brown = {s['spearman_brown'].median():.2f}; median item ICC(2,1) = {rel['items']['icc2'].median():.2f}.")
            self.o.table(rel["items"], "pqs_item_icc")
            first = sorted(sorts["rater"].dropna().unique())[0]
            qf = q_factor_analysis(sorts[sorts["rater"] == first])
            apa = qf.to_apa()
            sec.tables.append((self.o.table(apa, "pqs_q_factors"), f"Q-factors of judge {first}'s sorts ({qf.rule})", apa))
        if c.get("patient"):
            pa = pqs_alliance(sorts, self.sessions, alliance=self.alliance, session=["patient", "session"])
            show = pa.head(10)
            sec.tables.append((self.o.table(pa, "pqs_alliance"), f"PQS items most correlated with {self.alliance}", show))
        sec.accounting.append(f"{len(sorts)} sorts read, every one with the PQS forced distribution (a malformed sort stops "
                              "the run with an error naming its session).")
        self.sections.append(sec)

    def meta(self) -> None:
        from .io import read_table
        from .models.meta import aggregate_effects, meta_analysis

        c = self.cfg.values["meta"]
        src = self.cfg.path("meta")
        self.inputs.append(("meta-analysis table", src))
        table, _ = read_table(src)
        for k in ("r", "n", "study", "cluster", "group"):
            if c.get(k):
                self.column("meta", k, df=table)
        method = c.get("method", "REML")
        sec = Section("meta", "Meta-analysis of alliance–outcome correlations")
        cluster = c.get("cluster")
        if cluster:
            per = aggregate_effects(table, by=cluster, r=c["r"], n=c["n"], r_between=0.5)
            res = meta_analysis(per, r=c["r"], n=c["n"], study=cluster, method=method)
            three = meta_analysis(table, r=c["r"], n=c["n"], study=c["study"], cluster=cluster, method=method)
        else:
            res = meta_analysis(table, r=c["r"], n=c["n"], study=c["study"], method=method)
            three = None
        egger = res.egger()
        tf = res.trim_and_fill()
        sec.methods = (
            f"Correlations were analysed as Fisher z with a random-effects model ({method}, z test) and back-transformed"
            + (f"; dependent effects were first averaged within each {cluster} (Borenstein et al. 2009, r_between = .5), and a "
               "three-level model used every effect size" if cluster else "")
            + ". Small-study checks: Egger's regression test and Duval & Tweedie's trim-and-fill. Estimates equal R's metafor."
        )
        if "synthetic" in table.columns and bool(table["synthetic"].all()):
            sec.text.append("This table is SYNTHETIC, calibrated to the pooled r = .278 of Flückiger et al. (2018).")
        sec.pre = res.summary()
        apa = res.to_apa()
        sec.tables.append((self.o.table(apa, "meta_analysis_apa"), "Pooled alliance–outcome correlation", apa))
        self.o.table(res.table, "meta_analysis_studies")
        if three is not None:
            sec.tables.append((self.o.table(three.variance_components, "meta_analysis_three_level"), "Three-level variance components", three.variance_components))
        eg = egger.iloc[0]
        sec.text.append(f"Egger's test: z = {eg['statistic']:.2f}, p {_p(eg['pval'])}; trim-and-fill: k0 = {tf.k0} ({tf.side}), adjusted r = {tf.estimate:.3f}.")
        group = c.get("group")
        ax = res.forest_plot(group=group) if group else res.forest_plot()
        sec.figures.append((self.o.figure(ax, "forest_plot"), "Forest plot"))
        ax = res.funnel_plot(contours=True, trim_and_fill=True)
        sec.figures.append((self.o.figure(ax, "funnel_plot"), "Contour-enhanced funnel plot with trim-and-fill"))
        n_ex = len(res.excluded) if getattr(res, "excluded", None) is not None else 0
        sec.accounting.append(f"{len(table)} effect sizes read; {res.k} analysed" + (f" (after averaging within {cluster})" if cluster else "")
                              + (f"; {n_ex} excluded" if n_ex else "") + ".")
        self.sections.append(sec)


def _p(p: float) -> str:
    from ._format import apa_p

    return apa_p(p, eq=True)


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

    ``extra`` is an optional callable ``extra(study)`` run after the analyses (the demo uses it to
    compare the other sample exports with the CSV).

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

    from .report import write_report

    o = ResultsFolder(Path(out), force=force, protect=cfg.input_paths(), formats=cfg.get("output", "formats", ["png", "pdf"]))
    study = _Study(cfg, o)
    steps = ["load and score"] + cfg.analyses() + ["report"]
    bar = tqdm(total=len(steps), desc="alliance-stats", disable=not progress, unit="step")
    try:
        o.start()
        with warnings.catch_warnings(record=True) as wlist:
            warnings.simplefilter("always")
            bar.set_postfix_str(steps[0])
            study.load()
            bar.update()
            for step in steps[1:-1]:
                bar.set_postfix_str(step)
                try:
                    getattr(study, step)()
                except ConfigError:
                    raise
                except AllianceStatsError as exc:
                    raise exc.with_context(f"analysis {step!r}") from None
                bar.update()
            if extra is not None:
                extra(study)
        caught = sorted({f"{w.category.__name__}: {w.message}" for w in wlist if issubclass(w.category, UserWarning)})
        bar.set_postfix_str("report")
        write_report(study, caught, _versions())
        bar.update()
        bar.close()
        return o.commit()
    except BaseException:
        bar.close()
        o.abort()
        raise


def _demo_extra(study: _Study) -> None:
    """The demo also reads the SPSS, Excel and long exports of the same study and checks they score the same."""
    from .datasets import sample_path
    from .io import read_sessions

    checks = []
    base = study.sessions
    for name in ("sessions_spss", "sessions_excel"):
        other = read_sessions(sample_path(name), instruments=DEMO_INSTRUMENTS, **DEMO_IDS)
        same = other["wai_sr_total"].round(10).equals(base["wai_sr_total"].round(10))
        checks.append({"file": sample_path(name).name, "rows": len(other), "same_scores_as_csv": same})
        study.inputs.append((name, sample_path(name)))
    long = read_sessions(sample_path("sessions_long"), instruments={"wai-sr": "WAISR_{}"}, **DEMO_IDS)
    sub = base[base["patient"].isin(long["patient"].unique())]
    same = np.allclose(long["wai_sr_total"].to_numpy(), sub["wai_sr_total"].to_numpy(), equal_nan=True) if len(long) == len(sub) else False
    checks.append({"file": sample_path("sessions_long").name, "rows": len(long), "same_scores_as_csv": same})
    study.inputs.append(("sessions_long", sample_path("sessions_long")))
    df = pd.DataFrame(checks)
    sec = Section("exports", "Other exports of the same study")
    sec.methods = "The same synthetic study is shipped as SPSS, Excel and long-shaped CSV; each was read and scored and compared with the wide CSV."
    sec.tables.append((study.o.table(df, "other_exports"), "Other exports: rows and whether the WAI-SR scores equal the CSV's", df))
    study.sections.append(sec)


def run_demo(out="results", *, force: bool = False, progress: bool = True) -> Path:
    """Run the standard study analysis on the synthetic sample data and write the results.

    Loads and scores the sample study, then runs reliability, trajectories, reliable change, the
    alliance–outcome models in both directions, therapist effects, rupture–repair detection and
    its outcome link, transitions between alliance types, the PQS analyses and the meta-analysis.
    Writes ``figures/`` (PNG and PDF), ``tables/`` (CSV and Markdown) and a self-contained
    ``report.html`` to ``out``; an existing folder is replaced only with ``force=True`` and only
    when alliance-stats wrote it (its manifest lists every file, unchanged), and an interrupted
    run leaves no half-written folder.
    """
    return run_study(demo_config(), out, force=force, progress=progress, extra=_demo_extra)


def run_analyze(config, out="results", *, force: bool = False, progress: bool = True) -> Path:
    """Run the pipeline on your own data described by a study configuration file (TOML).

    See :data:`alliance_stats.config.EXAMPLE_CONFIG` (``alliance-stats analyze --example``).
    """
    return run_study(load_config(config), out, force=force, progress=progress)
