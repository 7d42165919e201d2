"""The figures' one style module: palette, axis labels, ticks, theme and saving for submission."""

from __future__ import annotations

import matplotlib as mpl
from matplotlib.patches import Polygon
from matplotlib.ticker import MaxNLocator

from ..exceptions import ArgumentError, OptionError
from ..validation import check_number, check_option

INK = "#222222"
ACCENT = "#0072B2"  # Okabe-Ito blue (colour-blind safe)
MUTED = "#999999"

# ----------------------------------------------------------------------------------------
# Axis labels

#: Names of the package's canonical columns on an axis.
COLUMN_LABELS = {"session": "Session", "patient": "Patient", "therapist": "Therapist", "rater": "Rater"}
#: Column-name endings read as a time point: ``phq9_total_pre`` -> ``PHQ-9 total (pre)``.
SUFFIX_LABELS = {"_pre": "pre", "_post": "post", "_baseline": "baseline", "_first": "first", "_last": "last"}
_RATER_FORMS = ("client", "therapist", "observer", "patient")


def _instrument_short_name(name: str) -> str:
    """'phq-9' -> 'PHQ-9', 'wai-36-client' -> 'WAI-36 (client)'."""
    for form in _RATER_FORMS:
        if name.endswith("-" + form):
            return f"{name[: -len(form) - 1].upper()} ({form})"
    return name.upper()


def _score_labels() -> dict:
    from ..instruments import get_instrument, instruments

    out = {}
    for name in instruments()["name"]:
        inst = get_instrument(name)
        short = _instrument_short_name(inst.name)
        for scale in inst.scales:
            out[f"{inst.prefix}_{scale}"] = f"{short} {scale.replace('_', ' ')}"
    return out


def score_label(column) -> str:
    """The display name of a column for an axis label.

    Score columns of registered instruments get the instrument's name and the scale
    (``phq9_total`` -> ``PHQ-9 total``, ``wai_sr_task`` -> ``WAI-SR task``, ``calpas_t_total`` ->
    ``CALPAS-T total``), also with a time-point ending (``phq9_total_pre`` -> ``PHQ-9 total
    (pre)``); the canonical columns are capitalised (``session`` -> ``Session``); any other name
    is returned as it is.

    Examples
    --------
    >>> score_label("phq9_total"), score_label("wai_sr_total_post"), score_label("my_scale")
    ('PHQ-9 total', 'WAI-SR total (post)', 'my_scale')
    """
    col = str(column)
    if col in COLUMN_LABELS:
        return COLUMN_LABELS[col]
    known = _score_labels()
    if col in known:
        return known[col]
    for end, when in SUFFIX_LABELS.items():
        if col.endswith(end) and col[: -len(end)] in known:
            return f"{known[col[: -len(end)]]} ({when})"
    return col


def _integer_ticks(axis) -> None:
    """Ticks at whole numbers only (sessions): 1, 2 ... or 5, 10 ..., never 2.5, 7.5."""
    axis.set_major_locator(MaxNLocator(nbins="auto", integer=True))


def _few_ticks(axis, nbins: int = 5) -> None:
    """At most ``nbins`` intervals at 1, 2 or 5 x 10^k, so that tick labels of small effects
    (-0.15, -0.10 ...) do not run into each other."""
    axis.set_major_locator(MaxNLocator(nbins=nbins, steps=[1, 2, 5, 10]))


def _diamond(ax, y, lo, est, hi, color, h=0.35):
    ax.add_patch(Polygon([[lo, y], [est, y + h], [hi, y], [est, y - h]], closed=True, facecolor=color, edgecolor=color, zorder=3))


def _meta_result(result, what: str) -> None:
    """Refuse anything but a meta-analysis result (read by its public attributes: plots do not
    import the model modules)."""
    if not all(hasattr(result, a) for a in ("table", "measure", "three_level", "qm", "subgroups", "estimate", "ci", "pi")):
        raise ArgumentError(f"{what} takes the result of als.meta_analysis(), got {type(result).__name__}")


# Palette
REPAIRED = "#009E73"   # Okabe-Ito green
UNREPAIRED = "#D55E00"  # Okabe-Ito vermillion

OKABE_ITO = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]

RCI_COLORS = {"recovered": "#009E73", "improved": "#56B4E9", "unchanged": "#999999", "deteriorated": "#D55E00"}


# ----------------------------------------------------------------------------------------
# Theme and saving

MM_PER_INCH = 25.4
JOURNAL_WIDTH_MM = {"single": 89.0, "double": 183.0}  # the usual journal column widths
JOURNAL_WIDTH_IN = {k: v / MM_PER_INCH for k, v in JOURNAL_WIDTH_MM.items()}
#: Raster resolution for figures with shading or photographs, and for line art (journals' minimums).
DPI = 300
LINE_ART_DPI = 600
#: rcParams for files sent to a journal: TrueType (Type 42) fonts embedded in PDF and PostScript
#: (submission systems reject or flag Type 3 bitmap fonts) and text kept as text in SVG.
SUBMISSION_RC = {"pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none"}


#: The contexts of :func:`set_theme`.
THEMES = ("paper", "notebook")
#: Figure file formats :func:`save_figure` writes.
FIGURE_FORMATS = ("pdf", "png", "svg", "eps", "tif", "tiff", "jpg")


