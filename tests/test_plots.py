import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.patches import Polygon

import alliance_stats as als


@pytest.fixture(scope="module")
def small_meta():
    m = als.load_sample("meta")
    agg = als.aggregate_effects(m, by="study", r="r", n="n")
    return als.meta_analysis(agg.head(14), r="r", n="n", study="study")


def _texts(ax):
    return [t.get_text() for t in ax.texts]


def test_forest_plot_draws_every_study(small_meta):
    ax = als.forest_plot(small_meta)
    texts = _texts(ax)
    labels = small_meta.table["label"].tolist()
    assert all(lab in texts for lab in labels)
    # one CI line per study, one square marker per study, one diamond
    sq = [c for c in ax.collections if len(c.get_offsets()) == 1]
    assert len(sq) == 14
    diamonds = [p for p in ax.patches if isinstance(p, Polygon)]
    assert len(diamonds) == 1
    xs = diamonds[0].get_xy()[:, 0]
    assert xs.min() == pytest.approx(small_meta.ci[0]) and xs.max() == pytest.approx(small_meta.ci[1])
    # the text column shows r [CI] of each study and the pooled estimate
    row = small_meta.table.iloc[0]
    assert f"{row['r']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]" in texts
    assert f"{small_meta.estimate:.2f} [{small_meta.ci[0]:.2f}, {small_meta.ci[1]:.2f}]" in texts
    # bigger weight, bigger square
    sizes = np.array([c.get_sizes()[0] for c in sq])
    assert np.argmax(sizes) == int(np.argmax(small_meta.table["weight"].to_numpy()))
    assert ax.get_xlabel() == "Correlation (r)"


def test_forest_plot_subgroups(small_meta):
    ax = small_meta.forest_plot(group="rater")
    texts = _texts(ax)
    groups = sorted(als.aggregate_effects(als.load_sample("meta"), by="study", r="r", n="n").head(14)["rater"].unique())
    assert [g for g in groups if g in texts] == groups
    subtotals = [t for t in texts if t.startswith("Subtotal")]
    assert len(subtotals) == len(groups)
    assert len([p for p in ax.patches if isinstance(p, Polygon)]) == len(groups) + 1


def test_forest_plot_into_given_axes(small_meta):
    fig, axes = plt.subplots(1, 2)
    out = small_meta.forest_plot(ax=axes[1])
    assert out is axes[1] and len(axes[0].texts) == 0


def test_funnel_plot(small_meta):
    with pytest.warns(als.DependentEffectsWarning):  # every effect as its own point, as metafor's funnel()
        full = als.meta_analysis(als.load_sample("meta"), r="r", n="n", study="study")
    ax = als.funnel_plot(full)
    pts = ax.collections[0].get_offsets()
    assert len(pts) == full.k
    np.testing.assert_allclose(pts[:, 0], full.table["yi"])
    lo, hi = ax.get_ylim()
    assert lo > hi == 0  # standard error axis inverted
    ax2 = full.funnel_plot(contours=True, trim_and_fill=True)
    tf = full.trim_and_fill()
    legend = [t.get_text() for t in ax2.get_legend().get_texts()]
    assert f"filled (k0 = {tf.k0})" in legend and "p > 0.10" in legend and "0.05 < p < 0.10" in legend


def test_plots_refuse_meta_regression():
    res = als.meta_analysis(als.load_sample("meta"), r="r", n="n", moderators="year")
    with pytest.raises(als.AllianceStatsError, match="intercept-only"):
        res.forest_plot()
    with pytest.raises(als.AllianceStatsError, match="intercept-only"):
        res.funnel_plot()


def test_pqs_profile():
    q = als.read_qsorts(als.sample_path("pqs"), session="session_no", patient="client_id", rater="judge", items="PQS_{}").data
    items = als.pqs_items(q[q.therapy == "CBT"]).table
    ax = als.plot_pqs_profile(items, n_label=3)
    pts = ax.collections[1].get_offsets()
    assert len(pts) == 100
    assert (np.diff(pts[:, 1]) <= 0).all()  # ranked from most to least characteristic
    top = items.sort_values("mean", ascending=False)["item_number"].head(3).astype(int).astype(str).tolist()
    assert [t.get_text() for t in ax.texts][:3] == top and len(ax.texts) == 6
    assert ax.get_ylim() == (1, 9)
    with pytest.raises(als.AllianceStatsError, match="several groups"):
        als.plot_pqs_profile(als.pqs_items(q, by="therapy").table)


