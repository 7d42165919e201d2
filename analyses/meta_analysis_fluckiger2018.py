"""A Fluckiger et al. (2018)-style meta-analysis of alliance-outcome correlations.

The sample table is SYNTHETIC (calibrated to the published pooled r = .278); replace TABLE with
your coded studies (one row per effect size: study, r, n, moderators).
Run: python analyses/meta_analysis_fluckiger2018.py [OUT_FOLDER]
"""

import sys
from pathlib import Path

import alliance_stats as als

# --- settings: your data ------------------------------------------------------------------
TABLE = als.sample_path("meta")
# -------------------------------------------------------------------------------------------

out = Path(sys.argv[1] if len(sys.argv) > 1 else "meta_results")
effects = als.read_table(TABLE)[0]
three = als.meta_analysis(effects, r="r", n="n", study="study", cluster="study")  # every effect size
print(three.summary())
per_study = als.aggregate_effects(effects, by="study", r="r", n="n", r_between=0.5)
res = als.meta_analysis(per_study, r="r", n="n", study="study")
print(res.summary())
print(res.methods())                                   # a draft methods-and-results paragraph
print(res.subgroups("rater").round(3).to_string(index=False))   # the model within each rater group
print("Egger:", res.egger().round(3).to_dict("records")[0], "| trim-and-fill k0 =", res.trim_and_fill().k0)
als.export_table(res.to_apa(), out / "pooled_r.docx", caption="Pooled alliance-outcome correlation (REML)")
als.save_figure(res.forest_plot(group="rater"), out / "forest", formats=("pdf", "png"), width="double")
als.save_figure(res.funnel_plot(contours=True, trim_and_fill=True), out / "funnel", formats=("pdf", "png"))
print(f"tables and figures written to {out}/")