def set_theme(context: str = "paper") -> None:
    """Set a colour-blind-safe (Okabe-Ito) theme with journal font sizes.

    ``"paper"``: 8 pt text, thin lines, for figures saved at a journal column width;
    ``"notebook"``: 11 pt, for reading on screen. Both embed TrueType fonts in PDF/PS and keep
    SVG text as text (:data:`SUBMISSION_RC`) and save PNGs at 300 dpi. Changes matplotlib's
    rcParams for the session (seaborn's ``set_theme`` underneath); call
    ``matplotlib.rcdefaults()`` to undo.
    """
    import seaborn as sns

    check_option("context", context, THEMES)
    base = 8 if context == "paper" else 11
    rc = {
        "font.size": base, "axes.labelsize": base, "axes.titlesize": base + 1, "xtick.labelsize": base - 1,
        "ytick.labelsize": base - 1, "legend.fontsize": base - 1, "axes.spines.right": False, "axes.spines.top": False,
        "axes.linewidth": 0.6 if context == "paper" else 0.8, "lines.linewidth": 1.2 if context == "paper" else 1.6,
        "savefig.bbox": "tight", "savefig.dpi": DPI, **SUBMISSION_RC,
        "figure.dpi": 100 if context == "paper" else 110,
    }
    sns.set_theme(context=context, style="ticks", palette=OKABE_ITO, font="DejaVu Sans", rc=rc)


def save_for_submission(fig, path, *, dpi: int = DPI) -> None:
    """``fig.savefig`` with the journal settings (:data:`SUBMISSION_RC`, ``dpi``, tight box)
    whatever the session's rcParams."""
    with mpl.rc_context(SUBMISSION_RC):
        fig.savefig(path, dpi=dpi, bbox_inches="tight")


def _fit_width(f, width_in: float) -> None:
    """Size ``f`` so that the file saved with a tight bounding box is ``width_in`` wide.

    The height is scaled with the width (aspect ratio kept); then the width is corrected for
    what the tight box adds or cuts (labels outside the axes, empty margins), which does not
    scale with the figure: secant steps on the saved width as a function of the figure width.
    """
    old_w, old_h = f.get_size_inches()
    h = old_h * width_in / old_w
    pad = 2 * float(mpl.rcParams["savefig.pad_inches"])

    def saved(w):
        f.set_size_inches(w, h)
        return f.get_tightbbox(f.canvas.get_renderer()).width + pad

    w0, t0 = width_in, saved(width_in)
    w1 = max(w0 + width_in - t0, 0.2 * width_in)
    for _ in range(8):
        if abs(t0 - width_in) < 0.2 / LINE_ART_DPI or w1 == w0:
            break
        t1 = saved(w1)
        slope = (t1 - t0) / (w1 - w0)
        w0, t0 = w1, t1
        w1 = max(w1 + (width_in - t1) / (slope if slope > 0.05 else 1.0), 0.2 * width_in)
    f.set_size_inches(w0, h)


def save_figure(fig, path, *, formats=("pdf", "png", "svg"), width="single", dpi: int | None = None,
                line_art: bool = False) -> list:
    """Save a figure in several formats at a journal column width, ready for submission.

    PDF, EPS and PS embed TrueType (Type 42) fonts and SVG keeps text as text
    (:data:`SUBMISSION_RC`), whatever the session's rcParams.

    Parameters
    ----------
    fig : Figure, Axes or seaborn grid
        What to save (an Axes or grid is saved with its figure).
    path : str or Path
        File name; its extension, if any, is replaced by each format's.
    formats : sequence of {"pdf", "png", "svg", "eps", "tif"}
    width : {"single", "double"} or float
        Single column (89 mm, 3.5 in), double column (183 mm, 7.2 in), or inches: the width
        of the saved file (labels outside the axes included). The height is scaled to keep the
        figure's aspect ratio.
    dpi : int, optional
        Resolution of raster formats: 300 by default (the usual journal minimum), 600 with
        ``line_art=True``.
    line_art : bool
        A figure of lines and text only (no shading): saved at 600 dpi unless ``dpi`` is given.

    Returns
    -------
    list of Path
        The files written.
    """
    from pathlib import Path

    f = getattr(fig, "figure", fig)
    f = getattr(f, "figure", f)  # FacetGrid.figure, Axes.figure
    if not hasattr(f, "savefig"):
        raise ArgumentError(f"save_figure() takes a matplotlib Figure, Axes or seaborn grid, got {type(fig).__name__}")
    if isinstance(width, str):
        w = JOURNAL_WIDTH_IN[check_option("width", width, tuple(JOURNAL_WIDTH_IN), hint="or give a number of inches")]
    else:
        w = check_number("width", width, 0, lo_open=True, hint="give 'single', 'double' or a positive number of inches")
    if dpi is None:
        dpi = LINE_ART_DPI if line_art else DPI
    else:
        dpi = check_number("dpi", dpi, 0, lo_open=True, hint="dots per inch, e.g. 300")
    allowed = FIGURE_FORMATS
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    for x in formats:
        if not isinstance(x, str) or x.lower().lstrip(".") not in allowed:
            raise OptionError("formats", x, allowed, hint="a figure format, or a list of them")
    _fit_width(f, w)
    if hasattr(fig, "tight_layout") and fig is not f:  # a seaborn grid lays itself out again at the new size
        fig.tight_layout()
        _fit_width(f, w)
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in formats:
        p = base.with_suffix("." + ext.lower().lstrip("."))
        save_for_submission(f, p, dpi=dpi)
        out.append(p)
    return out