def test_patient_series_and_rupture_profile():
    import pandas as pd

    d = pd.DataFrame({"patient": ["a"] * 8 + ["b"] * 8, "session": list(range(1, 9)) * 2,
                      "w": [4, 4, 4, 2, 4, 4, 4, 4] + [4, 4, 4, 4, 2, 2, 2, 2]})
    ep = als.detect_ruptures(d, "w", threshold=1.5)
    ax = als.plot_patient_series(d, "w", patient_id="a", episodes=ep)
    assert len(ax.lines) == 2  # the series and one episode segment
    assert ax.lines[1].get_xdata().tolist() == [3, 4]
    assert len(ax.collections) == 1  # the repair ring
    prof = ep.profile(window=3)
    a = prof[prof.patient == "a"].set_index("offset")["score"]
    assert a.to_dict() == {-3: 4.0, -2: 4.0, -1: 4.0, 0: 2.0, 1: 4.0, 2: 4.0, 3: 4.0}
    ax2 = ep.plot()
    assert ax2.get_xlabel() == "Sessions from the rupture session" and ax2.get_ylabel().startswith("Mean")
    ax3 = als.plot_rupture_profile(prof)  # the profile table draws the same figure
    assert ax3.lines[0].get_ydata().tolist() == ax2.lines[0].get_ydata().tolist()
    labels = [t.get_text() for t in ax2.get_legend().get_texts()]
    assert labels == ["repaired (n = 1)", "unrepaired (n = 1)"]
    assert ax2.lines[0].get_ydata()[3] == 2.0 and ax2.lines[1].get_ydata()[3] == 2.0


# ---------------------------------------------------------------------------------------
# trajectories, reliable change, theme, saving

import pandas as pd  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402


def _traj_data():
    # 4 patients x 6 sessions, known means: patient k scores k + 0.1 * session
    rows = [{"patient": f"P{k}", "session": s, "score": k + 0.1 * s, "grp": "a" if k < 2 else "b"}
            for k in range(4) for s in range(1, 7)]
    return pd.DataFrame(rows)


def test_plot_trajectories_lines_mean_and_band():
    d = _traj_data()
    ax = als.plot_trajectories(d, "score", min_n=2)
    lines = ax.get_lines()
    assert len(lines) == 4 + 1  # one thin line per patient, one mean line
    mean = lines[-1]
    np.testing.assert_allclose(mean.get_xdata(), np.arange(1, 7))
    np.testing.assert_allclose(mean.get_ydata(), 1.5 + 0.1 * np.arange(1, 7))
    band = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(band) == 1
    # the band is mean +/- t(.975, 3) * SD / 2 with SD of (0, 1, 2, 3) = 1.291
    half = 3.182446305284263 * np.std([0, 1, 2, 3], ddof=1) / 2
    ys = band[0].get_paths()[0].vertices[:, 1]
    assert ys.max() == pytest.approx(1.5 + 0.6 + half, rel=1e-6) and ys.min() == pytest.approx(1.5 + 0.1 - half, rel=1e-6)
    assert ax.get_xlabel() == "Session" and ax.get_ylabel() == "score"


def test_plot_trajectories_hue_min_n_and_subset():
    d = _traj_data()
    d = d[~((d.patient == "P3") & (d.session > 4))]  # P3 stops after session 4
    ax = als.plot_trajectories(d, "score", hue="grp", min_n=2)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["a (n = 2)", "b (n = 2)"]
    means = [ln for ln in ax.get_lines() if ln.get_linewidth() > 2]
    assert len(means) == 2
    assert len(means[1].get_xdata()) == 4  # group b has fewer than 2 patients after session 4
    ax2 = als.plot_trajectories(d, "score", max_patients=2, min_n=1)
    assert len(ax2.get_lines()) == 2 + 1


