"""Write the tutorial notebooks from their cell lists (run: python notebooks/_build.py).

This file is the source of the notebooks: edit the cells here and rebuild, never the .ipynb.
The build is deterministic (cell ids from the notebook's name and the cell's position, fixed
metadata, no outputs), so the same source always gives the same bytes;
tests/test_notebooks_built.py checks that the committed notebooks match it.
Notebooks are committed without outputs; `make test` executes them top to bottom.
"""

from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).parent


def build(name: str, cells: list[tuple[str, str]]) -> nbf.NotebookNode:
    """The notebook ``name`` from its cells: ids ``<name without .ipynb>-<position>``, one kernelspec."""
    nb = nbf.v4.new_notebook()
    nb.metadata = nbf.NotebookNode({"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src) for kind, src in cells]
    stem = Path(name).stem
    for i, cell in enumerate(nb.cells):
        cell.id = f"{stem}-{i:02d}"
    nbf.validate(nb)
    return nb


def write(name: str, cells: list[tuple[str, str]], folder: Path = HERE) -> Path:
    """Write the notebook ``name`` into ``folder`` (default: this folder) and return its path."""
    path = Path(folder) / name
    nbf.write(build(name, cells), path)
    return path


NB01 = [
    ("md", """# 01 · Loading and scoring alliance data

This notebook walks you from a raw **SPSS export** to a tidy, scored session table, then checks
the scales' **reliability** and classifies each patient's **reliable change** (Jacobson & Truax,
1991).

The data are **synthetic**: a simulated study of 160 patients treated by 20 therapists. The
patients rated the WAI-SR after every session, the therapists rated the CALPAS, and the patients
also filled in the PHQ-9. `sample_data/README.md` is the codebook."""),
    ("code", """import pandas as pd
import alliance_stats as als

als.list_samples()"""),
    ("md", """## 1. Look at the raw export
This is what a survey tool or a clinic's SPSS file gives you. There is one row per session.
The item columns are named by the survey tool (`WAISR_1` …), and categorical variables are stored
as numeric codes with value labels."""),
    ("code", """raw = als.load_sample("sessions_spss")
raw.iloc[:5, :14]"""),
    ("md", """## 2. Which instruments can be scored?
Each form's scoring key is a small data file. *Provenance* tells you whether the key was checked
against the published source (`verified`) or is `provisional`. Scoring with a provisional key warns
you, and you can register the official key from your manual."""),
    ("code", """als.instruments()[["name", "rater", "n_items", "scale_min", "scale_max", "scoring", "subscales", "provenance"]]"""),
    ("code", """als.get_instrument("wai-sr")"""),
    ("md", """## 3. Read, validate and score in one call
`read_sessions` renames the ID columns to `therapist`, `patient`, `session`. It checks them
(missing IDs, session numbers that are not positive whole numbers, duplicate sessions), sorts the
table and scores every instrument you name. Each instrument is mapped to its item columns with a
pattern, where `{}` stands for the item number."""),
    ("code", """sessions = als.read_sessions(
    als.sample_path("sessions_spss"),
    patient="client_id", session="session_no", therapist="therapist_id",
    instruments={"wai-sr": "WAISR_{}", "calpas-t": "CALPAS_T_{}", "phq-9": "PHQ9_{}"},
)
df = sessions.data   # the tidy table; sessions.provenance records where it came from
df[["therapist", "patient", "session", "therapy", "wai_sr_task", "wai_sr_bond", "wai_sr_goal",
    "wai_sr_total", "calpas_t_total", "phq9_total", "phq9_n_missing"]].head()"""),
    ("md", """The warning above concerns the CALPAS. Its item-to-scale map is not publicly verified, so the
package ships it as provisional. Before you publish CALPAS subscale scores, register the key from
the manual, for example `als.register_instrument("calpas-t-official.toml", replace=True)`.

Nothing is dropped silently. Next to the table, `read_sessions` returns a small provenance record:
the file and its SHA-256, the keys used, and what happened to every row. It is kept beside the
table, not on it, so filtering `df` never loses it. The SPSS value labels are kept: `therapy` is
now a category with the labels `CBT` and `PDT`."""),
    ("code", """als.row_accounting(sessions)"""),
    ("code", """prov = sessions.provenance
prov.value_labels["therapy"], df["therapy"].cat.categories.tolist(), prov.instruments["wai-sr"].provenance, prov.sha256[:12]"""),
    ("md", """### What happens with bad data?
Suppose someone typed a 6 into a WAI-SR item, which only runs from 1 to 5. You get an error that
names the column, the row and the value, not a silent wrong mean:"""),
    ("code", """bad = raw.copy()
bad.loc[3, "WAISR_7"] = 6
try:
    als.read_sessions(bad, patient="client_id", session="session_no", instruments={"wai-sr": "WAISR_{}"})
except als.ItemRangeError as err:
    print(err)"""),
    ("md", """If you decide such values should count as missing, pass `on_invalid="nan"`. They are then set
missing, counted, and reported. Missing items follow each key's rule: a scale is scored from the
answered items (prorated) when no more than `max_missing` of its items are missing."""),
    ("md", """## 4. Sessions that did not happen
Patients miss sessions. `session_grid` turns the gaps into explicit rows, so that a later "previous
session" lag never silently jumps over a missed session."""),
    ("code", """grid = als.session_grid(df)
print(f"{(~grid.observed).sum()} missed sessions made explicit")
grid.loc[~grid.observed, ["therapist", "patient", "session", "wai_sr_total"]].head()"""),
    ("md", """## 5. Reliability
Cronbach's alpha with a 95% CI (Feldt), McDonald's omega total (one-factor minres) and the mean
inter-item correlation, per subscale and total. Reversed items are reverse-scored by the key first.
The numbers match R's `psych` package (see `tests/reference/`). Here we use the first session of
each patient, so that every row is an independent person."""),
    ("code", """first = df[df.session == df.groupby("patient").session.transform("min")]
rel = als.reliability(first, "wai-sr", items="WAISR_{}")
print(rel.methods())
rel"""),
    ("md", """## 6. Reliable and clinically significant change (Jacobson & Truax, 1991)
For each patient we compare the first and the last PHQ-9. The reliable change index is
RC = (post − pre) / S_diff, with S_diff = √2 · SD_pre · √(1 − r_xx). A patient has *recovered* when the
improvement is reliable and crosses the clinical cut-off: the first PHQ-9 was 10 or more and the last is below 10.
Lower PHQ-9 scores are better, so we pass `higher_is_better=False`."""),
    ("code", """ends = (df.dropna(subset=["phq9_total"]).sort_values("session")
          .groupby("patient").agg(pre=("phq9_total", "first"), post=("phq9_total", "last")))
r_xx = als.reliability(first, "phq-9", items="PHQ9_{}").table.loc[0, "alpha"]
rc = als.reliable_change(ends, pre="pre", post="post", reliability=r_xx, cutoff=10, higher_is_better=False)
print(f"alpha = {r_xx:.2f}; change needed for reliability: {rc.change_needed:.1f} PHQ-9 points")
rc.counts()"""),
    ("md", """If you have norms for a functional and a dysfunctional population, `clinical_cutoffs` gives
Jacobson & Truax's cut-offs a, b and c. The norms below are made up for illustration:"""),
    ("code", """als.clinical_cutoffs(mean_dysfunctional=15, sd_dysfunctional=5, mean_functional=4, sd_functional=3.5,
                     higher_is_better=False)"""),
    ("md", """## 7. Sharing data without identities
`pseudonymize` replaces IDs with keyed hashes (HMAC-SHA256). The same key gives the same
pseudonyms, so tables stay joinable. Keep the key secret."""),
    ("code", """shared = als.pseudonymize(df, ["patient", "therapist"], key="keep-this-key-private")
shared[["therapist", "patient", "session", "wai_sr_total"]].head(3)"""),
    ("md", """## References
- Hatcher, R. L., & Gillaspy, J. A. (2006). Development and validation of a revised short version
  of the Working Alliance Inventory. *Psychotherapy Research, 16*(1), 12–25.
- Jacobson, N. S., & Truax, P. (1991). Clinical significance: A statistical approach to defining
  meaningful change in psychotherapy research. *Journal of Consulting and Clinical Psychology,
  59*(1), 12–19.
- Kroenke, K., Spitzer, R. L., & Williams, J. B. (2001). The PHQ-9. *Journal of General Internal
  Medicine, 16*(9), 606–613.
- Revelle, W. (2024). *psych: Procedures for psychological, psychometric, and personality
  research* (R package)."""),
]

NB05 = [
    ("md", """# 05 · Meta-analysis of alliance–outcome correlations

This notebook runs the kind of analysis behind the field's headline number. Flückiger, Del Re,
Wampold and Horvath (2018) pooled 295 studies with more than 30,000 patients in a three-level REML
random-effects model and found r = .278, 95% CI [.256, .299].

> **The data here are synthetic.** `meta_alliance_outcome.csv` holds 104 invented correlations
> from 60 invented studies. They were calibrated so that a random-effects REML model over all
> effect sizes gives the published r = .278. The studies, their sizes and their moderators are
> made up. Use the table to learn the workflow, never as evidence.

Every number below matches R's **metafor**. The package's tests check each quantity against
metafor on public datasets (`tests/reference/`)."""),
    ("code", """import matplotlib.pyplot as plt
import alliance_stats as als

studies = als.load_sample("meta")
studies.head()"""),
    ("md", """## 1. One effect size per study
Many studies report several correlations: client and observer ratings, or several outcome
measures. The traditional approach averages them within each study first. Borenstein et al.
(2009) give the variance of such a mean under an assumed correlation between the effects
(here .5)."""),
    ("code", """per_study = als.aggregate_effects(studies, by="study", r="r", n="n", r_between=0.5)
print(f"{len(studies)} effect sizes -> {len(per_study)} studies")
per_study.head()"""),
    ("md", """## 2. The random-effects model
Correlations are analysed as Fisher z, with variance 1/(n − 3), and back-transformed. The default
is REML with a Wald z test. `test="knha"` gives the Knapp–Hartung adjustment, which many
methodologists recommend."""),
    ("code", """res = als.meta_analysis(per_study, r="r", n="n", study="study", method="REML")
res"""),
    ("code", """res.to_apa()"""),
    ("code", """knha = als.meta_analysis(per_study, r="r", n="n", study="study", test="knha")
print(f"z test:          r = {res.estimate:.3f}, 95% CI [{res.ci[0]:.3f}, {res.ci[1]:.3f}]")
print(f"Knapp-Hartung t: r = {knha.estimate:.3f}, 95% CI [{knha.ci[0]:.3f}, {knha.ci[1]:.3f}]")
print(f"prediction interval (where the true r of a new study will lie): [{res.pi[0]:.3f}, {res.pi[1]:.3f}]")"""),
    ("md", """## 3. All effect sizes: the three-level model
Flückiger et al. used every effect size, nested in studies. This model has two variance
components: between studies and between effect sizes within studies. I² is split by level."""),
    ("code", """three = als.meta_analysis(studies, r="r", n="n", study="study", cluster="study")
print(three.summary())
three.variance_components"""),
    ("md", """## 4. Forest plot
There is one row per study. The square's area shows its weight, the line its 95% CI, and the
diamond the pooled r with its CI. The line through the diamond is the prediction interval. Here
the rows are grouped by who rated the alliance, with a subgroup diamond for each rater."""),
    ("code", """ax = res.forest_plot(group="rater", sort="estimate")"""),
    ("md", """The subgroup diamonds are the same model fitted within each rater group; `subgroups()` gives
their numbers (metafor: `rma(yi, vi, subset = rater == "client")`)."""),
    ("code", """res.subgroups("rater")[["group", "k", "estimate", "ci_low", "ci_high", "tau2", "i2", "q_p"]]"""),
    ("md", """## 5. Publication bias
The funnel plot shows each effect against its standard error. In the contour-enhanced version
(Peters et al. 2008) the shading marks where effects are (non-)significant. If small studies with
weak effects were missing, the funnel would be lopsided. Egger's regression test and Duval and
Tweedie's trim-and-fill put a number on that asymmetry."""),
    ("code", """ax = res.funnel_plot(contours=True, trim_and_fill=True)
res.egger()"""),
    ("code", """tf = res.trim_and_fill()
print(f"trim-and-fill imputes k0 = {tf.k0} studies on the {tf.side}; adjusted r = {tf.estimate:.3f}")"""),
    ("md", """## 6. Sensitivity: leave one out"""),
    ("code", """loo = res.leave_one_out()
loo.sort_values("estimate").iloc[[0, -1]][["left_out", "estimate", "ci_low", "ci_high", "i2"]]"""),
    ("md", """## 7. A methods paragraph
`methods()` drafts the methods-and-results text of the model: estimator, k and N, the pooled r with
its CI, heterogeneity and the prediction interval. `accounting()` lists what was analysed and what
was left out."""),
    ("code", """print(res.methods())
res.accounting()"""),
    ("md", """## 8. Moderators
Does the correlation depend on who rated the alliance, or on the publication year? In a
mixed-effects meta-regression, QM tests all moderators together. Text columns are dummy coded
against their first level, as in R."""),
    ("code", """mod = als.meta_analysis(per_study, r="r", n="n", study="study", moderators="rater + year")
print(mod.summary())"""),
    ("md", """## References
- Borenstein, M., Hedges, L. V., Higgins, J. P. T., & Rothstein, H. R. (2009). *Introduction to
  meta-analysis*. Wiley.
- Duval, S., & Tweedie, R. (2000). Trim and fill. *Biometrics, 56*(2), 455–463.
- Egger, M., Davey Smith, G., Schneider, M., & Minder, C. (1997). Bias in meta-analysis detected by
  a simple, graphical test. *BMJ, 315*, 629–634.
- Flückiger, C., Del Re, A. C., Wampold, B. E., & Horvath, A. O. (2018). The alliance in adult
  psychotherapy: A meta-analytic synthesis. *Psychotherapy, 55*(4), 316–340.
- Knapp, G., & Hartung, J. (2003). Improved tests for a random effects meta-regression with a single
  covariate. *Statistics in Medicine, 22*, 2693–2710.
- Peters, J. L., et al. (2008). Contour-enhanced meta-analysis funnel plots. *Journal of Clinical
  Epidemiology, 61*, 991–996.
- Viechtbauer, W. (2010). Conducting meta-analyses in R with the metafor package. *Journal of
  Statistical Software, 36*(3), 1–48."""),
]

NB06 = [
    ("md", """# 06 · Psychotherapy Process Q-set (PQS)

Observers use the PQS (Jones, 2000) to describe *what happens* in a session. They sort 100 items
into 9 piles, from extremely uncharacteristic (1) to extremely characteristic (9), under a
forced distribution of 5, 8, 12, 16, 18, 16, 12, 8 and 5 items. This notebook reads the sorts,
checks them, and then covers:

1. the **item profile**: which items characterize the sessions;
2. **inter-rater reliability** between the two judges;
3. a **Q-factor analysis**: which kinds of session emerge;
4. **adherence to prototypes** over the course of treatment;
5. PQS items that go with the **alliance** (compare Price & Jones, 1998).

The sorts are **synthetic**: two judges sorted the first, middle and last sessions of 23 simulated
patients in CBT or psychodynamic therapy (PDT)."""),
    ("code", """import matplotlib.pyplot as plt
import numpy as np
import alliance_stats as als

sorts = als.read_qsorts(als.sample_path("pqs"), session="session_no", patient="client_id",
                        rater="judge", items="PQS_{}").data
print(f"{len(sorts)} sorts, all valid: {sorts.qsort_valid.all()}")
sorts.iloc[:3, :8]"""),
    ("md", """`read_qsorts` checks every sort against the forced distribution. A sort with the wrong pile
counts, a missing item or a pile outside 1–9 raises a `QSortError` that names the session. With
`on_invalid="flag"` the sort is kept but flagged, and flagged sorts never enter the analyses
below."""),
    ("md", """## 1. Item profile
What is most and least characteristic of the CBT sessions?"""),
    ("code", """profile = als.pqs_items(sorts, by="therapy")
items = profile.table
cbt = items[items.therapy == "CBT"]
ax = profile.plot(group="CBT")
ax.set_title("CBT sessions: PQS items ranked by mean pile")
cbt[cbt.most_characteristic][["item", "mean", "sd", "rank"]].head()"""),
    ("md", """## 2. Inter-rater reliability
For each session we correlate the two judges' sorts over the 100 items. Spearman–Brown gives the
reliability of their mean sort. For each item, ICC(2,k) measures agreement across sessions
(two-way random effects, absolute agreement; Shrout & Fleiss, 1979). The values match R's
`psych::ICC`."""),
    ("code", """rel = als.pqs_reliability(sorts, session=["patient", "session"], rater="rater")
print(rel.methods())
rel.items.describe()[["icc2", "icc2k"]].loc[["mean", "min", "max"]]"""),
    ("md", """## 3. Q-factor analysis
In Q-technique the sorts are the variables and the items are the cases. Principal components of
the correlations between sorts, rotated by varimax, group sessions that resemble each other. If you
don't give the number of factors, it is chosen by eigenvalue > 1, keeping only factors defined by
at least two sorts."""),
    ("code", """qf = als.q_factor_analysis(sorts[sorts.rater == "J1"])
print(qf.summary())
qf.loadings.groupby("defines")["therapy"].value_counts().unstack(fill_value=0)"""),
    ("md", """The factor arrays give each item's z-score on each factor. The items at either end describe the
kind of session the factor stands for:"""),
    ("code", """qf.arrays.sort_values("F1", ascending=False).head(5)[["item", "F1", "F2"]]"""),
    ("md", """## 4. Adherence to prototypes over treatment
Adherence is the correlation of a session's sort with a prototype, such as the psychodynamic and
CBT prototypes of Ablon and Jones (1998). Those prototypes are **not redistributable**: load your
licensed copy with `pd.read_csv("prototypes.csv")`, with 100 rows (items) and one column per
prototype.

For this illustration we build *empirical* stand-ins from the held-out first half of the
patients (their mean profile per therapy) and score the other half."""),
    ("code", """patients = sorted(sorts.patient.unique())
held_out = sorts[sorts.patient.isin(patients[: len(patients) // 2])]
prototypes = als.pqs_items(held_out, by="therapy").table.pivot(index="item_number", columns="therapy", values="mean")
prototypes.columns = [f"{c}_prototype" for c in prototypes.columns]
test = sorts[~sorts.patient.isin(held_out.patient)]
fit = als.pqs_prototype_fit(test, prototypes.reset_index(drop=True)).to_frame()
fit["phase"] = fit.groupby("patient")["session"].rank(method="dense").map({1: "first", 2: "middle", 3: "last"})
fit.groupby(["therapy", "phase"], sort=False)[["CBT_prototype", "PDT_prototype"]].mean().round(2)"""),
    ("code", """fig, ax = plt.subplots(figsize=(6, 3.5))
for therapy, g in fit.groupby("therapy"):
    ax.scatter(g["CBT_prototype"], g["PDT_prototype"], label=therapy, s=18)
ax.set_xlabel("adherence to the CBT prototype (r)")
ax.set_ylabel("adherence to the PDT prototype (r)")
ax.legend(frameon=False);"""),
    ("md", """## 5. Which process items go with the alliance?
We correlate each item (the judges' mean pile) with the client's WAI-SR in the same session and
control the false discovery rate (Benjamini & Hochberg). The simulation linked 12 items to the
alliance (`truth.json`), and the analysis should find most of them."""),
    ("code", """sessions = als.read_sessions(als.sample_path("sessions_csv"), patient="client_id", session="session_no",
                            instruments={"wai-sr": "WAISR_{}"}).data
res = als.pqs_alliance(sorts, sessions, alliance="wai_sr_total", session=["patient", "session"])
pa = res.table
linked = als.load_sample("truth")["pqs_linked_items"]
print(f"{pa.significant.sum()} items significant at FDR .05; planted: {linked}")
pa.head(12)"""),
    ("md", """## References
- Ablon, J. S., & Jones, E. E. (1998). How expert clinicians' prototypes of an ideal treatment
  correlate with outcome in psychodynamic and cognitive-behavioral therapy. *Psychotherapy
  Research, 8*(1), 71–83.
- Brown, S. R. (1980). *Political subjectivity: Applications of Q methodology in political science*.
  Yale University Press.
- Jones, E. E. (2000). *Therapeutic action: A guide to psychoanalytic therapy*. Jason Aronson.
- Price, P. B., & Jones, E. E. (1998). Examining the alliance using the Psychotherapy Process Q-Set.
  *Psychotherapy, 35*(3), 392–404.
- Shrout, P. E., & Fleiss, J. L. (1979). Intraclass correlations: Uses in assessing rater
  reliability. *Psychological Bulletin, 86*(2), 420–428."""),
]

NB03 = [
    ("md", """# 03 · Rupture and repair

The alliance strains and mends. Patients report tensions in a fifth to two fifths of sessions,
and repaired ruptures go with better outcome (Eubanks, Muran & Safran, 2018: 11 studies, 1,314
patients, r = .29). This notebook finds rupture–repair episodes in session-by-session WAI-SR
scores with the published rules. It then draws the standard figures and relates repair to
outcome.

The rules are written out in `help(als.detect_ruptures)`, so a methods section can quote them:

- **Stiles et al. (2004)**: a drop from one session to the next of at least **2 SD** of the
  patient's own scores, with a repair being a return to the pre-rupture level;
- **Strauss et al. (2006)**: the same rule with **1 SD**;
- **Gumz et al. (2012)**: crises can unfold over several sessions (`max_decline_sessions`), and
  `sd_source="both"` takes the stricter of the within- and between-patient SDs.

The data are **synthetic**. The simulator planted 62 ruptures (`planted_ruptures.csv`), so we can
see how well each rule finds them."""),
    ("code", """import matplotlib.pyplot as plt
import pandas as pd
import alliance_stats as als

df = als.read_sessions(als.sample_path("sessions_csv"), patient="client_id", session="session_no",
                       therapist="therapist_id", instruments={"wai-sr": "WAISR_{}", "phq-9": "PHQ9_{}"}).data
results = {m: als.detect_ruptures(df, "wai_sr_total", method=m, max_decline_sessions=3)
           for m in ("stiles2004", "strauss2006")}
results["stiles2004"].episodes.head()"""),
    ("md", """## 1. How often, and how often repaired?
Each rule is applied to the same sessions; here they are side by side. Patients with fewer than
3 scored sessions are not assessable. They are counted and named in each result
(`res.not_assessable`, `res.accounting()`), never silently dropped."""),
    ("code", """rows = []
for m, res in results.items():
    s = als.rupture_summary(res, df)
    ep = res.episodes
    rows.append({"rule": m, "episodes": len(ep), "repaired %": 100 * ep.repaired.mean(),
                 "patients with a rupture %": 100 * s.any_rupture.mean(),
                 "ruptures per 10 sessions": s.ruptures_per_10_sessions.mean(),
                 "not assessable": res.n_not_assessable})
pd.DataFrame(rows).round(1)"""),
    ("md", """### Against the planted ruptures
Because the data are simulated, we know where the ruptures were planted. Recall is the share of
planted episodes that were found. Precision is the share of detected episodes that were planted.
The rest are ordinary session-to-session noise that happens to cross the threshold. The 1-SD rule
finds more of the planted ruptures and far more noise."""),
    ("code", """planted = als.load_sample("episodes")
planted_sessions = {(p, s) for p, r, t in zip(planted.client_id, planted.rupture_session, planted.trough_session)
                    for s in range(r, t + 1)}
for m, res in results.items():
    found = set(zip(res.episodes.patient, res.episodes.rupture_session))
    recall = sum(any((p, s) in found for s in range(r, t + 1))
                 for p, r, t in zip(planted.client_id, planted.rupture_session, planted.trough_session)) / len(planted)
    precision = sum(k in planted_sessions for k in found) / len(found)
    print(f"{m}: recall {recall:.2f}, precision {precision:.2f}")"""),
    ("md", """## 2. Example patients
Each detected episode is drawn from its pre-rupture session to the rupture session: green when
repaired (a ring marks the repair session), orange when not."""),
    ("code", """ep = results["stiles2004"].episodes
examples = ep.groupby("patient").repaired.agg(["any", "all"])
ids = [examples[examples["all"]].index[0], examples[~examples["any"]].index[0]]
fig, axes = plt.subplots(1, 2, figsize=(10, 3), sharey=True)
for pid, ax in zip(ids, axes):
    als.plot_patient_series(df, "wai_sr_total", patient_id=pid, episodes=ep, ax=ax)
fig.tight_layout()"""),
    ("md", """## 3. The V: alliance aligned on the rupture session
Every episode is aligned on its rupture session (0), from three sessions before to three after.
Repaired episodes show the V of Stiles et al. (2004) and Strauss et al. (2006). Unrepaired ones
stay down. The two thresholds are shown side by side."""),
    ("code", """fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
for res, ax, title in zip(results.values(), axes, ["2 SD (Stiles et al. 2004)", "1 SD (Strauss et al. 2006)"]):
    res.plot(ax=ax, title=title)
fig.tight_layout()"""),
    ("md", """## 4. Alliance trajectories
Each patient's series is classified as stable, linear growth, linear decline, U-shaped (high–low–
high: the pattern Kivlighan & Shaughnessy, 2000, linked to better outcome) or V-shaped (a repaired
rupture). The rules are in `help(als.alliance_trajectories)`."""),
    ("code", """traj = als.alliance_trajectories(df, "wai_sr_total")
traj.counts()"""),
    ("md", """## 5. Does repair go with better outcome?
Each patient is classified as having no rupture, only repaired ruptures, or at least one unrepaired
rupture. The model regresses the last PHQ-9 on the first plus this status, with a random intercept
for therapists. The r-equivalent, t/√(t² + df), is signed so that a positive value means better
outcome. That makes it comparable with the meta-analytic r = .29."""),
    ("code", """ro = als.rupture_outcome(df, results["stiles2004"], outcome="phq9_total", therapist="therapist")
print(ro.summary())
ax = ro.plot()"""),
    ("md", """In this synthetic study, repaired ruptures were given a small benefit (2 PHQ-9 points). With
160 patients and a noisy detection rule, the estimate is imprecise. That is a useful reminder of
how much power rupture–outcome studies need.

## References
- Eubanks, C. F., Muran, J. C., & Safran, J. D. (2018). Alliance rupture repair: A meta-analysis.
  *Psychotherapy, 55*(4), 508–519.
- Gumz, A., Brähler, E., Geyer, M., & Erices, R. (2012). Crisis-repair sequences. *BMC Medical
  Research Methodology, 12*, 10.
- Kivlighan, D. M., & Shaughnessy, P. (2000). Patterns of working alliance development. *Journal of
  Counseling Psychology, 47*(3), 362–371.
- Stiles, W. B., et al. (2004). Patterns of alliance development and the rupture–repair hypothesis.
  *Journal of Counseling Psychology, 51*(1), 81–92.
- Strauss, J. L., et al. (2006). Early alliance, alliance ruptures, and symptom change. *Journal of
  Consulting and Clinical Psychology, 74*(2), 337–345."""),
]

NB04 = [
    ("md", """# 04 · Alliance sequences: types and phases

Clinicians describe alliances that change kind over a treatment. In a **magical** alliance the
client expects change without changing; a **working** alliance works on a circumscribed problem; a
**therapeutic** alliance agrees to repair the self through work on transferences; a
**structuralizing** alliance agrees to continue until the gains are permanent. If each session is
coded with one of these types, or with a treatment phase, a first-order **Markov model** describes
how patients move between them.

The codes here are **synthetic**. The simulator drew them from a known transition matrix, so we can
check that the estimates recover it."""),
    ("code", """import alliance_stats as als

df = als.read_sessions(als.sample_path("sessions_spss"), patient="client_id", session="session_no",
                       therapist="therapist_id").data
df[["patient", "session", "alliance_type", "phase"]].head()"""),
    ("md", """## 1. Transitions between alliance types
Only sessions t and t + 1 of the same patient count. A missed session breaks the sequence and
never bridges it, and the result reports how many pairs were broken."""),
    ("code", """types = als.transitions(df, "alliance_type", states=als.ALLIANCE_TYPES)
print(types.summary())"""),
    ("code", """ax = types.plot(show_counts=True)"""),
    ("md", """Each cell carries a 95% Wilson interval (`types.ci_low`, `types.ci_high`). `expected_duration`
is the expected number of consecutive sessions in a type, 1/(1 − p_ii). The stationary distribution
is where the chain would settle in a very long treatment. The G² test asks whether the next
session's type depends on the current one at all. The simulator's true matrix:"""),
    ("code", """truth = als.simulate_study(seed=20261121, n_therapists=20, patients_per_therapist=8, max_sessions=20,
                           min_sessions=6).type_transitions
(types.probabilities - truth).abs().max().max()"""),
    ("md", """## 2. Treatment phases
The same model works with any categorical state, for example treatment phases."""),
    ("code", """phases = als.transitions(df, "phase", states=als.TREATMENT_PHASES)
ax = phases.plot()
phases.expected_duration"""),
    ("md", """## 3. Lag-sequential analysis
Does one code follow another more often than chance? In rupture research the question is whether
resolution strategies follow withdrawal or confrontation markers (3RS; Eubanks, Muran & Safran,
2015). The Allison–Liker adjusted residual z compares the transitional probability P(target |
given) with the base rate of the target. Yule's Q is a chance-independent measure of association.
Here we ask whether a working alliance tends to be followed by a therapeutic one in the next
session:"""),
    ("code", """als.lag_sequential(df, "alliance_type", given=["magical", "working"], target=["working", "therapeutic"])"""),
    ("md", """## References
- Allison, P. D., & Liker, J. K. (1982). Analyzing sequential categorical data on dyadic
  interaction. *Psychological Bulletin, 91*(2), 393–403.
- Bakeman, R., & Quera, V. (2011). *Sequential analysis and observational methods for the behavioral
  sciences*. Cambridge University Press.
- Eubanks, C. F., Muran, J. C., & Safran, J. D. (2015). *Rupture Resolution Rating System (3RS):
  Manual*."""),
]

NB02 = [
    ("md", """# 02 · Does the alliance predict outcome? Within, between, lagged, both directions

The alliance–outcome correlation (r ≈ .28; Flückiger et al., 2018) mixes two questions:

* **between patients** – do patients who form better alliances *on average* improve more? (a
  *trait-like* difference, possibly because healthier patients both bond and improve more);
* **within patients** – when *this* patient's alliance is better than usual in a session, are their
  symptoms lower at the *next* session? (a *state-like*, potentially causal, effect).

Separating them needs a multilevel model with the alliance split into a person mean and the
deviations from it (Falkenström, Granström & Holmqvist, 2013; Zilcha-Mano, 2017), lagged so the
alliance precedes the symptoms it predicts. This notebook fits that model on the synthetic sample
study, in both directions, and then asks Baldwin, Wampold & Imel's (2007) question: is it the
therapist or the patient?

`als.lmm` gives the same answers as R's `lme4::lmer` with `lmerTest` (estimates, SEs, Satterthwaite
df, variance components and log-likelihood; see `tests/reference/`), in lme4's formula syntax."""),
    ("code", """import warnings
import json
import matplotlib.pyplot as plt
import alliance_stats as als

df = als.read_sessions(
    als.sample_path("sessions_csv"),
    patient="client_id", session="session_no", therapist="therapist_id",
    instruments={"wai-sr": "WAISR_{}", "phq-9": "PHQ9_{}"},
).data
df[["therapist", "patient", "session", "wai_sr_total", "phq9_total"]].head()"""),
    ("md", """## 1. Split the alliance into between- and within-patient parts
`als.decompose` adds the patient's mean (`_between`), the session's deviation from it
(`_within`) and lagged copies. A lag is taken by session **number**: if session 5 is missing, the
lag of session 6 is missing too – it is not silently taken from session 4."""),
    ("code", """d = als.decompose(df, ["wai_sr_total", "phq9_total"], by="patient", session="session", lags=[1])
d.loc[d.patient == "P0001", ["session", "wai_sr_total", "wai_sr_total_between",
                             "wai_sr_total_within", "wai_sr_total_within_lag1"]].head(6)"""),
    ("md", """## 2. The lagged model, written by hand
PHQ-9 at session *t* on the within-patient alliance at *t−1*, the patient's mean alliance and the
session number, with a random intercept per patient. The formula is exactly what you would give
`lmer` in R. The first session of every patient has no *t−1* and is left out – and counted."""),
    ("code", """m = als.lmm(
    "phq9_total ~ wai_sr_total_within_lag1 + wai_sr_total_between + session + (1 | patient)",
    data=d,
)
print(m.summary())"""),
    ("md", """`m.to_apa()` gives the table for the paper (export with `.to_markdown()`, `.to_latex()` or
`.to_html()`); `m.random` the variance components; `m.icc()` and `m.r2()` the variance shares
and Nakagawa's R²."""),
    ("code", """m.to_apa()"""),
    ("code", """m.r2()"""),
    ("md", """## 3. The same model in one call, with therapists
`als.alliance_outcome` builds this model for you. With `therapist=` the patients are nested in
therapists, and the between-patient alliance is split further into the therapist's mean and the
patient's deviation from it. `prior_outcome=True` (the default) adds the previous session's
symptoms (within-patient), as in Falkenström et al. (2013). The `effects` table has each level's
effect, unstandardized and standardized (b × SD of the predictor part / SD of the outcome)."""),
    ("code", """res = als.alliance_outcome(
    df, outcome="phq9_total", alliance="wai_sr_total",
    patient="patient", session="session", therapist="therapist",
    covariates=["session"],
)
res.effects[["level", "estimate", "se", "df", "p", "ci_low", "ci_high", "std_estimate"]]"""),
    ("code", """ax = res.plot()
ax.set_title("Alliance effects on next-session PHQ-9")
plt.show()"""),
    ("md", """The data are simulated, so we know the truth: a within-patient effect of −1.5 PHQ-9 points per
point of alliance above the patient's own level."""),
    ("code", """truth = json.loads(als.sample_path("truth").read_text())
truth["within_effect"], round(res.effects.loc[0, "estimate"], 2)"""),
    ("md", """The warning above (`DynamicPanelBiasWarning`) is about `prior_outcome=True`. A random intercept and
the patient's own previous symptoms in one model are biased in series this short (dynamic-panel or
*Nickell* bias; Falkenström et al., 2017). Each patient's mean contains their later sessions, so
the centred lagged outcome shares errors with the outcome it predicts. Its coefficient is pulled
down. When symptoms also feed back into the next alliance, the alliance effect is pulled towards
zero as well. The warning gives the number of sessions per patient. The ML-SEM dynamic panel model
(`als.dynamic_panel`) and the RI-CLPM (`als.ri_clpm`) avoid the bias. Notebook 09 shows the
problem on simulated data and fits both models to this study."""),
    ("md", """## 4. Do patients differ in how much the alliance matters? A random slope
`random_slope=True` lets the within-patient effect vary between patients. `als.compare` runs the
likelihood-ratio test. The two models share their fixed effects, so the REML fits are compared
as they are; when fixed effects differ, `compare` refits with ML and says so."""),
    ("code", """ri = als.alliance_outcome(df, outcome="phq9_total", alliance="wai_sr_total", covariates=["session"])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    rs = als.alliance_outcome(df, outcome="phq9_total", alliance="wai_sr_total", covariates=["session"], random_slope=True)
print([str(w.message)[:90] for w in caught])
als.compare(ri.model, rs.model)  # a ModelComparison: .table, .note, .to_apa(), .methods()"""),
    ("md", """## 5. The other direction: do symptoms predict the next alliance?
Falkenström et al. (2013) found effects in both directions. `direction="outcome->alliance"` swaps
the roles: the alliance at *t* on the within-patient PHQ-9 at *t−1*."""),
    ("code", """rev = als.alliance_outcome(df, outcome="phq9_total", alliance="wai_sr_total",
                           covariates=["session"], direction="outcome->alliance")
rev.effects[["level", "term", "estimate", "ci_low", "ci_high", "p"]]"""),
    ("md", """In this simulation symptoms do not feed back into the alliance, and the within-patient
estimate is close to zero, as it should be. The between-patient association is there, because
patients with better alliances improve more on average.

## 6. Therapist or patient? (Baldwin, Wampold & Imel, 2007)
Per patient, the mean alliance is split into the therapist's mean and the patient's deviation from
it. Each is related to the final PHQ-9 score, adjusting for the first, with a random intercept per
therapist. Baldwin et al. found that therapists' alliance differences predicted outcome, and
patients' differences within a therapist did not. Nissen-Lie, Falkenström et al. (2020) report
the opposite pattern in a large primary-care sample, so this is an open question, not a
settled one."""),
    ("code", """te = als.therapist_effects(df, alliance="wai_sr_total", outcome="phq9_total",
                          patient="patient", therapist="therapist", session="session")
te.effects[["level", "estimate", "se", "df", "p"]]"""),
    ("md", """How much do therapists differ in the alliances they form? A three-level model of the alliance
itself, with nesting written as in lme4, and a caterpillar plot of the therapist effects."""),
    ("code", """m3 = als.lmm("wai_sr_total ~ session + (1 | therapist/patient)", data=df)
m3.icc()"""),
    ("code", """ax = als.plot_therapist_effects(m3)
plt.show()"""),
    ("md", """## What to take away
* Centre the alliance within patients before you interpret its effect as a within-patient one;
  a raw session-level alliance coefficient blends both levels.
* Lag it, so that the alliance precedes the symptoms it predicts, and look at both directions.
* Nesting matters: write `(1 | therapist/patient)`. A model that drops a level, as statsmodels'
  `MixedLM` can without a word, moves its variance into the other levels.

**R users:** `als.lmm(formula, data)` ≈ `lmerTest::lmer(formula, data)`; `reml=False` ≈
`REML = FALSE`; `als.compare(a, b)` ≈ `anova(a, b)`.

### References
Baldwin, S. A., Wampold, B. E., & Imel, Z. E. (2007). *J Consult Clin Psychol, 75*, 842–852.
Bates, D., Mächler, M., Bolker, B., & Walker, S. (2015). Fitting linear mixed-effects models using lme4. *J Stat Softw, 67*(1).
Falkenström, F., Granström, F., & Holmqvist, R. (2013). *J Couns Psychol, 60*, 317–328.
Falkenström, F., Finkel, S., Sandell, R., Rubel, J. A., & Holmqvist, R. (2017). *J Consult Clin Psychol, 85*, 537–549.
Flückiger, C., Del Re, A. C., Wampold, B. E., & Horvath, A. O. (2018). *Psychotherapy, 55*, 316–340.
Kuznetsova, A., Brockhoff, P. B., & Christensen, R. H. B. (2017). lmerTest. *J Stat Softw, 82*(13).
Zilcha-Mano, S. (2017). Is the alliance really therapeutic? *Am Psychol, 72*, 311–325."""),
]


NB08 = [
    ("md", """# 08 · Planning a study: power for the within-patient alliance effect

How many therapists and patients do you need to detect a *within-patient* alliance effect, the
session-to-session link from a better-than-usual alliance to fewer symptoms at the next session
(Falkenström et al., 2013)? No formula answers this for a lagged three-level model with dropout
and missed sessions, so we **simulate**. We generate many studies with a known effect, analyse
each one exactly as we would analyse the real study, and count how often the effect is detected
(Arend & Schäfer, 2019; Kumle, Võ & Draschkow, 2021).

`als.power_analysis` does this with `als.simulate_study` and `als.alliance_outcome`. Besides
power it reports the **bias** of the estimate and the **coverage** of its 95% CI, so you also
learn whether the analysis can be trusted at that sample size."""),
    ("code", """import matplotlib.pyplot as plt
import alliance_stats as als"""),
    ("md", """## 1. The effect to plan for
One published within-patient estimate is −1.27 CORE-OM points at the next session per point of
alliance (Falkenström et al.'s Kenyan sample of 345 patients). The CORE-OM and the PHQ-9 use
different scales, and your population will differ, so we plan for a cautious −0.75 PHQ-9 points
per WAI-SR point, half the simulator's default of −1.5. We look at 12 sessions per patient and vary the numbers of therapists and of
patients per therapist.

Each design cell needs a few hundred simulated studies for a precise power estimate: the
Monte-Carlo standard error of a power of .80 over 500 studies is .018. To keep this notebook
quick we use 40 per cell, and the CIs in the table show how imprecise that is. Use
`n_sims=500` for a real plan, and `n_jobs=-1` to use every core."""),
    ("code", """res = als.power_analysis(
    n_therapists=[5, 10, 20],
    patients_per_therapist=[4, 8],
    sessions=12,
    effect=-0.75,
    n_sims=40,
    seed=2026,
    n_jobs=2,
    progress=False,
)
res.table[["n_therapists", "patients_per_therapist", "power", "power_ci_low", "power_ci_high",
           "bias", "coverage", "share_singular"]]"""),
    ("code", """ax = res.plot(x="n_therapists", hue="patients_per_therapist")
ax.set_title("Power for a within-patient effect of -0.75 (12 sessions)")
plt.show()"""),
    ("md", """## 2. Reading the table
* **power**: the share of simulated studies with p < .05 and an estimate in the true direction.
  Its 95% interval is the Monte-Carlo (Wilson) interval.
* **bias** and **coverage**: by default the simulator plants alliance ruptures. An unrepaired
  rupture lowers the alliance *and* slows improvement for the rest of treatment, and PHQ-9 scores
  cannot go below 0. Both pull the estimate a little towards zero, and real data have the same
  problems. Pass `rupture_rate=0` to see power without them.
* **share_singular**: the share of studies where the therapist variance of the symptoms was
  estimated at zero. It is common with few therapists and does not invalidate the within-patient
  test.

The within-patient effect is estimated from sessions *within* patients, so the total number of
patient-sessions drives its power more than the number of therapists does. A between-patient or
therapist-level effect would need many more therapists.

## 3. On a cluster
The same call runs on a Dask cluster through joblib. Install the `[distributed]` extra, connect
a client and select the backend:

```python
import joblib
from dask.distributed import Client
client = Client("tcp://scheduler:8786")        # or Client(LocalCluster()) to try it locally
with joblib.parallel_config(backend="dask"):
    res = als.power_analysis(..., n_sims=2000, seed=1, n_jobs=-1)
```

The same seed gives the same result whatever the backend or number of workers, because every
study has its own random stream spawned from the seed.

### References
Arend, M. G., & Schäfer, T. (2019). Statistical power in two-level models: A tutorial based on Monte Carlo simulation. *Psychological Methods, 24*, 1–19.
Falkenström, F., Granström, F., & Holmqvist, R. (2013). *J Couns Psychol, 60*, 317–328.
Kumle, L., Võ, M. L.-H., & Draschkow, D. (2021). Estimating power in (generalized) linear mixed models: An open introduction and tutorial in R. *Behavior Research Methods, 53*, 2528–2543."""),
]


NB07 = [
    ("md", """# 07 · Reproducing the field's standard figures

Every standard figure of an alliance paper, built from the synthetic sample study in one go. Each
figure is one call on a tidy table with column names. Each function returns the matplotlib Axes
(or a seaborn grid for faceted figures), so you can finish the figure with ordinary matplotlib.
`als.set_theme("paper")` gives journal font sizes and a colour-blind-safe palette (Okabe & Ito).
`als.save_figure` writes PDF, PNG and SVG at a journal column width, and `als.export_table`
writes any APA table to Word, LaTeX, HTML, Markdown or CSV.

The figures are modelled on published ones:

| figure | function | after |
|---|---|---|
| session-by-session trajectories | `plot_trajectories`, `trajectories_grid` | Stiles et al. (2004), Kivlighan & Shaughnessy (2000) |
| reliable and clinically significant change | `plot_reliable_change` | Jacobson & Truax (1991) |
| within- vs between-patient effects | `plot_within_between` | Falkenström et al. (2013, 2017) |
| therapist caterpillar plot | `plot_therapist_effects` | Baldwin, Wampold & Imel (2007) |
| rupture V, repaired vs unrepaired | `plot_rupture_profile`, `plot_patient_series` | Stiles et al. (2004), Strauss et al. (2006) |
| transitions between alliance types | `plot_transitions` | Bakeman & Quera (2011) |
| PQS profile | `plot_pqs_profile` | Jones (2000), Ablon & Jones (1998) |
| forest and funnel plots | `forest_plot`, `funnel_plot` | Flückiger et al. (2018) |"""),
    ("code", """import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import alliance_stats as als

als.set_theme("paper")
figdir = Path(tempfile.mkdtemp())   # use e.g. Path("figures") for your paper
df = als.read_sessions(als.sample_path("sessions_csv"), patient="client_id", session="session_no",
                       therapist="therapist_id", instruments={"wai-sr": "WAISR_{}", "phq-9": "PHQ9_{}"}).data
df[["patient", "therapist", "session", "wai_sr_total", "phq9_total"]].head()"""),
    ("md", """## 1. Trajectories
One thin line per patient and the session mean with its 95% band. The mean is drawn only where at
least five patients were seen, so that a few long treatments do not make a ragged tail. Below, the
PHQ-9 trajectories of patients who improved reliably are set against those who did not (`hue`).
The next figure, `trajectories_grid`, draws one panel per trajectory pattern (`col`) and returns a
seaborn FacetGrid; `plot_trajectories` draws into one Axes."""),
    ("code", """ends = (df.dropna(subset=["phq9_total"]).sort_values("session")
          .groupby("patient").agg(pre=("phq9_total", "first"), post=("phq9_total", "last")))
rc = als.reliable_change(ends, pre="pre", post="post", reliability=0.89, cutoff=10, higher_is_better=False)
ends["reliable improvement"] = rc.table["category"].isin(["recovered", "improved"]).map({True: "yes", False: "no"})
d = df.merge(ends[["reliable improvement"]], left_on="patient", right_index=True)

fig, axes = plt.subplots(1, 2, figsize=(7.2, 2.8))
als.plot_trajectories(df, "wai_sr_total", ax=axes[0], max_patients=60)
als.plot_trajectories(d, "phq9_total", hue="reliable improvement", ax=axes[1], max_patients=60)
als.save_figure(fig, figdir / "trajectories", width="double")
plt.show()"""),
    ("code", """patterns = als.alliance_trajectories(df, "wai_sr_total").table
grid = als.trajectories_grid(df.merge(patterns[["patient", "pattern"]].dropna(), on="patient"),
                             "wai_sr_total", col="pattern", min_n=3)
plt.show()"""),
    ("md", """## 2. Reliable and clinically significant change
First against last PHQ-9 for each patient. The grey band is the region without reliable change
(±1.96 · S_diff around the diagonal), and the dashed lines mark the clinical cut-off of 10. A
patient has *recovered* when the improvement is reliable and crosses the cut-off."""),
    ("code", """ax = rc.plot()   # drawn from the result above, nothing is refitted
plt.show()"""),
    ("md", """## 3. Within- and between-patient alliance effects, and therapists
The lagged model of notebook 02 separates the within-patient effect (a better alliance than usual
for this patient predicts fewer symptoms at the next session) from the between-patient and
therapist-level effects. The caterpillar plot shows the therapist random intercepts of the
alliance with 95% conditional intervals."""),
    ("code", """ao = als.alliance_outcome(df, outcome="phq9_total", alliance="wai_sr_total", therapist="therapist",
                          covariates=["session"])
m3 = als.lmm("wai_sr_total ~ session + (1 | therapist/patient)", data=df)
fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.2))
ao.plot(ax=axes[0])
als.plot_therapist_effects(m3, ax=axes[1])
fig.tight_layout()
plt.show()
ao.to_apa()"""),
    ("md", """## 4. Rupture–repair: the V, and one patient's series
Episodes are aligned on the rupture session. The 1-SD and 2-SD thresholds are shown side by side
because published rupture rates depend heavily on this choice."""),
    ("code", """fig, axes = plt.subplots(1, 3, figsize=(10, 3), gridspec_kw={"width_ratios": [1, 1, 1.4]})
for ax, k in zip(axes[:2], (1.0, 2.0)):
    res = als.detect_ruptures(df, "wai_sr_total", threshold=k, max_decline_sessions=3)
    res.plot(ax=ax, title=f"{k:g}-SD rule: {len(res.episodes)} episodes")
ep = res.episodes
pid = ep["patient"].value_counts().index[0]
als.plot_patient_series(df, "wai_sr_total", patient_id=pid, episodes=ep, ax=axes[2])
fig.tight_layout()
plt.show()"""),
    ("md", """## 5. Transitions between alliance types
Row = type at one session, column = type at the next scored session."""),
    ("code", """tr = als.transitions(df, "alliance_type", states=als.ALLIANCE_TYPES)
ax = als.plot_transitions(tr)
plt.show()
tr.to_apa()"""),
    ("md", """## 6. The PQS profile
The 100 PQS items ranked by their mean pile in the CBT sessions, with the five most and least
characteristic items numbered."""),
    ("code", """sorts = als.read_qsorts(als.sample_path("pqs"), session="session_no", patient="client_id",
                        rater="judge", items="PQS_{}").data
ax = als.pqs_items(sorts, by="therapy").plot(group="CBT")
plt.show()"""),
    ("md", """## 7. Forest and funnel plots
The synthetic table of study correlations is calibrated to Flückiger et al. (2018). Effects are
averaged within studies first (Borenstein et al. 2009)."""),
    ("code", """per_study = als.aggregate_effects(als.load_sample("meta"), by="study", r="r", n="n", r_between=0.5)
res = als.meta_analysis(per_study, r="r", n="n", study="study")
ax = als.forest_plot(res, group="rater")
plt.show()
ax = als.funnel_plot(res, contours=True, trim_and_fill=True)
plt.show()"""),
    ("md", """## 8. Saving figures and tables for the journal
`save_figure` writes each format at a single (89 mm) or double (183 mm) column width.
`export_table` chooses the format from the file extension, and a `.docx` table can go straight
into the manuscript."""),
    ("code", """files = als.save_figure(ax, figdir / "funnel", formats=("pdf", "png"), width="single", dpi=300)
for ext in (".docx", ".tex", ".md"):
    als.export_table(ao.to_apa(), figdir / f"table2_alliance_outcome{ext}",
                     caption="Table 2. Lagged within- and between-patient alliance effects on PHQ-9",
                     note="REML; Satterthwaite df; 95% CIs.")
sorted(p.name for p in figdir.iterdir())"""),
    ("md", """The same figures and tables, with methods paragraphs, come out of one command:
`alliance-stats demo` for the sample study, or `alliance-stats analyze STUDY.toml` for your data.

### References
Ablon, J. S., & Jones, E. E. (1998). *Psychotherapy Research, 8*, 71–83.
Bakeman, R., & Quera, V. (2011). *Sequential analysis and observational methods for the behavioral sciences*. Cambridge University Press.
Baldwin, S. A., Wampold, B. E., & Imel, Z. E. (2007). *J Consult Clin Psychol, 75*, 842–852.
Borenstein, M., Hedges, L. V., Higgins, J. P. T., & Rothstein, H. R. (2009). *Introduction to meta-analysis*. Wiley.
Falkenström, F., Granström, F., & Holmqvist, R. (2013). *J Couns Psychol, 60*, 317–328.
Falkenström, F., Finkel, S., Sandell, R., Rubel, J. A., & Holmqvist, R. (2017). *J Consult Clin Psychol, 85*, 537–549.
Flückiger, C., Del Re, A. C., Wampold, B. E., & Horvath, A. O. (2018). *Psychotherapy, 55*, 316–340.
Jacobson, N. S., & Truax, P. (1991). *J Consult Clin Psychol, 59*, 12–19.
Jones, E. E. (2000). *Therapeutic action: A guide to psychoanalytic therapy*. Jason Aronson.
Kivlighan, D. M., & Shaughnessy, P. (2000). *J Couns Psychol, 47*, 362–371.
Okabe, M., & Ito, K. (2008). *Color universal design (CUD): How to make figures and presentations that are friendly to colorblind people*.
Stiles, W. B., et al. (2004). *J Couns Psychol, 51*, 81–92.
Strauss, J. L., et al. (2006). *J Consult Clin Psychol, 74*, 337–345."""),
]

NB09 = [
    ("md", """# 09 · Alliance and symptoms over sessions, without dynamic-panel bias

Falkenström, Granström and Holmqvist (2013) found that the alliance predicts the next session's
symptoms, and that symptoms predict the next alliance. Notebook 02 fitted the usual model for
this: a multilevel model with a random intercept per patient, the patient-centred alliance at the
previous session and the patient-centred previous symptoms. With series of 5 to 20 sessions, that
model is biased (Nickell, 1981; Falkenström et al., 2017). This notebook shows the bias on
simulated data, then fits two models that avoid it:

* the **ML-SEM dynamic panel model** of Allison, Williams and Moral-Benito (2017), as Stata's
  `xtdpdml` and R's `dpm()` fit it: `als.dynamic_panel`;
* the **random-intercept cross-lagged panel model** (RI-CLPM) of Hamaker, Kuiper and Grasman
  (2015): `als.ri_clpm`.

Both are structural equation models fitted by full-information maximum likelihood (FIML). A patient
with missing sessions keeps the sessions they have. Both give the same estimates, standard errors
and fit statistics as R's **lavaan** (`tests/reference/`), and the wages example of Allison et al.
reproduces their published results."""),
    ("code", """import warnings
import json
import numpy as np
import pandas as pd
import matplotlib.pyplot as plt
import alliance_stats as als"""),
    ("md", """## 1. The problem, on simulated data
`als.simulate_study` can let symptoms feed back into the next alliance (`feedback`, in WAI-SR points
per PHQ-9 point above the patient's expected course) and let symptoms carry over from one session to
the next (`outcome_ar`). Below are 12 studies of 200 patients with 8 sessions each. The true
within-patient alliance effect is −1.5 PHQ-9 points per WAI-SR point, the carry-over is .5, and
the feedback is −0.05. Patients with a weak first alliance drop out more often. Each study is
analysed twice: with `alliance_outcome` (random intercept, lagged outcome) and with
`dynamic_panel`."""),
    ("code", """def one_study(seed):
    s = als.simulate_study(n_therapists=20, patients_per_therapist=10, min_sessions=8, max_sessions=8, seed=seed,
                           within_effect=-1.5, outcome_ar=0.5, feedback=-0.05, dropout_alliance=1.0,
                           improvement_sd=0.0, rupture_rate=0.0, missed_session_rate=0.0, missing_item_rate=0.0)
    d = s.sessions[["patient", "session"]].assign(
        alliance=als.score(s.sessions, "WAI-SR", items="wai{}")["wai_sr_total"],
        phq=als.score(s.sessions, "PHQ-9", items="phq{}")["phq9_total"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", als.DynamicPanelBiasWarning)
        ri = als.alliance_outcome(d, outcome="phq", alliance="alliance").model.fixed.set_index("term")["estimate"]
    dp = als.dynamic_panel(d, x="alliance", y="phq", se="robust").effects.set_index("path")["estimate"]
    return {"random intercept: alliance": ri["alliance_within_lag1"], "random intercept: lagged PHQ-9": ri["phq_within_lag1"],
            "dynamic panel: alliance": dp["x->y"], "dynamic panel: lagged PHQ-9": dp["y->y"]}

sims = pd.DataFrame([one_study(100 + i) for i in range(12)])
summary = pd.DataFrame({"truth": [-1.5, 0.5, -1.5, 0.5], "mean estimate": sims.mean(), "SD across studies": sims.std()})
summary.round(2)"""),
    ("code", """fig, ax = plt.subplots(figsize=(6, 2.8))
for i, col in enumerate(["random intercept: alliance", "dynamic panel: alliance"]):
    ax.plot(sims[col], np.full(len(sims), i) + np.linspace(-0.15, 0.15, len(sims)), "o", alpha=0.7)
ax.axvline(-1.5, color="k", ls="--", lw=1)
ax.text(-1.5, 1.45, "truth", ha="center")
ax.set_yticks([0, 1])
ax.set_yticklabels(["random intercept,\\nlagged outcome", "dynamic panel\\n(ML-SEM)"])
ax.set_ylim(-0.5, 1.6)
ax.set_xlabel("within-patient alliance effect on next-session PHQ-9")
plt.tight_layout()
plt.show()"""),
    ("md", """The random-intercept model puts the alliance effect about 0.6 points too close to zero, study
after study. The cause is not chance. The patient's mean alliance and mean symptoms include the
later sessions, and the feedback ties those to today's symptom errors. The dynamic panel model is on
target. In the package's recovery test (200 such studies), the truth lies inside the dynamic panel
model's 95% CI in 97% of studies for the alliance effect and 95.5% for the carry-over. The
random-intercept model's CI holds it in 14%.

`alliance_outcome` says so when you fit it with the lagged outcome:"""),
    ("code", """d = als.simulate_study(n_therapists=10, patients_per_therapist=10, min_sessions=6, max_sessions=6, seed=1).sessions
d = d.join(als.score(d, "WAI-SR", items="wai{}")).join(als.score(d, "PHQ-9", items="phq{}"))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    res = als.alliance_outcome(d, outcome="phq9_total", alliance="wai_sr_total")
print([str(w.message) for w in caught if issubclass(w.category, als.DynamicPanelBiasWarning)][0])
print(res.estimator)"""),
    ("md", """## 2. The dynamic panel model on the sample study
The sample study is the synthetic study of notebooks 01–07: 160 patients, 6 to 20 sessions, some
dropout and missed sessions. Its truth: the within-patient alliance effect is −1.5, with no
feedback and no carry-over of symptoms (`sample_data/README.md`)."""),
    ("code", """df = als.read_sessions(
    als.sample_path("sessions_csv"),
    patient="client_id", session="session_no", therapist="therapist_id",
    instruments={"wai-sr": "WAISR_{}", "phq-9": "PHQ9_{}"},
).data
truth = json.loads(als.sample_path("truth").read_text())
df.groupby("session").size().to_frame("patients").T"""),
    ("md", """The model has a column for each variable at each session. At session 19 only 19 patients
remain, too few to estimate the covariances that the model leaves free. `dynamic_panel` refuses
and says how many sessions the data support:"""),
    ("code", """try:
    als.dynamic_panel(df, x="wai_sr_total", y="phq9_total")
except als.ModelSpecError as err:
    print(err)"""),
    ("md", """We use the first 12 sessions (at least 73 patients each). The rows after session 12 are counted
as left out. `se="robust"` gives Huber–White standard errors, because WAI-SR item means
with a ceiling are far from normal.

The model: PHQ-9 at session *t* on the alliance and PHQ-9 at *t*−1, with a latent patient effect
(loadings fixed at 1) that may correlate with every alliance score and with the first PHQ-9. This
is the *fixed-effects* assumption: stable patient differences may go with the alliance. The alliance
is *predetermined*: it may correlate with the PHQ-9 errors of earlier sessions. So symptoms may
feed back into the next alliance without biasing the alliance effect."""),
    ("code", """dp = als.dynamic_panel(df, x="wai_sr_total", y="phq9_total", max_session=12, se="robust")
print(dp.summary())"""),
    ("code", """print("true within-patient effect:", truth["within_effect"])
dp.effects[["path", "label", "estimate", "se", "ci_low", "ci_high", "p"]].round(3)"""),
    ("md", """The fit is not perfect (the chi-square test rejects, RMSEA ≈ .08). In this simulated study
each patient improves along their own curve, and neither model has patient-specific slopes.
`dp.fit` holds the fit statistics and `dp.parameters` every parameter, lavaan-style."""),
    ("md", """## 3. The other direction: do symptoms predict the next alliance?
Swap `x` and `y`: the alliance at *t* on PHQ-9 and the alliance at *t*−1, with PHQ-9 predetermined.
`reverse=True` fits both directions in one model instead. Then the alliance gets an equation
(and a patient effect) of its own, the two patient effects correlate, and so do the two errors at the
same session. That is more efficient, but it assumes the alliance follows that equation. The two
one-direction models assume less."""),
    ("code", """back = als.dynamic_panel(df, x="phq9_total", y="wai_sr_total", max_session=12, se="robust")
both = als.dynamic_panel(df, x="wai_sr_total", y="phq9_total", max_session=12, se="robust", reverse=True)
pd.concat({"PHQ-9 -> alliance (predetermined)": back.effects.set_index("path").loc[["x->y"], ["estimate", "ci_low", "ci_high"]],
           "both directions jointly": both.effects.set_index("path")[["estimate", "ci_low", "ci_high"]]}).round(3)"""),
    ("md", """There is no feedback in the sample study, and the PHQ-9 → alliance effect is close to zero
in both models, as it should be."""),
    ("md", """## 4. The random-intercept cross-lagged panel model
The RI-CLPM splits each score into a session mean, a patient's stable level (the random intercept)
and a within-patient deviation. The four lagged effects act among the deviations. By default they are
equal across sessions (`constrain=False` frees them). The correlation of the random intercepts is the
between-patient association."""),
    ("code", """rc = als.ri_clpm(df, x="wai_sr_total", y="phq9_total", max_session=12, se="robust")
print(rc.summary())"""),
    ("code", """rc.between.round(3)"""),
    ("md", """Both models find the alliance effect near the truth of −1.5. The models differ in what they assume
about the stable part. The dynamic panel model lets the patient effect correlate freely with the
alliance (fixed effects). The RI-CLPM models the stable parts of both variables as random
intercepts. Its SRMR is high here (.14), because the simulated patients improve along their own
curves. With real data, fit both and compare (Falkenström et al., 2017)."""),
    ("md", """## 5. Path diagrams
`plot()` draws the lagged effects with their estimates. Effects significant at .05 are in bold, on
blue arrows."""),
    ("code", """fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
both.plot(ax=axes[0])
rc.plot(ax=axes[1])
plt.tight_layout()
plt.show()"""),
    ("md", """## 6. For the paper
`methods()` drafts a methods paragraph (model, estimator, sample, fit, the main effect), and
`to_apa()` gives the table."""),
    ("code", """print(both.methods())"""),
    ("code", """both.to_apa()"""),
    ("md", """## What to take away
* Do not combine a random (or fixed) patient intercept with the lagged outcome in short series.
  `alliance_outcome` warns when you do.
* `als.dynamic_panel` (ML-SEM, fixed effects, predetermined alliance) and `als.ri_clpm` estimate the
  session-to-session effects without that bias, in both directions. They use every session a patient
  has (FIML).
* Use `max_session` when late sessions have few patients, and `se="robust"` for scores far from
  normal.

**R users:** `als.dynamic_panel(d, x="union", y="wks", covariates=["lwage", "ed"], error_inv=True)` ≈
`dpm(wks ~ pre(lag(union)) + lag(lwage) | ed, data, error.inv = TRUE, information = "observed")`
(a constant covariate enters as `| ed`, a varying one as `lag()`). `se="robust"` ≈ lavaan's
`se = "robust.huber.white"`. The RI-CLPM is Hamaker et al.'s lavaan syntax with `missing = "fiml"`.

### References
Allison, P. D., Williams, R., & Moral-Benito, E. (2017). Maximum likelihood for cross-lagged panel models with fixed effects. *Socius, 3*, 1–17.
Falkenström, F., Granström, F., & Holmqvist, R. (2013). *J Couns Psychol, 60*, 317–328.
Falkenström, F., Finkel, S., Sandell, R., Rubel, J. A., & Holmqvist, R. (2017). *J Consult Clin Psychol, 85*, 537–549.
Hamaker, E. L., Kuiper, R. M., & Grasman, R. P. P. P. (2015). A critique of the cross-lagged panel model. *Psychological Methods, 20*, 102–116.
Nickell, S. (1981). Biases in dynamic models with fixed effects. *Econometrica, 49*, 1417–1426.
Rosseel, Y. (2012). lavaan: An R package for structural equation modeling. *J Stat Softw, 48*(2).
Williams, R., Allison, P. D., & Moral-Benito, E. (2018). Linear dynamic panel-data estimation using maximum likelihood and structural equation modeling. *The Stata Journal, 18*, 293–326."""),
]


NB10 = [
    ("md", """# 10 · Stay or leave, and whose alliance? Dropout and client–therapist agreement

Two questions about the alliance that go beyond "does it predict outcome?":

1. **Do patients with a weak early alliance leave treatment early?** Sharf, Primavera and Diener
   (2010) pooled 11 studies (N = 1,301) and found d = .55 between completers and dropouts.
   `als.early_alliance_dropout` relates the early alliance to dropout and to the session-by-session
   risk of leaving.
2. **Does it matter whether client and therapist see the alliance the same way?** Polynomial
   regression with response surface analysis (`als.response_surface`) and the actor–partner
   interdependence model (`als.apim`) use both ratings of the same sessions.

Every analysis runs on a **simulated** study in which we planted the effect. So you can see whether
the method finds it before you trust it with your own data."""),
    ("code", """import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import alliance_stats as als"""),
    ("md", """## 1. A study in which a weak early alliance drives dropout
`dropout_alliance=2.0` plants the effect: the log-odds of dropping out rise by 2 per WAI-SR point
by which the first session's (true) alliance lies below the mean of 3.8. At the mean, 20% drop out
(`dropout_rate`). Dropouts attend 30–80% of their planned sessions."""),
    ("code", """study = als.simulate_study(seed=10, n_therapists=30, patients_per_therapist=10, dropout_rate=0.2,
                           dropout_alliance=2.0, rupture_rate=0)
s = study.sessions
d = s[["therapist", "patient", "session"]].join(als.score(s, "wai-sr", items="wai{}"))
d["dropout"] = d["patient"].map(study.patients.set_index("patient")["dropout"]).astype(int)
d.head()"""),
    ("md", """Your data need the same shape: one row per attended session, the alliance score, and a 0/1
dropout flag that is the same in every row of a patient. How you define dropout (unilateral ending
before the agreed end, fewer than *n* sessions) is your decision. State it in the paper.

## 2. Early alliance and dropout
The early alliance is the mean of sessions 1–3 (`sessions=` changes that). With `therapist=` the
logistic model gets a therapist random intercept (`als.glmm`, the equivalent of `lme4::glmer`).
Patients who left before session 3, or who lack a rating there, cannot be analysed. They are
counted, not dropped silently."""),
    ("code", """res = als.early_alliance_dropout(d, alliance="wai_sr_total", dropout="dropout", therapist="therapist")
print(res.summary())"""),
    ("code", """res.excluded_counts"""),
    ("md", """How to read it:

* `estimate` of `early_mean` is the change in the log-odds of dropout per WAI-SR point. We planted
  −2 (for the first session's true alliance). The interval covers it.
* `or` is the odds ratio per scale point, `or_sd` per standard deviation of early alliance.
* `d` converts the per-SD odds ratio to a standardised difference (d = ln(OR) √3/π; Chinn, 2000),
  so you can compare it with Sharf et al.'s d = .55. It is an approximation.
* The slope model asks whether a *falling* early alliance adds anything beyond its level. We
  planted dropout on the first session alone, so for the same mean a rising slope (a lower first
  session) goes with somewhat more dropout here.
* The hazard model uses every session from session 3 on: does the alliance at a session predict
  leaving after it?

The singular-fit warning says the therapists do not differ in dropout beyond their patients'
alliance. That is true in this simulation. Report the therapist variance as zero."""),
    ("code", """res.to_apa()"""),
    ("md", """## 3. Predicted probabilities and survival curves
The left panel shows the model's probability of dropout over early alliance, with its 95% CI. The
dashed line is the planted curve. The ticks at 0 and 1 are the patients. The right panel shows
the share of patients still in treatment, by tertile of early alliance: the hazard model (lines)
and the life table (dashed steps). The model's curves are smooth because it assumes the risk of
leaving changes with log(session). In this simulation, patients with a weak alliance leave in a
burst of early sessions, which the life table shows and the model smooths over."""),
    ("code", """fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
res.plot(ax=axes[0])
a = res.predicted["early_mean"]
axes[0].plot(a, 1 / (1 + np.exp(-(np.log(0.2 / 0.8) + 2.0 * (3.8 - a)))), color="black", ls="--", lw=1, label="planted")
axes[0].legend(frameon=False)
res.plot_survival(ax=axes[1])
plt.tight_layout()
plt.show()"""),
    ("code", """res.predicted.iloc[::12].round(3)"""),
    ("md", """## 4. Client and therapist rate the same sessions
`therapist_alliance_r=0.3` adds the therapist's WAI-SR ratings (`wai_t1`–`wai_t12`) of every
session. Their true values correlate .3 with the client's. Therapists rate 0.3 points lower on
average (`therapist_alliance_offset`). After each session both rate the session (`session_eval_client`,
`session_eval_therapist`; think of session depth). `agreement_surface` plants how the two ratings
shape each rater's evaluation, in the terms of response surface analysis:

* **a1 = 0.5**: along the line of agreement (client = therapist), higher alliance, better session;
* **a3 = 0.2**: when they disagree, it is better if the client's rating is the higher one;
* **a4 = −0.6**: the more they disagree, in either direction, the worse the session.

x and y are the two WAI-SR means centred on the scale midpoint 3."""),
    ("code", """ag = als.simulate_study(seed=11, n_therapists=20, patients_per_therapist=8, therapist_alliance_r=0.3,
                        therapist_alliance_offset=-0.3, agreement_surface={"a1": 0.5, "a3": 0.2, "a4": -0.6})
s = ag.sessions
pairs = s[["therapist", "patient", "session", "session_eval_client", "session_eval_therapist"]].assign(
    client_wai=als.score(s, "wai-sr", items="wai{}")["wai_sr_total"],
    therapist_wai=als.score(s, "wai-sr", items="wai_t{}")["wai_sr_total"],
)
pairs[["client_wai", "therapist_wai"]].describe().round(2)"""),
    ("md", """## 5. The response surface
The polynomial z = b0 + b1x + b2y + b3x² + b4xy + b5y² is fitted with a random intercept per
patient, because each patient contributes many sessions (multilevel RSA; Kivlighan et al., 2017).
Both ratings must be on the same scale, centred on the same value. `scale_midpoint=3` says where
the middle of the WAI-SR scale is. For score columns named as `als.score` writes them (e.g.
`wai_sr_total`), the midpoint is found from the instrument key."""),
    ("code", """rs = als.response_surface(pairs, x="client_wai", y="therapist_wai", outcome="session_eval_client",
                          patient="patient", scale_midpoint=3, n_boot=0)
truth = ag.truth["agreement_surface"]
surf = rs.table.set_index("parameter").loc[["a1", "a2", "a3", "a4", "a5"], ["estimate", "se", "ci_low", "ci_high", "p"]]
surf.insert(0, "planted", [truth[k] for k in surf.index])
surf.round(3)"""),
    ("md", """All five planted values lie inside their intervals, and a4 is clearly negative: disagreement
costs, whoever rates higher. The stationary point and the principal axes (`rs.table`) are ratios
of coefficients and are unstable. `n_boot=1000` adds percentile bootstrap intervals that resample
whole patients (a refit per resample, so allow a minute or more).

In the contour plot, the solid white line is agreement (x = y) and the dashed line is disagreement
through the midpoint. The dots are the sessions. Most lie below the line of agreement, because the
therapists rate lower."""),
    ("code", """fig, ax = plt.subplots(figsize=(5.5, 4.8))
rs.plot(ax=ax)
plt.show()"""),
    ("code", """print(rs.methods())"""),
    ("md", """## 6. The actor–partner interdependence model
The APIM asks: does each person's *own* rating (actor effect) and the *other's* rating (partner
effect) go with their own outcome, for clients and for therapists? It needs one row per person
and dyad, with the partner's score beside the own (`als.partner_scores`). `als.apim` treats each
dyad as one unit, so we average each patient's sessions first: one client–therapist dyad per patient.

The APIM is linear. When the planted surface is flat (a2 = a4 = a5 = 0), its actor effect is
b1 = (a1 + a3)/2 and its partner effect b2 = (a1 − a3)/2, for both roles. We plant a1 = 0.6 and
a3 = 0.2 in a second study: actor 0.4, partner 0.2."""),
    ("code", """def dyads(pairs):
    m = pairs.groupby("patient")[["client_wai", "therapist_wai", "session_eval_client", "session_eval_therapist"]].mean()
    long = pd.concat([
        pd.DataFrame({"patient": m.index, "rater": "client", "wai": m["client_wai"], "session_eval": m["session_eval_client"]}),
        pd.DataFrame({"patient": m.index, "rater": "therapist", "wai": m["therapist_wai"], "session_eval": m["session_eval_therapist"]}),
    ], ignore_index=True)
    return als.partner_scores(long, dyad="patient", role="rater", columns="wai")


flat = als.simulate_study(seed=12, n_therapists=20, patients_per_therapist=8, therapist_alliance_r=0.3,
                          therapist_alliance_offset=-0.3, agreement_surface={"a1": 0.6, "a3": 0.2})
fs = flat.sessions
flat_pairs = fs[["patient", "session_eval_client", "session_eval_therapist"]].assign(
    client_wai=als.score(fs, "wai-sr", items="wai{}")["wai_sr_total"],
    therapist_wai=als.score(fs, "wai-sr", items="wai_t{}")["wai_sr_total"],
)
ap = als.apim(dyads(flat_pairs), actor="wai", partner="wai_partner", outcome="session_eval", dyad="patient", role="rater")
ap.effects.round(3)"""),
    ("code", """fig, ax = plt.subplots(figsize=(6, 3.6))
ap.plot(ax=ax)
plt.show()"""),
    ("md", """The intervals of all four effects cover the planted values (actor 0.4, partner 0.2). The
`tests` table checks whether the effects differ between clients and therapists, and `variance` holds
the residual SDs and their correlation within the dyad.

Now fit the APIM to the study with the disagreement penalty:"""),
    ("code", """als.apim(dyads(pairs), actor="wai", partner="wai_partner", outcome="session_eval", dyad="patient",
         role="rater").effects.round(3)"""),
    ("md", """The APIM has no term for disagreement. Its effects are straight-line summaries of a curved
surface. Here the therapists rate lower, and so the penalty tilts them. For clients, the
therapist's rating now seems to matter more than their own; for therapists, the client's rating
seems not to matter at all. When your question is about (dis)agreement, fit the
surface. The APIM answers "whose rating matters for whom?"

## 7. Are session ratings reliable enough to tell sessions apart?
Within-patient analyses need a scale that separates one session from the next, not only one
patient from another. `als.multilevel_reliability` gives Shrout and Lane's (2012) coefficients,
as `psych::multilevel.reliability` does: `RkF` between patients (all sessions), `R1R` for a single
session, and `Rc`, the reliability of change within patients. It fits crossed variance components
to every item response, which takes a while, so we use 25 patients' first 6 sessions. The
singular-fit warnings mean that some components are zero here, such as shifts from one session
number to the next shared by all patients: the simulation has none."""),
    ("code", """sub = s[(s["patient"] <= 25) & (s["session"] <= 6)]
client = als.multilevel_reliability(sub, items=[f"wai{i}" for i in range(1, 13)])
therapist = als.multilevel_reliability(sub, items=[f"wai_t{i}" for i in range(1, 13)])
print(client.methods())
pd.DataFrame({"client WAI-SR": client.coefficients, "therapist WAI-SR": therapist.coefficients}).round(3)"""),
    ("md", """## What to take away
* `als.early_alliance_dropout(data, alliance=, dropout=, therapist=)` gives the odds ratio per point
  and per SD, a d to set beside Sharf et al.'s .55, predicted probabilities and survival curves. It
  counts the patients it cannot use.
* With both ratings of the same sessions, `als.response_surface(..., patient=)` tests agreement:
  a4 < 0 means disagreement goes with a worse outcome. Centre both ratings on one value.
* `als.apim` splits each person's outcome into their own rating's effect and the partner's. It is
  linear, so it cannot show a disagreement penalty.
* For your own study, simulate one like it first (`als.simulate_study` with your design and the
  effect you expect), and check that the analysis finds what you planted.

**R users:** the dropout models are `glmer(dropout ~ early_mean + (1 | therapist), family = binomial)`;
the surface is `lmer(z ~ x + y + I(x^2) + I(x*y) + I(y^2) + (1 | patient))` with the a's as linear
contrasts (as in the RSA package); the APIM is `nlme::gls(outcome ~ 0 + role + role:actor + role:partner,
correlation = corSymm(form = ~1 | dyad), weights = varIdent(form = ~1 | role))`.

### References
Chinn, S. (2000). A simple method for converting an odds ratio to effect size for use in meta-analysis. *Statistics in Medicine, 19*, 3127–3131.
Edwards, J. R. (2002). Alternatives to difference scores: Polynomial regression analysis and response surface methodology. In F. Drasgow & N. Schmitt (Eds.), *Measuring and analyzing behavior in organizations* (pp. 350–400). Jossey-Bass.
Kenny, D. A., Kashy, D. A., & Cook, W. L. (2006). *Dyadic data analysis*. Guilford.
Kivlighan, D. M., Marmarosh, C. L., & Hilsenroth, M. J. (2014). *J Couns Psychol, 61*, 15–23.
Marmarosh, C. L., & Kivlighan, D. M. (2012). *J Couns Psychol, 59*, 352–367.
Sharf, J., Primavera, L. H., & Diener, M. J. (2010). Dropout and therapeutic alliance: A meta-analysis of adult individual psychotherapy. *Psychotherapy, 47*, 637–645.
Shrout, P. E., & Lane, S. P. (2012). Psychometrics. In M. R. Mehl & T. S. Conner (Eds.), *Handbook of research methods for studying daily life* (pp. 302–320). Guilford."""),
]


NOTEBOOKS = {
    "01": ("01_load_and_score.ipynb", NB01),
    "02": ("02_alliance_outcome.ipynb", NB02),
    "03": ("03_rupture_repair.ipynb", NB03),
    "04": ("04_alliance_sequences.ipynb", NB04),
    "05": ("05_meta_analysis.ipynb", NB05),
    "06": ("06_pqs.ipynb", NB06),
    "07": ("07_reproduce_standard_figures.ipynb", NB07),
    "08": ("08_power_analysis.ipynb", NB08),
    "09": ("09_alliance_dynamics.ipynb", NB09),
    "10": ("10_stay_or_leave_and_agreement.ipynb", NB10),
}


if __name__ == "__main__":
    import sys

    # python notebooks/_build.py          -> every notebook
    # python notebooks/_build.py 09 02    -> only those
    for key in sys.argv[1:] or NOTEBOOKS:
        write(*NOTEBOOKS[key])
