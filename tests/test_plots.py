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
    q = als.read_qsorts(als.sample_path("pqs"), session="session_no", patient="client_id", rater="judge", items="PQS_{}")
    items = als.pqs_items(q[q.therapy == "CBT"])
    ax = als.plot_pqs_profile(items, n_label=3)
    pts = ax.collections[1].get_offsets()
    assert len(pts) == 100
    assert (np.diff(pts[:, 1]) <= 0).all()  # ranked from most to least characteristic
    top = items.sort_values("mean", ascending=False)["item_number"].head(3).astype(int).astype(str).tolist()
    assert [t.get_text() for t in ax.texts][:3] == top and len(ax.texts) == 6
    assert ax.get_ylim() == (1, 9)
    with pytest.raises(als.AllianceStatsError, match="several groups"):
        als.plot_pqs_profile(als.pqs_items(q, by="therapy"))


def test_patient_series_and_rupture_profile():
    import pandas as pd

    d = pd.DataFrame({"patient": ["a"] * 8 + ["b"] * 8, "session": list(range(1, 9)) * 2,
                      "w": [4, 4, 4, 2, 4, 4, 4, 4] + [4, 4, 4, 4, 2, 2, 2, 2]})
    ep = als.detect_ruptures(d, "w", threshold=1.5)
    ax = als.plot_patient_series(d, "w", patient_id="a", episodes=ep)
    assert len(ax.lines) == 2  # the series and one episode segment
    assert ax.lines[1].get_xdata().tolist() == [3, 4]
    assert len(ax.collections) == 1  # the repair ring
    prof = als.rupture_profile(d, "w", ep, window=3)
    a = prof[prof.patient == "a"].set_index("offset")["score"]
    assert a.to_dict() == {-3: 4.0, -2: 4.0, -1: 4.0, 0: 2.0, 1: 4.0, 2: 4.0, 3: 4.0}
    ax2 = als.plot_rupture_profile(d, "w", ep)
    labels = [t.get_text() for t in ax2.get_legend().get_texts()]
    assert labels == ["repaired (n = 1)", "unrepaired (n = 1)"]
    assert ax2.lines[0].get_ydata()[3] == 2.0 and ax2.lines[1].get_ydata()[3] == 2.0