def test_plot_trajectories_facets_and_errors():
    d = _traj_data()
    grid = als.trajectories_grid(d, "score", col="grp", min_n=1)
    assert [a.get_title() for a in grid.axes.flat] == ["a (n = 2)", "b (n = 2)"]
    assert len(grid.axes.flat[0].get_lines()) == 2 + 1
    np.testing.assert_allclose(grid.axes.flat[1].get_lines()[-1].get_ydata(), 2.5 + 0.1 * np.arange(1, 7))  # P2, P3
    assert grid.axes.flat[0].get_xlabel() == "Session"
    with pytest.raises(als.ArgumentError, match=r"for one panel per value of col='grp' use als.trajectories_grid\(data, 'score'"):
        als.plot_trajectories(d, "score", col="grp")
    with pytest.raises(als.AllianceStatsError, match="constant within a patient.*P0"):
        bad = d.copy()
        bad.loc[0, "grp"] = "b"
        als.trajectories_grid(bad, "score", col="grp")
    bad = d.copy()
    bad.loc[0, "grp"] = "b"
    with pytest.raises(als.AllianceStatsError, match="constant within a patient.*P0"):
        als.plot_trajectories(bad, "score", hue="grp")
    with pytest.raises(als.ColumnError, match="'nope'"):
        als.plot_trajectories(d, "nope")
    gap = d.copy()
    gap.loc[gap.patient == "P3", "grp"] = None
    with pytest.raises(als.AllianceStatsError, match=r"'grp' is missing for patient\(s\) \['P3'\]"):
        als.plot_trajectories(gap, "score", hue="grp")
    with pytest.raises(als.AllianceStatsError, match="no patient has both 'pre' and 'post'"):
        als.reliable_change(pd.DataFrame({"pre": [1.0, np.nan], "post": [np.nan, 2.0]}), pre="pre", post="post", reliability=0.8, sd=1).plot()


def test_plot_reliable_change_categories_band_and_cutoff():
    # SD 5, r .84: S_diff = 2.828, change needed 5.544 (as the hand-worked reliable_change test)
    d = pd.DataFrame({"pre": [20, 20, 20, 10, 11, 15], "post": [10, 16, 27, 13, 2, np.nan]})
    rc = als.reliable_change(d, pre="pre", post="post", reliability=0.84, sd=5, cutoff=12, higher_is_better=False)
    ax = rc.plot()
    assert als.plot_reliable_change(rc).get_legend() is not None
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "recovered (1)" in labels and "improved (1)" in labels and "unchanged (2)" in labels and "deteriorated (1)" in labels
    pts = {c.get_label(): c.get_offsets() for c in ax.collections if c.get_label().split(" ")[0] in als.plots.RCI_COLORS}
    np.testing.assert_allclose(pts["recovered (1)"], [[20, 10]])
    np.testing.assert_allclose(pts["improved (1)"], [[11, 2]])
    band = [c for c in ax.collections if isinstance(c, PolyCollection)][0].get_paths()[0].vertices
    lo, hi = ax.get_xlim()
    # the band runs along the diagonal at +/- the change needed
    assert band[:, 1].max() == pytest.approx(hi + 1.96 * 2 * np.sqrt(2))
    assert ax.get_xlim() == ax.get_ylim()
    cut = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert {tuple(ln.get_ydata()) for ln in cut} >= {(12, 12)}
    assert "1 patient(s) without both scores" in ax.get_title()


def test_set_theme_and_save_figure(tmp_path):
    import matplotlib as mpl

    try:
        als.set_theme("paper")
        assert mpl.rcParams["font.size"] == 8 and mpl.colors.to_hex(mpl.rcParams["axes.prop_cycle"].by_key()["color"][0]) == "#0072b2"
        als.set_theme("notebook")
        assert mpl.rcParams["font.size"] == 11
        with pytest.raises(als.OptionError, match="context='poster' is not a valid value; allowed: 'paper', 'notebook'"):
            als.set_theme("poster")
    finally:
        mpl.rcdefaults()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([0, 1], [0, 1])
    paths = als.save_figure(ax, tmp_path / "fig.png", width="single", dpi=100)
    assert [p.suffix for p in paths] == [".pdf", ".png", ".svg"] and all(p.is_file() for p in paths)
    assert fig.get_size_inches()[1] == pytest.approx(89 / 25.4 * 4 / 6)  # the aspect ratio of the 6 x 4 in figure
    from PIL import Image

    w, h = Image.open(tmp_path / "fig.png").size
    assert w == pytest.approx(89 / 25.4 * 100, abs=1)  # the saved file is 89 mm wide (labels included)
    assert als.save_figure(fig, tmp_path / "d", formats=("png",), width="double")[0].name == "d.png"
    assert Image.open(tmp_path / "d.png").size[0] == pytest.approx(183 / 25.4 * 300, abs=2)
    with pytest.raises(als.OptionError, match="width='triple' is not a valid value; allowed: 'single', 'double'"):
        als.save_figure(fig, tmp_path / "x", width="triple")
    with pytest.raises(als.OptionError, match="width=-2 is not a valid value"):
        als.save_figure(fig, tmp_path / "x", width=-2)
    with pytest.raises(als.OptionError, match="formats='gif' is not a valid value; allowed: 'pdf', 'png'"):
        als.save_figure(fig, tmp_path / "x", formats=("gif",))
    with pytest.raises(als.ArgumentError, match="takes a matplotlib Figure"):
        als.save_figure([1, 2], tmp_path / "x")


