"""Psychotherapy Process Q-set: item profiles, inter-judge reliability, Q-factors, item-alliance links."""

from __future__ import annotations

from ..registry import TEXT, Key, Step, register
from ..section import Section

KEYS = (
    Key("file", TEXT, "the Q-sort file (one row per sort), relative to the configuration file", required=True),
    Key("session", TEXT, "session number column", required=True),
    Key("patient", TEXT, "patient ID column (links sorts to the session data)"),
    Key("rater", TEXT, "judge column (for inter-judge reliability)"),
    Key("items", TEXT, "item column pattern, {} = item number (default \"pqs{}\")"),
    Key("group", TEXT, "column to compare item profiles by (e.g. therapy)"),
)


def _needs(cfg):
    return None if cfg.has("pqs") else "a [pqs] table"


def run(study) -> Section:
    from ...exceptions import AllianceStatsError
    from ...io import read_qsorts
    from ...models.pqs import pqs_alliance, pqs_items, pqs_reliability, q_factor_analysis
    from ...plots import plot_pqs_profile

    cfg = study.cfg
    c = cfg.values["pqs"]
    src = cfg.path("pqs")
    study.inputs.append(("PQS sorts", src))
    try:
        sorts = read_qsorts(src, session=c["session"], patient=c.get("patient"), rater=c.get("rater"), items=c.get("items", "pqs{}")).data
    except AllianceStatsError as exc:
        raise exc.with_context(f"reading {src.name} as configured in {cfg.where('pqs')}") from None
    group = c.get("group")
    if group:
        study.column("pqs", "group", df=sorts)
    sec = Section("pqs", STEP.title)
    parts = ["item means and ranks" + (f" by {group}" if group else "")]
    if c.get("rater"):
        parts += ["inter-judge reliability (mean r between the judges' sorts with Spearman–Brown, and per-item "
                  "ICC(2,1)/ICC(2,k), Shrout & Fleiss 1979)", "a Q-factor analysis of the first judge's sorts"]
    if c.get("patient"):
        parts.append("item-alliance correlations with Benjamini–Hochberg FDR")
    sec.methods = ("PQS sorts (Jones 1985/2000; 100 items in a forced 9-pile distribution, checked on reading): "
                   + ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1] + ".")
    not_run = ([] if c.get("rater") else ["inter-judge reliability and Q-factors (no [pqs] rater)"]) + (
        [] if c.get("patient") else ["item-alliance correlations (no [pqs] patient to match the sessions)"])
    if not_run:
        sec.text.append("Not run: " + "; ".join(not_run) + ".")
    items = pqs_items(sorts, by=group).table
    sec.add_file("pqs_items", items)
    for key, sub in ([(None, items)] if not group else list(items.groupby(group, sort=True))):
        ax = plot_pqs_profile(sub.drop(columns=[group]) if group else sub)
        ax.set_title("PQS profile" + (f": {key}" if key is not None else ""), fontsize=10)
        sec.add_figure("pqs_profile" + (f"_{key}" if key is not None else ""),
                       "PQS items ranked by mean pile" + (f" ({key})" if key is not None else ""), ax)
    top = items.sort_values("rank").groupby(group, sort=True).head(5) if group else items.sort_values("rank").head(5)
    cols = ([group] if group else []) + ["item", "mean", "sd", "rank"]
    sec.add_table("pqs_top_items", "Most characteristic items", top[cols])
    if c.get("rater"):
        rel = pqs_reliability(sorts, session=["patient", "session"] if c.get("patient") else "session", rater="rater")
        s = rel.sessions
        sec.text.append(f"Inter-judge reliability over {len(s)} sessions: median r = {s['mean_r'].median():.2f}, "
                        f"median Spearman–Brown = {s['spearman_brown'].median():.2f}; median item ICC(2,1) = {rel.items['icc2'].median():.2f}.")
        sec.add_file("pqs_item_icc", rel.items)
        first = sorted(sorts["rater"].dropna().unique())[0]
        qf = q_factor_analysis(sorts[sorts["rater"] == first])
        sec.add_result("pqs_q_factors", f"Q-factors of judge {first}'s sorts ({qf.rule})", qf)
    if c.get("patient"):
        res = pqs_alliance(sorts, study.sessions, alliance=study.alliance, session=["patient", "session"])
        pa = res.table
        sec.add_file("pqs_alliance", pa)
        if res.n_without_alliance:
            sec.accounting.append(f"{res.n_without_alliance} sorted session(s) without a {study.alliance} score are left out of "
                                  "the item-alliance correlations.")
        sec.add_table("pqs_alliance_top", f"PQS items most correlated with {study.alliance} (all items: tables/pqs_alliance.csv)", pa.head(10))
    sec.accounting.append(f"{len(sorts)} sorts read, every one with the PQS forced distribution (a malformed sort stops "
                          "the run with an error naming its session).")
    return sec


STEP = register(Step("pqs", "Psychotherapy Process Q-set",
                     "PQS item profiles, inter-judge reliability, Q-factors and item-alliance correlations.",
                     run, table="pqs", keys=KEYS, needs=_needs))
