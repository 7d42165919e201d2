"""Reliable and clinically significant change (Jacobson & Truax 1991) of the outcome."""

from __future__ import annotations

from ..registry import NUMBER, Key, Step, register
from ..section import Section


def run(study) -> Section:
    from ...exceptions import ColumnError
    from ...plots import plot_reliable_change
    from ...prepost import score_reliability
    from ...reliability import pre_post, reliable_change

    cfg, outcome, inst = study.cfg, study.outcome, study.outcome_instrument
    ends = pre_post(study.sessions, outcome)
    n_single, n_none = int((ends["n_scores"] == 1).sum()), int((ends["n_scores"] == 0).sum())
    rel = cfg.get("reliable_change", "reliability")
    rel_note = "given in the configuration"
    if rel is None:
        try:
            found = score_reliability(study.sessions, outcome, cfg.instruments())
        except ColumnError as exc:
            raise cfg.error("reliable_change", "reliability", f"give the reliability of {outcome!r}: {exc}") from None
        rel = float(found.table["alpha"].iloc[0])
        rel_note = f"Cronbach's alpha of the {found.instrument} {found.table['scale'].iloc[0]} scale at each patient's first session"
    cutoff = cfg.get("reliable_change", "cutoff")
    if cutoff is None and inst is not None and inst.cutoffs and outcome == f"{inst.prefix}_total":
        cutoff = inst.cutoffs.get("clinical")
    rcr = reliable_change(ends.rename(columns={"pre": f"{outcome}_pre", "post": f"{outcome}_post"}), pre=f"{outcome}_pre",
                          post=f"{outcome}_post", reliability=rel, cutoff=cutoff, higher_is_better=study.higher_is_better)
    rc = rcr.table
    tab = rc["category"].value_counts().reindex(rc["category"].cat.categories, fill_value=0).rename_axis("category").reset_index(name="patients")
    tab["percent"] = 100 * tab["patients"] / tab["patients"].sum()
    sec = Section("reliable_change", STEP.title)
    sec.methods = (
        f"Jacobson & Truax (1991): each patient's first and last {outcome} score (als.pre_post); RC = (post − pre) / S_diff with "
        f"S_diff = √2 · SD_pre · √(1 − r_xx), reliable when |RC| > 1.96. r_xx = {rel:.3f} ({rel_note}); the change needed is "
        f"{rcr.change_needed:.2f} points." + (f" Recovered: reliable improvement crossing the clinical cut-off {cutoff:g} (from the dysfunctional range)." if cutoff is not None else "")
    )
    sec.add_table("reliable_change", "Patients by change category", tab)
    ax = plot_reliable_change(rcr)
    sec.add_figure("reliable_change", "First vs last score and the reliable-change band" + (" and clinical cut-off" if cutoff is not None else ""), ax)
    sec.accounting.append(f"{int(rc['category'].notna().sum())} patients classified; {n_single} with a single {outcome} score "
                          f"and {n_none} with none not classified.")
    return sec


STEP = register(Step(
    "reliable_change", "Reliable and clinically significant change",
    "Each patient's first and last outcome score, the reliable change index and the change category.", run,
    table="reliable_change",
    keys=(Key("reliability", NUMBER, "reliability of the outcome score, strictly between 0 and 1; default: Cronbach's "
              "alpha of its scale at each patient's first session"),
          Key("cutoff", NUMBER, "clinical cut-off of the outcome; default: the instrument key's clinical cut-off (totals only)")),
))
