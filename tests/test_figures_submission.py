"""Figures as journals accept them: TrueType fonts in PDF, text in SVG, 300 dpi PNG at column
width, whole-number session ticks, readable axis labels and no text drawn over other text."""

import itertools
from types import SimpleNamespace

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text
from PIL import Image

import alliance_stats as als
from alliance_stats._output import ResultsFolder


# ---------------------------------------------------------------------------------------
# every standard figure of alliance_stats.plots, built from small data


@pytest.fixture(scope="module")
def sessions():
    return als.read_sessions(
        als.sample_path("sessions_csv"), patient="client_id", session="session_no", therapist="therapist_id",
        instruments={"wai-sr": "WAISR_{}", "phq-9": "PHQ9_{}"},
    ).data


@pytest.fixture(scope="module")
def meta():
    m = als.load_sample("meta")
    agg = als.aggregate_effects(m, by="study", r="r", n="n")
    return als.meta_analysis(agg.head(14), r="r", n="n", study="study"), als.meta_analysis(m, r="r", n="n", study="study")


def _within_between():
    # the demo's outcome -> alliance effects (small numbers: the tick labels -0.150 -0.125 ... ran together)
    eff = pd.DataFrame({"level": ["within-patient", "between-patient", "therapist"], "term": ["w", "b", "t"],
                        "estimate": [0.0006, -0.036, -0.083], "ci_low": [-0.007, -0.054, -0.155],
                        "ci_high": [0.008, -0.018, -0.007]})
    return SimpleNamespace(effects=eff, response="wai_sr_total")


def _pqs_items():
    q = als.read_qsorts(als.sample_path("pqs"), session="session_no", patient="client_id", rater="judge", items="PQS_{}").data
    return als.pqs_items(q[q.therapy == "CBT"]).table


def standard_figures(sessions, meta):
    """(name, figure or grid, session axes) for each standard figure."""
    small, full = meta
    s = sessions[sessions.patient.isin(sessions.patient.unique()[:40])]
    ep = als.detect_ruptures(s, "wai_sr_total")
    pid = ep.episodes["patient"].iloc[0]
    last = s.sort_values("session").groupby("patient").agg(pre=("phq9_total", "first"), post=("phq9_total", "last"))
    last = last.rename(columns={"pre": "phq9_total_pre", "post": "phq9_total_post"})
    tr = als.transitions(s, "alliance_type", states=als.ALLIANCE_TYPES)
    m = als.lmm("wai_sr_total ~ 1 + (1 | therapist)", sessions)
    figs = [
        ("forest", als.forest_plot(small), []),
        ("forest_groups", small.forest_plot(group="rater"), []),
        ("funnel", als.funnel_plot(full, contours=True, trim_and_fill=True), []),
        ("pqs_profile", als.plot_pqs_profile(_pqs_items()), []),
        ("transitions", als.plot_transitions(tr), []),
        ("patient_series", als.plot_patient_series(s, "wai_sr_total", patient_id=pid, episodes=ep), ["x"]),
        ("rupture_profile", als.plot_rupture_profile(ep), ["x"]),
        ("within_between", als.plot_within_between(_within_between()), []),
        ("caterpillar", als.plot_therapist_effects(m), []),
        ("trajectories", als.plot_trajectories(s, "phq9_total", max_patients=20), ["x"]),
        ("trajectories_hue", als.plot_trajectories(s.assign(grp=s.patient.map(lambda p: hash(p) % 2)), "wai_sr_total",
                                                   hue="grp", min_n=2), ["x"]),
        ("reliable_change", als.plot_reliable_change(als.reliable_change(
            last, pre="phq9_total_pre", post="phq9_total_post", reliability=0.84, cutoff=10, higher_is_better=False)), []),
    ]
    return figs


def _figure(obj):
    f = getattr(obj, "figure", obj)
    return getattr(f, "figure", f)