# ---------------------------------------------------------------------------------------
# the plots API: plots only draw (no model module imported), ax keyword-only everywhere


def test_no_plot_module_imports_the_models():
    import ast
    from pathlib import Path

    pkg = Path(als.plots.__file__).parent
    offending = []
    for f in sorted(pkg.glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                mod = "." * node.level + (node.module or "")
                names = [a.name for a in node.names]
                if (mod.startswith("..models") or mod.startswith("alliance_stats.models")
                        or (mod == ".." and "models" in names)):
                    offending.append((f.name, node.lineno, mod))
            elif isinstance(node, ast.Import):
                offending += [(f.name, node.lineno, a.name) for a in node.names if a.name.startswith("alliance_stats.models")]
    assert len(list(pkg.glob("*.py"))) >= 8 and offending == []


def test_every_public_plot_function_takes_ax_by_keyword_only():
    import inspect

    funcs = {n: getattr(als.plots, n) for n in als.plots.__all__ if callable(getattr(als.plots, n))}
    with_ax = {n: inspect.signature(f).parameters["ax"] for n, f in funcs.items() if "ax" in inspect.signature(f).parameters}
    assert {"forest_plot", "funnel_plot", "plot_pqs_profile", "plot_q_loadings", "plot_transitions", "plot_trajectories",
            "plot_within_between", "plot_therapist_effects", "plot_rupture_outcome"} <= set(with_ax)
    assert {n: p.kind for n, p in with_ax.items() if p.kind is not inspect.Parameter.KEYWORD_ONLY or p.default is not None} == {}
    # figure-level functions are named *_grid and take no ax
    assert "ax" not in inspect.signature(als.trajectories_grid).parameters and "trajectories_grid" in als.__all__
    with pytest.raises(TypeError):
        als.forest_plot(als.meta_analysis(r=[0.1, 0.2, 0.3], n=[50, 60, 70]), plt.gca())  # ax is not positional


def test_plot_q_loadings():
    q = als.read_qsorts(als.sample_path("pqs"), session="session_id", patient="client_id", rater="judge", items="PQS_{}").data
    res = als.q_factor_analysis(q[q.rater == "J1"])
    ax = res.plot()
    img = ax.images[0].get_array()
    np.testing.assert_allclose(img, res.loadings[res.variance["factor"]].to_numpy())
    framed = [p for p in ax.patches if p.get_width() == 1]
    assert len(framed) == res.loadings["defines"].notna().sum()
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"{f}\n({p:.0f}%)" for f, p in zip(res.variance["factor"],
                                                                                             res.variance["variance_pct"])]
    assert ax.get_ylabel() == "Sort (patient, session, rater)"
    with pytest.raises(als.ArgumentError, match="q_factor_analysis"):
        als.plot_q_loadings(pd.DataFrame())


def test_forest_plot_subgroup_diamonds_are_the_subgroup_models(small_meta):
    sg = small_meta.subgroups("rater").set_index("group")
    ax = small_meta.forest_plot(group=small_meta.data["rater"].to_numpy())  # labels work as the column does
    texts = _texts(ax)
    for g, row in sg.iterrows():
        if row["k"] >= 2:
            assert f"Subtotal {g} (k = {int(row['k'])})" in texts
            assert f"{row['estimate']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]" in texts
    diamonds = [p.get_xy()[:, 0] for p in ax.patches if isinstance(p, Polygon)]
    spans = sorted((x.min(), x.max()) for x in diamonds[:-1])
    expected = sorted((r["ci_low"], r["ci_high"]) for _, r in sg.iterrows() if r["k"] >= 2)
    np.testing.assert_allclose(spans, expected, rtol=1e-12)
