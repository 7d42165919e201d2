"""Random-effects meta-analysis of alliance-outcome correlations."""

from __future__ import annotations

from ...models._meta_fit import METHODS
from ..registry import TEXT, Key, Step, register
from ..section import Section

KEYS = (
    Key("file", TEXT, "table of effect sizes, relative to the configuration file", required=True),
    Key("r", TEXT, "correlation column", required=True),
    Key("n", TEXT, "sample size column", required=True),
    Key("study", TEXT, "study label column", required=True),
    Key("cluster", TEXT, "column grouping dependent effects (averaged, and a three-level model)"),
    Key("group", TEXT, "column to group the forest plot by"),
    Key("method", TEXT, "estimator of the between-study variance (default REML)", allowed=METHODS),
)


def _needs(cfg):
    return None if cfg.has("meta") else "a [meta] table"


def run(study) -> Section:
    from ..._format import apa_p
    from ...io import read_table
    from ...models.meta import aggregate_effects, meta_analysis

    cfg = study.cfg
    c = cfg.values["meta"]
    src = cfg.path("meta")
    study.inputs.append(("meta-analysis table", src))
    table, _ = read_table(src)
    for k in ("r", "n", "study", "cluster", "group"):
        if c.get(k):
            study.column("meta", k, df=table)
    method = c.get("method", "REML")
    sec = Section("meta", STEP.title)
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
    sec.methods = ((f"Dependent effects were first averaged within each {cluster} (Borenstein et al. 2009, r_between = .5), "
                    "and a three-level model used every effect size. " if cluster else "")
                   + "Small-study checks: Egger's regression test and Duval & Tweedie's trim-and-fill.")
    if "synthetic" in table.columns and bool(table["synthetic"].all()):
        sec.text.append("This table is SYNTHETIC, calibrated to the pooled r = .278 of Flückiger et al. (2018).")
    sec.pre = res.summary()
    group = c.get("group")
    sec.add_result("meta_analysis_apa", "Pooled alliance–outcome correlation", res,
                   figure="forest_plot", figure_caption="Forest plot", **({"group": group} if group else {}))
    sec.add_file("meta_analysis_studies", res.table)
    if three is not None:
        sec.add_table("meta_analysis_three_level", "Three-level variance components", three.variance_components)
    eg = egger.iloc[0]
    sec.text.append(f"Egger's test: z = {eg['statistic']:.2f}, p {apa_p(eg['pval'], eq=True)}; trim-and-fill: k0 = {tf.k0} ({tf.side}), adjusted r = {tf.estimate:.3f}.")
    sec.add_figure("funnel_plot", "Contour-enhanced funnel plot with trim-and-fill", res.funnel_plot(contours=True, trim_and_fill=True))
    if cluster:
        sec.accounting.append(f"{len(table)} effect sizes read and averaged within {cluster} into {res.k}.")
    return sec


STEP = register(Step("meta", "Meta-analysis of alliance–outcome correlations",
                     "Random-effects (and three-level) meta-analysis with Egger's test, trim-and-fill, forest and funnel plots.",
                     run, table="meta", keys=KEYS, needs=_needs))