def _text_boxes(fig):
    """(label, bbox) of every piece of text the renderer draws: tick labels, axis labels, titles,
    texts and annotations, legend entries."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    out = []

    def add(t, what):
        if t.get_visible() and t.get_text().strip():  # the text's own box (an annotation's would add its arrow)
            out.append((f"{what}: {t.get_text()!r}", Text.get_window_extent(t, r)))

    for ax in fig.axes:
        for axis, name in ((ax.xaxis, "xtick"), (ax.yaxis, "ytick")):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks():
                if lo - 1e-9 <= tick.get_loc() <= hi + 1e-9:
                    add(tick.label1, name)
            add(axis.label, f"{name[0]}label")
        for t in (ax.title, ax._left_title, ax._right_title) if hasattr(ax, "_left_title") else (ax.title,):
            add(t, "title")
        for t in ax.texts:
            add(t, "text")
        leg = ax.get_legend()
        if leg is not None:
            for t in leg.get_texts():
                add(t, "legend")
            add(leg.get_title(), "legend title")
    for t in fig.texts:
        add(t, "figure text")
    return out


def overlaps(fig, tol: float = 0.5):
    """Pairs of text boxes that overlap by more than ``tol`` pixels in both directions."""
    boxes = _text_boxes(fig)
    bad = []
    for (a, ba), (b, bb) in itertools.combinations(boxes, 2):
        dx = min(ba.x1, bb.x1) - max(ba.x0, bb.x0)
        dy = min(ba.y1, bb.y1) - max(ba.y0, bb.y0)
        if dx > tol and dy > tol:
            bad.append((a, b))
    return bad


def test_the_overlap_check_finds_overlapping_labels():
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.text(0.5, 0.5, "one label")
    ax.text(0.52, 0.5, "another")
    ax.set_xticks([0.0, 0.01], ["-0.150", "-0.125"])
    found = overlaps(fig)
    assert ("text: 'one label'", "text: 'another'") in found
    assert ("xtick: '-0.150'", "xtick: '-0.125'") in found


def test_no_text_overlaps_on_any_standard_figure(sessions, meta, tmp_path):
    for name, obj, _ in standard_figures(sessions, meta):
        fig = _figure(obj)
        assert overlaps(fig) == [], name
        # and at the journal width the figure is saved at
        als.save_figure(obj, tmp_path / name, formats=("png",), width="double" if name.startswith("forest") else "single")
        assert overlaps(fig) == [], f"{name} at column width"
        plt.close(fig)


def test_session_axes_tick_at_whole_numbers(sessions, meta):
    for name, obj, session_axes in standard_figures(sessions, meta):
        fig = _figure(obj)
        fig.canvas.draw()
        for ax in fig.axes:
            for which in session_axes:
                axis = ax.xaxis if which == "x" else ax.yaxis
                locs = axis.get_majorticklocs()
                assert len(locs) >= 3 and np.allclose(locs, np.round(locs)), (name, locs)
        plt.close(fig)
    grid = als.trajectories_grid(sessions, "wai_sr_total", col="therapy", max_patients=10)
    for ax in grid.axes.flat:
        grid.figure.canvas.draw()
        locs = ax.xaxis.get_majorticklocs()
        assert np.allclose(locs, np.round(locs))


def test_axis_labels_name_the_instrument_not_the_column(sessions):
    ax = als.plot_trajectories(sessions, "phq9_total", max_patients=5)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Session", "PHQ-9 total")
    d = pd.DataFrame({"phq9_total_pre": [20.0, 12, 9], "phq9_total_post": [8.0, 13, 3]})
    ax = als.reliable_change(d, pre="phq9_total_pre", post="phq9_total_post", reliability=0.84, sd=5).plot()
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("PHQ-9 total (pre)", "PHQ-9 total (post)")
    ax = als.plot_within_between(_within_between())
    assert ax.get_xlabel() == "Effect on WAI-SR total (95% CI)"
    assert als.score_label("calpas_t_patient_commitment") == "CALPAS-T patient commitment"
    assert als.score_label("wai36_client_bond") == "WAI-36 (client) bond"
    assert als.score_label("my_own_score") == "my_own_score"


def test_within_between_ticks_are_few_and_round():
    ax = als.plot_within_between(_within_between())
    ax.figure.canvas.draw()
    locs = ax.get_xticks()
    lo, hi = ax.get_xlim()
    shown = locs[(locs >= lo) & (locs <= hi)]
    assert len(shown) <= 6
    np.testing.assert_allclose(np.diff(shown), 0.05)


# ---------------------------------------------------------------------------------------
# files


def _pdf_fonts_ok(path):
    data = path.read_bytes()
    return b"/Subtype /Type3" not in data and b"/FontFile2" in data


def test_save_figure_embeds_truetype_fonts_whatever_the_rcparams(tmp_path):
    assert mpl.rcParams["pdf.fonttype"] == 3  # matplotlib's default: Type 3, what journals reject
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([1, 2, 3], [2, 1, 3])
    ax.set_xlabel("Session")
    plain = tmp_path / "plain.pdf"
    fig.savefig(plain)
    assert b"/Subtype /Type3" in plain.read_bytes()  # the check can fail
    pdf, png, svg = als.save_figure(ax, tmp_path / "fig", formats=("pdf", "png", "svg"))
    assert _pdf_fonts_ok(pdf)
    text = svg.read_text()
    assert "<text" in text and ">Session</text>" in text  # text kept as text
    assert mpl.rcParams["pdf.fonttype"] == 3  # the session's settings are left alone
    dpi = Image.open(png).info["dpi"]
    assert dpi == pytest.approx((300, 300), abs=0.01)
    # the saved file is one journal column wide: 89 mm at 300 dpi
    assert Image.open(png).size[0] == pytest.approx(89 / 25.4 * 300, abs=2)


def test_save_figure_widths_and_line_art(tmp_path):
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.plot([0, 1], [0, 1])
    ax.set_ylabel("a long label on the left " * 2)
    (png,) = als.save_figure(fig, tmp_path / "d", formats=("png",), width="double", line_art=True)
    img = Image.open(png)
    assert img.info["dpi"] == pytest.approx((600, 600), abs=0.01)
    assert img.size[0] == pytest.approx(183 / 25.4 * 600, abs=3)
    (png,) = als.save_figure(fig, tmp_path / "w", formats=("png",), width=5, dpi=100)
    assert Image.open(png).size[0] == pytest.approx(500, abs=2)
    with pytest.raises(als.OptionError, match="dpi=0 is not a valid value"):
        als.save_figure(fig, tmp_path / "x", dpi=0)


def test_set_theme_submission_settings():
    try:
        als.set_theme("paper")
        assert (mpl.rcParams["pdf.fonttype"], mpl.rcParams["ps.fonttype"], mpl.rcParams["svg.fonttype"]) == (42, 42, "none")
        assert mpl.rcParams["savefig.dpi"] == 300
    finally:
        mpl.rcdefaults()


def test_results_folder_figures_are_for_submission(tmp_path):
    o = ResultsFolder(tmp_path / "out", formats=("png", "pdf", "svg"))
    o.start()
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([1, 2], [1, 2])
    stem = o.figure(ax, "line")
    out = o.commit()
    assert _pdf_fonts_ok(out / "figures" / f"{stem}.pdf")
    assert Image.open(out / "figures" / f"{stem}.png").info["dpi"] == pytest.approx((300, 300), abs=0.01)
    assert "<text" in (out / "figures" / f"{stem}.svg").read_text()
